"""Commands to Mango's VPBX API, sans I/O: signed requests out, typed answers in.

A client posts ``CommandRequest.form`` to ``{base}/{CommandRequest.path}`` (``base`` is
``https://app.mango-office.ru/vpbx`` in production, a local fake in tests) and hands the HTTP
status and body to ``read_answer``. Mango answers an accepted command at once and posts its
outcome later to our ``{webhook}/result/<command>`` (``parse_result``). A refusal is HTTP 420
with ``{"code": N}``; ``RefusalKind`` says what it means, so callers map it to their own errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import orjson

from connectors.mango.events import as_int, as_str
from connectors.mango.signing import Delivery, DeliveryKind, signed_form

HANGUP = "commands/call/hangup"
CALLBACK = "commands/callback"

# Result codes (MANGO.md; 3103/3104 as named in Mango's API document).
OK = 1000
BAD_SIGN = 3102
MISSING_PARAMETER = 3103
BAD_FORMAT = 3104
BAD_KEY = 3105
NOT_FOUND = 3300          # 33xx: the extension, call or other object does not exist
CALL_ALREADY_ENDED = 4101
REFUSED_STATUS = 420      # Mango's HTTP status for a refused command


@dataclass(frozen=True, slots=True)
class CommandRequest:
    path: str                 # after the API base: "commands/call/hangup"
    form: dict[str, str]      # vpbx_api_key, sign, json
    command_id: str           # echoed in the result Mango posts back


def hangup(call_id: str, command_id: str, *, api_key: str, api_salt: str) -> CommandRequest:
    """Hang up one Mango leg (``call_id`` from ``events/call``; ``Call.channel_ids``)."""
    payload = {"command_id": command_id, "call_id": call_id}
    return CommandRequest(HANGUP, signed_form(api_key, api_salt, payload), command_id)


def callback(
    extension: str,
    to_number: str,
    command_id: str,
    *,
    api_key: str,
    api_salt: str,
    line_number: str | None = None,
) -> CommandRequest:
    """Ring the operator's ``extension`` first, then connect them to ``to_number``."""
    payload: dict[str, object] = {"command_id": command_id, "from": {"extension": extension},
                                  "to_number": to_number}
    if line_number is not None:
        payload["line_number"] = line_number
    return CommandRequest(CALLBACK, signed_form(api_key, api_salt, payload), command_id)


class RefusalKind(StrEnum):
    BAD_SIGN = "bad_sign"          # our salt is wrong (configuration)
    BAD_KEY = "bad_key"            # our key is wrong (configuration)
    BAD_REQUEST = "bad_request"    # 31xx: a parameter missing or malformed (our bug)
    NOT_FOUND = "not_found"        # 33xx: no such extension or call
    ALREADY_ENDED = "already_ended"
    UNAVAILABLE = "unavailable"    # no usable answer: 5xx, not JSON, ...
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class CommandAccepted:
    result: int = OK


@dataclass(frozen=True, slots=True)
class CommandRefused:
    code: int | None
    kind: RefusalKind


CommandAnswer = CommandAccepted | CommandRefused


def refusal_kind(code: int) -> RefusalKind:
    if code == BAD_SIGN:
        return RefusalKind.BAD_SIGN
    if code == BAD_KEY:
        return RefusalKind.BAD_KEY
    if code == CALL_ALREADY_ENDED:
        return RefusalKind.ALREADY_ENDED
    if 3300 <= code < 3400:
        return RefusalKind.NOT_FOUND
    if 3100 <= code < 3200:
        return RefusalKind.BAD_REQUEST
    return RefusalKind.OTHER


def read_answer(status: int, body: bytes) -> CommandAnswer:
    """What Mango's synchronous answer to a command says."""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    fields: Mapping[str, object] = data if isinstance(data, dict) else {}
    if status == 200:
        result = as_int(fields.get("result"))
        if result is None or result == OK:
            return CommandAccepted()
        return CommandRefused(result, refusal_kind(result))
    code = as_int(fields.get("code"))
    if status == REFUSED_STATUS and code is not None:
        return CommandRefused(code, refusal_kind(code))
    return CommandRefused(code, RefusalKind.UNAVAILABLE)


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The outcome Mango posts to ``result/<command>`` after accepting a command."""

    command: str
    command_id: str
    result: int

    @property
    def ok(self) -> bool:
        return self.result == OK


def parse_result(delivery: Delivery) -> CommandResult | None:
    if delivery.kind is not DeliveryKind.RESULT or delivery.command is None:
        return None
    command_id = as_str(delivery.data.get("command_id"))
    result = as_int(delivery.data.get("result"))
    if command_id is None or result is None:
        return None
    return CommandResult(delivery.command, command_id, result)
