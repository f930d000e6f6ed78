-- Bounds for large files: listings of rare statuses, a capped error history.

-- Listings of the statuses that are rare in a large file, newest first: without these, a
-- listing of failed jobs among millions of succeeded ones walks the jobs newest first
-- until it has found a page. Jobs that succeed never enter them.
CREATE INDEX jobs_failed ON jobs (id DESC) WHERE status = 'Failed';
CREATE INDEX jobs_canceled ON jobs (id DESC) WHERE status = 'Canceled';

-- How many attempts failed: `errors` keeps the first error and the latest ones only.
ALTER TABLE jobs ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET failures = json_array_length(errors) WHERE errors <> '[]';
-- Longer histories are cut to what a job keeps (`Job::KEPT_ERRORS`): the first error and
-- the latest 19.
UPDATE jobs SET errors = (
    SELECT json_group_array(json(value)) FROM (
        SELECT value FROM json_each(jobs.errors)
        WHERE key = 0 OR key >= json_array_length(jobs.errors) - 19
        ORDER BY key))
WHERE json_array_length(errors) > 20;
