"""The PBX connection as a whole: which sources start, what they say about themselves."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api import cli
from api.app import create_app, lifespan
from api.config import Settings
from api.state import SERVICES
from connectors.ari.client import AriConfig, AriEventStream
from connectors.clean import LIMITS
from connectors.fakes.ari_server import FakeAsterisk, channel, event
from service.pbx import PbxConnection, PbxSettings, SourceNotBuilt
from tests.helpers import login


@pytest.mark.parametrize(("key", "value"), [("mango_api_key", "k")])
async def test_a_source_not_built_yet_stops_start_up(app_settings: Settings, key: str,
                                                     value: str) -> None:
    """Was: SWITCHBOARD_AMI_HOST turned the simulator off and connected nothing, silently (AMI
    is built now: tests/test_ami_source.py)."""
    settings = app_settings.replace(simulator="auto", **{key: value})
    with pytest.raises(SourceNotBuilt, match=f"SWITCHBOARD_{key.upper()} is set"):
        async with lifespan(settings):
            pytest.fail("started without the configured source")
    with pytest.raises(SourceNotBuilt):
        PbxConnection(PbxSettings(**{key: value}), lambda event: None)


def test_serve_with_ami_host_but_no_credentials_exits_2_naming_the_keys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    empty = tmp_path / "config.yaml"
    empty.write_text("", encoding="utf-8")
    monkeypatch.setenv("SWITCHBOARD_CONFIG", str(empty))
    monkeypatch.setenv("SWITCHBOARD_AMI_HOST", "pbx.example")
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "SWITCHBOARD_AMI_HOST" in err and "Traceback" not in err
    assert "SWITCHBOARD_AMI_USERNAME" in err and "SWITCHBOARD_AMI_SECRET" in err


async def test_application_replaced_shows_in_status_and_system_info(
    app_settings: Settings,
) -> None:
    """Another client takes our ARI app: the source says it is deaf and why (status for /ready,
    system info), instead of reporting connected while hearing nothing."""
    async with FakeAsterisk(username="ari", password="pw", app="replaced-app") as fake:
        settings = app_settings.replace(ari_url=fake.url, ari_username="ari",
                                       ari_password="pw", ari_app="replaced-app")
        client = TestClient(TestServer(create_app(settings)))
        await client.start_server()
        try:
            pbx = client.app[SERVICES].pbx
            await asyncio.wait_for(pbx.wait_connected(), 5)
            resync = [r.path for r in fake.requests if r.method == "GET"]
            assert {"/ari/channels", "/ari/endpoints", "/ari/deviceStates"} <= set(resync)
            [status] = pbx.status()
            assert (status.name, status.connected, status.reason) == ("ari", True, None)
            headers = {"Authorization": f"Bearer {await login(client)}"}
            info = await (await client.get("/api/admin/system/info", headers=headers)).json()
            assert info["asterisk_connected"] is True

            intruder = AriEventStream(AriConfig(fake.url, "ari", "pw", "replaced-app"),
                                      lambda frame: None)
            intruder.start()
            try:
                await asyncio.wait_for(intruder.wait_connected(), 5)
                deadline = time.monotonic() + 5
                while pbx.status()[0].connected:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.02)
                [status] = pbx.status()
                assert status.reason is not None and "ApplicationReplaced" in status.reason
                assert not pbx.connected
                info = await (await client.get("/api/admin/system/info",
                                               headers=headers)).json()
                assert info["asterisk_connected"] is False
            finally:
                await intruder.stop()
        finally:
            await client.close()


async def test_a_nul_in_a_caller_name_among_1000_calls_gives_1000_rows(
    pbx_client: TestClient, fake_asterisk: FakeAsterisk
) -> None:
    """Caller ID is whatever the far end sends. PostgreSQL refuses NUL in text: one such name
    used to block the record writer for every call after it. Cleaned at the normalizer."""
    services = pbx_client.app[SERVICES]
    source = services.pbx.sources[0]
    key = uuid.uuid4().hex[:8]
    for i in range(1000):
        name = "Bad\u0000Name\u0007" if i == 500 else "Иван Петров"
        number = "+7" + "9" * 5000 if i == 501 else f"+7900{i:07d}"
        ch = channel(f"{key}.{i}", f"PJSIP/trunk-{key}{i:04x}", "Ring",
                     caller_number=number, caller_name=name, exten="200", context="from-trunk")
        await fake_asterisk.emit(event("ChannelCreated", channel=ch))
        await fake_asterisk.emit(event("ChannelDestroyed", cause=16, cause_txt="Normal Clearing",
                                       channel=ch))

    async def rows() -> int:
        return await services.pool.fetchval(
            "SELECT count(*) FROM calls WHERE channel_id LIKE $1", f"{key}.%")

    deadline = time.monotonic() + 120
    while await rows() < 1000:
        assert time.monotonic() < deadline, f"{await rows()} of 1000 rows"
        await asyncio.sleep(0.1)
    bad = await services.pool.fetchrow(
        "SELECT caller_name, status FROM calls WHERE channel_id = $1", f"{key}.500")
    assert dict(bad) == {"caller_name": "BadName", "status": "missed"}
    long = await services.pool.fetchval(
        "SELECT caller_number FROM calls WHERE channel_id = $1", f"{key}.501")
    assert long == ("+7" + "9" * 5000)[:LIMITS["number"]]
    assert source.normalizer.stats["cleaned:name"] >= 1
    assert source.normalizer.stats["cleaned:number"] >= 1
