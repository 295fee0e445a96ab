"""`python -m bench.stats` on a small database, end to end: seeds, builds the rollups, times the
three endpoints through real HTTP and the plain GROUP BY, drops its database. No timing
assertions; the figures must agree with the raw calls."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncpg
import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(120)
async def test_bench_stats_small_run(pg_admin_url: str, redis_url: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.stats", "--calls", "20000", "--requests", "5",
        "--raw-runs", "2", "--json", "--pg-url", pg_admin_url, "--redis-url", redis_url,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=110)
    stderr = err.decode()
    assert proc.returncode == 0, stderr[-3000:]
    assert "calls [####" in stderr  # the progress bar
    report = orjson.loads(out)
    assert report["calls"] == 20000
    endpoints = report["endpoints"]
    assert set(endpoints) == {"dashboard_stats", "calls_stats", "history_page", "floor_auth_me"}
    for result in (endpoints[k] for k in ("dashboard_stats", "calls_stats", "history_page")):
        assert result["p95_ms"] > 0 and result["raw_group_by"]["p95_ms"] > 0
    assert endpoints["dashboard_stats"]["total_matches_raw"] is True
    assert endpoints["history_page"]["total_matches_count"] is True
    assert endpoints["dashboard_stats"]["sample"]["total_calls_today"] > 0
    admin = await asyncpg.connect(pg_admin_url)
    try:
        assert await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1",
                                    report["database"]) == 0  # dropped
    finally:
        await admin.close()
