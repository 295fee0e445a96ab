"""The programmable PBX behind the fake AMI server: queues, members, callers, channels.

Pure (no sockets): member actions change the state and return the events Asterisk would send;
list builders give a list action's items. Field names and order follow the captured traffic
(``shared/traces``): events say ``MemberName``/``Interface``, ``QueueStatus`` says
``Name``/``Location``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Fields = list[tuple[str, object]]


class MemberActionError(Exception):
    """An action Asterisk refuses; the message is its ``Message:`` text."""


@dataclass
class Queue:
    name: str
    strategy: str = "ringall"
    max: int = 0
    service_level: int = 20
    weight: int = 0
    holdtime: int = 0
    talktime: int = 0
    completed: int = 0
    abandoned: int = 0


@dataclass
class Member:
    queue: str
    name: str
    interface: str
    state_interface: str = ""
    membership: str = "static"
    penalty: int = 0
    calls_taken: int = 0
    last_call: int = 0
    last_pause: int = 0
    login_time: int = 0
    in_call: int = 0
    status: int = 1  # 1 NOT_INUSE; AMI.md lists the others
    paused: bool = False
    paused_reason: str = ""
    wrapuptime: int = 0

    def fields(self, *, status_list: bool = False) -> Fields:
        name_key, interface_key = (
            ("Name", "Location") if status_list else ("MemberName", "Interface")
        )
        ringinuse: Fields = [] if status_list else [("Ringinuse", 0)]
        return [
            ("Queue", self.queue), (name_key, self.name), (interface_key, self.interface),
            ("StateInterface", self.state_interface or self.interface),
            ("Membership", self.membership), ("Penalty", self.penalty),
            ("CallsTaken", self.calls_taken), ("LastCall", self.last_call),
            ("LastPause", self.last_pause), ("LoginTime", self.login_time),
            ("InCall", self.in_call), ("Status", self.status), ("Paused", int(self.paused)),
            ("PausedReason", self.paused_reason), *ringinuse, ("Wrapuptime", self.wrapuptime),
        ]  # fmt: skip

    def event(self, name: str) -> Fields:
        """``QueueMemberPause``/``Added``/``Removed``/``Status`` for this member."""
        return [("Event", name), ("Privilege", "agent,all"), *self.fields()]


@dataclass
class Caller:
    queue: str
    channel: str
    uniqueid: str
    caller_id_num: str = ""
    caller_id_name: str = ""
    joined_at: float = 0.0


@dataclass
class AmiState:
    """What the list actions report. Edit it directly (and ``emit`` the matching events), or
    use the member actions, which return their events."""

    queues: dict[str, Queue] = field(default_factory=dict)
    members: list[Member] = field(default_factory=list)
    callers: list[Caller] = field(default_factory=list)  # in queue order
    channels: list[dict[str, str]] = field(default_factory=list)  # CoreShowChannel fields

    def add_queue(self, name: str, **settings: Any) -> Queue:
        self.queues[name] = Queue(name, **settings)
        return self.queues[name]

    def pause(
        self, interface: str, queue: str | None, paused: bool, reason: str, now: int
    ) -> list[Fields]:
        """``QueuePause``: every matching membership (all queues when ``queue`` is empty)."""
        members = [
            m for m in self.members if m.interface == interface and (not queue or m.queue == queue)
        ]
        if not members:
            raise MemberActionError("Interface not found")
        for m in members:
            m.paused = paused
            m.paused_reason = reason if paused else ""
            if paused:
                m.last_pause = now
        return [m.event("QueueMemberPause") for m in members]

    def add_member(
        self, queue: str, interface: str, name: str, state_interface: str, now: int
    ) -> list[Fields]:
        """``QueueAdd``: a dynamic member, logged in now."""
        if queue not in self.queues:
            raise MemberActionError("Unable to add interface to queue: No such queue")
        if any(m.queue == queue and m.interface == interface for m in self.members):
            raise MemberActionError("Unable to add interface: Already there")
        member = Member(
            queue, name or interface, interface, state_interface, "dynamic", login_time=now
        )
        self.members.append(member)
        return [member.event("QueueMemberAdded")]

    def remove_member(self, queue: str, interface: str) -> list[Fields]:
        """``QueueRemove``."""
        if queue not in self.queues:
            raise MemberActionError("Unable to remove interface from queue: No such queue")
        for member in self.members:
            if member.queue == queue and member.interface == interface:
                self.members.remove(member)
                return [member.event("QueueMemberRemoved")]
        raise MemberActionError("Unable to remove interface: Not there")


# -- list actions: (opening message, closing event, items) ------------------------------------

ListAnswer = tuple[str, str, list[Fields]]


def queue_status(state: AmiState, wanted: str | None, now: float) -> ListAnswer:
    items: list[Fields] = []
    for q in state.queues.values():
        if wanted and q.name != wanted:
            continue
        callers = [c for c in state.callers if c.queue == q.name]
        items.append([
            ("Event", "QueueParams"), ("Queue", q.name), ("Max", q.max),
            ("Strategy", q.strategy), ("Calls", len(callers)), ("Holdtime", q.holdtime),
            ("TalkTime", q.talktime), ("Completed", q.completed), ("Abandoned", q.abandoned),
            ("ServiceLevel", q.service_level), ("ServicelevelPerf", "0.0"),
            ("ServicelevelPerf2", "0.0"), ("Weight", q.weight),
        ])  # fmt: skip
        items += [
            [("Event", "QueueMember"), *m.fields(status_list=True)]
            for m in state.members if m.queue == q.name
        ]  # fmt: skip
        items += [
            [("Event", "QueueEntry"), ("Queue", q.name), ("Position", position),
             ("Channel", c.channel), ("Uniqueid", c.uniqueid), ("CallerIDNum", c.caller_id_num),
             ("CallerIDName", c.caller_id_name), ("Wait", int(now - c.joined_at))]
            for position, c in enumerate(callers, start=1)
        ]  # fmt: skip
    return "Queue status will follow", "QueueStatusComplete", items


def queue_summary(state: AmiState, wanted: str | None, now: float) -> ListAnswer:
    items: list[Fields] = []
    for q in state.queues.values():
        if wanted and q.name != wanted:
            continue
        members = [m for m in state.members if m.queue == q.name]
        waits = [int(now - c.joined_at) for c in state.callers if c.queue == q.name]
        items.append([
            ("Event", "QueueSummary"), ("Queue", q.name), ("LoggedIn", len(members)),
            ("Available", sum(1 for m in members if m.status == 1 and not m.paused)),
            ("Callers", len(waits)), ("HoldTime", q.holdtime), ("TalkTime", q.talktime),
            ("LongestHoldTime", max(waits, default=0)),
        ])  # fmt: skip
    return "Queue summary will follow", "QueueSummaryComplete", items


def core_show_channels(state: AmiState, wanted: str | None, now: float) -> ListAnswer:
    items: list[Fields] = [[("Event", "CoreShowChannel"), *c.items()] for c in state.channels]
    return "Channels will follow", "CoreShowChannelsComplete", items


LIST_ACTIONS = {
    "queuestatus": queue_status,
    "queuesummary": queue_summary,
    "coreshowchannels": core_show_channels,
}
