"""Statistics: /api/dashboard/*, /api/calls/stats, /api/operators/{id}/stats,
/api/queues/{id}/stats (seed 001). Figures are defined in ``api/figures.py``.

Counted figures read the rollups ``call_stats_hourly`` / ``call_stats_daily`` (at most
31 × 24 hourly buckets per queue/group/direction), never the calls table; live figures
(``realtime``, operator status, active operators) come from the engine.

Group scoping: a supervisor who has a group sees only that group's figures (``group_id`` of
another group: 403 AUTH_003); admins and managers may pass ``group_id``. A call belongs to the
groups of every operator it rang or reached (``calls.group_ids``; statistics with a group read
the per-group rollups, where a call counts once in each of its groups, and once overall).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel

from api.auth import Forbidden
from api.errors import json_response
from api.figures import Period, Tally, busiest_hour, efficiency, hour_label
from api.http import parse_query, uuid_param
from api.routing import Route
from api.scope import scoped_group, supervised_group
from api.state import SERVICES, current_user
from engine.errors import RecordNotFound
from engine.model import CallStatus, OperatorStatus
from engine.roles import ANY_USER, STAFF, Role
from storage.stats import Stats
from ws.messages import iso


class PeriodQuery(BaseModel):
    period: Period = "today"
    group_id: UUID | None = None


class OperatorPeriodQuery(BaseModel):
    period: Period = "today"


# ------------------------------------------------------------------ response models (OpenAPI)

class CallTrend(BaseModel):
    hour: str
    calls: int
    answered: int


class DashboardStats(BaseModel):
    total_calls_today: int
    answered_calls_today: int
    missed_calls_today: int
    average_wait_time: int
    service_level: float
    active_operators: int
    total_operators: int
    busiest_hour: str | None
    call_trends: list[CallTrend]


class Realtime(BaseModel):
    active_calls: int
    queue_waiting: int
    operators_online: int
    operators_busy: int
    operators_offline: int
    current_hour_calls: int
    timestamp: str


class HourlyDistribution(BaseModel):
    hour: str
    incoming: int
    answered: int
    missed: int


class QueuePerformance(BaseModel):
    queue_name: str
    calls: int
    answered: int
    avg_wait_time: int
    service_level: float


class OperatorSummary(BaseModel):
    operator_name: str
    calls_handled: int
    avg_talk_time: int
    efficiency: float


class CallAnalytics(BaseModel):
    hourly_distribution: list[HourlyDistribution]
    queue_performance: list[QueuePerformance]
    operator_summary: list[OperatorSummary]


class OperatorActivity(BaseModel):
    operator_id: str
    name: str
    extension: str
    status: str
    current_call_duration: int
    calls_today: int
    last_activity: str | None


class BusiestOperator(BaseModel):
    operator_name: str
    calls_count: int


class CallStats(BaseModel):
    total_calls: int
    answered_calls: int
    missed_calls: int
    average_duration: int
    average_wait_time: int
    service_level: float
    peak_hour: str | None
    busiest_operators: list[BusiestOperator]


class OperatorStats(BaseModel):
    calls_handled: int
    calls_missed: int
    total_talk_time: int
    avg_talk_time: int
    efficiency: float
    first_call_resolution: float | None
    customer_satisfaction: float | None


class QueueHour(BaseModel):
    hour: str
    calls: int
    answered: int
    avg_wait: int


class QueueStats(BaseModel):
    calls_entered: int
    calls_answered: int
    calls_abandoned: int
    average_wait_time: int
    max_wait_time: int
    service_level: float
    hourly_stats: list[QueueHour]


# ------------------------------------------------------------------------------- helpers

def _stats(request: web.Request) -> Stats:
    return Stats(request.app[SERVICES].pool)


async def hourly_tallies(request: web.Request, start: datetime, end: datetime, *,
                         group_id: str | None = None, queue_id: str | None = None
                         ) -> dict[tuple[str, bool], Tally]:
    """Counted calls of the period by (local hour label of the bucket, inbound?)."""
    rows = await _stats(request).by_hour(start, end, tz=request.app[SERVICES].settings.timezone,
                                         group_id=group_id, queue_id=queue_id)
    return {(hour_label(r.hour, r.minute), r.inbound): Tally.of(r.sums) for r in rows}


def _split(tallies: dict[tuple[str, bool], Tally]) -> tuple[Tally, Tally, dict[str, Tally],
                                                             dict[str, Tally]]:
    """(all, inbound, all by hour label, inbound by hour label)."""
    by_hour: dict[str, Tally] = defaultdict(Tally)
    inbound_by_hour: dict[str, Tally] = defaultdict(Tally)
    for (hour, inbound), t in tallies.items():
        by_hour[hour].add(t)
        if inbound:
            inbound_by_hour[hour].add(t)
    return (Tally.total(by_hour.values()), Tally.total(inbound_by_hour.values()),
            dict(by_hour), dict(inbound_by_hour))


async def operator_tallies(stats: Stats, start: datetime, end: datetime, *,
                           group_id: str | None = None, operator_id: str | None = None
                           ) -> list[tuple[str, str, Tally, int]]:
    """(operator_id, name, tally, missed calls that rang them) per operator with counted or
    missed calls, most answered first."""
    rows = await stats.by_operator(start, end, group_id=group_id, operator_id=operator_id)
    return [(r.operator_id, r.name, Tally.of(r.sums), r.missed_rung) for r in rows]


def _live_operators(request: web.Request, group_id: str | None) -> list[Any]:
    ops = request.app[SERVICES].engine.operators()
    return [o for o in ops if group_id is None or o.group_id == group_id]


def _live_calls(request: web.Request, group_id: str | None) -> list[Any]:
    calls = [c for c in request.app[SERVICES].engine.active_calls()
             if c.status in (CallStatus.INCOMING, CallStatus.ANSWERED)]
    return [c for c in calls if group_id is None or group_id in c.group_ids]


# ---------------------------------------------------------------------------- dashboard

async def dashboard_stats(request: web.Request) -> web.Response:
    q = parse_query(request, PeriodQuery)
    group = scoped_group(current_user(request), q.group_id)
    start, end = request.app[SERVICES].period(q.period)
    every, inbound, by_hour, _ = _split(
        await hourly_tallies(request, start, end, group_id=group))
    ops = _live_operators(request, group)
    return json_response({
        "total_calls_today": every.offered,
        "answered_calls_today": every.answered,
        "missed_calls_today": every.missed,
        "average_wait_time": inbound.average_wait,
        "service_level": inbound.service_level,
        "active_operators": sum(1 for o in ops if o.status != OperatorStatus.OFFLINE),
        "total_operators": len(ops),
        "busiest_hour": busiest_hour({h: t.offered for h, t in by_hour.items()}),
        "call_trends": [{"hour": h, "calls": t.offered, "answered": t.answered}
                        for h, t in sorted(by_hour.items()) if t.offered > 0],
    })


async def dashboard_realtime(request: web.Request) -> web.Response:
    q = parse_query(request, PeriodQuery)
    group = scoped_group(current_user(request), q.group_id)
    now = request.app[SERVICES].now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    calls = _live_calls(request, group)
    ops = _live_operators(request, group)
    ended_this_hour = await _stats(request).offered(hour, hour + timedelta(hours=1),
                                                    group_id=group)
    return json_response({
        "active_calls": len(calls),
        "queue_waiting": sum(1 for c in calls
                             if c.status == CallStatus.INCOMING and c.queue_name),
        "operators_online": sum(1 for o in ops if o.status == OperatorStatus.ONLINE),
        "operators_busy": sum(1 for o in ops if o.status == OperatorStatus.BUSY),
        "operators_offline": sum(1 for o in ops if o.status == OperatorStatus.OFFLINE),
        "current_hour_calls": int(ended_this_hour)
        + sum(1 for c in calls if c.start_time >= hour),
        "timestamp": iso(now),
    })


async def dashboard_call_analytics(request: web.Request) -> web.Response:
    q = parse_query(request, PeriodQuery)
    group = scoped_group(current_user(request), q.group_id)
    start, end = request.app[SERVICES].period(q.period)
    stats = _stats(request)
    _, _, _, inbound_by_hour = _split(await hourly_tallies(request, start, end, group_id=group))
    queues = await stats.by_queue(start, end, group_id=group)
    operators = await operator_tallies(stats, start, end, group_id=group)
    return json_response({
        "hourly_distribution": [
            {"hour": h, "incoming": t.offered, "answered": t.answered,
             "missed": t.missed}
            for h, t in sorted(inbound_by_hour.items()) if t.offered > 0],
        "queue_performance": [
            {"queue_name": r.queue_name, "calls": t.offered, "answered": t.answered,
             "avg_wait_time": t.average_wait, "service_level": t.service_level}
            for r in queues for t in [Tally.of(r.sums)]],
        "operator_summary": [
            {"operator_name": name, "calls_handled": t.answered,
             "avg_talk_time": t.average_talk, "efficiency": efficiency(t.answered, missed)}
            for _, name, t, missed in operators],
    })


async def dashboard_operator_activity(request: web.Request) -> web.Response:
    q = parse_query(request, PeriodQuery)
    group = scoped_group(current_user(request), q.group_id)
    start, end = request.app[SERVICES].period("today")
    now = request.app[SERVICES].now()
    handled = {op_id: t.answered for op_id, _, t, _ in
               await operator_tallies(_stats(request), start, end, group_id=group)}
    talking: dict[str, int] = {}
    for c in _live_calls(request, None):
        who = c.current_operator_id
        if who and c.answer_time is not None:
            seconds = max(0, int((now - c.answer_time).total_seconds()))
            talking[who] = max(talking.get(who, 0), seconds)
    out = [{
        "operator_id": o.id, "name": o.name or o.extension, "extension": o.extension,
        "status": o.status.value, "current_call_duration": talking.get(o.id, 0),
        "calls_today": handled.get(o.id, 0),
        "last_activity": iso(o.last_activity) if o.last_activity else None,
    } for o in _live_operators(request, group)]
    out.sort(key=lambda r: (r["extension"], r["operator_id"]))
    return json_response(out)


# ------------------------------------------------------------------------ calls / operators

async def call_stats(request: web.Request) -> web.Response:
    q = parse_query(request, PeriodQuery)
    group = scoped_group(current_user(request), q.group_id)
    start, end = request.app[SERVICES].period(q.period)
    stats = _stats(request)
    every, inbound, by_hour, _ = _split(await hourly_tallies(request, start, end, group_id=group))
    operators = await operator_tallies(stats, start, end, group_id=group)
    return json_response({
        "total_calls": every.offered,
        "answered_calls": every.answered,
        "missed_calls": every.missed,
        "average_duration": every.average_talk,
        "average_wait_time": inbound.average_wait,
        "service_level": inbound.service_level,
        "peak_hour": busiest_hour({h: t.offered for h, t in by_hour.items()}),
        "busiest_operators": [{"operator_name": name, "calls_count": t.answered}
                              for _, name, t, _ in operators[:5] if t.answered > 0],
    })


async def operator_stats(request: web.Request) -> web.Response:
    operator_id = uuid_param(request, "operator_id")
    q = parse_query(request, OperatorPeriodQuery)
    services = request.app[SERVICES]
    user = current_user(request)
    if user["role"] == Role.OPERATOR:
        if await services.users.operator_id_of(str(user["id"])) != operator_id:
            raise Forbidden("Operators see their own statistics only")
    stats = _stats(request)
    exists, group = await stats.operator_group(operator_id)
    if not exists:
        raise RecordNotFound("Operator not found")
    own = supervised_group(user)
    if own is not None and group != own:
        raise Forbidden("Supervisors see their own group's figures only")
    start, end = request.app[SERVICES].period(q.period)
    found = await operator_tallies(stats, start, end, operator_id=operator_id)
    t, missed = (found[0][2], found[0][3]) if found else (Tally(), 0)
    return json_response({
        "calls_handled": t.answered,
        "calls_missed": missed,
        "total_talk_time": t.talk_sum,
        "avg_talk_time": t.average_talk,
        "efficiency": efficiency(t.answered, missed),
        "first_call_resolution": None,   # not measured: no case/ticket data
        "customer_satisfaction": None,   # not measured: no survey data
    })


async def queue_stats(request: web.Request) -> web.Response:
    queue_id = uuid_param(request, "queue_id")
    q = parse_query(request, PeriodQuery)
    group = scoped_group(current_user(request), q.group_id)
    stats = _stats(request)
    if not await stats.queue_exists(queue_id):
        raise RecordNotFound("Queue not found")
    start, end = request.app[SERVICES].period(q.period)
    tallies = await hourly_tallies(request, start, end, group_id=group, queue_id=queue_id)
    _, inbound, _, by_hour = _split(tallies)
    return json_response({
        "calls_entered": inbound.offered,
        "calls_answered": inbound.answered,
        "calls_abandoned": inbound.missed,
        "average_wait_time": inbound.average_wait,
        "max_wait_time": inbound.max_wait,
        "service_level": inbound.service_level,
        "hourly_stats": [{"hour": h, "calls": t.offered, "answered": t.answered,
                          "avg_wait": t.average_wait}
                         for h, t in sorted(by_hour.items()) if t.offered > 0],
    })


_D = ("dashboard",)
ROUTES: list[Route] = [
    Route("GET", "/api/dashboard/stats", dashboard_stats, STAFF, "Dashboard figures",
          query=PeriodQuery, response=DashboardStats, tags=_D, rate_bucket="dashboard"),
    Route("GET", "/api/dashboard/realtime", dashboard_realtime, STAFF,
          "Live figures from the engine", query=PeriodQuery, response=Realtime, tags=_D,
          rate_bucket="dashboard"),
    Route("GET", "/api/dashboard/call-analytics", dashboard_call_analytics, STAFF,
          "Hourly distribution, queue performance, operator summary", query=PeriodQuery,
          response=CallAnalytics, tags=_D, rate_bucket="dashboard"),
    Route("GET", "/api/dashboard/operator-activity", dashboard_operator_activity, STAFF,
          "Operators now, with calls handled today", query=PeriodQuery,
          response=list[OperatorActivity], tags=_D, rate_bucket="dashboard"),
    Route("GET", "/api/calls/stats", call_stats, STAFF, "Call statistics", query=PeriodQuery,
          response=CallStats, tags=("calls",)),
    Route("GET", "/api/operators/{operator_id}/stats", operator_stats, ANY_USER,
          "Operator statistics (an operator: their own)", query=OperatorPeriodQuery,
          response=OperatorStats, tags=("operators",)),
    Route("GET", "/api/queues/{queue_id}/stats", queue_stats, STAFF, "Queue statistics",
          query=PeriodQuery, response=QueueStats, tags=("queues",)),
]
