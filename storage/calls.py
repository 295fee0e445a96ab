"""Call history in PostgreSQL: filtered pages, exact totals, one call, create/update, and a
streamed cursor for the export. Rows come back as ``CallRow`` (frozen), never ``asyncpg.Record``;
constraint violations come back as ``engine.errors`` (UnknownReference, DuplicateRecord).

Who may see a call is decided here, once: ``call_visible_to_group`` below is the one SQL
definition of "this call belongs to that group", used by the list, the total, one call, the
export and the update.

``CallCounter.count`` is exact and cheap: final calls (completed/missed) are counted from the
rollups (hourly buckets, per group when scoped to one, or daily ones when filtering by
operator) for the whole buckets inside
``[date_from, date_to)``, plus ``count(*)`` through an index for the partial buckets at the edges
and for calls still in progress (incoming/answered, few rows). No estimate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from engine.errors import DuplicateRecord, UnknownReference

FINAL = ("completed", "missed")
LIVE = ("incoming", "answered")


def call_visible_to_group(group_param: str, alias: str = "c") -> str:
    """THE definition of "call ``alias`` belongs to group ``group_param``" (a SQL boolean).

    A call belongs to the groups of every operator it rang or reached: the answering operator
    and every operator in ``offered_operator_ids``. The ``calls_stats_capture`` trigger
    (migration 005) writes those groups into ``calls.group_ids`` when the row is written (and
    again only when ``operator_id`` or ``offered_operator_ids`` change), so history does not move
    when an operator later changes group. The per-group rollups (``call_stats_group_hourly``,
    ``call_stats_operator_daily``) are keyed by the same array; the engine's ``Call.group_ids``
    (WebSocket scope, ``ws/access.py``) is the same definition over live calls. ``@>`` uses the
    GIN index ``calls_group_ids_idx``.
    """
    return f"{alias}.group_ids @> ARRAY[{group_param}::uuid]"


@dataclass(frozen=True, slots=True)
class CallRow:
    """One call as the history shows it (the seed's ``Call`` plus ``operator_name``)."""

    id: UUID
    channel_id: str
    caller_number: str
    called_number: str | None
    operator_id: UUID | None
    operator_name: str | None
    queue_id: UUID | None
    queue_name: str | None
    direction: str
    status: str
    missed_reason: str | None
    start_time: datetime
    answer_time: datetime | None
    end_time: datetime | None
    duration: int | None
    wait_seconds: int | None
    recording_url: str | None
    notes: str | None
    created_at: datetime

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> CallRow:
        return cls(**{f.name: record[f.name] for f in fields(cls)})


@dataclass(frozen=True, slots=True)
class CallFilter:
    """Which calls: every field None means no condition. ``[date_from, date_to)`` on
    ``start_time``; ``group_id``: only calls visible to that group (``call_visible_to_group``)."""

    operator_id: UUID | None = None
    status: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    group_id: UUID | None = None


CALL_COLUMNS = """c.id, c.channel_id, c.caller_number, c.called_number, c.operator_id,
    u.name AS operator_name, c.queue_id, c.queue_name, c.direction, c.status, c.missed_reason,
    c.start_time, c.answer_time, c.end_time, c.duration, c.wait_seconds, c.recording_url,
    c.notes, c.created_at"""
CALL_FROM = """calls c LEFT JOIN operators o ON o.id = c.operator_id
    LEFT JOIN users u ON u.id = o.user_id"""
# Columns an update may set (SQL names come only from here; the API validates the values).
WRITABLE = ("caller_number", "called_number", "queue_id", "operator_id", "status",
            "answer_time", "end_time", "duration", "wait_seconds", "recording_url", "notes")


def _conditions(f: CallFilter, *, statuses: tuple[str, ...] | None = None,
                start: datetime | None = None, end: datetime | None = None,
                args: list[Any] | None = None) -> tuple[str, list[Any]]:
    """``WHERE`` text over ``calls c`` and its arguments (appended to ``args``)."""
    args = [] if args is None else args
    parts = ["TRUE"]
    if f.operator_id is not None:
        args.append(f.operator_id)
        parts.append(f"c.operator_id = ${len(args)}")
    if f.group_id is not None:
        args.append(f.group_id)
        parts.append(call_visible_to_group(f"${len(args)}"))
    if statuses is not None:
        args.append(list(statuses))
        parts.append(f"c.status = ANY(${len(args)}::text[])")
    elif f.status is not None:
        args.append(f.status)
        parts.append(f"c.status = ${len(args)}")
    lows = [d for d in (f.date_from, start) if d is not None]
    highs = [d for d in (f.date_to, end) if d is not None]
    if lows:
        args.append(max(lows))
        parts.append(f"c.start_time >= ${len(args)}")
    if highs:
        args.append(min(highs))
        parts.append(f"c.start_time < ${len(args)}")
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


class Calls:
    """The call history repository."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def page(self, f: CallFilter, *, skip: int, limit: int) -> tuple[list[CallRow], int]:
        """Newest first: ``limit`` rows after ``skip``, and the exact total of ``f``."""
        where, args = _conditions(f)
        args += [limit, skip]
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"""SELECT {CALL_COLUMNS} FROM {CALL_FROM} WHERE {where}
                    ORDER BY c.start_time DESC, c.id DESC
                    LIMIT ${len(args) - 1} OFFSET ${len(args)}""", *args)
            total = await _count(conn, f)
        return [CallRow.of(r) for r in rows], total

    async def count(self, f: CallFilter) -> int:
        async with self.pool.acquire() as conn:
            return await _count(conn, f)

    async def get(self, call_id: str, *, group_id: UUID | None = None) -> CallRow | None:
        """One call; None when it does not exist or is not visible to ``group_id``."""
        where, args = _conditions(CallFilter(group_id=group_id), args=[call_id])
        row = await self.pool.fetchrow(
            f"SELECT {CALL_COLUMNS} FROM {CALL_FROM} WHERE c.id = $1::uuid AND {where}", *args)
        return None if row is None else CallRow.of(row)

    async def stream(self, f: CallFilter, *, chunk: int = 1000) -> AsyncIterator[list[CallRow]]:
        """Every call of ``f``, newest first, in lists of up to ``chunk`` rows from a server-side
        cursor (constant memory whatever the number of rows)."""
        where, args = _conditions(f)
        async with self.pool.acquire() as conn, conn.transaction():
            batch: list[CallRow] = []
            async for rec in conn.cursor(
                    f"SELECT {CALL_COLUMNS} FROM {CALL_FROM} WHERE {where} "
                    "ORDER BY c.start_time DESC, c.id DESC", *args, prefetch=chunk):
                batch.append(CallRow.of(rec))
                if len(batch) >= chunk:
                    yield batch
                    batch = []
            if batch:
                yield batch

    async def create(self, call_id: str, values: Mapping[str, Any]) -> str:
        """Insert a call recorded through the API (``source = 'api'``); returns its id."""
        v = values
        return str(await self._write(
            """INSERT INTO calls (id, channel_id, source, direction, caller_number,
                                  called_number, operator_id, queue_id, queue_name, status,
                                  start_time, answer_time, end_time, duration, wait_seconds,
                                  recording_url, notes)
               VALUES ($1::uuid, $2, 'api', $3, $4, $5, $6, $7,
                       (SELECT name FROM queues WHERE id = $7), $8, $9, $10, $11, $12, $13,
                       $14, $15)
               RETURNING id""",
            call_id, v["channel_id"], v["direction"], v["caller_number"], v["called_number"],
            v["operator_id"], v["queue_id"], v["status"], v["start_time"], v["answer_time"],
            v["end_time"], v["duration"], v["wait_seconds"], v["recording_url"], v["notes"]))

    async def update(self, call_id: str, changes: Mapping[str, Any]) -> None:
        """Set the given columns (``queue_name`` follows ``queue_id``)."""
        names = [n for n in WRITABLE if n in changes]
        if not names:
            return
        sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
        if "queue_id" in names:
            ref = names.index("queue_id") + 2
            sets += f", queue_name = (SELECT name FROM queues WHERE id = ${ref})"
        await self._write(f"UPDATE calls SET {sets}, updated_at = now() WHERE id = $1::uuid "
                          "RETURNING id", call_id, *(changes[n] for n in names))

    async def _write(self, sql: str, *args: Any) -> Any:
        try:
            return await self.pool.fetchval(sql, *args)
        except asyncpg.ForeignKeyViolationError as exc:
            field = "operator_id" if "operator" in (exc.constraint_name or "") else "queue_id"
            raise UnknownReference(f"Unknown {field}", field=field) from None
        except asyncpg.UniqueViolationError:
            raise DuplicateRecord("A call with this channel_id exists",
                                  field="channel_id") from None


async def _count(conn: asyncpg.Connection, f: CallFilter) -> int:
    """Exact number of calls matching ``f`` (see the module docstring). Scoped to a group, whole
    buckets come from ``call_stats_group_hourly`` (keyed by ``calls.group_ids``, the column
    ``call_visible_to_group`` reads); with both a group and an operator, rows are counted."""
    wanted = (f.status,) if f.status else FINAL + LIVE
    final = tuple(s for s in wanted if s in FINAL)
    live = tuple(s for s in wanted if s in LIVE)

    async def rows(statuses: tuple[str, ...], start: datetime | None = None,
                   end: datetime | None = None) -> int:
        where, args = _conditions(f, statuses=statuses, start=start, end=end)
        return int(await conn.fetchval(f"SELECT count(*) FROM calls c WHERE {where}", *args))

    total = await rows(live) if live else 0
    if not final:
        return total
    if f.group_id is not None and f.operator_id is not None:
        return total + await rows(final)
    if f.group_id is not None:  # a call counts once in each of its groups' rows
        unit, table, key = "hour", "call_stats_group_hourly", "group_id"
    elif f.operator_id is not None:
        unit, table, key = "day", "call_stats_daily", "operator_id"
    else:
        unit, table, key = "hour", "call_stats_hourly", "operator_id"
    a = _align(f.date_from, unit, up=True)
    b = _align(f.date_to, unit, up=False)
    if a is not None and b is not None and a >= b:  # no whole bucket inside: count the rows
        return total + await rows(final)
    column = ("answered" if final == ("completed",) else "missed" if final == ("missed",)
              else "offered")
    args: list[Any] = []
    parts = ["TRUE"]
    for value, sql in ((a, "bucket >= ${}"), (b, "bucket < ${}"),
                       (f.group_id or f.operator_id, key + " = ${}")):
        if value is not None:
            args.append(value)
            parts.append(sql.format(len(args)))
    total += int(await conn.fetchval(
        f"SELECT COALESCE(sum({column}), 0) FROM {table} WHERE {' AND '.join(parts)}", *args))
    for lo, hi in ((f.date_from, a), (b, f.date_to)):
        if lo is not None and hi is not None and lo < hi:
            total += await rows(final, lo, hi)
    return total
