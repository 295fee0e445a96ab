"""Redis cut off (through a proxy this test starts; the shared server is never touched): the
live-state writer outlives it under uvloop, and the live state is right again afterwards."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

import pytest
import uvloop
from redis.asyncio import Redis

from engine.model import Call, CallStatus, Operator
from service.supervise import Supervisor
from storage import keys
from storage.redis_state import RedisStateStore
from storage.serialize import call_from_json
from storage.writebehind import WriteBehind
from tests.tcp_proxy import TcpProxy

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def _call(n: int) -> Call:
    channel = f"cut-{uuid.uuid4().hex[:8]}-{n}"
    return Call(id=str(uuid.uuid5(uuid.NAMESPACE_URL, channel)), channel_id=channel,
                caller_number=f"+7900111{n:04d}", start_time=T0)


async def _until(check: Callable[[], object], within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await _value(check):
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


async def _value(check: Callable[[], object]) -> object:
    result = check()
    return await result if asyncio.iscoroutine(result) else result


async def _live_in_redis(direct: Redis) -> dict[str, Call]:
    ids = [m.decode() for m in await direct.smembers(keys.ACTIVE_CALLS)]
    values = await direct.mget([keys.active_call(i) for i in ids]) if ids else []
    return {i: call_from_json(v) for i, v in zip(ids, values, strict=True) if v is not None}


async def _cut_scenario(redis_url: str, mode: Literal["reset", "silent"]) -> Counter[str]:
    """Runs on a uvloop loop (as ``switchboard serve`` does)."""
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    url = urllib.parse.urlsplit(redis_url)
    direct = Redis.from_url(redis_url)
    async with TcpProxy(url.hostname or "127.0.0.1", url.port or 6379) as proxy:
        # the app's client settings (api/app.py)
        client = Redis.from_url(url._replace(netloc=f"127.0.0.1:{proxy.port}").geturl(),
                                retry_on_timeout=True, health_check_interval=30)
        store = RedisStateStore(client, max_backoff=0.3, flush_timeout=0.5)
        truth: dict[str, Call] = {}  # what the engine knows (Runner.snapshot)
        operator = Operator(id="op-cut", extension="1009")
        store.source = lambda: (list(truth.values()), [operator])
        tasks = Supervisor()
        tasks.start("live-state", store.run)
        try:
            a, b = _call(1), _call(2)
            for call in (a, b):
                truth[call.id] = call
                await store.save_call(call)
            await _until(lambda: store.pending == 0 and store.stats["flushes"] >= 1)
            await store.flush()
            assert set(await _live_in_redis(direct)) == {a.id, b.id}

            proxy.cut(mode)
            del truth[a.id]
            await store.remove_call(a.id)  # ended meanwhile
            c = _call(3)
            truth[c.id] = c
            await store.save_call(c)  # started meanwhile
            b2 = dataclasses.replace(b, status=CallStatus.ANSWERED, answer_time=T0)
            truth[b.id] = b2
            await store.save_call(b2)
            await _until(lambda: store.stats["failed_flushes"] >= 2)
            assert not store.healthy
            # and what Redis held is gone meanwhile (a TTL ran out, or it came back empty)
            await direct.delete(keys.active_call(b.id))

            proxy.restore()
            await _until(lambda: store.healthy and store.pending == 0)
            live = await _live_in_redis(direct)
            assert set(live) == {b.id, c.id}
            assert live[b.id].status is CallStatus.ANSWERED
            assert await direct.hkeys(keys.OPERATORS) == [b"op-cut"]
            assert store.stats["whole_rewrites"] >= 1
            return tasks.stats + store.stats
        finally:
            await tasks.stop()
            await client.aclose()
            await direct.aclose()


@pytest.mark.parametrize("mode", ["reset", "silent"])
async def test_live_state_is_right_again_after_a_redis_cut_under_uvloop(
        redis: Redis, redis_url: str, mode: Literal["reset", "silent"]) -> None:
    """The writer runs on a uvloop loop in a thread, as under ``switchboard serve``.
    Before: ``reset`` (Redis gone: its connections reset) ended the writer on uvloop's
    ``RuntimeError: unable to perform operation on <TCPTransport closed=True ...>; the handler is
    closed`` (redis-py sees no end-of-stream after an RST and writes to the closed transport;
    the error is outside the writer's retry list), without a word; ``silent`` (Redis vanished
    from the network, no RST) left it waiting forever on the dead connection. Either way the
    calls that ended stayed "active" in Redis."""
    stats = await asyncio.to_thread(uvloop.run, _cut_scenario(redis_url, mode))
    assert stats["live-state:failed"] == 0  # survived by itself, no restart needed
    if mode == "reset":
        assert stats["error:RuntimeError"] >= 1  # the original failure did happen


class _FailsOnce(WriteBehind):
    """A writer whose first flush meets an error outside its retry list."""

    def __init__(self, error: Exception) -> None:
        super().__init__(interval=0.001, max_backoff=0.01, log=logging.getLogger("test"))
        self.error: Exception | None = error
        self.written = 0

    async def flush(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        self.written += len(self._calls)
        self._calls.clear()
        self._wake.clear()


async def test_a_writer_outlives_an_error_outside_its_retry_list(
        caplog: pytest.LogCaptureFixture) -> None:
    """uvloop raises RuntimeError when writing to a transport that closed under it; that is
    outside the Redis writer's ``retry_on``. Before: ``run()`` ended on it, silently."""
    writer = _FailsOnce(RuntimeError("unable to perform operation on <TCPTransport closed=True"
                                     " reading=False>; the handler is closed"))
    task = asyncio.create_task(writer.run())
    try:
        writer._note_call("c1", None)
        await _until(lambda: writer.written == 1)
        assert not task.done()
        assert writer.stats["unexpected_errors"] == 1 and writer.healthy
        assert any(r.exc_info and "handler is closed" in str(r.exc_info[1])
                   for r in caplog.records)  # logged with its traceback
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_task_that_fails_or_ends_is_restarted_and_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    runs: list[str] = []

    async def flaky() -> None:
        runs.append("run")
        if len(runs) == 1:
            raise ValueError("boom")
        if len(runs) == 2:
            return  # ends although it should run forever
        await asyncio.Event().wait()

    tasks = Supervisor(initial_backoff=0.01)
    tasks.start("flaky", flaky)
    try:
        await _until(lambda: len(runs) == 3)
        assert tasks.stats["flaky:failed"] == 1 and tasks.stats["flaky:ended"] == 1
        assert tasks.stats["flaky:restarts"] == 2
        assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)
    finally:
        await tasks.stop()
