-- Sightline schema, SQLite flavour. Kept column-for-column identical to
-- migrations/postgres/0001_initial.sql so one set of queries serves both backends.
-- Timestamps are INTEGER milliseconds since the Unix epoch (UTC); JSON is TEXT.

CREATE TABLE runs (
    id                 TEXT PRIMARY KEY NOT NULL,
    source_uri         TEXT NOT NULL,
    config_name        TEXT NOT NULL,
    config_version     INTEGER NOT NULL,
    models             TEXT NOT NULL DEFAULT '[]',
    output             TEXT NOT NULL DEFAULT '{}',
    desired_state      TEXT NOT NULL DEFAULT 'run',
    state              TEXT NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    last_error_code    TEXT,
    last_error_message TEXT,
    owner              TEXT,
    lease_expires_at   INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    started_at         INTEGER,
    ended_at           INTEGER,
    stats              TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX runs_pending ON runs (created_at, id) WHERE state = 'pending';
CREATE INDEX runs_owner ON runs (owner) WHERE owner IS NOT NULL;
CREATE INDEX runs_lease ON runs (lease_expires_at) WHERE lease_expires_at IS NOT NULL;
CREATE INDEX runs_state ON runs (state, id);

CREATE TABLE run_transitions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    from_state TEXT,
    to_state   TEXT NOT NULL,
    reason     TEXT NOT NULL,
    message    TEXT,
    worker     TEXT,
    at         INTEGER NOT NULL
);
CREATE INDEX run_transitions_run ON run_transitions (run_id, id);

CREATE TABLE events (
    id         BLOB PRIMARY KEY NOT NULL,
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    type       TEXT NOT NULL,
    rule       TEXT NOT NULL,
    class      TEXT,
    track_id   INTEGER,
    zone       TEXT,
    line       TEXT,
    direction  TEXT,
    pts_ns     INTEGER NOT NULL,
    wall_ms    INTEGER NOT NULL,
    confidence REAL,
    bbox       TEXT,
    payload    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_run_time ON events (run_id, wall_ms);
CREATE INDEX events_type ON events (type, wall_ms);
CREATE INDEX events_class ON events (class, wall_ms);
CREATE INDEX events_time ON events (wall_ms);

CREATE TABLE configs (
    name           TEXT PRIMARY KEY NOT NULL,
    latest_version INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

CREATE TABLE config_versions (
    name       TEXT NOT NULL REFERENCES configs (name) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE models (
    name       TEXT PRIMARY KEY NOT NULL,
    sha256     TEXT NOT NULL,
    manifest   TEXT NOT NULL,
    path       TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE workers (
    id           TEXT PRIMARY KEY NOT NULL,
    host         TEXT NOT NULL,
    capacity     INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        BLOB NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    sink            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
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
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
