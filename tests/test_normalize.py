"""ARI frame -> engine event, as tables; every frame of the real trace must normalize."""

from __future__ import annotations

import json
import pathlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from connectors.ari.normalize import MalformedFrame, normalize, normalize_resync, parse_timestamp
from engine.events import (
    BridgeEntered,
    BridgeLeft,
    CallerIdChanged,
    ChannelCreated,
    ChannelHungUp,
    ChannelStateChanged,
    DeviceStateChanged,
    DialUpdated,
    EndpointStateChanged,
)

TRACE = pathlib.Path(__file__).parent / "data" / "inbound_answered.ari.jsonl"
if not TRACE.exists():
    TRACE = pathlib.Path("/work/shared/traces/inbound_answered.ari.jsonl")

TS = "2026-11-22T08:31:52.672+0000"
CHANNEL: dict[str, Any] = {
    "id": "1795336312.0", "name": "Local/+79001234567@pstn-00000000;1", "state": "Up",
    "caller": {"name": "Иван Петров", "number": "+79001234567"},
    "connected": {"name": "", "number": ""}, "accountcode": "",
    "dialplan": {"context": "incoming", "exten": "support", "priority": None},
    "creationtime": "2026-11-22T11:31:52.600+0300", "language": "en", "tenantid": "x",
}


def frame(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "timestamp": TS, "application": "sb", "asterisk_id": "a", **extra}


def test_parse_timestamp_keeps_the_pbx_offset() -> None:
    parsed = parse_timestamp("2024-05-01T12:00:00.123+0300")
    assert parsed == datetime(2024, 5, 1, 9, 0, 0, 123000, tzinfo=UTC)
    assert parsed.utcoffset() == timedelta(hours=3)
    assert parse_timestamp("2024-05-01T12:00:00+00:00").tzinfo is not None
    assert parse_timestamp("2024-05-01T12:00:00.5").tzinfo == UTC


@pytest.mark.parametrize("bad", [None, "", "yesterday", 12345, "2024-13-01T00:00:00+0000"])
def test_bad_timestamps_are_malformed(bad: object) -> None:
    with pytest.raises(MalformedFrame) as err:
        normalize(frame("ChannelCreated", channel=CHANNEL) | {"timestamp": bad})
    assert err.value.kind == "timestamp"


@pytest.mark.parametrize(
    ("raw", "expected_type"),
    [
        (frame("ChannelCreated", channel=CHANNEL), ChannelCreated),
        (frame("ChannelStateChange", channel=CHANNEL), ChannelStateChanged),
        (frame("ChannelCallerId", channel=CHANNEL, caller_presentation=0), CallerIdChanged),
        (frame("ChannelDestroyed", channel=CHANNEL, cause=26, cause_txt="Answered elsewhere"),
         ChannelHungUp),
        (frame("Dial", peer=CHANNEL, caller=CHANNEL, dialstatus="answer"), DialUpdated),
        (frame("ChannelEnteredBridge", channel=CHANNEL,
               bridge={"id": "b1", "bridge_type": "mixing"}), BridgeEntered),
        (frame("ChannelLeftBridge", channel=CHANNEL, bridge={"id": "b1"}), BridgeLeft),
        (frame("DeviceStateChanged", device_state={"name": "Custom:1001", "state": "INUSE"}),
         DeviceStateChanged),
        (frame("EndpointStateChange",
               endpoint={"technology": "PJSIP", "resource": "1001", "state": "online"}),
         EndpointStateChanged),
    ],
)
def test_frames_we_use(raw: dict[str, Any], expected_type: type) -> None:
    event = normalize(raw)
    assert isinstance(event, expected_type)


def test_channel_fields() -> None:
    event = normalize(frame("ChannelDestroyed", channel=CHANNEL, cause=26,
                            cause_txt="Answered elsewhere"))
    assert isinstance(event, ChannelHungUp)
    ch = event.channel
    assert (ch.id, ch.name, ch.state) == ("1795336312.0", CHANNEL["name"], "Up")
    assert (ch.caller_number, ch.caller_name) == ("+79001234567", "Иван Петров")
    assert (ch.exten, ch.context) == ("support", "incoming")
    assert ch.created == datetime(2026, 11, 22, 8, 31, 52, 600000, tzinfo=UTC)
    assert (event.cause, event.cause_txt) == (26, "Answered elsewhere")
    assert event.ts == datetime(2026, 11, 22, 8, 31, 52, 672000, tzinfo=UTC)


def test_dial_without_caller_and_status() -> None:
    event = normalize(frame("Dial", peer=CHANNEL, dialstatus="", dialstring="x@pstn"))
    assert isinstance(event, DialUpdated)
    assert event.caller is None and event.caller_id is None
    assert (event.status, event.dialstring) == ("", "x@pstn")


def test_sparse_channel_is_tolerated() -> None:
    event = normalize(frame("ChannelCreated", channel={"id": "1.1", "name": "PJSIP/1001-01"}))
    assert isinstance(event, ChannelCreated)
    ch = event.channel
    assert (ch.state, ch.caller_number, ch.exten, ch.created) == ("Unknown", "", "", None)


@pytest.mark.parametrize(
    "kind", ["ChannelVarset", "ChannelDialplan", "ChannelConnectedLine", "StasisStart",
             "BridgeCreated", "ChannelHangupRequest", "ApplicationRegistered", "Whatever"],
)
def test_noise_is_none(kind: str) -> None:
    assert normalize({"type": kind}) is None


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ({}, "type"),
        ({"type": 5}, "type"),
        (frame("ChannelCreated"), "channel"),
        (frame("ChannelCreated", channel={"name": "PJSIP/1-1"}), "channel.id"),
        (frame("ChannelCreated", channel={"id": "1.1"}), "channel.name"),
        (frame("Dial", caller=CHANNEL, dialstatus="ANSWER"), "peer"),
        (frame("ChannelEnteredBridge", channel=CHANNEL), "bridge.id"),
        (frame("DeviceStateChanged", device_state={"state": "INUSE"}), "device_state.name"),
        (frame("EndpointStateChange", endpoint={"technology": "PJSIP"}), "endpoint.resource"),
    ],
)
def test_malformed(raw: dict[str, Any], kind: str) -> None:
    with pytest.raises(MalformedFrame) as err:
        normalize(raw)
    assert err.value.kind == kind


def test_normalize_resync_skips_unreadable_entries() -> None:
    ts = datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=3)))
    resync = normalize_resync(
        [CHANNEL, {"id": "broken"}],
        [{"technology": "PJSIP", "resource": "1001", "state": "ONLINE", "channel_ids": []},
         {"technology": "PJSIP"}],
        ts,
        [{"name": "Custom:1001", "state": "not_inuse"}, {"state": "INUSE"}],
    )
    assert [(d.name, d.state) for d in resync.devices] == [("Custom:1001", "NOT_INUSE")]
    assert [c.id for c in resync.channels] == ["1795336312.0"]
    assert [(e.resource, e.state) for e in resync.endpoints] == [("1001", "online")]
    assert resync.ts == ts


def test_every_trace_frame_normalizes() -> None:
    counts: dict[str, int] = {}
    for line in TRACE.read_text(encoding="utf-8").splitlines():
        event = normalize(json.loads(line)["event"])
        name = type(event).__name__ if event is not None else "None"
        counts[name] = counts.get(name, 0) + 1
    assert counts["ChannelCreated"] == 6
    assert counts["ChannelHungUp"] == 6
    assert counts["DialUpdated"] == 9
    assert counts["BridgeEntered"] == counts["BridgeLeft"] == 2
    assert counts["None"] > 100
