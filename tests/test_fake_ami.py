"""The fake AMI server over real sockets: driven by our sans-I/O protocol on a raw asyncio
stream and by the real panoramisk client library."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from panoramisk import Manager

from connectors.ami.eventlist import EventList, EventListCollector
from connectors.ami.protocol import AmiMessage, AmiProtocol, Kind, send_action
from connectors.fakes.ami_server import FakeAmi, trace_records
from connectors.fakes.ami_state import AmiState, Caller, Member

DATA = Path(__file__).resolve().parent / "data"
TRACE = DATA / "inbound_answered.ami.jsonl"
SHIFT = DATA / "queue_shift.ami.jsonl"
NOW = 1_796_203_700.0


def idle_state() -> AmiState:
    """The idle PBX of the shared snapshots, plus one waiting caller."""
    state = AmiState()
    state.add_queue("support", service_level=20)
    for ext in ("1001", "1002"):
        member = Member("support", f"Agent {ext}", f"Local/{ext}@agents", f"Custom:{ext}")
        member.login_time = 1_795_336_290
        state.members.append(member)
    channel, uniqueid = "Local/+79001234567@pstn-00000001;1", "1796203690.1"
    state.callers.append(
        Caller("support", channel, uniqueid, "+79001234567", "Иван Петров", joined_at=NOW - 7)
    )
    state.channels.append(
        {"Channel": channel, "Uniqueid": uniqueid, "Application": "Queue", "Duration": "00:00:07"}
    )
    return state


@pytest_asyncio.fixture
async def ami() -> AsyncIterator[FakeAmi]:
    async with FakeAmi(state=idle_state(), clock=lambda: NOW) as fake:
        yield fake


def trace_events(path: Path) -> list[dict[str, str]]:
    return [r.parsed for r in trace_records(path) if "Event" in r.parsed]


def keys_of(event: str, path: Path) -> list[str]:
    """Header names, in wire order, of the first ``event`` in a capture."""
    return next(list(e) for e in trace_events(path) if e["Event"] == event)


class RawClient:
    """Our protocol over a bare asyncio stream — the shape the AMI connector will have."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.protocol = AmiProtocol()
        self.lists = EventListCollector()
        self.inbox: list[AmiMessage] = []
        self.eof = False
        self._ids = itertools.count(1)

    @classmethod
    async def connect(cls, ami: FakeAmi) -> RawClient:
        return cls(*await asyncio.open_connection(ami.host, ami.port))

    async def read(self) -> bool:
        """One read into the inbox; False at EOF."""
        data = await self.reader.read(4096)
        if not data:
            self.protocol.receive_eof()
            self.eof = True
            return False
        self.protocol.receive_data(data)
        self.inbox += [m for m in self.protocol.events_received() if not self.lists.feed(m)]
        return True

    async def next(self) -> AmiMessage | None:
        while not self.inbox:
            if not await self.read():
                return None
        return self.inbox.pop(0)

    async def send(self, name: str, **fields: Any) -> str:
        action_id = f"t-{next(self._ids)}"
        self.writer.write(send_action(name, action_id, **fields))
        await self.writer.drain()
        return action_id

    async def response(self, action_id: str) -> AmiMessage:
        """The response to one action; events read meanwhile stay in ``inbox``."""
        while True:
            for m in self.inbox:
                if m.kind is Kind.RESPONSE and m.action_id == action_id:
                    self.inbox.remove(m)
                    return m
            assert await self.read(), "connection closed before the response"

    async def list(self, name: str, **fields: Any) -> EventList:
        action_id = await self.send(name, **fields)
        while not (done := [d for d in self.lists.pop_completed() if d.action_id == action_id]):
            assert await self.read(), "connection closed before the list completed"
        return done[0]

    async def banner(self) -> str:
        while self.protocol.banner is None:
            assert await self.read(), "connection closed before the banner"
        return self.protocol.banner

    async def login(self, secret: str = "secret", events: str = "on") -> AmiMessage:
        await self.banner()
        return await self.response(
            await self.send("Login", Username="switchboard", Secret=secret, Events=events)
        )

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@pytest_asyncio.fixture
async def client(ami: FakeAmi) -> AsyncIterator[RawClient]:
    c = await RawClient.connect(ami)
    yield c
    await c.close()


# -- raw stream + our protocol ---------------------------------------------------------------


async def test_banner_and_login(client: RawClient) -> None:
    response = await client.login()
    assert client.protocol.banner == "Asterisk Call Manager/13.0.0"
    assert response.as_dict() == {
        "Response": "Success",
        "ActionID": "t-1",
        "Message": "Authentication accepted",
    }
    booted = await client.next()
    assert booted is not None and booted.name == "FullyBooted"


async def test_wrong_password_is_refused_and_the_socket_closed(
    ami: FakeAmi, client: RawClient
) -> None:
    response = await client.login(secret="wrong")
    assert response.name == "Error" and response["Message"] == "Authentication failed"
    assert await client.next() is None and client.eof
    assert not client.protocol.errors  # a clean close, not a truncated message
    assert (ami.logged_in, ami.logins, ami.failed_logins) == (0, 0, 1)


async def test_actions_before_login_are_denied(client: RawClient) -> None:
    assert await client.banner() == "Asterisk Call Manager/13.0.0"
    response = await client.response(await client.send("QueueStatus"))
    assert response.name == "Error" and response["Message"] == "Permission denied"


async def test_ping_and_a_pbx_that_stops_answering(ami: FakeAmi, client: RawClient) -> None:
    await client.login()
    pong = await client.response(await client.send("Ping"))
    assert (pong.name, pong["Ping"], pong["Timestamp"]) == ("Success", "Pong", f"{NOW:.6f}")
    ami.answer_pings = False
    unanswered = await client.send("Ping")
    after = await client.list("QueueSummary")  # the server answers in order
    assert after.items and all(m.action_id != unanswered for m in client.inbox)
    assert [a.name for a in ami.actions] == ["Login", "Ping", "Ping", "QueueSummary"]


async def test_queue_status_list_from_the_programmed_state(client: RawClient) -> None:
    await client.login()
    status = await client.list("QueueStatus")
    assert status.response["Message"] == "Queue status will follow"
    assert [m.name for m in status.items] == [
        "QueueParams", "QueueMember", "QueueMember", "QueueEntry",
    ]  # fmt: skip
    assert status.declared_items == 4 and status.complete.name == "QueueStatusComplete"
    params, member, _, entry = status.items
    assert (params["Queue"], params["Calls"], params["ServiceLevel"]) == ("support", "1", "20")
    assert (member["Name"], member["Location"], member["Paused"]) == (
        "Agent 1001", "Local/1001@agents", "0",
    )  # fmt: skip
    assert (entry["CallerIDName"], entry["Wait"], entry["Position"]) == ("Иван Петров", "7", "1")
    summary = await client.list("QueueSummary", Queue="support")
    assert summary.items[0].as_dict() | {"ActionID": ""} == {
        "Event": "QueueSummary", "Queue": "support", "LoggedIn": "2", "Available": "2",
        "Callers": "1", "HoldTime": "0", "TalkTime": "0", "LongestHoldTime": "7", "ActionID": "",
    }  # fmt: skip
    channels = await client.list("CoreShowChannels")
    assert [m["Application"] for m in channels.items] == ["Queue"]


async def test_queue_pause_changes_the_member_and_emits_the_event(
    ami: FakeAmi, client: RawClient
) -> None:
    await client.login()
    assert (await client.next()).name == "FullyBooted"  # type: ignore[union-attr]
    action_id = await client.send(
        "QueuePause", Interface="Local/1001@agents", Queue="support", Paused="true", Reason="обед"
    )
    response = await client.response(action_id)
    assert response["Message"] == "Interface paused successfully"
    event = await client.next()
    assert event is not None and event.name == "QueueMemberPause"
    assert (event["Interface"], event["Paused"], event["PausedReason"]) == (
        "Local/1001@agents", "1", "обед",
    )  # fmt: skip
    assert (event["LastPause"], event["MemberName"]) == (str(int(NOW)), "Agent 1001")
    assert ami.state.members[0].paused and ami.state.members[0].paused_reason == "обед"
    members = [m for m in (await client.list("QueueStatus")).items if m.name == "QueueMember"]
    assert [(m["Paused"], m["PausedReason"]) for m in members] == [("1", "обед"), ("0", "")]
    missing = await client.send("QueuePause", Interface="Local/9999@agents", Paused="true")
    assert (await client.response(missing))["Message"] == "Interface not found"


async def test_queue_add_and_remove_look_like_asterisk(ami: FakeAmi, client: RawClient) -> None:
    await client.login(events="off")
    add = await client.send(
        "QueueAdd", Queue="support", Interface="Local/1003@agents", MemberName="Agent 1003",
        StateInterface="Custom:1003", Penalty=0,
    )  # fmt: skip
    assert (await client.response(add))["Message"] == "Added interface to queue"
    again = await client.send("QueueAdd", Queue="support", Interface="Local/1003@agents")
    assert (await client.response(again))["Message"] == "Unable to add interface: Already there"
    status = await client.list("QueueStatus")
    added = [m for m in status.items if m.get("Location") == "Local/1003@agents"]
    assert [(m["Name"], m["Membership"], m["LoginTime"]) for m in added] == [
        ("Agent 1003", "dynamic", str(int(NOW))),
    ]  # fmt: skip
    remove = await client.send("QueueRemove", Queue="support", Interface="Local/1003@agents")
    assert (await client.response(remove))["Message"] == "Removed interface from queue"
    gone = await client.send("QueueRemove", Queue="support", Interface="Local/1003@agents")
    assert (await client.response(gone))["Message"] == "Unable to remove interface: Not there"
    assert [m.interface for m in ami.state.members] == ["Local/1001@agents", "Local/1002@agents"]


async def test_member_events_and_lists_have_the_captured_shape(
    ami: FakeAmi, client: RawClient
) -> None:
    await client.login()
    for name, fields in [
        ("QueuePause", {"Interface": "Local/1001@agents", "Paused": "true", "Reason": "break"}),
        ("QueueAdd", {"Queue": "support", "Interface": "Local/1003@agents"}),
        ("QueueRemove", {"Queue": "support", "Interface": "Local/1003@agents"}),
    ]:
        await client.response(await client.send(name, **fields))
    events = {m.name: [k for k, _ in m.headers] for m in client.inbox}
    for name in ("QueueMemberPause", "QueueMemberAdded", "QueueMemberRemoved"):
        assert events[name] == keys_of(name, SHIFT)
    status = await client.list("QueueStatus")
    snapshot = DATA / "snapshots" / "idle.QueueStatus.ami.jsonl"
    for item in status.items[:2]:  # QueueParams, QueueMember
        assert [k for k, _ in item.headers] == keys_of(item.name, snapshot)


@pytest.mark.parametrize("chunk_size", [None, 3], ids=["whole", "3-byte-writes"])
async def test_replayed_trace_arrives_intact(
    ami: FakeAmi, client: RawClient, chunk_size: int | None
) -> None:
    await client.login()
    ami.chunk_size = chunk_size  # 3-byte writes cut Cyrillic characters in two
    sent = await ami.replay(TRACE)
    expected = [{"Event": "FullyBooted"}, *trace_events(TRACE)]
    received = [await client.next() for _ in range(len(expected))]
    assert sent == len(expected) - 1
    assert [m.as_dict() if m else None for m in received][1:] == expected[1:]
    assert "Иван Петров" in {m.get("CallerIDName") for m in received if m}
    assert not client.protocol.errors


async def test_emit_reaches_logged_in_listeners_only(ami: FakeAmi, client: RawClient) -> None:
    quiet = await RawClient.connect(ami)
    try:
        await client.login()
        await quiet.login(events="off")
        assert ami.logged_in == 2
        assert await ami.emit({"Event": "QueueCallerJoin", "CallerIDName": "Анна"}) == 1
        assert [(await client.next()).name for _ in range(2)] == [  # type: ignore[union-attr]
            "FullyBooted", "QueueCallerJoin",
        ]  # fmt: skip
        ping = await quiet.response(await quiet.send("Ping"))
        assert ping["Ping"] == "Pong" and quiet.inbox == []  # no FullyBooted, no event
    finally:
        await quiet.close()


async def test_logoff_and_dropped_connections(ami: FakeAmi, client: RawClient) -> None:
    other = await RawClient.connect(ami)
    try:
        await client.login()
        await other.login()
        goodbye = await client.response(await client.send("Logoff"))
        assert goodbye.name == "Goodbye"
        while await client.read():
            pass
        await ami.drop_connections()
        while await other.read():
            pass
        assert client.eof and other.eof and ami.logged_in == 0
    finally:
        await other.close()


# -- the real panoramisk client ----------------------------------------------------------------


class OneShotManager(Manager):  # type: ignore[misc]
    """panoramisk reconnects forever by itself; a test wants to see the loss instead."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


async def panoramisk_login(
    ami: FakeAmi, secret: str = "secret", on_event: Any = None
) -> tuple[OneShotManager, Any]:
    manager = OneShotManager(
        loop=asyncio.get_running_loop(), host=ami.host, port=ami.port, username="switchboard",
        secret=secret, ping_delay=3600, reconnect_timeout=3600,
    )  # fmt: skip
    if on_event is not None:
        manager.register_event("*", on_event)
    await manager.connect()
    return manager, await manager.authenticated_future


async def test_panoramisk_logs_in_pings_and_lists(ami: FakeAmi) -> None:
    manager, response = await panoramisk_login(ami)
    try:
        assert response.success and manager.protocol.version == "13.0.0"
        pong = await manager.send_action({"Action": "Ping"})
        assert pong.ping == "Pong"
        listed = await manager.send_action({"Action": "QueueStatus"})
        assert [m.event or m.response for m in listed] == [
            "Success", "QueueParams", "QueueMember", "QueueMember", "QueueEntry",
            "QueueStatusComplete",
        ]  # fmt: skip
        assert listed[4].calleridname == "Иван Петров"
    finally:
        manager.close()


async def test_panoramisk_reconnects_after_a_dropped_connection(ami: FakeAmi) -> None:
    manager = Manager(
        loop=asyncio.get_running_loop(), host=ami.host, port=ami.port, username="switchboard",
        secret="secret", ping_delay=3600, reconnect_timeout=0,
    )  # fmt: skip
    try:
        await manager.connect()
        await ami.wait_for_logins(1)
        await ami.drop_connections()
        await ami.wait_for_logins(2)  # panoramisk connected and logged in again by itself
        assert ami.logged_in == 1 and [a.name for a in ami.actions] == ["Login", "Login"]
    finally:
        manager.close()


async def test_panoramisk_wrong_password(ami: FakeAmi) -> None:
    manager, response = await panoramisk_login(ami, secret="wrong")
    try:
        assert not response.success and response.message == "Authentication failed"
        await manager.lost  # the server hung up, as Asterisk does
        assert not manager.authenticated
    finally:
        manager.close()


async def test_panoramisk_receives_replayed_trace_intact(ami: FakeAmi) -> None:
    expected = [{"Event": "FullyBooted"}, *trace_events(TRACE)]
    received: list[Any] = []
    all_in = asyncio.Event()

    def collect(_: Manager, message: Any) -> None:
        received.append(message)
        if len(received) == len(expected):
            all_in.set()

    manager, response = await panoramisk_login(ami, on_event=collect)
    try:
        assert response.success
        await ami.replay(TRACE)
        await asyncio.wait_for(all_in.wait(), 30)
        # panoramisk drops an empty last header and adds "content": compare non-empty values
        got = [{k: v for k, v in m.items() if v} for m in received[1:]]
        assert received[0].event == "FullyBooted"
        assert got == [{k: v for k, v in e.items() if v} for e in expected[1:]]
        assert "Иван Петров" in {m.get("CallerIDName") for m in received}
    finally:
        manager.close()
