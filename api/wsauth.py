"""The WebSocket endpoint's authenticator: the same JWTs and denylist as the REST API."""

from __future__ import annotations

from api.auth import TokenExpired, Tokens
from api.http import row_json
from engine.errors import DomainError
from storage.users import Users
from ws.access import Viewer
from ws.handler import WsAuthError, WsSession


class JwtWsAuthenticator:
    def __init__(self, tokens: Tokens, users: Users) -> None:
        self._tokens = tokens
        self._users = users

    async def authenticate(self, token: str) -> WsSession:
        try:
            claims = await self._tokens.verify(token)
        except TokenExpired as exc:
            raise WsAuthError("AUTH_002", exc.message) from None
        except DomainError as exc:
            raise WsAuthError(exc.code, exc.message) from None
        user = await self._users.by_id(claims.sub)
        if user is None:
            raise WsAuthError("AUTH_001", "Unknown user")
        if not user["is_active"]:
            raise WsAuthError("AUTH_004", "User is inactive")
        operator_id = await self._users.operator_id_of(claims.sub)
        viewer = Viewer(
            user_id=claims.sub, role=user["role"],
            group_id=str(user["group_id"]) if user["group_id"] else None,
            operator_id=operator_id,
        )
        return WsSession(viewer=viewer, user=row_json(user), expires_at=float(claims.exp),
                         jti=claims.jti)

    async def is_revoked(self, jti: str) -> bool:
        return await self._tokens.is_revoked(jti)
