"""Issue 8 items 4 and 9: a call belongs to the groups of every operator it rang or reached —
in the history (list, total, one call, export) and in the statistics, which read per-group
rollups — and a missed call counts against every operator it rang (calls_missed, efficiency).
Real PostgreSQL, calls written through the real RecordSink."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest_asyncio

from engine.model import Call, CallStatus
from tests.helpers import PASSWORD, create_user, login
from tests.stats_fixtures import World, make_call, write_calls

ROLLUPS = {
    "call_stats_group_hourly": "bucket, group_id, queue_id, direction, offered, answered, "
                               "missed, answered_sl, wait_sum, wait_n, talk_sum",
    "call_stats_operator_daily": "bucket, scope, operator_id, offered, answered, missed, "
                                 "answered_sl, wait_sum, wait_n, talk_sum, missed_rung",
    "call_stats_hourly": "bucket, queue_id, group_id, direction, offered, answered, missed, "
                         "answered_sl, wait_sum, wait_n, talk_sum",
}


@dataclass
class Floor:
    w: World
    g3: str
    op_c: str          # operator in other_group (G2)
    op_d: str          # operator in G3
    missed: Call       # rang op_a (G1) and op_c (G2), nobody answered
    answered: Call     # rang op_a, answered by op_c


async def _operator(w: World, user_id: str) -> str:
    return str(await w.services.pool.fetchval(
        "SELECT id FROM operators WHERE user_id = $1::uuid", user_id))


@pytest_asyncio.fixture(loop_scope="session")
async def floor(world: World) -> Floor:
    services = world.services
    g3 = str(await services.pool.fetchval("INSERT INTO groups (name) VALUES ('g3') RETURNING id"))
    op_c = await _operator(world, await create_user(services, "opc", "operator",
                                                    extension="5003",
                                                    group_id=world.other_group))
    op_d = await _operator(world, await create_user(services, "opd", "operator",
                                                    extension="5004", group_id=g3))
    await create_user(services, "sup2", "supervisor", group_id=world.other_group)
    await create_user(services, "sup3", "supervisor", group_id=g3)
    for name in ("sup2", "sup3"):
        world.tokens[name] = await login(world.client, name, PASSWORD)
    h9 = world.yesterday + timedelta(hours=9)
    missed = replace(make_call("gs-missed", h9, status=CallStatus.MISSED, wait=40),
                     offered_operator_ids=(world.op_a, op_c),
                     rung_operator_ids=(world.op_a, op_c))
    answered = replace(make_call("gs-answered", h9 + timedelta(minutes=5),
                                 status=CallStatus.COMPLETED, wait=12, talk=60,
                                 operator_id=op_c),
                       offered_operator_ids=(world.op_a, op_c),
                       rung_operator_ids=(world.op_a, op_c))
    await write_calls(services, [missed, answered])
    return Floor(world, g3, op_c, op_d, missed, answered)


async def get(w: World, path: str, role: str = "admin") -> tuple[int, Any]:
    resp = await w.client.get(path, headers=w.auth(role))
    return resp.status, await resp.json()


def _day(w: World) -> str:
    d = w.yesterday.date().isoformat()
    return f"date_from={d}&date_to={d}"


async def test_a_missed_call_belongs_to_every_group_it_rang(floor: Floor) -> None:
    w = floor.w
    both = [floor.answered.id, floor.missed.id]
    for role in ("sup_group", "sup2"):
        status, body = await get(w, f"/api/calls/?{_day(w)}", role)
        assert status == 200, body
        assert [i["id"] for i in body["items"]] == both and body["total"] == 2, role
        status, body = await get(w, f"/api/calls/?{_day(w)}&status=missed", role)
        assert [i["id"] for i in body["items"]] == [floor.missed.id] and body["total"] == 1
        status, body = await get(w, f"/api/calls/{floor.missed.id}", role)
        assert status == 200 and body["id"] == floor.missed.id, role
        resp = await w.client.get(f"/api/calls/export?{_day(w)}", headers=w.auth(role))
        rows = list(csv.DictReader(io.StringIO(await resp.text())))
        assert [r["id"] for r in rows] == both, role
    status, body = await get(w, f"/api/calls/?{_day(w)}", "sup3")
    assert (body["items"], body["total"]) == ([], 0)
    status, body = await get(w, f"/api/calls/{floor.missed.id}", "sup3")
    assert status == 404
    resp = await w.client.get(f"/api/calls/export?{_day(w)}", headers=w.auth("sup3"))
    assert list(csv.DictReader(io.StringIO(await resp.text()))) == []


async def test_statistics_count_a_call_in_each_of_its_groups_and_once_overall(
        floor: Floor) -> None:
    w = floor.w
    for role in ("sup_group", "sup2", "admin"):
        status, body = await get(w, "/api/calls/stats?period=yesterday", role)
        assert status == 200, body
        assert (body["total_calls"], body["answered_calls"], body["missed_calls"]) == (2, 1, 1), \
            role
        _, body = await get(w, "/api/dashboard/stats?period=yesterday", role)
        assert (body["total_calls_today"], body["missed_calls_today"]) == (2, 1), role
    _, body = await get(w, f"/api/calls/stats?period=yesterday&group_id={floor.g3}", "manager")
    assert body["total_calls"] == 0
    _, body = await get(w, "/api/calls/stats?period=yesterday", "sup3")
    assert (body["total_calls"], body["missed_calls"]) == (0, 0)
    # G1's supervisor: op_a only missed, op_c answered the call that also rang op_a
    _, body = await get(w, "/api/dashboard/call-analytics?period=yesterday", "sup_group")
    summary = {r["operator_name"]: (r["calls_handled"], r["efficiency"])
               for r in body["operator_summary"]}
    assert summary == {"Opc": (1, 50.0), "Opa": (0, 0.0)}


async def test_a_missed_call_counts_against_every_operator_it_rang(floor: Floor) -> None:
    w = floor.w
    _, a = await get(w, f"/api/operators/{w.op_a}/stats?period=yesterday")
    assert (a["calls_handled"], a["calls_missed"], a["efficiency"]) == (0, 1, 0.0)
    _, c = await get(w, f"/api/operators/{floor.op_c}/stats?period=yesterday", "sup2")
    assert (c["calls_handled"], c["calls_missed"], c["efficiency"]) == (1, 1, 50.0)
    _, d = await get(w, f"/api/operators/{floor.op_d}/stats?period=yesterday")
    assert (d["calls_missed"], d["efficiency"]) == (0, 0.0)


async def _rollups(w: World) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table, cols in ROLLUPS.items():
        rows = await w.services.pool.fetch(
            f"SELECT {cols} FROM {table} WHERE offered <> 0"
            + (" OR missed_rung <> 0" if "missed_rung" in cols else "") + " ORDER BY 1, 2, 3, 4")
        out[table] = [tuple(r) for r in rows]
    return out


async def test_group_rollups_are_exact_rewritten_corrected_and_deleted(floor: Floor) -> None:
    w = floor.w
    pool = w.services.pool
    before = await _rollups(w)
    await write_calls(w.services, [floor.missed, floor.answered])  # the same final rows again
    await pool.execute("UPDATE calls SET status = status WHERE id = $1::uuid", floor.missed.id)
    assert await _rollups(w) == before
    async with pool.acquire() as conn, conn.transaction():  # equal to a rebuild from calls
        await conn.execute("SELECT call_stats_rebuild()")
    assert await _rollups(w) == before

    # history does not move: op_a changes group, the call keeps G1 and does not reach G3
    await pool.execute("UPDATE operators SET group_id = $1::uuid WHERE id = $2::uuid",
                       floor.g3, w.op_a)
    await write_calls(w.services, [floor.missed])
    _, body = await get(w, f"/api/calls/{floor.missed.id}", "sup_group")
    assert body["id"] == floor.missed.id
    _, body = await get(w, "/api/calls/stats?period=yesterday", "sup3")
    assert body["total_calls"] == 0

    # a corrected row moves its contribution: the missed call rang op_a only
    only_a = replace(floor.missed, offered_operator_ids=(w.op_a,), rung_operator_ids=(w.op_a,))
    await write_calls(w.services, [only_a])
    _, c = await get(w, f"/api/operators/{floor.op_c}/stats?period=yesterday")
    assert (c["calls_missed"], c["efficiency"]) == (0, 100.0)
    _, body = await get(w, "/api/calls/stats?period=yesterday", "sup2")
    assert (body["total_calls"], body["missed_calls"]) == (1, 0)
    _, body = await get(w, "/api/calls/stats?period=yesterday", "sup3")  # op_a's group now
    assert (body["total_calls"], body["missed_calls"]) == (1, 1)

    # a deleted call is uncounted everywhere
    await pool.execute("DELETE FROM calls WHERE id = ANY($1::uuid[])",
                       [floor.missed.id, floor.answered.id])
    after = await _rollups(w)
    assert after == {table: [] for table in ROLLUPS}
    _, a = await get(w, f"/api/operators/{w.op_a}/stats?period=yesterday")
    assert a["calls_missed"] == 0

