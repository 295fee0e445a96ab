"""Rate limits (seed 001, Rate Limiting): auth 5/min, dashboard 60/min, other API 100/min.

A fixed one-minute window per (bucket, who): ``who`` is the user id of a well-signed access token
(decoded without a database or Redis read: a revoked token still names its user, and the guard
refuses it anyway) or else the client IP. The counter lives in Redis
(``keys.rate_limit``), so the limit holds across instances; INCR and EXPIRE run in one Lua script
(atomic; Redis 6.2+/7 and Valkey). Over the limit: 429 ``RATE_001`` in the seed's error shape with
``Retry-After`` (seconds to the window's end). Every limited answer carries ``X-RateLimit-Limit``,
``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (seconds). If Redis fails, requests pass
(logged): limits protect the service, they must not take it down.

Only routes of the table (``api/routes.py``) are limited, by their ``Route.rate_bucket``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from redis.exceptions import RedisError

from api.auth import InvalidToken, TokenExpired
from api.routing import bearer_token, route_of
from api.state import SERVICES
from engine.errors import DomainError
from storage import keys

log = logging.getLogger("switchboard.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# KEYS[1] counter; ARGV[1] ttl. Returns the count after this request.
_INCR = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class RateLimited(DomainError):
    code, default_message = "RATE_001", "Rate limit exceeded"

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(f"Rate limit exceeded: {limit} requests per minute")
        self.limit, self.retry_after = limit, retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after), "X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(self.retry_after)}


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
    key = keys.rate_limit(route.rate_bucket, client_key(request), window)
    try:
        count = int(await services.redis.eval(_INCR, 1, key, keys.RATE_WINDOW + 1))
    except (RedisError, OSError):
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
