"""Queues the PBX names get a row in ``queues`` by themselves, so they are listed (and their
calls linked) without an admin typing them in.

The runner tells the catalog of every queue snapshot it publishes (``seen``); the first time a
name shows up, a row is added in the background (name = asterisk_name = the PBX's name, the
threshold the PBX gave, else the default), so the engine loop never waits on PostgreSQL. A
queue an admin already made, under that name or that asterisk_name, is left as it is. A failed
insert is logged and tried again on the queue's next change.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from engine.model import Queue

log = logging.getLogger("switchboard.queues")

AddQueue = Callable[[str, int], Awaitable[object]]  # (PBX name, threshold) -> row | None


class QueueCatalog:
    def __init__(self, add: AddQueue) -> None:
        self._add = add
        self._known: set[str] = set()   # added, found there, or being added now
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats: Counter[str] = Counter()

    def seen(self, queue: Queue) -> None:
        """A snapshot the engine published: add its queue once."""
        if queue.name in self._known:
            return
        self._known.add(queue.name)
        task = asyncio.create_task(self._insert(queue.name, queue.service_level_seconds),
                                   name=f"queue-catalog:{queue.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self) -> None:
        """Wait for the inserts under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.flush()

    async def _insert(self, name: str, service_level: int) -> None:
        try:
            created = await self._add(name, service_level)
        except Exception:
            self._known.discard(name)   # the next change of the queue tries again
            self.stats["failed"] += 1
            log.exception("could not add the PBX queue %r", name)
            return
        if created is not None:
            self.stats["added"] += 1
            log.info("queue %r named by the PBX added to the queue list", name)
