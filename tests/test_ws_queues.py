"""``queue_updated`` on the WebSocket: its shape, who sees it, and coalescing per queue."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from engine.effects import OperatorLoggedIn, OperatorLoggedOut, QueueUpdated
from engine.events import QueueCallerJoined, QueueCallerLeft, QueueMemberChanged
from engine.machine import Engine
from engine.model import MemberState, Operator, OperatorStatus, Queue, QueueMember
from ws.access import Viewer, can_see
from ws.hub import Hub, Subscription
from ws.messages import EVENT_TYPES, to_message

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
OP_A = Operator(id="op-a", extension="1001", group_id="g-a", status=OperatorStatus.ONLINE)
OP_B = Operator(id="op-b", extension="1002", group_id="g-b", status=OperatorStatus.ONLINE)


def queue(name: str = "support", *members: QueueMember) -> Queue:
    return Queue(name, 20, T0, members=members)


MEMBER_A = QueueMember("Local/1001@agents", "Agent 1001", "op-a", "g-a")
MEMBER_B = QueueMember("Local/1002@agents", "Agent 1002", "op-b", "g-b", MemberState.PAUSED,
                       paused=True, pause_reason="lunch")


def drain(sub: Subscription) -> list[Any]:
    out = []
    while not sub.queue.empty():
        out.append(orjson.loads(sub.queue.get_nowait()))
    return out


def test_queue_updated_message_carries_the_live_queue() -> None:
    engine = Engine((OP_A, OP_B))
    engine.handle(QueueMemberChanged("support", "Local/1001@agents", T0, name="Agent 1001"))
    engine.handle(QueueCallerJoined("support", "c1", T0, 1, "+79001234567",
                                    service_level_seconds=30))
    engine.handle(QueueCallerJoined("support", "c2", T0 + timedelta(seconds=5), 2))
    effects = engine.handle(QueueCallerLeft("support", "c1", "answered", T0 + timedelta(seconds=8),
                                            8.0, "Local/1001@agents"))
    updated = [e for e in effects if isinstance(e, QueueUpdated)]
    assert len(updated) == 1
    message = to_message(updated[0])
    assert message is not None
    type_, data = message
    assert type_ == "queue_updated" and type_ in EVENT_TYPES
    assert {k: data[k] for k in ("queue", "service_level_seconds", "callers_waiting",
                                 "longest_wait_seconds", "agents_available", "agents_busy",
                                 "agents_paused")} == {
        "queue": "support", "service_level_seconds": 30, "callers_waiting": 1,
        "longest_wait_seconds": 3, "agents_available": 1, "agents_busy": 0, "agents_paused": 0}
    assert data["callers"] == [{"channel_id": "c2", "position": 2,
                                "waiting_since": "2026-12-02T09:00:05Z", "caller_number": ""}]
    assert data["members"][0] | {"login_time": None} == {
        "interface": "Local/1001@agents", "name": "Agent 1001", "operator_id": "op-a",
        "state": "available", "paused": False, "pause_reason": None, "calls_taken": 1,
        "last_call": "2026-12-02T09:00:08Z", "login_time": None, "wrapup_until": None}
    assert set(data["stats"]) == {"15m", "1h", "24h", "day"}
    assert data["stats"]["15m"] == {
        "offered": 1, "answered": 1, "answered_within_threshold": 1, "abandoned": 0,
        "service_level": 100.0, "abandon_rate": 0.0, "average_speed_of_answer": 8.0,
        "average_handle_time": None}


def test_login_and_logout_messages() -> None:
    login = to_message(OperatorLoggedIn(OP_A, "support"), T0)
    logout = to_message(OperatorLoggedOut(OP_A, "support"), T0)
    assert login is not None and login[1]["queue"] == "support"
    assert logout == ("operator_logged_out", {"operator_id": "op-a", "extension": "1001",
                                              "queue": "support",
                                              "timestamp": "2026-12-02T09:00:00Z"})


@pytest.mark.parametrize(
    ("viewer", "members", "seen"),
    [
        (Viewer("u", "admin"), (), True),
        (Viewer("u", "manager"), (), True),
        (Viewer("u", "supervisor"), (), True),                        # no group: everything
        (Viewer("u", "supervisor", group_id="g-a"), (MEMBER_A,), True),
        (Viewer("u", "supervisor", group_id="g-a"), (MEMBER_B,), False),
        (Viewer("u", "operator", operator_id="op-b"), (MEMBER_A, MEMBER_B), True),
        (Viewer("u", "operator", operator_id="op-b"), (MEMBER_A,), False),
        (Viewer("u", "operator"), (MEMBER_A,), False),                 # no operator record
        (Viewer("u", "auditor"), (MEMBER_A,), False),
    ],
)
def test_who_sees_a_queue(viewer: Viewer, members: tuple[QueueMember, ...], seen: bool) -> None:
    assert can_see(viewer, QueueUpdated(queue("support", *members))) is seen


async def test_updates_of_a_busy_queue_are_coalesced_per_queue() -> None:
    hub = Hub(clock=lambda: T0, queue_interval=0.01)
    with hub.subscribe(Viewer("u", "admin")) as sub:
        for position in range(1, 21):   # twenty changes of "support" in one burst
            hub.publish([QueueUpdated(Queue("support", position, T0))])
        hub.publish([QueueUpdated(Queue("sales", 20, T0))])
        first = [(m["type"], m["data"]["queue"], m["data"]["service_level_seconds"])
                 for m in drain(sub)]
        # the first of each queue goes at once; the rest of "support" waits for its turn
        assert first == [("queue_updated", "support", 1), ("queue_updated", "sales", 20)]
        for _ in range(100):
            await asyncio.sleep(0.01)
            if not sub.queue.empty():
                break
        later = [(m["data"]["queue"], m["data"]["service_level_seconds"]) for m in drain(sub)]
        assert later == [("support", 20)]   # only the newest state


def test_updates_without_a_loop_are_sent_at_once() -> None:
    hub = Hub(clock=lambda: T0)
    with hub.subscribe(Viewer("u", "admin")) as sub:
        hub.publish([QueueUpdated(queue()), QueueUpdated(queue())])
        assert len(drain(sub)) == 2   # nothing could hold them: nothing is lost
