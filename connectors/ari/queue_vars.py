"""A caller's queue, as ARI alone can tell it: the ``ChannelVarset`` frames app_queue sets.

ARI has no queue events. What it does show, on the caller's own channel (shared trace
``queue_shift.ari.jsonl``):

- entering a queue: ``QUEUEWAIT`` and ``QUEUEWAIT_MS`` set to ``""`` -- but not which queue;
- leaving it: ``QUEUENAME``, ``QUEUESRVLEVEL``, ``QUEUEPOSITION``, ``QUEUEWAIT`` (seconds waited)
  and ``QUEUEWAIT_MS``, plus ``MEMBERINTERFACE``/``MEMBERNAME`` when a member answered, or
  ``ABANDONED=TRUE`` when the caller gave up (``QUEUESTATUS=TIMEOUT`` when the queue did).
  They arrive one frame each, in an order that differs between answered and abandoned.

So a caller's queue visit is known when it ends: :class:`QueueVarTracker` gathers the variables
per channel and tells one :class:`QueueCallerLeft` (with the wait, from which the engine dates
the join) once the queue, the outcome, the wait and the threshold are all known. The queue sets
the same variables again when the call ends, and on the agent's channel (which never gets a
wait): neither tells anything twice.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from engine.events import QueueCallerLeft

# The variables we read; every other ChannelVarset is noise.
QUEUE_VARIABLES = frozenset({
    "QUEUENAME", "QUEUESRVLEVEL", "QUEUEPOSITION", "QUEUEWAIT", "QUEUEWAIT_MS", "ABANDONED",
    "MEMBERINTERFACE", "MEMBERNAME", "QUEUESTATUS",
})
# QUEUESTATUS values after which the caller is out of the queue without an agent.
_GAVE_UP_STATUSES = {"TIMEOUT": "timeout", "LEAVEEMPTY": "timeout", "LEAVEUNAVAIL": "timeout"}
# Channels tracked at once: the oldest are forgotten first (a channel normally ends first).
MAX_TRACKED_CHANNELS = 10_000


@dataclass(slots=True)
class _Visit:
    variables: dict[str, str] = field(default_factory=dict)
    told: bool = False


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else None


class QueueVarTracker:
    """ChannelVarset of queue variables -> at most one QueueCallerLeft per queue visit."""

    def __init__(self, source: str = "ari") -> None:
        self.source = source
        self._visits: OrderedDict[str, _Visit] = OrderedDict()

    def variable(self, channel_id: str, name: str, value: str,
                 ts: datetime) -> QueueCallerLeft | None:
        """One ``ChannelVarset``; the visit's outcome once it is complete, else None."""
        if name not in QUEUE_VARIABLES:
            return None
        if name in ("QUEUEWAIT", "QUEUEWAIT_MS") and value == "":
            # app_queue clears the wait when the caller enters a queue: a new visit starts.
            self._visits.pop(channel_id, None)
            self._visits[channel_id] = _Visit()
            self._bound()
            return None
        visit = self._visits.get(channel_id)
        if visit is None:
            visit = self._visits[channel_id] = _Visit()
            self._bound()
        if visit.told:
            return None
        visit.variables[name] = value
        return self._outcome(channel_id, visit, ts)

    def forget(self, channel_id: str) -> None:
        """The channel is gone."""
        self._visits.pop(channel_id, None)

    def _bound(self) -> None:
        while len(self._visits) > MAX_TRACKED_CHANNELS:
            self._visits.popitem(last=False)

    def _outcome(self, channel_id: str, visit: _Visit, ts: datetime) -> QueueCallerLeft | None:
        v = visit.variables
        queue = v.get("QUEUENAME", "")
        threshold = _int(v.get("QUEUESRVLEVEL"))
        wait_ms, wait_s = _int(v.get("QUEUEWAIT_MS")), _int(v.get("QUEUEWAIT"))
        wait = wait_ms / 1000 if wait_ms is not None else wait_s
        if v.get("MEMBERINTERFACE"):
            reason = "answered"
        elif v.get("ABANDONED", "").upper() == "TRUE":
            reason = "abandoned"
        else:
            reason = _GAVE_UP_STATUSES.get(v.get("QUEUESTATUS", "").upper(), "")
        if not queue or not reason or wait is None:
            return None
        if threshold is None and reason != "timeout":
            return None   # it comes in the same burst: wait for it (the call takes it)
        visit.told = True
        return QueueCallerLeft(
            queue=queue,
            channel_id=channel_id,
            reason=reason,
            ts=ts,
            wait_seconds=float(wait),
            member=v.get("MEMBERINTERFACE", "") if reason == "answered" else "",
            member_name=v.get("MEMBERNAME", "") if reason == "answered" else "",
            position=_int(v.get("QUEUEPOSITION")),
            service_level_seconds=threshold,
            source=self.source,
        )
