"""Operator operations that change both the stored record and the live engine: one function
each, so a view never stores here and tells the engine there."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from engine.events import OperatorProvisioned, OperatorStatusRequested
from engine.machine.engine import Engine
from engine.model import OperatorStatus
from service.runner import Runner
from storage.users import Users, operator_from_row


async def set_operator_status(users: Users, engine: Engine, runner: Runner, operator: Any,
                              status: OperatorStatus) -> None:
    """Store ``status`` as the operator's manual status and hand it to the engine (which
    publishes ``operator_status_changed``; a call in progress or an unreachable phone still
    wins). ``operator`` is its stored row (``Users.operator_rows``)."""
    operator_id = str(operator["id"])
    await users.set_manual_status(operator_id, status.value)
    if engine.operator(operator_id) is None:
        # Created after the engine started (e.g. by the admin API): enter it in the directory.
        await runner.handle_now(OperatorProvisioned(operator_from_row(operator)))
    await runner.handle_now(OperatorStatusRequested(operator_id, status, datetime.now(UTC)))
