-- Queues an operator paused: claims take no job of them until they are resumed. Kept
-- apart from the jobs so that a claim reads one small row, and a queue can be paused
-- before it has jobs.
CREATE TABLE {schema}.job_paused_queues (
    name    text        PRIMARY KEY,
    since   timestamptz NOT NULL DEFAULT now()
);
