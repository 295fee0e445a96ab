"""A fake Asterisk that speaks real ARI (REST + events WebSocket) over a real socket.

Tests drive it like a PBX: ``await fake.emit(event(...))`` pushes an event to every connected
events socket and updates the fake's channel/endpoint model, so ``GET /ari/channels`` matches
what was announced. The module-level builders (``channel``, ``bridge``, ``event`` ...) produce
dicts shaped like the ARI Swagger models and the captured trace.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import re
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

import orjson
from aiohttp import WSCloseCode, web
from aiohttp.typedefs import Handler

Json = dict[str, Any]

# -- builders -------------------------------------------------------------------------------


def ari_timestamp(at: datetime | float | None = None) -> str:
    """ARI time format: milliseconds and an offset without colon, ``...52.672+0000``."""
    if at is None:
        at = datetime.now(UTC)
    elif isinstance(at, int | float):
        at = datetime.fromtimestamp(at, UTC)
    elif at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}{at:%z}"


def caller_id(name: str = "", number: str = "") -> Json:
    return {"name": name, "number": number}


def channel(
    id: str,
    name: str,
    state: str = "Down",
    *,
    caller_number: str = "",
    caller_name: str = "",
    connected_number: str = "",
    connected_name: str = "",
    exten: str = "",
    context: str = "",
    priority: int = 1,
    app_name: str = "",
    app_data: str = "",
    creationtime: str | None = None,
    language: str = "en",
    accountcode: str = "",
) -> Json:
    """A Channel model dict, keys in the order Asterisk writes them."""
    return {
        "id": id,
        "name": name,
        "state": state,
        "protocol_id": "",
        "caller": caller_id(caller_name, caller_number),
        "connected": caller_id(connected_name, connected_number),
        "accountcode": accountcode,
        "dialplan": {
            "context": context,
            "exten": exten,
            "priority": priority,
            "app_name": app_name,
            "app_data": app_data,
        },
        "creationtime": creationtime or ari_timestamp(),
        "language": language,
    }


def bridge(
    id: str, channels: list[str] | tuple[str, ...] = (), creationtime: str | None = None
) -> Json:
    """A Bridge model dict for the basic mixing bridge Queue/Dial create."""
    return {
        "id": id,
        "technology": "simple_bridge",
        "bridge_type": "mixing",
        "bridge_class": "basic",
        "creator": "",
        "name": "",
        "channels": list(channels),
        "creationtime": creationtime or ari_timestamp(),
        "video_mode": "none",
    }


def endpoint(
    technology: str, resource: str, state: str = "online", channel_ids: tuple[str, ...] = ()
) -> Json:
    return {
        "technology": technology,
        "resource": resource,
        "state": state,
        "channel_ids": list(channel_ids),
    }


def device_state(name: str, state: str) -> Json:
    return {"name": name, "state": state}


def event(type: str, **fields: Any) -> Json:
    """An event dict stamped now; ``application``/``asterisk_id`` are filled by ``emit``."""
    return {"type": type, "timestamp": fields.pop("timestamp", None) or ari_timestamp(), **fields}


# Hangup reasons accepted by DELETE /channels/{id} and the Q.850 cause each one sets.
HANGUP_REASONS: dict[str, tuple[int, str]] = {
    "normal": (16, "Normal Clearing"),
    "busy": (17, "User busy"),
    "congestion": (34, "Circuit/channel congestion"),
    "no_answer": (19, "User alerting, no answer"),
    "timeout": (18, "No user responding"),
    "rejected": (21, "Call Rejected"),
    "unallocated": (1, "Unallocated (unassigned) number"),
    "normal_unspecified": (31, "Normal, unspecified"),
    "number_incomplete": (28, "Invalid number format (address incomplete)"),
    "codec_mismatch": (58, "Bearer capability not available"),
    "interworking": (127, "Interworking, unspecified"),
    "failure": (38, "Network out of order"),
    "answered_elsewhere": (26, "Answered elsewhere"),
}


class RecordedRequest(NamedTuple):
    method: str
    path: str
    query: dict[str, str]
    body: Any


class _Scripted(NamedTuple):
    status: int
    body: Any
    delay: float


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json(status, {"message": message})


def _copy(data: Any) -> Any:
    """Detached copy, so later edits by the caller cannot change what was sent or stored."""
    return orjson.loads(orjson.dumps(data))


class FakeAsterisk:
    """ARI on 127.0.0.1 with a programmable model of channels, endpoints and device states."""

    def __init__(
        self,
        *,
        username: str = "asterisk",
        password: str = "secret",
        app: str = "switchboard",
        version: str = "20.5.0",
        asterisk_id: str = "02:fc:00:00:00:01",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.username, self.password, self.app = username, password, app
        self.version, self.asterisk_id = version, asterisk_id
        self.host, self.port = host, port
        self.reject_auth = False
        self.requests: list[RecordedRequest] = []
        self.channels: dict[str, Json] = {}
        self.endpoints: dict[str, Json] = {}  # "PJSIP/1001" -> Endpoint
        self.device_states: dict[str, str] = {}
        self.not_in_stasis: set[str] = set()  # channel ids whose answer gets 409
        self.originate_context = "from-internal"  # where an originated phone channel starts
        self.originated: dict[str, Json] = {}  # channel id -> the dialplan place it goes to
        self.sent: list[Json] = []  # every event emitted, as sent
        self._scripts: dict[tuple[str, str], deque[_Scripted]] = {}
        self._sockets: dict[web.WebSocketResponse, web.Request] = {}
        self._socket_apps: dict[web.WebSocketResponse, str] = {}
        self._changed = asyncio.Condition()
        self._closing = asyncio.Event()
        self._ids = itertools.count()
        self._epoch = int(time.time())
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> Self:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/ari/events", self._events)
        r.add_get("/ari/asterisk/info", self._info)
        r.add_get("/ari/asterisk/ping", self._ping)
        r.add_get("/ari/channels", self._list_channels)
        r.add_post("/ari/channels", self._originate)
        r.add_get("/ari/channels/{id}", self._get_channel)
        r.add_delete("/ari/channels/{id}", self._hangup)
        r.add_post("/ari/channels/{id}/answer", self._answer)
        r.add_get("/ari/endpoints", self._list_endpoints)
        r.add_get("/ari/endpoints/{tech}", self._list_endpoints)
        r.add_get("/ari/endpoints/{tech}/{resource}", self._get_endpoint)
        r.add_get("/ari/deviceStates", self._list_device_states)
        self._closing.clear()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.url = f"http://{self.host}:{self.port}"
        return self

    async def stop(self) -> None:
        self._closing.set()  # wakes scripted slow answers so shutdown does not wait on them
        await self.drop_connections()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- programmable API ---------------------------------------------------------------------

    async def emit(self, ev: Json) -> Json:
        """Send an event to every events socket and apply it to the model; return it as sent."""
        ev = _copy(ev)
        ev.setdefault("timestamp", ari_timestamp())
        ev.setdefault("application", self.app)
        ev.setdefault("asterisk_id", self.asterisk_id)
        self._apply(ev)
        self.sent.append(ev)
        await self.send_raw(orjson.dumps(ev).decode())
        return ev

    async def send_raw(self, text: str) -> None:
        """Push a text frame as is (even malformed) to every events socket."""
        for ws in list(self._sockets):
            try:
                await ws.send_str(text)
            except (ConnectionError, RuntimeError):
                self._sockets.pop(ws, None)  # the peer went away mid-send

    def set_channel(self, ch: Json, *, in_stasis: bool = True) -> None:
        """Add or replace a channel without telling anyone (as if it changed while offline)."""
        self.channels[ch["id"]] = _copy(ch)
        (self.not_in_stasis.discard if in_stasis else self.not_in_stasis.add)(ch["id"])

    def remove_channel(self, channel_id: str) -> None:
        """Forget a channel silently (e.g. "call ended while the engine was disconnected")."""
        self.channels.pop(channel_id, None)
        self.not_in_stasis.discard(channel_id)

    def set_endpoint(self, ep: Json) -> None:
        self.endpoints[f"{ep['technology']}/{ep['resource']}"] = _copy(ep)

    def set_device_state(self, name: str, state: str) -> None:
        self.device_states[name] = state

    def script_response(
        self, method: str, path: str, status: int, body: Any = None, *, delay: float = 0.0
    ) -> None:
        """The next ``method path`` request gets this answer (after ``delay`` seconds).

        ``path`` may omit the ``/ari`` prefix; ``body`` None means no body, a str is sent raw.
        """
        if not path.startswith("/ari"):
            path = "/ari" + path
        self._scripts.setdefault((method.upper(), path), deque()).append(
            _Scripted(status, body, delay)
        )

    @property
    def connected_clients(self) -> int:
        return len(self._sockets)

    async def wait_for_client(self, count: int = 1, within: float = 5.0) -> None:
        """Wait until at least ``count`` events sockets are connected (TimeoutError after
        ``within`` seconds)."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self._sockets) >= count)

    async def drop_connections(self, *, abrupt: bool = False) -> None:
        """Close every events socket (``abrupt``: cut the TCP connection, no close frame)."""
        sockets = list(self._sockets.items())
        self._sockets.clear()
        if abrupt:
            for _ws, request in sockets:
                if request.transport is not None:
                    request.transport.close()
        else:
            await asyncio.gather(
                *(ws.close(code=WSCloseCode.GOING_AWAY) for ws, _ in sockets),
                return_exceptions=True,
            )
        await self._notify()

    def new_channel_id(self) -> str:
        """A fresh uniqueid in Asterisk's ``<epoch>.<counter>`` form."""
        return f"{self._epoch}.{next(self._ids)}"

    # -- model --------------------------------------------------------------------------------

    def _apply(self, ev: Json) -> None:
        kind = ev.get("type")
        ch = ev.get("channel")
        if isinstance(ch, dict) and "id" in ch:
            if kind == "ChannelDestroyed":
                self.remove_channel(ch["id"])
            elif kind == "ChannelCreated" or ch["id"] in self.channels:
                self.channels[ch["id"]] = ch  # every channel event carries a fresh snapshot
        if kind == "EndpointStateChange" and isinstance(ev.get("endpoint"), dict):
            self.set_endpoint(ev["endpoint"])
        if kind == "DeviceStateChanged" and isinstance(ev.get("device_state"), dict):
            self.device_states[ev["device_state"]["name"]] = ev["device_state"]["state"]

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- HTTP ---------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                body = raw.decode("utf-8", "replace")
        self.requests.append(
            RecordedRequest(request.method, request.path, dict(request.query), body)
        )
        if not self._authorized(request):
            return web.Response(
                status=401,
                body=orjson.dumps({"message": "Authentication required"}),
                content_type="application/json",
                headers={"WWW-Authenticate": 'Basic realm="Asterisk REST Interface"'},
            )
        scripted = self._scripts.get((request.method, request.path))
        if scripted:
            answer = scripted.popleft()
            if answer.delay:
                try:
                    await asyncio.wait_for(self._closing.wait(), answer.delay)
                except TimeoutError:
                    pass
            if answer.body is None:
                return web.Response(status=answer.status)
            if isinstance(answer.body, str):
                return web.Response(status=answer.status, text=answer.body)
            return _json(answer.status, answer.body)
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return _error(404, "Resource not found")  # e.g. a trailing slash, like Asterisk
        except web.HTTPMethodNotAllowed:
            return _error(405, "Invalid method")

    def _authorized(self, request: web.Request) -> bool:
        if self.reject_auth:
            return False
        expected = f"{self.username}:{self.password}"
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                return base64.b64decode(header[6:]).decode() == expected
            except (binascii.Error, UnicodeDecodeError):
                return False
        return request.query.get("api_key") == expected

    async def _events(self, request: web.Request) -> web.StreamResponse:
        app = request.query.get("app")
        if not app:
            return _error(400, "Missing params: app")
        ws = web.WebSocketResponse(protocols=("ari",))
        await ws.prepare(request)
        # One socket per application: a newcomer takes over, like Asterisk does.
        for old, old_app in list(self._socket_apps.items()):
            if old_app == app and old in self._sockets:
                self._sockets.pop(old, None)
                replaced = event("ApplicationReplaced", application=app)
                replaced["asterisk_id"] = self.asterisk_id
                await old.send_str(orjson.dumps(replaced).decode())
                await old.close()
        self._sockets[ws] = request
        self._socket_apps[ws] = app
        await self._notify()
        try:
            async for _msg in ws:
                pass  # ARI clients send nothing we act on; pings are answered by aiohttp
        finally:
            self._sockets.pop(ws, None)
            self._socket_apps.pop(ws, None)
            await self._notify()
        return ws

    async def _info(self, request: web.Request) -> web.Response:
        now = ari_timestamp()
        info = {
            "build": {
                "os": "Linux",
                "kernel": "6.1.0",
                "machine": "x86_64",
                "options": "OPTIONAL_API",
                "date": "2026-01-01 00:00:00 UTC",
                "user": "root",
            },
            "system": {"version": self.version, "entity_id": self.asterisk_id},
            "config": {
                "name": "",
                "default_language": "en",
                "setid": {"user": "", "group": ""},
            },
            "status": {"startup_time": now, "last_reload_time": now},
        }
        only = request.query.get("only")
        if only:
            info = {k: v for k, v in info.items() if k in only.split(",")}
        return _json(200, info)

    async def _ping(self, request: web.Request) -> web.Response:
        return _json(
            200, {"asterisk_id": self.asterisk_id, "ping": "pong", "timestamp": ari_timestamp()}
        )

    async def _list_channels(self, request: web.Request) -> web.Response:
        return _json(200, list(self.channels.values()))

    async def _get_channel(self, request: web.Request) -> web.Response:
        ch = self.channels.get(request.match_info["id"])
        return _json(200, ch) if ch else _error(404, "Channel not found")

    async def _answer(self, request: web.Request) -> web.Response:
        cid = request.match_info["id"]
        ch = self.channels.get(cid)
        if ch is None:
            return _error(404, "Channel not found")
        if cid in self.not_in_stasis:
            return _error(409, "Channel not in Stasis application")
        if ch["state"] != "Up":
            await self.emit(event("ChannelStateChange", channel={**ch, "state": "Up"}))
        return web.Response(status=204)

    async def _hangup(self, request: web.Request) -> web.Response:
        cid = request.match_info["id"]
        reason = request.query.get("reason", "normal")
        code = request.query.get("reason_code")
        if code is not None:
            if not code.isdigit():
                return _error(400, "Invalid reason for hangup provided")
            cause = (int(code), "Unknown")
        elif reason in HANGUP_REASONS:
            cause = HANGUP_REASONS[reason]
        else:
            return _error(400, "Invalid reason for hangup provided")
        ch = self.channels.get(cid)
        if ch is None:
            return _error(404, "Channel not found")
        await self.emit(event("ChannelHangupRequest", cause=cause[0], channel=ch))
        await self.emit(event("ChannelDestroyed", cause=cause[0], cause_txt=cause[1], channel=ch))
        return web.Response(status=204)

    async def _originate(self, request: web.Request) -> web.Response:
        q = request.query
        target = q.get("endpoint", "")
        if not target:
            return _error(400, "Endpoint must be specified")
        if "/" not in target:
            return _error(400, "Endpoint parameter must be in the format Tech/Resource")
        if q.get("app") and any(q.get(k) for k in ("extension", "context", "label")):
            return _error(
                400, "'app' is mutually exclusive with 'context', 'extension' and 'label'"
            )
        cid = q.get("channelId") or self.new_channel_id()
        if cid in self.channels:
            return _error(409, "Channel with given unique ID already exists")
        try:
            priority = int(q.get("priority", "1"))
        except ValueError:
            return _error(400, "priority must be a number")
        name, number = _parse_caller_id(q.get("callerId", ""))
        suffix = f"-{next(self._ids):08x}"
        # Like Asterisk: the new channel starts at the phone's own place in the dialplan (the
        # extension and context it is dialled as); it moves to ``context``/``extension`` only
        # after the phone answers. The dial of an originated channel has no caller.
        resource = target.partition("/")[2].partition("@")[0]
        ch = channel(
            cid,
            target + suffix + (";1" if target.startswith("Local/") else ""),
            "Down",
            caller_name=name,
            caller_number=number,
            context=self.originate_context,
            exten=resource,
            priority=priority,
        )
        self.originated[cid] = {"context": q.get("context", "default"),
                                "exten": q.get("extension", "s")}
        await self.emit(event("ChannelCreated", channel=ch))
        await self.emit(event("Dial", dialstatus="", forward="", dialstring=target, peer=ch))
        return _json(200, ch)

    async def _list_endpoints(self, request: web.Request) -> web.Response:
        tech = request.match_info.get("tech")
        eps = [ep for ep in self.endpoints.values() if tech is None or ep["technology"] == tech]
        if tech is not None and not eps:
            return _error(404, "Endpoints not found")
        return _json(200, eps)

    async def _get_endpoint(self, request: web.Request) -> web.Response:
        key = f"{request.match_info['tech']}/{request.match_info['resource']}"
        ep = self.endpoints.get(key)
        return _json(200, ep) if ep else _error(404, "Endpoint not found")

    async def _list_device_states(self, request: web.Request) -> web.Response:
        return _json(200, [device_state(n, s) for n, s in self.device_states.items()])


def _parse_caller_id(text: str) -> tuple[str, str]:
    """``"Name" <number>`` / ``Name <number>`` / ``number`` -> (name, number)."""
    m = re.fullmatch(r'\s*"?([^"<]*?)"?\s*<([^>]*)>\s*', text)
    if m:
        return m.group(1).strip(), m.group(2).strip()
    return "", text.strip()


# -- trace replay ---------------------------------------------------------------------------

# A channel name's unique suffix: PJSIP/1001-0000000a, Local/1001@agents-00000002;1
_NAME_SUFFIX = re.compile(r"^([A-Za-z0-9]+/.+)-([0-9a-f]{8})(;[12])?$")


def replay_trace(path: str | Path, rekey: str | None = None) -> Iterator[Json]:
    """Yield the ``event`` dicts of a ``*.ari.jsonl`` trace, in file order.

    With ``rekey`` (short and alphanumeric, e.g. ``"r17"``), channel ids become
    ``"{rekey}-{id}"``, bridge ids ``"{rekey}-{id}"`` and channel names get the key inside
    their unique suffix (``Local/1001@agents-r17x00000002;1``), so many replays of one call can
    run side by side without colliding; extensions, numbers and device names stay as they are.
    """
    ids: set[str] = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                ev = orjson.loads(line)["event"]
                yield ev if rekey is None else _rekey(ev, rekey, ids)


def _rekey(node: Any, key: str, ids: set[str]) -> Any:
    if isinstance(node, dict):
        if "id" in node and ("caller" in node or "bridge_type" in node):
            ids.add(node["id"])  # channel or bridge: remember its id for later references
        return {k: _rekey(v, key, ids) for k, v in node.items()}
    if isinstance(node, list):
        return [_rekey(v, key, ids) for v in node]
    if isinstance(node, str):
        if node in ids:
            return f"{key}-{node}"
        m = _NAME_SUFFIX.match(node)
        if m:
            return f"{m.group(1)}-{key}x{m.group(2)}{m.group(3) or ''}"
    return node
