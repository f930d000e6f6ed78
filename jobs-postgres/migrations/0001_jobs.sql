-- Jobs, their results, and the indexes that serve the claim, the rescue and the listings.
-- `{schema}` is replaced by the backend's schema name.

CREATE TABLE {schema}.jobs (
    id                uuid        PRIMARY KEY,
    job_type          text        NOT NULL,
    status            text        NOT NULL
                      CHECK (status IN ('Queued', 'Running', 'Succeeded', 'Failed', 'Canceled')),
    payload           jsonb       NOT NULL,
    progress_percent  smallint    CHECK (progress_percent BETWEEN 0 AND 100),
    progress_message  text,
    error             text,
    attempt           integer     NOT NULL DEFAULT 0,
    cancel_requested  boolean     NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL,
    started_at        timestamptz,
    finished_at       timestamptz,
    worker_id         text,
    lease_expires_at  timestamptz
);

-- The claim: the oldest queued jobs (ids are UUID v7, so id order is submit order).
CREATE INDEX jobs_queued ON {schema}.jobs (id) WHERE status = 'Queued';
-- The rescue of jobs whose worker stopped renewing its lease.
CREATE INDEX jobs_running_lease ON {schema}.jobs (lease_expires_at) WHERE status = 'Running';
-- Listings by type (and status), newest first. Every status change rewrites the entries
-- of each index that holds `status`, so the table keeps few: a listing by status alone
-- reads the primary key backwards.
CREATE INDEX jobs_type_status_id ON {schema}.jobs (job_type, status, id DESC);

CREATE TABLE {schema}.job_results (
    job_id  uuid  PRIMARY KEY REFERENCES {schema}.jobs (id) ON DELETE CASCADE,
    result  jsonb NOT NULL
);
