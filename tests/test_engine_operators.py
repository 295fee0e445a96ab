"""Operator state machine, as tables: presence sources and call legs in, status effects out."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.effects import (
    Effect,
    OperatorLoggedIn,
    OperatorStatusChanged,
    OperatorUpdated,
)
from engine.events import (
    DeviceInfo,
    DeviceStateChanged,
    EndpointInfo,
    EndpointStateChanged,
    Event,
    OperatorProvisioned,
    OperatorRemoved,
    OperatorStatusRequested,
    Resynced,
)
from engine.machine import Engine
from engine.model import Operator, OperatorStatus
from tests.test_engine_calls import (
    OPS,
    answered_by_1001,
    at,
    caller_hangs_up,
    inbound_until_ringing,
)

OFFLINE_OPS = tuple(replace(op, status=OperatorStatus.OFFLINE) for op in OPS)
ONLINE, BUSY, OFFLINE = OperatorStatus.ONLINE, OperatorStatus.BUSY, OperatorStatus.OFFLINE


def op_effects(effects: list[Effect]) -> list[tuple[str, str, str, str | None]]:
    out = []
    for e in effects:
        if isinstance(e, OperatorStatusChanged | OperatorUpdated | OperatorLoggedIn):
            out.append((type(e).__name__, e.operator.extension, e.operator.status.value,
                        e.operator.status_detail))
    return out


def feed(engine: Engine, events: list[Event]) -> list[Effect]:
    effects: list[Effect] = []
    for event in events:
        effects.extend(engine.handle(event))
    return effects


def state_of(engine: Engine, operator_id: str = "op-1001") -> tuple[str, str | None]:
    operator = engine.operator(operator_id)
    assert operator is not None
    return operator.status.value, operator.status_detail


def test_endpoint_online_logs_in_and_offline_logs_out() -> None:
    engine = Engine(OFFLINE_OPS)
    effects = engine.handle(EndpointStateChanged("PJSIP", "1001", "online", at(1)))
    assert op_effects(effects) == [
        ("OperatorStatusChanged", "1001", "online", None),
        ("OperatorLoggedIn", "1001", "online", None),
    ]
    changed = effects[0]
    assert isinstance(changed, OperatorStatusChanged)
    assert changed.previous == "offline"
    assert changed.operator.last_activity == at(1)
    assert engine.handle(EndpointStateChanged("PJSIP", "1001", "online", at(2))) == []
    effects = engine.handle(EndpointStateChanged("PJSIP", "1001", "offline", at(3)))
    assert op_effects(effects) == [("OperatorStatusChanged", "1001", "offline", None)]
    # A stale "online" from before the offline one is ignored.
    assert engine.handle(EndpointStateChanged("PJSIP", "1001", "online", at(2.5))) == []
    assert engine.handle(EndpointStateChanged("PJSIP", "9999", "online", at(4))) == []


@pytest.mark.parametrize(
    ("device", "state", "expected"),
    [
        ("Custom:1001", "NOT_INUSE", ("online", None)),
        ("PJSIP/1001", "NOT_INUSE", ("online", None)),
        ("Custom:1001", "RINGING", ("online", "ringing")),   # an offer is not work
        ("PJSIP/1001", "INUSE", ("busy", "in_call")),
        ("SIP/1001", "BUSY", ("busy", "in_call")),
        ("IAX2/1001", "ONHOLD", ("busy", "on_hold")),
        ("PJSIP/1001", "RINGINUSE", ("busy", "in_call")),
        ("PJSIP/1001", "UNAVAILABLE", ("offline", None)),
        ("Custom:1001", "INVALID", ("offline", None)),
    ],
)
def test_device_state_mapping(device: str, state: str, expected: tuple[str, str | None]) -> None:
    engine = Engine(OFFLINE_OPS)
    engine.handle(DeviceStateChanged(device, state, at(1)))
    assert state_of(engine) == expected


def test_irrelevant_devices_are_ignored() -> None:
    engine = Engine(OPS)
    for device in ("Local/1001@agents", "Queue:support", "Queue:support_avail", "PJSIP/trunk",
                   "Custom:4242"):
        assert engine.handle(DeviceStateChanged(device, "INUSE", at(1))) == [], device
    assert state_of(engine) == ("online", None)


def test_stale_device_state_is_ignored() -> None:
    engine = Engine(OPS)
    engine.handle(DeviceStateChanged("Custom:1001", "INUSE", at(2)))
    assert engine.handle(DeviceStateChanged("Custom:1001", "RINGING", at(1))) == []
    effects = engine.handle(DeviceStateChanged("Custom:1001", "NOT_INUSE", at(3)))
    assert op_effects(effects) == [("OperatorStatusChanged", "1001", "online", None)]


def test_manual_offline_wins_over_idle_phone_but_not_over_a_real_call() -> None:
    engine = Engine(OPS)
    engine.handle(DeviceStateChanged("Custom:1001", "NOT_INUSE", at(0)))
    effects = engine.handle(OperatorStatusRequested("op-1001", OFFLINE, at(0.5)))
    assert op_effects(effects) == [("OperatorStatusChanged", "1001", "offline", "manual")]
    assert engine.handle(DeviceStateChanged("Custom:1001", "NOT_INUSE", at(0.6))) == []
    assert engine.handle(EndpointStateChanged("PJSIP", "1001", "online", at(0.7))) == []
    operator = engine.operator("op-1001")
    assert operator is not None and operator.manual_status is OFFLINE
    # The queue rings them anyway: an offer is not work, their choice stands...
    feed(engine, inbound_until_ringing())
    assert state_of(engine) == ("offline", "manual")
    # ...but a real call always shows.
    feed(engine, answered_by_1001())
    assert state_of(engine) == ("busy", "in_call")
    effects = feed(engine, caller_hangs_up(6))
    assert state_of(engine) == ("offline", "manual")
    # Clearing the choice: back to what the phone says.
    effects = engine.handle(OperatorStatusRequested("op-1001", None, at(7)))
    assert op_effects(effects) == [
        ("OperatorStatusChanged", "1001", "online", None),
        ("OperatorLoggedIn", "1001", "online", None),
    ]


def test_manual_busy_and_stale_request() -> None:
    engine = Engine(OPS)
    effects = engine.handle(OperatorStatusRequested("op-1001", BUSY, at(5)))
    assert op_effects(effects) == [("OperatorStatusChanged", "1001", "busy", "manual")]
    assert engine.handle(OperatorStatusRequested("op-1001", None, at(4))) == []
    assert engine.handle(OperatorStatusRequested("op-1001", BUSY, at(6))) == []
    assert engine.handle(OperatorStatusRequested("nobody", BUSY, at(6))) == []


def test_unreachable_phone_is_offline_even_with_manual_online() -> None:
    engine = Engine(OPS)
    engine.handle(OperatorStatusRequested("op-1001", ONLINE, at(1)))
    engine.handle(EndpointStateChanged("PJSIP", "1001", "offline", at(2)))
    assert state_of(engine) == ("offline", None)


def test_queue_pause_pseudo_device() -> None:
    engine = Engine(OPS)
    effects = engine.handle(
        DeviceStateChanged("Queue:support_pause_Local/1001@agents", "INUSE", at(1)))
    assert op_effects(effects) == [("OperatorStatusChanged", "1001", "busy", "paused")]
    effects = engine.handle(
        DeviceStateChanged("Queue:support_pause_Local/1001@agents", "NOT_INUSE", at(2)))
    assert op_effects(effects) == [("OperatorStatusChanged", "1001", "online", None)]


def test_call_legs_drive_status_and_counters() -> None:
    engine = Engine(OPS)
    effects = feed(engine, inbound_until_ringing())
    assert op_effects(effects) == [
        ("OperatorStatusChanged", "1002", "online", "ringing"),   # ringing, not busy
        ("OperatorStatusChanged", "1001", "online", "ringing"),
    ]
    effects = feed(engine, answered_by_1001())
    assert op_effects(effects) == [
        ("OperatorStatusChanged", "1001", "busy", "in_call"),
        ("OperatorStatusChanged", "1002", "online", None),
    ]
    operator = engine.operator("op-1001")
    assert operator is not None and operator.current_calls == 1
    assert operator.last_activity == at(3)
    effects = feed(engine, caller_hangs_up(6))
    assert op_effects(effects) == [("OperatorStatusChanged", "1001", "online", None)]
    operator = engine.operator("op-1001")
    assert operator is not None and operator.current_calls == 0
    assert operator.last_activity == at(6.002)


def test_provisioning_and_removal() -> None:
    engine = Engine()
    new = Operator(id="op-7", extension="1007", name="Anna")
    effects = engine.handle(OperatorProvisioned(new))
    assert op_effects(effects) == [("OperatorUpdated", "1007", "offline", None)]
    assert engine.handle(OperatorProvisioned(new)) == []
    assert op_effects(engine.handle(EndpointStateChanged("PJSIP", "1007", "online", at(1)))) == [
        ("OperatorStatusChanged", "1007", "online", None),
        ("OperatorLoggedIn", "1007", "online", None),
    ]
    renamed = engine.handle(OperatorProvisioned(replace(new, name="Anna K.")))
    assert len(renamed) == 1 and isinstance(renamed[0], OperatorUpdated)
    assert renamed[0].operator.name == "Anna K."
    assert renamed[0].operator.status is ONLINE          # runtime state kept
    assert engine.handle(OperatorRemoved("op-7")) == []
    assert engine.operators() == []
    assert engine.handle(EndpointStateChanged("PJSIP", "1007", "offline", at(2))) == []


def test_resync_endpoints_and_stale_devices() -> None:
    engine = Engine(OPS)
    engine.handle(DeviceStateChanged("Custom:1002", "INUSE", at(1)))
    assert state_of(engine, "op-1002") == ("busy", "in_call")
    effects = engine.handle(Resynced(
        channels=(),
        endpoints=(EndpointInfo("PJSIP", "1001", "offline"), EndpointInfo("PJSIP", "1002",
                                                                         "online")),
        ts=at(10),
    ))
    assert sorted(op_effects(effects)) == [
        ("OperatorStatusChanged", "1001", "offline", None),
        ("OperatorStatusChanged", "1002", "online", None),
    ]


def test_resync_keeps_presence_and_applies_fetched_device_states() -> None:
    engine = Engine(OPS)
    engine.handle(DeviceStateChanged("Custom:1001", "UNAVAILABLE", at(1)))
    engine.handle(DeviceStateChanged("Custom:1002", "RINGING", at(1)))
    effects = engine.handle(Resynced((), (), at(10), (DeviceInfo("PJSIP/1002", "INUSE"),)))
    assert op_effects(effects) == [("OperatorStatusChanged", "1002", "busy", "in_call")]
    assert state_of(engine) == ("offline", None)          # logged-out agent stays logged out


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("PJSIP/1001-0000000a", "1001"),
        ("SIP/1001-00000001", "1001"),
        ("IAX2/1001-1234", "1001"),
        ("Local/1001@agents-00000001;1", "1001"),
        ("Local/1001@agents-00000001;2", "1001"),
        ("Local/1001@agents", "1001"),
        ("PJSIP/1001", "1001"),
        ("Custom:1001", "1001"),
        ("Local/+79001234567@pstn-00000000;1", None),
        ("Local/79001234567@pstn-00000000;2", None),
        ("Queue:support", None),
        ("garbage", None),
    ],
)
def test_extension_of(name: str, expected: str | None) -> None:
    from engine.directory import extension_of

    assert extension_of(name) == expected


def test_directory_resolution_and_local_pairs() -> None:
    from engine.directory import OperatorDirectory, local_pair_key

    customer = Operator(id="op-x", extension="+79001234567")
    directory = OperatorDirectory((*OPS, customer))
    assert directory.for_name("Local/+79001234567@pstn-00000000;1") is customer
    found = directory.for_name("PJSIP/1002-000000ff")
    assert found is not None and found.id == "op-1002"
    assert directory.for_name("PJSIP/provider-000000ff") is None
    assert local_pair_key("Local/1001@agents-00000001;2") == "Local/1001@agents-00000001"
    assert local_pair_key("PJSIP/1001-0000000a") is None
    directory.put(Operator(id="op-1001", extension="2001"))
    assert directory.by_extension("1001") is None
    found = directory.by_extension("2001")
    assert found is not None and found.id == "op-1001"


PAUSE_1001 = "Queue:support_pause_Local/1001@agents"


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([DeviceStateChanged("PJSIP/1001", "NOT_INUSE", at(1))], ("online", "available", None)),
        ([DeviceStateChanged("PJSIP/1001", "RINGING", at(1))], ("online", "ringing", None)),
        (inbound_until_ringing(), ("online", "ringing", None)),          # a queue leg ringing
        ([DeviceStateChanged("PJSIP/1001", "INUSE", at(1))], ("busy", "in_call", None)),
        ([DeviceStateChanged("PJSIP/1001", "ONHOLD", at(1))], ("busy", "on_hold", None)),
        ([OperatorStatusRequested("op-1001", BUSY, at(1))], ("busy", "paused", "manual")),
        ([DeviceStateChanged(PAUSE_1001, "INUSE", at(1))], ("busy", "paused", None)),
        # A paused or self-busy operator rung anyway stays paused: their choice stands.
        ([DeviceStateChanged(PAUSE_1001, "INUSE", at(1)), *inbound_until_ringing()],
         ("busy", "paused", None)),
        ([OperatorStatusRequested("op-1001", BUSY, at(0)), *inbound_until_ringing()],
         ("busy", "paused", "manual")),
        ([DeviceStateChanged("PJSIP/1001", "UNAVAILABLE", at(1))], ("offline", None, None)),
        ([*inbound_until_ringing(), *answered_by_1001()], ("busy", "in_call", None)),
    ],
)
def test_activity_next_to_status(
    events: list[Event], expected: tuple[str, str | None, str | None]
) -> None:
    engine = Engine(OPS)
    feed(engine, events)
    operator = engine.operator("op-1001")
    assert operator is not None
    assert (operator.status.value, operator.activity, operator.pause_reason) == expected


def test_a_ringing_operator_is_published_ringing_then_available() -> None:
    """Only the activity changes while 1002 rings and is cancelled: it is published each time."""
    engine = Engine(OPS)
    rung = [e for e in feed(engine, inbound_until_ringing())
            if isinstance(e, OperatorStatusChanged) and e.operator.id == "op-1002"]
    assert [(e.previous, e.operator.status.value, e.operator.activity) for e in rung] == [
        ("online", "online", "ringing")]
    cancelled = [e for e in feed(engine, answered_by_1001())
                 if isinstance(e, OperatorStatusChanged) and e.operator.id == "op-1002"]
    assert [(e.previous, e.operator.status.value, e.operator.activity) for e in cancelled] == [
        ("online", "online", "available")]
