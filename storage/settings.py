"""The seed's SystemSettings: one row of ``system_settings`` (``data`` jsonb), and the few
system-wide figures the admin API reports.

The store keeps whatever dict it is given; secrets inside it are encrypted by the caller
(``api/crypto.py``) before they get here, so this module never sees a clear password.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True, slots=True)
class StoredSettings:
    data: dict[str, Any]
    updated_by: str | None
    updated_at: datetime


def _stored(row: Any) -> StoredSettings:
    data = row["data"]
    return StoredSettings(
        data=dict(data) if isinstance(data, dict) else {},
        updated_by=str(row["updated_by"]) if row["updated_by"] else None,
        updated_at=row["updated_at"],
    )


class SystemSettingsStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get(self) -> StoredSettings:
        row = await self.pool.fetchrow(
            "SELECT data, updated_by, updated_at FROM system_settings WHERE id = 1"
        )
        if row is None:  # the migration inserts the row; recreate it if someone deleted it
            row = await self.pool.fetchrow(
                """INSERT INTO system_settings (id) VALUES (1)
                   ON CONFLICT (id) DO UPDATE SET id = 1
                   RETURNING data, updated_by, updated_at"""
            )
        assert row is not None
        return _stored(row)

    async def update(
        self,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        updated_by: str | None,
    ) -> tuple[StoredSettings, StoredSettings]:
        """Read-modify-write under a row lock, so concurrent updates never lose each other's
        fields. ``change`` gets the stored dict and returns the new one. Returns (old, new)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO system_settings (id) VALUES (1) ON CONFLICT (id) DO NOTHING"
            )
            row = await conn.fetchrow(
                "SELECT data, updated_by, updated_at FROM system_settings WHERE id = 1"
                " FOR UPDATE"
            )
            old = _stored(row)
            new_row = await conn.fetchrow(
                """UPDATE system_settings SET data = $1, updated_by = $2::uuid, updated_at = now()
                    WHERE id = 1 RETURNING data, updated_by, updated_at""",
                change(dict(old.data)), updated_by,
            )
        return old, _stored(new_row)


# -- system figures ---------------------------------------------------------------------------


async def calls_since(pool: asyncpg.Pool, since: datetime) -> int:
    """Calls that started at or after ``since``."""
    return int(await pool.fetchval("SELECT count(*) FROM calls WHERE start_time >= $1", since))


async def database_ok(pool: asyncpg.Pool, timeout: float = 2.0) -> bool:  # noqa: ASYNC109
    """True when a real ``SELECT 1`` round trip succeeds within ``timeout`` seconds."""
    try:
        return bool(await pool.fetchval("SELECT 1", timeout=timeout) == 1)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
