"""Refresh tokens: opaque, single-use, rotated, with reuse detection by family (seed 002).

A login starts a *family*. Each refresh token is 32 random bytes (URL-safe); Redis keeps only its
SHA-256 (``keys.refresh_token``) as a hash ``{sub, fam}`` (+ ``used`` once used) that lives
``refresh_token_ttl`` seconds. ``POST /api/auth/refresh`` marks the token used (atomically,
``HSETNX``) and issues a new access + refresh token of the same family. Presenting a token that
was already used means two parties hold it (one of them a thief): the whole family is revoked
(``keys.refresh_family_revoked``), which also kills the family's access tokens, whose ``fam``
claim ``Tokens.verify`` checks. Logout revokes the family of the token it logs out. A refresh
token issued before the user's "tokens valid after" mark (password/role/active change) is dead
too. The Redis side is ``storage/tokens.py``; revoking a family there also closes its WebSockets.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

from api.auth import InvalidToken
from storage.tokens import TokenStore


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
    def __init__(self, store: TokenStore, ttl: int, access_ttl: int) -> None:
        self._store = store
        self.ttl = ttl
        self._family_ttl = max(ttl, access_ttl)

    @staticmethod
    def new_family() -> str:
        return uuid.uuid4().hex

    async def issue(self, user_id: str, family: str) -> str:
        token = secrets.token_urlsafe(32)
        await self._store.save_refresh(_digest(token), user_id, family,
                                       int(time.time() * 1000), self.ttl)
        return token

    async def consume(self, token: str) -> RefreshGrant:
        """Mark ``token`` used and return whose it is; reuse revokes the family."""
        if not token or len(token) > 256:
            raise RefreshInvalid()
        record = await self._store.spend_refresh(_digest(token))
        if record is None or record.family_revoked:
            raise RefreshInvalid()
        if record.valid_after_ms and record.issued_ms < record.valid_after_ms:
            raise RefreshInvalid()
        if not record.first_use:  # two parties hold it: one of them is a thief
            await self.revoke_family(record.family)
            raise RefreshReused()
        return RefreshGrant(user_id=record.user_id, family=record.family)

    async def revoke_family(self, family: str) -> None:
        await self._store.revoke_family(family, self._family_ttl)
