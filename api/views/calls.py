"""/api/calls: history, one call, create, update, CSV export (seed 001, section Звонки).

Who sees what: admins, managers and supervisors every call; an operator only the calls they
answered (``operator_id`` is forced to their own). Updates: an admin may change any editable
field; an operator only ``notes`` of their own calls (anything else: 403 AUTH_003).

``total`` of the history is exact and cheap: final calls (completed/missed) are counted from the
rollups (hourly buckets, or daily ones when filtering by operator) for the whole buckets inside
``[date_from, date_to)``, plus ``count(*)`` through an index for the partial buckets at the
edges and for calls still in progress (incoming/answered, few rows). No estimate.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.auth import Forbidden
from api.errors import json_response
from api.http import parse_body, parse_query, row_json, uuid_param
from api.routing import Route
from api.state import SERVICES, current_user
from engine.errors import DuplicateRecord, RecordNotFound, UnknownReference
from engine.model import call_id_for
from engine.roles import ANY_USER, Role

Status = Literal["incoming", "answered", "completed", "missed"]
FINAL = ("completed", "missed")
LIVE = ("incoming", "answered")
MAX_LIMIT = 500

CALL_COLUMNS = """c.id, c.channel_id, c.caller_number, c.called_number, c.operator_id,
    u.name AS operator_name, c.queue_id, c.queue_name, c.direction, c.status, c.missed_reason,
    c.start_time, c.answer_time, c.end_time, c.duration, c.wait_seconds, c.recording_url,
    c.notes, c.created_at"""
CALL_FROM = """calls c LEFT JOIN operators o ON o.id = c.operator_id
    LEFT JOIN users u ON u.id = o.user_id"""
CSV_FIELDS = ("id", "channel_id", "caller_number", "called_number", "operator_id",
              "operator_name", "queue_id", "queue_name", "direction", "status", "missed_reason",
              "start_time", "answer_time", "end_time", "duration", "wait_seconds",
              "recording_url", "notes")


def _instant(value: Any, *, end: bool) -> datetime | None:
    """ISO date or datetime -> aware UTC datetime. A bare date ``date_to`` means the whole day."""
    if value is None or isinstance(value, datetime):
        return value
    text = str(value).strip()
    if len(text) == 10:
        day = date.fromisoformat(text)
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return moment + timedelta(days=1) if end else moment
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class CallFilter(BaseModel):
    """Filters shared by the history and the export. ``date_to`` is inclusive (a bare date:
    through the end of that day); internally the range is ``[date_from, date_to)``."""

    operator_id: UUID | None = None
    status: Status | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None

    @field_validator("date_from", mode="before")
    @classmethod
    def _from(cls, v: Any) -> datetime | None:
        return _instant(v, end=False)

    @field_validator("date_to", mode="before")
    @classmethod
    def _to(cls, v: Any) -> datetime | None:
        moment = _instant(v, end=True)
        if moment is not None and isinstance(v, str) and len(v.strip()) != 10:
            moment += timedelta(microseconds=1)  # inclusive instant -> half-open bound
        return moment


class HistoryQuery(CallFilter):
    skip: int = Field(0, ge=0)
    limit: int = Field(50, ge=1, le=MAX_LIMIT)


class CallCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel_id: str = Field(min_length=1, max_length=200)
    caller_number: str = Field("", max_length=64)
    called_number: str | None = Field(None, max_length=64)
    queue_id: UUID | None = None
    operator_id: UUID | None = None
    direction: Literal["inbound", "outbound", "internal"] = "inbound"
    status: Status = "incoming"
    start_time: datetime | None = None
    answer_time: datetime | None = None
    end_time: datetime | None = None
    recording_url: str | None = Field(None, max_length=1000)
    notes: str | None = Field(None, max_length=10000)


class CallUpdate(BaseModel):
    """Partial update. Operators may send only ``notes``."""

    model_config = ConfigDict(extra="forbid")
    caller_number: str | None = Field(None, max_length=64)
    called_number: str | None = Field(None, max_length=64)
    queue_id: UUID | None = None
    operator_id: UUID | None = None
    status: Status | None = None
    answer_time: datetime | None = None
    end_time: datetime | None = None
    recording_url: str | None = Field(None, max_length=1000)
    notes: str | None = Field(None, max_length=10000)


OPERATOR_EDITABLE = frozenset({"notes"})


class CallOut(BaseModel):
    id: str
    channel_id: str
    caller_number: str
    called_number: str | None
    operator_id: str | None
    operator_name: str | None
    queue_id: str | None
    queue_name: str | None
    direction: str
    status: str
    missed_reason: str | None
    start_time: str
    answer_time: str | None
    end_time: str | None
    duration: int | None
    wait_seconds: int | None
    recording_url: str | None
    notes: str | None
    created_at: str


class CallPage(BaseModel):
    items: list[CallOut]
    total: int
    page: int
    pages: int


# ------------------------------------------------------------------------------ filters

async def _own_operator(request: web.Request) -> str | None:
    """For an operator: their operator id ('' if they have none: they see nothing)."""
    user = current_user(request)
    if user["role"] != Role.OPERATOR:
        return None
    return await request.app[SERVICES].users.operator_id_of(str(user["id"])) or ""


async def _effective(request: web.Request, f: CallFilter) -> CallFilter | None:
    """The filter with an operator's own id forced; None when nothing can match."""
    own = await _own_operator(request)
    if own is None:
        return f
    if own == "" or (f.operator_id is not None and str(f.operator_id) != own):
        return None
    return f.model_copy(update={"operator_id": UUID(own)})


def _conditions(f: CallFilter, *, statuses: tuple[str, ...] | None = None,
                start: datetime | None = None, end: datetime | None = None,
                args: list[Any] | None = None, col: str = "c.") -> tuple[str, list[Any]]:
    args = [] if args is None else args
    parts = ["TRUE"]
    if f.operator_id is not None:
        args.append(f.operator_id)
        parts.append(f"{col}operator_id = ${len(args)}")
    if statuses is not None:
        args.append(list(statuses))
        parts.append(f"{col}status = ANY(${len(args)}::text[])")
    elif f.status is not None:
        args.append(f.status)
        parts.append(f"{col}status = ${len(args)}")
    lo = max(d for d in (f.date_from, start) if d) if (f.date_from or start) else None
    hi = min(d for d in (f.date_to, end) if d) if (f.date_to or end) else None
    if lo is not None:
        args.append(lo)
        parts.append(f"{col}start_time >= ${len(args)}")
    if hi is not None:
        args.append(hi)
        parts.append(f"{col}start_time < ${len(args)}")
    return " AND ".join(parts), args


def _align(moment: datetime | None, unit: str, *, up: bool) -> datetime | None:
    if moment is None:
        return None
    floor = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if unit == "day":
        floor = floor.replace(hour=0)
    if up and floor < moment:
        floor += timedelta(days=1) if unit == "day" else timedelta(hours=1)
    return floor


async def count_calls(conn: Any, f: CallFilter) -> int:
    """Exact number of calls matching ``f`` (see the module docstring)."""
    wanted = (f.status,) if f.status else FINAL + LIVE
    final = tuple(s for s in wanted if s in FINAL)
    live = tuple(s for s in wanted if s in LIVE)
    total = 0
    if live:
        where, args = _conditions(f, statuses=live)
        total += await conn.fetchval(f"SELECT count(*) FROM calls c WHERE {where}", *args)
    if not final:
        return int(total)
    unit, table = ("day", "call_stats_daily") if f.operator_id else ("hour", "call_stats_hourly")
    a = _align(f.date_from, unit, up=True)
    b = _align(f.date_to, unit, up=False)
    if a is not None and b is not None and a >= b:  # no whole bucket inside: count the rows
        where, args = _conditions(f, statuses=final)
        return int(total + await conn.fetchval(f"SELECT count(*) FROM calls c WHERE {where}",
                                               *args))
    column = {("completed",): "answered", ("missed",): "missed"}.get(final, "offered")
    args: list[Any] = []
    parts = ["TRUE"]
    for value, sql in ((a, "bucket >= ${}"), (b, "bucket < ${}"),
                       (f.operator_id, "operator_id = ${}")):
        if value is not None:
            args.append(value)
            parts.append(sql.format(len(args)))
    total += await conn.fetchval(
        f"SELECT COALESCE(sum({column}), 0) FROM {table} WHERE {' AND '.join(parts)}", *args)
    for lo, hi in ((f.date_from, a), (b, f.date_to)):
        if lo is not None and hi is not None and lo < hi:
            where, args = _conditions(f, statuses=final, start=lo, end=hi)
            total += await conn.fetchval(f"SELECT count(*) FROM calls c WHERE {where}", *args)
    return int(total)


# ----------------------------------------------------------------------------- handlers

async def list_calls(request: web.Request) -> web.Response:
    q = parse_query(request, HistoryQuery)
    f = await _effective(request, q)
    page = q.skip // q.limit + 1
    if f is None:
        return json_response({"items": [], "total": 0, "page": page, "pages": 0})
    pool = request.app[SERVICES].pool
    where, args = _conditions(f)
    args += [q.limit, q.skip]
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"""SELECT {CALL_COLUMNS} FROM {CALL_FROM} WHERE {where}
                ORDER BY c.start_time DESC, c.id DESC
                LIMIT ${len(args) - 1} OFFSET ${len(args)}""", *args)
        total = await count_calls(conn, f)
    return json_response({"items": [row_json(r) for r in rows], "total": total, "page": page,
                          "pages": math.ceil(total / q.limit)})


async def _fetch_call(request: web.Request, call_id: str) -> Any:
    row = await request.app[SERVICES].pool.fetchrow(
        f"SELECT {CALL_COLUMNS} FROM {CALL_FROM} WHERE c.id = $1::uuid", call_id)
    if row is None:
        raise RecordNotFound("Call not found")
    own = await _own_operator(request)
    if own is not None and (row["operator_id"] is None or str(row["operator_id"]) != own):
        raise Forbidden("Operators see their own calls only")
    return row


async def get_call(request: web.Request) -> web.Response:
    row = await _fetch_call(request, uuid_param(request, "call_id"))
    return json_response(row_json(row))


def _seconds(later: datetime | None, earlier: datetime | None) -> int | None:
    if later is None or earlier is None:
        return None
    return max(0, round((later - earlier).total_seconds()))


def _aware(moment: datetime | None) -> datetime | None:
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


async def _write(request: web.Request, sql: str, *args: Any) -> Any:
    try:
        return await request.app[SERVICES].pool.fetchval(sql, *args)
    except asyncpg.ForeignKeyViolationError as exc:
        field = "operator_id" if "operator" in (exc.constraint_name or "") else "queue_id"
        raise UnknownReference(f"Unknown {field}", field=field) from None
    except asyncpg.UniqueViolationError:
        raise DuplicateRecord("A call with this channel_id exists",
                              field="channel_id") from None


async def create_call(request: web.Request) -> web.Response:
    body = await parse_body(request, CallCreate)
    start = _aware(body.start_time) or datetime.now(UTC)
    answer, end = _aware(body.answer_time), _aware(body.end_time)
    duration = (0 if answer is None else _seconds(end, answer)) if end else None
    wait = _seconds(answer or end, start)
    call_id = await _write(
        request,
        """INSERT INTO calls (id, channel_id, source, direction, caller_number, called_number,
                              operator_id, queue_id, queue_name, status, start_time, answer_time,
                              end_time, duration, wait_seconds, recording_url, notes)
           VALUES ($1::uuid, $2, 'api', $3, $4, $5, $6, $7,
                   (SELECT name FROM queues WHERE id = $7), $8, $9, $10, $11, $12, $13, $14,
                   $15)
           RETURNING id""",
        call_id_for(body.channel_id), body.channel_id, body.direction, body.caller_number,
        body.called_number, body.operator_id, body.queue_id, body.status, start, answer, end,
        duration, wait, body.recording_url, body.notes)
    row = await _fetch_call(request, str(call_id))
    return json_response(row_json(row), status=201)


async def update_call(request: web.Request) -> web.Response:
    call_id = uuid_param(request, "call_id")
    body = await parse_body(request, CallUpdate)
    changes = body.model_dump(exclude_unset=True)
    current = await _fetch_call(request, call_id)  # 404 / an operator's own call only
    if current_user(request)["role"] == Role.OPERATOR and set(changes) - OPERATOR_EDITABLE:
        raise Forbidden("Operators may change only the notes of their calls")
    if not changes:
        return json_response(row_json(current))
    for key in ("answer_time", "end_time"):
        if key in changes:
            changes[key] = _aware(changes[key])
    if {"answer_time", "end_time"} & set(changes):
        answer = changes.get("answer_time", current["answer_time"])
        end = changes.get("end_time", current["end_time"])
        changes["duration"] = (0 if answer is None else _seconds(end, answer)) if end else None
        changes["wait_seconds"] = _seconds(answer or end, current["start_time"])
    names = list(changes)
    sets = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(names))
    if "queue_id" in changes:
        ref = names.index("queue_id") + 2
        sets += f", queue_name = (SELECT name FROM queues WHERE id = ${ref})"
    await _write(request, f"UPDATE calls SET {sets}, updated_at = now() WHERE id = $1::uuid "
                 "RETURNING id", call_id, *changes.values())
    return json_response(row_json(await _fetch_call(request, call_id)))


def _csv_line(values: list[Any]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(values)
    return buf.getvalue().encode()


async def export_calls(request: web.Request) -> web.StreamResponse:
    """CSV of every call matching the filters, newest first, streamed in chunks from a
    server-side cursor (constant memory, whatever the number of rows)."""
    q = parse_query(request, CallFilter)
    f = await _effective(request, q)
    resp = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": 'attachment; filename="calls.csv"'})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await resp.write(_csv_line(list(CSV_FIELDS)))
    if f is not None:
        where, args = _conditions(f)
        async with request.app[SERVICES].pool.acquire() as conn, conn.transaction():
            chunk: list[bytes] = []
            async for rec in conn.cursor(
                    f"SELECT {CALL_COLUMNS} FROM {CALL_FROM} WHERE {where} "
                    "ORDER BY c.start_time DESC, c.id DESC", *args, prefetch=1000):
                data = row_json(rec)
                chunk.append(_csv_line(["" if data[k] is None else data[k] for k in CSV_FIELDS]))
                if len(chunk) >= 1000:
                    await resp.write(b"".join(chunk))
                    chunk.clear()
            if chunk:
                await resp.write(b"".join(chunk))
    await resp.write_eof()
    return resp


_C = ("calls",)
ROUTES: list[Route] = [
    Route("GET", "/api/calls/", list_calls, ANY_USER, "Call history (an operator: their own)",
          query=HistoryQuery, response=CallPage, tags=_C),
    Route("POST", "/api/calls/", create_call, (Role.ADMIN,), "Create a call record",
          body=CallCreate, response=CallOut, status=201, tags=_C),
    Route("GET", "/api/calls/export", export_calls, ANY_USER,
          "CSV export of the history (same filters; streamed)", query=CallFilter, tags=_C),
    Route("GET", "/api/calls/{call_id}", get_call, ANY_USER, "One call", response=CallOut,
          tags=_C),
    Route("PUT", "/api/calls/{call_id}", update_call, (Role.ADMIN, Role.OPERATOR),
          "Update a call (an operator: notes of their own calls)", body=CallUpdate,
          response=CallOut, tags=_C),
]
