"""Live state in Redis: active calls (a key each, with a TTL) and operator statuses (one hash).

Writes are write-behind: ``save_call``/``remove_call``/``save_operator`` only note the latest
state (no await, so the engine's loop never waits on Redis), and ``run()`` flushes what changed
in one MULTI/EXEC transaction every few milliseconds. A failed flush keeps everything pending and
is retried with backoff: a Redis outage delays live state, it does not lose it.
"""

from __future__ import annotations

import logging

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

    def __init__(self, redis: Redis, *, interval: float = 0.005, max_backoff: float = 5.0) -> None:
        super().__init__(interval=interval, max_backoff=max_backoff, log=log)
        self._redis = redis

    async def save_call(self, call: Call) -> None:
        self._note_call(call.id, call)

    async def remove_call(self, call_id: str) -> None:
        self._note_call(call_id, None)

    async def save_operator(self, operator: Operator) -> None:
        self._note_operator(operator)

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

