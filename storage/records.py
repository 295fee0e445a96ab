"""Durable call records in PostgreSQL, written in batches by a background flusher.

A record is never dropped: a failed batch stays queued and is retried with backoff. Each write
is a full upsert of the call's latest state, so queued versions of one call coalesce.
"""

from __future__ import annotations

import logging

import asyncpg

from engine.model import Call, Operator
from storage.writebehind import WriteBehind

log = logging.getLogger("switchboard.records")

# Operator ids as uuid[], in order, keeping only operators the table holds (like operator_id).
_KNOWN_OPERATORS = """ARRAY(SELECT o.id FROM unnest({}::text[]) WITH ORDINALITY AS x(id, n)
                     JOIN operators o ON o.id::text = x.id ORDER BY x.n)"""

UPSERT_CALL = """
INSERT INTO calls (id, channel_id, source, direction, caller_number, caller_name, called_number,
                   operator_id, queue_id, queue_name, status, missed_reason, hangup_cause,
                   start_time, answer_time, end_time, duration, wait_seconds,
                   linked_channel_ids, operator_extension, offered_operator_ids,
                   rung_operator_ids)
VALUES ($1::uuid, $2, $3, $4, $5, $6, $7,
        (SELECT id FROM operators WHERE id = $8::uuid),
        (SELECT id FROM queues WHERE asterisk_name = $9), $9, $10, $11, $12,
        $13, $14, $15, $16, $17, $18, $19, {offered}, {rung})
ON CONFLICT (id) DO UPDATE SET
    caller_number = EXCLUDED.caller_number, caller_name = EXCLUDED.caller_name,
    called_number = EXCLUDED.called_number, direction = EXCLUDED.direction,
    operator_id = EXCLUDED.operator_id, queue_id = EXCLUDED.queue_id,
    queue_name = EXCLUDED.queue_name, status = EXCLUDED.status,
    missed_reason = EXCLUDED.missed_reason, hangup_cause = EXCLUDED.hangup_cause,
    start_time = EXCLUDED.start_time, answer_time = EXCLUDED.answer_time,
    end_time = EXCLUDED.end_time, duration = EXCLUDED.duration,
    wait_seconds = EXCLUDED.wait_seconds, linked_channel_ids = EXCLUDED.linked_channel_ids,
    operator_extension = EXCLUDED.operator_extension,
    offered_operator_ids = EXCLUDED.offered_operator_ids,
    rung_operator_ids = EXCLUDED.rung_operator_ids,
    updated_at = now()
""".format(offered=_KNOWN_OPERATORS.format("$20"), rung=_KNOWN_OPERATORS.format("$21"))

UPDATE_OPERATOR = """
UPDATE operators SET status = $2, status_detail = $3, current_calls = $4,
       last_activity = COALESCE($5, last_activity)
 WHERE id = $1::uuid
"""


def _call_args(c: Call) -> tuple[object, ...]:
    return (
        c.id, c.channel_id, c.source, c.direction.value, c.caller_number, c.caller_name,
        c.called_number, c.operator_id, c.queue_name, c.status.value, c.missed_reason,
        c.hangup_cause, c.start_time, c.answer_time, c.end_time, c.duration, c.wait_seconds,
        list(c.channel_ids), c.operator_extension, list(c.offered_operator_ids),
        list(c.rung_operator_ids),
    )


def _operator_args(o: Operator) -> tuple[object, ...]:
    return (o.id, o.status.value, o.status_detail, o.current_calls, o.last_activity)


class PostgresRecordSink(WriteBehind):
    """Implements ``engine.ports.RecordSink``. ``run()`` is the flusher; ``flush()`` drains now."""

    retry_on = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
    what = "records"

    def __init__(self, pool: asyncpg.Pool, *, batch_size: int = 500,
                 interval: float = 0.05, max_backoff: float = 10.0) -> None:
        super().__init__(interval=interval, max_backoff=max_backoff, log=log)
        self._pool = pool
        self._batch_size = batch_size

    async def write(self, call: Call) -> None:
        self._note_call(call.id, call)  # a newer state of the same call replaces the queued one

    async def write_operator(self, operator: Operator) -> None:
        self._note_operator(operator)

    async def flush(self) -> None:
        """Write everything queued; on failure the records stay queued (newer ones win)."""
        async with self._lock:
            while self._calls or self._operators:
                calls = dict(list(self._calls.items())[: self._batch_size])
                operators = dict(list(self._operators.items())[: self._batch_size])
                for key in calls:
                    del self._calls[key]
                for key in operators:
                    del self._operators[key]
                try:
                    async with self._pool.acquire() as conn, conn.transaction():
                        if calls:
                            await conn.executemany(
                                UPSERT_CALL, [_call_args(c) for c in calls.values() if c])
                        if operators:
                            await conn.executemany(
                                UPDATE_OPERATOR, [_operator_args(o) for o in operators.values()]
                            )
                except BaseException:
                    # put back what failed unless a newer version arrived meanwhile
                    for key, call in calls.items():
                        self._calls.setdefault(key, call)
                    for key, op in operators.items():
                        self._operators.setdefault(key, op)
                    raise
                self.stats["calls_written"] += len(calls)
                self.stats["operators_written"] += len(operators)
            self._wake.clear()

