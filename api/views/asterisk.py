"""/api/asterisk: what the PBX says now, and call commands (seed 001, Asterisk), through the
PBX connection's ``Commands`` (``connectors/source.py``; ARI today).

Every endpoint needs a PBX: without one (none configured) it answers 503 AST_004.
PBX failures map through their codes: unknown channel 404 AST_005, a channel that cannot take
the command (not in Stasis, wrong state, duplicate id) 409 AST_006, bad parameters 400 AST_007,
Asterisk could not do it (its own reason, e.g. "Allocation failed") 502 AST_008, Asterisk down
503 AST_004, no answer in time 504 AST_001.

* ``extensions`` and the ``extensions`` of ``realtime-data``: the PBX's endpoints; the state of
  an operator's extension is what the engine knows of that operator (on a call INUSE, ringing
  RINGING, unreachable UNAVAILABLE: ``service.pbx.device_state_of``), so it agrees with
  /api/operators; other extensions keep the PBX's device state. ARI does not show PJSIP
  contacts: ``contact_status`` is derived from the endpoint state (online -> ``Reachable``,
  offline -> ``Unavailable``), ``contact_uri`` is null, ``last_seen`` is the engine's last
  activity of the operator with that extension (null if none).
* ``queues``: ARI has no queue API (app_queue is seen only through AMI). The queues are our
  ``queues`` table; live figures come from the engine (attribution as in ``api/views/queues``),
  the day's figures from the ``calls`` table (since local midnight in the center's
  ``timezone``, only calls whose queue is known), member status from ARI device states
  (Asterisk's numeric ``AST_DEVICE_*``).
* ``answer``/``hangup``: an operator may act only on a channel of a call offered to them
  (ringing them, not yet answered) or held by them (answered by them or transferred to them);
  anything else, including a channel the engine does not know, is 403 AUTH_003.
* ``originate``: an operator may originate only from their own phone (``PJSIP/<ext>``,
  ``SIP/<ext>`` or ``IAX2/<ext>``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from pydantic import BaseModel, Field

from api.auth import Forbidden
from api.errors import json_response
from api.http import parse_body
from api.routing import Route
from api.state import SERVICES, Services, current_user
from api.views.queues import queue_calls
from connectors.ari.errors import AriUnavailable
from connectors.source import Commands, ExtensionState, OriginateRequest
from engine.model import Call, CallStatus
from engine.roles import STAFF, Role
from storage.queues import Queues
from ws.messages import iso

# Asterisk's enum ast_device_state, as app_queue reports a member's status.
DEVICE_STATUS = {"UNKNOWN": 0, "NOT_INUSE": 1, "INUSE": 2, "BUSY": 3, "INVALID": 4,
                 "UNAVAILABLE": 5, "RINGING": 6, "RINGINUSE": 7, "ONHOLD": 8}
CONTACT_STATUS = {"online": "Reachable", "offline": "Unavailable"}
OPERATOR_TECHS = ("PJSIP", "SIP", "IAX2")


class NoAri(AriUnavailable):
    default_message = "Asterisk ARI is not configured"


def commands_of(request: web.Request) -> Commands:
    commands = request.app[SERVICES].pbx.commands
    if commands is None:
        raise NoAri()
    return commands


async def _extensions(services: Services) -> list[ExtensionState]:
    """The PBX's extensions, device states as the engine sees their operators."""
    return await services.pbx.extensions(services.engine.operators())


# -- reads ------------------------------------------------------------------------------------


class ExtensionOut(BaseModel):
    extension: str
    technology: str
    state: str
    contact_status: str
    contact_uri: str | None
    last_seen: str | None


async def extensions(request: web.Request) -> web.Response:
    commands_of(request)
    services = request.app[SERVICES]
    last_seen = {op.extension: op.last_activity for op in services.engine.operators()}
    items = [{
        "extension": ext.resource,
        "technology": ext.technology,
        "state": ext.device_state,
        "contact_status": CONTACT_STATUS.get(ext.registration, "Unknown"),
        "contact_uri": None,
        "last_seen": iso(last_seen.get(ext.resource)),
    } for ext in await _extensions(services)]
    return json_response(items)


class QueueMemberOut(BaseModel):
    interface: str
    status: int
    paused: bool
    calls_taken: int
    last_call: int


class AsteriskQueueOut(BaseModel):
    name: str
    strategy: str
    members_count: int
    completed_calls: int
    abandoned_calls: int
    service_level: float
    hold_time: int
    talk_time: int
    active_calls: int
    members: list[QueueMemberOut]


async def asterisk_queues(request: web.Request) -> web.Response:
    commands_of(request)
    services = request.app[SERVICES]
    interfaces = {ext.resource: (ext.name, ext.device_state)
                  for ext in await _extensions(services)}
    repo = Queues(services.pool)
    since = services.today_start()
    day, taken = await repo.day_figures(since), await repo.member_figures(since)
    calls, operators = services.engine.active_calls(), services.engine.operators()
    paused = {op.extension for op in operators if op.status_detail == "paused"}
    items = []
    for q in await repo.all():
        name = q["asterisk_name"]
        fig = day.get(name, {})
        offered = int(fig.get("offered") or 0)
        members = []
        for ext in q["members"]:
            interface, state = interfaces.get(ext, (f"PJSIP/{ext}", "UNKNOWN"))
            count, last = taken.get((name, ext), (0, None))
            members.append({"interface": interface, "status": DEVICE_STATUS.get(state, 0),
                            "paused": ext in paused, "calls_taken": int(count),
                            "last_call": int(last.timestamp()) if last else 0})
        items.append({
            "name": name,
            "strategy": q["strategy"],
            "members_count": len(q["members"]),
            "completed_calls": int(fig.get("completed") or 0),
            "abandoned_calls": int(fig.get("abandoned") or 0),
            "service_level": round(100 * int(fig.get("within_sl") or 0) / offered, 1)
            if offered else 0.0,
            "hold_time": round(fig.get("hold") or 0),
            "talk_time": round(fig.get("talk") or 0),
            "active_calls": len(queue_calls(q, calls, operators)),
            "members": members,
        })
    return json_response(items)


def _duration(created: datetime | None, now: datetime) -> str:
    seconds = max(0, int((now - created).total_seconds())) if created else 0
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _class(technology: str) -> str:
    return "SIP" if technology.upper() in ("PJSIP", "SIP") else technology


async def realtime_data(request: web.Request) -> web.Response:
    commands = commands_of(request)
    services = request.app[SERVICES]
    version = await commands.version()
    now = datetime.now(UTC)
    channels = [{"id": ch.id, "name": ch.name, "state": ch.state,
                 "caller_number": ch.caller_number, "duration": _duration(ch.created, now)}
                for ch in await commands.channels()]
    return json_response({
        "connected": services.pbx.connected,
        "asterisk_version": version,
        "active_channels": len(channels),
        "active_calls": len(services.engine.active_calls()),
        "extensions": [{"name": ext.name, "state": ext.device_state,
                        "class": _class(ext.technology)} for ext in await _extensions(services)],
        "channels": channels,
        "timestamp": iso(now),
    })


# -- commands ---------------------------------------------------------------------------------


class OriginateBody(BaseModel):
    endpoint: str = Field(min_length=3, max_length=200, pattern=r"^[A-Za-z0-9]+/[^\s]+$")
    extension: str = Field(min_length=1, max_length=80, pattern=r"^[0-9A-Za-z*#+_.-]+$")
    context: str = Field(default="default", min_length=1, max_length=80,
                         pattern=r"^[A-Za-z0-9_.-]+$")
    priority: int = Field(default=1, ge=1, le=1000)
    timeout: int = Field(default=30, ge=1, le=600)
    caller_id: str | None = Field(default=None, max_length=200)


class CommandOut(BaseModel):
    success: bool
    channel_id: str


async def _operator_extension(request: web.Request, services: Services) -> tuple[str, str]:
    """(operator id, extension) of the operator calling; 403 when they have none."""
    user_id = str(current_user(request)["id"])
    for op in services.engine.operators():
        if op.user_id == user_id:
            return op.id, op.extension
    operator_id = await services.users.operator_id_of(user_id)
    rows = (await services.users.operator_rows(services.today_start(), operator_id=operator_id)
            if operator_id else [])
    if not rows:
        raise Forbidden("No operator record for this user")
    return str(rows[0]["id"]), rows[0]["extension"]


def may_control(call: Call | None, operator_id: str) -> bool:
    """An operator controls a call offered to them while unanswered, or held by them now
    (answered by them, or transferred to them)."""
    if call is None:
        return False
    if call.status is CallStatus.INCOMING:
        return operator_id in call.offered_operator_ids
    return call.current_operator_id == operator_id


async def _check_channel(request: web.Request, channel_id: str) -> None:
    if current_user(request)["role"] != Role.OPERATOR:
        return
    services = request.app[SERVICES]
    operator_id, _ext = await _operator_extension(request, services)
    if not may_control(services.engine.call_for_channel(channel_id), operator_id):
        raise Forbidden("This channel is not part of a call offered to or held by you")


async def answer(request: web.Request) -> web.Response:
    channel_id = request.match_info["channel_id"]
    commands = commands_of(request)
    await _check_channel(request, channel_id)
    await commands.answer(channel_id)
    return json_response({"success": True, "channel_id": channel_id})


async def hangup(request: web.Request) -> web.Response:
    channel_id = request.match_info["channel_id"]
    commands = commands_of(request)
    await _check_channel(request, channel_id)
    await commands.hangup(channel_id)
    return json_response({"success": True, "channel_id": channel_id})


async def originate(request: web.Request) -> web.Response:
    commands = commands_of(request)
    body = await parse_body(request, OriginateBody)
    services = request.app[SERVICES]
    if current_user(request)["role"] == Role.OPERATOR:
        _op, ext = await _operator_extension(request, services)
        tech, _, resource = body.endpoint.partition("/")
        if tech.upper() not in OPERATOR_TECHS or resource != ext:
            raise Forbidden("Operators may originate only from their own endpoint",
                            field="endpoint")
    ch = await commands.originate(OriginateRequest(
        body.endpoint, body.extension, context=body.context, priority=body.priority,
        timeout=body.timeout, caller_id=body.caller_id))
    return json_response({"success": True, "channel_id": ch.id, "name": ch.name,
                          "state": ch.state})


ADMIN_MANAGER = (Role.ADMIN, Role.MANAGER)
CONTROL = (Role.ADMIN, Role.OPERATOR)
TAGS = ("asterisk",)

ROUTES: list[Route] = [
    Route("GET", "/api/asterisk/extensions", extensions, ADMIN_MANAGER,
          "Endpoints known to Asterisk with their device state", response=list[ExtensionOut],
          tags=TAGS),
    Route("GET", "/api/asterisk/queues", asterisk_queues, ADMIN_MANAGER,
          "Queues (ARI has no queue API: our queue table, live engine and today's calls)",
          response=list[AsteriskQueueOut], tags=TAGS),
    Route("GET", "/api/asterisk/realtime-data", realtime_data, STAFF,
          "Asterisk version, live channels and extensions", tags=TAGS),
    Route("POST", "/api/asterisk/channels/{channel_id}/answer", answer, CONTROL,
          "Answer a channel (an operator: only a call offered to or held by them)",
          response=CommandOut, tags=TAGS),
    Route("POST", "/api/asterisk/channels/{channel_id}/hangup", hangup, CONTROL,
          "Hang up a channel (an operator: only a call offered to or held by them)",
          response=CommandOut, tags=TAGS),
    Route("POST", "/api/asterisk/originate", originate, CONTROL,
          "Originate a call (an operator: only from their own endpoint)",
          body=OriginateBody, tags=TAGS),
]
