"""Users and operators in PostgreSQL."""

from __future__ import annotations

from typing import Any

import asyncpg

from engine.model import Operator, OperatorStatus

USER_COLUMNS = "id, username, email, name, role, group_id, is_active, created_at, updated_at"


class UserExists(Exception):
    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


class Users:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def count(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM users"))

    async def by_username(self, username: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = $1", username
        )

    async def by_id(self, user_id: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            f"SELECT {USER_COLUMNS} FROM users WHERE id = $1::uuid", user_id
        )

    async def operator_id_of(self, user_id: str) -> str | None:
        value = await self.pool.fetchval(
            "SELECT id FROM operators WHERE user_id = $1::uuid", user_id
        )
        return str(value) if value else None

    async def create(
        self,
        *,
        username: str,
        email: str,
        name: str,
        role: str,
        password_hash: str,
        group_id: str | None = None,
        extension: str | None = None,
    ) -> asyncpg.Record:
        """Insert a user (and its operator row when an extension is given) atomically."""
        async with self.pool.acquire() as conn, conn.transaction():
            try:
                row = await conn.fetchrow(
                    f"""INSERT INTO users (username, email, name, role, password_hash, group_id)
                        VALUES ($1, $2, $3, $4, $5, $6::uuid) RETURNING {USER_COLUMNS}""",
                    username, email, name, role, password_hash, group_id,
                )
                if extension:
                    await conn.execute(
                        "INSERT INTO operators (user_id, extension, group_id)"
                        " VALUES ($1, $2, $3::uuid)",
                        row["id"], extension, group_id,
                    )
            except asyncpg.UniqueViolationError as exc:
                raise UserExists(_unique_field(exc)) from None
        assert row is not None
        return row

    async def operators(self) -> list[Operator]:
        rows = await self.pool.fetch(
            """SELECT o.id, o.user_id, o.extension, o.group_id, o.max_concurrent_calls,
                      o.manual_status, u.name
                 FROM operators o JOIN users u ON u.id = o.user_id
                WHERE u.is_active"""
        )
        return [_operator(r) for r in rows]


def _operator(r: Any) -> Operator:
    return Operator(
        id=str(r["id"]),
        user_id=str(r["user_id"]),
        extension=r["extension"],
        group_id=str(r["group_id"]) if r["group_id"] else None,
        name=r["name"],
        max_concurrent_calls=r["max_concurrent_calls"],
        manual_status=OperatorStatus(r["manual_status"]) if r["manual_status"] else None,
    )


def _unique_field(exc: asyncpg.UniqueViolationError) -> str:
    constraint = getattr(exc, "constraint_name", "") or ""
    for field in ("username", "email", "extension"):
        if field in constraint:
            return field
    return "unknown"
