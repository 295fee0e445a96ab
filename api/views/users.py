"""/api/admin/users: user administration (seed 001, Администрирование). Every route is admin only.

* Users: the answer is always the seed's User (no password hash, ever). A user has an operator
  row exactly when its role is ``operator``: ``extension`` is required for operators (422 with
  ``loc ["body","extension"]``) and refused for other roles; changing the role away from
  ``operator`` deletes the operator row (call records keep their data, ``operator_id`` becomes
  null). Every change is told to the live engine (``OperatorProvisioned`` / ``OperatorRemoved``)
  and a change of password, role or active flag, or a deletion, revokes the user's tokens and
  closes their WebSockets (``service/users.py``).
  The last *active* admin can be neither deleted nor demoted nor deactivated (USER_005).
  ``POST`` answers 201; ``DELETE`` answers ``{"success": true, "message": ...}``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, EmailStr, Field

from api.auth import hash_password
from api.errors import json_response
from api.http import UNSENT, invalid_field, parse_body, parse_query, row_json, to_json, uuid_param
from api.routing import Route
from api.state import SERVICES
from engine.roles import Role
from storage.users import UserNotFound

ADMIN = (Role.ADMIN,)
EXTENSION_PATTERN = r"^[0-9]{3,5}$"
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: 422, not 500


# -- models -----------------------------------------------------------------------------------


class UserOut(BaseModel):
    id: UUID
    username: str
    email: str
    name: str
    role: Role
    group_id: UUID | None
    is_active: bool
    created_at: datetime
    updated_at: datetime


class OperatorOut(BaseModel):
    id: UUID
    user_id: UUID
    extension: str
    group_id: UUID | None
    status: Literal["online", "busy", "offline"]
    skills: list[str]
    max_concurrent_calls: int
    current_calls: int
    last_activity: datetime | None
    created_at: datetime


class UsersQuery(BaseModel):
    skip: int = Field(0, ge=0)
    limit: int = Field(100, ge=1, le=1000)
    role: Role | None = None


class UserCreate(BaseModel):
    username: str = Field(min_length=3, max_length=50, pattern=NO_NUL)
    email: EmailStr = Field(max_length=254)
    name: str = Field("", max_length=200, pattern=NO_NUL)
    password: str = Field(min_length=6, max_length=256)
    role: Role
    group_id: UUID | None = None
    extension: str | None = Field(None, pattern=EXTENSION_PATTERN)
    is_active: bool = True


class UserUpdate(BaseModel):
    """Partial: only the fields sent change. ``password`` is hashed; no hash is ever accepted."""

    username: str = Field(UNSENT, min_length=3, max_length=50, pattern=NO_NUL)
    email: EmailStr = Field(UNSENT, max_length=254)
    name: str = Field(UNSENT, max_length=200, pattern=NO_NUL)
    password: str = Field(UNSENT, min_length=6, max_length=256)
    role: Role = UNSENT
    group_id: UUID | None = None
    extension: str = Field(UNSENT, pattern=EXTENSION_PATTERN)
    is_active: bool = UNSENT


class Deleted(BaseModel):
    success: bool
    message: str


# -- users ------------------------------------------------------------------------------------


async def list_users(request: web.Request) -> web.Response:
    query = parse_query(request, UsersQuery)
    rows = await request.app[SERVICES].users.page(skip=query.skip, limit=query.limit,
                                                  role=query.role)
    return json_response([row_json(r) for r in rows])


def _check_extension(model: str, role: str, extension: str | None, has_operator: bool) -> None:
    if role == Role.OPERATOR and extension is None and not has_operator:
        raise invalid_field(model, "extension", "missing", "extension is required for operators",
                       None)
    if role != Role.OPERATOR and extension is not None:
        raise invalid_field(model, "extension", "extension_not_allowed",
                       "extension is only for users with role operator", extension)


async def create_user(request: web.Request) -> web.Response:
    body = await parse_body(request, UserCreate)
    _check_extension("UserCreate", body.role, body.extension, has_operator=False)
    password_hash = await asyncio.to_thread(hash_password, body.password)
    row = await request.app[SERVICES].user_service.create(
        username=body.username, email=body.email, name=body.name, role=body.role,
        password_hash=password_hash, group_id=str(body.group_id) if body.group_id else None,
        extension=body.extension, is_active=body.is_active,
    )
    return json_response(row_json(row), status=201)


async def update_user(request: web.Request) -> web.Response:
    user_id = uuid_param(request, "user_id", not_found=UserNotFound)
    body = await parse_body(request, UserUpdate)
    service = request.app[SERVICES].user_service
    current, operator_id = await service.current(user_id)
    sent = body.model_fields_set
    changes: dict[str, Any] = {
        name: getattr(body, name)
        for name in ("username", "email", "name", "role", "is_active") if name in sent
    }
    if "group_id" in sent:
        changes["group_id"] = str(body.group_id) if body.group_id else None
    if "password" in sent:
        changes["password_hash"] = await asyncio.to_thread(hash_password, body.password)
    extension = body.extension if "extension" in sent else None
    _check_extension("UserUpdate", changes.get("role", current["role"]), extension,
                     has_operator=operator_id is not None)
    row = await service.update(user_id, changes, extension=extension)
    return json_response(row_json(row))


async def delete_user(request: web.Request) -> web.Response:
    user_id = uuid_param(request, "user_id", not_found=UserNotFound)
    await request.app[SERVICES].user_service.delete(user_id)
    return json_response({"success": True, "message": "User deleted"})


async def user_operator(request: web.Request) -> web.Response:
    """The user's operator (stored row overlaid with the engine's live state), or null."""
    user_id = uuid_param(request, "user_id", not_found=UserNotFound)
    services = request.app[SERVICES]
    if await services.users.by_id(user_id) is None:
        raise UserNotFound()
    row = await services.users.operator_row_of(user_id)
    if row is None:
        return json_response(None)
    data = row_json(row)
    live = services.engine.operator(data["id"])
    if live is not None:
        data.update(status=live.status.value, current_calls=live.current_calls,
                    last_activity=to_json(live.last_activity) or data["last_activity"])
    return json_response(data)


TAGS = ("admin",)
ROUTES: list[Route] = [
    Route("GET", "/api/admin/users", list_users, ADMIN, "List users (skip, limit, role)",
          query=UsersQuery, response=list[UserOut], tags=TAGS),
    Route("POST", "/api/admin/users", create_user, ADMIN,
          "Create a user (operators get their operator row and extension)",
          body=UserCreate, response=UserOut, status=201, tags=TAGS),
    Route("PUT", "/api/admin/users/{user_id}", update_user, ADMIN, "Update a user (partial)",
          body=UserUpdate, response=UserOut, tags=TAGS),
    Route("DELETE", "/api/admin/users/{user_id}", delete_user, ADMIN,
          "Delete a user (never the last active admin)", response=Deleted, tags=TAGS),
    Route("GET", "/api/admin/users/{user_id}/operator", user_operator, ADMIN,
          "The user's operator, or null", response=OperatorOut | None, tags=TAGS),
]
