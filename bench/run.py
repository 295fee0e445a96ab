"""Orchestration: infrastructure, the two phases (Switchboard, bare forwarder), the report."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bench.dashboards import Collector, connect_fleet
from bench.traffic import BenchAsterisk, build_schedule, calibrate, pump

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379"
ARI_USER, ARI_APP = "bench", "switchboard"
TARGET_P99_MS = 50.0
TARGET_RATIO = 1.5
CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Options:
    rate: float = 1000.0
    dashboards: int = 1000
    duration: float = 20.0
    calls_concurrency: int = 50
    forwarder_feed: str = "all"      # all: every frame; dashboard: only frames that make messages
    phases: tuple[str, ...] = ("switchboard", "forwarder")
    drain: float = 10.0              # max seconds to wait for deliveries after the last frame
    embedded: bool = False           # force embedded PostgreSQL/Redis
    profile: bool = False            # py-spy record the Switchboard process during its phase
    quick: bool = False


@dataclass
class PhaseResult:
    name: str
    frames_sent: int = 0
    send_seconds: float = 0.0
    dashboards: int = 0
    messages: int = 0                 # distinct messages (Switchboard) / frames forwarded
    deliveries: int = 0
    expected_deliveries: int = 0
    latency_count: int = 0
    unmatched: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    deliveries_per_s: float = 0.0
    server_cpu_s: float = 0.0
    server_cpu_pct: float = 0.0
    bench_cpu_s: float = 0.0
    bench_cpu_pct: float = 0.0
    wall_s: float = 0.0
    server_closes: dict[str, int] = field(default_factory=dict)
    types: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def log(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


# -- processes ---------------------------------------------------------------------------------


def _pdeathsig() -> Callable[[], None] | None:
    """Children get SIGTERM if the bench dies without cleaning up (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None

    def preexec() -> None:
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return preexec


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def child(args: list[str], env: dict[str, str], log_path: Path,
                stdout_pipe: bool = False) -> AsyncIterator[asyncio.subprocess.Process]:
    """A subprocess, stopped with SIGTERM (SIGKILL after 10 s) however the block ends."""
    with open(log_path, "wb") as logf:  # noqa: ASYNC230 (once per process start)
        proc = await asyncio.create_subprocess_exec(
            *args, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else logf, stderr=logf,
            preexec_fn=_pdeathsig(),
        )
        try:
            yield proc
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(asyncio.shield(proc.wait()), 10)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- databases ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def throwaway_database(workdir: Path, embedded: bool) -> AsyncIterator[str]:
    """A fresh ``switchboard_bench_<random>`` database, dropped (WITH FORCE) on exit."""
    from devservers.embedded import embedded_postgres
    from storage import db

    async with contextlib.AsyncExitStack() as stack:
        admin_url = LOCAL_PG
        if embedded or not await db.postgres_answers(LOCAL_PG):
            log("no PostgreSQL on 127.0.0.1:5432: starting an embedded one")
            admin_url = await stack.enter_async_context(embedded_postgres(workdir / "pg"))
        name = f"switchboard_bench_{secrets.token_hex(4)}"
        log(f"database {name}")
        async with db.throwaway_database(admin_url, name) as url:
            yield url
        log(f"dropped database {name}")


@contextlib.asynccontextmanager
async def throwaway_redis(workdir: Path, embedded: bool) -> AsyncIterator[str]:
    """An empty Redis database number of the local server (flushed on exit), else embedded."""
    from redis.asyncio import Redis

    from devservers.embedded import embedded_redis

    if not embedded:
        client = Redis.from_url(f"{LOCAL_REDIS}/0", socket_connect_timeout=2)
        try:
            keyspace = await client.info("keyspace")
        except Exception:
            keyspace = None
        finally:
            await client.aclose()
        if keyspace is not None:
            used = {int(k[2:]) for k in keyspace if k.startswith("db")}
            free = [n for n in range(1, 15) if n not in used]  # 0: default, 15: the tests'
            if free:
                db = secrets.choice(free)
                url = f"{LOCAL_REDIS}/{db}"
                log(f"redis {url}")
                try:
                    yield url
                finally:
                    client = Redis.from_url(url)
                    try:
                        await client.flushdb()
                    finally:
                        await client.aclose()
                return
    log("no usable local Redis: starting an embedded one")
    async with embedded_redis(workdir / "redis") as url:
        yield url


async def prepare_database(
    url: str, admin_password: str, operator_extensions: tuple[str, ...]
) -> list[Any]:
    """Migrate; create the admin and the operators the trace rings (Switchboard creates no
    admin on a database with users); return the operators as the engine will load them."""
    from api.auth import hash_password
    from storage.db import connect_with_retry, migrate
    from storage.users import Users

    pool = await connect_with_retry(url)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        users = Users(pool)
        await users.create(username="admin", email="admin@bench.local", name="Bench admin",
                           role="admin", password_hash=hash_password(admin_password))
        password = hash_password(secrets.token_urlsafe(12))
        for ext in operator_extensions:
            await users.create(username=f"operator{ext}", email=f"operator{ext}@bench.local",
                               name=f"Operator {ext}", role="operator", password_hash=password,
                               extension=ext)
        return await users.operators()
    finally:
        await pool.close()


# -- phases ------------------------------------------------------------------------------------


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def _drain(col: Collector, expected: int, limit: float) -> None:
    """Wait until ``expected`` deliveries arrived, or nothing arrived for 1 s, or ``limit``."""
    deadline = time.monotonic() + limit
    last, idle_since = col.deliveries, time.monotonic()
    while col.deliveries < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if col.deliveries != last:
            last, idle_since = col.deliveries, time.monotonic()
        elif time.monotonic() - idle_since > 1.0:
            break


async def measure(
    name: str, fake: BenchAsterisk, pid: int, url: str, hello: int, opts: Options,
    frames: list[dict[str, Any]], col: Collector, on_message: Callable[[float, str], None],
    expected_per_client: int, only: set[int] | None,
) -> PhaseResult:
    res = PhaseResult(name)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        log(f"{name}: connecting {opts.dashboards} dashboards")
        fleet = await connect_fleet(session, url, opts.dashboards, on_message, hello=hello)
        try:
            res.dashboards = fleet.ready
            await asyncio.sleep(0.5)
            log(f"{name}: {opts.rate:.0f} ARI frames/s for {opts.duration:g} s")
            # As the service does: keep long-lived objects out of full GC passes, whose pauses
            # would otherwise show up as dashboard latency measured by the bench itself.
            gc.collect()
            gc.freeze()
            gc.set_threshold(20_000, 20, 20)
            wall0, srv0, own0 = time.monotonic(), cpu_seconds(pid), self_cpu()
            sent, took = await pump(fake, frames, opts.rate, only,
                                    deadline=wall0 + opts.duration * 1.5 + 5)
            expected = expected_per_client * fleet.ready
            await _drain(col, expected, opts.drain)
            wall = time.monotonic() - wall0
            srv, own = cpu_seconds(pid) - srv0, self_cpu() - own0
        finally:
            await fleet.close()
    res.frames_sent, res.send_seconds, res.wall_s = sent, took, wall
    res.deliveries, res.expected_deliveries = col.deliveries, expected
    res.latency_count, res.unmatched = len(col.latencies), col.unmatched
    lat = sorted(col.latencies)
    if lat:
        res.p50_ms = _percentile(lat, 0.50) * 1000
        res.p99_ms = _percentile(lat, 0.99) * 1000
        res.max_ms = lat[-1] * 1000
    span = (col.last_arrival - wall0) if col.deliveries else 0.0
    res.deliveries_per_s = col.deliveries / span if span > 0 else 0.0
    res.server_cpu_s, res.bench_cpu_s = srv, own
    res.server_cpu_pct, res.bench_cpu_pct = 100 * srv / wall, 100 * own / wall
    res.server_closes = dict(fleet.closes)
    res.types = dict(col.types)
    if took > len(frames) / opts.rate * 1.05 + 0.2:
        res.notes.append(f"the fake fell behind: {sent} frames took {took:.1f} s")
    if res.bench_cpu_pct > 85:
        res.notes.append(f"the bench (clients) used {res.bench_cpu_pct:.0f}% of a core: "
                         "client-side queueing is part of these latencies")
    if fleet.closes:
        res.notes.append(f"server closed dashboards: {dict(fleet.closes)}")
    if expected and col.deliveries < expected:
        res.notes.append(f"{expected - col.deliveries} of {expected} expected deliveries "
                         "did not arrive")
    return res


async def switchboard_phase(
    opts: Options, frames: list[dict[str, Any]], triggers: dict[Any, int], expected: int,
    db_url: str, redis_url: str, admin_password: str, workdir: Path,
) -> PhaseResult:
    send_times = [0.0] * len(frames)
    col = Collector(send_times, triggers)
    password = secrets.token_urlsafe(12)
    async with BenchAsterisk(send_times, username=ARI_USER, password=password,
                             app=ARI_APP) as fake:
        port = free_port()
        env = {
            **os.environ,
            "SWITCHBOARD_HTTP_HOST": "127.0.0.1",
            "SWITCHBOARD_HTTP_PORT": str(port),
            "SWITCHBOARD_DATABASE_URL": db_url,
            "SWITCHBOARD_REDIS_URL": redis_url,
            "SWITCHBOARD_ARI_URL": fake.url,
            "SWITCHBOARD_ARI_USERNAME": ARI_USER,
            "SWITCHBOARD_ARI_PASSWORD": password,
            "SWITCHBOARD_ARI_APP": ARI_APP,
            "SWITCHBOARD_ADMIN_USERNAME": "admin",
            "SWITCHBOARD_ADMIN_PASSWORD": admin_password,
            "SWITCHBOARD_DATA_DIR": str(workdir / "data"),
            "SWITCHBOARD_JWT_SECRET": secrets.token_urlsafe(32),
            "SWITCHBOARD_SIMULATOR": "off",
            "SWITCHBOARD_LOG_LEVEL": "WARNING",
        }
        script = Path(sys.executable).with_name("switchboard")
        cmd = [str(script)] if script.exists() else [sys.executable, "-m", "api.cli"]
        log_path = workdir / "switchboard.log"
        log(f"starting {' '.join(cmd)} serve on 127.0.0.1:{port}")
        async with child([*cmd, "serve"], env, log_path) as proc:
            base = f"http://127.0.0.1:{port}"
            token = await _start_and_login(proc, base, admin_password, log_path)
            await fake.wait_for_client(1, within=20)
            await _wait_resync(fake)
            async with contextlib.AsyncExitStack() as stack:
                if opts.profile:
                    await stack.enter_async_context(_py_spy(proc.pid, opts, workdir))
                return await measure(
                    "switchboard", fake, proc.pid, f"ws://127.0.0.1:{port}/ws/events?token={token}",
                    2, opts, frames, col, col.on_switchboard, expected, None,
                )


async def _start_and_login(proc: asyncio.subprocess.Process, base: str, password: str,
                           log_path: Path) -> str:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"switchboard serve exited ({proc.returncode}):\n"
                                   f"{tail(log_path)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"switchboard serve did not answer in 60 s:\n{tail(log_path)}")
            try:
                async with session.get(base + "/health") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        async with session.post(base + "/api/auth/login",
                                json={"username": "admin", "password": password}) as r:
            body = await r.json()
            if r.status != 200:
                raise RuntimeError(f"login failed: {r.status} {body}")
            return str(body["access_token"])


async def _wait_resync(fake: BenchAsterisk, within: float = 20.0) -> None:
    """Switchboard resyncs (GET channels + endpoints) after connecting; wait for it."""
    deadline = time.monotonic() + within
    while not any(r.path.startswith("/ari/endpoints") for r in fake.requests):
        if time.monotonic() > deadline:
            raise RuntimeError("Switchboard connected but did not resync")
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # the resync event goes through the runner


@contextlib.asynccontextmanager
async def _py_spy(pid: int, opts: Options, workdir: Path) -> AsyncIterator[None]:
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        log("--profile: py-spy not found next to the interpreter; skipping")
        yield
        return
    out = ROOT / "bench" / "profile-switchboard.txt"
    args = [str(spy), "record", "--pid", str(pid), "--format", "raw", "--output", str(out),
            "--duration", str(int(opts.duration + 1)), "--rate", "200", "--nonblocking"]
    async with child(args, dict(os.environ), workdir / "py-spy.log"):
        yield
    log(f"py-spy profile (collapsed stacks): {out}")


async def forwarder_phase(
    opts: Options, frames: list[dict[str, Any]], only: set[int] | None, workdir: Path,
) -> PhaseResult:
    send_times = [0.0] * len(frames)
    col = Collector(send_times)
    password = secrets.token_urlsafe(12)
    token = secrets.token_urlsafe(16)
    async with BenchAsterisk(send_times, username=ARI_USER, password=password,
                             app=ARI_APP) as fake:
        args = [sys.executable, "-m", "bench.forwarder", "--ari-url", fake.url,
                "--ari-auth", f"{ARI_USER}:{password}", "--ari-app", ARI_APP,
                f"--token={token}", "--port", "0"]  # a token may start with "-"
        log_path = workdir / "forwarder.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        async with child(args, env, log_path, stdout_pipe=True) as proc:
            assert proc.stdout is not None
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), 30)
            except TimeoutError:
                line = b""
            if not line.startswith(b"forwarder listening on "):
                raise RuntimeError(f"the forwarder did not start:\n{tail(log_path)}")
            port = int(line.split()[-1])
            await fake.wait_for_client(1, within=10)
            expected = len(frames) if only is None else len(only)
            name = "forwarder" if only is None else "forwarder (dashboard frames only)"
            return await measure(
                name, fake, proc.pid, f"ws://127.0.0.1:{port}/ws?token={token}", 1, opts,
                frames, col, col.on_forwarded, expected, only,
            )


# -- the run -----------------------------------------------------------------------------------


async def run(opts: Options) -> dict[str, Any]:
    started = time.monotonic()
    total = int(opts.rate * opts.duration)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    frames = build_schedule(total, opts.calls_concurrency, opts.rate, app=ARI_APP, start=start)
    results: list[PhaseResult] = []
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp:
        workdir = Path(tmp)
        async with contextlib.AsyncExitStack() as stack:
            triggers: dict[Any, int] = {}
            expected = 0
            if "switchboard" in opts.phases:
                db_url = await stack.enter_async_context(
                    throwaway_database(workdir, opts.embedded))
                redis_url = await stack.enter_async_context(
                    throwaway_redis(workdir, opts.embedded))
                admin_password = secrets.token_urlsafe(16)
                operators = await prepare_database(db_url, admin_password, ("1001", "1002"))
                triggers, types = calibrate(frames, operators, start - timedelta(seconds=5))
                expected = sum(types.values())
                calls = {f["channel"]["id"].split("-")[0] for f in frames if "channel" in f}
                log(f"{total} frames, {len(calls)} calls; expected messages per dashboard: "
                    f"{dict(types)}")
                try:
                        results.append(await switchboard_phase(
                        opts, frames, triggers, expected, db_url, redis_url, admin_password,
                        workdir))
                except Exception:
                    log(f"switchboard log:\n{tail(workdir / 'switchboard.log')}")
                    raise
            if "forwarder" in opts.phases:
                only = None
                if opts.forwarder_feed == "dashboard":
                    only = {k for k in triggers.values() if k >= 0}
                results.append(await forwarder_phase(opts, frames, only, workdir))
    return _report(opts, results, time.monotonic() - started)


def _report(opts: Options, results: list[PhaseResult], took: float) -> dict[str, Any]:
    by_name = {r.name.split(" ")[0]: r for r in results}
    sw, fw = by_name.get("switchboard"), by_name.get("forwarder")
    ratio = None
    if sw and fw and sw.p99_ms and fw.p99_ms:
        ratio = sw.p99_ms / fw.p99_ms
    verdict: dict[str, Any] = {}
    if sw and sw.p99_ms is not None:
        verdict["p99_within_50ms"] = sw.p99_ms <= TARGET_P99_MS
    if ratio is not None:
        verdict["within_1_5x_forwarder"] = ratio <= TARGET_RATIO
    return {
        "options": {k: v for k, v in asdict(opts).items() if k != "phases"},
        "phases": [asdict(r) for r in results],
        "p99_ratio_switchboard_over_forwarder": ratio,
        "target": {"p99_ms": TARGET_P99_MS, "ratio": TARGET_RATIO, **verdict},
        "completed": True,
        "seconds": round(took, 1),
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_report(report: dict[str, Any]) -> str:
    o = report["options"]
    lines = [
        f"Switchboard bench: {o['rate']:.0f} ARI frames/s, {o['dashboards']} dashboards, "
        f"{o['duration']:g} s, {o['calls_concurrency']} calls in flight "
        f"(trace tests/data/inbound_answered.ari.jsonl, re-keyed)",
        "",
        f"{'':<34}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>9}{'latencies':>11}{'deliv/s':>10}"
        f"{'server CPU':>12}{'bench CPU':>11}",
    ]
    for p in report["phases"]:
        lines.append(
            f"{p['name']:<34}{_ms(p['p50_ms']):>8}{_ms(p['p99_ms']):>8}{_ms(p['max_ms']):>9}"
            f"{p['latency_count']:>11}{p['deliveries_per_s']:>10.0f}"
            f"{p['server_cpu_pct']:>11.0f}%{p['bench_cpu_pct']:>10.0f}%"
        )
    lines.append("")
    for p in report["phases"]:
        lines.append(
            f"{p['name']}: {p['frames_sent']} frames sent in {p['send_seconds']:.1f} s, "
            f"{p['deliveries']}/{p['expected_deliveries']} deliveries to {p['dashboards']} "
            f"dashboards, server CPU {p['server_cpu_s']:.1f} s, bench CPU {p['bench_cpu_s']:.1f} s"
            + (f", messages {p['types']}" if p["types"] else "")
            + (f", unattributed {p['unmatched']}" if p["unmatched"] else "")
        )
        for note in p["notes"]:
            lines.append(f"  ! {note}")
    t = report["target"]
    ratio = report["p99_ratio_switchboard_over_forwarder"]
    sw = next((p for p in report["phases"] if p["name"] == "switchboard"), None)
    lines.append("")
    if sw is not None:
        ok = t.get("p99_within_50ms")
        lines.append(f"target p99 <= {t['p99_ms']:.0f} ms at 1,000 frames/s with 1,000 "
                     f"dashboards: p99 {_ms(sw['p99_ms'])} ms -> "
                     f"{'MET' if ok else 'MISSED'}"
                     + ("" if (o["rate"], o["dashboards"]) == (1000, 1000)
                        else " (this run used other parameters)"))
    if ratio is not None:
        lines.append(f"target p99(switchboard)/p99(forwarder) <= {t['ratio']}: "
                     f"{ratio:.2f} -> {'MET' if t.get('within_1_5x_forwarder') else 'MISSED'}")
    lines.append(f"(bench took {report['seconds']} s; CPU % is of one core, over the phase's "
                 f"traffic + drain window)")
    return "\n".join(lines)
