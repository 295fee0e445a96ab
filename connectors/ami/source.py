"""Asterisk over AMI as a ``connectors.source.Source``: the manager connection feeds the engine.

After every login it resyncs: ``CoreShowChannels`` and ``DeviceStateList`` become one
``Resynced`` (``AmiNormalizer.resync``; skipped when ARI feeds the channels); ``QueueStatus``
becomes one ``QueuesResynced`` (every queue's members and waiting callers, submitted also when
ARI runs: queues come from AMI); ``QueueStatus`` and ``QueueSummary`` are kept as
``queue_snapshot`` too (``on_queue_snapshot`` is called with it). Events
read while the resync runs wait for it, then go through ``AmiNormalizer``; bad messages are
counted in ``stats`` (the protocol counts bad bytes in its own ``errors``).

One Asterisk, both sources (``feed_channels=False``): ARI and AMI describe the same channels
(AMI ``Uniqueid`` is the ARI channel id). ARI stamps every event with the PBX's time; AMI does
not unless ``timestampevents=yes``, and the two streams arrive in either order within a few ms.
So when ARI runs too, ARI alone feeds channels, dials, bridges and device states, and AMI only
what ARI cannot say (queues, members, pauses). The choice is made when the sources start, not
by whichever socket is up at the moment: switching on ARI's connection state would merge two
streams by arrival order, which the captured traffic says never to do. The engine keeps one
call per channel anyway (the call id comes from the channel), so a leak would not double a
call; this rule keeps the times ARI's.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.ami.client import AmiConfig, AmiConnection, AmiEventStream
from connectors.ami.errors import AmiActionFailed
from connectors.ami.eventlist import EventList
from connectors.ami.normalize import CHANNEL_EVENTS, AmiNormalizer, AmiSnapshot, MalformedMessage
from connectors.ami.protocol import AmiMessage
from connectors.source import SourceStatus, Submit

log = logging.getLogger("switchboard.ami")

ARI_OWNED = CHANNEL_EVENTS | {"DeviceStateChange"}  # what ARI says when both run


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """``QueueStatus`` and ``QueueSummary`` as read at a login (for the queue model)."""

    status: tuple[AmiMessage, ...]
    summary: tuple[AmiMessage, ...]
    ts: datetime


class AmiSource:
    name = "ami"

    def __init__(self, config: AmiConfig, submit: Submit, *, feed_channels: bool = True,
                 on_queue_snapshot: Callable[[QueueSnapshot], None] | None = None,
                 **stream_options: Any) -> None:
        self.config = config
        self.feed_channels = feed_channels
        self._submit = submit
        self._on_queue_snapshot = on_queue_snapshot
        self.normalizer = AmiNormalizer(self.name)
        self.stats: Counter[str] = Counter()
        self.queue_snapshot: QueueSnapshot | None = None
        self.stream = AmiEventStream(config, self._on_event, self._on_login, **stream_options)

    # -- connectors.source.Source -------------------------------------------------------------

    def start(self) -> None:
        self.stream.start()

    async def stop(self) -> None:
        await self.stream.stop()

    async def wait_connected(self) -> None:
        await self.stream.wait_connected()

    def status(self) -> SourceStatus:
        return SourceStatus(self.name, self.stream.connected, self.stream.reason)

    # -- the stream's callbacks ---------------------------------------------------------------

    def _on_event(self, message: AmiMessage) -> None:
        self.stats["events"] += 1
        if not self.feed_channels and message.name in ARI_OWNED:
            self.stats["left_to_ari"] += 1
            return
        try:
            event = self.normalizer.event(message, datetime.now(UTC))
        except MalformedMessage as exc:
            self.stats[f"malformed:{exc.kind}"] += 1
            if self.stats[f"malformed:{exc.kind}"] == 1:
                log.warning("malformed AMI %s event (%s); further ones are only counted",
                            message.name, exc.kind)
            return
        if event is None:
            self.stats["ignored"] += 1
            return
        self._submit(event)

    async def _on_login(self, connection: AmiConnection) -> None:
        """Resync after every login: end calls that ended meanwhile, pick up new ones."""
        ts = datetime.now(UTC)
        if self.feed_channels:  # else ARI resyncs the channels itself
            channels = await connection.list_action("CoreShowChannels")
            devices = await _optional_list(connection, "DeviceStateList")
            snapshot = AmiSnapshot(channels.items, devices.items if devices else ())
            self._submit(self.normalizer.resync(snapshot, ts))
        status = await connection.list_action("QueueStatus")
        summary = await connection.list_action("QueueSummary")
        self.queue_snapshot = QueueSnapshot(status.items, summary.items, ts)
        self._submit(self.normalizer.resync_queues(status.items, ts))
        if self._on_queue_snapshot is not None:
            self._on_queue_snapshot(self.queue_snapshot)
        self.stats["resyncs"] += 1


async def _optional_list(connection: AmiConnection, action: str) -> EventList | None:
    """A list an older Asterisk (or a user without the class) may refuse: None then."""
    try:
        return await connection.list_action(action)
    except AmiActionFailed as exc:
        log.info("AMI %s refused (%s): resync without it", action, exc.message)
        return None
