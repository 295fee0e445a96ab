"""The whole live pipeline over real sockets: fake Asterisk (ARI) -> Switchboard -> dashboards.

Real PostgreSQL and Redis; the WebSocket clients log in through the REST API like a dashboard.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from api.state import SERVICES, Services
from connectors.fakes.ari_server import FakeAsterisk, channel, endpoint, event, replay_trace
from engine.model import call_id_for
from storage import keys
from tests.helpers import ADMIN_PASSWORD, login, password_hash

TRACE = Path(__file__).parent / "data" / "inbound_answered.ari.jsonl"
TRACE_CALLER_CHANNEL = "1795336312.0"
PASSWORD = "pipeline-pass"

# user -> (role, group, extension)
PEOPLE = {
    "sup_a": ("supervisor", "A", None),
    "sup_b": ("supervisor", "B", None),
    "mgr": ("manager", None, None),
    "op1001": ("operator", "A", "1001"),
    "op1002": ("operator", "B", "1002"),
}


@pytest_asyncio.fixture(loop_scope="session")
async def people(database_url: str) -> dict[str, str]:
    """Groups A and B, a supervisor each, a manager, operators 1001 (A) and 1002 (B); written
    before the app starts, so its engine knows the operators from the beginning."""
    import asyncpg

    from storage.users import Users

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        groups = {name: str(await pool.fetchval(
            "INSERT INTO groups (name) VALUES ($1) RETURNING id", name)) for name in ("A", "B")}
        users = Users(pool)
        # the admin, as the app would create it on an empty database
        await users.create(username="admin", email="admin@example.com", name="Admin",
                           role="admin", password_hash=password_hash(ADMIN_PASSWORD))
        for username, (role, group, ext) in PEOPLE.items():
            await users.create(username=username, email=f"{username}@example.com",
                               name=username, role=role, password_hash=password_hash(PASSWORD),
                               group_id=groups[group] if group else None, extension=ext)
        rows = await pool.fetch("SELECT o.extension, o.id FROM operators o")
        return {r["extension"]: str(r["id"]) for r in rows}
    finally:
        await pool.close()


@pytest_asyncio.fixture(loop_scope="session")
async def live(people: dict[str, str], fake_asterisk: FakeAsterisk,
               pbx_client: TestClient) -> AsyncIterator[Live]:
    live = Live(pbx_client, fake_asterisk, people)
    yield live
    await live.close()


class Dashboard:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data: dict[str, Any] = json.loads(msg.data)
        self.messages.append(data)
        return data

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        return [(m["type"], m["data"]) for m in self.messages if "id" in m
                and m["type"] != "snapshot"]

    async def collect(self, quiet: float = 0.3) -> list[tuple[str, dict[str, Any]]]:
        """Read until nothing arrives for ``quiet`` seconds; returns everything seen so far."""
        while True:
            try:
                msg = await self.ws.receive(timeout=quiet)
            except TimeoutError:
                return self.events()
            self.messages.append(json.loads(msg.data))


class Live:
    def __init__(self, client: TestClient, fake: FakeAsterisk, ops: dict[str, str]) -> None:
        self.client, self.fake, self.ops = client, fake, ops
        self.services: Services = client.app[SERVICES]
        self.dashboards: list[Dashboard] = []

    async def dashboard(self, username: str, password: str = PASSWORD) -> Dashboard:
        token = await login(self.client, username, password)
        ws = await self.client.ws_connect(f"/ws/events?token={token}")
        board = Dashboard(ws)
        assert (await board.receive())["type"] == "auth_ok"
        assert (await board.receive())["type"] == "snapshot"
        self.dashboards.append(board)
        return board

    async def settle(self) -> None:
        """Let the fake's frames travel, the runner apply them and the sink write them."""
        for _ in range(50):
            await asyncio.sleep(0.05)
            if self.services.runner.pending == 0:
                break
        await self.services.runner.drain()
        await self.services.records.flush()
        await self.services.live_state.flush()

    async def call_row(self, call_id: str) -> dict[str, Any] | None:
        row = await self.services.pool.fetchrow("SELECT * FROM calls WHERE id = $1::uuid",
                                                call_id)
        return dict(row) if row else None

    async def close(self) -> None:
        for board in self.dashboards:
            await board.ws.close()


async def replay(fake: FakeAsterisk, rekey: str | None = None, *, duplicate: bool = False) -> None:
    for frame in replay_trace(TRACE, rekey=rekey):
        await fake.emit(frame)
        if duplicate:
            await fake.emit(frame)


def _types(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [t for t, _ in events]


async def test_full_inbound_call_per_role_and_record(live: Live) -> None:
    admin = await live.dashboard("admin", ADMIN_PASSWORD)
    boards = {u: await live.dashboard(u) for u in ("sup_a", "sup_b", "mgr", "op1001", "op1002")}
    op1001, op1002 = live.ops["1001"], live.ops["1002"]
    call_id = call_id_for(f"t1-{TRACE_CALLER_CHANNEL}")

    await replay(live.fake, "t1")
    await live.settle()

    everything = await admin.collect()
    calls = [(t, d) for t, d in everything if t.startswith("call_")]
    assert calls == [
        ("call_started", {"call_id": call_id, "channel_id": f"t1-{TRACE_CALLER_CHANNEL}",
                          "caller_number": "+79001234567", "timestamp": "2026-11-22T08:31:52Z"}),
        ("call_answered", {"call_id": call_id, "operator_id": op1001,
                           "answer_time": "2026-11-22T08:31:54Z"}),
        ("call_ended", {"call_id": call_id, "end_time": "2026-11-22T08:31:57Z", "duration": 3,
                        "status": "completed"}),
    ]
    status_changes = [(d["operator_id"], d["status"], d["activity"]) for t, d in everything
                      if t == "operator_status_changed"]
    assert status_changes == [   # rung operators are shown ringing, not busy (issue 8)
        (op1002, "online", "ringing"), (op1001, "online", "ringing"),
        (op1001, "busy", "in_call"), (op1002, "online", "available"),
        (op1001, "online", "available")]
    ids = [m["id"] for m in admin.messages if "id" in m and m["type"] != "snapshot"]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)

    # The manager sees what the admin sees; supervisors see their group's operator and the call
    # (1001 of group A answered, 1002 of group B was rung); each operator sees themselves only.
    assert (await boards["mgr"].collect()) == everything
    for sup, own in (("sup_a", op1001), ("sup_b", op1002)):
        seen = await boards[sup].collect()
        assert _types([e for e in seen if e[0].startswith("call_")]) == [
            "call_started", "call_answered", "call_ended"]
        assert {d["operator_id"] for t, d in seen if t.startswith("operator_")} == {own}
    for op_user, own in (("op1001", op1001), ("op1002", op1002)):
        seen = await boards[op_user].collect()
        assert {d["operator_id"] for t, d in seen if t.startswith("operator_")} == {own}
        assert _types([e for e in seen if e[0].startswith("call_")]) == [
            "call_started", "call_answered", "call_ended"]

    row = await live.call_row(call_id)
    assert row is not None
    assert (row["status"], row["caller_number"], str(row["operator_id"]), row["duration"],
            row["wait_seconds"], row["direction"], row["source"]) == (
        "completed", "+79001234567", op1001, 3, 2, "inbound", "ari")
    assert row["operator_extension"] == "1001"
    assert {str(i) for i in row["offered_operator_ids"]} == {op1001, op1002}
    assert {str(i) for i in row["rung_operator_ids"]} == {op1001, op1002}
    assert row["answer_time"].isoformat() == "2026-11-22T08:31:54.689000+00:00"
    assert not await live.services.redis.sismember(keys.ACTIVE_CALLS, call_id)


async def test_duplicated_frames_change_nothing(live: Live) -> None:
    admin = await live.dashboard("admin", ADMIN_PASSWORD)
    await replay(live.fake, "t2", duplicate=True)
    await live.settle()
    calls = [t for t, _ in await admin.collect() if t.startswith("call_")]
    assert calls == ["call_started", "call_answered", "call_ended"]
    row = await live.call_row(call_id_for(f"t2-{TRACE_CALLER_CHANNEL}"))
    assert row is not None and row["status"] == "completed" and row["duration"] == 3


async def _customer_call(fake: FakeAsterisk, cid: str, number: str) -> list[str]:
    """A customer on a SIP trunk, ringing in; the dialplan answers (Up) and queues the call."""
    ch = channel(f"{cid}.1", f"PJSIP/trunk-{cid}", "Ring", exten="200", context="from-trunk")
    await fake.emit(event("ChannelCreated", channel=ch))
    ch = dict(ch, caller={"name": "", "number": number})
    await fake.emit(event("ChannelCallerId", channel=ch, caller_presentation=0,
                          caller_presentation_txt="Presentation Allowed"))
    await fake.emit(event("ChannelStateChange", channel=dict(ch, state="Up")))
    return [ch["id"]]


async def _hang_up(fake: FakeAsterisk, channel_ids: list[str], cause: int = 16) -> None:
    for chan_id in channel_ids:
        await fake.emit(event("ChannelDestroyed", channel=fake.channels[chan_id], cause=cause,
                              cause_txt="Normal Clearing"))


async def test_missed_call_while_operator_rings(live: Live) -> None:
    admin = await live.dashboard("admin", ADMIN_PASSWORD)
    op = await live.dashboard("op1001")
    customer = await _customer_call(live.fake, "m1", "+79005550001")
    agent = channel("m1.3", "Local/1001@agents-m1;1", "Ringing", exten="1001",
                    context="agents")
    await live.fake.emit(event("ChannelCreated", channel=agent))
    await live.fake.emit(event("Dial", caller=live.fake.channels[customer[0]], peer=agent,
                               dialstring="Local/1001@agents", dialstatus="RINGING"))
    await live.fake.emit(event("Dial", caller=live.fake.channels[customer[0]], peer=agent,
                               dialstring="Local/1001@agents", dialstatus="CANCEL"))
    await _hang_up(live.fake, ["m1.3", *customer])
    await live.settle()

    call_id = call_id_for("m1.1")
    ended = [d for t, d in await admin.collect() if t == "call_ended"]
    assert len(ended) == 1 and ended[0]["call_id"] == call_id
    assert (ended[0]["status"], ended[0]["duration"]) == ("missed", 0)
    assert [t for t, d in await op.collect() if t.startswith("call_")] == [
        "call_started", "call_ended"]  # offered to 1001, so 1001 sees it
    row = await live.call_row(call_id)
    assert row is not None
    assert (row["status"], row["missed_reason"], row["operator_id"]) == (
        "missed", "abandoned_in_queue", None)
    # It counts against 1001, whose leg rang without answer.
    assert [str(i) for i in row["rung_operator_ids"]] == [live.ops["1001"]]


async def test_answered_by_an_extension_of_no_operator_is_completed(live: Live) -> None:
    admin = await live.dashboard("admin", ADMIN_PASSWORD)
    customer = await _customer_call(live.fake, "u1", "+79005550003")
    agent = channel("u1.3", "PJSIP/1099-000000a1", "Ringing", exten="1099", context="agents")
    await live.fake.emit(event("ChannelCreated", channel=agent))
    for status in ("RINGING", "ANSWER"):
        await live.fake.emit(event("Dial", caller=live.fake.channels[customer[0]], peer=agent,
                                   dialstring="PJSIP/1099", dialstatus=status))
    await _hang_up(live.fake, ["u1.3", *customer])
    await live.settle()

    call_id = call_id_for("u1.1")
    seen = [(t, d) for t, d in await admin.collect() if d.get("call_id") == call_id]
    assert [t for t, _ in seen] == ["call_started", "call_answered", "call_ended"]
    assert seen[1][1]["operator_id"] is None
    assert seen[2][1]["status"] == "completed"
    row = await live.call_row(call_id)
    assert row is not None
    assert (row["status"], row["operator_id"], row["operator_extension"], row["missed_reason"]
            ) == ("completed", None, "1099", None)


async def test_operator_goes_offline_and_back(live: Live) -> None:
    sup_a = await live.dashboard("sup_a")
    op1001 = live.ops["1001"]
    await live.fake.emit(event("EndpointStateChange",
                               endpoint=endpoint("PJSIP", "1001", "offline")))
    await live.settle()
    await live.fake.emit(event("EndpointStateChange",
                               endpoint=endpoint("PJSIP", "1001", "online")))
    await live.settle()
    seen = [(t, d["operator_id"], d.get("status")) for t, d in await sup_a.collect()]
    assert ("operator_status_changed", op1001, "offline") in seen
    i = seen.index(("operator_status_changed", op1001, "offline"))
    assert ("operator_status_changed", op1001, "online") in seen[i:]
    assert ("operator_logged_in", op1001, None) in seen[i:]
    row = await live.services.pool.fetchrow("SELECT status FROM operators WHERE id = $1::uuid",
                                            op1001)
    assert row["status"] == "online"


async def test_call_that_ends_while_disconnected_is_ended_by_resync(live: Live) -> None:
    admin = await live.dashboard("admin", ADMIN_PASSWORD)
    stream = live.services.pbx.sources[0].stream
    customer = await _customer_call(live.fake, "r1", "+79005550002")
    await live.settle()
    assert [t for t, _ in await admin.collect()] == ["call_started"]

    connects = stream.stats["connects"]
    for chan_id in customer:  # the caller hangs up while we are away
        live.fake.remove_channel(chan_id)
    await live.fake.drop_connections(abrupt=True)
    for _ in range(100):
        await asyncio.sleep(0.05)
        if stream.stats["connects"] > connects and stream.connected:
            break
    assert stream.stats["connects"] > connects
    await live.settle()

    ended = [d for t, d in await admin.collect() if t == "call_ended"]
    assert [e["call_id"] for e in ended] == [call_id_for("r1.1")]
    assert ended[0]["status"] == "missed"
    assert call_id_for("r1.1") not in {c.id for c in live.services.engine.active_calls()}
    row = await live.call_row(call_id_for("r1.1"))
    assert row is not None and row["status"] == "missed" and row["end_time"] is not None


async def test_malformed_frames_are_counted_and_harmless(live: Live) -> None:
    admin = await live.dashboard("admin", ADMIN_PASSWORD)
    await live.fake.send_raw("not json at all")
    stamp = '"timestamp": "2026-11-22T08:00:00.000+0000"'
    await live.fake.send_raw('{"type": "ChannelCreated", ' + stamp + "}")  # no channel
    await live.fake.send_raw('{"type": "SomethingNew", ' + stamp + "}")
    await live.fake.send_raw("[1, 2]")
    await _customer_call(live.fake, "x1", "+79005550003")
    await live.settle()
    assert [t for t, _ in await admin.collect()] == ["call_started"]
    source = live.services.pbx.sources[0]
    stream, ingest = source.stream, source
    assert stream.stats["malformed_json"] >= 1 and stream.stats["not_object"] >= 1
    assert sum(v for k, v in ingest.stats.items() if k.startswith("malformed:")) >= 1
    assert ingest.stats["ignored"] >= 1


@pytest.mark.parametrize("who", ["nobody"])
async def test_ws_rejects_a_bad_token(live: Live, who: str) -> None:
    ws = await live.client.ws_connect(f"/ws/events?token={who}")
    msg = await ws.receive(timeout=5)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == 4001


async def test_queue_from_ari_alone_reaches_dashboards_and_records(live: Live) -> None:
    """Issue 9: the shared queue shift over the fake ARI -- the calls are recorded in their
    queue with the queue_log's waits, and dashboards get the queue's figures live."""
    admin = await live.dashboard("admin", ADMIN_PASSWORD)
    shift = TRACE.parent / "queue_shift.ari.jsonl"
    for frame in replay_trace(shift, rekey="qs1"):
        await live.fake.emit(frame)
    await live.settle()

    updates = [d for t, d in await admin.collect() if t == "queue_updated"]
    assert updates, "no queue_updated reached the dashboard"
    last = updates[-1]
    assert (last["queue"], last["service_level_seconds"], last["callers_waiting"]) == (
        "support", 20, 0)
    for window in ("15m", "1h", "24h", "day"):
        figures = last["stats"][window]
        assert (figures["offered"], figures["answered"], figures["abandoned"]) == (2, 1, 1)
        assert (figures["service_level"], figures["abandon_rate"]) == (50.0, 50.0)
        assert figures["average_speed_of_answer"] == 3.0      # queue_log CONNECT: 3

    answered = await live.call_row(call_id_for("qs1-1796203666.32"))
    abandoned = await live.call_row(call_id_for("qs1-1796203671.36"))
    assert answered is not None and abandoned is not None
    assert (answered["queue_name"], answered["status"], answered["wait_seconds"],
            answered["duration"]) == ("support", "completed", 3, 2)   # CONNECT 3, COMPLETE 2
    assert (abandoned["queue_name"], abandoned["status"], abandoned["missed_reason"],
            abandoned["wait_seconds"]) == ("support", "missed", "abandoned_in_queue", 2)
