"""``connectors.source.Commands`` over ARI REST: typed answers, ARI's wire format stays here.

Failures raise the ``connectors.ari.errors`` codes, carrying Asterisk's own words (``message`` or
``error`` of its answer).

Extension states: ``GET /ari/endpoints`` + ``GET /ari/deviceStates``; an endpoint without a
device state of its own (``PJSIP/1001``) gets one derived from the endpoint (online with
channels -> INUSE, online -> NOT_INUSE, offline -> UNAVAILABLE).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.ari.client import AriClient, AriConfig
from connectors.ari.errors import AriError
from connectors.ari.normalize import AriNormalizer, MalformedFrame, mapping
from connectors.ari.source import AriSource
from connectors.source import ExtensionState, OriginateRequest
from engine.events import ChannelInfo


def _derived_state(registration: str, has_channels: bool) -> str:
    if registration == "online":
        return "INUSE" if has_channels else "NOT_INUSE"
    return "UNAVAILABLE" if registration == "offline" else "UNKNOWN"


class AriCommands:
    def __init__(self, client: AriClient, source: AriSource | None = None) -> None:
        self._client = client
        self._source = source
        self._read = AriNormalizer()   # cleans what the reads return, like the events

    async def answer(self, channel_id: str) -> None:
        await self._client.answer(channel_id)

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self._client.hangup(channel_id, reason)

    async def originate(self, request: OriginateRequest) -> ChannelInfo:
        """Ring ``request.endpoint``; once answered it dials ``request.extension``."""
        channel_id = f"sb-{uuid.uuid4().hex}"
        if self._source is not None:
            self._source.expect_originated(channel_id, request.extension)
        try:
            raw = await self._client.originate(
                request.endpoint, extension=request.extension, context=request.context,
                priority=request.priority, timeout=request.timeout,
                caller_id=request.caller_id, channel_id=channel_id,
            )
        except BaseException:
            if self._source is not None:
                self._source.normalizer.dialled.pop(channel_id, None)
            raise
        try:
            return self._read.channel(raw)
        except MalformedFrame:
            return ChannelInfo(channel_id, request.endpoint, "Down")

    async def extensions(self) -> list[ExtensionState]:
        raw_endpoints = await self._client.endpoints()
        devices = {d.name: d.state for raw in await self._client.device_states()
                   if (d := self._read.device(raw)) is not None}
        out = []
        for raw in raw_endpoints:
            try:
                info = self._read.endpoint(raw)
            except MalformedFrame:
                continue
            name = f"{info.technology}/{info.resource}"
            has_channels = bool(isinstance(raw, Mapping) and raw.get("channel_ids"))
            state = devices.get(name) or _derived_state(info.state, has_channels)
            out.append(ExtensionState(info.technology, info.resource, info.state, state))
        return out

    async def channels(self) -> list[ChannelInfo]:
        out = []
        for raw in await self._client.channels():
            try:
                out.append(self._read.channel(raw))
            except MalformedFrame:
                continue
        return out

    async def version(self) -> str | None:
        info = await self._client.asterisk_info()
        system = info.get("system") if isinstance(info, Mapping) else None
        version = system.get("version") if isinstance(system, Mapping) else None
        return self._read.text(version) or None


@dataclass(frozen=True, slots=True)
class AsteriskFound:
    version: str              # "20.5.0"
    system: str               # its configured name, else "Asterisk on Linux x86_64 (<entity>)"


async def probe(config: AriConfig) -> AsteriskFound:
    """Really connect: ``GET /ari/asterisk/info`` (the admin's connection test)."""
    async with AriClient(config) as client:
        info = await client.asterisk_info()
    system = info.get("system") if isinstance(info, dict) else None
    version = system.get("version") if isinstance(system, dict) else None
    if not isinstance(version, str) or not version:
        raise AriError("the answer of /asterisk/info has no system.version: not ARI?")
    return AsteriskFound(version, _system_name(info))


def _system_name(info: dict[str, Any]) -> str:
    """How the admin's connection test names the Asterisk it reached."""
    config, build, system = (mapping(info.get(k)) for k in ("config", "build", "system"))
    text = AriNormalizer().text
    if name := text(config.get("name")):
        return name
    parts = [text(build.get(k)) for k in ("os", "machine") if text(build.get(k))]
    where = f" on {' '.join(parts)}" if parts else ""
    entity = text(system.get("entity_id"), "id")
    return f"Asterisk{where}{f' ({entity})' if entity else ''}"
