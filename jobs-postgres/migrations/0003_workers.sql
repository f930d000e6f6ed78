-- The heartbeats of worker processes, for operators: which process serves which queues,
-- and when it was last heard from. Nothing in the pipeline reads it.
CREATE TABLE {schema}.job_workers (
    id          text        PRIMARY KEY,
    host        text        NOT NULL,
    pid         bigint      NOT NULL,
    queues      jsonb       NOT NULL,
    started_at  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL
);
