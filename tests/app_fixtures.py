"""Fixtures that run the whole Switchboard app against the session's real PostgreSQL and Redis."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
import redis.asyncio as aredis
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.config import Settings
from api.state import SERVICES, Services
from connectors.fakes.ami_server import FakeAmi
from connectors.fakes.ari_server import FakeAsterisk, endpoint
from tests.helpers import ADMIN_PASSWORD


@pytest_asyncio.fixture(loop_scope="session")
async def app_settings(database_url: str, redis_url: str, redis: aredis.Redis,
                       tmp_path: Path) -> Settings:
    """Settings over clean tables (``database_url``) and a flushed Redis (``redis``), so each
    app starts from nothing a previous test left."""
    return Settings(
        database_url=database_url, redis_url=redis_url, data_dir=tmp_path,
        admin_password=ADMIN_PASSWORD, jwt_secret="test-secret-" + "x" * 32,
        secret_key="test-secret-key", simulator="off", ws_auth_timeout=2.0,
        log_level="WARNING",
        # the suite logs in a lot; tests/test_ratelimit.py builds apps with low limits
        rate_limit_auth=100_000, rate_limit_dashboard=100_000, rate_limit_api=100_000,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def fake_asterisk() -> AsyncIterator[FakeAsterisk]:
    async with FakeAsterisk(username="ari", password="ari-secret", app="switchboard") as fake:
        for ext in ("1001", "1002"):  # registered phones, as the resync will find them
            fake.set_endpoint(endpoint("PJSIP", ext, "online"))
        yield fake


async def _client(settings: Settings, **overrides: Any) -> TestClient:
    app = create_app(settings.replace(**overrides))
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest_asyncio.fixture(loop_scope="session")
async def client(app_settings: Settings) -> AsyncIterator[TestClient]:
    """The app with no PBX."""
    c = await _client(app_settings)
    try:
        yield c
    finally:
        await c.close()


@pytest_asyncio.fixture(loop_scope="session")
async def pbx_client(app_settings: Settings,
                     fake_asterisk: FakeAsterisk) -> AsyncIterator[TestClient]:
    """The app connected over real ARI to the fake Asterisk (connected and resynced)."""
    c = await _client(app_settings, ari_url=fake_asterisk.url, ari_username="ari",
                      ari_password="ari-secret", ari_app="switchboard")
    try:
        await c.app[SERVICES].pbx.wait_connected()
        yield c
    finally:
        await c.close()


@pytest_asyncio.fixture(loop_scope="session")
async def services(client: TestClient) -> Services:
    return client.app[SERVICES]


ROLE_USERS = {"admin": ("admin", None), "manager": ("r_manager", None),
              "supervisor": ("r_supervisor", None), "operator": ("r_operator", "3001")}


@pytest_asyncio.fixture(loop_scope="session")
async def role_tokens(client: TestClient) -> dict[str, str]:
    """A bearer token for one user of every role (operator: extension 3001)."""
    from tests.helpers import ADMIN_PASSWORD, ensure_user, login

    services = client.app[SERVICES]
    tokens = {}
    for role, (username, ext) in ROLE_USERS.items():
        if role == "admin":
            tokens[role] = await login(client, "admin", ADMIN_PASSWORD)
            continue
        await ensure_user(services, username, role, extension=ext)
        tokens[role] = await login(client, username, "secret-pass")
    return tokens


@contextlib.asynccontextmanager
async def app_on_ari_and_ami(settings: Settings,
                             ami: FakeAmi) -> AsyncIterator[tuple[TestClient, FakeAsterisk]]:
    """The app on one Asterisk over both interfaces: a fresh fake ARI and ``ami``, connected."""
    async with FakeAsterisk(username="ari", password="pw", app="switchboard") as ari:
        client = await _client(settings, ami_host=ami.host, ami_port=ami.port,
                               ami_username="ami", ami_secret="ami-secret", ari_url=ari.url,
                               ari_username="ari", ari_password="pw")
        try:
            await client.app[SERVICES].pbx.wait_connected()
            assert client.app[SERVICES].pbx.mode == "ari+ami"
            yield client, ari
        finally:
            await client.close()
