"""Small helpers shared by the API tests."""

from __future__ import annotations

import functools
from typing import Any

from aiohttp.test_utils import TestClient

from ws.hub import Audience, Hub

ADMIN_PASSWORD = "admin-test-password"
PASSWORD = "secret-pass"


async def login(client: TestClient, username: str = "admin",
                password: str = ADMIN_PASSWORD) -> str:
    resp = await client.post("/api/auth/login", json={"username": username, "password": password})
    assert resp.status == 200, await resp.text()
    token: str = (await resp.json())["access_token"]
    return token


@functools.cache
def password_hash(password: str) -> str:
    """A real Argon2 hash, computed once per password per session (hashing takes ~0.1 s and
    every test starts from empty tables)."""
    from api.auth import hash_password

    return hash_password(password)


async def create_user(services, username: str, role: str, *, password: str = PASSWORD,
                      extension: str | None = None, group_id: str | None = None) -> str:
    """Create a user through the real repository; returns its id. Tables are clean at the
    start of every test, so there is nothing to look up first."""
    row = await services.users.create(
        username=username, email=f"{username}@example.com", name=username.title(),
        role=role, password_hash=password_hash(password), group_id=group_id,
        extension=extension)
    return str(row["id"])


def publish_message(hub: Hub, type_: str, data: dict[str, Any],
                    audience: Audience | None = None) -> int:
    """Fan out a ready-made message to the viewers ``audience`` accepts (all if ``None``); its id.

    Tests only: the product publishes effects (``Hub.publish``). This drives the same delivery
    path with messages of any size or type; role rules do not apply, ``audience`` alone decides.
    """
    return hub._fan_out(hub._clock(), type_, data, audience, by_role=False)

ensure_user = create_user  # the old name, kept while branches that call it are merged
