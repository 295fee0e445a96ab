"""ARI frames -> engine events (pure). Raw dicts stop here.

``normalize`` returns None for noise (``ChannelVarset``, ``ChannelDialplan``, ...) and for types
the engine does not use; it raises ``MalformedFrame`` when a frame we use lacks what we need
(no ``channel.id``, no parseable ``timestamp``, ...). Unknown and missing optional keys are
tolerated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

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


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def channel_info(raw: object, kind: str = "channel") -> ChannelInfo:
    """An ARI Channel object -> ChannelInfo; ``id`` and ``name`` are required."""
    if not isinstance(raw, Mapping):
        raise MalformedFrame(kind)
    channel_id = raw.get("id")
    name = raw.get("name")
    if not isinstance(channel_id, str) or not channel_id:
        raise MalformedFrame(f"{kind}.id")
    if not isinstance(name, str) or not name:
        raise MalformedFrame(f"{kind}.name")
    caller = _mapping(raw.get("caller"))
    dialplan = _mapping(raw.get("dialplan"))
    created: datetime | None
    try:
        created = parse_timestamp(raw.get("creationtime"))
    except MalformedFrame:
        created = None   # optional: the engine falls back to the event time
    return ChannelInfo(
        id=channel_id,
        name=name,
        state=_str(raw.get("state")) or "Unknown",
        caller_number=_str(caller.get("number")),
        caller_name=_str(caller.get("name")),
        exten=_str(dialplan.get("exten")),
        context=_str(dialplan.get("context")),
        created=created,
    )


def _bridge(frame: Mapping[str, Any]) -> tuple[str, str]:
    bridge = frame.get("bridge")
    if not isinstance(bridge, Mapping) or not _str(bridge.get("id")):
        raise MalformedFrame("bridge.id")
    return _str(bridge.get("id")), _str(bridge.get("bridge_type")) or "mixing"


def _cause(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _created(f: Mapping[str, Any], ts: datetime) -> Event:
    return ChannelCreated(channel_info(f.get("channel")), ts)


def _state(f: Mapping[str, Any], ts: datetime) -> Event:
    return ChannelStateChanged(channel_info(f.get("channel")), ts)


def _caller_id(f: Mapping[str, Any], ts: datetime) -> Event:
    return CallerIdChanged(channel_info(f.get("channel")), ts)


def _destroyed(f: Mapping[str, Any], ts: datetime) -> Event:
    return ChannelHungUp(channel_info(f.get("channel")), _cause(f.get("cause")),
                         _str(f.get("cause_txt")), ts)


def _dial(f: Mapping[str, Any], ts: datetime) -> Event:
    caller_raw = f.get("caller")
    caller = channel_info(caller_raw, "caller") if caller_raw else None
    return DialUpdated(
        peer=channel_info(f.get("peer"), "peer"),
        status=_str(f.get("dialstatus")).upper(),
        ts=ts,
        caller=caller,
        dialstring=_str(f.get("dialstring")),
    )


def _entered(f: Mapping[str, Any], ts: datetime) -> Event:
    bridge_id, bridge_type = _bridge(f)
    return BridgeEntered(bridge_id, channel_info(f.get("channel")), ts, bridge_type)


def _left(f: Mapping[str, Any], ts: datetime) -> Event:
    bridge_id, bridge_type = _bridge(f)
    return BridgeLeft(bridge_id, channel_info(f.get("channel")), ts, bridge_type)


def _device(f: Mapping[str, Any], ts: datetime) -> Event:
    device = f.get("device_state")
    if not isinstance(device, Mapping) or not _str(device.get("name")):
        raise MalformedFrame("device_state.name")
    return DeviceStateChanged(_str(device.get("name")), _str(device.get("state")).upper(), ts)


def _endpoint(f: Mapping[str, Any], ts: datetime) -> Event:
    info = endpoint_info(f.get("endpoint"))
    return EndpointStateChanged(info.technology, info.resource, info.state, ts)


def endpoint_info(raw: object) -> EndpointInfo:
    if not isinstance(raw, Mapping):
        raise MalformedFrame("endpoint")
    technology, resource = _str(raw.get("technology")), _str(raw.get("resource"))
    if not technology or not resource:
        raise MalformedFrame("endpoint.resource")
    return EndpointInfo(technology, resource, _str(raw.get("state")).lower() or "unknown")


_HANDLERS: dict[str, Callable[[Mapping[str, Any], datetime], Event]] = {
    "ChannelCreated": _created,
    "ChannelStateChange": _state,
    "ChannelCallerId": _caller_id,
    "ChannelDestroyed": _destroyed,
    "Dial": _dial,
    "ChannelEnteredBridge": _entered,
    "ChannelLeftBridge": _left,
    "DeviceStateChanged": _device,
    "EndpointStateChange": _endpoint,
}


def normalize(frame: Mapping[str, Any]) -> Event | None:
    """One parsed ARI frame -> an engine event, or None if the engine has no use for it."""
    if not isinstance(frame, Mapping):
        raise MalformedFrame("frame")
    kind = frame.get("type")
    if not isinstance(kind, str) or not kind:
        raise MalformedFrame("type")
    handler = _HANDLERS.get(kind)
    if handler is None:
        return None   # noise (ChannelVarset, ChannelDialplan, ...) or a type we do not use
    return handler(frame, parse_timestamp(frame.get("timestamp")))


def normalize_resync(
    channels: list[dict[str, Any]],
    endpoints: list[dict[str, Any]],
    ts: datetime,
    device_states: list[dict[str, Any]] | None = None,
) -> Resynced:
    """GET /ari/channels + /ari/endpoints (+ /ari/deviceStates) answers -> one Resynced at ``ts``.

    Entries that cannot be read are skipped rather than failing the whole resync.
    """
    devices: list[DeviceInfo] = []
    for raw in device_states or []:
        if isinstance(raw, Mapping) and _str(raw.get("name")):
            devices.append(DeviceInfo(_str(raw.get("name")), _str(raw.get("state")).upper()))
    chans: list[ChannelInfo] = []
    for raw in channels:
        try:
            chans.append(channel_info(raw))
        except MalformedFrame:
            continue
    eps: list[EndpointInfo] = []
    for raw in endpoints:
        try:
            eps.append(endpoint_info(raw))
        except MalformedFrame:
            continue
    return Resynced(tuple(chans), tuple(eps), ts, tuple(devices))
