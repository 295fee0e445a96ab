"""Reconciliation: close the calls that are not final here and no longer on the PBX.

After a crash, a kill or an outage, calls that ended while we were not listening stay
``incoming``/``answered`` in PostgreSQL. After each PBX resync the engine knows every live call;
every other open row is closed by the rules of DOMAIN.md and flagged ``reconciled``.

End time: the latest moment we *know* the call was alive — its answer time if answered, else its
start time (PBX timestamps; we keep no later sign of life per call, and "now" would invent talk
or wait time that nobody measured). So a reconciled answered call has ``duration`` 0 and its
true wait; a reconciled missed call has ``wait_seconds`` 0. ``reconciled`` says the figures are
a lower bound.

Outcome: answered (``status`` answered or an ``answer_time``) -> ``completed``; otherwise
``missed`` with the reason the rules give for a call that was simply gone: inbound in a queue
``abandoned_in_queue``, inbound never queued ``abandoned_in_ivr``, outbound/internal
``no_answer``.
"""

from __future__ import annotations

from collections.abc import Collection

import asyncpg

CLOSE_OPEN_CALLS = """
WITH closing AS (
    SELECT id, (status = 'answered' OR answer_time IS NOT NULL) AS answered
      FROM calls
     WHERE status IN ('incoming', 'answered') AND NOT (id = ANY($1::uuid[]))
       FOR UPDATE
)
UPDATE calls c SET
    status = CASE WHEN closing.answered THEN 'completed' ELSE 'missed' END,
    end_time = GREATEST(c.start_time, c.answer_time),
    duration = 0,
    wait_seconds = CASE WHEN c.answer_time IS NOT NULL
        THEN GREATEST(0, round(extract(epoch FROM c.answer_time - c.start_time)))::integer
        ELSE 0 END,
    missed_reason = CASE
        WHEN closing.answered THEN NULL
        WHEN c.direction <> 'inbound' THEN 'no_answer'
        WHEN c.queue_name IS NOT NULL THEN 'abandoned_in_queue'
        ELSE 'abandoned_in_ivr' END,
    reconciled = true,
    updated_at = now()
  FROM closing
 WHERE c.id = closing.id
RETURNING c.id::text
"""


async def close_calls_gone_from_pbx(conn: asyncpg.Connection,
                                    live_call_ids: Collection[str]) -> list[str]:
    """Close every open call row whose id is not in ``live_call_ids``; the ids closed."""
    rows = await conn.fetch(CLOSE_OPEN_CALLS, list(live_call_ids))
    return [r[0] for r in rows]
