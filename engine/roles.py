"""Who a user is to the call center: the one list of roles (seed 001, User.role)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"            # everything, including users and PBX settings
    MANAGER = "manager"        # every call, operator and statistic; no administration
    SUPERVISOR = "supervisor"  # like a manager, limited to their group when they have one
    OPERATOR = "operator"      # their own calls and status


ANY_USER = tuple(Role)
STAFF = (Role.ADMIN, Role.MANAGER, Role.SUPERVISOR)
