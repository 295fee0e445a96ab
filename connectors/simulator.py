"""Call-center traffic simulator: real ARI events through a ``FakeAsterisk``.

Every inbound call follows the captured trace (``inbound_answered.ari.jsonl``): the customer is
a Local ``;1``/``;2`` pair at the center's number (``did``, what the customer dialled; the
caller ID is the customer's own number) that the dialplan answers at once, then queue
``support`` rings all free agents (``Local/{ext}@agents-XXXXXXXX;1/;2``, state interface
``Custom:{ext}``); one answers, the others end with cause 26, the winner and the customer
meet in a mixing bridge, talk, and hang up. Some callers give up while agents ring or while
nobody is free; some operators go offline and come back.

The defaults look like a staffed center at ``rate_per_min`` 6 with ten agents (about six
Erlang of talk): most calls answered, most of them within 20 s; a few callers hang up first.

One coroutine per call. Each call draws from its own ``random.Random`` derived from ``seed``,
so a run is repeatable; ``speed`` compresses time (``speed=100``: a 60 s call lasts 0.6 s)
while event timestamps still advance in simulated seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from connectors.fakes.ari_server import (
    FakeAsterisk,
    ari_timestamp,
    bridge,
    caller_id,
    channel,
    device_state,
    endpoint,
    event,
)

Json = dict[str, Any]

NAMES = ["Иван Петров", "Анна Смирнова", "Олег Кузнецов", "Мария Иванова", "Alex Brown", ""]
PRESENTATION = {
    "caller_presentation": 0,
    "caller_presentation_txt": "Presentation Allowed, Not Screened",
}
ANSWERED_ELSEWHERE = {"cause": 26, "cause_txt": "Answered elsewhere"}
NORMAL_CLEARING = {"cause": 16, "cause_txt": "Normal Clearing"}


class Simulator:
    """Generates inbound queue calls and operator presence changes on a ``FakeAsterisk``."""

    def __init__(
        self,
        fake: FakeAsterisk,
        extensions: Sequence[str] | None = None,
        *,
        rate_per_min: float = 3.0,
        seed: int = 0,
        speed: float = 1.0,
        queue: str = "support",
        did: str = "+74951234567",
        answer_prob: float = 0.97,
        ring_time: tuple[float, float] = (2.0, 8.0),
        talk_time: tuple[float, float] = (20.0, 100.0),
        patience: tuple[float, float] = (30.0, 150.0),
        presence_per_hour: float = 6.0,
        offline_time: tuple[float, float] = (30.0, 300.0),
        noise: bool = True,
    ) -> None:
        self.fake = fake
        self.extensions = list(extensions or [f"{2000 + i}" for i in range(1, 11)])
        self.rate_per_min, self.speed, self.queue, self.did = rate_per_min, speed, queue, did
        self.answer_prob, self.ring_time, self.talk_time = answer_prob, ring_time, talk_time
        self.patience, self.offline_time = patience, offline_time
        self.presence_per_hour, self.noise = presence_per_hour, noise
        self.seed = seed
        self.stats: Counter[str] = Counter()
        self._online = set(self.extensions)
        self._free = set(self.extensions)  # online and neither ringing nor talking
        self._changed: asyncio.Condition | None = None
        self._waiting = 0  # callers in the queue
        self._local_seq = itertools.count()
        self._t0_wall = time.time()
        self._t0_loop = 0.0
        self._tg: asyncio.TaskGroup | None = None
        self._returns: set[asyncio.Task[None]] = set()  # operators on their way back online

    # -- clock --------------------------------------------------------------------------------

    def now(self) -> float:
        """Simulated wall-clock time (epoch seconds), running ``speed`` times faster."""
        elapsed = asyncio.get_running_loop().time() - self._t0_loop
        return self._t0_wall + elapsed * self.speed

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of simulated time."""
        await asyncio.sleep(seconds / self.speed)

    # -- main loop ----------------------------------------------------------------------------

    async def run(self, max_calls: int | None = None) -> None:
        """Generate traffic until cancelled, or until ``max_calls`` calls have ended."""
        self._t0_loop = asyncio.get_running_loop().time()
        self._t0_wall = time.time()
        self._changed = asyncio.Condition()
        for ext in self.extensions:  # the PBX as the engine finds it on its first resync
            self.fake.set_endpoint(endpoint("PJSIP", ext, "online"))
            self.fake.set_device_state(f"PJSIP/{ext}", "NOT_INUSE")
            self.fake.set_device_state(f"Custom:{ext}", "NOT_INUSE")
        arrivals = random.Random(self.seed)
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            presence = tg.create_task(self._presence(random.Random(self.seed + 1)))
            calls = []
            for n in itertools.count():
                if max_calls is not None and n >= max_calls:
                    break
                await self.sleep(arrivals.expovariate(self.rate_per_min / 60))
                call_rng = random.Random(arrivals.getrandbits(64))
                calls.append(tg.create_task(self._inbound_call(call_rng), name=f"sim-call-{n}"))
            await asyncio.gather(*calls)
            for task in (presence, *self._returns):
                task.cancel()

    async def _emit(self, type: str, **fields: Any) -> None:
        await self.fake.emit(event(type, timestamp=ari_timestamp(self.now()), **fields))
        self.stats["events"] += 1

    # -- one inbound call ---------------------------------------------------------------------

    async def _inbound_call(self, rng: random.Random) -> None:
        self.stats["calls"] += 1
        arrived = self.now()
        number = f"+7900{rng.randrange(10**7):07d}"
        cust1, cust2 = await self._customer_enters(number, rng.choice(NAMES))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + rng.uniform(*self.patience) / self.speed  # caller's patience
        await self._join_queue()
        agents = await self._take_free_agents(deadline)
        if not agents:
            self.stats["missed_no_agent"] += 1
            await self._caller_gives_up(number, cust1, cust2, [])
            return
        legs = await self._ring(cust1, agents)
        ring_for = rng.uniform(*self.ring_time) / self.speed
        if rng.random() >= self.answer_prob or loop.time() + ring_for >= deadline:
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            self.stats["missed_ringing"] += 1
            await self._caller_gives_up(number, cust1, cust2, legs)
            return
        await asyncio.sleep(ring_for)
        winner = rng.choice(legs)
        bridge_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        brg = await self._agent_answers(cust1, legs, winner, bridge_id)
        self.stats["answered"] += 1
        if self.now() - arrived <= 20:
            self.stats["answered_within_20s"] += 1
        await self.sleep(rng.uniform(*self.talk_time))
        await self._hang_up(number, cust1, cust2, winner, brg, caller_first=rng.random() < 0.6)

    def _local_pair(self, exten: str, context: str) -> tuple[Json, Json]:
        """A Local channel's two halves: ``;1`` Down (outbound side), ``;2`` Ring (dialplan)."""
        base = f"Local/{exten}@{context}-{next(self._local_seq):08x}"
        created = ari_timestamp(self.now())
        one = channel(
            self.fake.new_channel_id(),
            base + ";1",
            "Down",
            exten=exten,
            context=context,
            creationtime=created,
        )
        two = channel(
            self.fake.new_channel_id(),
            base + ";2",
            "Ring",
            exten=exten,
            context=context,
            creationtime=created,
        )
        return one, two

    async def _customer_enters(self, number: str, name: str) -> tuple[Json, Json]:
        """Trace seq 1-22: the pair appears, gets its caller id, the dialplan answers."""
        cust1, cust2 = self._local_pair(self.did, "pstn")
        cust1["dialplan"].update(app_name="AppDial2", app_data="(Outgoing Line)")
        await self._emit("ChannelCreated", channel=cust1)
        await self._emit("ChannelCreated", channel=cust2)
        await self._device(f"Local/{self.did}@pstn", "INUSE")
        for ch in (cust1, cust2):
            ch["caller"] = caller_id(name, number)
            await self._emit("ChannelCallerId", **PRESENTATION, channel=ch)
        cust1["connected"] = cust2["connected"] = caller_id(name, number)
        dialstring = f"{self.did}@pstn"
        await self._emit("Dial", dialstatus="", forward="", dialstring=dialstring, peer=cust1)
        for ch in (cust2, cust1):
            ch["state"] = "Up"
            await self._emit("ChannelStateChange", channel=ch)
        await self._emit("Dial", dialstatus="ANSWER", forward="", dialstring=dialstring, peer=cust1)
        cust1["dialplan"] = {
            "context": "incoming",
            "exten": self.queue,
            "priority": 4,
            "app_name": "Queue",
            "app_data": self.queue,
        }
        if self.noise:
            await self._emit(
                "ChannelDialplan", dialplan_app="Queue", dialplan_app_data=self.queue, channel=cust1
            )
            await self._emit("ChannelVarset", variable="QUEUENAME", value=self.queue, channel=cust1)
        return cust1, cust2

    async def _join_queue(self) -> None:
        self._waiting += 1
        if self._waiting == 1:
            await self._queue_state("RINGING")

    async def _leave_queue(self) -> None:
        self._waiting -= 1
        if self._waiting == 0:
            await self._queue_state("NOT_INUSE")

    async def _queue_state(self, state: str) -> None:
        await self._device(f"Queue:{self.queue}", state)

    async def _take_free_agents(self, deadline: float) -> list[str]:
        """Reserve every free agent (ringall) as soon as there is one; [] if patience ends."""
        assert self._changed is not None
        async with self._changed:
            try:
                async with asyncio.timeout_at(deadline):
                    await self._changed.wait_for(lambda: bool(self._free))
            except TimeoutError:
                return []
            agents = sorted(self._free)
            self._free.clear()
            return agents

    async def _release(self, ext: str) -> None:
        assert self._changed is not None
        async with self._changed:
            if ext in self._online:
                self._free.add(ext)
                self._changed.notify_all()

    async def _ring(self, cust1: Json, agents: list[str]) -> list[tuple[str, Json, Json]]:
        """Trace seq 29-75: one Local pair per agent, Dial, then Ringing + device states."""
        legs = []
        for ext in agents:
            a1, a2 = self._local_pair(ext, "agents")
            a1["dialplan"].update(app_name="AppQueue", app_data="(Outgoing Line)")
            await self._emit("ChannelCreated", channel=a1)
            await self._emit("ChannelCreated", channel=a2)
            for ch in (a1, a2):
                ch["caller"] = dict(cust1["caller"])
                await self._emit("ChannelCallerId", **PRESENTATION, channel=ch)
            a2["connected"] = dict(cust1["caller"])
            await self._emit(
                "Dial",
                dialstatus="",
                forward="",
                dialstring=f"Local/{ext}@agents",
                caller=cust1,
                peer=a1,
            )
            legs.append((ext, a1, a2))
        for ext, a1, _a2 in legs:
            a1["state"] = "Ringing"
            a1["connected"] = dict(cust1["caller"])
            await self._emit("ChannelStateChange", channel=a1)
            await self._emit(
                "Dial",
                dialstatus="RINGING",
                forward="",
                dialstring=f"Local/{ext}@agents",
                caller=cust1,
                peer=a1,
            )
            await self._device(f"Custom:{ext}", "RINGING")
            await self._device(f"Local/{ext}@agents", "INUSE")
        return legs

    async def _agent_answers(
        self,
        cust1: Json,
        legs: list[tuple[str, Json, Json]],
        winner: tuple[str, Json, Json],
        bridge_id: str,
    ) -> Json:
        """Trace seq 77-148: winner goes Up, losers are cancelled (cause 26), bridge forms."""
        ext, a1, a2 = winner
        await self._device(f"Custom:{ext}", "INUSE")
        for ch in (a2, a1):
            ch["state"] = "Up"
            await self._emit("ChannelStateChange", channel=ch)
        await self._emit(
            "Dial",
            dialstatus="ANSWER",
            forward="",
            dialstring=f"Local/{ext}@agents",
            caller=cust1,
            peer=a1,
        )
        losers = [leg for leg in legs if leg is not winner]
        for lext, l1, _l2 in losers:  # Asterisk reports each losing leg's CANCEL twice
            for dialstring in ("", f"Local/{lext}@agents"):
                await self._emit(
                    "Dial",
                    dialstatus="CANCEL",
                    forward="",
                    dialstring=dialstring,
                    caller=cust1,
                    peer=l1,
                )
        for _lext, l1, l2 in losers:
            await self._emit("ChannelHangupRequest", cause=26, channel=l2)
            await self._emit("ChannelDestroyed", **ANSWERED_ELSEWHERE, channel=l1)
            await self._emit("ChannelHangupRequest", cause=16, soft=True, channel=l2)
        await self._leave_queue()
        brg = bridge(bridge_id, [], creationtime=ari_timestamp(self.now()))
        await self._emit("BridgeCreated", bridge=brg)
        for ch in (a1, cust1):
            brg["channels"] = sorted([*brg["channels"], ch["id"]])
            await self._emit("ChannelEnteredBridge", bridge=brg, channel=ch)
        if self.noise:
            for ch, peer in ((a1, cust1), (cust1, a1)):
                await self._emit(
                    "ChannelVarset", variable="BRIDGEPEER", value=peer["name"], channel=ch
                )
        for lext, _l1, l2 in losers:
            await self._device(f"Custom:{lext}", "NOT_INUSE")
            await self._device(f"Local/{lext}@agents", "NOT_INUSE")
            await self._emit("ChannelDestroyed", **ANSWERED_ELSEWHERE, channel=l2)
            await self._release(lext)
        return brg

    async def _hang_up(
        self,
        number: str,
        cust1: Json,
        cust2: Json,
        winner: tuple[str, Json, Json],
        brg: Json,
        *,
        caller_first: bool,
    ) -> None:
        """Trace seq 151-201 (caller hangs up); mirrored when the agent hangs up first."""
        ext, a1, a2 = winner
        near, far = ((cust2, cust1), (a1, a2)) if caller_first else ((a2, a1), (cust1, cust2))
        await self._emit("ChannelHangupRequest", cause=16, soft=True, channel=near[0])
        await self._emit("ChannelHangupRequest", cause=16, channel=near[1])
        for ch in (near[1], far[0]):
            brg["channels"] = [c for c in brg["channels"] if c != ch["id"]]
            await self._emit("ChannelLeftBridge", bridge=brg, channel=ch)
        await self._emit("ChannelHangupRequest", cause=16, channel=far[1])
        for ch in (a1, cust1, cust2):
            await self._emit("ChannelDestroyed", **NORMAL_CLEARING, channel=ch)
        await self._device(f"Custom:{ext}", "NOT_INUSE")
        await self._device(f"Local/{self.did}@pstn", "NOT_INUSE")
        await self._device(f"Local/{ext}@agents", "NOT_INUSE")
        await self._emit("BridgeDestroyed", bridge=brg)
        await self._emit("ChannelHangupRequest", cause=16, soft=True, channel=a2)
        await self._emit("ChannelDestroyed", **NORMAL_CLEARING, channel=a2)
        await self._release(ext)

    async def _caller_gives_up(
        self, number: str, cust1: Json, cust2: Json, legs: list[tuple[str, Json, Json]]
    ) -> None:
        """The caller hangs up in the queue; agents still ringing are cancelled."""
        await self._emit("ChannelHangupRequest", cause=16, soft=True, channel=cust2)
        await self._emit("ChannelHangupRequest", cause=16, channel=cust1)
        for ext, a1, a2 in legs:
            await self._emit(
                "Dial",
                dialstatus="CANCEL",
                forward="",
                dialstring=f"Local/{ext}@agents",
                caller=cust1,
                peer=a1,
            )
            await self._emit("ChannelHangupRequest", cause=16, channel=a2)
            await self._emit("ChannelDestroyed", **NORMAL_CLEARING, channel=a1)
        await self._leave_queue()
        for ch in (cust1, cust2):
            await self._emit("ChannelDestroyed", **NORMAL_CLEARING, channel=ch)
        await self._device(f"Local/{self.did}@pstn", "NOT_INUSE")
        for ext, _a1, a2 in legs:
            await self._device(f"Custom:{ext}", "NOT_INUSE")
            await self._device(f"Local/{ext}@agents", "NOT_INUSE")
            await self._emit("ChannelDestroyed", **NORMAL_CLEARING, channel=a2)
            await self._release(ext)

    async def _device(self, name: str, state: str) -> None:
        await self._emit("DeviceStateChanged", device_state=device_state(name, state))

    # -- operator presence --------------------------------------------------------------------

    async def _presence(self, rng: random.Random) -> None:
        """Now and then a free operator's phone goes offline, and comes back later."""
        if self.presence_per_hour <= 0:
            return
        assert self._changed is not None and self._tg is not None
        while True:
            await self.sleep(rng.expovariate(self.presence_per_hour / 3600))
            async with self._changed:
                if not self._free:
                    continue
                ext = rng.choice(sorted(self._free))
                self._free.discard(ext)
                self._online.discard(ext)
            self.stats["offline"] += 1
            await self._emit("EndpointStateChange", endpoint=endpoint("PJSIP", ext, "offline"))
            await self._device(f"PJSIP/{ext}", "UNAVAILABLE")
            task = self._tg.create_task(self._back_online(ext, rng.uniform(*self.offline_time)))
            self._returns.add(task)
            task.add_done_callback(self._returns.discard)

    async def _back_online(self, ext: str, after: float) -> None:
        await self.sleep(after)
        assert self._changed is not None
        async with self._changed:
            self._online.add(ext)
        self.stats["online"] += 1
        await self._emit("EndpointStateChange", endpoint=endpoint("PJSIP", ext, "online"))
        await self._device(f"PJSIP/{ext}", "NOT_INUSE")
        await self._release(ext)
