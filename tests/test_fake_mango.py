"""The fake Mango Office over real sockets: signed webhooks out, the command API in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from connectors.fakes.mango_server import (
    FakeMango,
    Order,
    Posting,
    answered_call,
    arrange,
    call_event,
)
from connectors.mango.commands import (
    BAD_FORMAT,
    BAD_KEY,
    BAD_SIGN,
    CALL_ALREADY_ENDED,
    MISSING_PARAMETER,
    NOT_FOUND,
    OK,
)
from connectors.mango.machine import MangoCalls
from connectors.mango.signing import DeliveryError, parse_delivery, sign, signed_form, verify
from engine.directory import OperatorDirectory
from engine.effects import CallAnswered, CallEffect, CallEnded, CallStarted, CallUpdated
from engine.model import CallStatus, Operator

KEY, SALT = "test-key", "test-salt"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class Receiver:
    """Our side of the webhooks, minimal: checks each delivery like the product will."""

    def __init__(self) -> None:
        self.forms: list[tuple[str, dict[str, str], str]] = []   # (path, form, content type)
        self.refused: list[str] = []
        self.arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.base = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/mango/webhook/{tail:.*}", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}/api/mango/webhook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        path = request.match_info["tail"]
        try:
            parse_delivery(path, form, api_key=KEY, api_salt=SALT)
        except DeliveryError as exc:
            self.refused.append(exc.reason)
            return web.Response(status=403)
        async with self.arrived:
            self.forms.append((path, form, request.content_type))
            self.arrived.notify_all()
        return web.Response(status=200)

    async def wait_for(self, count: int) -> None:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(self.forms) >= count), 10)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest_asyncio.fixture
async def mango(receiver: Receiver) -> AsyncIterator[FakeMango]:
    async with FakeMango(api_key=KEY, api_salt=SALT, webhook_base=receiver.base) as fake:
        yield fake


def effects_of(receiver: Receiver) -> list[CallEffect]:
    calls = MangoCalls(OperatorDirectory([Operator(id="op1", extension="101")]))
    effects: list[CallEffect] = []
    for path, form, _ in receiver.forms:
        effects += calls.handle(parse_delivery(path, form, api_key=KEY, api_salt=SALT), NOW)
    return effects


async def test_posts_are_signed_forms_as_mango_sends_them(
    mango: FakeMango, receiver: Receiver
) -> None:
    script = answered_call("E1")
    assert await mango.play(script) == [200] * len(script)
    assert [path for path, _, _ in receiver.forms] == [p.path for p in script]
    for _, form, content_type in receiver.forms:
        assert content_type == "application/x-www-form-urlencoded"
        assert set(form) == {"vpbx_api_key", "sign", "json"}
        assert verify(KEY, form["json"], SALT, form["sign"])


async def test_the_scripted_call_gives_the_expected_effects(
    mango: FakeMango, receiver: Receiver
) -> None:
    await mango.play(answered_call("E1"))
    effects = effects_of(receiver)
    assert [type(e) for e in effects] == [
        CallStarted, CallUpdated, CallUpdated, CallAnswered, CallEnded]
    ended = effects[-1].call
    assert (ended.status, ended.operator_id, ended.caller_number, ended.duration) == (
        CallStatus.COMPLETED, "op1", "+79001234567", 60)


@pytest.mark.parametrize("order", [Order.SHUFFLED, Order.DUPLICATES])
async def test_shuffled_and_duplicated_delivery(
    mango: FakeMango, receiver: Receiver, order: Order
) -> None:
    script = answered_call("E1")
    await mango.play(script, order, seed=3)
    sent = [(p.path, p.payload) for p in arrange(script, order, seed=3)]
    assert mango.sent == [Posting(path, payload) for path, payload in sent]
    assert len(receiver.forms) == len(sent)
    effects = effects_of(receiver)
    assert [type(e) for e in effects].count(CallStarted) == 1
    assert [type(e) for e in effects].count(CallEnded) == 1
    assert (effects[-1].call.status, effects[-1].call.operator_id) == (
        CallStatus.COMPLETED, "op1")


async def test_text_that_form_encoding_could_mangle_still_verifies(
    mango: FakeMango, receiver: Receiver
) -> None:
    payload = call_event("E 1+&=", "c:1", 1, "Appeared", "ivr", 1_764_670_000,
                         from_={"number": "+7 900 123-45-67", "name": "Иван & Co"})
    assert await mango.post("events/call", payload) == 200
    (_, form, _) = receiver.forms[0]
    assert form["json"] == signed_form(KEY, SALT, payload)["json"]


async def test_a_wrongly_signed_webhook_is_refused(mango: FakeMango, receiver: Receiver) -> None:
    form = signed_form(KEY, SALT, {"entry_id": "E1"})
    assert await mango.post_form("events/summary", {**form, "sign": "0" * 64}) == 403
    assert await mango.post_form("events/summary", {**form, "vpbx_api_key": "x"}) == 403
    assert (receiver.forms, receiver.refused) == ([], ["wrong_sign", "wrong_key"])


# -- the command API ----------------------------------------------------------------------------


async def command(
    mango: FakeMango, name: str, payload: Any, *, key: str = KEY, salt: str = SALT,
    form: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    data = form if form is not None else signed_form(key, salt, payload)
    async with aiohttp.ClientSession() as session, session.post(
        f"{mango.url}/{name}", data=data
    ) as response:
        return response.status, await response.json()


async def test_hangup_of_a_live_call(mango: FakeMango, receiver: Receiver) -> None:
    mango.live_calls.add("E1:1")
    payload = {"command_id": "cmd-1", "call_id": "E1:1"}
    assert await command(mango, "commands/call/hangup", payload) == (200, {"result": OK})
    assert mango.live_calls == set()
    (recorded,) = mango.requests
    assert (recorded.command, recorded.status, recorded.payload) == (
        "commands/call/hangup", 200, payload)
    assert verify(KEY, recorded.form["json"], SALT, recorded.form["sign"])
    await receiver.wait_for(1)
    path, form, _ = receiver.forms[0]
    result = parse_delivery(path, form, api_key=KEY, api_salt=SALT)
    assert (result.command, result.data) == ("hangup", {"command_id": "cmd-1", "result": OK})


async def test_hangup_of_an_ended_call_reports_4101(mango: FakeMango, receiver: Receiver) -> None:
    payload = {"command_id": "cmd-2", "call_id": "gone"}
    assert await command(mango, "commands/call/hangup", payload) == (200, {"result": OK})
    await receiver.wait_for(1)
    path, form, _ = receiver.forms[0]
    assert parse_delivery(path, form, api_key=KEY, api_salt=SALT).data == {
        "command_id": "cmd-2", "result": CALL_ALREADY_ENDED}


async def test_callback(mango: FakeMango) -> None:
    payload = {"command_id": "cb-1", "from": {"extension": "101"}, "to_number": "79001234567"}
    assert await command(mango, "commands/callback", payload) == (200, {"result": OK})
    unknown = {**payload, "from": {"extension": "999"}}
    assert await command(mango, "commands/callback", unknown) == (420, {"code": NOT_FOUND})


HANGUP = {"command_id": "c", "call_id": "E1:1"}


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"salt": "wrong"}, BAD_SIGN),
        ({"key": "wrong"}, BAD_KEY),
        ({"form": {"vpbx_api_key": KEY, "json": "{}"}}, MISSING_PARAMETER),
        ({"form": {"vpbx_api_key": KEY, "sign": sign(KEY, "{x", SALT), "json": "{x"}},
         BAD_FORMAT),
        ({"form": signed_form(KEY, SALT, {"command_id": "c"})}, MISSING_PARAMETER),
    ],
)
async def test_refused_commands_are_420_with_a_code(
    mango: FakeMango, receiver: Receiver, kwargs: dict[str, Any], code: int
) -> None:
    mango.live_calls.add("E1:1")
    assert await command(mango, "commands/call/hangup", HANGUP, **kwargs) == (
        420, {"code": code})
    assert mango.live_calls == {"E1:1"}           # nothing was done
    assert [r.status for r in mango.requests] == [420]
    assert receiver.forms == []
