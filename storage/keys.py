"""Every Redis key name and TTL Switchboard uses, in one place."""

from __future__ import annotations

PREFIX = "sb:"

# Live state. An active call is a key of its own so a lost CallEnded can't keep it forever.
ACTIVE_CALLS = PREFIX + "calls:active"  # set of call ids
ACTIVE_CALL_TTL = 12 * 3600  # seconds; no real call lasts longer
OPERATORS = PREFIX + "operators"  # hash operator_id -> JSON


def active_call(call_id: str) -> str:
    return f"{PREFIX}call:{call_id}"


# Auth: a logged-out token's jti stays denied for the rest of the token's life.
def revoked_token(jti: str) -> str:
    return f"{PREFIX}auth:revoked:{jti}"


# A refresh token (key: sha256 of the token): hash {sub, fam, used}; TTL = refresh_token_ttl.
def refresh_token(jti: str) -> str:
    return f"{PREFIX}auth:refresh:{jti}"


# A revoked refresh family (reuse detected, or logout): its refresh and access tokens are dead.
# TTL = max(refresh_token_ttl, token_ttl): no token of the family outlives it.
def refresh_family_revoked(family: str) -> str:
    return f"{PREFIX}auth:family-revoked:{family}"


# Every token of a user issued before this moment (unix ms) is dead: password, role or active
# flag changed, or the user was deleted. TTL = max(token_ttl, refresh_token_ttl).
def user_tokens_valid_after(user_id: str) -> str:
    return f"{PREFIX}auth:valid-after:{user_id}"


# Pub/sub channel: "user:<id>" or "family:<id>" when tokens are revoked, so every instance
# closes the affected WebSockets at once (the periodic sweep is the fallback).
REVOCATIONS = PREFIX + "auth:revocations"


# Failed logins of one username: hash {failures, next_ms}; lives LOGIN_FAILURE_WINDOW seconds
# after the last failure (api/ratelimit.py LoginThrottle).
def login_failures(username: str) -> str:
    return f"{PREFIX}auth:login-failures:{username}"


# Fixed-window request counter; ``window`` = the window's index (unix time // RATE_WINDOW).
RATE_WINDOW = 60  # seconds (the seed's limits are per minute)


def rate_limit(bucket: str, who: str, window: int) -> str:
    return f"{PREFIX}rl:{bucket}:{who}:{window}"
