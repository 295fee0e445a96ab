"""The engine's ports: what the runner needs from the outside world."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from engine.effects import Effect
from engine.model import Call, Operator


class StateStore(Protocol):
    """Live state (Redis): active calls and operator statuses."""

    async def save_call(self, call: Call) -> None: ...
    async def remove_call(self, call_id: str) -> None: ...
    async def save_operator(self, operator: Operator) -> None: ...
    async def active_calls(self) -> list[Call]: ...
    async def operators(self) -> list[Operator]: ...


class RecordSink(Protocol):
    """Durable call records (PostgreSQL).

    ``write`` must not lose a record: it queues and retries.
    """

    async def write(self, call: Call) -> None: ...
    async def write_operator(self, operator: Operator) -> None: ...


class Publisher(Protocol):
    """Fan-out to dashboards. Must never block on a slow subscriber."""

    def publish(self, effects: Sequence[Effect]) -> None: ...
