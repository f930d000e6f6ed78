-- Concurrency keys: at most `concurrency_limit` jobs with one key run at once. One index
-- of the keyed jobs by key and status serves the claim's count of a key's running jobs
-- and the counts per key; its condition names a column no claim or completion changes,
-- so jobs without a key cost those writes nothing.
ALTER TABLE jobs ADD COLUMN concurrency_key TEXT;
ALTER TABLE jobs ADD COLUMN concurrency_limit INTEGER CHECK (concurrency_limit > 0);
CREATE INDEX jobs_keys ON jobs (concurrency_key, status) WHERE concurrency_key IS NOT NULL;
