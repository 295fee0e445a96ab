"""The engine: one pure entry point, ``handle(event) -> effects``, and read accessors."""

from __future__ import annotations

from collections.abc import Iterable

from engine.directory import OperatorDirectory
from engine.effects import Effect, OperatorEffect
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
    Resynced,
)
from engine.machine.calls import CallMachine
from engine.machine.operators import OperatorMachine
from engine.model import Call, Operator


class Engine:
    """Calls and operators of one PBX. No I/O, no await, no clock: times come from events."""

    def __init__(self, directory_operators: Iterable[Operator] = ()) -> None:
        self._directory = OperatorDirectory(directory_operators)
        self._calls = CallMachine(self._directory)
        self._operators = OperatorMachine(self._directory, self._calls.activity)

    # ----------------------------------------------------------------- reads

    def active_calls(self) -> list[Call]:
        return self._calls.active_calls()

    def operators(self) -> list[Operator]:
        return self._operators.operators()

    def operator(self, operator_id: str) -> Operator | None:
        return self._operators.get(operator_id)

    def call_for_channel(self, channel_id: str) -> Call | None:
        """The published call a live channel belongs to (e.g. may this operator hang it up)."""
        return self._calls.call_for_channel(channel_id)

    # ----------------------------------------------------------------- the one write

    def handle(self, event: Event) -> list[Effect]:
        """Apply one event; return what happened (call effects first, then operators)."""
        effects: list[Effect] = []
        op_effects: list[OperatorEffect] = []
        if isinstance(
            event,
            ChannelCreated | ChannelStateChanged | CallerIdChanged | DialUpdated
            | BridgeEntered | BridgeLeft | ChannelHungUp | Resynced,
        ):
            effects.extend(self._calls.handle(event))
            if isinstance(event, Resynced):
                # Busy device states from before the reconnect may be stale (their calls may
                # have ended while we were away); the resynced channels tell activity again.
                self._operators.forget_busy_devices_before(event.ts)
                for endpoint in event.endpoints:
                    op_effects.extend(self._operators.endpoint(
                        endpoint.technology, endpoint.resource, endpoint.state, event.ts))
                for device in event.devices:
                    op_effects.extend(self._operators.device(device.name, device.state, event.ts))
            touched = sorted(self._calls.touched_operators)
            self._calls.touched_operators.clear()
            for operator_id in touched:
                op_effects.extend(self._operators.refresh(operator_id, event.ts))
            if isinstance(event, Resynced):
                # Stale device states were dropped: every operator may have changed.
                for operator in self._operators.operators():
                    op_effects.extend(self._operators.refresh(operator.id, event.ts))
        elif isinstance(event, DeviceStateChanged):
            op_effects.extend(self._operators.device(event.device, event.state, event.ts))
        elif isinstance(event, EndpointStateChanged):
            op_effects.extend(self._operators.endpoint(
                event.technology, event.resource, event.state, event.ts))
        elif isinstance(event, OperatorStatusRequested):
            op_effects.extend(
                self._operators.request_status(event.operator_id, event.status, event.ts))
        elif isinstance(event, OperatorProvisioned):
            op_effects.extend(self._operators.provision(event.operator))
        elif isinstance(event, OperatorRemoved):
            self._operators.remove(event.operator_id)
        effects.extend(op_effects)
        return effects
