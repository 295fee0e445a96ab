"""Thin asyncio client for Asterisk ARI: a handful of REST calls plus the events WebSocket.

``AriClient`` maps HTTP failures to the domain errors of ``connectors.ari.errors``;
``AriEventStream`` keeps the events WebSocket up (reconnect with backoff), calls a resync hook
after every connect and hands parsed frames to a callback. Nothing here knows about the engine.

``ApplicationReplaced`` (another client registered the same ARI app: Asterisk keeps one socket
per app, the newest wins) is not a frame to pass on: the stream is no longer fed, so it says so
(``connected`` false, ``reason``, an ERROR in the log) and reconnects after ``replaced_backoff``
seconds, doubling up to ``replaced_max``. Reconnecting takes the app back, so two instances on
one app would flap slowly, each one resyncing on its turn, rather than one staying deaf for good
after a deploy or a stray test client; the log and the status name the cause either way.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from connectors.ari.errors import (
    AriAuthFailed,
    AriBadConfig,
    AriBadRequest,
    AriError,
    AriFailed,
    AriTimeout,
    AriUnavailable,
    ChannelConflict,
    ChannelNotFound,
)

log = logging.getLogger(__name__)

Json = dict[str, Any]
FrameHandler = Callable[[Json], Awaitable[None] | None]
ConnectHook = Callable[["AriClient"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AriConfig:
    """Where and as whom to reach ARI. ``url`` may be given with or without ``/ari``."""

    url: str
    username: str
    password: str
    app: str
    timeout: float = 10.0

    @property
    def base_url(self) -> str:
        """The ARI root, e.g. ``http://127.0.0.1:8088/ari`` (never a trailing slash)."""
        url = self.url.rstrip("/")
        return url if url.endswith("/ari") else url + "/ari"


def _basic_auth(username: str, password: str) -> str:
    # Built by hand: aiohttp.BasicAuth is deprecated in recent aiohttp, and its successor is new.
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def _message(body: bytes, fallback: str) -> str:
    """The ``message`` (or ``error``, as some modules answer) of an ARI error body, else
    ``fallback``."""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")[:200] or fallback
    if isinstance(data, dict):
        for key in ("message", "error"):
            if isinstance(data.get(key), str) and data[key]:
                return str(data[key])[:200]
    return fallback


class AriClient:
    """REST side of ARI. Owns one aiohttp session (Basic auth), opened by ``start()``."""

    def __init__(self, config: AriConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None or self._session.closed:
            # No session-wide total timeout: it would also cut the long-lived events socket.
            self._session = aiohttp.ClientSession(
                headers={"Authorization": _basic_auth(self.config.username, self.config.password)},
                timeout=aiohttp.ClientTimeout(total=None),
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AriClient:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            raise RuntimeError("AriClient is not started: use 'async with' or await start()")
        return self._session

    # -- REST calls ---------------------------------------------------------------------------

    async def asterisk_info(self) -> Json:
        answer: Json = await self._request("GET", "/asterisk/info")
        return answer

    async def ping(self) -> Json:
        answer: Json = await self._request("GET", "/asterisk/ping")
        return answer

    async def channels(self) -> list[Json]:
        answer: list[Json] = await self._request("GET", "/channels")
        return answer

    async def channel(self, channel_id: str) -> Json:
        path = f"/channels/{quote(channel_id, safe='')}"
        answer: Json = await self._request("GET", path, channel=True)
        return answer

    async def answer(self, channel_id: str) -> None:
        path = f"/channels/{quote(channel_id, safe='')}/answer"
        await self._request("POST", path, channel=True)

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        path = f"/channels/{quote(channel_id, safe='')}"
        await self._request("DELETE", path, params={"reason": reason}, channel=True)

    async def originate(
        self,
        endpoint: str,
        extension: str | None = None,
        context: str | None = None,
        priority: int = 1,
        caller_id: str | None = None,
        timeout: int = 30,  # noqa: ASYNC109 - ARI's ring timeout, sent to Asterisk
        app: str | None = None,
        app_args: str | None = None,
        channel_id: str | None = None,
    ) -> Json:
        """Create a channel (ARI answers with it in state ``Down``)."""
        params: dict[str, str] = {"endpoint": endpoint, "timeout": str(timeout)}
        if app is not None:
            # ARI refuses app together with a dialplan location, so send one or the other.
            params["app"] = app
            if app_args is not None:
                params["appArgs"] = app_args
        else:
            if extension is not None:
                params["extension"] = extension
            if context is not None:
                params["context"] = context
            params["priority"] = str(priority)
        if caller_id is not None:
            params["callerId"] = caller_id
        if channel_id is not None:
            params["channelId"] = channel_id
        answer: Json = await self._request("POST", "/channels", params=params, channel=True)
        return answer

    async def endpoints(self) -> list[Json]:
        answer: list[Json] = await self._request("GET", "/endpoints")
        return answer

    async def device_states(self) -> list[Json]:  # GET /ari/deviceStates
        answer: list[Json] = await self._request("GET", "/deviceStates")
        return answer

    # -- plumbing -----------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        channel: bool = False,
    ) -> Any:
        """Send one request; return parsed JSON, or None for an empty (204) answer."""
        url = self.config.base_url + path
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        try:
            async with self.session.request(method, url, params=params, timeout=timeout) as resp:
                status, body = resp.status, await resp.read()
        except TimeoutError as exc:  # aiohttp's own timeouts subclass TimeoutError too
            raise AriTimeout(f"{method} {path}: no answer within {self.config.timeout} s") from exc
        except aiohttp.InvalidURL as exc:
            raise AriBadConfig(f"invalid ARI url: {self.config.url!r}") from exc
        except aiohttp.ClientError as exc:
            raise AriUnavailable(f"{method} {path}: {exc.__class__.__name__}: {exc}") from exc
        except OSError as exc:
            raise AriUnavailable(f"{method} {path}: {exc}") from exc
        if status < 300:
            if not body:
                return None
            try:
                return orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise AriError(f"{method} {path}: invalid JSON in answer") from exc
        raise self._error(status, body, channel)

    @staticmethod
    def _error(status: int, body: bytes, channel: bool) -> AriError:
        if status in (401, 403):
            return AriAuthFailed(_message(body, f"HTTP {status}"))
        if status == 404:
            if channel:
                return ChannelNotFound(_message(body, "Channel not found"))
            # A 404 on a fixed resource means the url does not point at ARI.
            return AriBadConfig(_message(body, "ARI resource not found: check the url"))
        if status == 400:
            return AriBadRequest(_message(body, "Bad request"))
        if status in (409, 412):
            return ChannelConflict(_message(body, "Channel conflict"))
        if status == 500:
            # Asterisk is up but could not do it (originate to an undialable endpoint:
            # {"error": "Allocation failed"}): its own words, not "unavailable".
            return AriFailed(_message(body, f"HTTP {status}"))
        if status > 500:
            return AriUnavailable(_message(body, f"HTTP {status}"))
        return AriError(f"HTTP {status}: {_message(body, 'unexpected answer')}")


class AriEventStream:
    """Keeps the ARI events WebSocket connected and feeds its frames to ``on_frame``.

    After every (re)connect ``on_connect(client)`` runs first (the engine resyncs there);
    frames received meanwhile are buffered and delivered afterwards, in order. Bad frames and
    callback failures are counted in ``stats`` and never stop the stream.
    """

    def __init__(
        self,
        config: AriConfig,
        on_frame: FrameHandler,
        on_connect: ConnectHook | None = None,
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        replaced_backoff: float = 30.0,
        replaced_max: float = 600.0,
        heartbeat: float = 10.0,
        stable_after: float = 10.0,
        log_every: int = 1000,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._on_frame = on_frame
        self._on_connect = on_connect
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._replaced_backoff = replaced_backoff
        self._replaced_max = replaced_max
        self._heartbeat = heartbeat
        self._stable_after = stable_after  # an up-time this long resets the backoff
        self._log_every = log_every
        self._rng = rng or random.Random()
        self.stats: Counter[str] = Counter()
        self.connected = False
        self.reason: str | None = "not connected yet"  # why not connected; None when connected
        self._connected_event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._up_since: float | None = None  # loop time the current connection went live

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Run the stream in a background task (``stop()`` ends it)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="ari-event-stream")
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # we are being cancelled ourselves: let it through

    async def wait_connected(self) -> None:
        """Return once the socket is up and the resync hook has finished."""
        await self._connected_event.wait()

    async def run(self) -> None:
        """Connect, serve, reconnect with exponential backoff and full jitter; until cancelled."""
        loop = asyncio.get_running_loop()
        attempt = replaced = 0
        async with AriClient(self.config) as client:
            while True:
                self._up_since = None
                try:
                    await self._serve(client)
                    log.warning("ARI events socket closed by the server")
                    self.reason = "the events socket was closed by Asterisk"
                except asyncio.CancelledError:
                    raise
                except ApplicationReplaced:
                    self._set_connected(False)
                    wait = min(self._replaced_max, self._replaced_backoff * 2 ** min(replaced, 10))
                    replaced += 1
                    self.stats["replaced"] += 1
                    self.reason = (f"another client registered ARI application {self.config.app!r}"
                                   f" (ApplicationReplaced); taking it back in {wait:.0f} s")
                    log.error("ARI events socket: %s", self.reason)
                    await asyncio.sleep(wait)
                    continue
                except Exception as exc:
                    self.stats["connect_failures" if self._up_since is None else "errors"] += 1
                    if isinstance(exc, aiohttp.WSServerHandshakeError) and exc.status in (401, 403):
                        self.stats["auth_failures"] += 1
                    self.reason = _describe(exc)
                    log.warning("ARI events socket failed: %s", self.reason)
                finally:
                    self._set_connected(False)
                if (
                    self._up_since is not None
                    and loop.time() - self._up_since >= self._stable_after
                ):
                    attempt = replaced = 0
                cap = min(self._backoff_max, self._backoff_initial * 2 ** min(attempt, 30))
                attempt += 1
                await asyncio.sleep(self._rng.uniform(0, cap))

    # -- one connection -----------------------------------------------------------------------

    async def _serve(self, client: AriClient) -> None:
        url = self.config.base_url + "/events"
        params = {"app": self.config.app, "subscribeAll": "true"}
        async with asyncio.timeout(self.config.timeout):
            ws = await client.session.ws_connect(
                url, params=params, heartbeat=self._heartbeat, protocols=("ari",)
            )
        queue: asyncio.Queue[aiohttp.WSMessage | None] = asyncio.Queue()
        reader = asyncio.create_task(self._read(ws, queue), name="ari-event-reader")
        try:
            self.stats["connects"] += 1
            if self.stats["connects"] > 1:
                self.stats["reconnects"] += 1
            log.info("ARI events socket connected to %s (app %s)", url, self.config.app)
            if self._on_connect is not None:
                try:
                    await self._on_connect(client)  # frames meanwhile wait in the queue
                except Exception:
                    self.stats["resync_errors"] += 1
                    raise  # without a resync the state would be wrong: reconnect and retry
            self.stats["buffered"] += queue.qsize()
            self._up_since = asyncio.get_running_loop().time()
            self._set_connected(True)
            while (msg := await queue.get()) is not None:
                await self._handle(msg)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await ws.close()

    @staticmethod
    async def _read(
        ws: aiohttp.ClientWebSocketResponse, queue: asyncio.Queue[aiohttp.WSMessage | None]
    ) -> None:
        """Move frames from the socket to the queue at once, so none wait on the resync."""
        try:
            async for msg in ws:
                queue.put_nowait(msg)
        finally:
            queue.put_nowait(None)

    async def _handle(self, msg: aiohttp.WSMessage) -> None:
        if msg.type is not aiohttp.WSMsgType.TEXT:
            if msg.type is aiohttp.WSMsgType.ERROR:
                raise ConnectionError(f"websocket error: {msg.data!r}")
            self._bad("non_text", repr(msg.type))
            return
        try:
            frame = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            self._bad("malformed_json", msg.data)
            return
        if not isinstance(frame, dict):
            self._bad("not_object", msg.data)
            return
        if not isinstance(frame.get("type"), str):
            self._bad("missing_type", msg.data)
            return
        if frame["type"] == "ApplicationReplaced":
            raise ApplicationReplaced()
        self.stats["frames"] += 1
        try:
            result = self._on_frame(frame)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self.stats["handler_errors"] += 1
            if self._first_or_nth("handler_errors"):
                log.exception("on_frame failed for a %s frame", frame["type"])

    def _bad(self, kind: str, sample: str) -> None:
        """Count a bad frame; log the first of each kind and then one in ``log_every``."""
        self.stats[kind] += 1
        if self._first_or_nth(kind):
            log.warning("ARI frame dropped (%s, %d so far): %.200s", kind, self.stats[kind], sample)

    def _first_or_nth(self, kind: str) -> bool:
        n = self.stats[kind]
        return n == 1 or n % self._log_every == 0

    def _set_connected(self, up: bool) -> None:
        self.connected = up
        if up:
            self.reason = None
            self._connected_event.set()
        else:
            self._connected_event.clear()


class ApplicationReplaced(Exception):
    """Asterisk gave our app to another client: this socket will get no more events."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        if exc.status in (401, 403):
            return f"authentication failed ({exc.status})"
        return f"handshake refused: HTTP {exc.status} {exc.message}"
    return f"{exc.__class__.__name__}: {exc}"
