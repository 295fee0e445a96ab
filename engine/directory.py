"""Which channels and devices belong to which operator (pure).

Names resolve to an extension: ``PJSIP/1001-0000000a``, ``SIP/1001-00000001``, ``IAX2/1001-123``,
``Local/1001@agents-00000001;1`` (and ``;2``), devices ``PJSIP/1001``, ``Custom:1001``,
``Local/1001@agents``. A ``Local`` channel's resource is a dialled number, so a customer's
``Local/+79001234567@pstn-00000000;1`` is an operator leg only if that number is a known
extension. Caller-ID never identifies an operator (agent legs carry the caller's).
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Iterator

from engine.model import Operator

_PHONE_TECHS = frozenset({"PJSIP", "SIP", "IAX2", "DAHDI", "MOTIF", "UNISTIM", "SKINNY"})
_SIP_SUFFIX = re.compile(r"-[0-9a-fA-F]{8}$")   # PJSIP/SIP channel-name suffix
_IAX_SUFFIX = re.compile(r"-\d+$")              # IAX2 call number
_LOCAL_SUFFIX = re.compile(r"-[0-9a-fA-F]{8}$")  # Local/x@ctx-00000001 (before ;1/;2)
_LOOKS_LIKE_EXTENSION = re.compile(r"\d{2,6}")  # without a directory: short digit strings only


def local_half(name: str) -> int | None:
    """1 or 2 for the halves of a Local channel, else None."""
    if name[:6].lower() == "local/" and len(name) > 2 and name[-2] == ";" and name[-1] in "12":
        return int(name[-1])
    return None


def local_pair_key(name: str) -> str | None:
    """The name shared by both halves of a Local channel (without ``;1``/``;2``), else None."""
    return name[:-2] if local_half(name) is not None else None


def _resource(name: str) -> str | None:
    name = name.strip()
    if name[:7].lower() == "custom:":
        return name[7:] or None
    tech, sep, rest = name.partition("/")
    if not sep or not rest:
        return None
    tech = tech.upper()
    if tech == "LOCAL":
        if local_half(name) is not None:
            rest = rest[:-2]
        rest = _LOCAL_SUFFIX.sub("", rest)
        return rest.partition("@")[0] or None
    if tech in _PHONE_TECHS:
        pattern = _IAX_SUFFIX if tech == "IAX2" else _SIP_SUFFIX
        return pattern.sub("", rest) or None
    return None


def extension_of(name: str, known: Container[str] | None = None) -> str | None:
    """The operator extension a channel or device name points at, or None.

    With ``known`` (the directory's extensions) only a known extension is returned. Without it,
    phone channels/devices return their endpoint name and ``Local`` channels return their
    number only if it looks like an internal extension (2-6 digits).
    """
    resource = _resource(name)
    if resource is None:
        return None
    if known is not None:
        return resource if resource in known else None
    if name.strip()[:6].lower() == "local/" and not _LOOKS_LIKE_EXTENSION.fullmatch(resource):
        return None
    return resource


def agent_extension(name: str) -> str | None:
    """The extension an agent interface rings (``PJSIP/1001-0000000a``, ``Local/1001@agents``),
    known to the directory or not; None for names that do not look like an extension (trunks,
    outside numbers)."""
    resource = _resource(name)
    if resource is None or not _LOOKS_LIKE_EXTENSION.fullmatch(resource):
        return None
    return resource


def paused_member(device: str) -> tuple[str, str] | None:
    """``Queue:support_pause_Local/1001@agents`` -> ("support", "Local/1001@agents")."""
    if not device.startswith("Queue:") or "_pause_" not in device:
        return None
    queue, _, member = device[6:].partition("_pause_")
    return (queue, member) if queue and member else None


class OperatorDirectory:
    """Extension -> Operator and id -> Operator, kept consistent on updates."""

    __slots__ = ("_by_ext", "_by_id")

    def __init__(self, operators: Iterable[Operator] = ()) -> None:
        self._by_id: dict[str, Operator] = {}
        self._by_ext: dict[str, Operator] = {}
        for op in operators:
            self.put(op)

    def put(self, operator: Operator) -> Operator | None:
        """Add or replace; returns the previous entry with that id."""
        previous = self._by_id.get(operator.id)
        if previous is not None and self._by_ext.get(previous.extension) is previous:
            del self._by_ext[previous.extension]
        self._by_id[operator.id] = operator
        self._by_ext[operator.extension] = operator
        return previous

    def remove(self, operator_id: str) -> Operator | None:
        previous = self._by_id.pop(operator_id, None)
        if previous is not None and self._by_ext.get(previous.extension) is previous:
            del self._by_ext[previous.extension]
        return previous

    def by_id(self, operator_id: str) -> Operator | None:
        return self._by_id.get(operator_id)

    def by_extension(self, extension: str) -> Operator | None:
        return self._by_ext.get(extension)

    def for_name(self, name: str) -> Operator | None:
        """The operator a channel/device name belongs to, if its extension is known."""
        ext = extension_of(name, self._by_ext)
        return self._by_ext.get(ext) if ext is not None else None

    def extensions(self) -> Container[str]:
        return self._by_ext.keys()

    def __iter__(self) -> Iterator[Operator]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, operator_id: object) -> bool:
        return operator_id in self._by_id
