"""AMI errors: a code and a message (the one error model, ``engine/errors.py``), the same codes
as ARI so an admin reads one table: AST_001 no answer in time (connect, banner, login, ping),
AST_002 login refused, AST_004 nothing that speaks AMI there (refused, closed, no banner) or the
connection was lost, AST_008 Asterisk answered an action with ``Response: Error``.
"""

from __future__ import annotations

from engine.errors import DomainError


class AmiError(DomainError):
    """Base class of every AMI failure."""

    code, default_message = "AST_000", "Asterisk AMI error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message)


class AmiTimeout(AmiError):
    code, default_message = "AST_001", "Asterisk AMI did not answer in time"


class AmiAuthFailed(AmiError):
    code, default_message = "AST_002", "Asterisk rejected the AMI credentials"


class AmiUnavailable(AmiError):
    code, default_message = "AST_004", "Asterisk AMI is unavailable"


class AmiConnectionLost(AmiUnavailable):
    default_message = "the AMI connection was lost"


class AmiActionFailed(AmiError):
    code, default_message = "AST_008", "Asterisk refused the AMI action"
