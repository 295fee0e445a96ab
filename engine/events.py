"""What a connector tells the engine: frozen, typed input events (no raw dicts past connectors/).

Every time is the PBX's own event timestamp (timezone-aware), never the time we received it.
Every PBX event names its ``source`` (the connector that normalized it); ``Call.source`` is the
source of the events that started the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine.model import Operator, OperatorStatus


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A channel as the PBX described it in one frame (ARI Channel object)."""

    id: str
    name: str
    state: str = "Unknown"
    caller_number: str = ""
    caller_name: str = ""
    exten: str = ""          # dialplan extension the channel is at
    context: str = ""        # dialplan context
    created: datetime | None = None  # PBX creation time; None if the frame did not say


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    technology: str
    resource: str
    state: str               # unknown | offline | online


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    name: str
    state: str


@dataclass(frozen=True, slots=True)
class ChannelCreated:
    channel: ChannelInfo
    ts: datetime
    source: str = "ari"      # the PBX source that said it: ari | ami | mango


@dataclass(frozen=True, slots=True)
class ChannelStateChanged:
    channel: ChannelInfo
    ts: datetime
    source: str = "ari"


@dataclass(frozen=True, slots=True)
class CallerIdChanged:
    channel: ChannelInfo
    ts: datetime
    source: str = "ari"


@dataclass(frozen=True, slots=True)
class DialUpdated:
    """ARI ``Dial``: ``caller`` dials ``peer``; no caller means the peer was originated."""

    peer: ChannelInfo
    status: str              # "" (begin) | RINGING | ANSWER | CANCEL | BUSY | NOANSWER | ...
    ts: datetime
    caller: ChannelInfo | None = None
    dialstring: str = ""
    source: str = "ari"

    @property
    def caller_id(self) -> str | None:
        return self.caller.id if self.caller is not None else None


@dataclass(frozen=True, slots=True)
class BridgeEntered:
    bridge_id: str
    channel: ChannelInfo
    ts: datetime
    bridge_type: str = "mixing"   # mixing | holding | ...
    source: str = "ari"


@dataclass(frozen=True, slots=True)
class BridgeLeft:
    bridge_id: str
    channel: ChannelInfo
    ts: datetime
    bridge_type: str = "mixing"
    source: str = "ari"


@dataclass(frozen=True, slots=True)
class ChannelHungUp:
    """The channel is gone (ARI ``ChannelDestroyed``; carries the real Q.850 cause)."""

    channel: ChannelInfo
    cause: int | None
    cause_txt: str
    ts: datetime
    source: str = "ari"


@dataclass(frozen=True, slots=True)
class DeviceStateChanged:
    device: str              # PJSIP/1001, Custom:1001, Queue:support_pause_Local/1001@agents, ...
    state: str               # NOT_INUSE | INUSE | BUSY | RINGING | RINGINUSE | ONHOLD | ...
    ts: datetime
    source: str = "ari"


@dataclass(frozen=True, slots=True)
class EndpointStateChanged:
    technology: str
    resource: str
    state: str               # unknown | offline | online
    ts: datetime
    source: str = "ari"


@dataclass(frozen=True, slots=True)
class Resynced:
    """What GET /ari/channels and GET /ari/endpoints said after a (re)connect, at ``ts``."""

    channels: tuple[ChannelInfo, ...]
    endpoints: tuple[EndpointInfo, ...]
    ts: datetime
    devices: tuple[DeviceInfo, ...] = ()   # GET /ari/deviceStates, when the client fetched it
    source: str = "ari"


@dataclass(frozen=True, slots=True)
class OperatorProvisioned:
    """An operator was added to or changed in the directory (DB/API)."""

    operator: Operator


@dataclass(frozen=True, slots=True)
class OperatorRemoved:
    operator_id: str


@dataclass(frozen=True, slots=True)
class OperatorStatusRequested:
    """The operator's own choice through the API; ``None`` clears the manual choice."""

    operator_id: str
    status: OperatorStatus | None
    ts: datetime


# -- queues (AMI QueueCallerJoin/Leave/Abandon, AgentConnect/Complete, QueueMember*; ARI: the
# caller's ChannelVarset of QUEUENAME/QUEUEWAIT/ABANDONED/...) ------------------------------
#
# A queue member is named by its ``interface`` as the PBX dials it (``Local/1001@agents``,
# ``PJSIP/1001``): the same string in AMI ``Interface`` and in ARI ``MEMBERINTERFACE``.


@dataclass(frozen=True, slots=True)
class QueueCallerJoined:
    """A caller entered ``queue`` (AMI ``QueueCallerJoin``)."""

    queue: str
    channel_id: str              # the caller's channel (ARI id = AMI Uniqueid)
    ts: datetime
    position: int | None = None
    caller_number: str = ""
    service_level_seconds: int | None = None   # the queue's threshold, when the PBX says it
    source: str = "ari"


@dataclass(frozen=True, slots=True)
class QueueCallerLeft:
    """A caller left ``queue``.

    ``reason``: ``answered`` (a member took the call; AMI ``AgentConnect``), ``abandoned`` (the
    caller hung up while waiting; AMI ``QueueCallerAbandon``), ``timeout`` (the queue gave up on
    them; ARI ``QUEUESTATUS``), or ``left`` -- out of the waiting line, outcome told by a later
    event (AMI ``QueueCallerLeave``, which comes before ``AgentConnect``).
    ``wait_seconds`` is the PBX's own hold time when it gives one: a caller first seen leaving
    (ARI tells the queue only then) joined at ``ts - wait_seconds``.
    """

    queue: str
    channel_id: str
    reason: str                  # answered | abandoned | timeout | left
    ts: datetime
    wait_seconds: float | None = None
    member: str = ""             # the member interface that answered
    member_name: str = ""
    position: int | None = None
    service_level_seconds: int | None = None
    source: str = "ari"


@dataclass(frozen=True, slots=True)
class QueueCallCompleted:
    """A queue call an agent answered is over (AMI ``AgentComplete``): talk time for AHT."""

    queue: str
    channel_id: str
    member: str
    talk_seconds: float
    ts: datetime
    ended_by: str = ""           # caller | agent | transfer
    source: str = "ami"


@dataclass(frozen=True, slots=True)
class QueueMemberChanged:
    """A member's state in ``queue`` (AMI ``QueueMemberStatus``/``QueueMember``/
    ``QueueMemberAdded``): added if unknown. ``state`` is the device state of its state
    interface (``NOT_INUSE``, ``INUSE``, ``RINGING``, ``UNAVAILABLE``, ...)."""

    queue: str
    member: str                  # interface: Local/1001@agents, PJSIP/1001
    ts: datetime
    name: str = ""               # MemberName: "Agent 1001"
    state_interface: str = ""    # Custom:1001
    state: str = "NOT_INUSE"
    paused: bool = False
    pause_reason: str = ""
    in_call: bool = False
    calls_taken: int | None = None
    last_call: datetime | None = None
    login_time: datetime | None = None
    wrapup_until: datetime | None = None
    source: str = "ami"


@dataclass(frozen=True, slots=True)
class QueueMemberRemoved:
    """AMI ``QueueMemberRemoved``: the member logged out of ``queue``."""

    queue: str
    member: str
    ts: datetime
    source: str = "ami"


@dataclass(frozen=True, slots=True)
class QueueMemberPaused:
    """AMI ``QueueMemberPause``: paused (with its reason) or back."""

    queue: str
    member: str
    paused: bool
    ts: datetime
    reason: str = ""
    source: str = "ami"


@dataclass(frozen=True, slots=True)
class QueueMemberRinging:
    """A member is offered a caller (AMI ``AgentCalled``); ``ring_ms`` set when it stopped
    ringing unanswered (``AgentRingNoAnswer``: RingTime is milliseconds)."""

    queue: str
    member: str
    channel_id: str              # the caller's channel
    ts: datetime
    no_answer: bool = False
    ring_ms: int | None = None
    source: str = "ami"


@dataclass(frozen=True, slots=True)
class QueuesResynced:
    """What the PBX said of ``queues`` after a (re)connect (AMI ``QueueStatus``): every member
    and every waiting caller there. Members not listed left; callers not listed are gone with
    an outcome nobody told (not counted)."""

    queues: tuple[str, ...]
    members: tuple[QueueMemberChanged, ...]
    callers: tuple[QueueCallerJoined, ...]
    ts: datetime
    service_levels: tuple[tuple[str, int], ...] = ()   # (queue, ServiceLevel seconds)
    source: str = "ami"


QueueEvent = (
    QueueCallerJoined
    | QueueCallerLeft
    | QueueCallCompleted
    | QueueMemberChanged
    | QueueMemberRemoved
    | QueueMemberPaused
    | QueueMemberRinging
    | QueuesResynced
)


ChannelEvent = ChannelCreated | ChannelStateChanged | CallerIdChanged | ChannelHungUp
Event = (
    ChannelCreated
    | ChannelStateChanged
    | CallerIdChanged
    | DialUpdated
    | BridgeEntered
    | BridgeLeft
    | ChannelHungUp
    | DeviceStateChanged
    | EndpointStateChanged
    | Resynced
    | OperatorProvisioned
    | OperatorRemoved
    | OperatorStatusRequested
    | QueueEvent
)
