"""Issue 9 item 1: a call's queue from ARI alone, checked against Asterisk's own queue_log.

``queue_shift.ari.jsonl`` and ``queue_shift.queue_log`` record the same minutes on one Asterisk:
an answered caller (``CONNECT`` hold time, ``COMPLETECALLER`` talk time) and an abandoned one
(``ABANDON`` wait). Replayed through the ARI normalizer and the engine, the calls must carry the
queue and its threshold, and the queue's figures must say what the queue_log says -- also when
every frame arrives twice, or frames of equal timestamp arrive in another order.
"""

from __future__ import annotations

import json
import pathlib
import random
from itertools import groupby
from typing import Any

import pytest

from connectors.ari.normalize import AriNormalizer
from engine.effects import CallEnded, CallUpdated, Effect, QueueUpdated
from engine.events import QueueCallerLeft
from engine.machine import Engine
from engine.model import CallStatus, Operator, OperatorStatus

DATA = pathlib.Path(__file__).parent / "data"
OPERATORS = tuple(
    Operator(id=f"op-{ext}", extension=ext, status=OperatorStatus.ONLINE)
    for ext in ("1001", "1002", "1003")
)


def frames() -> list[dict[str, Any]]:
    lines = (DATA / "queue_shift.ari.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["event"] for line in lines]


def queue_log() -> dict[str, dict[str, list[str]]]:
    """callid -> verb -> fields; a queue_log line is ``time|callid|queue|agent|verb|data...``."""
    out: dict[str, dict[str, list[str]]] = {}
    for line in (DATA / "queue_shift.queue_log").read_text(encoding="utf-8").splitlines():
        _, callid, _, _, verb, *data = line.split("|")
        out.setdefault(callid, {})[verb] = data
    return out


def replay(raw_frames: list[dict[str, Any]]) -> tuple[Engine, list[Effect]]:
    engine, normalizer = Engine(OPERATORS), AriNormalizer()
    effects: list[Effect] = []
    for raw in raw_frames:
        event = normalizer.event(raw)
        if event is not None:
            effects.extend(engine.handle(event))
    return engine, effects


def ended_calls(effects: list[Effect]) -> dict[str, CallEnded]:
    return {e.call.channel_id: e for e in effects if isinstance(e, CallEnded)}


def test_the_calls_take_their_queue_and_the_queue_log_times() -> None:
    log = queue_log()
    _, effects = replay(frames())
    ended = ended_calls(effects)
    answered_id, abandoned_id = "1796203666.32", "1796203671.36"
    assert set(ended) == {answered_id, abandoned_id}

    answered = ended[answered_id].call
    hold, talk, _ = log[answered_id]["COMPLETECALLER"]
    assert answered.status is CallStatus.COMPLETED
    assert (answered.queue_name, answered.queue_service_level) == ("support", 20)
    assert answered.wait_seconds == int(log[answered_id]["CONNECT"][0]) == int(hold) == 3
    assert answered.duration == int(talk) == 2
    assert answered.operator_id == "op-1002"

    abandoned = ended[abandoned_id].call
    _position, _original, waited = log[abandoned_id]["ABANDON"]
    assert abandoned.status is CallStatus.MISSED
    assert abandoned.missed_reason == "abandoned_in_queue"
    assert (abandoned.queue_name, abandoned.queue_service_level) == ("support", 20)
    assert abandoned.wait_seconds == int(waited) == 2

    # the queue is known to the published call before it ends (a CallUpdated carries it)
    updates = [e.call.queue_name for e in effects
               if isinstance(e, CallUpdated) and e.call.channel_id == answered_id]
    assert "support" in updates


def test_the_queue_figures_match_the_queue_log() -> None:
    log = queue_log()
    engine, effects = replay(frames())
    queue = engine.queue("support")
    assert queue is not None
    assert [q.name for q in engine.queues()] == ["support"]
    assert queue.service_level_seconds == 20
    assert queue.callers_waiting == 0 and queue.longest_wait_seconds == 0
    hold = float(log["1796203666.32"]["CONNECT"][0])
    for window in ("15m", "1h", "24h", "day"):
        figures = queue.window(window)
        assert (figures.offered, figures.answered, figures.abandoned) == (1 + 1, 1, 1)
        assert figures.answered_within_threshold == 1
        assert figures.service_level == 50.0
        assert figures.abandon_rate == 50.0
        assert figures.average_speed_of_answer == hold
        assert figures.completed == 1
        assert figures.average_handle_time is not None
        assert round(figures.average_handle_time) == 2   # talk 49.871 -> 51.366 (queue_log: 2)
    published = [e for e in effects if isinstance(e, QueueUpdated)]
    assert published and published[-1].queue == queue


def test_ari_tells_each_queue_visit_once_and_only_for_the_caller() -> None:
    normalizer = AriNormalizer()
    told = [e for raw in frames() if isinstance(e := normalizer.event(raw), QueueCallerLeft)]
    # the agent channel (1796203666.34) gets QUEUENAME too, and the caller's channel gets the
    # queue variables again when the call ends: neither is a second visit
    assert [(e.channel_id, e.reason, e.wait_seconds, e.member) for e in told] == [
        ("1796203666.32", "answered", 3.0, "Local/1002@agents"),
        ("1796203671.36", "abandoned", 2.0, ""),
    ]
    assert {(e.queue, e.service_level_seconds, e.source) for e in told} == {("support", 20, "ari")}


def figures_of(engine: Engine) -> list[tuple[object, ...]]:
    out = []
    for queue in engine.queues():
        for f in queue.figures:
            out.append((queue.name, f.window, f.offered, f.answered, f.abandoned,
                        f.answered_within_threshold, f.completed))
    return out


def calls_of(effects: list[Effect]) -> dict[str, tuple[object, ...]]:
    return {k: (e.call.status, e.call.queue_name, e.call.wait_seconds, e.call.duration)
            for k, e in ended_calls(effects).items()}


def test_every_frame_twice_counts_once() -> None:
    base_engine, base = replay(frames())
    doubled = [f for raw in frames() for f in (raw, raw)]
    engine, effects = replay(doubled)
    assert figures_of(engine) == figures_of(base_engine)
    assert calls_of(effects) == calls_of(base)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_reordering_within_equal_timestamps_changes_nothing(seed: int) -> None:
    base_engine, base = replay(frames())
    rng = random.Random(seed)
    shuffled: list[dict[str, Any]] = []
    for _, group in groupby(frames(), key=lambda f: f.get("timestamp")):
        chunk = list(group)
        rng.shuffle(chunk)
        shuffled.extend(chunk)
    engine, effects = replay(shuffled)
    assert figures_of(engine) == figures_of(base_engine)
    assert calls_of(effects) == calls_of(base)
