"""No phantom rows: after a start or a resync, calls that are not final in PostgreSQL and not
live on the PBX are closed by the rules of DOMAIN.md, flagged ``reconciled``."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest_asyncio

from api.config import Settings
from api.state import SERVICES
from connectors.fakes.ari_server import FakeAsterisk, ari_timestamp, channel
from engine.model import Call, CallStatus, Direction, call_id_for
from storage.db import migrate
from storage.records import PostgresRecordSink
from tests.app_fixtures import _client

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest_asyncio.fixture(loop_scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(database_url, min_size=1, max_size=3) as pool:
        async with pool.acquire() as conn:
            await migrate(conn)
        yield pool


def _call(tag: str, **fields: Any) -> Call:
    channel_id = f"rec-{tag}-{uuid.uuid4().hex[:8]}"
    return Call(id=call_id_for(channel_id), channel_id=channel_id,
                caller_number="+79003330000", start_time=T0, **fields)


async def _rows(pool: asyncpg.Pool, *calls: Call) -> dict[str, dict[str, Any]]:
    rows = await pool.fetch("SELECT * FROM calls WHERE id = ANY($1::uuid[])",
                            [c.id for c in calls])
    return {str(r["id"]): dict(r) for r in rows}


async def _until(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


async def test_open_rows_gone_from_the_pbx_are_closed_by_the_rules(pool: asyncpg.Pool) -> None:
    answered_at = T0 + timedelta(seconds=30)
    in_queue = _call("queue", queue_name="support")
    in_ivr = _call("ivr")
    answered = _call("answered", status=CallStatus.ANSWERED, answer_time=answered_at,
                     queue_name="support")
    outbound = _call("out", direction=Direction.OUTBOUND)
    live = _call("live")
    done = _call("done", status=CallStatus.MISSED, end_time=T0 + timedelta(seconds=5),
                 missed_reason="abandoned_in_ivr")
    ending = _call("ending")  # open in PostgreSQL, its final state still queued
    sink = PostgresRecordSink(pool)
    for call in (in_queue, in_ivr, answered, outbound, live, done, ending):
        await sink.write(call)
    await sink.flush()

    ended = dataclasses.replace(ending, status=CallStatus.MISSED, missed_reason="busy",
                                end_time=T0 + timedelta(seconds=9))
    await sink.write(ended)
    sink.reconcile(frozenset({live.id}))
    await sink.flush()

    rows = await _rows(pool, in_queue, in_ivr, answered, outbound, live, done, ending)
    assert (rows[in_queue.id]["status"], rows[in_queue.id]["missed_reason"]) == (
        "missed", "abandoned_in_queue")
    assert (rows[in_ivr.id]["status"], rows[in_ivr.id]["missed_reason"]) == (
        "missed", "abandoned_in_ivr")
    assert (rows[outbound.id]["status"], rows[outbound.id]["missed_reason"]) == (
        "missed", "no_answer")
    for call in (in_queue, in_ivr, outbound):  # the last moment known alive: the start
        assert rows[call.id]["end_time"] == T0 and rows[call.id]["wait_seconds"] == 0
        assert rows[call.id]["reconciled"] is True
    row = rows[answered.id]
    assert (row["status"], row["missed_reason"], row["reconciled"]) == ("completed", None, True)
    assert row["end_time"] == answered_at
    assert (row["wait_seconds"], row["duration"]) == (30, 0)
    assert (rows[live.id]["status"], rows[live.id]["reconciled"]) == ("incoming", False)
    assert (rows[done.id]["end_time"], rows[done.id]["reconciled"]) == (
        T0 + timedelta(seconds=5), False)
    # the call's own final state, not a guess
    assert (rows[ending.id]["missed_reason"], rows[ending.id]["reconciled"]) == ("busy", False)
    assert sink.stats["reconciled"] >= 4


async def test_rows_left_open_by_a_previous_run_are_closed_at_start(
        pool: asyncpg.Pool, app_settings: Settings, fake_asterisk: FakeAsterisk) -> None:
    """Before: they stayed incoming/answered forever (20 open rows after five restarts while
    the live view said 0 active)."""
    # still on the PBX: a customer channel in the dialplan
    still = f"rec-still-{uuid.uuid4().hex[:8]}"
    fake_asterisk.set_channel(channel(still, f"PJSIP/trunk-{still}", "Up",
                                      caller_number="+79003331111", exten="200",
                                      context="from-trunk",
                                      creationtime=ari_timestamp(T0)))
    still_call = Call(id=call_id_for(still), channel_id=still, caller_number="+79003331111",
                      start_time=T0, status=CallStatus.ANSWERED, answer_time=T0)
    gone_incoming = _call("gone-in", queue_name="support")
    gone_answered = _call("gone-ans", status=CallStatus.ANSWERED,
                          answer_time=T0 + timedelta(seconds=12))
    previous_run = PostgresRecordSink(pool)
    for call in (still_call, gone_incoming, gone_answered):
        await previous_run.write(call)
    await previous_run.flush()  # ... and then it was killed

    client = await _client(app_settings, ari_url=fake_asterisk.url, ari_username="ari",
                           ari_password="ari-secret", ari_app="switchboard")
    try:
        services = client.app[SERVICES]
        await services.pbx.wait_connected()

        async def closed() -> bool:
            rows = await _rows(pool, gone_incoming, gone_answered)
            return all(r["reconciled"] for r in rows.values())

        await _until(closed)
        await services.runner.drain()
        await services.records.flush()
        rows = await _rows(pool, still_call, gone_incoming, gone_answered)
        assert (rows[gone_incoming.id]["status"], rows[gone_incoming.id]["end_time"]) == (
            "missed", T0)
        assert (rows[gone_answered.id]["status"], rows[gone_answered.id]["end_time"]) == (
            "completed", T0 + timedelta(seconds=12))
        # live on the PBX: left open, not reconciled
        assert still_call.id in {c.id for c in services.engine.active_calls()}
        assert rows[still_call.id]["status"] in ("incoming", "answered")
        assert rows[still_call.id]["reconciled"] is False

        # a resync after a reconnect: the call that ended meanwhile is closed too
        fake_asterisk.remove_channel(still)
        stream = services.pbx.sources[0].stream
        connects = stream.stats["connects"]
        await fake_asterisk.drop_connections(abrupt=True)

        async def final() -> bool:
            row = (await _rows(pool, still_call))[still_call.id]
            return stream.stats["connects"] > connects and row["status"] in (
                "completed", "missed")

        await _until(final)
    finally:
        await client.close()
