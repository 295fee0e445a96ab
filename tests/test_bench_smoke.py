"""`make bench` in quick mode, end to end: a real `switchboard serve`, the bare forwarder, the
fake Asterisk and 50 dashboards. Checks that it completes and measures; no timing assertions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(90)
def test_bench_quick_run_measures_switchboard_and_forwarder() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=80, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = orjson.loads(proc.stdout)
    assert report["completed"] is True
    phases = {p["name"]: p for p in report["phases"]}
    assert set(phases) == {"switchboard", "forwarder"}
    for phase in phases.values():
        assert phase["deliveries"] > 0, phase
        assert phase["latency_count"] > 0, phase
        assert phase["p99_ms"] is not None
    assert report["p99_ratio_switchboard_over_forwarder"] is not None
