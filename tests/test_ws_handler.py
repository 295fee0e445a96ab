"""ws.handler over a real aiohttp server on 127.0.0.1 and real aiohttp client WebSockets."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from engine.effects import (
    CallAnswered,
    CallEnded,
    CallStarted,
    CallTransferred,
    CallUpdated,
    OperatorLoggedIn,
    OperatorStatusChanged,
)
from engine.model import Call, CallStatus, Operator, OperatorStatus, Queue, QueueMember
from tests.helpers import publish_message
from ws.access import Viewer
from ws.fakes import FakeAuthenticator
from ws.handler import WebSocketEndpoint, WsSession
from ws.hub import Hub

T0 = datetime(2025, 1, 1, 14, 30, tzinfo=UTC)
T_PUB = datetime(2025, 1, 1, 14, 35, 1, tzinfo=UTC)
TS = "2025-01-01T14:35:01Z"
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

OP_A1 = Operator(id="op-a1", extension="1001", name="Ann", group_id="g-a", last_activity=T0,
                 status=OperatorStatus.ONLINE)
OP_A2 = Operator(id="op-a2", extension="1002", name="Abe", group_id="g-a")
OP_B1 = Operator(id="op-b1", extension="2001", name="Bob", group_id="g-b", last_activity=T0)
CALL_A = Call(id="call-a", channel_id="ch-a", caller_number="+79001234567", start_time=T0,
              group_ids=("g-a",), offered_operator_ids=("op-a1",), queue_name="general")
CALL_B = Call(id="call-b", channel_id="ch-b", caller_number="+79007654321", start_time=T0,
              group_ids=("g-b",), offered_operator_ids=("op-b1",))

USERS = {
    "admin": Viewer("u-admin", "admin"),
    "sup-a": Viewer("u-sup-a", "supervisor", group_id="g-a"),
    "oper-a1": Viewer("u-a1", "operator", group_id="g-a", operator_id="op-a1"),
}


def user_json(viewer: Viewer) -> dict[str, Any]:
    return {"id": viewer.user_id, "role": viewer.role, "group_id": viewer.group_id}


@dataclasses.dataclass
class Stack:
    hub: Hub
    auth: FakeAuthenticator
    endpoint: WebSocketEndpoint
    server: TestServer
    http: aiohttp.ClientSession
    calls: list[Call]
    operators: list[Operator]

    def url(self, token: str | None = None) -> str:
        url = self.server.make_url("/ws/events")
        return str(url.with_query(token=token) if token else url)

    def login(self, name: str, *, ttl: float = 3600.0) -> str:
        """A token (= jti) for one of USERS."""
        token = f"tok-{name}-{time.monotonic_ns()}"
        viewer = USERS[name]
        self.auth.add(token, WsSession(viewer, user_json(viewer), time.time() + ttl, jti=token))
        return token

    async def connect(self, token: str) -> aiohttp.ClientWebSocketResponse:
        """Connected, authenticated (by ?token=), auth_ok and snapshot read."""
        ws = await self.http.ws_connect(self.url(token))
        assert (await recv(ws))["type"] == "auth_ok"
        assert (await recv(ws))["type"] == "snapshot"
        return ws


@contextlib.asynccontextmanager
async def serve(**options: Any) -> AsyncIterator[Stack]:
    hub = Hub(clock=lambda: T_PUB)
    auth = FakeAuthenticator()
    calls = [CALL_A, CALL_B]
    operators = [OP_A1, OP_A2, OP_B1]
    endpoint = WebSocketEndpoint(hub, auth, lambda: (list(calls), list(operators)), **options)
    app = web.Application()
    app.router.add_get("/ws/events", endpoint.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    http = aiohttp.ClientSession()
    try:
        yield Stack(hub, auth, endpoint, server, http, calls, operators)
    finally:
        await endpoint.close_all()
        await http.close()
        await server.close()


async def recv(ws: aiohttp.ClientWebSocketResponse, within: float = 5.0) -> Any:
    msg = await ws.receive(timeout=within)
    assert msg.type is WSMsgType.TEXT, msg
    return orjson.loads(msg.data)


async def recv_close(ws: aiohttp.ClientWebSocketResponse, within: float = 5.0) -> tuple[int, str]:
    """Read until the server's close frame; (code, reason)."""
    while True:
        msg = await ws.receive(timeout=within)
        if msg.type is WSMsgType.CLOSE:
            return msg.data, msg.extra
        assert msg.type is WSMsgType.TEXT, msg


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# -- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["query", "message"])
async def test_auth_ok_then_snapshot(by: str) -> None:
    async with serve() as s:
        s.hub.publish([CallStarted(CALL_A), CallStarted(CALL_B)])  # ids 1, 2 before we connect
        token = s.login("admin")
        if by == "query":
            ws = await s.http.ws_connect(s.url(token))
        else:
            ws = await s.http.ws_connect(s.url())
            await ws.send_str(orjson.dumps({"type": "auth", "token": token}).decode())
        assert await recv(ws) == {
            "type": "auth_ok",
            "user": {"id": "u-admin", "role": "admin", "group_id": None},
        }
        snapshot = await recv(ws)
        assert ISO_RE.match(snapshot.pop("ts"))
        assert snapshot == {
            "type": "snapshot",
            "id": 2,
            "data": {
                "calls": [
                    {"call_id": "call-a", "channel_id": "ch-a", "caller_number": "+79001234567",
                     "status": "incoming", "start_time": "2025-01-01T14:30:00Z",
                     "answer_time": None, "operator_id": None, "queue": "general",
                     "direction": "inbound"},
                    {"call_id": "call-b", "channel_id": "ch-b", "caller_number": "+79007654321",
                     "status": "incoming", "start_time": "2025-01-01T14:30:00Z",
                     "answer_time": None, "operator_id": None, "queue": None,
                     "direction": "inbound"},
                ],
                "operators": [
                    {"operator_id": "op-a1", "extension": "1001", "name": "Ann",
                     "status": "online", "status_detail": None, "activity": "available",
                     "pause_reason": None, "current_calls": 0,
                     "max_concurrent_calls": 1, "last_activity": "2025-01-01T14:30:00Z",
                     "group_id": "g-a"},
                    {"operator_id": "op-a2", "extension": "1002", "name": "Abe",
                     "status": "offline", "status_detail": None, "activity": None,
                     "pause_reason": None, "current_calls": 0,
                     "max_concurrent_calls": 1, "last_activity": None, "group_id": "g-a"},
                    {"operator_id": "op-b1", "extension": "2001", "name": "Bob",
                     "status": "offline", "status_detail": None, "activity": None,
                     "pause_reason": None, "current_calls": 0,
                     "max_concurrent_calls": 1, "last_activity": "2025-01-01T14:30:00Z",
                     "group_id": "g-b"},
                ],
                "queues": [],
            },
        }
        s.hub.publish([CallEnded(dataclasses.replace(CALL_B, status=CallStatus.MISSED,
                                                     end_time=T0 + timedelta(seconds=9)))])
        assert await recv(ws) == {"id": 3, "ts": TS, "type": "call_ended", "data": {
            "call_id": "call-b", "end_time": "2025-01-01T14:30:09Z", "duration": 0,
            "status": "missed"}}
        await ws.close()
        await eventually(lambda: s.hub.subscriber_count == 0 and s.endpoint.client_count == 0)


async def test_snapshot_per_role() -> None:
    queues = [
        Queue("support", 20, T0, members=(QueueMember("PJSIP/1001", operator_id="op-a1",
                                                      group_id="g-a"),)),
        Queue("sales", 20, T0, members=(QueueMember("PJSIP/2001", operator_id="op-b1",
                                                    group_id="g-b"),)),
    ]
    async with serve(queues=lambda: queues) as s:
        seen = {}
        for name in USERS:
            ws = await s.http.ws_connect(s.url(s.login(name)))
            await recv(ws)
            data = (await recv(ws))["data"]
            seen[name] = ([c["call_id"] for c in data["calls"]],
                          [o["operator_id"] for o in data["operators"]],
                          [q["queue"] for q in data["queues"]])
        assert seen == {
            "admin": (["call-a", "call-b"], ["op-a1", "op-a2", "op-b1"], ["support", "sales"]),
            "sup-a": (["call-a"], ["op-a1", "op-a2"], ["support"]),
            "oper-a1": (["call-a"], ["op-a1"], ["support"]),
        }


@pytest.mark.parametrize(
    ("first_message", "reason"),
    [
        ({"type": "auth", "token": "nope"}, "AUTH_001"),
        ({"type": "auth", "token": "expired"}, "AUTH_002"),
        ({"type": "auth", "token": "inactive"}, "AUTH_004"),
        ({"type": "auth"}, "AUTH_001"),
        ({"type": "ping"}, "AUTH_001"),
        ("not json", "AUTH_001"),
    ],
)
async def test_bad_auth_message_closes_4001(first_message: Any, reason: str) -> None:
    async with serve() as s:
        viewer = USERS["admin"]
        s.auth.add("expired", WsSession(viewer, {}, time.time() - 1, jti="j-expired"))
        s.auth.refuse("inactive", "AUTH_004", "user is inactive")
        ws = await s.http.ws_connect(s.url())
        text = first_message if isinstance(first_message, str) else orjson.dumps(first_message)
        await ws.send_str(text if isinstance(text, str) else text.decode())
        assert await recv_close(ws) == (4001, reason)
        assert s.hub.subscriber_count == 0


async def test_bad_query_token_closes_4001() -> None:
    async with serve() as s:
        ws = await s.http.ws_connect(s.url("nope"))
        assert await recv_close(ws) == (4001, "AUTH_001")


async def test_no_auth_in_time_closes_4001() -> None:
    async with serve(auth_timeout=0.2) as s:
        started = time.monotonic()
        ws = await s.http.ws_connect(s.url())
        assert await recv_close(ws) == (4001, "AUTH_001")
        assert 0.15 < time.monotonic() - started < 3


async def test_token_expiry_closes_4002() -> None:
    async with serve(revocation_poll=None) as s:
        ws = await s.connect(s.login("admin", ttl=0.3))
        assert await recv_close(ws) == (4002, "AUTH_002")
        await eventually(lambda: s.hub.subscriber_count == 0)


async def test_revocation_is_polled_and_closes_4002() -> None:
    async with serve(revocation_poll=0.05) as s:
        token = s.login("admin")
        ws = await s.connect(token)
        other = await s.connect(s.login("sup-a"))
        s.auth.revoke(token)  # the jti is the token in these tests
        assert await recv_close(ws) == (4002, "AUTH_001")
        assert not other.closed  # another token is not affected
        s.hub.publish([CallStarted(CALL_A)])
        assert (await recv(other))["type"] == "call_started"


async def test_endpoint_revoke_closes_at_once() -> None:
    async with serve(revocation_poll=None) as s:
        token = s.login("oper-a1")
        ws = await s.connect(token)
        assert s.endpoint.revoke(token) == 1
        assert await recv_close(ws, within=1) == (4002, "AUTH_001")
        assert s.endpoint.revoke(token) == 0
        assert s.auth.revocation_checks == 0


class FlakyAuthenticator(FakeAuthenticator):
    """The denylist is down: authenticate and is_revoked fail (not a refusal)."""

    def __init__(self, *, fail_authenticate: bool) -> None:
        super().__init__()
        self.fail_authenticate = fail_authenticate

    async def authenticate(self, token: str) -> WsSession:
        if self.fail_authenticate:
            raise ConnectionError("redis is down")
        return await super().authenticate(token)

    async def revoked(self, sessions: Sequence[WsSession]) -> list[bool]:
        await super().revoked(sessions)
        raise ConnectionError("redis is down")


async def test_authenticator_outage() -> None:
    async with serve(revocation_poll=0.02) as s:
        s.auth = s.endpoint._auth = FlakyAuthenticator(fail_authenticate=True)
        ws = await s.http.ws_connect(s.url("anything"))
        assert await recv_close(ws) == (1011, "auth unavailable")

        s.auth = s.endpoint._auth = FlakyAuthenticator(fail_authenticate=False)
        ws = await s.connect(s.login("admin"))
        await eventually(lambda: s.auth.revocation_checks >= 3)
        s.hub.publish([CallStarted(CALL_A)])  # fail open: still connected
        assert (await recv(ws))["type"] == "call_started"


async def test_close_all_says_going_away() -> None:
    async with serve() as s:
        ws = await s.connect(s.login("admin"))
        unauthenticated = await s.http.ws_connect(s.url())
        await eventually(lambda: len(s.endpoint._pending) == 1)
        await s.endpoint.close_all()
        assert await recv_close(ws) == (1001, "server shutdown")
        assert await recv_close(unauthenticated) == (1001, "server shutdown")
        assert s.endpoint.client_count == 0 and s.hub.subscriber_count == 0


async def test_snapshot_failure_closes_1011() -> None:
    async with serve() as s:
        def broken() -> tuple[list[Call], list[Operator]]:
            raise RuntimeError("state unavailable")

        s.endpoint._snapshot = broken
        ws = await s.http.ws_connect(s.url(s.login("admin")))
        assert await recv_close(ws) == (1011, "snapshot failed")
        await eventually(lambda: s.hub.subscriber_count == 0 and s.endpoint.client_count == 0)


# -- events ---------------------------------------------------------------------------------


async def test_each_role_gets_exactly_its_events() -> None:
    answered = dataclasses.replace(CALL_A, status=CallStatus.ANSWERED, operator_id="op-a1",
                                   answer_time=T0 + timedelta(seconds=5))
    ended = dataclasses.replace(answered, status=CallStatus.COMPLETED,
                                end_time=T0 + timedelta(seconds=195))
    busy_b1 = dataclasses.replace(OP_B1, status=OperatorStatus.BUSY, status_detail="manual")
    async with serve() as s:
        sockets = {name: await s.connect(s.login(name)) for name in USERS}
        s.hub.publish([
            CallStarted(CALL_A),                                  # 1
            CallStarted(CALL_B),                                  # 2
            CallUpdated(CALL_A),                                  # not published
            OperatorLoggedIn(OP_A1),                              # 3
            OperatorStatusChanged(busy_b1, previous="online"),    # 4
            CallAnswered(answered),                               # 5
            CallTransferred(answered, "op-a1", "op-a2"),          # 6
            CallEnded(ended),                                     # 7
        ])
        publish_message(s.hub, "marker", {})                      # 8: everyone, ends the stream
        received = {}
        for name, ws in sockets.items():
            received[name] = []
            while (msg := await recv(ws))["type"] != "marker":
                received[name].append(msg)

    m1 = {"id": 1, "ts": TS, "type": "call_started", "data": {
        "call_id": "call-a", "channel_id": "ch-a", "caller_number": "+79001234567",
        "timestamp": "2025-01-01T14:30:00Z"}}
    m2 = {"id": 2, "ts": TS, "type": "call_started", "data": {
        "call_id": "call-b", "channel_id": "ch-b", "caller_number": "+79007654321",
        "timestamp": "2025-01-01T14:30:00Z"}}
    m3 = {"id": 3, "ts": TS, "type": "operator_logged_in", "data": {
        "operator_id": "op-a1", "extension": "1001", "timestamp": "2025-01-01T14:30:00Z"}}
    m4 = {"id": 4, "ts": TS, "type": "operator_status_changed", "data": {
        "operator_id": "op-b1", "status": "busy", "timestamp": "2025-01-01T14:30:00Z",
        "activity": "paused", "pause_reason": "manual", "previous_status": "online"}}
    m5 = {"id": 5, "ts": TS, "type": "call_answered", "data": {
        "call_id": "call-a", "operator_id": "op-a1", "answer_time": "2025-01-01T14:30:05Z"}}
    m6 = {"id": 6, "ts": TS, "type": "call_transferred", "data": {
        "call_id": "call-a", "from_operator_id": "op-a1", "to_operator_id": "op-a2",
        "timestamp": TS}}
    m7 = {"id": 7, "ts": TS, "type": "call_ended", "data": {
        "call_id": "call-a", "end_time": "2025-01-01T14:33:15Z", "duration": 190,
        "status": "completed"}}
    assert received == {
        "admin": [m1, m2, m3, m4, m5, m6, m7],
        "sup-a": [m1, m3, m5, m6, m7],
        "oper-a1": [m1, m3, m5, m6, m7],
    }


async def test_requests_ping_subscribe_and_errors() -> None:
    ended_b = dataclasses.replace(CALL_B, status=CallStatus.MISSED, end_time=T0)
    async with serve() as s:
        ws = await s.connect(s.login("admin"))
        await ws.send_str('{"type":"ping"}')
        assert await recv(ws) == {"type": "pong"}
        await ws.send_str(
            '{"type":"subscribe","events":["call_ended","call_started","call_ended"]}'
        )
        assert await recv(ws) == {"type": "subscribed", "events": ["call_started", "call_ended"]}
        await ws.send_str('{"type":"subscribe","events":["call_ended","bogus"]}')
        assert await recv(ws) == {"type": "error", "code": "WS_001",
                                  "detail": "unknown event types: bogus", "field": "events"}
        await ws.send_str('{"type":"subscribe","events":"call_ended"}')
        assert await recv(ws) == {"type": "error", "code": "WS_001",
                                  "detail": "events must be a list of event types",
                                  "field": "events"}
        await ws.send_str('{"type":"dance"}')
        assert await recv(ws) == {"type": "error", "code": "WS_002",
                                  "detail": "unknown message type: 'dance'", "field": None}
        await ws.send_str("[1, 2")
        assert await recv(ws) == {"type": "error", "code": "WS_002",
                                  "detail": "messages must be JSON objects", "field": None}
        await ws.send_bytes(b"\x00")
        assert (await recv(ws))["code"] == "WS_002"

        # The failed requests left the first filter in place.
        s.hub.publish([OperatorLoggedIn(OP_A1), CallEnded(ended_b), CallStarted(CALL_A)])
        assert [(m["id"], m["type"]) for m in (await recv(ws), await recv(ws))] == [
            (2, "call_ended"), (3, "call_started")]

        await ws.send_str('{"type":"subscribe"}')
        assert await recv(ws) == {"type": "subscribed", "events": [
            "call_started", "call_answered", "call_transferred", "call_ended",
            "operator_status_changed", "operator_logged_in", "operator_logged_out",
            "queue_updated"]}
        s.hub.publish([OperatorLoggedIn(OP_A1)])
        assert (await recv(ws))["type"] == "operator_logged_in"


def small_receive_buffer(addr_info: Any) -> socket.socket:
    """A client socket whose kernel buffer fills fast, so an idle reader backs up the server."""
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family, type_, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


async def test_slow_client_is_closed_1013_and_fast_client_keeps_receiving() -> None:
    async with serve(queue_size=8, close_timeout=5.0) as s:
        fast = await s.connect(s.login("admin"))
        slow_http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(socket_factory=small_receive_buffer)
        )
        try:
            slow = await slow_http.ws_connect(s.url(s.login("admin")))
            assert (await recv(slow))["type"] == "auth_ok"
            assert (await recv(slow))["type"] == "snapshot"

            fast_ids: list[int] = []

            async def read_fast() -> None:
                while True:
                    fast_ids.append((await recv(fast))["id"])

            reader = asyncio.create_task(read_fast())
            pad = "x" * 65536
            published = 0
            while s.hub.stats.dropped_clients == 0:  # the slow one is not reading at all
                assert published < 2000, "the slow client never overflowed"
                published = publish_message(s.hub, "bulk", {"pad": pad})
                await asyncio.sleep(0.001)
            await eventually(lambda: len(fast_ids) == published)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            assert fast_ids == list(range(1, published + 1))

            # The slow client gets what was buffered, then 1013; the fast one goes on.
            assert await recv_close(slow, within=10) == (1013, "slow consumer")
            s.hub.publish([CallStarted(CALL_A)])
            assert (await recv(fast))["id"] == published + 1
            assert s.hub.stats.dropped_clients == 1
            await eventually(lambda: s.hub.subscriber_count == 1)
        finally:
            await slow_http.close()


async def test_bursts_reach_every_client_once_and_in_order() -> None:
    """Clients are served by one socket write per burst; ids stay complete and ordered, also
    for a client that connects in the middle of a burst."""
    async with serve() as s:
        early = await s.connect(s.login("admin"))
        await eventually(lambda: s.hub.writer_count == 1)
        for _ in range(50):  # one burst: a single loop step
            publish_message(s.hub, "bulk", {"n": 1})
        late_task = asyncio.create_task(s.http.ws_connect(s.url(s.login("admin"))))
        for _ in range(5):
            for _ in range(20):
                publish_message(s.hub, "bulk", {"n": 2})
            await asyncio.sleep(0.001)
        late = await late_task
        assert (await recv(late))["type"] == "auth_ok"
        snapshot = await recv(late)
        for _ in range(30):
            publish_message(s.hub, "bulk", {"n": 3})
        total = s.hub.last_id
        got_early = [(await recv(early))["id"] for _ in range(total)]
        assert got_early == list(range(1, total + 1))
        got_late = [(await recv(late))["id"] for _ in range(total - snapshot["id"])]
        assert got_late == list(range(snapshot["id"] + 1, total + 1))
        assert s.hub.writer_count == 2
