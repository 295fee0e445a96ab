"""The one error model: every refusal is a ``DomainError`` with a code, a message and optionally
the offending ``field``. No HTTP here: ``api/errors.py`` holds the one table from code to status
(and a test fails when a code has none)."""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """Base of every error a user can be told about. Subclasses set ``code`` and
    ``default_message``; one situation, one code."""

    code: ClassVar[str] = "GEN_000"
    default_message: ClassVar[str] = "Error"

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        self.message = message or self.default_message
        self.field = field
        super().__init__(self.message)


class RecordNotFound(DomainError):
    code, default_message = "DB_002", "Not found"


class UnknownReference(DomainError):
    """A body names a record (operator, queue, group) that does not exist."""

    code, default_message = "DB_003", "Unknown reference"


class DuplicateRecord(DomainError):
    code, default_message = "DB_004", "Unique constraint violated"


class StorageUnavailable(DomainError):
    code, default_message = "DB_001", "Database is unavailable"


class MalformedRequest(DomainError):
    code, default_message = "REQ_001", "Request body is not valid JSON"


class InvalidInput(DomainError):
    """Input that fails validation outside a body model (query, path): the seed's 422 list."""

    code, default_message = "VAL_001", "Invalid input"

    def __init__(self, items: list[dict[str, Any]]) -> None:
        super().__init__()
        self.items = items
