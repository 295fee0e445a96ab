"""Fan-out of published events to WebSocket subscribers. No aiohttp, no awaiting.

``Hub.publish`` is synchronous and never waits for a client: each message is numbered, wrapped in
the envelope ``{"id", "ts", "type", "data"}``, serialized ONCE, and the same ``bytes`` object is
``put_nowait`` into the bounded queue of every subscriber allowed to see it. The per-client
sender (``ws.handler``) does the awaiting.

Overflow policy: a subscriber whose queue is full is marked ``overflowed``, receives nothing more,
and its ``on_overflow`` callback is called once (the handler then closes the socket with 1013).
Other subscribers are not affected. A callback or visibility check that raises is logged and
skipped; the fan-out goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson

from engine.effects import (
    CallAnswered,
    CallEffect,
    CallEnded,
    CallStarted,
    CallTransferred,
    CallUpdated,
    Effect,
)
from engine.model import Call
from ws.access import Viewer, can_see, can_see_call
from ws.messages import EVENT_TYPES, iso, to_message

log = logging.getLogger(__name__)

Audience = Callable[[Viewer], bool]
CALL_EFFECTS = (CallStarted, CallUpdated, CallAnswered, CallTransferred, CallEnded)


@dataclass(slots=True)
class HubStats:
    published: int = 0        # messages numbered and serialized
    delivered: int = 0        # queue puts (one per subscriber per message)
    dropped_clients: int = 0  # subscribers closed because their queue overflowed


class SendQueue:
    """Bounded FIFO with ONE consumer task: sync ``put_nowait`` (raises ``asyncio.QueueFull``),
    ``await get()``. Lighter than ``asyncio.Queue`` (no task accounting, no getter list), which
    counts when one message means a thousand puts."""

    __slots__ = ("_items", "_waiter", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self._items: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.maxsize = maxsize

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: bytes) -> None:
        if len(self._items) >= self.maxsize:
            raise asyncio.QueueFull
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> bytes:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.popleft()

    async def get(self) -> bytes:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()


class Subscription:
    """One client's view of the hub. Use as a context manager: leaving it always unsubscribes."""

    __slots__ = (
        "_hub", "_on_overflow", "batch", "direct", "overflowed", "queue", "scope", "types",
        "viewer",
    )

    def __init__(
        self, hub: Hub, viewer: Viewer, on_overflow: Callable[[], None] | None, maxsize: int
    ) -> None:
        self._hub = hub
        self._on_overflow = on_overflow
        self.viewer = viewer
        self.scope = viewer.scope  # visibility is computed once per scope per message
        self.queue = SendQueue(maxsize)
        self.types: frozenset[str] | None = None  # None: every event type
        self.overflowed = False
        # Set by the connection while nothing is queued: writes messages to the socket at once
        # if it can without blocking (returns False when the socket's buffer is full).
        self.direct: Callable[[list[bytes]], bool] | None = None
        self.batch: list[bytes] = []  # messages of this loop iteration, written in one go

    def set_filter(self, types: Iterable[str] | None) -> None:
        """Deliver only these event types (``None``: all). Unknown names raise ``ValueError``."""
        if types is None:
            self.types = None
            return
        wanted = frozenset(types)
        unknown = wanted.difference(EVENT_TYPES)
        if unknown:
            raise ValueError(f"unknown event types: {sorted(unknown)}")
        self.types = wanted

    def put(self, data: bytes) -> bool:
        """Queue one serialized message; ``False`` if the subscriber is (now) overflowed."""
        if self.overflowed:
            return False
        if self.direct is not None and self.queue.empty():
            if not self.batch:
                self._hub._batched(self)
            self.batch.append(data)
            return True
        return self._enqueue(data)

    def _enqueue(self, data: bytes) -> bool:
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            self.overflowed = True
            self._hub._overflowed(self)
            return False
        return True

    def flush_batch(self) -> None:
        """Write this iteration's messages in one write, or queue them if the socket is busy."""
        batch, self.batch = self.batch, []
        if not batch or self.overflowed:
            return
        if self.direct is not None and self.queue.empty() and self.direct(batch):
            return
        for data in batch:
            if not self._enqueue(data):
                return

    def close(self) -> None:
        self._hub._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _notify_overflow(self) -> None:
        if self._on_overflow is not None:
            self._on_overflow()


class Hub:
    """The ``Publisher`` port for dashboards."""

    def __init__(
        self,
        *,
        queue_size: int = 1000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        dumps: Callable[[Any], bytes] = orjson.dumps,
    ) -> None:
        self._queue_size = queue_size
        self._clock = clock
        self._dumps = dumps
        # A tuple rebuilt on (rare) subscribe/unsubscribe: the hot loop iterates it without
        # copying, and callbacks may unsubscribe while it runs.
        self._subs: tuple[Subscription, ...] = ()
        self.last_id = 0
        self.stats = HubStats()
        self._dirty: list[Subscription] = []
        self._flush_scheduled = False
        self._started: dict[str, Call] = {}  # calls whose call_started went out, as last seen

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def subscribe(
        self,
        viewer: Viewer,
        on_overflow: Callable[[], None] | None = None,
        *,
        maxsize: int | None = None,
    ) -> Subscription:
        """Start receiving messages published from now on (ids > ``last_id``)."""
        sub = Subscription(self, viewer, on_overflow, maxsize or self._queue_size)
        self._subs = (*self._subs, sub)
        return sub

    def publish(self, effects: Sequence[Effect]) -> None:
        """Number, serialize and fan out every effect that has a message shape."""
        for effect in effects:
            now = self._clock()
            if isinstance(effect, CALL_EFFECTS):
                self._announce_to_new_viewers(now, effect)
            try:
                message = to_message(effect, now)
            except Exception:  # a malformed effect must not stop the ones after it
                log.exception("cannot build a message for %r", effect)
                continue
            if message is not None:
                type_, data = message
                self._fan_out(now, type_, data, partial(can_see, effect=effect), by_role=True)

    def _announce_to_new_viewers(self, now: datetime, effect: CallEffect) -> None:
        """A call becomes visible to more viewers as operators are rung (a supervisor's group,
        an operator offered the call): send them its ``call_started`` first, so no dashboard
        gets an answer or an end for a call it never saw start."""
        call = effect.call
        if isinstance(effect, CallStarted):
            self._started[call.id] = call
            return
        before = self._started.get(call.id)
        if before is None:
            return  # not published yet: its CallStarted will reach everyone who can see it
        if isinstance(effect, CallEnded):
            del self._started[call.id]
        else:
            self._started[call.id] = call
        if (before.group_ids, before.offered_operator_ids) == (
            call.group_ids, call.offered_operator_ids
        ):
            return
        message = to_message(CallStarted(call), now)
        if message is not None:
            self._fan_out(
                now, *message,
                lambda v: can_see_call(v, call) and not can_see_call(v, before), by_role=False,
            )

    def publish_raw(
        self, type_: str, data: dict[str, Any], audience: Audience | None = None
    ) -> int:
        """Publish a ready message to the viewers ``audience`` accepts (all if ``None``).

        Returns its id. Role rules do not apply here: ``audience`` alone decides.
        """
        return self._fan_out(self._clock(), type_, data, audience, by_role=False)

    def _fan_out(
        self,
        now: datetime,
        type_: str,
        data: dict[str, Any],
        audience: Audience | None,
        *,
        by_role: bool,
    ) -> int:
        self.last_id += 1
        envelope = {"id": self.last_id, "ts": iso(now), "type": type_, "data": data}
        payload = self._dumps(envelope)
        self.stats.published += 1
        delivered = 0
        seen_by_scope: dict[object, bool] = {}  # role rules: one check per distinct scope
        for sub in self._subs:
            if sub.overflowed or (sub.types is not None and type_ not in sub.types):
                continue
            try:
                if audience is not None and (sub.scope is not None or not by_role):
                    if not by_role:
                        seen = audience(sub.viewer)
                    else:
                        cached = seen_by_scope.get(sub.scope)
                        if cached is None:
                            cached = seen_by_scope[sub.scope] = audience(sub.viewer)
                        seen = cached
                    if not seen:
                        continue
                if sub.put(payload):
                    delivered += 1
            except Exception:  # one bad subscriber never breaks the fan-out
                log.exception("fan-out to %r failed", sub.viewer)
        self.stats.delivered += delivered
        return self.last_id

    def _batched(self, sub: Subscription) -> None:
        """A burst of events becomes one socket write per client, at the end of this step."""
        self._dirty.append(sub)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        for sub in dirty:
            try:
                sub.flush_batch()
            except Exception:  # one bad subscriber never breaks the fan-out
                log.exception("writing to %r failed", sub.viewer)

    def _overflowed(self, sub: Subscription) -> None:
        self.stats.dropped_clients += 1
        log.warning("subscriber %s overflowed its queue; dropping it", sub.viewer.user_id)
        try:
            sub._notify_overflow()
        except Exception:
            log.exception("on_overflow callback failed for %s", sub.viewer.user_id)

    def _remove(self, sub: Subscription) -> None:
        self._subs = tuple(s for s in self._subs if s is not sub)
