"""Statistics reads over the rollups (migrations 002 and 005, kept by a trigger as calls end):
at most 31 × 24 hourly buckets per queue/group/direction, never the calls table. Rows come back
as frozen ``Sums`` (what ``api.figures.Tally`` adds up).

Overall figures read ``call_stats_hourly``; a group filter reads ``call_stats_group_hourly``,
where a call counts once in each group of ``calls.group_ids`` — the groups of every operator it
rang or reached, the same column ``storage.calls.call_visible_to_group`` reads. Per-operator
figures read ``call_stats_operator_daily`` (scope NULL: every call; scope g: the calls of group
g), which also holds ``missed_rung``: missed calls that rang the operator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

SUMS = """sum(offered) AS offered, sum(answered) AS answered, sum(missed) AS missed,
          sum(answered_sl) AS answered_sl, sum(wait_sum) AS wait_sum, sum(wait_n) AS wait_n,
          sum(talk_sum) AS talk_sum, max(max_wait) AS max_wait"""


@dataclass(frozen=True, slots=True)
class Sums:
    """Sums of counted calls over some rollup rows."""

    offered: int = 0
    answered: int = 0
    missed: int = 0
    answered_sl: int = 0
    wait_sum: int = 0
    wait_n: int = 0
    talk_sum: int = 0
    max_wait: int = 0

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> Sums:
        return cls(**{f.name: int(record[f.name] or 0) for f in fields(cls)})


@dataclass(frozen=True, slots=True)
class HourSums:
    hour: int          # local hour of day (0-23) at which the UTC hour bucket starts
    minute: int        # its local minute: 0, or 30/45 in zones that are not whole hours
    inbound: bool
    sums: Sums


@dataclass(frozen=True, slots=True)
class OperatorSums:
    operator_id: str
    name: str
    sums: Sums          # calls the operator answered (or placed)
    missed_rung: int    # missed calls that rang the operator


@dataclass(frozen=True, slots=True)
class QueueSums:
    queue_name: str
    sums: Sums


def _where(start: datetime, end: datetime, **eq: str | None) -> tuple[str, list[Any]]:
    """``bucket`` range plus equality filters for the non-None values."""
    args: list[Any] = [start, end]
    parts = ["bucket >= $1", "bucket < $2"]
    for column, value in eq.items():
        if value is not None:
            args.append(value)
            parts.append(f"{column} = ${len(args)}::uuid")
    return " AND ".join(parts), args


def _hourly(group_id: str | None) -> str:
    """The hourly rollup to read: overall, or one group's (a call in every one of its groups)."""
    return "call_stats_hourly" if group_id is None else "call_stats_group_hourly"


def _hour_ceiling(moment: datetime) -> datetime:
    floor = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(hours=1)


def whole_utc_days(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """``[first, last)``: the whole UTC days inside ``[start, end)`` (``first == last`` when
    there is none; then ``[start, first)`` and ``[last, end)`` cover the interval)."""
    def midnight(moment: datetime) -> datetime:
        return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = midnight(start)
    if first < start:
        first += timedelta(days=1)
    last = midnight(end)
    if last <= first:
        first = last = max(start, min(first, end))
    return first, last


class Stats:
    """Read-only statistics repository."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def by_hour(self, start: datetime, end: datetime, *, tz: str = "UTC",
                      group_id: str | None = None,
                      queue_id: str | None = None) -> list[HourSums]:
        """Counted calls of ``[start, end)`` by (local start of the hour bucket in the IANA zone
        ``tz``, inbound?). Buckets that start at the same local time (the hour repeated when the
        clocks go back) are added up."""
        where, args = _where(start, end, group_id=group_id, queue_id=queue_id)
        args.append(tz)
        local = f"bucket AT TIME ZONE ${len(args)}::text"
        rows = await self.pool.fetch(
            f"""SELECT extract(hour FROM {local})::int AS hour,
                       extract(minute FROM {local})::int AS minute,
                       direction = 'inbound' AS inbound, {SUMS}
                  FROM {_hourly(group_id)} WHERE {where} GROUP BY 1, 2, 3""", *args)
        return [HourSums(r["hour"], r["minute"], r["inbound"], Sums.of(r)) for r in rows]

    async def by_operator(self, start: datetime, end: datetime, *, group_id: str | None = None,
                          operator_id: str | None = None) -> list[OperatorSums]:
        """Per operator with counted or missed-rung calls of ``[start, end)``, most answered
        first; over the calls of ``group_id`` when given.

        ``call_stats_operator_daily`` has UTC days; a local day starts elsewhere. Whole UTC days
        come from the rollup, the partial days at the edges (at most two, under 24 h each) from
        the calls themselves through the ``start_time`` index, with the trigger's definitions
        (migration 005, ``call_stats_apply_groups``). The bounds are rounded up to whole UTC
        hours, so that a call counts where its hour bucket does (the hourly figures take the
        buckets that start inside the period; in a +05:30 zone the local day starts
        mid-bucket)."""
        start, end = _hour_ceiling(start), _hour_ceiling(end)
        first, last = whole_utc_days(start, end)
        args: list[Any] = [first, last, start, end]
        if group_id is None:
            scope, calls_scope = "scope IS NULL", "TRUE"
        else:
            args.append(group_id)
            scope = f"scope = ${len(args)}::uuid"
            calls_scope = f"${len(args)}::uuid = ANY(c.group_ids)"
        only = ""
        if operator_id is not None:
            args.append(operator_id)
            only = f"WHERE operator_id = ${len(args)}::uuid"
        edges = ("(c.start_time >= $3 AND c.start_time < $1"
                 " OR c.start_time >= $2 AND c.start_time < $4)")
        rows = await self.pool.fetch(
            f"""SELECT s.*, COALESCE(NULLIF(u.name, ''), u.username, o.extension) AS name
                  FROM (SELECT operator_id, {SUMS}, sum(missed_rung) AS missed_rung FROM (
                          SELECT operator_id, offered, answered, missed, answered_sl, wait_sum,
                                 wait_n, talk_sum, max_wait, missed_rung
                            FROM call_stats_operator_daily
                           WHERE bucket >= $1 AND bucket < $2 AND {scope}
                          UNION ALL
                          SELECT c.operator_id, 1, (c.status = 'completed')::int,
                                 (c.status = 'missed')::int,
                                 (c.status = 'completed' AND c.wait_seconds IS NOT NULL
                                  AND c.wait_seconds <= COALESCE(c.sl_threshold, 20))::int,
                                 COALESCE(c.wait_seconds, 0), (c.wait_seconds IS NOT NULL)::int,
                                 CASE WHEN c.status = 'completed' THEN COALESCE(c.duration, 0)
                                      ELSE 0 END,
                                 COALESCE(c.wait_seconds, 0), 0
                            FROM calls c
                           WHERE c.status IN ('completed', 'missed')
                             AND c.operator_id IS NOT NULL AND {edges} AND {calls_scope}
                          UNION ALL
                          SELECT rung.operator_id, 0, 0, 0, 0, 0, 0, 0, 0, 1
                            FROM calls c, LATERAL (SELECT DISTINCT unnest(c.rung_operator_ids)
                                                   AS operator_id) rung
                           WHERE c.status = 'missed' AND {edges} AND {calls_scope}) d
                        {only}
                        GROUP BY operator_id
                        HAVING sum(offered) > 0 OR sum(missed_rung) > 0) s
                  JOIN operators o ON o.id = s.operator_id JOIN users u ON u.id = o.user_id
                 ORDER BY s.answered DESC, name""", *args)
        return [OperatorSums(str(r["operator_id"]), r["name"], Sums.of(r),
                             int(r["missed_rung"])) for r in rows]

    async def by_queue(self, start: datetime, end: datetime, *,
                       group_id: str | None = None) -> list[QueueSums]:
        """Inbound counted calls per queue, most offered first."""
        where, args = _where(start, end, group_id=group_id)
        rows = await self.pool.fetch(
            f"""SELECT q.name AS queue_name, s.* FROM
                  (SELECT queue_id, {SUMS} FROM {_hourly(group_id)}
                    WHERE {where} AND queue_id IS NOT NULL AND direction = 'inbound'
                    GROUP BY queue_id HAVING sum(offered) > 0) s
                  JOIN queues q ON q.id = s.queue_id
                 ORDER BY s.offered DESC, q.name""", *args)
        return [QueueSums(r["queue_name"], Sums.of(r)) for r in rows]

    async def offered(self, start: datetime, end: datetime, *,
                      group_id: str | None = None) -> int:
        """Counted calls of ``[start, end)``."""
        where, args = _where(start, end, group_id=group_id)
        return int(await self.pool.fetchval(
            f"SELECT COALESCE(sum(offered), 0) FROM {_hourly(group_id)} WHERE {where}",
            *args))

    async def operator_group(self, operator_id: str) -> tuple[bool, UUID | None]:
        """(does the operator exist, its group)."""
        row = await self.pool.fetchrow(
            "SELECT group_id FROM operators WHERE id = $1::uuid", operator_id)
        return (False, None) if row is None else (True, row["group_id"])

    async def queue_exists(self, queue_id: str) -> bool:
        return await self.pool.fetchval(
            "SELECT 1 FROM queues WHERE id = $1::uuid", queue_id) is not None
