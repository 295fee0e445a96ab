"""The one place a Redis client is built.

A reconnect storm (thousands of dashboards authenticating at once) must never fail for lack of
a pooled connection: the pool *blocks* (up to ``pool_timeout`` seconds) for a free connection
instead of raising ``MaxConnectionsError`` as redis-py's default pool does past 100 connections.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

# What a Redis call raises when the server is unreachable or refuses: catch these, not Exception.
RedisClient = Redis  # for type hints outside storage/

REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)

MAX_CONNECTIONS = 64   # per process; requests queue for a free one beyond that
POOL_TIMEOUT = 10.0    # seconds a caller may wait for a free connection before failing


def open_redis(url: str, *, max_connections: int = MAX_CONNECTIONS,
               pool_timeout: float = POOL_TIMEOUT) -> Redis:
    """A client on ``url`` whose pool waits (bounded) for a free connection. ``await
    client.aclose()`` closes the pool too."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=pool_timeout,
        retry_on_timeout=True, health_check_interval=30,
    )
    return Redis.from_pool(pool)
