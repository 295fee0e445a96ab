"""In-memory implementations of the ports (real fakes, not mocks): they keep what they got."""

from __future__ import annotations

from collections.abc import Sequence

from engine.effects import Effect
from engine.model import Call, Operator


class MemoryStateStore:
    """StateStore in a dict. ``fail_with`` makes every call raise (to test error handling)."""

    def __init__(self) -> None:
        self.calls: dict[str, Call] = {}
        self.operators_by_id: dict[str, Operator] = {}
        self.removed: list[str] = []
        self.fail_with: Exception | None = None

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    async def save_call(self, call: Call) -> None:
        self._check()
        self.calls[call.id] = call

    async def remove_call(self, call_id: str) -> None:
        self._check()
        self.calls.pop(call_id, None)
        self.removed.append(call_id)

    async def save_operator(self, operator: Operator) -> None:
        self._check()
        self.operators_by_id[operator.id] = operator

    async def active_calls(self) -> list[Call]:
        self._check()
        return list(self.calls.values())

    async def operators(self) -> list[Operator]:
        self._check()
        return list(self.operators_by_id.values())


class MemoryRecordSink:
    """RecordSink keeping every write in order; the latest version per call in ``records``."""

    def __init__(self) -> None:
        self.writes: list[Call] = []
        self.operator_writes: list[Operator] = []
        self.fail_with: Exception | None = None

    @property
    def records(self) -> dict[str, Call]:
        return {call.id: call for call in self.writes}

    async def write(self, call: Call) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.writes.append(call)

    async def write_operator(self, operator: Operator) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.operator_writes.append(operator)


class MemoryPublisher:
    """Publisher recording every batch it was given."""

    def __init__(self) -> None:
        self.batches: list[list[Effect]] = []

    def publish(self, effects: Sequence[Effect]) -> None:
        self.batches.append(list(effects))

    @property
    def effects(self) -> list[Effect]:
        return [effect for batch in self.batches for effect in batch]
