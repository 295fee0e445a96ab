"""Asyncio AMI client: our sans-I/O protocol (``protocol.py``) over ``asyncio`` streams.

Why not panoramisk for this (read from panoramisk 1.4's ``ami_protocol.py``/``manager.py``):
its framing lives inside ``AMIProtocol.data_received``, which decodes every TCP chunk on its own
with ``errors='ignore'`` (a Cyrillic character split across two reads is silently dropped), and
its ``Manager`` around it reconnects after a fixed delay with no backoff, treats a refused login
as "not authenticated" and reconnects forever without an error, sends pings on a timer but never
times them out, and re-sends unanswered actions after a reconnect (a ``QueuePause`` could be
applied twice). Plugging our own protocol class into ``protocol_factory`` would replace
``data_received`` and ``handle_message`` and still leave every ``Manager`` fault to override: we
would keep the name, not the code. So the parsing is ours (``AmiProtocol``, property-tested on
random splits of the real trace), and this module is the small driver that pumps bytes between
it and a socket. panoramisk stays a test dependency: ``tests/test_fake_ami.py`` proves the fake
server speaks to a real third-party client.

- ``AmiConnection.open()``: connect, read the banner, log in (``AmiAuthFailed`` on a refused
  login, ``AmiTimeout``, ``AmiUnavailable``), then actions with an ActionID each (``action``,
  ``list_action`` collecting ``EventList`` items, ``ping``) while events go to a callback.
- ``AmiEventStream``: keeps one connection up. After every login it runs a resync hook, then
  hands events on; it pings every ``ping_interval`` s and treats a ping unanswered within
  ``ping_timeout`` s as a lost connection; it reconnects with exponential backoff and full
  jitter. A refused login is logged as an ERROR naming the user, counted, shown in ``reason``
  and retried with the same backoff, never a silent loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from connectors.ami.errors import (
    AmiActionFailed,
    AmiAuthFailed,
    AmiConnectionLost,
    AmiError,
    AmiTimeout,
    AmiUnavailable,
)
from connectors.ami.eventlist import EventList, EventListCollector
from connectors.ami.protocol import ERR_MISSING_BANNER, AmiMessage, AmiProtocol, Kind, send_action

log = logging.getLogger(__name__)

EventHandler = Callable[[AmiMessage], None]
LoginHook = Callable[["AmiConnection"], Awaitable[None]]
READ_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class AmiConfig:
    """Where and as whom to reach AMI (``manager.conf``)."""

    host: str
    port: int = 5038
    username: str = ""
    secret: str = field(default="", repr=False)
    timeout: float = 10.0    # connect, banner, login and each action's answer

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class AmiConnection:
    """One logged-in AMI connection. ``open()`` it; ``close()`` it; ``closed`` says why it ended.

    Events (messages that are neither an answer nor part of a list we asked for) go to
    ``on_event`` in order, as they are read.
    """

    _ids = itertools.count(1)

    def __init__(self, config: AmiConfig, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, on_event: EventHandler | None = None) -> None:
        self.config = config
        self.protocol = AmiProtocol()
        self.on_event = on_event
        self.first_events: list[AmiMessage] = []  # events read during login (FullyBooted)
        self._reader, self._writer = reader, writer
        self._lists = EventListCollector()
        self._answers: dict[str, asyncio.Future[AmiMessage]] = {}
        self._list_waiters: dict[str, asyncio.Future[EventList]] = {}
        self._banner: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[AmiError] = asyncio.get_running_loop().create_future()
        self._prefix = f"sb-{next(self._ids)}-"
        self._seq = itertools.count(1)
        self._pump = asyncio.create_task(self._read(), name="ami-reader")

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    async def open(cls, config: AmiConfig, on_event: EventHandler | None = None
                   ) -> AmiConnection:
        """Connect, read the banner and log in, each bounded by ``config.timeout``."""
        try:
            async with asyncio.timeout(config.timeout):
                reader, writer = await asyncio.open_connection(config.host, config.port)
        except TimeoutError:
            raise AmiTimeout(f"no TCP connection to {config.address} "
                             f"within {config.timeout:g} s") from None
        except OSError as exc:
            raise AmiUnavailable(f"cannot connect to {config.address}: "
                                 f"{exc.strerror or exc}") from None
        connection = cls(config, reader, writer, on_event)
        try:
            await connection._login()
        except BaseException:
            await connection.close()
            raise
        return connection

    async def _login(self) -> None:
        try:
            async with asyncio.timeout(self.config.timeout):
                await self._banner
        except TimeoutError:
            raise AmiTimeout(f"{self.config.address} sent no AMI banner "
                             f"within {self.config.timeout:g} s") from None
        answer = await self.action("Login", Username=self.config.username,
                                   Secret=self.config.secret, Events="on", check=False)
        if (answer.name or "").lower() != "success":
            reason = answer.get("Message") or answer.name or "login refused"
            raise AmiAuthFailed(f"AMI login refused for user {self.config.username!r} at "
                                f"{self.config.address}: {reason}")

    @property
    def version(self) -> str | None:
        """The AMI protocol version from the banner (``13.0.0``)."""
        return self.protocol.version

    # -- actions ------------------------------------------------------------------------------

    def _next_id(self) -> str:
        return f"{self._prefix}{next(self._seq)}"

    def _write(self, name: str, action_id: str, fields: dict[str, object]) -> None:
        if self.closed.done():
            raise self.closed.result()
        self._writer.write(send_action(name, action_id, **fields))

    async def action(self, name: str, *, check: bool = True, **fields: object) -> AmiMessage:
        """Send one action and await its ``Response``; ``Response: Error`` raises
        ``AmiActionFailed`` unless ``check`` is false."""
        action_id = self._next_id()
        answer = asyncio.get_running_loop().create_future()
        self._answers[action_id] = answer
        try:
            self._write(name, action_id, fields)
            message = await self._bounded(answer, name)
        finally:
            self._answers.pop(action_id, None)
        if check and message.name.lower() == "error":
            raise AmiActionFailed(f"{name}: {message.get('Message') or 'error'}")
        return message

    async def list_action(self, name: str, **fields: object) -> EventList:
        """Send a list action (QueueStatus, CoreShowChannels...) and await the whole list."""
        action_id = self._next_id()
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[AmiMessage] = loop.create_future()  # only an answer opening no list
        whole: asyncio.Future[EventList] = loop.create_future()
        self._answers[action_id], self._list_waiters[action_id] = answer, whole
        try:
            self._write(name, action_id, fields)
            waiting: set[asyncio.Future[Any]] = {answer, whole, self.closed}
            done, _ = await asyncio.wait(waiting, timeout=self.config.timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._answers.pop(action_id, None)
            self._list_waiters.pop(action_id, None)
        if whole in done:
            return whole.result()
        if answer in done:
            message = answer.result()
            raise AmiActionFailed(f"{name}: {message.get('Message') or message.name}")
        if self.closed in done:
            raise self.closed.result()
        raise AmiTimeout(f"no answer to {name} within {self.config.timeout:g} s")

    async def ping(self, within: float | None = None) -> AmiMessage:
        """``Action: Ping``; ``AmiTimeout`` when unanswered ``within`` seconds (default: the
        config's timeout)."""
        action_id = self._next_id()
        answer = asyncio.get_running_loop().create_future()
        self._answers[action_id] = answer
        try:
            self._write("Ping", action_id, {})
            return await self._bounded(answer, "Ping", within)
        finally:
            self._answers.pop(action_id, None)

    async def _bounded(self, answer: asyncio.Future[AmiMessage], name: str,
                       within: float | None = None) -> AmiMessage:
        limit = self.config.timeout if within is None else within
        waiting: set[asyncio.Future[Any]] = {answer, self.closed}
        done, _ = await asyncio.wait(waiting, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        if answer in done:
            return answer.result()
        if self.closed in done:
            raise self.closed.result()
        raise AmiTimeout(f"no answer to {name} from {self.config.address} within {limit:g} s")

    # -- reading ------------------------------------------------------------------------------

    async def _read(self) -> None:
        reason: AmiError = AmiConnectionLost(f"{self.config.address} closed the connection")
        try:
            while data := await self._reader.read(READ_CHUNK):
                self.protocol.receive_data(data)
                if not self._banner.done():
                    if self.protocol.banner is not None:
                        self._banner.set_result(self.protocol.banner)
                    elif self.protocol.errors[ERR_MISSING_BANNER]:
                        reason = AmiUnavailable(f"{self.config.address} is not an AMI server "
                                                "(no 'Asterisk Call Manager' banner)")
                        break
                for message in self.protocol.events_received():
                    self._dispatch(message)
            self.protocol.receive_eof()
        except ConnectionError as exc:
            reason = AmiConnectionLost(f"connection to {self.config.address} lost: {exc}")
        finally:
            self._finish(reason)

    def _dispatch(self, message: AmiMessage) -> None:
        if self._lists.feed(message):
            for done in self._lists.pop_completed():
                waiter = self._list_waiters.get(done.action_id)
                if waiter is not None and not waiter.done():
                    waiter.set_result(done)
            return
        if message.kind is Kind.RESPONSE:
            answer = self._answers.get(message.action_id or "")
            if answer is not None and not answer.done():
                answer.set_result(message)
            return
        if message.kind is Kind.EVENT:
            if self.on_event is None:
                self.first_events.append(message)
            else:
                self.on_event(message)

    def _finish(self, reason: AmiError) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        if not self._banner.done():
            self._banner.set_exception(reason)
            self._banner.exception()  # retrieved: _login reports it
        self._lists.abandon()
        self._writer.close()

    async def close(self) -> None:
        """Close the socket and stop reading (idempotent)."""
        self._finish(AmiConnectionLost("closed by us"))
        if self._pump is not asyncio.current_task():
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()


class AmiEventStream:
    """Keeps one AMI connection up; events to ``on_event``, ``on_login`` after every login."""

    def __init__(
        self,
        config: AmiConfig,
        on_event: EventHandler,
        on_login: LoginHook | None = None,
        *,
        ping_interval: float = 20.0,
        ping_timeout: float = 10.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        stable_after: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._on_event, self._on_login = on_event, on_login
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        self._backoff_initial, self._backoff_max = backoff_initial, backoff_max
        self._stable_after = stable_after
        self._rng = rng or random.Random()
        self.stats: Counter[str] = Counter()
        self.bad_input: Counter[str] = Counter()  # the protocol's errors of past connections
        self.connected = False
        self.reason: str | None = "not connected yet"
        self.last_error: AmiError | None = None
        self.connection: AmiConnection | None = None
        self._connected_event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._held: list[AmiMessage] | None = None  # events read while the resync runs
        self._up_since: float | None = None  # loop time the current connection went live

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="ami-event-stream")
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def wait_connected(self) -> None:
        """Return once logged in and resynced."""
        await self._connected_event.wait()

    async def run(self) -> None:
        """Connect, serve, reconnect with exponential backoff and full jitter; until cancelled."""
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            self._up_since = None
            self._held = []  # events read before the resync ends wait for it
            try:
                connection = await AmiConnection.open(self.config, self._event)
                self.connection = connection
                try:
                    await self._serve(connection)
                finally:
                    self.connection = None
                    await connection.close()
                    self.bad_input.update(connection.protocol.errors)
            except AmiAuthFailed as exc:
                self.stats["auth_failures"] += 1
                self._failed(exc, f"authentication failed: {exc.message}")
                log.error("%s (check manager.conf: [%s] secret, permit/deny); retrying with "
                          "backoff", exc.message, self.config.username)
            except AmiError as exc:
                self.stats["connect_failures" if self._up_since is None else "disconnects"] += 1
                self._failed(exc, exc.message)
                log.warning("AMI %s: %s", self.config.address, exc.message)
            except Exception as exc:  # a bug must not end the stream for good: log, retry
                self.stats["errors"] += 1
                self.last_error, self.reason = None, f"{exc.__class__.__name__}: {exc}"
                log.exception("AMI stream to %s failed", self.config.address)
            finally:
                self._held = None
                self._set_connected(False)
            if self._up_since is not None and loop.time() - self._up_since >= self._stable_after:
                attempt = 0
            cap = min(self._backoff_max, self._backoff_initial * 2 ** min(attempt, 30))
            attempt += 1
            await asyncio.sleep(self._rng.uniform(0, cap))

    def _failed(self, exc: AmiError, reason: str) -> None:
        self.last_error, self.reason = exc, reason

    async def _serve(self, connection: AmiConnection) -> NoReturn:
        """Resync, then serve until the connection ends (raises why it ended)."""
        self.stats["logins"] += 1
        log.info("AMI logged in to %s as %s (AMI %s)", self.config.address,
                 self.config.username, connection.version)
        try:
            if self._on_login is not None:
                try:
                    await self._on_login(connection)
                except AmiError:
                    self.stats["resync_errors"] += 1
                    raise  # without a resync the state would be wrong: reconnect and retry
        finally:
            held, self._held = self._held or [], None
        for message in held:
            self._deliver(message)
        self._up_since = asyncio.get_running_loop().time()
        self._set_connected(True)
        pinger = asyncio.create_task(self._watchdog(connection), name="ami-ping")
        try:
            waiting: set[asyncio.Future[Any]] = {pinger, connection.closed}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if pinger in done:
                pinger.result()  # raises the ping's AmiTimeout
            raise connection.closed.result()
        finally:
            pinger.cancel()
            await asyncio.gather(pinger, return_exceptions=True)

    async def _watchdog(self, connection: AmiConnection) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            try:
                await connection.ping(self.ping_timeout)
            except AmiTimeout:
                self.stats["ping_timeouts"] += 1
                raise AmiTimeout(f"no answer to Ping within {self.ping_timeout:g} s: "
                                 "connection considered lost") from None
            self.stats["pings"] += 1

    def _event(self, message: AmiMessage) -> None:
        if self._held is not None:
            self._held.append(message)
        else:
            self._deliver(message)

    def _deliver(self, message: AmiMessage) -> None:
        self.stats["events"] += 1
        try:
            self._on_event(message)
        except Exception:
            self.stats["handler_errors"] += 1
            if self.stats["handler_errors"] == 1 or self.stats["handler_errors"] % 1000 == 0:
                log.exception("on_event failed for a %s event", message.name)

    def _set_connected(self, up: bool) -> None:
        self.connected = up
        if up:
            self.reason, self.last_error = None, None
            self._connected_event.set()
        else:
            self._connected_event.clear()

