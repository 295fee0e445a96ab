"""Application factory. It only wires; ``lifespan`` owns start-up and shutdown, in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from api import openapi, pbx
from api.auth import Tokens, generate_password, hash_password
from api.config import Settings, persistent_secret
from api.errors import error_middleware
from api.ratelimit import LoginThrottle, rate_limit_middleware
from api.routes import ROUTES
from api.routing import register
from api.state import SERVICES, Services
from api.views import settings as settings_views
from api.wsauth import JwtWsAuthenticator
from devservers.embedded import embedded_postgres, embedded_redis
from engine.machine.engine import Engine
from engine.roles import Role
from service.runner import Runner
from service.sessions import watch_revocations
from service.users import UserService
from storage.db import connect_with_retry, migrate
from storage.groups import Groups
from storage.ratelimits import RateCounters
from storage.records import PostgresRecordSink
from storage.redis_client import open_redis
from storage.redis_state import RedisStateStore
from storage.tokens import TokenStore
from storage.users import Users
from ws.handler import WebSocketEndpoint
from ws.hub import Hub

log = logging.getLogger("switchboard")


async def ensure_admin(users: Users, settings: Settings) -> str | None:
    """On a database with no users, create the admin. Returns a generated password to print."""
    if await users.count() > 0:
        return None
    generated = None if settings.admin_password else generate_password()
    password = settings.admin_password or generated
    assert password is not None
    await users.create(
        username=settings.admin_username, email=f"{settings.admin_username}@switchboard.local",
        name="System administrator", role=Role.ADMIN, password_hash=hash_password(password),
    )
    log.info("created admin user %r", settings.admin_username)
    return generated


@contextlib.asynccontextmanager
async def lifespan(settings: Settings) -> AsyncIterator[Services]:
    """Start everything Switchboard needs; stop it all, in reverse order, on exit."""
    async with contextlib.AsyncExitStack() as stack:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        database_url = settings.database_url or await stack.enter_async_context(
            embedded_postgres(settings.data_dir)
        )
        redis_url = settings.redis_url or await stack.enter_async_context(
            embedded_redis(settings.data_dir)
        )

        pool = await connect_with_retry(database_url)
        stack.push_async_callback(pool.close)
        async with pool.acquire() as conn:
            await migrate(conn)
        redis = open_redis(redis_url)
        stack.push_async_callback(redis.aclose)

        users = Users(pool)
        generated_password = await ensure_admin(users, settings)
        jwt_secret = settings.jwt_secret or persistent_secret(settings.data_dir, "jwt_secret")
        token_store = TokenStore(redis)
        tokens = Tokens(jwt_secret, settings.token_ttl, token_store)
        rate_counters = RateCounters(redis)

        if settings.simulator_enabled:
            await pbx.provision_simulator_operators(users)
        store = RedisStateStore(redis)
        await store.clear()  # rebuilt from the PBX resync; stale live state would lie
        sink = PostgresRecordSink(pool)
        hub = Hub()
        engine = Engine(await users.operators())
        runner = Runner(engine, store, sink, hub)
        ws = WebSocketEndpoint(
            hub, JwtWsAuthenticator(tokens, users), runner.snapshot,
            auth_timeout=settings.ws_auth_timeout, queue_size=settings.ws_queue_size,
        )
        user_service = UserService(
            users, runner, token_store,
            token_lifetime=max(settings.token_ttl, settings.refresh_token_ttl))
        services = Services(settings=settings, pool=pool, redis=redis, users=users,
                            tokens=tokens, hub=hub, ws=ws, engine=engine, runner=runner,
                            records=sink, live_state=store, user_service=user_service,
                            rate_counters=rate_counters, groups=Groups(pool),
                            login_throttle=LoginThrottle(rate_counters,
                                                         enabled=settings.rate_limits))

        tasks = [asyncio.create_task(sink.run(), name="record-sink"),
                 asyncio.create_task(store.run(), name="live-state"),
                 asyncio.create_task(runner.run(), name="runner"),
                 asyncio.create_task(watch_revocations(token_store, ws), name="revocations"),
                 asyncio.create_task(user_service.watch_announcements(),
                                     name="user-announcements")]

        async def stop_tasks() -> None:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await sink.flush()  # last chance for queued records
            await store.flush()

        stack.push_async_callback(stop_tasks)
        stack.push_async_callback(ws.close_all)
        # the admin's saved Asterisk connection (PUT /api/admin/settings), when enabled
        stored_ari = await settings_views.stored_ari_config(services)
        await stack.enter_async_context(pbx.connect(services, stored_ari))
        services.pbx["generated_admin_password"] = generated_password
        yield services


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[error_middleware, rate_limit_middleware])

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        async with lifespan(settings) as services:
            app[SERVICES] = services
            yield

    app.cleanup_ctx.append(services_ctx)
    register(app, ROUTES)
    openapi.setup(app, ROUTES)  # /openapi.json and /docs (Swagger UI, assets served locally)

    async def ws_events(request: web.Request) -> web.StreamResponse:
        return await request.app[SERVICES].ws.handle(request)

    app.router.add_get("/ws/events", ws_events)
    app.router.add_get("/health", health)
    app.router.add_get("/", dashboard)
    return app


DASHBOARD = Path(__file__).with_name("static") / "dashboard.html"


async def dashboard(request: web.Request) -> web.FileResponse:
    """The live supervisor dashboard: one static page over the REST login and /ws/events."""
    return web.FileResponse(DASHBOARD, headers={"Cache-Control": "no-cache"})


async def health(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    return web.json_response({"status": "ok", "time": datetime.now(UTC).isoformat(),
                              "pbx": services.pbx.get("mode")})
