"""ARI frames -> engine events (pure). Raw dicts stop here.

``normalize`` returns None for noise (``ChannelDialplan``, most ``ChannelVarset``, ...) and for
types the engine does not use; it raises ``MalformedFrame`` when a frame we use lacks what we need
(no ``channel.id``, no parseable ``timestamp``, ...). Unknown and missing optional keys are
tolerated. Every string kept is cleaned (``connectors/clean.py``: no control characters, cut to
a documented length) and counted in ``AriNormalizer.stats``; every event is tagged with the
normalizer's ``source``. The queue variables app_queue sets on a caller's channel
(``QUEUENAME``, ``QUEUEWAIT``, ``ABANDONED``, ...) become a ``QueueCallerLeft`` once complete
(``connectors/ari/queue_vars.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.ari.queue_vars import QUEUE_VARIABLES, QueueVarTracker
from connectors.clean import Cleaner
from engine.events import (
    BridgeEntered,
    BridgeLeft,
    CallerIdChanged,
    ChannelCreated,
    ChannelHungUp,
    ChannelInfo,
    ChannelStateChanged,
    DeviceInfo,
    DeviceStateChanged,
    DialUpdated,
    EndpointInfo,
    EndpointStateChanged,
    Event,
    Resynced,
)


class MalformedFrame(ValueError):
    """A frame of a type we use is missing a required part; ``kind`` names which."""

    def __init__(self, kind: str, detail: str = "") -> None:
        self.kind = kind
        super().__init__(f"malformed ARI frame: {kind}{': ' + detail if detail else ''}")


def parse_timestamp(value: object) -> datetime:
    """``2026-11-22T08:31:52.672+0000`` (PBX local time with offset) -> aware datetime."""
    if not isinstance(value, str) or not value:
        raise MalformedFrame("timestamp", repr(value))
    try:  # Python >= 3.11 reads ARI's offset without colon too, ~30x faster than strptime
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise MalformedFrame("timestamp", repr(value)) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


_Handler = Callable[["AriNormalizer", Mapping[str, Any], datetime], Event | None]


def mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _cause(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


@dataclass(frozen=True, slots=True)
class AriSnapshot:
    """What a resync reads: ``GET /ari/channels``, ``/ari/endpoints`` and ``/ari/deviceStates``."""

    channels: list[Any]
    endpoints: list[Any]
    device_states: list[Any] = field(default_factory=list)


class AriNormalizer:
    """The ARI normalizer (``connectors.source.Normalizer``): pure, counts what it cleaned."""

    def __init__(self, source: str = "ari") -> None:
        self.source = source
        self.text = Cleaner()   # every string kept goes through it
        self.stats: Counter[str] = self.text.stats
        # channel id -> the number it dials, for channels we originated (``connectors/ari/source``)
        self.dialled: dict[str, str] = {}
        self.queues = QueueVarTracker(source)   # the caller's queue from its ChannelVarsets

    # -- the contract ---------------------------------------------------------------------

    def event(self, frame: Mapping[str, Any]) -> Event | None:
        """One parsed ARI frame -> an engine event, or None if the engine has no use for it."""
        if not isinstance(frame, Mapping):
            raise MalformedFrame("frame")
        kind = frame.get("type")
        if not isinstance(kind, str) or not kind:
            raise MalformedFrame("type")
        handler = _HANDLERS.get(kind)
        if kind == "ChannelVarset" and frame.get("variable") not in QUEUE_VARIABLES:
            return None   # half of all frames: leave them at one set lookup
        if handler is None:
            return None   # noise (ChannelDialplan, ...) or a type we do not use
        return handler(self, frame, parse_timestamp(frame.get("timestamp")))

    def resync(self, snapshot: AriSnapshot, ts: datetime) -> Resynced:
        """The resync answers -> one Resynced at ``ts``; unreadable entries are skipped."""
        devices = [d for raw in snapshot.device_states if (d := self.device(raw)) is not None]
        chans: list[ChannelInfo] = []
        for raw in snapshot.channels:
            try:
                chans.append(self.channel(raw))
            except MalformedFrame:
                continue
        eps: list[EndpointInfo] = []
        for raw in snapshot.endpoints:
            try:
                eps.append(self.endpoint(raw))
            except MalformedFrame:
                continue
        return Resynced(tuple(chans), tuple(eps), ts, tuple(devices), source=self.source)

    # -- ARI models -----------------------------------------------------------------------

    def channel(self, raw: object, kind: str = "channel") -> ChannelInfo:
        """An ARI Channel object -> ChannelInfo; ``id`` and ``name`` are required."""
        if not isinstance(raw, Mapping):
            raise MalformedFrame(kind)
        text = self.text
        channel_id = text(raw.get("id"), "id")
        name = text(raw.get("name"), "id")
        if not channel_id:
            raise MalformedFrame(f"{kind}.id")
        if not name:
            raise MalformedFrame(f"{kind}.name")
        caller = mapping(raw.get("caller"))
        dialplan = mapping(raw.get("dialplan"))
        created: datetime | None
        try:
            created = parse_timestamp(raw.get("creationtime"))
        except MalformedFrame:
            created = None   # optional: the engine falls back to the event time
        return ChannelInfo(
            id=channel_id,
            name=name,
            state=text(raw.get("state")) or "Unknown",
            caller_number=text(caller.get("number"), "number"),
            caller_name=text(caller.get("name"), "name"),
            exten=self.dialled.get(channel_id) or text(dialplan.get("exten"), "number"),
            context=text(dialplan.get("context")),
            created=created,
        )

    def device(self, raw: object) -> DeviceInfo | None:
        """An ARI DeviceState object; None when it has no name."""
        if not isinstance(raw, Mapping) or not (name := self.text(raw.get("name"), "id")):
            return None
        return DeviceInfo(name, self.text(raw.get("state")).upper())

    def endpoint(self, raw: object) -> EndpointInfo:
        if not isinstance(raw, Mapping):
            raise MalformedFrame("endpoint")
        technology, resource = self.text(raw.get("technology")), self.text(raw.get("resource"))
        if not technology or not resource:
            raise MalformedFrame("endpoint.resource")
        return EndpointInfo(technology, resource, self.text(raw.get("state")).lower() or "unknown")

    def _bridge(self, frame: Mapping[str, Any]) -> tuple[str, str]:
        bridge = mapping(frame.get("bridge"))
        bridge_id = self.text(bridge.get("id"), "id")
        if not bridge_id:
            raise MalformedFrame("bridge.id")
        return bridge_id, self.text(bridge.get("bridge_type")) or "mixing"

    # -- one handler per frame type -------------------------------------------------------

    def _created(self, f: Mapping[str, Any], ts: datetime) -> Event:
        return ChannelCreated(self.channel(f.get("channel")), ts, self.source)

    def _state(self, f: Mapping[str, Any], ts: datetime) -> Event:
        return ChannelStateChanged(self.channel(f.get("channel")), ts, self.source)

    def _caller_id(self, f: Mapping[str, Any], ts: datetime) -> Event:
        return CallerIdChanged(self.channel(f.get("channel")), ts, self.source)

    def _destroyed(self, f: Mapping[str, Any], ts: datetime) -> Event:
        channel = self.channel(f.get("channel"))
        self.queues.forget(channel.id)
        return ChannelHungUp(channel, _cause(f.get("cause")),
                             self.text(f.get("cause_txt")), ts, self.source)

    def _varset(self, f: Mapping[str, Any], ts: datetime) -> Event | None:
        """Only app_queue's variables on a channel matter; the rest is noise."""
        variable = str(f.get("variable"))
        channel = mapping(f.get("channel"))
        if not channel:
            return None   # a global variable
        channel_id = self.text(channel.get("id"), "id")
        value = self.text(f.get("value"))
        if not channel_id:
            raise MalformedFrame("channel.id")
        return self.queues.variable(channel_id, variable, value, ts)

    def _dial(self, f: Mapping[str, Any], ts: datetime) -> Event:
        caller_raw = f.get("caller")
        caller = self.channel(caller_raw, "caller") if caller_raw else None
        return DialUpdated(
            peer=self.channel(f.get("peer"), "peer"),
            status=self.text(f.get("dialstatus")).upper(),
            ts=ts,
            caller=caller,
            dialstring=self.text(f.get("dialstring")),
            source=self.source,
        )

    def _entered(self, f: Mapping[str, Any], ts: datetime) -> Event:
        bridge_id, bridge_type = self._bridge(f)
        return BridgeEntered(bridge_id, self.channel(f.get("channel")), ts, bridge_type,
                             self.source)

    def _left(self, f: Mapping[str, Any], ts: datetime) -> Event:
        bridge_id, bridge_type = self._bridge(f)
        return BridgeLeft(bridge_id, self.channel(f.get("channel")), ts, bridge_type,
                          self.source)

    def _device(self, f: Mapping[str, Any], ts: datetime) -> Event:
        device = mapping(f.get("device_state"))
        name = self.text(device.get("name"), "id")
        if not name:
            raise MalformedFrame("device_state.name")
        return DeviceStateChanged(name, self.text(device.get("state")).upper(), ts, self.source)

    def _endpoint(self, f: Mapping[str, Any], ts: datetime) -> Event:
        info = self.endpoint(f.get("endpoint"))
        return EndpointStateChanged(info.technology, info.resource, info.state, ts, self.source)


_HANDLERS: dict[str, _Handler] = {
    "ChannelCreated": AriNormalizer._created,
    "ChannelStateChange": AriNormalizer._state,
    "ChannelCallerId": AriNormalizer._caller_id,
    "ChannelDestroyed": AriNormalizer._destroyed,
    "ChannelVarset": AriNormalizer._varset,
    "Dial": AriNormalizer._dial,
    "ChannelEnteredBridge": AriNormalizer._entered,
    "ChannelLeftBridge": AriNormalizer._left,
    "DeviceStateChanged": AriNormalizer._device,
    "EndpointStateChange": AriNormalizer._endpoint,
}


# -- one-shot helpers (tests, tools): a fresh normalizer each time ----------------------------


def normalize(frame: Mapping[str, Any]) -> Event | None:
    return AriNormalizer().event(frame)


def normalize_resync(
    channels: list[Any], endpoints: list[Any], ts: datetime,
    device_states: list[Any] | None = None,
) -> Resynced:
    return AriNormalizer().resync(AriSnapshot(channels, endpoints, device_states or []), ts)


def channel_info(raw: object, kind: str = "channel") -> ChannelInfo:
    return AriNormalizer().channel(raw, kind)


def endpoint_info(raw: object) -> EndpointInfo:
    return AriNormalizer().endpoint(raw)
