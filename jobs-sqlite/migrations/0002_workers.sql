-- The heartbeats of worker processes, for operators: which process serves which queues,
-- and when it was last heard from. Nothing in the pipeline reads it.
CREATE TABLE job_workers (
    id          TEXT    NOT NULL PRIMARY KEY,
    host        TEXT    NOT NULL,
    pid         INTEGER NOT NULL,
    queues      TEXT    NOT NULL,  -- JSON array of {queue, concurrency}
    started_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL
) WITHOUT ROWID;
