"""The bench's baseline: a bare ARI -> WebSocket forwarder (no engine, no state, no storage).

It connects to an ARI events socket (``GET /ari/events?app=...&api_key=user:pass``, like
Switchboard's connector) and forwards every text frame unchanged to every WebSocket client of
``GET /ws?token=...``. The fan-out has the same shape as Switchboard's hub, so the comparison is
about the work in between, not about the plumbing: one bounded queue and one sender task per
client, the reader never awaits a client, a client whose queue overflows is closed with 1013.

    python -m bench.forwarder --ari-url http://127.0.0.1:8088 --ari-auth user:pass \
        --port 0 --token secret

Prints ``forwarder listening on <port>`` once the events socket is connected and the server
is up; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections import deque

from aiohttp import ClientSession, WSCloseCode, WSMsgType, web


class _Client:
    __slots__ = ("items", "overflowed", "waiter", "ws")

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.items: deque[bytes] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.overflowed = False


class Forwarder:
    def __init__(self, token: str, queue_size: int) -> None:
        self.token = token
        self.queue_size = queue_size
        self.clients: tuple[_Client, ...] = ()
        self.frames = 0

    def fan_out(self, data: bytes) -> None:
        self.frames += 1
        limit = self.queue_size
        for client in self.clients:
            if client.overflowed:
                continue
            if len(client.items) >= limit:
                client.overflowed = True
                if client.waiter is not None and not client.waiter.done():
                    client.waiter.set_result(None)
                continue
            client.items.append(data)
            waiter = client.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, heartbeat=20.0)
        await ws.prepare(request)
        if request.query.get("token") != self.token:
            await ws.close(code=4001, message=b"AUTH_001")
            return ws
        client = _Client(ws)
        self.clients = (*self.clients, client)
        sender = asyncio.create_task(self._send(client))
        try:
            await ws.send_str('{"type":"auth_ok"}')
            async for _msg in ws:
                pass  # clients send nothing we act on
        finally:
            self.clients = tuple(c for c in self.clients if c is not client)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        return ws

    async def _send(self, client: _Client) -> None:
        loop = asyncio.get_running_loop()
        ws, items = client.ws, client.items
        try:
            while True:
                while not items:
                    if client.overflowed:
                        await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"slow consumer")
                        return
                    client.waiter = loop.create_future()
                    try:
                        await client.waiter
                    finally:
                        client.waiter = None
                await ws.send_frame(items.popleft(), WSMsgType.TEXT)
        except ConnectionError:
            return


async def _read_ari(session: ClientSession, args: argparse.Namespace, fwd: Forwarder,
                    connected: asyncio.Event) -> None:
    url = args.ari_url.rstrip("/") + "/ari/events"
    params = {"app": args.ari_app, "api_key": args.ari_auth, "subscribeAll": "true"}
    async with session.ws_connect(url, params=params, protocols=("ari",), max_msg_size=0) as ws:
        connected.set()
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                fwd.fan_out(msg.data.encode())
            elif msg.type is WSMsgType.BINARY:
                fwd.fan_out(msg.data)


async def serve(args: argparse.Namespace) -> None:
    fwd = Forwarder(args.token, args.queue_size)
    app = web.Application()
    app.router.add_get("/ws", fwd.handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        port = runner.addresses[0][1]
        async with ClientSession() as session:
            connected = asyncio.Event()
            reader = asyncio.create_task(_read_ari(session, args, fwd, connected))
            waiter = asyncio.create_task(connected.wait())
            await asyncio.wait({reader, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done():
                waiter.cancel()
                reader.result()  # raises why the events socket failed
                raise SystemExit("forwarder: the ARI events socket closed at once")
            print(f"forwarder listening on {port}", flush=True)
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in (reader, stopper):
                task.cancel()
            await asyncio.gather(reader, stopper, return_exceptions=True)
            for client in fwd.clients:
                with contextlib.suppress(Exception):
                    await client.ws.close(code=WSCloseCode.GOING_AWAY)
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.forwarder", description=__doc__)
    p.add_argument("--ari-url", required=True, help="e.g. http://127.0.0.1:8088")
    p.add_argument("--ari-auth", default="asterisk:secret", help="user:password")
    p.add_argument("--ari-app", default="switchboard")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--token", required=True, help="the ?token= clients must present")
    p.add_argument("--queue-size", type=int, default=1000, help="per-client buffer (messages)")
    args = p.parse_args(argv)
    try:
        import uvloop

        uvloop.run(serve(args))
    except ImportError:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
