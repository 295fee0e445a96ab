"""/api/admin (seed 001, Администрирование): users, settings, Asterisk test, system info.

Real PostgreSQL, Redis and the fake Asterisk (real ARI over a socket); nothing is mocked.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from api.crypto import secret_box
from api.state import SERVICES
from api.views.settings import PASSWORD_MASK
from api.views.system import format_uptime
from connectors.fakes.ari_server import FakeAsterisk
from tests.app_fixtures import _client
from tests.helpers import login

USER_KEYS = {"id", "username", "email", "name", "role", "group_id", "is_active", "created_at",
             "updated_at"}
OPERATOR_KEYS = {"id", "user_id", "extension", "group_id", "status", "skills",
                 "max_concurrent_calls", "current_calls", "last_activity", "created_at"}
SETTINGS_KEYS = {"call_recording", "auto_answer_delay", "max_call_duration", "queue_timeout",
                 "callback_enabled", "sms_notifications", "email_notifications",
                 "asterisk_config", "updated_by", "updated_at"}
ASTERISK_KEYS = {"host", "port", "username", "password", "protocol", "timeout", "enabled"}

_extensions = itertools.count(random.randrange(70000, 90000, 100))


def fresh_extension() -> str:
    return str(next(_extensions))


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def no_hash_anywhere(body: Any) -> None:
    text = orjson.dumps(body).decode()
    assert "password_hash" not in text and "$argon2" not in text


@pytest_asyncio.fixture(loop_scope="session")
async def admin(client: TestClient) -> dict[str, str]:
    return auth(await login(client))


@pytest_asyncio.fixture(loop_scope="session")
async def clean_settings(client: TestClient) -> AsyncIterator[None]:
    """Every settings test starts from the defaults and leaves them (no stored connection)."""
    pool = client.app[SERVICES].pool
    reset = "UPDATE system_settings SET data = '{}', updated_by = NULL WHERE id = 1"
    await pool.execute(reset)
    try:
        yield
    finally:
        await pool.execute(reset)


async def create_user(client: TestClient, headers: dict[str, str], **fields: Any) -> Any:
    body = {"username": unique("u"), "email": f"{unique('e')}@example.com", "name": "Test User",
            "password": "secret-pass", "role": "manager", **fields}
    resp = await client.post("/api/admin/users", json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def create_operator(client: TestClient, headers: dict[str, str], **fields: Any) -> Any:
    return await create_user(client, headers, role="operator",
                             extension=fields.pop("extension", fresh_extension()), **fields)


def engine_extensions(services: Any) -> set[str]:
    return {op.extension for op in services.engine.operators()}


async def eventually(check: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


# -- roles ------------------------------------------------------------------------------------

ADMIN_ENDPOINTS = [
    ("GET", "/api/admin/users"),
    ("POST", "/api/admin/users"),
    ("PUT", f"/api/admin/users/{uuid.uuid4()}"),
    ("DELETE", f"/api/admin/users/{uuid.uuid4()}"),
    ("GET", f"/api/admin/users/{uuid.uuid4()}/operator"),
    ("GET", "/api/admin/settings"),
    ("PUT", "/api/admin/settings"),
    ("POST", "/api/admin/settings/asterisk/test"),
    ("GET", "/api/admin/system/info"),
]


async def test_every_admin_endpoint_is_admin_only(client: TestClient,
                                                  role_tokens: dict[str, str]) -> None:
    for method, path in ADMIN_ENDPOINTS:
        for role in ("manager", "supervisor", "operator"):
            resp = await client.request(method, path, json={}, headers=auth(role_tokens[role]))
            assert resp.status == 403, (method, path, role)
            assert await resp.json() == {"detail": "Insufficient permissions",
                                         "type": "permission_error", "code": "AUTH_003",
                                         "field": None}
        resp = await client.request(method, path, json={})
        assert resp.status == 401 and (await resp.json())["code"] == "AUTH_001"
    # and the /api/v1 alias is guarded the same way
    resp = await client.get("/api/v1/admin/users", headers=auth(role_tokens["manager"]))
    assert resp.status == 403


# -- users: list ------------------------------------------------------------------------------


async def test_list_users_shape_paging_and_role_filter(client: TestClient, admin: dict) -> None:
    await create_operator(client, admin)
    await create_user(client, admin, role="supervisor")
    resp = await client.get("/api/admin/users", headers=admin)
    assert resp.status == 200
    users = await resp.json()
    assert users and all(set(u) == USER_KEYS for u in users)
    no_hash_anywhere(users)
    total = await client.app[SERVICES].users.count()
    assert len(users) == min(total, 100)

    resp = await client.get("/api/admin/users?role=operator&limit=1000", headers=admin)
    operators = await resp.json()
    assert operators and {u["role"] for u in operators} == {"operator"}

    resp = await client.get("/api/admin/users?skip=1&limit=2", headers=admin)
    page = await resp.json()
    resp = await client.get("/api/admin/users?limit=3", headers=admin)
    assert page == (await resp.json())[1:3]

    for query, field in (("role=king", "role"), ("limit=0", "limit"), ("skip=-1", "skip"),
                         ("limit=x", "limit")):
        resp = await client.get(f"/api/admin/users?{query}", headers=admin)
        assert resp.status == 422, query
        assert (await resp.json())["detail"][0]["loc"] == ["query", field]


# -- users: create ----------------------------------------------------------------------------


async def test_create_operator_makes_the_operator_row_and_tells_the_engine(
    client: TestClient, admin: dict, services: Any
) -> None:
    ext = fresh_extension()
    username = unique("op")
    resp = await client.post("/api/admin/users", headers=admin, json={
        "username": username, "email": f"{username}@example.com", "name": "Иван Петров",
        "password": "secure_password", "role": "operator", "extension": ext,
    })
    assert resp.status == 201
    user = await resp.json()
    assert set(user) == USER_KEYS
    assert (user["username"], user["role"], user["name"], user["is_active"]) == (
        username, "operator", "Иван Петров", True)
    no_hash_anywhere(user)

    row = await services.pool.fetchrow(
        "SELECT extension, user_id FROM operators WHERE user_id = $1::uuid", user["id"])
    assert row["extension"] == ext
    await services.runner.drain()
    assert ext in engine_extensions(services)

    resp = await client.get(f"/api/admin/users/{user['id']}/operator", headers=admin)
    assert resp.status == 200
    operator = await resp.json()
    assert set(operator) == OPERATOR_KEYS
    assert (operator["user_id"], operator["extension"], operator["status"]) == (
        user["id"], ext, "offline")
    assert operator["skills"] == [] and operator["max_concurrent_calls"] == 1

    token = await login(client, username, "secure_password")  # the password really works
    assert token


async def test_create_validation_errors_are_the_seed_422(client: TestClient,
                                                         admin: dict) -> None:
    good = {"username": unique("v"), "email": f"{unique('v')}@example.com", "name": "V",
            "password": "secret-pass", "role": "operator", "extension": fresh_extension()}
    cases = [
        ({"username": "ab"}, ["body", "username"], "string_too_short"),
        ({"username": "x" * 51}, ["body", "username"], "string_too_long"),
        ({"email": "not-an-email"}, ["body", "email"], "value_error"),
        ({"password": "12345"}, ["body", "password"], "string_too_short"),
        ({"role": "king"}, ["body", "role"], "enum"),
        ({"extension": "12"}, ["body", "extension"], "string_pattern_mismatch"),
        ({"extension": "123456"}, ["body", "extension"], "string_pattern_mismatch"),
        ({"extension": "12a4"}, ["body", "extension"], "string_pattern_mismatch"),
        ({"extension": None}, ["body", "extension"], "missing"),
        ({"role": "manager", "extension": "5555"}, ["body", "extension"],
         "extension_not_allowed"),
    ]
    for change, loc, kind in cases:
        resp = await client.post("/api/admin/users", json={**good, **change}, headers=admin)
        assert resp.status == 422, change
        detail = (await resp.json())["detail"]
        assert detail[0]["loc"] == loc and detail[0]["type"] == kind, (change, detail)
        assert set(detail[0]) >= {"loc", "msg", "type"}
    body = {k: v for k, v in good.items() if k != "extension"}
    resp = await client.post("/api/admin/users", json=body, headers=admin)
    assert resp.status == 422
    assert (await resp.json())["detail"][0]["loc"] == ["body", "extension"]
    resp = await client.post("/api/admin/users", json={**good, "group_id": str(uuid.uuid4())},
                             headers=admin)
    assert resp.status == 422 and (await resp.json())["code"] == "DB_003"
    # nothing was created by any of them
    assert await client.app[SERVICES].users.by_username(good["username"]) is None


async def test_create_conflicts_user_001_002_003(client: TestClient, admin: dict,
                                                 services: Any) -> None:
    first = await create_operator(client, admin)
    ext = (await services.users.operator_row_of(first["id"]))["extension"]
    base = {"username": unique("c"), "email": f"{unique('c')}@example.com", "name": "C",
            "password": "secret-pass", "role": "operator", "extension": fresh_extension()}
    cases = [
        ({"username": first["username"]}, "USER_001", "username"),
        ({"email": first["email"].upper()}, "USER_002", "email"),
        ({"extension": ext}, "USER_003", "extension"),
    ]
    for change, code, field in cases:
        resp = await client.post("/api/admin/users", json={**base, **change}, headers=admin)
        assert resp.status == 409, change
        body = await resp.json()
        assert (body["code"], body["field"], body["type"]) == (code, field, "conflict")
        assert isinstance(body["detail"], str)
    # USER_003 rolled back the user too: the username is still free
    assert await services.users.by_username(base["username"]) is None


# -- users: update ----------------------------------------------------------------------------


async def test_update_is_partial_and_never_exposes_the_hash(client: TestClient, admin: dict,
                                                            services: Any) -> None:
    user = await create_user(client, admin, role="supervisor")
    resp = await client.put(f"/api/admin/users/{user['id']}", headers=admin,
                            json={"name": "New Name", "password_hash": "x"})
    assert resp.status == 200
    updated = await resp.json()
    assert set(updated) == USER_KEYS
    no_hash_anywhere(updated)
    assert updated["name"] == "New Name"
    assert {k: updated[k] for k in ("username", "email", "role", "is_active")} == {
        k: user[k] for k in ("username", "email", "role", "is_active")}
    assert updated["updated_at"] >= user["updated_at"]

    resp = await client.put(f"/api/admin/users/{user['id']}", headers=admin,
                            json={"password": "another-pass", "email": "new-" + user["email"]})
    assert resp.status == 200 and (await resp.json())["email"] == "new-" + user["email"]
    assert await login(client, user["username"], "another-pass")

    for change, loc in (({"password": "123"}, ["body", "password"]),
                        ({"username": None}, ["body", "username"]),
                        ({"is_active": "maybe"}, ["body", "is_active"])):
        resp = await client.put(f"/api/admin/users/{user['id']}", headers=admin, json=change)
        assert resp.status == 422 and (await resp.json())["detail"][0]["loc"] == loc


async def test_update_not_found_and_conflicts(client: TestClient, admin: dict) -> None:
    for user_id in (uuid.uuid4(), "not-a-uuid"):
        resp = await client.put(f"/api/admin/users/{user_id}", headers=admin, json={"name": "x"})
        assert resp.status == 404
        body = await resp.json()
        assert body["code"] == "USER_004" and body["type"] == "not_found"
    a = await create_operator(client, admin)
    b = await create_operator(client, admin)
    a_ext = (await client.app[SERVICES].users.operator_row_of(a["id"]))["extension"]
    for change, code in (({"username": a["username"]}, "USER_001"),
                         ({"email": a["email"]}, "USER_002"),
                         ({"extension": a_ext}, "USER_003")):
        resp = await client.put(f"/api/admin/users/{b['id']}", headers=admin, json=change)
        assert resp.status == 409 and (await resp.json())["code"] == code


async def test_operator_changes_reach_the_engine(client: TestClient, admin: dict,
                                                 services: Any) -> None:
    user = await create_operator(client, admin)
    old_ext = (await services.users.operator_row_of(user["id"]))["extension"]
    new_ext = fresh_extension()
    path = f"/api/admin/users/{user['id']}"

    resp = await client.put(path, headers=admin, json={"extension": new_ext, "name": "Renamed"})
    assert resp.status == 200
    await services.runner.drain()
    known = {op.extension: op for op in services.engine.operators()}
    assert new_ext in known and old_ext not in known and known[new_ext].name == "Renamed"

    # deactivated: out of the engine; active again: back
    await client.put(path, headers=admin, json={"is_active": False})
    await services.runner.drain()
    assert new_ext not in engine_extensions(services)
    await client.put(path, headers=admin, json={"is_active": True})
    await services.runner.drain()
    assert new_ext in engine_extensions(services)

    # no longer an operator: the operator row goes
    resp = await client.put(path, headers=admin, json={"role": "manager"})
    assert resp.status == 200 and (await resp.json())["role"] == "manager"
    await services.runner.drain()
    assert new_ext not in engine_extensions(services)
    assert await services.users.operator_row_of(user["id"]) is None
    resp = await client.get(f"{path}/operator", headers=admin)
    assert resp.status == 200 and await resp.json() is None

    resp = await client.put(path, headers=admin, json={"extension": fresh_extension()})
    assert resp.status == 422  # an extension for a manager
    # a manager who never was an operator needs an extension to become one
    never = await client.post("/api/admin/users", headers=admin, json={
        "username": "never_op", "email": "never_op@example.com", "name": "N",
        "password": "secret-pass", "role": "manager"})
    resp = await client.put(f"/api/admin/users/{(await never.json())['id']}", headers=admin,
                            json={"role": "operator"})
    assert resp.status == 422
    assert (await resp.json())["detail"][0]["loc"] == ["body", "extension"]
    # a former operator comes back with the extension they had (same operator identity)
    resp = await client.put(path, headers=admin, json={"role": "operator"})
    assert resp.status == 200
    await services.runner.drain()
    assert new_ext in engine_extensions(services)
    resp = await client.put(path, headers=admin, json={"role": "manager"})
    ext = fresh_extension()
    resp = await client.put(path, headers=admin, json={"role": "operator", "extension": ext})
    assert resp.status == 200
    await services.runner.drain()
    assert ext in engine_extensions(services)


async def test_role_change_keeps_the_operator_identity(client: TestClient, admin: dict,
                                                      services: Any) -> None:
    user = await create_operator(client, admin)
    before = await services.users.operator_row_of(user["id"])
    operator_id, old_ext = before["id"], before["extension"]
    call_id = uuid.uuid4()
    await services.pool.execute(
        """INSERT INTO calls (id, channel_id, status, operator_id, start_time, answer_time,
                              end_time, duration)
           VALUES ($1, 'role-change', 'completed', $2, now(), now(), now(), 0)""",
        call_id, operator_id)
    path = f"/api/admin/users/{user['id']}"

    resp = await client.put(path, headers=admin, json={"role": "manager"})
    assert resp.status == 200
    await services.runner.drain()
    assert old_ext not in engine_extensions(services)
    assert await services.users.operator_row_of(user["id"]) is None
    # Their completed call keeps its operator.
    assert await services.pool.fetchval(
        "SELECT operator_id FROM calls WHERE id = $1", call_id) == operator_id
    # The extension is free for someone else meanwhile.
    other = await create_operator(client, admin, extension=old_ext)
    assert (await services.users.operator_row_of(other["id"]))["extension"] == old_ext

    ext = fresh_extension()
    resp = await client.put(path, headers=admin, json={"role": "operator", "extension": ext})
    assert resp.status == 200
    await services.runner.drain()
    after = await services.users.operator_row_of(user["id"])
    assert (after["id"], after["extension"]) == (operator_id, ext)      # the same operator
    assert ext in engine_extensions(services)
    assert next(op.id for op in services.engine.operators() if op.extension == ext) == str(
        operator_id)
    assert await services.pool.fetchval(
        "SELECT operator_id FROM calls WHERE id = $1", call_id) == operator_id


# -- users: delete ----------------------------------------------------------------------------


async def test_delete_user_and_its_operator(client: TestClient, admin: dict,
                                            services: Any) -> None:
    user = await create_operator(client, admin)
    ext = (await services.users.operator_row_of(user["id"]))["extension"]
    await services.runner.drain()
    assert ext in engine_extensions(services)
    resp = await client.delete(f"/api/admin/users/{user['id']}", headers=admin)
    assert resp.status == 200
    assert await resp.json() == {"success": True, "message": "User deleted"}
    assert await services.users.by_id(user["id"]) is None
    assert await services.pool.fetchval(
        "SELECT count(*) FROM operators WHERE extension = $1", ext) == 0
    await services.runner.drain()
    assert ext not in engine_extensions(services)
    resp = await client.delete(f"/api/admin/users/{user['id']}", headers=admin)
    assert resp.status == 404 and (await resp.json())["code"] == "USER_004"
    resp = await client.get(f"/api/admin/users/{user['id']}/operator", headers=admin)
    assert resp.status == 404 and (await resp.json())["code"] == "USER_004"


async def test_the_last_active_admin_cannot_be_deleted_demoted_or_deactivated(
    client: TestClient, admin: dict, services: Any
) -> None:
    me = await services.users.by_username("admin")
    others = [str(r["id"]) for r in await services.pool.fetch(
        "SELECT id FROM users WHERE role = 'admin' AND is_active AND id <> $1", me["id"])]
    await services.pool.execute(
        "UPDATE users SET is_active = false WHERE id = ANY($1::uuid[])", others)
    try:
        path = f"/api/admin/users/{me['id']}"
        for method, body in (("DELETE", None), ("PUT", {"role": "manager"}),
                             ("PUT", {"is_active": False})):
            resp = await client.request(method, path, json=body, headers=admin)
            assert resp.status == 409, (method, body)
            answer = await resp.json()
            assert answer["code"] == "USER_005" and answer["type"] == "conflict"
        assert (await services.users.by_id(str(me["id"])))["role"] == "admin"

        # with a second admin, that one may go (and the first stays protected)
        second = await create_user(client, admin, role="admin")
        resp = await client.put(f"/api/admin/users/{second['id']}", headers=admin,
                                json={"role": "manager"})
        assert resp.status == 200
        resp = await client.put(f"/api/admin/users/{second['id']}", headers=admin,
                                json={"role": "admin"})
        assert resp.status == 200
        resp = await client.delete(f"/api/admin/users/{second['id']}", headers=admin)
        assert resp.status == 200
        resp = await client.delete(path, headers=admin)
        assert resp.status == 409 and (await resp.json())["code"] == "USER_005"
    finally:
        await services.pool.execute(
            "UPDATE users SET is_active = true WHERE id = ANY($1::uuid[])", others)


async def test_user_operator_is_null_for_other_roles(client: TestClient, admin: dict) -> None:
    user = await create_user(client, admin, role="supervisor")
    resp = await client.get(f"/api/admin/users/{user['id']}/operator", headers=admin)
    assert resp.status == 200 and await resp.json() is None


# -- settings ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("clean_settings")
async def test_settings_defaults_have_the_seed_shape(client: TestClient, admin: dict) -> None:
    resp = await client.get("/api/admin/settings", headers=admin)
    assert resp.status == 200
    settings = await resp.json()
    assert set(settings) == SETTINGS_KEYS
    assert set(settings["asterisk_config"]) == ASTERISK_KEYS
    assert settings["asterisk_config"] == {"host": "127.0.0.1", "port": 8088, "username": "",
                                           "password": None, "protocol": "ARI", "timeout": 30,
                                           "enabled": False}
    assert settings["updated_by"] is None and settings["updated_at"].endswith("Z")
    assert (settings["call_recording"], settings["max_call_duration"],
            settings["queue_timeout"]) == (False, 3600, 300)


@pytest.mark.usefixtures("clean_settings")
async def test_settings_put_stores_the_password_encrypted_and_never_returns_it(
    client: TestClient, admin: dict, services: Any
) -> None:
    secret = "clear-text-ari-password"
    resp = await client.put("/api/admin/settings", headers=admin, json={
        "call_recording": True, "queue_timeout": 120,
        "asterisk_config": {"host": "10.0.0.5", "port": 8089, "username": "cc",
                            "password": secret, "protocol": "ari", "timeout": 15},
    })
    assert resp.status == 200
    put = await resp.json()
    assert set(put) == SETTINGS_KEYS
    assert put["asterisk_config"] == {"host": "10.0.0.5", "port": 8089, "username": "cc",
                                      "password": PASSWORD_MASK, "protocol": "ARI",
                                      "timeout": 15, "enabled": False}
    me = await services.users.by_username("admin")
    assert put["updated_by"] == str(me["id"])
    assert put["call_recording"] is True and put["queue_timeout"] == 120
    assert put["max_call_duration"] == 3600  # untouched: partial update
    resp = await client.get("/api/admin/settings", headers=admin)
    assert await resp.json() == put
    assert secret not in orjson.dumps(put).decode()

    # the database holds ciphertext only, decryptable with the configured key
    data = await services.pool.fetchval("SELECT data FROM system_settings WHERE id = 1")
    assert secret not in orjson.dumps(data).decode()
    token = data["asterisk_config"]["password_enc"]
    assert "password" not in data["asterisk_config"]
    assert secret_box(services.settings).decrypt(token) == secret

    # the mask (or null) keeps the stored password; "" clears it
    for keep in (PASSWORD_MASK, None):
        resp = await client.put("/api/admin/settings", headers=admin,
                                json={"asterisk_config": {"password": keep, "port": 8090}})
        assert (await resp.json())["asterisk_config"]["password"] == PASSWORD_MASK
        stored = await services.pool.fetchval(
            "SELECT data->'asterisk_config'->>'password_enc' FROM system_settings")
        assert secret_box(services.settings).decrypt(stored) == secret
    resp = await client.put("/api/admin/settings", headers=admin,
                            json={"asterisk_config": {"password": ""}})
    assert (await resp.json())["asterisk_config"]["password"] is None


@pytest.mark.usefixtures("clean_settings")
async def test_settings_validation(client: TestClient, admin: dict) -> None:
    cases = [
        ({"asterisk_config": {"port": 70000}}, ["body", "asterisk_config", "port"]),
        ({"asterisk_config": {"protocol": "SIP"}}, ["body", "asterisk_config", "protocol"]),
        ({"asterisk_config": {"host": "http://x/y"}}, ["body", "asterisk_config", "host"]),
        ({"asterisk_config": {"timeout": 0}}, ["body", "asterisk_config", "timeout"]),
        ({"queue_timeout": -5}, ["body", "queue_timeout"]),
        ({"call_recording": "sometimes"}, ["body", "call_recording"]),
        ({"asterisk_config": {"enabled": True}}, ["body", "asterisk_config"]),  # no username
    ]
    for body, loc in cases:
        resp = await client.put("/api/admin/settings", headers=admin, json=body)
        assert resp.status == 422, body
        assert (await resp.json())["detail"][0]["loc"] == loc, body
    resp = await client.get("/api/admin/settings", headers=admin)
    assert (await resp.json())["updated_by"] is None  # none of them was stored


@pytest.mark.usefixtures("clean_settings")
async def test_enabling_asterisk_reinitialises_the_ari_connection_live(
    client: TestClient, admin: dict, services: Any, fake_asterisk: FakeAsterisk
) -> None:
    assert services.pbx.mode == "none" and fake_asterisk.connected_clients == 0
    ast = {"host": fake_asterisk.host, "port": fake_asterisk.port, "username": "ari",
           "password": "ari-secret", "protocol": "ARI", "timeout": 5, "enabled": True}
    resp = await client.put("/api/admin/settings", headers=admin, json={"asterisk_config": ast})
    assert resp.status == 200
    await fake_asterisk.wait_for_client(1)
    stream = services.pbx.sources[0].stream
    async with asyncio.timeout(5):
        await stream.wait_connected()
    assert services.pbx.mode == "ari" and services.pbx.commands is not None
    assert services.pbx.config is not None and services.pbx.config.url == fake_asterisk.url
    resp = await client.get("/api/admin/system/info", headers=admin)
    assert (await resp.json())["asterisk_connected"] is True

    # saving the same connection again does not reconnect
    resp = await client.put("/api/admin/settings", headers=admin,
                            json={"call_recording": True, "asterisk_config": ast})
    assert resp.status == 200 and services.pbx.sources[0].stream is stream

    # wrong password: the connector is re-initialised with it (and cannot get in)
    resp = await client.put("/api/admin/settings", headers=admin,
                            json={"asterisk_config": {"password": "wrong"}})
    assert resp.status == 200
    await eventually(lambda: fake_asterisk.connected_clients == 0)
    assert services.pbx.sources[0].stream is not stream
    assert services.pbx.config is not None and services.pbx.config.password == "wrong"

    # disabled: back to the configured default (no PBX in this app)
    resp = await client.put("/api/admin/settings", headers=admin,
                            json={"asterisk_config": {"enabled": False}})
    assert resp.status == 200
    assert services.pbx.mode == "none" and not services.pbx.sources
    assert services.pbx.commands is None
    resp = await client.get("/api/admin/system/info", headers=admin)
    assert (await resp.json())["asterisk_connected"] is False


@pytest.mark.usefixtures("clean_settings")
async def test_a_stored_enabled_connection_is_used_at_start_up(
    services: Any, app_settings: Any, fake_asterisk: FakeAsterisk
) -> None:
    """Saved as PUT saves it (encrypted password); a fresh start connects from the database."""
    stored = {"asterisk_config": {
        "host": fake_asterisk.host, "port": fake_asterisk.port, "username": "ari",
        "password_enc": secret_box(services.settings).encrypt("ari-secret"), "timeout": 5,
        "enabled": True}}
    await services.pool.execute("UPDATE system_settings SET data = $1 WHERE id = 1", stored)
    second = await _client(app_settings)
    try:
        started = second.app[SERVICES]
        async with asyncio.timeout(5):
            await started.pbx.wait_connected()
        assert started.pbx.mode == "ari" and fake_asterisk.connected_clients == 1
        assert started.pbx.config is not None and started.pbx.config.url == fake_asterisk.url
    finally:
        await second.close()
    await eventually(lambda: fake_asterisk.connected_clients == 0)
    assert services.pbx.mode == "none"  # the app that was already running did not change


# -- Asterisk connection test -----------------------------------------------------------------


async def test_asterisk_test_success_reports_the_real_version(
    client: TestClient, admin: dict, fake_asterisk: FakeAsterisk
) -> None:
    resp = await client.post("/api/admin/settings/asterisk/test", headers=admin, json={
        "host": fake_asterisk.host, "port": fake_asterisk.port, "username": "ari",
        "password": "ari-secret", "protocol": "ARI", "timeout": 5,
    })
    assert resp.status == 200
    body = await resp.json()
    assert body == {
        "success": True,
        "message": f"Успешное подключение к Asterisk {fake_asterisk.version}",
        "data": {
            "asterisk_version": fake_asterisk.version,
            "system": body["data"]["system"],
            "connection_details": {"host": fake_asterisk.host, "port": fake_asterisk.port,
                                   "protocol": "ARI", "status": "Connected"},
        },
    }
    assert "Asterisk" in body["data"]["system"]
    assert fake_asterisk.requests[-1].path == "/ari/asterisk/info"


def _check_failure(body: dict, code: str, error: str, host: str, port: int) -> None:
    assert body["success"] is False
    assert body["message"].startswith(f"{error}: ") and f"{host}:{port}" in body["message"]
    data = body["data"]
    assert set(data) == {"error", "code", "details", "troubleshooting"}
    assert (data["error"], data["code"]) == (error, code)
    assert data["details"]["host"] == host and data["details"]["port"] == port
    assert data["details"]["possible_causes"] and data["troubleshooting"]


async def test_asterisk_test_bad_credentials_ast_002(client: TestClient, admin: dict,
                                                     fake_asterisk: FakeAsterisk) -> None:
    resp = await client.post("/api/admin/settings/asterisk/test", headers=admin, json={
        "host": fake_asterisk.host, "port": fake_asterisk.port, "username": "ari",
        "password": "wrong", "timeout": 5,
    })
    assert resp.status == 200
    _check_failure(await resp.json(), "AST_002", "Authentication failed", fake_asterisk.host,
                   fake_asterisk.port)


async def test_asterisk_test_nothing_listening_ast_004(client: TestClient,
                                                       admin: dict) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    resp = await client.post("/api/admin/settings/asterisk/test", headers=admin, json={
        "host": "127.0.0.1", "port": port, "username": "ari", "password": "x", "timeout": 5,
    })
    assert resp.status == 200
    _check_failure(await resp.json(), "AST_004", "ARI unavailable", "127.0.0.1", port)


async def test_asterisk_test_timeout_ast_001(client: TestClient, admin: dict,
                                             fake_asterisk: FakeAsterisk) -> None:
    fake_asterisk.script_response("GET", "/asterisk/info", 200,
                                  {"system": {"version": "20.5.0"}}, delay=2)
    started = asyncio.get_running_loop().time()
    resp = await client.post("/api/admin/settings/asterisk/test", headers=admin, json={
        "host": fake_asterisk.host, "port": fake_asterisk.port, "username": "ari",
        "password": "ari-secret", "timeout": 1,
    })
    assert asyncio.get_running_loop().time() - started < 1.9
    assert resp.status == 200
    _check_failure(await resp.json(), "AST_001", "Connection timeout", fake_asterisk.host,
                   fake_asterisk.port)


@pytest.mark.usefixtures("clean_settings")
async def test_asterisk_test_uses_the_stored_password_when_none_is_given(
    client: TestClient, admin: dict, fake_asterisk: FakeAsterisk
) -> None:
    resp = await client.put("/api/admin/settings", headers=admin,
                            json={"asterisk_config": {"password": "ari-secret"}})
    assert resp.status == 200
    for password in (None, PASSWORD_MASK):
        resp = await client.post("/api/admin/settings/asterisk/test", headers=admin, json={
            "host": fake_asterisk.host, "port": fake_asterisk.port, "username": "ari",
            "password": password, "timeout": 5,
        })
        assert (await resp.json())["success"] is True


async def test_asterisk_test_validation(client: TestClient, admin: dict) -> None:
    for body, loc in (({"port": 8088, "username": "u"}, ["body", "host"]),
                      ({"host": "h", "port": 0, "username": "u"}, ["body", "port"]),
                      ({"host": "h", "username": "u", "protocol": "SIP"}, ["body", "protocol"]),
                      ({"host": "h", "username": "u", "timeout": 0}, ["body", "timeout"])):
        resp = await client.post("/api/admin/settings/asterisk/test", headers=admin, json=body)
        assert resp.status == 422, body
        assert (await resp.json())["detail"][0]["loc"] == loc


# -- system info ------------------------------------------------------------------------------


async def test_system_info_real_figures(client: TestClient, admin: dict, services: Any) -> None:
    await create_operator(client, admin)
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    insert = ("INSERT INTO calls (id, channel_id, caller_number, start_time)"
              " VALUES ($1, $2, '+70000000000', $3)")
    before = await services.pool.fetchval(
        "SELECT count(*) FROM calls WHERE start_time >= $1", midnight)
    await services.pool.execute(insert, uuid.uuid4(), unique("today"), now)
    await services.pool.execute(insert, uuid.uuid4(), unique("yesterday"),
                                midnight - timedelta(seconds=1))
    resp = await client.get("/api/admin/system/info", headers=admin)
    assert resp.status == 200
    info = await resp.json()
    assert set(info) == {"users", "operators", "calls_today", "asterisk_connected",
                         "database_status", "uptime"}
    assert info["users"] == await services.users.count()
    assert info["operators"] == await services.pool.fetchval("SELECT count(*) FROM operators")
    assert info["calls_today"] == before + 1
    assert info["asterisk_connected"] is False  # this app has no PBX
    assert info["database_status"] == "connected"
    assert re.fullmatch(r"\d+ days?, \d\d:\d\d:\d\d", info["uptime"])


def test_uptime_format() -> None:
    assert format_uptime(2 * 86400 + 14 * 3600 + 30 * 60 + 22) == "2 days, 14:30:22"
    assert format_uptime(86400 + 5) == "1 day, 00:00:05"
    assert format_uptime(59.9) == "0 days, 00:00:59"
