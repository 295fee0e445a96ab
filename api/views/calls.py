"""/api/calls: history, one call, create, update, CSV export (seed 001, section Звонки).

Who sees what: admins and managers every call; a supervisor with a group the calls of that group
(``storage.calls.call_visible_to_group``), without a group every call; an operator only the calls
they answered (``operator_id`` is forced to their own). Updates: an admin may change any editable
field; an operator only ``notes`` of their own calls (anything else: 403 AUTH_003).

The history answers the seed's envelope ``{items, total, page, pages}`` plus ``size``. Paging by
``skip``/``limit`` or by ``page``/``size`` (``per_page`` is an alias of ``size``); ``page`` wins
over ``skip``, ``size`` over ``limit``. The total is exact (see ``storage/calls.py``).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, replace
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from api.auth import Forbidden
from api.errors import json_response
from api.figures import local_midnight
from api.http import invalid_field, parse_body, parse_query, to_json, uuid_param
from api.routing import Route
from api.scope import supervised_group
from api.state import SERVICES, current_user
from engine.errors import RecordNotFound
from engine.model import call_id_for
from engine.roles import ANY_USER, Role
from storage.calls import CallFilter, CallRow, Calls

Status = Literal["incoming", "answered", "completed", "missed"]
MAX_PAGE_SIZE = 500
MAX_SKIP = 2**31 - 1        # rows; far past any history, well inside PostgreSQL's bigint
MAX_SECONDS = 2**31 - 1     # durations are int4 columns
CSV_FIELDS = ("id", "channel_id", "caller_number", "called_number", "operator_id",
              "operator_name", "queue_id", "queue_name", "direction", "status", "missed_reason",
              "start_time", "answer_time", "end_time", "duration", "wait_seconds",
              "recording_url", "notes")
# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


LAST_YEAR = 9998  # so that a day, an hour or a microsecond can always be added


def _utc(moment: datetime) -> datetime:
    """Aware UTC (naive means UTC); a value outside years 1-9998 is refused (422)."""
    try:
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError("date out of range") from None
    if moment.year > LAST_YEAR:
        raise ValueError(f"date out of range (after {LAST_YEAR})")
    return moment


Instant = Annotated[datetime, AfterValidator(_utc)]


def _bound(value: Any, info: ValidationInfo, *, end: bool) -> Any:
    """ISO date or datetime -> aware UTC datetime. A bare date or a datetime without an offset
    is the center's local time (``tz`` in the validation context; UTC without one). As an upper
    bound (``end``) both become the half-open bound: a bare date means through that whole local
    day, an instant is inclusive."""
    if value is None or isinstance(value, datetime):
        return value
    tz = (info.context or {}).get("tz", UTC)
    text = str(value).strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = _utc(local_midnight(day, tz))  # the day itself must be in range
            return local_midnight(day + timedelta(days=1), tz) if end else start
        moment = datetime.fromisoformat(text)
        moment = _utc(moment if moment.tzinfo else moment.replace(tzinfo=tz))
    except OverflowError:
        raise ValueError("date out of range") from None
    return moment + timedelta(microseconds=1) if end else moment


class CallQuery(BaseModel):
    """Filters shared by the history and the export. ``date_to`` is inclusive (a bare date:
    through the end of that day); internally the range is ``[date_from, date_to)``. Parse it
    with ``context={"tz": ...}``: dates and offset-less times are the center's local time."""

    operator_id: UUID | None = None
    status: Status | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None

    @field_validator("date_from", mode="before")
    @classmethod
    def _from(cls, v: Any, info: ValidationInfo) -> Any:
        return _bound(v, info, end=False)

    @field_validator("date_to", mode="before")
    @classmethod
    def _to(cls, v: Any, info: ValidationInfo) -> Any:
        return _bound(v, info, end=True)

    def storage_filter(self, *, group_id: UUID | None = None) -> CallFilter:
        return CallFilter(operator_id=self.operator_id, status=self.status,
                          date_from=self.date_from, date_to=self.date_to, group_id=group_id)


class HistoryQuery(CallQuery):
    skip: int = Field(0, ge=0, le=MAX_SKIP)
    limit: int = Field(50, ge=1, le=MAX_PAGE_SIZE)
    page: int | None = Field(None, ge=1, le=MAX_SKIP)
    size: int | None = Field(None, ge=1, le=MAX_PAGE_SIZE)
    per_page: int | None = Field(None, ge=1, le=MAX_PAGE_SIZE)

    @property
    def page_size(self) -> int:
        return self.size or self.per_page or self.limit

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size if self.page is not None else self.skip

    @model_validator(mode="after")
    def _offset_in_range(self) -> HistoryQuery:
        if self.offset > MAX_SKIP:
            raise ValueError(f"page * size must stay below {MAX_SKIP}")
        return self


class CallCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel_id: str = Field(min_length=1, max_length=200)
    caller_number: str = Field("", max_length=64)
    called_number: str | None = Field(None, max_length=64)
    queue_id: UUID | None = None
    operator_id: UUID | None = None
    direction: Literal["inbound", "outbound", "internal"] = "inbound"
    status: Status = "incoming"
    start_time: Instant | None = None
    answer_time: Instant | None = None
    end_time: Instant | None = None
    recording_url: str | None = Field(None, max_length=1000)
    notes: str | None = Field(None, max_length=10000)

    @model_validator(mode="after")
    def _times_fit(self) -> CallCreate:
        _timings(self.start_time or datetime.now(UTC), self.answer_time, self.end_time)
        return self


class CallUpdate(BaseModel):
    """Partial update. Operators may send only ``notes``. ``null`` clears a nullable field;
    ``caller_number`` and ``status`` always have a value."""

    model_config = ConfigDict(extra="forbid")
    caller_number: str | None = Field(None, max_length=64)
    called_number: str | None = Field(None, max_length=64)
    queue_id: UUID | None = None
    operator_id: UUID | None = None
    status: Status | None = None
    answer_time: Instant | None = None
    end_time: Instant | None = None
    recording_url: str | None = Field(None, max_length=1000)
    notes: str | None = Field(None, max_length=10000)

    @model_validator(mode="after")
    def _no_null_for_required(self) -> CallUpdate:
        nulls = [f for f in ("caller_number", "status")
                 if f in self.model_fields_set and getattr(self, f) is None]
        if nulls:
            raise ValueError(f"{', '.join(nulls)}: null is not allowed")
        return self


OPERATOR_EDITABLE = frozenset({"notes"})


def _seconds(later: datetime | None, earlier: datetime | None) -> int | None:
    if later is None or earlier is None:
        return None
    return max(0, round((later - earlier).total_seconds()))


def _timings(start: datetime, answer: datetime | None,
             end: datetime | None) -> tuple[int | None, int | None]:
    """(duration, wait_seconds) of a call; ValueError (422) when one does not fit the column."""
    duration = (0 if answer is None else _seconds(end, answer)) if end else None
    wait = _seconds(answer or end, start)
    if max(duration or 0, wait or 0) > MAX_SECONDS:
        raise ValueError("answer_time/end_time: a duration longer than 68 years")
    return duration, wait


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
    size: int


# ------------------------------------------------------------------------------ scope

def _calls(request: web.Request) -> Calls:
    return Calls(request.app[SERVICES].pool)


async def _own_operator(request: web.Request) -> str | None:
    """For an operator: their operator id ('' if they have none: they see nothing)."""
    user = current_user(request)
    if user["role"] != Role.OPERATOR:
        return None
    return await request.app[SERVICES].users.operator_id_of(str(user["id"])) or ""


async def _visible(request: web.Request, q: CallQuery) -> CallFilter | None:
    """``q`` limited to what this user may see; None when nothing can match."""
    f = q.storage_filter(group_id=supervised_group(current_user(request)))
    own = await _own_operator(request)
    if own is None:
        return f
    if own == "" or (f.operator_id is not None and str(f.operator_id) != own):
        return None
    return replace(f, operator_id=UUID(own))


async def _fetch_call(request: web.Request, call_id: str) -> CallRow:
    """The call if this user may see it: 404 for a call outside a supervisor's group (as if it
    did not exist), 403 for an operator's look at someone else's call."""
    row = await _calls(request).get(call_id, group_id=supervised_group(current_user(request)))
    if row is None:
        raise RecordNotFound("Call not found")
    own = await _own_operator(request)
    if own is not None and (row.operator_id is None or str(row.operator_id) != own):
        raise Forbidden("Operators see their own calls only")
    return row


def call_json(row: CallRow) -> dict[str, Any]:
    return {k: to_json(v) for k, v in asdict(row).items()}


# ----------------------------------------------------------------------------- handlers

async def list_calls(request: web.Request) -> web.Response:
    q = parse_query(request, HistoryQuery, context=_zone(request))
    size, offset = q.page_size, q.offset
    page = offset // size + 1
    f = await _visible(request, q)
    rows, total = await _calls(request).page(f, skip=offset, limit=size) if f else ([], 0)
    return json_response({"items": [call_json(r) for r in rows], "total": total, "page": page,
                          "pages": math.ceil(total / size), "size": size})


async def get_call(request: web.Request) -> web.Response:
    row = await _fetch_call(request, uuid_param(request, "call_id"))
    return json_response(call_json(row))


async def create_call(request: web.Request) -> web.Response:
    body = await parse_body(request, CallCreate)
    start = body.start_time or datetime.now(UTC)
    duration, wait = _timings(start, body.answer_time, body.end_time)
    values = body.model_dump() | {"start_time": start, "duration": duration,
                                  "wait_seconds": wait}
    call_id = await _calls(request).create(call_id_for(body.channel_id), values)
    return json_response(call_json(await _fetch_call(request, call_id)), status=201)


async def update_call(request: web.Request) -> web.Response:
    call_id = uuid_param(request, "call_id")
    body = await parse_body(request, CallUpdate)
    changes = body.model_dump(exclude_unset=True)
    current = await _fetch_call(request, call_id)  # 404 / an operator's own call only
    if current_user(request)["role"] == Role.OPERATOR and set(changes) - OPERATOR_EDITABLE:
        raise Forbidden("Operators may change only the notes of their calls")
    if not changes:
        return json_response(call_json(current))
    if {"answer_time", "end_time"} & set(changes):
        try:
            changes["duration"], changes["wait_seconds"] = _timings(
                current.start_time, changes.get("answer_time", current.answer_time),
                changes.get("end_time", current.end_time))
        except ValueError as exc:
            raise invalid_field("CallUpdate", "end_time", "value_error", str(exc),
                                changes.get("end_time")) from None
    await _calls(request).update(call_id, changes)
    return json_response(call_json(await _fetch_call(request, call_id)))


def _csv_cell(value: Any) -> Any:
    """A value as a CSV cell a spreadsheet shows and never runs: text that would start a
    formula gets a leading single quote (OWASP CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _csv_line(values: list[Any]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(values)
    return buf.getvalue().encode()


def _zone(request: web.Request) -> dict[str, Any]:
    """Validation context: the center's zone, for dates without an offset."""
    return {"tz": request.app[SERVICES].settings.tzinfo}


def export_file_name(request: web.Request) -> str:
    """``calls_2026-12-02_14-52-30.csv``: when the export was made, in the center's zone."""
    services = request.app[SERVICES]
    local = services.now().astimezone(services.settings.tzinfo)
    return f"calls_{local:%Y-%m-%d_%H-%M-%S}.csv"


async def export_calls(request: web.Request) -> web.StreamResponse:
    """CSV of every call matching the filters, newest first, streamed in chunks from a
    server-side cursor (constant memory, whatever the number of rows)."""
    q = parse_query(request, CallQuery, context=_zone(request))
    f = await _visible(request, q)
    calls = _calls(request)
    # Before the headers go out, so that a database that is down is still a 503, not a cut CSV.
    batches = calls.stream(f) if f is not None else None
    first = await anext(batches, []) if batches is not None else []
    resp = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{export_file_name(request)}"'})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await resp.write(_csv_line(list(CSV_FIELDS)))
    batch = first
    while batch:
        await resp.write(b"".join(
            _csv_line([_csv_cell(data[k]) for k in CSV_FIELDS])
            for data in map(call_json, batch)))
        batch = await anext(batches, []) if batches is not None else []
    await resp.write_eof()
    return resp


_C = ("calls",)
ROUTES: list[Route] = [
    Route("GET", "/api/calls/", list_calls, ANY_USER, "Call history (an operator: their own; "
          "a supervisor with a group: that group's)", query=HistoryQuery, response=CallPage,
          tags=_C),
    Route("POST", "/api/calls/", create_call, (Role.ADMIN,), "Create a call record",
          body=CallCreate, response=CallOut, status=201, tags=_C),
    Route("GET", "/api/calls/export", export_calls, ANY_USER,
          "CSV export of the history (same filters and visibility; streamed)", query=CallQuery,
          tags=_C),
    Route("GET", "/api/calls/{call_id}", get_call, ANY_USER, "One call", response=CallOut,
          tags=_C),
    Route("PUT", "/api/calls/{call_id}", update_call, (Role.ADMIN, Role.OPERATOR),
          "Update a call (an operator: notes of their own calls)", body=CallUpdate,
          response=CallOut, tags=_C),
]
