-- Bounds for large tables: listings of rare statuses, counts that need no scan, a
-- capped error history.

-- Listings of the statuses that are rare in a large table, newest first: without these, a
-- listing of failed jobs among millions of succeeded ones reads the primary key backwards
-- until it has found a page. Jobs that succeed never enter them.
CREATE INDEX jobs_failed ON {schema}.jobs (id DESC) WHERE status = 'Failed';
CREATE INDEX jobs_canceled ON {schema}.jobs (id DESC) WHERE status = 'Canceled';

-- How often each (type, status) pair occurs, kept by ANALYZE (and autovacuum): what the
-- planner's estimate of a pair's rows goes by, the count `/metrics` reports for a pair
-- too large to count exactly on every read.
CREATE STATISTICS {schema}.jobs_type_status (mcv) ON job_type, status FROM {schema}.jobs;

-- How many attempts failed: `errors` keeps the first error and the latest ones only.
ALTER TABLE {schema}.jobs ADD COLUMN failures integer NOT NULL DEFAULT 0;
UPDATE {schema}.jobs SET failures = jsonb_array_length(errors) WHERE errors <> '[]';
-- Longer histories are cut to what a job keeps (`Job::KEPT_ERRORS`): the first error and
-- the latest 19.
UPDATE {schema}.jobs SET errors = jsonb_build_array(errors -> 0) || (
    SELECT jsonb_agg(e ORDER BY n)
    FROM jsonb_array_elements(errors) WITH ORDINALITY AS x(e, n)
    WHERE n > jsonb_array_length(errors) - 19)
WHERE jsonb_array_length(errors) > 20;
