"""Passwords (Argon2id) and access tokens (JWT HS256).

An access token is refused when it was logged out (denylist), when its refresh family was revoked
(``api/refresh.py``), or when it was issued before the user's "tokens valid after" mark
(password, role or active flag changed, user deleted: ``service/users.py``). The token's
``iat_ms`` claim (issue time in milliseconds) makes that comparison exact: a token issued a
moment after a password change is valid, one issued a moment before is not. The state lives in
Redis (``storage/tokens.py``); all three checks are one round trip.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from engine.errors import DomainError
from engine.roles import Role
from storage.tokens import TokenRef, TokenState, TokenStore

_hasher = PasswordHasher()
# Verified when the user does not exist, so both answers take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
ROLES = tuple(Role)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-ish time: hashing runs in a thread so the event loop keeps serving."""

    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def generate_password() -> str:
    return secrets.token_urlsafe(15)


class InvalidCredentials(DomainError):
    code, default_message = "AUTH_001", "Invalid credentials"


class InvalidToken(DomainError):
    code, default_message = "AUTH_001", "Missing or invalid token"


class TokenExpired(DomainError):
    code, default_message = "AUTH_002", "Token expired"


class Forbidden(DomainError):
    code, default_message = "AUTH_003", "Insufficient permissions"


class UserInactive(DomainError):
    code, default_message = "AUTH_004", "User is inactive"


@dataclass(frozen=True, slots=True)
class Claims:
    sub: str
    role: str
    jti: str
    exp: int
    iat: int
    fam: str | None = None  # refresh-token family (api/refresh.py); revoking it kills this token
    iat_ms: int = 0         # issue time, ms (revocation by time: ``refused``)

    @property
    def ref(self) -> TokenRef:
        return TokenRef(jti=self.jti, family=self.fam, user_id=self.sub)


def refused(issued_ms: int, state: TokenState) -> bool:
    """Whether a token issued at ``issued_ms`` is dead in ``state`` (logged out or revoked)."""
    return (state.denied or state.family_revoked
            or (state.valid_after_ms > 0 and issued_ms < state.valid_after_ms))


class Tokens:
    """Issues and checks access tokens; ``revoke`` denies a token for the rest of its life."""

    def __init__(self, secret: str, ttl: int, store: TokenStore) -> None:
        self._secret = secret
        self.ttl = ttl
        self.store = store

    def issue(self, user_id: str, role: str, family: str | None = None) -> tuple[str, Claims]:
        now_ms = int(time.time() * 1000)
        now = now_ms // 1000
        claims = Claims(sub=user_id, role=role, jti=uuid.uuid4().hex, iat=now, exp=now + self.ttl,
                        fam=family, iat_ms=now_ms)
        payload: dict[str, Any] = {
            "sub": claims.sub, "role": claims.role, "jti": claims.jti,
            "iat": claims.iat, "exp": claims.exp, "iat_ms": claims.iat_ms,
        }
        if family:
            payload["fam"] = family
        return jwt.encode(payload, self._secret, algorithm="HS256"), claims

    def decode(self, token: str) -> Claims:
        try:
            payload = jwt.decode(
                token, self._secret, algorithms=["HS256"],
                options={"require": ["exp", "sub", "jti", "role"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired() from None
        except jwt.PyJWTError:
            raise InvalidToken() from None
        return Claims(
            sub=str(payload["sub"]), role=str(payload["role"]), jti=str(payload["jti"]),
            exp=int(payload["exp"]), iat=int(payload.get("iat", 0)),
            fam=str(payload["fam"]) if payload.get("fam") else None,
            iat_ms=_int_claim(payload.get("iat_ms"), int(payload.get("iat", 0)) * 1000),
        )

    async def verify(self, token: str) -> Claims:
        claims = self.decode(token)
        if refused(claims.iat_ms, await self.store.state(claims.ref)):
            raise InvalidToken("Token has been revoked")
        return claims

    async def revoke(self, claims: Claims) -> None:
        """Log this one token out for the rest of its life."""
        await self.store.deny(claims.jti, claims.exp - int(time.time()))


def _int_claim(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
