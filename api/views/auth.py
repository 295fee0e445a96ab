"""/api/auth: login, me, logout (seed 001, section Авторизация)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from api.auth import InvalidCredentials, UserInactive, verify_password
from api.errors import json_response
from api.http import parse_body, row_json
from api.state import SERVICES, current_claims, current_user


class LoginBody(BaseModel):
    username: str = Field(min_length=1, max_length=50)
    password: str = Field(min_length=1, max_length=256)


async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, LoginBody)
    services = request.app[SERVICES]
    user = await services.users.by_username(body.username)
    password_ok = await verify_password(user["password_hash"] if user else None, body.password)
    if user is None or not password_ok:
        raise InvalidCredentials()
    if not user["is_active"]:
        raise UserInactive()
    token, _claims = services.tokens.issue(str(user["id"]), user["role"])
    return json_response({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": services.tokens.ttl,
        "user": row_json(user),
    })


async def me(request: web.Request) -> web.Response:
    return json_response(row_json(current_user(request)))


async def logout(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    claims = current_claims(request)
    await services.tokens.revoke(claims)
    services.ws.revoke(claims.jti)
    return json_response({"success": True, "message": "Successfully logged out"})
