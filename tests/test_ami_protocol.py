"""The sans-I/O AMI protocol: real traces in, the capture's own parse out; bad input counted."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.ami.eventlist import EventListCollector
from connectors.ami.protocol import (
    ERR_DATA_AFTER_EOF,
    ERR_INVALID_UTF8,
    ERR_LINE_WITHOUT_COLON,
    ERR_MESSAGE_TOO_LARGE,
    ERR_MESSAGE_WITHOUT_KIND,
    ERR_MISSING_BANNER,
    ERR_TRUNCATED_AT_EOF,
    AmiMessage,
    AmiProtocol,
    Kind,
    encode_message,
    send_action,
)
from connectors.fakes.ami_server import trace_records

DATA = Path(__file__).resolve().parent / "data"
TRACES = [DATA / "inbound_answered.ami.jsonl", DATA / "queue_shift.ami.jsonl"]
GOOD = (
    b"Event: QueueMemberPause\r\nMemberName: \xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd\r\nPaused: 1\r\n\r\n"
)


@functools.cache
def trace_bytes(path: Path) -> bytes:
    return b"".join(record.raw for record in trace_records(path))


@functools.cache
def expected_messages(path: Path) -> list[dict[str, str]]:
    return [r.parsed for r in trace_records(path) if "__greeting__" not in r.parsed]


def parse(
    *chunks: bytes, expect_banner: bool = False, **kw: int
) -> tuple[list[AmiMessage], AmiProtocol]:
    protocol = AmiProtocol(expect_banner=expect_banner, **kw)
    for chunk in chunks:
        protocol.receive_data(chunk)
    return protocol.events_received(), protocol


def assert_good_follows(messages: list[AmiMessage]) -> None:
    """The well-formed message after the bad input came through whole."""
    assert messages[-1].as_dict() == {
        "Event": "QueueMemberPause",
        "MemberName": "Иван",
        "Paused": "1",
    }


# -- real traffic ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.name)
def test_trace_replayed_whole_gives_the_captured_messages(path: Path) -> None:
    messages, protocol = parse(trace_bytes(path), expect_banner=True)
    assert protocol.banner == "Asterisk Call Manager/13.0.0"
    assert protocol.version == "13.0.0"
    assert [m.as_dict() for m in messages] == expected_messages(path)
    assert not protocol.errors
    assert {m.kind for m in messages} == {Kind.EVENT, Kind.RESPONSE}


def test_cyrillic_names_arrive_whole_when_fed_byte_by_byte() -> None:
    data = trace_bytes(DATA / "inbound_answered.ami.jsonl")
    messages, protocol = parse(*(data[i : i + 1] for i in range(len(data))), expect_banner=True)
    names = {m.get("CallerIDName") for m in messages}
    assert "Иван Петров" in names
    assert [m.as_dict() for m in messages] == expected_messages(DATA / "inbound_answered.ami.jsonl")
    assert not protocol.errors


@functools.cache
def delicate_cuts(data: bytes) -> list[int]:
    """Cut points inside a UTF-8 character or between the CR and LF of a line end."""
    return [i for i in range(1, len(data)) if data[i] >= 0x80 or data[i - 1 : i + 1] == b"\r\n"]


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(data=st.data(), path=st.sampled_from(TRACES))
def test_any_split_of_a_real_trace_gives_the_same_messages(data: st.DataObject, path: Path) -> None:
    whole = trace_bytes(path)
    anywhere = st.integers(0, len(whole))
    delicate = st.sampled_from(delicate_cuts(whole))  # where a careless parser breaks
    cuts = sorted(data.draw(st.lists(st.one_of(anywhere, delicate), min_size=1, max_size=300)))
    chunks = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)]
    messages, protocol = parse(*chunks, expect_banner=True)
    assert [m.as_dict() for m in messages] == expected_messages(path)
    assert not protocol.errors


def test_bare_newlines_are_tolerated() -> None:
    path = DATA / "queue_shift.ami.jsonl"
    messages, protocol = parse(trace_bytes(path).replace(b"\r\n", b"\n"), expect_banner=True)
    assert [m.as_dict() for m in messages] == expected_messages(path)
    assert protocol.banner == "Asterisk Call Manager/13.0.0"


def test_actions_and_their_responses_from_the_actions_trace() -> None:
    lines = (DATA / "queue_shift.ami_actions.jsonl").read_text(encoding="utf-8").splitlines()
    for record in map(orjson.loads, lines):
        [action], server = parse(record["request_raw"].encode())
        assert action.kind is Kind.ACTION and action.action_id
        responses, client = parse(*(r["raw"].encode() for r in record["responses"]))
        assert [m.as_dict() for m in responses] == [r["parsed"] for r in record["responses"]]
        assert responses[0].action_id == action.action_id
        assert not server.errors and not client.errors


# -- messages and actions ------------------------------------------------------------------------


def test_message_lookup_is_case_insensitive_and_keeps_repeats_in_order() -> None:
    [m], _ = parse(b"Event: VarSet\r\nChanVariable: a=1\r\nchanvariable: b=2\r\nValue:\r\n\r\n")
    assert m.kind is Kind.EVENT and m.name == "VarSet"
    assert m["EVENT"] == "VarSet" and m.get("chanVARIABLE") == "a=1"
    assert m.get_all("ChanVariable") == ("a=1", "b=2")
    assert m.get("Value") == "" and "Value" in m and "Nope" not in m
    assert m.get("Nope", "x") == "x"
    with pytest.raises(KeyError):
        m["Nope"]


def test_send_action_bytes_and_round_trip() -> None:
    data = send_action("QueuePause", "a1", Interface="Local/1001@agents", Paused="true",
                       Reason="обед", Variable=["A=1", "B=2"])  # fmt: skip
    assert (
        data
        == (
            "Action: QueuePause\r\nActionID: a1\r\nInterface: Local/1001@agents\r\nPaused: true\r\n"
            "Reason: обед\r\nVariable: A=1\r\nVariable: B=2\r\n\r\n"
        ).encode()
    )
    [action], _ = parse(data)
    assert action.kind is Kind.ACTION and action.name == "QueuePause" and action.action_id == "a1"
    assert action.to_bytes() == data
    assert AmiProtocol().send_action("Ping", "p1") == b"Action: Ping\r\nActionID: p1\r\n\r\n"


@pytest.mark.parametrize(
    "fields", [{"Reason": "x\r\nAction: Logoff"}, {"Bad\nKey": "v"}, {"A:B": "v"}]
)
def test_values_cannot_inject_headers(fields: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="unsafe"):
        send_action("QueuePause", "a1", **fields)
    with pytest.raises(ValueError):
        encode_message(fields)


# -- bad input: counted, logged, the next good message still parsed ------------------------------


def test_garbage_bytes() -> None:
    messages, protocol = parse(b"\x00\xff\xfe\x13garbage\r\n\r\n", GOOD)
    assert protocol.errors == {ERR_INVALID_UTF8: 1, ERR_LINE_WITHOUT_COLON: 1}
    assert len(messages) == 1
    assert_good_follows(messages)


def test_line_without_colon_is_skipped() -> None:
    messages, protocol = parse(b"Event: Newexten\r\nthis line has none\r\nExten: s\r\n\r\n", GOOD)
    assert protocol.errors == {ERR_LINE_WITHOUT_COLON: 1}
    assert messages[0].as_dict() == {"Event": "Newexten", "Exten": "s"}
    assert_good_follows(messages)


def test_invalid_utf8_is_replaced_and_counted() -> None:
    messages, protocol = parse(b"Event: Newchannel\r\nCallerIDName: \xd0\x98\xff\xd0\r\n\r\n", GOOD)
    assert protocol.errors == {ERR_INVALID_UTF8: 1}
    assert messages[0]["CallerIDName"] == "И\ufffd\ufffd"
    assert_good_follows(messages)


def test_message_without_kind_is_dropped() -> None:
    messages, protocol = parse(b"Foo: bar\r\nBaz: 1\r\n\r\n", GOOD)
    assert protocol.errors == {ERR_MESSAGE_WITHOUT_KIND: 1}
    assert len(messages) == 1
    assert_good_follows(messages)


@pytest.mark.parametrize("line_bytes", [100, 5 * 1024 * 1024], ids=["many-lines", "one-line"])
def test_message_of_several_megabytes_is_dropped_with_memory_bounded(line_bytes: int) -> None:
    limit = 64 * 1024
    protocol = AmiProtocol(expect_banner=False, max_message_bytes=limit)
    line = b"ChanVariable: " + b"x" * line_bytes + b"\r\n"
    big = b"Event: Huge\r\n" + line * (5 * 1024 * 1024 // len(line) + 1) + b"\r\n"
    peak = 0
    for start in range(0, len(big), 60_000):
        protocol.receive_data(big[start : start + 60_000])
        peak = max(peak, protocol.buffered_bytes)
    protocol.receive_data(GOOD)
    assert peak <= limit + 60_000
    assert protocol.errors == {ERR_MESSAGE_TOO_LARGE: 1}
    messages = protocol.events_received()
    assert len(messages) == 1
    assert_good_follows(messages)


def test_oversized_message_resynchronises_even_when_blank_line_is_split() -> None:
    messages, protocol = parse(b"Event: Huge\r\nData: " + b"y" * 300 + b"\r\n\r", b"\n", GOOD,
                               max_message_bytes=100)  # fmt: skip
    assert protocol.errors == {ERR_MESSAGE_TOO_LARGE: 1}
    assert len(messages) == 1
    assert_good_follows(messages)


def test_connection_closed_mid_message() -> None:
    protocol = AmiProtocol(expect_banner=False)
    protocol.receive_data(GOOD + b"Event: Hangup\r\nChannel: Local/1001@agen")
    protocol.receive_eof()
    messages = protocol.events_received()
    assert len(messages) == 1
    assert_good_follows(messages)
    assert protocol.errors == {ERR_TRUNCATED_AT_EOF: 1}
    protocol.receive_data(GOOD)  # a driver bug, still no exception
    assert protocol.errors[ERR_DATA_AFTER_EOF] == 1
    assert protocol.events_received() == []


def test_clean_eof_counts_nothing() -> None:
    protocol = AmiProtocol(expect_banner=False)
    protocol.receive_data(GOOD)
    protocol.receive_eof()
    assert not protocol.errors


def test_missing_banner_is_counted_and_the_line_parsed() -> None:
    messages, protocol = parse(GOOD, expect_banner=True)
    assert protocol.banner is None
    assert protocol.errors == {ERR_MISSING_BANNER: 1}
    assert_good_follows(messages)


# -- EventList collection ---------------------------------------------------------------------


def snapshot(name: str) -> list[AmiMessage]:
    messages, _ = parse(
        *(r.raw for r in trace_records(DATA / "snapshots" / f"idle.{name}.ami.jsonl"))
    )
    return messages


def test_queue_status_list_is_collected_with_live_events_interleaved() -> None:
    queue_status = snapshot("QueueStatus")
    live = AmiMessage(Kind.EVENT, (("Event", "QueueMemberStatus"), ("Queue", "support")))
    other = AmiMessage(
        Kind.RESPONSE, (("Response", "Success"), ("ActionID", "x"), ("Ping", "Pong"))
    )
    collector = EventListCollector()
    taken = [collector.feed(m) for m in [queue_status[0], live, *queue_status[1:3], other,
                                          *queue_status[3:]]]  # fmt: skip
    assert taken == [True, False, True, True, False, True, True]
    [done] = collector.pop_completed()
    assert (
        done.action_id == "snap-a578cfc3" and done.response["Message"] == "Queue status will follow"
    )
    assert [m.name for m in done.items] == ["QueueParams", "QueueMember", "QueueMember"]
    assert done.items[1]["Name"] == "Agent 1001"
    assert done.declared_items == len(done.items) == 3
    assert done.complete.name == "QueueStatusComplete"
    assert collector.pop_completed() == [] and collector.pending() == ()


@pytest.mark.parametrize(("name", "count"), [("QueueSummary", 1), ("CoreShowChannels", 0),
                                             ("DeviceStateList", 6)])  # fmt: skip
def test_other_list_snapshots_are_collected(name: str, count: int) -> None:
    collector = EventListCollector()
    assert all(collector.feed(m) for m in snapshot(name))
    [done] = collector.pop_completed()
    assert len(done.items) == done.declared_items == count


def test_unfinished_lists_are_abandoned_on_disconnect() -> None:
    collector = EventListCollector()
    assert collector.feed(snapshot("QueueStatus")[0])
    assert collector.abandon() == ("snap-a578cfc3",)
    assert collector.pending() == () and collector.pop_completed() == []


def test_bad_input_is_logged_but_a_flood_is_not(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="connectors.ami.protocol"):
        messages, protocol = parse(
            b"Event: Flood\r\n" + b"no colon here\r\n" * 5000 + b"\r\n", GOOD
        )
    assert protocol.errors == {ERR_LINE_WITHOUT_COLON: 5000}
    assert len(caplog.records) == 10 + 5  # the first ten, then every thousandth
    assert "line_without_colon #5000" in caplog.records[-1].getMessage()
    assert_good_follows(messages)
