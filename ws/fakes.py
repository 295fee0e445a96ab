"""An in-memory authenticator for tests: a token -> session table and a denylist."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ws.handler import WsAuthError, WsSession


class FakeAuthenticator:
    """Implements ``ws.handler.Authenticator`` like the real one, without JWT or Redis."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._sessions: dict[str, WsSession] = {}
        self._refused: dict[str, tuple[str, str]] = {}
        self.revoked_jtis: set[str] = set()
        self.revocation_checks = 0

    def add(self, token: str, session: WsSession) -> None:
        self._sessions[token] = session

    def refuse(self, token: str, code: str, message: str = "refused") -> None:
        """Make ``token`` fail with ``code`` (e.g. ``AUTH_004`` for an inactive user)."""
        self._refused[token] = (code, message)

    def revoke(self, jti: str) -> None:
        self.revoked_jtis.add(jti)

    async def authenticate(self, token: str) -> WsSession:
        if token in self._refused:
            raise WsAuthError(*self._refused[token])
        session = self._sessions.get(token)
        if session is None:
            raise WsAuthError("AUTH_001", "invalid token")
        if session.expires_at <= self._clock():
            raise WsAuthError("AUTH_002", "token expired")
        if session.jti in self.revoked_jtis:
            raise WsAuthError("AUTH_001", "token revoked")
        return session

    async def revoked(self, sessions: Sequence[WsSession]) -> list[bool]:
        self.revocation_checks += 1
        return [session.jti in self.revoked_jtis for session in sessions]
