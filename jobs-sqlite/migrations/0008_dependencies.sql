-- Dependencies between jobs, and flows: a job may wait (`Waiting`) for its parents, and
-- belong to a flow or batch whose members are listed, canceled and kept together.
--
-- SQLite cannot change a CHECK constraint in place, so the jobs table is rebuilt with the
-- new status allowed (one copy of every row, once), and its indexes made again.
CREATE TABLE jobs_rebuilt (
    id                BLOB    NOT NULL PRIMARY KEY,
    job_type          TEXT    NOT NULL,
    queue             TEXT    NOT NULL,
    status            TEXT    NOT NULL
                      CHECK (status = 'Waiting' OR status = 'Queued' OR status = 'Running'
                             OR status = 'Succeeded' OR status = 'Failed'
                             OR status = 'Canceled'),
    payload           TEXT    NOT NULL,
    progress_percent  INTEGER CHECK (progress_percent BETWEEN 0 AND 100),
    progress_message  TEXT,
    error             TEXT,
    errors            TEXT    NOT NULL DEFAULT '[]',
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
    lease_until       INTEGER,
    concurrency_key   TEXT,
    concurrency_limit INTEGER CHECK (concurrency_limit > 0),
    failures          INTEGER NOT NULL DEFAULT 0,
    trace_parent      TEXT,
    -- The parents in order (a JSON array of ids; NULL for none), what the job does when
    -- one fails ('cancel' or 'run') and where its payload comes from on release
    -- ('submitted', 'parent', 'parents', 'batch'), both NULL without parents; while
    -- `Waiting`, how many parents it still waits for.
    depends_on        TEXT,
    on_parent_failure TEXT,
    payload_from      TEXT,
    waiting_for       INTEGER,
    -- The flow or batch it belongs to (UUID bytes).
    flow              BLOB
);
INSERT INTO jobs_rebuilt (id, job_type, queue, status, payload, progress_percent,
    progress_message, error, errors, attempt, max_attempts, timeout_ms, priority,
    unique_key, cancel_requested, created_at, run_at, started_at, finished_at, holder,
    lease_until, concurrency_key, concurrency_limit, failures, trace_parent)
SELECT id, job_type, queue, status, payload, progress_percent, progress_message, error,
    errors, attempt, max_attempts, timeout_ms, priority, unique_key, cancel_requested,
    created_at, run_at, started_at, finished_at, holder, lease_until, concurrency_key,
    concurrency_limit, failures, trace_parent
FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_rebuilt RENAME TO jobs;

CREATE INDEX jobs_due ON jobs (queue, priority DESC, run_at, id) WHERE status = 'Queued';
CREATE INDEX jobs_running_lease ON jobs (lease_until) WHERE status = 'Running';
CREATE INDEX jobs_type_status ON jobs (job_type, status, id DESC);
CREATE UNIQUE INDEX jobs_unique_active ON jobs (job_type, unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('Queued', 'Running');
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX jobs_failed ON jobs (id DESC) WHERE status = 'Failed';
CREATE INDEX jobs_canceled ON jobs (id DESC) WHERE status = 'Canceled';
CREATE INDEX jobs_keys ON jobs (concurrency_key, status) WHERE concurrency_key IS NOT NULL;
-- Waiting jobs, for listings by status.
CREATE INDEX jobs_waiting ON jobs (id DESC) WHERE status = 'Waiting';
-- A flow's members, newest first, with their statuses (retention looks for unfinished
-- ones before it deletes a member).
CREATE INDEX jobs_flow ON jobs (flow, status, id DESC) WHERE flow IS NOT NULL;

-- The graph's edges, found by parent: the dependants a parent's end settles, and the
-- children shown beside a job. An edge is deleted with its dependant.
CREATE TABLE job_dependencies (
    parent  BLOB NOT NULL,
    child   BLOB NOT NULL,
    PRIMARY KEY (parent, child)
) WITHOUT ROWID;
CREATE INDEX job_dependencies_child ON job_dependencies (child);
