-- A call belongs to the groups of every operator it rang or reached (issue 8 item 4), and a
-- missed call counts against every operator it rang (issue 8 item 9). The rollups follow.
--
-- calls.group_ids: the groups of the answering operator and of every operator in
--   offered_operator_ids, taken when the row is written (BEFORE trigger) and again only when
--   operator_id or offered_operator_ids change — so history does not move when an operator
--   later changes group. Sorted and distinct. Scoping reads it (storage/calls.py
--   call_visible_to_group: ``group_ids @> ARRAY[g]``, GIN index).
--
-- Overall figures keep reading call_stats_hourly / call_stats_daily (one contribution per call,
-- keyed by the answering operator's group_id, which only the overall sums ignore). Figures for
-- a group read the tables below, where a call contributes once to EACH of its groups:
--   call_stats_group_hourly   (UTC hour, group, queue, direction)
--   call_stats_operator_daily (UTC day, scope, operator): per-operator figures; scope NULL =
--       over every call, scope g = over the calls of group g. The answering operator gets the
--       call's counters; each operator in rung_operator_ids of a MISSED call gets missed_rung 1
--       (calls_missed, efficiency). A completed call that rang others first is not a miss.
-- Same exactness as migration 002: the same final row written again changes nothing, a
-- corrected final row moves its contribution (group_ids and rung_operator_ids included), a
-- deleted call is uncounted.

ALTER TABLE calls ADD COLUMN group_ids uuid[] NOT NULL DEFAULT '{}';
CREATE INDEX calls_group_ids_idx ON calls USING gin (group_ids);

CREATE TABLE call_stats_group_hourly (
    bucket       timestamptz NOT NULL,
    group_id     uuid NOT NULL,
    queue_id     uuid,
    direction    text NOT NULL,
    offered      integer NOT NULL DEFAULT 0,
    answered     integer NOT NULL DEFAULT 0,
    missed       integer NOT NULL DEFAULT 0,
    answered_sl  integer NOT NULL DEFAULT 0,
    wait_sum     bigint  NOT NULL DEFAULT 0,
    wait_n       integer NOT NULL DEFAULT 0,
    talk_sum     bigint  NOT NULL DEFAULT 0,
    max_wait     integer NOT NULL DEFAULT 0,
    CONSTRAINT call_stats_group_hourly_key UNIQUE NULLS NOT DISTINCT
        (group_id, bucket, queue_id, direction)
);
CREATE INDEX call_stats_group_hourly_queue_idx ON call_stats_group_hourly (queue_id, bucket);

CREATE TABLE call_stats_operator_daily (
    bucket       timestamptz NOT NULL,
    scope        uuid,                          -- NULL: every call; else the calls of a group
    operator_id  uuid NOT NULL,
    offered      integer NOT NULL DEFAULT 0,    -- final calls the operator answered or placed
    answered     integer NOT NULL DEFAULT 0,
    missed       integer NOT NULL DEFAULT 0,    -- placed by the operator, never answered
    answered_sl  integer NOT NULL DEFAULT 0,
    wait_sum     bigint  NOT NULL DEFAULT 0,
    wait_n       integer NOT NULL DEFAULT 0,
    talk_sum     bigint  NOT NULL DEFAULT 0,
    max_wait     integer NOT NULL DEFAULT 0,
    missed_rung  integer NOT NULL DEFAULT 0,    -- missed calls that rang the operator
    CONSTRAINT call_stats_operator_daily_key UNIQUE NULLS NOT DISTINCT
        (operator_id, scope, bucket)
);
CREATE INDEX call_stats_operator_daily_scope_idx ON call_stats_operator_daily (scope, bucket);

CREATE FUNCTION call_group_ids(operator_id uuid, offered uuid[]) RETURNS uuid[]
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(array_agg(DISTINCT o.group_id ORDER BY o.group_id), '{}')
      FROM operators o
     WHERE o.group_id IS NOT NULL AND (o.id = operator_id OR o.id = ANY(offered));
$$;

CREATE OR REPLACE FUNCTION calls_stats_capture() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.operator_id IS DISTINCT FROM OLD.operator_id THEN
        NEW.group_id := (SELECT group_id FROM operators WHERE id = NEW.operator_id);
    END IF;
    IF TG_OP = 'INSERT' OR NEW.operator_id IS DISTINCT FROM OLD.operator_id
       OR NEW.offered_operator_ids IS DISTINCT FROM OLD.offered_operator_ids THEN
        NEW.group_ids := call_group_ids(NEW.operator_id, NEW.offered_operator_ids);
    END IF;
    IF NEW.status IN ('completed', 'missed') AND (TG_OP = 'INSERT'
            OR NEW.sl_threshold IS NULL OR NEW.queue_id IS DISTINCT FROM OLD.queue_id) THEN
        NEW.sl_threshold := COALESCE(
            (SELECT service_level_threshold FROM queues WHERE id = NEW.queue_id), 20);
    END IF;
    RETURN NEW;
END
$$;

-- One call's contribution (times sign) to the per-group and per-operator tables.
CREATE FUNCTION call_stats_apply_groups(c calls, sign integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    is_answered integer := CASE WHEN c.status = 'completed' THEN 1 ELSE 0 END;
    is_missed   integer := CASE WHEN c.status = 'missed' THEN 1 ELSE 0 END;
    in_sl       integer := CASE WHEN c.status = 'completed' AND c.wait_seconds IS NOT NULL
                                 AND c.wait_seconds <= COALESCE(c.sl_threshold, 20)
                                THEN 1 ELSE 0 END;
    w           bigint  := COALESCE(c.wait_seconds, 0);
    wn          integer := CASE WHEN c.wait_seconds IS NULL THEN 0 ELSE 1 END;
    t           bigint  := CASE WHEN c.status = 'completed' THEN COALESCE(c.duration, 0)
                                ELSE 0 END;
    mw          integer := CASE WHEN sign > 0 THEN COALESCE(c.wait_seconds, 0) ELSE 0 END;
    day         timestamptz := date_trunc('day', c.start_time, 'UTC');
BEGIN
    IF c.group_ids = '{}' AND c.operator_id IS NULL AND c.rung_operator_ids = '{}' THEN
        RETURN;  -- nothing here to count (a call that reached no known operator)
    END IF;
    INSERT INTO call_stats_group_hourly AS s (bucket, group_id, queue_id, direction, offered,
            answered, missed, answered_sl, wait_sum, wait_n, talk_sum, max_wait)
    SELECT date_trunc('hour', c.start_time, 'UTC'), g, c.queue_id, c.direction, sign,
           sign * is_answered, sign * is_missed, sign * in_sl, sign * w, sign * wn, sign * t, mw
      FROM (SELECT DISTINCT unnest(c.group_ids) AS g) gs
    ON CONFLICT ON CONSTRAINT call_stats_group_hourly_key DO UPDATE SET
        offered = s.offered + EXCLUDED.offered, answered = s.answered + EXCLUDED.answered,
        missed = s.missed + EXCLUDED.missed, answered_sl = s.answered_sl + EXCLUDED.answered_sl,
        wait_sum = s.wait_sum + EXCLUDED.wait_sum, wait_n = s.wait_n + EXCLUDED.wait_n,
        talk_sum = s.talk_sum + EXCLUDED.talk_sum,
        max_wait = GREATEST(s.max_wait, EXCLUDED.max_wait);
    IF c.operator_id IS NOT NULL THEN
        INSERT INTO call_stats_operator_daily AS s (bucket, scope, operator_id, offered,
                answered, missed, answered_sl, wait_sum, wait_n, talk_sum, max_wait)
        SELECT day, g, c.operator_id, sign, sign * is_answered, sign * is_missed, sign * in_sl,
               sign * w, sign * wn, sign * t, mw
          FROM (SELECT NULL::uuid AS g UNION SELECT unnest(c.group_ids)) gs
        ON CONFLICT ON CONSTRAINT call_stats_operator_daily_key DO UPDATE SET
            offered = s.offered + EXCLUDED.offered, answered = s.answered + EXCLUDED.answered,
            missed = s.missed + EXCLUDED.missed,
            answered_sl = s.answered_sl + EXCLUDED.answered_sl,
            wait_sum = s.wait_sum + EXCLUDED.wait_sum, wait_n = s.wait_n + EXCLUDED.wait_n,
            talk_sum = s.talk_sum + EXCLUDED.talk_sum,
            max_wait = GREATEST(s.max_wait, EXCLUDED.max_wait);
    END IF;
    IF is_missed = 1 THEN
        INSERT INTO call_stats_operator_daily AS s (bucket, scope, operator_id, missed_rung)
        SELECT day, g, r, sign
          FROM (SELECT DISTINCT unnest(c.rung_operator_ids) AS r) rs,
               (SELECT NULL::uuid AS g UNION SELECT unnest(c.group_ids)) gs
        ON CONFLICT ON CONSTRAINT call_stats_operator_daily_key DO UPDATE SET
            missed_rung = s.missed_rung + EXCLUDED.missed_rung;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION calls_stats_count() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_final boolean := TG_OP = 'UPDATE' AND OLD.status IN ('completed', 'missed');
    new_final boolean := NEW.status IN ('completed', 'missed');
BEGIN
    IF old_final AND new_final
       AND (OLD.status, OLD.start_time, OLD.queue_id, OLD.operator_id, OLD.group_id,
            OLD.direction, OLD.wait_seconds, OLD.duration, OLD.sl_threshold, OLD.group_ids,
            OLD.rung_operator_ids)
           IS NOT DISTINCT FROM
           (NEW.status, NEW.start_time, NEW.queue_id, NEW.operator_id, NEW.group_id,
            NEW.direction, NEW.wait_seconds, NEW.duration, NEW.sl_threshold, NEW.group_ids,
            NEW.rung_operator_ids) THEN
        RETURN NULL;  -- the same final row written again: already counted
    END IF;
    IF old_final THEN
        PERFORM call_stats_apply(OLD, -1);
        PERFORM call_stats_apply_groups(OLD, -1);
    END IF;
    IF new_final THEN
        PERFORM call_stats_apply(NEW, 1);
        PERFORM call_stats_apply_groups(NEW, 1);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION calls_stats_uncount() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status IN ('completed', 'missed') THEN
        PERFORM call_stats_apply(OLD, -1);
        PERFORM call_stats_apply_groups(OLD, -1);
    END IF;
    RETURN NULL;
END
$$;

-- The old rebuild (migration 002) plus the tables above. group_ids is filled only where it is
-- empty (rows loaded with the triggers off), so a rebuild does not move history either.
ALTER FUNCTION call_stats_rebuild() RENAME TO call_stats_rebuild_overall;

CREATE FUNCTION call_stats_rebuild() RETURNS void
LANGUAGE sql AS $$
    SELECT call_stats_rebuild_overall();
    UPDATE calls c SET group_ids = call_group_ids(c.operator_id, c.offered_operator_ids)
     WHERE c.group_ids = '{}' AND (c.operator_id IS NOT NULL OR c.offered_operator_ids <> '{}')
       AND call_group_ids(c.operator_id, c.offered_operator_ids) <> '{}';
    TRUNCATE call_stats_group_hourly, call_stats_operator_daily;
    INSERT INTO call_stats_group_hourly (bucket, group_id, queue_id, direction, offered,
            answered, missed, answered_sl, wait_sum, wait_n, talk_sum, max_wait)
    SELECT date_trunc('hour', start_time, 'UTC'), g, queue_id, direction, count(*),
           count(*) FILTER (WHERE status = 'completed'),
           count(*) FILTER (WHERE status = 'missed'),
           count(*) FILTER (WHERE status = 'completed'
                            AND wait_seconds <= COALESCE(sl_threshold, 20)),
           COALESCE(sum(wait_seconds), 0), count(wait_seconds),
           COALESCE(sum(duration) FILTER (WHERE status = 'completed'), 0),
           COALESCE(max(wait_seconds), 0)
      FROM calls, LATERAL (SELECT DISTINCT unnest(group_ids) AS g) gs
     WHERE status IN ('completed', 'missed')
     GROUP BY 1, 2, 3, 4;
    INSERT INTO call_stats_operator_daily (bucket, scope, operator_id, offered, answered,
            missed, answered_sl, wait_sum, wait_n, talk_sum, max_wait, missed_rung)
    SELECT bucket, scope, operator_id, sum(offered), sum(answered), sum(missed),
           sum(answered_sl), sum(wait_sum), sum(wait_n), sum(talk_sum), max(max_wait),
           sum(missed_rung)
      FROM (
        SELECT date_trunc('day', start_time, 'UTC') AS bucket, g AS scope, operator_id,
               count(*) AS offered, count(*) FILTER (WHERE status = 'completed') AS answered,
               count(*) FILTER (WHERE status = 'missed') AS missed,
               count(*) FILTER (WHERE status = 'completed'
                                AND wait_seconds <= COALESCE(sl_threshold, 20)) AS answered_sl,
               COALESCE(sum(wait_seconds), 0) AS wait_sum, count(wait_seconds) AS wait_n,
               COALESCE(sum(duration) FILTER (WHERE status = 'completed'), 0) AS talk_sum,
               COALESCE(max(wait_seconds), 0) AS max_wait, 0 AS missed_rung
          FROM calls, LATERAL (SELECT NULL::uuid AS g UNION SELECT unnest(group_ids)) gs
         WHERE status IN ('completed', 'missed') AND operator_id IS NOT NULL
         GROUP BY 1, 2, 3
        UNION ALL
        SELECT date_trunc('day', start_time, 'UTC'), g, r, 0, 0, 0, 0, 0, 0, 0, 0, count(*)
          FROM calls, LATERAL (SELECT DISTINCT unnest(rung_operator_ids) AS r) rs,
               LATERAL (SELECT NULL::uuid AS g UNION SELECT unnest(group_ids)) gs
         WHERE status = 'missed'
         GROUP BY 1, 2, 3
      ) parts
     GROUP BY 1, 2, 3;
$$;

SELECT call_stats_rebuild();
