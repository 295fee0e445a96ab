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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson

from engine.effects import Effect
from ws.access import Viewer, can_see
from ws.messages import EVENT_TYPES, iso, to_message

log = logging.getLogger(__name__)

Audience = Callable[[Viewer], bool]


@dataclass(slots=True)
class HubStats:
    published: int = 0        # messages numbered and serialized
    delivered: int = 0        # queue puts (one per subscriber per message)
    dropped_clients: int = 0  # subscribers closed because their queue overflowed


class Subscription:
    """One client's view of the hub. Use as a context manager: leaving it always unsubscribes."""

    __slots__ = ("_hub", "_on_overflow", "overflowed", "queue", "sees_all", "types", "viewer")

    def __init__(
        self, hub: Hub, viewer: Viewer, on_overflow: Callable[[], None] | None, maxsize: int
    ) -> None:
        self._hub = hub
        self._on_overflow = on_overflow
        self.viewer = viewer
        self.sees_all = viewer.sees_everything  # fast path in the fan-out loop
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize)
        self.types: frozenset[str] | None = None  # None: every event type
        self.overflowed = False

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
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            self.overflowed = True
            self._hub._overflowed(self)
            return False
        return True

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
            try:
                message = to_message(effect, now)
            except Exception:  # a malformed effect must not stop the ones after it
                log.exception("cannot build a message for %r", effect)
                continue
            if message is not None:
                type_, data = message
                self._fan_out(now, type_, data, partial(can_see, effect=effect), by_role=True)

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
        for sub in self._subs:
            if sub.overflowed or (sub.types is not None and type_ not in sub.types):
                continue
            try:
                if (
                    audience is not None
                    and not (by_role and sub.sees_all)
                    and not audience(sub.viewer)
                ):
                    continue
                if sub.put(payload):
                    delivered += 1
            except Exception:  # one bad subscriber never breaks the fan-out
                log.exception("fan-out to %r failed", sub.viewer)
        self.stats.delivered += delivered
        return self.last_id

    def _overflowed(self, sub: Subscription) -> None:
        self.stats.dropped_clients += 1
        log.warning("subscriber %s overflowed its queue; dropping it", sub.viewer.user_id)
        try:
            sub._notify_overflow()
        except Exception:
            log.exception("on_overflow callback failed for %s", sub.viewer.user_id)

    def _remove(self, sub: Subscription) -> None:
        self._subs = tuple(s for s in self._subs if s is not sub)
