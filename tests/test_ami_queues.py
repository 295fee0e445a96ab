"""Issue 9 over AMI: queue and agent events into the queue model, checked against Asterisk's own
queue_log of the same minutes; the QueueStatus resync over the fake AMI; ARI and AMI of one
queue shift counted once; queues the PBX names listed without an admin (real PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from api.config import Settings
from api.state import SERVICES
from connectors.ami.normalize import AmiNormalizer, MalformedMessage
from connectors.ami.protocol import AmiMessage, Kind
from connectors.ami.source import ARI_OWNED
from connectors.ari.normalize import AriNormalizer
from connectors.fakes.ami_server import FakeAmi
from connectors.fakes.ami_state import Caller
from connectors.fakes.ari_server import replay_trace
from engine.effects import (
    CallEnded,
    Effect,
    OperatorLoggedIn,
    OperatorLoggedOut,
    OperatorStatusChanged,
    OperatorUpdated,
    QueueUpdated,
)
from engine.events import (
    Event,
    QueueCallCompleted,
    QueueCallerJoined,
    QueueCallerLeft,
    QueueMemberChanged,
    QueueMemberRinging,
    QueuesResynced,
)
from engine.machine import Engine
from engine.model import CallStatus, MemberState, Operator, OperatorStatus, Queue
from service.pbx import PbxConnection
from service.queue_catalog import QueueCatalog
from storage.queues import PBX_QUEUE_DESCRIPTION, Queues
from tests.app_fixtures import _client, app_on_ari_and_ami
from tests.helpers import ADMIN_PASSWORD, login
from tests.test_ami_client import until
from tests.test_ami_source import DATA, FAST, ami_events, ami_settings, settle
from tests.test_fake_ami import NOW, idle_state
from tests.test_queue_trace import figures_of, queue_log

AMI_SHIFT, ARI_SHIFT = DATA / "queue_shift.ami.jsonl", DATA / "queue_shift.ari.jsonl"
ANSWERED, ABANDONED = "1796203666.32", "1796203671.36"
OPERATORS = tuple(
    Operator(id=f"op-{ext}", extension=ext, status=OperatorStatus.ONLINE)
    for ext in ("1001", "1002", "1003")
)


def ami_shift(*, with_ari: bool = False) -> list[tuple[float, Event]]:
    """(capture time, event) of the AMI queue shift; ``with_ari``: what AMI feeds beside ARI."""
    normalizer, out = AmiNormalizer(), []
    for ts, message in ami_events(AMI_SHIFT):
        if with_ari and message.name in ARI_OWNED:
            continue
        event = normalizer.event(message, datetime.fromtimestamp(ts, UTC))
        if event is not None:
            out.append((ts, event))
    return out


def ari_shift() -> list[tuple[float, Event]]:
    normalizer, out = AriNormalizer(), []
    for line in ARI_SHIFT.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        event = normalizer.event(record["event"])
        if event is not None:
            out.append((record["ts"], event))
    return out


def run(events: list[tuple[float, Event]]) -> tuple[Engine, list[Effect]]:
    engine, effects = Engine(OPERATORS), []
    for _, event in events:
        effects += engine.handle(event)
    return engine, effects


def message(*headers: tuple[str, str]) -> AmiMessage:
    return AmiMessage(Kind.EVENT, headers)


# -- the normalizer (pure) ---------------------------------------------------------------------


def test_ring_no_answer_time_is_milliseconds_and_member_status_a_device_state() -> None:
    normalizer, ts = AmiNormalizer(), datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    rang = normalizer.event(message(
        ("Event", "AgentRingNoAnswer"), ("Uniqueid", "1.5"), ("Queue", "support"),
        ("Interface", "Local/1002@agents"), ("MemberName", "Agent 1002"), ("RingTime", "15000")),
        ts)
    assert rang == QueueMemberRinging("support", "Local/1002@agents", "1.5", ts,
                                      no_answer=True, ring_ms=15000, source="ami")
    status = normalizer.event(message(
        ("Event", "QueueMemberStatus"), ("Queue", "support"), ("MemberName", "Agent 1001"),
        ("Interface", "Local/1001@agents"), ("StateInterface", "Custom:1001"),
        ("CallsTaken", "4"), ("LastCall", "1796203671"), ("LoginTime", "1796201409"),
        ("InCall", "1"), ("Status", "8"), ("Paused", "1"), ("PausedReason", "lunch"),
        ("Wrapuptime", "15")), ts)
    assert isinstance(status, QueueMemberChanged)
    last_call = datetime.fromtimestamp(1796203671, UTC)
    assert (status.state, status.paused, status.pause_reason, status.in_call,
            status.calls_taken, status.last_call, status.wrapup_until, status.login_time) == (
        "ONHOLD", True, "lunch", True, 4, last_call, last_call + timedelta(seconds=15),
        datetime.fromtimestamp(1796201409, UTC))
    with pytest.raises(MalformedMessage):   # no caller channel: the source counts and skips it
        normalizer.event(message(("Event", "QueueCallerJoin"), ("Queue", "support")), ts)


def test_the_queue_shift_through_ami_says_what_the_queue_log_says() -> None:
    log = queue_log()
    events = ami_shift()
    told = [e for _, e in events if isinstance(e, QueueCallerLeft | QueueCallCompleted)]
    assert [(type(e).__name__, e.channel_id, getattr(e, "reason", ""),
             getattr(e, "wait_seconds", None)) for e in told] == [
        ("QueueCallerLeft", ANSWERED, "left", None),
        ("QueueCallerLeft", ANSWERED, "answered", 3.0),
        ("QueueCallCompleted", ANSWERED, "", None),
        ("QueueCallerLeft", ABANDONED, "abandoned", 2.0),
        ("QueueCallerLeft", ABANDONED, "left", None),
    ]
    [completed] = [e for e in told if isinstance(e, QueueCallCompleted)]
    hold, talk, _ = log[ANSWERED]["COMPLETECALLER"]
    assert (completed.talk_seconds, completed.ended_by, completed.member) == (
        float(talk), "caller", "Local/1002@agents")

    engine, effects = run(events)
    queue = engine.queue("support")
    assert queue is not None and queue.callers_waiting == 0
    for figures in queue.figures:
        assert (figures.offered, figures.answered, figures.abandoned, figures.completed) == (
            2, 1, 1, 1)
        assert figures.average_speed_of_answer == float(hold) == 3.0
        assert figures.average_handle_time == float(talk) == 2.0
        assert figures.answered_within_threshold == 1
    [taker] = [m for m in queue.members if m.interface == "Local/1002@agents"]
    assert (taker.operator_id, taker.calls_taken, taker.name) == ("op-1002", 1, "Agent 1002")

    # the member added (1003) logs in to the queue, and logs out when removed
    logins = [(type(e).__name__, e.operator.id) for e in effects
              if isinstance(e, OperatorLoggedIn | OperatorLoggedOut) and e.queue]
    assert ("OperatorLoggedIn", "op-1003") in logins
    assert logins[-1] == ("OperatorLoggedOut", "op-1003")
    assert "Local/1003@agents" not in {m.interface for m in queue.members}

    # the pauses with their reason, and back (queue_log: PAUSE break / meeting, UNPAUSE)
    pauses = [(e.operator.id, e.operator.status, e.operator.pause_reason) for e in effects
              if isinstance(e, OperatorStatusChanged | OperatorUpdated)
              and e.operator.id in ("op-1001", "op-1003")]
    assert ("op-1001", OperatorStatus.BUSY, "break") in pauses
    assert ("op-1003", OperatorStatus.BUSY, "meeting") in pauses
    assert pauses[-2:] == [("op-1001", OperatorStatus.ONLINE, None),
                           ("op-1003", OperatorStatus.ONLINE, None)]
    paused_views = [m for e in effects if isinstance(e, QueueUpdated) for m in e.queue.members
                    if m.state is MemberState.PAUSED]
    assert {(m.interface, m.pause_reason) for m in paused_views} == {
        ("Local/1001@agents", "break"), ("Local/1003@agents", "meeting")}
    op_1001 = engine.operator("op-1001")
    assert op_1001 is not None and op_1001.queue_pause_reason is None
    [agent_1001] = [m for m in queue.members if m.interface == "Local/1001@agents"]
    assert (agent_1001.state, agent_1001.paused) == (MemberState.AVAILABLE, False)


# -- ARI and AMI of the same shift: counted once ------------------------------------------------


@pytest.mark.parametrize("order", ["ari_first", "ami_first", "interleaved", "ami_late",
                                   "ami_early"])
def test_ari_and_ami_of_the_queue_shift_are_counted_once(order: str) -> None:
    """Whichever stream is ahead (each keeps its own order), one visit counts once."""
    ari, ami = ari_shift(), ami_shift(with_ari=True)
    lag = {"ami_late": 0.05, "ami_early": -0.05}.get(order, 0.0)
    stream = {"ari_first": ari + ami, "ami_first": ami + ari}.get(order) or sorted(
        [*ari, *((ts + lag, e) for ts, e in ami)], key=lambda pair: pair[0])
    engine, effects = run(stream)
    ari_engine, _ = run(ari)
    assert figures_of(engine) == figures_of(ari_engine)
    support = engine.queue("support")
    assert support is not None
    assert [(f.offered, f.answered, f.abandoned, f.completed) for f in support.figures] == [
        (2, 1, 1, 1)] * 4
    ended = {e.call.channel_id: e.call for e in effects if isinstance(e, CallEnded)}
    assert set(ended) == {ANSWERED, ABANDONED}
    assert len([e for e in effects if isinstance(e, CallEnded)]) == 2
    assert (ended[ANSWERED].status, ended[ANSWERED].queue_name) == (
        CallStatus.COMPLETED, "support")
    assert ended[ABANDONED].missed_reason == "abandoned_in_queue"


def test_ari_counting_first_and_ami_receipt_times_later_count_once() -> None:
    """AMI's times are receipt times: ARI may have counted a visit (told as it ends) before
    AMI's join of it arrives stamped later. That join is the same visit, not a new one."""
    later = [(ts, replace(e, ts=e.ts + timedelta(hours=3)))  # type: ignore[type-var]
             for ts, e in ami_shift(with_ari=True)]
    engine, _ = run(ari_shift() + later)
    support = engine.queue("support")
    assert support is not None and support.callers_waiting == 0
    day = support.window("24h")
    assert (day.offered, day.answered, day.abandoned, day.completed) == (2, 1, 1, 1)
    # a source that told the outcome and joins again is a new visit: counted afresh
    rejoin = [(0.0, e) for _, e in later
              if isinstance(e, QueueCallerJoined | QueueCallerLeft) and e.channel_id == ABANDONED]
    again = [(0.0, replace(e, ts=e.ts + timedelta(minutes=5))) for _, e in rejoin]
    for _, event in again:
        engine.handle(event)
    day = engine.queue("support").window("24h")  # type: ignore[union-attr]
    assert (day.offered, day.abandoned) == (3, 2)


# -- the QueueStatus resync over the fake AMI ---------------------------------------------------


@pytest_asyncio.fixture
async def fake_ami() -> AsyncIterator[FakeAmi]:
    async with FakeAmi(username="ami", secret="ami-secret", state=idle_state(),
                       clock=lambda: NOW) as fake:
        yield fake


def resyncs(submitted: list[Event]) -> list[QueuesResynced]:
    return [e for e in submitted if isinstance(e, QueuesResynced)]


async def test_a_reconnect_rebuilds_the_queue_from_queue_status(fake_ami: FakeAmi) -> None:
    submitted: list[Event] = []
    pbx = PbxConnection(ami_settings(fake_ami), submitted.append, ami_options=FAST)
    await pbx.start()
    try:
        await pbx.wait_connected()
        await until(lambda: len(resyncs(submitted)) == 1)
        [first] = resyncs(submitted)
        assert (first.queues, first.service_levels) == (("support",), (("support", 20),))
        [caller] = first.callers
        assert (caller.channel_id, caller.position, caller.caller_number) == (
            "1796203690.1", 1, "+79001234567")
        assert first.ts - caller.ts == timedelta(seconds=7)   # QueueEntry Wait: 7
        assert [(m.member, m.name, m.state) for m in first.members] == [
            ("Local/1001@agents", "Agent 1001", "NOT_INUSE"),
            ("Local/1002@agents", "Agent 1002", "NOT_INUSE")]

        # while we are away: the caller is answered, two more call, 1002 logs out, 1001 pauses
        state = fake_ami.state
        state.callers[:] = [
            Caller("support", "Local/+7900@pstn-2;1", "1796203695.2", "+7900", joined_at=NOW - 5),
            Caller("support", "Local/+7901@pstn-3;1", "1796203698.3", "+7901", joined_at=NOW - 2),
        ]
        state.members[:] = [m for m in state.members if m.interface != "Local/1002@agents"]
        state.members[0].paused, state.members[0].paused_reason = True, "lunch"
        await fake_ami.drop_connections()
        await fake_ami.wait_for_logins(2)
        await until(lambda: len(resyncs(submitted)) == 2)
    finally:
        await pbx.close()

    engine = Engine(OPERATORS)
    effects = [effect for event in submitted for effect in engine.handle(event)]
    queue = engine.queue("support")
    assert queue is not None
    assert [(c.channel_id, c.position) for c in queue.callers] == [
        ("1796203695.2", 1), ("1796203698.3", 2)]
    second = resyncs(submitted)[1]
    assert queue.longest_wait_seconds == 5 and queue.as_of == second.ts
    assert [(m.interface, m.state, m.pause_reason) for m in queue.members] == [
        ("Local/1001@agents", MemberState.PAUSED, "lunch")]
    assert [(e.operator.id, e.queue) for e in effects if isinstance(e, OperatorLoggedOut)] == [
        ("op-1002", "support")]
    # the caller answered meanwhile left the line without an outcome anyone told: not counted
    assert all(f.offered == 0 for f in queue.figures)


# -- queues the PBX names are listed (real PostgreSQL) -----------------------------------------


async def test_a_queue_the_pbx_names_gets_one_row(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        repo = Queues(pool)
        await repo.create({"name": "Sales", "asterisk_name": "sales",
                           "service_level_threshold": 45})
        catalog = QueueCatalog(repo.add_from_pbx)
        at = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
        for name, level in [("support", 30), ("support", 60), ("sales", 10), ("vip", 20)]:
            catalog.seen(Queue(name, level, at))
        await catalog.flush()
        rows = {r.asterisk_name: r for r in await repo.all()}
        assert {n: (r.name, r.service_level_threshold, r.description)
                for n, r in rows.items()} == {
            "support": ("support", 30, PBX_QUEUE_DESCRIPTION),   # the first threshold told
            "sales": ("Sales", 45, ""),                           # the admin's row, untouched
            "vip": ("vip", 20, PBX_QUEUE_DESCRIPTION),
        }
        assert catalog.stats["added"] == 2
        # another process (or a restart) adds nothing twice
        again = QueueCatalog(repo.add_from_pbx)
        again.seen(Queue("support", 20, at))
        await again.flush()
        assert again.stats["added"] == 0 and len(await repo.all()) == 3
    finally:
        await pool.close()


async def test_a_failed_insert_is_tried_again_on_the_next_change() -> None:
    calls: list[str] = []

    async def flaky(name: str, level: int) -> Any:
        calls.append(name)
        if len(calls) == 1:
            raise ConnectionError("database away")
        return object()

    catalog = QueueCatalog(flaky)
    at = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    catalog.seen(Queue("support", 20, at))
    await catalog.flush()
    catalog.seen(Queue("support", 20, at))
    await catalog.flush()
    catalog.seen(Queue("support", 20, at))
    await catalog.flush()
    assert calls == ["support", "support"]
    assert (catalog.stats["failed"], catalog.stats["added"]) == (1, 1)


async def test_the_queues_of_an_ami_pbx_show_up_in_the_api(
    app_settings: Settings, fake_ami: FakeAmi
) -> None:
    fake_ami.state.add_queue("billing", service_level=40)
    client = await _client(app_settings, ami_host=fake_ami.host, ami_port=fake_ami.port,
                           ami_username="ami", ami_secret="ami-secret")
    try:
        services = client.app[SERVICES]
        await services.pbx.wait_connected()
        await until(lambda: len(services.engine.queues()) == 2)
        await settle(services)
        while await services.pool.fetchval("SELECT count(*) FROM queues") < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.01)   # the catalog adds in the background
        thresholds = dict(await services.pool.fetch(
            "SELECT asterisk_name, service_level_threshold FROM queues"))
        assert thresholds == {"support": 20, "billing": 40}   # the PBX's ServiceLevel
        token = await login(client, "admin", ADMIN_PASSWORD)
        answer = await client.get("/api/queues/", headers={"Authorization": f"Bearer {token}"})
        assert answer.status == 200
        body = await answer.json()
        items = body["items"] if isinstance(body, dict) else body
        assert sorted((q["name"], q["asterisk_name"], q["description"]) for q in items) == [
            ("billing", "billing", PBX_QUEUE_DESCRIPTION),
            ("support", "support", PBX_QUEUE_DESCRIPTION)]
    finally:
        await client.close()


@pytest.mark.parametrize("first", ["ari", "ami"])
async def test_the_queue_shift_over_fake_ari_and_ami_is_counted_once(
    app_settings: Settings, fake_ami: FakeAmi, first: str
) -> None:
    """The whole app on one Asterisk over both interfaces: two calls, each visit counted once."""
    async with app_on_ari_and_ami(app_settings, fake_ami) as (client, ari):
        services = client.app[SERVICES]

        async def ari_stream() -> None:
            for frame in replay_trace(ARI_SHIFT):
                await ari.emit(frame)

        streams = {"ari": ari_stream, "ami": lambda: fake_ami.replay(AMI_SHIFT)}
        await streams[first]()
        await settle(services)
        await streams["ami" if first == "ari" else "ari"]()
        await settle(services)
        rows = await services.pool.fetch(
            "SELECT channel_id, source, status, queue_name, wait_seconds FROM calls"
            " ORDER BY start_time")
        assert [tuple(r) for r in rows] == [
            (ANSWERED, "ari", "completed", "support", 3),
            (ABANDONED, "ari", "missed", "support", 2)]
        support = services.engine.queue("support")
        assert support is not None
        day = support.window("24h")
        assert (day.offered, day.answered, day.abandoned, day.completed) == (2, 1, 1, 1)
