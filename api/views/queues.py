"""/api/queues: list (with live counts), create, update, delete (seed 001, Очереди).

Live counts come from the engine's active calls. ARI events name no queue (a call's
``queue_name`` is only known from AMI, planned), so a call is attributed to a queue when

* its ``queue_name`` is the queue's ``asterisk_name``, or else
* one of the operators it rang or reached (``offered_operator_ids``) is a member of the queue.

``current_calls``: such calls answered by an operator; ``waiting_calls``: such calls not yet
answered. A call that has rung nobody yet cannot be attributed and counts in no queue; a call
that rang members of two queues counts in both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field, field_validator, model_validator

from api.errors import json_response
from api.http import parse_body, to_json, uuid_param
from api.routing import Route
from api.state import SERVICES
from engine.errors import RecordNotFound
from engine.model import Call, CallStatus, Operator
from engine.roles import STAFF, Role
from storage.queues import QueueRow, Queues

# Asterisk app_queue strategies (queues.conf).
Strategy = Literal["ringall", "leastrecent", "fewestcalls", "random", "rrmemory", "rrordered",
                   "linear", "wrandom"]
LIST_KEYS = ("id", "name", "description", "asterisk_name", "max_wait_time", "priority",
             "strategy", "members", "is_active")


class QueueCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=1000)
    asterisk_name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,80}$")
    max_wait_time: int = Field(default=300, ge=0, le=86400)
    priority: int = Field(default=0, ge=0, le=1000)
    strategy: Strategy = "ringall"
    members: list[str] = Field(default_factory=list, max_length=500)
    is_active: bool = True
    service_level_threshold: int = Field(default=20, ge=1, le=3600)

    @field_validator("members")
    @classmethod
    def _extensions(cls, members: list[str]) -> list[str]:
        return _check_extensions(members)


class QueueUpdate(BaseModel):
    """Only the fields sent change; ``null`` is not a value for any of them."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    asterisk_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,80}$")
    max_wait_time: int | None = Field(default=None, ge=0, le=86400)
    priority: int | None = Field(default=None, ge=0, le=1000)
    strategy: Strategy | None = None
    members: list[str] | None = Field(default=None, max_length=500)
    is_active: bool | None = None
    service_level_threshold: int | None = Field(default=None, ge=1, le=3600)

    @field_validator("members")
    @classmethod
    def _extensions(cls, members: list[str] | None) -> list[str] | None:
        return None if members is None else _check_extensions(members)

    @model_validator(mode="after")
    def _no_nulls(self) -> QueueUpdate:
        nulls = [f for f in self.model_fields_set if getattr(self, f) is None]
        if nulls:
            raise ValueError(f"{', '.join(sorted(nulls))}: null is not allowed")
        return self


def _check_extensions(members: list[str]) -> list[str]:
    for ext in members:
        if not (3 <= len(ext) <= 5 and ext.isascii() and ext.isdigit()):
            raise ValueError(f"member {ext!r} is not an extension (3-5 digits)")
    if len(set(members)) != len(members):
        raise ValueError("members must not repeat an extension")
    return members


class QueueOut(BaseModel):
    id: str
    name: str
    description: str
    asterisk_name: str
    max_wait_time: int
    priority: int
    strategy: str
    members: list[str]
    is_active: bool
    current_calls: int
    waiting_calls: int


class QueueDetail(QueueOut):
    service_level_threshold: int
    created_at: str
    updated_at: str


def queue_calls(queue: QueueRow, calls: Iterable[Call],
                operators: Iterable[Operator]) -> list[Call]:
    """The active calls attributed to ``queue`` (see the module docstring)."""
    members = set(queue.members)
    member_ids = {op.id for op in operators if op.extension in members}
    return [c for c in calls
            if c.queue_name == queue.asterisk_name
            or (c.queue_name is None and member_ids.intersection(c.offered_operator_ids))]


def live_counts(queue: QueueRow, calls: list[Call],
                operators: list[Operator]) -> dict[str, int]:
    mine = queue_calls(queue, calls, operators)
    answered = sum(1 for c in mine if c.status is CallStatus.ANSWERED)
    return {"current_calls": answered, "waiting_calls": len(mine) - answered}


def _item(row: QueueRow, calls: list[Call], operators: list[Operator], *,
          detail: bool = False) -> dict[str, Any]:
    data = {k: to_json(v) for k, v in asdict(row).items()}
    item = {k: data[k] for k in LIST_KEYS}
    item.update(live_counts(row, calls, operators))
    if detail:
        for key in ("service_level_threshold", "created_at", "updated_at"):
            item[key] = data[key]
    return item


def _repo(request: web.Request) -> Queues:
    return Queues(request.app[SERVICES].pool)


def _live(request: web.Request) -> tuple[list[Call], list[Operator]]:
    engine = request.app[SERVICES].engine
    return engine.active_calls(), engine.operators()


async def list_queues(request: web.Request) -> web.Response:
    rows = await _repo(request).all()
    calls, operators = _live(request)
    return json_response([_item(row, calls, operators) for row in rows])


async def create_queue(request: web.Request) -> web.Response:
    body = await parse_body(request, QueueCreate)
    row = await _repo(request).create(body.model_dump())
    return json_response(_item(row, *_live(request), detail=True), status=201)


async def update_queue(request: web.Request) -> web.Response:
    queue_id = uuid_param(request, "queue_id")
    body = await parse_body(request, QueueUpdate)
    row = await _repo(request).update(queue_id, body.model_dump(exclude_unset=True))
    if row is None:
        raise RecordNotFound("Queue not found")
    return json_response(_item(row, *_live(request), detail=True))


async def delete_queue(request: web.Request) -> web.Response:
    queue_id = uuid_param(request, "queue_id")
    if not await _repo(request).delete(queue_id):
        raise RecordNotFound("Queue not found")
    return json_response({"success": True, "message": "Queue deleted"})


ROUTES: list[Route] = [
    Route("GET", "/api/queues/", list_queues, STAFF,
          "Queues with live current_calls (answered) and waiting_calls (not yet answered)",
          response=list[QueueOut], tags=("queues",)),
    Route("POST", "/api/queues/", create_queue, (Role.ADMIN,),
          "Create a queue (409 DB_004 when name or asterisk_name is taken)",
          body=QueueCreate, response=QueueDetail, status=201, tags=("queues",)),
    Route("PUT", "/api/queues/{queue_id}", update_queue, (Role.ADMIN,),
          "Update a queue: only the fields sent change", body=QueueUpdate,
          response=QueueDetail, tags=("queues",)),
    Route("DELETE", "/api/queues/{queue_id}", delete_queue, (Role.ADMIN,),
          "Delete a queue; recorded calls keep its name", tags=("queues",)),
]
