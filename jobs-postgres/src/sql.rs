//! The statements, written once per schema.

/// The columns of a job, with timestamps as microseconds since the Unix epoch.
const COLUMNS: &str = "id, job_type, status, payload, progress_percent, progress_message, error, \
     attempt, cancel_requested, \
     (extract(epoch FROM created_at) * 1000000)::int8 AS created_us, \
     (extract(epoch FROM started_at) * 1000000)::int8 AS started_us, \
     (extract(epoch FROM finished_at) * 1000000)::int8 AS finished_us, \
     (extract(epoch FROM run_at) * 1000000)::int8 AS run_at_us, \
     priority, max_attempts, timeout_ms, errors, unique_key, queue";

/// The `AttemptError` (JSON) of the current attempt failing with `message`, its time in
/// the format `Timestamp` reads.
fn attempt_error(attempt: &str, message: &str) -> String {
    format!(
        "jsonb_build_object('attempt', {attempt}, 'message', {message}, 'at', \
         to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))"
    )
}

/// A JSON object in the shape of `JobEvent` (serde's tag `event`, camelCase fields), built
/// in the statement that makes the change, so the notification leaves with its commit.
fn notify(channel: &str, event: &str) -> String {
    format!("pg_notify('{channel}', {event}::text)")
}

pub(crate) struct Statements {
    pub(crate) insert: String,
    pub(crate) insert_many: String,
    pub(crate) holder: String,
    pub(crate) next_due: String,
    pub(crate) queue_lock: String,
    pub(crate) insert_scheduled: String,
    pub(crate) prune: String,
    pub(crate) get: String,
    pub(crate) transition: String,
    pub(crate) finish_many: String,
    pub(crate) current: String,
    pub(crate) progress: String,
    pub(crate) lock_for_cancel: String,
    pub(crate) cancel_queued: String,
    pub(crate) flag_cancel: String,
    pub(crate) result: String,
    pub(crate) claim: String,
    pub(crate) release: String,
    pub(crate) list_prefix: String,
    pub(crate) counts: String,
    pub(crate) heartbeat: String,
    pub(crate) rescue_lock: String,
    pub(crate) rescue: String,
    pub(crate) notify: String,
    pub(crate) requeue: String,
}

impl Statements {
    pub(crate) fn new(schema: &str, channel: &str) -> Self {
        let jobs = format!("{schema}.jobs");
        let fail_entry = attempt_error("attempt", "$5");
        let finish_entry = attempt_error("j.attempt", "i.error");
        let lost_entry = attempt_error("j.attempt", "'its worker stopped renewing its lease'");
        let last = "jsonb_array_length(j.errors) + 1 >= GREATEST(j.max_attempts, $1)";
        // An immediate job is due at the database's now(), not at the submitter's clock,
        // which may be a little ahead of the database's.
        let run_at = "CASE WHEN $5 <= $4 THEN now() \
                      ELSE 'epoch'::timestamptz + $5 * interval '1 microsecond' END";
        let results = format!("{schema}.job_results");
        let finished_event = "json_build_object('event', 'finished', 'id', id, 'status', status, 'error', left(error, 500))";
        let started_event = "json_build_object('event', 'started', 'id', id, 'attempt', attempt)";
        let submitted_event =
            "json_build_object('event', 'submitted', 'id', id, 'jobType', job_type)";
        // A job given back to the queue is announced as submitted again, so idle workers
        // wake; one that ended instead is announced as finished.
        let requeued_or_finished =
            format!("CASE WHEN status = 'Queued' THEN {submitted_event} ELSE {finished_event} END");
        Self {
            insert: format!(
                "WITH inserted AS (
                     INSERT INTO {jobs} (id, job_type, status, payload, created_at,
                                         run_at, priority, max_attempts, timeout_ms, unique_key,
                                         queue)
                     VALUES ($1, $2, 'Queued', $3, 'epoch'::timestamptz + $4 * interval '1 microsecond',
                             {run_at}, $6, $7, $8, $9, $10)
                     ON CONFLICT (job_type, unique_key)
                         WHERE unique_key IS NOT NULL AND status IN ('Queued', 'Running')
                         DO NOTHING
                     RETURNING id, job_type)
                 SELECT id, {} FROM inserted",
                notify(channel, submitted_event)
            ),
            // The job of a periodic tick: $1–$10 as in `insert`, $11 the schedule, $12 the
            // tick (µs). Stored only if the tick moves the schedule forward.
            insert_scheduled: format!(
                "WITH won AS (
                     INSERT INTO {schema}.job_schedules (name, last_tick)
                     VALUES ($11, 'epoch'::timestamptz + $12 * interval '1 microsecond')
                     ON CONFLICT (name) DO UPDATE SET last_tick = EXCLUDED.last_tick
                         WHERE {schema}.job_schedules.last_tick < EXCLUDED.last_tick
                     RETURNING 1),
                 inserted AS (
                     INSERT INTO {jobs} (id, job_type, status, payload, created_at,
                                         run_at, priority, max_attempts, timeout_ms, unique_key,
                                         queue)
                     SELECT $1, $2, 'Queued', $3, 'epoch'::timestamptz + $4 * interval '1 microsecond',
                            LEAST('epoch'::timestamptz + $5 * interval '1 microsecond', now()),
                            $6, $7, $8, $9, $10
                     WHERE EXISTS (SELECT 1 FROM won)
                     RETURNING id, job_type)
                 SELECT id, {} FROM inserted",
                notify(channel, submitted_event)
            ),
            // Microseconds until the earliest queued job is due (NULL when none is queued;
            // zero or less when one is due but claimed by someone else meanwhile).
            next_due: format!(
                "SELECT (extract(epoch FROM min(run_at) - now()) * 1000000)::int8
                 FROM {jobs} WHERE status = 'Queued' AND queue = $1"
            ),
            // Claims of one queue with a cluster-wide limit take turns ($1 the queue).
            queue_lock: format!("SELECT pg_advisory_xact_lock(hashtext('{jobs}.queue.' || $1))"),
            // The active job holding a unique key.
            holder: format!(
                "SELECT {COLUMNS} FROM {jobs}
                 WHERE job_type = $2 AND unique_key = $1 AND status IN ('Queued', 'Running')"
            ),
            // Up to $2 jobs that finished before $1 (µs), oldest first; their results go
            // with them (ON DELETE CASCADE).
            prune: format!(
                "WITH doomed AS MATERIALIZED (
                     SELECT id FROM {jobs}
                     WHERE status IN ('Succeeded', 'Failed', 'Canceled')
                       AND finished_at < 'epoch'::timestamptz + $1 * interval '1 microsecond'
                     ORDER BY finished_at LIMIT $2
                     FOR UPDATE SKIP LOCKED)
                 DELETE FROM {jobs} WHERE id IN (SELECT id FROM doomed)"
            ),
            insert_many: format!(
                "WITH inserted AS (
                     INSERT INTO {jobs} (id, job_type, status, payload, created_at,
                                         run_at, priority, max_attempts, timeout_ms, unique_key,
                                         queue)
                     SELECT id, job_type, 'Queued', payload,
                            'epoch'::timestamptz + created_us * interval '1 microsecond',
                            CASE WHEN run_at_us <= created_us THEN now()
                                 ELSE 'epoch'::timestamptz + run_at_us * interval '1 microsecond' END,
                            priority, max_attempts, timeout_ms, unique_key, queue
                     FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::int8[], $5::int8[],
                                 $6::int2[], $7::int4[], $8::int8[], $9::text[], $10::text[])
                          AS t(id, job_type, payload, created_us, run_at_us, priority,
                               max_attempts, timeout_ms, unique_key, queue)
                     RETURNING id, job_type)
                 SELECT count({}) FROM inserted",
                notify(channel, submitted_event)
            ),
            get: format!("SELECT {COLUMNS} FROM {jobs} WHERE id = $1"),
            // $1 id, $2 expected status, $3 expected attempt (NULL: any), $4 new status,
            // $5 error, $6 result (NULL unless Succeeded), $7 lease in ms, $8 worker id.
            transition: format!(
                "WITH updated AS (
                     UPDATE {jobs} SET
                         status = $4,
                         attempt = CASE WHEN $4 = 'Running' THEN attempt + 1 ELSE attempt END,
                         started_at = CASE WHEN $4 = 'Running' THEN now() ELSE started_at END,
                         finished_at = CASE WHEN $4 = 'Running' THEN NULL ELSE now() END,
                         error = CASE WHEN $4 = 'Failed' THEN $5 ELSE error END,
                         errors = CASE WHEN $4 = 'Failed'
                             THEN errors || jsonb_build_array({fail_entry}) ELSE errors END,
                         worker_id = CASE WHEN $4 = 'Running' THEN $8 ELSE worker_id END,
                         lease_expires_at = CASE WHEN $4 = 'Running'
                             THEN now() + $7 * interval '1 millisecond' ELSE NULL END
                     WHERE id = $1 AND status = $2 AND ($3::int4 IS NULL OR attempt = $3)
                     RETURNING *),
                 stored AS (
                     INSERT INTO {results} (job_id, result)
                     SELECT id, $6 FROM updated
                     WHERE $6::jsonb IS NOT NULL AND $6::jsonb <> 'null'::jsonb)
                 SELECT {COLUMNS}, {} FROM updated",
                notify(
                    channel,
                    &format!("CASE WHEN status = 'Running' THEN {started_event} ELSE {finished_event} END")
                )
            ),
            // Many finishes in one statement (announced after the commit by `notify`): $1 ids, $2 attempts, $3 statuses, $4 errors,
            // $5 results. Only rows still `Running` at their attempt change.
            finish_many: format!(
                "WITH input AS (
                     SELECT * FROM unnest($1::uuid[], $2::int4[], $3::text[], $4::text[], $5::jsonb[])
                         AS t(id, attempt, status, error, result)),
                 updated AS (
                     UPDATE {jobs} j SET
                         status = i.status, finished_at = now(), lease_expires_at = NULL,
                         error = CASE WHEN i.status = 'Failed' THEN i.error ELSE j.error END,
                         errors = CASE WHEN i.status = 'Failed'
                             THEN j.errors || jsonb_build_array({finish_entry}) ELSE j.errors END
                     FROM input i
                     WHERE j.id = i.id AND j.status = 'Running' AND j.attempt = i.attempt
                     RETURNING j.*),
                 stored AS (
                     INSERT INTO {results} (job_id, result)
                     SELECT i.id, i.result FROM input i JOIN updated u ON u.id = i.id
                     WHERE u.status = 'Succeeded' AND i.result <> 'null'::jsonb)
                 SELECT {COLUMNS} FROM updated"
            ),
            current: format!("SELECT status, attempt FROM {jobs} WHERE id = $1"),
            progress: format!(
                "WITH updated AS (
                     UPDATE {jobs} SET progress_percent = $3, progress_message = $4
                     WHERE id = $1 AND status = 'Running' AND attempt = $2
                     RETURNING id, cancel_requested, progress_percent, progress_message)
                 SELECT cancel_requested, {} FROM updated",
                notify(
                    channel,
                    "json_build_object('event', 'progress', 'id', id, 'progress', \
                     json_build_object('percent', progress_percent, 'message', left(progress_message, 500)))"
                )
            ),
            lock_for_cancel: format!("SELECT {COLUMNS} FROM {jobs} WHERE id = $1 FOR UPDATE"),
            cancel_queued: format!(
                "WITH updated AS (
                     UPDATE {jobs} SET status = 'Canceled', finished_at = now()
                     WHERE id = $1 AND status = 'Queued' RETURNING *)
                 SELECT {COLUMNS}, {} FROM updated",
                notify(channel, finished_event)
            ),
            flag_cancel: format!(
                "WITH updated AS (
                     UPDATE {jobs} SET cancel_requested = true
                     WHERE id = $1 AND status = 'Running' RETURNING *)
                 SELECT {COLUMNS}, {} FROM updated",
                notify(channel, "json_build_object('event', 'cancelRequested', 'id', id)")
            ),
            // A `null` result is not stored: a succeeded job without a row has that result.
            result: format!(
                "SELECT coalesce(r.result, 'null'::jsonb) FROM {jobs} j
                 LEFT JOIN {results} r ON r.job_id = j.id
                 WHERE j.id = $1 AND j.status = 'Succeeded'"
            ),
            // $1 worker id, $2 lease in ms, $3 how many, $4 the queue, $5 its cluster-wide
            // limit (NULL: none; then the caller holds the queue's advisory lock). Announced
            // after the commit by `notify`.
            claim: format!(
                "WITH picked AS MATERIALIZED (
                     SELECT id FROM {jobs}
                     WHERE status = 'Queued' AND queue = $4 AND run_at <= now()
                     ORDER BY priority DESC, run_at, id
                     LIMIT CASE WHEN $5::int8 IS NULL THEN $3
                                ELSE LEAST($3, GREATEST(0, $5::int8 - (
                                    SELECT count(*) FROM {jobs}
                                    WHERE status = 'Running' AND queue = $4)))
                           END
                     FOR UPDATE SKIP LOCKED),
                 claimed AS (
                     UPDATE {jobs} j SET
                         status = 'Running', attempt = j.attempt + 1, started_at = now(),
                         worker_id = $1, lease_expires_at = now() + $2 * interval '1 millisecond'
                     FROM picked p WHERE j.id = p.id
                     RETURNING j.*)
                 SELECT {COLUMNS} FROM claimed ORDER BY id"
            ),
            // Gives back jobs claimed but never started ($1 ids, $2 attempts): queued again,
            // or canceled if a cancel was requested meanwhile.
            release: format!(
                "WITH input AS (
                     SELECT * FROM unnest($1::uuid[], $2::int4[]) AS t(id, attempt)),
                 released AS (
                     UPDATE {jobs} j SET
                         status = CASE WHEN j.cancel_requested THEN 'Canceled' ELSE 'Queued' END,
                         attempt = CASE WHEN j.cancel_requested THEN j.attempt ELSE j.attempt - 1 END,
                         started_at = CASE WHEN j.cancel_requested THEN j.started_at ELSE NULL END,
                         finished_at = CASE WHEN j.cancel_requested THEN now() ELSE NULL END,
                         worker_id = NULL, lease_expires_at = NULL
                     FROM input i
                     WHERE j.id = i.id AND j.status = 'Running' AND j.attempt = i.attempt
                     RETURNING j.id, j.status, j.job_type, j.error)
                 SELECT {} FROM released",
                notify(channel, &requeued_or_finished)
            ),
            list_prefix: format!("SELECT {COLUMNS} FROM {jobs}"),
            counts: format!("SELECT job_type, status, count(*) FROM {jobs} GROUP BY job_type, status"),
            // $1 worker id, $2 lease in ms, $3 and $4 the ids and attempts it still holds.
            heartbeat: format!(
                "UPDATE {jobs} j SET lease_expires_at = now() + $2 * interval '1 millisecond'
                 FROM unnest($3::uuid[], $4::int4[]) AS h(id, attempt)
                 WHERE j.id = h.id AND j.attempt = h.attempt
                   AND j.status = 'Running' AND j.worker_id = $1
                 RETURNING j.id, j.cancel_requested"
            ),
            rescue_lock: format!("SELECT pg_try_advisory_xact_lock(hashtext('{jobs}.rescue'))"),
            // $1 attempts after which a job is failed instead of queued again, $2 batch.
            // A lost lease counts as a failed attempt (kept in `errors`); the job is tried
            // again while its own attempts allow, and at least $1 times in all, so that a
            // job without retries still survives a crashed worker.
            rescue: format!(
                "WITH expired AS MATERIALIZED (
                     SELECT id FROM {jobs}
                     WHERE status = 'Running' AND lease_expires_at < now()
                     ORDER BY lease_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED),
                 rescued AS (
                     UPDATE {jobs} j SET
                         status = CASE WHEN j.cancel_requested THEN 'Canceled'
                                       WHEN {last} THEN 'Failed' ELSE 'Queued' END,
                         errors = j.errors || jsonb_build_array({lost_entry}),
                         error = CASE WHEN NOT j.cancel_requested AND {last}
                             THEN 'its worker stopped renewing its lease during ' || j.attempt
                                  || ' attempt(s); not trying again'
                             ELSE j.error END,
                         finished_at = CASE WHEN j.cancel_requested OR {last}
                             THEN now() ELSE NULL END,
                         progress_percent = NULL, progress_message = NULL,
                         worker_id = NULL, lease_expires_at = NULL
                     FROM expired e WHERE j.id = e.id
                     RETURNING j.id, j.status, j.job_type, j.error)
                 SELECT status, {} FROM rescued",
                notify(channel, &requeued_or_finished)
            ),
            // $1 a JSON array of events. The batch statements (claim, finishes) announce
            // their changes with this, after their commit: a transaction that notifies
            // holds PostgreSQL's notification-queue lock through its commit, WAL flush
            // included, so notifying inside them would serialize their commits. This one
            // writes no data, so it holds that lock only for a moment.
            notify: format!("SELECT pg_notify('{channel}', $1)"),
            // A running attempt goes back to the queue, due at $3 (µs): a retry ($4 its
            // error, kept in `errors`) or a snooze ($4 NULL). $1 id, $2 attempt.
            requeue: format!(
                "WITH updated AS (
                     UPDATE {jobs} SET
                         status = CASE WHEN cancel_requested THEN 'Canceled' ELSE 'Queued' END,
                         finished_at = CASE WHEN cancel_requested THEN now() ELSE NULL END,
                         run_at = 'epoch'::timestamptz + $3 * interval '1 microsecond',
                         errors = CASE WHEN $4::text IS NULL THEN errors
                             ELSE errors || jsonb_build_array({}) END,
                         progress_percent = NULL, progress_message = NULL,
                         worker_id = NULL, lease_expires_at = NULL
                     WHERE id = $1 AND status = 'Running' AND attempt = $2
                     RETURNING *)
                 SELECT {COLUMNS}, {} FROM updated",
                attempt_error("attempt", "$4::text"),
                notify(
                    channel,
                    &format!(
                        "CASE WHEN status = 'Canceled' THEN {finished_event} ELSE \
                         json_build_object('event', 'requeued', 'id', id, 'attempt', attempt, \
                         'runAt', to_char(run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
                         'error', left($4::text, 500)) END"
                    )
                )
            ),
        }
    }
}
