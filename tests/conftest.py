"""Shared fixtures. Tests talk to REAL PostgreSQL and Redis servers, never mocks.

Which servers (each chosen once per session):

* PostgreSQL: ``$TEST_DATABASE_URL``; else ``postgres@127.0.0.1:5432`` if it accepts a connection;
  else an embedded PostgreSQL in a temporary directory. Every session works in its own throwaway
  database ``switchboard_test_<random>``, migrated once and dropped ``WITH (FORCE)`` at the end.
  Every test that uses ``database_url`` (the app fixtures do) starts from clean application
  tables: what the migrations left, nothing a previous test wrote. So tests do not depend on
  their order.
* Redis: ``$TEST_REDIS_URL``; else ``127.0.0.1:6379`` database 15 if it answers PING; else an
  embedded Valkey. The chosen database is flushed at session start and before every test that
  uses the ``redis`` fixture.

``SWITCHBOARD_TEST_EMBEDDED=1`` skips the 127.0.0.1 probes (explicit ``TEST_*_URL`` still win):
proves that a machine without any services runs the suite.
"""

from __future__ import annotations

import contextlib
import graphlib
import logging
import os
import pathlib
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import pytest_asyncio
import redis.asyncio as aredis

from devservers.embedded import embedded_postgres, embedded_redis
from storage.db import migrate, postgres_answers, throwaway_database

# The whole app (API, engine, WebSocket) over the servers below; a hang watchdog.
pytest_plugins = ["tests.app_fixtures", "tests.stats_fixtures", "tests.watchdog"]

log = logging.getLogger("switchboard.tests")

LOCAL_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/15"


def _force_embedded() -> bool:
    return os.environ.get("SWITCHBOARD_TEST_EMBEDDED", "") not in ("", "0", "false", "no")


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


async def _postgres_answers(url: str) -> bool:
    return _tcp_open("127.0.0.1", 5432) and await postgres_answers(url)


async def _redis_answers(url: str) -> bool:
    if not _tcp_open("127.0.0.1", 6379):
        return False
    client = aredis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(await client.ping())
    except (OSError, aredis.RedisError):
        return False
    finally:
        await client.aclose()


@contextlib.contextmanager
def _scratch_dir(prefix: str) -> Iterator[pathlib.Path]:
    # Outside pytest's basetemp on purpose: embedded-postgres (as root) widens the permissions of
    # every parent of its data dir.
    path = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- PostgreSQL


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pg_admin_url() -> AsyncIterator[str]:
    """A URL to a PostgreSQL server where we may CREATE/DROP DATABASE."""
    if url := os.environ.get("TEST_DATABASE_URL"):
        log.info("PostgreSQL: TEST_DATABASE_URL")
        yield url
    elif not _force_embedded() and await _postgres_answers(LOCAL_PG_URL):
        log.info("PostgreSQL: local server %s", LOCAL_PG_URL)
        yield LOCAL_PG_URL
    else:
        with _scratch_dir("switchboard-test-pg-") as data_dir:
            async with embedded_postgres(data_dir) as url:
                log.info("PostgreSQL: embedded %s", url)
                yield url


@dataclass(frozen=True)
class CleanSlate:
    """How to bring the session database back to "just migrated" in one short transaction."""

    tables: list[str]                    # children before parents, so DELETE never trips an FK
    seeded: dict[str, list[asyncpg.Record]]  # rows the migrations insert (system_settings)

    @classmethod
    async def capture(cls, conn: asyncpg.Connection) -> CleanSlate:
        names = [r["relname"] for r in await conn.fetch(
            """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relispartition = false
                 AND c.relname <> 'schema_migrations'""")]
        parents: dict[str, set[str]] = {name: set() for name in names}
        for r in await conn.fetch(
                """SELECT c.conrelid::regclass::text AS child, c.confrelid::regclass::text AS parent
                   FROM pg_constraint c WHERE c.contype = 'f'"""):
            if r["child"] in parents and r["parent"] != r["child"]:
                parents[r["child"]].add(r["parent"])
        order = list(graphlib.TopologicalSorter(parents).static_order())  # parents first
        seeded = {name: rows for name in names
                  if (rows := await conn.fetch(f'SELECT * FROM "{name}"'))}
        return cls(tables=order[::-1], seeded=seeded)

    async def restore(self, conn: asyncpg.Connection) -> None:
        # DELETE, not TRUNCATE: on these few-row tables it takes ~3 ms where TRUNCATE takes
        # ~100 ms and cloning a template database ~400 ms (measured on the dev machine).
        async with conn.transaction():
            for name in self.tables:
                await conn.execute(f'DELETE FROM "{name}"')
            for name, rows in self.seeded.items():
                await conn.copy_records_to_table(name, records=rows, columns=list(rows[0].keys()))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def _session_database(pg_admin_url: str) -> AsyncIterator[tuple[str, CleanSlate]]:
    """This session's throwaway database, migrated once, and how to clean it."""
    async with throwaway_database(pg_admin_url, f"switchboard_test_{uuid.uuid4().hex[:12]}") as url:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
            slate = await CleanSlate.capture(conn)
        finally:
            await conn.close()
        yield url, slate


@pytest_asyncio.fixture(loop_scope="session")
async def database_url(_session_database: tuple[str, CleanSlate]) -> str:
    """The session's migrated database with clean application tables (as the migrations left
    them). Anything that starts the app depends on this, so the cleaning happens before the app
    creates its admin."""
    url, slate = _session_database
    conn = await asyncpg.connect(url)
    try:
        await slate.restore(conn)
    finally:
        await conn.close()
    return url


# --------------------------------------------------------------------------- Redis


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def redis_url() -> AsyncIterator[str]:
    """A URL to a Redis database this session may flush at will."""
    async with contextlib.AsyncExitStack() as stack:
        if url := os.environ.get("TEST_REDIS_URL"):
            log.info("Redis: TEST_REDIS_URL")
        elif not _force_embedded() and await _redis_answers(LOCAL_REDIS_URL):
            url = LOCAL_REDIS_URL
            log.info("Redis: local server %s", url)
        else:
            data_dir = stack.enter_context(_scratch_dir("switchboard-test-redis-"))
            url = await stack.enter_async_context(embedded_redis(data_dir))
            log.info("Redis: embedded %s", url)
        client = aredis.Redis.from_url(url)
        try:
            await client.flushdb()
        finally:
            await client.aclose()
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def redis(redis_url: str) -> AsyncIterator[aredis.Redis]:
    """A client on the test Redis database, flushed before the test."""
    client = aredis.Redis.from_url(redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()
