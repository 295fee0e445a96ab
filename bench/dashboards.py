"""Dashboards in the bench process: N light WebSocket clients on one event loop, one clock.

Every received frame is stamped with ``time.monotonic()`` first and then attributed cheaply:
Switchboard envelopes start with ``{"id":N,`` (orjson keeps key order), so only the first copy
of each message is parsed; forwarded ARI frames start with ``{"bench_seq":K,``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import orjson

from bench.traffic import MessageKey

_MISSING = -1.0
_SEQ_PREFIX = '{"bench_seq":'
_ID_PREFIX = '{"id":'


@dataclass
class Collector:
    """Counts deliveries and latencies (seconds) of one phase."""

    send_times: list[float]
    triggers: dict[MessageKey, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    deliveries: int = 0
    first_arrival: float = 0.0
    last_arrival: float = 0.0
    unmatched: int = 0                     # deliveries of messages the calibration did not predict
    types: Counter[str] = field(default_factory=Counter)   # distinct messages per type
    _by_id: dict[int, float] = field(default_factory=dict)
    _seen: Counter[tuple[str, str]] = field(default_factory=Counter)

    def _arrived(self, t: float) -> None:
        if not self.deliveries:
            self.first_arrival = t
        self.deliveries += 1
        self.last_arrival = t

    def on_switchboard(self, t: float, data: str) -> None:
        if not data.startswith(_ID_PREFIX):
            return  # pong, subscribed, error ...
        self._arrived(t)
        mid = int(data[6:data.index(",", 6)])
        sent = self._by_id.get(mid)
        if sent is None:
            sent = self._by_id[mid] = self._attribute(data)
        if sent > 0:
            self.latencies.append(t - sent)
        else:
            self.unmatched += 1

    def _attribute(self, data: str) -> float:
        """First copy of message ``id``: the send time of the frame that caused it."""
        msg = orjson.loads(data)
        type_ = msg.get("type", "")
        body = msg.get("data") or {}
        entity = str(body.get("call_id") or body.get("operator_id"))
        n = self._seen[(type_, entity)]
        self._seen[(type_, entity)] += 1
        self.types[type_] += 1
        k = self.triggers.get((type_, entity, n))
        if k is None or k < 0 or self.send_times[k] <= 0:
            return _MISSING
        return self.send_times[k]

    def on_forwarded(self, t: float, data: str) -> None:
        if not data.startswith(_SEQ_PREFIX):
            return  # auth_ok
        self._arrived(t)
        k = int(data[13:data.index(",", 13)])
        sent = self.send_times[k]
        if sent > 0:
            self.latencies.append(t - sent)
        else:
            self.unmatched += 1


@runtime_checkable
class _Transport(Protocol):
    """The transport calls a dashboard makes; uvloop's transports have them without
    subclassing asyncio's."""

    def write(self, data: bytes) -> None: ...
    def is_closing(self) -> bool: ...
    def close(self) -> None: ...


class _Dashboard(asyncio.Protocol):
    """A minimal WebSocket client (RFC 6455) on a raw asyncio transport.

    A thousand aiohttp clients in one Python process cost ~25 us per delivered message, so the
    last of 1,000 dashboards would see every message ~25 ms late because of the bench itself.
    This one stamps the arrival time in ``data_received`` and does the least parsing it can.
    """

    def __init__(self, fleet: Fleet, request: bytes, hello: int,
                 on_message: Callable[[float, str], None]) -> None:
        self.fleet, self.request, self.hello, self.on_message = fleet, request, hello, on_message
        self.transport: _Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.ready = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, _Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        t = time.monotonic()
        buf = self.buffer
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self._fail(f"upgrade refused: {bytes(buf[:40])!r}")
                return
            del buf[: end + 4]
            self.upgraded = True
        while len(buf) >= 2:
            opcode, length = buf[0] & 0x0F, buf[1] & 0x7F
            offset = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, offset = struct.unpack_from("!H", buf, 2)[0], 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, offset = struct.unpack_from("!Q", buf, 2)[0], 10
            if len(buf) < offset + length:
                return
            payload = bytes(buf[offset: offset + length])
            del buf[: offset + length]
            self._frame(t, opcode, payload)

    def _frame(self, t: float, opcode: int, payload: bytes) -> None:
        if opcode == 0x1:
            if self.hello:
                self.hello -= 1
                if not self.hello and not self.ready.done():
                    self.ready.set_result(None)
                return
            self.on_message(t, payload.decode())
        elif opcode == 0x9:  # ping: answer with a (masked) pong
            self._send(0xA, payload)
        elif opcode == 0x8:
            self.close_code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else 1005
            if not self.fleet.closing:
                self.fleet.closes[str(self.close_code)] += 1
            if self.transport is not None:
                self.transport.close()

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(bytes((0x80 | opcode, 0x80 | len(payload))) + mask + masked)

    def _fail(self, why: str) -> None:
        self.fleet.failures[why] += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost: {exc}"))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._send(0x8, struct.pack("!H", 1000))
            self.transport.close()


@dataclass
class Fleet:
    """The N clients of one phase."""

    clients: list[_Dashboard] = field(default_factory=list)
    ready: int = 0
    closes: Counter[str] = field(default_factory=Counter)  # server-side closes, by code
    failures: Counter[str] = field(default_factory=Counter)
    closing: bool = False  # the bench is closing: closes from now on are not the server's

    async def close(self) -> None:
        self.closing = True
        for client in self.clients:
            client.close()
        await asyncio.sleep(0.1)  # let the close frames go out


async def connect_fleet(
    session: object, url: str, count: int,
    on_message: Callable[[float, str], None], *, hello: int, within: float = 60.0,
    parallel: int = 50,
) -> Fleet:
    """Open ``count`` sockets; each waits for ``hello`` frames (auth_ok, snapshot) before it
    counts as ready. Raises TimeoutError if they are not all ready ``within`` seconds."""
    del session  # the raw clients need none; kept so callers need not change
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    fleet = Fleet()
    gate = asyncio.Semaphore(parallel)
    loop = asyncio.get_running_loop()

    async def client() -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n").encode()
        async with gate:
            try:
                _, proto = await loop.create_connection(
                    lambda: _Dashboard(fleet, request, hello, on_message), host, port)
                fleet.clients.append(proto)
                await asyncio.wait_for(proto.ready, 30)
            except (OSError, ConnectionError, TimeoutError) as exc:
                fleet.failures[type(exc).__name__] += 1
                return
        fleet.ready += 1

    try:
        async with asyncio.timeout(within):
            await asyncio.gather(*(client() for _ in range(count)))
    except TimeoutError:
        await fleet.close()
        raise TimeoutError(
            f"only {fleet.ready}/{count} dashboards connected in {within:.0f} s "
            f"(failures: {dict(fleet.failures)})"
        ) from None
    if fleet.ready < count:
        await fleet.close()
        raise RuntimeError(f"only {fleet.ready}/{count} dashboards connected "
                           f"(failures: {dict(fleet.failures)}, closes: {dict(fleet.closes)})")
    return fleet
