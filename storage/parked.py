"""Parked records: rows PostgreSQL refused (bad data), kept with the error for an admin to see.

The record writer parks a row only after isolating it (every other row of its batch is written),
so one hostile caller ID never blocks the records of everybody else.
"""

from __future__ import annotations

from typing import Any

import asyncpg

PARK = """
INSERT INTO parked_records (kind, record_id, payload, error)
VALUES ($1, $2, $3, $4)
ON CONFLICT (kind, record_id) DO UPDATE SET
    payload = EXCLUDED.payload, error = EXCLUDED.error, parked_at = now(),
    attempts = parked_records.attempts + 1
"""


def _printable(text: str) -> str:
    # the error text may quote the very byte PostgreSQL refused
    return text.replace("\x00", "\\u0000")


async def park(conn: asyncpg.Connection, kind: str, record_id: str, payload: str,
               error: str) -> None:
    """Keep one refused record (the latest version of it) with PostgreSQL's error text.
    ``payload`` is JSON text (its NUL bytes escaped, so PostgreSQL takes it)."""
    await conn.execute(PARK, kind, _printable(record_id), _printable(payload), _printable(error))


async def list_parked(pool: asyncpg.Pool, *, skip: int = 0,
                      limit: int = 100) -> tuple[list[dict[str, Any]], int]:
    """Newest first, and the total count."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT id, kind, record_id, payload, error, attempts, first_parked_at, parked_at
                 FROM parked_records ORDER BY parked_at DESC, id DESC OFFSET $1 LIMIT $2""",
            skip, limit)
        total = await conn.fetchval("SELECT count(*) FROM parked_records")
    return [dict(r) for r in rows], int(total)
