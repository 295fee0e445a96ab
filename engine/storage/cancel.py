"""Cancellation that survives client libraries."""

from __future__ import annotations

import asyncio


def reraise_lost_cancellation() -> None:
    """Client libraries have been seen to swallow a CancelledError raised inside a command
    (redis-py); a background flusher must still stop when its task was cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
