"""Mango's request signature and the typed delivery it protects (pure, no I/O).

Every webhook Mango posts, and every command we post to Mango, is a form with three fields:
``vpbx_api_key``, ``sign`` and ``json``, where ``sign = sha256_hex(api_key + json + api_salt)``
over the exact ``json`` text (never re-serialised: one changed space breaks the signature).

``parse_delivery`` checks a webhook in this order: path, fields present, key, signature, and
only then parses the JSON, so nothing from an unsigned body is ever interpreted. Its errors are
domain errors (no HTTP): the route maps ``WrongKey``/``WrongSign`` to 403 and the rest to 400.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import orjson

FIELDS = ("vpbx_api_key", "sign", "json")


def sign(api_key: str, json_text: str, api_salt: str) -> str:
    """Mango's signature: lowercase sha256 hex of ``api_key + json_text + api_salt``."""
    return hashlib.sha256((api_key + json_text + api_salt).encode("utf-8")).hexdigest()


def verify(api_key: str, json_text: str, api_salt: str, signature: str) -> bool:
    """Whether ``signature`` signs ``json_text``; constant time, hex case ignored."""
    expected = sign(api_key, json_text, api_salt).encode("ascii")
    return hmac.compare_digest(expected, signature.strip().lower().encode("utf-8"))


def signed_form(api_key: str, api_salt: str, payload: Mapping[str, object]) -> dict[str, str]:
    """The three form fields for posting ``payload`` (compact JSON) signed, as Mango does."""
    json_text = orjson.dumps(payload).decode("utf-8")
    return {"vpbx_api_key": api_key, "sign": sign(api_key, json_text, api_salt), "json": json_text}


class DeliveryKind(StrEnum):
    """What Mango posted, from the path it appended to our base URL."""

    CALL = "events/call"
    SUMMARY = "events/summary"
    RECORDING = "events/recording"
    DTMF = "events/dtmf"
    SMS = "events/sms"
    RESULT = "result"          # result/<command>: the outcome of a command we sent
    PING = "ping"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One verified webhook: its kind, the JSON text as signed, and that JSON parsed.

    ``data`` is the raw Mango object; it stays inside ``connectors/mango`` (``events`` turns it
    into typed events). ``json_text`` is what a durable queue should keep: it re-verifies.
    """

    kind: DeliveryKind
    json_text: str
    data: dict[str, object]
    command: str | None = None   # for RESULT: the command path after ``result/``


class DeliveryError(Exception):
    """A webhook that must not be processed; ``reason`` is a short counter name."""

    reason = "invalid"


class UnknownPath(DeliveryError):
    reason = "unknown_path"

    def __init__(self, path: str) -> None:
        super().__init__(f"not a Mango webhook path: {path!r}")
        self.path = path


class MissingField(DeliveryError):
    reason = "missing_field"

    def __init__(self, field: str) -> None:
        super().__init__(f"form field {field!r} is missing or empty")
        self.field = field


class WrongKey(DeliveryError):
    reason = "wrong_key"

    def __init__(self) -> None:
        super().__init__("vpbx_api_key is not ours")


class WrongSign(DeliveryError):
    reason = "wrong_sign"

    def __init__(self) -> None:
        super().__init__("sign does not match the json")


class BadJson(DeliveryError):
    reason = "bad_json"

    def __init__(self, detail: str) -> None:
        super().__init__(f"json field is not a JSON object: {detail}")


_PLAIN_KINDS = {kind.value: kind for kind in DeliveryKind if kind is not DeliveryKind.RESULT}


def kind_of_path(path: str) -> tuple[DeliveryKind, str | None]:
    """``events/call`` -> (CALL, None); ``result/callback`` -> (RESULT, "callback").

    ``path`` is what follows our base URL; leading and trailing slashes are ignored.
    """
    tail = path.strip("/")
    kind = _PLAIN_KINDS.get(tail)
    if kind is not None:
        return kind, None
    prefix, _, command = tail.partition("/")
    if prefix == "result" and command:
        return DeliveryKind.RESULT, command
    raise UnknownPath(path)


def parse_delivery(
    path: str, form: Mapping[str, str], *, api_key: str, api_salt: str
) -> Delivery:
    """A verified ``Delivery`` from the path tail and the form fields, or a ``DeliveryError``."""
    kind, command = kind_of_path(path)
    for field in FIELDS:
        if not form.get(field):
            raise MissingField(field)
    key, signature, json_text = form["vpbx_api_key"], form["sign"], form["json"]
    if not hmac.compare_digest(key.encode("utf-8"), api_key.encode("utf-8")):
        raise WrongKey()
    if not verify(api_key, json_text, api_salt, signature):
        raise WrongSign()
    try:
        data = orjson.loads(json_text)
    except orjson.JSONDecodeError as exc:
        raise BadJson(str(exc)) from None
    if not isinstance(data, dict):
        raise BadJson(f"a JSON {type(data).__name__}")
    return Delivery(kind=kind, json_text=json_text, data=data, command=command)
