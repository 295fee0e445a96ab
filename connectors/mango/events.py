"""Mango's JSON objects as frozen, typed events, with Mango's mixed types coerced (pure).

Mango's own examples send ``"seq":"1"`` as well as ``"seq":1``, numbers as strings or ints and
epoch timestamps as ints or strings; unknown keys are ignored. A parser returns ``None`` for an
object it cannot use (no ``entry_id``, no ``seq``, an unknown ``call_state``): the caller counts
it, nothing raises.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

from engine.model import Direction

_S = TypeVar("_S", bound=StrEnum)
# summary ``call_direction``
_DIRECTIONS = {0: Direction.INTERNAL, 1: Direction.INBOUND, 2: Direction.OUTBOUND}


class CallState(StrEnum):
    APPEARED = "Appeared"
    CONNECTED = "Connected"
    ON_HOLD = "OnHold"
    DISCONNECTED = "Disconnected"


class Location(StrEnum):
    IVR = "ivr"
    QUEUE = "queue"
    ABONENT = "abonent"      # a person's phone: an operator's, or the outside party's
    OTHER = "other"          # anything newer Mango may send


_LOCATIONS = {location.value: location for location in Location}


@dataclass(frozen=True, slots=True)
class Party:
    """Mango's ``from`` / ``to`` object."""

    extension: str | None = None     # internal extension (an operator's, on our side)
    number: str | None = None        # phone number or SIP address
    line_number: str | None = None   # the company line dialled (``to``)
    acd_group: str | None = None     # the operator group (queue) routing the call (``to``)


@dataclass(frozen=True, slots=True)
class CallEvent:
    """``events/call``: one leg (``call_id``) of one call (``entry_id``) changed state."""

    entry_id: str
    call_id: str
    seq: int
    state: CallState
    location: Location
    ts: datetime | None              # None when Mango sent no usable timestamp
    caller: Party
    callee: Party
    disconnect_reason: int | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    """``events/summary``: Mango's final record of a call (authoritative)."""

    entry_id: str
    direction: Direction | None
    caller: Party
    callee: Party
    line_number: str | None
    create_time: datetime | None
    forward_time: datetime | None    # handed to operators (None: never)
    talk_time: datetime | None       # conversation began (None: nobody answered)
    end_time: datetime | None
    answered: bool
    disconnect_reason: int | None


class RecordingState(StrEnum):
    STARTED = "Started"
    CONTINUED = "Continued"
    COMPLETED = "Completed"


@dataclass(frozen=True, slots=True)
class RecordingEvent:
    """``events/recording``: a recording of one leg; ``Completed`` means it can be fetched."""

    entry_id: str
    call_id: str | None
    recording_id: str
    state: RecordingState
    seq: int | None
    ts: datetime | None
    extension: str | None = None
    completion_code: int | None = None


def as_int(value: object) -> int | None:
    """``1``, ``"1"``, ``1.0``, ``" 1 "`` -> 1; anything else (bools included) -> None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        number = as_float(text)
        return int(number) if number is not None and number.is_integer() else None
    return None


def as_float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def as_str(value: object) -> str | None:
    """A non-empty string: strings stripped, ints (numbers sent as ints) as text."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def as_time(value: object) -> datetime | None:
    """Epoch seconds (int, float or their text) as an aware UTC time; 0 or junk -> None."""
    seconds = as_float(value)
    if seconds is None or seconds <= 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def as_party(value: object) -> Party:
    if not isinstance(value, Mapping):
        return Party()
    return Party(
        extension=as_str(value.get("extension")),
        number=as_str(value.get("number")),
        line_number=as_str(value.get("line_number")),
        acd_group=as_str(value.get("acd_group")),
    )


def _state(value: object, states: type[_S]) -> _S | None:
    """The member of ``states`` named by ``value``, case ignored."""
    text = (as_str(value) or "").lower()
    return next((state for state in states if state.value.lower() == text), None)


def _location(value: object) -> Location:
    return _LOCATIONS.get((as_str(value) or "").lower(), Location.OTHER)


def parse_call_event(data: Mapping[str, object]) -> CallEvent | None:
    entry_id, call_id = as_str(data.get("entry_id")), as_str(data.get("call_id"))
    seq, state = as_int(data.get("seq")), _state(data.get("call_state"), CallState)
    if entry_id is None or call_id is None or seq is None or state is None:
        return None
    return CallEvent(
        entry_id=entry_id,
        call_id=call_id,
        seq=seq,
        state=state,
        location=_location(data.get("location")),
        ts=as_time(data.get("timestamp")),
        caller=as_party(data.get("from")),
        callee=as_party(data.get("to")),
        disconnect_reason=as_int(data.get("disconnect_reason")),
    )


def parse_summary(data: Mapping[str, object]) -> Summary | None:
    entry_id = as_str(data.get("entry_id"))
    if entry_id is None:
        return None
    direction_code = as_int(data.get("call_direction"))
    return Summary(
        entry_id=entry_id,
        direction=_DIRECTIONS.get(direction_code) if direction_code is not None else None,
        caller=as_party(data.get("from")),
        callee=as_party(data.get("to")),
        line_number=as_str(data.get("line_number")),
        create_time=as_time(data.get("create_time")),
        forward_time=as_time(data.get("forward_time")),
        talk_time=as_time(data.get("talk_time")),
        end_time=as_time(data.get("end_time")),
        answered=as_int(data.get("entry_result")) == 1,
        disconnect_reason=as_int(data.get("disconnect_reason")),
    )


def parse_recording(data: Mapping[str, object]) -> RecordingEvent | None:
    entry_id, recording_id = as_str(data.get("entry_id")), as_str(data.get("recording_id"))
    state = _state(data.get("recording_state"), RecordingState)
    if entry_id is None or recording_id is None or state is None:
        return None
    return RecordingEvent(
        entry_id=entry_id,
        call_id=as_str(data.get("call_id")),
        recording_id=recording_id,
        state=state,
        seq=as_int(data.get("seq")),
        ts=as_time(data.get("timestamp")),
        extension=as_str(data.get("extension")),
        completion_code=as_int(data.get("completion_code")),
    )
