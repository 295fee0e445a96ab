"""What the engine decided happened: the only output of ``Engine.handle``."""

from __future__ import annotations

from dataclasses import dataclass

from engine.model import Call, Operator, Queue


@dataclass(frozen=True, slots=True)
class CallStarted:
    call: Call


@dataclass(frozen=True, slots=True)
class CallUpdated:
    """The record changed without a published milestone (e.g. caller id, a rung leg)."""

    call: Call


@dataclass(frozen=True, slots=True)
class CallAnswered:
    call: Call


@dataclass(frozen=True, slots=True)
class CallTransferred:
    call: Call
    from_operator_id: str | None
    to_operator_id: str


@dataclass(frozen=True, slots=True)
class CallEnded:
    call: Call


@dataclass(frozen=True, slots=True)
class OperatorStatusChanged:
    operator: Operator
    previous: str


@dataclass(frozen=True, slots=True)
class OperatorUpdated:
    """Counters / last_activity changed but the published status did not."""

    operator: Operator


@dataclass(frozen=True, slots=True)
class OperatorLoggedIn:
    """The operator came online (``queue`` None), or joined their first queue (``queue``)."""

    operator: Operator
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class OperatorLoggedOut:
    """The operator left the last queue they were a member of."""

    operator: Operator
    queue: str


@dataclass(frozen=True, slots=True)
class QueueUpdated:
    """Something of the queue changed: callers, members or figures (a full snapshot)."""

    queue: Queue


CallEffect = CallStarted | CallUpdated | CallAnswered | CallTransferred | CallEnded
OperatorEffect = OperatorStatusChanged | OperatorUpdated | OperatorLoggedIn | OperatorLoggedOut
QueueEffect = QueueUpdated
Effect = CallEffect | OperatorEffect | QueueEffect
