"""Queues (seed ``Queue``) in PostgreSQL, and the per-queue call figures of one day.
Queue rows come back as frozen ``QueueRow``s, not ``asyncpg.Record``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg

from engine.errors import DuplicateRecord

QUEUE_COLUMNS = (
    "id, name, description, asterisk_name, max_wait_time, priority, strategy, members,"
    " is_active, service_level_threshold, created_at, updated_at"
)
# Columns a create/update may set (the API validates values; SQL names come only from here).
WRITABLE = (
    "name", "description", "asterisk_name", "max_wait_time", "priority", "strategy", "members",
    "is_active", "service_level_threshold",
)
PBX_QUEUE_DESCRIPTION = "Found on the PBX"  # a row the service added by itself


@dataclass(frozen=True, slots=True)
class QueueRow:
    id: str
    name: str
    description: str
    asterisk_name: str
    max_wait_time: int
    priority: int
    strategy: str
    members: tuple[str, ...]
    is_active: bool
    service_level_threshold: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> QueueRow:
        values = {f.name: record[f.name] for f in fields(cls)}
        return cls(**values | {"id": str(values["id"]), "members": tuple(values["members"])})

    def __getitem__(self, key: str) -> Any:
        """Read by column name too (``api/views/asterisk.py`` still does; to be dropped)."""
        return getattr(self, key)


class QueueExists(DuplicateRecord):
    """A unique column (``name`` or ``asterisk_name``) is taken: seed DB_004."""

    def __init__(self, field: str) -> None:
        super().__init__(f"A queue with this {field} already exists", field=field)


class Queues:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def all(self) -> list[QueueRow]:
        return [QueueRow.of(r) for r in await self.pool.fetch(
            f"SELECT {QUEUE_COLUMNS} FROM queues ORDER BY priority DESC, name"
        )]

    async def get(self, queue_id: str) -> QueueRow | None:
        row = await self.pool.fetchrow(
            f"SELECT {QUEUE_COLUMNS} FROM queues WHERE id = $1::uuid", queue_id
        )
        return None if row is None else QueueRow.of(row)

    async def create(self, values: dict[str, Any]) -> QueueRow:
        cols = [c for c in WRITABLE if c in values]
        params = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
        sql = (f"INSERT INTO queues ({', '.join(cols)}) VALUES ({params})"
               f" RETURNING {QUEUE_COLUMNS}")
        row = await self._write(sql, *(values[c] for c in cols))
        assert row is not None
        return row

    async def add_from_pbx(self, asterisk_name: str, service_level: int) -> QueueRow | None:
        """A queue the PBX names and nobody typed in: a row with name = asterisk_name = the
        PBX's name. None when a queue already has that name or asterisk_name (kept as is)."""
        row = await self.pool.fetchrow(
            "INSERT INTO queues (name, asterisk_name, service_level_threshold, description)"
            f" VALUES ($1, $1, $2, $3) ON CONFLICT DO NOTHING RETURNING {QUEUE_COLUMNS}",
            asterisk_name, service_level, PBX_QUEUE_DESCRIPTION,
        )
        return None if row is None else QueueRow.of(row)

    async def update(self, queue_id: str, values: dict[str, Any]) -> QueueRow | None:
        """Set the given columns; None when the queue does not exist."""
        cols = [c for c in WRITABLE if c in values]
        if not cols:
            return await self.get(queue_id)
        sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(cols, start=2))
        sql = (f"UPDATE queues SET {sets}, updated_at = now() WHERE id = $1::uuid"
               f" RETURNING {QUEUE_COLUMNS}")
        return await self._write(sql, queue_id, *(values[c] for c in cols))

    async def delete(self, queue_id: str) -> bool:
        """Remove the queue (its calls keep ``queue_name``; ``queue_id`` becomes NULL)."""
        status = await self.pool.execute("DELETE FROM queues WHERE id = $1::uuid", queue_id)
        return bool(status.endswith(" 1"))

    async def day_figures(self, since: datetime) -> dict[str, dict[str, Any]]:
        """Per queue name, inbound calls started since ``since``: completed, abandoned in the
        queue, answered within the queue's service level, average wait and talk (seconds)."""
        rows = await self.pool.fetch(
            """SELECT c.queue_name,
                      count(*) FILTER (WHERE c.status = 'completed') AS completed,
                      count(*) FILTER (WHERE c.missed_reason = 'abandoned_in_queue') AS abandoned,
                      count(*) FILTER (WHERE c.answer_time IS NOT NULL
                                         AND c.wait_seconds <= q.service_level_threshold)
                          AS within_sl,
                      count(*) FILTER (WHERE c.answer_time IS NOT NULL
                                          OR c.missed_reason = 'abandoned_in_queue') AS offered,
                      avg(c.wait_seconds) FILTER (WHERE c.answer_time IS NOT NULL) AS hold,
                      avg(c.duration) FILTER (WHERE c.status = 'completed') AS talk
                 FROM calls c JOIN queues q ON q.asterisk_name = c.queue_name
                WHERE c.start_time >= $1 AND c.direction = 'inbound'
                GROUP BY c.queue_name""",
            since,
        )
        return {r["queue_name"]: dict(r) for r in rows}

    async def member_figures(self, since: datetime) -> dict[tuple[str, str], tuple[int, Any]]:
        """(queue name, operator extension) -> (calls answered since ``since``, last answer)."""
        rows = await self.pool.fetch(
            """SELECT c.queue_name, o.extension, count(*) AS taken,
                      max(c.answer_time) AS last_call
                 FROM calls c JOIN operators o ON o.id = c.operator_id
                WHERE c.start_time >= $1 AND c.queue_name IS NOT NULL
                GROUP BY c.queue_name, o.extension""",
            since,
        )
        return {(r["queue_name"], r["extension"]): (r["taken"], r["last_call"]) for r in rows}

    async def _write(self, sql: str, *args: Any) -> QueueRow | None:
        try:
            row = await self.pool.fetchrow(sql, *args)
            return None if row is None else QueueRow.of(row)
        except asyncpg.UniqueViolationError as exc:
            constraint = getattr(exc, "constraint_name", "") or ""
            raise QueueExists("asterisk_name" if "asterisk" in constraint else "name") from None
