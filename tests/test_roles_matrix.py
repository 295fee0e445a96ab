"""The role matrix, generated from the route table: every route × (anonymous, a bad token, every
role) → the expected answer of the guard.

* guarded route, no token or a bad one → 401 ``AUTH_001``;
* a role the route does not list → 403 ``AUTH_003``;
* a role it lists → past the guard: neither 401 nor 403 (nor 500). Path parameters are random
  UUIDs and bodies ``{}``, so the handler answers 404/422/… — only the guard is checked here;
* public route → never the guard's 401/403, never 500.

Routes added to ``api/routes.py`` are covered without touching this file.
"""

from __future__ import annotations

import re
import uuid

from aiohttp.test_utils import TestClient

from api.auth import ROLES
from api.routes import ROUTES
from api.routing import Route

CALLERS = ("anonymous", "bad-token", *ROLES)


def expected(route: Route, caller: str) -> str:
    if route.roles is None:
        return "public"
    if caller in ("anonymous", "bad-token"):
        return "401"
    return "allowed" if caller in route.roles else "403"


MATRIX = {(f"{r.method} {r.path}", caller): expected(r, caller)
          for r in ROUTES for caller in CALLERS}


def _url(route: Route) -> str:
    return re.sub(r"\{[^}]+\}", lambda _m: str(uuid.uuid4()), route.path)


def test_matrix_covers_every_route_and_role() -> None:
    assert len(MATRIX) == len({(r.method, r.path) for r in ROUTES}) * len(CALLERS)
    assert set(ROLES) == {"admin", "manager", "supervisor", "operator"}
    # every route declares its roles explicitly (None = public), only known roles
    for route in ROUTES:
        assert route.roles is None or (route.roles and set(route.roles) <= set(ROLES)), route


async def _call(client: TestClient, route: Route, token: str | None) -> tuple[int, str | None]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    send_body = route.body is not None or route.method in ("POST", "PUT", "PATCH")
    resp = await client.request(route.method, _url(route), headers=headers,
                                **({"json": {}} if send_body else {}))
    try:
        body = await resp.json(content_type=None)
    except ValueError:
        body = None
    return resp.status, body.get("code") if isinstance(body, dict) else None


def _holds(route: Route, want: str, status: int, code: str | None) -> bool:
    if want == "401":
        return status == 401 and code == "AUTH_001"
    if want == "403":
        return status == 403 and code == "AUTH_003"
    if status == 500:  # an unhandled error is never an acceptable answer
        return False
    if want == "public":
        return code not in ("AUTH_003", "AUTH_004", "AUTH_005")
    # allowed: past the guard. A 403 AUTH_003 can still come from an object-level check
    # (e.g. an operator reading another operator's stats) — only on a route about one object.
    return status != 401 and (status != 403 or ("{" in route.path and code == "AUTH_003"))


async def test_role_matrix(client: TestClient, services, role_tokens: dict[str, str]) -> None:
    """One app, the whole table; tokens are minted per route (logout revokes its caller's)."""
    subjects = {role: services.tokens.decode(token).sub for role, token in role_tokens.items()}
    table, failures = [], []
    for route in ROUTES:
        tokens = {role: services.tokens.issue(sub, role)[0] for role, sub in subjects.items()}
        tokens["bad-token"] = "not.a.jwt"
        row = []
        for caller in CALLERS:
            want = MATRIX[(f"{route.method} {route.path}", caller)]
            status, code = await _call(client, route, tokens.get(caller))
            row.append(f"{status}")
            if not _holds(route, want, status, code):
                failures.append(f"{route.method} {route.path} as {caller}: expected {want}, "
                                f"got {status} {code}")
        table.append(f"{route.method:6} {route.path:50} " + " ".join(f"{s:>4}" for s in row))
    header = f"{'':57} " + " ".join(f"{c[:4]:>4}" for c in CALLERS)
    assert not failures, "\n".join([*failures, "", header, *table])
