"""Write-behind: note the latest state now, write it in batches soon, retry until it lands.

The live path only records what changed (no await, never blocked by a slow or lost server);
``run()`` flushes after a short coalescing pause, and a failed flush keeps everything pending
and is retried with exponential backoff and jitter. Newer states of the same key replace older
ones, so a backlog never grows beyond one entry per call or operator.

``run()`` never ends on an error: the expected ones (``retry_on``: the server is away) are logged
in one line, anything else with its traceback (under uvloop a lost Redis surfaced as a
``RuntimeError`` and used to end the task without a word); both are counted and retried.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter

from engine.model import Call, Operator

SHUTDOWN_FLUSH_SECONDS = 5.0  # how long a stop may wait for queued writes to land


class WriteBehind:
    """Base of the Redis and PostgreSQL writers. Subclasses implement ``flush``."""

    retry_on: tuple[type[BaseException], ...] = (OSError,)
    what = "updates"
    # A flush that takes longer is abandoned and retried: a server that vanished without a
    # reset leaves a silent connection that would otherwise be waited on for many minutes.
    flush_timeout: float | None = None

    def __init__(self, *, interval: float, max_backoff: float, log: logging.Logger) -> None:
        self._calls: dict[str, Call | None] = {}  # None: the call ended (live state drops it)
        self._operators: dict[str, Operator] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._interval = interval
        self._max_backoff = max_backoff
        self._log = log
        self.stats: Counter[str] = Counter()
        self.healthy = True  # False from a failed flush until one succeeds (for /ready)
        self.last_error: str | None = None

    @property
    def pending(self) -> int:
        return len(self._calls) + len(self._operators)

    def _note_call(self, call_id: str, call: Call | None) -> None:
        self._calls[call_id] = call
        self._wake.set()

    def _note_operator(self, operator: Operator) -> None:
        self._operators[operator.id] = operator
        self._wake.set()

    async def flush(self) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        backoff = 0.1
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._interval)  # let a burst coalesce into one batch
            try:
                async with asyncio.timeout(self.flush_timeout):
                    await self.flush()
                reraise_lost_cancellation()
            except Exception as exc:  # a writer must outlive any failure
                self._failed(exc, backoff)
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, self._max_backoff)
                self._wake.set()
            else:
                backoff = 0.1
                self.healthy = True

    def _failed(self, exc: Exception, backoff: float) -> None:
        self.stats["failed_flushes"] += 1
        self.stats[f"error:{type(exc).__name__}"] += 1
        self.healthy = False
        self.last_error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, self.retry_on):
            self._log.warning("writing %d %s failed (%s); kept, retry in %.1fs",
                              self.pending, self.what, exc, backoff)
        else:
            self.stats["unexpected_errors"] += 1
            self._log.exception("writing %d %s failed unexpectedly; kept, retry in %.1fs",
                                self.pending, self.what, backoff)

    async def drain(self, within: float = SHUTDOWN_FLUSH_SECONDS) -> bool:
        """Stopping: try to write what is queued for at most ``within`` seconds (retrying
        failures); log what could not be written. True when nothing is left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    try:
                        await self.flush()
                        break
                    except Exception as exc:  # logged; retried until the deadline
                        self._failed(exc, 0.2)
                        await asyncio.sleep(0.2)
        except TimeoutError:
            pass
        if self.pending:
            lost = list(self._calls)[:20]
            self._log.error("stopping with %d %s not written after %.1fs (calls: %s%s)",
                            self.pending, self.what, within, ", ".join(lost),
                            ", ..." if len(self._calls) > len(lost) else "")
            return False
        return True


def reraise_lost_cancellation() -> None:
    """Client libraries have been seen to swallow a CancelledError raised inside a command
    (redis-py); a background flusher must still stop when its task was cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
