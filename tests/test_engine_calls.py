"""Call state machine, as tables: events in -> effects and state out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from engine.effects import (
    CallAnswered,
    CallEnded,
    CallStarted,
    CallTransferred,
    CallUpdated,
    Effect,
)
from engine.events import (
    BridgeEntered,
    BridgeLeft,
    CallerIdChanged,
    ChannelCreated,
    ChannelHungUp,
    ChannelInfo,
    ChannelStateChanged,
    DialUpdated,
    Event,
    Resynced,
)
from engine.machine import Engine
from engine.model import CallStatus, Direction, Operator, OperatorStatus, call_id_for

T0 = datetime(2026, 11, 22, 8, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


OPS = (
    Operator(id="op-1001", extension="1001", group_id="sales", status=OperatorStatus.ONLINE),
    Operator(id="op-1002", extension="1002", group_id="support", status=OperatorStatus.ONLINE),
)


@dataclass
class Ch:
    """A channel under test; methods build the events a PBX would send about it."""

    id: str
    name: str
    number: str = ""
    exten: str = ""
    created: float = 0.0

    def info(self, state: str, number: str | None = None) -> ChannelInfo:
        return ChannelInfo(
            id=self.id, name=self.name, state=state,
            caller_number=self.number if number is None else number,
            exten=self.exten, created=at(self.created),
        )

    def create(self, t: float, state: str = "Down", number: str | None = None) -> ChannelCreated:
        return ChannelCreated(self.info(state, number), at(t))

    def state(self, t: float, state: str) -> ChannelStateChanged:
        return ChannelStateChanged(self.info(state), at(t))

    def caller_id(self, t: float, number: str, state: str = "Ring") -> CallerIdChanged:
        return CallerIdChanged(self.info(state, number), at(t))

    def hangup(self, t: float, cause: int = 16, state: str = "Up") -> ChannelHungUp:
        return ChannelHungUp(self.info(state), cause, "", at(t))

    def enter(self, t: float, bridge: str, state: str = "Up") -> BridgeEntered:
        return BridgeEntered(bridge, self.info(state), at(t))

    def leave(self, t: float, bridge: str, state: str = "Up") -> BridgeLeft:
        return BridgeLeft(bridge, self.info(state), at(t))


def dial(t: float, caller: Ch | None, peer: Ch, status: str, state: str = "Down") -> DialUpdated:
    return DialUpdated(
        peer=peer.info(state), status=status, ts=at(t),
        caller=caller.info("Up") if caller is not None else None,
    )


def run(events: list[Event], operators: tuple[Operator, ...] = OPS) -> tuple[Engine, list[Effect]]:
    engine = Engine(operators)
    effects: list[Effect] = []
    for event in events:
        effects.extend(engine.handle(event))
    return engine, effects


def call_effects(effects: list[Effect]) -> list[Effect]:
    return [e for e in effects if isinstance(
        e, CallStarted | CallAnswered | CallEnded | CallTransferred | CallUpdated)]


def kinds(effects: list[Effect], *types: type) -> list[str]:
    wanted = types or (CallStarted, CallAnswered, CallTransferred, CallEnded)
    return [type(e).__name__ for e in effects if isinstance(e, wanted)]


# The customer as a Local pair (like the trace), agents as Local pairs rung by a queue.
CUST1 = Ch("100.0", "Local/+79001234567@pstn-00000000;1", exten="+79001234567")
CUST2 = Ch("100.1", "Local/+79001234567@pstn-00000000;2", exten="+79001234567")
A1_1 = Ch("100.2", "Local/1001@agents-00000001;1", exten="1001", created=1)
A1_2 = Ch("100.3", "Local/1001@agents-00000001;2", exten="1001", created=1)
A2_1 = Ch("100.4", "Local/1002@agents-00000002;1", exten="1002", created=1)
A2_2 = Ch("100.5", "Local/1002@agents-00000002;2", exten="1002", created=1)
NUMBER = "+79001234567"


def inbound_until_ringing() -> list[Event]:
    """Customer in, dialplan answers, queue rings 1001 and 1002 (ringall)."""
    return [
        CUST1.create(0, "Down"),
        CUST2.create(0, "Ring"),
        CUST1.caller_id(0, NUMBER, "Down"),
        CUST2.caller_id(0, NUMBER),
        dial(0, None, CUST1, ""),
        CUST2.state(0, "Up"),
        CUST1.state(0, "Up"),
        dial(0, None, CUST1, "ANSWER", "Up"),
        A2_1.create(1), A2_2.create(1, "Ring"),
        dial(1, CUST1, A2_1, ""),
        A1_1.create(1), A1_2.create(1, "Ring"),
        dial(1, CUST1, A1_1, ""),
        A2_1.state(1, "Ringing"), dial(1, CUST1, A2_1, "RINGING", "Ringing"),
        A1_1.state(1, "Ringing"), dial(1, CUST1, A1_1, "RINGING", "Ringing"),
    ]


def answered_by_1001() -> list[Event]:
    return [
        A1_2.state(3, "Up"), A1_1.state(3, "Up"),
        dial(3, CUST1, A1_1, "ANSWER", "Up"),
        dial(3, CUST1, A2_1, "CANCEL", "Ringing"),
        dial(3, CUST1, A2_1, "CANCEL", "Ringing"),
        A2_1.hangup(3, 26, "Ringing"),
        A1_1.enter(3, "b1"), CUST1.enter(3, "b1"),
        A2_2.hangup(3, 26, "Ring"),
    ]


def caller_hangs_up(t: float) -> list[Event]:
    return [
        CUST1.leave(t, "b1"), A1_1.leave(t, "b1"),
        A1_1.hangup(t), CUST1.hangup(t), CUST2.hangup(t), A1_2.hangup(t + 0.002),
    ]


def test_inbound_answered_call_lifecycle() -> None:
    engine, effects = run(inbound_until_ringing() + answered_by_1001() + caller_hangs_up(6))
    assert kinds(effects) == ["CallStarted", "CallAnswered", "CallEnded"]
    started, answered, ended = (e for e in effects
                                if isinstance(e, CallStarted | CallAnswered | CallEnded))
    assert started.call.caller_number == NUMBER
    assert started.call.channel_id == CUST1.id
    assert started.call.id == call_id_for(CUST1.id)
    assert started.call.direction is Direction.INBOUND
    assert answered.call.operator_id == "op-1001"
    assert answered.call.operator_extension == "1001"
    assert answered.call.answer_time == at(3)
    assert answered.call.status is CallStatus.ANSWERED
    call = ended.call
    assert call.status is CallStatus.COMPLETED
    assert call.end_time == at(6.002)
    assert (call.duration, call.wait_seconds) == (3, 3)
    assert set(call.offered_operator_ids) == {"op-1001", "op-1002"}
    assert set(call.group_ids) == {"sales", "support"}
    assert set(call.channel_ids) == {c.id for c in (CUST1, CUST2, A1_1, A1_2, A2_1, A2_2)}
    assert call.missed_reason is None
    assert engine.active_calls() == []


def test_rung_legs_are_call_updates_not_milestones() -> None:
    _, effects = run(inbound_until_ringing())
    assert kinds(effects, CallStarted, CallUpdated) == ["CallStarted", "CallUpdated",
                                                        "CallUpdated"]
    last = [e for e in effects if isinstance(e, CallUpdated)][-1]
    assert last.call.offered_operator_ids == ("op-1001", "op-1002")  # by leg creation
    assert last.call.status is CallStatus.INCOMING


def test_caller_hangs_up_while_agents_ring_is_abandoned_in_queue() -> None:
    events = [
        *inbound_until_ringing(),
        dial(5, CUST1, A1_1, "CANCEL", "Ringing"), dial(5, CUST1, A2_1, "CANCEL", "Ringing"),
        CUST1.hangup(5), CUST2.hangup(5),
        A1_1.hangup(5, 16, "Ringing"), A1_2.hangup(5), A2_1.hangup(5), A2_2.hangup(5.01),
    ]
    _, effects = run(events)
    assert kinds(effects) == ["CallStarted", "CallEnded"]
    call = next(e.call for e in effects if isinstance(e, CallEnded))
    assert call.status is CallStatus.MISSED
    assert call.missed_reason == "abandoned_in_queue"
    assert call.answer_time is None
    assert (call.duration, call.wait_seconds) == (0, 5)


def test_ivr_hangup_is_abandoned_in_ivr() -> None:
    trunk = Ch("7.1", "PJSIP/provider-00000001", number="+74951234567", exten="88005553535")
    _, effects = run([trunk.create(0, "Ring"), trunk.state(1, "Up"), trunk.hangup(20)])
    assert kinds(effects) == ["CallStarted", "CallEnded"]
    started = effects[0]
    assert isinstance(started, CallStarted)
    assert started.call.called_number == "88005553535"
    ended = effects[-1]
    assert isinstance(ended, CallEnded)
    assert ended.call.missed_reason == "abandoned_in_ivr"
    assert ended.call.wait_seconds == 20
    assert ended.call.hangup_cause == 16


def test_caller_id_after_creation_delays_call_started() -> None:
    trunk = Ch("7.1", "PJSIP/provider-00000001", exten="500")
    engine = Engine(OPS)
    assert engine.handle(trunk.create(0, "Ring")) == []
    assert engine.active_calls() == []
    effects = engine.handle(trunk.caller_id(0.01, "+79990000000"))
    assert kinds(effects) == ["CallStarted"]
    assert effects[0].call.caller_number == "+79990000000"  # type: ignore[union-attr]
    assert engine.handle(trunk.caller_id(0.01, "+79990000000")) == []


def test_call_without_any_number_is_published_when_it_ends() -> None:
    trunk = Ch("7.1", "PJSIP/provider-00000001", exten="500")
    _, effects = run([trunk.create(0, "Ring"), trunk.hangup(4)])
    assert kinds(effects) == ["CallStarted", "CallEnded"]
    assert effects[0].call.caller_number == "500"  # type: ignore[union-attr]
    assert effects[1].call.missed_reason == "abandoned_in_ivr"  # type: ignore[union-attr]


def test_channel_up_is_not_an_answer() -> None:
    events = [*inbound_until_ringing(), A1_2.state(3, "Up"), A1_1.state(3, "Up")]
    engine, effects = run(events)
    assert "CallAnswered" not in kinds(effects)
    assert engine.active_calls()[0].status is CallStatus.INCOMING


@pytest.mark.parametrize("order", ["state_first", "dial_first"])
def test_dial_answer_and_state_change_in_either_order(order: str) -> None:
    up = [A1_2.state(3, "Up"), A1_1.state(3, "Up")]
    answer = [dial(3, CUST1, A1_1, "ANSWER", "Up")]
    events = inbound_until_ringing() + (up + answer if order == "state_first" else answer + up)
    _, effects = run(events + answered_by_1001()[3:] + caller_hangs_up(6))
    assert kinds(effects) == ["CallStarted", "CallAnswered", "CallEnded"]
    answered = next(e for e in effects if isinstance(e, CallAnswered))
    assert answered.call.answer_time == at(3)


def test_bridge_with_customer_answers_without_dial() -> None:
    events = [
        *inbound_until_ringing(),
        A1_1.state(4, "Up"), A1_1.enter(4, "b1"), CUST1.enter(4.5, "b1"),
    ]
    _, effects = run(events)
    answered = [e for e in effects if isinstance(e, CallAnswered)]
    assert len(answered) == 1
    assert answered[0].call.answer_time == at(4.5)
    assert answered[0].call.operator_id == "op-1001"


def test_duplicates_and_late_frames_change_nothing() -> None:
    engine, _ = run(inbound_until_ringing() + answered_by_1001())
    for event in inbound_until_ringing() + answered_by_1001():
        assert engine.handle(event) == [], event
    ended = []
    for event in caller_hangs_up(6):
        ended.extend(engine.handle(event))
    assert kinds(ended) == ["CallEnded"]
    # Everything about the ended call again: ignored (ended channels are remembered).
    for event in [*caller_hangs_up(6), A1_1.state(7, "Up"), dial(7, CUST1, A1_1, "ANSWER")]:
        assert engine.handle(event) == [], event
    assert engine.active_calls() == []


def test_every_frame_doubled_gives_the_same_effects() -> None:
    events = inbound_until_ringing() + answered_by_1001() + caller_hangs_up(6)
    _, once = run(events)
    _, twice = run([e for event in events for e in (event, event)])
    assert once == twice


def test_unknown_destroyed_channel_is_ignored() -> None:
    stray = Ch("9.9", "PJSIP/1001-000000ff")
    assert run([stray.hangup(1)])[1] == []


def test_transfer_to_second_operator_keeps_the_call() -> None:
    t2_1 = Ch("100.6", "Local/1002@from-internal-00000003;1", created=10)
    t2_2 = Ch("100.7", "Local/1002@from-internal-00000003;2", created=10)
    phone2 = Ch("100.8", "PJSIP/1002-00000004", created=10)
    events = inbound_until_ringing() + answered_by_1001() + [
        # 1001 blind-transfers: a Local channel to 1002 joins the bridge while still ringing.
        A1_1.leave(10, "b1"), A1_1.hangup(10), A1_2.hangup(10),
        t2_1.create(10), t2_2.create(10, "Ring"), t2_1.enter(10, "b1", "Down"),
        phone2.create(10), dial(10, t2_2, phone2, ""), phone2.state(10, "Ringing"),
        dial(10, t2_2, phone2, "RINGING", "Ringing"),
    ]
    engine, effects = run(events)
    assert kinds(effects) == ["CallStarted", "CallAnswered"]
    operator2 = engine.operator("op-1002")
    assert operator2 is not None and operator2.status_detail == "ringing"
    more: list[Effect] = []
    for event in [phone2.state(14, "Up"), dial(14, t2_2, phone2, "ANSWER", "Up"),
                  t2_2.state(14, "Up"), t2_1.state(14, "Up"),
                  *[e for e in [CUST1.hangup(20), CUST2.hangup(20)]],
                  t2_1.hangup(20), t2_2.hangup(20), phone2.hangup(20)]:
        more.extend(engine.handle(event))
    assert kinds(more) == ["CallTransferred", "CallEnded"]
    transferred = more[0]
    assert isinstance(transferred, CallTransferred)
    assert (transferred.from_operator_id, transferred.to_operator_id) == ("op-1001", "op-1002")
    assert transferred.call.id == call_id_for(CUST1.id)
    assert transferred.call.current_operator_id == "op-1002"
    ended = next(e for e in more if isinstance(e, CallEnded))
    assert ended.call.status is CallStatus.COMPLETED
    assert ended.call.operator_id == "op-1001"           # who answered
    assert ended.call.transfer_operator_ids == ("op-1002",)
    assert ended.call.answer_time == at(3)
    assert ended.call.duration == 17


def test_outbound_call_answered_by_customer() -> None:
    phone = Ch("200.1", "PJSIP/1001-00000010", number="1001", exten="79005556677")
    trunk = Ch("200.2", "PJSIP/provider-00000011", number="1001", created=0.1)
    events = [
        phone.create(0, "Ring"), trunk.create(0.1), dial(0.1, phone, trunk, ""),
        trunk.state(2, "Ringing"), dial(2, phone, trunk, "RINGING", "Ringing"),
        trunk.state(5, "Up"), dial(5, phone, trunk, "ANSWER", "Up"),
        phone.state(5, "Up"), phone.enter(5, "b9"), trunk.enter(5, "b9"),
        trunk.hangup(65), phone.hangup(65),
    ]
    _, effects = run(events)
    assert kinds(effects) == ["CallStarted", "CallAnswered", "CallEnded"]
    started = effects[0]
    assert isinstance(started, CallStarted)
    call = started.call
    assert (call.direction, call.caller_number, call.called_number) == (
        Direction.OUTBOUND, "1001", "79005556677")
    assert call.channel_id == phone.id
    assert call.operator_id == "op-1001"
    ended = next(e for e in effects if isinstance(e, CallEnded))
    assert (ended.call.status, ended.call.duration, ended.call.wait_seconds) == (
        CallStatus.COMPLETED, 60, 5)


@pytest.mark.parametrize(
    ("dial_status", "cause", "reason"),
    [("BUSY", 17, "busy"), ("NOANSWER", 19, "no_answer"), ("CHANUNAVAIL", 34, "failed"),
     ("CANCEL", 16, "no_answer")],
)
def test_outbound_not_answered_reasons(dial_status: str, cause: int, reason: str) -> None:
    phone = Ch("200.1", "PJSIP/1001-00000010", number="1001", exten="79005556677")
    trunk = Ch("200.2", "PJSIP/provider-00000011", created=0.1)
    events = [
        phone.create(0, "Ring"), trunk.create(0.1), dial(0.1, phone, trunk, ""),
        dial(9, phone, trunk, dial_status), trunk.hangup(9, cause, "Down"),
        phone.hangup(9.5, 16, "Ring"),
    ]
    _, effects = run(events)
    ended = next(e for e in effects if isinstance(e, CallEnded))
    assert ended.call.status is CallStatus.MISSED
    assert ended.call.missed_reason == reason


def test_internal_call_operator_to_operator() -> None:
    phone1 = Ch("300.1", "PJSIP/1001-00000020", number="1001", exten="1002")
    phone2 = Ch("300.2", "PJSIP/1002-00000021", number="1001", created=0.1)
    events = [
        phone1.create(0, "Ring"), phone2.create(0.1), dial(0.1, phone1, phone2, ""),
        phone2.state(0.2, "Ringing"), dial(0.2, phone1, phone2, "RINGING", "Ringing"),
        phone2.state(3, "Up"), dial(3, phone1, phone2, "ANSWER", "Up"),
        phone2.hangup(30), phone1.hangup(30),
    ]
    _, effects = run(events)
    assert kinds(effects) == ["CallStarted", "CallAnswered", "CallEnded"]
    answered = next(e for e in effects if isinstance(e, CallAnswered))
    assert answered.call.direction is Direction.INTERNAL
    assert answered.call.operator_id == "op-1002"
    assert answered.call.caller_number == "1001"
    assert set(answered.call.offered_operator_ids) == {"op-1001", "op-1002"}


def test_pending_legs_without_a_call_vanish_silently() -> None:
    leg = Ch("400.1", "Local/1001@agents-00000009;1")
    engine, effects = run([leg.create(0), leg.hangup(1, 16, "Down")])
    assert call_effects(effects) == []
    assert engine.active_calls() == []


def test_resync_ends_phantom_call_and_picks_up_new_one() -> None:
    engine, _ = run(inbound_until_ringing() + answered_by_1001())
    assert len(engine.active_calls()) == 1
    new_cust1 = Ch("500.0", "Local/+79005550000@pstn-00000007;1", number="+79005550000",
                   exten="+79005550000", created=50)
    new_cust2 = Ch("500.1", "Local/+79005550000@pstn-00000007;2", number="+79005550000",
                   exten="+79005550000", created=50)
    agent1 = Ch("500.2", "Local/1002@agents-00000008;1", number="+79005550000", created=52)
    agent2 = Ch("500.3", "Local/1002@agents-00000008;2", number="+79005550000", created=52)
    resync = Resynced(
        channels=(new_cust1.info("Up"), new_cust2.info("Up"), agent1.info("Up"),
                  agent2.info("Up")),
        endpoints=(), ts=at(60),
    )
    effects = engine.handle(resync)
    assert kinds(effects) == ["CallEnded", "CallStarted", "CallAnswered"]
    phantom = effects[0]
    assert isinstance(phantom, CallEnded)
    assert phantom.call.id == call_id_for(CUST1.id)
    assert phantom.call.end_time == at(60)
    assert phantom.call.status is CallStatus.COMPLETED
    started = next(e for e in effects if isinstance(e, CallStarted))
    assert started.call.id == call_id_for(new_cust1.id)
    assert started.call.start_time == at(50)
    answered = next(e for e in effects if isinstance(e, CallAnswered))
    assert (answered.call.operator_id, answered.call.answer_time) == ("op-1002", at(60))
    assert engine.handle(resync) == []
    assert [c.id for c in engine.active_calls()] == [call_id_for(new_cust1.id)]
    op1 = engine.operator("op-1001")
    assert op1 is not None and op1.status is OperatorStatus.ONLINE
    op2 = engine.operator("op-1002")
    assert op2 is not None and (op2.status, op2.current_calls) == (OperatorStatus.BUSY, 1)


def test_resync_customer_only_call_is_not_answered() -> None:
    trunk = Ch("600.1", "PJSIP/provider-00000030", number="+79001112233", created=1)
    effects = Engine(OPS).handle(Resynced((trunk.info("Up"),), (), at(5)))
    assert kinds(effects) == ["CallStarted"]


def test_call_for_channel_and_accessors() -> None:
    engine, _ = run(inbound_until_ringing() + answered_by_1001())
    call = engine.call_for_channel(A1_2.id)
    assert call is not None and call.id == call_id_for(CUST1.id)
    assert engine.call_for_channel("nope") is None
    assert [c.status for c in engine.active_calls()] == [CallStatus.ANSWERED]


def test_consultation_call_bridged_into_customer_call_is_a_transfer() -> None:
    consult = Ch("700.1", "PJSIP/1001-00000040", number="1001", exten="1002", created=10)
    phone2 = Ch("700.2", "PJSIP/1002-00000041", number="1001", created=10)
    events = inbound_until_ringing() + answered_by_1001() + [
        consult.create(10, "Ring"), phone2.create(10), dial(10, consult, phone2, ""),
        phone2.state(12, "Up"), dial(12, consult, phone2, "ANSWER", "Up"),
    ]
    engine, effects = run(events)
    assert kinds(effects) == ["CallStarted", "CallAnswered", "CallStarted", "CallAnswered"]
    assert len(engine.active_calls()) == 2
    # Attended transfer completes: 1002's channel moves into the customer's bridge.
    effects = engine.handle(phone2.enter(15, "b1"))
    assert kinds(effects) == ["CallEnded", "CallTransferred"]
    consult_end = effects[0]
    assert isinstance(consult_end, CallEnded)
    assert consult_end.call.direction is Direction.INTERNAL
    assert consult_end.call.end_time == at(15)
    moved = effects[1]
    assert isinstance(moved, CallTransferred)
    assert moved.call.id == call_id_for(CUST1.id)
    assert (moved.from_operator_id, moved.to_operator_id) == ("op-1001", "op-1002")
    assert [c.id for c in engine.active_calls()] == [call_id_for(CUST1.id)]


# -- issue 8: operators as a call center sees them ------------------------------------------


def customer_in_queue() -> list[Event]:
    """The customer reaches the queue (the first events of ``inbound_until_ringing``)."""
    return inbound_until_ringing()[:8]


UNKNOWN_LOCAL_1 = Ch("100.6", "Local/1099@agents-00000003;1", exten="1099", created=1)
UNKNOWN_LOCAL_2 = Ch("100.7", "Local/1099@agents-00000003;2", exten="1099", created=1)
UNKNOWN_PHONE = Ch("100.8", "PJSIP/1099-0000000a", created=1)


def rung_and_answered(leg: Ch, *, by_dial: bool) -> list[Event]:
    """The queue rings ``leg`` (an extension of no operator); it answers, the caller hangs up."""
    answer: list[Event] = [leg.state(3, "Up")]
    if by_dial:
        answer.append(dial(3, CUST1, leg, "ANSWER", "Up"))
    answer += [leg.enter(3, "b1"), CUST1.enter(3, "b1")]
    return [
        *customer_in_queue(),
        leg.create(1), dial(1, CUST1, leg, ""),
        leg.state(1, "Ringing"), dial(1, CUST1, leg, "RINGING", "Ringing"),
        *answer,
        CUST1.leave(6, "b1"), leg.leave(6, "b1"),
        leg.hangup(6), CUST1.hangup(6), CUST2.hangup(6.002),
    ]


@pytest.mark.parametrize("leg", [UNKNOWN_LOCAL_1, UNKNOWN_PHONE], ids=["local", "pjsip"])
@pytest.mark.parametrize("by_dial", [True, False], ids=["dial-answer", "bridge-only"])
def test_answered_by_an_extension_of_no_operator_is_answered(leg: Ch, by_dial: bool) -> None:
    _, effects = run(rung_and_answered(leg, by_dial=by_dial))
    assert kinds(effects) == ["CallStarted", "CallAnswered", "CallEnded"]
    answered = next(e.call for e in effects if isinstance(e, CallAnswered))
    assert (answered.operator_id, answered.operator_extension) == (None, "1099")
    assert answered.answer_time == at(3)
    ended = next(e.call for e in effects if isinstance(e, CallEnded))
    assert (ended.status, ended.missed_reason) == (CallStatus.COMPLETED, None)
    assert (ended.operator_id, ended.operator_extension) == (None, "1099")
    assert ended.channel_id == CUST1.id                 # the customer stays the calling party
    assert (ended.duration, ended.wait_seconds) == (3, 3)
    assert ended.offered_operator_ids == ()


def test_a_local_pair_of_no_operator_answers_once_with_both_halves() -> None:
    events = [
        *customer_in_queue(),
        UNKNOWN_LOCAL_1.create(1), UNKNOWN_LOCAL_2.create(1, "Ring"),
        dial(1, CUST1, UNKNOWN_LOCAL_1, ""),
        UNKNOWN_LOCAL_2.state(3, "Up"), UNKNOWN_LOCAL_1.state(3, "Up"),
        dial(3, CUST1, UNKNOWN_LOCAL_1, "ANSWER", "Up"),
        UNKNOWN_LOCAL_1.enter(3, "b1"), CUST1.enter(3, "b1"),
        UNKNOWN_LOCAL_1.hangup(6), UNKNOWN_LOCAL_2.hangup(6), CUST1.hangup(6), CUST2.hangup(6),
    ]
    _, effects = run(events)
    assert kinds(effects) == ["CallStarted", "CallAnswered", "CallEnded"]
    ended = next(e.call for e in effects if isinstance(e, CallEnded))
    assert (ended.status, ended.operator_extension) == (CallStatus.COMPLETED, "1099")


def test_unknown_extension_rung_without_answer_is_abandoned_in_queue() -> None:
    events = [
        *customer_in_queue(),
        UNKNOWN_PHONE.create(1), dial(1, CUST1, UNKNOWN_PHONE, ""),
        dial(5, CUST1, UNKNOWN_PHONE, "CANCEL", "Ringing"),
        UNKNOWN_PHONE.hangup(5, 26, "Ringing"), CUST1.hangup(5), CUST2.hangup(5),
    ]
    _, effects = run(events)
    ended = next(e.call for e in effects if isinstance(e, CallEnded))
    assert (ended.status, ended.missed_reason) == (CallStatus.MISSED, "abandoned_in_queue")


def test_a_known_operator_transferring_to_an_unknown_extension_records_no_transfer() -> None:
    """The call stays the answering operator's: an extension of no operator cannot be named."""
    events = [
        *inbound_until_ringing(), *answered_by_1001(),
        UNKNOWN_PHONE.create(4), dial(4, CUST1, UNKNOWN_PHONE, ""),
        UNKNOWN_PHONE.state(5, "Up"), dial(5, CUST1, UNKNOWN_PHONE, "ANSWER", "Up"),
        UNKNOWN_PHONE.enter(5, "b1"),
    ]
    _, effects = run(events)
    assert kinds(effects) == ["CallStarted", "CallAnswered"]


@pytest.mark.parametrize(
    ("scenario", "expected_rung"),
    [
        ("abandoned_in_queue", ("op-1001", "op-1002")),
        ("answered_by_1001", ("op-1001", "op-1002")),
        ("outbound_no_answer", ()),          # the operator placing the call was not rung
        ("internal_no_answer", ("op-1002",)),
    ],
)
def test_the_call_keeps_the_operators_it_rang(
    scenario: str, expected_rung: tuple[str, ...]
) -> None:
    phone1 = Ch("300.1", "PJSIP/1001-00000020", number="1001", exten="1002")
    phone2 = Ch("300.2", "PJSIP/1002-00000021", number="1001", created=0.1)
    outside = Ch("200.2", "PJSIP/provider-00000011", created=0.1)
    scenarios: dict[str, list[Event]] = {
        "abandoned_in_queue": [
            *inbound_until_ringing(),
            dial(5, CUST1, A1_1, "CANCEL", "Ringing"), dial(5, CUST1, A2_1, "CANCEL", "Ringing"),
            CUST1.hangup(5), CUST2.hangup(5), A1_1.hangup(5, 26), A1_2.hangup(5),
            A2_1.hangup(5, 26), A2_2.hangup(5),
        ],
        "answered_by_1001": [*inbound_until_ringing(), *answered_by_1001(),
                             *caller_hangs_up(6)],
        "outbound_no_answer": [
            phone1.create(0, "Ring"), outside.create(0.1), dial(0.1, phone1, outside, ""),
            dial(9, phone1, outside, "NOANSWER"), outside.hangup(9, 19, "Down"),
            phone1.hangup(9.5, 16, "Ring"),
        ],
        "internal_no_answer": [
            phone1.create(0, "Ring"), phone2.create(0.1), dial(0.1, phone1, phone2, ""),
            dial(9, phone1, phone2, "NOANSWER"), phone2.hangup(9, 19, "Ringing"),
            phone1.hangup(9.5, 16, "Ring"),
        ],
    }
    _, effects = run(scenarios[scenario])
    ended = next(e.call for e in effects if isinstance(e, CallEnded))
    assert ended.rung_operator_ids == expected_rung
    assert set(expected_rung) <= set(ended.offered_operator_ids)
