"""Refresh tokens (rotation, reuse detection) and the httpOnly cookie option (seeds 000, 002)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.helpers import ADMIN_PASSWORD, ensure_user

CREDS = {"username": "admin", "password": ADMIN_PASSWORD}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _login(client: TestClient, creds: dict[str, str] = CREDS) -> dict:
    resp = await client.post("/api/auth/login", json=creds)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def _refresh(client: TestClient, token: str, field: str = "refresh_token"):
    return await client.post("/api/auth/refresh", json={field: token})


async def test_login_returns_a_refresh_token_and_refresh_rotates(client: TestClient) -> None:
    first = await _login(client)
    assert first["refresh_token"] and first["refresh_expires_in"] == 30 * 86400
    resp = await _refresh(client, first["refresh_token"])
    assert resp.status == 200, await resp.text()
    second = await resp.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["user"]["username"] == "admin" and second["token_type"] == "bearer"
    resp = await client.get("/api/auth/me", headers=bearer(second["access_token"]))
    assert resp.status == 200
    # the seed-002 field name works too, and on the /api/v1 prefix
    resp = await client.post("/api/v1/auth/refresh", json={"refresh": second["refresh_token"]})
    assert resp.status == 200


async def test_reusing_a_refresh_token_revokes_the_whole_family(client: TestClient) -> None:
    first = await _login(client)
    other_session = await _login(client)
    second = await (await _refresh(client, first["refresh_token"])).json()

    resp = await _refresh(client, first["refresh_token"])  # replay of a spent token
    assert resp.status == 401
    body = await resp.json()
    assert body["code"] == "AUTH_001" and "reuse" in body["detail"]

    # the rotated token and every access token of the family are dead now
    assert (await _refresh(client, second["refresh_token"])).status == 401
    for access in (first["access_token"], second["access_token"]):
        assert (await client.get("/api/auth/me", headers=bearer(access))).status == 401
    # another login (another family) is untouched
    resp = await client.get("/api/auth/me", headers=bearer(other_session["access_token"]))
    assert resp.status == 200
    assert (await _refresh(client, other_session["refresh_token"])).status == 200


async def test_unknown_empty_and_malformed_refresh_tokens_are_401(client: TestClient) -> None:
    assert (await _refresh(client, "not-a-real-token")).status == 401
    resp = await client.post("/api/auth/refresh")  # no body, no cookie
    assert resp.status == 401 and (await resp.json())["type"] == "authentication_error"
    resp = await client.post("/api/auth/refresh", json={"refresh_token": ""})
    assert resp.status == 422


async def test_logout_revokes_the_refresh_token(client: TestClient) -> None:
    session = await _login(client)
    resp = await client.post("/api/auth/logout", headers=bearer(session["access_token"]))
    assert resp.status == 200
    assert (await _refresh(client, session["refresh_token"])).status == 401


async def test_refresh_of_an_inactive_user_is_refused(client: TestClient, services) -> None:
    await ensure_user(services, "soon_gone", "manager")
    session = await _login(client, {"username": "soon_gone", "password": "secret-pass"})
    await services.pool.execute("UPDATE users SET is_active = false WHERE username = 'soon_gone'")
    resp = await _refresh(client, session["refresh_token"])
    assert resp.status == 403 and (await resp.json())["code"] == "AUTH_004"


async def test_refresh_uses_the_current_role(client: TestClient, services) -> None:
    await ensure_user(services, "promoted", "operator", extension="3901")
    session = await _login(client, {"username": "promoted", "password": "secret-pass"})
    await services.pool.execute("UPDATE users SET role = 'supervisor' WHERE username = 'promoted'")
    fresh = await (await _refresh(client, session["refresh_token"])).json()
    assert services.tokens.decode(fresh["access_token"]).role == "supervisor"


# --------------------------------------------------------------------------- cookie mode


async def test_cookie_login_sets_httponly_cookies_and_keeps_tokens_out_of_the_body(
    client: TestClient,
) -> None:
    resp = await client.post("/api/auth/login?cookie=true", json=CREDS)
    assert resp.status == 200
    body = await resp.json()
    assert "access_token" not in body and "refresh_token" not in body
    assert body["user"]["username"] == "admin"
    cookies = {c.key: c for c in resp.cookies.values()}
    assert set(cookies) == {"access_token", "refresh_token"}
    for cookie in cookies.values():
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert not cookie["secure"]  # plain http here; Secure is set over https
    assert cookies["access_token"]["path"] == "/" and cookies["refresh_token"]["path"] == "/api"

    # the client's jar now sends the cookie: safe methods need nothing else
    resp = await client.get("/api/auth/me")
    assert resp.status == 200 and (await resp.json())["username"] == "admin"


async def test_cookie_auth_requires_the_csrf_header_on_unsafe_methods(
    client: TestClient,
) -> None:
    await client.post("/api/auth/login?cookie=true", json=CREDS)
    resp = await client.post("/api/auth/logout")
    assert resp.status == 403
    assert (await resp.json())["code"] == "AUTH_005"
    resp = await client.post("/api/auth/refresh")  # cookie refresh: same rule
    assert resp.status == 403 and (await resp.json())["code"] == "AUTH_005"

    resp = await client.post("/api/auth/refresh", headers={"X-Requested-With": "test"})
    assert resp.status == 200
    assert "access_token" not in await resp.json()
    assert {c.key for c in resp.cookies.values()} == {"access_token", "refresh_token"}

    resp = await client.post("/api/auth/logout", headers={"X-Requested-With": "test"})
    assert resp.status == 200
    cleared = {c.key: c.value for c in resp.cookies.values()}
    assert cleared == {"access_token": "", "refresh_token": ""}
    assert (await client.get("/api/auth/me")).status == 401


async def test_bearer_header_wins_over_cookie_and_needs_no_csrf_header(
    client: TestClient,
) -> None:
    await client.post("/api/auth/login?cookie=true", json=CREDS)
    session = await _login(client)
    resp = await client.post("/api/auth/logout", headers=bearer(session["access_token"]))
    assert resp.status == 200
