"""Every statistics figure the API reports, defined once (README, section "Figures").

Pure functions over counts: the counts come from the rollup tables (``migrations/002`` and
``005``: overall, per group, per operator), which a trigger keeps up to date as calls end.
Conventions:

- A call is **counted** once it is final (``completed`` or ``missed``), in the UTC hour of its
  ``start_time``; calls still in progress are in the live figures (``/api/dashboard/realtime``).
- **Offered** = counted calls. **Answered** = ``completed``. **Missed** = ``missed``.
- **Wait** of a call = answer − start, or end − start when never answered (``calls.wait_seconds``).
  **Talk** = end − answer (``calls.duration``).
- Service level and average wait count **inbound** calls only (outbound/internal calls have no
  customer waiting in a queue); totals, answered, missed, trends, talk times count every
  direction.
- Periods and hours of day follow the center's time zone (``settings.timezone``; storage stays
  UTC): ``today`` = since local 00:00 today, ``yesterday`` = the previous local calendar day,
  ``week`` = the last 7 local calendar days including today, ``month`` = the last 30. A day is
  23 or 25 hours long when the clocks change. An hour bucket (a UTC hour) is labelled by its
  local start: ``"14:30"`` in a +05:30 zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from storage.stats import Sums

Period = Literal["today", "yesterday", "week", "month"]
PERIOD_DAYS = {"today": 1, "yesterday": 1, "week": 7, "month": 30}
DEFAULT_SL_THRESHOLD = 20  # seconds, when a call has no queue (queues.service_level_threshold)


def local_midnight(day: date, tz: tzinfo) -> datetime:
    """The UTC instant at which ``day`` starts in ``tz``. A midnight the clocks skip (a gap at
    00:00) resolves to the instant of the change, a repeated one to its first occurrence."""
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def period_bounds(period: Period, now: datetime, tz: tzinfo = UTC) -> tuple[datetime, datetime]:
    """The half-open UTC interval ``[start, end)`` of ``period`` in the center's zone ``tz``:
    whole local days, so 23 or 25 hours long over a change of the clocks."""
    today = now.astimezone(tz).date()
    if period == "yesterday":
        return local_midnight(today - timedelta(days=1), tz), local_midnight(today, tz)
    first = today - timedelta(days=PERIOD_DAYS[period] - 1)
    return local_midnight(first, tz), local_midnight(today + timedelta(days=1), tz)


def hour_label(hour: int, minute: int = 0) -> str:
    """A local hour of day as the seed writes it: ``"09:00"``; an hour bucket of a zone that is
    not a whole number of hours from UTC starts at ``"09:30"`` or ``"09:45"``."""
    return f"{hour:02d}:{minute:02d}"


def service_level(answered_within_threshold: int, offered: int) -> float:
    """Percent of offered inbound calls answered within their queue's threshold
    (``queues.service_level_threshold``, default 20 s; a call answered after exactly the
    threshold counts as within). Abandoned calls count as offered and not within.
    One decimal; 0.0 when nothing was offered."""
    if offered <= 0:
        return 0.0
    return round(100.0 * answered_within_threshold / offered, 1)


def average(total: int | float, count: int) -> int:
    """A mean in whole seconds (half away from zero); 0 when there is nothing to average."""
    if count <= 0:
        return 0
    return int(total / count + 0.5)


def efficiency(handled: int, missed: int) -> float:
    """Percent of an operator's calls that they answered: handled ÷ (handled + missed), where
    missed = missed calls that rang the operator without answer (``calls.rung_operator_ids``;
    a missed call counts against every operator it rang). One decimal; 0.0 with no calls."""
    total = handled + missed
    if total <= 0:
        return 0.0
    return round(100.0 * handled / total, 1)


def busiest_hour(calls_by_hour: Mapping[str, int]) -> str | None:
    """The local hour label (``"14:00"``) with the most counted calls over the period (days
    summed per hour of day); the earliest on a tie; None when there were no calls."""
    best: tuple[str, int] | None = None
    for label, calls in sorted(calls_by_hour.items()):
        if calls > 0 and (best is None or calls > best[1]):
            best = (label, calls)
    return best[0] if best else None


@dataclass(slots=True)
class Tally:
    """Sums of counted calls (one rollup row, or many added up)."""

    offered: int = 0
    answered: int = 0
    missed: int = 0
    answered_sl: int = 0
    wait_sum: int = 0
    wait_n: int = 0
    talk_sum: int = 0
    max_wait: int = 0

    @classmethod
    def of(cls, sums: Sums) -> Tally:
        """A mutable copy of stored sums, to add others to."""
        return cls(**{f.name: getattr(sums, f.name) for f in fields(cls)})

    def add(self, other: Tally) -> Tally:
        for f in fields(self):
            if f.name == "max_wait":
                self.max_wait = max(self.max_wait, other.max_wait)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    @classmethod
    def total(cls, tallies: Iterable[Tally]) -> Tally:
        out = cls()
        for t in tallies:
            out.add(t)
        return out

    @property
    def service_level(self) -> float:
        return service_level(self.answered_sl, self.offered)

    @property
    def average_wait(self) -> int:
        """Mean wait over counted calls that have a wait (answered or abandoned)."""
        return average(self.wait_sum, self.wait_n)

    @property
    def average_talk(self) -> int:
        """Mean talk time over answered calls."""
        return average(self.talk_sum, self.answered)
