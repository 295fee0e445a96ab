"""ws.messages, ws.access and ws.hub: pure, no sockets."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from engine.effects import (
    CallAnswered,
    CallEnded,
    CallStarted,
    CallTransferred,
    CallUpdated,
    Effect,
    OperatorLoggedIn,
    OperatorStatusChanged,
    OperatorUpdated,
)
from engine.model import Call, CallStatus, Direction, Operator, OperatorStatus
from tests.helpers import publish_message
from ws.access import Viewer, can_see, can_see_call, can_see_operator
from ws.hub import Hub, SendQueue, Subscription
from ws.messages import call_view, iso, operator_view, to_message

T0 = datetime(2025, 1, 1, 14, 30, tzinfo=UTC)
T_PUB = datetime(2025, 1, 1, 14, 35, 1, tzinfo=UTC)

OP_A1 = Operator(id="op-a1", extension="1001", name="Ann", group_id="g-a", last_activity=T0)
OP_A2 = Operator(id="op-a2", extension="1002", name="Abe", group_id="g-a")
OP_B1 = Operator(id="op-b1", extension="2001", name="Bob", group_id="g-b", last_activity=T0)

CALL_A = Call(
    id="call-a", channel_id="ch-a", caller_number="+79001234567", start_time=T0,
    group_ids=("g-a",), offered_operator_ids=("op-a1",), queue_name="general",
)
CALL_B = Call(
    id="call-b", channel_id="ch-b", caller_number="+79007654321", start_time=T0,
    group_ids=("g-b",), offered_operator_ids=("op-b1",),
)
CALL_QUEUED = Call(id="call-q", channel_id="ch-q", caller_number="+7900", start_time=T0)

ADMIN = Viewer("u-admin", "admin")
MANAGER = Viewer("u-manager", "manager")
SUP_ALL = Viewer("u-sup", "supervisor")
SUP_A = Viewer("u-sup-a", "supervisor", group_id="g-a")
OPER_A1 = Viewer("u-a1", "operator", group_id="g-a", operator_id="op-a1")
OPER_NO_RECORD = Viewer("u-x", "operator")
AUDITOR = Viewer("u-aud", "auditor")


def decode(data: bytes) -> Any:
    return orjson.loads(data)


def drain(sub: Subscription) -> list[Any]:
    out = []
    while not sub.queue.empty():
        out.append(decode(sub.queue.get_nowait()))
    return out


def fixed_hub(**kwargs: Any) -> Hub:
    return Hub(clock=lambda: T_PUB, **kwargs)


# -- messages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dt", "text"),
    [
        (datetime(2025, 1, 1, 14, 30, tzinfo=UTC), "2025-01-01T14:30:00Z"),
        (datetime(2025, 1, 1, 14, 30, 5, 999_999, tzinfo=UTC), "2025-01-01T14:30:05Z"),
        (datetime(2025, 1, 1, 17, 30, tzinfo=timezone(timedelta(hours=3))), "2025-01-01T14:30:00Z"),
        (datetime(2025, 1, 1, 14, 30), "2025-01-01T14:30:00Z"),  # naive = UTC
        (None, None),
    ],
)
def test_iso(dt: datetime | None, text: str | None) -> None:
    assert iso(dt) == text


ANSWERED_A = dataclasses.replace(
    CALL_A, status=CallStatus.ANSWERED, operator_id="op-a1", answer_time=T0 + timedelta(seconds=5)
)
ENDED_A = dataclasses.replace(
    ANSWERED_A, status=CallStatus.COMPLETED, end_time=T0 + timedelta(seconds=195)
)
MISSED_B = dataclasses.replace(
    CALL_B, status=CallStatus.MISSED, end_time=T0 + timedelta(seconds=40)
)
BUSY_A1 = dataclasses.replace(OP_A1, status=OperatorStatus.BUSY, status_detail="in_call",
                              last_activity=T0)


@pytest.mark.parametrize(
    ("effect", "message"),
    [
        (CallStarted(CALL_A), ("call_started", {
            "call_id": "call-a", "channel_id": "ch-a", "caller_number": "+79001234567",
            "timestamp": "2025-01-01T14:30:00Z",
        })),
        (CallAnswered(ANSWERED_A), ("call_answered", {
            "call_id": "call-a", "operator_id": "op-a1", "answer_time": "2025-01-01T14:30:05Z",
        })),
        (CallEnded(ENDED_A), ("call_ended", {
            "call_id": "call-a", "end_time": "2025-01-01T14:33:15Z", "duration": 190,
            "status": "completed",
        })),
        (CallEnded(MISSED_B), ("call_ended", {
            "call_id": "call-b", "end_time": "2025-01-01T14:30:40Z", "duration": 0,
            "status": "missed",
        })),
        (CallTransferred(ANSWERED_A, "op-a1", "op-b1"), ("call_transferred", {
            "call_id": "call-a", "from_operator_id": "op-a1", "to_operator_id": "op-b1",
            "timestamp": "2025-01-01T14:35:01Z",
        })),
        (OperatorStatusChanged(BUSY_A1, previous="online"), ("operator_status_changed", {
            "operator_id": "op-a1", "status": "busy", "timestamp": "2025-01-01T14:30:00Z",
            "activity": "in_call", "pause_reason": None, "previous_status": "online",
        })),
        (OperatorStatusChanged(OP_A2, previous="online"), ("operator_status_changed", {
            "operator_id": "op-a2", "status": "offline", "timestamp": "2025-01-01T14:35:01Z",
            "activity": None, "pause_reason": None, "previous_status": "online",
        })),
        (OperatorLoggedIn(OP_A1), ("operator_logged_in", {
            "operator_id": "op-a1", "extension": "1001", "timestamp": "2025-01-01T14:30:00Z",
        })),
        (CallUpdated(CALL_A), None),
        (OperatorUpdated(OP_A1), None),
    ],
)
def test_to_message(effect: Effect, message: tuple[str, dict[str, Any]] | None) -> None:
    assert to_message(effect, T_PUB) == message


def test_snapshot_views() -> None:
    assert call_view(ANSWERED_A) == {
        "call_id": "call-a", "channel_id": "ch-a", "caller_number": "+79001234567",
        "status": "answered", "start_time": "2025-01-01T14:30:00Z",
        "answer_time": "2025-01-01T14:30:05Z", "operator_id": "op-a1", "queue": "general",
        "direction": "inbound",
    }
    outbound = dataclasses.replace(CALL_B, direction=Direction.OUTBOUND)
    assert call_view(outbound)["direction"] == "outbound"
    assert call_view(outbound)["answer_time"] is None
    assert operator_view(BUSY_A1) == {
        "operator_id": "op-a1", "extension": "1001", "name": "Ann", "status": "busy",
        "status_detail": "in_call", "activity": "in_call", "pause_reason": None,
        "current_calls": 0, "max_concurrent_calls": 1,
        "last_activity": "2025-01-01T14:30:00Z", "group_id": "g-a",
    }


# -- access -----------------------------------------------------------------------------------

EVERYONE = (ADMIN, MANAGER, SUP_ALL, SUP_A, OPER_A1, OPER_NO_RECORD, AUDITOR)


@pytest.mark.parametrize(
    ("subject", "visible_to"),
    [
        (CALL_A, {ADMIN, MANAGER, SUP_ALL, SUP_A, OPER_A1}),
        (CALL_B, {ADMIN, MANAGER, SUP_ALL}),
        (CALL_QUEUED, {ADMIN, MANAGER, SUP_ALL}),
        (OP_A1, {ADMIN, MANAGER, SUP_ALL, SUP_A, OPER_A1}),
        (OP_A2, {ADMIN, MANAGER, SUP_ALL, SUP_A}),
        (OP_B1, {ADMIN, MANAGER, SUP_ALL}),
    ],
)
def test_visibility_by_role(subject: Call | Operator, visible_to: set[Viewer]) -> None:
    for viewer in EVERYONE:
        if isinstance(subject, Call):
            seen = can_see_call(viewer, subject)
            assert can_see(viewer, CallStarted(subject)) is seen
            assert can_see(viewer, CallEnded(subject)) is seen
        else:
            seen = can_see_operator(viewer, subject)
            assert can_see(viewer, OperatorStatusChanged(subject, "offline")) is seen
            assert can_see(viewer, OperatorLoggedIn(subject)) is seen
        assert seen is (viewer in visible_to), viewer


def test_operator_sees_a_transfer_from_or_to_them() -> None:
    # op-a1 is not in the call's offered list here, but the transfer names them.
    call = dataclasses.replace(CALL_B, offered_operator_ids=("op-b1",))
    assert can_see(OPER_A1, CallTransferred(call, "op-b1", "op-a1"))
    assert can_see(OPER_A1, CallTransferred(call, "op-a1", "op-b1"))
    assert not can_see(OPER_A1, CallTransferred(call, "op-b1", "op-b2"))
    assert not can_see(SUP_A, CallTransferred(call, "op-b1", "op-a1"))  # groups come from the call


# -- hub --------------------------------------------------------------------------------------


def test_envelopes_ids_and_unpublished_effects() -> None:
    hub = fixed_hub()
    with hub.subscribe(ADMIN) as sub:
        hub.publish([CallStarted(CALL_A), CallUpdated(CALL_A), OperatorUpdated(OP_A1)])
        hub.publish([OperatorLoggedIn(OP_A1), CallEnded(MISSED_B)])
        assert drain(sub) == [
            {"id": 1, "ts": "2025-01-01T14:35:01Z", "type": "call_started", "data": {
                "call_id": "call-a", "channel_id": "ch-a", "caller_number": "+79001234567",
                "timestamp": "2025-01-01T14:30:00Z"}},
            {"id": 2, "ts": "2025-01-01T14:35:01Z", "type": "operator_logged_in", "data": {
                "operator_id": "op-a1", "extension": "1001", "timestamp": "2025-01-01T14:30:00Z"}},
            {"id": 3, "ts": "2025-01-01T14:35:01Z", "type": "call_ended", "data": {
                "call_id": "call-b", "end_time": "2025-01-01T14:30:40Z", "duration": 0,
                "status": "missed"}},
        ]
    assert hub.last_id == 3
    assert (hub.stats.published, hub.stats.delivered, hub.stats.dropped_clients) == (3, 3, 0)


def test_fan_out_follows_visibility() -> None:
    hub = fixed_hub()
    subs = {viewer: hub.subscribe(viewer) for viewer in EVERYONE}
    # Same scope as SUP_A / OPER_A1 but other users: visibility is computed once per scope.
    twins = {
        SUP_A: hub.subscribe(dataclasses.replace(SUP_A, user_id="u-sup-a2")),
        OPER_A1: hub.subscribe(dataclasses.replace(OPER_A1, user_id="u-a1-bis")),
    }
    sup_b = hub.subscribe(Viewer("u-sup-b", "supervisor", group_id="g-b"))
    hub.publish([CallStarted(CALL_A), CallStarted(CALL_B), OperatorLoggedIn(OP_A2)])
    got = {viewer: [(m["id"], m["type"]) for m in drain(sub)] for viewer, sub in subs.items()}
    everything = [(1, "call_started"), (2, "call_started"), (3, "operator_logged_in")]
    assert got == {
        ADMIN: everything,
        MANAGER: everything,
        SUP_ALL: everything,
        SUP_A: [(1, "call_started"), (3, "operator_logged_in")],
        OPER_A1: [(1, "call_started")],
        OPER_NO_RECORD: [],
        AUDITOR: [],
    }
    for viewer, twin in twins.items():
        assert [(m["id"], m["type"]) for m in drain(twin)] == got[viewer]
    assert [m["id"] for m in drain(sup_b)] == [2]
    assert hub.stats.delivered == 3 * 3 + 2 + 1 + 2 + 1 + 1


def test_each_message_is_serialized_once_and_shared() -> None:
    calls = []

    def counting_dumps(obj: Any) -> bytes:
        calls.append(obj)
        return orjson.dumps(obj)

    hub = fixed_hub(dumps=counting_dumps)
    subs = [hub.subscribe(v) for v in (ADMIN, MANAGER, SUP_A, OPER_A1)]
    hub.publish([CallStarted(CALL_A)])
    assert len(calls) == 1
    payloads = [sub.queue.get_nowait() for sub in subs]
    assert all(p is payloads[0] for p in payloads)  # the very same bytes object


def test_filter() -> None:
    hub = fixed_hub()
    sub = hub.subscribe(ADMIN)
    sub.set_filter(["call_ended", "operator_logged_in"])
    hub.publish([CallStarted(CALL_A), CallEnded(MISSED_B), OperatorLoggedIn(OP_A1)])
    got = [(m["id"], m["type"]) for m in drain(sub)]
    assert got == [(2, "call_ended"), (3, "operator_logged_in")]
    with pytest.raises(ValueError, match="bogus"):
        sub.set_filter(["call_ended", "bogus"])
    assert sub.types == {"call_ended", "operator_logged_in"}  # unchanged by the bad request
    sub.set_filter(None)
    hub.publish([CallStarted(CALL_A)])
    assert [m["type"] for m in drain(sub)] == ["call_started"]


def test_slow_subscriber_overflows_alone() -> None:
    hub = fixed_hub()
    overflows: list[str] = []
    slow = hub.subscribe(ADMIN, lambda: overflows.append("slow"), maxsize=2)
    fast = hub.subscribe(MANAGER, lambda: overflows.append("fast"), maxsize=100)
    for _ in range(5):
        hub.publish([CallStarted(CALL_A)])
    assert overflows == ["slow"]  # once, not once per dropped message
    assert slow.overflowed and not fast.overflowed
    assert [m["id"] for m in drain(slow)] == [1, 2]
    assert [m["id"] for m in drain(fast)] == [1, 2, 3, 4, 5]
    assert slow.put(b"late") is False  # nothing more for an overflowed subscriber
    assert (hub.stats.delivered, hub.stats.dropped_clients) == (7, 1)


def test_failing_listeners_do_not_break_the_fan_out() -> None:
    hub = fixed_hub()

    def explode() -> None:
        raise RuntimeError("boom")

    first = hub.subscribe(ADMIN, explode, maxsize=1)
    unsubscribing: list[Subscription] = []
    second = hub.subscribe(ADMIN, lambda: unsubscribing[0].close(), maxsize=1)
    unsubscribing.append(second)
    third = hub.subscribe(ADMIN)
    hub.publish([CallStarted(CALL_A)])
    hub.publish([CallStarted(CALL_B)])  # first and second overflow here
    assert first.overflowed and second.overflowed
    assert hub.subscriber_count == 2
    assert [m["id"] for m in drain(third)] == [1, 2]

    def bad_audience(viewer: Viewer) -> bool:
        if viewer is MANAGER:
            raise KeyError(viewer)
        return True

    with hub.subscribe(MANAGER) as manager:
        publish_message(hub, "bench", {"n": 1}, bad_audience)
        assert drain(manager) == []
    assert [m["data"] for m in drain(third)] == [{"n": 1}]


def test_subscription_context_manager_unsubscribes() -> None:
    hub = fixed_hub()
    with hub.subscribe(ADMIN) as sub:
        assert hub.subscriber_count == 1
    assert hub.subscriber_count == 0
    hub.publish([CallStarted(CALL_A)])
    assert sub.queue.empty()
    assert hub.last_id == 1  # ids advance with or without listeners


def test_direct_message_audience_decides_alone() -> None:
    hub = fixed_hub()
    admin, sup = hub.subscribe(ADMIN), hub.subscribe(SUP_A)
    assert publish_message(hub, "note", {"x": 1}, lambda v: v.role == "supervisor") == 1
    assert publish_message(hub, "note", {"x": 2}) == 2
    assert [m["data"]["x"] for m in drain(admin)] == [2]
    assert drain(sup) == [
        {"id": 1, "ts": "2025-01-01T14:35:01Z", "type": "note", "data": {"x": 1}},
        {"id": 2, "ts": "2025-01-01T14:35:01Z", "type": "note", "data": {"x": 2}},
    ]


async def test_send_queue_wakes_its_consumer() -> None:
    queue = SendQueue(2)
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not getter.done()
    queue.put_nowait(b"a")
    queue.put_nowait(b"b")
    with pytest.raises(asyncio.QueueFull):
        queue.put_nowait(b"c")
    assert await getter == b"a"
    assert await queue.get() == b"b"
    assert queue.empty()
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
    waiting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    waiting.cancel()  # a cancelled consumer leaves the queue usable
    with pytest.raises(asyncio.CancelledError):
        await waiting
    queue.put_nowait(b"d")
    assert await queue.get() == b"d"
