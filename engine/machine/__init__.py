"""Pure call and operator state machines: ``Engine.handle(event) -> list[Effect]``."""

from engine.machine.engine import Engine

__all__ = ["Engine"]
