"""ARI frame -> engine event, as tables; every frame of the real trace must normalize."""

from __future__ import annotations

import json
import pathlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from connectors.ari.normalize import (
    AriNormalizer,
    AriSnapshot,
    MalformedFrame,
    normalize,
    normalize_resync,
    parse_timestamp,
)
from connectors.clean import LIMITS, clean_text
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


# -- untrusted text and the source tag ------------------------------------------------------


@pytest.mark.parametrize(("raw", "kind", "clean"), [
    ("Иван Петров", "name", "Иван Петров"),
    ("Bad\x00Name", "name", "BadName"),
    ("tab\there\r\nnew\x1b[31mred\x7f\x85", "name", "tabherenew[31mred"),
    ("9" * 1000, "number", "9" * LIMITS["number"]),
    ("\x00" * 10 + "x" * 1000, "name", "x" * LIMITS["name"]),
    ("=HYPERLINK(\"x\")", "name", "=HYPERLINK(\"x\")"),   # CSV is the export's concern
])
def test_clean_text(raw: str, kind: str, clean: str) -> None:
    assert clean_text(raw, kind) == clean


def test_every_kept_string_is_cleaned_and_counted() -> None:
    dirty = dict(CHANNEL, id="17.1\x00", name="PJSIP/1001-01\x00",
                 caller={"name": "Bad\x00Name", "number": "+7900\x001" + "2" * 500},
                 dialplan={"context": "in\x01coming", "exten": "2\x0000"})
    normalizer = AriNormalizer()
    event = normalizer.event(frame("ChannelCreated", channel=dirty))
    assert isinstance(event, ChannelCreated)
    ch = event.channel
    assert (ch.id, ch.name, ch.caller_name, ch.context, ch.exten) == (
        "17.1", "PJSIP/1001-01", "BadName", "incoming", "200")
    assert ch.caller_number == ("+79001" + "2" * 500)[:LIMITS["number"]]
    assert normalizer.stats == {"cleaned:id": 2, "cleaned:name": 1, "cleaned:number": 2,
                                "cleaned:text": 1}
    hung = normalizer.event(frame("ChannelDestroyed", channel=CHANNEL, cause=16,
                                  cause_txt="Normal\x00 Clearing"))
    assert isinstance(hung, ChannelHungUp) and hung.cause_txt == "Normal Clearing"


def test_events_carry_their_source_into_the_call() -> None:
    """Call.source is the source of the events that started it (not a constant)."""
    from engine.effects import CallStarted
    from engine.machine import Engine

    normalizer = AriNormalizer(source="ami")  # any source name: the tag travels through
    ringing = dict(CHANNEL, name="PJSIP/trunk-01", state="Ring")
    event = normalizer.event(frame("ChannelCreated", channel=ringing))
    assert event is not None and event.source == "ami"
    started = [e for e in Engine([]).handle(event) if isinstance(e, CallStarted)]
    assert [e.call.source for e in started] == ["ami"]
    resync = normalizer.resync(AriSnapshot([], []), datetime.now(UTC))
    assert resync.source == "ami"
