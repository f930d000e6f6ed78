-- Run policies: when a job may start, its priority, its attempts and time limit, and the
-- errors of its failed attempts.

ALTER TABLE {schema}.jobs
    ADD COLUMN run_at       timestamptz,
    ADD COLUMN priority     smallint    NOT NULL DEFAULT 0,
    ADD COLUMN max_attempts integer     NOT NULL DEFAULT 1 CHECK (max_attempts >= 1),
    ADD COLUMN timeout_ms   bigint      CHECK (timeout_ms > 0),
    ADD COLUMN errors       jsonb       NOT NULL DEFAULT '[]';
UPDATE {schema}.jobs SET run_at = created_at;
ALTER TABLE {schema}.jobs ALTER COLUMN run_at SET NOT NULL;

-- The claim: due jobs, higher priority first, then by the time they became due.
DROP INDEX {schema}.jobs_queued;
CREATE INDEX jobs_due ON {schema}.jobs (priority DESC, run_at, id) WHERE status = 'Queued';
