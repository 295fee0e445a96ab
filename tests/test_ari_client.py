"""AriClient and AriEventStream against the FakeAsterisk, over a real socket."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from connectors.ari.client import AriClient, AriConfig, AriEventStream
from connectors.ari.errors import (
    AriAuthFailed,
    AriBadRequest,
    AriError,
    AriFailed,
    AriTimeout,
    AriUnavailable,
    ChannelConflict,
    ChannelNotFound,
)
from connectors.fakes.ari_server import FakeAsterisk, channel, event

APP = "switchboard-test"


@pytest.fixture
async def fake() -> AsyncIterator[FakeAsterisk]:
    async with FakeAsterisk(username="ari", password="pw", app=APP) as server:
        yield server


@pytest.fixture
def config(fake: FakeAsterisk) -> AriConfig:
    return AriConfig(url=fake.url, username="ari", password="pw", app=APP, timeout=2.0)


@pytest.fixture
async def client(config: AriConfig) -> AsyncIterator[AriClient]:
    async with AriClient(config) as c:
        yield c


async def until(cond: Callable[[], bool], within: float = 3.0) -> None:
    """Poll ``cond`` until true; fail the test after ``within`` seconds."""
    async with asyncio.timeout(within):
        while not cond():  # noqa: ASYNC110 - polls plain attributes (counters, lists)
            await asyncio.sleep(0.005)


def stream_for(config: AriConfig, frames: list[dict[str, Any]], **kw: Any) -> AriEventStream:
    kw.setdefault("backoff_initial", 0.01)
    kw.setdefault("backoff_max", 0.05)
    return AriEventStream(config, frames.append, rng=random.Random(1), **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- REST -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/", "/ari", "/ari/"])
async def test_info_and_ping_accept_url_with_or_without_ari(
    fake: FakeAsterisk, suffix: str
) -> None:
    cfg = AriConfig(url=fake.url + suffix, username="ari", password="pw", app=APP)
    async with AriClient(cfg) as c:
        info = await c.asterisk_info()
        pong = await c.ping()
    assert info["system"] == {"version": "20.5.0", "entity_id": fake.asterisk_id}
    assert pong["ping"] == "pong" and pong["asterisk_id"] == fake.asterisk_id
    assert fake.requests[0].path == "/ari/asterisk/info"


async def test_version_is_configurable() -> None:
    async with FakeAsterisk(version="18.9.0") as server:
        cfg = AriConfig(url=server.url, username="asterisk", password="secret", app="x")
        async with AriClient(cfg) as c:
            assert (await c.asterisk_info())["system"]["version"] == "18.9.0"


async def test_channels_answer_hangup(fake: FakeAsterisk, client: AriClient) -> None:
    ch = channel("1.1", "PJSIP/1001-00000001", "Ring", caller_number="1001")
    fake.set_channel(ch)
    assert [c["id"] for c in await client.channels()] == ["1.1"]
    assert (await client.channel("1.1"))["name"] == "PJSIP/1001-00000001"

    assert await client.answer("1.1") is None
    assert fake.channels["1.1"]["state"] == "Up"
    assert fake.sent[-1]["type"] == "ChannelStateChange"

    assert await client.hangup("1.1", reason="busy") is None
    assert [e["type"] for e in fake.sent[-2:]] == ["ChannelHangupRequest", "ChannelDestroyed"]
    assert fake.sent[-1]["cause"] == 17
    assert fake.requests[-1].query == {"reason": "busy"}
    assert await client.channels() == []


async def test_originate(fake: FakeAsterisk, client: AriClient) -> None:
    ch = await client.originate(
        "PJSIP/1001", extension="79001234567", context="internal", caller_id='"Op" <1001>'
    )
    assert ch["state"] == "Down" and ch["name"].startswith("PJSIP/1001-")
    assert ch["caller"] == {"name": "Op", "number": "1001"}
    # like Asterisk: created at the phone's own extension, then dialled with no caller
    assert [f["type"] for f in fake.sent[-2:]] == ["ChannelCreated", "Dial"]
    assert fake.sent[-2]["channel"]["dialplan"]["exten"] == "1001"
    assert "caller" not in fake.sent[-1] and fake.sent[-1]["peer"]["id"] == ch["id"]
    req = fake.requests[-1]
    assert (req.method, req.path) == ("POST", "/ari/channels")
    assert req.query == {
        "endpoint": "PJSIP/1001",
        "extension": "79001234567",
        "context": "internal",
        "priority": "1",
        "callerId": '"Op" <1001>',
        "timeout": "30",
    }
    stasis = await client.originate("PJSIP/1002", app=APP, app_args="a,b", channel_id="my-id")
    assert stasis["id"] == "my-id"
    assert fake.requests[-1].query["appArgs"] == "a,b"
    with pytest.raises(ChannelConflict) as dup:
        await client.originate("PJSIP/1002", app=APP, channel_id="my-id")
    assert dup.value.code == "AST_006"
    with pytest.raises(AriBadRequest) as bad:
        await client.originate("", extension="1")
    assert bad.value.code == "AST_007"  # its own code since issue 7 (was AST_003)


async def test_not_found_and_conflict(fake: FakeAsterisk, client: AriClient) -> None:
    for call in (client.channel("nope"), client.answer("nope"), client.hangup("nope")):
        with pytest.raises(ChannelNotFound) as err:
            await call
        assert err.value.code == "AST_005" and err.value.message == "Channel not found"
    fake.set_channel(channel("2.1", "Local/1001@agents-00000001;1", "Ringing"), in_stasis=False)
    with pytest.raises(ChannelConflict, match="Channel not in Stasis application"):
        await client.answer("2.1")
    with pytest.raises(AriBadRequest):
        await client.hangup("2.1", reason="because")


async def test_bad_credentials(fake: FakeAsterisk, config: AriConfig) -> None:
    bad = AriConfig(url=fake.url, username="ari", password="wrong", app=APP)
    async with AriClient(bad) as c:
        with pytest.raises(AriAuthFailed) as err:
            await c.ping()
    assert err.value.code == "AST_002" and err.value.message == "Authentication required"
    fake.reject_auth = True
    async with AriClient(config) as c:
        with pytest.raises(AriAuthFailed):
            await c.channels()


async def test_401_shape_trailing_slash_and_missing_app(fake: FakeAsterisk) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(fake.url + "/ari/channels") as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Basic")
            assert await resp.json() == {"message": "Authentication required"}
        auth = {"api_key": "ari:pw"}
        async with s.get(fake.url + "/ari/channels/", params=auth) as resp:
            assert resp.status == 404
        async with s.get(fake.url + "/ari/events", params=auth) as resp:
            assert resp.status == 400


async def test_nothing_listening_is_unavailable() -> None:
    cfg = AriConfig(url=f"http://127.0.0.1:{free_port()}", username="a", password="b", app=APP)
    async with AriClient(cfg) as c:
        with pytest.raises(AriUnavailable) as err:
            await c.ping()
    assert err.value.code == "AST_004"


async def test_slow_answer_is_timeout(fake: FakeAsterisk) -> None:
    fake.script_response("GET", "/asterisk/ping", 200, {"ping": "pong"}, delay=2.0)
    cfg = AriConfig(url=fake.url, username="ari", password="pw", app=APP, timeout=0.1)
    async with AriClient(cfg) as c:
        with pytest.raises(AriTimeout) as err:
            await c.ping()
        assert err.value.code == "AST_001"
        assert (await c.ping())["ping"] == "pong"  # the script was used up


async def test_scripted_5xx_is_unavailable(fake: FakeAsterisk, client: AriClient) -> None:
    fake.script_response("GET", "/ari/channels", 503, {"message": "Asterisk is booting"})
    with pytest.raises(AriUnavailable, match="booting"):
        await client.channels()
    fake.script_response("GET", "/ari/channels", 200, "not json")
    with pytest.raises(AriError):
        await client.channels()


# -- events stream ----------------------------------------------------------------------------


async def test_stream_delivers_events_in_order(fake: FakeAsterisk, config: AriConfig) -> None:
    frames: list[dict[str, Any]] = []
    stream = stream_for(config, frames)
    stream.start()
    try:
        await asyncio.wait_for(stream.wait_connected(), 3)
        assert stream.connected
        for i in range(50):
            await fake.emit(event("ChannelCreated", channel=channel(f"9.{i}", f"PJSIP/1-{i:08x}")))
        await until(lambda: len(frames) == 50)
        assert [f["channel"]["id"] for f in frames] == [f"9.{i}" for i in range(50)]
        assert frames[0]["application"] == APP and "asterisk_id" in frames[0]
        query = next(r.query for r in fake.requests if r.path == "/ari/events")
        assert query == {"app": APP, "subscribeAll": "true"}
    finally:
        await stream.stop()
    assert not stream.connected


async def test_resync_runs_first_and_frames_meanwhile_are_kept(
    fake: FakeAsterisk, config: AriConfig
) -> None:
    log: list[str] = []

    async def on_connect(c: AriClient) -> None:
        log.append(f"resync:{len(await c.channels())}")
        await fake.wait_for_client()
        for i in range(3):  # these reach the socket while the resync is still running
            await fake.emit(event("ChannelStateChange", channel=channel(f"r{i}", "PJSIP/1-1")))
        await asyncio.sleep(0.05)
        log.append("resync-done")

    fake.set_channel(channel("5.1", "PJSIP/1001-00000001", "Up"))
    stream = AriEventStream(
        config, lambda f: log.append(f["channel"]["id"]), on_connect, backoff_initial=0.01
    )
    stream.start()
    try:
        await until(lambda: len(log) == 5)
        assert log == ["resync:1", "resync-done", "r0", "r1", "r2"]
        assert stream.stats["buffered"] == 3

        await fake.drop_connections()  # every reconnect resyncs again, before new frames
        await until(lambda: len(log) == 10)
        assert log[5:] == ["resync:1", "resync-done", "r0", "r1", "r2"]
        assert stream.stats["reconnects"] == 1
    finally:
        await stream.stop()


@pytest.mark.parametrize("abrupt", [False, True])
async def test_reconnects_after_drop(fake: FakeAsterisk, config: AriConfig, abrupt: bool) -> None:
    frames: list[dict[str, Any]] = []
    stream = stream_for(config, frames)
    stream.start()
    try:
        for n in range(1, 4):
            await asyncio.wait_for(stream.wait_connected(), 3)
            await fake.wait_for_client()
            await fake.emit(event("ChannelCreated", channel=channel(f"c{n}", "PJSIP/1-1")))
            await until(lambda n=n: len(frames) == n)
            await fake.drop_connections(abrupt=abrupt)
            await until(lambda n=n: stream.stats["connects"] == n + 1)
        assert stream.stats["reconnects"] == 3
        assert [f["channel"]["id"] for f in frames] == ["c1", "c2", "c3"]
    finally:
        await stream.stop()


async def test_retries_with_backoff_until_auth_accepted(
    fake: FakeAsterisk, config: AriConfig
) -> None:
    fake.reject_auth = True
    stream = stream_for(config, [])
    stream.start()
    try:
        await until(lambda: stream.stats["auth_failures"] >= 3)
        assert not stream.connected
        fake.reject_auth = False
        await asyncio.wait_for(stream.wait_connected(), 3)
        assert stream.stats["connects"] == 1
    finally:
        await stream.stop()


async def test_backoff_grows_with_failures(config: AriConfig) -> None:
    # Nothing listens: each failed attempt waits uniform(0, min(max, initial * 2**n)).
    cfg = AriConfig(url=f"http://127.0.0.1:{free_port()}", username="a", password="b", app=APP)
    stream = AriEventStream(cfg, lambda f: None, backoff_initial=0.01, backoff_max=0.04)
    stream.start()
    try:
        await asyncio.sleep(0.3)
        # Without backoff this would be thousands; with a 40 ms cap it is a handful.
        assert 3 <= stream.stats["connect_failures"] <= 60
    finally:
        await stream.stop()


async def test_malformed_frames_are_counted_and_stream_survives(
    fake: FakeAsterisk, config: AriConfig
) -> None:
    frames: list[dict[str, Any]] = []
    stream = stream_for(config, frames)
    stream.start()
    try:
        await asyncio.wait_for(stream.wait_connected(), 3)
        for raw in ["not json", "{", "[1,2]", '"text"', '{"no":"type"}', '{"type":5}']:
            await fake.send_raw(raw)
        await fake.emit(event("ChannelCreated", channel=channel("ok", "PJSIP/1-1")))
        await until(lambda: len(frames) == 1)
        assert frames[0]["channel"]["id"] == "ok"
        s = stream.stats
        assert (s["malformed_json"], s["not_object"], s["missing_type"]) == (2, 2, 2)
        assert s["frames"] == 1 and stream.connected
    finally:
        await stream.stop()


async def test_failing_on_frame_is_counted_and_stream_goes_on(
    fake: FakeAsterisk, config: AriConfig
) -> None:
    seen: list[str] = []

    async def on_frame(frame: dict[str, Any]) -> None:
        seen.append(frame["channel"]["id"])
        if frame["channel"]["id"] == "boom":
            raise ValueError("handler bug")

    stream = AriEventStream(config, on_frame, backoff_initial=0.01)
    stream.start()
    try:
        await asyncio.wait_for(stream.wait_connected(), 3)
        for cid in ("a", "boom", "b"):
            await fake.emit(event("ChannelCreated", channel=channel(cid, "PJSIP/1-1")))
        await until(lambda: len(seen) == 3)
        assert seen == ["a", "boom", "b"]
        assert stream.stats["handler_errors"] == 1 and stream.stats["reconnects"] == 0
    finally:
        await stream.stop()


async def test_second_socket_for_same_app_replaces_first(
    fake: FakeAsterisk, config: AriConfig
) -> None:
    """ApplicationReplaced: the first stream says it is deaf and why, logs it, and takes the app
    back after its own backoff (the newer client is then replaced in turn)."""
    first: list[dict[str, Any]] = []
    one = stream_for(config, first, replaced_backoff=0.3)
    two = stream_for(config, [], replaced_backoff=60.0)
    one.start()
    try:
        await asyncio.wait_for(one.wait_connected(), 3)
        assert one.reason is None
        two.start()
        await asyncio.wait_for(two.wait_connected(), 3)
        await until(lambda: one.stats["replaced"] == 1)
        assert not one.connected
        assert one.reason is not None and "ApplicationReplaced" in one.reason
        assert APP in one.reason
        assert not any(f["type"] == "ApplicationReplaced" for f in first)  # not an engine event
        await until(lambda: two.stats["replaced"] == 1)  # one took the app back
        await asyncio.wait_for(one.wait_connected(), 3)
        assert one.reason is None and not two.connected
    finally:
        await one.stop()
        await two.stop()


async def test_asterisk_error_text_is_kept(fake: FakeAsterisk, client: AriClient) -> None:
    fake.script_response("POST", "/ari/channels", 500, {"error": "Allocation failed"})
    with pytest.raises(AriFailed, match=r"^Allocation failed$") as raised:
        await client.originate("PJSIP/nowhere", extension="100")
    assert raised.value.code == "AST_008"
