"""A row PostgreSQL refuses blocks no other record: it is isolated, parked and listed for
admins; a stop writes what is queued, bounded in time. Real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import asyncpg
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from api.state import SERVICES
from engine.model import Call, CallStatus
from storage.db import migrate
from storage.records import PostgresRecordSink
from tests.helpers import login

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def _calls(prefix: str, count: int) -> list[Call]:
    calls = []
    for n in range(count):
        channel = f"{prefix}-{n}"
        calls.append(Call(id=str(uuid.uuid5(uuid.NAMESPACE_URL, channel)), channel_id=channel,
                          caller_number=f"+7900222{n:04d}", caller_name=f"Caller {n}",
                          start_time=T0, status=CallStatus.INCOMING))
    return calls


async def _until(check: Callable[[], object], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


@pytest_asyncio.fixture(loop_scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(database_url, min_size=1, max_size=3) as pool:
        async with pool.acquire() as conn:
            await migrate(conn)
        yield pool


async def test_a_nul_in_one_call_blocks_none_of_the_other_999(pool: asyncpg.Pool) -> None:
    """Before: PostgreSQL refused the batch and the writer retried it forever; no record
    was written any more."""
    prefix = f"nul-{uuid.uuid4().hex[:8]}"
    calls = _calls(prefix, 1000)
    nul = calls[500] = dataclasses.replace(calls[500], caller_name="Evil\x00Caller")
    big = calls[501] = dataclasses.replace(calls[501], hangup_cause=2**40)  # past int32
    sink = PostgresRecordSink(pool, interval=0.01, max_backoff=0.2)
    flusher = asyncio.create_task(sink.run())
    try:
        for call in calls:
            await sink.write(call)
        await _until(lambda: sink.pending == 0)
        await sink.flush()  # waits for the flush in flight
    finally:
        flusher.cancel()
        await asyncio.gather(flusher, return_exceptions=True)
    written = await pool.fetchval("SELECT count(*) FROM calls WHERE channel_id LIKE $1",
                                  f"{prefix}-%")
    assert written == 998
    parked = {r["record_id"]: r for r in await pool.fetch(
        "SELECT * FROM parked_records WHERE record_id = ANY($1)", [nul.id, big.id])}
    assert set(parked) == {nul.id, big.id}
    assert "0x00" in parked[nul.id]["error"]  # PostgreSQL: invalid byte sequence for UTF8
    assert "\\u0000" in parked[nul.id]["payload"]  # the record kept, its NUL escaped
    assert parked[nul.id]["kind"] == "call"
    assert "int32" in parked[big.id]["error"]
    assert sink.stats["parked"] == 2 and sink.stats["calls_written"] == 998
    assert sink.stats["failed_flushes"] == 0


async def test_an_outage_is_still_retried_not_parked(pool: asyncpg.Pool,
                                                     database_url: str) -> None:
    """A missing table is not a bad row: the whole batch waits and lands later."""
    prefix = f"away-{uuid.uuid4().hex[:8]}"
    calls = _calls(prefix, 3)
    sink = PostgresRecordSink(pool, interval=0.01, max_backoff=0.1)
    admin = await asyncpg.connect(database_url)
    flusher = asyncio.create_task(sink.run())
    try:
        await admin.execute("ALTER TABLE calls RENAME TO calls_away")
        try:
            for call in calls:
                await sink.write(call)
            await _until(lambda: sink.stats["failed_flushes"] >= 2)
            assert sink.pending == 3 and sink.stats["parked"] == 0 and not sink.healthy
        finally:
            await admin.execute("ALTER TABLE calls_away RENAME TO calls")
        await _until(lambda: sink.pending == 0 and sink.healthy)
        await sink.flush()
    finally:
        flusher.cancel()
        await asyncio.gather(flusher, return_exceptions=True)
        await admin.close()
    assert await pool.fetchval("SELECT count(*) FROM calls WHERE channel_id LIKE $1",
                               f"{prefix}-%") == 3


async def test_stop_writes_what_is_queued(pool: asyncpg.Pool) -> None:
    prefix = f"stop-{uuid.uuid4().hex[:8]}"
    sink = PostgresRecordSink(pool)  # no flusher running: everything is still queued
    for call in _calls(prefix, 50):
        await sink.write(call)
    assert await sink.drain(within=5.0)
    assert await pool.fetchval("SELECT count(*) FROM calls WHERE channel_id LIKE $1",
                               f"{prefix}-%") == 50


async def test_stop_is_bounded_and_says_what_it_could_not_write(
        caplog: pytest.LogCaptureFixture) -> None:
    # a pool on a port nobody listens on: every flush fails
    dead = await asyncpg.create_pool("postgresql://postgres@127.0.0.1:9/none", min_size=0)
    try:
        sink = PostgresRecordSink(dead)
        call = _calls(f"lost-{uuid.uuid4().hex[:8]}", 1)[0]
        await sink.write(call)
        with caplog.at_level(logging.ERROR, logger="switchboard.records"):
            assert not await sink.drain(within=0.5)
        assert sink.pending == 1
        assert any(call.id in r.getMessage() and "not written" in r.getMessage()
                   for r in caplog.records)
    finally:
        await dead.close()


async def test_admins_list_parked_records(client: TestClient) -> None:
    services = client.app[SERVICES]
    call = dataclasses.replace(_calls(f"park-{uuid.uuid4().hex[:8]}", 1)[0],
                               caller_name="\x00\x00")
    await services.records.write(call)
    await _until(lambda: services.records.stats["parked"] >= 1)
    token = await login(client)
    resp = await client.get("/api/admin/parked-records?limit=1000",
                            headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200
    body = await resp.json()
    mine = [r for r in body["items"] if r["record_id"] == call.id]
    assert len(mine) == 1 and mine[0]["kind"] == "call" and "0x00" in mine[0]["error"]
    assert body["total"] >= 1
    bad = await client.get("/api/admin/parked-records?skip=-1",
                           headers={"Authorization": f"Bearer {token}"})
    assert bad.status == 422
