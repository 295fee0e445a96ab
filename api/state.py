"""Typed application state: the services every handler reaches through ``request.app``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from api.figures import Period, period_bounds

if TYPE_CHECKING:

    from api.auth import Claims, Tokens
    from api.config import Settings
    from api.ratelimit import LoginThrottle
    from engine.machine.engine import Engine
    from service.pbx import PbxConnection
    from service.runner import Runner
    from service.supervise import Supervisor
    from service.users import UserService
    from storage.db import Pool
    from storage.groups import Groups
    from storage.ratelimits import RateCounters
    from storage.records import PostgresRecordSink
    from storage.redis_client import RedisClient
    from storage.redis_state import RedisStateStore
    from storage.users import Users
    from ws.handler import WebSocketEndpoint
    from ws.hub import Hub


@dataclass
class Services:
    settings: Settings
    pool: Pool
    redis: RedisClient
    users: Users
    tokens: Tokens
    hub: Hub
    ws: WebSocketEndpoint
    engine: Engine
    runner: Runner
    records: PostgresRecordSink
    live_state: RedisStateStore
    pbx: PbxConnection
    user_service: UserService
    rate_counters: RateCounters
    login_throttle: LoginThrottle
    groups: Groups
    tasks: Supervisor | None = None  # the long-running tasks (api/app.py lifespan)
    started_at: float = field(default_factory=time.time)
    generated_admin_password: str | None = None  # created at first start: printed once
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))  # aware UTC now

    def now(self) -> datetime:
        """The current UTC time (``clock``: a test sets it to a fixed moment)."""
        return self.clock()

    def period(self, period: Period) -> tuple[datetime, datetime]:
        """UTC bounds of ``period`` in the center's time zone (``settings.timezone``)."""
        return period_bounds(period, self.clock(), self.settings.tzinfo)

    def today_start(self) -> datetime:
        """Local midnight today, in UTC: where "today" figures start."""
        return self.period("today")[0]


SERVICES: web.AppKey[Services] = web.AppKey("services", Services)
CLAIMS_KEY: web.RequestKey[Claims] = web.RequestKey("claims", object)  # type: ignore[arg-type]
USER_KEY: web.RequestKey[Any] = web.RequestKey("user", object)


def current_claims(request: web.Request) -> Claims:
    return request[CLAIMS_KEY]


def current_user(request: web.Request) -> Any:
    return request[USER_KEY]
