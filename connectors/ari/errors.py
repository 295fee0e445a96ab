"""ARI domain errors.

They carry a seed error ``code`` and a message, never an HTTP status: ``api/errors.py`` decides
how each one is shown to API clients.

Codes: AST_001 timeout, AST_002 authentication, AST_003 bad configuration or bad request,
AST_004 Asterisk unavailable, AST_005 channel not found, AST_006 channel conflict (the
operation does not fit the channel's current situation, e.g. "Channel not in Stasis
application", or a duplicate channel id on originate).
"""

from __future__ import annotations


class AriError(Exception):
    """Base class of every ARI failure."""

    code = "AST_000"
    default_message = "Asterisk ARI error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class AriTimeout(AriError):
    code = "AST_001"
    default_message = "Asterisk did not answer in time"


class AriAuthFailed(AriError):
    code = "AST_002"
    default_message = "Asterisk rejected the ARI credentials"


class AriBadConfig(AriError):
    code = "AST_003"
    default_message = "ARI connection settings are invalid"


class AriBadRequest(AriError):
    code = "AST_003"
    default_message = "Asterisk rejected the request parameters"


class AriUnavailable(AriError):
    code = "AST_004"
    default_message = "Asterisk is unavailable"


class ChannelNotFound(AriError):
    code = "AST_005"
    default_message = "Channel not found"


class ChannelConflict(AriError):
    code = "AST_006"
    default_message = "Channel is not in a state that allows this operation"
