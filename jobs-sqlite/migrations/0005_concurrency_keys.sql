-- Concurrency keys: at most `concurrency_limit` jobs with one key run at once. The
-- indexes serve the claim's count of running jobs per key and its look for the first
-- queued jobs of a key.
ALTER TABLE jobs ADD COLUMN concurrency_key TEXT;
ALTER TABLE jobs ADD COLUMN concurrency_limit INTEGER CHECK (concurrency_limit > 0);
CREATE INDEX jobs_running_keys ON jobs (concurrency_key)
    WHERE status = 'Running' AND concurrency_key IS NOT NULL;
CREATE INDEX jobs_queued_keys ON jobs (queue, concurrency_key, priority DESC, run_at, id)
    WHERE status = 'Queued' AND concurrency_key IS NOT NULL;
