"""Which part of the center a user may see: the one rule every view applies.

A supervisor with a group sees that group only (calls, statistics, operators); admins, managers
and supervisors without a group see everything. Which calls belong to a group is decided in
storage, once (``storage.calls.call_visible_to_group``).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from api.auth import Forbidden
from engine.roles import Role


def supervised_group(user: Any) -> UUID | None:
    """The group ``user`` is limited to; None: no group limit."""
    if user["role"] == Role.SUPERVISOR and user["group_id"] is not None:
        return UUID(str(user["group_id"]))
    return None


def scoped_group(user: Any, requested: UUID | None) -> str | None:
    """The group whose figures ``user`` asked for and may see: a supervisor with a group gets it
    (another group: 403 AUTH_003); others get what they asked for (None: every group)."""
    own = supervised_group(user)
    if own is not None:
        if requested is not None and requested != own:
            raise Forbidden("Supervisors see their own group's figures only")
        return str(own)
    return str(requested) if requested else None
