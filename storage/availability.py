"""What "a store is unreachable" looks like from the client libraries, named once.

The API's error middleware answers these with 503 ``DB_001`` (``engine.errors
.StorageUnavailable``) on every route, so no view needs its own ``try``.
"""

from __future__ import annotations

import asyncpg
import redis.exceptions

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,                                   # refused, reset, unreachable (both clients)
    TimeoutError,                              # connect / command timeouts (both clients)
    asyncpg.PostgresConnectionError,           # SQLSTATE class 08
    asyncpg.CannotConnectNowError,             # server starting or shutting down
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,                    # e.g. the connection was closed under us
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
