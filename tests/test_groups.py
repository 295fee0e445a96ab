"""Groups as the seed's users call them (issue 8): CRUD in the API and the CLI; and a user created
by the CLI while the service runs is live at once (a real ``switchboard`` subprocess against the
test app's database)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from api.state import SERVICES
from tests.helpers import login


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_group_crud(client: TestClient) -> None:
    admin = bearer(await login(client))
    name = unique("Sales")
    resp = await client.post("/api/admin/groups", json={"name": name, "description": "desk"},
                             headers=admin)
    assert resp.status == 201, await resp.text()
    group = await resp.json()
    assert (group["name"], group["description"], group["members"]) == (name, "desk", 0)

    resp = await client.post("/api/admin/groups", json={"name": name}, headers=admin)
    assert resp.status == 409
    assert (await resp.json())["code"] == "DB_004"

    resp = await client.get("/api/admin/groups", headers=admin)
    assert group["id"] in [g["id"] for g in await resp.json()]

    renamed = unique("Support")
    resp = await client.put(f"/api/admin/groups/{group['id']}", json={"name": renamed},
                            headers=admin)
    assert resp.status == 200
    assert ((await resp.json())["name"], (await resp.json())["description"]) == (renamed, "desk")

    # a user can now be put in the group (before: every group_id was 422 DB_003)
    username = unique("grp").replace("-", "_")
    resp = await client.post("/api/admin/users", headers=admin, json={
        "username": username, "email": f"{username}@example.com", "password": "secret-pass",
        "role": "supervisor", "group_id": group["id"]})
    assert resp.status == 201, await resp.text()
    user = await resp.json()

    resp = await client.delete(f"/api/admin/groups/{group['id']}", headers=admin)
    assert resp.status == 409
    assert (await resp.json())["code"] == "GROUP_001"

    resp = await client.put(f"/api/admin/users/{user['id']}", json={"group_id": None},
                            headers=admin)
    assert resp.status == 200
    resp = await client.delete(f"/api/admin/groups/{group['id']}", headers=admin)
    assert resp.status == 200
    assert (await resp.json())["success"] is True
    for method in ("PUT", "DELETE"):
        resp = await client.request(method, f"/api/admin/groups/{group['id']}", headers=admin,
                                    json={"name": "x"} if method == "PUT" else None)
        assert resp.status == 404


async def test_groups_are_admin_only(client: TestClient, role_tokens: dict[str, str]) -> None:
    for role in ("manager", "supervisor", "operator"):
        resp = await client.get("/api/admin/groups", headers=bearer(role_tokens[role]))
        assert resp.status == 403


async def _cli(app_env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", *args, env=app_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode()


def _env(client: TestClient) -> dict[str, str]:
    settings = client.app[SERVICES].settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(SWITCHBOARD_DATABASE_URL=settings.database_url,
               SWITCHBOARD_REDIS_URL=settings.redis_url,
               SWITCHBOARD_DATA_DIR=str(settings.data_dir), SWITCHBOARD_LOG_LEVEL="WARNING")
    return env


async def _eventually(check: Any, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


async def test_cli_groups_and_a_live_operator(client: TestClient) -> None:
    services = client.app[SERVICES]
    env = _env(client)
    name = unique("Night shift")
    code, out = await _cli(env, "create-group", name, "--description", "22-06")
    assert code == 0, out
    code, out = await _cli(env, "list-groups")
    assert code == 0 and name in out, out
    code, out = await _cli(env, "create-group", name)
    assert code != 0 and "already exists" in out, out

    username = unique("cli_op").replace("-", "_")
    extension = str(40000 + uuid.uuid4().int % 9999)
    code, out = await _cli(env, "create-user", username, "--role", "operator", "--password",
                           "secret-pass", "--extension", extension, "--group", name)
    assert code == 0, out
    user = await services.users.by_username(username)
    assert user is not None
    operator_id = await services.users.operator_id_of(str(user["id"]))
    assert operator_id is not None

    async def live() -> bool:  # the running engine knows the operator without a restart
        operator = services.engine.operator(operator_id)
        return operator is not None and operator.extension == extension

    await _eventually(live)
    admin = bearer(await login(client))
    ws = await client.ws_connect("/ws/events", headers=admin)
    await ws.send_json({"type": "auth", "token": admin["Authorization"].split()[1]})
    assert (await ws.receive_json(timeout=5))["type"] == "auth_ok"
    snapshot = await ws.receive_json(timeout=5)
    assert extension in [o["extension"] for o in snapshot["data"]["operators"]]
    await ws.close()
