"""Readiness (``/ready``): is each part Switchboard depends on working right now?

A part is degraded when its server does not answer or its writer is failing (the writer keeps
what it could not write and retries; readiness says so meanwhile). ``/health`` stays the
liveness probe: the process answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage.db import postgres_ping
from storage.records import PostgresRecordSink
from storage.redis_state import RedisStateStore, redis_ping
from storage.writebehind import WriteBehind


@dataclass(frozen=True, slots=True)
class Part:
    ok: bool
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "degraded", "detail": self.detail}


def _with_writer(ping_error: str | None, writer: WriteBehind) -> Part:
    if ping_error is not None:
        return Part(False, ping_error)
    if not writer.healthy:
        return Part(False, f"{writer.pending} {writer.what} waiting: {writer.last_error}")
    return Part(True, f"{writer.pending} {writer.what} waiting" if writer.pending else "")


async def readiness(pool: Any, redis: Any, records: PostgresRecordSink,
                    live_state: RedisStateStore, pbx: dict[str, Part]) -> dict[str, Part]:
    """Every part by name: ``postgres``, ``redis`` and each PBX source (``pbx`` as given)."""
    return {
        "postgres": _with_writer(await postgres_ping(pool), records),
        "redis": _with_writer(await redis_ping(redis), live_state),
        **pbx,
    }
