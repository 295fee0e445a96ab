"""The operator state machine: presence sources and call legs in, status effects out (pure).

The published status is derived, in this order (first match wins):

1. A leg of theirs in a call (answered, or the call they originated) -> ``busy``/``in_call``.
   A real call always shows, whatever they chose.
2. A device state (``PJSIP/1001``, ``Custom:1001``, ...) ``INUSE``/``BUSY``/``RINGINUSE`` ->
   ``busy``/``in_call``; ``ONHOLD`` -> ``busy``/``on_hold``.
3. A leg of theirs ringing, or a device ``RINGING`` -> ``online``/``ringing``: an offer is not
   work (in a ringall queue every free agent rings for every caller). Their own choice of
   offline/busy and a queue pause still win (go on below).
4. Unreachable: endpoint ``offline`` or a device ``UNAVAILABLE``/``INVALID`` -> ``offline``.
5. Their own choice through the API (``manual_status``): offline -> ``offline``/``manual``,
   busy -> ``busy``/``manual``; it wins over an idle phone.
6. Paused in a queue (ARI pseudo device ``Queue:<q>_pause_<member>`` INUSE, or AMI
   ``QueueMemberPause`` with its reason) -> ``busy``/``paused``.
7. Reachable (endpoint ``online`` or an idle device) or manual ``online`` -> ``online``.
8. Nothing known yet: the provisioned status (``busy`` without evidence counts as ``online``).

``Operator.activity`` turns the detail into the seed-side word (``available``, ``ringing``,
``in_call``, ``on_hold``, ``paused``). ``OperatorStatusChanged`` goes out when the status or the
activity changes (a wallboard shows an operator ringing), with the previous status.

``Local/1001@agents`` device states are ignored: they say INUSE while merely ringing, and the
legs themselves are tracked by the call machine. Per source, a frame older than the last one
applied is stale and ignored. ``last_activity`` is the PBX time of the last published change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from engine.directory import OperatorDirectory, extension_of, paused_member
from engine.effects import (
    OperatorEffect,
    OperatorLoggedIn,
    OperatorStatusChanged,
    OperatorUpdated,
)
from engine.model import Operator, OperatorStatus

_DEVICE_IN_CALL = frozenset({"INUSE", "BUSY", "RINGINUSE"})
_DEVICE_ON_HOLD = frozenset({"ONHOLD"})
_DEVICE_RINGING = frozenset({"RINGING"})
_DEVICE_OFFLINE = frozenset({"UNAVAILABLE", "INVALID"})
_DEVICE_IDLE = frozenset({"NOT_INUSE"})

# (calls the operator is in, whether a leg of theirs is ringing)
CallsAndRinging = Callable[[str], tuple[int, bool]]


@dataclass(slots=True)
class _Sources:
    operator: Operator                        # last published snapshot
    base: OperatorStatus                      # the provisioned status, used until the PBX speaks
    endpoint: tuple[str, datetime] | None = None
    devices: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    paused: dict[str, tuple[bool, datetime]] = field(default_factory=dict)
    pause_reasons: dict[str, str] = field(default_factory=dict)   # queue -> reason (AMI)
    manual_at: datetime | None = None


class OperatorMachine:
    def __init__(self, directory: OperatorDirectory, calls_and_ringing: CallsAndRinging) -> None:
        self._dir = directory
        self._calls_and_ringing = calls_and_ringing
        self._ops: dict[str, _Sources] = {op.id: _Sources(op, op.status) for op in directory}

    def operators(self) -> list[Operator]:
        return sorted((s.operator for s in self._ops.values()), key=lambda o: o.extension)

    def get(self, operator_id: str) -> Operator | None:
        sources = self._ops.get(operator_id)
        return sources.operator if sources is not None else None

    # ----------------------------------------------------------------- inputs

    def provision(self, operator: Operator) -> list[OperatorEffect]:
        """Add or update a directory entry; runtime state (status, counters) is kept."""
        previous = self._dir.put(operator)
        sources = self._ops.get(operator.id)
        if sources is None:
            self._ops[operator.id] = _Sources(operator, operator.status)
            return [OperatorUpdated(operator)]
        old = sources.operator
        merged = replace(
            operator,
            status=old.status,
            status_detail=old.status_detail,
            manual_status=old.manual_status,
            current_calls=old.current_calls,
            last_activity=old.last_activity,
        )
        if previous is not None and previous.extension != operator.extension:
            sources.endpoint = None
            sources.devices.clear()
            sources.paused.clear()
        if merged == old:
            return []
        sources.operator = merged
        return [OperatorUpdated(merged)]

    def remove(self, operator_id: str) -> None:
        self._dir.remove(operator_id)
        self._ops.pop(operator_id, None)

    def request_status(
        self, operator_id: str, status: OperatorStatus | None, ts: datetime
    ) -> list[OperatorEffect]:
        sources = self._ops.get(operator_id)
        if sources is None or (sources.manual_at is not None and ts < sources.manual_at):
            return []
        sources.manual_at = ts
        return self._refresh(sources, ts, manual=status, set_manual=True)

    def endpoint(self, technology: str, resource: str, state: str, ts: datetime) -> list[
        OperatorEffect
    ]:
        operator = self._dir.for_name(f"{technology}/{resource}")
        if operator is None:
            return []
        sources = self._ops[operator.id]
        if sources.endpoint is not None and ts < sources.endpoint[1]:
            return []
        sources.endpoint = (state.lower(), ts)
        return self._refresh(sources, ts)

    def queue_paused(self, queue: str, member: str, paused: bool, reason: str,
                     ts: datetime) -> list[OperatorEffect]:
        """The member is paused in ``queue`` (with its reason) or back (AMI)."""
        operator = self._dir.for_name(member)
        if operator is None:
            return []
        sources = self._ops[operator.id]
        last = sources.paused.get(queue)
        if last is not None and ts < last[1]:
            return []
        sources.paused[queue] = (paused, ts)
        if paused and reason:
            sources.pause_reasons[queue] = reason
        else:
            sources.pause_reasons.pop(queue, None)
        return self._refresh(sources, ts)

    def device(self, name: str, state: str, ts: datetime) -> list[OperatorEffect]:
        paused = paused_member(name)
        if paused is not None:
            queue, member = paused
            operator = self._dir.for_name(member)
            if operator is None:
                return []
            sources = self._ops[operator.id]
            last = sources.paused.get(queue)
            if last is not None and ts < last[1]:
                return []
            sources.paused[queue] = (state.upper() not in _DEVICE_IDLE | _DEVICE_OFFLINE, ts)
            return self._refresh(sources, ts)
        if name[:6].lower() == "local/" or extension_of(name) is None:
            return []
        operator = self._dir.for_name(name)
        if operator is None:
            return []
        sources = self._ops[operator.id]
        last_device = sources.devices.get(name)
        if last_device is not None and ts < last_device[1]:
            return []
        sources.devices[name] = (state.upper(), ts)
        return self._refresh(sources, ts)

    def forget_busy_devices_before(self, ts: datetime) -> None:
        """After a reconnect, busy device states from before it may be stale: drop them.

        Presence (NOT_INUSE / UNAVAILABLE) is kept: it changes rarely, and dropping it would
        turn a logged-out ``Custom:`` operator online again.
        """
        busy = _DEVICE_IN_CALL | _DEVICE_ON_HOLD | _DEVICE_RINGING
        for sources in self._ops.values():
            sources.devices = {
                k: v for k, v in sources.devices.items() if v[1] >= ts or v[0] not in busy
            }

    def refresh(self, operator_id: str, ts: datetime) -> list[OperatorEffect]:
        """Recompute after the operator's legs in calls changed."""
        sources = self._ops.get(operator_id)
        return self._refresh(sources, ts) if sources is not None else []

    # ----------------------------------------------------------------- derivation

    def _refresh(
        self,
        sources: _Sources,
        ts: datetime,
        manual: OperatorStatus | None = None,
        set_manual: bool = False,
    ) -> list[OperatorEffect]:
        old = sources.operator
        manual_status = manual if set_manual else old.manual_status
        calls, ringing = self._calls_and_ringing(old.id)
        status, detail = self._derive(sources, manual_status, calls, ringing)
        reasons = [sources.pause_reasons[q] for q, (paused, _) in sorted(sources.paused.items())
                   if paused and q in sources.pause_reasons]
        new = replace(old, status=status, status_detail=detail, manual_status=manual_status,
                      current_calls=calls, queue_pause_reason=reasons[0] if reasons else None)
        if new == old:
            return []
        if old.last_activity is None or ts > old.last_activity:
            new = replace(new, last_activity=ts)
        sources.operator = new
        if (new.status, new.activity) == (old.status, old.activity):
            return [OperatorUpdated(new)]
        effects: list[OperatorEffect] = [OperatorStatusChanged(new, old.status.value)]
        if old.status is OperatorStatus.OFFLINE:
            effects.append(OperatorLoggedIn(new))
        return effects

    def _derive(
        self,
        sources: _Sources,
        manual: OperatorStatus | None,
        calls: int,
        ringing: bool,
    ) -> tuple[OperatorStatus, str | None]:
        devices = {state for state, _ in sources.devices.values()}
        if calls or devices & _DEVICE_IN_CALL:
            return OperatorStatus.BUSY, "in_call"
        if devices & _DEVICE_ON_HOLD:
            return OperatorStatus.BUSY, "on_hold"
        paused = any(paused for paused, _ in sources.paused.values())
        chose_away = manual in (OperatorStatus.OFFLINE, OperatorStatus.BUSY)
        if (ringing or devices & _DEVICE_RINGING) and not chose_away and not paused:
            return OperatorStatus.ONLINE, "ringing"
        endpoint = sources.endpoint[0] if sources.endpoint is not None else None
        if endpoint == "offline" or devices & _DEVICE_OFFLINE:
            return OperatorStatus.OFFLINE, None
        if manual is OperatorStatus.OFFLINE:
            return OperatorStatus.OFFLINE, "manual"
        if manual is OperatorStatus.BUSY:
            return OperatorStatus.BUSY, "manual"
        if paused:
            return OperatorStatus.BUSY, "paused"
        if endpoint == "online" or devices & _DEVICE_IDLE or manual is OperatorStatus.ONLINE:
            return OperatorStatus.ONLINE, None
        # Nothing conclusive heard from the PBX: keep what the directory said.
        if sources.base is OperatorStatus.OFFLINE:
            return OperatorStatus.OFFLINE, None
        return OperatorStatus.ONLINE, None
