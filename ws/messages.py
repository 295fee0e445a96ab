"""Engine effects -> the seed's WebSocket message shapes. Pure: no I/O, no clock.

Every datetime on the wire goes through :func:`iso`: ISO-8601 UTC, whole seconds, ``Z`` suffix
(``"2025-01-01T14:30:00Z"``, exactly as in the seed). Sub-second parts are truncated; ordering
between messages is carried by the envelope ``id``, not by timestamps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload

from engine.effects import (
    CallAnswered,
    CallEnded,
    CallStarted,
    CallTransferred,
    Effect,
    OperatorLoggedIn,
    OperatorLoggedOut,
    OperatorStatusChanged,
    QueueUpdated,
)
from engine.model import Call, Operator, Queue, QueueFigures

# Event types a client may receive (and name in a ``subscribe`` filter).
EVENT_TYPES: tuple[str, ...] = (
    "call_started",
    "call_answered",
    "call_transferred",
    "call_ended",
    "operator_status_changed",
    "operator_logged_in",
    "operator_logged_out",
    "queue_updated",
)


@overload
def iso(dt: datetime) -> str: ...
@overload
def iso(dt: None) -> None: ...
def iso(dt: datetime | None) -> str | None:
    """``2025-01-01T14:30:00Z``. Naive datetimes are taken as UTC; ``None`` stays ``None``."""
    if dt is None:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt.replace(microsecond=0).isoformat() + "Z"


def to_message(effect: Effect, now: datetime | None = None) -> tuple[str, dict[str, Any]] | None:
    """``(type, data)`` for a published effect; ``None`` for effects with no seed shape.

    ``now`` (the publish time) stands in for a time the model does not carry: the transfer time,
    and an end/answer/activity time the engine left unset.
    """
    match effect:
        case CallStarted(call=call):
            return "call_started", {
                "call_id": call.id,
                "channel_id": call.channel_id,
                "caller_number": call.caller_number,
                "timestamp": iso(call.start_time),
            }
        case CallAnswered(call=call):
            return "call_answered", {
                "call_id": call.id,
                "operator_id": call.operator_id,
                "answer_time": iso(call.answer_time or now),
            }
        case CallTransferred(call=call, from_operator_id=from_id, to_operator_id=to_id):
            return "call_transferred", {
                "call_id": call.id,
                "from_operator_id": from_id,
                "to_operator_id": to_id,
                "timestamp": iso(now),
            }
        case CallEnded(call=call):
            return "call_ended", {
                "call_id": call.id,
                "end_time": iso(call.end_time or now),
                "duration": call.duration or 0,
                "status": call.status.value,
            }
        case OperatorStatusChanged(operator=op):
            return "operator_status_changed", {
                "operator_id": op.id,
                "status": op.status.value,
                "timestamp": iso(op.last_activity or now),
                # Beyond the seed (additive): the detail next to the status, and the status
                # before (it may be the same when only the activity changed, e.g. ringing).
                "activity": op.activity,
                "pause_reason": op.pause_reason,
                "previous_status": effect.previous,
            }
        case OperatorLoggedIn(operator=op, queue=queue):
            data: dict[str, Any] = {
                "operator_id": op.id,
                "extension": op.extension,
                "timestamp": iso(op.last_activity or now),
            }
            if queue is not None:   # joined their first queue (beyond the seed, additive)
                data["queue"] = queue
            return "operator_logged_in", data
        case OperatorLoggedOut(operator=op, queue=queue):
            return "operator_logged_out", {
                "operator_id": op.id,
                "extension": op.extension,
                "queue": queue,
                "timestamp": iso(now),
            }
        case QueueUpdated(queue=queue):
            return "queue_updated", queue_view(queue)
    return None  # CallUpdated, OperatorUpdated: internal bookkeeping, not published


def call_view(call: Call) -> dict[str, Any]:
    """One active call in the ``snapshot`` message."""
    return {
        "call_id": call.id,
        "channel_id": call.channel_id,
        "caller_number": call.caller_number,
        "status": call.status.value,
        "start_time": iso(call.start_time),
        "answer_time": iso(call.answer_time),
        "operator_id": call.operator_id,
        "queue": call.queue_name,
        "direction": call.direction.value,
    }


def operator_view(op: Operator) -> dict[str, Any]:
    """One operator in the ``snapshot`` message."""
    return {
        "operator_id": op.id,
        "extension": op.extension,
        "name": op.name,
        "status": op.status.value,
        "status_detail": op.status_detail,
        "activity": op.activity,
        "pause_reason": op.pause_reason,
        "current_calls": op.current_calls,
        "max_concurrent_calls": op.max_concurrent_calls,
        "last_activity": iso(op.last_activity),
        "group_id": op.group_id,
    }


def figures_view(f: QueueFigures) -> dict[str, Any]:
    return {
        "offered": f.offered,
        "answered": f.answered,
        "answered_within_threshold": f.answered_within_threshold,
        "abandoned": f.abandoned,
        "service_level": f.service_level,
        "abandon_rate": f.abandon_rate,
        "average_speed_of_answer": f.average_speed_of_answer,
        "average_handle_time": f.average_handle_time,
    }


def queue_view(queue: Queue) -> dict[str, Any]:
    """One queue live (``queue_updated`` and the snapshot's ``queues``); seconds, percents."""
    return {
        "queue": queue.name,
        "service_level_seconds": queue.service_level_seconds,
        "as_of": iso(queue.as_of),
        "callers_waiting": queue.callers_waiting,
        "longest_wait_seconds": queue.longest_wait_seconds,
        "agents_available": queue.agents_available,
        "agents_busy": queue.agents_busy,
        "agents_paused": queue.agents_paused,
        "callers": [
            {"channel_id": c.channel_id, "position": c.position,
             "waiting_since": iso(c.waiting_since), "caller_number": c.caller_number}
            for c in queue.callers
        ],
        "members": [
            {"interface": m.interface, "name": m.name, "operator_id": m.operator_id,
             "state": m.state.value, "paused": m.paused, "pause_reason": m.pause_reason,
             "calls_taken": m.calls_taken, "last_call": iso(m.last_call),
             "login_time": iso(m.login_time), "wrapup_until": iso(m.wrapup_until)}
            for m in queue.members
        ],
        "stats": {f.window: figures_view(f) for f in queue.figures},
    }


def unknown_event_types(names: list[Any]) -> list[Any]:
    """The names in a ``subscribe`` request that are not event types (in request order)."""
    return [name for name in names if name not in EVENT_TYPES]
