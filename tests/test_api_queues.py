"""/api/queues (seed 001, Очереди): CRUD, validation, roles and live counts."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient

from api.state import SERVICES
from api.views.queues import live_counts
from connectors.fakes.ari_server import FakeAsterisk, channel, event
from engine.events import OperatorProvisioned
from engine.model import Call, CallStatus, Operator
from storage.queues import QueueRow
from tests.helpers import ensure_user, login

LIST_KEYS = {"id", "name", "description", "asterisk_name", "max_wait_time", "priority",
             "strategy", "members", "is_active", "current_calls", "waiting_calls"}
DETAIL_KEYS = LIST_KEYS | {"service_level_threshold", "created_at", "updated_at"}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_queue(**fields: Any) -> dict[str, Any]:
    key = uuid.uuid4().hex[:8]
    return {"name": f"VIP {key}", "description": "Приоритетная очередь для VIP",
            "asterisk_name": f"vip_{key}", "max_wait_time": 60, "priority": 5,
            "strategy": "leastrecent", **fields}


async def test_crud_and_seed_shapes(client: TestClient, role_tokens: dict[str, str]) -> None:
    admin = auth(role_tokens["admin"])
    body = new_queue(members=["1001", "1002"])
    resp = await client.post("/api/queues/", headers=admin, json=body)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert set(created) == DETAIL_KEYS
    assert {k: created[k] for k in body} == body
    assert (created["is_active"], created["service_level_threshold"],
            created["current_calls"], created["waiting_calls"]) == (True, 20, 0, 0)

    for role in ("admin", "manager", "supervisor"):
        resp = await client.get("/api/queues/", headers=auth(role_tokens[role]))
        assert resp.status == 200
        items = await resp.json()
        assert all(set(item) == LIST_KEYS for item in items)
        assert any(item["id"] == created["id"] for item in items)

    url = f"/api/queues/{created['id']}"
    resp = await client.put(url, headers=admin, json={"strategy": "rrmemory", "members": []})
    assert resp.status == 200
    updated = await resp.json()
    assert (updated["strategy"], updated["members"], updated["name"]) == (
        "rrmemory", [], body["name"])
    assert updated["updated_at"] >= created["updated_at"]

    resp = await client.delete(url, headers=admin)
    assert resp.status == 200 and (await resp.json())["success"] is True
    for method in ("PUT", "DELETE"):
        resp = await client.request(method, url, headers=admin, json={"priority": 1})
        assert resp.status == 404 and (await resp.json())["code"] == "DB_002"
    resp = await client.put("/api/queues/not-a-uuid", headers=admin, json={})
    assert resp.status == 404


async def test_roles(client: TestClient, role_tokens: dict[str, str]) -> None:
    resp = await client.get("/api/queues/", headers=auth(role_tokens["operator"]))
    assert resp.status == 403 and (await resp.json())["code"] == "AUTH_003"
    for role in ("manager", "supervisor", "operator"):
        resp = await client.post("/api/queues/", headers=auth(role_tokens[role]),
                                 json=new_queue())
        assert resp.status == 403
        resp = await client.delete(f"/api/queues/{uuid.uuid4()}",
                                   headers=auth(role_tokens[role]))
        assert resp.status == 403


async def test_duplicates_are_409_db_004(client: TestClient, role_tokens: dict[str, str]) -> None:
    admin = auth(role_tokens["admin"])
    first = await (await client.post("/api/queues/", headers=admin, json=new_queue())).json()
    for field in ("name", "asterisk_name"):
        resp = await client.post("/api/queues/", headers=admin,
                                 json=new_queue(**{field: first[field]}))
        assert resp.status == 409
        err = await resp.json()
        assert (err["code"], err["field"], err["type"]) == ("DB_004", field, "conflict")
    second = await (await client.post("/api/queues/", headers=admin, json=new_queue())).json()
    resp = await client.put(f"/api/queues/{second['id']}", headers=admin,
                            json={"asterisk_name": first["asterisk_name"]})
    assert resp.status == 409 and (await resp.json())["field"] == "asterisk_name"


async def test_validation(client: TestClient, role_tokens: dict[str, str]) -> None:
    admin = auth(role_tokens["admin"])
    bad = [
        ({"strategy": "round-robin"}, "strategy"),
        ({"max_wait_time": -1}, "max_wait_time"),
        ({"asterisk_name": "has space"}, "asterisk_name"),
        ({"members": ["10a1"]}, "members"),
        ({"members": ["1001", "1001"]}, "members"),
        ({"service_level_threshold": 0}, "service_level_threshold"),
        ({"name": ""}, "name"),
    ]
    for fields, loc in bad:
        resp = await client.post("/api/queues/", headers=admin, json=new_queue(**fields))
        assert resp.status == 422, fields
        assert (await resp.json())["detail"][0]["loc"][:2] == ["body", loc]
    resp = await client.post("/api/queues/", headers=admin, json={"name": "x"})
    assert resp.status == 422
    created = await (await client.post("/api/queues/", headers=admin, json=new_queue())).json()
    resp = await client.put(f"/api/queues/{created['id']}", headers=admin, json={"name": None})
    assert resp.status == 422


def _call(n: int, status: CallStatus, offered: tuple[str, ...] = (),
          queue: str | None = None) -> Call:
    return Call(id=f"c{n}", channel_id=f"ch{n}", caller_number="+7900", status=status,
                start_time=datetime.now(UTC), offered_operator_ids=offered, queue_name=queue,
                operator_id=offered[0] if status is CallStatus.ANSWERED and offered else None)


def test_live_counts_attribution() -> None:
    ops = [Operator(id="a", extension="1001"), Operator(id="b", extension="1002"),
           Operator(id="c", extension="1003")]
    now = datetime.now(UTC)
    queue = QueueRow(id="q", name="General", description="", asterisk_name="general",
                     max_wait_time=300, priority=0, strategy="ringall", members=("1001", "1002"),
                     is_active=True, service_level_threshold=20, created_at=now, updated_at=now)
    calls = [
        _call(1, CallStatus.INCOMING, ("a",)),           # ringing a member: waiting
        _call(2, CallStatus.ANSWERED, ("b",)),           # answered by a member: current
        _call(3, CallStatus.INCOMING, ("c",)),           # another queue's operator
        _call(4, CallStatus.INCOMING),                   # rang nobody: unattributed
        _call(5, CallStatus.ANSWERED, ("c",), "general"),  # named by the PBX (AMI)
        _call(6, CallStatus.INCOMING, ("a",), "other"),  # named another queue: not ours
    ]
    assert live_counts(queue, calls, ops) == {"current_calls": 2, "waiting_calls": 1}


async def test_live_counts_from_the_engine(pbx_client: TestClient,
                                           fake_asterisk: FakeAsterisk) -> None:
    services = pbx_client.app[SERVICES]
    await ensure_user(services, "q_op", "operator", extension="3201")
    op = next(o for o in await services.users.operators() if o.extension == "3201")
    await services.runner.handle_now(OperatorProvisioned(op))
    admin = auth(await login(pbx_client))
    queue = await (await pbx_client.post("/api/queues/", headers=admin,
                                         json=new_queue(members=["3201"]))).json()

    async def counts() -> tuple[int, int]:
        await services.runner.drain()
        items = await (await pbx_client.get("/api/queues/", headers=admin)).json()
        item = next(i for i in items if i["id"] == queue["id"])
        return item["current_calls"], item["waiting_calls"]

    key = uuid.uuid4().hex[:6]
    customer = channel(f"q{key}.1", f"PJSIP/trunk-{key}", "Ring", caller_number="+79001112233",
                       exten="200", context="from-trunk")
    agent = channel(f"q{key}.2", "PJSIP/3201-0000a001", "Ringing", exten="3201",
                    context="agents")
    await fake_asterisk.emit(event("ChannelCreated", channel=customer))
    await fake_asterisk.emit(event("ChannelCreated", channel=agent))
    await fake_asterisk.emit(event("Dial", caller=customer, peer=agent, dialstring="PJSIP/3201",
                                   dialstatus="RINGING"))
    assert await _eventually(counts, (0, 1))
    await fake_asterisk.emit(event("Dial", caller=customer, peer=dict(agent, state="Up"),
                                   dialstring="PJSIP/3201", dialstatus="ANSWER"))
    assert await _eventually(counts, (1, 0))
    for ch in (agent, customer):
        await fake_asterisk.emit(event("ChannelDestroyed", channel=ch, cause=16,
                                       cause_txt="Normal Clearing"))
    assert await _eventually(counts, (0, 0))


async def _eventually(probe: Any, expected: Any, tries: int = 40) -> bool:
    for _ in range(tries):
        if await probe() == expected:
            return True
        await asyncio.sleep(0.05)
    return False
