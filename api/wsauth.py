"""The WebSocket endpoint's authenticator: the same JWTs and revocation checks as the REST API.

A handshake costs one Redis round trip (denylist, family, user's "valid after" mark, pipelined)
and one PostgreSQL query (the user with their operator id), so a reconnect storm of thousands of
dashboards stays within the pools (which wait, bounded, rather than refuse).
"""

from __future__ import annotations

from collections.abc import Sequence

from api.auth import TokenExpired, Tokens, refused
from api.http import row_json
from engine.errors import DomainError
from storage.tokens import TokenRef
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
        found = await self._users.with_operator_id(claims.sub)
        if found is None:
            raise WsAuthError("AUTH_001", "Unknown user")
        user, operator_id = found
        if not user["is_active"]:
            raise WsAuthError("AUTH_004", "User is inactive")
        viewer = Viewer(
            user_id=claims.sub, role=user["role"],
            group_id=str(user["group_id"]) if user["group_id"] else None,
            operator_id=operator_id,
        )
        return WsSession(viewer=viewer, user=row_json(user, drop=("operator_id",)),
                         expires_at=float(claims.exp),
                         jti=claims.jti, family=claims.fam, issued_ms=claims.iat_ms)

    async def revoked(self, sessions: Sequence[WsSession]) -> list[bool]:
        states = await self._tokens.store.states(
            [TokenRef(s.jti, s.family, s.viewer.user_id) for s in sessions])
        return [refused(s.issued_ms, state) for s, state in zip(sessions, states, strict=True)]
