-- Trust (issue 8): rows PostgreSQL refused are parked, not retried forever; calls closed by
-- reconciliation (not final here, gone from the PBX after a crash or an outage) say so.

-- One row per refused record (the latest attempt): the writer isolates the row that fails and
-- writes all the others. ``payload`` is the record as JSON text (text, not jsonb: jsonb refuses
-- the very \u0000 that is a common reason to be here).
CREATE TABLE parked_records (
    id        bigserial PRIMARY KEY,
    kind      text NOT NULL CHECK (kind IN ('call', 'operator')),
    record_id text NOT NULL,
    payload   text NOT NULL,
    error     text NOT NULL,
    attempts  integer NOT NULL DEFAULT 1,
    first_parked_at timestamptz NOT NULL DEFAULT now(),
    parked_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, record_id)
);
CREATE INDEX parked_records_parked_at_idx ON parked_records (parked_at DESC);

ALTER TABLE calls ADD COLUMN reconciled boolean NOT NULL DEFAULT false;
-- Reconciliation looks for the calls that are not final.
CREATE INDEX calls_open_idx ON calls (id) WHERE status IN ('incoming', 'answered');
