"""Text from a PBX is untrusted (a caller ID is whatever the far end sends): clean it once, at
the normalizer boundary, so nothing downstream (PostgreSQL refuses NUL, dashboards, CSV) ever
sees control characters or megabyte strings.

Every control character (Unicode category Cc: NUL, C0, DEL, C1) is removed; the text is then cut
to the limit of its kind. The limits are far above anything a real PBX sends:
"""

from __future__ import annotations

import re
from collections import Counter

LIMITS: dict[str, int] = {
    "number": 64,         # caller/connected numbers, dialled extensions
    "name": 256,          # caller names
    "id": 256,            # channel, bridge and device ids and names
    "text": 256,          # everything else (states, contexts, cause texts, dial strings)
}

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean_text(value: str, kind: str = "text") -> str:
    """``value`` without control characters, cut to ``LIMITS[kind]`` characters."""
    limit = LIMITS[kind]
    if len(value) <= limit and not _CONTROL.search(value):
        return value  # the common case: one regex scan, no copy
    return _CONTROL.sub("", value)[:limit]


class Cleaner:
    """``clean_text`` that counts what it changed: ``stats["cleaned:<kind>"]``."""

    def __init__(self) -> None:
        self.stats: Counter[str] = Counter()

    def __call__(self, value: object, kind: str = "text") -> str:
        """Any value -> clean text; a non-string is "" (an optional field absent or mistyped)."""
        if not isinstance(value, str):
            return ""
        cleaned = clean_text(value, kind)
        if cleaned is not value:
            self.stats[f"cleaned:{kind}"] += 1
        return cleaned
