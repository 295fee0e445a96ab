"""A lost PostgreSQL or Redis delays writes; it loses nothing. Real servers, real failures."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import subprocess
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from devservers.embedded import _valkey_binary
from engine.model import Call, CallStatus
from storage import keys
from storage.db import migrate
from storage.records import PostgresRecordSink
from storage.redis_state import RedisStateStore

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def _call(n: int, status: CallStatus = CallStatus.INCOMING) -> Call:
    channel = f"outage-{uuid.uuid4().hex[:8]}-{n}"
    return Call(id=str(uuid.uuid5(uuid.NAMESPACE_URL, channel)), channel_id=channel,
                caller_number=f"+7900000{n:04d}", start_time=T0, status=status)


async def _until(check: Callable[[], object], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


async def test_call_records_survive_a_postgres_failure(database_url: str) -> None:
    admin = await asyncpg.connect(database_url)
    await migrate(admin)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    sink = PostgresRecordSink(pool, interval=0.01, max_backoff=0.2)
    flusher = asyncio.create_task(sink.run())
    try:
        first = _call(1)
        await sink.write(first)
        await _until(lambda: sink.pending == 0)
        await sink.flush()

        await admin.execute("ALTER TABLE calls RENAME TO calls_away")  # every write now fails
        later = [_call(2), _call(3)]
        for call in later:
            await sink.write(call)
        await sink.write(dataclasses.replace(first, status=CallStatus.MISSED,
                                             end_time=T0 + timedelta(seconds=60)))
        await _until(lambda: sink.stats["failed_flushes"] >= 2)
        assert sink.pending == 3  # kept, not dropped

        await admin.execute("ALTER TABLE calls_away RENAME TO calls")
        await _until(lambda: sink.pending == 0)
        await sink.flush()  # pending 0 = taken by the flusher; flush() waits until it landed
        rows = {r["id"]: r["status"] for r in await admin.fetch(
            "SELECT id::text, status FROM calls WHERE channel_id LIKE 'outage-%'")}
        assert rows[first.id] == "missed"
        assert all(rows[c.id] == "incoming" for c in later)
    finally:
        flusher.cancel()
        await asyncio.gather(flusher, return_exceptions=True)
        await pool.close()
        await admin.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_valkey(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(_valkey_binary()), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


async def test_live_state_survives_a_redis_restart(tmp_path: Path) -> None:
    port = _free_port()
    server = _start_valkey(port, tmp_path)
    client = Redis(port=port, socket_connect_timeout=0.5, socket_timeout=0.5)
    store = RedisStateStore(client, interval=0.005, max_backoff=0.2)
    flusher = asyncio.create_task(store.run())
    try:
        await _until(lambda: server.poll() is None and _accepts(port))
        first = _call(1)
        await store.save_call(first)
        await _until(lambda: store.pending == 0)
        await store.flush()

        server.terminate()
        server.wait(5)
        second = _call(2)
        await store.save_call(second)
        await store.remove_call(first.id)
        await _until(lambda: store.stats["failed_flushes"] >= 2)
        assert store.pending == 2

        server = _start_valkey(port, tmp_path)  # same address, empty memory
        await _until(lambda: store.pending == 0)
        await store.flush()
        assert [c.id for c in await store.active_calls()] == [second.id]
        assert not await client.exists(keys.active_call(first.id))
    finally:
        flusher.cancel()
        await asyncio.gather(flusher, return_exceptions=True)
        await client.aclose()
        server.terminate()
        server.wait(5)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
