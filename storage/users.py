"""Users and operators in PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

import asyncpg

from engine.errors import DomainError, UnknownReference
from engine.model import Operator, OperatorStatus
from engine.roles import Role

USER_COLUMNS = "id, username, email, name, role, group_id, is_active, created_at, updated_at"


class UserExists(Exception):
    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


# Columns ``Users.update`` may change; the admin-change lock serialises every update/delete that
# could leave the system without an active admin.
UPDATABLE_COLUMNS = ("username", "email", "name", "role", "group_id", "is_active",
                     "password_hash")
ADMIN_CHANGE_LOCK = 0x5B_0A_2D_02
# NOTIFY channel: a user id, sent by another process (the CLI) that created a user, so the
# running service provisions its operator at once.
USER_ANNOUNCEMENTS = "switchboard_user_created"


class UserNotFound(DomainError):
    code = "USER_004"
    default_message = "User not found"


class LastAdmin(DomainError):
    code = "USER_005"
    default_message = "The last active administrator cannot be deleted, demoted or deactivated"


class ExtensionRequired(DomainError):
    code = "USER_006"
    default_message = "An operator needs an extension"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, field="extension")


class UnknownGroup(UnknownReference):
    default_message = "Group not found"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, field="group_id")


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

    async def with_operator_id(self, user_id: str) -> tuple[asyncpg.Record, str | None] | None:
        """The user and the id of their operator row (None if none), in one query."""
        row = await self.pool.fetchrow(
            f"""SELECT {", ".join("u." + c.strip() for c in USER_COLUMNS.split(","))},
                       o.id AS operator_id
                  FROM users u LEFT JOIN operators o ON o.user_id = u.id
                 WHERE u.id = $1::uuid""",
            user_id,
        )
        if row is None:
            return None
        return row, str(row["operator_id"]) if row["operator_id"] else None

    async def operator_id_of(self, user_id: str) -> str | None:
        value = await self.pool.fetchval(
            "SELECT id FROM operators WHERE user_id = $1::uuid AND retired_at IS NULL", user_id
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

    async def announce(self, user_id: str) -> None:
        """Tell a running service (any instance on this database) about a new user."""
        await self.pool.execute("SELECT pg_notify($1, $2)", USER_ANNOUNCEMENTS, user_id)

    async def announcements(self) -> AsyncIterator[str]:
        """User ids announced with ``announce``, as they come; ends (raises ``ConnectionError``)
        when the listening connection is lost. Holds one pooled connection meanwhile."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            queue.put_nowait(payload)

        def on_lost(_conn: object) -> None:
            queue.put_nowait(None)

        async with self.pool.acquire() as conn:
            conn.add_termination_listener(on_lost)
            await conn.add_listener(USER_ANNOUNCEMENTS, on_notify)
            try:
                while (user_id := await queue.get()) is not None:
                    yield user_id
                raise ConnectionError("user announcements: connection lost")
            finally:
                # a lost connection may already be detached from the pool: nothing to remove
                with contextlib.suppress(asyncpg.InterfaceError):
                    conn.remove_termination_listener(on_lost)
                    if not conn.is_closed():
                        await conn.remove_listener(USER_ANNOUNCEMENTS, on_notify)

    async def operators(self) -> list[Operator]:
        rows = await self.pool.fetch(
            """SELECT o.id, o.user_id, o.extension, o.group_id, o.max_concurrent_calls,
                      o.manual_status, u.name
                 FROM operators o JOIN users u ON u.id = o.user_id
                WHERE u.is_active AND o.retired_at IS NULL"""
        )
        return [_operator(r) for r in rows]

    # -- admin API (/api/admin/users) --------------------------------------------------------

    async def page(
        self, *, skip: int = 0, limit: int = 100, role: str | None = None
    ) -> list[asyncpg.Record]:
        """Users in creation order (then username), optionally of one role."""
        return list(await self.pool.fetch(
            f"""SELECT {USER_COLUMNS} FROM users WHERE ($1::text IS NULL OR role = $1)
                 ORDER BY created_at, username OFFSET $2 LIMIT $3""",
            role, skip, limit,
        ))

    async def count_operators(self) -> int:
        return int(await self.pool.fetchval(
            "SELECT count(*) FROM operators WHERE retired_at IS NULL"))

    async def group_exists(self, group_id: str) -> bool:
        return bool(await self.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM groups WHERE id = $1::uuid)", group_id
        ))

    async def operator_row_of(self, user_id: str) -> asyncpg.Record | None:
        """The stored operator row of a user (the seed's Operator fields), or None."""
        return await self.pool.fetchrow(
            """SELECT id, user_id, extension, group_id, status, skills, max_concurrent_calls,
                      current_calls, last_activity, created_at
                 FROM operators WHERE user_id = $1::uuid AND retired_at IS NULL""",
            user_id,
        )

    async def operator_for_user(self, user_id: str) -> Operator | None:
        """The directory entry of an active user's operator row (what the engine should know)."""
        row = await self.pool.fetchrow(
            """SELECT o.id, o.user_id, o.extension, o.group_id, o.max_concurrent_calls,
                      o.manual_status, u.name
                 FROM operators o JOIN users u ON u.id = o.user_id
                WHERE u.is_active AND o.user_id = $1::uuid AND o.retired_at IS NULL""",
            user_id,
        )
        return _operator(row) if row is not None else None

    async def update(
        self, user_id: str, changes: Mapping[str, Any], *, extension: str | None = None
    ) -> asyncpg.Record:
        """Change a user's columns (``UPDATABLE_COLUMNS``) and keep its operator row in step:
        a user has a current operator row exactly when its role is ``operator`` (``extension``
        creates or renumbers it). Leaving the role retires the row rather than deleting it, and
        coming back reuses it (same operator id, its calls keep it; the old extension unless a
        new one is given). Refuses to leave no active admin."""
        unknown = set(changes) - set(UPDATABLE_COLUMNS)
        if unknown:
            raise ValueError(f"not updatable: {', '.join(sorted(unknown))}")
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", ADMIN_CHANGE_LOCK)
            current = await conn.fetchrow(
                "SELECT role, is_active FROM users WHERE id = $1::uuid FOR UPDATE", user_id
            )
            if current is None:
                raise UserNotFound()
            role = changes.get("role", current["role"])
            active = changes.get("is_active", current["is_active"])
            if current["role"] == Role.ADMIN and current["is_active"] and not (
                role == Role.ADMIN and active
            ):
                await _ensure_other_admin(conn, user_id)
            args: list[Any] = [user_id]
            sets = []
            for column, value in changes.items():
                args.append(value)
                cast = "::uuid" if column == "group_id" else ""
                sets.append(f"{column} = ${len(args)}{cast}")
            sets.append("updated_at = now()")
            try:
                row = await conn.fetchrow(
                    f"UPDATE users SET {', '.join(sets)} WHERE id = $1::uuid"
                    f" RETURNING {USER_COLUMNS}",
                    *args,
                )
                operator = await conn.fetchrow(
                    "SELECT id, retired_at FROM operators WHERE user_id = $1::uuid", user_id
                )
                operator_id = operator["id"] if operator is not None else None
                if role == Role.OPERATOR and operator is not None and operator["retired_at"]:
                    await conn.execute(
                        """UPDATE operators o SET retired_at = NULL,
                                  extension = coalesce($2, o.extension), group_id = u.group_id,
                                  status = 'offline', status_detail = NULL,
                                  manual_status = NULL, current_calls = 0
                             FROM users u WHERE o.id = $1 AND u.id = o.user_id""",
                        operator_id, extension,
                    )
                elif role == Role.OPERATOR and operator_id is None:
                    if extension is None:
                        raise ExtensionRequired()
                    await conn.execute(
                        "INSERT INTO operators (user_id, extension, group_id)"
                        " SELECT id, $2, group_id FROM users WHERE id = $1::uuid",
                        user_id, extension,
                    )
                elif role == Role.OPERATOR:
                    await conn.execute(
                        """UPDATE operators SET extension = coalesce($2, extension),
                                  group_id = CASE WHEN $3 THEN $4::uuid ELSE group_id END
                            WHERE id = $1""",
                        operator_id, extension, "group_id" in changes, changes.get("group_id"),
                    )
                elif operator is not None and operator["retired_at"] is None:
                    await conn.execute(
                        "UPDATE operators SET retired_at = now() WHERE id = $1", operator_id)
            except asyncpg.UniqueViolationError as exc:
                raise UserExists(_unique_field(exc)) from None
            except asyncpg.ForeignKeyViolationError:
                raise UnknownGroup() from None
        assert row is not None
        return row

    async def delete(self, user_id: str) -> str | None:
        """Delete a user (its operator row goes with it); returns that operator's id, if any.
        Refuses to delete the last active admin."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", ADMIN_CHANGE_LOCK)
            row = await conn.fetchrow(
                """SELECT u.role, u.is_active, o.id AS operator_id
                     FROM users u LEFT JOIN operators o ON o.user_id = u.id
                    WHERE u.id = $1::uuid FOR UPDATE OF u""",
                user_id,
            )
            if row is None:
                raise UserNotFound()
            if row["role"] == Role.ADMIN and row["is_active"]:
                await _ensure_other_admin(conn, user_id)
            await conn.execute("DELETE FROM users WHERE id = $1::uuid", user_id)
        return str(row["operator_id"]) if row["operator_id"] else None

    # -- operators API (/api/operators) --------------------------------------------------------

    async def operator_rows(
        self, calls_since: datetime, *, operator_id: str | None = None,
        group_id: str | None = None,
    ) -> list[asyncpg.Record]:
        """Operators of active users with their stored status and the calls they answered
        since ``calls_since`` (``calls_today``); optionally one operator or one group."""
        return list(await self.pool.fetch(
            """SELECT o.id, o.user_id, u.name, o.extension, o.status, o.group_id,
                      o.current_calls, o.last_activity, o.max_concurrent_calls, o.manual_status,
                      (SELECT count(*) FROM calls c
                        WHERE c.operator_id = o.id AND c.start_time >= $1) AS calls_today
                 FROM operators o JOIN users u ON u.id = o.user_id
                WHERE u.is_active
                  AND o.retired_at IS NULL
                  AND ($2::uuid IS NULL OR o.id = $2::uuid)
                  AND ($3::uuid IS NULL OR o.group_id = $3::uuid)
                ORDER BY o.extension""",
            calls_since, operator_id, group_id,
        ))

    async def set_manual_status(self, operator_id: str, status: str | None) -> None:
        await self.pool.execute(
            "UPDATE operators SET manual_status = $2 WHERE id = $1::uuid", operator_id, status
        )


def operator_from_row(r: Any) -> Operator:
    """The directory entry of an ``operator_rows`` row."""
    return _operator(r)


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


async def _ensure_other_admin(conn: asyncpg.Connection, user_id: str) -> None:
    others = await conn.fetchval(
        "SELECT count(*) FROM users WHERE role = 'admin' AND is_active AND id <> $1::uuid",
        user_id,
    )
    if not others:
        raise LastAdmin()
