"""/api/operators (seed 001, Операторы): list with live values and filters, status changes."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from tests.helpers import ensure_user, login

SEED_KEYS = {"id", "user_id", "name", "extension", "status", "group_id", "current_calls",
             "calls_today", "last_activity"}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def operators(client: TestClient, token: str, **query: str) -> list[dict[str, Any]]:
    resp = await client.get("/api/operators/", headers=auth(token), params=query)
    assert resp.status == 200, await resp.text()
    data: list[dict[str, Any]] = await resp.json()
    return data


async def by_extension(client: TestClient, token: str, ext: str) -> dict[str, Any]:
    return next(o for o in await operators(client, token) if o["extension"] == ext)


async def group(services, name: str) -> str:
    return str(await services.pool.fetchval(
        "INSERT INTO groups (name) VALUES ($1) ON CONFLICT (name) DO UPDATE"
        " SET name = EXCLUDED.name RETURNING id", name))


async def test_list_roles_and_seed_shape(client: TestClient, role_tokens: dict[str, str]) -> None:
    for role in ("admin", "manager", "supervisor"):
        items = await operators(client, role_tokens[role])
        assert items and all(set(item) == SEED_KEYS for item in items)
    resp = await client.get("/api/operators/", headers=auth(role_tokens["operator"]))
    assert resp.status == 403 and (await resp.json())["code"] == "AUTH_003"
    resp = await client.get("/api/operators/")
    assert resp.status == 401
    mine = await by_extension(client, role_tokens["admin"], "3001")
    assert mine["name"] == "R_Operator" and mine["status"] in ("online", "busy", "offline")
    assert isinstance(mine["current_calls"], int) and isinstance(mine["calls_today"], int)
    resp = await client.get("/api/v1/operators/", headers=auth(role_tokens["admin"]))
    assert resp.status == 200


async def test_calls_today_counts_answered_calls_since_midnight(
    client: TestClient, services, role_tokens: dict[str, str]
) -> None:
    await ensure_user(services, "op_today", "operator", extension="3011")
    op_id = await services.users.operator_id_of(
        str((await services.users.by_username("op_today"))["id"]))
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for start in (max(midnight, now - timedelta(seconds=5)), midnight - timedelta(hours=2)):
        await services.pool.execute(
            "INSERT INTO calls (id, channel_id, operator_id, status, start_time, answer_time)"
            " VALUES ($1, $2, $3::uuid, 'completed', $4, $4)",
            uuid.uuid4(), f"today-{uuid.uuid4()}", op_id, start)
    assert (await by_extension(client, role_tokens["admin"], "3011"))["calls_today"] == 1


async def test_filters(client: TestClient, services, role_tokens: dict[str, str]) -> None:
    g = await group(services, "ops-filter")
    await ensure_user(services, "op_filtered", "operator", extension="3021", group_id=g)
    token = role_tokens["manager"]
    assert [o["extension"] for o in await operators(client, token, group_id=g)] == ["3021"]
    for status in ("online", "busy", "offline"):
        assert {o["status"] for o in await operators(client, token, status=status)} <= {status}
    every = await operators(client, token)
    split = sum([len(await operators(client, token, status=s))
                 for s in ("online", "busy", "offline")], 0)
    assert split == len(every)
    for bad in ({"status": "away"}, {"group_id": "not-a-uuid"}):
        resp = await client.get("/api/operators/", headers=auth(token), params=bad)
        assert resp.status == 422
        assert (await resp.json())["detail"][0]["loc"][0] == "query"


async def test_supervisor_with_a_group_sees_and_sets_only_that_group(
    client: TestClient, services
) -> None:
    g1, g2 = await group(services, "sup-g1"), await group(services, "sup-g2")
    await ensure_user(services, "sup_g1", "supervisor", group_id=g1)
    await ensure_user(services, "op_g1", "operator", extension="3031", group_id=g1)
    await ensure_user(services, "op_g2", "operator", extension="3032", group_id=g2)
    token = await login(client, "sup_g1", "secret-pass")
    assert [o["extension"] for o in await operators(client, token)] == ["3031"]
    assert await operators(client, token, group_id=g2) == []
    admin_view = {o["extension"]: o["id"] for o in await operators(client, await login(client))}
    resp = await client.put(f"/api/operators/{admin_view['3032']}/status",
                            headers=auth(token), json={"status": "busy"})
    assert resp.status == 403
    resp = await client.put(f"/api/operators/{admin_view['3031']}/status",
                            headers=auth(token), json={"status": "busy"})
    assert resp.status == 200 and (await resp.json())["status"] == "busy"


async def _events(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    out = []
    while True:
        try:
            msg = await ws.receive(timeout=0.5)
        except TimeoutError:
            return out
        data = json.loads(msg.data)
        if data.get("type") not in ("snapshot", "auth_ok"):
            out.append(data)


async def test_operator_sets_own_status_and_it_is_published(
    client: TestClient, services, role_tokens: dict[str, str]
) -> None:
    me = await by_extension(client, role_tokens["admin"], "3001")
    ws = await client.ws_connect(f"/ws/events?token={role_tokens['admin']}")
    try:
        assert json.loads((await ws.receive(timeout=5)).data)["type"] == "auth_ok"
        target = "offline" if me["status"] != "offline" else "online"
        for status in (target, "busy"):
            resp = await client.put(f"/api/operators/{me['id']}/status",
                                    headers=auth(role_tokens["operator"]),
                                    json={"status": status})
            assert resp.status == 200, await resp.text()
            body = await resp.json()
            assert set(body) == SEED_KEYS and body["status"] == status
        published = [(m["type"], m["data"]["operator_id"], m["data"]["status"])
                     for m in await _events(ws) if m["type"] == "operator_status_changed"]
        assert published == [("operator_status_changed", me["id"], target),
                             ("operator_status_changed", me["id"], "busy")]
    finally:
        await ws.close()
    assert await services.pool.fetchval(
        "SELECT manual_status FROM operators WHERE id = $1::uuid", me["id"]) == "busy"
    assert (await by_extension(client, role_tokens["admin"], "3001"))["status"] == "busy"
    # the same again changes nothing and publishes nothing
    resp = await client.put(f"/api/operators/{me['id']}/status",
                            headers=auth(role_tokens["supervisor"]), json={"status": "busy"})
    assert resp.status == 200


async def test_status_permissions_and_validation(
    client: TestClient, services, role_tokens: dict[str, str]
) -> None:
    await ensure_user(services, "op_other", "operator", extension="3041")
    other = await by_extension(client, role_tokens["admin"], "3041")
    url = f"/api/operators/{other['id']}/status"
    resp = await client.put(url, headers=auth(role_tokens["operator"]), json={"status": "busy"})
    assert resp.status == 403 and (await resp.json())["code"] == "AUTH_003"
    for body in ({"status": "away"}, {}, {"status": None}):
        resp = await client.put(url, headers=auth(role_tokens["admin"]), json=body)
        assert resp.status == 422, body
        assert (await resp.json())["detail"][0]["loc"] == ["body", "status"]
    resp = await client.put(url, headers=auth(role_tokens["admin"]), data=b"{nope")
    assert resp.status == 400
    for missing in (str(uuid.uuid4()), "not-a-uuid"):
        resp = await client.put(f"/api/operators/{missing}/status",
                                headers=auth(role_tokens["admin"]), json={"status": "busy"})
        assert resp.status == 404 and (await resp.json())["code"] == "DB_002"
    for role in ("admin", "manager", "supervisor"):
        resp = await client.put(url, headers=auth(role_tokens[role]), json={"status": "offline"})
        assert resp.status == 200 and (await resp.json())["status"] == "offline"
