"""Carries token revocations from Redis to this instance's WebSockets.

Any instance that revokes a refresh family or all tokens of a user publishes a notice
(``storage/tokens.py``); every instance listens and closes the matching sockets at once. If a
notice is lost (Redis restarted, listener reconnecting), the WebSocket endpoint's periodic
revocation sweep still closes them within ``revocation_poll`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from storage.tokens import TokenStore

log = logging.getLogger("switchboard.sessions")


class SocketCloser(Protocol):
    def revoke_user(self, user_id: str) -> int: ...

    def revoke_family(self, family: str) -> int: ...


async def watch_revocations(store: TokenStore, sockets: SocketCloser,
                            retry_delay: float = 1.0) -> None:
    """Forever (cancel to stop): close the sockets named by revocation notices."""
    while True:
        try:
            async for notice in store.revocation_notices():
                closed = (sockets.revoke_user(notice.id) if notice.kind == "user"
                          else sockets.revoke_family(notice.id))
                if closed:
                    log.info("revoked %s %s: %d websocket(s) closed", notice.kind, notice.id,
                             closed)
        except asyncio.CancelledError:
            raise
        except Exception:  # Redis went away: subscribe again after a pause
            log.warning("revocation notices: listener failed; retrying", exc_info=True)
        await asyncio.sleep(retry_delay)
