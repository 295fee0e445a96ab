"""A fake Mango Office VPBX over real sockets: it posts signed webhooks and serves commands.

- **Webhooks out**: ``post(path, payload)`` signs ``payload`` and POSTs the form
  (``vpbx_api_key``, ``sign``, ``json``) to ``{webhook_base}/{path}``, as Mango does;
  ``play(script, order=...)`` sends a scripted call in order, shuffled or with duplicates.
- **Command API in**: ``{url}/commands/call/hangup`` and ``{url}/commands/callback`` on
  127.0.0.1 (``url`` ends in ``/vpbx``, like ``https://app.mango-office.ru/vpbx``). The request
  signature is checked like the real API; errors are HTTP 420 with ``{"code": ...}``; an
  accepted command answers ``{"result": 1000}`` and, with a webhook base, posts its outcome to
  ``{webhook_base}/result/<command>`` later, as Mango does. Every request is recorded.

The builders (``call_event``, ``summary``, ``recording_event``, ``answered_call``,
``missed_call``) make dicts shaped like Mango's examples, with its mixed types (``seq`` and
numbers sometimes as strings).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

import aiohttp
import orjson
from aiohttp import web

from connectors.mango.commands import (
    BAD_FORMAT,
    BAD_KEY,
    BAD_SIGN,
    CALL_ALREADY_ENDED,
    MISSING_PARAMETER,
    NOT_FOUND,
    OK,
    REFUSED_STATUS,
)
from connectors.mango.signing import signed_form, verify

Json = dict[str, Any]

# -- builders -------------------------------------------------------------------------------


def call_event(
    entry_id: str,
    call_id: str,
    seq: int | str,
    state: str,
    location: str,
    timestamp: int | str,
    *,
    from_: Json | None = None,
    to: Json | None = None,
    disconnect_reason: int | None = None,
) -> Json:
    """An ``events/call`` object."""
    ev: Json = {"entry_id": entry_id, "call_id": call_id, "timestamp": timestamp, "seq": seq,
                "call_state": state, "location": location, "from": from_ or {}, "to": to or {}}
    if disconnect_reason is not None:
        ev["disconnect_reason"] = disconnect_reason
    return ev


def summary(
    entry_id: str,
    *,
    direction: int = 1,
    from_: Json | None = None,
    to: Json | None = None,
    line_number: str = "",
    create_time: int,
    forward_time: int = 0,
    talk_time: int = 0,
    end_time: int,
    answered: bool,
    disconnect_reason: int = 1100,
) -> Json:
    """An ``events/summary`` object (``talk_time`` 0 when nobody answered, as Mango sends)."""
    return {"entry_id": entry_id, "call_direction": direction, "from": from_ or {},
            "to": to or {}, "line_number": line_number, "create_time": create_time,
            "forward_time": forward_time, "talk_time": talk_time, "end_time": end_time,
            "entry_result": 1 if answered else 0, "disconnect_reason": disconnect_reason}


def recording_event(
    entry_id: str,
    call_id: str,
    recording_id: str,
    state: str,
    seq: int | str,
    timestamp: int | str,
    *,
    extension: str | None = None,
    completion_code: int | None = None,
) -> Json:
    """An ``events/recording`` object (``state``: Started, Continued, Completed)."""
    ev: Json = {"recording_id": recording_id, "recording_state": state, "seq": seq,
                "entry_id": entry_id, "call_id": call_id, "timestamp": timestamp}
    if extension is not None:
        ev["extension"] = extension
    if completion_code is not None:
        ev["completion_code"] = completion_code
    return ev


@dataclass(frozen=True, slots=True)
class Posting:
    """One webhook to send: the path after the base URL and the JSON object."""

    path: str
    payload: Json


def answered_call(
    entry_id: str = "MTAxMjM0NTY3OA==",
    *,
    caller: str = "8 (900) 123-45-67",
    line: str = "74950000000",
    extension: str = "101",
    acd_group: str = "support",
    start: int = 1_764_670_000,
) -> list[Posting]:
    """An inbound call: IVR, queue, operator ``extension`` answers, talk 60 s, summary."""
    customer, operator = f"{entry_id}:1", f"{entry_id}:2"
    caller_party = {"number": caller}
    in_ivr = {"number": line, "line_number": line}
    in_queue = {"number": line, "line_number": line, "acd_group": acd_group}
    at_operator = {"extension": extension, "number": f"sip:{extension}@example.mangosip.ru",
                   "line_number": line, "acd_group": acd_group}
    events = [
        call_event(entry_id, customer, 1, "Appeared", "ivr", start, from_=caller_party, to=in_ivr),
        call_event(entry_id, customer, "2", "Connected", "ivr", str(start + 1),
                   from_=caller_party, to=in_ivr),
        call_event(entry_id, customer, 3, "Appeared", "queue", start + 5, from_=caller_party,
                   to=in_queue),
        call_event(entry_id, operator, 1, "Appeared", "abonent", start + 6, from_=caller_party,
                   to=at_operator),
        call_event(entry_id, operator, 2, "Connected", "abonent", start + 10,
                   from_=caller_party, to=at_operator),
        call_event(entry_id, operator, 3, "Disconnected", "abonent", start + 70,
                   from_=caller_party, to=at_operator, disconnect_reason=1110),
        call_event(entry_id, customer, 4, "Disconnected", "queue", start + 70,
                   from_=caller_party, to=in_queue, disconnect_reason=1110),
    ]
    final = summary(entry_id, from_={"number": caller}, to=at_operator, line_number=line,
                    create_time=start, forward_time=start + 6, talk_time=start + 10,
                    end_time=start + 70, answered=True, disconnect_reason=1110)
    return [*(Posting("events/call", ev) for ev in events), Posting("events/summary", final)]


def missed_call(
    entry_id: str = "MTAxMjM0NTY3OQ==",
    *,
    caller: str = "+7 900 765-43-21",
    line: str = "74950000000",
    extension: str = "101",
    acd_group: str = "support",
    start: int = 1_764_671_000,
) -> list[Posting]:
    """An inbound call that waits in the queue, rings ``extension`` and is abandoned."""
    customer, operator = f"{entry_id}:1", f"{entry_id}:2"
    caller_party = {"number": caller}
    in_queue = {"number": line, "line_number": line, "acd_group": acd_group}
    at_operator = {"extension": extension, "line_number": line, "acd_group": acd_group}
    events = [
        call_event(entry_id, customer, 1, "Appeared", "queue", start, from_=caller_party,
                   to=in_queue),
        call_event(entry_id, operator, 1, "Appeared", "abonent", start + 3, from_=caller_party,
                   to=at_operator),
        call_event(entry_id, operator, 2, "Disconnected", "abonent", start + 20,
                   from_=caller_party, to=at_operator, disconnect_reason=1110),
        call_event(entry_id, customer, 2, "Disconnected", "queue", start + 20,
                   from_=caller_party, to=in_queue, disconnect_reason=1110),
    ]
    final = summary(entry_id, from_={"number": caller}, to=in_queue, line_number=line,
                    create_time=start, forward_time=start + 3, end_time=start + 20,
                    answered=False, disconnect_reason=1110)
    return [*(Posting("events/call", ev) for ev in events), Posting("events/summary", final)]


class Order(StrEnum):
    IN_ORDER = "in_order"
    SHUFFLED = "shuffled"
    DUPLICATES = "duplicates"   # every posting twice, the copy right after the original


def arrange(script: Sequence[Posting], order: Order, seed: int = 0) -> list[Posting]:
    """The postings in the order ``play`` sends them (deterministic for a given seed)."""
    if order is Order.SHUFFLED:
        shuffled = list(script)
        random.Random(seed).shuffle(shuffled)
        return shuffled
    if order is Order.DUPLICATES:
        return [posting for original in script for posting in (original, original)]
    return list(script)


# -- the server -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReceivedCommand:
    """One request to the command API, as received, and what the fake answered."""

    command: str                  # "commands/call/hangup", ...
    form: dict[str, str]
    status: int
    answer: Json
    payload: Json | None = field(default=None)   # the parsed json, when it parsed


class FakeMango:
    """Mango's command API on 127.0.0.1 and a webhook sender, with one key and salt."""

    def __init__(
        self,
        *,
        api_key: str = "fake-vpbx-key",
        api_salt: str = "fake-vpbx-salt",
        webhook_base: str | None = None,
        extensions: Iterable[str] = ("101", "102"),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key, self.api_salt = api_key, api_salt
        self.webhook_base = webhook_base
        self.extensions = set(extensions)
        self.live_calls: set[str] = set()       # Mango leg ids hangup can end
        self.requests: list[ReceivedCommand] = []
        self.sent: list[Posting] = []            # every webhook posted, in order
        self.host, self.port = host, port
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> Self:
        app = web.Application()
        app.router.add_post("/vpbx/commands/call/hangup", self._hangup)
        app.router.add_post("/vpbx/commands/callback", self._callback)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]
        self.url = f"http://{self.host}:{self.port}/vpbx"
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- webhooks out -------------------------------------------------------------------------

    async def post(self, path: str, payload: Json) -> int:
        """Sign ``payload`` and POST it to ``{webhook_base}/{path}``; the HTTP status."""
        return await self.post_form(path, signed_form(self.api_key, self.api_salt, payload))

    async def post_form(self, path: str, form: dict[str, str]) -> int:
        """POST form fields as they are (tests use it for wrongly signed deliveries)."""
        if self._session is None or self.webhook_base is None:
            raise RuntimeError("FakeMango needs start() and a webhook_base to post")
        url = f"{self.webhook_base.rstrip('/')}/{path.strip('/')}"
        async with self._session.post(url, data=form) as response:
            await response.read()
            return response.status

    async def play(
        self, script: Sequence[Posting], order: Order = Order.IN_ORDER, seed: int = 0
    ) -> list[int]:
        """Post a scripted call one webhook at a time; the statuses, in sending order."""
        statuses = []
        for posting in arrange(script, order, seed):
            self.sent.append(posting)
            statuses.append(await self.post(posting.path, posting.payload))
        return statuses

    # -- command API in -----------------------------------------------------------------------

    async def _hangup(self, request: web.Request) -> web.Response:
        return await self._command(request, "call/hangup", ("command_id", "call_id"))

    async def _callback(self, request: web.Request) -> web.Response:
        return await self._command(request, "callback", ("command_id", "from", "to_number"))

    async def _command(
        self, request: web.Request, command: str, required: tuple[str, ...]
    ) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        payload: Json | None = None
        code = self._check_signature(form)
        if code is None:
            try:
                parsed = orjson.loads(form["json"])
            except orjson.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, dict):
                code = BAD_FORMAT
            else:
                payload = parsed
                code = next((MISSING_PARAMETER for k in required if not parsed.get(k)), None)
        result = OK
        if code is None and payload is not None:
            code, result = self._execute(command, payload)
        status, answer = (200, {"result": OK}) if code is None else (REFUSED_STATUS, {"code": code})
        self.requests.append(ReceivedCommand(f"commands/{command}", form, status, answer, payload))
        if code is None and payload is not None and self.webhook_base is not None:
            outcome = {"command_id": payload["command_id"], "result": result}
            self._spawn(self.post(f"result/{command.rpartition('/')[2]}", outcome))
        return web.json_response(answer, status=status)

    def _check_signature(self, form: dict[str, str]) -> int | None:
        if not all(form.get(k) for k in ("vpbx_api_key", "sign", "json")):
            return MISSING_PARAMETER
        if form["vpbx_api_key"] != self.api_key:
            return BAD_KEY
        if not verify(self.api_key, form["json"], self.api_salt, form["sign"]):
            return BAD_SIGN
        return None

    def _execute(self, command: str, payload: Json) -> tuple[int | None, int]:
        """(an error code for HTTP 420, or None; the result posted to ``result/<command>``)."""
        if command == "call/hangup":
            call_id = str(payload["call_id"])
            if call_id not in self.live_calls:
                return None, CALL_ALREADY_ENDED
            self.live_calls.discard(call_id)
            return None, OK
        origin = payload["from"]
        extension = origin.get("extension") if isinstance(origin, dict) else None
        if str(extension) not in self.extensions:
            return NOT_FOUND, OK
        return None, OK

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        async def run() -> None:
            try:
                await coro
            except aiohttp.ClientError:
                pass   # the receiver is gone (test over): a result nobody waits for
        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
