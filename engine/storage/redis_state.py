"""Live state in Redis: active calls (a key each, with a TTL) and operator statuses (one hash).

Writes are write-behind: ``save_call``/``remove_call``/``save_operator`` only note the latest
state (no await, so the engine's loop never waits on Redis), and ``run()`` flushes what changed
in one MULTI/EXEC transaction every few milliseconds. A failed flush keeps everything pending and
is retried with backoff: a Redis outage delays live state, it does not lose it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.model import Call, Operator
from engine.storage import keys
from engine.storage.cancel import reraise_lost_cancellation
from engine.storage.serialize import call_from_json, dumps, operator_from_json

log = logging.getLogger("switchboard.redis")


class RedisStateStore:
    """Implements ``engine.ports.StateStore``."""

    def __init__(self, redis: Redis, *, interval: float = 0.005, max_backoff: float = 5.0) -> None:
        self._redis = redis
        self._calls: dict[str, Call | None] = {}  # None: the call ended, remove it
        self._operators: dict[str, Operator] = {}
        self._wake = asyncio.Event()
        self._interval = interval
        self._max_backoff = max_backoff
        self._lock = asyncio.Lock()
        self.stats: Counter[str] = Counter()

    @property
    def pending(self) -> int:
        return len(self._calls) + len(self._operators)

    async def save_call(self, call: Call) -> None:
        self._calls[call.id] = call
        self._wake.set()

    async def remove_call(self, call_id: str) -> None:
        self._calls[call_id] = None
        self._wake.set()

    async def save_operator(self, operator: Operator) -> None:
        self._operators[operator.id] = operator
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.1
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._interval)  # coalesce a burst into one transaction
            try:
                await self.flush()
                backoff = 0.1
                reraise_lost_cancellation()
            except (RedisError, OSError) as exc:
                self.stats["failed_flushes"] += 1
                log.warning("Redis write failed (%s); %d updates kept, retry in %.1fs",
                            exc, self.pending, backoff)
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, self._max_backoff)
                self._wake.set()

    async def flush(self) -> None:
        async with self._lock:
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
                raise
            self.stats["flushes"] += 1

    async def active_calls(self) -> list[Call]:
        ids = sorted(m.decode() if isinstance(m, bytes) else m
                     for m in await self._redis.smembers(keys.ACTIVE_CALLS))
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
        call_keys = [keys.active_call(i.decode() if isinstance(i, bytes) else i) for i in ids]
        await self._redis.delete(keys.ACTIVE_CALLS, keys.OPERATORS, *call_keys)

