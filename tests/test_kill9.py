"""``kill -9`` of ``switchboard serve`` under traffic, then a restart: every call row is final
or its call is still live on the PBX (the fake Asterisk). A real subprocess on uvloop, real
PostgreSQL and Redis, the fake Asterisk over real ARI sockets; takes ~10 s."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import asyncpg

from connectors.fakes.ari_server import FakeAsterisk
from connectors.simulator import Simulator

SWITCHBOARD = str(Path(sys.executable).with_name("switchboard"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(port: int, database_url: str, redis_url: str, fake: FakeAsterisk,
           data_dir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(
        SWITCHBOARD_HTTP_PORT=str(port), SWITCHBOARD_DATABASE_URL=database_url,
        SWITCHBOARD_REDIS_URL=redis_url, SWITCHBOARD_DATA_DIR=str(data_dir),
        SWITCHBOARD_ARI_URL=fake.url, SWITCHBOARD_ARI_USERNAME="ari",
        SWITCHBOARD_ARI_PASSWORD="ari-secret", SWITCHBOARD_ARI_APP="switchboard",
        SWITCHBOARD_SIMULATOR="off", SWITCHBOARD_ADMIN_PASSWORD="admin-kill9-password",
        SWITCHBOARD_JWT_SECRET="kill9-secret-" + "x" * 32, SWITCHBOARD_LOG_LEVEL="WARNING",
    )
    return subprocess.Popen([SWITCHBOARD, "serve"], env=env, cwd=data_dir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _ready(port: int, proc: subprocess.Popen[bytes], within: float = 30.0) -> None:
    """Until /ready answers 200 (PostgreSQL, Redis and the ARI stream all up)."""
    deadline = asyncio.get_running_loop().time() + within
    async with aiohttp.ClientSession() as http:
        while True:
            assert proc.poll() is None, "switchboard serve exited"
            assert asyncio.get_running_loop().time() < deadline, "never ready"
            try:
                async with http.get(f"http://127.0.0.1:{port}/ready") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


async def _phantoms(conn: asyncpg.Connection, fake: FakeAsterisk) -> list[str]:
    """Open call rows none of whose channels is on the PBX."""
    rows = await conn.fetch("""SELECT id::text, channel_id, linked_channel_ids FROM calls
                                WHERE status IN ('incoming', 'answered')""")
    live = set(fake.channels)
    return [r["id"] for r in rows
            if r["channel_id"] not in live and not live.intersection(r["linked_channel_ids"])]


async def test_kill_9_under_traffic_then_restart_leaves_no_phantom_rows(
        database_url: str, redis_url: str, tmp_path: Path) -> None:
    port = _free_port()
    conn = await asyncpg.connect(database_url)
    async with FakeAsterisk(username="ari", password="ari-secret", app="switchboard") as fake:
        sim = Simulator(fake, rate_per_min=900, speed=20, seed=9, presence_per_hour=0,
                        ring_time=(1, 4), talk_time=(10, 60), patience=(5, 30))
        traffic = asyncio.create_task(sim.run())
        proc = _serve(port, database_url, redis_url, fake, tmp_path)
        try:
            await _ready(port, proc)
            for _ in range(200):  # until the service has recorded open calls
                if await conn.fetchval("SELECT count(*) FROM calls WHERE status IN "
                                       "('incoming', 'answered')") >= 5:
                    break
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            await asyncio.sleep(1.5)  # calls end while nobody listens
            assert await _phantoms(conn, fake), "the kill left no open row to reconcile"
            traffic.cancel()  # calls still up stay live on the PBX
            await asyncio.gather(traffic, return_exceptions=True)

            proc = _serve(port, database_url, redis_url, fake, tmp_path)
            await _ready(port, proc)
            phantoms = await _phantoms(conn, fake)
            for _ in range(100):
                if not phantoms:
                    break
                await asyncio.sleep(0.1)
                phantoms = await _phantoms(conn, fake)
            assert phantoms == []
            assert await conn.fetchval("SELECT count(*) FROM calls WHERE reconciled") > 0
        finally:
            traffic.cancel()
            await asyncio.gather(traffic, return_exceptions=True)
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            await conn.close()
