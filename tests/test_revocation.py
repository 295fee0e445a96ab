"""Revoked means gone (issue 8): deactivation, deletion, a password reset, a role change and a
revoked refresh family close the user's open WebSockets at once (4002, reason AUTH_001) and
their tokens are refused. The app's revocation sweep polls every 5 s; the sockets here must close
well before that, through the Redis revocation notice."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from tests.helpers import login

PROMPTLY = 3.0  # seconds; below the 5 s sweep, so the notice path is what closes the socket


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_user(client: TestClient, admin: str, role: str = "manager") -> tuple[str, str]:
    """A fresh user through the admin API; (id, username). Password ``secret-pass``."""
    username = f"rv_{uuid.uuid4().hex[:10]}"
    body: dict[str, Any] = {"username": username, "email": f"{username}@example.com",
                            "name": "Revoked", "password": "secret-pass", "role": role}
    resp = await client.post("/api/admin/users", json=body, headers=bearer(admin))
    assert resp.status == 201, await resp.text()
    return (await resp.json())["id"], username


async def session(client: TestClient, username: str,
                  password: str = "secret-pass") -> dict[str, Any]:
    resp = await client.post("/api/auth/login", json={"username": username, "password": password})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def open_ws(client: TestClient, token: str) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect(f"/ws/events?token={token}")
    assert (await ws.receive_json(timeout=5))["type"] == "auth_ok"
    assert (await ws.receive_json(timeout=5))["type"] == "snapshot"
    return ws


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> tuple[int, str]:
    while True:
        msg = await ws.receive(timeout=PROMPTLY)
        if msg.type is WSMsgType.CLOSE:
            return msg.data, msg.extra
        assert msg.type is WSMsgType.TEXT, msg


async def refused(client: TestClient, access: str, refresh: str) -> None:
    """The access token and the refresh token no longer work."""
    assert (await client.get("/api/auth/me", headers=bearer(access))).status == 401
    resp = await client.post("/api/auth/refresh", json={"refresh_token": refresh})
    assert resp.status in (401, 403), await resp.text()


Action = Callable[[TestClient, str, str], Awaitable[Any]]


async def deactivate(client: TestClient, admin: str, user_id: str) -> None:
    resp = await client.put(f"/api/admin/users/{user_id}", json={"is_active": False},
                            headers=bearer(admin))
    assert resp.status == 200, await resp.text()


async def delete(client: TestClient, admin: str, user_id: str) -> None:
    resp = await client.delete(f"/api/admin/users/{user_id}", headers=bearer(admin))
    assert resp.status == 200, await resp.text()


async def reset_password(client: TestClient, admin: str, user_id: str) -> None:
    resp = await client.put(f"/api/admin/users/{user_id}", json={"password": "brand-new-pass"},
                            headers=bearer(admin))
    assert resp.status == 200, await resp.text()


async def change_role(client: TestClient, admin: str, user_id: str) -> None:
    resp = await client.put(f"/api/admin/users/{user_id}", json={"role": "supervisor"},
                            headers=bearer(admin))
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize("action", [deactivate, delete, reset_password, change_role],
                         ids=lambda a: a.__name__)
async def test_admin_change_closes_the_socket_and_refuses_the_tokens(
        client: TestClient, action: Action) -> None:
    admin = await login(client)
    user_id, username = await new_user(client, admin)
    tokens = await session(client, username)
    ws = await open_ws(client, tokens["access_token"])
    _bystander_id, bystander = await new_user(client, admin)
    other = await open_ws(client, (await session(client, bystander))["access_token"])

    await action(client, admin, user_id)

    assert await closed_with(ws) == (4002, "AUTH_001")
    await refused(client, tokens["access_token"], tokens["refresh_token"])
    assert not other.closed  # another user's socket stays
    await other.close()


async def test_a_password_reset_leaves_new_logins_working(client: TestClient) -> None:
    admin = await login(client)
    user_id, username = await new_user(client, admin)
    old = await session(client, username)
    await reset_password(client, admin, user_id)
    fresh = await session(client, username, "brand-new-pass")  # issued right after the reset
    assert (await client.get("/api/auth/me", headers=bearer(fresh["access_token"]))).status == 200
    ws = await open_ws(client, fresh["access_token"])
    resp = await client.post("/api/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
    assert resp.status == 200
    await refused(client, old["access_token"], old["refresh_token"])
    await ws.close()


async def test_refresh_reuse_closes_the_family_sockets(client: TestClient) -> None:
    admin = await login(client)
    _user_id, username = await new_user(client, admin)
    first = await session(client, username)
    ws = await open_ws(client, first["access_token"])
    other_session = await session(client, username)  # another login: another family
    other_ws = await open_ws(client, other_session["access_token"])
    resp = await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    rotated = await resp.json()
    resp = await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert resp.status == 401  # reuse: the family is revoked

    assert await closed_with(ws) == (4002, "AUTH_001")
    await refused(client, rotated["access_token"], rotated["refresh_token"])
    assert not other_ws.closed
    assert (await client.get("/api/auth/me",
                             headers=bearer(other_session["access_token"]))).status == 200
    await other_ws.close()


async def test_logout_with_a_sibling_token_closes_the_family_sockets(client: TestClient) -> None:
    admin = await login(client)
    _user_id, username = await new_user(client, admin)
    first = await session(client, username)
    ws = await open_ws(client, first["access_token"])
    resp = await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    sibling = await resp.json()  # same family, another access token

    resp = await client.post("/api/auth/logout", headers=bearer(sibling["access_token"]))
    assert resp.status == 200

    assert await closed_with(ws) == (4002, "AUTH_001")
    assert (await client.get("/api/auth/me",
                             headers=bearer(first["access_token"]))).status == 401
