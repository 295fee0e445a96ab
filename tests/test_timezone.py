"""The center's time zone (issue 8, item 10): periods, "today", hour-of-day labels and the
export file name follow ``settings.timezone``; storage stays UTC. Figures: README "Figures"."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from api.figures import hour_label, period_bounds
from engine.model import CallStatus
from storage.stats import whole_utc_days
from tests.stats_fixtures import World, make_call, write_calls

DONE, MISSED = CallStatus.COMPLETED, CallStatus.MISSED


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(("zone", "period", "now", "start", "end"), [
    # Moscow (UTC+3, no DST): the local day starts at 21:00 UTC of the day before.
    ("Europe/Moscow", "today", utc(2026, 12, 2, 9), utc(2026, 12, 1, 21), utc(2026, 12, 2, 21)),
    ("Europe/Moscow", "today", utc(2026, 12, 2, 22), utc(2026, 12, 2, 21), utc(2026, 12, 3, 21)),
    ("Europe/Moscow", "yesterday", utc(2026, 12, 2, 9),
     utc(2026, 11, 30, 21), utc(2026, 12, 1, 21)),
    ("Europe/Moscow", "week", utc(2026, 12, 2, 9), utc(2026, 11, 25, 21), utc(2026, 12, 2, 21)),
    ("Europe/Moscow", "month", utc(2026, 12, 2, 9), utc(2026, 11, 2, 21), utc(2026, 12, 2, 21)),
    # Berlin: 29 March 2026 has 23 hours (02:00 -> 03:00), 25 October 2026 has 25.
    ("Europe/Berlin", "today", utc(2026, 3, 29, 12), utc(2026, 3, 28, 23), utc(2026, 3, 29, 22)),
    ("Europe/Berlin", "yesterday", utc(2026, 10, 26, 8),
     utc(2026, 10, 24, 22), utc(2026, 10, 25, 23)),
    ("Europe/Berlin", "week", utc(2026, 3, 31, 12), utc(2026, 3, 24, 23), utc(2026, 3, 31, 22)),
    # New York, 8 March 2026 (23 h) and 1 November 2026 (25 h).
    ("America/New_York", "today", utc(2026, 3, 8, 12), utc(2026, 3, 8, 5), utc(2026, 3, 9, 4)),
    ("America/New_York", "today", utc(2026, 11, 1, 12), utc(2026, 11, 1, 4), utc(2026, 11, 2, 5)),
    # Kolkata (+05:30): midnight is 18:30 UTC.
    ("Asia/Kolkata", "today", utc(2026, 12, 2, 9), utc(2026, 12, 1, 18, 30),
     utc(2026, 12, 2, 18, 30)),
    ("UTC", "week", utc(2026, 12, 2, 9), utc(2026, 11, 26), utc(2026, 12, 3)),
])
def test_period_bounds_are_local_days(zone: str, period: Any, now: datetime, start: datetime,
                                      end: datetime) -> None:
    assert period_bounds(period, now, ZoneInfo(zone)) == (start, end)


def test_dst_days_have_23_and_25_hours() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    spring = period_bounds("today", utc(2026, 3, 29, 12), berlin)
    autumn = period_bounds("today", utc(2026, 10, 25, 12), berlin)
    assert spring[1] - spring[0] == timedelta(hours=23)
    assert autumn[1] - autumn[0] == timedelta(hours=25)
    week = period_bounds("week", utc(2026, 3, 31, 12), berlin)
    assert week[1] - week[0] == timedelta(days=7, hours=-1)


def test_a_skipped_midnight_starts_the_day_at_the_change() -> None:
    # Santiago: on 6 September 2026 the clocks jump from 00:00 to 01:00 (-04 -> -03).
    start, end = period_bounds("today", utc(2026, 9, 6, 15), ZoneInfo("America/Santiago"))
    assert start == utc(2026, 9, 6, 4) and end == utc(2026, 9, 7, 3)


@pytest.mark.parametrize(("start", "end", "first", "last"), [
    (utc(2026, 12, 1), utc(2026, 12, 3), utc(2026, 12, 1), utc(2026, 12, 3)),
    (utc(2026, 12, 1, 21), utc(2026, 12, 2, 21), utc(2026, 12, 2), utc(2026, 12, 2)),
    (utc(2026, 11, 25, 21), utc(2026, 12, 2, 21), utc(2026, 11, 26), utc(2026, 12, 2)),
    (utc(2026, 12, 2, 1), utc(2026, 12, 2, 5), utc(2026, 12, 2, 5), utc(2026, 12, 2, 5)),
])
def test_whole_utc_days(start: datetime, end: datetime, first: datetime, last: datetime) -> None:
    assert whole_utc_days(start, end) == (first, last)


def test_hour_labels() -> None:
    assert hour_label(1) == "01:00" and hour_label(14, 30) == "14:30"


# ------------------------------------------------------------------------------ through the API

NOW = utc(2031, 5, 14, 9)  # 12:00 in Moscow; the database holds no other calls that week


async def get(w: World, path: str, role: str = "admin") -> Any:
    resp = await w.client.get(path, headers=w.auth(role))
    assert resp.status == 200, await resp.text()
    return await resp.json()


def centre(world: World, zone: str, now: datetime = NOW) -> World:
    services = world.services
    services.settings = services.settings.replace(timezone=zone)
    services.clock = lambda: now
    return world


async def test_moscow_today_starts_at_local_midnight(world: World) -> None:
    w = centre(world, "Europe/Moscow")
    await write_calls(w.services, [
        # 01:30 Moscow today: counted today, hour "01:00"
        make_call("tz-1", utc(2031, 5, 13, 22, 30), status=DONE, wait=5, talk=60,
                  operator_id=w.op_a),
        # 23:30 Moscow yesterday (still "today" in UTC): rang A, nobody answered
        dataclasses.replace(make_call("tz-2", utc(2031, 5, 13, 20, 30), status=MISSED, wait=30),
                            rung_operator_ids=(w.op_a,), offered_operator_ids=(w.op_a,)),
        # 11:10 Moscow today
        make_call("tz-3", utc(2031, 5, 14, 8, 10), status=DONE, wait=5, talk=30,
                  operator_id=w.op_b),
    ])
    stats = await get(w, "/api/dashboard/stats?period=today")
    assert (stats["total_calls_today"], stats["missed_calls_today"]) == (2, 0)
    assert stats["call_trends"] == [{"hour": "01:00", "calls": 1, "answered": 1},
                                    {"hour": "11:00", "calls": 1, "answered": 1}]
    assert stats["busiest_hour"] == "01:00"
    yesterday = await get(w, "/api/calls/stats?period=yesterday")
    assert (yesterday["total_calls"], yesterday["missed_calls"]) == (1, 1)
    assert yesterday["peak_hour"] == "23:00"
    # Operator figures: the daily rollup has UTC days; the local day is still exact.
    op_a = await get(w, f"/api/operators/{w.op_a}/stats?period=today")
    assert (op_a["calls_handled"], op_a["calls_missed"], op_a["total_talk_time"]) == (1, 0, 60)
    op_a = await get(w, f"/api/operators/{w.op_a}/stats?period=yesterday")
    assert (op_a["calls_handled"], op_a["calls_missed"]) == (0, 1)
    op_a = await get(w, f"/api/operators/{w.op_a}/stats?period=week")
    assert (op_a["calls_handled"], op_a["calls_missed"]) == (1, 1)
    analytics = await get(w, "/api/dashboard/call-analytics?period=today")
    assert [h["hour"] for h in analytics["hourly_distribution"]] == ["01:00", "11:00"]
    assert sorted(o["calls_handled"] for o in analytics["operator_summary"]) == [1, 1]
    activity = await get(w, "/api/dashboard/operator-activity")
    assert {o["operator_id"]: o["calls_today"] for o in activity}[w.op_a] == 1
    operators = await get(w, "/api/operators/")
    assert {o["id"]: o["calls_today"] for o in operators}[w.op_a] == 1
    info = await get(w, "/api/admin/system/info")
    assert info["calls_today"] == 2


async def test_half_hour_zone_labels_buckets_by_local_start(world: World) -> None:
    w = centre(world, "Asia/Kolkata")
    await write_calls(w.services, [
        make_call("tz-k1", utc(2031, 5, 14, 8, 10), status=DONE, wait=5, talk=30,
                  operator_id=w.op_b),      # 13:40 local, UTC bucket 08:00 = 13:30 local
        make_call("tz-k2", utc(2031, 5, 14, 8, 50), status=DONE, wait=5, talk=30,
                  operator_id=w.op_b),      # 14:20 local, same bucket
        make_call("tz-k3", utc(2031, 5, 13, 18, 40), status=DONE, wait=5, talk=30,
                  operator_id=w.op_b),      # 00:10 local today, but its bucket starts 23:30
    ])
    stats = await get(w, "/api/dashboard/stats?period=today")
    assert stats["call_trends"] == [{"hour": "13:30", "calls": 2, "answered": 2}]
    assert stats["busiest_hour"] == "13:30"
    yesterday = await get(w, "/api/calls/stats?period=yesterday")
    assert (yesterday["total_calls"], yesterday["peak_hour"]) == (1, "23:30")
    # Operator figures (daily rollup + edges) count each call where its bucket is, too.
    for period, handled in (("today", 2), ("yesterday", 1)):
        op_b = await get(w, f"/api/operators/{w.op_b}/stats?period={period}")
        assert op_b["calls_handled"] == handled, period


async def test_export_file_name_carries_local_time(world: World) -> None:
    w = centre(world, "Europe/Moscow", utc(2031, 5, 14, 22, 5, 7))
    resp = await w.client.get("/api/calls/export", headers=w.auth("admin"))
    assert resp.status == 200
    assert resp.headers["Content-Disposition"] == (
        'attachment; filename="calls_2031-05-15_01-05-07.csv"')
    await resp.read()


async def test_history_dates_without_offset_are_local(world: World) -> None:
    w = centre(world, "Europe/Moscow")
    await write_calls(w.services, [
        make_call("tz-h1", utc(2031, 5, 13, 22, 30), status=DONE, wait=5, talk=60),  # 14th 01:30
        make_call("tz-h2", utc(2031, 5, 14, 21, 30), status=DONE, wait=5, talk=60),  # 15th 00:30
        make_call("tz-h3", utc(2031, 5, 13, 20, 30), status=DONE, wait=5, talk=60),  # 13th 23:30
    ])

    async def channels(query: str) -> list[str]:
        page = await get(w, f"/api/calls/?{query}")
        return sorted(c["channel_id"] for c in page["items"])

    assert await channels("date_from=2031-05-14&date_to=2031-05-14") == ["tz-h1"]
    assert await channels("date_from=2031-05-14T01:00:00&date_to=2031-05-15T00:30:00") == [
        "tz-h1", "tz-h2"]
    assert await channels("date_from=2031-05-13T20:00:00Z&date_to=2031-05-13T21:00:00Z") == [
        "tz-h3"]
    resp = await w.client.get("/api/calls/?date_to=9999-12-31", headers=w.auth("admin"))
    assert resp.status == 422
    resp = await w.client.get("/api/calls/?date_to=9998-12-31", headers=w.auth("admin"))
    assert resp.status == 200
