"""PostgreSQL: connection pool and numbered plain-SQL migrations."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson

Pool = asyncpg.Pool  # what the rest of the code names a PostgreSQL pool by
log = logging.getLogger("switchboard.db")

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
# Any constant both instances agree on; serialises concurrent migrators.
MIGRATION_LOCK_ID = 0x5B_0A_2D_01
_MIGRATION_FILE = re.compile(r"^(\d+)_([\w-]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path


def discover_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in directory.iterdir():
        match = _MIGRATION_FILE.match(path.name)
        if match:
            found.append(Migration(int(match[1]), match[2], path))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers in {directory}")
    return found


async def migrate(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply pending migrations in order, each in its own transaction, under an advisory lock."""
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in discover_migrations(directory):
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.path.read_text(encoding="utf-8"))
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            log.info("applied migration %03d_%s", migration.version, migration.name)
            applied_now.append(migration.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    return applied_now


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads,
            schema="pg_catalog",
        )


async def connect_with_retry(
    url: str, *, attempts: int = 8, initial: float = 0.25, **pool_kwargs: Any
) -> asyncpg.Pool:
    """Create a pool, retrying with exponential backoff and jitter while PostgreSQL is not up."""
    delay = initial
    for attempt in range(1, attempts + 1):
        try:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                url, init=_init_connection, min_size=1, max_size=10, **pool_kwargs
            )
            return pool
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError) as exc:
            if attempt == attempts:
                raise
            log.warning("PostgreSQL not reachable (%s); retry %d in %.1fs", exc, attempt, delay)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 10.0)
    raise AssertionError("unreachable")


def database_url(server_url: str, name: str) -> str:
    """The URL of database ``name`` on the server of ``server_url`` (TCP or unix-socket form)."""
    return urllib.parse.urlsplit(server_url)._replace(path=f"/{name}").geturl()


async def postgres_answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    await conn.close()
    return True


@contextlib.asynccontextmanager
async def throwaway_database(server_url: str, name: str, *,
                             keep: bool = False) -> AsyncIterator[str]:
    """A fresh, empty database ``name`` (replacing any leftover), dropped on exit unless
    ``keep``; yields its URL. For tests and benchmarks."""
    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(server_url, name)
    finally:
        if not keep:
            await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def postgres_ping(pool: asyncpg.Pool, *, within: float = 1.0) -> str | None:
    """None when PostgreSQL answers ``SELECT 1`` in time, else why not (for /ready)."""
    try:
        async with asyncio.timeout(within):
            await pool.fetchval("SELECT 1")
    except TimeoutError:
        return f"no answer within {within:g}s"
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None
