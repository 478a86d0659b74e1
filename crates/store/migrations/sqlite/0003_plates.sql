-- Plate index (issue 13): one row per (plate event, candidate text), written in the same
-- transaction as the event and only for events newly stored. Kept column-for-column identical
-- to the PostgreSQL file. `rank` 0 is the voted text, 1.. the other candidates; `key` is the
-- folded search key (O/Q/D→0, I/L→1, S→5, B→8, Z→2, G→6). Deleting an event (retention, a
-- deleted run) deletes its rows through the foreign key.
CREATE TABLE plates (
    id         INTEGER PRIMARY KEY,
    event_id   BLOB NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    run_id     TEXT NOT NULL,
    wall_ms    INTEGER NOT NULL,
    text       TEXT NOT NULL,
    key        TEXT NOT NULL,
    rank       INTEGER NOT NULL,
    confidence REAL,
    kind       TEXT NOT NULL,
    label      TEXT
);
CREATE INDEX plates_event ON plates (event_id, rank);
CREATE INDEX plates_text ON plates (text);
CREATE INDEX plates_key ON plates (key);
CREATE INDEX plates_run_time ON plates (run_id, wall_ms);
CREATE INDEX plates_time ON plates (wall_ms);

-- Infix search (`*AB12*`, the pieces of a fuzzy query): an FTS5 index with the trigram
-- tokenizer (SQLite 3.34+; the bundled libsqlite3-sys 0.37 is 3.51 and builds FTS5), which
-- answers `LIKE '%AB12%'` on its columns from the index. External content: the text lives
-- once, in `plates`; the triggers keep the index in step, including deletes by the cascade.
CREATE VIRTUAL TABLE plates_fts USING fts5 (
    text, key, content = 'plates', content_rowid = 'id', tokenize = 'trigram'
);
CREATE TRIGGER plates_fts_insert AFTER INSERT ON plates BEGIN
    INSERT INTO plates_fts (rowid, text, key) VALUES (new.id, new.text, new.key);
END;
CREATE TRIGGER plates_fts_delete AFTER DELETE ON plates BEGIN
    INSERT INTO plates_fts (plates_fts, rowid, text, key)
    VALUES ('delete', old.id, old.text, old.key);
END;
