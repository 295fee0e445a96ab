"""AMI messages -> engine events (pure). Raw messages stop here.

The channel events map onto the engine's existing channel events, tagged ``source="ami"``:
``Newchannel`` -> ``ChannelCreated``, ``Newstate`` -> ``ChannelStateChanged``, ``NewCallerid``
-> ``CallerIdChanged``, ``Hangup`` -> ``ChannelHungUp`` (AMI's ``Hangup`` carries the real Q.850
cause, like ARI's ``ChannelDestroyed``), ``DialBegin``/``DialEnd`` -> ``DialUpdated`` (the
caller block unprefixed, the dialled leg in ``Dest*``; no caller block = an originated leg),
``BridgeEnter``/``BridgeLeave`` -> ``BridgeEntered``/``BridgeLeft``, ``DeviceStateChange`` ->
``DeviceStateChanged``. AMI ``Uniqueid`` is the ARI channel id, so both sources name a channel
alike. ``ExtensionStatus`` is not mapped: a hint may sum several devices, and the devices
themselves arrive as ``DeviceStateChange``. Queue and agent events become the engine's queue
events (``queue_events.py``; the ``QueueStatus`` list: ``resync_queues``); the few queue events
the queue model has no use for (``QueueMemberPenalty``...) are counted in
``stats["deferred:queue"]``; everything else is noise (``VarSet``, ``Newexten``...).

Time: AMI events carry no time unless ``manager.conf`` has ``timestampevents=yes`` (then a
``Timestamp: <epoch>`` header). It is used when present; else the receipt time the source
passes in, and ``stats["receipt_time"]`` counts how often. Engine events have no field to mark
a time as "received, not stamped by the PBX", so the mark is that counter and the source's log;
the connection test warns an admin when ``timestampevents`` is off.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from connectors.ami.protocol import AmiMessage
from connectors.ami.queue_events import MissingHeader, QueueEvents
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
    Event,
    QueuesResynced,
    Resynced,
)

# ChannelState numbers (``main/channel.c``), for a message without ChannelStateDesc.
STATE_NAMES = ("Down", "Rsrvd", "OffHook", "Dialing", "Ring", "Ringing", "Up", "Busy",
               "Dialing Offhook", "Pre-ring")
UNKNOWN = "<unknown>"  # how AMI writes an empty caller field
QUEUE_EVENT_PREFIXES = ("Queue", "Agent")  # QueueCallerJoin, QueueMemberPause, AgentConnect...
CHANNEL_EVENTS = frozenset({"Newchannel", "Newstate", "NewCallerid", "Hangup", "DialBegin",
                            "DialEnd", "BridgeEnter", "BridgeLeave"})


class MalformedMessage(ValueError):
    """A message of a type we use lacks a required header; ``kind`` names which."""

    def __init__(self, kind: str, detail: str = "") -> None:
        self.kind = kind
        super().__init__(f"malformed AMI message: {kind}{': ' + detail if detail else ''}")


def event_time(message: AmiMessage, received: datetime) -> tuple[datetime, bool]:
    """The event's time and whether the PBX stamped it (``Timestamp``) or we only received it."""
    stamp = message.get("Timestamp")
    if stamp:
        try:
            return datetime.fromtimestamp(float(stamp), UTC), True
        except (ValueError, OverflowError, OSError):
            pass
    return received, False


@dataclass(frozen=True, slots=True)
class AmiSnapshot:
    """What a resync reads: ``CoreShowChannels`` items and ``DeviceStateList`` items."""

    channels: Sequence[AmiMessage]
    devices: Sequence[AmiMessage] = field(default_factory=tuple)


_Handler = Callable[["AmiNormalizer", AmiMessage, datetime], Event]


class AmiNormalizer:
    """The AMI normalizer (``connectors.source.Normalizer``): pure, counts what it did."""

    def __init__(self, source: str = "ami") -> None:
        self.source = source
        self.text = Cleaner()  # every string kept goes through it
        self.stats: Counter[str] = self.text.stats
        self.queues = QueueEvents(self.text, source)

    # -- the contract ---------------------------------------------------------------------

    def event(self, raw: AmiMessage, received: datetime | None = None) -> Event | None:
        """One AMI event -> an engine event, or None when the engine has no use for it.

        ``received``: when the source read it (the time used when there is no ``Timestamp``).
        """
        name = raw.name
        handler = _HANDLERS.get(name)
        if handler is None and not self.queues.handles(name):
            if name.startswith(QUEUE_EVENT_PREFIXES):
                self.stats["deferred:queue"] += 1
            return None
        ts, stamped = event_time(raw, received or datetime.now(UTC))
        if not stamped:
            self.stats["receipt_time"] += 1
        if handler is not None:
            return handler(self, raw, ts)
        try:
            return self.queues.event(raw, ts)
        except MissingHeader as exc:
            raise MalformedMessage(str(exc)) from None

    def resync(self, snapshot: AmiSnapshot, ts: datetime) -> Resynced:
        """``CoreShowChannels`` (+ device states) -> one Resynced; unreadable items skipped."""
        channels: list[ChannelInfo] = []
        for item in snapshot.channels:
            try:
                channels.append(self.channel(item))
            except MalformedMessage:
                self.stats["resync_skipped"] += 1
        devices = [d for item in snapshot.devices if (d := self._device_info(item)) is not None]
        return Resynced(tuple(channels), (), ts, tuple(devices), source=self.source)

    def resync_queues(self, items: Sequence[AmiMessage], ts: datetime) -> QueuesResynced:
        """The ``QueueStatus`` list read at ``ts`` -> one QueuesResynced; unreadable items
        skipped (``stats["queue_resync_skipped"]``)."""
        def skipped(_header: str) -> None:
            self.stats["queue_resync_skipped"] += 1
        return self.queues.resynced(items, ts, skipped)

    # -- AMI blocks -----------------------------------------------------------------------

    def channel(self, msg: AmiMessage, prefix: str = "", created: datetime | None = None
                ) -> ChannelInfo:
        """The channel block (``Dest``-prefixed for the dialled leg); Uniqueid and Channel are
        required."""
        text = self.text
        channel_id = text(msg.get(prefix + "Uniqueid"), "id")
        name = text(msg.get(prefix + "Channel"), "id")
        if not channel_id:
            raise MalformedMessage(f"{prefix}Uniqueid")
        if not name:
            raise MalformedMessage(f"{prefix}Channel")
        return ChannelInfo(
            id=channel_id,
            name=name,
            state=self._state(msg, prefix),
            caller_number=self._caller(msg.get(prefix + "CallerIDNum"), "number"),
            caller_name=self._caller(msg.get(prefix + "CallerIDName"), "name"),
            exten=text(msg.get(prefix + "Exten"), "number"),
            context=text(msg.get(prefix + "Context")),
            created=created,
        )

    def _state(self, msg: AmiMessage, prefix: str) -> str:
        desc = self.text(msg.get(prefix + "ChannelStateDesc"))
        if desc:
            return desc
        number = msg.get(prefix + "ChannelState") or ""
        if number.isdigit() and int(number) < len(STATE_NAMES):
            return STATE_NAMES[int(number)]
        return "Unknown"

    def _caller(self, value: str | None, kind: str) -> str:
        return "" if value == UNKNOWN else self.text(value, kind)

    def _device_info(self, msg: AmiMessage) -> DeviceInfo | None:
        name = self.text(msg.get("Device"), "id")
        return DeviceInfo(name, self.text(msg.get("State")).upper()) if name else None

    def _bridge(self, msg: AmiMessage) -> tuple[str, str]:
        bridge_id = self.text(msg.get("BridgeUniqueid"), "id")
        if not bridge_id:
            raise MalformedMessage("BridgeUniqueid")
        return bridge_id, self.text(msg.get("BridgeType")) or "mixing"

    # -- one handler per event ------------------------------------------------------------

    def _created(self, m: AmiMessage, ts: datetime) -> Event:
        return ChannelCreated(self.channel(m, created=ts), ts, self.source)

    def _newstate(self, m: AmiMessage, ts: datetime) -> Event:
        return ChannelStateChanged(self.channel(m), ts, self.source)

    def _caller_id(self, m: AmiMessage, ts: datetime) -> Event:
        return CallerIdChanged(self.channel(m), ts, self.source)

    def _hangup(self, m: AmiMessage, ts: datetime) -> Event:
        cause = m.get("Cause") or ""
        return ChannelHungUp(self.channel(m), int(cause) if cause.isdigit() else None,
                             self.text(m.get("Cause-txt")), ts, self.source)

    def _dial(self, m: AmiMessage, ts: datetime) -> Event:
        caller = self.channel(m) if m.get("Uniqueid") else None
        return DialUpdated(
            peer=self.channel(m, "Dest"),
            status=self.text(m.get("DialStatus")).upper(),
            ts=ts,
            caller=caller,
            dialstring=self.text(m.get("DialString")),
            source=self.source,
        )

    def _entered(self, m: AmiMessage, ts: datetime) -> Event:
        bridge_id, bridge_type = self._bridge(m)
        return BridgeEntered(bridge_id, self.channel(m), ts, bridge_type, self.source)

    def _left(self, m: AmiMessage, ts: datetime) -> Event:
        bridge_id, bridge_type = self._bridge(m)
        return BridgeLeft(bridge_id, self.channel(m), ts, bridge_type, self.source)

    def _device(self, m: AmiMessage, ts: datetime) -> Event:
        device = self._device_info(m)
        if device is None:
            raise MalformedMessage("Device")
        return DeviceStateChanged(device.name, device.state, ts, self.source)


_HANDLERS: dict[str, _Handler] = {
    "Newchannel": AmiNormalizer._created,
    "Newstate": AmiNormalizer._newstate,
    "NewCallerid": AmiNormalizer._caller_id,
    "Hangup": AmiNormalizer._hangup,
    "DialBegin": AmiNormalizer._dial,
    "DialEnd": AmiNormalizer._dial,
    "BridgeEnter": AmiNormalizer._entered,
    "BridgeLeave": AmiNormalizer._left,
    "DeviceStateChange": AmiNormalizer._device,
}
