"""Live state in Redis: active calls (a key each, with a TTL) and operator statuses (one hash)."""

from __future__ import annotations

from redis.asyncio import Redis

from engine.model import Call, Operator
from engine.storage import keys
from engine.storage.serialize import call_from_json, dumps, operator_from_json


class RedisStateStore:
    """Implements ``engine.ports.StateStore``. Each update is one MULTI/EXEC transaction."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def save_call(self, call: Call) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.active_call(call.id), dumps(call), ex=keys.ACTIVE_CALL_TTL)
            pipe.sadd(keys.ACTIVE_CALLS, call.id)
            await pipe.execute()

    async def remove_call(self, call_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.active_call(call_id))
            pipe.srem(keys.ACTIVE_CALLS, call_id)
            await pipe.execute()

    async def save_operator(self, operator: Operator) -> None:
        await self._redis.hset(keys.OPERATORS, operator.id, dumps(operator))

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
