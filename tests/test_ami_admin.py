"""Admins test and save AMI like ARI: ``/api/admin/settings/asterisk/test`` with
``protocol: "AMI"`` (banner, login, ping; AST_001/002/004 with AMI troubleshooting; a warning
when events carry no Timestamp), and an AMI connection saved encrypted and applied live."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from api.crypto import secret_box
from api.state import SERVICES
from connectors.ami.client import AmiConfig
from connectors.ami.commands import NO_TIMESTAMPS
from connectors.fakes.ami_server import FakeAmi
from tests.test_api_admin import admin, clean_settings, eventually  # noqa: F401  (fixtures)
from tests.test_fake_ami import idle_state

TEST = "/api/admin/settings/asterisk/test"


@pytest_asyncio.fixture
async def fake_ami() -> AsyncIterator[FakeAmi]:
    async with FakeAmi(username="ami", secret="ami-secret", state=idle_state()) as fake:
        yield fake


def body_for(fake: FakeAmi, **more: Any) -> dict[str, Any]:
    return {"host": fake.host, "port": fake.port, "username": "ami", "password": "ami-secret",
            "protocol": "AMI", "timeout": 5, **more}


def check_failure(body: dict[str, Any], code: str, error: str, port: int) -> None:
    assert body["success"] is False
    assert body["message"].startswith(f"{error}: ") and f"127.0.0.1:{port}" in body["message"]
    data = body["data"]
    assert (data["error"], data["code"]) == (error, code)
    assert data["details"]["port"] == port and data["details"]["reason"]
    assert data["details"]["possible_causes"] and data["troubleshooting"]
    assert "ari.conf" not in str(data) and "http.conf" not in str(data)  # AMI's own advice


async def test_ami_test_success_warns_when_timestampevents_is_off(
    client: TestClient, admin: dict[str, str], fake_ami: FakeAmi  # noqa: F811
) -> None:
    resp = await client.post(TEST, headers=admin, json=body_for(fake_ami, protocol="ami"))
    assert resp.status == 200
    body = await resp.json()
    assert body == {
        "success": True,
        "message": "Успешное подключение к Asterisk fake-13.0.0",
        "data": {
            "asterisk_version": "fake-13.0.0",
            "system": "fake-ami",
            "connection_details": {"host": fake_ami.host, "port": fake_ami.port,
                                   "protocol": "AMI", "status": "Connected"},
            "timestamp_events": False,
            "warnings": [NO_TIMESTAMPS],
        },
    }
    assert [a.name for a in fake_ami.actions] == ["Login", "Ping", "CoreSettings"]


async def test_ami_test_with_timestampevents_has_no_warning(
    client: TestClient, admin: dict[str, str], fake_ami: FakeAmi  # noqa: F811
) -> None:
    fake_ami.timestamp_events = True
    body = await (await client.post(TEST, headers=admin, json=body_for(fake_ami))).json()
    assert body["success"] is True
    assert (body["data"]["timestamp_events"], body["data"]["warnings"]) == (True, [])


async def test_ami_test_wrong_secret_ast_002(
    client: TestClient, admin: dict[str, str], fake_ami: FakeAmi  # noqa: F811
) -> None:
    resp = await client.post(TEST, headers=admin, json=body_for(fake_ami, password="wrong"))
    assert resp.status == 200
    body = await resp.json()
    check_failure(body, "AST_002", "Authentication failed", fake_ami.port)
    assert "Authentication failed" in body["data"]["details"]["reason"]
    assert any("manager.conf" in step for step in body["data"]["troubleshooting"])
    assert fake_ami.failed_logins == 1


async def test_ami_test_nothing_listening_ast_004(
    client: TestClient, admin: dict[str, str]  # noqa: F811
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    resp = await client.post(TEST, headers=admin, json={
        "host": "127.0.0.1", "port": port, "username": "ami", "password": "x",
        "protocol": "AMI", "timeout": 5})
    check_failure(await resp.json(), "AST_004", "AMI unavailable", port)


async def test_ami_test_not_ami_ast_004_and_silent_ast_001(
    client: TestClient, admin: dict[str, str]  # noqa: F811
) -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")  # something else answers on that port
        await writer.drain()
        await reader.read()
        writer.close()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    for handler, code, error in ((http, "AST_004", "AMI unavailable"),
                                 (silent, "AST_001", "Connection timeout")):
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            resp = await client.post(TEST, headers=admin, json={
                "host": "127.0.0.1", "port": port, "username": "ami", "password": "x",
                "protocol": "AMI", "timeout": 1})
            check_failure(await resp.json(), code, error, port)
        finally:
            server.close()
            await server.wait_closed()


@pytest.mark.usefixtures("clean_settings")
async def test_saved_ami_connection_is_encrypted_applied_live_and_tested_with_stored_secret(
    client: TestClient, admin: dict[str, str], fake_ami: FakeAmi  # noqa: F811
) -> None:
    services = client.app[SERVICES]
    assert services.pbx.mode == "none"
    ast = {"host": fake_ami.host, "port": fake_ami.port, "username": "ami",
           "password": "ami-secret", "protocol": "AMI", "timeout": 5, "enabled": True}
    resp = await client.put("/api/admin/settings", headers=admin, json={"asterisk_config": ast})
    assert resp.status == 200
    assert (await resp.json())["asterisk_config"]["password"] == "********"
    async with asyncio.timeout(5):
        await services.pbx.wait_connected()
    assert services.pbx.mode == "ami" and fake_ami.logged_in == 1
    assert services.pbx.config == AmiConfig(fake_ami.host, fake_ami.port, "ami", "ami-secret",
                                            5.0)
    stored = await services.pool.fetchval(
        "SELECT data->'asterisk_config'->>'password_enc' FROM system_settings")
    assert stored and "ami-secret" not in stored
    assert secret_box(services.settings).decrypt(stored) == "ami-secret"
    info = await (await client.get("/api/admin/system/info", headers=admin)).json()
    assert info["asterisk_connected"] is True

    # the connection test takes the stored secret when none is given
    resp = await client.post(TEST, headers=admin, json=body_for(fake_ami, password=None))
    assert (await resp.json())["success"] is True

    # a new secret: the live connection is re-initialised with it (and cannot get in)
    resp = await client.put("/api/admin/settings", headers=admin,
                            json={"asterisk_config": {"password": "wrong"}})
    assert resp.status == 200
    await eventually(lambda: fake_ami.failed_logins >= 1)
    [status] = services.pbx.status()
    await eventually(lambda: services.pbx.status()[0].reason is not None
                     and "authentication failed" in services.pbx.status()[0].reason)
    assert status.name == "ami"

    resp = await client.put("/api/admin/settings", headers=admin,
                            json={"asterisk_config": {"enabled": False}})
    assert resp.status == 200
    assert services.pbx.mode == "none" and not services.pbx.sources
    await eventually(lambda: fake_ami.logged_in == 0)
