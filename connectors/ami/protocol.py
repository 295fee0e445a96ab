"""Sans-I/O Asterisk Manager Interface (AMI) protocol: bytes in, typed messages out.

No sockets and no ``await`` (the split of python-websockets' ``protocol.py``): a driver feeds
what it reads to ``receive_data()`` / ``receive_eof()`` and takes parsed messages from
``events_received()``; ``send_action()`` / ``encode_message()`` give the bytes to write.

Framing: an optional banner line ``Asterisk Call Manager/x.y.z``, then ``Key: Value`` lines,
a blank line ending each message. Lines are cut on ``\\n`` *before* decoding (UTF-8 never uses
that byte inside a character), so a character split across two reads arrives whole — the fault
of panoramisk, which decodes every chunk on its own with ``errors='ignore'``.

Bad peer input never raises: it is logged, counted in ``errors`` (a ``Counter`` keyed by the
``ERR_*`` names below) and skipped; the next good message is still parsed. Memory is bounded by
``max_message_bytes``: a larger message is dropped and parsing resumes at the next blank line.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger(__name__)

BANNER_PREFIX = "Asterisk Call Manager/"
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024  # real messages are a few KB; lists come item by item
LOG_FIRST, LOG_EVERY = 10, 1000  # per error kind: log the first ones, then one in LOG_EVERY

ERR_INVALID_UTF8 = "invalid_utf8"  # undecodable bytes replaced by U+FFFD
ERR_LINE_WITHOUT_COLON = "line_without_colon"  # skipped
ERR_MESSAGE_WITHOUT_KIND = "message_without_kind"  # no Event/Response/Action header: dropped
ERR_MESSAGE_TOO_LARGE = "message_too_large"  # dropped up to the next blank line
ERR_TRUNCATED_AT_EOF = "truncated_at_eof"  # connection closed mid-message: partial dropped
ERR_MISSING_BANNER = "missing_banner"  # first line was not the banner (parsed as a header)
ERR_DATA_AFTER_EOF = "data_after_eof"  # driver bug; ignored

_UNSAFE = re.compile(r"[\r\n]")


class Kind(StrEnum):
    EVENT = "event"
    RESPONSE = "response"
    ACTION = "action"  # what a client sends; the fake server parses these


_KIND_BY_KEY = {"event": Kind.EVENT, "response": Kind.RESPONSE, "action": Kind.ACTION}


@dataclass(frozen=True, slots=True)
class AmiMessage:
    """One AMI message: its kind and its headers in wire order (keys may repeat).

    Lookups are case-insensitive, as Asterisk treats keys; ``get`` returns the first value.
    """

    kind: Kind
    headers: tuple[tuple[str, str], ...]

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, str]]) -> AmiMessage | None:
        """The message, or None when no header says what it is (Event/Response/Action)."""
        pairs = tuple(headers)
        for key, _ in pairs:
            kind = _KIND_BY_KEY.get(key.lower())
            if kind is not None:
                return cls(kind, pairs)
        return None

    def get(self, key: str, default: str | None = None) -> str | None:
        wanted = key.lower()
        for k, v in self.headers:
            if k.lower() == wanted:
                return v
        return default

    def get_all(self, key: str) -> tuple[str, ...]:
        """Every value of a repeated key (``ChanVariable``, ``Variable``), in order."""
        wanted = key.lower()
        return tuple(v for k, v in self.headers if k.lower() == wanted)

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def as_dict(self) -> dict[str, str]:
        """Headers as a plain dict (first value of a repeated key wins)."""
        out: dict[str, str] = {}
        for k, v in self.headers:
            out.setdefault(k, v)
        return out

    @property
    def name(self) -> str:
        """The event, response status or action name (``QueueMemberPause``, ``Success``)."""
        return self.get(self.kind.value, "") or ""

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def to_bytes(self) -> bytes:
        return encode_message(self.headers)


def encode_message(headers: Mapping[str, object] | Iterable[tuple[str, object]]) -> bytes:
    """Wire bytes of one message. A list/tuple value repeats its key (``Variable: a=1`` ...).

    Raises ValueError on CR/LF in a key or value: that would let a value inject headers.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    lines: list[str] = []
    for key, value in pairs:
        values = value if isinstance(value, list | tuple) else (value,)
        for v in values:
            text = str(v)
            if _UNSAFE.search(key) or _UNSAFE.search(text) or not key or ":" in key:
                raise ValueError(f"unsafe AMI header {key!r}: {text!r}")
            lines.append(f"{key}: {text}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("utf-8")


def send_action(name: str, action_id: str, **fields: object) -> bytes:
    """Bytes of ``Action: name`` with its ActionID and fields, ready to write."""
    return encode_message([("Action", name), ("ActionID", action_id), *fields.items()])


class AmiProtocol:
    """Parser state for one connection. Create a new one per connection.

    ``expect_banner``: a client expects the server's banner as the first line; the server side
    (the fake) parses actions and expects none.
    """

    def __init__(
        self, *, expect_banner: bool = True, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    ) -> None:
        self.banner: str | None = None
        self.errors: Counter[str] = Counter()
        self.max_message_bytes = max_message_bytes
        self._expect_banner = expect_banner
        self._buffer = bytearray()  # bytes of the line being received
        self._headers: list[tuple[str, str]] = []
        self._size = 0  # bytes of the current message so far
        self._skipping = False  # dropping an oversized message up to the next blank line
        self._skip_line_tail = False  # ... and the current line's rest is part of it
        self._received: list[AmiMessage] = []
        self._eof = False

    @property
    def version(self) -> str | None:
        """``13.0.0`` from the banner, once it arrived."""
        return self.banner[len(BANNER_PREFIX) :] if self.banner else None

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for the message being received (bounded by ``max_message_bytes``)."""
        return len(self._buffer) + self._size

    def receive_data(self, data: bytes) -> None:
        if self._eof:
            self._count(ERR_DATA_AFTER_EOF, "%d bytes after EOF ignored", len(data))
            return
        self._buffer += data
        start = 0
        while (end := self._buffer.find(b"\n", start)) != -1:
            self._line(bytes(self._buffer[start:end]))
            start = end + 1
        del self._buffer[:start]
        if not self._skipping and self._size + len(self._buffer) > self.max_message_bytes:
            self._drop_oversized()
        if self._skipping and self._buffer and self._buffer != b"\r":
            self._buffer.clear()  # keep memory bounded while skipping; b"\r" may start a blank line
            self._skip_line_tail = True

    def receive_eof(self) -> None:
        """The peer closed: a partial message is dropped and counted."""
        if self._eof:
            return
        self._eof = True
        if self._headers or self._buffer or self._skipping:
            self._count(
                ERR_TRUNCATED_AT_EOF,
                "connection closed mid-message, %d bytes lost",
                self._size + len(self._buffer),
            )
        self._buffer.clear()
        self._headers = []
        self._size = 0
        self._skipping = False

    def send_action(self, name: str, action_id: str, **fields: object) -> bytes:
        """Bytes to write for an action (the module-level ``send_action``; no state kept)."""
        return send_action(name, action_id, **fields)

    def events_received(self) -> list[AmiMessage]:
        """Messages parsed since the last call, in order."""
        received, self._received = self._received, []
        return received

    # -- internals ------------------------------------------------------------------------------

    def _line(self, raw: bytes) -> None:
        if self._skipping:
            if self._skip_line_tail:
                self._skip_line_tail = False  # end of the line cut off while skipping
            elif raw in (b"", b"\r"):
                self._skipping = False  # resynchronised
            return
        self._size += len(raw) + 1
        if self._size > self.max_message_bytes:
            self._drop_oversized()
            self._skip_line_tail = False  # this line ended already
            if raw in (b"", b"\r"):
                self._skipping = False
            return
        line = self._decode(raw.removesuffix(b"\r"))
        if self._expect_banner:
            self._expect_banner = False
            if line.startswith(BANNER_PREFIX):
                self.banner = line.strip()
                self._size = 0
                return
            self._count(ERR_MISSING_BANNER, "no banner, first line %r", line[:80])
        if not line.strip():
            self._end_message()
            return
        key, colon, value = line.partition(":")
        if not colon or not key.strip():
            self._count(ERR_LINE_WITHOUT_COLON, "line without colon skipped: %r", line[:80])
            return
        self._headers.append((key.strip(), value.strip()))

    def _end_message(self) -> None:
        headers, self._headers, self._size = self._headers, [], 0
        if not headers:
            return  # stray blank line between messages
        message = AmiMessage.from_headers(headers)
        if message is None:
            self._count(
                ERR_MESSAGE_WITHOUT_KIND, "message without Event/Response/Action: %r", headers[:3]
            )
            return
        self._received.append(message)

    def _drop_oversized(self) -> None:
        self._count(ERR_MESSAGE_TOO_LARGE, "message over %d bytes dropped", self.max_message_bytes)
        self._headers = []
        self._size = 0
        self._skipping = True

    def _decode(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self._count(ERR_INVALID_UTF8, "invalid UTF-8 replaced in %r", raw[:80])
            return raw.decode("utf-8", errors="replace")

    def _count(self, error: str, msg: str, *args: object) -> None:
        self.errors[error] += 1
        seen = self.errors[error]
        if seen <= LOG_FIRST or seen % LOG_EVERY == 0:  # a flood of garbage must not flood logs
            log.warning("AMI: " + msg + " (%s #%d)", *args, error, seen)
