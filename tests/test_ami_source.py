"""The AMI source: the normalizer on the real trace, resync on every login, and the whole app fed
by AMI alone or by ARI and AMI of the same Asterisk (one call, counted once) over the fake
servers, real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from api.config import Settings
from api.state import SERVICES, Services
from connectors.ami.normalize import AmiNormalizer, AmiSnapshot
from connectors.ami.protocol import AmiMessage, AmiProtocol, Kind
from connectors.ami.source import ARI_OWNED
from connectors.ari.normalize import normalize as normalize_ari
from connectors.fakes.ami_server import FakeAmi
from connectors.fakes.ari_server import FakeAsterisk, replay_trace
from engine.effects import CallAnswered, CallEnded, CallStarted, Effect
from engine.events import ChannelCreated, ChannelHungUp, DialUpdated, Event, Resynced
from engine.machine import Engine
from engine.model import Operator, OperatorStatus, call_id_for
from service.pbx import PbxConnection, PbxSettings
from tests.app_fixtures import _client, app_on_ari_and_ami
from tests.helpers import ADMIN_PASSWORD, login
from tests.test_ami_client import until
from tests.test_fake_ami import idle_state
from tests.test_pipeline import Dashboard, people  # noqa: F401  (people: a fixture)

DATA = Path(__file__).resolve().parent / "data"
AMI_TRACE, ARI_TRACE = DATA / "inbound_answered.ami.jsonl", DATA / "inbound_answered.ari.jsonl"
CALLER = "1795336312.0"  # the caller's channel: ARI channel id == AMI Uniqueid == Linkedid
CALL_ID = call_id_for(CALLER)
OPERATORS = (
    Operator(id="op-1001", extension="1001", group_id="g-a", status=OperatorStatus.ONLINE),
    Operator(id="op-1002", extension="1002", group_id="g-b", status=OperatorStatus.ONLINE),
)
FAST = {"backoff_initial": 0.01, "backoff_max": 0.05, "rng": random.Random(3)}


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def ami_events(path: Path = AMI_TRACE) -> list[tuple[float, AmiMessage]]:
    """(capture time, message) of every event of an AMI capture, parsed by our protocol."""
    out = []
    for record in _jsonl(path):
        protocol = AmiProtocol(expect_banner=False)
        protocol.receive_data(record["raw"].encode())
        out += [(record["ts"], m) for m in protocol.events_received() if m.kind is Kind.EVENT]
    return out


def ari_events() -> list[tuple[float, Event]]:
    out = []
    for record in _jsonl(ARI_TRACE):
        event = normalize_ari(record["event"])
        if event is not None:
            out.append((record["ts"], event))
    return out


def milestones(effects: list[Effect]) -> list[tuple[str, str]]:
    return [(type(e).__name__, e.call.id) for e in effects
            if isinstance(e, CallStarted | CallAnswered | CallEnded)]


# -- the normalizer and the engine (pure) ------------------------------------------------------


def test_the_ami_trace_alone_gives_the_call_ari_gives() -> None:
    normalizer = AmiNormalizer()
    engine, effects = Engine(OPERATORS), []
    for ts, message in ami_events():
        event = normalizer.event(message, datetime.fromtimestamp(ts, UTC))
        if event is not None:
            assert event.source == "ami"
            effects += engine.handle(event)
    ari_engine, ari_effects = Engine(OPERATORS), []
    for _, event in ari_events():
        ari_effects += ari_engine.handle(event)
    assert milestones(effects) == milestones(ari_effects) == [
        ("CallStarted", CALL_ID), ("CallAnswered", CALL_ID), ("CallEnded", CALL_ID)]
    answered = next(e for e in effects if isinstance(e, CallAnswered))
    assert answered.call.operator_id == "op-1001"
    started = next(e for e in effects if isinstance(e, CallStarted))
    assert (started.call.caller_number, started.call.caller_name) == (
        "+79001234567", "Иван Петров")
    assert normalizer.stats["receipt_time"] > 0  # the trace has no Timestamp headers
    # the queue events are the queue model's now (tests/test_ami_queues.py), none left over
    assert normalizer.stats["deferred:queue"] == 0
    assert any(type(e).__name__ == "QueueCallerLeft" and e.reason == "answered"  # type: ignore[union-attr]
               for e in (normalizer.event(m, datetime.now(UTC)) for _, m in ami_events()))


def test_timestamp_header_is_the_event_time() -> None:
    stamped = AmiMessage(Kind.EVENT, (("Event", "Hangup"), ("Channel", "PJSIP/1-1"),
                                      ("Uniqueid", "1.1"), ("Cause", "16"),
                                      ("Cause-txt", "Normal Clearing"),
                                      ("Timestamp", "1795336317.250000")))
    received = datetime(2030, 1, 1, tzinfo=UTC)
    normalizer = AmiNormalizer()
    event = normalizer.event(stamped, received)
    assert isinstance(event, ChannelHungUp)
    assert event.ts == datetime.fromtimestamp(1795336317.25, UTC)
    assert (event.cause, event.cause_txt) == (16, "Normal Clearing")
    assert normalizer.stats["receipt_time"] == 0
    unstamped = AmiMessage(Kind.EVENT, stamped.headers[:-1])
    assert normalizer.event(unstamped, received).ts == received  # type: ignore[union-attr]
    assert normalizer.stats["receipt_time"] == 1


def test_dial_of_an_originated_leg_has_no_caller_and_unknown_is_empty() -> None:
    message = AmiMessage(Kind.EVENT, (
        ("Event", "DialBegin"), ("DestChannel", "PJSIP/1001-1"), ("DestChannelStateDesc", "Down"),
        ("DestCallerIDNum", "<unknown>"), ("DestCallerIDName", "<unknown>"),
        ("DestUniqueid", "9.1"), ("DialString", "1001")))
    event = AmiNormalizer().event(message, datetime.now(UTC))
    assert isinstance(event, DialUpdated)
    assert event.caller is None and event.status == ""
    assert (event.peer.id, event.peer.caller_number, event.peer.caller_name) == ("9.1", "", "")


def test_resync_snapshot_of_the_real_pbx_is_one_resynced() -> None:
    """The captured idle ``DeviceStateList`` plus a channel: one Resynced, unreadable skipped."""
    devices = [m for _, m in ami_events(DATA / "snapshots" / "idle.DeviceStateList.ami.jsonl")
               if m.name == "DeviceStateChange"]
    channel = AmiMessage(Kind.EVENT, (
        ("Event", "CoreShowChannel"), ("Channel", "PJSIP/1001-00000001"),
        ("ChannelState", "6"), ("CallerIDNum", "1001"), ("CallerIDName", "<unknown>"),
        ("Uniqueid", "1795336400.7"), ("Linkedid", "1795336400.7"), ("Application", "Dial")))
    broken = AmiMessage(Kind.EVENT, (("Event", "CoreShowChannel"), ("Channel", "PJSIP/x")))
    normalizer = AmiNormalizer()
    ts = datetime(2026, 11, 22, 8, 31, tzinfo=UTC)
    resync = normalizer.resync(AmiSnapshot((channel, broken), devices), ts)
    assert (resync.source, resync.ts, resync.endpoints) == ("ami", ts, ())
    [info] = resync.channels
    assert (info.id, info.name, info.state, info.caller_number, info.caller_name) == (
        "1795336400.7", "PJSIP/1001-00000001", "Up", "1001", "")
    assert len(resync.devices) == len(devices) > 0
    assert ("Queue:support_avail", "INUSE") in {(d.name, d.state) for d in resync.devices}
    assert normalizer.stats["resync_skipped"] == 1


@pytest.mark.parametrize("order", ["ari_first", "ami_first", "interleaved"])
def test_engine_fed_both_streams_keeps_one_call(order: str) -> None:
    """Even without the source layer's rule, ARI and AMI of one call make one call."""
    normalizer = AmiNormalizer()
    ami = [(ts, e) for ts, m in ami_events()
           if (e := normalizer.event(m, datetime.fromtimestamp(ts, UTC))) is not None]
    ari = ari_events()
    stream = {"ari_first": ari + ami, "ami_first": ami + ari,
              "interleaved": sorted(ari + ami, key=lambda pair: pair[0])}[order]
    engine, effects = Engine(OPERATORS), []
    for _, event in stream:
        effects += engine.handle(event)
    assert [name for name, _ in milestones(effects)] == [
        "CallStarted", "CallAnswered", "CallEnded"]
    assert {call_id for _, call_id in milestones(effects)} == {CALL_ID}


# -- the source over the fake AMI --------------------------------------------------------------


@pytest_asyncio.fixture
async def fake_ami() -> AsyncIterator[FakeAmi]:
    async with FakeAmi(username="ami", secret="ami-secret", state=idle_state()) as fake:
        yield fake


def ami_settings(fake: FakeAmi, **more: Any) -> PbxSettings:
    return PbxSettings(ami_host=fake.host, ami_port=fake.port, ami_username="ami",
                       ami_secret="ami-secret", **more)


async def test_resync_on_every_login(fake_ami: FakeAmi) -> None:
    submitted: list[Event] = []
    pbx = PbxConnection(ami_settings(fake_ami), submitted.append, ami_options=FAST)
    await pbx.start()
    try:
        await pbx.wait_connected()
        assert pbx.mode == "ami" and pbx.commands is None
        assert [(s.name, s.connected, s.reason) for s in pbx.status()] == [("ami", True, None)]
        [resync] = [e for e in submitted if isinstance(e, Resynced)]
        assert resync.source == "ami"
        assert [c.id for c in resync.channels] == ["1796203690.1"]  # the waiting caller
        source = pbx.sources[0]
        snapshot = source.queue_snapshot  # type: ignore[attr-defined]
        assert snapshot.status[0].name == "QueueParams"
        assert [m["Queue"] for m in snapshot.summary] == ["support"]

        await fake_ami.drop_connections()
        await fake_ami.wait_for_logins(2)
        await pbx.wait_connected()
        await until(lambda: len([e for e in submitted if isinstance(e, Resynced)]) == 2)
        asked = [a.name for a in fake_ami.actions]
        assert asked.count("CoreShowChannels") == asked.count("QueueStatus") == 2
        assert asked.count("QueueSummary") == 2
    finally:
        await pbx.close()


async def test_wrong_secret_shows_in_status(fake_ami: FakeAmi) -> None:
    fake_ami.secret = "changed-on-the-pbx"
    pbx = PbxConnection(ami_settings(fake_ami), lambda e: None, ami_options=FAST)
    await pbx.start()
    try:
        await until(lambda: fake_ami.failed_logins >= 2)  # retried, with backoff
        [status] = pbx.status()
        assert not status.connected and not pbx.connected
        assert status.reason is not None and status.reason.startswith("authentication failed")
        assert "Authentication failed" in status.reason
    finally:
        await pbx.close()


async def test_with_ari_too_ami_leaves_channels_to_ari(fake_ami: FakeAmi) -> None:
    submitted: list[Event] = []
    async with FakeAsterisk(username="ari", password="pw", app="both") as ari:
        settings = ami_settings(fake_ami, ari_url=ari.url, ari_username="ari", ari_password="pw",
                                ari_app="both")
        pbx = PbxConnection(settings, submitted.append, ami_options=FAST)
        await pbx.start()
        try:
            await pbx.wait_connected()
            assert pbx.mode == "ari+ami" and pbx.commands is not None
            assert [s.name for s in pbx.status()] == ["ari", "ami"]
            await fake_ami.replay(AMI_TRACE)
            ami_source = pbx.sources[1]
            await fake_ami.emit([("Event", "Hangup"), ("Uniqueid", "last.1"),
                                 ("Channel", "PJSIP/x-1")])
            owned = sum(1 for _, m in ami_events() if m.name in ARI_OWNED) + 1  # + that Hangup
            await until(lambda: ami_source.stats["left_to_ari"] >= owned)  # type: ignore[attr-defined]
            # AMI feeds only the queues then (their resync and events), nothing ARI says
            from_ami = {type(e).__name__ for e in submitted if getattr(e, "source", None) == "ami"}
            assert from_ami and all(name.startswith("Queue") for name in from_ami)
            assert ami_source.stats["left_to_ari"] == owned  # type: ignore[attr-defined]
            asked = [a.name for a in fake_ami.actions]
            assert "CoreShowChannels" not in asked and "QueueStatus" in asked
        finally:
            await pbx.close()


# -- the whole app over real PostgreSQL and Redis ----------------------------------------------


async def settle(services: Services) -> None:
    for _ in range(50):
        await asyncio.sleep(0.05)
        if services.runner.pending == 0:
            break
    await services.runner.drain()
    await services.records.flush()
    await services.live_state.flush()


async def calls_seen(client: TestClient) -> list[dict[str, Any]]:
    token = await login(client, "admin", ADMIN_PASSWORD)
    answer = await client.get("/api/calls/", headers={"Authorization": f"Bearer {token}"})
    assert answer.status == 200
    body: dict[str, Any] = await answer.json()
    return list(body["items"])


async def test_a_call_over_ami_alone_is_one_record(
    app_settings: Settings, people: dict[str, str], fake_ami: FakeAmi  # noqa: F811
) -> None:
    client = await _client(app_settings, ami_host=fake_ami.host, ami_port=fake_ami.port,
                           ami_username="ami", ami_secret="ami-secret")
    try:
        services = client.app[SERVICES]
        await services.pbx.wait_connected()
        assert services.pbx.mode == "ami"
        # as with timestampevents=yes: each event stamped with its capture time
        for record in _jsonl(AMI_TRACE):
            if "Event" in record["parsed"]:
                await fake_ami.emit([*record["parsed"].items(),
                                     ("Timestamp", f"{record['ts']:.6f}")])
        await settle(services)
        row = await services.pool.fetchrow("SELECT * FROM calls WHERE id = $1::uuid", CALL_ID)
        assert row is not None
        assert (row["status"], row["caller_number"], row["caller_name"], row["source"],
                str(row["operator_id"]), row["duration"], row["wait_seconds"]) == (
            "completed", "+79001234567", "Иван Петров", "ami", people["1001"], 3, 2)
        assert [c["id"] for c in await calls_seen(client)] == [CALL_ID]
    finally:
        await client.close()


@pytest.mark.parametrize("first", ["ari", "ami"])
async def test_ari_and_ami_of_one_call_are_counted_once(
    app_settings: Settings, people: dict[str, str], fake_ami: FakeAmi,  # noqa: F811
    first: str,
) -> None:
    async with app_on_ari_and_ami(app_settings, fake_ami) as (client, ari):
        services = client.app[SERVICES]
        token = await login(client, "admin", ADMIN_PASSWORD)
        board = Dashboard(await client.ws_connect(f"/ws/events?token={token}"))
        assert (await board.receive())["type"] == "auth_ok"
        assert (await board.receive())["type"] == "snapshot"

        async def ari_stream() -> None:
            for frame in replay_trace(ARI_TRACE):
                await ari.emit(frame)

        streams = {"ari": ari_stream, "ami": lambda: fake_ami.replay(AMI_TRACE)}
        await streams[first]()
        await settle(services)
        await streams["ami" if first == "ari" else "ari"]()
        await settle(services)
        rows = await services.pool.fetch("SELECT * FROM calls")
        assert [(str(r["id"]), r["source"], r["status"], str(r["operator_id"]))
                for r in rows] == [(CALL_ID, "ari", "completed", people["1001"])]
        # ARI's times, not AMI's receipt times
        assert rows[0]["answer_time"].isoformat() == "2026-11-22T08:31:54.689000+00:00"
        assert [c["id"] for c in await calls_seen(client)] == [CALL_ID]
        seen = [(t, d["call_id"]) for t, d in await board.collect() if t.startswith("call_")]
        assert seen == [("call_started", CALL_ID), ("call_answered", CALL_ID),
                        ("call_ended", CALL_ID)]
        await board.ws.close()


def test_channel_created_of_both_sources_names_the_same_channel() -> None:
    """AMI Uniqueid == ARI channel id: the first channel of the trace in both streams."""
    ari_first = next(e for _, e in ari_events() if isinstance(e, ChannelCreated))
    ami_first = next(e for _, m in ami_events()
                     if isinstance(e := AmiNormalizer().event(m, datetime.now(UTC)),
                                   ChannelCreated))
    assert ari_first.channel.id == ami_first.channel.id == CALLER
    assert ari_first.channel.name == ami_first.channel.name
    assert (ami_first.channel.caller_number, ami_first.channel.caller_name) == (
        ari_first.channel.caller_number, ari_first.channel.caller_name)

