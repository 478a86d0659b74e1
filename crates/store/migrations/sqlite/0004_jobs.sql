-- Batch jobs (issue 14). A job is a run of a file played once at full speed; this row holds
-- what only a job has: the name the file was uploaded under, where the server stored it and
-- its size. State, lease, progress (the run's stats) and errors stay on the run, so jobs are
-- claimed, renewed and taken over exactly like runs. Deleting the run deletes the job row.
-- Kept column-for-column identical to the PostgreSQL file.
CREATE TABLE jobs (
    id          TEXT PRIMARY KEY NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    file_name   TEXT NOT NULL,
    upload_path TEXT,
    size_bytes  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX jobs_created ON jobs (created_at, id);
