"""A fake Asterisk Manager Interface (AMI) server: the real wire format over a real TCP socket.

It sends the banner, answers ``Login`` (a wrong secret gets ``Authentication failed`` and the
socket closed, as Asterisk does), ``Ping``, ``Logoff``, the list actions ``QueueStatus``,
``QueueSummary`` and ``CoreShowChannels`` from a programmable ``AmiState``, and ``QueuePause``
(changes the member, emits ``QueueMemberPause``). Tests and the simulator push events with
``emit()`` or ``replay()`` a captured trace; faults: ``drop_connections()``,
``answer_pings = False`` (a half-open PBX), ``chunk_size`` (tiny writes that split characters).
Message shapes and header order follow the captured traffic in ``shared/traces``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import orjson

from connectors.ami.protocol import AmiMessage, AmiProtocol, Kind, encode_message

Fields = Mapping[str, object] | Iterable[tuple[str, object]]


class TraceRecord(NamedTuple):
    raw: bytes  # the message exactly as Asterisk sent it
    parsed: dict[str, Any]  # the capture's own parse (``{"__greeting__": ...}`` for the banner)


def trace_records(path: str | Path) -> Iterator[TraceRecord]:
    """The records of a ``*.ami.jsonl`` capture, in file order."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                record = orjson.loads(line)
                yield TraceRecord(record["raw"].encode("utf-8"), record["parsed"])


# -- programmable PBX state -------------------------------------------------------------------


@dataclass
class Queue:
    name: str
    strategy: str = "ringall"
    max: int = 0
    service_level: int = 20
    weight: int = 0
    holdtime: int = 0
    talktime: int = 0
    completed: int = 0
    abandoned: int = 0


@dataclass
class Member:
    queue: str
    name: str  # MemberName in events, Name in QueueStatus
    interface: str  # Interface in events, Location in QueueStatus
    state_interface: str = ""
    membership: str = "static"
    penalty: int = 0
    calls_taken: int = 0
    last_call: int = 0
    last_pause: int = 0
    login_time: int = 0
    in_call: int = 0
    status: int = 1  # 1 NOT_INUSE; see AMI.md for the others
    paused: bool = False
    paused_reason: str = ""
    wrapuptime: int = 0

    def fields(self, *, status_list: bool = False) -> list[tuple[str, object]]:
        name_key, interface_key = (
            ("Name", "Location") if status_list else ("MemberName", "Interface")
        )
        return [
            ("Queue", self.queue), (name_key, self.name), (interface_key, self.interface),
            ("StateInterface", self.state_interface or self.interface),
            ("Membership", self.membership), ("Penalty", self.penalty),
            ("CallsTaken", self.calls_taken), ("LastCall", self.last_call),
            ("LastPause", self.last_pause), ("LoginTime", self.login_time),
            ("InCall", self.in_call), ("Status", self.status), ("Paused", int(self.paused)),
            ("PausedReason", self.paused_reason), ("Wrapuptime", self.wrapuptime),
        ]  # fmt: skip


@dataclass
class Caller:
    queue: str
    channel: str
    uniqueid: str
    caller_id_num: str = ""
    caller_id_name: str = ""
    joined_at: float = 0.0


@dataclass
class AmiState:
    """What the list actions report. Edit it directly; ``emit`` the matching events yourself."""

    queues: dict[str, Queue] = field(default_factory=dict)
    members: list[Member] = field(default_factory=list)
    callers: list[Caller] = field(default_factory=list)  # in queue order
    channels: list[dict[str, str]] = field(default_factory=list)  # CoreShowChannel fields

    def add_queue(self, name: str, **settings: Any) -> Queue:
        self.queues[name] = Queue(name, **settings)
        return self.queues[name]


# -- the server -------------------------------------------------------------------------------


@dataclass(eq=False)
class _Session:
    writer: asyncio.StreamWriter
    protocol: AmiProtocol = field(default_factory=lambda: AmiProtocol(expect_banner=False))
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    logged_in: bool = False
    events: bool = True
    closing: bool = False


class FakeAmi:
    """``async with FakeAmi() as ami:`` listens on ``ami.host``/``ami.port`` (port 0: any)."""

    def __init__(
        self,
        *,
        username: str = "switchboard",
        secret: str = "secret",
        version: str = "13.0.0",
        state: AmiState | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.username, self.secret, self.version = username, secret, version
        self.state = state or AmiState()
        self.clock = clock
        self.answer_pings = True
        self.chunk_size: int | None = None
        self.actions: list[AmiMessage] = []  # every action received, for assertions
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> FakeAmi:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeAmi:
        return await self.start()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def logged_in(self) -> int:
        """How many connections are logged in now."""
        return sum(1 for s in self._sessions if s.logged_in and not s.closing)

    async def emit(self, fields: Fields) -> int:
        """Send one event to every logged-in connection with events on; returns how many."""
        return await self.emit_raw(encode_message(fields))

    async def emit_raw(self, data: bytes) -> int:
        """Send bytes as they are (garbage included) to every listening connection."""
        listeners = [s for s in self._sessions if s.logged_in and s.events and not s.closing]
        for session in listeners:
            await self._send(session, data)
        return len(listeners)

    async def replay(self, path: str | Path) -> int:
        """Send every event of a ``*.ami.jsonl`` capture, byte for byte, in order."""
        sent = 0
        for record in trace_records(path):
            if "Event" in record.parsed:
                await self.emit_raw(record.raw)
                sent += 1
        return sent

    async def drop_connections(self) -> None:
        """Cut every connection abruptly, as a crashed or rebooted PBX would."""
        for session in list(self._sessions):
            session.closing = True
            session.writer.transport.abort()

    # -- connection handling ----------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        session = _Session(writer)
        self._sessions.add(session)
        try:
            await self._send(session, f"Asterisk Call Manager/{self.version}\r\n".encode())
            while not session.closing and (data := await reader.read(65536)):
                session.protocol.receive_data(data)
                for message in session.protocol.events_received():
                    if message.kind is Kind.ACTION and not session.closing:
                        self.actions.append(message)
                        await self._handle(session, message)
        except ConnectionError:
            pass  # the client went away; nothing to answer
        finally:
            self._sessions.discard(session)
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _send(self, session: _Session, data: bytes) -> None:
        step = self.chunk_size or len(data) or 1
        async with session.send_lock:
            try:
                for start in range(0, len(data), step):
                    session.writer.write(data[start : start + step])
                    await session.writer.drain()
            except ConnectionError:
                session.closing = True

    async def _respond(
        self, session: _Session, action: AmiMessage, status: str, *rest: Any
    ) -> None:
        head: list[tuple[str, object]] = [("Response", status)]
        if action.action_id is not None:
            head.append(("ActionID", action.action_id))
        await self._send(session, encode_message([*head, *rest]))

    async def _handle(self, session: _Session, action: AmiMessage) -> None:
        name = action.name.lower()
        if name == "login":
            await self._login(session, action)
        elif name == "logoff":
            await self._respond(session, action, "Goodbye", ("Message", "Thanks for all the fish."))
            session.closing = True
        elif not session.logged_in:
            await self._respond(session, action, "Error", ("Message", "Permission denied"))
        elif name == "ping":
            if self.answer_pings:
                await self._respond(
                    session,
                    action,
                    "Success",
                    ("Ping", "Pong"),
                    ("Timestamp", f"{self.clock():.6f}"),
                )
        elif name in _LISTS:
            message, complete, items = _LISTS[name](self, action)
            await self._send_list(session, action, message, complete, items)
        elif name == "queuepause":
            await self._queue_pause(session, action)
        else:
            await self._respond(session, action, "Error", ("Message", "Invalid/unknown command"))

    async def _login(self, session: _Session, action: AmiMessage) -> None:
        if action.get("Username") != self.username or action.get("Secret") != self.secret:
            await self._respond(session, action, "Error", ("Message", "Authentication failed"))
            session.closing = True  # Asterisk hangs up on a failed login
            return
        session.logged_in = True
        session.events = (action.get("Events") or "on").lower() != "off"
        await self._respond(session, action, "Success", ("Message", "Authentication accepted"))
        if session.events:
            await self._send(session, encode_message([
                ("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", 21),
                ("LastReload", 21), ("Status", "Fully Booted"),
            ]))  # fmt: skip

    async def _send_list(
        self,
        session: _Session,
        action: AmiMessage,
        message: str,
        complete: str,
        items: list[list[tuple[str, object]]],
    ) -> None:
        action_id = [("ActionID", action.action_id)] if action.action_id is not None else []
        await self._respond(
            session, action, "Success", ("EventList", "start"), ("Message", message)
        )
        for item in items:
            await self._send(session, encode_message([*item, *action_id]))
        await self._send(session, encode_message([
            ("Event", complete), *action_id, ("EventList", "Complete"), ("ListItems", len(items)),
        ]))  # fmt: skip

    async def _queue_pause(self, session: _Session, action: AmiMessage) -> None:
        paused = (action.get("Paused") or "").lower() in ("true", "yes", "1", "on")
        interface, queue = action.get("Interface"), action.get("Queue")
        members = [
            m for m in self.state.members
            if m.interface == interface and (not queue or m.queue == queue)
        ]  # fmt: skip
        if not members:
            await self._respond(session, action, "Error", ("Message", "Interface not found"))
            return
        for member in members:
            member.paused = paused
            member.paused_reason = (action.get("Reason") or "") if paused else ""
            member.last_pause = int(self.clock()) if paused else member.last_pause
        verb = "paused" if paused else "unpaused"
        await self._respond(
            session, action, "Success", ("Message", f"Interface {verb} successfully")
        )
        for member in members:
            await self.emit([("Event", "QueueMemberPause"), ("Privilege", "agent,all"),
                             *member.fields(), ("Ringinuse", 0)])  # fmt: skip


# -- list actions: (opening message, closing event, items) from the state ----------------------

ListItems = list[list[tuple[str, object]]]


def _queue_status(ami: FakeAmi, action: AmiMessage) -> tuple[str, str, ListItems]:
    wanted, now, state = action.get("Queue"), ami.clock(), ami.state
    items: ListItems = []
    for q in state.queues.values():
        if wanted and q.name != wanted:
            continue
        callers = [c for c in state.callers if c.queue == q.name]
        items.append([
            ("Event", "QueueParams"), ("Queue", q.name), ("Max", q.max),
            ("Strategy", q.strategy), ("Calls", len(callers)), ("Holdtime", q.holdtime),
            ("TalkTime", q.talktime), ("Completed", q.completed), ("Abandoned", q.abandoned),
            ("ServiceLevel", q.service_level), ("ServicelevelPerf", "0.0"),
            ("ServicelevelPerf2", "0.0"), ("Weight", q.weight),
        ])  # fmt: skip
        items += [
            [("Event", "QueueMember"), *m.fields(status_list=True)]
            for m in state.members if m.queue == q.name
        ]  # fmt: skip
        items += [
            [("Event", "QueueEntry"), ("Queue", q.name), ("Position", position),
             ("Channel", c.channel), ("Uniqueid", c.uniqueid), ("CallerIDNum", c.caller_id_num),
             ("CallerIDName", c.caller_id_name), ("Wait", int(now - c.joined_at))]
            for position, c in enumerate(callers, start=1)
        ]  # fmt: skip
    return "Queue status will follow", "QueueStatusComplete", items


def _queue_summary(ami: FakeAmi, action: AmiMessage) -> tuple[str, str, ListItems]:
    wanted, now, state = action.get("Queue"), ami.clock(), ami.state
    items: ListItems = []
    for q in state.queues.values():
        if wanted and q.name != wanted:
            continue
        members = [m for m in state.members if m.queue == q.name]
        waits = [int(now - c.joined_at) for c in state.callers if c.queue == q.name]
        items.append([
            ("Event", "QueueSummary"), ("Queue", q.name), ("LoggedIn", len(members)),
            ("Available", sum(1 for m in members if m.status == 1 and not m.paused)),
            ("Callers", len(waits)), ("HoldTime", q.holdtime), ("TalkTime", q.talktime),
            ("LongestHoldTime", max(waits, default=0)),
        ])  # fmt: skip
    return "Queue summary will follow", "QueueSummaryComplete", items


def _core_show_channels(ami: FakeAmi, action: AmiMessage) -> tuple[str, str, ListItems]:
    items: ListItems = [[("Event", "CoreShowChannel"), *c.items()] for c in ami.state.channels]
    return "Channels will follow", "CoreShowChannelsComplete", items


_LISTS = {
    "queuestatus": _queue_status,
    "queuesummary": _queue_summary,
    "coreshowchannels": _core_show_channels,
}
