"""Replay the real Asterisk trace (one inbound queue call, six channels) through normalize + Engine.

Duplicates, a second replay and reordering within equal PBX timestamps must not change what the
engine decides.
"""

from __future__ import annotations

import json
import pathlib
import random
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

import pytest

from connectors.ari.normalize import normalize
from engine.effects import (
    CallAnswered,
    CallEnded,
    CallStarted,
    CallTransferred,
    CallUpdated,
    Effect,
    OperatorStatusChanged,
)
from engine.machine import Engine
from engine.model import CallStatus, Direction, Operator, OperatorStatus, call_id_for

TRACE = pathlib.Path(__file__).parent / "data" / "inbound_answered.ari.jsonl"

OPERATORS = (
    Operator(id="op-1001", extension="1001", group_id="g-a", status=OperatorStatus.ONLINE),
    Operator(id="op-1002", extension="1002", group_id="g-b", status=OperatorStatus.ONLINE),
)
MILESTONES = (CallStarted, CallAnswered, CallTransferred, CallEnded)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def frames() -> list[dict[str, Any]]:
    lines = TRACE.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["event"] for line in lines]


def replay(engine: Engine, raw_frames: list[dict[str, Any]]) -> list[Effect]:
    effects: list[Effect] = []
    for raw in raw_frames:
        event = normalize(raw)
        if event is not None:
            effects.extend(engine.handle(event))
    return effects


def call_effects(effects: list[Effect]) -> list[Effect]:
    return [e for e in effects if isinstance(e, (*MILESTONES, CallUpdated))]


StatusChange = tuple[str, str, str | None, datetime | None]


def status_changes(effects: list[Effect]) -> dict[str, list[StatusChange]]:
    out: dict[str, list[StatusChange]] = {}
    for e in effects:
        if isinstance(e, OperatorStatusChanged):
            out.setdefault(e.operator.extension, []).append(
                (e.previous, e.operator.status.value, e.operator.activity,
                 e.operator.last_activity))
    return out


@pytest.fixture(scope="module")
def baseline() -> tuple[Engine, list[Effect]]:
    engine = Engine(OPERATORS)
    return engine, replay(engine, frames())


def test_one_call_started_answered_ended(baseline: tuple[Engine, list[Effect]]) -> None:
    engine, effects = baseline
    milestones = [e for e in effects if isinstance(e, MILESTONES)]
    assert [type(e).__name__ for e in milestones] == ["CallStarted", "CallAnswered", "CallEnded"]
    started, answered, ended = milestones
    assert isinstance(started, CallStarted)
    assert isinstance(answered, CallAnswered)
    assert isinstance(ended, CallEnded)

    call = started.call
    assert call.caller_number == "+79001234567"
    assert call.caller_name == "Иван Петров"
    assert call.channel_id == "1795336312.0"
    assert call.id == call_id_for("1795336312.0")
    assert call.direction is Direction.INBOUND
    assert call.start_time == ts("2026-11-22T08:31:52.672+00:00")
    assert call.status is CallStatus.INCOMING

    assert answered.call.id == call.id
    assert answered.call.operator_id == "op-1001"
    assert answered.call.operator_extension == "1001"
    assert answered.call.answer_time == ts("2026-11-22T08:31:54.689+00:00")

    final = ended.call
    assert final.id == call.id
    assert final.status is CallStatus.COMPLETED
    assert final.operator_id == "op-1001"
    assert final.end_time == ts("2026-11-22T08:31:57.701+00:00")
    assert final.duration == 3          # 54.689 -> 57.701
    assert final.wait_seconds == 2      # 52.672 -> 54.689
    assert final.missed_reason is None
    assert final.transfer_operator_ids == ()
    assert set(final.offered_operator_ids) == {"op-1001", "op-1002"}
    assert set(final.group_ids) == {"g-a", "g-b"}
    assert len(final.channel_ids) == 6
    assert engine.active_calls() == []


def test_1002_never_answers(baseline: tuple[Engine, list[Effect]]) -> None:
    _, effects = baseline
    for e in effects:
        if isinstance(e, CallAnswered | CallTransferred | CallEnded):
            assert e.call.operator_id != "op-1002"
            assert "op-1002" not in e.call.transfer_operator_ids


def test_operator_statuses(baseline: tuple[Engine, list[Effect]]) -> None:
    engine, effects = baseline
    # Ringing is shown as ringing, not busy (issue 8): online with the activity "ringing".
    assert status_changes(effects) == {
        "1002": [("online", "online", "ringing", ts("2026-11-22T08:31:52.674+00:00")),
                 ("online", "online", "available", ts("2026-11-22T08:31:54.699+00:00"))],
        "1001": [("online", "online", "ringing", ts("2026-11-22T08:31:52.674+00:00")),
                 ("online", "busy", "in_call", ts("2026-11-22T08:31:54.689+00:00")),
                 ("busy", "online", "available", ts("2026-11-22T08:31:57.701+00:00"))],
    }
    in_call = [e.call for e in effects if isinstance(e, CallAnswered)]
    assert len(in_call) == 1
    final = {op.extension: (op.status, op.status_detail, op.current_calls)
             for op in engine.operators()}
    assert final == {"1001": (OperatorStatus.ONLINE, None, 0),
                     "1002": (OperatorStatus.ONLINE, None, 0)}


def test_replay_into_the_same_engine_changes_nothing() -> None:
    engine = Engine(OPERATORS)
    replay(engine, frames())
    assert replay(engine, frames()) == []
    assert replay(engine, frames()) == []


def test_fresh_replays_are_identical(baseline: tuple[Engine, list[Effect]]) -> None:
    _, effects = baseline
    assert replay(Engine(OPERATORS), frames()) == effects


def test_every_frame_duplicated(baseline: tuple[Engine, list[Effect]]) -> None:
    _, effects = baseline
    doubled = [raw for raw in frames() for raw in (raw, raw)]
    assert replay(Engine(OPERATORS), doubled) == effects


@pytest.mark.parametrize("seed", range(20))
def test_shuffled_within_equal_timestamps(
    seed: int, baseline: tuple[Engine, list[Effect]]
) -> None:
    """Frames stamped with the same PBX millisecond may arrive in any order."""
    _, effects = baseline
    rng = random.Random(seed)
    shuffled: list[dict[str, Any]] = []
    for _, block in groupby(frames(), key=lambda raw: raw["timestamp"]):
        chunk = list(block)
        rng.shuffle(chunk)
        shuffled.extend(chunk)
    engine = Engine(OPERATORS)
    got = replay(engine, shuffled)
    assert [e for e in got if isinstance(e, MILESTONES)] == [
        e for e in effects if isinstance(e, MILESTONES)]
    assert status_changes(got) == status_changes(effects)
    assert engine.active_calls() == []
    assert [(o.status, o.current_calls) for o in engine.operators()] == [
        (OperatorStatus.ONLINE, 0), (OperatorStatus.ONLINE, 0)]
