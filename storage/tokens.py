"""Token state in Redis: the access-token denylist, refresh-token records and families, and the
per-user "tokens valid after" mark. Only state here; the policy (JWT, rotation, who is revoked
when) is ``api/auth.py``, ``api/refresh.py`` and ``service/users.py``.

Revoking a family or a user also publishes a notice on ``keys.REVOCATIONS`` so that every
instance closes the affected WebSockets at once (``revocation_notices``). Redis failures raise
``StorageUnavailable``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from engine.errors import StorageUnavailable
from storage import keys
from storage.redis_client import REDIS_ERRORS

log = logging.getLogger("switchboard.storage")


@dataclass(frozen=True, slots=True)
class TokenRef:
    """What identifies an access token for revocation checks."""

    jti: str
    family: str | None
    user_id: str


@dataclass(frozen=True, slots=True)
class TokenState:
    denied: bool            # the token itself was logged out
    family_revoked: bool    # its refresh family was revoked
    valid_after_ms: int     # the user's tokens issued before this are dead (0: none)


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    user_id: str
    family: str
    issued_ms: int
    first_use: bool         # False: it was spent before (reuse)
    family_revoked: bool
    valid_after_ms: int


@dataclass(frozen=True, slots=True)
class Revocation:
    kind: Literal["user", "family"]
    id: str


class TokenStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    # -- access tokens -----------------------------------------------------------------------

    async def deny(self, jti: str, ttl: int) -> None:
        with _unavailable():
            await self._redis.set(keys.revoked_token(jti), b"1", ex=max(1, ttl))

    async def states(self, tokens: Sequence[TokenRef]) -> list[TokenState]:
        """The revocation state of each token, in one round trip."""
        with _unavailable():
            async with self._redis.pipeline(transaction=False) as pipe:
                for token in tokens:
                    pipe.exists(keys.revoked_token(token.jti))
                    pipe.exists(keys.refresh_family_revoked(token.family or ""))
                    pipe.get(keys.user_tokens_valid_after(token.user_id))
                answers = await pipe.execute()
        return [
            TokenState(denied=bool(answers[i]), family_revoked=bool(token.family)
                       and bool(answers[i + 1]), valid_after_ms=_int(answers[i + 2]))
            for i, token in zip(range(0, len(answers), 3), tokens, strict=True)
        ]

    async def state(self, token: TokenRef) -> TokenState:
        return (await self.states([token]))[0]

    # -- refresh tokens ------------------------------------------------------------------------

    async def save_refresh(self, digest: str, user_id: str, family: str, issued_ms: int,
                           ttl: int) -> None:
        key = keys.refresh_token(digest)
        with _unavailable():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping={"sub": user_id, "fam": family, "iat_ms": issued_ms})
                pipe.expire(key, ttl)
                await pipe.execute()

    async def spend_refresh(self, digest: str) -> RefreshRecord | None:
        """Mark a refresh token used (atomically: only one caller gets ``first_use``) and
        return its record with its family's and user's revocation state; None if unknown."""
        key = keys.refresh_token(digest)
        with _unavailable():
            record = {_text(k): _text(v) for k, v in (await self._redis.hgetall(key)).items()}
            if "fam" not in record or "sub" not in record:
                return None
            family, user_id = record["fam"], record["sub"]
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hsetnx(key, "used", "1")
                pipe.exists(keys.refresh_family_revoked(family))
                pipe.get(keys.user_tokens_valid_after(user_id))
                first_use, family_revoked, valid_after = await pipe.execute()
        return RefreshRecord(user_id=user_id, family=family,
                             issued_ms=_int(record.get("iat_ms")), first_use=bool(first_use),
                             family_revoked=bool(family_revoked),
                             valid_after_ms=_int(valid_after))

    # -- revocation ---------------------------------------------------------------------------

    async def revoke_family(self, family: str, ttl: int) -> None:
        with _unavailable():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(keys.refresh_family_revoked(family), b"1", ex=max(1, ttl))
                pipe.publish(keys.REVOCATIONS, f"family:{family}")
                await pipe.execute()

    async def revoke_user(self, user_id: str, valid_after_ms: int, ttl: int) -> None:
        """Every token of ``user_id`` issued before ``valid_after_ms`` is dead."""
        with _unavailable():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(keys.user_tokens_valid_after(user_id), valid_after_ms, ex=max(1, ttl))
                pipe.publish(keys.REVOCATIONS, f"user:{user_id}")
                await pipe.execute()

    async def revocation_notices(self) -> AsyncIterator[Revocation]:
        """Revocations published by any instance, as they come (until cancelled or Redis
        fails: the caller resubscribes)."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(keys.REVOCATIONS)
            async for message in pubsub.listen():
                notice = _revocation(message.get("data"))
                if notice is not None:
                    yield notice
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    """Redis failures become the domain's ``StorageUnavailable`` (503 DB_001)."""
    try:
        yield
    except REDIS_ERRORS as exc:
        raise StorageUnavailable("Redis is unavailable") from exc


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _revocation(data: object) -> Revocation | None:
    text = _text(data) if isinstance(data, bytes | str) else str(data)
    kind, _, ident = text.partition(":")
    if kind == "user" and ident:
        return Revocation("user", ident)
    if kind == "family" and ident:
        return Revocation("family", ident)
    log.warning("ignored a malformed revocation notice: %r", text[:100])
    return None


def _int(value: object) -> int:
    try:
        return int(value) if value is not None else 0  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0
