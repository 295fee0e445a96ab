"""Rate limits (seed 001, Rate Limiting): auth 5/min, dashboard 60/min, other API 100/min.

A fixed one-minute window per (bucket, who): ``who`` is the user id of a well-signed access token
(decoded without a database or Redis read: a revoked token still names its user, and the guard
refuses it anyway) or else the client IP: the TCP peer address (``request.remote``);
``X-Forwarded-For`` is not trusted, so a client cannot pick its own bucket. The counter lives in
Redis (``storage/ratelimits.py``), so the limit holds across instances. Over the limit: 429
``RATE_001`` in the seed's error shape with ``Retry-After`` (seconds to the window's end). Every
limited answer carries ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``
(seconds). If Redis fails, requests pass
(logged): limits protect the service, they must not take it down.

Only routes of the table (``api/routes.py``) are limited, by their ``Route.rate_bucket``.

Logins are also limited **per account** (``LoginThrottle``), whatever the addresses: after
``free_failures`` (5) wrong passwords for one username, every further attempt must wait a delay
that doubles with each failure (1 s, 2 s, 4 s … capped at ``max_delay``, 30 s); an attempt within
the delay answers 429 ``RATE_002`` with ``Retry-After`` without checking the password, and
attempts from many addresses at once get one try per delay. A success, or ``window`` (15 min)
without failures, forgets the failures. The cap is what keeps an attacker from locking a user out:
the rightful owner waits at most 30 s for a try, while the attacker gets at most one guess per 30 s
per account (about 2,900 a day, against a password of at least 6 characters). Switched off with
the other limits (``rate_limits: false``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from api.auth import InvalidToken, TokenExpired
from api.routing import bearer_token, route_of
from api.state import SERVICES
from engine.errors import DomainError, StorageUnavailable
from storage import keys
from storage.ratelimits import Backoff, RateCounters

log = logging.getLogger("switchboard.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

class RateLimited(DomainError):
    code, default_message = "RATE_001", "Rate limit exceeded"

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(f"Rate limit exceeded: {limit} requests per minute")
        self.limit, self.retry_after = limit, retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after), "X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(self.retry_after)}


class LoginThrottled(DomainError):
    code, default_message = "RATE_002", "Too many failed logins for this account"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed logins for this account: retry in {retry_after} s")
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class LoginThrottle:
    """Per-account login backoff (see the module doc). Fails open when Redis is down."""

    def __init__(self, counters: RateCounters, *, enabled: bool = True, free_failures: int = 5,
                 base_delay: float = 1.0, max_delay: float = 30.0, window: int = 15 * 60,
                 clock: Callable[[], float] = time.time) -> None:
        self._counters = counters
        self.enabled = enabled
        self.backoff = Backoff(free_failures=free_failures, base_ms=int(base_delay * 1000),
                               max_ms=int(max_delay * 1000), window_s=window)
        self.clock = clock

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def before_attempt(self, username: str) -> None:
        """Raise ``LoginThrottled`` while ``username`` must wait."""
        if not self.enabled:
            return
        try:
            wait_ms = await self._counters.reserve_login(username, self._now_ms(), self.backoff)
        except StorageUnavailable:
            log.warning("login throttle: Redis unavailable, attempt let through", exc_info=True)
            return
        if wait_ms > 0:
            raise LoginThrottled(max(1, math.ceil(wait_ms / 1000)))

    async def failed(self, username: str) -> None:
        if self.enabled:
            with contextlib.suppress(StorageUnavailable):
                await self._counters.login_failed(username, self._now_ms(), self.backoff)

    async def succeeded(self, username: str) -> None:
        if self.enabled:
            with contextlib.suppress(StorageUnavailable):
                await self._counters.login_succeeded(username)


def limit_of(request: web.Request, bucket: str) -> int:
    settings = request.app[SERVICES].settings
    return {"auth": settings.rate_limit_auth,
            "dashboard": settings.rate_limit_dashboard}.get(bucket, settings.rate_limit_api)


def client_key(request: web.Request) -> str:
    """``u:<user id>`` for a validly signed token, else ``ip:<address>``."""
    token = bearer_token(request)
    if token:
        try:
            return "u:" + request.app[SERVICES].tokens.decode(token).sub
        except (TokenExpired, InvalidToken):
            pass
    return f"ip:{request.remote or 'unknown'}"


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = route_of(request)
    if route is None or SERVICES not in request.app:
        return await handler(request)
    services = request.app[SERVICES]
    if not services.settings.rate_limits:
        return await handler(request)
    limit = limit_of(request, route.rate_bucket)
    now = time.time()
    window = int(now // keys.RATE_WINDOW)
    reset = max(1, math.ceil((window + 1) * keys.RATE_WINDOW - now))
    try:
        count = await services.rate_counters.hit(route.rate_bucket, client_key(request), window,
                                                 keys.RATE_WINDOW + 1)
    except StorageUnavailable:
        log.warning("rate limit: Redis unavailable, request let through", exc_info=True)
        return await handler(request)
    if count > limit:
        raise RateLimited(limit, reset)
    response = await handler(request)
    if not response.prepared:
        response.headers["X-RateLimit-Limit"] = str(limit)
        response.headers["X-RateLimit-Remaining"] = str(max(0, limit - count))
        response.headers["X-RateLimit-Reset"] = str(reset)
    return response
