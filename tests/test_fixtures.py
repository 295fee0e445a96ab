"""The session fixtures hand out working, isolated servers."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aredis


async def test_database_url_is_this_sessions_test_database(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert (await conn.fetchval("SELECT current_database()")).startswith("switchboard_test_")
    finally:
        await conn.close()


async def _leave_rows_and_check_clean(database_url: str) -> None:
    """The tables are as the migrations left them; then leave rows in every kind of table
    (with their foreign keys) for whichever test comes next."""
    conn = await asyncpg.connect(database_url)
    try:
        for table in ("groups", "users", "operators", "queues", "calls", "call_transfers",
                      "call_stats_hourly", "call_stats_daily"):
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0, table
        assert await conn.fetchval("SELECT count(*) FROM system_settings") == 1  # the seed row
        assert await conn.fetchval("SELECT data FROM system_settings") == "{}"
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") > 0  # kept
        group = await conn.fetchval("INSERT INTO groups (name) VALUES ('left') RETURNING id")
        user = await conn.fetchval(
            """INSERT INTO users (username, email, name, role, password_hash, group_id)
               VALUES ('left', 'left@example.com', 'Left', 'operator', 'x', $1) RETURNING id""",
            group)
        await conn.execute("UPDATE system_settings SET data = '{\"left\": 1}', updated_by = $1",
                           user)
    finally:
        await conn.close()


async def test_database_starts_clean(database_url: str) -> None:
    await _leave_rows_and_check_clean(database_url)


async def test_database_starts_clean_after_a_test_left_rows(database_url: str) -> None:
    await _leave_rows_and_check_clean(database_url)


async def test_redis_fixture_pings_and_starts_empty(redis: aredis.Redis) -> None:
    assert await redis.ping() is True
    assert await redis.dbsize() == 0
    await redis.set("switchboard:test", "1")
    assert await redis.get("switchboard:test") == b"1"


async def test_redis_fixture_is_flushed_between_tests(redis: aredis.Redis) -> None:
    assert await redis.get("switchboard:test") is None
