"""Write-behind: note the latest state now, write it in batches soon, retry until it lands.

The live path only records what changed (no await, never blocked by a slow or lost server);
``run()`` flushes after a short coalescing pause, and a failed flush keeps everything pending
and is retried with exponential backoff and jitter. Newer states of the same key replace older
ones, so a backlog never grows beyond one entry per call or operator.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter

from engine.model import Call, Operator


class WriteBehind:
    """Base of the Redis and PostgreSQL writers. Subclasses implement ``flush``."""

    retry_on: tuple[type[BaseException], ...] = (OSError,)
    what = "updates"

    def __init__(self, *, interval: float, max_backoff: float, log: logging.Logger) -> None:
        self._calls: dict[str, Call | None] = {}  # None: the call ended (live state drops it)
        self._operators: dict[str, Operator] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._interval = interval
        self._max_backoff = max_backoff
        self._log = log
        self.stats: Counter[str] = Counter()

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
                await self.flush()
                backoff = 0.1
                reraise_lost_cancellation()
            except self.retry_on as exc:
                self.stats["failed_flushes"] += 1
                self._log.warning("writing %d %s failed (%s); kept, retry in %.1fs",
                                  self.pending, self.what, exc, backoff)
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, self._max_backoff)
                self._wake.set()


def reraise_lost_cancellation() -> None:
    """Client libraries have been seen to swallow a CancelledError raised inside a command
    (redis-py); a background flusher must still stop when its task was cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
