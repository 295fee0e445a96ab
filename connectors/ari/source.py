"""Asterisk over ARI as a ``connectors.source.Source``: the events socket feeds the engine.

After every (re)connect it resyncs from ``GET /ari/channels``, ``/ari/endpoints`` and
``/ari/deviceStates``. Frames are normalized by ``AriNormalizer`` (malformed ones are logged once
per kind and counted in ``stats``; what had to be cleaned is counted in ``normalizer.stats``).

Originated calls: Asterisk creates the originated channel in the phone's own dialplan place and
moves it to the dialled number only once the phone answers, so the frames alone would name the
operator's extension as the number dialled. ``AriCommands.originate`` picks the channel id and
tells the source the number first (``expect_originated``); the normalizer then reports that
channel at the dialled number from its first frame on.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from connectors.ari.client import AriClient, AriConfig, AriEventStream
from connectors.ari.normalize import AriNormalizer, AriSnapshot, MalformedFrame
from connectors.source import SourceStatus, Submit
from engine.events import ChannelHungUp

log = logging.getLogger("switchboard.ari")


class AriSource:
    name = "ari"

    def __init__(self, config: AriConfig, submit: Submit, **stream_options: Any) -> None:
        self.config = config
        self._submit = submit
        self.normalizer = AriNormalizer(self.name)
        self.stats: Counter[str] = Counter()
        self.stream = AriEventStream(config, self._on_frame, self._on_connect, **stream_options)

    # -- connectors.source.Source -------------------------------------------------------------

    def start(self) -> None:
        self.stream.start()

    async def stop(self) -> None:
        await self.stream.stop()

    async def wait_connected(self) -> None:
        await self.stream.wait_connected()

    def status(self) -> SourceStatus:
        return SourceStatus(self.name, self.stream.connected, self.stream.reason)

    # -- what the commands tell us ------------------------------------------------------------

    def expect_originated(self, channel_id: str, dialled: str) -> None:
        """The channel ``channel_id`` about to be originated dials ``dialled``."""
        self.normalizer.dialled[channel_id] = dialled

    # -- the stream's callbacks ---------------------------------------------------------------

    def _on_frame(self, frame: dict[str, Any]) -> None:
        self.stats["frames"] += 1
        try:
            event = self.normalizer.event(frame)
        except MalformedFrame as exc:
            self.stats[f"malformed:{exc.kind}"] += 1
            if self.stats[f"malformed:{exc.kind}"] == 1:
                log.warning("malformed ARI frame (%s); further ones are only counted", exc.kind)
            return
        if event is None:
            self.stats["ignored"] += 1
            return
        if isinstance(event, ChannelHungUp):
            self.normalizer.dialled.pop(event.channel.id, None)
        self._submit(event)

    async def _on_connect(self, client: AriClient) -> None:
        """Resync after every (re)connect: end calls that ended meanwhile, pick up new ones."""
        snapshot = AriSnapshot(await client.channels(), await client.endpoints(),
                               await client.device_states())
        self._submit(self.normalizer.resync(snapshot, datetime.now(UTC)))
        self.stats["resyncs"] += 1
