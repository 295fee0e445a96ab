"""Mango's disconnect reasons mapped to our missed-call reasons (pure).

Our reasons (engine ``Call.missed_reason``, DOMAIN.md): ``abandoned_in_queue``,
``abandoned_in_ivr``, ``no_answer``, ``busy``, ``failed``. Mango's codes (MANGO.md): 1100
normal, 1110 caller hung up, 1111 no answer, 1120 called party hung up, 1121 busy, 1122
rejected, 1123 do-not-disturb, 1162 queue full, 1163 queue timeout, 1164 all operators
unavailable, 1181 ended by API; 2xxx billing, 32xx bad number, 42xx unreachable, 5xxx server.
Unknown codes go by their class prefix: 1xxx is an ordinary end, anything else a failure.
"""

from __future__ import annotations

from engine.model import Direction

_BUSY = frozenset({1121, 1122, 1123, 1162})       # busy, rejected, do-not-disturb, queue full
_NO_ANSWER = frozenset({1111, 1163, 1164})        # nobody picked up / nobody available


def missed_reason(code: int | None, direction: Direction, reached_agents: bool) -> str:
    """Why an unanswered call was missed.

    ``reached_agents``: the call entered a queue or rang an operator (else it ended in the
    IVR). An inbound caller who hangs up (or an ordinary end) is an abandon, in the queue or in
    the IVR; for outbound and internal calls the same end means nobody answered.
    """
    if code is not None and not 1000 <= code < 2000:
        return "failed"
    if code in _BUSY:
        return "busy"
    if code in _NO_ANSWER:
        return "no_answer"
    if direction is Direction.INBOUND:
        return "abandoned_in_queue" if reached_agents else "abandoned_in_ivr"
    return "no_answer"
