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
    queue_name: str | None = None        # the queue it entered last (where it was answered/lost)
    queue_service_level: int | None = None  # that queue's threshold, when the PBX told it
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
    queue_pause_reason: str | None = None   # why paused in a queue (AMI), while paused there

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
        """``manual`` when paused by their own choice; a queue pause's reason when the PBX gave
        one (AMI ``PausedReason``; a pause seen over ARI carries none); None otherwise."""
        if self.activity != "paused":
            return None
        return "manual" if self.status_detail == "manual" else self.queue_pause_reason


# -- queues ----------------------------------------------------------------------------------


class MemberState(StrEnum):
    """A queue member as a supervisor reads it (DOMAIN: ``activity``)."""

    AVAILABLE = "available"
    RINGING = "ringing"
    IN_CALL = "in_call"
    WRAPUP = "wrapup"
    PAUSED = "paused"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class WaitingCaller:
    channel_id: str                      # the caller's channel (its call: ``call_id_for``)
    position: int | None
    waiting_since: datetime
    caller_number: str = ""


@dataclass(frozen=True, slots=True)
class QueueMember:
    interface: str                       # as the queue dials it: Local/1001@agents, PJSIP/1001
    name: str = ""
    operator_id: str | None = None       # the Switchboard operator behind the interface
    group_id: str | None = None          # that operator's group (who may see the queue)
    state: MemberState = MemberState.AVAILABLE
    paused: bool = False
    pause_reason: str | None = None
    calls_taken: int = 0
    last_call: datetime | None = None
    login_time: datetime | None = None
    wrapup_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """A queue's outcomes over one window (callers counted when their outcome is known)."""

    window: str                          # 15m | 1h | 24h | day
    offered: int = 0                     # answered + abandoned + timed out/left
    answered: int = 0
    answered_within_threshold: int = 0
    abandoned: int = 0
    wait_seconds_answered: float = 0.0   # sum, for the average speed of answer
    talk_seconds: float = 0.0            # sum over completed calls, for the average handle time
    completed: int = 0

    @property
    def service_level(self) -> float | None:
        """Percent answered within the threshold of those offered; None with nothing offered."""
        if not self.offered:
            return None
        return round(100 * self.answered_within_threshold / self.offered, 1)

    @property
    def abandon_rate(self) -> float | None:
        return round(100 * self.abandoned / self.offered, 1) if self.offered else None

    @property
    def average_speed_of_answer(self) -> float | None:
        return round(self.wait_seconds_answered / self.answered, 1) if self.answered else None

    @property
    def average_handle_time(self) -> float | None:
        return round(self.talk_seconds / self.completed, 1) if self.completed else None


@dataclass(frozen=True, slots=True)
class Queue:
    """One queue live: who waits, who works it, and its figures as of ``as_of``."""

    name: str
    service_level_seconds: int
    as_of: datetime
    callers: tuple[WaitingCaller, ...] = ()
    members: tuple[QueueMember, ...] = ()
    figures: tuple[QueueFigures, ...] = ()   # 15m, 1h, 24h, day -- in that order

    @property
    def callers_waiting(self) -> int:
        return len(self.callers)

    @property
    def longest_wait_seconds(self) -> int:
        """The longest current wait at ``as_of`` (0 with nobody waiting)."""
        if not self.callers:
            return 0
        since = min(c.waiting_since for c in self.callers)
        return max(0, round((self.as_of - since).total_seconds()))

    def agents(self, state: MemberState) -> int:
        return sum(1 for m in self.members if m.state is state)

    @property
    def agents_available(self) -> int:
        return self.agents(MemberState.AVAILABLE)

    @property
    def agents_busy(self) -> int:
        """On a call, being rung or in wrap-up: working, not free."""
        return sum(1 for m in self.members
                   if m.state in (MemberState.IN_CALL, MemberState.RINGING, MemberState.WRAPUP))

    @property
    def agents_paused(self) -> int:
        return self.agents(MemberState.PAUSED)

    def window(self, name: str) -> QueueFigures:
        return next((f for f in self.figures if f.window == name), QueueFigures(name))
