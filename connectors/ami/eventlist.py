"""Collect AMI list responses (``EventList: start`` ... ``EventList: Complete``) per ActionID.

Pure: feed it every message the protocol parsed. List actions (QueueStatus, QueueSummary,
CoreShowChannels, ...) answer ``Response: Success`` + ``EventList: start``, then item events
carrying the same ActionID, then ``Event: <Name>Complete`` + ``EventList: Complete``. A caller
awaiting the whole list takes finished lists from ``pop_completed()``; messages the collector
did not take (live events, single responses) go to the caller's normal dispatch.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.ami.protocol import AmiMessage, Kind


@dataclass(frozen=True, slots=True)
class EventList:
    """One finished list: the response that opened it, its items and the closing event."""

    action_id: str
    response: AmiMessage
    items: tuple[AmiMessage, ...]
    complete: AmiMessage

    @property
    def declared_items(self) -> int | None:
        """``ListItems`` of the closing event (None if absent or not a number)."""
        value = self.complete.get("ListItems")
        return int(value) if value is not None and value.isdigit() else None


class EventListCollector:
    """Pending lists by ActionID. ``abandon()`` them when the connection is lost."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[AmiMessage, list[AmiMessage]]] = {}
        self._completed: list[EventList] = []

    def feed(self, message: AmiMessage) -> bool:
        """True when the message belongs to a list (the caller must not dispatch it again)."""
        action_id = message.action_id
        if action_id is None:
            return False
        marker = (message.get("EventList") or "").lower()
        if message.kind is Kind.RESPONSE and marker == "start":
            self._pending[action_id] = (message, [])
            return True
        pending = self._pending.get(action_id)
        if pending is None or message.kind is not Kind.EVENT:
            return False
        response, items = pending
        if marker == "complete":
            del self._pending[action_id]
            self._completed.append(EventList(action_id, response, tuple(items), message))
        else:
            items.append(message)
        return True

    def pop_completed(self) -> list[EventList]:
        """Lists finished since the last call, in completion order."""
        completed, self._completed = self._completed, []
        return completed

    def pending(self) -> tuple[str, ...]:
        return tuple(self._pending)

    def abandon(self) -> tuple[str, ...]:
        """Forget unfinished lists (connection lost); returns their ActionIDs."""
        dropped = tuple(self._pending)
        self._pending.clear()
        return dropped
