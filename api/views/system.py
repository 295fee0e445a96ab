"""/api/admin/system/info (seed 001, Администрирование), admin only.

``calls_today`` counts calls whose start is at or after local midnight today (the center's
``timezone``); ``asterisk_connected`` is true when every running PBX source hears its PBX (the
built-in simulator included); false with none, or when one is down or was replaced by another
client (``ApplicationReplaced``).
"""

from __future__ import annotations

import time
from typing import Literal

from aiohttp import web
from pydantic import BaseModel

from api.errors import json_response
from api.routing import Route
from api.state import SERVICES
from engine.roles import Role
from storage.settings import calls_since, database_ok

ADMIN = (Role.ADMIN,)


class SystemInfo(BaseModel):
    users: int | None
    operators: int | None
    calls_today: int | None
    asterisk_connected: bool
    database_status: Literal["connected", "disconnected"]
    uptime: str


# -- system info ------------------------------------------------------------------------------


def format_uptime(seconds: float) -> str:
    """``2 days, 14:30:22`` (always with the day count: ``0 days, 00:05:00``)."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days} day{'' if days == 1 else 's'}, {hours:02d}:{minutes:02d}:{secs:02d}"


async def system_info(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    db_ok = await database_ok(services.pool)
    users = operators = calls_today = None
    if db_ok:
        users = await services.users.count()
        operators = await services.users.count_operators()
        calls_today = await calls_since(services.pool, services.today_start())
    return json_response({
        "users": users,
        "operators": operators,
        "calls_today": calls_today,
        "asterisk_connected": services.pbx.connected,
        "database_status": "connected" if db_ok else "disconnected",
        "uptime": format_uptime(time.time() - services.started_at),
    })


TAGS = ("admin",)
ROUTES: list[Route] = [
    Route("GET", "/api/admin/system/info", system_info, ADMIN, "System information",
          response=SystemInfo, tags=TAGS),
]
