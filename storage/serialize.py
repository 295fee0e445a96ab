"""Call/Operator <-> JSON for the live state in Redis."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from engine.model import Call, CallStatus, Direction, Operator, OperatorStatus

_CALL_TIMES = ("start_time", "answer_time", "end_time")


def dumps(obj: Call | Operator) -> bytes:
    return orjson.dumps(obj)


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def call_from_json(raw: bytes | str) -> Call:
    d = orjson.loads(raw)
    for key in _CALL_TIMES:
        d[key] = _time(d.get(key))
    d["status"] = CallStatus(d["status"])
    d["direction"] = Direction(d["direction"])
    for key in ("channel_ids", "group_ids", "offered_operator_ids", "rung_operator_ids"):
        d[key] = tuple(d.get(key) or ())
    known = Call.__dataclass_fields__
    return Call(**{k: v for k, v in d.items() if k in known})


def operator_from_json(raw: bytes | str) -> Operator:
    d = orjson.loads(raw)
    d["status"] = OperatorStatus(d["status"])
    if d.get("manual_status"):
        d["manual_status"] = OperatorStatus(d["manual_status"])
    d["last_activity"] = _time(d.get("last_activity"))
    known = Operator.__dataclass_fields__
    return Operator(**{k: v for k, v in d.items() if k in known})
