"""Rate limits (seed): per user (per IP before login), per bucket, in Redis, 429 + Retry-After.

These tests build their own apps with low limits (the shared fixture's limits are huge), on a
Redis database of their own, flushed first: every app on one Redis shares the counters (that is
the point), and other apps of the session — or other test sessions on the same server — would
spend this one's budget.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aredis
from aiohttp.test_utils import TestClient

from api.config import ConfigError, Settings, load_settings
from api.routes import ROUTES
from api.state import SERVICES
from storage import keys
from tests.app_fixtures import _client
from tests.helpers import ADMIN_PASSWORD, ensure_user

CREDS = {"username": "admin", "password": ADMIN_PASSWORD}
LIMITS = {"rate_limit_auth": 3, "rate_limit_dashboard": 4, "rate_limit_api": 5}


async def _fresh_window() -> None:
    """Don't straddle a window boundary: wait if fewer than 15 s are left in this one (a loaded
    2-core machine can take seconds between the requests of one test)."""
    left = keys.RATE_WINDOW - time.time() % keys.RATE_WINDOW
    if left < 15:
        await asyncio.sleep(left + 0.05)


@pytest_asyncio.fixture(loop_scope="session")
async def rl_settings(app_settings: Settings, redis_url: str) -> AsyncIterator[Settings]:
    """``app_settings`` on another database of the same Redis server, flushed."""
    parts = urllib.parse.urlsplit(redis_url)
    # next to the session's own database, not one fixed number: concurrent test sessions that
    # use different TEST_REDIS_URL databases must not share (and flush) this one
    db = (int(parts.path.strip("/") or 0) + 8) % 16
    url = parts._replace(path=f"/{db}").geturl()
    r = aredis.Redis.from_url(url)
    try:
        await r.flushdb()
        yield app_settings.replace(redis_url=url)
        await r.flushdb()
    finally:
        await r.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def limited(rl_settings: Settings) -> AsyncIterator[TestClient]:
    c = await _client(rl_settings, **LIMITS)
    await _fresh_window()  # after the app's start-up, which is slow under load
    try:
        yield c
    finally:
        await c.close()


async def _token(client: TestClient, creds: dict[str, str] = CREDS) -> str:
    resp = await client.post("/api/auth/login", json=creds)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["access_token"]


async def test_auth_bucket_is_per_ip_and_answers_429_with_retry_after(
    limited: TestClient,
) -> None:
    statuses = []
    for _ in range(3):
        resp = await limited.post("/api/auth/login", json={"username": "x", "password": "y"})
        statuses.append(resp.status)
    assert statuses == [401, 401, 401]  # failed logins count too (brute force)
    resp = await limited.post("/api/auth/login", json=CREDS)
    assert resp.status == 429
    assert await resp.json() == {
        "detail": "Rate limit exceeded: 3 requests per minute", "type": "rate_limit_error",
        "code": "RATE_001", "field": None}
    retry_after = int(resp.headers["Retry-After"])
    assert 1 <= retry_after <= keys.RATE_WINDOW
    assert resp.headers["X-RateLimit-Remaining"] == "0"
    # refresh shares the auth bucket; the /api/v1 alias is the same route
    assert (await limited.post("/api/v1/auth/refresh", json={"refresh": "x"})).status == 429


async def test_api_bucket_is_per_user(limited: TestClient) -> None:
    services = limited.app[SERVICES]
    await ensure_user(services, "rl_other", "manager")
    admin = await _token(limited)
    other = await _token(limited, {"username": "rl_other", "password": "secret-pass"})
    seen = []
    for _ in range(6):
        resp = await limited.get("/api/auth/me", headers={"Authorization": f"Bearer {admin}"})
        seen.append((resp.status, resp.headers.get("X-RateLimit-Remaining")))
    assert seen == [(200, "4"), (200, "3"), (200, "2"), (200, "1"), (200, "0"), (429, "0")]
    resp = await limited.get("/api/auth/me", headers={"Authorization": f"Bearer {other}"})
    assert resp.status == 200  # another user has a budget of their own
    # anonymous callers are counted by IP, apart from the users
    assert (await limited.get("/api/auth/me")).status == 401


async def test_limits_hold_across_instances(limited: TestClient,
                                            rl_settings: Settings) -> None:
    second = await _client(rl_settings, **LIMITS)  # another instance, same Redis
    try:
        token = await _token(limited)
        headers = {"Authorization": f"Bearer {token}"}
        statuses = []
        for i in range(6):
            instance = limited if i % 2 else second
            statuses.append((await instance.get("/api/auth/me", headers=headers)).status)
        assert statuses == [200] * 5 + [429]
    finally:
        await second.close()


async def test_buckets_are_separate_and_unlisted_paths_unlimited(limited: TestClient) -> None:
    token = await _token(limited)
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(5):
        assert (await limited.get("/api/auth/me", headers=headers)).status == 200
    assert (await limited.get("/api/auth/me", headers=headers)).status == 429
    for _ in range(10):  # outside the route table: docs, health
        assert (await limited.get("/openapi.json")).status == 200
        assert (await limited.get("/health")).status == 200
    dashboard = next((r for r in ROUTES if r.rate_bucket == "dashboard" and r.method == "GET"
                      and "{" not in r.path and r.roles and "admin" in r.roles), None)
    if dashboard is not None:  # its own budget (4), untouched by the spent api one
        statuses = [(await limited.get(dashboard.path, headers=headers)).status
                    for _ in range(5)]
        assert 429 not in statuses[:4] and statuses[4] == 429, (dashboard.path, statuses)
    # the rate-limit keys live where keys.py says, with a TTL
    r = limited.app[SERVICES].redis
    found = [k async for k in r.scan_iter(match=keys.PREFIX + "rl:api:*")]
    assert found and 0 < await r.ttl(found[0]) <= keys.RATE_WINDOW + 1


async def test_switch_off_disables_limits(rl_settings: Settings) -> None:
    c = await _client(rl_settings, rate_limits=False, rate_limit_auth=1)
    try:
        for _ in range(3):
            resp = await c.post("/api/auth/login", json={"username": "x", "password": "y"})
            assert resp.status == 401
            assert "X-RateLimit-Limit" not in resp.headers
    finally:
        await c.close()


def test_limits_are_configurable(tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rate_limits: false\nrate_limit_dashboard: 7\n")
    s = load_settings(env={"SWITCHBOARD_CONFIG": str(cfg), "SWITCHBOARD_RATE_LIMIT_AUTH": "9"})
    assert (s.rate_limits, s.rate_limit_auth, s.rate_limit_dashboard, s.rate_limit_api) == (
        False, 9, 7, 100)
    assert load_settings(env={"SWITCHBOARD_CONFIG": str(cfg),
                              "SWITCHBOARD_RATE_LIMITS": "yes"}).rate_limits is True
    with pytest.raises(ConfigError, match="rate_limits"):
        load_settings(env={"SWITCHBOARD_CONFIG": str(cfg), "SWITCHBOARD_RATE_LIMITS": "maybe"})
    defaults = Settings()
    assert (defaults.rate_limits, defaults.rate_limit_auth, defaults.rate_limit_dashboard,
            defaults.rate_limit_api) == (True, 5, 60, 100)  # the seed's numbers
