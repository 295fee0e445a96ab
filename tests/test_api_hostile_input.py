"""Issue 8 item 6: no 500 on any input. The cases a hostile client found (3,048 requests,
41 × 500): NUL bytes (also in the login form), ``skip=2^63``, ``date_to=9999-12-31``,
durations past int32, ``null`` in required call fields. Each is a 422 in the seed's detail-list
shape. The systematic sweep over every route is tests/test_schemathesis.py."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import ClientResponse

from engine.model import CallStatus, call_id_for
from tests.stats_fixtures import World, make_call, write_calls
from tests.stats_fixtures import world as world

BIG = 2**63


async def _detail(resp: ClientResponse) -> list[dict[str, Any]]:
    body = await resp.json()
    assert resp.status == 422, (resp.url, resp.status, body)
    assert isinstance(body["detail"], list) and body["detail"], body
    for item in body["detail"]:
        assert {"loc", "msg", "type"} <= set(item), item
    return body["detail"]


async def _get(w: World, path: str) -> list[dict[str, Any]]:
    return await _detail(await w.client.get(path, headers=w.auth("admin")))


async def test_nul_bytes_anywhere_are_422(world: World) -> None:
    admin = world.auth("admin")
    for path in ("/api/calls/?status=%00", "/api/calls/?date_from=2021-03-01%00",
                 "/api/calls/export?operator_id=%00", "/api/admin/users?role=admin%00",
                 "/api/calls/?unknown=a%00b"):
        detail = await _get(world, path)
        assert detail[0]["loc"][0] == "query", path
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/api/calls/", {"channel_id": "nul\u0000", "caller_number": "+7\u0000"}),
        ("POST", "/api/queues/", {"name": "q\u0000", "asterisk_name": "qnul"}),
        ("POST", "/api/admin/users", {"username": "nul\u0000user", "email": "n@example.com",
                                 "password": "secret-pass", "role": "manager"}),
    ]
    for method, path, body in cases:
        detail = await _detail(await world.client.request(method, path, json=body,
                                                          headers=admin))
        assert detail[0]["loc"][0] == "body", (path, detail)
    detail = await _detail(await world.client.post(
        "/api/calls/", json={"channel_id": "ok", "caller_number": "+7\u0000"}, headers=admin))
    assert detail == [{"loc": ["body", "caller_number"], "type": "string_control_character",
                       "msg": "Control characters (such as NUL) are not allowed"}]


async def test_nul_bytes_in_the_login_form_are_422(world: World) -> None:
    for body in ({"username": "admin\u0000", "password": "x"},
                 {"username": "admin", "password": "pass\u0000word"}):
        detail = await _detail(await world.client.post("/api/auth/login", json=body))
        assert detail[0]["loc"][0] == "body"


async def test_out_of_range_numbers_are_422(world: World) -> None:
    for param in ("skip", "limit", "page", "size", "per_page"):
        detail = await _get(world, f"/api/calls/?{param}={BIG}")
        assert detail[0]["loc"] == ["query", param]
    detail = await _get(world, "/api/calls/?page=9000000&size=500")  # offset past int32
    assert detail[0]["loc"] == ["query"]


async def test_dates_at_the_edge_of_time_are_422(world: World) -> None:
    for path in ("/api/calls/?date_to=9999-12-31", "/api/calls/export?date_to=9999-12-31",
                 "/api/calls/?date_to=9999-12-31T23:59:59.999999",
                 "/api/calls/?date_from=0001-01-01T00:00:00%2B05:00",
                 "/api/calls/?date_from=9999-12-31T23:30:00Z"):
        detail = await _get(world, path)
        assert detail[0]["loc"][:2] in (["query", "date_to"], ["query", "date_from"]), path
    for query in ("date_to=9998-12-31", "date_from=9998-12-31T23:30:00Z",
                  "date_from=0001-01-01&date_to=0001-01-01"):
        resp = await world.client.get(f"/api/calls/?{query}", headers=world.auth("admin"))
        assert resp.status == 200, query


async def test_durations_past_int32_are_422(world: World) -> None:
    admin = world.auth("admin")
    far = {"answer_time": "1900-01-01T00:00:00Z", "end_time": "2100-01-01T00:00:00Z"}
    await _detail(await world.client.post(
        "/api/calls/", json={"channel_id": f"far-{uuid.uuid4().hex[:6]}",
                             "start_time": "1900-01-01T00:00:00Z", **far}, headers=admin))
    tag = f"far-{uuid.uuid4().hex[:6]}"
    await write_calls(world.services, [make_call(tag, world.yesterday, status=CallStatus.MISSED,
                                                 wait=3)])
    try:
        detail = await _detail(await world.client.put(
            f"/api/calls/{call_id_for(tag)}", json={"end_time": "9999-01-01T00:00:00Z"},
            headers=admin))
        assert detail[0]["loc"] == ["body", "end_time"]
    finally:
        await world.services.pool.execute("DELETE FROM calls WHERE channel_id = $1", tag)


async def test_null_in_required_call_fields_is_422(world: World) -> None:
    admin = world.auth("admin")
    detail = await _detail(await world.client.post("/api/calls/", json={"channel_id": None},
                                                   headers=admin))
    assert detail[0]["loc"] == ["body", "channel_id"]
    tag = f"null-{uuid.uuid4().hex[:6]}"
    await write_calls(world.services, [make_call(tag, world.yesterday, status=CallStatus.MISSED,
                                                 wait=3)])
    try:
        for body in ({"status": None}, {"caller_number": None}, {"direction": None}):
            await _detail(await world.client.put(f"/api/calls/{call_id_for(tag)}", json=body,
                                                 headers=admin))
        resp = await world.client.put(f"/api/calls/{call_id_for(tag)}",
                                      json={"notes": None, "queue_id": None}, headers=admin)
        assert resp.status == 200  # nullable fields may be cleared
    finally:
        await world.services.pool.execute("DELETE FROM calls WHERE channel_id = $1", tag)
