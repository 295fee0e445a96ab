"""The queue machine as tables: queue events in (as AMI or ARI would say them), queues out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from engine.effects import (
    Effect,
    OperatorLoggedIn,
    OperatorLoggedOut,
    OperatorStatusChanged,
    QueueUpdated,
)
from engine.events import (
    Event,
    QueueCallCompleted,
    QueueCallerJoined,
    QueueCallerLeft,
    QueueMemberChanged,
    QueueMemberPaused,
    QueueMemberRemoved,
    QueueMemberRinging,
    QueuesResynced,
)
from engine.machine import Engine
from engine.model import MemberState, Operator, OperatorStatus, Queue

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
OPERATORS = (
    Operator(id="op-1001", extension="1001", status=OperatorStatus.ONLINE),
    Operator(id="op-1002", extension="1002", status=OperatorStatus.ONLINE),
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run(events: list[Event], engine: Engine | None = None) -> tuple[Engine, list[Effect]]:
    engine = engine or Engine(OPERATORS)
    effects: list[Effect] = []
    for event in events:
        effects.extend(engine.handle(event))
    return engine, effects


def support(engine: Engine, now: datetime | None = None) -> Queue:
    queue = engine.queue("support", now)
    assert queue is not None
    return queue


def counts(queue: Queue, window: str = "15m") -> tuple[int, int, int, int]:
    f = queue.window(window)
    return f.offered, f.answered, f.answered_within_threshold, f.abandoned


def joined(channel: str, seconds: float, position: int = 1) -> QueueCallerJoined:
    return QueueCallerJoined("support", channel, at(seconds), position, source="ami")


def left(channel: str, seconds: float, reason: str, wait: float | None = None,
         member: str = "") -> QueueCallerLeft:
    return QueueCallerLeft("support", channel, reason, at(seconds), wait, member, source="ami")


def test_ami_order_leave_before_connect_counts_one_answer_with_the_wait() -> None:
    engine, _ = run([
        QueueMemberChanged("support", "Local/1002@agents", at(0), name="Agent 1002"),
        joined("c1", 1),
        left("c1", 4, "left"),                          # QueueCallerLeave
        left("c1", 4, "answered", 3, "Local/1002@agents"),   # AgentConnect HoldTime=3
        QueueCallCompleted("support", "c1", "Local/1002@agents", 2, at(6)),
    ])
    queue = support(engine)
    assert counts(queue) == (1, 1, 1, 0)
    figures = queue.window("15m")
    assert (figures.service_level, figures.average_speed_of_answer) == (100.0, 3.0)
    assert figures.average_handle_time == 2.0
    member = queue.members[0]
    assert (member.calls_taken, member.last_call, member.operator_id) == (1, at(4), "op-1002")


def test_waiting_callers_and_the_longest_wait() -> None:
    engine, _ = run([joined("c1", 0, 1), joined("c2", 10, 2)])
    queue = support(engine, at(30))
    assert [(c.channel_id, c.position, c.waiting_since) for c in queue.callers] == [
        ("c1", 1, at(0)), ("c2", 2, at(10))]
    assert (queue.callers_waiting, queue.longest_wait_seconds) == (2, 30)
    run([left("c1", 31, "abandoned", 31)], engine)
    queue = support(engine, at(40))
    assert (queue.callers_waiting, queue.longest_wait_seconds) == (1, 30)
    assert counts(queue) == (1, 0, 0, 1)
    assert queue.window("15m").abandon_rate == 100.0


def test_service_level_takes_the_queue_threshold() -> None:
    # answered after 25 s: outside the default 20 s, inside the queue's own 30 s
    slow = [joined("c1", 0), left("c1", 25, "answered", 25, "Local/1001@agents")]
    engine, _ = run(slow)
    assert counts(support(engine)) == (1, 1, 0, 0)
    with_threshold = [QueueCallerJoined("support", "c1", at(0), 1, service_level_seconds=30),
                      *slow[1:]]
    engine, _ = run(with_threshold)
    assert counts(support(engine)) == (1, 1, 1, 0)
    assert support(engine).service_level_seconds == 30


def test_duplicates_and_both_streams_count_once() -> None:
    events: list[Event] = [
        joined("c1", 0), joined("c1", 0),
        left("c1", 3, "answered", 3, "Local/1001@agents"),
        QueueCallerLeft("support", "c1", "answered", at(3), 3.0, "Local/1001@agents",
                        service_level_seconds=20, source="ari"),     # ARI tells it too
        left("c1", 3, "left"),                                       # a late Leave
        QueueCallCompleted("support", "c1", "Local/1001@agents", 5, at(8)),
        QueueCallCompleted("support", "c1", "Local/1001@agents", 5, at(8)),
    ]
    engine, _ = run(events)
    queue = support(engine, at(200))
    assert counts(queue) == (1, 1, 1, 0)
    assert queue.window("15m").completed == 1
    assert queue.callers_waiting == 0


def test_an_outcome_before_its_join_leaves_nobody_waiting() -> None:
    engine, _ = run([left("c1", 5, "abandoned", 5), joined("c1", 0)])
    queue = support(engine)
    assert queue.callers == ()
    assert counts(queue) == (1, 0, 0, 1)


def test_left_without_an_outcome_counts_as_offered_after_the_grace() -> None:
    engine, _ = run([joined("c1", 0), left("c1", 60, "left")])
    assert counts(support(engine)) == (0, 0, 0, 0)     # AgentConnect may still come
    run([joined("c2", 120)], engine)
    assert counts(support(engine)) == (1, 0, 0, 0)     # it did not: timed out / exited


def test_rolling_windows_roll_and_the_day_follows_the_center_timezone() -> None:
    moscow = ZoneInfo("Europe/Moscow")               # 09:00 UTC = 12:00 there
    engine = Engine(OPERATORS, timezone=moscow)
    run([joined("c1", 0), left("c1", 2, "answered", 2, "Local/1001@agents")], engine)
    windows = ("15m", "1h", "24h", "day")

    def offered(now: datetime) -> list[int]:
        queue = support(engine, now)
        return [queue.window(w).offered for w in windows]

    assert offered(at(60)) == [1, 1, 1, 1]
    assert offered(at(16 * 60)) == [0, 1, 1, 1]
    assert offered(at(61 * 60)) == [0, 0, 1, 1]
    assert offered(at(12 * 3600 + 60)) == [0, 0, 1, 0]       # past midnight in Moscow
    assert offered(at(24 * 3600 + 120)) == [0, 0, 0, 0]
    # a busy day later the old minutes are gone, the new ones count
    run([joined("c2", 48 * 3600), left("c2", 48 * 3600 + 5, "abandoned", 5)], engine)
    assert offered(at(48 * 3600 + 10)) == [1, 1, 1, 1]


def test_members_states_pause_with_reason_and_login_logout() -> None:
    member, other = "Local/1001@agents", "Local/1002@agents"
    engine, effects = run([
        QueueMemberChanged("support", member, at(0), name="Agent 1001"),
        QueueMemberChanged("sales", member, at(0)),
        QueueMemberChanged("support", other, at(0), state="INUSE"),
        QueueMemberPaused("support", member, True, at(5), reason="break"),
    ])
    logins = [(type(e).__name__, e.operator.id, e.queue) for e in effects
              if isinstance(e, OperatorLoggedIn | OperatorLoggedOut)]
    assert logins == [("OperatorLoggedIn", "op-1001", "support"),
                      ("OperatorLoggedIn", "op-1002", "support")]     # not again for "sales"
    queue = support(engine)
    states = {m.interface: (m.state, m.pause_reason, m.login_time) for m in queue.members}
    assert states == {member: (MemberState.PAUSED, "break", at(0)),
                      other: (MemberState.IN_CALL, None, at(0))}
    assert (queue.agents_available, queue.agents_busy, queue.agents_paused) == (0, 1, 1)

    _, effects = run([
        QueueMemberPaused("support", member, False, at(9)),
        QueueMemberRinging("support", member, "c9", at(10)),
    ], engine)
    assert support(engine).members[0].state is MemberState.RINGING
    _, effects = run([
        QueueMemberRinging("support", member, "c9", at(12), no_answer=True, ring_ms=2000),
        QueueMemberChanged("support", member, at(13), wrapup_until=at(40)),
    ], engine)
    assert support(engine).members[0].state is MemberState.WRAPUP
    assert support(engine, at(41)).members[0].state is MemberState.AVAILABLE
    _, effects = run([QueueMemberChanged("support", member, at(50), state="UNAVAILABLE")], engine)
    assert support(engine).members[0].state is MemberState.UNAVAILABLE

    _, effects = run([QueueMemberRemoved("support", member, at(60))], engine)
    assert not [e for e in effects if isinstance(e, OperatorLoggedOut)]   # still in "sales"
    _, effects = run([QueueMemberRemoved("sales", member, at(61)),
                      QueueMemberRemoved("sales", member, at(61))], engine)
    assert [(e.operator.id, e.queue) for e in effects if isinstance(e, OperatorLoggedOut)] == [
        ("op-1001", "sales")]
    assert [m.interface for m in support(engine).members] == [other]


def test_queue_updated_only_when_something_changed() -> None:
    engine, effects = run([joined("c1", 0)])
    assert [type(e) for e in effects] == [QueueUpdated]
    _, again = run([joined("c1", 0)], engine)
    assert again == []


def test_a_queue_pause_makes_the_operator_busy_paused_with_the_reason() -> None:
    member = "Local/1001@agents"
    engine, effects = run([
        QueueMemberChanged("support", member, at(0)),
        QueueMemberPaused("support", member, True, at(5), reason="break"),
    ])
    changed = [(e.previous, e.operator.status.value, e.operator.activity,
                e.operator.pause_reason) for e in effects if isinstance(e, OperatorStatusChanged)]
    assert changed == [("online", "busy", "paused", "break")]
    _, effects = run([QueueMemberPaused("support", member, False, at(9))], engine)
    changed = [(e.previous, e.operator.status.value, e.operator.activity,
                e.operator.pause_reason) for e in effects if isinstance(e, OperatorStatusChanged)]
    assert changed == [("busy", "online", "available", None)]
    # a late pause (older than the unpause) changes nothing
    _, effects = run([QueueMemberPaused("support", member, True, at(7), reason="lunch")], engine)
    assert not [e for e in effects if isinstance(e, OperatorStatusChanged)]
    # removed while paused: no longer paused there
    run([QueueMemberPaused("support", member, True, at(20), reason="meeting")], engine)
    _, effects = run([QueueMemberRemoved("support", member, at(30))], engine)
    assert [(e.operator.status.value, e.operator.pause_reason) for e in effects
            if isinstance(e, OperatorStatusChanged)] == [("online", None)]


def test_a_resync_replaces_members_and_waiting_callers() -> None:
    a, b = "Local/1001@agents", "Local/1002@agents"
    engine, _ = run([
        QueueMemberChanged("support", a, at(0)),
        joined("gone", 1), joined("stays", 2),
    ])
    # while we were away: 1001 left the queue, 1002 joined paused, "gone" left unseen
    _, effects = run([QueuesResynced(
        ("support",),
        (QueueMemberChanged("support", b, at(100), paused=True, pause_reason="lunch"),),
        (QueueCallerJoined("support", "stays", at(90), 1),
         QueueCallerJoined("support", "new", at(95), 2)),
        at(100),
        service_levels=(("support", 45),),
    )], engine)
    assert [(type(e).__name__, e.operator.id) for e in effects
            if isinstance(e, OperatorLoggedIn | OperatorLoggedOut)] == [
        ("OperatorLoggedOut", "op-1001"), ("OperatorLoggedIn", "op-1002")]
    paused = [e.operator.pause_reason for e in effects
              if isinstance(e, OperatorStatusChanged) and e.operator.id == "op-1002"]
    assert paused == ["lunch"]
    assert len([e for e in effects if isinstance(e, QueueUpdated)]) == 1
    queue = support(engine)
    assert [(m.interface, m.state) for m in queue.members] == [(b, MemberState.PAUSED)]
    assert [(c.channel_id, c.waiting_since) for c in queue.callers] == [
        ("stays", at(2)), ("new", at(95))]           # "stays" keeps when it joined
    assert queue.service_level_seconds == 45
    assert counts(queue) == (0, 0, 0, 0)            # "gone": outcome unknown, not counted
