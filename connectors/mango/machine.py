"""Mango calls in, the engine's call effects out (pure: no I/O, no clock of its own).

Mango describes calls, not channels, so it gets this small machine instead of invented channels.

- A call is an ``entry_id``; its legs are ``call_id``s. Each leg applies events in ``seq``
  order: an event whose ``seq`` is not above the leg's last one (late or duplicate) changes
  nothing.
- ``CallStarted`` on the first event of an ``entry_id`` (normally ``Appeared``; if that one is
  late, whichever arrives first stands for it).
- ``CallAnswered`` once, on ``Connected`` of a leg at an operator (``location: abonent`` with
  ``to.extension``; for a call an operator placed, the outside party connecting). ``Connected``
  in the IVR or a queue is no answer. Another extension connecting later is a transfer.
- ``location: queue`` or an ``acd_group`` puts the call in that queue.
- ``CallEnded`` when every leg seen is ``Disconnected``, or when the summary arrives, whichever
  comes first. Events of an ended call change nothing, except the summary: it is authoritative
  for the final record (times, answered or missed, reason), and if it arrives after the end
  it corrects the record with a ``CallUpdated``. A summary of a call never seen gives
  ``CallStarted`` (+ ``CallAnswered``) + ``CallEnded`` at once.
- Mango cannot list live calls: ``expire(now)`` closes a call with no event for
  ``stale_after`` (default 4 h, longer than any real conversation, which sends no events while
  it lasts) at the last time it was known alive. Every call it returns is *reconciled*.

Calls carry ``source="mango"``; ``Call.id`` derives from ``mango:<entry_id>`` and
``channel_id`` is the ``entry_id``; ``channel_ids`` are the Mango leg ids (what
``commands/call/hangup`` takes). Caller numbers are E.164 where possible (``numbers.py``); the
raw number is available from ``raw_caller``.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from connectors.mango.events import (
    CallEvent,
    CallState,
    Location,
    Party,
    Summary,
    parse_call_event,
    parse_summary,
)
from connectors.mango.numbers import PhoneNumber, normalize_phone
from connectors.mango.reasons import missed_reason
from connectors.mango.signing import Delivery, DeliveryKind
from engine.directory import OperatorDirectory
from engine.effects import (
    CallAnswered,
    CallEffect,
    CallEnded,
    CallStarted,
    CallTransferred,
    CallUpdated,
)
from engine.model import Call, CallStatus, Direction, call_id_for

SOURCE = "mango"
STALE_AFTER = timedelta(hours=4)
FINISHED_KEPT = 10_000   # ended calls remembered, so late events and summaries find them


@dataclass(slots=True)
class _Leg:
    seq: int
    state: CallState


@dataclass(slots=True)
class _Entry:
    call: Call
    caller: PhoneNumber | None
    last_alive: datetime
    legs: dict[str, _Leg] = field(default_factory=dict)
    reached_agents: bool = False      # entered a queue or rang an operator
    last_reason: int | None = None    # the latest disconnect_reason seen
    ended: bool = False
    summarized: bool = False


def mango_call_id(entry_id: str) -> str:
    """Our deterministic call id for a Mango ``entry_id``."""
    return call_id_for(f"{SOURCE}:{entry_id}")


class MangoCalls:
    """``handle(delivery, now) -> effects``; ``expire(now) -> reconciled ends``.

    ``now`` only stands in for a missing timestamp (and ages calls in ``expire``); times come
    from Mango's own timestamps. ``counters`` counts what was ignored and why.
    """

    def __init__(
        self,
        directory: OperatorDirectory | None = None,
        *,
        stale_after: timedelta = STALE_AFTER,
    ) -> None:
        self._directory = directory if directory is not None else OperatorDirectory()
        self._stale_after = stale_after
        self._open: dict[str, _Entry] = {}
        self._finished: OrderedDict[str, _Entry] = OrderedDict()
        self.counters: Counter[str] = Counter()

    # -- reading ------------------------------------------------------------------------------

    def open_calls(self) -> list[Call]:
        return [entry.call for entry in self._open.values()]

    def raw_caller(self, entry_id: str) -> PhoneNumber | None:
        """The caller's number as Mango sent it (with its normalised form)."""
        entry = self._open.get(entry_id) or self._finished.get(entry_id)
        return entry.caller if entry is not None else None

    # -- input --------------------------------------------------------------------------------

    def handle(self, delivery: Delivery, now: datetime) -> list[CallEffect]:
        if delivery.kind is DeliveryKind.CALL:
            event = parse_call_event(delivery.data)
            if event is None:
                self.counters["invalid_call_event"] += 1
                return []
            return self.on_call_event(event, now)
        if delivery.kind is DeliveryKind.SUMMARY:
            summary = parse_summary(delivery.data)
            if summary is None:
                self.counters["invalid_summary"] += 1
                return []
            return self.on_summary(summary, now)
        return []   # recordings, dtmf, results: not call milestones

    def on_call_event(self, event: CallEvent, now: datetime) -> list[CallEffect]:
        ts = event.ts
        if ts is None:
            self.counters["no_timestamp"] += 1
            ts = now
        if event.entry_id in self._finished:
            self.counters["after_end"] += 1
            return []
        entry = self._open.get(event.entry_id)
        started = entry is None
        if entry is None:
            entry = self._new_entry(event, ts)
            self._open[event.entry_id] = entry
        leg = entry.legs.get(event.call_id)
        if leg is not None and event.seq <= leg.seq:
            self.counters["duplicate" if event.seq == leg.seq else "out_of_order"] += 1
            return []
        entry.legs[event.call_id] = _Leg(seq=event.seq, state=event.state)
        entry.last_alive = max(entry.last_alive, ts)
        if event.disconnect_reason is not None:
            entry.last_reason = event.disconnect_reason
        before = entry.call
        call = self._route(entry, event, ts)
        effects: list[CallEffect] = [CallStarted(call)] if started else []
        call = self._connect(call, event, ts)
        if before.answer_time is None and call.answer_time is not None:
            effects.append(CallAnswered(call))
        elif len(call.transfer_operator_ids) > len(before.transfer_operator_ids):
            effects.append(
                CallTransferred(call, before.current_operator_id, call.transfer_operator_ids[-1])
            )
        entry.call = call
        if all(leg.state is CallState.DISCONNECTED for leg in entry.legs.values()):
            effects.append(CallEnded(self._close(entry, end_time=entry.last_alive)))
        elif not effects and call != before:
            effects.append(CallUpdated(call))
        return effects

    def on_summary(self, summary: Summary, now: datetime) -> list[CallEffect]:
        entry = self._open.get(summary.entry_id) or self._finished.get(summary.entry_id)
        if entry is not None and entry.summarized:
            self.counters["duplicate"] += 1
            return []
        effects: list[CallEffect] = []
        if entry is None:
            entry = self._entry_from_summary(summary, now)
            effects.append(CallStarted(entry.call))
        final = self._final(entry, summary)
        entry.summarized = True
        if entry.ended:
            if final != entry.call:
                effects.append(CallUpdated(final))
            entry.call = final
            return effects
        if final.answer_time is not None and entry.call.answer_time is None:
            effects.append(CallAnswered(replace(final, status=CallStatus.ANSWERED,
                                                end_time=None, missed_reason=None)))
        entry.call = final
        effects.append(CallEnded(self._close(entry, end_time=final.end_time or now)))
        return effects

    def expire(self, now: datetime) -> list[CallEnded]:
        """Close calls silent for ``stale_after`` at their last known time (all reconciled)."""
        stale = [e for e in self._open.values() if now - e.last_alive >= self._stale_after]
        return [CallEnded(self._close(entry, end_time=entry.last_alive)) for entry in stale]

    # -- rules --------------------------------------------------------------------------------

    def _new_entry(self, event: CallEvent, ts: datetime) -> _Entry:
        direction = _direction(event.caller, event.callee)
        caller, called = _numbers(direction, event.caller, event.callee, event.callee.line_number)
        call = Call(
            id=mango_call_id(event.entry_id),
            channel_id=event.entry_id,
            caller_number=_shown(caller, event.caller),
            start_time=ts,
            direction=direction,
            source=SOURCE,
            called_number=called,
        )
        if direction is not Direction.INBOUND and event.caller.extension is not None:
            call = self._with_operator(call, event.caller.extension)
        return _Entry(call=call, caller=caller, last_alive=ts)

    def _route(self, entry: _Entry, event: CallEvent, ts: datetime) -> Call:
        """Everything an event says except an answer: caller, legs, queue, operators rung."""
        call = entry.call
        if call.caller_number == "anonymous" and entry.caller is None:
            caller, _ = _numbers(call.direction, event.caller, event.callee, None)
            if caller is not None:
                entry.caller = caller
                call = replace(call, caller_number=caller.normalized)
        call = replace(call, start_time=min(call.start_time, ts),
                       channel_ids=_added(call.channel_ids, event.call_id))
        queue = event.callee.acd_group
        if event.location is Location.QUEUE:
            entry.reached_agents = True
            queue = queue or call.queue_name or event.callee.extension or event.callee.number
        if queue is not None and call.queue_name is None:
            call = replace(call, queue_name=queue)
        agent = _agent_extension(call, event)
        if agent is None:
            return call
        entry.reached_agents = True
        return self._rang(call, agent)

    def _connect(self, call: Call, event: CallEvent, ts: datetime) -> Call:
        """A leg connected at an operator: the answer, or a transfer of an answered call."""
        agent = _agent_extension(call, event)
        if agent is None or event.state is not CallState.CONNECTED:
            return call
        if call.answer_time is None:
            call = self._with_operator(call, agent)
            return replace(call, status=CallStatus.ANSWERED, answer_time=ts)
        operator = self._directory.by_extension(agent)
        if operator is not None and operator.id != call.current_operator_id:
            call = replace(call, transfer_operator_ids=(*call.transfer_operator_ids, operator.id))
        return call

    def _rang(self, call: Call, extension: str) -> Call:
        operator = self._directory.by_extension(extension)
        if operator is None or call.direction is not Direction.INBOUND:
            return call
        groups = call.group_ids
        if operator.group_id is not None:
            groups = _added(groups, operator.group_id)
        return replace(
            call,
            offered_operator_ids=_added(call.offered_operator_ids, operator.id),
            rung_operator_ids=_added(call.rung_operator_ids, operator.id),
            group_ids=groups,
        )

    def _with_operator(self, call: Call, extension: str) -> Call:
        operator = self._directory.by_extension(extension)
        call = replace(call, operator_extension=extension,
                       operator_id=operator.id if operator is not None else None)
        if operator is not None and operator.group_id is not None:
            call = replace(call, group_ids=_added(call.group_ids, operator.group_id))
        return call

    def _entry_from_summary(self, summary: Summary, now: datetime) -> _Entry:
        direction = summary.direction or _direction(summary.caller, summary.callee)
        line = summary.line_number or summary.callee.line_number
        caller, called = _numbers(direction, summary.caller, summary.callee, line)
        start = summary.create_time or summary.end_time or now
        call = Call(id=mango_call_id(summary.entry_id), channel_id=summary.entry_id,
                    caller_number=_shown(caller, summary.caller), start_time=start,
                    direction=direction, source=SOURCE, called_number=called,
                    queue_name=summary.callee.acd_group)
        if direction is not Direction.INBOUND and summary.caller.extension is not None:
            call = self._with_operator(call, summary.caller.extension)
        self.counters["summary_only"] += 1
        return _Entry(call=call, caller=caller, last_alive=start)

    def _final(self, entry: _Entry, summary: Summary) -> Call:
        """The record as the summary states it; what it leaves out stays as we saw it."""
        call = entry.call
        direction = summary.direction or call.direction
        call = replace(call, direction=direction,
                       start_time=summary.create_time or call.start_time,
                       end_time=summary.end_time or call.end_time or entry.last_alive)
        if summary.answered:
            agent = summary.callee.extension if direction is Direction.INBOUND else None
            if agent is not None and call.operator_extension is None:
                call = self._with_operator(call, agent)
            answer_time = summary.talk_time or call.answer_time or call.end_time
            return replace(call, status=CallStatus.COMPLETED, answer_time=answer_time,
                           missed_reason=None)
        reached = entry.reached_agents or summary.forward_time is not None
        reason = summary.disconnect_reason or entry.last_reason
        return replace(call, status=CallStatus.MISSED, answer_time=None,
                       operator_id=None if direction is Direction.INBOUND else call.operator_id,
                       transfer_operator_ids=(),
                       missed_reason=missed_reason(reason, direction, reached))

    def _close(self, entry: _Entry, end_time: datetime) -> Call:
        """Final record from what the events said (a summary's record is already final)."""
        call = entry.call
        if call.status not in (CallStatus.COMPLETED, CallStatus.MISSED):
            if call.answer_time is not None:
                call = replace(call, status=CallStatus.COMPLETED, end_time=end_time)
            else:
                reason = missed_reason(entry.last_reason, call.direction, entry.reached_agents)
                call = replace(call, status=CallStatus.MISSED, end_time=end_time,
                               missed_reason=reason)
        entry.call, entry.ended = call, True
        self._open.pop(call.channel_id, None)
        self._finished[call.channel_id] = entry
        while len(self._finished) > FINISHED_KEPT:
            self._finished.popitem(last=False)
        return call


def _direction(caller: Party, callee: Party) -> Direction:
    """Without a summary: an operator calling an extension is internal, calling a number is
    outbound; anything else came in from outside."""
    if caller.extension is None:
        return Direction.INBOUND
    return Direction.INTERNAL if callee.extension is not None else Direction.OUTBOUND


def _numbers(
    direction: Direction, caller: Party, callee: Party, line: str | None
) -> tuple[PhoneNumber | None, str | None]:
    """(the calling party's number, the number called) as DOMAIN shows them."""
    if direction is Direction.INBOUND:
        number = caller.number
        called = line or callee.number
    else:
        number = caller.extension or caller.number
        called = callee.extension if direction is Direction.INTERNAL else callee.number
    phone = normalize_phone(number) if number is not None else None
    return phone, normalize_phone(called).normalized if called is not None else None


def _shown(phone: PhoneNumber | None, party: Party) -> str:
    if phone is not None:
        return phone.normalized
    return party.extension or "anonymous"


def _agent_extension(call: Call, event: CallEvent) -> str | None:
    """The extension this leg reaches at an operator's phone, or None (IVR, queue, outside)."""
    if event.location is not Location.ABONENT:
        return None
    if call.direction is Direction.INBOUND:
        return event.callee.extension
    if event.state is CallState.CONNECTED:
        return call.operator_extension   # the outside party picked up: the caller's answer
    return None


def _added(items: tuple[str, ...], item: str) -> tuple[str, ...]:
    return items if item in items else (*items, item)
