"""ARI errors: a code and a message (the one error model, ``engine/errors.py``), never an HTTP
status. AST_001 timeout, AST_002 authentication, AST_003 bad configuration, AST_004 Asterisk
unavailable, AST_005 channel not found, AST_006 channel conflict (the operation does not fit the
channel's current situation, e.g. "Channel not in Stasis application", or a duplicate channel id
on originate), AST_007 Asterisk refused the request's parameters, AST_008 Asterisk could not do
it (HTTP 500 with its own reason, e.g. "Allocation failed" for an endpoint it cannot dial).
"""

from __future__ import annotations

from engine.errors import DomainError


class AriError(DomainError):
    """Base class of every ARI failure."""

    code, default_message = "AST_000", "Asterisk ARI error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message)


class AriTimeout(AriError):
    code, default_message = "AST_001", "Asterisk did not answer in time"


class AriAuthFailed(AriError):
    code, default_message = "AST_002", "Asterisk rejected the ARI credentials"


class AriBadConfig(AriError):
    code, default_message = "AST_003", "ARI connection settings are invalid"


class AriBadRequest(AriError):
    code, default_message = "AST_007", "Asterisk rejected the request parameters"


class AriUnavailable(AriError):
    code, default_message = "AST_004", "Asterisk is unavailable"


class ChannelNotFound(AriError):
    code, default_message = "AST_005", "Channel not found"


class ChannelConflict(AriError):
    code, default_message = "AST_006", "Channel is not in a state that allows this operation"


class AriFailed(AriError):
    code, default_message = "AST_008", "Asterisk could not carry out the request"
