"""The AMI client over the fake AMI server on real sockets: login, actions and lists, a refused
login (a clear error, retried with backoff), the ping watchdog, reconnect and resync."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from connectors.ami.client import AmiConfig, AmiConnection, AmiEventStream
from connectors.ami.errors import AmiActionFailed, AmiAuthFailed, AmiTimeout, AmiUnavailable
from connectors.ami.protocol import AmiMessage
from connectors.fakes.ami_server import FakeAmi
from tests.test_fake_ami import NOW, idle_state

FAST = {"backoff_initial": 0.01, "backoff_max": 0.05, "rng": random.Random(7)}


@pytest_asyncio.fixture
async def ami() -> AsyncIterator[FakeAmi]:
    async with FakeAmi(state=idle_state(), clock=lambda: NOW) as fake:
        yield fake


def config(ami: FakeAmi, secret: str = "secret", timeout: float = 5.0) -> AmiConfig:
    return AmiConfig(ami.host, ami.port, "switchboard", secret, timeout)


async def until(check: Callable[[], object]) -> None:
    """Wait for a counter the server or the stream moves (they expose no event for each one;
    pytest-timeout bounds the wait)."""
    while not check():  # noqa: ASYNC110
        await asyncio.sleep(0.005)


async def test_login_ping_list_and_events(ami: FakeAmi) -> None:
    events: list[AmiMessage] = []
    connection = await AmiConnection.open(config(ami), events.append)
    try:
        assert connection.version == "13.0.0"
        pong = await connection.ping()
        assert pong.get("Ping") == "Pong"
        status = await connection.list_action("QueueStatus")
        assert [m.name for m in status.items] == [
            "QueueParams", "QueueMember", "QueueMember", "QueueEntry"]
        assert status.items[-1]["CallerIDName"] == "Иван Петров"
        await ami.emit([("Event", "Newchannel"), ("Uniqueid", "1.1"), ("Channel", "PJSIP/1-1")])
        await until(lambda: any(e.name == "Newchannel" for e in events))
        with pytest.raises(AmiActionFailed, match="Invalid/unknown command"):
            await connection.action("NoSuchAction")
        ids = [a.action_id for a in ami.actions]
        assert len(set(ids)) == len(ids) and None not in ids  # every action has its own id
    finally:
        await connection.close()


async def test_a_character_split_across_reads_arrives_whole(ami: FakeAmi) -> None:
    ami.chunk_size = 1  # every byte its own write: each Cyrillic letter is split
    events: list[AmiMessage] = []
    connection = await AmiConnection.open(config(ami), events.append)
    try:
        await ami.emit([("Event", "NewCallerid"), ("CallerIDName", "Иван Петров")])
        await until(lambda: any(e.name == "NewCallerid" for e in events))
        assert next(e for e in events if e.name == "NewCallerid")["CallerIDName"] == "Иван Петров"
        assert not connection.protocol.errors
    finally:
        await connection.close()


async def test_wrong_password_is_a_clear_error(ami: FakeAmi) -> None:
    with pytest.raises(AmiAuthFailed) as refused:
        await AmiConnection.open(config(ami, secret="wrong"))
    assert refused.value.code == "AST_002"
    assert "switchboard" in refused.value.message
    assert "Authentication failed" in refused.value.message


async def test_wrong_password_is_retried_with_backoff_and_logged(
    ami: FakeAmi, caplog: pytest.LogCaptureFixture
) -> None:
    caps: list[float] = []

    class Jitter(random.Random):
        def uniform(self, a: float, b: float) -> float:
            caps.append(b)  # the backoff cap of this attempt; full jitter draws within it
            return 0.0

    stream = AmiEventStream(config(ami, secret="wrong"), lambda m: None, backoff_initial=0.01,
                            backoff_max=0.04, rng=Jitter())
    stream.start()
    try:
        await until(lambda: stream.stats["auth_failures"] >= 4)
        assert caps[:4] == [0.01, 0.02, 0.04, 0.04]  # doubling up to the cap, not a tight loop
        assert not stream.connected
        assert stream.reason is not None and stream.reason.startswith("authentication failed")
        assert isinstance(stream.last_error, AmiAuthFailed)
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert errors and "switchboard" in errors[0].getMessage()
        ami.secret = "wrong"  # the PBX now takes that secret: the next attempt logs in
        await stream.wait_connected()
        assert stream.reason is None
    finally:
        await stream.stop()


async def test_nothing_listening_and_not_ami(unused_tcp_port: int) -> None:
    with pytest.raises(AmiUnavailable) as refused:
        await AmiConnection.open(AmiConfig("127.0.0.1", unused_tcp_port, "u", "s", 2))
    assert refused.value.code == "AST_004"

    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(AmiUnavailable, match="not an AMI server"):
            await AmiConnection.open(AmiConfig("127.0.0.1", port, "u", "s", 2))
    finally:
        server.close()
        await server.wait_closed()


async def test_silent_server_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accept, say nothing, until the client leaves
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(AmiTimeout) as timed_out:
            await AmiConnection.open(AmiConfig("127.0.0.1", port, "u", "s", 0.2))
        assert timed_out.value.code == "AST_001"
    finally:
        server.close()
        await server.wait_closed()


async def test_unanswered_ping_means_lost_connection_then_reconnect_and_resync(
    ami: FakeAmi,
) -> None:
    logins: list[int] = []

    async def resync(connection: AmiConnection) -> None:
        await connection.list_action("CoreShowChannels")
        logins.append(ami.logins)

    stream = AmiEventStream(config(ami), lambda m: None, resync, ping_interval=0.05,
                            ping_timeout=0.05, **FAST)
    stream.start()
    try:
        await stream.wait_connected()
        await until(lambda: stream.stats["pings"] >= 1)  # the watchdog runs and is answered
        ami.answer_pings = False  # a half-open PBX: the socket stays, nothing answers
        await until(lambda: stream.stats["ping_timeouts"] >= 1)
        ami.answer_pings = True
        await ami.wait_for_logins(2)
        await until(lambda: len(logins) >= 2)
        await stream.wait_connected()
        assert logins[:2] == [1, 2]  # a resync after each login
        assert stream.stats["disconnects"] >= 1
    finally:
        await stream.stop()


async def test_dropped_connection_reconnects_resyncs_and_holds_events_until_resynced(
    ami: FakeAmi,
) -> None:
    seen: list[str] = []
    release = asyncio.Event()

    async def resync(connection: AmiConnection) -> None:
        await connection.list_action("CoreShowChannels")
        seen.append("resync")
        if ami.logins == 2:
            await ami.emit([("Event", "Newstate"), ("Uniqueid", "1.1")])
            await release.wait()  # the event above must wait for the resync to end

    stream = AmiEventStream(config(ami), lambda m: seen.append(m.name), resync, **FAST)
    stream.start()
    try:
        await stream.wait_connected()
        await ami.drop_connections()
        await until(lambda: seen.count("resync") == 2)
        await asyncio.sleep(0)
        assert "Newstate" not in seen
        release.set()
        await until(lambda: "Newstate" in seen)
        second = len(seen) - 1 - seen[::-1].index("resync")
        assert "Newstate" in seen[second:]
        assert stream.connected
    finally:
        await stream.stop()


async def test_bad_input_is_counted_and_the_next_message_still_parsed(ami: FakeAmi) -> None:
    events: list[str] = []
    stream = AmiEventStream(config(ami), lambda m: events.append(m.name), **FAST)
    stream.start()
    try:
        await stream.wait_connected()
        await ami.emit_raw(b"garbage without colon\r\nEvent: Newstate\r\nUniqueid: \xff\r\n\r\n")
        await ami.emit([("Event", "Hangup"), ("Uniqueid", "1.1")])
        await until(lambda: "Hangup" in events)
        assert events[-2:] == ["Newstate", "Hangup"]
        assert stream.connection is not None
        assert stream.connection.protocol.errors == {"line_without_colon": 1, "invalid_utf8": 1}
        await ami.drop_connections()
        await until(lambda: stream.bad_input["line_without_colon"] == 1)
    finally:
        await stream.stop()
