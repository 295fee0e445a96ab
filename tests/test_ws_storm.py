"""A reconnect storm (issue 8): 2,000 dashboards authenticating at once are all served — none is
refused for lack of a pooled Redis (or PostgreSQL) connection. The timing belongs to bench/."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from api.state import SERVICES
from tests.helpers import ensure_user, login

CLIENTS = 2_000
AT_ONCE = 500  # concurrent handshakes in flight


@pytest.mark.timeout(180)  # ~10 s on an idle 2-core machine; generous for a loaded one
async def test_two_thousand_dashboards_authenticate_at_once(client: TestClient) -> None:
    services = client.app[SERVICES]
    names = []
    for role in ("manager", "supervisor"):  # a few users, many screens each
        name = f"storm_{uuid.uuid4().hex[:8]}"
        await ensure_user(services, name, role)
        names.append(name)
    tokens = [await login(client, name, "secret-pass") for name in names]
    url = str(client.make_url("/ws/events"))
    gate = asyncio.Semaphore(AT_ONCE)
    outcomes: list[str] = []
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def dashboard(i: int) -> None:
            async with gate:
                ws = await http.ws_connect(url, params={"token": tokens[i % len(tokens)]})
                sockets.append(ws)
                msg = await ws.receive(timeout=60)
                if msg.type is WSMsgType.TEXT and msg.json()["type"] == "auth_ok":
                    outcomes.append("ok")
                else:
                    outcomes.append(f"{msg.type.name} {msg.data} {msg.extra}")

        await asyncio.gather(*(dashboard(i) for i in range(CLIENTS)))
        refused = [o for o in outcomes if o != "ok"]
        await asyncio.gather(*(ws.close() for ws in sockets))
    assert len(outcomes) == CLIENTS
    assert refused == [], f"{len(refused)} refused, e.g. {refused[:3]}"

