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


def refresh_token(jti: str) -> str:
    return f"{PREFIX}auth:refresh:{jti}"


def rate_limit(bucket: str, who: str, window: int) -> str:
    return f"{PREFIX}rl:{bucket}:{who}:{window}"
