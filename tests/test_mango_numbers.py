"""Phone numbers to E.164 (connectors/mango/numbers.py)."""

from __future__ import annotations

import pytest

from connectors.mango.numbers import PhoneNumber, normalize_phone


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("79001234567", "+79001234567"),
        ("89001234567", "+79001234567"),
        ("+79001234567", "+79001234567"),
        ("8 (900) 123-45-67", "+79001234567"),
        ("+7 (900) 123 45 67", "+79001234567"),
        ("7-900-123-45-67", "+79001234567"),
        ("9001234567", "+79001234567"),           # 10-digit mobile, no prefix
        ("8.900.123.45.67", "+79001234567"),
        (" 84951234567 ", "+74951234567"),         # Moscow landline
        ("74950000000", "+74950000000"),
    ],
)
def test_russian_numbers_become_e164(raw: str, normalized: str) -> None:
    assert normalize_phone(raw) == PhoneNumber(raw=raw, normalized=normalized, is_e164=True)


@pytest.mark.parametrize(
    ("raw", "unchanged"),
    [
        ("101", "101"),                            # internal extension
        ("1001", "1001"),
        ("sip:aaa@mangosip.ru", "sip:aaa@mangosip.ru"),
        ("+380441234567", "+380441234567"),        # another country: not guessed
        ("+89001234567", "+89001234567"),          # "+8" is not Russia's trunk prefix
        ("4951234567", "4951234567"),              # 10 digits not starting with 9
        ("790012345678", "790012345678"),          # too long
        ("7900123456", "7900123456"),              # too short
        ("anonymous", "anonymous"),
        ("", ""),
        (" 101 ", "101"),
    ],
)
def test_other_numbers_are_kept_and_marked(raw: str, unchanged: str) -> None:
    assert normalize_phone(raw) == PhoneNumber(raw=raw, normalized=unchanged, is_e164=False)


def test_forms_of_one_number_are_one_number() -> None:
    forms = ["89001234567", "79001234567", "+79001234567", "8 (900) 123-45-67", "9001234567"]
    assert len({normalize_phone(f).normalized for f in forms}) == 1
