-- Run policies: when a job may start, its priority, its attempts and time limit, the
-- errors of its failed attempts, its unique key, its named queue; the index retention prunes by; and the
-- ticks of periodic schedules.

ALTER TABLE {schema}.jobs
    ADD COLUMN run_at       timestamptz,
    ADD COLUMN priority     smallint    NOT NULL DEFAULT 0,
    ADD COLUMN max_attempts integer     NOT NULL DEFAULT 1 CHECK (max_attempts >= 1),
    ADD COLUMN timeout_ms   bigint      CHECK (timeout_ms > 0),
    ADD COLUMN errors       jsonb       NOT NULL DEFAULT '[]',
    ADD COLUMN unique_key   text,
    ADD COLUMN queue        text        NOT NULL DEFAULT 'default';
UPDATE {schema}.jobs SET run_at = created_at;
ALTER TABLE {schema}.jobs ALTER COLUMN run_at SET NOT NULL;

-- The claim: a queue's due jobs, higher priority first, then by the time they became due.
DROP INDEX {schema}.jobs_queued;
CREATE INDEX jobs_due ON {schema}.jobs (queue, priority DESC, run_at, id) WHERE status = 'Queued';

-- At most one active job per type and unique key: the index refuses the second insert
-- atomically.
CREATE UNIQUE INDEX jobs_unique_active ON {schema}.jobs (job_type, unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('Queued', 'Running');

-- Retention: finished jobs, oldest first.
CREATE INDEX jobs_finished ON {schema}.jobs (finished_at)
    WHERE status IN ('Succeeded', 'Failed', 'Canceled');

-- Periodic jobs: the latest tick of each schedule that got its job. A process stores a
-- tick's job only if it moves this forward, in the same statement.
CREATE TABLE {schema}.job_schedules (
    name       text        PRIMARY KEY,
    last_tick  timestamptz NOT NULL
);
