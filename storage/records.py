"""Durable call records in PostgreSQL, written in batches by a background flusher.

An outage loses nothing: a batch that fails for want of the server stays queued and is retried
with backoff. A row that PostgreSQL refuses for its *data* (a NUL byte, a number out of range, a
broken constraint) blocks nothing: the batch is split in halves until the refused row stands
alone, every other row is written, and that one is parked in ``parked_records`` with the error
(``storage/parked.py``). Each write is a full upsert of the call's latest state, so queued
versions of one call coalesce.

After a PBX resync the runner hands over the ids of the live calls (``reconcile``); the next
flush closes every other open row first (``storage/reconcile.py``).
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import asyncpg

from engine.model import Call, Operator
from storage.parked import park
from storage.reconcile import close_calls_gone_from_pbx
from storage.serialize import dumps
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
    reconciled = false, updated_at = now()
""".format(offered=_KNOWN_OPERATORS.format("$20"), rung=_KNOWN_OPERATORS.format("$21"))

UPDATE_OPERATOR = """
UPDATE operators SET status = $2, status_detail = $3, current_calls = $4,
       last_activity = COALESCE($5, last_activity)
 WHERE id = $1::uuid
"""

# PostgreSQL (or asyncpg, before sending) refuses the row's data: retrying cannot help.
# Anything else (connection lost, server gone, table missing) is an outage: retry it all.
BAD_DATA = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


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


class _Row(NamedTuple):
    kind: str                  # call | operator
    record: Call | Operator


async def _execute(conn: asyncpg.Connection, rows: list[_Row]) -> None:
    calls = [_call_args(r.record) for r in rows if isinstance(r.record, Call)]
    operators = [_operator_args(r.record) for r in rows if isinstance(r.record, Operator)]
    if calls:
        await conn.executemany(UPSERT_CALL, calls)
    if operators:
        await conn.executemany(UPDATE_OPERATOR, operators)


class PostgresRecordSink(WriteBehind):
    """Implements ``engine.ports.RecordSink``. ``run()`` is the flusher; ``flush()`` drains now."""

    retry_on = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
    what = "records"

    def __init__(self, pool: asyncpg.Pool, *, batch_size: int = 500,
                 interval: float = 0.05, max_backoff: float = 10.0) -> None:
        super().__init__(interval=interval, max_backoff=max_backoff, log=log)
        self._pool = pool
        self._batch_size = batch_size
        self._live_call_ids: frozenset[str] | None = None  # a reconciliation to run

    async def write(self, call: Call) -> None:
        self._note_call(call.id, call)  # a newer state of the same call replaces the queued one

    async def write_operator(self, operator: Operator) -> None:
        self._note_operator(operator)

    def reconcile(self, live_call_ids: frozenset[str]) -> None:
        """After a resync: close open rows of calls not in ``live_call_ids`` (at the next
        flush, before any record queued after this call is written)."""
        self._live_call_ids = live_call_ids
        self._wake.set()

    @property
    def pending(self) -> int:
        return super().pending + (self._live_call_ids is not None)

    async def flush(self) -> None:
        """Write everything queued; on an outage the records stay queued (newer ones win)."""
        async with self._lock:
            while self._calls or self._operators or self._live_call_ids is not None:
                if self._live_call_ids is not None:
                    await self._reconcile(self._live_call_ids)
                    continue
                calls = dict(list(self._calls.items())[: self._batch_size])
                operators = dict(list(self._operators.items())[: self._batch_size])
                for key in calls:
                    del self._calls[key]
                for key in operators:
                    del self._operators[key]
                rows = [_Row("call", c) for c in calls.values() if c is not None]
                rows += [_Row("operator", o) for o in operators.values()]
                try:
                    async with self._pool.acquire() as conn:
                        await self._write(conn, rows)
                except BaseException:
                    # put back what failed unless a newer version arrived meanwhile
                    for key, call in calls.items():
                        self._calls.setdefault(key, call)
                    for key, op in operators.items():
                        self._operators.setdefault(key, op)
                    raise
            self._wake.clear()

    async def _write(self, conn: asyncpg.Connection, rows: list[_Row]) -> None:
        """Write ``rows`` in one transaction; if PostgreSQL refuses some row's data, bisect:
        each half is written on its own, and a row refused alone is parked."""
        try:
            async with conn.transaction():
                await _execute(conn, rows)
        except BAD_DATA as exc:
            if len(rows) == 1:
                await self._park(conn, rows[0], exc)
                return
            half = len(rows) // 2
            await self._write(conn, rows[:half])
            await self._write(conn, rows[half:])
            return
        for row in rows:
            self.stats[f"{row.kind}s_written"] += 1

    async def _park(self, conn: asyncpg.Connection, row: _Row, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        await park(conn, row.kind, row.record.id, dumps(row.record).decode(), error)
        self.stats["parked"] += 1
        log.error("PostgreSQL refused %s %s (%s); parked in parked_records, the others written",
                  row.kind, row.record.id, error)

    async def _reconcile(self, live: frozenset[str]) -> None:
        # Queued calls are written right after this: their own state wins over a guess.
        async with self._pool.acquire() as conn:
            closed = await close_calls_gone_from_pbx(conn, live | set(self._calls))
        if self._live_call_ids is live:  # not replaced by a newer resync meanwhile
            self._live_call_ids = None
        self.stats["reconciled"] += len(closed)
        if closed:
            log.info("reconciliation closed %d call(s) no longer on the PBX", len(closed))
