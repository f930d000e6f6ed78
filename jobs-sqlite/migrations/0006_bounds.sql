-- Bounds for large files: listings of rare statuses, a capped error history.

-- Listings of the statuses that are rare in a large file, newest first: without these, a
-- listing of failed jobs among millions of succeeded ones walks the jobs newest first
-- until it has found a page. Jobs that succeed never enter them.
CREATE INDEX jobs_failed ON jobs (id DESC) WHERE status = 'Failed';
CREATE INDEX jobs_canceled ON jobs (id DESC) WHERE status = 'Canceled';

-- How many attempts failed: `errors` keeps the first error and the latest ones only.
ALTER TABLE jobs ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET failures = json_array_length(errors) WHERE errors <> '[]';
