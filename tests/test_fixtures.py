"""The session fixtures hand out working, isolated servers."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aredis


async def test_database_url_is_this_sessions_test_database(database_url: str) -> None:
    # Shared by the whole session (other tests migrate it), so only its identity is checked.
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert (await conn.fetchval("SELECT current_database()")).startswith("switchboard_test_")
    finally:
        await conn.close()


async def test_redis_fixture_pings_and_starts_empty(redis: aredis.Redis) -> None:
    assert await redis.ping() is True
    assert await redis.dbsize() == 0
    await redis.set("switchboard:test", "1")
    assert await redis.get("switchboard:test") == b"1"


async def test_redis_fixture_is_flushed_between_tests(redis: aredis.Redis) -> None:
    assert await redis.get("switchboard:test") is None
