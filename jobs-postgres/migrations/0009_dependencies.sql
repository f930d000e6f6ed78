-- Dependencies between jobs, and flows: a job may wait (`Waiting`) for its parents, and
-- belong to a flow or batch whose members are listed, canceled and kept together.
ALTER TABLE {schema}.jobs DROP CONSTRAINT IF EXISTS jobs_status_check;
ALTER TABLE {schema}.jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('Waiting', 'Queued', 'Running', 'Succeeded', 'Failed', 'Canceled'));

-- `depends_on`: the parents in order (a JSON array of ids; NULL for none), what the job
-- does when one fails (`on_parent_failure`: 'cancel' or 'run') and where its payload comes
-- from on release (`payload_from`: 'submitted', 'parent', 'parents', 'batch'), both NULL
-- for a job without parents.
-- `waiting_for`: while `Waiting`, how many parents it still waits for.
-- `has_dependants`: set, under the parent's row lock, when a dependant is stored; a
-- completion of such a job settles its dependants in the same transaction.
ALTER TABLE {schema}.jobs
    ADD COLUMN depends_on        jsonb,
    ADD COLUMN on_parent_failure text,
    ADD COLUMN payload_from      text,
    ADD COLUMN waiting_for       integer,
    ADD COLUMN has_dependants    boolean NOT NULL DEFAULT false,
    ADD COLUMN flow              uuid;

-- The graph's edges, found by parent: the dependants a parent's end settles, and the
-- children shown beside a job. An edge goes with its dependant.
CREATE TABLE {schema}.job_dependencies (
    parent  uuid NOT NULL,
    child   uuid NOT NULL REFERENCES {schema}.jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (parent, child)
);
CREATE INDEX job_dependencies_child ON {schema}.job_dependencies (child);

-- A flow's members, newest first, and the unfinished ones (which retention looks for
-- before it deletes a member).
CREATE INDEX jobs_flow ON {schema}.jobs (flow, id DESC) WHERE flow IS NOT NULL;
CREATE INDEX jobs_flow_unfinished ON {schema}.jobs (flow)
    WHERE flow IS NOT NULL AND status IN ('Waiting', 'Queued', 'Running');
-- Waiting jobs, for listings by status.
CREATE INDEX jobs_waiting ON {schema}.jobs (id DESC) WHERE status = 'Waiting';
