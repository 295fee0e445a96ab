"""Route declarations and the authentication/role guard. The table itself is ``api/routes.py``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from api.auth import Forbidden, InvalidToken, UserInactive
from api.state import CLAIMS_KEY, SERVICES, USER_KEY
from engine.errors import DomainError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]



@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint. ``roles`` None = public. The models feed validation and the OpenAPI doc:
    ``body``/``query`` are pydantic models, ``response`` a pydantic model or type (e.g.
    ``list[UserOut]``), ``status`` the success status."""

    method: str
    path: str
    handler: Handler
    roles: tuple[str, ...] | None
    summary: str = ""
    body: Any = None
    query: Any = None
    response: Any = None
    status: int = 200
    tags: tuple[str, ...] = field(default=())
    rate_bucket: str = "api"  # auth | dashboard | api (seed: 5 / 60 / 100 per minute)


ACCESS_COOKIE = "access_token"  # httpOnly cookies set by POST /api/auth/login?cookie=true
REFRESH_COOKIE = "refresh_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfHeaderMissing(DomainError):
    code = "AUTH_005"
    default_message = "Cookie-authenticated requests that change state must send X-Requested-With"


def header_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def bearer_token(request: web.Request) -> str | None:
    return header_token(request) or request.cookies.get(ACCESS_COOKIE)


def require_csrf_header(request: web.Request) -> None:
    """CSRF defence for cookie auth (with SameSite=Strict): a custom header that a cross-site
    form or image can't send, and cross-site script can't either (no CORS is served)."""
    if not request.headers.get("X-Requested-With"):
        raise CsrfHeaderMissing()


def guarded(handler: Handler, roles: tuple[str, ...] | None) -> Handler:
    """Authenticate (401), check the user is active (403 AUTH_004) and the role (403 AUTH_003)."""
    if roles is None:
        return handler

    async def check(request: web.Request) -> web.StreamResponse:
        token = header_token(request)
        if token is None and (token := request.cookies.get(ACCESS_COOKIE)):
            if request.method not in SAFE_METHODS:
                require_csrf_header(request)
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


# aiohttp route -> its declaration, for middlewares (rate limits: ``Route.rate_bucket``).
ROUTE_INFO: web.AppKey[dict[Any, Route]] = web.AppKey("route_info", dict)


def route_of(request: web.Request) -> Route | None:
    """The declared Route the request matched (None: not a table route, 404, 405)."""
    table = request.app.get(ROUTE_INFO)
    return table.get(request.match_info.route) if table else None


def register(app: web.Application, routes: list[Route]) -> None:
    table = app.setdefault(ROUTE_INFO, {})
    for route in routes:
        handler = guarded(route.handler, route.roles)
        for path in _variants(route.path):
            table[app.router.add_route(route.method, path, handler)] = route


def _variants(path: str) -> list[str]:
    """``/api/x/`` is also ``/api/x`` (the seed writes collection paths with a trailing slash,
    its clients call them without), and everything is also served under ``/api/v1``."""
    paths = [path, path.replace("/api/", "/api/v1/", 1)]
    if path.endswith("/") and path.count("/") > 2:
        paths += [p.rstrip("/") for p in paths]
    return paths
