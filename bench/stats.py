"""``python -m bench.stats`` (``make bench-stats``): statistics at 10 million calls.

Seeds a throwaway database (on 127.0.0.1:5432, or ``--pg-url``; dropped at the end unless
``--keep``) with N calls spread over the last 365 days (default 10,000,000; ``--calls N``),
loaded with ``INSERT … SELECT generate_series`` in chunks (progress bar on stderr) with the
statistics triggers disabled and the secondary indexes dropped, then builds the rollups once
(``call_stats_rebuild()``: one GROUP BY) — exactly what the triggers would have produced.

Then it runs Switchboard in-process on a local port and times, through real HTTP with a real
token, p50/p95 of ``/api/dashboard/stats?period=month``, ``/api/calls/stats?period=month`` and a
filtered history page, against a plain GROUP BY (or count) over the raw calls table computing
the same figures, and prints the numbers and the ratios. Target: p95 ≤ 50 ms and ≥ 20× faster.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiohttp import web

from storage.db import throwaway_database

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
GROUPS, QUEUES, OPERATORS = 6, 6, 60
DAYS = 365
CHUNK = 500_000
ADMIN_PASSWORD = "bench-admin-password"
SECONDARY_INDEXES = ("calls_start_time_idx", "calls_operator_start_idx", "calls_status_start_idx",
                     "calls_channel_idx", "calls_queue_start_idx", "calls_group_ids_idx")

# One call per i: spread evenly over DAYS back from `now` with jitter; 85 % inbound, 10 %
# outbound, 5 % internal; 12 % of inbound calls missed (no operator); waits 0–90 s skewed short.
SEED_SQL = """
INSERT INTO calls (id, channel_id, source, direction, caller_number, called_number,
                   operator_id, queue_id, queue_name, status, missed_reason, start_time,
                   answer_time, end_time, duration, wait_seconds, group_id, sl_threshold,
                   created_at, updated_at, offered_operator_ids, group_ids)
SELECT gen_random_uuid(), 'bench-' || i, 'ari', dir, '+7900' || lpad((i % 10000000)::text, 7, '0'),
       '1001', CASE WHEN missed THEN NULL ELSE ops[1 + op] END,
       CASE WHEN dir = 'inbound' THEN queues[1 + op % $5] END,
       CASE WHEN dir = 'inbound' THEN qnames[1 + op % $5] END,
       CASE WHEN missed THEN 'missed' ELSE 'completed' END,
       CASE WHEN missed THEN 'abandoned_in_queue' END,
       st, CASE WHEN missed THEN NULL ELSE st + make_interval(secs => w) END,
       st + make_interval(secs => w + CASE WHEN missed THEN 0 ELSE talk END),
       CASE WHEN missed THEN 0 ELSE talk END, w,
       CASE WHEN missed THEN NULL ELSE groups[1 + op % $6] END, 20, st, st,
       CASE WHEN missed THEN '{}' ELSE ARRAY[ops[1 + op]] END,
       CASE WHEN missed THEN '{}' ELSE ARRAY[groups[1 + op % $6]] END
  FROM (SELECT i, $3::timestamptz - make_interval(secs => (i::float8 / $4) * 86400 * $7
                                                 + random() * 60) AS st,
               CASE WHEN i % 20 < 17 THEN 'inbound' WHEN i % 20 < 19 THEN 'outbound'
                    ELSE 'internal' END AS dir,
               (i % 20 < 17 AND random() < 0.12) AS missed,
               (random() * random() * 90)::int AS w, 30 + (random() * 570)::int AS talk,
               (i * 7919) % $8 AS op
          FROM generate_series($1::bigint, $2::bigint) AS i) s,
       (SELECT $9::uuid[] AS ops, $10::uuid[] AS queues, $11::text[] AS qnames,
               $12::uuid[] AS groups) refs
"""

# The same figures as the endpoints, the plain way: GROUP BY over the raw calls of the period.
RAW_HOURLY = """
SELECT extract(hour FROM start_time AT TIME ZONE 'UTC')::int AS hour,
       direction = 'inbound' AS inbound, count(*) AS offered,
       count(*) FILTER (WHERE status = 'completed') AS answered,
       count(*) FILTER (WHERE status = 'missed') AS missed,
       count(*) FILTER (WHERE status = 'completed' AND wait_seconds <= 20) AS answered_sl,
       sum(wait_seconds) AS wait_sum, sum(duration) FILTER (WHERE status = 'completed') AS talk
  FROM calls c WHERE start_time >= $1 AND start_time < $2 AND status IN ('completed', 'missed')
 GROUP BY 1, 2
"""
RAW_OPERATORS = """
SELECT u.name, count(*) FILTER (WHERE c.status = 'completed') AS handled
  FROM calls c JOIN operators o ON o.id = c.operator_id JOIN users u ON u.id = o.user_id
 WHERE c.start_time >= $1 AND c.start_time < $2 AND c.status IN ('completed', 'missed')
 GROUP BY u.name ORDER BY handled DESC LIMIT 5
"""
RAW_HISTORY_PAGE = """
SELECT c.*, u.name AS operator_name FROM calls c LEFT JOIN operators o ON o.id = c.operator_id
  LEFT JOIN users u ON u.id = o.user_id
 WHERE c.operator_id = $1 AND c.status = 'completed' AND c.start_time >= $2
 ORDER BY c.start_time DESC, c.id DESC LIMIT 50
"""
RAW_HISTORY_COUNT = """
SELECT count(*) FROM calls c
 WHERE c.operator_id = $1 AND c.status = 'completed' AND c.start_time >= $2
"""


def log(msg: str) -> None:
    print(f"[bench.stats] {msg}", file=sys.stderr, flush=True)


def progress(done: int, total: int, started: float) -> None:
    width = 40
    filled = int(width * done / total) if total else width
    elapsed = time.monotonic() - started
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if rate > 0 else 0.0
    sys.stderr.write(f"\r[bench.stats] calls [{'#' * filled}{'.' * (width - filled)}] "
                     f"{100 * done / total:5.1f}% {done:,}/{total:,} "
                     f"{rate:,.0f}/s eta {eta:4.0f}s ")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


@dataclass
class Seeded:
    operators: list[str]
    busiest_operator: str = ""
    seconds: dict[str, float] = field(default_factory=dict)


async def seed(conn: asyncpg.Connection, calls: int) -> Seeded:
    from api.auth import hash_password
    from storage.db import migrate

    t0 = time.monotonic()
    await migrate(conn)
    dummy = hash_password("bench-operator")
    groups = [await conn.fetchval("INSERT INTO groups (name) VALUES ($1) RETURNING id",
                                  f"group-{g}") for g in range(GROUPS)]
    queues = [await conn.fetchval(
        "INSERT INTO queues (name, asterisk_name) VALUES ($1, $1) RETURNING id", f"queue-{q}")
        for q in range(QUEUES)]
    qnames = [f"queue-{q}" for q in range(QUEUES)]
    await conn.execute(
        "INSERT INTO users (username, email, name, role, password_hash) VALUES "
        "('admin', 'admin@bench.local', 'Admin', 'admin', $1)", hash_password(ADMIN_PASSWORD))
    ops: list[str] = []
    for n in range(OPERATORS):
        group = groups[n % GROUPS]
        uid = await conn.fetchval(
            """INSERT INTO users (username, email, name, role, password_hash, group_id)
               VALUES ($1, $1 || '@bench.local', $2, 'operator', $3, $4) RETURNING id""",
            f"op{n:03d}", f"Operator {n:03d}", dummy, group)
        ops.append(str(await conn.fetchval(
            "INSERT INTO operators (user_id, extension, group_id) VALUES ($1, $2, $3)"
            " RETURNING id", uid, str(2000 + n), group)))
    # one operator's group per index: op % GROUPS must match the operator's group above
    op_groups = [groups[n % GROUPS] for n in range(OPERATORS)]

    # ALL also skips the per-row foreign-key checks (the data is valid by construction); it
    # needs a superuser, else only the statistics triggers are disabled (a slower load).
    try:
        await conn.execute("ALTER TABLE calls DISABLE TRIGGER ALL")
        triggers = "ALL"
    except asyncpg.InsufficientPrivilegeError:
        await conn.execute("ALTER TABLE calls DISABLE TRIGGER USER")
        triggers = "USER"
    for index in SECONDARY_INDEXES:
        await conn.execute(f"DROP INDEX {index}")
    now = datetime.now(UTC)
    started = time.monotonic()
    progress(0, calls, started)
    for lo in range(1, calls + 1, CHUNK):
        hi = min(calls, lo + CHUNK - 1)
        await conn.execute(SEED_SQL, lo, hi, now, calls, QUEUES, GROUPS, DAYS, OPERATORS,
                           [uuid.UUID(o) for o in ops], queues, qnames, op_groups)
        progress(hi, calls, started)
    del op_groups
    out = Seeded(ops)
    out.seconds["load"] = time.monotonic() - started
    t = time.monotonic()
    log("creating indexes…")
    await conn.execute("SET maintenance_work_mem = '512MB'")
    await conn.execute("CREATE INDEX calls_start_time_idx ON calls (start_time DESC)")
    await conn.execute("CREATE INDEX calls_operator_start_idx ON calls (operator_id, "
                       "start_time DESC)")
    await conn.execute("CREATE INDEX calls_status_start_idx ON calls (status, start_time DESC)")
    await conn.execute("CREATE INDEX calls_channel_idx ON calls (channel_id)")
    await conn.execute("CREATE INDEX calls_queue_start_idx ON calls (queue_id, start_time DESC)")
    await conn.execute("CREATE INDEX calls_group_ids_idx ON calls USING gin (group_ids)")
    out.seconds["indexes"] = time.monotonic() - t
    await conn.execute(f"ALTER TABLE calls ENABLE TRIGGER {triggers}")
    t = time.monotonic()
    log("building the rollups (one GROUP BY)…")
    await conn.execute("SELECT call_stats_rebuild()")
    out.seconds["rollups"] = time.monotonic() - t
    t = time.monotonic()
    await conn.execute("VACUUM ANALYZE calls")
    await conn.execute("VACUUM ANALYZE call_stats_hourly")
    await conn.execute("VACUUM ANALYZE call_stats_daily")
    await conn.execute("VACUUM ANALYZE call_stats_group_hourly")
    await conn.execute("VACUUM ANALYZE call_stats_operator_daily")
    out.seconds["analyze"] = time.monotonic() - t
    out.busiest_operator = ops[0]
    out.seconds["seed_total"] = time.monotonic() - t0
    return out


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1]


async def timed(fn: Callable[[], Awaitable[Any]], runs: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        await fn()
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": round(percentile(samples, 50), 2),
            "p95_ms": round(percentile(samples, 95), 2), "runs": runs}


async def serve(settings: Any) -> tuple[web.AppRunner, str]:
    from api.app import create_app

    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def measure(db_url: str, redis_url: str, seeded: Seeded, requests: int,
                  raw_runs: int, timezone: str = "UTC") -> dict[str, Any]:
    from zoneinfo import ZoneInfo

    from api.config import Settings
    from api.figures import period_bounds

    data_dir = Path(tempfile.mkdtemp(prefix="switchboard-bench-stats-"))
    overrides: dict[str, Any] = {}
    if "rate_limits" in Settings.model_fields:
        overrides["rate_limits"] = False
    settings = Settings(database_url=db_url, redis_url=redis_url, data_dir=data_dir,
                        admin_password=ADMIN_PASSWORD, jwt_secret="bench-" + "x" * 40,
                        secret_key="bench-secret-key", simulator="off", log_level="WARNING",
                        timezone=timezone, **overrides)
    runner, base = await serve(settings)
    month_start, end = period_bounds("month", datetime.now(UTC), ZoneInfo(timezone))
    history = (f"/api/calls/?operator_id={seeded.busiest_operator}&status=completed"
               f"&date_from={month_start.strftime('%Y-%m-%dT%H:%M:%SZ')}&limit=50")
    results: dict[str, Any] = {}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/api/auth/login", json={
                    "username": "admin", "password": ADMIN_PASSWORD}) as resp:
                assert resp.status == 200, await resp.text()
                token = (await resp.json())["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            samples: dict[str, Any] = {}

            def getter(path: str) -> Callable[[], Awaitable[Any]]:
                async def call() -> Any:
                    async with http.get(base + path, headers=headers) as resp:
                        body = await resp.read()
                        assert resp.status == 200, body[:300]
                        samples[path] = orjson.loads(body)
                return call

            endpoints = {"dashboard_stats": "/api/dashboard/stats?period=month",
                         "calls_stats": "/api/calls/stats?period=month",
                         "history_page": history}
            for name, path in endpoints.items():
                log(f"timing {name} ({requests} requests)…")
                results[name] = {"path": path, **await timed(getter(path), requests, 5)}
                results[name]["sample"] = samples[path] if name != "history_page" else {
                    k: samples[path][k] for k in ("total", "page", "pages")}
            log(f"timing /api/auth/me, the floor of any request ({requests} requests)…")
            results["floor_auth_me"] = await timed(getter("/api/auth/me"), requests, 5)

        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
        try:
            op = uuid.UUID(seeded.busiest_operator)

            async def raw_dashboard() -> None:
                await pool.fetch(RAW_HOURLY, month_start, end)

            async def raw_calls_stats() -> None:
                await pool.fetch(RAW_HOURLY, month_start, end)
                await pool.fetch(RAW_OPERATORS, month_start, end)

            async def raw_history() -> None:
                await pool.fetch(RAW_HISTORY_PAGE, op, month_start)
                await pool.fetchval(RAW_HISTORY_COUNT, op, month_start)

            for name, fn in (("dashboard_stats", raw_dashboard),
                             ("calls_stats", raw_calls_stats), ("history_page", raw_history)):
                log(f"timing the plain query for {name} ({raw_runs} runs)…")
                raw = await timed(fn, raw_runs, 1)
                results[name]["raw_group_by"] = raw
                results[name]["p95_speedup"] = round(raw["p95_ms"] / results[name]["p95_ms"], 1)
                results[name]["p50_speedup"] = round(raw["p50_ms"] / results[name]["p50_ms"], 1)
            raw_total = await pool.fetchval(RAW_HISTORY_COUNT, op, month_start)
            results["history_page"]["total_matches_count"] = (
                raw_total == results["history_page"]["sample"]["total"])
            rows = await pool.fetch(RAW_HOURLY, month_start, end)
            results["dashboard_stats"]["total_matches_raw"] = (
                sum(r["offered"] for r in rows)
                == results["dashboard_stats"]["sample"]["total_calls_today"])
        finally:
            await pool.close()
    finally:
        await runner.cleanup()
    return results


def report_text(report: dict[str, Any]) -> str:
    floor = report["endpoints"]["floor_auth_me"]
    lines = [f"calls: {report['calls']:,}   time zone: {report['timezone']}   "
             f"seed: {report['seed_seconds']}",
             f"floor (GET /api/auth/me, HTTP + auth): p50 {floor['p50_ms']} ms, "
             f"p95 {floor['p95_ms']} ms",
             f"{'endpoint':<18}{'p50 ms':>9}{'p95 ms':>9}{'raw p50':>10}{'raw p95':>10}"
             f"{'p95 ×':>8}  target p95≤50ms & ≥20×"]
    for name in ("dashboard_stats", "calls_stats", "history_page"):
        r = report["endpoints"][name]
        raw = r["raw_group_by"]
        ok = r["p95_ms"] <= 50 and r["p95_speedup"] >= 20
        lines.append(f"{name:<18}{r['p50_ms']:>9}{r['p95_ms']:>9}{raw['p50_ms']:>10}"
                     f"{raw['p95_ms']:>10}{r['p95_speedup']:>8}  {'yes' if ok else 'NO'}")
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    name = f"switchboard_bench_stats_{os.getpid()}"
    if args.keep:
        log(f"database {name} will be kept")
    async with throwaway_database(args.pg_url, name, keep=args.keep) as db_url:
        conn = await asyncpg.connect(db_url)
        try:
            log(f"seeding {args.calls:,} calls into database {name}…")
            seeded = await seed(conn, args.calls)
        finally:
            await conn.close()
        endpoints = await measure(db_url, args.redis_url, seeded, args.requests, args.raw_runs,
                                  args.timezone)
        return {"calls": args.calls, "database": name, "timezone": args.timezone,
                "seed_seconds": {k: round(v, 1) for k, v in seeded.seconds.items()},
                "endpoints": endpoints}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.stats", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=10_000_000, help="calls to seed (10,000,000)")
    p.add_argument("--requests", type=int, default=200, help="timed requests per endpoint")
    p.add_argument("--raw-runs", type=int, default=10, help="timed runs of each plain query")
    p.add_argument("--pg-url", default=os.environ.get("SWITCHBOARD_BENCH_PG_URL", DEFAULT_PG),
                   help="a PostgreSQL where we may CREATE/DROP DATABASE")
    p.add_argument("--redis-url",
                   default=os.environ.get("SWITCHBOARD_BENCH_REDIS_URL", DEFAULT_REDIS))
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument("--timezone", default="UTC",
                   help="the center's time zone (periods in local days; UTC has no partial days)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    args = p.parse_args(argv)
    if args.calls <= 0 or args.requests <= 0 or args.raw_runs <= 0:
        p.error("--calls, --requests and --raw-runs must be positive")
    try:
        report = asyncio.run(run(args))
    except KeyboardInterrupt:
        log("interrupted; database dropped")
        return 130
    if args.json:
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        print(report_text(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
