"""The live PBX connection: which sources run, their commands, and live reconfiguration.

``PbxConnection`` starts what the settings ask for — the admin's saved Asterisk connection when
enabled (ARI or AMI), else ``SWITCHBOARD_ARI_URL`` and/or ``SWITCHBOARD_AMI_HOST``, else the
built-in simulator (a fake Asterisk speaking real ARI over a real socket, consumed by the same
ARI source), else nothing — and owns the ``Commands`` for it. ``reconfigure()`` switches without
a restart (PUT /api/admin/settings).

ARI and AMI on one Asterisk: both start, and the AMI source leaves channels, dials, bridges and
device states to ARI (``AmiSource(feed_channels=False)``, see ``connectors/ami/source.py``), so
one call is one record with ARI's times. AMI alone feeds them itself. Commands (answer, hang up,
originate, extensions) exist over ARI only: with AMI alone ``commands`` is None.

A source that is configured but not built yet (Mango Office) is refused before anything starts
(``SourceNotBuilt`` names the setting): never a silent "no live events".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.ami.client import AmiConfig
from connectors.ami.source import AmiSource
from connectors.ari.client import AriClient, AriConfig
from connectors.ari.commands import AriCommands
from connectors.ari.source import AriSource
from connectors.source import Commands, ExtensionState, Source, SourceStatus, Submit
from engine.model import Operator, OperatorStatus
from engine.roles import Role
from storage.users import UserExists, Users

log = logging.getLogger("switchboard.pbx")

# The simulator's operators. Clear of the seed's examples (1001-1003), so a default install
# takes the seed's own client as it is.
SIMULATED_EXTENSIONS = tuple(str(2001 + i) for i in range(10))
SIMULATED_NAMES = (
    "Иван Петров", "Мария Смирнова", "Алексей Кузнецов", "Ольга Попова", "Дмитрий Васильев",
    "Анна Соколова", "Сергей Михайлов", "Елена Новикова", "Павел Фёдоров", "Наталья Морозова",
)


class SourceNotBuilt(Exception):
    """A PBX source is configured that Switchboard cannot run yet."""


@dataclass(frozen=True, slots=True)
class PbxSettings:
    """The settings that choose the sources (from ``api.config.Settings``)."""

    ari_url: str = ""
    ari_username: str = ""
    ari_password: str = ""
    ari_app: str = "switchboard"
    simulator: bool = False
    simulator_rate: float = 6.0
    ami_host: str = ""
    ami_port: int = 5038
    ami_username: str = ""
    ami_secret: str = ""
    mango_api_key: str = ""

    def refuse_unbuilt(self) -> None:
        """Raise ``SourceNotBuilt`` naming the first setting of a source not built yet."""
        if self.mango_api_key:
            raise SourceNotBuilt(
                "SWITCHBOARD_MANGO_API_KEY is set, but the Mango Office source is not built "
                "yet: unset it")

    @property
    def default_ari(self) -> AriConfig | None:
        if not self.ari_url:
            return None
        return AriConfig(self.ari_url, self.ari_username, self.ari_password, self.ari_app)

    @property
    def default_ami(self) -> AmiConfig | None:
        if not self.ami_host:
            return None
        return AmiConfig(self.ami_host, self.ami_port, self.ami_username, self.ami_secret)


Connection = AriConfig | AmiConfig  # what an admin saves: one Asterisk interface


def device_state_of(operator: Operator | None, pbx_state: str) -> str:
    """An extension's device state as the engine sees its operator, so the PBX views agree with
    /api/operators: on a call -> INUSE, ringing -> RINGING, unreachable -> UNAVAILABLE; else
    what the PBX says. An extension of no operator keeps the PBX's state."""
    if operator is None:
        return pbx_state
    if operator.status_detail == "in_call":
        return "INUSE"
    if operator.status_detail == "ringing":
        return "RINGING"
    if operator.status is OperatorStatus.OFFLINE and operator.status_detail != "manual":
        return "UNAVAILABLE"
    return pbx_state


class PbxConnection:
    """What is connected now (``mode``), its sources and commands; one lock for changes."""

    def __init__(self, settings: PbxSettings, submit: Submit, *,
                 stream_options: dict[str, float] | None = None,
                 ami_options: dict[str, Any] | None = None) -> None:
        settings.refuse_unbuilt()
        self.settings = settings
        self._submit = submit
        self._stream_options = stream_options or {}
        self._ami_options = ami_options or {}
        self.mode = "none"                 # ari | ami | ari+ami | simulator | none
        self.config: Connection | None = None  # the ARI connection in use, else the AMI one
        self.sources: list[Source] = []
        self.commands: Commands | None = None
        self.lock = asyncio.Lock()         # one start/stop at a time
        self.settings_lock = asyncio.Lock()  # the stored and the live connection change together
        self._stack: contextlib.AsyncExitStack | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, stored: Connection | None = None) -> None:
        """``stored`` (the admin's saved connection, when enabled) wins over the settings."""
        async with self.lock:
            await self._open(stored)

    async def close(self) -> None:
        async with self.lock:
            await self._close()

    async def reconfigure(self, config: Connection | None) -> None:
        """Stop what runs and start against ``config``; None goes back to the settings' default
        (ARI url and/or AMI host, simulator or none)."""
        async with self.lock:
            await self._close()
            await self._open(config)
        log.info("PBX connection re-initialised: %s", self.mode)

    # -- status -------------------------------------------------------------------------------

    def status(self) -> list[SourceStatus]:
        """Per source: connected, and why not (for /ready and system info)."""
        return [source.status() for source in self.sources]

    @property
    def connected(self) -> bool:
        """Every running source hears its PBX (False when none runs)."""
        return bool(self.sources) and all(s.connected for s in self.status())

    async def wait_connected(self) -> None:
        for source in self.sources:
            await source.wait_connected()

    async def extensions(self, operators: Sequence[Operator]) -> list[ExtensionState]:
        """The PBX's extensions with the device state the engine agrees with."""
        if self.commands is None:
            return []
        by_extension = {op.extension: op for op in operators}
        out = []
        for ext in await self.commands.extensions():
            state = device_state_of(by_extension.get(ext.resource), ext.device_state)
            out.append(ExtensionState(ext.technology, ext.resource, ext.registration, state))
        return out

    # -- inside the lock ----------------------------------------------------------------------

    async def _open(self, config: Connection | None) -> None:
        stack = contextlib.AsyncExitStack()
        sources: list[Source] = []
        commands: Commands | None = None
        try:
            mode = None
            if config is None:
                ari, ami = self.settings.default_ari, self.settings.default_ami
            else:
                ari = config if isinstance(config, AriConfig) else None
                ami = config if isinstance(config, AmiConfig) else None
            if ari is None and ami is None and self.settings.simulator:
                ari = await stack.enter_async_context(
                    _simulator(self.settings.ari_app, self.settings.simulator_rate))
                mode = "simulator"
            if ari is None and ami is None:
                log.info("no PBX configured and the simulator is off: no live events")
                return
            if ari is not None:
                client = AriClient(ari)
                await client.start()
                stack.push_async_callback(client.close)
                ari_source = AriSource(ari, self._submit, **self._stream_options)
                ari_source.start()
                stack.push_async_callback(ari_source.stop)
                sources.append(ari_source)
                commands = AriCommands(client, ari_source)
            if ami is not None:
                # ARI on the same Asterisk alone feeds the channels: one call, ARI's times
                ami_source = AmiSource(ami, self._submit, feed_channels=ari is None,
                                       **self._ami_options)
                ami_source.start()
                stack.push_async_callback(ami_source.stop)
                sources.append(ami_source)
        except BaseException:
            await stack.aclose()
            raise
        self.mode = mode or "+".join(source.name for source in sources)
        self.config, self._stack = ari or ami, stack
        self.sources = sources
        self.commands = commands

    async def _close(self) -> None:
        stack, self._stack = self._stack, None
        self.mode, self.config, self.sources, self.commands = "none", None, [], None
        if stack is not None:
            await stack.aclose()


async def provision_simulator_operators(users: Users, hash_password: Callable[[str], str]) -> None:
    """Seed the simulator's operators so simulated calls have someone to answer them."""
    existing = {op.extension for op in await users.operators()}
    for ext, name in zip(SIMULATED_EXTENSIONS, SIMULATED_NAMES, strict=True):
        if ext in existing:
            continue
        with contextlib.suppress(UserExists):
            await users.create(
                username=f"operator{ext}", email=f"operator{ext}@switchboard.local", name=name,
                role=Role.OPERATOR, password_hash=hash_password(secrets.token_urlsafe(12)),
                extension=ext,
            )


@contextlib.asynccontextmanager
async def _simulator(app_name: str, rate_per_min: float) -> AsyncIterator[AriConfig]:
    from connectors.fakes.ari_server import FakeAsterisk
    from connectors.simulator import Simulator

    password = secrets.token_urlsafe(16)
    async with FakeAsterisk(username="switchboard", password=password, app=app_name) as fake:
        simulator = Simulator(fake, extensions=list(SIMULATED_EXTENSIONS),
                              rate_per_min=rate_per_min)
        task = asyncio.create_task(simulator.run(), name="simulator")
        log.info("PBX simulator (fake Asterisk ARI) at %s, %.1f calls/min", fake.url, rate_per_min)
        try:
            yield AriConfig(fake.url, "switchboard", password, app_name)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
