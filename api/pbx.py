"""Connecting the engine to a PBX: a real Asterisk over ARI, or the built-in simulator.

The simulator is a fake Asterisk (real ARI over a real socket) that the same ARI connector
consumes, so the whole pipeline runs for real when no PBX is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from connectors.ari.client import AriClient, AriConfig, AriEventStream
from connectors.ari.normalize import MalformedFrame, normalize, normalize_resync
from engine.roles import Role
from storage.users import UserExists, Users

if TYPE_CHECKING:
    from api.state import Services
    from service.runner import Runner

log = logging.getLogger("switchboard.pbx")

SIMULATED_EXTENSIONS = tuple(str(1001 + i) for i in range(10))
SIMULATED_NAMES = (
    "Иван Петров", "Мария Смирнова", "Алексей Кузнецов", "Ольга Попова", "Дмитрий Васильев",
    "Анна Соколова", "Сергей Михайлов", "Елена Новикова", "Павел Фёдоров", "Наталья Морозова",
)


class AriIngest:
    """Raw ARI frames -> engine events. Malformed frames are logged once per kind and counted."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self.stats: Counter[str] = Counter()

    def on_frame(self, frame: dict[str, Any]) -> None:
        self.stats["frames"] += 1
        try:
            event = normalize(frame)
        except MalformedFrame as exc:
            self.stats[f"malformed:{exc.kind}"] += 1
            if self.stats[f"malformed:{exc.kind}"] == 1:
                log.warning("malformed ARI frame (%s); further ones are only counted", exc.kind)
            return
        if event is None:
            self.stats["ignored"] += 1
            return
        self._runner.submit(event)

    async def on_connect(self, client: AriClient) -> None:
        """Resync after every (re)connect: end calls that ended meanwhile, pick up new ones."""
        channels = await client.channels()
        endpoints = await client.endpoints()
        self._runner.submit(normalize_resync(channels, endpoints, datetime.now(UTC)))
        self.stats["resyncs"] += 1


async def provision_simulator_operators(users: Users) -> None:
    """Seed operators 1001-1010 so simulated calls have someone to answer them."""
    from api.auth import hash_password

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
async def connect(services: Services, stored: AriConfig | None = None) -> AsyncIterator[None]:
    """Connect for the app's lifetime: ``stored`` (the admin's saved Asterisk settings, when
    enabled) wins over the configured ARI url, then the simulator, then nothing."""
    services.pbx["lock"] = asyncio.Lock()
    await _open(services, stored)
    try:
        yield
    finally:
        async with services.pbx["lock"]:
            await _close(services)


async def reconfigure(services: Services, config: AriConfig | None) -> None:
    """Switch the live PBX connection without a restart (PUT /api/admin/settings): stop the
    current ARI client and event stream (or the simulator) and start again against ``config``;
    ``None`` goes back to the configured default (ARI url, simulator or none)."""
    lock: asyncio.Lock = services.pbx.setdefault("lock", asyncio.Lock())
    async with lock:
        await _close(services)
        await _open(services, config)
    log.info("PBX connection re-initialised: %s", services.pbx["mode"])


async def _open(services: Services, config: AriConfig | None) -> None:
    settings = services.settings
    stack = contextlib.AsyncExitStack()
    try:
        if config is not None:
            mode = "ari"
        elif settings.ari_url:
            config = AriConfig(settings.ari_url, settings.ari_username,
                               settings.ari_password.get_secret_value(), settings.ari_app)
            mode = "ari"
        elif settings.simulator_enabled:
            config = await stack.enter_async_context(_simulator(settings.ari_app,
                                                                settings.simulator_rate))
            mode = "simulator"
        else:
            services.pbx["mode"] = "none"
            log.info("no PBX configured and the simulator is off: no live events")
            return
        client = AriClient(config)
        await client.start()
        stack.push_async_callback(client.close)
        ingest = AriIngest(services.runner)
        stream = AriEventStream(config, ingest.on_frame, ingest.on_connect)
        stream.start()
        stack.push_async_callback(stream.stop)
    except BaseException:
        await stack.aclose()
        raise
    services.ari = client
    services.pbx.update(mode=mode, config=config, stream=stream, ingest=ingest, stack=stack)


async def _close(services: Services) -> None:
    """Stop what ``_open`` started (stream, client, simulator), newest first."""
    stack: contextlib.AsyncExitStack | None = services.pbx.pop("stack", None)
    services.ari = None
    for key in ("config", "stream", "ingest"):
        services.pbx.pop(key, None)
    services.pbx["mode"] = "none"
    if stack is not None:
        await stack.aclose()


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
