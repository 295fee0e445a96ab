"""The call state machine: channels in, call milestones out (pure, no clock).

How channels become calls (ARI has no linkedid):

- A *unit* is what gets rung: both halves of a Local channel (paired by name without ``;1``/
  ``;2``) or one plain channel. Units are linked into *groups* by ``Dial`` (caller -> peer) and
  by membership of a non-holding bridge; linked groups merge.
- A group becomes a call when it has a *root*: a non-Local channel created in state ``Ring``
  (a phone or trunk calling in), a peer of a ``Dial`` without caller (an originated channel),
  or, after a resync, a channel nobody else explains. Legs created ``Down`` (being dialled)
  wait in a pending group until a ``Dial`` or a bridge links them; a pending group that vanishes
  without a root was never a call.
- Direction: the root is a customer (not an operator leg) -> inbound; the root is an operator
  leg -> internal if it dialled a known extension, else outbound.
- ``Call.channel_id`` is the first customer channel (inbound) or the originating operator's
  channel (outbound/internal): earliest created, a Local ``;1`` before its ``;2``.

Milestones (found by comparing the call's snapshot before and after each event, so a duplicate
or stale frame produces no effect):

- ``CallStarted`` once the call has its customer's number (caller id of the first customer
  channel that has one; the originating operator's extension for outbound/internal, with the
  dialled number in ``called_number``). A call answered or ended before any number arrived is
  published anyway with a fallback: the number in a Local customer channel's name
  (``Local/+7900...@pstn``), else its dialplan exten, else ``"anonymous"``.
- ``CallAnswered`` once, when the first operator unit joins: ``Dial`` ANSWER with that unit as
  peer, or one of its channels ``Up`` in a (non-holding) bridge with a customer channel. A
  channel going ``Up`` alone is not an answer; rung legs cancelled (Dial CANCEL, cause 26)
  neither answer nor end the call. For outbound calls the customer's leg joining is the answer
  (``operator_id`` is then the originating operator).
- ``CallTransferred`` when another operator's unit joins an answered call; ``operator_id`` keeps
  who answered, ``transfer_operator_ids`` records each target. A published call bridged into
  another (a consultation call at an attended transfer) ends there and its legs join the
  surviving call like any other.
- ``CallEnded`` when the last channel is gone (``end_time`` = latest ChannelDestroyed time).
  Unanswered inbound: ``abandoned_in_queue`` if any operator leg was ever rung, else
  ``abandoned_in_ivr`` (``failed`` if the customer's cause is a set-up failure). Unanswered
  outbound/internal: ``busy`` (Dial BUSY / cause 17), ``no_answer`` (NOANSWER / 18,19, or the
  caller gave up), ``failed`` (CHANUNAVAIL, CONGESTION, failure causes).
- ``CallUpdated`` for any other change of the record (caller id, a newly rung operator).

Resync (GET /ari/channels after a reconnect): known channels missing from the snapshot are gone
at the resync time, so calls made only of them end then. Unknown channels are picked up: a
customer channel roots an inbound call (``start_time`` = its creation time). Without bridges or
Dial history, an unknown operator leg joins the inbound call whose caller number it carries
(agent legs carry the caller's id) when exactly one matches; otherwise a ringing/up phone
channel roots a call of its own. An operator leg ``Up`` in a call we had not seen answered is
taken as answered at the resync time (the true moment is unknowable).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime

from engine.directory import OperatorDirectory, local_half, local_pair_key
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
_TOMBSTONES = 100_000   # ended channel ids remembered so late frames about them are ignored


@dataclass(slots=True)
class _Chan:
    id: str
    name: str
    unit: str
    half: int                    # 1/2 for Local halves, else 0
    operator_id: str | None
    state: str
    caller_number: str
    caller_name: str
    exten: str
    first_exten: str
    created: datetime
    gid: int
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
class _Unit:
    key: str
    operator_id: str | None
    chans: list[str] = field(default_factory=list)
    dial_status: str | None = None   # first final (or latest progress) Dial status as a peer
    joined: bool = False             # joined the other party (answered / took a transfer)


@dataclass(slots=True)
class _Group:
    gid: int
    units: dict[str, _Unit] = field(default_factory=dict)
    chans: list[str] = field(default_factory=list)
    root: str | None = None          # unit key that made this group a call
    direction: Direction | None = None
    anchor: str | None = None        # Call.channel_id, fixed at publication
    start_time: datetime | None = None
    called_number: str | None = None
    answer_time: datetime | None = None
    operator_id: str | None = None
    transfers: list[str] = field(default_factory=list)
    forced_end: datetime | None = None   # absorbed into another call at this time
    call: Call | None = None         # last published snapshot


def _id_key(channel_id: str) -> tuple[int, int, int, str]:
    head, _, tail = channel_id.partition(".")
    if head.isdigit() and tail.isdigit():
        return (0, int(head), int(tail), "")
    return (1, 0, 0, channel_id)


def _same_record(a: Call, b: Call) -> bool:
    """Equal for publishing purposes: a new channel alone is not worth an update."""
    return replace(a, channel_ids=()) == replace(b, channel_ids=())


class CallMachine:
    """Channels, units, groups and bridges; ``handle`` returns call effects."""

    def __init__(self, directory: OperatorDirectory) -> None:
        self._dir = directory
        self._chans: dict[str, _Chan] = {}
        self._groups: dict[int, _Group] = {}
        self._unit_gid: dict[str, int] = {}
        self._bridges: dict[str, set[str]] = {}
        self._holding: set[str] = set()
        self._dead: OrderedDict[str, None] = OrderedDict()
        self._op_groups: dict[str, set[int]] = {}
        self._next_gid = 1
        self.touched_operators: set[str] = set()   # drained by the engine after each event

    # ----------------------------------------------------------------- read side

    def active_calls(self) -> list[Call]:
        calls = [g.call for g in self._groups.values() if g.call is not None]
        return sorted(calls, key=lambda c: (c.start_time, c.id))

    def call_for_channel(self, channel_id: str) -> Call | None:
        chan = self._chans.get(channel_id)
        if chan is None:
            return None
        return self._groups[chan.gid].call

    def activity(self, operator_id: str) -> tuple[int, bool]:
        """(calls the operator is in, whether one of their legs is ringing)."""
        in_calls = 0
        ringing = False
        for gid in self._op_groups.get(operator_id, ()):
            group = self._groups[gid]
            in_this = False
            for unit in group.units.values():
                if unit.operator_id != operator_id:
                    continue
                if not any(self._chans[c].live for c in unit.chans):
                    continue
                if unit.joined or unit.key == group.root:
                    in_this = True
                elif unit.dial_status not in _DIAL_FINAL:
                    ringing = True
            in_calls += in_this
        return in_calls, ringing

    # ----------------------------------------------------------------- write side

    def handle(self, event: CallInput) -> list[CallEffect]:
        out: list[CallEffect] = []
        touched: list[int] = []
        self._source = event.source   # a call is published by an event of its own source
        if isinstance(event, Resynced):
            self._resync(event, touched, out)
        elif isinstance(event, ChannelHungUp):
            self._hangup(event, touched)
        elif isinstance(event, DialUpdated):
            self._dial(event, touched, out)
        elif isinstance(event, BridgeEntered):
            chan = self._ensure(event.channel, event.ts)
            if chan is not None and chan.live:
                self._enter_bridge(chan, event.bridge_id, event.bridge_type, event.ts, out)
                touched.append(chan.gid)
        elif isinstance(event, BridgeLeft):
            chan = self._ensure(event.channel, event.ts)
            if chan is not None:
                self._leave_bridge(chan, event.bridge_id)
                touched.append(chan.gid)
        else:
            chan = self._ensure(event.channel, event.ts)
            if chan is None:
                return out
            if (
                isinstance(event, ChannelCreated)
                and chan.half == 0
                and event.channel.state == "Ring"
            ):
                self._make_root(self._groups[chan.gid], chan.unit)
            touched.append(chan.gid)
        ts = event.ts
        for gid in dict.fromkeys(touched):
            self._settle(gid, ts, out)
        return out

    # ----------------------------------------------------------------- channels

    def _ensure(self, info: ChannelInfo, ts: datetime) -> _Chan | None:
        """The channel record, created on first sight; None for channels already ended."""
        if info.id in self._dead:
            return None
        chan = self._chans.get(info.id)
        if chan is None:
            half = local_half(info.name) or 0
            unit_key = local_pair_key(info.name) or f"id:{info.id}"
            operator = self._dir.for_name(info.name)
            gid = self._unit_gid.get(unit_key)
            if gid is None:
                gid = self._new_group()
            group = self._groups[gid]
            unit = group.units.get(unit_key)
            if unit is None:
                unit = _Unit(unit_key, operator.id if operator else None)
                self._add_unit(group, unit)
            chan = _Chan(
                id=info.id, name=info.name, unit=unit_key, half=half,
                operator_id=unit.operator_id, state=info.state,
                caller_number=info.caller_number, caller_name=info.caller_name,
                exten=info.exten, first_exten=info.exten, created=info.created or ts, gid=gid,
                seen_at=ts,
            )
            self._chans[info.id] = chan
            unit.chans.append(info.id)
            group.chans.append(info.id)
            return chan
        if chan.live and ts >= chan.seen_at:
            chan.seen_at = ts
            chan.state = info.state
            chan.exten = info.exten or chan.exten
            chan.caller_number = info.caller_number or chan.caller_number
            chan.caller_name = info.caller_name or chan.caller_name
        return chan

    def _new_group(self) -> int:
        gid = self._next_gid
        self._next_gid += 1
        self._groups[gid] = _Group(gid)
        return gid

    def _add_unit(self, group: _Group, unit: _Unit) -> None:
        group.units[unit.key] = unit
        self._unit_gid[unit.key] = group.gid
        if unit.operator_id is not None:
            self._op_groups.setdefault(unit.operator_id, set()).add(group.gid)

    def _hangup(self, event: ChannelHungUp, touched: list[int]) -> None:
        chan = self._chans.get(event.channel.id)
        if chan is None or not chan.live:
            return   # unknown, already ended, or a repeated ChannelDestroyed
        chan.gone_at = event.ts
        chan.cause = event.cause
        self._leave_bridges(chan)
        touched.append(chan.gid)

    def _leave_bridges(self, chan: _Chan) -> None:
        for bridge_id in list(chan.bridges):
            self._leave_bridge(chan, bridge_id)

    def _leave_bridge(self, chan: _Chan, bridge_id: str) -> None:
        chan.bridges.discard(bridge_id)
        members = self._bridges.get(bridge_id)
        if members is not None:
            members.discard(chan.id)
            if not members:
                del self._bridges[bridge_id]
                self._holding.discard(bridge_id)

    # ----------------------------------------------------------------- linking

    def _dial(self, event: DialUpdated, touched: list[int], out: list[CallEffect]) -> None:
        peer = self._ensure(event.peer, event.ts)
        if peer is None:
            return
        unit = self._groups[peer.gid].units[peer.unit]
        if event.caller is None:
            # An originated channel: the start of a call of its own.
            self._make_root(self._groups[peer.gid], peer.unit)
            touched.append(peer.gid)
            return
        caller = self._ensure(event.caller, event.ts)
        if caller is None:
            return   # the caller's call already ended: a late frame
        if caller.gid != peer.gid:
            self._merge(caller.gid, peer.gid, event.ts, out)
        status = event.status.upper()
        if status and unit.dial_status not in _DIAL_FINAL:
            unit.dial_status = status
        touched.append(peer.gid)

    def _enter_bridge(
        self, chan: _Chan, bridge_id: str, bridge_type: str, ts: datetime, out: list[CallEffect]
    ) -> None:
        members = self._bridges.setdefault(bridge_id, set())
        if bridge_type == "holding":
            self._holding.add(bridge_id)
        members.add(chan.id)
        chan.bridges.add(bridge_id)
        if bridge_id in self._holding:
            return   # parking / holding bridges hold unrelated calls
        for other_id in sorted(members):
            other = self._chans.get(other_id)
            if other is not None and other.live and other.gid != chan.gid:
                self._merge(other.gid, chan.gid, ts, out)

    def _merge(self, gid_a: int, gid_b: int, ts: datetime, out: list[CallEffect]) -> int:
        """Merge two groups; a published call absorbed by another one ends at ``ts``."""
        a, b = self._groups[gid_a], self._groups[gid_b]
        keep, gone = (a, b) if self._outranks(a, b) else (b, a)
        if gone.call is not None:
            # Both were published (e.g. a consultation call bridged into the customer's): the
            # absorbed one ends here, and its legs must join the surviving call on their own.
            gone.forced_end = ts
            out.append(CallEnded(self._snapshot(gone, gone.call, True, ts)))
            for unit in gone.units.values():
                unit.joined = False
                if unit.dial_status == "ANSWER":
                    unit.dial_status = None
        for unit in gone.units.values():
            self._add_unit(keep, unit)
            if unit.operator_id is not None:
                self._op_groups[unit.operator_id].discard(gone.gid)
                self.touched_operators.add(unit.operator_id)
        for cid in gone.chans:
            self._chans[cid].gid = keep.gid
            keep.chans.append(cid)
        del self._groups[gone.gid]
        return keep.gid

    @staticmethod
    def _outranks(a: _Group, b: _Group) -> bool:
        """Which group survives a merge: published, then not internal, then rooted, then older."""

        def rank(g: _Group) -> tuple[int, int, int]:
            return (
                0 if g.call is not None else 1,
                1 if g.direction is Direction.INTERNAL else 0,
                0 if g.root is not None else 1,
            )

        if rank(a) != rank(b):
            return rank(a) < rank(b)
        if a.start_time is not None and b.start_time is not None and a.start_time != b.start_time:
            return a.start_time < b.start_time
        return a.gid < b.gid

    def _make_root(self, group: _Group, unit_key: str) -> None:
        if group.root is not None:
            return
        unit = group.units[unit_key]
        group.root = unit_key
        if unit.operator_id is None:
            group.direction = Direction.INBOUND
            return
        dialled = self._dialled(group)
        known = self._dir.by_extension(dialled) if dialled else None
        if known is not None and known.id != unit.operator_id:
            group.direction = Direction.INTERNAL
        else:
            group.direction = Direction.OUTBOUND
            group.operator_id = unit.operator_id

    def _dialled(self, group: _Group) -> str:
        """The number an operator-originated call dialled: the root channel's first exten."""
        if group.root is None:
            return ""
        chans = sorted((self._chans[c] for c in group.units[group.root].chans),
                       key=_Chan.sort_key)
        for chan in chans:
            if chan.first_exten and chan.first_exten != "s":
                return chan.first_exten
        return ""

    # ----------------------------------------------------------------- resync

    def _resync(self, event: Resynced, touched: list[int], out: list[CallEffect]) -> None:
        present = {info.id for info in event.channels}
        for chan in list(self._chans.values()):
            if chan.live and chan.id not in present:
                chan.gone_at = event.ts
                self._leave_bridges(chan)
                touched.append(chan.gid)
        new: list[_Chan] = []
        for info in event.channels:
            known = info.id in self._chans
            seen = self._ensure(info, event.ts)
            if seen is None:
                continue
            touched.append(seen.gid)
            if not known:
                new.append(seen)
        # Calls that began while we were away. Customer channels root inbound calls.
        for chan in sorted(new, key=_Chan.sort_key):
            group = self._groups[chan.gid]
            if group.root is None and chan.operator_id is None:
                self._make_root(group, chan.unit)
        # Operator legs: no Dial or bridge history, but agent legs carry the caller's number.
        by_number: dict[str, list[int]] = {}
        for group in self._groups.values():
            if group.direction is Direction.INBOUND:
                number = self._caller(group)[0]
                if number:
                    by_number.setdefault(number, []).append(group.gid)
        for chan in sorted(new, key=_Chan.sort_key):
            group = self._groups[chan.gid]
            if group.root is not None or chan.operator_id is None:
                continue
            matches = by_number.get(chan.caller_number, []) if chan.caller_number else []
            if len(matches) == 1 and matches[0] in self._groups:
                gid = self._merge(matches[0], chan.gid, event.ts, out)
                touched.append(gid)
            elif chan.half == 0 and chan.state in ("Ring", "Up"):
                self._make_root(group, chan.unit)
        # An operator leg that is Up in a call is taken as answered at the resync time.
        for gid in dict.fromkeys(touched):
            found = self._groups.get(gid)
            if found is None or found.root is None:
                continue
            for unit in found.units.values():
                if (
                    unit.operator_id is not None
                    and unit.key != found.root
                    and not unit.joined
                    and unit.dial_status not in _DIAL_FAILED
                    and any(self._chans[c].live and self._chans[c].state == "Up"
                            for c in unit.chans)
                ):
                    unit.dial_status = "ANSWER"

    # ----------------------------------------------------------------- milestones

    def _settle(self, gid: int, ts: datetime, out: list[CallEffect]) -> None:
        group = self._groups.get(gid)
        if group is None:
            return
        for unit in group.units.values():
            if unit.operator_id is not None:
                self.touched_operators.add(unit.operator_id)
        alive = any(self._chans[c].live for c in group.chans)
        if group.root is None:
            if not alive:
                self._forget(group)   # legs that were never part of a call
            return
        self._check_joins(group, ts)
        self._publish(group, ts, out)

    def _check_joins(self, group: _Group, ts: datetime) -> None:
        root = group.units[group.root] if group.root is not None else None
        customers = [u for u in group.units.values() if u.operator_id is None]
        for unit in list(group.units.values()):
            if unit.joined or unit is root:
                continue
            if unit.operator_id is None:
                # A customer only "answers" an outbound call, by joining the operator.
                if group.direction is not Direction.OUTBOUND or group.answer_time is not None:
                    continue
                counterpart = root.chans if root else []
            else:
                if group.direction is Direction.OUTBOUND and group.answer_time is None:
                    continue
                if root is not None and unit.operator_id == root.operator_id:
                    continue
                source = customers if customers else ([root] if root else [])
                counterpart = [c for u in source for c in u.chans]
            if unit.dial_status == "ANSWER" or self._bridged_up(unit, counterpart):
                unit.joined = True
                self._join(group, unit, ts)

    def _bridged_up(self, unit: _Unit, counterpart: list[str]) -> bool:
        others = {c for c in counterpart if self._chans[c].live}
        for cid in unit.chans:
            chan = self._chans[cid]
            if not chan.live or chan.state != "Up":
                continue
            for bridge_id in chan.bridges:
                if bridge_id not in self._holding and others & self._bridges.get(bridge_id, set()):
                    return True
        return False

    def _join(self, group: _Group, unit: _Unit, ts: datetime) -> None:
        if unit.operator_id is None:
            group.answer_time = ts          # the customer answered an outbound call
            return
        if group.answer_time is None:
            group.answer_time = ts
            group.operator_id = unit.operator_id
            return
        current = group.transfers[-1] if group.transfers else group.operator_id
        if unit.operator_id != current:
            group.transfers.append(unit.operator_id)

    def _publish(self, group: _Group, ts: datetime, out: list[CallEffect]) -> None:
        """Compare the call's new snapshot with the published one and emit the difference."""
        alive = any(self._chans[c].live for c in group.chans)
        ended = group.forced_end is not None or not alive
        if group.call is None:
            started = self._first_snapshot(group, force=ended or group.answer_time is not None)
            if started is None:
                return
            out.append(CallStarted(started))
            group.call = started
        prev = group.call
        cur = self._snapshot(group, prev, ended, ts)
        milestone = False
        if prev.answer_time is None and cur.answer_time is not None:
            answered = replace(cur, status=CallStatus.ANSWERED, end_time=None,
                               missed_reason=None, hangup_cause=None,
                               transfer_operator_ids=())
            out.append(CallAnswered(answered))
            milestone = True
        for i in range(len(prev.transfer_operator_ids), len(cur.transfer_operator_ids)):
            before = cur.transfer_operator_ids[i - 1] if i else cur.operator_id
            step = replace(cur, transfer_operator_ids=cur.transfer_operator_ids[: i + 1],
                           status=CallStatus.ANSWERED, end_time=None, missed_reason=None,
                           hangup_cause=None)
            out.append(CallTransferred(step, before, cur.transfer_operator_ids[i]))
            milestone = True
        if ended:
            out.append(CallEnded(cur))
            self._forget(group)
            return
        if not milestone and not _same_record(prev, cur):
            out.append(CallUpdated(cur))
        group.call = cur

    def _first_snapshot(self, group: _Group, force: bool) -> Call | None:
        number, name = self._caller(group)
        if not number:
            if not force:
                return None   # a dashboard has no use for a call without its number
            number = self._fallback_number(group)
        anchor_from = self._anchor_units(group)
        chans = sorted((self._chans[c] for u in anchor_from for c in u.chans), key=_Chan.sort_key)
        anchor = chans[0]
        group.anchor = anchor.id
        group.start_time = min(self._chans[c].created for c in group.chans)
        if group.direction is Direction.INBOUND:
            group.called_number = anchor.first_exten or None
        else:
            group.called_number = self._dialled(group) or None
        return Call(
            id=call_id_for(anchor.id),
            channel_id=anchor.id,
            caller_number=number,
            caller_name=name or None,
            start_time=group.start_time,
            direction=group.direction or Direction.INBOUND,
            source=self._source,
            called_number=group.called_number,
            channel_ids=self._channel_ids(group),
            offered_operator_ids=self._offered(group),
            group_ids=self._group_ids(group),
            operator_id=group.operator_id if group.direction is Direction.OUTBOUND else None,
            operator_extension=self._extension(group.operator_id)
            if group.direction is Direction.OUTBOUND else None,
        )

    def _snapshot(self, group: _Group, prev: Call, ended: bool, ts: datetime) -> Call:
        number, name = self._caller(group)
        end_time: datetime | None = None
        status = CallStatus.ANSWERED if group.answer_time is not None else CallStatus.INCOMING
        missed_reason: str | None = None
        cause: int | None = None
        if ended:
            gone = [t for c in group.chans if (t := self._chans[c].gone_at) is not None]
            end_time = group.forced_end or (max(gone) if gone else ts)
            status = CallStatus.COMPLETED if group.answer_time is not None else CallStatus.MISSED
            anchor = self._chans[group.anchor] if group.anchor else None
            cause = anchor.cause if anchor is not None else None
            if group.answer_time is None:
                missed_reason = self._missed_reason(group)
        return replace(
            prev,
            caller_number=number or prev.caller_number,
            caller_name=name or prev.caller_name,
            status=status,
            operator_id=group.operator_id,
            operator_extension=self._extension(group.operator_id),
            answer_time=group.answer_time,
            end_time=end_time,
            missed_reason=missed_reason,
            hangup_cause=cause,
            channel_ids=self._channel_ids(group),
            offered_operator_ids=self._offered(group),
            group_ids=self._group_ids(group),
            transfer_operator_ids=tuple(group.transfers),
        )

    def _anchor_units(self, group: _Group) -> list[_Unit]:
        if group.direction is Direction.INBOUND:
            customers = [u for u in group.units.values() if u.operator_id is None]
            if customers:
                return customers
        assert group.root is not None
        return [group.units[group.root]]

    def _caller(self, group: _Group) -> tuple[str, str]:
        """(number, name) of the calling party: the customer, or the originating operator."""
        if group.direction is not Direction.INBOUND and group.root is not None:
            operator = self._dir.by_id(group.units[group.root].operator_id or "")
            if operator is not None:
                return operator.extension, operator.name or ""
        units = self._anchor_units(group) if group.root is not None else []
        chans = sorted((self._chans[c] for u in units for c in u.chans), key=_Chan.sort_key)
        number = next((c.caller_number for c in chans if c.caller_number), "")
        name = next((c.caller_name for c in chans if c.caller_name), "")
        return number, name

    def _fallback_number(self, group: _Group) -> str:
        """Never got a caller id: the Local name's number, then the dialplan exten."""
        chans = sorted((self._chans[c] for u in self._anchor_units(group) for c in u.chans),
                       key=_Chan.sort_key)
        for chan in chans:
            if chan.half:
                number = chan.name.partition("/")[2].partition("@")[0]
                if number:
                    return number
        for chan in chans:
            if chan.first_exten and chan.first_exten != "s":
                return chan.first_exten
        return "anonymous"

    def _missed_reason(self, group: _Group) -> str:
        anchor = self._chans[group.anchor] if group.anchor else None
        if group.direction is Direction.INBOUND:
            if any(u.operator_id is not None for u in group.units.values()):
                return "abandoned_in_queue"
            if anchor is not None and anchor.cause in _FAILURE_CAUSES:
                return "failed"
            return "abandoned_in_ivr"
        statuses = {u.dial_status for u in group.units.values() if u.key != group.root}
        causes = {self._chans[c].cause for c in group.chans}
        if "BUSY" in statuses or causes & _BUSY_CAUSES:
            return "busy"
        if "NOANSWER" in statuses or causes & _NO_ANSWER_CAUSES:
            return "no_answer"
        if statuses & {"CHANUNAVAIL", "CONGESTION"} or causes & _FAILURE_CAUSES:
            return "failed"
        return "no_answer"

    def _extension(self, operator_id: str | None) -> str | None:
        operator = self._dir.by_id(operator_id) if operator_id else None
        return operator.extension if operator is not None else None

    def _channel_ids(self, group: _Group) -> tuple[str, ...]:
        """In PBX creation order, whatever order the frames arrived in."""
        return tuple(c.id for c in sorted((self._chans[c] for c in group.chans),
                                          key=_Chan.sort_key))

    def _offered(self, group: _Group) -> tuple[str, ...]:
        """Operators with a leg in the call, ordered by their first leg's creation."""
        first: dict[str, tuple[datetime, int, tuple[int, int, int, str]]] = {}
        for unit in group.units.values():
            if unit.operator_id is None:
                continue
            for cid in unit.chans:
                key = self._chans[cid].sort_key()
                if unit.operator_id not in first or key < first[unit.operator_id]:
                    first[unit.operator_id] = key
        return tuple(sorted(first, key=lambda op: (first[op], op)))

    def _group_ids(self, group: _Group) -> tuple[str, ...]:
        ids: dict[str, None] = {}
        for operator_id in self._offered(group):
            operator = self._dir.by_id(operator_id)
            if operator is not None and operator.group_id:
                ids[operator.group_id] = None
        return tuple(ids)

    def _forget(self, group: _Group) -> None:
        """Drop a finished group; its channel ids are remembered so late frames are ignored."""
        for cid in group.chans:
            chan = self._chans.pop(cid, None)
            if chan is not None:
                self._leave_bridges(chan)
            self._dead[cid] = None
        while len(self._dead) > _TOMBSTONES:
            self._dead.popitem(last=False)
        for unit in group.units.values():
            if self._unit_gid.get(unit.key) == group.gid:
                del self._unit_gid[unit.key]
            if unit.operator_id is not None:
                self._op_groups.get(unit.operator_id, set()).discard(group.gid)
                self.touched_operators.add(unit.operator_id)
        self._groups.pop(group.gid, None)
