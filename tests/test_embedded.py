"""The embedded servers really start, serve, keep data (PostgreSQL) and stop.

Always embedded, whatever local servers exist. One PostgreSQL cluster per module: only the first
start pays for initdb.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import signal
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator

import asyncpg
import psutil
import pytest
import redis.asyncio as aredis

from devservers.embedded import embedded_postgres, embedded_redis

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data_dir() -> Iterator[pathlib.Path]:
    # Not under pytest's basetemp: as root, embedded-postgres widens permissions of all parents.
    path = pathlib.Path(tempfile.mkdtemp(prefix="switchboard-test-embedded-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _alive(proc: psutil.Process) -> bool:
    # An exited postmaster is reparented to PID 1, which may reap it late: a zombie is gone.
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


async def _assert_gone(procs: list[psutil.Process]) -> None:
    for _ in range(100):  # up to 5 s
        if not any(_alive(p) for p in procs):
            break
        await asyncio.sleep(0.05)
    assert [p.pid for p in procs if _alive(p)] == []


def _postgres_processes(pgdata: pathlib.Path) -> list[psutil.Process]:
    """The postmaster of ``pgdata`` and all its children (checkpointer, walwriter, …)."""
    pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    postmaster = psutil.Process(pid)
    assert str(pgdata) in postmaster.cmdline()
    return [postmaster, *postmaster.children(recursive=True)]


def _servers_on(pgdata: pathlib.Path) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if str(pgdata) in (proc.info["cmdline"] or []) and _alive(proc):
            found.append(proc.info["pid"])
    return found


def _listeners(port: int) -> set[int]:
    """Pids listening on TCP ``port``. Checking "the port refuses connections" instead would be
    racy: once freed, the port may be handed to any other process on this machine."""
    return {
        c.pid
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
    }


async def _spawn_python(code: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    """Run ``code`` in a child interpreter; return it and the first line it prints, split."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line, "child exited before printing"
    return proc, line.decode().split()


# --------------------------------------------------------------------------- PostgreSQL


async def test_postgres_serves_stops_and_keeps_data_between_runs(data_dir: pathlib.Path) -> None:
    pgdata = data_dir / "postgres"
    marker = uuid.uuid4().hex

    async with embedded_postgres(data_dir) as url:
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT 1") == 1
            assert (await conn.fetchval("SHOW server_version")).startswith("18.")
            await conn.execute("CREATE TABLE IF NOT EXISTS marker (value text)")
            await conn.execute("INSERT INTO marker VALUES ($1)", marker)
        finally:
            await conn.close()
        procs = _postgres_processes(pgdata)
        assert len(procs) > 1

    await _assert_gone(procs)
    assert not (pgdata / "postmaster.pid").exists()
    with pytest.raises(OSError):
        await asyncpg.connect(url, timeout=5)

    started = time.monotonic()
    async with embedded_postgres(data_dir) as url2:
        second_start = time.monotonic() - started
        conn = await asyncpg.connect(url2)
        try:
            assert await conn.fetchval("SELECT count(*) FROM marker WHERE value = $1", marker) == 1
        finally:
            await conn.close()
        procs = _postgres_processes(pgdata)
    await _assert_gone(procs)
    assert second_start < 10  # no initdb: ~0.2 s here


async def test_postgres_stops_when_body_raises(data_dir: pathlib.Path) -> None:
    procs: list[psutil.Process] = []
    with pytest.raises(RuntimeError, match="boom"):
        async with embedded_postgres(data_dir):
            procs = _postgres_processes(data_dir / "postgres")
            raise RuntimeError("boom")
    assert procs
    await _assert_gone(procs)


async def test_postgres_stops_when_cancelled_in_body(data_dir: pathlib.Path) -> None:
    ready = asyncio.Event()
    procs: list[psutil.Process] = []

    async def body() -> None:
        async with embedded_postgres(data_dir):
            procs.extend(_postgres_processes(data_dir / "postgres"))
            ready.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(body())
    await asyncio.wait_for(ready.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _assert_gone(procs)


async def test_postgres_stops_when_cancelled_while_starting(data_dir: pathlib.Path) -> None:
    async def body() -> None:
        async with embedded_postgres(data_dir):
            await asyncio.sleep(3600)

    task = asyncio.create_task(body())
    await asyncio.sleep(0.02)  # the start runs in a thread that cannot be interrupted
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    assert _servers_on(data_dir / "postgres") == []


async def test_postgres_left_running_by_killed_process_is_adopted_and_stopped(
    data_dir: pathlib.Path,
) -> None:
    pgdata = data_dir / "postgres"
    child, (pid,) = await _spawn_python(
        "import asyncio, pathlib, sys\n"
        "from devservers.embedded import embedded_postgres\n"
        "async def main():\n"
        f"    async with embedded_postgres(pathlib.Path({str(data_dir)!r})):\n"
        f"        print(open({str(pgdata / 'postmaster.pid')!r}).readline().strip(), flush=True)\n"
        "        await asyncio.sleep(3600)\n"
        "asyncio.run(main())\n"
    )
    child.kill()  # SIGKILL: no cleanup runs; pg_ctl detached the postmaster, so it survives
    await child.wait()
    postmaster = psutil.Process(int(pid))
    assert _alive(postmaster)

    async with embedded_postgres(data_dir) as url:
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
        assert _postgres_processes(pgdata)[0].pid == postmaster.pid  # adopted, not restarted
    await _assert_gone([postmaster])


# --------------------------------------------------------------------------- Redis


async def test_redis_serves_and_stops(data_dir: pathlib.Path) -> None:
    async with embedded_redis(data_dir) as url:
        parts = urllib.parse.urlsplit(url)
        assert (parts.scheme, parts.hostname, parts.path) == ("redis", "127.0.0.1", "/0")
        client = aredis.Redis.from_url(url)
        try:
            assert await client.ping() is True
            await client.set("key", "value")
            assert await client.get("key") == b"value"
            info = await client.info("server")
        finally:
            await client.aclose()
        server = psutil.Process(info["process_id"])
        assert "valkey-server" in server.cmdline()[0]
        assert parts.port is not None and _listeners(parts.port) == {server.pid}

    await _assert_gone([server])
    assert server.pid not in _listeners(parts.port)


async def test_redis_stops_when_body_raises(data_dir: pathlib.Path) -> None:
    seen: list[tuple[psutil.Process, int]] = []
    with pytest.raises(RuntimeError, match="boom"):
        async with embedded_redis(data_dir) as url:
            port = urllib.parse.urlsplit(url).port
            assert port is not None
            (pid,) = _listeners(port)
            seen.append((psutil.Process(pid), port))
            raise RuntimeError("boom")
    [(server, port)] = seen
    await _assert_gone([server])
    assert server.pid not in _listeners(port)


async def test_redis_stops_when_cancelled(data_dir: pathlib.Path) -> None:
    ready = asyncio.Event()
    servers: list[psutil.Process] = []

    async def body() -> None:
        async with embedded_redis(data_dir) as url:
            port = urllib.parse.urlsplit(url).port
            assert port is not None
            servers.extend(psutil.Process(pid) for pid in _listeners(port))
            ready.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(body())
    await asyncio.wait_for(ready.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(servers) == 1
    await _assert_gone(servers)


async def test_redis_dies_with_its_parent(data_dir: pathlib.Path) -> None:
    child, (pid, port) = await _spawn_python(
        "import asyncio, os, pathlib, psutil\n"
        "from devservers.embedded import embedded_redis\n"
        "async def main():\n"
        f"    async with embedded_redis(pathlib.Path({str(data_dir)!r})) as url:\n"
        "        kid, = psutil.Process().children()\n"
        "        print(kid.pid, url.rsplit(':', 1)[1].split('/')[0], flush=True)\n"
        "        await asyncio.sleep(3600)\n"
        "asyncio.run(main())\n"
    )
    server = psutil.Process(int(pid))
    assert _alive(server) and _listeners(int(port)) == {server.pid}
    os.kill(child.pid, signal.SIGKILL)  # no cleanup code runs: only PR_SET_PDEATHSIG helps
    await child.wait()
    await _assert_gone([server])
    assert server.pid not in _listeners(int(port))
