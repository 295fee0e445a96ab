"""Live state in Redis: active calls (a key each, with a TTL) and operator statuses (one hash).

Writes are write-behind: ``save_call``/``remove_call``/``save_operator`` only note the latest
state (no await, so the engine's loop never waits on Redis), and ``run()`` flushes what changed
in one MULTI/EXEC transaction every few milliseconds. A failed flush keeps everything pending and
is retried with backoff: a Redis outage delays live state, it does not lose it.

After a failed flush the next write is the whole live state, read from the engine (``source``,
the runner's snapshot), not the pending changes: Redis may have come back empty (a restart) or
with calls whose TTL ran out, and only the engine knows the full truth.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.model import Call, Operator
from storage import keys
from storage.serialize import call_from_json, dumps, operator_from_json
from storage.writebehind import WriteBehind

log = logging.getLogger("switchboard.redis")


class RedisStateStore(WriteBehind):
    """Implements ``engine.ports.StateStore``."""

    retry_on = (RedisError, OSError)
    what = "live-state updates"

    def __init__(self, redis: Redis, *, interval: float = 0.005, max_backoff: float = 5.0,
                 flush_timeout: float = 5.0) -> None:
        super().__init__(interval=interval, max_backoff=max_backoff, log=log)
        self.flush_timeout = flush_timeout
        self._redis = redis
        # the engine's whole live state (``Runner.snapshot``); set once the runner exists
        self.source: Callable[[], tuple[list[Call], list[Operator]]] | None = None
        self._rewrite_whole = False

    async def save_call(self, call: Call) -> None:
        self._note_call(call.id, call)

    async def remove_call(self, call_id: str) -> None:
        self._note_call(call_id, None)

    async def save_operator(self, operator: Operator) -> None:
        self._note_operator(operator)

    async def flush(self) -> None:
        async with self._lock:
            if self._rewrite_whole and self.source is not None:
                await self._write_whole(self.source)
                return
            if not self.pending:
                self._wake.clear()
                return
            calls, self._calls = self._calls, {}
            operators, self._operators = self._operators, {}
            self._wake.clear()
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    for call_id, call in calls.items():
                        if call is None:
                            pipe.delete(keys.active_call(call_id))
                            pipe.srem(keys.ACTIVE_CALLS, call_id)
                        else:
                            pipe.set(keys.active_call(call_id), dumps(call),
                                     ex=keys.ACTIVE_CALL_TTL)
                            pipe.sadd(keys.ACTIVE_CALLS, call_id)
                    if operators:
                        pipe.hset(keys.OPERATORS, mapping={
                            op_id: dumps(op) for op_id, op in operators.items()})
                    await pipe.execute()
            except BaseException:
                # keep what failed, unless a newer state was noted meanwhile
                self._calls = {**calls, **self._calls}
                self._operators = {**operators, **self._operators}
                self._rewrite_whole = True
                raise
            self.stats["flushes"] += 1

    async def _write_whole(self, source: Callable[[], tuple[list[Call], list[Operator]]]) -> None:
        """Replace the live state in Redis with the engine's, in one transaction."""
        calls, operators = source()
        # the snapshot includes every change noted so far; later ones stay pending
        self._calls.clear()
        self._operators.clear()
        self._wake.clear()
        live = {call.id for call in calls}
        known = {_text(m) for m in await self._redis.smembers(keys.ACTIVE_CALLS)}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.ACTIVE_CALLS, keys.OPERATORS,
                        *[keys.active_call(i) for i in known - live])
            for call in calls:
                pipe.set(keys.active_call(call.id), dumps(call), ex=keys.ACTIVE_CALL_TTL)
            if live:
                pipe.sadd(keys.ACTIVE_CALLS, *live)
            if operators:
                pipe.hset(keys.OPERATORS, mapping={op.id: dumps(op) for op in operators})
            await pipe.execute()
        self._rewrite_whole = False
        self.stats["whole_rewrites"] += 1
        log.info("live state rewritten whole from the engine: %d calls, %d operators",
                 len(calls), len(operators))

    async def active_calls(self) -> list[Call]:
        ids = sorted(_text(m) for m in await self._redis.smembers(keys.ACTIVE_CALLS))
        if not ids:
            return []
        values = await self._redis.mget([keys.active_call(i) for i in ids])
        expired = [i for i, v in zip(ids, values, strict=True) if v is None]
        if expired:  # their TTL ran out: forget them in the index too
            await self._redis.srem(keys.ACTIVE_CALLS, *expired)
        return [call_from_json(v) for v in values if v is not None]

    async def operators(self) -> list[Operator]:
        values = await self._redis.hvals(keys.OPERATORS)
        return [operator_from_json(v) for v in values]

    async def clear(self) -> None:
        """Forget live state (start-up: the engine rebuilds it from the PBX resync)."""
        ids = await self._redis.smembers(keys.ACTIVE_CALLS)
        call_keys = [keys.active_call(_text(i)) for i in ids]
        await self._redis.delete(keys.ACTIVE_CALLS, keys.OPERATORS, *call_keys)



def _text(member: bytes | str) -> str:
    return member.decode() if isinstance(member, bytes) else member


async def redis_ping(redis: Redis, *, within: float = 1.0) -> str | None:
    """None when Redis answers PING in time, else why not (for /ready)."""
    try:
        async with asyncio.timeout(within):
            await redis.ping()
    except TimeoutError:
        return f"no answer within {within:g}s"
    except (RedisError, OSError, RuntimeError) as exc:  # RuntimeError: uvloop, closed transport
        return f"{type(exc).__name__}: {exc}"
    return None
