"""The engine: one pure entry point, ``handle(event) -> effects``, and read accessors."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, tzinfo

from engine.directory import OperatorDirectory
from engine.effects import CallEffect, CallEnded, Effect, OperatorEffect, QueueUpdated
from engine.events import (
    BridgeEntered,
    BridgeLeft,
    CallerIdChanged,
    ChannelCreated,
    ChannelHungUp,
    ChannelStateChanged,
    DeviceStateChanged,
    DialUpdated,
    EndpointStateChanged,
    Event,
    OperatorProvisioned,
    OperatorRemoved,
    OperatorStatusRequested,
    QueueCallCompleted,
    QueueCallerJoined,
    QueueCallerLeft,
    QueueMemberChanged,
    QueueMemberPaused,
    QueueMemberRemoved,
    QueueMemberRinging,
    QueuesResynced,
    Resynced,
)
from engine.machine.calls import CallMachine
from engine.machine.operators import OperatorMachine
from engine.machine.queues import QueueMachine
from engine.model import Call, Operator, Queue


class Engine:
    """Calls, operators and queues of one PBX. No I/O, no await, no clock: times come from
    events. ``timezone`` is the center's, for the queues' calendar-day figures."""

    def __init__(self, directory_operators: Iterable[Operator] = (),
                 timezone: tzinfo = UTC) -> None:
        self._directory = OperatorDirectory(directory_operators)
        self._calls = CallMachine(self._directory)
        self._operators = OperatorMachine(self._directory, self._calls.calls_and_ringing)
        self._queues = QueueMachine(self._directory, timezone)

    # ----------------------------------------------------------------- reads

    def active_calls(self) -> list[Call]:
        return self._calls.active_calls()

    def operators(self) -> list[Operator]:
        return self._operators.operators()

    def operator(self, operator_id: str) -> Operator | None:
        return self._operators.get(operator_id)

    def queues(self, now: datetime | None = None) -> list[Queue]:
        """Every queue the PBX named, its figures rolled forward to ``now`` when given."""
        return self._queues.snapshots(now)

    def queue(self, name: str, now: datetime | None = None) -> Queue | None:
        return self._queues.snapshot(name, now)

    def call_for_channel(self, channel_id: str) -> Call | None:
        """The published call a live channel belongs to (e.g. may this operator hang it up)."""
        return self._calls.call_for_channel(channel_id)

    # ----------------------------------------------------------------- the one write

    def handle(self, event: Event) -> list[Effect]:
        """Apply one event; return what happened (call effects first, then operators)."""
        operators = self._operators
        match event:
            case (
                ChannelCreated() | ChannelStateChanged() | CallerIdChanged() | DialUpdated()
                | BridgeEntered() | BridgeLeft() | ChannelHungUp()
            ):
                changes = self._calls.handle(event)
                return [*changes.effects, *self._refresh(changes.touched_operator_ids, event.ts),
                        *self._queue_calls_completed(changes.effects)]
            case QueueCallerJoined() | QueueCallerLeft():
                # The call takes its queue; the queue counts the caller.
                changes = self._calls.handle(event)
                return [*changes.effects, *self._queues.handle(event)]
            # The operator behind a member is paused in its queue (with the reason) or not.
            case QueueMemberPaused():
                return [*self._queues.handle(event), *operators.queue_paused(
                    event.queue, event.member, event.paused, event.reason, event.ts)]
            case QueueMemberChanged():
                return [*self._queues.handle(event), *operators.queue_paused(
                    event.queue, event.member, event.paused, event.pause_reason, event.ts)]
            case QueueMemberRemoved():
                return [*self._queues.handle(event), *operators.queue_paused(
                    event.queue, event.member, False, "", event.ts)]
            case QueueCallCompleted() | QueueMemberRinging():
                return list(self._queues.handle(event))
            case QueuesResynced():
                return self._resync_queues(event)
            case Resynced():
                return self._resync(event)
            case DeviceStateChanged():
                return list(operators.device(event.device, event.state, event.ts))
            case EndpointStateChanged():
                return list(operators.endpoint(
                    event.technology, event.resource, event.state, event.ts))
            case OperatorStatusRequested():
                return list(operators.request_status(event.operator_id, event.status, event.ts))
            case OperatorProvisioned():
                return list(operators.provision(event.operator))
            case OperatorRemoved():
                operators.remove(event.operator_id)
        return []

    def _resync_queues(self, event: QueuesResynced) -> list[Effect]:
        """Members not listed leave (logging out whoever left their last queue), the listed
        ones are applied as told, the waiting lines replaced; one QueueUpdated per queue."""
        listed = {(m.queue, m.member) for m in event.members}
        effects: list[Effect] = []
        for name in event.queues:
            for interface in self._queues.member_interfaces(name):
                if (name, interface) not in listed:
                    effects.extend(self.handle(
                        QueueMemberRemoved(name, interface, event.ts, event.source)))
        for member in event.members:
            effects.extend(self.handle(member))
        for caller in event.callers:
            effects.extend(self._calls.handle(caller).effects)
        effects.extend(self._queues.handle(event))
        last = {e.queue.name: e for e in effects if isinstance(e, QueueUpdated)}
        return [e for e in effects if not isinstance(e, QueueUpdated) or last[e.queue.name] is e]

    def _queue_calls_completed(self, effects: Sequence[CallEffect]) -> list[Effect]:
        """An answered queue call that ended gives its talk time to the queue (ARI has no
        AgentComplete; with AMI too, the queue counts it once)."""
        out: list[Effect] = []
        for effect in effects:
            call = effect.call
            if (isinstance(effect, CallEnded) and call.queue_name is not None
                    and call.answer_time is not None and call.end_time is not None):
                talk = (call.end_time - call.answer_time).total_seconds()
                out.extend(self._queues.completed(call.queue_name, call.channel_id, talk,
                                                  call.end_time))
        return out

    def _refresh(self, operator_ids: Iterable[str], ts: datetime) -> list[OperatorEffect]:
        """Recompute the operators whose legs in calls changed (in a stable order)."""
        effects: list[OperatorEffect] = []
        for operator_id in sorted(operator_ids):
            effects.extend(self._operators.refresh(operator_id, ts))
        return effects

    def _resync(self, event: Resynced) -> list[Effect]:
        changes = self._calls.handle(event)
        operators = self._operators
        # Busy device states from before the reconnect may be stale (their calls may have ended
        # while we were away); the resynced channels tell what they are doing again.
        operators.forget_busy_devices_before(event.ts)
        effects: list[Effect] = list(changes.effects)
        for endpoint in event.endpoints:
            effects.extend(operators.endpoint(
                endpoint.technology, endpoint.resource, endpoint.state, event.ts))
        for device in event.devices:
            effects.extend(operators.device(device.name, device.state, event.ts))
        effects.extend(self._refresh(changes.touched_operator_ids, event.ts))
        # Stale device states were dropped: every operator may have changed.
        effects.extend(self._refresh((op.id for op in operators.operators()), event.ts))
        return effects
