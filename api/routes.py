"""The one table of routes: every endpoint with the roles allowed to call it (seed 001).

Each views module declares its own ``ROUTES``; this module only collects them, so the role of
every route is read in one place: ``python -c "from api.routes import ROUTES; ..."``.
"""

from __future__ import annotations

from api.routing import Route
from api.views import asterisk as asterisk_views
from api.views import auth
from api.views import calls as calls_views
from api.views import groups as groups_views
from api.views import operators as operators_views
from api.views import parked as parked_views
from api.views import queues as queues_views
from api.views import settings as settings_views
from api.views import stats as stats_views
from api.views import system as system_views
from api.views import users as users_views
from engine.roles import ANY_USER

ROUTES: list[Route] = [
    Route("POST", "/api/auth/login", auth.login, None,
          "Log in: access + refresh token (or httpOnly cookies with ?cookie=true) and user",
          body=auth.LoginBody, query=auth.LoginQuery, response=auth.TokenOut, tags=("auth",),
          rate_bucket="auth"),
    Route("POST", "/api/auth/refresh", auth.refresh, None,
          "Rotate a refresh token: a new access + refresh pair; reuse revokes the session",
          body=auth.RefreshBody, response=auth.TokenOut, tags=("auth",), rate_bucket="auth"),
    Route("GET", "/api/auth/me", auth.me, ANY_USER, "The current user",
          response=auth.UserOut, tags=("auth",)),
    Route("POST", "/api/auth/logout", auth.logout, ANY_USER,
          "Log out: the token and its session's refresh token are revoked",
          response=auth.LogoutOut, tags=("auth",)),
]
ROUTES += operators_views.ROUTES
ROUTES += queues_views.ROUTES
ROUTES += asterisk_views.ROUTES
ROUTES += stats_views.ROUTES  # before calls: /api/calls/stats is not a {call_id}
ROUTES += calls_views.ROUTES
ROUTES += users_views.ROUTES
ROUTES += groups_views.ROUTES
ROUTES += settings_views.ROUTES
ROUTES += system_views.ROUTES
ROUTES += parked_views.ROUTES
