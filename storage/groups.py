"""Operator groups in PostgreSQL (seed: ``groups``; users and operators point at them).

A group still named by a user or an operator is not deleted (``GroupInUse``): dropping it would
silently set their ``group_id`` to null, and a supervisor without a group would lose the scope
that limits what they see. Move them to another group first. Call records keep the ``group_id``
they were made with (history is not rewritten).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine.errors import DomainError, DuplicateRecord, RecordNotFound

COLUMNS = "id, name, description, created_at"


class GroupNotFound(RecordNotFound):
    default_message = "Group not found"


class GroupNameTaken(DuplicateRecord):
    default_message = "A group with this name already exists"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, field="name")


class GroupInUse(DomainError):
    code, default_message = "GROUP_001", "The group still has users or operators"


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    name: str
    description: str
    created_at: datetime
    members: int  # users in the group


def _group(row: asyncpg.Record) -> Group:
    return Group(id=str(row["id"]), name=row["name"], description=row["description"],
                 created_at=row["created_at"], members=int(row["members"]))


_SELECT = f"""SELECT {", ".join("g." + c.strip() for c in COLUMNS.split(","))},
                     (SELECT count(*) FROM users u WHERE u.group_id = g.id) AS members
                FROM groups g"""


class Groups:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def all(self) -> list[Group]:
        return [_group(r) for r in await self.pool.fetch(f"{_SELECT} ORDER BY g.name")]

    async def get(self, group_id: str) -> Group:
        row = await self.pool.fetchrow(f"{_SELECT} WHERE g.id = $1::uuid", group_id)
        if row is None:
            raise GroupNotFound()
        return _group(row)

    async def by_name(self, name: str) -> Group | None:
        row = await self.pool.fetchrow(f"{_SELECT} WHERE g.name = $1", name)
        return _group(row) if row is not None else None

    async def create(self, name: str, description: str = "") -> Group:
        try:
            group_id = await self.pool.fetchval(
                "INSERT INTO groups (name, description) VALUES ($1, $2) RETURNING id",
                name, description,
            )
        except asyncpg.UniqueViolationError:
            raise GroupNameTaken() from None
        return await self.get(str(group_id))

    async def update(self, group_id: str, *, name: str | None = None,
                     description: str | None = None) -> Group:
        try:
            found = await self.pool.fetchval(
                """UPDATE groups SET name = coalesce($2, name),
                          description = coalesce($3, description)
                    WHERE id = $1::uuid RETURNING id""",
                group_id, name, description,
            )
        except asyncpg.UniqueViolationError:
            raise GroupNameTaken() from None
        if found is None:
            raise GroupNotFound()
        return await self.get(group_id)

    async def delete(self, group_id: str) -> None:
        """Refuses (``GroupInUse``) while a user or an operator is in the group."""
        async with self.pool.acquire() as conn, conn.transaction():
            found = await conn.fetchval(
                "SELECT id FROM groups WHERE id = $1::uuid FOR UPDATE", group_id)
            if found is None:
                raise GroupNotFound()
            in_use = await conn.fetchval(
                """SELECT EXISTS (SELECT 1 FROM users WHERE group_id = $1)
                       OR EXISTS (SELECT 1 FROM operators WHERE group_id = $1)""", found)
            if in_use:
                raise GroupInUse()
            await conn.execute("DELETE FROM groups WHERE id = $1", found)
