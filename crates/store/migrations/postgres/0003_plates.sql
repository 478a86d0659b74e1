-- Plate index (issue 13): one row per (plate event, candidate text), written in the same
-- transaction as the event and only for events newly stored. Kept column-for-column identical
-- to the SQLite file. `rank` 0 is the voted text, 1.. the other candidates; `key` is the
-- folded search key (O/Q/D→0, I/L→1, S→5, B→8, Z→2, G→6). Deleting an event (retention, a
-- deleted run) deletes its rows through the foreign key. Text columns use the "C" collation
-- so prefix ranges and ordering are byte-wise, as on SQLite.
CREATE TABLE plates (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id   UUID NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    run_id     TEXT NOT NULL,
    wall_ms    BIGINT NOT NULL,
    text       TEXT COLLATE "C" NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    rank       INTEGER NOT NULL,
    confidence DOUBLE PRECISION,
    kind       TEXT NOT NULL,
    label      TEXT
);
CREATE INDEX plates_event ON plates (event_id, rank);
CREATE INDEX plates_text ON plates (text);
CREATE INDEX plates_key ON plates (key);
CREATE INDEX plates_run_time ON plates (run_id, wall_ms);
CREATE INDEX plates_time ON plates (wall_ms);

-- Infix search (`*AB12*`, the pieces of a fuzzy query): trigram GIN indexes, which answer
-- `LIKE '%AB12%'`. pg_trgm ships with PostgreSQL (contrib) and is a trusted extension (the
-- database owner may create it). Where it is not installed the migration still succeeds
-- without these two indexes, and infix searches scan instead (with a warning here).
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'pg_trgm unavailable (%): plate infix searches will scan', SQLERRM;
END
$$;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX plates_text_trgm ON plates USING gin (text gin_trgm_ops);
        CREATE INDEX plates_key_trgm ON plates USING gin (key gin_trgm_ops);
    END IF;
END
$$;
