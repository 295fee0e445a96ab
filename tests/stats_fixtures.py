"""Known calls for the statistics and history tests, written through the real RecordSink."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.config import Settings
from api.state import SERVICES, Services
from engine.model import Call, CallStatus, Direction, call_id_for
from tests.helpers import PASSWORD, create_user, login


@dataclass
class World:
    client: TestClient
    services: Services
    group: str
    other_group: str
    queue: str
    op_a: str        # operator in `group`
    op_b: str        # operator without a group
    yesterday: datetime
    tokens: dict[str, str]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def make_call(tag: str, start: datetime, *, status: CallStatus, wait: int, talk: int = 0,
              operator_id: str | None = None, queue: str | None = None,
              direction: Direction = Direction.INBOUND) -> Call:
    answer = start + timedelta(seconds=wait) if status == CallStatus.COMPLETED else None
    end = (answer + timedelta(seconds=talk)) if answer else start + timedelta(seconds=wait)
    return Call(id=call_id_for(tag), channel_id=tag, caller_number="+79001234567",
                start_time=start, status=status, direction=direction, operator_id=operator_id,
                queue_name=queue, answer_time=answer,
                end_time=end if status in (CallStatus.COMPLETED, CallStatus.MISSED) else None,
                called_number="1001")


async def write_calls(services: Services, calls: list[Call]) -> None:
    for c in calls:
        await services.records.write(c)
    await services.records.flush()


async def _operator_id(services: Services, user_id: str) -> str:
    return str(await services.pool.fetchval(
        "SELECT id FROM operators WHERE user_id = $1::uuid", user_id))


@pytest_asyncio.fixture(loop_scope="session")
async def world(app_settings: Settings, role_tokens: dict[str, str],
                client: TestClient) -> AsyncIterator[World]:
    """Groups, a queue (threshold 30 s), two operators and a supervisor of the group; then an
    app without rate limits (so the engine knows the operators)."""
    base: Services = client.app[SERVICES]
    pool = base.pool
    group = str(await pool.fetchval("INSERT INTO groups (name) VALUES ('g') RETURNING id"))
    other_group = str(await pool.fetchval("INSERT INTO groups (name) VALUES ('g2') RETURNING id"))
    queue = str(await pool.fetchval(
        """INSERT INTO queues (name, asterisk_name, service_level_threshold)
           VALUES ('q', 'q', 30) RETURNING id"""))
    a = await create_user(base, "opa", "operator", extension="5001", group_id=group)
    b = await create_user(base, "opb", "operator", extension="5002")
    await create_user(base, "supg", "supervisor", group_id=group)
    op_a, op_b = await _operator_id(base, a), await _operator_id(base, b)
    app = create_app(app_settings.replace(**_no_limits(app_settings)))
    test_client = TestClient(TestServer(app))
    await test_client.start_server()
    tokens = dict(role_tokens)
    tokens["op_a"] = await login(test_client, "opa", PASSWORD)
    tokens["sup_group"] = await login(test_client, "supg", PASSWORD)
    services = app[SERVICES]
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        yield World(test_client, services, group, other_group, queue, op_a, op_b,
                    midnight - timedelta(days=1), tokens)
    finally:
        await test_client.close()


def _no_limits(settings: Settings) -> dict[str, Any]:
    return {"rate_limits": False} if hasattr(settings, "rate_limits") else {}
