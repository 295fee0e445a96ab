"""Auth (seed 001, Авторизация): login, me, logout, errors in the seed's shape."""

from __future__ import annotations

import time

import jwt
from aiohttp.test_utils import TestClient

from tests.helpers import ADMIN_PASSWORD, login


async def test_login_returns_the_seed_shape(client: TestClient) -> None:
    resp = await client.post("/api/auth/login", json={"username": "admin",
                                                       "password": ADMIN_PASSWORD})
    assert resp.status == 200
    body = await resp.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 86400
    assert set(body["user"]) == {"id", "username", "email", "name", "role", "group_id",
                                 "is_active", "created_at", "updated_at"}
    assert body["user"]["role"] == "admin" and body["user"]["username"] == "admin"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert {"sub", "role", "jti", "exp"} <= set(claims)
    assert claims["role"] == "admin" and claims["sub"] == body["user"]["id"]


async def test_me_and_v1_prefix(client: TestClient) -> None:
    token = await login(client)
    for path in ("/api/auth/me", "/api/v1/auth/me"):
        resp = await client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 200
        me = await resp.json()
        assert me["username"] == "admin" and "password_hash" not in me


async def test_wrong_credentials_same_answer_whether_or_not_user_exists(
    client: TestClient,
) -> None:
    answers = []
    for username in ("admin", "nobody-here"):
        resp = await client.post("/api/auth/login",
                                 json={"username": username, "password": "wrong-password"})
        answers.append((resp.status, await resp.json()))
    assert answers[0] == answers[1]
    assert answers[0] == (401, {"detail": "Invalid credentials", "type": "authentication_error",
                                "code": "AUTH_001", "field": None})


async def test_missing_invalid_and_expired_tokens(client: TestClient, services) -> None:
    resp = await client.get("/api/auth/me")
    assert resp.status == 401 and (await resp.json())["code"] == "AUTH_001"
    resp = await client.get("/api/auth/me", headers={"Authorization": "Bearer nonsense"})
    assert resp.status == 401
    user = await services.users.by_username("admin")
    expired = jwt.encode({"sub": str(user["id"]), "role": "admin", "jti": "x",
                          "exp": int(time.time()) - 5}, services.tokens._secret, "HS256")
    resp = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {expired}"})
    assert resp.status == 401 and (await resp.json())["code"] == "AUTH_002"


async def test_logout_revokes_the_token(client: TestClient) -> None:
    token = await login(client)
    headers = {"Authorization": f"Bearer {token}"}
    resp = await client.post("/api/auth/logout", headers=headers)
    assert await resp.json() == {"success": True, "message": "Successfully logged out"}
    resp = await client.get("/api/auth/me", headers=headers)
    assert resp.status == 401
    other = await login(client)  # a fresh login is unaffected
    resp = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {other}"})
    assert resp.status == 200


async def test_inactive_user_is_refused(client: TestClient, services) -> None:
    from api.auth import hash_password

    await services.users.create(username="gone", email="gone@example.com", name="Gone",
                                role="manager", password_hash=hash_password("secret1"))
    token = await login(client, "gone", "secret1")
    await services.pool.execute("UPDATE users SET is_active = false WHERE username = 'gone'")
    resp = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 403 and (await resp.json())["code"] == "AUTH_004"
    resp = await client.post("/api/auth/login", json={"username": "gone", "password": "secret1"})
    assert resp.status == 403 and (await resp.json())["code"] == "AUTH_004"


async def test_malformed_json_is_400_and_invalid_fields_422(client: TestClient) -> None:
    resp = await client.post("/api/auth/login", data=b"{not json",
                             headers={"Content-Type": "application/json"})
    assert resp.status == 400 and (await resp.json())["type"] == "bad_request"
    resp = await client.post("/api/auth/login", json={"username": "", "password": 5})
    assert resp.status == 422
    detail = (await resp.json())["detail"]
    locs = {tuple(d["loc"]) for d in detail}
    assert locs == {("body", "username"), ("body", "password")}
    assert all({"loc", "msg", "type"} <= set(d) for d in detail)


async def test_unknown_path_is_404_in_seed_shape(client: TestClient) -> None:
    resp = await client.get("/api/nothing-here")
    assert resp.status == 404
    assert (await resp.json())["type"] == "not_found"


async def test_collection_paths_with_and_without_trailing_slash(client: TestClient) -> None:
    token = await login(client)
    headers = {"Authorization": f"Bearer {token}"}
    for path in ("/api/queues/", "/api/queues", "/api/v1/queues", "/api/operators"):
        resp = await client.get(path, headers=headers)
        assert resp.status == 200, path
        assert isinstance(await resp.json(), list)


async def test_dashboard_page_is_served(client: TestClient) -> None:
    resp = await client.get("/")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert "/ws/events" in page and "/api/auth/login" in page
