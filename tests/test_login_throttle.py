"""Logins are limited per account as well as per IP (issue 8): a growing, capped delay per
username, whatever addresses the guesses come from; the owner gets in once the delay is over.

Client addresses are the TCP peer (``X-Forwarded-For`` is not trusted), so the guesses really come
from 40 different source addresses: 127.0.0.2 … 127.0.0.41, each a client bound to it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from api.config import Settings
from api.ratelimit import LoginThrottle, LoginThrottled
from api.state import SERVICES
from tests.app_fixtures import _client
from tests.helpers import ensure_user
from tests.test_ratelimit import rl_settings  # noqa: F401  (fixture: a Redis db of its own)

ADDRESSES = [f"127.0.0.{n}" for n in range(2, 42)]


@pytest_asyncio.fixture(loop_scope="session")
async def limited(rl_settings: Settings) -> AsyncIterator[TestClient]:  # noqa: F811
    # 10 per minute per IP: 5 guesses from each of 40 addresses stay under the per-IP limit
    c = await _client(rl_settings, rate_limit_auth=10)
    try:
        yield c
    finally:
        await c.close()


async def test_guesses_from_many_addresses_hit_the_account_limit(limited: TestClient) -> None:
    services = limited.app[SERVICES]
    username = "throttled_user"
    await ensure_user(services, username, "manager", password="right-password")
    url = str(limited.make_url("/api/auth/login"))
    statuses: list[int] = []
    retry_after: list[int] = []
    for address in ADDRESSES:
        connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http:
            for n in range(5):
                resp = await http.post(url, json={"username": username,
                                                  "password": f"guess-{address}-{n}"},
                                       headers={"X-Forwarded-For": "10.0.0.1"})
                statuses.append(resp.status)
                if resp.status == 429:
                    body = await resp.json()
                    assert body["code"] == "RATE_002", body
                    retry_after.append(int(resp.headers["Retry-After"]))
    assert len(statuses) == 200
    assert statuses[:5] == [401] * 5  # the free failures
    assert statuses.count(429) > 150, statuses
    assert set(statuses) <= {401, 429}  # never a per-IP 429 (RATE_001): 5 per address
    assert retry_after and max(retry_after) <= 30  # capped

    # The owner, after the cap: the delay is over, the right password works and resets it.
    throttle = services.login_throttle
    real_clock = throttle.clock
    throttle.clock = lambda: real_clock() + 31
    try:
        resp = await limited.post("/api/auth/login",
                                  json={"username": username, "password": "right-password"})
        assert resp.status == 200, await resp.text()
        resp = await limited.post("/api/auth/login",
                                  json={"username": username, "password": "wrong"})
        assert resp.status == 401  # failures were forgotten: a free one again
    finally:
        throttle.clock = real_clock


async def test_the_delay_doubles_and_is_capped(limited: TestClient) -> None:
    counters = limited.app[SERVICES].rate_counters
    now = [time.time()]
    throttle = LoginThrottle(counters, free_failures=3, base_delay=1, max_delay=10,
                             clock=lambda: now[0])
    user = f"backoff-{time.time_ns()}"
    for _ in range(3):  # free
        await throttle.before_attempt(user)
        await throttle.failed(user)
    waits = []
    for _ in range(6):
        with pytest.raises(LoginThrottled) as refused:
            await throttle.before_attempt(user)
        waits.append(refused.value.retry_after)
        now[0] += refused.value.retry_after
        await throttle.before_attempt(user)  # the slot is open again: one try
        await throttle.failed(user)
    assert waits == [1, 2, 4, 8, 10, 10]
    now[0] += 10
    await throttle.before_attempt(user)
    await throttle.succeeded(user)
    for _ in range(3):  # forgotten: free failures again
        await throttle.before_attempt(user)
        await throttle.failed(user)
