"""The bench's ARI traffic: a schedule of re-keyed trace replays, its calibration, and the pump.

* ``build_schedule`` interleaves ``concurrency`` replays of the shared trace (each re-keyed into
  a distinct call with ``replay_trace(path, rekey=f"c{n}")``) round-robin, so the frame rate is
  steady; every frame gets ``bench_seq`` (its index, first key) and a fresh ARI timestamp.
* ``calibrate`` runs the same frames through the pure engine (same normalizer, same operator
  directory as the served process): which frame causes which dashboard message. The served
  engine applies frames in order, so message ``(type, entity, n-th)`` is caused by that frame.
* ``BenchAsterisk`` is the product's fake Asterisk that stamps ``time.monotonic()`` right before
  each frame goes to ``ws.send_str``; ``pump`` emits the schedule at a fixed rate.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Container, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.ari.normalize import AriNormalizer, MalformedFrame
from connectors.fakes.ari_server import FakeAsterisk, ari_timestamp, replay_trace
from engine.events import Resynced
from engine.machine.engine import Engine
from engine.model import Operator
from ws.messages import to_message

TRACE = Path(__file__).resolve().parent.parent / "tests" / "data" / "inbound_answered.ari.jsonl"

Json = dict[str, Any]
MessageKey = tuple[str, str, int]  # (type, call_id | operator_id, occurrence)


def trace_length(path: Path = TRACE) -> int:
    return sum(1 for _ in replay_trace(path))


def build_schedule(
    total: int, concurrency: int, rate: float, *, app: str, start: datetime,
    path: Path = TRACE,
) -> list[Json]:
    """``total`` frames: ``concurrency`` calls in flight, one frame each in turn.

    Calls are started in a staggered way (one new slot every ``len(trace) / concurrency`` frames)
    so the calls' phases spread out; a finished call's slot starts the next call at once.
    """
    length = trace_length(path)
    stagger = max(1, length // max(1, concurrency))
    slots: deque[deque[Json]] = deque()
    frames: list[Json] = []
    next_call = 0

    def new_call() -> deque[Json]:
        nonlocal next_call
        call = deque(replay_trace(path, rekey=f"c{next_call}"))
        next_call += 1
        return call

    step = timedelta(seconds=1 / rate)
    while len(frames) < total:
        if len(slots) < concurrency and len(frames) % stagger == 0:
            slots.append(new_call())
        call = slots[0]
        ev = call.popleft()
        if call:
            slots.rotate(-1)
        else:
            slots.popleft()
            slots.append(new_call())
            slots.rotate(-1)  # the new call takes its turn after the others
        k = len(frames)
        ev["application"] = app
        ev["timestamp"] = ari_timestamp(start + k * step)
        frames.append({"bench_seq": k, **ev})
    return frames


def calibrate(
    frames: Iterable[Json], operators: Iterable[Operator], resync_at: datetime
) -> tuple[dict[MessageKey, int], Counter[str]]:
    """``(type, entity, n)`` -> index of the frame whose handling publishes that message."""
    engine = Engine(list(operators))
    triggers: dict[MessageKey, int] = {}
    seen: Counter[tuple[str, str]] = Counter()
    types: Counter[str] = Counter()

    def record(effects: list[Any], k: int) -> None:
        for effect in effects:
            message = to_message(effect, resync_at)
            if message is None:
                continue
            type_, data = message
            entity = str(data.get("call_id") or data.get("operator_id"))
            n = seen[(type_, entity)]
            seen[(type_, entity)] += 1
            triggers[(type_, entity, n)] = k
            types[type_] += 1

    record(engine.handle(Resynced((), (), resync_at)), -1)
    normalizer = AriNormalizer()
    for k, frame in enumerate(frames):
        try:
            event = normalizer.event(frame)
        except MalformedFrame:
            continue
        if event is not None:
            record(engine.handle(event), k)
    return triggers, types


class BenchAsterisk(FakeAsterisk):
    """The product's fake Asterisk, stamping each frame's send time (monotonic, this process)."""

    def __init__(self, send_times: list[float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.send_times = send_times
        self.current = -1  # index of the frame being emitted

    async def send_raw(self, text: str) -> None:
        if self.current >= 0:
            self.send_times[self.current] = time.monotonic()
        await super().send_raw(text)


async def pump(
    fake: BenchAsterisk, frames: list[Json], rate: float,
    only: Container[int] | None = None, deadline: float | None = None,
) -> tuple[int, float]:
    """Emit ``frames`` at ``rate`` per second (frame k is due at start + k/rate); frames not in
    ``only`` keep their slot in time but are not sent. Returns (frames sent, seconds taken)."""
    loop = asyncio.get_running_loop()
    mono = time.monotonic
    t0 = mono()
    sent = 0
    for k, frame in enumerate(frames):
        due = t0 + k / rate
        delay = due - mono()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        elif k % 64 == 0:
            await asyncio.sleep(0)  # behind schedule: still let the dashboards read
        if deadline is not None and mono() > deadline:
            break
        if only is not None and k not in only:
            continue
        fake.current = k
        await fake.emit(frame)
        sent += 1
        if len(fake.sent) > 1000:
            fake.sent.clear()  # the fake keeps every frame; the bench does not need them
    fake.current = -1
    del loop
    return sent, mono() - t0
