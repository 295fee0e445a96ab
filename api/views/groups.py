"""/api/admin/groups: operator groups (admin only).

``name`` is unique (409 ``DB_004``, field ``name``). A group that still has users or operators
is not deleted: 409 ``GROUP_001`` (move them first; see ``storage/groups.py`` for why not "set
null"). ``POST`` answers 201; ``DELETE`` answers ``{"success": true, "message": ...}``.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, Field

from api.errors import json_response
from api.http import parse_body, to_json, uuid_param
from api.routing import Route
from api.state import SERVICES
from api.views.users import ADMIN, Deleted
from storage.groups import Group, GroupNotFound


class GroupOut(BaseModel):
    id: UUID
    name: str
    description: str
    created_at: datetime
    members: int = Field(description="users in the group")


# PostgreSQL text cannot hold NUL; a name has no control characters at all (422, not 500)
NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"
TEXT_PATTERN = r"^[^\x00]*$"


class GroupCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    description: str = Field("", max_length=1000, pattern=TEXT_PATTERN)


class GroupUpdate(BaseModel):
    """Partial: only the fields sent (and not null) change."""

    name: str | None = Field(None, min_length=1, max_length=100, pattern=NAME_PATTERN)
    description: str | None = Field(None, max_length=1000, pattern=TEXT_PATTERN)


def _json(group: Group) -> dict[str, object]:
    return {k: to_json(v) for k, v in asdict(group).items()}


async def list_groups(request: web.Request) -> web.Response:
    groups = await request.app[SERVICES].groups.all()
    return json_response([_json(g) for g in groups])


async def create_group(request: web.Request) -> web.Response:
    body = await parse_body(request, GroupCreate)
    group = await request.app[SERVICES].groups.create(body.name, body.description)
    return json_response(_json(group), status=201)


async def update_group(request: web.Request) -> web.Response:
    group_id = uuid_param(request, "group_id", not_found=GroupNotFound)
    body = await parse_body(request, GroupUpdate)
    group = await request.app[SERVICES].groups.update(
        group_id, name=body.name, description=body.description)
    return json_response(_json(group))


async def delete_group(request: web.Request) -> web.Response:
    group_id = uuid_param(request, "group_id", not_found=GroupNotFound)
    await request.app[SERVICES].groups.delete(group_id)
    return json_response({"success": True, "message": "Group deleted"})


TAGS = ("admin",)
ROUTES: list[Route] = [
    Route("GET", "/api/admin/groups", list_groups, ADMIN, "List groups",
          response=list[GroupOut], tags=TAGS),
    Route("POST", "/api/admin/groups", create_group, ADMIN, "Create a group (unique name)",
          body=GroupCreate, response=GroupOut, status=201, tags=TAGS),
    Route("PUT", "/api/admin/groups/{group_id}", update_group, ADMIN, "Update a group (partial)",
          body=GroupUpdate, response=GroupOut, tags=TAGS),
    Route("DELETE", "/api/admin/groups/{group_id}", delete_group, ADMIN,
          "Delete a group (409 GROUP_001 while it has users or operators)", response=Deleted,
          tags=TAGS),
]
