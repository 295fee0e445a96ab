"""A TCP proxy a test puts between the app and a server, to cut the line and restore it
without touching the (shared) server itself."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Literal

Mode = Literal["up", "reset", "silent"]


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target``.

    ``cut("reset")``: every connection is reset (a real TCP RST), new ones too (a server that
    is down). ``cut("silent")``: nothing gets through any more and the connections open now
    stay dead-silent for good, even after ``restore()`` (a host that vanished sends no reset;
    the client must give up on them itself). ``restore()`` forwards new connections again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._silenced: set[asyncio.StreamWriter] = set()
        self.mode: Mode = "up"
        self.port = 0

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._links | self._silenced:
            writer.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()

    def cut(self, mode: Literal["reset", "silent"] = "reset") -> None:
        self.mode = mode
        for writer in list(self._links):
            if mode == "reset":
                _reset(writer)
            else:
                self._silenced.add(writer)
        self._links.clear()

    def restore(self) -> None:
        self.mode = "up"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "reset":
            _reset(writer)
            return
        if self.mode == "silent":
            self._silenced.add(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._links |= {writer, up_writer}
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if writer in self._silenced:
                    continue  # the line is dead: bytes vanish
                writer.write(data)
                await writer.drain()
        if writer not in self._silenced:
            writer.transport.abort()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST, not FIN (SO_LINGER 0): what a client sees when the server is gone. A FIN
    shows as end-of-stream, which redis-py notices before writing; an RST closes uvloop's
    transport under it, and the next write raises RuntimeError (the original failure)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
