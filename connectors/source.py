"""The one contract every PBX source keeps (ARI today; AMI and Mango Office next).

A source is three parts, each replaceable on its own:

- a ``Normalizer``: pure, raw input -> typed engine events (``event``), and a resync snapshot ->
  one ``Resynced`` (``resync``). Raw dicts stop there. It cleans every string it keeps
  (``connectors/clean.py``) and counts what it had to clean in ``stats``.
- a ``Source``: the I/O loop. It connects, reconnects with backoff, resyncs after every
  connect, submits the normalized events (each tagged with the source's ``name``) and says
  whether it is connected and, when not, why (``status()``).
- ``Commands``: what an operator or admin asks of the PBX (answer, hang up, originate) and the
  live reads the API shows (extensions, channels, version), as typed results. ``api/`` never
  sees the PBX's wire format.

``service/pbx.py`` chooses and starts the sources the settings ask for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from engine.events import ChannelInfo, Event, Resynced

# What a source hands its events to (``Runner.submit``).
Submit = Callable[[Event], None]


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """Whether a source hears its PBX now; ``reason`` says why not (None when connected)."""

    name: str                 # "ari", "ami", "mango"
    connected: bool
    reason: str | None = None


class Normalizer(Protocol):
    """Pure: no I/O, no clock. Bad input raises the source's own malformed-input error."""

    stats: Counter[str]

    def event(self, raw: Any) -> Event | None: ...

    def resync(self, snapshot: Any, ts: datetime) -> Resynced: ...


class Source(Protocol):
    name: str

    def start(self) -> None:
        """Run in the background: connect, resync, feed events, reconnect with backoff."""

    async def stop(self) -> None: ...

    async def wait_connected(self) -> None:
        """Return once connected and resynced."""

    def status(self) -> SourceStatus: ...


@dataclass(frozen=True, slots=True)
class ExtensionState:
    """A phone as the PBX sees it: registration and device state."""

    technology: str           # PJSIP, SIP, IAX2, ...
    resource: str             # the extension, "1001"
    registration: str         # unknown | offline | online
    device_state: str         # NOT_INUSE | INUSE | RINGING | UNAVAILABLE | ... (ARI names)

    @property
    def name(self) -> str:
        return f"{self.technology}/{self.resource}"


@dataclass(frozen=True, slots=True)
class OriginateRequest:
    endpoint: str             # Tech/resource of the phone that rings first
    extension: str            # the number dialled once it answers
    context: str = "default"
    priority: int = 1
    timeout: int = 30
    caller_id: str | None = None


class Commands(Protocol):
    """Commands and live reads. Failures raise ``engine.errors.DomainError`` subclasses."""

    async def answer(self, channel_id: str) -> None: ...

    async def hangup(self, channel_id: str, reason: str = "normal") -> None: ...

    async def originate(self, request: OriginateRequest) -> ChannelInfo: ...

    async def extensions(self) -> list[ExtensionState]: ...

    async def channels(self) -> list[ChannelInfo]: ...

    async def version(self) -> str | None: ...
