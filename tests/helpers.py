"""Small helpers shared by the API tests."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

ADMIN_PASSWORD = "admin-test-password"


async def login(client: TestClient, username: str = "admin",
                password: str = ADMIN_PASSWORD) -> str:
    resp = await client.post("/api/auth/login", json={"username": username, "password": password})
    assert resp.status == 200, await resp.text()
    token: str = (await resp.json())["access_token"]
    return token
