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
    QueueUpdated,
)
from engine.model import Call
from ws.access import Viewer, can_see, can_see_call
from ws.messages import EVENT_TYPES, iso, to_message

log = logging.getLogger(__name__)

Audience = Callable[[Viewer], bool]
# Events published within this many seconds go to each socket as one write. A short window turns
# the bursts of a busy queue into far fewer writes (measured with `make bench`: p99 ~100 ms with
# a write per loop step, ~60 ms with 5 ms); it is also the least latency a dashboard sees.
BURST_WINDOW = 0.005
CALL_EFFECTS = (CallStarted, CallUpdated, CallAnswered, CallTransferred, CallEnded)
# A busy queue changes with every caller and member: its ``queue_updated`` goes out at most once
# per this many seconds, the newest state winning (a wallboard needs the state, not each step).
QUEUE_UPDATE_INTERVAL = 0.25


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
        "_hub", "_on_overflow", "direct", "overflowed", "queue", "scope", "since_id", "types",
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
        # Set once by the connection (``Hub.write_directly``): writes a burst of messages to the
        # socket in one go if it can without blocking (False when the socket's buffer is full).
        self.direct: Callable[[list[bytes]], bool] | None = None
        self.since_id = hub.last_id  # it receives messages with greater ids only

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

    def put_burst(self, burst: list[bytes]) -> int:
        """Write a burst at once if the socket takes it, else queue it (order kept)."""
        if self.overflowed or not burst:
            return 0
        if self.direct is not None and self.queue.empty() and self.direct(burst):
            return len(burst)
        for n, data in enumerate(burst):
            if not self.put(data):
                return n
        return len(burst)

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
        queue_interval: float = QUEUE_UPDATE_INTERVAL,
    ) -> None:
        self._queue_size = queue_size
        self._queue_interval = queue_interval
        self._queue_sent: dict[str, datetime] = {}        # last queue_updated sent, per queue
        self._queue_held: dict[str, QueueUpdated] = {}    # newest state waiting for its turn
        self._clock = clock
        self._dumps = dumps
        # A tuple rebuilt on (rare) subscribe/unsubscribe: the hot loop iterates it without
        # copying, and callbacks may unsubscribe while it runs.
        self._subs: tuple[Subscription, ...] = ()       # get each message put at once
        self._writers: tuple[Subscription, ...] = ()    # get bursts written once per loop step
        self.last_id = 0
        self.stats = HubStats()
        self._outbox: list[_Outgoing] = []  # messages of this loop step, for the writers
        self._flush_scheduled = False
        self._started: dict[str, Call] = {}  # calls whose call_started went out, as last seen

    @property
    def subscriber_count(self) -> int:
        return len(self._subs) + len(self._writers)

    @property
    def writer_count(self) -> int:
        """Subscribers served by burst writes (``write_directly``)."""
        return len(self._writers)

    def write_directly(self, sub: Subscription, writer: Callable[[list[bytes]], bool]) -> None:
        """From now on ``sub`` gets messages in bursts: all that one loop step published, as
        one socket write (``writer``), instead of one queue put per message. Anything already
        queued is sent first."""
        sub.direct = writer
        sub.since_id = self.last_id  # everything up to here already went to its queue
        if sub in self._subs:
            self._subs = tuple(s for s in self._subs if s is not sub)
            self._writers = (*self._writers, sub)

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
            if isinstance(effect, QueueUpdated):
                self._coalesce(effect, now)
                continue
            if isinstance(effect, CALL_EFFECTS):
                self._announce_to_new_viewers(now, effect)
            self._send(effect, now)

    def _send(self, effect: Effect, now: datetime) -> None:
        try:
            message = to_message(effect, now)
        except Exception:  # a malformed effect must not stop the ones after it
            log.exception("cannot build a message for %r", effect)
            return
        if message is not None:
            type_, data = message
            self._fan_out(now, type_, data, partial(can_see, effect=effect), by_role=True)

    def _coalesce(self, effect: QueueUpdated, now: datetime) -> None:
        """Send a queue's update now if its last one is old enough; else hold the newest and
        send it when the interval is up (one timer per queue, no await)."""
        name = effect.queue.name
        if name in self._queue_held:
            self._queue_held[name] = effect   # its timer is already set
            return
        last = self._queue_sent.get(name)
        wait = 0.0 if last is None else self._queue_interval - (now - last).total_seconds()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None   # nothing could send it later: send it now
        if wait <= 0 or loop is None:
            self._queue_sent[name] = now
            self._send(effect, now)
            return
        self._queue_held[name] = effect
        loop.call_later(wait, self._send_held, name)

    def _send_held(self, name: str) -> None:
        effect = self._queue_held.pop(name, None)
        if effect is not None:
            now = self._clock()
            self._queue_sent[name] = now
            self._send(effect, now)

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
            self._fan_out(now, *message, _NewlyVisible(call, before), by_role=False)

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
        out = _Outgoing(self.last_id, type_, self._dumps(envelope), audience, by_role)
        self.stats.published += 1
        if self._writers:
            self._outbox.append(out)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_later(BURST_WINDOW, self._flush)
        delivered = 0
        for sub in self._subs:
            try:
                if out.wanted_by(sub) and sub.put(out.payload):
                    delivered += 1
            except Exception:  # one bad subscriber never breaks the fan-out
                log.exception("fan-out to %r failed", sub.viewer)
        self.stats.delivered += delivered
        return self.last_id

    def _flush(self) -> None:
        """Hand each writer its burst. Subscribers that see the same messages (same scope and
        filter, subscribed before the burst) share one burst list, so the per-client cost of a
        burst is one visibility lookup and one socket write, whatever its size."""
        self._flush_scheduled = False
        outbox, self._outbox = self._outbox, []
        if not outbox:
            return
        first_id = outbox[0].id
        shareable = not _needs_viewer(outbox)
        shared: dict[object, list[bytes]] = {}
        delivered = 0
        for sub in self._writers:
            try:
                if sub.since_id < first_id and shareable:
                    key = (sub.scope, sub.types)
                    burst = shared.get(key)
                    if burst is None:
                        burst = shared[key] = [o.payload for o in outbox if o.wanted_by(sub)]
                else:  # joined mid-burst, or an audience that looks at the viewer itself
                    burst = [o.payload for o in outbox if o.id > sub.since_id and o.wanted_by(sub)]
                delivered += sub.put_burst(burst)
            except Exception:  # one bad subscriber never breaks the fan-out
                log.exception("writing to %r failed", sub.viewer)
        self.stats.delivered += delivered

    def _overflowed(self, sub: Subscription) -> None:
        self.stats.dropped_clients += 1
        log.warning("subscriber %s overflowed its queue; dropping it", sub.viewer.user_id)
        try:
            sub._notify_overflow()
        except Exception:
            log.exception("on_overflow callback failed for %s", sub.viewer.user_id)

    def _remove(self, sub: Subscription) -> None:
        self._subs = tuple(s for s in self._subs if s is not sub)
        self._writers = tuple(s for s in self._writers if s is not sub)


class _NewlyVisible:
    """Viewers who can see the call now but could not before (depends on the scope only)."""

    scope_only = True

    def __init__(self, now: Call, before: Call) -> None:
        self.now, self.before = now, before

    def __call__(self, viewer: Viewer) -> bool:
        return can_see_call(viewer, self.now) and not can_see_call(viewer, self.before)


class _Outgoing:
    """One published message and who may receive it."""

    __slots__ = ("_seen_by_scope", "audience", "by_role", "id", "payload", "type")

    def __init__(self, id: int, type_: str, payload: bytes, audience: Audience | None,
                 by_role: bool) -> None:
        self.id, self.type, self.payload = id, type_, payload
        self.audience, self.by_role = audience, by_role
        self._seen_by_scope: dict[object, bool] = {}  # role rules: one check per scope

    def wanted_by(self, sub: Subscription) -> bool:
        if sub.overflowed or (sub.types is not None and self.type not in sub.types):
            return False
        if self.audience is None:
            return True
        if not self.by_role:
            return self.audience(sub.viewer)
        if sub.scope is None:  # sees everything
            return True
        seen = self._seen_by_scope.get(sub.scope)
        if seen is None:
            seen = self._seen_by_scope[sub.scope] = self.audience(sub.viewer)
        return seen


def _needs_viewer(outbox: list[_Outgoing]) -> bool:
    """Audiences not by role (``_NewlyVisible``) look at more than the scope: no shared bursts."""
    return any(o.audience is not None and not o.by_role and not getattr(
        o.audience, "scope_only", False) for o in outbox)
