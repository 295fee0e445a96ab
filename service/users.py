"""User operations that also tell the live engine and end sessions: one function each.

* ``create`` / ``update`` / ``delete`` store the change, bring the engine's operator directory in
  line (``OperatorProvisioned`` / ``OperatorRemoved``) and, when the change takes access away or
  changes it, revoke every token of the user: deactivation, deletion, a new password and a new
  role all close the user's WebSockets on every instance at once and refuse their access and
  refresh tokens (``storage/tokens.py`` "valid after" mark + notice).
* ``watch_announcements`` turns users announced by other processes (``switchboard create-user``
  while the service runs; PostgreSQL NOTIFY, see ``storage/users.py``) into ``OperatorProvisioned``,
  so a CLI-created operator is live at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import DomainError, DuplicateRecord
from engine.events import OperatorProvisioned, OperatorRemoved
from engine.roles import Role
from service.runner import Runner
from storage.tokens import TokenStore
from storage.users import UnknownGroup, UserExists, UserNotFound, Users

log = logging.getLogger("switchboard.users")


class UsernameTaken(DomainError):
    code, default_message = "USER_001", "Username already exists"


class EmailTaken(DomainError):
    code, default_message = "USER_002", "Email already exists"


class ExtensionTaken(DomainError):
    code, default_message = "USER_003", "Extension is already assigned"


def _conflict(exc: UserExists) -> DomainError:
    kinds: dict[str, type[DomainError]] = {
        "username": UsernameTaken, "email": EmailTaken, "extension": ExtensionTaken,
    }
    kind = kinds.get(exc.field, DuplicateRecord)
    return kind(field=exc.field if exc.field in kinds else None)


class UserService:
    def __init__(self, users: Users, runner: Runner, tokens: TokenStore, *,
                 token_lifetime: int, clock: Callable[[], float] = time.time) -> None:
        self.users = users
        self._runner = runner
        self._tokens = tokens
        self._token_lifetime = token_lifetime  # the longest life of any token (access, refresh)
        self._clock = clock

    async def current(self, user_id: str) -> tuple[Any, str | None]:
        """The user and their operator id; ``UserNotFound`` if there is none."""
        found = await self.users.with_operator_id(user_id)
        if found is None:
            raise UserNotFound()
        return found

    async def create(self, *, username: str, email: str, name: str, role: Role,
                     password_hash: str, group_id: str | None = None,
                     extension: str | None = None, is_active: bool = True) -> Any:
        await self._check_group(group_id)
        try:
            row = await self.users.create(
                username=username, email=email, name=name, role=role,
                password_hash=password_hash, group_id=group_id, extension=extension,
            )
        except UserExists as exc:
            raise _conflict(exc) from None
        user_id = str(row["id"])
        if not is_active:
            row = await self.users.update(user_id, {"is_active": False})
        await self.tell_engine(user_id, None)
        return row

    async def update(self, user_id: str, changes: Mapping[str, Any], *,
                     extension: str | None = None) -> Any:
        """``changes``: columns of ``storage.users.UPDATABLE_COLUMNS`` (a new password comes
        hashed, as ``password_hash``)."""
        current, operator_before = await self.current(user_id)
        if "group_id" in changes:
            await self._check_group(changes["group_id"])
        try:
            row = await self.users.update(user_id, changes, extension=extension)
        except UserExists as exc:
            raise _conflict(exc) from None
        await self.tell_engine(user_id, operator_before)
        if ("password_hash" in changes or row["role"] != current["role"]
                or (current["is_active"] and not row["is_active"])):
            await self.revoke_sessions(user_id)
        return row

    async def delete(self, user_id: str) -> None:
        operator_id = await self.users.delete(user_id)
        if operator_id is not None:
            self._runner.submit(OperatorRemoved(operator_id))
        await self.revoke_sessions(user_id)

    async def revoke_sessions(self, user_id: str) -> None:
        """Every token of the user issued until now is dead; their sockets close everywhere."""
        now_ms = int(self._clock() * 1000)
        await self._tokens.revoke_user(user_id, now_ms + 1, self._token_lifetime)

    async def tell_engine(self, user_id: str, operator_before: str | None) -> None:
        """Bring the engine's operator directory in line with the user's stored operator row."""
        operator = await self.users.operator_for_user(user_id)
        if operator is not None:
            self._runner.submit(OperatorProvisioned(operator))
        elif operator_before is not None:
            self._runner.submit(OperatorRemoved(operator_before))

    async def watch_announcements(self, retry_delay: float = 1.0) -> None:
        """Provision users announced by other processes, forever (cancel to stop)."""
        while True:
            try:
                async for user_id in self.users.announcements():
                    await self._provision_announced(user_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database went away: listen again after a pause
                log.warning("user announcements: listener failed; retrying", exc_info=True)
            await asyncio.sleep(retry_delay)

    async def _provision_announced(self, user_id: str) -> None:
        try:
            await self.tell_engine(user_id, None)
        except Exception:  # e.g. not a user id: one bad notice must not stop the listener
            log.warning("user announcement %r not provisioned", user_id[:64], exc_info=True)

    async def _check_group(self, group_id: str | None) -> None:
        if group_id is not None and not await self.users.group_exists(group_id):
            raise UnknownGroup()
