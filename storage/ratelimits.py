"""Rate-limit counters in Redis: fixed-window request counters and per-username failed-login
backoff. Each operation is one Lua script (atomic on Redis 6.2+/7 and Valkey), so limits hold
across instances and under concurrency. The numbers (limits, delays) are the caller's policy
(``api/ratelimit.py``). Redis failures raise ``StorageUnavailable``.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from engine.errors import StorageUnavailable
from storage import keys
from storage.redis_client import REDIS_ERRORS

# KEYS[1] counter; ARGV[1] ttl. Returns the count after this request.
_INCR = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""

# Login backoff. Hash {failures, next_ms}. ARGV: now_ms, free failures, base delay ms,
# max delay ms, window s. delay(f) = min(base * 2^(f - free), max) once f >= free.
_DELAY = """
local function delay(failures)
  return math.floor(math.min(tonumber(ARGV[3]) * 2 ^ (failures - tonumber(ARGV[2])),
                             tonumber(ARGV[4])))
end
"""
# An attempt: refused (returns ms to wait) before next_ms; past the free failures an allowed
# attempt reserves the next slot at once, so parallel guesses from many addresses get one try.
_RESERVE = _DELAY + """
local now = tonumber(ARGV[1])
local next_ms = tonumber(redis.call('HGET', KEYS[1], 'next_ms') or '0')
if now < next_ms then return next_ms - now end
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
if failures >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'next_ms', now + delay(failures))
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end
return 0
"""
# A failed attempt: count it; past the free failures the next try waits delay(failures).
_FAIL = _DELAY + """
local now = tonumber(ARGV[1])
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures >= tonumber(ARGV[2]) then
  local next_ms = tonumber(redis.call('HGET', KEYS[1], 'next_ms') or '0')
  redis.call('HSET', KEYS[1], 'next_ms', math.max(next_ms, now + delay(failures)))
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return failures
"""


@dataclass(frozen=True, slots=True)
class Backoff:
    free_failures: int   # failures allowed before any delay
    base_ms: int         # the first delay; it doubles with every further failure
    max_ms: int          # the cap: nobody is locked out longer than this
    window_s: int        # the failures are forgotten this long after the last one

    def args(self, now_ms: int) -> tuple[int, int, int, int, int]:
        return (now_ms, self.free_failures, self.base_ms, self.max_ms, self.window_s)


class RateCounters:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._incr = redis.register_script(_INCR)
        self._reserve = redis.register_script(_RESERVE)
        self._fail = redis.register_script(_FAIL)

    async def hit(self, bucket: str, who: str, window: int, ttl: int) -> int:
        """Count one request of ``who`` in ``bucket``'s window; the count so far."""
        key = keys.rate_limit(bucket, who, window)
        try:
            return int(await self._incr(keys=[key], args=[ttl]))
        except REDIS_ERRORS as exc:
            raise StorageUnavailable("Redis is unavailable") from exc

    async def reserve_login(self, username: str, now_ms: int, backoff: Backoff) -> int:
        """0: ``username`` may try a password now; else the milliseconds to wait."""
        try:
            return int(await self._reserve(keys=[keys.login_failures(username)],
                                           args=list(backoff.args(now_ms))))
        except REDIS_ERRORS as exc:
            raise StorageUnavailable("Redis is unavailable") from exc

    async def login_failed(self, username: str, now_ms: int, backoff: Backoff) -> int:
        """Count a wrong password for ``username``; the failures so far."""
        try:
            return int(await self._fail(keys=[keys.login_failures(username)],
                                        args=list(backoff.args(now_ms))))
        except REDIS_ERRORS as exc:
            raise StorageUnavailable("Redis is unavailable") from exc

    async def login_succeeded(self, username: str) -> None:
        try:
            await self._redis.delete(keys.login_failures(username))
        except REDIS_ERRORS as exc:
            raise StorageUnavailable("Redis is unavailable") from exc
