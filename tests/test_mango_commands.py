"""Commands to Mango, sans I/O (connectors/mango/commands.py), and against the fake Mango, and
the typed recording event (connectors/mango/events.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
import pytest

from connectors.fakes.mango_server import FakeMango, recording_event
from connectors.mango.commands import (
    CALLBACK,
    HANGUP,
    CommandAccepted,
    CommandAnswer,
    CommandRefused,
    CommandRequest,
    CommandResult,
    RefusalKind,
    callback,
    hangup,
    parse_result,
    read_answer,
)
from connectors.mango.events import RecordingEvent, RecordingState, parse_recording
from connectors.mango.signing import parse_delivery, signed_form

KEY, SALT = "test-key", "test-salt"


def test_requests_are_signed_and_carry_the_payload() -> None:
    request = hangup("E1:1", "cmd-1", api_key=KEY, api_salt=SALT)
    delivery = parse_delivery("ping", request.form, api_key=KEY, api_salt=SALT)
    assert (request.path, request.command_id) == (HANGUP, "cmd-1")
    assert delivery.data == {"command_id": "cmd-1", "call_id": "E1:1"}
    request = callback("101", "+79001234567", "cb-1", api_key=KEY, api_salt=SALT,
                       line_number="74950000000")
    delivery = parse_delivery("ping", request.form, api_key=KEY, api_salt=SALT)
    assert request.path == CALLBACK
    assert delivery.data == {"command_id": "cb-1", "from": {"extension": "101"},
                             "to_number": "+79001234567", "line_number": "74950000000"}


@pytest.mark.parametrize(
    ("status", "body", "answer"),
    [
        (200, b'{"result":1000}', CommandAccepted()),
        (200, b'{"result":"1000"}', CommandAccepted()),
        (200, b"", CommandAccepted()),
        (420, b'{"code":3102}', CommandRefused(3102, RefusalKind.BAD_SIGN)),
        (420, b'{"code":"3105"}', CommandRefused(3105, RefusalKind.BAD_KEY)),
        (420, b'{"code":3103}', CommandRefused(3103, RefusalKind.BAD_REQUEST)),
        (420, b'{"code":3310}', CommandRefused(3310, RefusalKind.NOT_FOUND)),
        (420, b'{"code":4101}', CommandRefused(4101, RefusalKind.ALREADY_ENDED)),
        (420, b'{"code":9999}', CommandRefused(9999, RefusalKind.OTHER)),
        (200, b'{"result":4101}', CommandRefused(4101, RefusalKind.ALREADY_ENDED)),
        (420, b"not json", CommandRefused(None, RefusalKind.UNAVAILABLE)),
        (502, b"<html>bad gateway</html>", CommandRefused(None, RefusalKind.UNAVAILABLE)),
    ],
)
def test_read_answer(status: int, body: bytes, answer: CommandAnswer) -> None:
    assert read_answer(status, body) == answer


async def send(fake: FakeMango, request: CommandRequest) -> CommandAnswer:
    async with aiohttp.ClientSession() as session, session.post(
        f"{fake.url}/{request.path}", data=request.form
    ) as response:
        return read_answer(response.status, await response.read())


async def test_commands_against_the_fake() -> None:
    async with FakeMango(api_key=KEY, api_salt=SALT, extensions=["101"]) as fake:
        fake.live_calls.add("E1:1")
        assert await send(fake, hangup("E1:1", "c1", api_key=KEY, api_salt=SALT)) == (
            CommandAccepted())
        assert fake.live_calls == set()
        wrong_salt = hangup("E1:2", "c2", api_key=KEY, api_salt="not ours")
        assert await send(fake, wrong_salt) == CommandRefused(3102, RefusalKind.BAD_SIGN)
        unknown = callback("999", "79001234567", "c3", api_key=KEY, api_salt=SALT)
        assert await send(fake, unknown) == CommandRefused(3300, RefusalKind.NOT_FOUND)
        assert [(r.command, r.status) for r in fake.requests] == [
            (HANGUP, 200), (HANGUP, 420), (CALLBACK, 420)]


def test_parse_result() -> None:
    form = signed_form(KEY, SALT, {"command_id": "c1", "result": "4101"})
    delivery = parse_delivery("result/hangup", form, api_key=KEY, api_salt=SALT)
    result = parse_result(delivery)
    assert result == CommandResult("hangup", "c1", 4101) and not result.ok
    event = parse_delivery("events/call", form, api_key=KEY, api_salt=SALT)
    assert parse_result(event) is None


def test_parse_recording() -> None:
    data = recording_event("E1", "E1:2", "MToxMDE=", "completed", "3", "1764670070",
                           extension="101", completion_code=1000)
    assert parse_recording(data) == RecordingEvent(
        entry_id="E1", call_id="E1:2", recording_id="MToxMDE=",
        state=RecordingState.COMPLETED, seq=3,
        ts=datetime.fromtimestamp(1_764_670_070, UTC), extension="101", completion_code=1000)
    assert parse_recording({**data, "recording_state": "Lost"}) is None
    assert parse_recording({**data, "recording_id": ""}) is None
