"""AMI queue and agent events -> engine queue events (pure; used by ``AmiNormalizer``).

A member is its ``Interface`` throughout (``Location`` in the ``QueueStatus`` list); a caller is
their channel's ``Uniqueid`` (the ARI channel id, so both sources name a visit alike):

- ``QueueCallerJoin`` -> ``QueueCallerJoined``; ``QueueCallerLeave`` -> ``QueueCallerLeft``
  ("left": off the line, the outcome comes next); ``AgentConnect`` -> left "answered" (wait =
  ``HoldTime``, by ``Interface``); ``QueueCallerAbandon`` -> left "abandoned" (wait =
  ``HoldTime``); ``AgentComplete`` -> ``QueueCallCompleted`` (``TalkTime``, ``Reason``);
- ``AgentCalled`` -> ``QueueMemberRinging``; ``AgentRingNoAnswer`` -> the same with
  ``no_answer`` (its ``RingTime`` is milliseconds, unlike AgentConnect's seconds);
- ``QueueMemberStatus``/``QueueMemberAdded`` -> ``QueueMemberChanged``; ``QueueMemberPause``
  -> ``QueueMemberPaused``; ``QueueMemberRemoved`` -> ``QueueMemberRemoved``;
- the ``QueueStatus`` list (``QueueParams``, ``QueueMember``, ``QueueEntry``) -> one
  ``QueuesResynced``: an entry joined ``Wait`` seconds before the list was read.

Units and numbers: ``shared/protocols/AMI.md`` (times in epoch seconds, 0 = never).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from connectors.ami.protocol import AmiMessage
from connectors.clean import Cleaner
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

# Member ``Status`` numbers (``ast_device_state``) -> the device state names the engine reads.
MEMBER_STATES = ("UNKNOWN", "NOT_INUSE", "INUSE", "BUSY", "INVALID", "UNAVAILABLE", "RINGING",
                 "RINGINUSE", "ONHOLD")


class MissingHeader(ValueError):
    """A queue event lacks a header it cannot do without (``normalize`` re-raises it as
    ``MalformedMessage``)."""


def _int(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


def _epoch(value: str | None) -> datetime | None:
    """Epoch seconds; 0 or absent is "never"."""
    seconds = _int(value)
    if not seconds:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


class QueueEvents:
    """The queue half of the AMI normalizer; every string through the normalizer's Cleaner."""

    def __init__(self, text: Cleaner, source: str) -> None:
        self.text = text
        self.source = source

    def event(self, m: AmiMessage, ts: datetime) -> Event | None:
        handler = _HANDLERS.get(m.name)
        return handler(self, m, ts) if handler is not None else None

    def handles(self, name: str) -> bool:
        return name in _HANDLERS

    # -- blocks ---------------------------------------------------------------------------

    def _required(self, m: AmiMessage, header: str) -> str:
        value = self.text(m.get(header), "id")
        if not value:
            raise MissingHeader(header)
        return value

    def _caller(self, m: AmiMessage) -> tuple[str, str]:
        return self._required(m, "Queue"), self._required(m, "Uniqueid")

    def member(self, m: AmiMessage, ts: datetime, *, listed: bool = False) -> QueueMemberChanged:
        """A member block (event: ``MemberName``/``Interface``; QueueStatus: ``Name``/
        ``Location``)."""
        interface = self._required(m, "Location" if listed else "Interface")
        status = _int(m.get("Status"))
        last_call = _epoch(m.get("LastCall"))
        wrapup = _int(m.get("Wrapuptime")) or 0
        paused = _flag(m.get("Paused"))
        return QueueMemberChanged(
            queue=self._required(m, "Queue"),
            member=interface,
            ts=ts,
            name=self.text(m.get("Name" if listed else "MemberName"), "name"),
            state_interface=self.text(m.get("StateInterface"), "id"),
            state=MEMBER_STATES[status] if status is not None and status < len(MEMBER_STATES)
            else "UNKNOWN",
            paused=paused,
            pause_reason=self.text(m.get("PausedReason")) if paused else "",
            in_call=_flag(m.get("InCall")),
            calls_taken=_int(m.get("CallsTaken")),
            last_call=last_call,
            login_time=_epoch(m.get("LoginTime")),
            wrapup_until=last_call + timedelta(seconds=wrapup) if last_call and wrapup else None,
            source=self.source,
        )

    # -- one handler per event ------------------------------------------------------------

    def _joined(self, m: AmiMessage, ts: datetime) -> Event:
        queue, channel = self._caller(m)
        return QueueCallerJoined(queue, channel, ts, _int(m.get("Position")),
                                 self.text(m.get("CallerIDNum"), "number"), source=self.source)

    def _left(self, m: AmiMessage, ts: datetime) -> Event:
        queue, channel = self._caller(m)
        return QueueCallerLeft(queue, channel, "left", ts, position=_int(m.get("Position")),
                               source=self.source)

    def _connected(self, m: AmiMessage, ts: datetime) -> Event:
        queue, channel = self._caller(m)
        return QueueCallerLeft(queue, channel, "answered", ts, _hold(m),
                               member=self._required(m, "Interface"),
                               member_name=self.text(m.get("MemberName"), "name"),
                               source=self.source)

    def _abandoned(self, m: AmiMessage, ts: datetime) -> Event:
        queue, channel = self._caller(m)
        return QueueCallerLeft(queue, channel, "abandoned", ts, _hold(m),
                               position=_int(m.get("Position")), source=self.source)

    def _completed(self, m: AmiMessage, ts: datetime) -> Event:
        queue, channel = self._caller(m)
        return QueueCallCompleted(queue, channel, self._required(m, "Interface"),
                                  float(_int(m.get("TalkTime")) or 0), ts,
                                  self.text(m.get("Reason")), self.source)

    def _ringing(self, m: AmiMessage, ts: datetime) -> Event:
        queue, channel = self._caller(m)
        return QueueMemberRinging(queue, self._required(m, "Interface"), channel, ts,
                                  source=self.source)

    def _no_answer(self, m: AmiMessage, ts: datetime) -> Event:
        queue, channel = self._caller(m)
        return QueueMemberRinging(queue, self._required(m, "Interface"), channel, ts,
                                  no_answer=True, ring_ms=_int(m.get("RingTime")),
                                  source=self.source)

    def _member_changed(self, m: AmiMessage, ts: datetime) -> Event:
        return self.member(m, ts)

    def _paused(self, m: AmiMessage, ts: datetime) -> Event:
        paused = _flag(m.get("Paused"))
        return QueueMemberPaused(self._required(m, "Queue"), self._required(m, "Interface"),
                                 paused, ts, self.text(m.get("PausedReason")) if paused else "",
                                 self.source)

    def _removed(self, m: AmiMessage, ts: datetime) -> Event:
        return QueueMemberRemoved(self._required(m, "Queue"), self._required(m, "Interface"),
                                  ts, self.source)

    # -- the QueueStatus list -------------------------------------------------------------

    def resynced(self, items: Sequence[AmiMessage], ts: datetime,
                 skipped: Callable[[str], None]) -> QueuesResynced:
        """``QueueStatus`` items read at ``ts`` -> one QueuesResynced; unreadable items are
        reported to ``skipped`` (with the missing header) and left out."""
        queues: dict[str, None] = {}
        levels: list[tuple[str, int]] = []
        members: list[QueueMemberChanged] = []
        callers: list[QueueCallerJoined] = []
        for item in items:
            try:
                if item.name == "QueueParams":
                    name = self._required(item, "Queue")
                    queues[name] = None
                    level = _int(item.get("ServiceLevel"))
                    if level is not None:
                        levels.append((name, level))
                elif item.name == "QueueMember":
                    member = self.member(item, ts, listed=True)
                    queues[member.queue] = None
                    members.append(member)
                elif item.name == "QueueEntry":
                    queue, channel = self._caller(item)
                    queues[queue] = None
                    wait = _int(item.get("Wait")) or 0
                    callers.append(QueueCallerJoined(
                        queue, channel, ts - timedelta(seconds=wait), _int(item.get("Position")),
                        self.text(item.get("CallerIDNum"), "number"), source=self.source))
            except MissingHeader as exc:
                skipped(str(exc))
        return QueuesResynced(tuple(queues), tuple(members), tuple(callers), ts, tuple(levels),
                              self.source)


def _hold(m: AmiMessage) -> float | None:
    hold = _int(m.get("HoldTime"))
    return float(hold) if hold is not None else None


_HANDLERS: dict[str, Callable[[QueueEvents, AmiMessage, datetime], Event]] = {
    "QueueCallerJoin": QueueEvents._joined,
    "QueueCallerLeave": QueueEvents._left,
    "AgentConnect": QueueEvents._connected,
    "QueueCallerAbandon": QueueEvents._abandoned,
    "AgentComplete": QueueEvents._completed,
    "AgentCalled": QueueEvents._ringing,
    "AgentRingNoAnswer": QueueEvents._no_answer,
    "QueueMemberStatus": QueueEvents._member_changed,
    "QueueMemberAdded": QueueEvents._member_changed,
    "QueueMemberPause": QueueEvents._paused,
    "QueueMemberRemoved": QueueEvents._removed,
}
QUEUE_EVENTS = frozenset(_HANDLERS)
