"""Phone numbers to E.164 for Russian numbers, so the forms of one number compare equal (pure).

``8 (900) 123-45-67``, ``79001234567``, ``+7 900 123 45 67`` and the 10-digit ``9001234567``
are one number, ``+79001234567``. Everything else -- short internal extensions, SIP addresses,
other countries' numbers -- is returned unchanged and marked ``is_e164=False``: guessing a
country would merge numbers that are not the same. The raw text is always kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEPARATORS = re.compile(r"[\s\-().]")
_DIGITS = re.compile(r"\+?\d+")


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    raw: str           # as the PBX sent it
    normalized: str    # ``+7XXXXXXXXXX`` when ``is_e164``; else ``raw`` without outer spaces
    is_e164: bool


def normalize_phone(raw: str) -> PhoneNumber:
    """``raw`` in E.164 if it is a Russian number (see the module docstring), else unchanged."""
    stripped = raw.strip()
    compact = _SEPARATORS.sub("", stripped)
    if _DIGITS.fullmatch(compact):
        e164 = _russian_e164(compact)
        if e164 is not None:
            return PhoneNumber(raw=raw, normalized=e164, is_e164=True)
    return PhoneNumber(raw=raw, normalized=stripped, is_e164=False)


def _russian_e164(compact: str) -> str | None:
    plus, digits = compact.startswith("+"), compact.lstrip("+")
    if len(digits) == 11 and digits[0] == "7":
        return "+" + digits
    if not plus and len(digits) == 11 and digits[0] == "8":   # domestic trunk prefix
        return "+7" + digits[1:]
    if not plus and len(digits) == 10 and digits[0] == "9":   # mobile without a prefix
        return "+7" + digits
    return None
