"""Application factory. It only wires; ``lifespan`` owns start-up and shutdown, in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from api import openapi
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
from service.pbx import PbxConnection, PbxSettings, provision_simulator_operators
from service.queue_catalog import QueueCatalog
from service.readiness import Part, readiness
from service.runner import Runner
from service.sessions import watch_revocations
from service.supervise import Supervisor
from service.users import UserService
from storage.db import connect_with_retry, migrate
from storage.groups import Groups
from storage.queues import Queues
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
    configured = settings.admin_password.get_secret_value()
    generated = None if configured else generate_password()
    password = configured or generated
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
    pbx_settings = PbxSettings(
        ari_url=settings.ari_url, ari_username=settings.ari_username,
        ari_password=settings.ari_password.get_secret_value(), ari_app=settings.ari_app,
        simulator=settings.simulator_enabled, simulator_rate=settings.simulator_rate,
        ami_host=settings.ami_host, ami_port=settings.ami_port,
        ami_username=settings.ami_username, ami_secret=settings.ami_secret.get_secret_value(),
        mango_api_key=settings.mango_api_key.get_secret_value(),
    )
    pbx_settings.refuse_unbuilt()  # before anything starts
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
        jwt_secret = (settings.jwt_secret.get_secret_value()
                      or persistent_secret(settings.data_dir, "jwt_secret"))
        token_store = TokenStore(redis)
        tokens = Tokens(jwt_secret, settings.token_ttl, token_store)
        rate_counters = RateCounters(redis)

        if pbx_settings.simulator:
            await provision_simulator_operators(users, hash_password)
        store = RedisStateStore(redis)
        await store.clear()  # rebuilt from the PBX resync; stale live state would lie
        sink = PostgresRecordSink(pool)
        hub = Hub()
        engine = Engine(await users.operators(), timezone=settings.tzinfo)
        catalog = QueueCatalog(Queues(pool).add_from_pbx)  # queues the PBX names get listed
        stack.push_async_callback(catalog.close)
        runner = Runner(engine, store, sink, hub, on_resync=sink.reconcile,
                        on_queue=catalog.seen)
        store.source = runner.snapshot  # after a Redis outage the live state is rewritten whole
        ws = WebSocketEndpoint(
            hub, JwtWsAuthenticator(tokens, users), runner.snapshot,
            auth_timeout=settings.ws_auth_timeout, queue_size=settings.ws_queue_size,
            queues=runner.engine.queues,
        )
        pbx = PbxConnection(pbx_settings, runner.submit)
        user_service = UserService(
            users, runner, token_store,
            token_lifetime=max(settings.token_ttl, settings.refresh_token_ttl))
        services = Services(settings=settings, pool=pool, redis=redis, users=users,
                            tokens=tokens, hub=hub, ws=ws, engine=engine, runner=runner,
                            records=sink, live_state=store, pbx=pbx,
                            user_service=user_service,
                            rate_counters=rate_counters, groups=Groups(pool),
                            login_throttle=LoginThrottle(rate_counters,
                                                         enabled=settings.rate_limits),
                            generated_admin_password=generated_password)

        tasks = Supervisor()  # a task that fails or ends is logged, counted and restarted
        services.tasks = tasks
        tasks.start("record-sink", sink.run)
        tasks.start("live-state", store.run)
        tasks.start("runner", runner.run)
        tasks.start("revocations", lambda: watch_revocations(token_store, ws))
        tasks.start("user-announcements", user_service.watch_announcements)

        async def stop_tasks() -> None:
            await tasks.stop()
            # last chance for what is queued, bounded in time (SHUTDOWN_FLUSH_SECONDS each)
            await asyncio.gather(sink.drain(), store.drain())

        stack.push_async_callback(stop_tasks)
        stack.push_async_callback(ws.close_all)
        # the admin's saved Asterisk connection (PUT /api/admin/settings), when enabled
        stored = await settings_views.stored_connection(services)
        await pbx.start(stored)
        stack.push_async_callback(pbx.close)
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
    app.router.add_get("/ready", ready)
    app.router.add_get("/", dashboard)
    return app


DASHBOARD = Path(__file__).with_name("static") / "dashboard.html"


async def dashboard(request: web.Request) -> web.FileResponse:
    """The live supervisor dashboard: one static page over the REST login and /ws/events."""
    return web.FileResponse(DASHBOARD, headers={"Cache-Control": "no-cache"})


async def health(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    return web.json_response({"status": "ok", "time": datetime.now(UTC).isoformat(),
                              "pbx": services.pbx.mode})


def pbx_parts(services: Services) -> dict[str, Part]:
    """Each PBX source and whether it hears its PBX now (none configured: none)."""
    return {f"pbx:{status.name}": Part(status.connected, status.reason or "")
            for status in services.pbx.status()}


async def ready(request: web.Request) -> web.Response:
    """Readiness: 200 when every part works, 503 naming the degraded ones."""
    services = request.app[SERVICES]
    parts = await readiness(services.pool, services.redis, services.records,
                            services.live_state, pbx_parts(services))
    ok = all(part.ok for part in parts.values())
    tasks = services.tasks.stats if services.tasks is not None else {}
    return web.json_response(
        {"status": "ready" if ok else "degraded",
         "parts": {name: part.as_json() for name, part in parts.items()},
         "tasks": dict(tasks)},  # failures, unexpected ends, restarts per task
        status=200 if ok else 503)
