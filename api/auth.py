"""Passwords (Argon2id) and access tokens (JWT HS256 with a Redis denylist for logout)."""

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
from redis.asyncio import Redis

from engine.errors import DomainError
from engine.roles import Role
from storage import keys

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


class Tokens:
    """Issues and checks access tokens; ``revoke`` denies a token for the rest of its life."""

    def __init__(self, secret: str, ttl: int, redis: Redis) -> None:
        self._secret = secret
        self.ttl = ttl
        self._redis = redis

    def issue(self, user_id: str, role: str, family: str | None = None) -> tuple[str, Claims]:
        now = int(time.time())
        claims = Claims(sub=user_id, role=role, jti=uuid.uuid4().hex, iat=now, exp=now + self.ttl,
                        fam=family)
        payload: dict[str, Any] = {
            "sub": claims.sub, "role": claims.role, "jti": claims.jti,
            "iat": claims.iat, "exp": claims.exp,
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
        )

    async def verify(self, token: str) -> Claims:
        claims = self.decode(token)
        denied = [keys.revoked_token(claims.jti)]
        if claims.fam:
            denied.append(keys.refresh_family_revoked(claims.fam))
        if await self._redis.exists(*denied):  # one round trip for both denylists
            raise InvalidToken("Token has been revoked")
        return claims

    async def revoke(self, claims: Claims) -> None:
        remaining = max(1, claims.exp - int(time.time()))
        await self._redis.set(keys.revoked_token(claims.jti), b"1", ex=remaining)

    async def is_revoked(self, jti: str) -> bool:
        return bool(await self._redis.exists(keys.revoked_token(jti)))
