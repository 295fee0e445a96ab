"""Migrations: ordered, transactional, recorded, safe when two instances start at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from storage.db import discover_migrations, migrate, throwaway_database


async def test_two_instances_migrating_at_once_apply_each_migration_once(
    pg_admin_url: str,
) -> None:
    async with throwaway_database(pg_admin_url, "switchboard_migr_race") as url:
        conns = [await asyncpg.connect(url) for _ in range(2)]
        results = await asyncio.gather(*(migrate(c) for c in conns))
        expected = [m.version for m in discover_migrations()]
        assert sorted(results[0] + results[1]) == expected  # each applied by exactly one
        assert await conns[0].fetchval("SELECT count(*) FROM schema_migrations") == len(expected)
        assert await migrate(conns[0]) == []  # nothing pending the second time
        for c in conns:
            await c.close()


async def test_a_failing_migration_rolls_back_and_is_not_recorded(
    pg_admin_url: str, tmp_path: Path
) -> None:
    (tmp_path / "001_ok.sql").write_text("CREATE TABLE ok_table (id int);")
    (tmp_path / "002_bad.sql").write_text("CREATE TABLE half (id int); SELECT no_such_column;")
    async with throwaway_database(pg_admin_url, "switchboard_migr_fail") as url:
        conn = await asyncpg.connect(url)
        with pytest.raises(asyncpg.UndefinedColumnError):
            await migrate(conn, tmp_path)
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
        assert versions == [1]
        assert await conn.fetchval("SELECT to_regclass('half')") is None
        # the advisory lock was released: a later run can proceed
        (tmp_path / "002_bad.sql").write_text("CREATE TABLE half (id int);")
        assert await migrate(conn, tmp_path) == [2]
        await conn.close()


async def test_schema_has_the_seed_models(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
        tables = {r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"users", "groups", "operators", "queues", "calls", "system_settings",
                "schema_migrations"} <= tables
        call_cols = {r["column_name"] for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'calls'")}
        assert {"id", "channel_id", "caller_number", "called_number", "operator_id", "queue_id",
                "status", "start_time", "answer_time", "end_time", "duration", "recording_url",
                "notes", "created_at", "source", "direction", "wait_seconds",
                "linked_channel_ids"} <= call_cols
    finally:
        await conn.close()
