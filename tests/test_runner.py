"""Runner with the in-memory fakes: order, persistence, and failures that do not stop it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib

from connectors.ari.normalize import normalize
from engine.effects import CallAnswered, CallEnded, CallStarted, OperatorStatusChanged
from engine.events import EndpointStateChanged, Event
from engine.fakes import MemoryPublisher, MemoryRecordSink, MemoryStateStore
from engine.machine import Engine
from engine.model import CallStatus, OperatorStatus
from service.runner import Runner
from tests.test_engine_calls import (
    OPS,
    answered_by_1001,
    at,
    caller_hangs_up,
    inbound_until_ringing,
)

TRACE = pathlib.Path(__file__).parent / "data" / "inbound_answered.ari.jsonl"
if not TRACE.exists():
    TRACE = pathlib.Path("/work/shared/traces/inbound_answered.ari.jsonl")


def make() -> tuple[Runner, MemoryStateStore, MemoryRecordSink, MemoryPublisher]:
    store, sink, publisher = MemoryStateStore(), MemoryRecordSink(), MemoryPublisher()
    return Runner(Engine(OPS), store, sink, publisher), store, sink, publisher


async def test_handle_now_publishes_and_persists() -> None:
    runner, store, sink, publisher = make()
    for event in inbound_until_ringing() + answered_by_1001():
        await runner.handle_now(event)
    assert len(store.calls) == 1
    (live,) = store.calls.values()
    assert live.status is CallStatus.ANSWERED
    assert store.operators_by_id["op-1001"].status is OperatorStatus.BUSY
    assert sink.writes[-1] == live
    assert any(isinstance(e, CallAnswered) for e in publisher.effects)

    for event in caller_hangs_up(6):
        await runner.handle_now(event)
    assert store.calls == {}
    assert store.removed == [live.id]
    assert sink.records[live.id].status is CallStatus.COMPLETED
    assert store.operators_by_id["op-1001"].status is OperatorStatus.ONLINE
    assert runner.stats.events == len(inbound_until_ringing() + answered_by_1001()
                                      + caller_hangs_up(6))
    assert runner.stats.effects == len(publisher.effects)
    assert runner.stats.errors == 0


async def test_nothing_happens_for_an_event_without_effects() -> None:
    runner, store, sink, publisher = make()
    assert await runner.handle_now(EndpointStateChanged("PJSIP", "9999", "online", at(1))) == []
    assert publisher.batches == [] and sink.writes == [] and store.calls == {}


async def test_failing_store_and_sink_are_counted_and_do_not_stop_it() -> None:
    runner, store, sink, publisher = make()
    store.fail_with = ConnectionError("redis down")
    sink.fail_with = OSError("pg down")
    effects = []
    for event in inbound_until_ringing():
        effects.extend(await runner.handle_now(event))
    assert effects and publisher.effects == effects   # published first, whatever storage does
    assert runner.stats.errors > 0
    store.fail_with = None
    sink.fail_with = None
    for event in answered_by_1001():
        await runner.handle_now(event)
    assert [c.status for c in store.calls.values()] == [CallStatus.ANSWERED]


async def test_run_loop_applies_submitted_events_in_order() -> None:
    runner, store, sink, publisher = make()
    task = asyncio.create_task(runner.run())
    try:
        frames = [json.loads(line)["event"]
                  for line in TRACE.read_text(encoding="utf-8").splitlines()]
        events: list[Event] = [e for raw in frames if (e := normalize(raw)) is not None]
        for event in events:
            runner.submit(event)
        await asyncio.wait_for(runner.drain(), 5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    milestones = [type(e).__name__ for e in publisher.effects
                  if isinstance(e, CallStarted | CallAnswered | CallEnded)]
    assert milestones == ["CallStarted", "CallAnswered", "CallEnded"]
    assert runner.stats.events == len(events)
    assert store.calls == {}
    (record,) = sink.records.values()
    assert (record.status, record.duration) == (CallStatus.COMPLETED, 3)
    assert [o.status for o in sink.operator_writes[-2:]] == [OperatorStatus.ONLINE] * 2
    assert any(isinstance(e, OperatorStatusChanged) for e in publisher.effects)


async def test_snapshot_is_synchronous_and_reads_the_engine() -> None:
    runner, *_ = make()
    for event in inbound_until_ringing():
        await runner.handle_now(event)
    calls, operators = runner.snapshot()
    assert [c.status for c in calls] == [CallStatus.INCOMING]
    assert {o.extension: (o.status, o.activity) for o in operators} == {   # ringing, not busy
        "1001": (OperatorStatus.ONLINE, "ringing"), "1002": (OperatorStatus.ONLINE, "ringing")}


async def test_engine_failure_is_logged_and_counted() -> None:
    runner, *_ = make()

    class Boom(Exception):
        pass

    def explode(event: Event) -> list[object]:
        raise Boom

    runner.engine.handle = explode  # type: ignore[method-assign,assignment]
    assert await runner.handle_now(inbound_until_ringing()[0]) == []
    assert runner.stats.errors == 1
