"""Statistics (seed 001: Dashboard, /api/calls/stats, operator and queue stats): exact figures
from known calls written through the real RecordSink, role rules, validation, idempotent
aggregates. Figures: api/figures.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest_asyncio

from api.figures import busiest_hour, efficiency, period_bounds, service_level
from engine.model import CallStatus, Direction
from tests.stats_fixtures import World, make_call, write_calls

DONE, MISSED = CallStatus.COMPLETED, CallStatus.MISSED


@pytest_asyncio.fixture(loop_scope="session")
async def calls(world: World) -> World:
    """Yesterday, cleared, then: 09:xx three queue calls, 14:xx three calls without a queue and
    one outbound call, and one call still ringing."""
    y = world.yesterday
    pool = world.services.pool
    await pool.execute("DELETE FROM calls WHERE start_time >= $1 AND start_time < $2",
                       y, y + timedelta(days=1))
    q = await pool.fetchval("SELECT asterisk_name FROM queues WHERE id = $1::uuid", world.queue)
    h9, h14 = y + timedelta(hours=9), y + timedelta(hours=14)
    await write_calls(world.services, [
        make_call("st-1", h9 + timedelta(minutes=10), status=DONE, wait=10, talk=100,
                  operator_id=world.op_a, queue=q),
        make_call("st-2", h9 + timedelta(minutes=20), status=DONE, wait=40, talk=200,
                  operator_id=world.op_a, queue=q),
        make_call("st-3", h9 + timedelta(minutes=30), status=MISSED, wait=50, queue=q),
        make_call("st-4", h14 + timedelta(minutes=5), status=DONE, wait=20, talk=60,
                  operator_id=world.op_b),
        make_call("st-5", h14 + timedelta(minutes=15), status=DONE, wait=25, talk=30,
                  operator_id=world.op_b),
        make_call("st-6", h14 + timedelta(minutes=25), status=MISSED, wait=5),
        make_call("st-7", h14 + timedelta(minutes=40), status=DONE, wait=8, talk=50,
                  operator_id=world.op_a, direction=Direction.OUTBOUND),
        make_call("st-8", y + timedelta(hours=10), status=CallStatus.INCOMING, wait=0),
    ])
    return world


async def get(w: World, path: str, role: str = "admin") -> tuple[int, Any]:
    resp = await w.client.get(path, headers=w.auth(role))
    return resp.status, await resp.json()


def test_figure_functions() -> None:
    assert service_level(2, 6) == 33.3 and service_level(0, 0) == 0.0
    assert efficiency(34, 2) == 94.4 and efficiency(0, 0) == 0.0
    assert busiest_hour({"09:00": 3, "14:00": 4, "15:00": 4}) == "14:00"
    assert busiest_hour({}) is None
    start, end = period_bounds("week", datetime.now(UTC))
    assert end - start == timedelta(days=7) and start.hour == 0


async def test_dashboard_stats_exact(calls: World) -> None:
    status, body = await get(calls, "/api/dashboard/stats?period=yesterday")
    assert status == 200, body
    assert {k: body[k] for k in ("total_calls_today", "answered_calls_today",
                                 "missed_calls_today", "average_wait_time", "service_level",
                                 "busiest_hour", "call_trends")} == {
        "total_calls_today": 7, "answered_calls_today": 5, "missed_calls_today": 2,
        "average_wait_time": 25,       # inbound: (10+40+50+20+25+5) / 6
        "service_level": 33.3,         # inbound within threshold: st-1 (10<=30), st-4 (20<=20)
        "busiest_hour": "14:00",
        "call_trends": [{"hour": "09:00", "calls": 3, "answered": 2},
                        {"hour": "14:00", "calls": 4, "answered": 3}],
    }
    assert isinstance(body["active_operators"], int) and body["total_operators"] >= 2


async def test_dashboard_stats_of_a_group(calls: World) -> None:
    expected = {"total_calls_today": 3, "answered_calls_today": 3, "missed_calls_today": 0,
                "average_wait_time": 25, "service_level": 50.0, "busiest_hour": "09:00",
                "call_trends": [{"hour": "09:00", "calls": 2, "answered": 2},
                                {"hour": "14:00", "calls": 1, "answered": 1}]}
    for role, query in (("admin", f"&group_id={calls.group}"), ("sup_group", "")):
        status, body = await get(calls, f"/api/dashboard/stats?period=yesterday{query}", role)
        assert status == 200, body
        assert {k: body[k] for k in expected} == expected, role
        assert body["total_operators"] == 1  # operator A is the group's only operator
    status, body = await get(
        calls, f"/api/dashboard/stats?period=yesterday&group_id={calls.other_group}",
        "sup_group")
    assert status == 403 and body["code"] == "AUTH_003"


async def test_call_stats_exact(calls: World) -> None:
    status, body = await get(calls, "/api/calls/stats?period=yesterday")
    assert status == 200, body
    names = [o["operator_name"] for o in body.pop("busiest_operators")]
    assert body == {"total_calls": 7, "answered_calls": 5, "missed_calls": 2,
                    "average_duration": 88,  # (100+200+60+30+50) / 5
                    "average_wait_time": 25, "service_level": 33.3, "peak_hour": "14:00"}
    assert names == ["Opa", "Opb"]


async def test_call_analytics_exact(calls: World) -> None:
    status, body = await get(calls, "/api/dashboard/call-analytics?period=yesterday")
    assert status == 200, body
    assert body["hourly_distribution"] == [
        {"hour": "09:00", "incoming": 3, "answered": 2, "missed": 1},
        {"hour": "14:00", "incoming": 3, "answered": 2, "missed": 1}]
    [queue] = body["queue_performance"]
    assert {k: queue[k] for k in ("calls", "answered", "avg_wait_time", "service_level")} == {
        "calls": 3, "answered": 2, "avg_wait_time": 33, "service_level": 33.3}
    summary = [(o["calls_handled"], o["avg_talk_time"], o["efficiency"])
               for o in body["operator_summary"]]
    assert summary == [(3, 117, 100.0), (2, 45, 100.0)]


async def test_queue_stats_exact_and_404(calls: World) -> None:
    status, body = await get(calls, f"/api/queues/{calls.queue}/stats?period=yesterday")
    assert status == 200, body
    assert body == {"calls_entered": 3, "calls_answered": 2, "calls_abandoned": 1,
                    "average_wait_time": 33, "max_wait_time": 50, "service_level": 33.3,
                    "hourly_stats": [{"hour": "09:00", "calls": 3, "answered": 2,
                                      "avg_wait": 33}]}
    status, body = await get(calls, "/api/queues/00000000-0000-0000-0000-000000000000/stats")
    assert status == 404
    status, _ = await get(calls, f"/api/queues/{calls.queue}/stats", "operator")
    assert status == 403


async def test_operator_stats_exact_and_own_only(calls: World) -> None:
    expected = {"calls_handled": 3, "calls_missed": 0, "total_talk_time": 350,
                "avg_talk_time": 117, "efficiency": 100.0, "first_call_resolution": None,
                "customer_satisfaction": None}
    for role in ("admin", "op_a", "sup_group"):
        status, body = await get(calls, f"/api/operators/{calls.op_a}/stats?period=yesterday",
                                 role)
        assert (status, body) == (200, expected), role
    status, body = await get(calls, f"/api/operators/{calls.op_b}/stats", "op_a")
    assert status == 403 and body["code"] == "AUTH_003"
    status, body = await get(calls, f"/api/operators/{calls.op_b}/stats", "sup_group")
    assert status == 403
    status, body = await get(calls, "/api/operators/00000000-0000-0000-0000-000000000000/stats")
    assert status == 404


async def test_roles_and_query_validation(calls: World) -> None:
    for path in ("/api/dashboard/stats", "/api/dashboard/realtime",
                 "/api/dashboard/call-analytics", "/api/dashboard/operator-activity",
                 "/api/calls/stats"):
        status, body = await get(calls, path, "operator")
        assert status == 403 and body["code"] == "AUTH_003", path
        status, _ = await get(calls, path, "manager")
        assert status == 200, path
    status, body = await get(calls, "/api/dashboard/stats?period=decade")
    assert status == 422 and body["detail"][0]["loc"] == ["query", "period"]
    status, body = await get(calls, "/api/calls/stats?group_id=nope")
    assert status == 422 and body["detail"][0]["loc"] == ["query", "group_id"]


async def test_realtime_and_operator_activity_come_from_the_engine(calls: World) -> None:
    status, body = await get(calls, "/api/dashboard/realtime")
    assert status == 200, body
    ops = calls.services.engine.operators()
    assert body["operators_online"] + body["operators_busy"] + body["operators_offline"] \
        == len(ops)
    assert body["active_calls"] == len(calls.services.engine.active_calls())
    assert body["timestamp"].endswith("Z")
    status, body = await get(calls, "/api/dashboard/operator-activity", "sup_group")
    assert status == 200
    assert [r["operator_id"] for r in body] == [calls.op_a]
    assert set(body[0]) == {"operator_id", "name", "extension", "status",
                            "current_call_duration", "calls_today", "last_activity"}


async def test_final_row_written_twice_counts_once_and_corrections_move(calls: World) -> None:
    y = calls.yesterday
    q = await calls.services.pool.fetchval(
        "SELECT asterisk_name FROM queues WHERE id = $1::uuid", calls.queue)
    extra = make_call("st-9", y + timedelta(hours=9, minutes=50), status=DONE, wait=5, talk=10,
                      operator_id=calls.op_a, queue=q)
    path = f"/api/queues/{calls.queue}/stats?period=yesterday"
    await write_calls(calls.services, [extra])
    await write_calls(calls.services, [extra])  # the same final row again
    await calls.services.pool.execute(  # and once more as a raw re-upsert
        "UPDATE calls SET status = status, updated_at = now() WHERE id = $1::uuid", extra.id)
    _, body = await get(calls, path)
    assert (body["calls_entered"], body["calls_answered"], body["service_level"]) == (4, 3, 50.0)
    # a corrected final row moves its contribution: answered after 45 s now
    from dataclasses import replace
    late = replace(extra, answer_time=extra.start_time + timedelta(seconds=45),
                   end_time=extra.start_time + timedelta(seconds=55))
    await write_calls(calls.services, [late])
    _, body = await get(calls, path)
    assert (body["calls_entered"], body["service_level"], body["max_wait_time"]) == (4, 25.0, 50)
    # rollups equal a rebuild from the raw calls
    pool = calls.services.pool
    cols = "bucket, queue_id, group_id, direction, offered, answered, missed, answered_sl, " \
           "wait_sum, wait_n, talk_sum"
    before = await pool.fetch(f"SELECT {cols} FROM call_stats_hourly WHERE offered <> 0 "
                              "ORDER BY 1, 2, 3, 4")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT call_stats_rebuild()")
        after = await conn.fetch(f"SELECT {cols} FROM call_stats_hourly WHERE offered <> 0 "
                                 "ORDER BY 1, 2, 3, 4")
    assert [tuple(r) for r in before] == [tuple(r) for r in after]
    # a deleted call is uncounted
    await pool.execute("DELETE FROM calls WHERE id = $1::uuid", extra.id)
    _, body = await get(calls, path)
    assert (body["calls_entered"], body["service_level"]) == (3, 33.3)
