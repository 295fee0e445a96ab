"""/api/auth: login, me, logout (seed 001, section Авторизация), refresh (seed 002).

Tokens travel as ``Authorization: Bearer`` (seed 001) or, with ``POST /api/auth/login?cookie=true``,
as httpOnly cookies (seed 000): ``access_token`` (Path=/) and ``refresh_token`` (Path=/api), both
``SameSite=Strict``, ``Secure`` over https. In cookie mode the tokens are NOT in the response body
(so script on the page can never read them). CSRF: besides SameSite=Strict, a cookie-authenticated
request with an unsafe method (and a cookie-based refresh) must send ``X-Requested-With`` (any
value) — a header a cross-site form cannot send — else 403 ``AUTH_005``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from api.auth import InvalidCredentials, InvalidToken, UserInactive, verify_password
from api.errors import json_response
from api.http import parse_body, parse_query, row_json
from api.refresh import RefreshInvalid, RefreshTokens
from api.routing import ACCESS_COOKIE, REFRESH_COOKIE, require_csrf_header
from api.state import SERVICES, Services, current_claims, current_user


class LoginBody(BaseModel):
    username: str = Field(min_length=1, max_length=50, pattern=r"^[^\x00]*$")  # PG: no NUL
    password: str = Field(min_length=1, max_length=256)


class LoginQuery(BaseModel):
    cookie: bool = Field(False, description="true: the tokens are set as httpOnly cookies "
                         "(access_token, refresh_token) instead of being returned in the body")


class RefreshBody(BaseModel):
    refresh_token: str | None = Field(
        None, min_length=1, max_length=256,
        validation_alias=AliasChoices("refresh_token", "refresh"),
        description="The refresh token (seed 002 also calls it `refresh`); omitted = the "
                    "refresh_token cookie (then X-Requested-With is required)")


class UserOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: UUID
    username: str
    email: str
    name: str
    role: str
    group_id: UUID | None = None
    is_active: bool
    created_at: datetime
    updated_at: datetime | None = None


class TokenOut(BaseModel):
    access_token: str | None = Field(None, description="absent in cookie mode")
    refresh_token: str | None = Field(None, description="absent in cookie mode")
    token_type: str = "bearer"
    expires_in: int = Field(description="access token lifetime, seconds")
    refresh_expires_in: int = Field(description="refresh token lifetime, seconds")
    user: UserOut


class LogoutOut(BaseModel):
    success: bool
    message: str


def _refresh_tokens(services: Services) -> RefreshTokens:
    return RefreshTokens(services.tokens.store, services.settings.refresh_token_ttl,
                         services.tokens.ttl)


async def _grant(request: web.Request, user: Any, family: str, *, cookie: bool) -> web.Response:
    """A new access + refresh token pair of ``family``: in the body, or as httpOnly cookies."""
    services = request.app[SERVICES]
    refresh_tokens = _refresh_tokens(services)
    access, _claims = services.tokens.issue(str(user["id"]), user["role"], family)
    refresh_token = await refresh_tokens.issue(str(user["id"]), family)
    body: dict[str, Any] = {
        "access_token": access,
        "refresh_token": refresh_token,
        "token_type": "bearer",
        "expires_in": services.tokens.ttl,
        "refresh_expires_in": refresh_tokens.ttl,
        "user": row_json(user),
    }
    if not cookie:
        return json_response(body)
    del body["access_token"], body["refresh_token"]
    response = json_response(body)
    for name, value, path, ttl in ((ACCESS_COOKIE, access, "/", services.tokens.ttl),
                                   (REFRESH_COOKIE, refresh_token, "/api", refresh_tokens.ttl)):
        response.set_cookie(name, value, path=path, max_age=ttl, httponly=True,
                            samesite="Strict", secure=request.secure)
    return response


async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, LoginBody)
    query = parse_query(request, LoginQuery)
    services = request.app[SERVICES]
    await services.login_throttle.before_attempt(body.username)  # 429 RATE_002 while it must wait
    user = await services.users.by_username(body.username)
    password_ok = await verify_password(user["password_hash"] if user else None, body.password)
    if user is None or not password_ok:
        await services.login_throttle.failed(body.username)
        raise InvalidCredentials()
    await services.login_throttle.succeeded(body.username)
    if not user["is_active"]:
        raise UserInactive()
    return await _grant(request, user, RefreshTokens.new_family(), cookie=query.cookie)


async def refresh(request: web.Request) -> web.Response:
    """Rotate: the refresh token is spent and a new pair issued; a spent one revokes the family."""
    body = await parse_body(request, RefreshBody) if await request.read() else RefreshBody()
    from_cookie = body.refresh_token is None
    token = request.cookies.get(REFRESH_COOKIE) if from_cookie else body.refresh_token
    if not token:
        raise RefreshInvalid()
    if from_cookie:
        require_csrf_header(request)
    services = request.app[SERVICES]
    refresh_tokens = _refresh_tokens(services)
    grant = await refresh_tokens.consume(token)
    user = await services.users.by_id(grant.user_id)
    if user is None:
        await refresh_tokens.revoke_family(grant.family)
        raise InvalidToken()
    if not user["is_active"]:
        await refresh_tokens.revoke_family(grant.family)
        raise UserInactive()
    return await _grant(request, user, grant.family, cookie=from_cookie)


async def me(request: web.Request) -> web.Response:
    return json_response(row_json(current_user(request)))


async def logout(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    claims = current_claims(request)
    await services.tokens.revoke(claims)
    if claims.fam:  # the session's refresh token dies too
        await _refresh_tokens(services).revoke_family(claims.fam)
    services.ws.revoke(claims.jti)
    response = json_response({"success": True, "message": "Successfully logged out"})
    if ACCESS_COOKIE in request.cookies or REFRESH_COOKIE in request.cookies:
        response.del_cookie(ACCESS_COOKIE, path="/")
        response.del_cookie(REFRESH_COOKIE, path="/api")
    return response
