"""Mango calls into the engine's call effects (connectors/mango/machine.py): tables of
webhooks in, effects and records out. Deliveries go through the real signing path."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from connectors.fakes.mango_server import (
    Order,
    Posting,
    answered_call,
    arrange,
    call_event,
    missed_call,
    summary,
)
from connectors.mango.machine import MangoCalls, mango_call_id
from connectors.mango.reasons import missed_reason
from connectors.mango.signing import parse_delivery, signed_form
from engine.directory import OperatorDirectory
from engine.effects import (
    CallAnswered,
    CallEffect,
    CallEnded,
    CallStarted,
    CallTransferred,
    CallUpdated,
)
from engine.model import CallStatus, Direction, Operator

KEY, SALT = "key", "salt"
START = 1_764_670_000
NOW = datetime.fromtimestamp(START + 100_000, UTC)   # receive time: never a call's time


def at(offset: int) -> datetime:
    return datetime.fromtimestamp(START + offset, UTC)


def machine() -> MangoCalls:
    return MangoCalls(OperatorDirectory([
        Operator(id="op1", extension="101", group_id="g1"),
        Operator(id="op2", extension="102", group_id="g2"),
    ]))


def feed(calls: MangoCalls, postings: Sequence[Posting]) -> list[CallEffect]:
    effects: list[CallEffect] = []
    for posting in postings:
        form = signed_form(KEY, SALT, posting.payload)
        delivery = parse_delivery(posting.path, form, api_key=KEY, api_salt=SALT)
        effects += calls.handle(delivery, NOW)
    return effects


def kinds(effects: Sequence[CallEffect]) -> list[type]:
    return [type(effect) for effect in effects]


def ev(call_id: str, seq: int | str, state: str, location: str, offset: int, **kw: object
       ) -> Posting:
    return Posting("events/call", call_event("E1", call_id, seq, state, location, START + offset,
                                             **kw))  # type: ignore[arg-type]


CUSTOMER = {"number": "89001234567"}
LINE = {"number": "74950000000", "line_number": "74950000000"}
OPERATOR_101 = {"extension": "101", "line_number": "74950000000"}
OPERATOR_102 = {"extension": "102", "line_number": "74950000000"}


def test_full_answered_call() -> None:
    calls = machine()
    effects = feed(calls, answered_call("E1", start=START))
    assert kinds(effects) == [CallStarted, CallUpdated, CallUpdated, CallAnswered, CallEnded]
    started, answered, ended = effects[0].call, effects[3].call, effects[4].call
    assert (started.id, started.channel_id, started.source) == (mango_call_id("E1"), "E1", "mango")
    assert (started.caller_number, started.called_number) == ("+79001234567", "+74950000000")
    assert (started.direction, started.status, started.answer_time) == (
        Direction.INBOUND, CallStatus.INCOMING, None)
    assert (answered.status, answered.operator_id, answered.operator_extension) == (
        CallStatus.ANSWERED, "op1", "101")
    assert (answered.answer_time, answered.queue_name, answered.group_ids) == (
        at(10), "support", ("g1",))
    assert (ended.status, ended.start_time, ended.end_time) == (CallStatus.COMPLETED, at(0), at(70))
    assert (ended.duration, ended.wait_seconds, ended.missed_reason) == (60, 10, None)
    assert ended.channel_ids == ("E1:1", "E1:2")
    assert calls.open_calls() == []
    raw = calls.raw_caller("E1")
    assert raw is not None and raw.raw == "8 (900) 123-45-67"


def test_missed_call_in_the_queue() -> None:
    effects = feed(machine(), missed_call("E2", start=START))
    assert kinds(effects) == [CallStarted, CallUpdated, CallEnded]
    assert effects[0].call.queue_name == "support"
    ended = effects[-1].call
    assert (ended.status, ended.missed_reason, ended.operator_id) == (
        CallStatus.MISSED, "abandoned_in_queue", None)
    assert (ended.rung_operator_ids, ended.end_time, ended.wait_seconds) == (("op1",), at(20), 20)


# an IVR menu may have an extension of its own: still no operator
@pytest.mark.parametrize("ivr", [LINE, {**LINE, "extension": "101"}])
def test_connected_in_the_ivr_is_no_answer(ivr: dict[str, str]) -> None:
    effects = feed(machine(), [
        ev("E1:1", 1, "Appeared", "ivr", 0, from_=CUSTOMER, to=ivr),
        ev("E1:1", 2, "Connected", "ivr", 1, from_=CUSTOMER, to=ivr),
        ev("E1:1", 3, "Disconnected", "ivr", 30, from_=CUSTOMER, to=ivr, disconnect_reason=1110),
    ])
    assert kinds(effects) == [CallStarted, CallEnded]
    ended = effects[-1].call
    assert (ended.status, ended.missed_reason, ended.answer_time, ended.end_time) == (
        CallStatus.MISSED, "abandoned_in_ivr", None, at(30))


def test_a_late_event_with_a_lower_seq_changes_nothing() -> None:
    calls = machine()
    feed(calls, [
        ev("E1:1", 1, "Appeared", "queue", 0, from_=CUSTOMER, to=LINE),
        ev("E1:2", 2, "Connected", "abonent", 10, from_=CUSTOMER, to=OPERATOR_101),
    ])
    late = feed(calls, [
        ev("E1:2", 1, "Appeared", "abonent", 5, from_=CUSTOMER, to=OPERATOR_101),
        ev("E1:1", "0", "Disconnected", "queue", 9, from_=CUSTOMER, to=LINE),
    ])
    assert late == []
    assert calls.counters["out_of_order"] == 2
    (live,) = calls.open_calls()
    assert (live.status, live.answer_time) == (CallStatus.ANSWERED, at(10))


def test_duplicates_change_nothing() -> None:
    script = answered_call("E1", start=START)
    once, twice = machine(), machine()
    assert feed(twice, arrange(script, Order.DUPLICATES)) == feed(once, script)
    # the copy of the last hang-up arrives after the end: counted as such
    assert twice.counters["duplicate"] + twice.counters["after_end"] == len(script)


def test_summary_only() -> None:
    effects = feed(machine(), [answered_call("E1", start=START)[-1]])
    assert kinds(effects) == [CallStarted, CallAnswered, CallEnded]
    assert effects[0].call.status is CallStatus.INCOMING
    ended = effects[-1].call
    assert (ended.status, ended.start_time, ended.answer_time, ended.end_time) == (
        CallStatus.COMPLETED, at(0), at(10), at(70))
    assert (ended.operator_id, ended.caller_number, ended.queue_name) == (
        "op1", "+79001234567", "support")


def test_summary_ends_a_call_whose_last_event_is_missing() -> None:
    calls = machine()
    script = answered_call("E1", start=START)
    lost_hangup, final = script[-2], script[-1]
    effects = feed(calls, [*script[:-2], final])
    assert kinds(effects)[-1] is CallEnded
    assert effects[-1].call.status is CallStatus.COMPLETED
    assert feed(calls, [lost_hangup]) == []
    assert calls.counters["after_end"] == 1


def test_summary_corrects_a_record_the_events_got_wrong() -> None:
    """The operator's Connected was lost: the events say missed, the summary says answered."""
    calls = machine()
    script = [p for p in answered_call("E1", start=START)
              if p.payload.get("call_state") != "Connected"]
    effects = feed(calls, script)
    assert kinds(effects)[-2:] == [CallEnded, CallUpdated]
    assert effects[-2].call.status is CallStatus.MISSED
    fixed = effects[-1].call
    assert (fixed.status, fixed.answer_time, fixed.missed_reason, fixed.operator_id) == (
        CallStatus.COMPLETED, at(10), None, "op1")


def test_a_duplicate_summary_changes_nothing() -> None:
    calls = machine()
    feed(calls, missed_call("E2", start=START))
    assert feed(calls, [missed_call("E2", start=START)[-1]]) == []


def test_shuffled_delivery_ends_with_the_summary_s_record() -> None:
    script = answered_call("E1", start=START)
    reference = feed(machine(), script)[-1].call
    for seed in range(20):
        effects = feed(machine(), arrange(script, Order.SHUFFLED, seed))
        assert kinds(effects).count(CallStarted) == 1
        assert kinds(effects).count(CallEnded) == 1
        ended_at = kinds(effects).index(CallEnded)
        assert CallAnswered not in kinds(effects)[ended_at:]
        final = effects[-1].call
        assert (final.status, final.start_time, final.answer_time, final.end_time,
                final.operator_id, final.missed_reason) == (
            reference.status, reference.start_time, reference.answer_time, reference.end_time,
            reference.operator_id, reference.missed_reason), seed


def test_expire_closes_a_silent_call_as_reconciled_and_the_summary_corrects_it() -> None:
    calls = machine()
    feed(calls, [ev("E1:1", 1, "Appeared", "ivr", 0, from_=CUSTOMER, to=LINE),
                 ev("E1:1", 2, "Connected", "ivr", 5, from_=CUSTOMER, to=LINE)])
    assert calls.expire(at(5) + timedelta(hours=3)) == []
    (closed,) = calls.expire(at(5) + timedelta(hours=4))
    assert (closed.call.status, closed.call.missed_reason, closed.call.end_time) == (
        CallStatus.MISSED, "abandoned_in_ivr", at(5))
    assert calls.open_calls() == []
    assert calls.expire(at(5) + timedelta(hours=5)) == []
    late = summary("E1", from_=CUSTOMER, create_time=START, end_time=START + 40, answered=False,
                   disconnect_reason=1110)
    (fixed,) = feed(calls, [Posting("events/summary", late)])
    assert isinstance(fixed, CallUpdated) and fixed.call.end_time == at(40)


def test_transfer_to_another_operator() -> None:
    effects = feed(machine(), [
        ev("E1:1", 1, "Appeared", "queue", 0, from_=CUSTOMER, to=LINE),
        ev("E1:2", 1, "Connected", "abonent", 10, from_=CUSTOMER, to=OPERATOR_101),
        ev("E1:3", 1, "Connected", "abonent", 40, from_=CUSTOMER, to=OPERATOR_102),
    ])
    assert kinds(effects) == [CallStarted, CallAnswered, CallTransferred]
    transfer = effects[-1]
    assert isinstance(transfer, CallTransferred)
    assert (transfer.from_operator_id, transfer.to_operator_id) == ("op1", "op2")
    assert transfer.call.operator_id == "op1"


def test_outbound_call_is_answered_when_the_outside_party_connects() -> None:
    operator = {"extension": "101", "number": "sip:101@example.mangosip.ru"}
    outside = {"number": "8 900 765 43 21"}
    effects = feed(machine(), [
        ev("E1:1", 1, "Appeared", "abonent", 0, from_=operator, to=outside),
        ev("E1:1", 2, "Connected", "abonent", 8, from_=operator, to=outside),
        ev("E1:1", 3, "Disconnected", "abonent", 68, from_=operator, to=outside,
           disconnect_reason=1100),
    ])
    assert kinds(effects) == [CallStarted, CallAnswered, CallEnded]
    ended = effects[-1].call
    assert (ended.direction, ended.caller_number, ended.called_number) == (
        Direction.OUTBOUND, "101", "+79007654321")
    assert (ended.operator_id, ended.status, ended.duration) == ("op1", CallStatus.COMPLETED, 60)


def test_busy_outbound_call() -> None:
    operator, outside = {"extension": "101"}, {"number": "79007654321"}
    effects = feed(machine(), [
        ev("E1:1", 1, "Appeared", "abonent", 0, from_=operator, to=outside),
        ev("E1:1", 2, "Disconnected", "abonent", 3, from_=operator, to=outside,
           disconnect_reason="1121"),
    ])
    assert (effects[-1].call.status, effects[-1].call.missed_reason) == (CallStatus.MISSED, "busy")


@pytest.mark.parametrize(
    "payload",
    [
        {"entry_id": "E1", "call_id": "E1:1", "seq": "x", "call_state": "Appeared"},
        {"entry_id": "E1", "call_id": "E1:1", "seq": 1, "call_state": "Ringing"},
        {"call_id": "E1:1", "seq": 1, "call_state": "Appeared"},
        {"entry_id": "", "call_id": "E1:1", "seq": 1, "call_state": "Appeared"},
    ],
)
def test_unusable_events_are_counted_not_raised(payload: dict[str, object]) -> None:
    calls = machine()
    assert feed(calls, [Posting("events/call", payload)]) == []
    assert calls.counters["invalid_call_event"] == 1


def test_mixed_types_and_a_missing_timestamp() -> None:
    calls = machine()
    payload = {"entry_id": 42, "call_id": 7, "seq": "1", "call_state": "appeared",
               "location": "IVR", "from": {"number": 79001234567}, "to": {}}
    (started,) = feed(calls, [Posting("events/call", payload)])
    assert isinstance(started, CallStarted)
    assert (started.call.channel_id, started.call.caller_number, started.call.start_time) == (
        "42", "+79001234567", NOW)
    assert calls.counters["no_timestamp"] == 1


def test_other_deliveries_are_no_call_milestones() -> None:
    recording = {"recording_id": "r1", "recording_state": "Completed", "entry_id": "E1",
                 "call_id": "E1:1", "seq": 1, "timestamp": START}
    assert feed(machine(), [Posting("events/recording", recording), Posting("ping", {})]) == []


@pytest.mark.parametrize(
    ("code", "direction", "reached", "reason"),
    [
        (1110, Direction.INBOUND, True, "abandoned_in_queue"),
        (1110, Direction.INBOUND, False, "abandoned_in_ivr"),
        (1100, Direction.INBOUND, False, "abandoned_in_ivr"),
        (None, Direction.INBOUND, True, "abandoned_in_queue"),
        (1111, Direction.INBOUND, True, "no_answer"),
        (1163, Direction.INBOUND, True, "no_answer"),   # queue timeout
        (1164, Direction.INBOUND, True, "no_answer"),   # all operators unavailable
        (1162, Direction.INBOUND, True, "busy"),        # queue full
        (1121, Direction.OUTBOUND, False, "busy"),
        (1123, Direction.OUTBOUND, False, "busy"),      # do-not-disturb
        (1110, Direction.OUTBOUND, False, "no_answer"),
        (1199, Direction.INTERNAL, False, "no_answer"),  # unknown 11xx: an ordinary end
        (2100, Direction.OUTBOUND, False, "failed"),     # billing
        (3200, Direction.OUTBOUND, False, "failed"),     # bad number
        (4200, Direction.INBOUND, True, "failed"),       # unreachable
        (5000, Direction.INBOUND, False, "failed"),      # server
    ],
)
def test_missed_reasons(code: int | None, direction: Direction, reached: bool, reason: str
                        ) -> None:
    assert missed_reason(code, direction, reached) == reason

