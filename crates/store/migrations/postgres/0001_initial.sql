-- Sightline schema, PostgreSQL flavour. Kept column-for-column identical to
-- migrations/sqlite/0001_initial.sql so one set of queries serves both backends.
-- Timestamps are BIGINT milliseconds since the Unix epoch (UTC); JSON is JSONB.

CREATE TABLE runs (
    id                 TEXT PRIMARY KEY NOT NULL,
    source_uri         TEXT NOT NULL,
    config_name        TEXT NOT NULL,
    config_version     BIGINT NOT NULL,
    models             JSONB NOT NULL DEFAULT '[]',
    output             JSONB NOT NULL DEFAULT '{}',
    desired_state      TEXT NOT NULL DEFAULT 'run',
    state              TEXT NOT NULL,
    attempts           BIGINT NOT NULL DEFAULT 0,
    last_error_code    TEXT,
    last_error_message TEXT,
    owner              TEXT,
    lease_expires_at   BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    started_at         BIGINT,
    ended_at           BIGINT,
    stats              JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX runs_pending ON runs (created_at, id) WHERE state = 'pending';
CREATE INDEX runs_owner ON runs (owner) WHERE owner IS NOT NULL;
CREATE INDEX runs_lease ON runs (lease_expires_at) WHERE lease_expires_at IS NOT NULL;
CREATE INDEX runs_state ON runs (state, id);

CREATE TABLE run_transitions (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    from_state TEXT,
    to_state   TEXT NOT NULL,
    reason     TEXT NOT NULL,
    message    TEXT,
    worker     TEXT,
    at         BIGINT NOT NULL
);
CREATE INDEX run_transitions_run ON run_transitions (run_id, id);

CREATE TABLE events (
    id         UUID PRIMARY KEY NOT NULL,
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    type       TEXT NOT NULL,
    rule       TEXT NOT NULL,
    class      TEXT,
    track_id   BIGINT,
    zone       TEXT,
    line       TEXT,
    direction  TEXT,
    pts_ns     BIGINT NOT NULL,
    wall_ms    BIGINT NOT NULL,
    confidence DOUBLE PRECISION,
    bbox       JSONB,
    payload    JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX events_run_time ON events (run_id, wall_ms);
CREATE INDEX events_type ON events (type, wall_ms);
CREATE INDEX events_class ON events (class, wall_ms);
CREATE INDEX events_time ON events (wall_ms);

CREATE TABLE configs (
    name           TEXT PRIMARY KEY NOT NULL,
    latest_version BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE config_versions (
    name       TEXT NOT NULL REFERENCES configs (name) ON DELETE CASCADE,
    version    BIGINT NOT NULL,
    body       JSONB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE models (
    name       TEXT PRIMARY KEY NOT NULL,
    sha256     TEXT NOT NULL,
    manifest   JSONB NOT NULL,
    path       TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE workers (
    id           TEXT PRIMARY KEY NOT NULL,
    host         TEXT NOT NULL,
    capacity     BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

CREATE TABLE outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        UUID NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    sink            TEXT NOT NULL,
    payload         JSONB NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    UNIQUE (event_id, sink)
);
CREATE INDEX outbox_due ON outbox (sink, next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX outbox_dead ON outbox (sink, id) WHERE state = 'dead';
CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE state = 'delivered';

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

-- Immediate pickup: engines LISTEN on `sightline_runs`. Payloads are `pending:<id>` (a run
-- became claimable), `stop:<id>` (a stop was requested) and `config:<id>` (a new config
-- version was applied). Notifications are sent at commit, so a listener never sees a row
-- that is not yet visible.
CREATE FUNCTION sightline_runs_notify() RETURNS trigger AS $$
BEGIN
    IF NEW.state = 'pending' AND (TG_OP = 'INSERT' OR OLD.state IS DISTINCT FROM 'pending') THEN
        PERFORM pg_notify('sightline_runs', 'pending:' || NEW.id);
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.desired_state = 'stop' AND OLD.desired_state IS DISTINCT FROM 'stop' THEN
        PERFORM pg_notify('sightline_runs', 'stop:' || NEW.id);
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.config_version IS DISTINCT FROM OLD.config_version THEN
        PERFORM pg_notify('sightline_runs', 'config:' || NEW.id);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER runs_notify
    AFTER INSERT OR UPDATE OF state, desired_state, config_version ON runs
    FOR EACH ROW EXECUTE FUNCTION sightline_runs_notify();
