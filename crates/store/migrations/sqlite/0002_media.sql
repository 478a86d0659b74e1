-- Media store index (issue 11). Kept column-for-column identical to the PostgreSQL file.
--
-- `volume` names the storage a row's object lives on (`file://HOST/PATH` or
-- `s3://BUCKET/PREFIX`): disk survival mode on one worker's local disk only deletes what is on
-- that disk. No foreign key to `runs`: the objects outlive a deleted run's rows until the
-- janitor removes them (it sweeps media whose run is gone).

CREATE TABLE media_objects (
    key        TEXT PRIMARY KEY NOT NULL,
    volume     TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    event_id   BLOB,
    kind       TEXT NOT NULL,
    bytes      INTEGER NOT NULL,
    width      INTEGER NOT NULL,
    height     INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX media_objects_age ON media_objects (volume, created_at);
CREATE INDEX media_objects_run ON media_objects (run_id, created_at);
CREATE INDEX media_objects_event ON media_objects (event_id);

-- One row per MP4 segment. `state` is `open` while the segment is written (it is the current
-- moment: never deleted) and `closed` once finalised. Times: wall-clock ms and the
-- recording's own timeline (ns from the start of the segment's recorder).
CREATE TABLE recordings (
    id            BLOB PRIMARY KEY NOT NULL,
    run_id        TEXT NOT NULL,
    volume        TEXT NOT NULL,
    key           TEXT NOT NULL UNIQUE,
    worker        TEXT NOT NULL,
    state         TEXT NOT NULL,
    start_wall_ms INTEGER NOT NULL,
    end_wall_ms   INTEGER,
    start_pts_ns  INTEGER NOT NULL,
    end_pts_ns    INTEGER,
    bytes         INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);
CREATE INDEX recordings_run_time ON recordings (run_id, start_wall_ms);
CREATE INDEX recordings_age ON recordings (volume, start_wall_ms);
