"""Long-running tasks that never die silently: a failure is logged with its traceback, counted
and the task restarted after a backoff; a task that returns when it should run forever is
restarted too. Stopping cancels every task and waits for it."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("switchboard.tasks")

TaskFactory = Callable[[], Coroutine[Any, Any, None]]


class Supervisor:
    """Runs named forever-tasks. ``stats["<name>:failed"]`` counts exceptions,
    ``stats["<name>:ended"]`` unexpected returns, ``stats["<name>:restarts"]`` restarts."""

    def __init__(self, *, initial_backoff: float = 0.1, max_backoff: float = 10.0,
                 stable_after: float = 60.0) -> None:
        self._initial = initial_backoff
        self._max = max_backoff
        self._stable_after = stable_after  # ran this long: the next failure backs off afresh
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.stats: Counter[str] = Counter()

    def start(self, name: str, factory: TaskFactory) -> None:
        """Run ``factory()`` as task ``name``, again after each failure or return."""
        self._tasks[name] = asyncio.create_task(self._keep(name, factory), name=name)

    @property
    def names(self) -> list[str]:
        return list(self._tasks)

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()

    async def _keep(self, name: str, factory: TaskFactory) -> None:
        loop = asyncio.get_running_loop()
        backoff = self._initial
        while True:
            started = loop.time()
            try:
                await factory()
            except Exception:
                self.stats[f"{name}:failed"] += 1
                log.exception("task %s failed; restarting in %.1fs", name, backoff)
            else:
                self.stats[f"{name}:ended"] += 1
                log.error("task %s ended unexpectedly; restarting in %.1fs", name, backoff)
            if loop.time() - started >= self._stable_after:
                backoff = self._initial
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, self._max)
            self.stats[f"{name}:restarts"] += 1
