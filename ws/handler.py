"""aiohttp glue for ``GET /ws/events``: auth, snapshot, one sender per client, token watch.

Conversation (JSON text frames):

1. The token comes as ``?token=<jwt>`` or as the first message ``{"type":"auth","token":"<jwt>"}``
   within ``auth_timeout`` seconds. Failure: close 4001, reason = seed code (``AUTH_001`` bad or
   missing token / no auth in time, ``AUTH_002`` expired, ``AUTH_004`` inactive user).
2. ``{"type":"auth_ok","user":{...}}`` then ``{"type":"snapshot","id":N,"ts":...,"data":
   {"calls":[...],"operators":[...]}}``: the state after event ``N``; every event sent later has
   an id > N.
3. Events ``{"id","ts","type","data"}`` from the hub. Client requests: ``{"type":"ping"}`` ->
   ``{"type":"pong"}``; ``{"type":"subscribe","events":[...]}`` (``null``/absent = all) ->
   ``{"type":"subscribed","events":[...]}``; errors answer ``{"type":"error","code","detail",
   "field"}`` (``WS_001`` unknown event types, ``WS_002`` malformed or unknown request) without
   closing.

Closes: 4002 when the token expires (reason ``AUTH_002``) or is revoked (reason ``AUTH_001``):
logged out, its refresh family revoked, or every token of its user revoked (deactivated,
deleted, password or role changed). Revocation closes at once through ``revoke(jti)``,
``revoke_family(family)`` and ``revoke_user(user_id)`` (the service calls them on the Redis
revocation notices of any instance), and a sweep asks ``Authenticator.revoked`` about every
connected token every ``revocation_poll`` seconds, in case a notice was lost; 1013 when
the client's send queue overflows (it reads too slowly); 1001 on ``close_all()``; 1011 when the
authenticator itself fails (not a refusal) or the snapshot cannot be built. Dead peers are found
by aiohttp's ``heartbeat`` pings.

Frames are sent uncompressed: the hub's bytes go to every client as they are, and deflating the
same message once per dashboard would cost more than the bandwidth it saves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from engine.model import Call, Operator, Queue
from ws.access import Viewer, can_see_call, can_see_operator, can_see_queue
from ws.frames import FrameCache
from ws.hub import Hub, Subscription
from ws.messages import (
    EVENT_TYPES,
    call_view,
    iso,
    operator_view,
    queue_view,
    unknown_event_types,
)

log = logging.getLogger(__name__)

CLOSE_AUTH_FAILED = 4001
CLOSE_AUTH_ENDED = 4002

# Active calls and operators, synchronously. It must reflect exactly the effects already
# published to the hub: the runner updates this state and publishes in one synchronous step.
SnapshotSource = Callable[[], tuple[list[Call], list[Operator]]]


class WsAuthError(Exception):
    """The token was refused. ``code``: ``AUTH_002`` expired, ``AUTH_001``/``AUTH_004`` else."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class WsSession:
    viewer: Viewer
    user: dict[str, Any]  # sent as is in auth_ok
    expires_at: float     # epoch seconds (JWT ``exp``)
    jti: str
    family: str | None = None  # refresh-token family of the token, if any
    issued_ms: int = 0         # when the token was issued (revocation by time)


class Authenticator(Protocol):
    async def authenticate(self, token: str) -> WsSession:
        """The session for a valid, unexpired, unrevoked token; else raise ``WsAuthError``."""
        ...

    async def revoked(self, sessions: Sequence[WsSession]) -> list[bool]:
        """For each session, whether its token has been revoked since (one round trip)."""
        ...


@dataclass(eq=False)
class _Client:
    ws: web.WebSocketResponse
    session: WsSession
    close_code: int = WSCloseCode.OK
    close_reason: str = ""
    transport: asyncio.BaseTransport | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)      # time to close
    finished: asyncio.Event = field(default_factory=asyncio.Event)  # closed, tasks reaped

    def request_close(self, code: int, reason: str) -> None:
        """Synchronous, first request wins; the handler does the closing."""
        if not self.done.is_set():
            self.close_code, self.close_reason = code, reason
            self.done.set()


class WebSocketEndpoint:
    """Serves ``/ws/events``. Call ``await close_all()`` on shutdown (before the runner cleanup)."""

    def __init__(
        self,
        hub: Hub,
        authenticator: Authenticator,
        snapshot: SnapshotSource,
        *,
        auth_timeout: float = 10.0,
        heartbeat: float = 20.0,
        queue_size: int = 1000,
        revocation_poll: float | None = 5.0,
        close_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
        queues: Callable[[], Sequence[Queue]] = tuple,
    ) -> None:
        self._hub = hub
        self._queues = queues
        self._auth = authenticator
        self._snapshot = snapshot
        self._auth_timeout = auth_timeout
        self._heartbeat = heartbeat
        self._queue_size = queue_size
        self._revocation_poll = revocation_poll
        self._close_timeout = close_timeout
        self._clock = clock
        self._pending: set[web.WebSocketResponse] = set()  # connected, not authenticated yet
        self._clients: set[_Client] = set()
        self._shutting_down = False
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def client_count(self) -> int:
        return len(self._clients)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(
            heartbeat=self._heartbeat, compress=False, timeout=self._close_timeout
        )
        await ws.prepare(request)
        self._pending.add(ws)
        try:
            session = await self._authenticate(ws, request)
        except WsAuthError as exc:
            log.info("websocket auth refused: %s %s", exc.code, exc.message)
            await self._close(ws, CLOSE_AUTH_FAILED, exc.code)
            return ws
        except Exception:  # e.g. the denylist is unreachable: not the client's fault
            log.exception("websocket authentication failed")
            await self._close(ws, WSCloseCode.INTERNAL_ERROR, "auth unavailable")
            return ws
        finally:
            self._pending.discard(ws)
        if session is None:  # the client left before authenticating
            return ws
        if self._shutting_down:
            await self._close(ws, WSCloseCode.GOING_AWAY, "server shutdown")
            return ws

        client = _Client(ws, session, transport=request.transport)
        self._clients.add(client)
        try:
            def on_overflow() -> None:
                client.request_close(WSCloseCode.TRY_AGAIN_LATER, "slow consumer")

            with self._hub.subscribe(session.viewer, on_overflow, maxsize=self._queue_size) as sub:
                # No await between subscribe() and the snapshot: each event is either in the
                # snapshot (id <= snapshot id) or in the queue (id > snapshot id), exactly once.
                try:
                    hello = self._hello(session)
                except Exception:
                    log.exception("cannot build the websocket snapshot")
                    await self._close(ws, WSCloseCode.INTERNAL_ERROR, "snapshot failed")
                    return ws
                await self._serve(client, sub, hello)
        finally:
            self._clients.discard(client)
            client.finished.set()
        return ws

    def revoke(self, jti: str) -> int:
        """Close (4002) every socket opened with this token, e.g. on logout. Returns how many."""
        return self._revoke_where(lambda s: s.jti == jti)

    def revoke_family(self, family: str) -> int:
        """Close (4002) every socket opened with a token of this refresh family."""
        return self._revoke_where(lambda s: s.family == family)

    def revoke_user(self, user_id: str) -> int:
        """Close (4002) every socket of this user (all their tokens were revoked)."""
        return self._revoke_where(lambda s: s.viewer.user_id == user_id)

    def _revoke_where(self, match: Callable[[WsSession], bool]) -> int:
        clients = [c for c in self._clients if match(c.session) and not c.done.is_set()]
        for client in clients:
            client.request_close(CLOSE_AUTH_ENDED, "AUTH_001")
        return len(clients)

    async def close_all(self) -> None:
        """Close every socket with 1001 and wait until their handlers are done."""
        self._shutting_down = True
        clients = list(self._clients)
        for client in clients:
            client.request_close(WSCloseCode.GOING_AWAY, "server shutdown")
        unauthenticated = [
            self._close(ws, WSCloseCode.GOING_AWAY, "server shutdown") for ws in self._pending
        ]
        await asyncio.gather(*unauthenticated, *(c.finished.wait() for c in clients))
        if self._sweeper is not None:
            await _reap(self._sweeper)

    # -- authentication ---------------------------------------------------------------------

    async def _authenticate(
        self, ws: web.WebSocketResponse, request: web.Request
    ) -> WsSession | None:
        token = request.query.get("token")
        if token is None:
            token = await self._receive_token(ws)
            if token is None:
                return None
        return await self._auth.authenticate(token)

    async def _receive_token(self, ws: web.WebSocketResponse) -> str | None:
        try:
            msg = await ws.receive(timeout=self._auth_timeout)
        except TimeoutError:
            raise WsAuthError("AUTH_001", "no auth message in time") from None
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return None
        body = _loads(msg.data) if msg.type is WSMsgType.TEXT else None
        if not isinstance(body, dict) or body.get("type") != "auth":
            raise WsAuthError("AUTH_001", "the first message must be an auth message")
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise WsAuthError("AUTH_001", "auth message without a token")
        return token

    # -- the connection ------------------------------------------------------------------------

    def _hello(self, session: WsSession) -> list[bytes]:
        """``auth_ok`` and ``snapshot``; synchronous, so the hub cannot publish meanwhile."""
        calls, operators = self._snapshot()
        viewer = session.viewer
        snapshot = {
            "type": "snapshot",
            "id": self._hub.last_id,
            "ts": iso(datetime.fromtimestamp(self._clock(), UTC)),
            "data": {
                "calls": [call_view(c) for c in calls if can_see_call(viewer, c)],
                "operators": [operator_view(o) for o in operators if can_see_operator(viewer, o)],
                "queues": [queue_view(q) for q in self._queues() if can_see_queue(viewer, q)],
            },
        }
        return [orjson.dumps({"type": "auth_ok", "user": session.user}), orjson.dumps(snapshot)]

    async def _serve(self, client: _Client, sub: Subscription, hello: list[bytes]) -> None:
        tasks = [
            asyncio.create_task(self._send_loop(client.ws, sub, hello, client.transport)),
            asyncio.create_task(self._read_loop(client.ws, sub)),
        ]
        for task in tasks:
            task.add_done_callback(lambda _: client.done.set())
        sender, reader = tasks
        # Expiry is a timer, revocation a sweep over all clients: no task per client waking up.
        expiry = asyncio.get_running_loop().call_later(
            max(0.0, client.session.expires_at - self._clock()),
            client.request_close, CLOSE_AUTH_ENDED, "AUTH_002",
        )
        self._ensure_sweeper()
        try:
            await client.done.wait()
        finally:
            expiry.cancel()
            # The sender may be stuck on a full socket buffer: cancel it before closing.
            await _reap(sender)
            if not client.ws.closed:
                await self._close(client.ws, client.close_code, client.close_reason)
            await _reap(reader)  # close() has already ended it; this only reaps

    async def _send_loop(
        self, ws: web.WebSocketResponse, sub: Subscription, hello: list[bytes],
        transport: asyncio.BaseTransport | None,
    ) -> None:
        """Sends in order. While nothing is queued, the hub writes straight to the socket
        (``sub.direct``); once the socket's buffer is full, messages queue here and this loop
        sends them as the client reads, until the bounded queue overflows (1013)."""
        direct = _direct_writer(ws, transport)
        try:
            for data in hello:
                await ws.send_frame(data, WSMsgType.TEXT)
            if direct is not None:
                self._hub.write_directly(sub, direct)
            while True:
                data = await sub.queue.get()
                await ws.send_frame(data, WSMsgType.TEXT)
        except ConnectionError:  # the peer is gone; the reader sees it too
            return

    async def _read_loop(self, ws: web.WebSocketResponse, sub: Subscription) -> None:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                sub.put(_answer(sub, msg.data))
            elif msg.type is WSMsgType.BINARY:
                sub.put(_error("WS_002", "binary messages are not supported"))
            else:  # ERROR: the connection is broken
                return

    def _ensure_sweeper(self) -> None:
        if self._revocation_poll is not None and (self._sweeper is None or self._sweeper.done()):
            self._sweeper = asyncio.create_task(self._sweep_revoked(self._revocation_poll))

    async def _sweep_revoked(self, poll: float) -> None:
        """Every ``poll`` seconds, one revocation check for all distinct tokens of the connected
        clients (a thousand dashboards must not mean a thousand timers and Redis calls)."""
        while self._clients:
            await asyncio.sleep(poll)
            sessions = list({c.session.jti: c.session for c in self._clients}.values())
            for session, revoked in zip(sessions, await self._lookup(sessions), strict=True):
                if revoked:
                    self.revoke(session.jti)

    async def _lookup(self, sessions: list[WsSession]) -> list[bool]:
        if not sessions:
            return []
        try:
            return await self._auth.revoked(sessions)
        except Exception:  # fail open: a denylist outage must not drop every dashboard
            log.warning("revocation check failed; keeping the connections", exc_info=True)
            return [False] * len(sessions)

    async def _close(self, ws: web.WebSocketResponse, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(self._close_timeout):
                await ws.close(code=code, message=reason.encode())
        except TimeoutError:  # aiohttp has dropped the transport by now
            log.info("websocket close handshake timed out (code %s)", code)


# Above this many unsent bytes a socket counts as busy: messages queue instead (bounded).
DIRECT_WRITE_HIGH_WATER = 64 * 1024
_FRAMES = FrameCache()  # one framing per message, shared by every client's writer


@runtime_checkable
class _WritableTransport(Protocol):
    """What the direct writer needs. Duck-typed: uvloop's transports do not subclass asyncio's."""

    def is_closing(self) -> bool: ...
    def get_write_buffer_size(self) -> int: ...
    def write(self, data: bytes) -> None: ...


def _direct_writer(
    ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None
) -> Callable[[list[bytes]], bool] | None:
    if not isinstance(transport, _WritableTransport):
        return None

    def write(burst: list[bytes]) -> bool:
        if (ws.closed or transport.is_closing()
                or transport.get_write_buffer_size() > DIRECT_WRITE_HIGH_WATER):
            return False
        transport.write(_FRAMES.join(burst))
        return True

    return write


def _answer(sub: Subscription, text: str) -> bytes:
    """The reply to one client request (after auth)."""
    body = _loads(text)
    if not isinstance(body, dict):
        return _error("WS_002", "messages must be JSON objects")
    kind = body.get("type")
    if kind == "ping":
        return _PONG
    if kind != "subscribe":
        return _error("WS_002", f"unknown message type: {kind!r}")
    events = body.get("events")
    if events is None:
        sub.set_filter(None)
        return orjson.dumps({"type": "subscribed", "events": list(EVENT_TYPES)})
    if not isinstance(events, list):
        return _error("WS_001", "events must be a list of event types", "events")
    unknown = unknown_event_types(events)
    if unknown:
        names = ", ".join(str(name) for name in unknown)
        return _error("WS_001", f"unknown event types: {names}", "events")
    sub.set_filter(events)
    return orjson.dumps({"type": "subscribed", "events": [t for t in EVENT_TYPES if t in events]})


_PONG = orjson.dumps({"type": "pong"})


def _error(code: str, detail: str, field_name: str | None = None) -> bytes:
    return orjson.dumps({"type": "error", "code": code, "detail": detail, "field": field_name})


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


async def _reap(*tasks: asyncio.Task[None]) -> None:
    """Cancel, then await; log what failed other than by cancellation."""
    for task in tasks:
        task.cancel()
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(result, Exception):
            log.error("websocket task failed", exc_info=result)
