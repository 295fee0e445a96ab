"""The call state machine: channels in, call milestones out (pure, no clock).

Glossary, in call-center words:

- **channel** -- one line the PBX holds open: the customer's trunk or phone, an agent's phone,
  half of a Local channel. ARI has no linkedid, so which channels make one call is worked out
  here.
- **leg** -- what the PBX rings to reach one party: one plain channel, or both halves of a Local
  channel (paired by name without ``;1``/``;2``). An **agent leg** rings someone who works the
  calls; it is an **operator leg** when its extension belongs to a Switchboard operator. The
  other legs are the **customer side**.
- **conversation** -- legs linked together by ``Dial`` (caller -> peer) or by sharing a
  non-holding bridge; linked conversations merge. A conversation becomes a *call* once it has
  an originator; until then it is pending (legs being dialled that nothing explains yet).
- **originator** -- the leg that started the call: a non-Local channel created in state ``Ring``
  (a phone or trunk calling in), a peer of a ``Dial`` without caller (an originated channel), or,
  after a resync, a channel nobody else explains. Legs created ``Down`` (being dialled) wait in
  a pending conversation until a ``Dial`` or a bridge links them; a pending conversation that
  vanishes without an originator was never a call.
- **connected** -- an agent leg that reached the other party (answered, or took a transfer).
- **call channel** -- ``Call.channel_id``: the first customer channel (inbound) or the
  originating operator's channel (outbound/internal): earliest created, a Local ``;1`` before
  its ``;2``. The call id derives from it, so replays and resyncs agree.
- **direction** -- the originator is a customer -> inbound; the originator is an operator leg ->
  internal if it dialled a known extension, else outbound.

Milestones (found by comparing the call's snapshot before and after each event, so a duplicate
or stale frame produces no effect):

- ``CallStarted`` once the call has its customer's number (caller id of the first customer
  channel that has one; the originating operator's extension for outbound/internal, with the
  dialled number in ``called_number``). A call answered or ended before any number arrived is
  published anyway with a fallback: the number in a Local customer channel's name
  (``Local/+7900...@pstn``), else its dialplan exten, else ``"anonymous"``.
- ``CallAnswered`` once, when the first agent leg connects: ``Dial`` ANSWER with that leg as
  peer, or one of its channels ``Up`` in a (non-holding) bridge with a customer channel. A
  channel going ``Up`` alone is not an answer; rung legs cancelled (Dial CANCEL, cause 26)
  neither answer nor end the call. An agent leg whose extension is no operator's answers too
  (``operator_id`` None, ``operator_extension`` kept). For outbound calls the customer's leg
  connecting is the answer (``operator_id`` is then the originating operator).
- ``CallTransferred`` when another operator's leg connects to an answered call; ``operator_id``
  keeps who answered, ``transfer_operator_ids`` records each target. A published call bridged
  into another (a consultation call at an attended transfer) ends there and its legs join the
  surviving call like any other.
- ``CallEnded`` when the last channel is gone (``end_time`` = latest ChannelDestroyed time).
  Unanswered inbound: ``abandoned_in_queue`` if any agent leg was ever rung, else
  ``abandoned_in_ivr`` (``failed`` if the customer's cause is a set-up failure). Unanswered
  outbound/internal: ``busy`` (Dial BUSY / cause 17), ``no_answer`` (NOANSWER / 18,19, or the
  caller gave up), ``failed`` (CHANUNAVAIL, CONGESTION, failure causes).
- ``CallUpdated`` for any other change of the record (caller id, a newly rung operator).
- ``offered_operator_ids``: every operator whose leg rang or connected, by first leg created.

Resync (GET /ari/channels after a reconnect): known channels missing from the snapshot are gone
at the resync time, so calls made only of them end then. Unknown channels are picked up: a
customer channel originates an inbound call (``start_time`` = its creation time). Without
bridges or Dial history, an unknown operator leg joins the inbound call whose caller number it
carries (agent legs carry the caller's id) when exactly one matches; otherwise a ringing/up phone
channel originates a call of its own. An operator leg ``Up`` in a call we had not seen answered
is taken as answered at the resync time (the true moment is unknowable).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime

from engine.directory import OperatorDirectory, agent_extension, local_half, local_pair_key
from engine.effects import (
    CallAnswered,
    CallEffect,
    CallEnded,
    CallStarted,
    CallTransferred,
    CallUpdated,
)
from engine.events import (
    BridgeEntered,
    BridgeLeft,
    CallerIdChanged,
    ChannelCreated,
    ChannelHungUp,
    ChannelInfo,
    ChannelStateChanged,
    DialUpdated,
    QueueCallerJoined,
    QueueCallerLeft,
    Resynced,
)
from engine.model import Call, CallStatus, Direction, call_id_for

CallInput = (
    ChannelCreated
    | ChannelStateChanged
    | CallerIdChanged
    | DialUpdated
    | BridgeEntered
    | BridgeLeft
    | ChannelHungUp
    | Resynced
    | QueueCallerJoined
    | QueueCallerLeft
)

# Dial outcomes after which a rung leg is no longer ringing. The first final status wins.
_DIAL_FAILED = frozenset(
    {"CANCEL", "NOANSWER", "BUSY", "CONGESTION", "CHANUNAVAIL", "DONTCALL", "TORTURE",
     "INVALIDARGS"}
)
_DIAL_FINAL = _DIAL_FAILED | {"ANSWER"}
# Q.850 causes that mean the call could not be set up (not a person hanging up).
_FAILURE_CAUSES = frozenset({1, 2, 3, 21, 22, 27, 28, 34, 38, 41, 42, 44, 47, 58, 88, 111, 127})
_BUSY_CAUSES = frozenset({17})
_NO_ANSWER_CAUSES = frozenset({18, 19})
# Ended channel ids remembered, so that late frames about them are ignored.
_ENDED_CHANNELS_REMEMBERED = 100_000


@dataclass(slots=True)
class ChannelState:
    """One channel as last seen."""

    id: str
    name: str
    leg_key: str
    half: int                    # 1/2 for Local halves, else 0
    operator_id: str | None
    state: str
    caller_number: str
    caller_name: str
    exten: str
    first_exten: str
    created: datetime
    conversation_key: int
    seen_at: datetime            # PBX time of the newest frame applied to this channel
    bridges: set[str] = field(default_factory=set)
    gone_at: datetime | None = None
    cause: int | None = None

    @property
    def live(self) -> bool:
        return self.gone_at is None

    def sort_key(self) -> tuple[datetime, int, tuple[int, int, int, str]]:
        return (self.created, 1 if self.half == 2 else 0, _id_key(self.id))


@dataclass(slots=True)
class Leg:
    """What the PBX rang to reach one party (see the glossary)."""

    key: str                         # the Local pair's name, or ``id:<channel id>``
    operator_id: str | None          # the Switchboard operator it rings, if any
    extension: str | None = None     # the extension it rings, if its name names one
    dialled: bool = False            # the peer of a Dial with a caller: someone rang it
    channel_ids: list[str] = field(default_factory=list)
    dial_status: str | None = None   # first final (or latest progress) Dial status as a peer
    connected: bool = False          # reached the other party (answered / took a transfer)


@dataclass(slots=True)
class Conversation:
    """Legs linked by Dial or a bridge; a call once it has an originator."""

    key: int
    legs: dict[str, Leg] = field(default_factory=dict)
    channel_ids: list[str] = field(default_factory=list)
    originator: str | None = None        # key of the leg that made this conversation a call
    direction: Direction | None = None
    call_channel_id: str | None = None   # Call.channel_id, fixed at publication
    start_time: datetime | None = None
    called_number: str | None = None
    answer_time: datetime | None = None
    operator_id: str | None = None
    operator_extension: str | None = None
    transfer_operator_ids: list[str] = field(default_factory=list)
    absorbed_at: datetime | None = None  # merged into another call at this time
    queue_name: str | None = None        # the queue the customer entered last
    queue_service_level: int | None = None
    call: Call | None = None             # last published snapshot


@dataclass(slots=True)
class Changes:
    """What one event changed: the call effects, and the operators whose legs it touched."""

    effects: list[CallEffect] = field(default_factory=list)
    touched_operator_ids: set[str] = field(default_factory=set)
    conversation_keys: list[int] = field(default_factory=list)   # to settle, in order


def _id_key(channel_id: str) -> tuple[int, int, int, str]:
    head, _, tail = channel_id.partition(".")
    if head.isdigit() and tail.isdigit():
        return (0, int(head), int(tail), "")
    return (1, 0, 0, channel_id)


def _same_record(a: Call, b: Call) -> bool:
    """Equal for publishing purposes: a new channel alone is not worth an update."""
    return replace(a, channel_ids=()) == replace(b, channel_ids=())


class CallMachine:
    """Channels, legs, conversations and bridges; ``handle`` returns what changed."""

    def __init__(self, directory: OperatorDirectory) -> None:
        self._directory = directory
        self._channels: dict[str, ChannelState] = {}
        self._conversations: dict[int, Conversation] = {}
        self._conversation_of_leg: dict[str, int] = {}
        self._bridges: dict[str, set[str]] = {}
        self._holding_bridges: set[str] = set()
        self._ended_channels: OrderedDict[str, None] = OrderedDict()
        self._conversations_of_operator: dict[str, set[int]] = {}
        self._next_conversation_key = 1

    # ----------------------------------------------------------------- read side

    def active_calls(self) -> list[Call]:
        calls = [c.call for c in self._conversations.values() if c.call is not None]
        return sorted(calls, key=lambda c: (c.start_time, c.id))

    def call_for_channel(self, channel_id: str) -> Call | None:
        channel = self._channels.get(channel_id)
        if channel is None:
            return None
        return self._conversations[channel.conversation_key].call

    def calls_and_ringing(self, operator_id: str) -> tuple[int, bool]:
        """(calls the operator is in, whether one of their legs is ringing)."""
        in_calls = 0
        ringing = False
        for conversation_key in self._conversations_of_operator.get(operator_id, ()):
            conversation = self._conversations[conversation_key]
            in_this = False
            for leg in conversation.legs.values():
                if leg.operator_id != operator_id:
                    continue
                if not any(self._channels[c].live for c in leg.channel_ids):
                    continue
                if leg.connected or leg.key == conversation.originator:
                    in_this = True
                elif leg.dial_status not in _DIAL_FINAL:
                    ringing = True
            in_calls += in_this
        return in_calls, ringing

    # ----------------------------------------------------------------- write side

    def handle(self, event: CallInput) -> Changes:
        """Apply one event; return the call effects and the operators whose legs it touched."""
        changes = Changes()
        self._source = event.source   # a call is published by an event of its own source
        match event:
            case Resynced():
                self._resync(event, changes)
            case ChannelHungUp():
                self._hangup(event, changes)
            case QueueCallerJoined() | QueueCallerLeft():
                self._enter_queue(event, changes)
            case DialUpdated():
                self._dial(event, changes)
            case BridgeEntered():
                channel = self._ensure(event.channel, event.ts)
                if channel is not None and channel.live:
                    self._enter_bridge(channel, event.bridge_id, event.bridge_type, event.ts,
                                       changes)
                    changes.conversation_keys.append(channel.conversation_key)
            case BridgeLeft():
                channel = self._ensure(event.channel, event.ts)
                if channel is not None:
                    self._leave_bridge(channel, event.bridge_id)
                    changes.conversation_keys.append(channel.conversation_key)
            case ChannelCreated() | ChannelStateChanged() | CallerIdChanged():
                channel = self._ensure(event.channel, event.ts)
                if channel is None:
                    return changes
                if (
                    isinstance(event, ChannelCreated)
                    and channel.half == 0
                    and event.channel.state == "Ring"
                ):
                    self._make_originator(
                        self._conversations[channel.conversation_key], channel.leg_key)
                changes.conversation_keys.append(channel.conversation_key)
        for key in dict.fromkeys(changes.conversation_keys):
            self._settle(key, event.ts, changes)
        return changes

    # ----------------------------------------------------------------- channels

    def _ensure(self, info: ChannelInfo, ts: datetime) -> ChannelState | None:
        """The channel record, created on first sight; None for channels already ended."""
        if info.id in self._ended_channels:
            return None
        channel = self._channels.get(info.id)
        if channel is None:
            half = local_half(info.name) or 0
            leg_key = local_pair_key(info.name) or f"id:{info.id}"
            operator = self._directory.for_name(info.name)
            conversation_key = self._conversation_of_leg.get(leg_key)
            if conversation_key is None:
                conversation_key = self._new_conversation()
            conversation = self._conversations[conversation_key]
            leg = conversation.legs.get(leg_key)
            if leg is None:
                extension = operator.extension if operator else agent_extension(info.name)
                leg = Leg(leg_key, operator.id if operator else None, extension)
                self._add_leg(conversation, leg)
            channel = ChannelState(
                id=info.id, name=info.name, leg_key=leg_key, half=half,
                operator_id=leg.operator_id, state=info.state,
                caller_number=info.caller_number, caller_name=info.caller_name,
                exten=info.exten, first_exten=info.exten, created=info.created or ts,
                conversation_key=conversation_key, seen_at=ts,
            )
            self._channels[info.id] = channel
            leg.channel_ids.append(info.id)
            conversation.channel_ids.append(info.id)
            return channel
        if channel.live and ts >= channel.seen_at:
            channel.seen_at = ts
            channel.state = info.state
            channel.exten = info.exten or channel.exten
            channel.caller_number = info.caller_number or channel.caller_number
            channel.caller_name = info.caller_name or channel.caller_name
        return channel

    def _new_conversation(self) -> int:
        conversation_key = self._next_conversation_key
        self._next_conversation_key += 1
        self._conversations[conversation_key] = Conversation(conversation_key)
        return conversation_key

    def _add_leg(self, conversation: Conversation, leg: Leg) -> None:
        conversation.legs[leg.key] = leg
        self._conversation_of_leg[leg.key] = conversation.key
        if leg.operator_id is not None:
            self._conversations_of_operator.setdefault(leg.operator_id, set()).add(conversation.key)

    def _hangup(self, event: ChannelHungUp, changes: Changes) -> None:
        channel = self._channels.get(event.channel.id)
        if channel is None or not channel.live:
            return   # unknown, already ended, or a repeated ChannelDestroyed
        channel.gone_at = event.ts
        channel.cause = event.cause
        self._leave_bridges(channel)
        changes.conversation_keys.append(channel.conversation_key)

    def _enter_queue(self, event: QueueCallerJoined | QueueCallerLeft, changes: Changes) -> None:
        """The customer's channel is (or was) in a queue: the call takes it and its threshold.
        ARI tells it only as the caller leaves the queue; an agent's channel never counts."""
        channel = self._channels.get(event.channel_id)
        if channel is None or not channel.live:
            return
        conversation = self._conversations[channel.conversation_key]
        leg = conversation.legs.get(channel.leg_key)
        if leg is None or self._is_agent(conversation, leg):
            return
        threshold = event.service_level_seconds
        if threshold is None and event.queue == conversation.queue_name:
            threshold = conversation.queue_service_level
        conversation.queue_name = event.queue
        conversation.queue_service_level = threshold
        changes.conversation_keys.append(channel.conversation_key)

    def _leave_bridges(self, channel: ChannelState) -> None:
        for bridge_id in list(channel.bridges):
            self._leave_bridge(channel, bridge_id)

    def _leave_bridge(self, channel: ChannelState, bridge_id: str) -> None:
        channel.bridges.discard(bridge_id)
        members = self._bridges.get(bridge_id)
        if members is not None:
            members.discard(channel.id)
            if not members:
                del self._bridges[bridge_id]
                self._holding_bridges.discard(bridge_id)

    # ----------------------------------------------------------------- linking

    def _dial(self, event: DialUpdated, changes: Changes) -> None:
        peer = self._ensure(event.peer, event.ts)
        if peer is None:
            return
        leg = self._conversations[peer.conversation_key].legs[peer.leg_key]
        if event.caller is None:
            # An originated channel: the start of a call of its own.
            self._make_originator(self._conversations[peer.conversation_key], peer.leg_key)
            changes.conversation_keys.append(peer.conversation_key)
            return
        caller = self._ensure(event.caller, event.ts)
        if caller is None:
            return   # the caller's call already ended: a late frame
        leg.dialled = True
        if caller.conversation_key != peer.conversation_key:
            self._merge(caller.conversation_key, peer.conversation_key, event.ts, changes)
        status = event.status.upper()
        if status and leg.dial_status not in _DIAL_FINAL:
            leg.dial_status = status
        changes.conversation_keys.append(peer.conversation_key)

    def _enter_bridge(
        self,
        channel: ChannelState,
        bridge_id: str,
        bridge_type: str,
        ts: datetime,
        changes: Changes,
    ) -> None:
        members = self._bridges.setdefault(bridge_id, set())
        if bridge_type == "holding":
            self._holding_bridges.add(bridge_id)
        members.add(channel.id)
        channel.bridges.add(bridge_id)
        if bridge_id in self._holding_bridges:
            return   # parking / holding bridges hold unrelated calls
        for other_id in sorted(members):
            other = self._channels.get(other_id)
            if other is None or not other.live:
                continue
            if other.conversation_key != channel.conversation_key:
                self._merge(other.conversation_key, channel.conversation_key, ts, changes)

    def _merge(self, key_a: int, key_b: int, ts: datetime, changes: Changes) -> int:
        """Merge two conversations; a published call absorbed by another one ends at ``ts``."""
        a, b = self._conversations[key_a], self._conversations[key_b]
        keep, gone = (a, b) if self._outranks(a, b) else (b, a)
        if gone.call is not None:
            # Both were published (e.g. a consultation call bridged into the customer's): the
            # absorbed one ends here, and its legs must join the surviving call on their own.
            gone.absorbed_at = ts
            changes.effects.append(CallEnded(self._snapshot(gone, gone.call, True, ts)))
            for leg in gone.legs.values():
                leg.connected = False
                if leg.dial_status == "ANSWER":
                    leg.dial_status = None
        for leg in gone.legs.values():
            self._add_leg(keep, leg)
            if leg.operator_id is not None:
                self._conversations_of_operator[leg.operator_id].discard(gone.key)
                changes.touched_operator_ids.add(leg.operator_id)
        for channel_id in gone.channel_ids:
            self._channels[channel_id].conversation_key = keep.key
            keep.channel_ids.append(channel_id)
        if keep.queue_name is None and gone.call is None:   # a pending customer leg's queue
            keep.queue_name, keep.queue_service_level = gone.queue_name, gone.queue_service_level
        del self._conversations[gone.key]
        return keep.key

    @staticmethod
    def _outranks(a: Conversation, b: Conversation) -> bool:
        """Which survives a merge: published, then not internal, then originated, then older."""

        def rank(c: Conversation) -> tuple[int, int, int]:
            return (
                0 if c.call is not None else 1,
                1 if c.direction is Direction.INTERNAL else 0,
                0 if c.originator is not None else 1,
            )

        if rank(a) != rank(b):
            return rank(a) < rank(b)
        if a.start_time is not None and b.start_time is not None and a.start_time != b.start_time:
            return a.start_time < b.start_time
        return a.key < b.key

    def _make_originator(self, conversation: Conversation, leg_key: str) -> None:
        if conversation.originator is not None:
            return
        leg = conversation.legs[leg_key]
        conversation.originator = leg_key
        if leg.operator_id is None:
            conversation.direction = Direction.INBOUND
            return
        dialled = self._dialled(conversation)
        known = self._directory.by_extension(dialled) if dialled else None
        if known is not None and known.id != leg.operator_id:
            conversation.direction = Direction.INTERNAL
        else:
            conversation.direction = Direction.OUTBOUND
            conversation.operator_id = leg.operator_id

    def _dialled(self, conversation: Conversation) -> str:
        """The number an operator-originated call dialled: the originator channel's first exten."""
        if conversation.originator is None:
            return ""
        channels = self._sorted_channels([conversation.legs[conversation.originator]])
        for channel in channels:
            if channel.first_exten and channel.first_exten != "s":
                return channel.first_exten
        return ""

    # ----------------------------------------------------------------- resync

    def _resync(self, event: Resynced, changes: Changes) -> None:
        present = {info.id for info in event.channels}
        for channel in list(self._channels.values()):
            if channel.live and channel.id not in present:
                channel.gone_at = event.ts
                self._leave_bridges(channel)
                changes.conversation_keys.append(channel.conversation_key)
        new: list[ChannelState] = []
        for info in event.channels:
            known = info.id in self._channels
            seen = self._ensure(info, event.ts)
            if seen is None:
                continue
            changes.conversation_keys.append(seen.conversation_key)
            if not known:
                new.append(seen)
        # Calls that began while we were away. Customer channels originator inbound calls.
        for channel in sorted(new, key=ChannelState.sort_key):
            conversation = self._conversations[channel.conversation_key]
            if conversation.originator is None and channel.operator_id is None:
                self._make_originator(conversation, channel.leg_key)
        # Operator legs: no Dial or bridge history, but agent legs carry the caller's number.
        by_number: dict[str, list[int]] = {}
        for conversation in self._conversations.values():
            if conversation.direction is Direction.INBOUND:
                number = self._caller(conversation)[0]
                if number:
                    by_number.setdefault(number, []).append(conversation.key)
        for channel in sorted(new, key=ChannelState.sort_key):
            conversation = self._conversations[channel.conversation_key]
            if conversation.originator is not None or channel.operator_id is None:
                continue
            matches = by_number.get(channel.caller_number, []) if channel.caller_number else []
            if len(matches) == 1 and matches[0] in self._conversations:
                merged = self._merge(matches[0], channel.conversation_key, event.ts, changes)
                changes.conversation_keys.append(merged)
            elif channel.half == 0 and channel.state in ("Ring", "Up"):
                self._make_originator(conversation, channel.leg_key)
        # An operator leg that is Up in a call is taken as answered at the resync time.
        for conversation_key in dict.fromkeys(changes.conversation_keys):
            found = self._conversations.get(conversation_key)
            if found is None or found.originator is None:
                continue
            for leg in found.legs.values():
                if (
                    leg.operator_id is not None
                    and leg.key != found.originator
                    and not leg.connected
                    and leg.dial_status not in _DIAL_FAILED
                    and any(self._channels[c].live and self._channels[c].state == "Up"
                            for c in leg.channel_ids)
                ):
                    leg.dial_status = "ANSWER"

    # ----------------------------------------------------------------- milestones

    def _settle(self, conversation_key: int, ts: datetime, changes: Changes) -> None:
        conversation = self._conversations.get(conversation_key)
        if conversation is None:
            return
        for leg in conversation.legs.values():
            if leg.operator_id is not None:
                changes.touched_operator_ids.add(leg.operator_id)
        alive = any(self._channels[c].live for c in conversation.channel_ids)
        if conversation.originator is None:
            if not alive:
                self._forget(conversation, changes)   # legs that were never part of a call
            return
        self._connect_agents(conversation, ts)
        self._publish(conversation, ts, changes)

    def _connect_agents(self, conversation: Conversation, ts: datetime) -> None:
        originator = self._originator(conversation)
        answered = conversation.answer_time is not None
        customers = self._customer_legs(conversation)
        for leg in list(conversation.legs.values()):
            if leg.connected or leg is originator:
                continue
            if not self._is_agent(conversation, leg):
                # A customer only "answers" an outbound call, by joining the operator.
                if conversation.direction is not Direction.OUTBOUND or answered:
                    continue
                counterpart = originator.channel_ids if originator else []
            else:
                if conversation.direction is Direction.OUTBOUND and not answered:
                    continue
                if (
                    originator is not None
                    and leg.operator_id is not None
                    and leg.operator_id == originator.operator_id
                ):
                    continue   # the originating operator's own legs
                source = customers if customers else ([originator] if originator else [])
                counterpart = [c for other in source for c in other.channel_ids]
            if leg.dial_status == "ANSWER" or self._bridged_up(leg, counterpart):
                leg.connected = True
                self._connect(conversation, leg, ts)

    def _bridged_up(self, leg: Leg, counterpart: list[str]) -> bool:
        others = {c for c in counterpart if self._channels[c].live}
        for channel_id in leg.channel_ids:
            channel = self._channels[channel_id]
            if not channel.live or channel.state != "Up":
                continue
            for bridge_id in channel.bridges:
                if bridge_id in self._holding_bridges:
                    continue
                if others & self._bridges.get(bridge_id, set()):
                    return True
        return False

    def _connect(self, conversation: Conversation, leg: Leg, ts: datetime) -> None:
        if not self._is_agent(conversation, leg):
            conversation.answer_time = ts          # the customer answered an outbound call
            return
        if conversation.answer_time is None:
            conversation.answer_time = ts
            conversation.operator_id = leg.operator_id   # None: an extension of no operator
            conversation.operator_extension = leg.extension
            return
        transfers = conversation.transfer_operator_ids
        current = transfers[-1] if transfers else conversation.operator_id
        if leg.operator_id is not None and leg.operator_id != current:
            transfers.append(leg.operator_id)

    def _publish(self, conversation: Conversation, ts: datetime, changes: Changes) -> None:
        """Compare the call's new snapshot with the published one and emit the difference."""
        alive = any(self._channels[c].live for c in conversation.channel_ids)
        ended = conversation.absorbed_at is not None or not alive
        if conversation.call is None:
            force = ended or conversation.answer_time is not None
            started = self._first_snapshot(conversation, force=force)
            if started is None:
                return
            changes.effects.append(CallStarted(started))
            conversation.call = started
        prev = conversation.call
        cur = self._snapshot(conversation, prev, ended, ts)
        milestone = False
        if prev.answer_time is None and cur.answer_time is not None:
            answered = replace(cur, status=CallStatus.ANSWERED, end_time=None,
                               missed_reason=None, hangup_cause=None,
                               transfer_operator_ids=())
            changes.effects.append(CallAnswered(answered))
            milestone = True
        for i in range(len(prev.transfer_operator_ids), len(cur.transfer_operator_ids)):
            before = cur.transfer_operator_ids[i - 1] if i else cur.operator_id
            step = replace(cur, transfer_operator_ids=cur.transfer_operator_ids[: i + 1],
                           status=CallStatus.ANSWERED, end_time=None, missed_reason=None,
                           hangup_cause=None)
            changes.effects.append(CallTransferred(step, before, cur.transfer_operator_ids[i]))
            milestone = True
        if ended:
            changes.effects.append(CallEnded(cur))
            self._forget(conversation, changes)
            return
        if not milestone and not _same_record(prev, cur):
            changes.effects.append(CallUpdated(cur))
        conversation.call = cur

    def _first_snapshot(self, conversation: Conversation, force: bool) -> Call | None:
        number, name = self._caller(conversation)
        if not number:
            if not force:
                return None   # a dashboard has no use for a call without its number
            number = self._fallback_number(conversation)
        calling_legs = self._calling_party_legs(conversation)
        channels = self._sorted_channels(calling_legs)
        call_channel = channels[0]
        conversation.call_channel_id = call_channel.id
        conversation.start_time = min(self._channels[c].created for c in conversation.channel_ids)
        if conversation.direction is Direction.INBOUND:
            conversation.called_number = call_channel.first_exten or None
        else:
            conversation.called_number = self._dialled(conversation) or None
        outbound = conversation.direction is Direction.OUTBOUND
        return Call(
            id=call_id_for(call_channel.id),
            channel_id=call_channel.id,
            caller_number=number,
            caller_name=name or None,
            start_time=conversation.start_time,
            direction=conversation.direction or Direction.INBOUND,
            source=self._source,
            called_number=conversation.called_number,
            channel_ids=self._channel_ids(conversation),
            offered_operator_ids=self._offered(conversation),
            rung_operator_ids=self._rung(conversation),
            group_ids=self._group_ids(conversation),
            operator_id=conversation.operator_id if outbound else None,
            operator_extension=self._extension(conversation.operator_id) if outbound else None,
            queue_name=conversation.queue_name,
            queue_service_level=conversation.queue_service_level,
        )

    def _snapshot(self, conversation: Conversation, prev: Call, ended: bool, ts: datetime) -> Call:
        number, name = self._caller(conversation)
        end_time: datetime | None = None
        answered = conversation.answer_time is not None
        status = CallStatus.ANSWERED if answered else CallStatus.INCOMING
        missed_reason: str | None = None
        cause: int | None = None
        if ended:
            channels = [self._channels[c] for c in conversation.channel_ids]
            gone = [c.gone_at for c in channels if c.gone_at is not None]
            end_time = conversation.absorbed_at or (max(gone) if gone else ts)
            status = CallStatus.COMPLETED if answered else CallStatus.MISSED
            call_channel = self._call_channel(conversation)
            cause = call_channel.cause if call_channel is not None else None
            if conversation.answer_time is None:
                missed_reason = self._missed_reason(conversation)
        return replace(
            prev,
            caller_number=number or prev.caller_number,
            caller_name=name or prev.caller_name,
            status=status,
            operator_id=conversation.operator_id,
            operator_extension=self._extension(conversation.operator_id)
            or conversation.operator_extension,
            answer_time=conversation.answer_time,
            end_time=end_time,
            missed_reason=missed_reason,
            hangup_cause=cause,
            channel_ids=self._channel_ids(conversation),
            offered_operator_ids=self._offered(conversation),
            rung_operator_ids=self._rung(conversation),
            group_ids=self._group_ids(conversation),
            transfer_operator_ids=tuple(conversation.transfer_operator_ids),
            queue_name=conversation.queue_name,
            queue_service_level=conversation.queue_service_level,
        )

    def _calling_party_legs(self, conversation: Conversation) -> list[Leg]:
        if conversation.direction is Direction.INBOUND:
            customers = self._customer_legs(conversation)
            if customers:
                return customers
        assert conversation.originator is not None
        return [conversation.legs[conversation.originator]]

    def _caller(self, conversation: Conversation) -> tuple[str, str]:
        """(number, name) of the calling party: the customer, or the originating operator."""
        if conversation.direction is not Direction.INBOUND and conversation.originator is not None:
            originator = conversation.legs[conversation.originator]
            operator = self._directory.by_id(originator.operator_id or "")
            if operator is not None:
                return operator.extension, operator.name or ""
        legs = self._calling_party_legs(conversation) if conversation.originator else []
        channels = self._sorted_channels(legs)
        number = next((c.caller_number for c in channels if c.caller_number), "")
        name = next((c.caller_name for c in channels if c.caller_name), "")
        return number, name

    def _fallback_number(self, conversation: Conversation) -> str:
        """Never got a caller id: the Local name's number, then the dialplan exten."""
        channels = self._sorted_channels(self._calling_party_legs(conversation))
        for channel in channels:
            if channel.half:
                number = channel.name.partition("/")[2].partition("@")[0]
                if number:
                    return number
        for channel in channels:
            if channel.first_exten and channel.first_exten != "s":
                return channel.first_exten
        return "anonymous"

    def _missed_reason(self, conversation: Conversation) -> str:
        call_channel = self._call_channel(conversation)
        if conversation.direction is Direction.INBOUND:
            if conversation.queue_name is not None:
                return "abandoned_in_queue"
            if any(self._is_agent(conversation, leg) for leg in conversation.legs.values()):
                return "abandoned_in_queue"
            if call_channel is not None and call_channel.cause in _FAILURE_CAUSES:
                return "failed"
            return "abandoned_in_ivr"
        legs = conversation.legs.values()
        statuses = {other.dial_status for other in legs if other.key != conversation.originator}
        causes = {self._channels[c].cause for c in conversation.channel_ids}
        if "BUSY" in statuses or causes & _BUSY_CAUSES:
            return "busy"
        if "NOANSWER" in statuses or causes & _NO_ANSWER_CAUSES:
            return "no_answer"
        if statuses & {"CHANUNAVAIL", "CONGESTION"} or causes & _FAILURE_CAUSES:
            return "failed"
        return "no_answer"

    def _extension(self, operator_id: str | None) -> str | None:
        operator = self._directory.by_id(operator_id) if operator_id else None
        return operator.extension if operator is not None else None

    def _is_agent(self, conversation: Conversation, leg: Leg) -> bool:
        """An operator's leg; or, in an inbound call, a rung leg to an extension no operator
        has (yet): whoever answers it works the calls, so the call is answered."""
        if leg.operator_id is not None:
            return True
        return (
            conversation.direction is Direction.INBOUND
            and leg.key != conversation.originator
            and leg.dialled
            and leg.extension is not None
        )

    def _customer_legs(self, conversation: Conversation) -> list[Leg]:
        return [leg for leg in conversation.legs.values() if not self._is_agent(conversation, leg)]

    def _sorted_channels(self, legs: list[Leg]) -> list[ChannelState]:
        """The legs' channels in PBX creation order."""
        return sorted((self._channels[c] for leg in legs for c in leg.channel_ids),
                      key=ChannelState.sort_key)

    def _originator(self, conversation: Conversation) -> Leg | None:
        key = conversation.originator
        return conversation.legs[key] if key is not None else None

    def _call_channel(self, conversation: Conversation) -> ChannelState | None:
        key = conversation.call_channel_id
        return self._channels[key] if key is not None else None

    def _channel_ids(self, conversation: Conversation) -> tuple[str, ...]:
        """In PBX creation order, whatever order the frames arrived in."""
        return tuple(c.id for c in sorted((self._channels[c] for c in conversation.channel_ids),
                                          key=ChannelState.sort_key))

    def _offered(self, conversation: Conversation) -> tuple[str, ...]:
        """Operators with a leg in the call, ordered by their first leg's creation."""
        first: dict[str, tuple[datetime, int, tuple[int, int, int, str]]] = {}
        for leg in conversation.legs.values():
            if leg.operator_id is None:
                continue
            for channel_id in leg.channel_ids:
                key = self._channels[channel_id].sort_key()
                if leg.operator_id not in first or key < first[leg.operator_id]:
                    first[leg.operator_id] = key
        return tuple(sorted(first, key=lambda op: (first[op], op)))

    def _rung(self, conversation: Conversation) -> tuple[str, ...]:
        """The operators the call rang: all with a leg in it but the one who placed it."""
        originator = self._originator(conversation)
        placed_by = originator.operator_id if originator is not None else None
        return tuple(op for op in self._offered(conversation) if op != placed_by)

    def _group_ids(self, conversation: Conversation) -> tuple[str, ...]:
        ids: dict[str, None] = {}
        for operator_id in self._offered(conversation):
            operator = self._directory.by_id(operator_id)
            if operator is not None and operator.group_id:
                ids[operator.group_id] = None
        return tuple(ids)

    def _forget(self, conversation: Conversation, changes: Changes) -> None:
        """Drop a finished conversation; its channel ids stay remembered to ignore late frames."""
        for channel_id in conversation.channel_ids:
            channel = self._channels.pop(channel_id, None)
            if channel is not None:
                self._leave_bridges(channel)
            self._ended_channels[channel_id] = None
        while len(self._ended_channels) > _ENDED_CHANNELS_REMEMBERED:
            self._ended_channels.popitem(last=False)
        for leg in conversation.legs.values():
            if self._conversation_of_leg.get(leg.key) == conversation.key:
                del self._conversation_of_leg[leg.key]
            if leg.operator_id is not None:
                self._conversations_of_operator[leg.operator_id].discard(conversation.key)
                changes.touched_operator_ids.add(leg.operator_id)
        self._conversations.pop(conversation.key, None)
