"""The queue machine: callers waiting, members working, and live figures (pure, no clock).

Words as a call center uses them:

- **offered** -- a caller whose queue visit is over: answered, abandoned (hung up waiting) or
  timed out / left without an agent. A caller is counted once, when the outcome is known, in
  the minute it happened.
- **service level** -- answered within the queue's threshold ÷ offered (percent); the
  threshold is the PBX's (``QUEUESRVLEVEL``/AMI ``ServiceLevel``) once told, else the default.
- **average speed of answer** -- mean wait of the answered; **average handle time** -- mean
  talk time of the completed; **abandon rate** -- abandoned ÷ offered.
- windows: the last 15 minutes, hour and 24 hours, rolling (per-minute buckets, at most 25 h
  of them kept per queue, so a center running 24/7 never drifts), and the calendar day in the
  center's timezone. Figures are as of the latest event time: ``snapshot(queue, now)`` rolls
  them forward without an event.

Duplicates and reordering: an outcome is counted once per (queue, caller channel, visit); a
``Joined`` older than that caller's counted outcome is a late duplicate, not a new visit; so is
a ``Joined`` from a source that has not told that outcome yet -- with ARI and AMI together, ARI
may count a visit (told as it ends) before AMI's join of it arrives, and AMI's times are receipt
times, not comparable with ARI's; a source's join after it told the outcome is a new visit. AMI
says ``QueueCallerLeave`` *before* ``AgentConnect``: ``left`` only takes the caller off the
line; the outcome that follows counts. A ``left`` with no outcome within
``LEFT_GRACE`` counts as offered, not answered (the queue timed out or the caller exited).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo

from engine.directory import OperatorDirectory
from engine.effects import OperatorLoggedIn, OperatorLoggedOut, QueueUpdated
from engine.events import (
    QueueCallCompleted,
    QueueCallerJoined,
    QueueCallerLeft,
    QueueEvent,
    QueueMemberChanged,
    QueueMemberPaused,
    QueueMemberRemoved,
    QueueMemberRinging,
    QueuesResynced,
)
from engine.model import MemberState, Queue, QueueFigures, QueueMember, WaitingCaller

QueueMachineEffect = QueueUpdated | OperatorLoggedIn | OperatorLoggedOut

DEFAULT_SERVICE_LEVEL_SECONDS = 20
LEFT_GRACE = timedelta(seconds=30)
WINDOWS: tuple[tuple[str, int], ...] = (("15m", 15), ("1h", 60), ("24h", 24 * 60))
_KEPT_MINUTES = 25 * 60            # 24 h plus the longest calendar day (a DST change)
_OUTCOMES_REMEMBERED = 100_000     # (queue, channel) outcomes kept to drop duplicates
_RINGING_STATES = frozenset({"RINGING", "RINGINUSE"})
_BUSY_STATES = frozenset({"INUSE", "BUSY", "ONHOLD"})
_GONE_STATES = frozenset({"UNAVAILABLE", "INVALID"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _minute(ts: datetime) -> int:
    return int((ts - _EPOCH).total_seconds() // 60)


@dataclass(slots=True)
class _Bucket:
    """What one minute of one queue saw."""

    offered: int = 0
    answered: int = 0
    within: int = 0
    abandoned: int = 0
    wait_answered: float = 0.0
    talk: float = 0.0
    completed: int = 0


@dataclass(slots=True)
class _Member:
    interface: str
    name: str = ""
    device_state: str = "NOT_INUSE"
    paused: bool = False
    pause_reason: str = ""
    calls_taken: int = 0
    last_call: datetime | None = None
    login_time: datetime | None = None
    wrapup_until: datetime | None = None
    ringing_for: set[str] = field(default_factory=set)   # callers it is being offered


@dataclass(slots=True)
class _Queue:
    name: str
    service_level: int | None = None
    callers: dict[str, WaitingCaller] = field(default_factory=dict)
    members: dict[str, _Member] = field(default_factory=dict)
    buckets: dict[int, _Bucket] = field(default_factory=dict)
    # off the line, outcome pending: channel -> (when, the source that said it)
    left: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    as_of: datetime | None = None
    published: Queue | None = None
    version: int = 0     # bumped whenever a bucket may change: figures are cached per version
    cached: tuple[tuple[int, int, int], tuple[QueueFigures, ...]] | None = None


class QueueMachine:
    """Every queue of one PBX; ``handle`` returns the queues (and logins) it changed."""

    def __init__(self, directory: OperatorDirectory, timezone: tzinfo = UTC,
                 default_service_level: int = DEFAULT_SERVICE_LEVEL_SECONDS) -> None:
        self._directory = directory
        self._tz = timezone
        self._default_service_level = default_service_level
        self._queues: dict[str, _Queue] = {}
        # (queue, caller channel) -> when its outcome was counted ("" key part: completions)
        self._outcomes: OrderedDict[tuple[str, str, str], datetime] = OrderedDict()
        self._told_by: dict[tuple[str, str, str], set[str]] = {}   # the sources that told one
        # when callers off the line with their outcome pending had joined (AMI: Leave, Connect)
        self._joined_at: dict[tuple[str, str], datetime] = {}

    # ----------------------------------------------------------------- reads

    def names(self) -> list[str]:
        return sorted(self._queues)

    def snapshot(self, name: str, now: datetime | None = None) -> Queue | None:
        """The queue as of ``now`` (default: its latest event): windows roll forward."""
        queue = self._queues.get(name)
        if queue is None:
            return None
        return self._snapshot(queue, now or queue.as_of or _EPOCH)

    def snapshots(self, now: datetime | None = None) -> list[Queue]:
        queues = sorted(self._queues.items())
        return [self._snapshot(q, now or q.as_of or _EPOCH) for _, q in queues]

    def member_interfaces(self, name: str) -> list[str]:
        queue = self._queues.get(name)
        return sorted(queue.members) if queue is not None else []

    def queues_of_operator(self, operator_id: str) -> list[str]:
        return sorted(q.name for q in self._queues.values()
                      if any(self._operator_id(m) == operator_id for m in q.members.values()))

    # ----------------------------------------------------------------- the write

    def handle(self, event: QueueEvent) -> list[QueueMachineEffect]:
        if isinstance(event, QueuesResynced):
            return self._resync_callers(event)
        queue = self._queue(event.queue)
        effects: list[QueueMachineEffect] = []
        ts = event.ts
        self._settle_left(queue, ts)
        match event:
            case QueueCallerJoined():
                self._join(queue, event)
            case QueueCallerLeft():
                self._leave(queue, event)
            case QueueCallCompleted():
                self._complete(queue, event.channel_id, event.talk_seconds, ts)
            case QueueMemberChanged():
                effects.extend(self._member_changed(queue, event))
            case QueueMemberPaused():
                member = self._member(queue, event.member, ts, effects)
                member.paused = event.paused
                member.pause_reason = event.reason if event.paused else ""
            case QueueMemberRinging():
                member = self._member(queue, event.member, ts, effects)
                if event.no_answer:
                    member.ringing_for.discard(event.channel_id)
                else:
                    member.ringing_for.add(event.channel_id)
            case QueueMemberRemoved():
                effects.extend(self._remove_member(queue, event.member))
        if queue.as_of is None or ts > queue.as_of:
            queue.as_of = ts
        effects.extend(self._publish(queue))
        return effects

    def completed(self, name: str, channel_id: str, talk_seconds: float,
                  ts: datetime) -> list[QueueMachineEffect]:
        """A queue call an agent answered is over (AgentComplete, or the call's end on ARI)."""
        queue = self._queue(name)
        if not self._complete(queue, channel_id, talk_seconds, ts):
            return []
        if queue.as_of is None or ts > queue.as_of:
            queue.as_of = ts
        return self._publish(queue)

    def _complete(self, queue: _Queue, channel_id: str, talk_seconds: float,
                  ts: datetime) -> bool:
        key = (queue.name, channel_id, "completed")
        if key in self._outcomes:
            return False   # told already (AgentComplete and the call's end; a duplicate)
        self._remember(key, ts, "")
        bucket = self._bucket(queue, ts)
        bucket.talk += max(0.0, talk_seconds)
        bucket.completed += 1
        return True

    # ----------------------------------------------------------------- callers

    def _resync_callers(self, event: QueuesResynced) -> list[QueueMachineEffect]:
        """The waiting lines as the PBX lists them now (members: see ``Engine``)."""
        levels = dict(event.service_levels)
        effects: list[QueueMachineEffect] = []
        for name in event.queues:
            queue = self._queue(name)
            if name in levels:
                queue.service_level = levels[name]
            before = queue.callers
            queue.callers = {}
            for caller in event.callers:
                if caller.queue == name:
                    known = before.get(caller.channel_id)
                    if known is not None:   # keep when they joined, if we saw it
                        queue.callers[caller.channel_id] = known
                    self._join(queue, caller)
            if queue.as_of is None or event.ts > queue.as_of:
                queue.as_of = event.ts
            effects.extend(self._publish(queue))
        return effects

    def _join(self, queue: _Queue, event: QueueCallerJoined) -> None:
        key = (queue.name, event.channel_id, "outcome")
        counted = self._outcomes.get(key)
        if counted is not None and (event.ts <= counted
                                    or event.source not in self._told_by.get(key, ())):
            return   # a late duplicate of a visit already over (or its join by another source)
        if event.service_level_seconds is not None:
            queue.service_level = event.service_level_seconds
        known = queue.callers.get(event.channel_id)
        since = min(known.waiting_since, event.ts) if known else event.ts
        queue.callers[event.channel_id] = WaitingCaller(
            event.channel_id, event.position, since,
            event.caller_number or (known.caller_number if known else ""))
        if counted is not None:   # a new visit of the same caller: count it afresh
            del self._outcomes[key]
            self._told_by.pop(key, None)

    def _leave(self, queue: _Queue, event: QueueCallerLeft) -> None:
        if event.service_level_seconds is not None:
            queue.service_level = event.service_level_seconds
        waiting = queue.callers.pop(event.channel_id, None)
        key = (queue.name, event.channel_id, "outcome")
        if key in self._outcomes:
            self._told_by.setdefault(key, set()).add(event.source)
            return   # counted already (a duplicate, or ARI and AMI both told it)
        if event.reason == "left":
            queue.left.setdefault(event.channel_id, (event.ts, event.source))
            if waiting is not None:
                self._joined_at[(queue.name, event.channel_id)] = waiting.waiting_since
            return
        joined = self._joined_at.pop((queue.name, event.channel_id), None)
        queue.left.pop(event.channel_id, None)
        wait = event.wait_seconds
        if wait is None:
            since = waiting.waiting_since if waiting is not None else joined
            wait = (event.ts - since).total_seconds() if since is not None else 0.0
        self._remember(key, event.ts, event.source)
        bucket = self._bucket(queue, event.ts)
        bucket.offered += 1
        if event.reason == "answered":
            bucket.answered += 1
            bucket.wait_answered += max(0.0, wait)
            if wait <= self._threshold(queue):
                bucket.within += 1
            if event.member:
                member = queue.members.get(event.member)
                if member is not None:
                    member.calls_taken += 1
                    if member.last_call is None or event.ts > member.last_call:
                        member.last_call = event.ts
        elif event.reason == "abandoned":
            bucket.abandoned += 1
        for member in queue.members.values():
            member.ringing_for.discard(event.channel_id)

    def _settle_left(self, queue: _Queue, ts: datetime) -> None:
        """Callers off the line with no outcome for ``LEFT_GRACE``: offered, not answered."""
        for channel_id, (left_at, source) in list(queue.left.items()):
            if ts - left_at < LEFT_GRACE:
                continue
            del queue.left[channel_id]
            self._joined_at.pop((queue.name, channel_id), None)
            key = (queue.name, channel_id, "outcome")
            if key not in self._outcomes:
                self._remember(key, left_at, source)
                self._bucket(queue, left_at).offered += 1

    # ----------------------------------------------------------------- members

    def _member_changed(
        self, queue: _Queue, event: QueueMemberChanged,
    ) -> list[QueueMachineEffect]:
        effects: list[QueueMachineEffect] = []
        member = self._member(queue, event.member, event.ts, effects)
        member.name = event.name or member.name
        member.device_state = event.state.upper() or member.device_state
        member.paused = event.paused
        member.pause_reason = event.pause_reason if event.paused else ""
        if event.calls_taken is not None:
            member.calls_taken = event.calls_taken
        if event.last_call is not None:
            member.last_call = event.last_call
        if event.login_time is not None:
            member.login_time = event.login_time
        member.wrapup_until = event.wrapup_until
        if member.device_state not in _RINGING_STATES:
            member.ringing_for.clear()
        return effects

    def _member(self, queue: _Queue, interface: str, ts: datetime,
                effects: list[QueueMachineEffect]) -> _Member:
        member = queue.members.get(interface)
        if member is None:
            operator_id = self._operator_id_of(interface)
            first = operator_id is not None and not self.queues_of_operator(operator_id)
            member = queue.members[interface] = _Member(interface, login_time=ts)
            operator = self._directory.by_id(operator_id) if operator_id else None
            if first and operator is not None:
                effects.append(OperatorLoggedIn(operator, queue.name))
        return member

    def _remove_member(self, queue: _Queue, interface: str) -> list[QueueMachineEffect]:
        member = queue.members.pop(interface, None)
        if member is None:
            return []
        operator_id = self._operator_id(member)
        operator = self._directory.by_id(operator_id) if operator_id else None
        if operator is None or self.queues_of_operator(operator.id):
            return []
        return [OperatorLoggedOut(operator, queue.name)]

    def _operator_id_of(self, interface: str) -> str | None:
        operator = self._directory.for_name(interface)
        return operator.id if operator is not None else None

    def _operator_id(self, member: _Member) -> str | None:
        return self._operator_id_of(member.interface)

    @staticmethod
    def _member_state(member: _Member, at: datetime) -> MemberState:
        if member.paused:
            return MemberState.PAUSED
        if member.device_state in _GONE_STATES:
            return MemberState.UNAVAILABLE
        if member.device_state in _BUSY_STATES:
            return MemberState.IN_CALL
        if member.device_state in _RINGING_STATES or member.ringing_for:
            return MemberState.RINGING
        if member.wrapup_until is not None and member.wrapup_until > at:
            return MemberState.WRAPUP
        return MemberState.AVAILABLE

    # ----------------------------------------------------------------- figures

    def _queue(self, name: str) -> _Queue:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = _Queue(name)
        return queue

    def _threshold(self, queue: _Queue) -> int:
        if queue.service_level is None:
            return self._default_service_level
        return queue.service_level

    def _bucket(self, queue: _Queue, ts: datetime) -> _Bucket:
        """The bucket of ``ts``'s minute, for changing it."""
        queue.version += 1
        minute = _minute(ts)
        bucket = queue.buckets.get(minute)
        if bucket is None:
            bucket = queue.buckets[minute] = _Bucket()
            newest = max(queue.buckets)
            for old in [m for m in queue.buckets if m <= newest - _KEPT_MINUTES]:
                del queue.buckets[old]
        return bucket

    def _remember(self, key: tuple[str, str, str], ts: datetime, source: str) -> None:
        self._outcomes[key] = ts
        self._told_by[key] = {source}
        while len(self._outcomes) > _OUTCOMES_REMEMBERED:
            old, _ = self._outcomes.popitem(last=False)
            self._told_by.pop(old, None)

    def _figures(self, queue: _Queue, now: datetime) -> tuple[QueueFigures, ...]:
        current = _minute(now)
        local = now.astimezone(self._tz)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        day_after = _minute(midnight) - 1
        key = (queue.version, current, day_after)
        if queue.cached is not None and queue.cached[0] == key:
            return queue.cached[1]   # most events change no outcome: no need to sum again
        spans = [(name, current - minutes) for name, minutes in WINDOWS]
        spans.append(("day", day_after))
        figures = tuple(_sum(name, queue.buckets, after, current) for name, after in spans)
        queue.cached = (key, figures)
        return figures

    def _snapshot(self, queue: _Queue, now: datetime) -> Queue:
        members = tuple(self._member_view(m, now) for _, m in sorted(queue.members.items()))
        callers = tuple(sorted(queue.callers.values(),
                               key=lambda c: (c.waiting_since, c.position or 0, c.channel_id)))
        return Queue(queue.name, self._threshold(queue), now, callers, members,
                     self._figures(queue, now))

    def _member_view(self, member: _Member, now: datetime) -> QueueMember:
        operator = self._directory.for_name(member.interface)
        return QueueMember(
            interface=member.interface,
            name=member.name,
            operator_id=operator.id if operator is not None else None,
            group_id=operator.group_id if operator is not None else None,
            state=self._member_state(member, now),
            paused=member.paused,
            pause_reason=member.pause_reason or None,
            calls_taken=member.calls_taken,
            last_call=member.last_call,
            login_time=member.login_time,
            wrapup_until=member.wrapup_until,
        )

    def _publish(self, queue: _Queue) -> list[QueueMachineEffect]:
        current = self._snapshot(queue, queue.as_of or _EPOCH)
        before = queue.published
        queue.published = current
        if before is not None and replace(before, as_of=current.as_of) == current:
            return []
        return [QueueUpdated(current)]


def _sum(window: str, buckets: dict[int, _Bucket], after: int, until: int) -> QueueFigures:
    offered = answered = within = abandoned = completed = 0
    wait = talk = 0.0
    for minute, b in buckets.items():
        if after < minute <= until:
            offered += b.offered
            answered += b.answered
            within += b.within
            abandoned += b.abandoned
            wait += b.wait_answered
            talk += b.talk
            completed += b.completed
    return QueueFigures(window, offered, answered, within, abandoned, wait, talk, completed)
