"""Feeds events into the engine, one at a time, and carries its effects out.

One consumer task applies events in arrival order. Effects are published first (dashboards want
them now), then persisted: live state to the StateStore, records to the RecordSink. A failing
store or sink is logged and counted; the loop goes on (the sink retries on its own).

After a PBX resync is applied, ``on_resync`` gets the ids of every call the engine still holds
live (the record sink closes the other open rows: ``storage/reconcile.py``). It is called
synchronously after the resync's effects were handed on, so every record those effects wrote
is queued before the reconciliation request.

``on_queue`` is told of every queue snapshot published (``service/queue_catalog.py`` lists the
queues the PBX names); it must not block.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from engine.effects import (
    CallEnded,
    Effect,
    OperatorLoggedIn,
    OperatorLoggedOut,
    OperatorStatusChanged,
    OperatorUpdated,
    QueueUpdated,
)
from engine.events import Event, Resynced
from engine.machine import Engine
from engine.model import Call, Operator, Queue
from engine.ports import Publisher, RecordSink, StateStore

log = logging.getLogger("switchboard.runner")

@dataclass(slots=True)
class RunnerStats:
    events: int = 0
    effects: int = 0
    errors: int = 0          # failed store/sink/publisher calls and engine failures


class Runner:
    def __init__(
        self, engine: Engine, store: StateStore, sink: RecordSink, publisher: Publisher,
        on_resync: Callable[[frozenset[str]], None] | None = None,
        on_queue: Callable[[Queue], None] | None = None,
    ) -> None:
        self.engine = engine
        self._store = store
        self._sink = sink
        self._publisher = publisher
        self._on_resync = on_resync
        self._on_queue = on_queue
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._lock = asyncio.Lock()   # handle_now and run() never interleave
        self.stats = RunnerStats()

    def submit(self, event: Event) -> None:
        """Queue an event for the run loop (never blocks)."""
        self._queue.put_nowait(event)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def run(self) -> None:
        """Apply queued events forever, in order. Cancel the task to stop."""
        while True:
            event = await self._queue.get()
            try:
                await self.handle_now(event)
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every submitted event has been applied (needs ``run`` running)."""
        await self._queue.join()

    async def handle_now(self, event: Event) -> list[Effect]:
        """Apply one event now and wait for its effects to be persisted."""
        async with self._lock:
            self.stats.events += 1
            try:
                effects = self.engine.handle(event)
            except Exception:
                # A bug on one event must not stop the engine for every later one.
                self.stats.errors += 1
                log.exception("engine failed on %s", type(event).__name__)
                return []
            if effects:
                self.stats.effects += len(effects)
                try:
                    self._publisher.publish(effects)
                except Exception:
                    self.stats.errors += 1
                    log.exception("publisher failed")
                await self._persist(effects)
            if isinstance(event, Resynced) and self._on_resync is not None:
                live = frozenset(call.id for call in self.engine.active_calls())
                try:
                    self._on_resync(live)
                except Exception:
                    self.stats.errors += 1
                    log.exception("on_resync failed")
            return effects

    def snapshot(self) -> tuple[list[Call], list[Operator]]:
        """Active calls and operators, read synchronously (no await between subscribe and this)."""
        return self.engine.active_calls(), self.engine.operators()

    async def _persist(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, OperatorStatusChanged | OperatorUpdated | OperatorLoggedIn
                          | OperatorLoggedOut):
                await self._guard("save_operator", self._store.save_operator(effect.operator))
                await self._guard("write_operator", self._sink.write_operator(effect.operator))
                continue
            if isinstance(effect, QueueUpdated):
                # live only: the engine holds the queues; records carry queue_name
                if self._on_queue is not None:
                    try:
                        self._on_queue(effect.queue)
                    except Exception:
                        self.stats.errors += 1
                        log.exception("on_queue failed")
                continue
            call = effect.call
            if isinstance(effect, CallEnded):
                await self._guard("remove_call", self._store.remove_call(call.id))
            else:
                await self._guard("save_call", self._store.save_call(call))
            await self._guard("write", self._sink.write(call))

    async def _guard(self, what: str, pending: Awaitable[None]) -> None:
        try:
            await pending
        except Exception:
            self.stats.errors += 1
            log.exception("%s failed", what)
