"""/api/asterisk (seed 001, Asterisk интеграция) against the fake Asterisk over real ARI."""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient

from api.state import SERVICES, Services
from connectors.fakes.ari_server import FakeAsterisk, channel, device_state, endpoint, event
from engine.events import OperatorProvisioned
from storage.queues import Queues
from tests.helpers import ensure_user, login

EXTENSIONS = {"op_a": "3101", "op_b": "3102"}
STAFF_USERS = {"ast_manager": "manager", "ast_supervisor": "supervisor"}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Pbx:
    client: TestClient
    fake: FakeAsterisk
    services: Services
    tokens: dict[str, str]
    ops: dict[str, str]  # username -> operator id

    def headers(self, who: str) -> dict[str, str]:
        return auth(self.tokens[who])

    async def settle(self) -> None:
        for _ in range(50):
            await asyncio.sleep(0.02)
            if self.services.runner.pending == 0:
                break
        await self.services.runner.drain()

    def requests(self, method: str, path_end: str) -> list[Any]:
        return [r for r in self.fake.requests
                if r.method == method and r.path.endswith(path_end)]

    async def ringing_call(self, *usernames: str) -> tuple[str, dict[str, str]]:
        """A customer calling in, ringing the given operators; (customer channel, legs)."""
        key = uuid.uuid4().hex[:8]
        customer = channel(f"a{key}.0", f"PJSIP/trunk-{key}", "Ring",
                           caller_number="+79001234567", exten="200", context="from-trunk")
        await self.fake.emit(event("ChannelCreated", channel=customer))
        legs = {}
        for i, username in enumerate(usernames, start=1):
            ext = EXTENSIONS[username]
            leg = channel(f"a{key}.{i}", f"PJSIP/{ext}-{key}", "Ringing", exten=ext,
                          context="agents")
            await self.fake.emit(event("ChannelCreated", channel=leg))
            await self.fake.emit(event("Dial", caller=customer, peer=leg,
                                       dialstring=f"PJSIP/{ext}", dialstatus="RINGING"))
            legs[username] = leg["id"]
        await self.settle()
        return customer["id"], legs

    async def answered_by(self, customer_id: str, leg_id: str) -> None:
        peer = dict(self.fake.channels[leg_id], state="Up")
        await self.fake.emit(event("Dial", caller=self.fake.channels[customer_id], peer=peer,
                                   dialstring="PJSIP/x", dialstatus="ANSWER"))
        await self.settle()


@pytest_asyncio.fixture(loop_scope="session")
async def pbx(pbx_client: TestClient, fake_asterisk: FakeAsterisk) -> Pbx:
    services = pbx_client.app[SERVICES]
    tokens = {"admin": await login(pbx_client)}
    for username, ext in EXTENSIONS.items():
        await ensure_user(services, username, "operator", extension=ext)
    for username, role in STAFF_USERS.items():
        await ensure_user(services, username, role)
    for username in (*EXTENSIONS, *STAFF_USERS):  # issued directly: no password hashing
        user = await services.users.by_username(username)
        tokens[username] = services.tokens.issue(str(user["id"]), user["role"])[0]
    directory = {op.extension: op for op in await services.users.operators()}
    ops = {}
    for username, ext in EXTENSIONS.items():  # created after the engine started: provision
        await services.runner.handle_now(OperatorProvisioned(directory[ext]))
        ops[username] = directory[ext].id
    return Pbx(pbx_client, fake_asterisk, services, tokens, ops)


async def test_without_ari_every_endpoint_is_503_ast_004(
    client: TestClient, role_tokens: dict[str, str]
) -> None:
    admin = auth(role_tokens["admin"])
    for method, path in (("GET", "extensions"), ("GET", "queues"), ("GET", "realtime-data"),
                         ("POST", "channels/1.1/answer"), ("POST", "channels/1.1/hangup"),
                         ("POST", "originate")):
        resp = await client.request(method, f"/api/asterisk/{path}", headers=admin,
                                    json={"endpoint": "PJSIP/1001", "extension": "100"})
        assert resp.status == 503, path
        err = await resp.json()
        assert (err["code"], err["type"]) == ("AST_004", "service_unavailable")


async def test_roles(pbx: Pbx) -> None:
    forbidden = [("ast_supervisor", "GET", "extensions"), ("ast_supervisor", "GET", "queues"),
                 ("op_a", "GET", "realtime-data"), ("ast_manager", "POST", "originate"),
                 ("ast_manager", "POST", "channels/1.1/answer"),
                 ("ast_supervisor", "POST", "channels/1.1/hangup")]
    for who, method, path in forbidden:
        resp = await pbx.client.request(method, f"/api/asterisk/{path}", headers=pbx.headers(who))
        assert resp.status == 403, (who, path)
        assert (await resp.json())["code"] == "AUTH_003"
    resp = await pbx.client.get("/api/asterisk/realtime-data",
                                headers=pbx.headers("ast_supervisor"))
    assert resp.status == 200
    resp = await pbx.client.get("/api/asterisk/extensions", headers=pbx.headers("ast_manager"))
    assert resp.status == 200


async def test_extensions(pbx: Pbx) -> None:
    pbx.fake.set_device_state("PJSIP/1001", "INUSE")
    resp = await pbx.client.get("/api/asterisk/extensions", headers=pbx.headers("admin"))
    assert resp.status == 200
    items = {i["extension"]: i for i in await resp.json()}
    assert set(items) == {"1001", "1002"}
    assert all(set(i) == {"extension", "technology", "state", "contact_status", "contact_uri",
                          "last_seen"} for i in items.values())
    assert (items["1001"]["technology"], items["1001"]["state"],
            items["1001"]["contact_status"]) == ("PJSIP", "INUSE", "Reachable")
    assert items["1002"]["state"] == "NOT_INUSE"
    assert pbx.requests("GET", "/ari/endpoints") and pbx.requests("GET", "/ari/deviceStates")


async def test_realtime_data(pbx: Pbx) -> None:
    customer, _legs = await pbx.ringing_call("op_a")
    resp = await pbx.client.get("/api/asterisk/realtime-data", headers=pbx.headers("admin"))
    assert resp.status == 200
    data = await resp.json()
    assert set(data) == {"connected", "asterisk_version", "active_channels", "active_calls",
                         "extensions", "channels", "timestamp"}
    assert (data["connected"], data["asterisk_version"]) == (True, "20.5.0")
    assert data["active_channels"] == len(data["channels"]) == 2
    assert data["active_calls"] == len(pbx.services.engine.active_calls()) >= 1
    assert {"name": "PJSIP/1001", "state": "NOT_INUSE", "class": "SIP"} in data["extensions"]
    ch = next(c for c in data["channels"] if c["id"] == customer)
    assert set(ch) == {"id", "name", "state", "caller_number", "duration"}
    assert ch["caller_number"] == "+79001234567" and ch["state"] == "Ring"
    assert re.fullmatch(r"\d\d:\d\d:\d\d", ch["duration"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["timestamp"])


async def test_queues_are_built_from_the_table_and_the_engine(pbx: Pbx) -> None:
    name = f"support_{uuid.uuid4().hex[:6]}"
    await Queues(pbx.services.pool).create(
        {"name": name, "asterisk_name": name, "strategy": "rrmemory", "members": ["3101", "1001"]})
    await pbx.ringing_call("op_a")
    resp = await pbx.client.get("/api/asterisk/queues", headers=pbx.headers("ast_manager"))
    assert resp.status == 200
    item = next(q for q in await resp.json() if q["name"] == name)
    assert set(item) == {"name", "strategy", "members_count", "completed_calls",
                         "abandoned_calls", "service_level", "hold_time", "talk_time",
                         "active_calls", "members"}
    assert (item["strategy"], item["members_count"], item["active_calls"]) == ("rrmemory", 2, 1)
    members = {m["interface"]: m for m in item["members"]}
    assert set(members) == {"PJSIP/3101", "PJSIP/1001"}
    assert members["PJSIP/1001"] == {"interface": "PJSIP/1001", "status": 1, "paused": False,
                                     "calls_taken": 0, "last_call": 0}


async def test_answer_and_hangup_errors_map_to_ast_codes(pbx: Pbx) -> None:
    admin = pbx.headers("admin")
    resp = await pbx.client.post("/api/asterisk/channels/nope.1/answer", headers=admin)
    assert resp.status == 404
    err = await resp.json()
    assert (err["code"], err["type"], err["detail"]) == ("AST_005", "not_found",
                                                         "Channel not found")
    resp = await pbx.client.post("/api/asterisk/channels/nope.1/hangup", headers=admin)
    assert resp.status == 404 and (await resp.json())["code"] == "AST_005"

    pbx.fake.set_channel(channel("outside.1", "PJSIP/1001-00000099", "Ringing"),
                         in_stasis=False)
    resp = await pbx.client.post("/api/asterisk/channels/outside.1/answer", headers=admin)
    assert resp.status == 409
    err = await resp.json()
    assert (err["code"], err["detail"]) == ("AST_006", "Channel not in Stasis application")

    pbx.fake.script_response("DELETE", "/channels/outside.1", 409,
                             {"message": "Channel in a conflicting state"})
    resp = await pbx.client.post("/api/asterisk/channels/outside.1/hangup", headers=admin)
    assert resp.status == 409 and (await resp.json())["code"] == "AST_006"


async def test_admin_answers_and_hangs_up_any_channel(pbx: Pbx) -> None:
    customer, legs = await pbx.ringing_call("op_a")
    resp = await pbx.client.post(f"/api/asterisk/channels/{legs['op_a']}/answer",
                                 headers=pbx.headers("admin"))
    assert resp.status == 200
    assert await resp.json() == {"success": True, "channel_id": legs["op_a"]}
    assert pbx.fake.channels[legs["op_a"]]["state"] == "Up"
    resp = await pbx.client.post(f"/api/asterisk/channels/{customer}/hangup",
                                 headers=pbx.headers("admin"))
    assert resp.status == 200
    assert customer not in pbx.fake.channels
    assert pbx.requests("DELETE", f"/channels/{customer}")[-1].query == {"reason": "normal"}


async def test_operator_controls_only_calls_offered_to_or_held_by_them(pbx: Pbx) -> None:
    # Offered to A only: B may not touch it (and ARI is never asked).
    customer, legs = await pbx.ringing_call("op_a")
    call = pbx.services.engine.call_for_channel(customer)
    assert call is not None and pbx.ops["op_a"] in call.offered_operator_ids
    before = len(pbx.fake.requests)
    for action in ("answer", "hangup"):
        resp = await pbx.client.post(f"/api/asterisk/channels/{legs['op_a']}/{action}",
                                     headers=pbx.headers("op_b"))
        assert resp.status == 403 and (await resp.json())["code"] == "AUTH_003"
    assert len(pbx.fake.requests) == before
    resp = await pbx.client.post(f"/api/asterisk/channels/{legs['op_a']}/answer",
                                 headers=pbx.headers("op_a"))
    assert resp.status == 200
    assert pbx.requests("POST", f"/channels/{legs['op_a']}/answer")
    # An unknown channel is not theirs either: 403, not ARI's 404.
    resp = await pbx.client.post("/api/asterisk/channels/nope.2/hangup",
                                 headers=pbx.headers("op_a"))
    assert resp.status == 403

    # Rung at both, answered by A: now A holds it and B (only rung) may not hang it up.
    customer, legs = await pbx.ringing_call("op_a", "op_b")
    resp = await pbx.client.post(f"/api/asterisk/channels/{customer}/hangup",
                                 headers=pbx.headers("op_b"))
    assert resp.status == 200, "while it rings, it is offered to B too"
    customer, legs = await pbx.ringing_call("op_a", "op_b")
    await pbx.answered_by(customer, legs["op_a"])
    call = pbx.services.engine.call_for_channel(customer)
    assert call is not None and call.operator_id == pbx.ops["op_a"]
    resp = await pbx.client.post(f"/api/asterisk/channels/{customer}/hangup",
                                 headers=pbx.headers("op_b"))
    assert resp.status == 403
    resp = await pbx.client.post(f"/api/asterisk/channels/{customer}/hangup",
                                 headers=pbx.headers("op_a"))
    assert resp.status == 200
    assert customer not in pbx.fake.channels  # the fake hangs up just that channel


async def test_originate(pbx: Pbx) -> None:
    body = {"endpoint": "PJSIP/1001", "context": "internal", "extension": "79001234567",
            "priority": 1, "timeout": 30}
    resp = await pbx.client.post("/api/asterisk/originate", headers=pbx.headers("admin"),
                                 json=body)
    assert resp.status == 200, await resp.text()
    out = await resp.json()
    assert out["success"] is True and out["channel_id"] in pbx.fake.channels
    assert out["state"] == "Down" and out["name"].startswith("PJSIP/1001-")
    sent = pbx.requests("POST", "/ari/channels")[-1].query
    # the channel id is ours, so the source knows the dialled number before the first frame
    assert sent.pop("channelId") == out["channel_id"] and out["channel_id"].startswith("sb-")
    assert sent == {"endpoint": "PJSIP/1001", "context": "internal",
                    "extension": "79001234567", "priority": "1", "timeout": "30"}

    own = dict(body, endpoint="PJSIP/3101")
    resp = await pbx.client.post("/api/asterisk/originate", headers=pbx.headers("op_a"),
                                 json=own)
    assert resp.status == 200
    before = len(pbx.fake.requests)
    for target in ("PJSIP/3102", "PJSIP/1001", "Local/3101@agents", "PJSIP/31011"):
        resp = await pbx.client.post("/api/asterisk/originate", headers=pbx.headers("op_a"),
                                     json=dict(body, endpoint=target))
        assert resp.status == 403, target
        assert (await resp.json())["field"] == "endpoint"
    assert len(pbx.fake.requests) == before

    for bad in ({"endpoint": "PJSIP/1001"}, dict(body, endpoint="1001"),
                dict(body, timeout=0), dict(body, priority="first")):
        resp = await pbx.client.post("/api/asterisk/originate", headers=pbx.headers("admin"),
                                     json=bad)
        assert resp.status == 422, bad

    pbx.fake.script_response("POST", "/channels", 409,
                             {"message": "Channel with given unique ID already exists"})
    resp = await pbx.client.post("/api/asterisk/originate", headers=pbx.headers("admin"),
                                 json=body)
    assert resp.status == 409 and (await resp.json())["code"] == "AST_006"
    pbx.fake.script_response("POST", "/channels", 400, {"message": "Allocation failed"})
    resp = await pbx.client.post("/api/asterisk/originate", headers=pbx.headers("admin"),
                                 json=body)
    assert resp.status == 400
    assert (await resp.json())["code"] == "AST_007"


async def test_asterisk_own_error_text_reaches_the_user(pbx: Pbx) -> None:
    """Real Asterisk answers an originate to an endpoint it cannot dial with 500
    {"error": "Allocation failed"}: that is Asterisk refusing, not Asterisk being down."""
    body = {"endpoint": "PJSIP/nowhere", "extension": "79001234567"}
    pbx.fake.script_response("POST", "/channels", 500, {"error": "Allocation failed"})
    resp = await pbx.client.post("/api/asterisk/originate", headers=pbx.headers("admin"),
                                 json=body)
    err = await resp.json()
    assert (resp.status, err["code"], err["detail"]) == (502, "AST_008", "Allocation failed")
    assert err["type"] == "upstream_error"
    pbx.fake.script_response("POST", "/channels", 503, {"message": "Asterisk is booting"})
    resp = await pbx.client.post("/api/asterisk/originate", headers=pbx.headers("admin"),
                                 json=body)
    err = await resp.json()
    assert (resp.status, err["code"], err["detail"]) == (503, "AST_004", "Asterisk is booting")


async def test_an_originated_call_records_the_number_dialled(pbx: Pbx) -> None:
    """The originated channel starts at the operator's own extension (real ARI); the record
    still says the number dialled, and which source said so."""
    resp = await pbx.client.post("/api/asterisk/originate", headers=pbx.headers("op_a"),
                                 json={"endpoint": "PJSIP/3101", "extension": "79001234567",
                                       "context": "internal"})
    assert resp.status == 200, await resp.text()
    channel_id = (await resp.json())["channel_id"]
    assert pbx.fake.channels[channel_id]["dialplan"]["exten"] == "3101"  # as Asterisk has it
    await pbx.settle()
    call = pbx.services.engine.call_for_channel(channel_id)
    assert call is not None
    assert (call.direction.value, call.caller_number, call.called_number, call.source) == (
        "outbound", "3101", "79001234567", "ari")
    await pbx.services.records.flush()
    row = await pbx.services.pool.fetchrow(
        "SELECT called_number, caller_number, source FROM calls WHERE id = $1::uuid", call.id)
    assert row is not None and dict(row) == {"called_number": "79001234567",
                                             "caller_number": "3101", "source": "ari"}
    resp = await pbx.client.post(f"/api/asterisk/channels/{channel_id}/hangup",
                                 headers=pbx.headers("admin"))
    assert resp.status == 200


async def test_extension_states_agree_with_the_operator_view(pbx: Pbx) -> None:
    """As on a real queue, the agents' phones (PJSIP/<ext>) keep NOT_INUSE in ARI while their
    queue legs ring and talk: the views follow the engine, like /api/operators/."""
    for ext in EXTENSIONS.values():
        await pbx.fake.emit(event("EndpointStateChange", endpoint=endpoint("PJSIP", ext)))
        await pbx.fake.emit(event("DeviceStateChanged",
                                  device_state=device_state(f"PJSIP/{ext}", "NOT_INUSE")))
    admin = pbx.headers("admin")

    async def states() -> tuple[str, str, str]:
        realtime = await (await pbx.client.get("/api/asterisk/realtime-data",
                                               headers=admin)).json()
        in_realtime = {e["name"]: e["state"] for e in realtime["extensions"]}
        extensions = await (await pbx.client.get("/api/asterisk/extensions",
                                                 headers=admin)).json()
        in_extensions = {e["extension"]: e["state"] for e in extensions}
        operators = await (await pbx.client.get("/api/operators/", headers=admin)).json()
        items = operators["items"] if isinstance(operators, dict) else operators
        status = next(o["status"] for o in items if o["extension"] == "3101")
        return in_realtime["PJSIP/3101"], in_extensions["3101"], status

    customer, legs = await pbx.ringing_call("op_a")
    realtime, listed, _status = await states()
    assert realtime == listed == "RINGING"
    await pbx.answered_by(customer, legs["op_a"])
    assert await states() == ("INUSE", "INUSE", "busy")
    for channel_id in (customer, legs["op_a"]):
        resp = await pbx.client.post(f"/api/asterisk/channels/{channel_id}/hangup",
                                     headers=admin)
        assert resp.status == 200
    await pbx.settle()
    assert await states() == ("NOT_INUSE", "NOT_INUSE", "online")
