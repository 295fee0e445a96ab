"""What the engine knows about calls and operators: immutable snapshots."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

# Call ids are derived from the first channel of the call so replays and resyncs agree.
CALL_NAMESPACE = uuid.UUID("5b3f2a8e-1d0c-4c6e-9a57-7e1f3c2b9d10")


def call_id_for(channel_id: str) -> str:
    """Deterministic UUID of the call whose first (customer) channel is ``channel_id``."""
    return str(uuid.uuid5(CALL_NAMESPACE, channel_id))


class CallStatus(StrEnum):
    INCOMING = "incoming"
    ANSWERED = "answered"
    COMPLETED = "completed"
    MISSED = "missed"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class OperatorStatus(StrEnum):
    ONLINE = "online"
    BUSY = "busy"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class Call:
    id: str
    channel_id: str                      # the customer's first channel (ARI id = AMI Uniqueid)
    caller_number: str
    start_time: datetime
    status: CallStatus = CallStatus.INCOMING
    direction: Direction = Direction.INBOUND
    source: str = "ari"                  # ari | ami | mango | api
    called_number: str | None = None
    caller_name: str | None = None
    operator_id: str | None = None       # operator who answered
    operator_extension: str | None = None  # kept also when the extension is no operator's
    group_ids: tuple[str, ...] = ()      # groups of every operator rung or answering (visibility)
    queue_name: str | None = None
    answer_time: datetime | None = None
    end_time: datetime | None = None
    # abandoned_in_queue | abandoned_in_ivr | no_answer | busy | failed
    missed_reason: str | None = None
    hangup_cause: int | None = None
    channel_ids: tuple[str, ...] = ()    # every channel that served the call
    offered_operator_ids: tuple[str, ...] = ()  # operators whose legs rang or answered
    # Operators the call rang (not the one who placed it): a missed call counts against each.
    rung_operator_ids: tuple[str, ...] = ()
    transfer_operator_ids: tuple[str, ...] = ()  # operators the call was transferred to, in order

    @property
    def duration(self) -> int | None:
        """Talk time in seconds: end - answer (seed: 14:25:05 -> 14:28:15 = 190); 0 if missed."""
        if self.end_time is None:
            return None
        if self.answer_time is None:
            return 0
        return max(0, round((self.end_time - self.answer_time).total_seconds()))

    @property
    def wait_seconds(self) -> int | None:
        """answer - start, or end - start when never answered."""
        until = self.answer_time or self.end_time
        if until is None:
            return None
        return max(0, round((until - self.start_time).total_seconds()))

    @property
    def talk_seconds(self) -> int | None:
        return self.duration

    @property
    def current_operator_id(self) -> str | None:
        """Who has the customer now: the last transfer target, else the answering operator."""
        return self.transfer_operator_ids[-1] if self.transfer_operator_ids else self.operator_id


@dataclass(frozen=True, slots=True)
class Operator:
    id: str
    extension: str
    user_id: str | None = None
    name: str | None = None
    group_id: str | None = None
    status: OperatorStatus = OperatorStatus.OFFLINE
    # Why the status: online -> ringing | None; busy -> in_call | on_hold | wrapup | paused |
    # manual (their own choice); offline -> manual | None. ``activity`` is its public face.
    status_detail: str | None = None
    manual_status: OperatorStatus | None = None  # set through the API; wins over "available"
    current_calls: int = 0
    max_concurrent_calls: int = 1
    last_activity: datetime | None = None

    @property
    def activity(self) -> str | None:
        """The detail next to ``status`` (DOMAIN): online -> ``available`` | ``ringing``;
        busy -> ``in_call`` | ``on_hold`` | ``wrapup`` | ``paused``; offline -> None."""
        if self.status is OperatorStatus.OFFLINE:
            return None
        if self.status is OperatorStatus.ONLINE:
            return "ringing" if self.status_detail == "ringing" else "available"
        if self.status_detail == "manual":
            return "paused"    # busy by their own choice
        return self.status_detail   # None: busy, but nothing says why (e.g. as provisioned)

    @property
    def pause_reason(self) -> str | None:
        """``manual`` when paused by their own choice; None otherwise (a queue pause over ARI
        carries no reason)."""
        return "manual" if self.activity == "paused" and self.status_detail == "manual" else None
