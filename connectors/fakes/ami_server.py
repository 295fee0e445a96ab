"""A fake Asterisk Manager Interface (AMI) server: the real wire format over a real TCP socket.

It sends the banner, answers ``Login`` (a wrong secret gets ``Authentication failed`` and the
socket closed, as Asterisk does), ``Ping``, ``Logoff``, the list actions ``QueueStatus``,
``QueueSummary`` and ``CoreShowChannels`` from a programmable ``AmiState`` (``ami_state.py``),
and the member actions ``QueuePause``/``QueueAdd``/``QueueRemove`` (they change the state and
emit ``QueueMemberPause``/``Added``/``Removed``, as Asterisk does). Tests and the simulator
push events with ``emit()`` or ``replay()`` a captured trace; faults: ``drop_connections()``,
``answer_pings = False`` (a half-open PBX), ``chunk_size`` (tiny writes that split characters).
``timestamp_events = True`` stamps every event with ``Timestamp`` (``timestampevents=yes``);
``CoreSettings`` answers with the fake's version.
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
from connectors.fakes.ami_state import LIST_ACTIONS, AmiState, Fields, MemberActionError

__all__ = ["AmiState", "FakeAmi", "TraceRecord", "trace_records"]

EventFields = Mapping[str, object] | Iterable[tuple[str, object]]


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
        self.timestamp_events = False  # manager.conf timestampevents (off by default, as there)
        self.actions: list[AmiMessage] = []  # every action received, for assertions
        self.logins = 0  # successful logins so far (a reconnecting client logs in again)
        self.failed_logins = 0
        self._login_changed = asyncio.Event()
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

    async def wait_for_logins(self, count: int) -> None:
        """Until ``count`` successful logins happened in all (no timeout: the test has one)."""
        while self.logins < count:
            self._login_changed.clear()
            await self._login_changed.wait()

    async def emit(self, fields: EventFields) -> int:
        """Send one event to every logged-in connection with events on; returns how many."""
        return await self.emit_raw(encode_message(self._stamped(fields)))

    def _stamped(self, fields: EventFields) -> list[tuple[str, object]]:
        pairs = list(fields.items() if isinstance(fields, Mapping) else fields)
        if self.timestamp_events and not any(k.lower() == "timestamp" for k, _ in pairs):
            pairs.insert(1, ("Timestamp", f"{self.clock():.6f}"))  # after Event, as Asterisk
        return pairs

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
        elif name == "coresettings":
            await self._respond(session, action, "Success", ("AMIversion", self.version),
                                ("AsteriskVersion", f"fake-{self.version}"),
                                ("SystemName", "fake-ami"))
        elif name in LIST_ACTIONS:
            answer = LIST_ACTIONS[name](self.state, action.get("Queue"), self.clock())
            await self._send_list(session, action, *answer)
        elif name in _MEMBER_ACTIONS:
            await self._member_action(session, action, _MEMBER_ACTIONS[name])
        else:
            await self._respond(session, action, "Error", ("Message", "Invalid/unknown command"))

    async def _login(self, session: _Session, action: AmiMessage) -> None:
        if action.get("Username") != self.username or action.get("Secret") != self.secret:
            self.failed_logins += 1
            await self._respond(session, action, "Error", ("Message", "Authentication failed"))
            session.closing = True  # Asterisk hangs up on a failed login
            return
        session.logged_in = True
        session.events = (action.get("Events") or "on").lower() != "off"
        await self._respond(session, action, "Success", ("Message", "Authentication accepted"))
        self.logins += 1
        self._login_changed.set()
        if session.events:
            await self._send(session, encode_message(self._stamped([
                ("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", 21),
                ("LastReload", 21), ("Status", "Fully Booted"),
            ])))  # fmt: skip

    async def _send_list(
        self,
        session: _Session,
        action: AmiMessage,
        message: str,
        complete: str,
        items: list[Fields],
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

    async def _member_action(
        self, session: _Session, action: AmiMessage, apply: MemberAction
    ) -> None:
        try:
            message, events = apply(self.state, action, int(self.clock()))
        except MemberActionError as refused:
            await self._respond(session, action, "Error", ("Message", str(refused)))
            return
        await self._respond(session, action, "Success", ("Message", message))
        for event in events:
            await self.emit(event)


# -- member actions: (Message of the answer, events to send) -----------------------------------

MemberAction = Callable[[AmiState, AmiMessage, int], tuple[str, list[Fields]]]


def _queue_pause(state: AmiState, action: AmiMessage, now: int) -> tuple[str, list[Fields]]:
    paused = (action.get("Paused") or "").lower() in ("true", "yes", "1", "on")
    events = state.pause(
        action.get("Interface") or "", action.get("Queue"), paused, action.get("Reason") or "", now
    )
    return f"Interface {'paused' if paused else 'unpaused'} successfully", events


def _queue_add(state: AmiState, action: AmiMessage, now: int) -> tuple[str, list[Fields]]:
    events = state.add_member(
        action.get("Queue") or "",
        action.get("Interface") or "",
        action.get("MemberName") or "",
        action.get("StateInterface") or "",
        now,
    )
    return "Added interface to queue", events


def _queue_remove(state: AmiState, action: AmiMessage, now: int) -> tuple[str, list[Fields]]:
    events = state.remove_member(action.get("Queue") or "", action.get("Interface") or "")
    return "Removed interface from queue", events


_MEMBER_ACTIONS: dict[str, MemberAction] = {
    "queuepause": _queue_pause,
    "queueadd": _queue_add,
    "queueremove": _queue_remove,
}
