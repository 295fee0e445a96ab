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
)
