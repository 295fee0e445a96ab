"""Debug aid: if the loop sits in one test phase for 40 s, print every task's stack, so a hang
ends in a useful picture (then pytest-timeout fires) instead of a bare selector wait."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator

import pytest_asyncio

_LAST_PROGRESS = [time.monotonic()]


def pytest_runtest_logreport(report: object) -> None:
    _LAST_PROGRESS[0] = time.monotonic()


@pytest_asyncio.fixture(scope="session", loop_scope="session", autouse=True)
async def _hang_watchdog() -> AsyncIterator[None]:
    async def watch() -> None:
        while True:
            await asyncio.sleep(5)
            if time.monotonic() - _LAST_PROGRESS[0] > 40:
                for task in asyncio.all_tasks():
                    task.print_stack(file=sys.stderr)
                _LAST_PROGRESS[0] = time.monotonic()

    task = asyncio.create_task(watch())
    yield
    task.cancel()
