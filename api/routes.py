"""The one table of routes: method, path, handler and the roles allowed to call it.

Every ``/api/...`` path is also served under ``/api/v1/...``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from api.auth import Forbidden, InvalidToken, UserInactive
from api.state import CLAIMS_KEY, SERVICES, USER_KEY
from api.views import auth

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC: tuple[str, ...] = ()
ANY_USER = ("admin", "manager", "supervisor", "operator")


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    roles: tuple[str, ...] | None  # None = no authentication; otherwise the allowed roles


ROUTES: list[Route] = [
    Route("POST", "/api/auth/login", auth.login, None),
    Route("GET", "/api/auth/me", auth.me, ANY_USER),
    Route("POST", "/api/auth/logout", auth.logout, ANY_USER),
]


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.cookies.get("access_token")


def guarded(handler: Handler, roles: tuple[str, ...] | None) -> Handler:
    """Authenticate (401), check the user is active (403 AUTH_004) and the role (403 AUTH_003)."""
    if roles is None:
        return handler

    async def check(request: web.Request) -> web.StreamResponse:
        token = bearer_token(request)
        if not token:
            raise InvalidToken()
        services = request.app[SERVICES]
        claims = await services.tokens.verify(token)
        user = await services.users.by_id(claims.sub)
        if user is None:
            raise InvalidToken()
        if not user["is_active"]:
            raise UserInactive()
        if user["role"] not in roles:
            raise Forbidden()
        request[CLAIMS_KEY] = claims
        request[USER_KEY] = user
        return await handler(request)

    return check


def register(app: web.Application, routes: list[Route] = ROUTES) -> None:
    for route in routes:
        handler = guarded(route.handler, route.roles)
        for prefix_path in (route.path, route.path.replace("/api/", "/api/v1/", 1)):
            app.router.add_route(route.method, prefix_path, handler)
