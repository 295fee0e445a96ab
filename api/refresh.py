"""Refresh tokens: opaque, single-use, rotated, with reuse detection by family (seed 002).

A login starts a *family*. Each refresh token is 32 random bytes (URL-safe); Redis keeps only its
SHA-256 (``keys.refresh_token``) as a hash ``{sub, fam}`` (+ ``used`` once used) that lives
``refresh_token_ttl`` seconds. ``POST /api/auth/refresh`` marks the token used (atomically,
``HSETNX``) and issues a new access + refresh token of the same family. Presenting a token that
was already used means two parties hold it (one of them a thief): the whole family is revoked
(``keys.refresh_family_revoked``), which also kills the family's access tokens, whose ``fam``
claim ``Tokens.verify`` checks. Logout revokes the family of the token it logs out.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

from api.auth import InvalidToken
from storage import keys


class RefreshInvalid(InvalidToken):
    default_message = "Invalid or expired refresh token"


class RefreshReused(InvalidToken):
    default_message = "Refresh token reuse detected: the session has been revoked"


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    user_id: str
    family: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class RefreshTokens:
    def __init__(self, redis: Redis, ttl: int, access_ttl: int) -> None:
        self._redis = redis
        self.ttl = ttl
        self._family_ttl = max(ttl, access_ttl)

    @staticmethod
    def new_family() -> str:
        return uuid.uuid4().hex

    async def issue(self, user_id: str, family: str) -> str:
        token = secrets.token_urlsafe(32)
        key = keys.refresh_token(_digest(token))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"sub": user_id, "fam": family})
            pipe.expire(key, self.ttl)
            await pipe.execute()
        return token

    async def consume(self, token: str) -> RefreshGrant:
        """Mark ``token`` used and return whose it is; reuse revokes the family."""
        if not token or len(token) > 256:
            raise RefreshInvalid()
        key = keys.refresh_token(_digest(token))
        record = await self._redis.hgetall(key)
        if not record:
            raise RefreshInvalid()
        family = record[b"fam"].decode()
        if await self._redis.exists(keys.refresh_family_revoked(family)):
            raise RefreshInvalid()
        if not await self._redis.hsetnx(key, "used", "1"):  # atomic: only one caller wins
            await self.revoke_family(family)
            raise RefreshReused()
        return RefreshGrant(user_id=record[b"sub"].decode(), family=family)

    async def revoke_family(self, family: str) -> None:
        await self._redis.set(keys.refresh_family_revoked(family), b"1", ex=self._family_ttl)
