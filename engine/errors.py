"""Domain errors: a seed ``code``, a message and optionally the offending ``field``; no HTTP."""

from __future__ import annotations


class DomainError(Exception):
    code = "GEN_000"
    default_message = "Domain error"

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        self.message = message or self.default_message
        self.field = field
        super().__init__(self.message)


class NotFound(DomainError):
    code = "GEN_404"
    default_message = "Not found"


class Conflict(DomainError):
    code = "GEN_409"
    default_message = "Conflicts with the current state"


class ValidationFailed(DomainError):
    code = "VAL_001"
    default_message = "Invalid value"
