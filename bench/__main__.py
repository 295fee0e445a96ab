"""``python -m bench`` (``make bench``); ``--quick`` for a small run, ``--json`` for machines."""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson

from bench.run import Options, format_report, log, run


def parse_args(argv: list[str] | None = None) -> tuple[Options, bool]:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--rate", type=float, help="ARI frames per second (default 1000)")
    p.add_argument("--dashboards", type=int, help="WebSocket clients (default 1000)")
    p.add_argument("--duration", type=float, help="seconds of traffic per phase (default 20)")
    p.add_argument("--calls-concurrency", type=int,
                   help="calls in flight, interleaved frame by frame (default 50; quick: 4)")
    p.add_argument("--forwarder-feed", choices=("all", "dashboard"), default="all",
                   help="all: the forwarder gets (and forwards) every frame, like Switchboard "
                        "gets them; dashboard: only the frames that make a Switchboard message, "
                        "at the same times (same output volume as Switchboard)")
    p.add_argument("--only", choices=("switchboard", "forwarder"),
                   help="run one phase only")
    p.add_argument("--embedded", action="store_true",
                   help="use embedded PostgreSQL/Redis even if local ones answer")
    p.add_argument("--profile", action="store_true",
                   help="py-spy the Switchboard process during its phase "
                        "(bench/profile-switchboard.txt)")
    p.add_argument("--quick", action="store_true",
                   help="small run: 200 frames/s, 50 dashboards, 5 s")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    a = p.parse_args(argv)
    quick = (200.0, 50, 5.0, 4) if a.quick else (1000.0, 1000, 20.0, 50)
    opts = Options(
        rate=a.rate or quick[0], dashboards=a.dashboards or quick[1],
        duration=a.duration or quick[2], calls_concurrency=a.calls_concurrency or quick[3],
        forwarder_feed=a.forwarder_feed, embedded=a.embedded, profile=a.profile, quick=a.quick,
        phases=(a.only,) if a.only else ("switchboard", "forwarder"),
    )
    if opts.rate <= 0 or opts.dashboards <= 0 or opts.duration <= 0 or opts.calls_concurrency <= 0:
        p.error("--rate, --dashboards, --duration and --calls-concurrency must be positive")
    return opts, a.json


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (it has no Windows build), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main(argv: list[str] | None = None) -> int:
    opts, as_json = parse_args(argv)
    try:
        with asyncio.Runner(loop_factory=_new_loop) as runner:
            report = runner.run(run(opts))
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        return 130
    if as_json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
