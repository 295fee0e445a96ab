"""FakeAsterisk and Simulator events checked against the ARI Swagger models."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from connectors.fakes.ari_server import (
    FakeAsterisk,
    ari_timestamp,
    bridge,
    channel,
    device_state,
    endpoint,
    event,
    replay_trace,
)
from connectors.simulator import Simulator

DATA = Path(__file__).resolve().parent / "data"
API_DOCS = DATA / "ari-api-docs"
TRACE = DATA / "inbound_answered.ari.jsonl"

ARI_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}$")
PRIMITIVES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "int": (int,),
    "long": (int,),
    "double": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "Date": (str,),
}


def load_models() -> dict[str, Any]:
    models: dict[str, Any] = {}
    for doc in API_DOCS.glob("*.json"):
        models.update(orjson.loads(doc.read_bytes()).get("models", {}))
    return models


MODELS = load_models() if API_DOCS.is_dir() else {}


def check(value: Any, type_name: str, where: str = "$") -> list[str]:
    """Problems of ``value`` against Swagger 1.2 type ``type_name`` (required + types)."""
    if type_name.startswith("List[") and type_name.endswith("]"):
        if not isinstance(value, list):
            return [f"{where}: expected list, got {type(value).__name__}"]
        return [p for i, v in enumerate(value) for p in check(v, type_name[5:-1], f"{where}[{i}]")]
    if type_name in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[type_name])
        if type_name != "boolean" and isinstance(value, bool):
            ok = False  # JSON true is not a number
        if ok and type_name == "Date" and not ARI_DATE.match(value):
            return [f"{where}: bad ARI date {value!r}"]
        return [] if ok else [f"{where}: expected {type_name}, got {type(value).__name__}"]
    if type_name not in MODELS:
        return []  # a model outside the shared docs: cannot check it
    if not isinstance(value, dict):
        return [f"{where}: expected {type_name} object, got {type(value).__name__}"]
    props = dict(MODELS[type_name].get("properties", {}))
    if type_name in MODELS["Event"]["subTypes"]:  # events inherit Event and Message
        props = {**MODELS["Message"]["properties"], **MODELS["Event"]["properties"], **props}
    problems = []
    for name, spec in props.items():
        if name not in value:
            if spec.get("required"):
                problems.append(f"{where}.{name}: required field missing")
            continue
        problems += check(value[name], spec["type"], f"{where}.{name}")
        allowed = spec.get("allowableValues", {}).get("values")
        if allowed and isinstance(value[name], str) and value[name] not in allowed:
            problems.append(f"{where}.{name}: {value[name]!r} not in {allowed}")
    return problems


def check_event(ev: dict[str, Any]) -> list[str]:
    kind = ev.get("type")
    if kind not in MODELS["Event"]["subTypes"]:
        return [f"unknown event type {kind!r}"]
    return check(ev, kind, kind)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAsterisk]:
    async with FakeAsterisk(app="switchboard-test") as server:
        yield server


# -- the validator itself -------------------------------------------------------------------


def test_validator_accepts_the_real_trace() -> None:
    events = list(replay_trace(TRACE))
    assert len(events) == 201
    assert [p for ev in events for p in check_event(ev)] == []


def test_validator_catches_broken_events() -> None:
    good = event("ChannelCreated", application="a", channel=channel("1.1", "PJSIP/1-1"))
    assert check_event(good) == []
    no_app = {k: v for k, v in good.items() if k != "application"}
    assert check_event(no_app) == ["ChannelCreated.application: required field missing"]
    bad = orjson.loads(orjson.dumps(good))
    bad["channel"]["caller"]["number"] = 1001
    bad["channel"]["dialplan"]["priority"] = "1"
    bad["channel"]["state"] = "Talking"
    bad["timestamp"] = "2026-11-22T08:31:52+00:00"
    assert sorted(check_event(bad)) == [
        "ChannelCreated.channel.caller.number: expected string, got int",
        "ChannelCreated.channel.dialplan.priority: expected long, got str",
        "ChannelCreated.channel.state: 'Talking' not in "
        + str(MODELS["Channel"]["properties"]["state"]["allowableValues"]["values"]),
        "ChannelCreated.timestamp: bad ARI date '2026-11-22T08:31:52+00:00'",
    ]
    brg = event("BridgeCreated", application="a", bridge=bridge("b", ["1", 2]))  # type: ignore[list-item]
    assert check_event(brg) == ["BridgeCreated.bridge.channels[1]: expected string, got int"]


# -- builders and the fake ------------------------------------------------------------------


def test_timestamp_format() -> None:
    assert ari_timestamp(1795336312.6725) == "2026-11-22T08:31:52.672+0000"
    assert ARI_DATE.match(ari_timestamp())


async def test_builder_events_on_the_wire_are_valid(fake: FakeAsterisk) -> None:
    cust = channel("1.0", "Local/+79001234567@pstn-00000000;1", "Up", caller_number="+7900")
    agent = channel("1.4", "Local/1001@agents-00000002;1", "Up", exten="1001", context="agents")
    brg = bridge("b-1", ["1.0", "1.4"])
    built = [
        event("ChannelCreated", channel=cust),
        event("ChannelStateChange", channel=agent),
        event("ChannelCallerId", caller_presentation=0, caller_presentation_txt="x", channel=cust),
        event(
            "Dial", dialstatus="RINGING", dialstring="Local/1001@agents", caller=cust, peer=agent
        ),
        event("Dial", dialstatus="ANSWER", peer=agent),
        event("BridgeCreated", bridge=bridge("b-1")),
        event("ChannelEnteredBridge", bridge=brg, channel=agent),
        event("ChannelLeftBridge", bridge=brg, channel=agent),
        event("ChannelHangupRequest", cause=16, soft=True, channel=cust),
        event("ChannelDestroyed", cause=26, cause_txt="Answered elsewhere", channel=agent),
        event("DeviceStateChanged", device_state=device_state("Custom:1001", "RINGING")),
        event("EndpointStateChange", endpoint=endpoint("PJSIP", "1001", "offline")),
        event("ChannelVarset", variable="QUEUENAME", value="support", channel=cust),
        event("ChannelDialplan", dialplan_app="Queue", dialplan_app_data="support", channel=cust),
        event("StasisStart", args=["inbound"], channel=cust),
    ]
    url = f"{fake.url}/ari/events?app=switchboard-test&api_key=asterisk:secret"
    async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
        await fake.wait_for_client()
        for ev in built:
            await fake.emit(ev)
        received = [orjson.loads((await ws.receive()).data) for _ in built]
    assert [e["type"] for e in received] == [e["type"] for e in built]
    assert {p for ev in received for p in check_event(ev)} == set()
    # the model follows the events
    assert set(fake.channels) == {"1.0"}
    assert fake.endpoints["PJSIP/1001"]["state"] == "offline"
    assert fake.device_states["Custom:1001"] == "RINGING"


async def test_model_follows_events_and_silent_changes(fake: FakeAsterisk) -> None:
    ch = channel("7.1", "PJSIP/1001-00000001", "Ring")
    await fake.emit(event("ChannelCreated", channel=ch))
    await fake.emit(event("ChannelStateChange", channel={**ch, "state": "Up"}))
    assert fake.channels["7.1"]["state"] == "Up"
    fake.set_channel(channel("7.2", "PJSIP/1002-00000002", "Up"))
    fake.remove_channel("7.1")
    assert list(fake.channels) == ["7.2"]
    assert fake.sent[-1]["type"] == "ChannelStateChange"  # silent changes send nothing
    await fake.emit(event("ChannelDestroyed", cause=16, cause_txt="Normal Clearing", channel=ch))
    assert list(fake.channels) == ["7.2"]


def test_replay_trace_rekey_keeps_copies_apart() -> None:
    a, b = list(replay_trace(TRACE, rekey="r1")), list(replay_trace(TRACE, rekey="r2"))
    ids_a = {e["channel"]["id"] for e in a if "channel" in e}
    ids_b = {e["channel"]["id"] for e in b if "channel" in e}
    assert len(ids_a) == 6 and not ids_a & ids_b
    assert all(i.startswith("r1-") for i in ids_a)
    names = {e["channel"]["name"] for e in a if "channel" in e}
    assert "Local/1001@agents-r1x00000002;1" in names
    entered = [e for e in a if e["type"] == "ChannelEnteredBridge"][-1]
    assert set(entered["bridge"]["channels"]) <= ids_a
    assert entered["bridge"]["id"].startswith("r1-")
    assert [p for ev in a for p in check_event(ev)] == []


# -- simulator ------------------------------------------------------------------------------


def calls_of(sent: list[dict[str, Any]]) -> list[str]:
    """Customer numbers in the order the calls arrived."""
    return [
        e["channel"]["caller"]["number"]
        for e in sent
        if e["type"] == "ChannelCallerId"
        and "@pstn-" in e["channel"]["name"]
        and e["channel"]["name"].endswith(";1")
    ]


async def test_one_answered_call_follows_the_trace(fake: FakeAsterisk) -> None:
    sim = Simulator(
        fake,
        ["1001", "1002", "1003"],
        seed=3,
        speed=1000,
        answer_prob=1.0,
        patience=(100, 100),
        presence_per_hour=0,
    )
    await asyncio.wait_for(sim.run(max_calls=1), 5)
    sent = fake.sent
    assert [p for ev in sent for p in check_event(ev)] == []
    assert sim.stats["answered"] == 1
    assert fake.channels == {}  # every channel destroyed again
    assert {fake.device_states[f"Custom:{x}"] for x in ("1001", "1002", "1003")} == {"NOT_INUSE"}

    created = [e["channel"] for e in sent if e["type"] == "ChannelCreated"]
    assert len(created) == 8  # customer pair + three agent pairs
    assert (created[0]["state"], created[1]["state"]) == ("Down", "Ring")
    assert created[0]["name"].endswith(";1") and created[1]["name"].endswith(";2")
    cust_up = next(i for i, e in enumerate(sent) if e["type"] == "ChannelStateChange")
    first_agent = next(
        i for i, e in enumerate(sent) if "@agents" in e.get("channel", {}).get("name", "")
    )
    assert cust_up < first_agent  # the dialplan answers the caller before agents ring

    answer = next(
        e for e in sent if e["type"] == "Dial" and e["dialstatus"] == "ANSWER" and "caller" in e
    )
    winner = answer["peer"]["id"]
    up = [
        i
        for i, e in enumerate(sent)
        if e["type"] == "ChannelStateChange" and e["channel"]["id"] == winner
    ]
    assert up and up[0] < sent.index(answer)
    cancels = Counter(
        e["peer"]["id"] for e in sent if e["type"] == "Dial" and e["dialstatus"] == "CANCEL"
    )
    assert len(cancels) == 2 and set(cancels.values()) == {2}
    destroyed = {e["channel"]["id"]: e["cause"] for e in sent if e["type"] == "ChannelDestroyed"}
    assert sorted(destroyed.values()) == [16, 16, 16, 16, 26, 26, 26, 26]
    entered = [e for e in sent if e["type"] == "ChannelEnteredBridge"]
    assert {e["channel"]["id"] for e in entered} == {created[0]["id"], winner}
    assert [e["type"] for e in sent].count("BridgeDestroyed") == 1


async def test_simulated_traffic_is_valid_and_varied(fake: FakeAsterisk) -> None:
    sim = Simulator(
        fake,
        ["1001", "1002"],
        rate_per_min=20,
        seed=11,
        speed=3000,
        presence_per_hour=300,
        offline_time=(5, 20),
    )
    await asyncio.wait_for(sim.run(max_calls=30), 8)
    assert [p for ev in fake.sent for p in check_event(ev)] == []
    assert sim.stats["calls"] == 30 and sim.stats["answered"] > 0
    assert sim.stats["missed_ringing"] + sim.stats["missed_no_agent"] > 0
    assert fake.channels == {}
    kinds = Counter(e["type"] for e in fake.sent)
    assert kinds["ChannelCreated"] == kinds["ChannelDestroyed"]
    if sim.stats["offline"]:
        assert kinds["EndpointStateChange"] >= sim.stats["offline"]


async def test_simulator_is_repeatable_with_a_seed() -> None:
    runs = []
    for seed in (5, 5, 6):
        async with FakeAsterisk() as server:
            sim = Simulator(server, seed=seed, speed=5000, rate_per_min=30, presence_per_hour=0)
            await asyncio.wait_for(sim.run(max_calls=5), 5)
            runs.append(calls_of(server.sent))
    assert len(runs[0]) == 5
    assert runs[0] == runs[1] != runs[2]


async def test_simulated_calls_dial_the_centers_number_on_free_extensions(
    fake: FakeAsterisk,
) -> None:
    """``called_number`` is the center's number the customer dialled (was the caller's own
    number), and no simulated operator sits on an extension the seed's own example creates
    (1001; was 1001-1010). How answered the load is: measured at real speed, see the report
    of issue 8 (a test cannot: the simulator's clock is the event loop's)."""
    from connectors.ari.normalize import AriNormalizer
    from engine.effects import CallEnded
    from engine.machine import Engine
    from engine.model import Operator, OperatorStatus
    from service.pbx import SIMULATED_EXTENSIONS

    assert not {"1001", "1002", "1003"} & set(SIMULATED_EXTENSIONS)
    sim = Simulator(fake, list(SIMULATED_EXTENSIONS), seed=7, speed=1000, noise=False)
    await asyncio.wait_for(sim.run(max_calls=20), 60)
    engine = Engine([Operator(id=f"op-{x}", extension=x, status=OperatorStatus.ONLINE)
                     for x in SIMULATED_EXTENSIONS])
    normalizer = AriNormalizer()
    ended = []
    for frame in fake.sent:
        event = normalizer.event(frame)
        if event is not None:
            ended += [e.call for e in engine.handle(event) if isinstance(e, CallEnded)]
    assert len(ended) == 20 and any(c.answer_time for c in ended)
    assert {c.called_number for c in ended} == {sim.did} == {"+74951234567"}
    assert all(c.caller_number.startswith("+7900") for c in ended)
