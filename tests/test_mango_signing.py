"""Mango webhook signatures and delivery parsing (connectors/mango/signing.py)."""

from __future__ import annotations

import hashlib

import pytest

from connectors.mango.signing import (
    BadJson,
    Delivery,
    DeliveryError,
    DeliveryKind,
    MissingField,
    UnknownPath,
    WrongKey,
    WrongSign,
    kind_of_path,
    parse_delivery,
    sign,
    signed_form,
    verify,
)

KEY, SALT = "k3y", "s4lt"
JSON = '{"entry_id":"232wc3e3w3s222","seq":"1"}'


def form(json_text: str = JSON, key: str = KEY, salt: str = SALT) -> dict[str, str]:
    return {"vpbx_api_key": key, "sign": sign(key, json_text, salt), "json": json_text}


def test_sign_is_sha256_hex_of_key_json_salt() -> None:
    expected = hashlib.sha256(f"{KEY}{JSON}{SALT}".encode()).hexdigest()
    assert sign(KEY, JSON, SALT) == expected
    # non-ASCII text (Mango sends Cyrillic names) is signed as UTF-8
    assert sign(KEY, '{"n":"Иван"}', SALT) == hashlib.sha256(
        f'{KEY}{{"n":"Иван"}}{SALT}'.encode()).hexdigest()


@pytest.mark.parametrize(
    ("signature", "ok"),
    [
        (sign(KEY, JSON, SALT), True),
        (sign(KEY, JSON, SALT).upper(), True),           # hex case does not matter
        (sign(KEY, JSON + " ", SALT), False),             # one byte more in the json
        (sign(KEY, JSON, "other"), False),
        ("", False),
        ("подпись", False),                               # non-ASCII garbage: False, no crash
    ],
)
def test_verify(signature: str, ok: bool) -> None:
    assert verify(KEY, JSON, SALT, signature) is ok


def test_signature_covers_the_exact_text_not_the_object() -> None:
    spaced = '{"entry_id": "232wc3e3w3s222", "seq": "1"}'   # same object, other text
    assert not verify(KEY, spaced, SALT, sign(KEY, JSON, SALT))


@pytest.mark.parametrize(
    ("path", "kind", "command"),
    [
        ("events/call", DeliveryKind.CALL, None),
        ("/events/summary", DeliveryKind.SUMMARY, None),
        ("events/recording/", DeliveryKind.RECORDING, None),
        ("events/dtmf", DeliveryKind.DTMF, None),
        ("events/sms", DeliveryKind.SMS, None),
        ("ping", DeliveryKind.PING, None),
        ("result/callback", DeliveryKind.RESULT, "callback"),
        ("result/call/hangup", DeliveryKind.RESULT, "call/hangup"),
    ],
)
def test_kind_of_path(path: str, kind: DeliveryKind, command: str | None) -> None:
    assert kind_of_path(path) == (kind, command)


@pytest.mark.parametrize("path", ["", "events", "events/other", "result", "result/", "../ping"])
def test_unknown_paths(path: str) -> None:
    with pytest.raises(UnknownPath):
        kind_of_path(path)


def test_parse_delivery_keeps_the_signed_text_and_parses_it() -> None:
    delivery = parse_delivery("events/call", form(), api_key=KEY, api_salt=SALT)
    assert delivery == Delivery(DeliveryKind.CALL, JSON,
                                {"entry_id": "232wc3e3w3s222", "seq": "1"})


def test_signed_form_round_trips() -> None:
    payload = {"command_id": "c1", "call_id": "100:500:257"}
    sent = signed_form(KEY, SALT, payload)
    delivery = parse_delivery("result/call/hangup", sent, api_key=KEY, api_salt=SALT)
    assert (delivery.data, delivery.command) == (payload, "call/hangup")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({k: v for k, v in form().items() if k != "sign"}, MissingField),
        ({**form(), "json": ""}, MissingField),
        ({**form(), "vpbx_api_key": "not-ours"}, WrongKey),
        (form(key="not-ours"), WrongKey),
        ({**form(), "sign": sign(KEY, JSON, "wrong salt")}, WrongSign),
        ({**form(), "json": JSON.replace("1", "2")}, WrongSign),   # tampered after signing
        (form(json_text="{not json"), BadJson),
        (form(json_text="[1, 2]"), BadJson),
    ],
)
def test_refused_deliveries(fields: dict[str, str], error: type[DeliveryError]) -> None:
    with pytest.raises(error) as caught:
        parse_delivery("events/call", fields, api_key=KEY, api_salt=SALT)
    assert caught.value.reason == error.reason != DeliveryError.reason


def test_missing_field_names_the_field() -> None:
    with pytest.raises(MissingField) as caught:
        parse_delivery("events/call", {"vpbx_api_key": KEY, "json": JSON},
                       api_key=KEY, api_salt=SALT)
    assert caught.value.field == "sign"


def test_an_unsigned_body_is_never_parsed() -> None:
    """Bad JSON with a wrong sign is a WrongSign: nothing from it is interpreted."""
    with pytest.raises(WrongSign):
        parse_delivery("events/call", {**form(), "json": "{not json"},
                       api_key=KEY, api_salt=SALT)
