"""Dashboards in the bench process: N WebSocket clients on one aiohttp session, one clock.

Every received frame is stamped with ``time.monotonic()`` first and then attributed cheaply:
Switchboard envelopes start with ``{"id":N,`` (orjson keeps key order), so only the first copy
of each message is parsed; forwarded ARI frames start with ``{"bench_seq":K,``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import orjson
from aiohttp import WSMsgType

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


@dataclass
class Fleet:
    """The N clients of one phase."""

    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    sockets: list[aiohttp.ClientWebSocketResponse] = field(default_factory=list)
    ready: int = 0
    closes: Counter[str] = field(default_factory=Counter)  # server-side closes, by code
    failures: Counter[str] = field(default_factory=Counter)
    closing: bool = False  # the bench is closing: closes from now on are not the server's

    async def close(self) -> None:
        self.closing = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await asyncio.gather(*(ws.close() for ws in self.sockets if not ws.closed),
                                     return_exceptions=True)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def connect_fleet(
    session: aiohttp.ClientSession, url: str, count: int,
    on_message: Callable[[float, str], None], *, hello: int, within: float = 60.0,
    parallel: int = 50,
) -> Fleet:
    """Open ``count`` sockets; each waits for ``hello`` frames (auth_ok, snapshot) before it
    counts as ready. Raises TimeoutError if they are not all ready ``within`` seconds."""
    fleet = Fleet()
    gate = asyncio.Semaphore(parallel)
    all_ready = asyncio.Event()

    async def client() -> None:
        try:
            async with gate:
                ws = await session.ws_connect(url, compress=0, max_msg_size=0, autoping=True)
                fleet.sockets.append(ws)
                for _ in range(hello):
                    msg = await ws.receive(timeout=30)
                    if msg.type is not WSMsgType.TEXT:
                        fleet.failures[f"hello {msg.type.name} {ws.close_code}"] += 1
                        return
            fleet.ready += 1
            if fleet.ready == count:
                all_ready.set()
            mono = time.monotonic
            text = WSMsgType.TEXT
            while True:
                msg = await ws.receive()
                t = mono()
                if msg.type is text:
                    on_message(t, msg.data)
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                                  WSMsgType.ERROR):
                    if not fleet.closing:
                        fleet.closes[str(ws.close_code)] += 1
                    return
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            fleet.failures[type(exc).__name__] += 1

    fleet.tasks = [asyncio.create_task(client()) for _ in range(count)]
    try:
        async with asyncio.timeout(within):
            while not all_ready.is_set():
                if all(t.done() for t in fleet.tasks):
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(all_ready.wait()), 0.5)
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
