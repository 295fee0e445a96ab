"""/api/operators: the operator list and the operator's own status (seed 001, Операторы).

Status, ``current_calls`` and ``last_activity`` are the engine's live values; the stored row is
the fallback for an operator the engine does not know yet. ``calls_today``: calls the operator
answered that started since local midnight (the center's ``timezone``).

Visibility follows ``ws/access.py``: a supervisor with a group sees and sets only the operators
of that group; an operator sets only their own status (403 AUTH_003 otherwise).
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel

from api.auth import Forbidden
from api.errors import json_response
from api.http import parse_body, parse_query, to_json, uuid_param
from api.routing import Route
from api.scope import supervised_group
from api.state import SERVICES, Services, current_user
from engine.errors import RecordNotFound
from engine.model import OperatorStatus
from engine.roles import STAFF, Role
from service.operators import set_operator_status
from ws.messages import iso

Status = Literal["online", "busy", "offline"]


class OperatorsQuery(BaseModel):
    group_id: UUID | None = None
    status: Status | None = None


class StatusBody(BaseModel):
    status: Status


class OperatorOut(BaseModel):
    id: str
    user_id: str
    name: str
    extension: str
    status: Status
    group_id: str | None
    current_calls: int
    calls_today: int
    last_activity: str | None


def operator_item(services: Services, row: Any) -> dict[str, Any]:
    """One operator in the seed's list shape: stored row overlaid with the engine's live state."""
    live = services.engine.operator(str(row["id"]))
    if live is not None:
        status, current, last = live.status.value, live.current_calls, live.last_activity
    else:
        status, current, last = row["status"], row["current_calls"], row["last_activity"]
    return {
        "id": str(row["id"]),
        "user_id": str(row["user_id"]),
        "name": row["name"],
        "extension": row["extension"],
        "status": status,
        "group_id": to_json(row["group_id"]),
        "current_calls": current,
        "calls_today": int(row["calls_today"]),
        "last_activity": iso(last),
    }


def _group_text(user: Any) -> str | None:
    own = supervised_group(user)
    return None if own is None else str(own)


async def list_operators(request: web.Request) -> web.Response:
    query = parse_query(request, OperatorsQuery)
    services = request.app[SERVICES]
    own_group = _group_text(current_user(request))
    group = str(query.group_id) if query.group_id else None
    if own_group is not None and group not in (None, own_group):
        return json_response([])
    rows = await services.users.operator_rows(services.today_start(), group_id=group or own_group)
    items = [operator_item(services, row) for row in rows]
    if query.status is not None:
        items = [item for item in items if item["status"] == query.status]
    return json_response(items)


async def set_status(request: web.Request) -> web.Response:
    operator_id = uuid_param(request, "operator_id")
    body = await parse_body(request, StatusBody)
    services = request.app[SERVICES]
    rows = await services.users.operator_rows(services.today_start(), operator_id=operator_id)
    if not rows:
        raise RecordNotFound("Operator not found")
    row = rows[0]
    user = current_user(request)
    if user["role"] == Role.OPERATOR:
        if await services.users.operator_id_of(str(user["id"])) != operator_id:
            raise Forbidden("Operators may change only their own status")
    own_group = _group_text(user)
    if own_group is not None and to_json(row["group_id"]) != own_group:
        raise Forbidden("This operator is not in your group")

    await set_operator_status(services.users, services.engine, services.runner, row,
                              OperatorStatus(body.status))
    return json_response(operator_item(services, row))


ROUTES: list[Route] = [
    Route("GET", "/api/operators/", list_operators, STAFF,
          "Operators with live status, current calls and calls answered today",
          query=OperatorsQuery, response=list[OperatorOut], tags=("operators",)),
    Route("PUT", "/api/operators/{operator_id}/status", set_status, (*STAFF, Role.OPERATOR),
          "Set an operator's status (an operator: only their own); published as "
          "operator_status_changed. A call in progress or an unreachable phone still wins.",
          body=StatusBody, response=OperatorOut, tags=("operators",)),
]
