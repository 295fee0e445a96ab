-- The seed's models (Smart Call Center API): users, groups, operators, queues, calls, settings.
-- gen_random_uuid() is built in since PostgreSQL 13.

CREATE TABLE groups (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL UNIQUE,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username      text NOT NULL UNIQUE CHECK (char_length(username) BETWEEN 3 AND 50),
    email         text NOT NULL,
    name          text NOT NULL DEFAULT '',
    role          text NOT NULL CHECK (role IN ('admin', 'manager', 'supervisor', 'operator')),
    group_id      uuid REFERENCES groups (id) ON DELETE SET NULL,
    password_hash text NOT NULL,
    is_active     boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE operators (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id              uuid NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    extension            text NOT NULL UNIQUE CHECK (extension ~ '^[0-9]{3,5}$'),
    group_id             uuid REFERENCES groups (id) ON DELETE SET NULL,
    status               text NOT NULL DEFAULT 'offline'
                         CHECK (status IN ('online', 'busy', 'offline')),
    status_detail        text,
    manual_status        text CHECK (manual_status IN ('online', 'busy', 'offline')),
    skills               text[] NOT NULL DEFAULT '{}',
    max_concurrent_calls integer NOT NULL DEFAULT 1 CHECK (max_concurrent_calls > 0),
    current_calls        integer NOT NULL DEFAULT 0,
    last_activity        timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE queues (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                    text NOT NULL UNIQUE,
    description             text NOT NULL DEFAULT '',
    asterisk_name           text NOT NULL UNIQUE,
    max_wait_time           integer NOT NULL DEFAULT 300,
    priority                integer NOT NULL DEFAULT 0,
    strategy                text NOT NULL DEFAULT 'ringall',
    members                 text[] NOT NULL DEFAULT '{}',
    service_level_threshold integer NOT NULL DEFAULT 20,  -- seconds; service level per queue
    is_active               boolean NOT NULL DEFAULT true,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE calls (
    id                 uuid PRIMARY KEY,          -- uuid5 of the first customer channel id
    channel_id         text NOT NULL,             -- ARI channel id = AMI Uniqueid
    source             text NOT NULL DEFAULT 'ari' CHECK (source IN ('ari', 'ami', 'mango', 'api')),
    direction          text NOT NULL DEFAULT 'inbound'
                       CHECK (direction IN ('inbound', 'outbound', 'internal')),
    caller_number      text NOT NULL DEFAULT '',
    caller_name        text,
    called_number      text,
    operator_id        uuid REFERENCES operators (id) ON DELETE SET NULL,
    queue_id           uuid REFERENCES queues (id) ON DELETE SET NULL,
    queue_name         text,
    status             text NOT NULL DEFAULT 'incoming'
                       CHECK (status IN ('incoming', 'answered', 'completed', 'missed')),
    missed_reason      text,
    hangup_cause       integer,
    start_time         timestamptz NOT NULL,
    answer_time        timestamptz,
    end_time           timestamptz,
    duration           integer,                   -- talk seconds: end - answer
    wait_seconds       integer,                   -- answer - start, or end - start if missed
    linked_channel_ids text[] NOT NULL DEFAULT '{}',
    recording_url      text,
    notes              text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX calls_start_time_idx ON calls (start_time DESC);
CREATE INDEX calls_operator_start_idx ON calls (operator_id, start_time DESC);
CREATE INDEX calls_status_start_idx ON calls (status, start_time DESC);
CREATE INDEX calls_channel_idx ON calls (channel_id);

CREATE TABLE call_transfers (
    call_id          uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    from_operator_id uuid REFERENCES operators (id) ON DELETE SET NULL,
    to_operator_id   uuid REFERENCES operators (id) ON DELETE SET NULL,
    transferred_at   timestamptz NOT NULL,
    PRIMARY KEY (call_id, transferred_at)
);

-- One row: the seed's SystemSettings. The Asterisk password inside is stored encrypted.
CREATE TABLE system_settings (
    id         integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    data       jsonb NOT NULL DEFAULT '{}',
    updated_by uuid REFERENCES users (id) ON DELETE SET NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO system_settings (id) VALUES (1);
