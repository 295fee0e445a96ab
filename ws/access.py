"""Who may see which call, operator and event. Pure.

* ``admin``, ``manager``: everything.
* ``supervisor`` with a group: operators of that group, calls whose ``group_ids`` contain it
  (a call waiting in a queue that has not rung any operator of the group yet is not shown).
* ``supervisor`` without a group: everything (a supervisor over the whole floor).
* ``operator``: their own status, and calls that rang or reached them (``offered_operator_ids``),
  plus transfers from or to them.
* any other role, or an operator user without an operator record: nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.effects import CallTransferred, Effect, OperatorEffect, QueueUpdated
from engine.model import Call, Operator, Queue
from engine.roles import Role


@dataclass(frozen=True, slots=True)
class Viewer:
    """The user behind a WebSocket, reduced to what visibility needs."""

    user_id: str
    role: Role
    group_id: str | None = None
    operator_id: str | None = None  # the user's operator record (role "operator")

    @property
    def sees_everything(self) -> bool:
        return self.role in (Role.ADMIN, Role.MANAGER) or (
            self.role == Role.SUPERVISOR and self.group_id is None)

    @property
    def scope(self) -> tuple[str, str | None, str | None] | None:
        """All that visibility depends on (``None``: everything): equal scopes see the same."""
        if self.sees_everything:
            return None
        return (self.role, self.group_id, self.operator_id)


def can_see_call(viewer: Viewer, call: Call) -> bool:
    if viewer.sees_everything:
        return True
    if viewer.role == Role.SUPERVISOR:
        return viewer.group_id in call.group_ids
    if viewer.role == Role.OPERATOR and viewer.operator_id is not None:
        return viewer.operator_id in call.offered_operator_ids
    return False


def can_see_operator(viewer: Viewer, op: Operator) -> bool:
    if viewer.sees_everything:
        return True
    if viewer.role == Role.SUPERVISOR:
        return op.group_id == viewer.group_id
    if viewer.role == Role.OPERATOR and viewer.operator_id is not None:
        return op.id == viewer.operator_id
    return False


def can_see_queue(viewer: Viewer, queue: Queue) -> bool:
    """Like calls: a supervisor sees the queues their group works in, an operator their own."""
    if viewer.sees_everything:
        return True
    if viewer.role == Role.SUPERVISOR:
        return viewer.group_id is not None and any(
            m.group_id == viewer.group_id for m in queue.members)
    if viewer.role == Role.OPERATOR and viewer.operator_id is not None:
        return any(m.operator_id == viewer.operator_id for m in queue.members)
    return False


def can_see(viewer: Viewer, effect: Effect) -> bool:
    """Whether the message made from ``effect`` goes to ``viewer``."""
    if isinstance(effect, OperatorEffect):
        return can_see_operator(viewer, effect.operator)
    if isinstance(effect, QueueUpdated):
        return can_see_queue(viewer, effect.queue)
    if can_see_call(viewer, effect.call):
        return True
    if isinstance(effect, CallTransferred) and viewer.role == Role.OPERATOR:
        return viewer.operator_id is not None and viewer.operator_id in (
            effect.from_operator_id,
            effect.to_operator_id,
        )
    return False
