"""The one table of routes: every endpoint with the roles allowed to call it (seed 001).

Each views module declares its own ``ROUTES``; this module only collects them, so the role of
every route is read in one place: ``python -c "from api.routes import ROUTES; ..."``.
"""

from __future__ import annotations

from api.routing import ANY_USER, Route
from api.views import auth

ROUTES: list[Route] = [
    Route("POST", "/api/auth/login", auth.login, None, "Log in: JWT and user",
          body=auth.LoginBody, tags=("auth",), rate_bucket="auth"),
    Route("GET", "/api/auth/me", auth.me, ANY_USER, "The current user", tags=("auth",)),
    Route("POST", "/api/auth/logout", auth.logout, ANY_USER,
          "Log out: the token is revoked for the rest of its life", tags=("auth",)),
]
