-- Jobs, their results, the ticks of periodic schedules, and the events shared by the
-- processes that open the file. Times are microseconds since the Unix epoch. Sets of
-- statuses are written as OR chains: SQLite builds a temporary table for an IN list of
-- three or more constants each time a statement evaluates it.

CREATE TABLE jobs (
    id                BLOB    NOT NULL PRIMARY KEY,  -- UUID v7 bytes: id order is submit order
    job_type          TEXT    NOT NULL,
    queue             TEXT    NOT NULL,
    status            TEXT    NOT NULL
                      CHECK (status = 'Queued' OR status = 'Running' OR status = 'Succeeded'
                             OR status = 'Failed' OR status = 'Canceled'),
    payload           TEXT    NOT NULL,              -- compact JSON
    progress_percent  INTEGER CHECK (progress_percent BETWEEN 0 AND 100),
    progress_message  TEXT,
    error             TEXT,
    errors            TEXT    NOT NULL DEFAULT '[]', -- JSON array of attempt errors
    attempt           INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL DEFAULT 1 CHECK (max_attempts >= 1),
    timeout_ms        INTEGER CHECK (timeout_ms > 0),
    priority          INTEGER NOT NULL DEFAULT 0,
    unique_key        TEXT,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    run_at            INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    holder            TEXT,
    lease_until       INTEGER
);

-- The claim: a queue's due jobs, higher priority first, then by the time they became due.
CREATE INDEX jobs_due ON jobs (queue, priority DESC, run_at, id) WHERE status = 'Queued';
-- The rescue of jobs whose holder stopped renewing its lease.
CREATE INDEX jobs_running_lease ON jobs (lease_until) WHERE status = 'Running';
-- Listings and counts by type (and status), newest first.
CREATE INDEX jobs_type_status ON jobs (job_type, status, id DESC);
-- At most one active job per type and unique key.
CREATE UNIQUE INDEX jobs_unique_active ON jobs (job_type, unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('Queued', 'Running');
-- Retention: finished jobs (only they have a finish time), oldest first.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE job_results (
    job_id  BLOB NOT NULL PRIMARY KEY,
    result  TEXT NOT NULL
) WITHOUT ROWID;

-- Periodic jobs: the latest tick of each schedule that got its job.
CREATE TABLE job_schedules (
    name       TEXT    NOT NULL PRIMARY KEY,
    last_tick  INTEGER NOT NULL
) WITHOUT ROWID;

-- Events, one row per published batch (a JSON array), read by the other processes on the
-- file; `origin` names the store that wrote it, which skips its own rows.
CREATE TABLE job_events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    origin  TEXT    NOT NULL,
    at      INTEGER NOT NULL,
    events  TEXT    NOT NULL
);
