"""What an admin asks of AMI directly: the connection test (banner, login, ping, settings).

``probe`` raises the ``connectors.ami.errors`` of the step that failed (AST_001 timeout,
AST_002 login refused, AST_004 nothing speaking AMI there) and otherwise says what it found,
with warnings an admin should act on — today one: events carry no ``Timestamp``
(``manager.conf``: ``timestampevents=yes`` is off), so with AMI alone event times are the
times Switchboard received them.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.ami.client import AmiConfig, AmiConnection
from connectors.ami.errors import AmiError
from connectors.clean import clean_text

NO_TIMESTAMPS = ("AMI events carry no Timestamp: set timestampevents=yes in manager.conf "
                 "[general] (without it, and without ARI, call times are the times Switchboard "
                 "received the events)")


@dataclass(frozen=True, slots=True)
class AmiFound:
    version: str               # Asterisk's version (CoreSettings), else "AMI <protocol version>"
    system: str                # how the test names the Asterisk it reached
    ami_version: str
    timestamp_events: bool
    warnings: tuple[str, ...] = ()


async def probe(config: AmiConfig) -> AmiFound:
    """Connect, read the banner, log in, ping, read ``CoreSettings``; then close."""
    connection = await AmiConnection.open(config)  # no event callback: events are kept
    try:
        await connection.ping()
        try:
            core = await connection.action("CoreSettings")
        except AmiError:
            core = None  # a user without the "system" read class may not ask it
        # Asterisk writes FullyBooted right after the login answer, before it reads our Ping:
        # by the Pong it has arrived, with a Timestamp if timestampevents=yes.
        stamped = any("Timestamp" in m for m in connection.first_events)
        ami_version = connection.version or "?"
        asterisk = clean_text(core.get("AsteriskVersion") or "") if core else ""
        name = clean_text(core.get("SystemName") or "") if core else ""
        return AmiFound(
            version=asterisk or f"AMI {ami_version}",
            system=name or f"Asterisk (AMI {ami_version})",
            ami_version=ami_version,
            timestamp_events=stamped,
            warnings=() if stamped else (NO_TIMESTAMPS,),
        )
    finally:
        await connection.close()
