-- Call statistics kept up to date as calls end (figures: api/figures.py, README "Figures").
--
-- A call counts once it is final (status completed | missed), in the UTC hour/day of its
-- start_time. A trigger on calls applies the change in the same transaction as the write:
-- on every INSERT/UPDATE it subtracts the old row's contribution (if the old row was final) and
-- adds the new one's (if final), and does nothing when no counted column changed — so writing a
-- call's final row twice counts it once, and a corrected final row moves its contribution.
--
-- calls.group_id: group of the answering operator, captured when operator_id is set.
-- calls.sl_threshold: the queue's service_level_threshold captured when the call became final,
-- so a later threshold change neither rewrites history nor breaks the subtraction.

ALTER TABLE calls ADD COLUMN group_id uuid;
ALTER TABLE calls ADD COLUMN sl_threshold integer;
CREATE INDEX calls_queue_start_idx ON calls (queue_id, start_time DESC);

-- Hourly figures by (hour, queue, group, direction): totals, trends, service level, queue stats.
CREATE TABLE call_stats_hourly (
    bucket       timestamptz NOT NULL,          -- date_trunc('hour', start_time) in UTC
    queue_id     uuid,
    group_id     uuid,
    direction    text NOT NULL,
    offered      integer NOT NULL DEFAULT 0,    -- final calls (completed + missed)
    answered     integer NOT NULL DEFAULT 0,    -- completed
    missed       integer NOT NULL DEFAULT 0,
    answered_sl  integer NOT NULL DEFAULT 0,    -- completed with wait <= sl_threshold
    wait_sum     bigint  NOT NULL DEFAULT 0,    -- seconds, over calls with a wait
    wait_n       integer NOT NULL DEFAULT 0,
    talk_sum     bigint  NOT NULL DEFAULT 0,    -- seconds, over completed calls
    max_wait     integer NOT NULL DEFAULT 0,    -- never lowered by a correction
    CONSTRAINT call_stats_hourly_key UNIQUE NULLS NOT DISTINCT
        (bucket, queue_id, group_id, direction)
);
CREATE INDEX call_stats_hourly_group_idx ON call_stats_hourly (group_id, bucket);
CREATE INDEX call_stats_hourly_queue_idx ON call_stats_hourly (queue_id, bucket);

-- Daily figures by (day, queue, operator, group, direction): per-operator and per-queue
-- breakdowns over a period without summing every operator-hour.
CREATE TABLE call_stats_daily (
    bucket       timestamptz NOT NULL,          -- date_trunc('day', start_time) in UTC
    queue_id     uuid,
    operator_id  uuid,
    group_id     uuid,
    direction    text NOT NULL,
    offered      integer NOT NULL DEFAULT 0,
    answered     integer NOT NULL DEFAULT 0,
    missed       integer NOT NULL DEFAULT 0,
    answered_sl  integer NOT NULL DEFAULT 0,
    wait_sum     bigint  NOT NULL DEFAULT 0,
    wait_n       integer NOT NULL DEFAULT 0,
    talk_sum     bigint  NOT NULL DEFAULT 0,
    max_wait     integer NOT NULL DEFAULT 0,
    CONSTRAINT call_stats_daily_key UNIQUE NULLS NOT DISTINCT
        (bucket, queue_id, operator_id, group_id, direction)
);
CREATE INDEX call_stats_daily_operator_idx ON call_stats_daily (operator_id, bucket);
CREATE INDEX call_stats_daily_group_idx ON call_stats_daily (group_id, bucket);

CREATE FUNCTION call_stats_apply(c calls, sign integer) RETURNS void
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
BEGIN
    INSERT INTO call_stats_hourly AS s (bucket, queue_id, group_id, direction, offered,
            answered, missed, answered_sl, wait_sum, wait_n, talk_sum, max_wait)
    VALUES (date_trunc('hour', c.start_time, 'UTC'), c.queue_id, c.group_id, c.direction,
            sign, sign * is_answered, sign * is_missed, sign * in_sl, sign * w, sign * wn,
            sign * t, mw)
    ON CONFLICT ON CONSTRAINT call_stats_hourly_key DO UPDATE SET
        offered = s.offered + EXCLUDED.offered, answered = s.answered + EXCLUDED.answered,
        missed = s.missed + EXCLUDED.missed, answered_sl = s.answered_sl + EXCLUDED.answered_sl,
        wait_sum = s.wait_sum + EXCLUDED.wait_sum, wait_n = s.wait_n + EXCLUDED.wait_n,
        talk_sum = s.talk_sum + EXCLUDED.talk_sum,
        max_wait = GREATEST(s.max_wait, EXCLUDED.max_wait);
    INSERT INTO call_stats_daily AS s (bucket, queue_id, operator_id, group_id, direction,
            offered, answered, missed, answered_sl, wait_sum, wait_n, talk_sum, max_wait)
    VALUES (date_trunc('day', c.start_time, 'UTC'), c.queue_id, c.operator_id, c.group_id,
            c.direction, sign, sign * is_answered, sign * is_missed, sign * in_sl, sign * w,
            sign * wn, sign * t, mw)
    ON CONFLICT ON CONSTRAINT call_stats_daily_key DO UPDATE SET
        offered = s.offered + EXCLUDED.offered, answered = s.answered + EXCLUDED.answered,
        missed = s.missed + EXCLUDED.missed, answered_sl = s.answered_sl + EXCLUDED.answered_sl,
        wait_sum = s.wait_sum + EXCLUDED.wait_sum, wait_n = s.wait_n + EXCLUDED.wait_n,
        talk_sum = s.talk_sum + EXCLUDED.talk_sum,
        max_wait = GREATEST(s.max_wait, EXCLUDED.max_wait);
END
$$;

-- BEFORE: capture the answering operator's group and the queue's threshold.
CREATE FUNCTION calls_stats_capture() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.operator_id IS DISTINCT FROM OLD.operator_id THEN
        NEW.group_id := (SELECT group_id FROM operators WHERE id = NEW.operator_id);
    END IF;
    IF NEW.status IN ('completed', 'missed') AND (TG_OP = 'INSERT'
            OR NEW.sl_threshold IS NULL OR NEW.queue_id IS DISTINCT FROM OLD.queue_id) THEN
        NEW.sl_threshold := COALESCE(
            (SELECT service_level_threshold FROM queues WHERE id = NEW.queue_id), 20);
    END IF;
    RETURN NEW;
END
$$;

-- AFTER: move the contribution when a counted column changed.
CREATE FUNCTION calls_stats_count() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_final boolean := TG_OP = 'UPDATE' AND OLD.status IN ('completed', 'missed');
    new_final boolean := NEW.status IN ('completed', 'missed');
BEGIN
    IF old_final AND new_final
       AND (OLD.status, OLD.start_time, OLD.queue_id, OLD.operator_id, OLD.group_id,
            OLD.direction, OLD.wait_seconds, OLD.duration, OLD.sl_threshold)
           IS NOT DISTINCT FROM
           (NEW.status, NEW.start_time, NEW.queue_id, NEW.operator_id, NEW.group_id,
            NEW.direction, NEW.wait_seconds, NEW.duration, NEW.sl_threshold) THEN
        RETURN NULL;  -- the same final row written again: already counted
    END IF;
    IF old_final THEN
        PERFORM call_stats_apply(OLD, -1);
    END IF;
    IF new_final THEN
        PERFORM call_stats_apply(NEW, 1);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION calls_stats_uncount() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status IN ('completed', 'missed') THEN
        PERFORM call_stats_apply(OLD, -1);
    END IF;
    RETURN NULL;
END
$$;

-- Rebuild both tables from calls in one pass (this migration's backfill; bulk loads such as
-- `python -m bench.stats`, which load calls with the triggers disabled).
CREATE FUNCTION call_stats_rebuild() RETURNS void
LANGUAGE sql AS $$
    UPDATE calls c SET group_id = o.group_id FROM operators o
     WHERE o.id = c.operator_id AND c.group_id IS DISTINCT FROM o.group_id;
    UPDATE calls c SET sl_threshold = COALESCE(
            (SELECT service_level_threshold FROM queues q WHERE q.id = c.queue_id), 20)
     WHERE c.status IN ('completed', 'missed') AND c.sl_threshold IS NULL;
    TRUNCATE call_stats_hourly, call_stats_daily;
    INSERT INTO call_stats_hourly (bucket, queue_id, group_id, direction, offered, answered,
            missed, answered_sl, wait_sum, wait_n, talk_sum, max_wait)
    SELECT date_trunc('hour', start_time, 'UTC'), queue_id, group_id, direction, count(*),
           count(*) FILTER (WHERE status = 'completed'),
           count(*) FILTER (WHERE status = 'missed'),
           count(*) FILTER (WHERE status = 'completed'
                            AND wait_seconds <= COALESCE(sl_threshold, 20)),
           COALESCE(sum(wait_seconds), 0), count(wait_seconds),
           COALESCE(sum(duration) FILTER (WHERE status = 'completed'), 0),
           COALESCE(max(wait_seconds), 0)
      FROM calls WHERE status IN ('completed', 'missed')
     GROUP BY 1, 2, 3, 4;
    INSERT INTO call_stats_daily (bucket, queue_id, operator_id, group_id, direction, offered,
            answered, missed, answered_sl, wait_sum, wait_n, talk_sum, max_wait)
    SELECT date_trunc('day', start_time, 'UTC'), queue_id, operator_id, group_id, direction,
           count(*), count(*) FILTER (WHERE status = 'completed'),
           count(*) FILTER (WHERE status = 'missed'),
           count(*) FILTER (WHERE status = 'completed'
                            AND wait_seconds <= COALESCE(sl_threshold, 20)),
           COALESCE(sum(wait_seconds), 0), count(wait_seconds),
           COALESCE(sum(duration) FILTER (WHERE status = 'completed'), 0),
           COALESCE(max(wait_seconds), 0)
      FROM calls WHERE status IN ('completed', 'missed')
     GROUP BY 1, 2, 3, 4, 5;
$$;

CREATE TRIGGER calls_stats_capture BEFORE INSERT OR UPDATE ON calls
    FOR EACH ROW EXECUTE FUNCTION calls_stats_capture();
CREATE TRIGGER calls_stats_count AFTER INSERT OR UPDATE ON calls
    FOR EACH ROW EXECUTE FUNCTION calls_stats_count();
CREATE TRIGGER calls_stats_uncount AFTER DELETE ON calls
    FOR EACH ROW EXECUTE FUNCTION calls_stats_uncount();

SELECT call_stats_rebuild();
