//! The statements, run on a connection's thread inside the writer's transaction (or on
//! the reader). They move plain values; JSON is written and parsed by the callers, off the
//! connection's thread, except on rare paths (a unique key's holder, a cancel).
//!
//! The writer holds SQLite's write lock for the whole transaction, so a look-up followed
//! by a change inside one function is atomic against every other process too.

use jobs_core::{
    CancelOutcome, Inserted, Job, JobCount, JobEvent, JobId, JobPage, JobQuery, JobStatus,
    Progress, RateBudgets, RateRule, RateScope, RateWindow, Renewal, StorageError,
    StorageErrorKind, Timestamp,
};
use rusqlite::{params, Connection, OptionalExtension};

use crate::depend;
use crate::error::{failed, storage};
use crate::rows::{expired_from_row, id_bytes, json, RawClaim, RawJob, COLUMNS};

/// A job ready to insert: the job, its payload as JSON text and its `submitted` event.
pub(crate) struct NewJob {
    pub(crate) job: Job,
    pub(crate) payload: String,
    pub(crate) event: String,
    /// Due exactly at `job.run_at` (a periodic tick), not at the insert when that is
    /// earlier than its submit.
    pub(crate) exact_run_at: bool,
}

/// What [`insert_jobs`] did: an answer per job, the indexes stored, and the events of
/// jobs it settled at once (canceled with a parent that had failed).
pub(crate) type InsertedJobs = (Vec<Inserted>, Vec<usize>, Vec<JobEvent>);

/// Inserts `jobs` in order; a job whose unique key an active job holds (one stored
/// earlier in the batch included) is not stored. Jobs with parents are settled first
/// against them (see [`depend::settle_new`]), which may change their status and payload.
/// Records the `submitted` events of the stored jobs, and those of jobs canceled at
/// once, as event rows of `origin`.
pub(crate) fn insert_jobs(
    connection: &Connection,
    jobs: &mut [NewJob],
    origin: &str,
) -> Result<InsertedJobs, StorageError> {
    const WHAT: &str = "could not store the jobs";
    let now = Timestamp::now().as_unix_micros();
    let (waiting_for, settled) = if jobs.iter().any(|new| new.job.has_parents()) {
        depend::settle_new(connection, jobs)?
    } else {
        (Vec::new(), Vec::new())
    };
    let mut insert = connection
        .prepare_cached(
            "INSERT INTO jobs (id, job_type, queue, status, payload, created_at, run_at,
                               priority, max_attempts, timeout_ms, unique_key,
                               concurrency_key, concurrency_limit, trace_parent, depends_on,
                               on_parent_failure, payload_from, waiting_for, flow, error,
                               finished_at)
             VALUES (?1, ?2, ?3, ?14, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?15, ?16,
                     ?17, ?18, ?19, ?20, CASE WHEN ?14 = 'Canceled' THEN ?21 END)",
        )
        .map_err(failed(WHAT))?;
    let mut answers = Vec::with_capacity(jobs.len());
    let mut stored = Vec::with_capacity(jobs.len());
    for (index, new) in jobs.iter().enumerate() {
        let job = &new.job;
        if let Some(key) = &job.unique_key {
            if let Some(holder) = key_holder(connection, &job.job_type, key)? {
                answers.push(Inserted::Existing(Box::new(holder)));
                continue;
            }
        }
        let created = job.created_at.as_unix_micros();
        let run_at = job.run_at.as_unix_micros();
        // An immediate job is due when it is stored, not at the submitter's clock.
        let due = if run_at <= created && !new.exact_run_at {
            now
        } else {
            run_at
        };
        let parents = if job.has_parents() {
            Some(
                serde_json::to_string(&job.depends_on)
                    .map_err(|error| StorageError::with_source(WHAT, error))?,
            )
        } else {
            None
        };
        insert
            .execute(params![
                id_bytes(job.id),
                job.job_type,
                job.queue,
                new.payload,
                created,
                due,
                job.priority,
                job.max_attempts.max(1),
                job.timeout_ms.map(|ms| ms.clamp(1, i64::MAX as u64) as i64),
                job.unique_key,
                job.concurrency_key,
                job.concurrency_limit,
                job.trace_parent.map(|parent| parent.to_string()),
                job.status.as_str(),
                parents,
                job.has_parents().then(|| job.on_parent_failure.as_str()),
                job.has_parents().then(|| job.payload_from.as_str()),
                waiting_for.get(index).copied().flatten(),
                job.flow.map(|flow| *flow.as_uuid().as_bytes()),
                job.error,
                now,
            ])
            .map_err(|error| match storage(WHAT, error) {
                conflict if conflict.kind() == StorageErrorKind::Conflict => StorageError::of_kind(
                    StorageErrorKind::Conflict,
                    format!("a job with id {} is already stored", job.id),
                ),
                other => other,
            })?;
        if job.has_parents() {
            depend::insert_edges(connection, new)?;
        }
        answers.push(Inserted::Stored);
        stored.push(index);
    }
    if !stored.is_empty() {
        let mut events: Vec<&str> = stored.iter().map(|at| jobs[*at].event.as_str()).collect();
        let settled_json: Vec<String> = settled
            .iter()
            .map(|event| serde_json::to_string(event).unwrap_or_default())
            .collect();
        events.extend(settled_json.iter().map(String::as_str));
        record_events(connection, origin, &format!("[{}]", events.join(",")))?;
    }
    Ok((answers, stored, settled))
}

/// The active job of `job_type` holding `key`, if any.
fn key_holder(
    connection: &Connection,
    job_type: &str,
    key: &str,
) -> Result<Option<Job>, StorageError> {
    let raw = connection
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE job_type = ?1 AND unique_key = ?2
             AND status IN ('Queued', 'Running')"
        ))
        .and_then(|mut statement| {
            statement
                .query_row(params![job_type, key], RawJob::read)
                .optional()
        })
        .map_err(failed("could not look up a unique key"))?;
    raw.map(RawJob::into_job).transpose()
}

/// Records one event row: `events` is a JSON array of events.
pub(crate) fn record_events(
    connection: &Connection,
    origin: &str,
    events: &str,
) -> Result<(), StorageError> {
    connection
        .prepare_cached("INSERT INTO job_events (origin, at, events) VALUES (?1, ?2, ?3)")
        .and_then(|mut statement| {
            statement.execute(params![origin, Timestamp::now().as_unix_micros(), events])
        })
        .map(drop)
        .map_err(failed("could not record job events"))
}

/// Stores the job of tick `tick` of `schedule` unless that tick (or a later one) has its
/// job already; a tick whose job's key is held is recorded and stores nothing. Whether
/// the job was stored.
pub(crate) fn insert_tick(
    connection: &Connection,
    new: &NewJob,
    schedule: &str,
    tick: Timestamp,
    origin: &str,
) -> Result<bool, StorageError> {
    let won = connection
        .prepare_cached(
            "INSERT INTO job_schedules (name, last_tick) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET last_tick = excluded.last_tick
             WHERE job_schedules.last_tick < excluded.last_tick",
        )
        .and_then(|mut statement| statement.execute(params![schedule, tick.as_unix_micros()]))
        .map_err(failed("could not record a periodic tick"))?;
    if won == 0 {
        return Ok(false);
    }
    let mut job = NewJob {
        job: new.job.clone(),
        payload: new.payload.clone(),
        event: new.event.clone(),
        exact_run_at: true,
    };
    // Due at the tick (the tick it is the job of), never later than now.
    job.job.run_at = job.job.run_at.min(Timestamp::now());
    let (answers, _, _) = insert_jobs(connection, std::slice::from_mut(&mut job), origin)?;
    Ok(matches!(answers.first(), Some(Inserted::Stored)))
}

/// What a claim sets on each job it takes: ?1 now (µs), ?2 the holder, ?3 the lease (µs).
macro_rules! set_running {
    () => {
        "UPDATE jobs SET status = 'Running', attempt = attempt + 1, started_at = ?1,
             progress_percent = NULL, progress_message = NULL,
             holder = ?2, lease_until = ?1 + ?3"
    };
}

/// What a claim answers of each job it took.
macro_rules! claimed_columns {
    () => {
        "RETURNING id, job_type, payload, attempt, max_attempts,
                   failures, timeout_ms, priority, run_at, trace_parent"
    };
}

/// Claims up to `limit` due jobs of `queue` for `holder` until `lease_until` (µs), no
/// more than `global_limit` running at once when the queue has one, none while the queue
/// is paused, and none beyond the budget of a rate limit of `rates` that covers it. In
/// claim order.
pub(crate) fn claim(
    connection: &Connection,
    queue: &str,
    limit: usize,
    holder: &str,
    lease_us: i64,
    global_limit: Option<u32>,
    rates: &[RateRule],
) -> Result<Vec<RawClaim>, StorageError> {
    let mut limit = i64::try_from(limit).unwrap_or(i64::MAX);
    if let Some(global) = global_limit {
        let running: i64 = connection
            .prepare_cached("SELECT count(*) FROM jobs WHERE status = 'Running' AND queue = ?1")
            .and_then(|mut statement| statement.query_row([queue], |row| row.get(0)))
            .map_err(failed(CLAIM))?;
        limit = limit.min((i64::from(global) - running).max(0));
    }
    if limit == 0 {
        return Ok(Vec::new());
    }
    let now = Timestamp::now().as_unix_micros();
    // A queue's own rate limit holds every claim of it: the checked path at once. Else
    // one statement claims the first due jobs, leaving those with a key or a limited type
    // to the checked path.
    let queue_limited = rates
        .iter()
        .any(|rule| matches!(&rule.scope, RateScope::Queue(name) if name == queue));
    // The limited types as a JSON array; none without limits (the common case pays
    // nothing for them).
    let limited_types = (!rates.is_empty()).then(|| {
        let names: Vec<&str> = rates
            .iter()
            .filter_map(|rule| match &rule.scope {
                RateScope::JobType(job_type) => Some(job_type.as_str()),
                _ => None,
            })
            .collect();
        serde_json::to_string(&names).expect("names serialize")
    });
    let limited_types = limited_types.as_deref();
    let mut claimed = if queue_limited {
        Vec::new()
    } else {
        connection
            .prepare_cached(concat!(
                set_running!(),
                // The first due jobs come from `jobs_due` alone; the rows it updates are
                // read anyway, so their key and type are checked there.
                " WHERE rowid IN (
                     SELECT rowid FROM jobs
                     WHERE status = 'Queued' AND queue = ?4 AND run_at <= ?1
                       AND NOT EXISTS (SELECT 1 FROM job_paused_queues WHERE name = ?4)
                     ORDER BY priority DESC, run_at, id LIMIT ?5)
                   AND concurrency_key IS NULL
                   AND (?6 IS NULL OR job_type NOT IN (SELECT value FROM json_each(?6))) ",
                claimed_columns!()
            ))
            .and_then(|mut statement| {
                statement
                    .query_map(
                        params![now, holder, lease_us, queue, limit, limited_types],
                        RawClaim::read,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(failed(CLAIM))?
    };
    let left = limit - claimed.len() as i64;
    if queue_limited || (left > 0 && held_due(connection, queue, now, limited_types)?) {
        claimed.extend(claim_checked(
            connection, queue, left, holder, lease_us, rates, now,
        )?);
    }
    claimed.sort_by(|a, b| {
        a.order
            .cmp(&b.order)
            .then_with(|| a.id_bytes().cmp(b.id_bytes()))
    });
    Ok(claimed)
}

const CLAIM: &str = "could not claim jobs";

/// The most due jobs a checked claim reads, past those a limit holds back.
const LOOK_AHEAD: i64 = 10_000;

/// Whether a job that the one-statement claim leaves alone is due in `queue`: one with a
/// concurrency key, or of a type in `limited_types` (a JSON array; `None`: no limits).
fn held_due(
    connection: &Connection,
    queue: &str,
    now: i64,
    limited_types: Option<&str>,
) -> Result<bool, StorageError> {
    connection
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM jobs
                 WHERE status = 'Queued' AND queue = ?1 AND concurrency_key IS NOT NULL
                   AND run_at <= ?2)
                 OR (?3 IS NOT NULL AND EXISTS (SELECT 1 FROM jobs
                 WHERE status = 'Queued' AND queue = ?1 AND run_at <= ?2
                   AND job_type IN (SELECT value FROM json_each(?3))))",
        )
        .and_then(|mut statement| {
            statement.query_row(params![queue, now, limited_types], |row| row.get(0))
        })
        .map_err(failed(CLAIM))
}

/// The checked claim, under rate limits and concurrency keys: the budgets from each
/// limit's window, the due jobs picked by `RateBudgets` and by the keys' free places
/// (the first queued jobs of each key in claim order), and the starts taken counted in
/// the windows, all in the writer's transaction, which no other process can interleave.
fn claim_checked(
    connection: &Connection,
    queue: &str,
    limit: i64,
    holder: &str,
    lease_us: i64,
    rates: &[RateRule],
    now: i64,
) -> Result<Vec<RawClaim>, StorageError> {
    let mut window = connection
        .prepare_cached("SELECT opened_at, used FROM job_rate_windows WHERE name = ?1")
        .map_err(failed(CLAIM))?;
    let mut windows = Vec::with_capacity(rates.len());
    for rule in rates {
        let found: Option<(Option<i64>, i64)> = window
            .query_row([rule.budget_name()], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
            .map_err(failed(CLAIM))?;
        let (opened, used) = found.unwrap_or((None, 0));
        windows.push(RateWindow {
            age: opened.map(|at| std::time::Duration::from_micros((now - at).max(0) as u64)),
            used: u32::try_from(used).unwrap_or(u32::MAX),
        });
    }
    let mut windows = windows.into_iter();
    let mut budgets = RateBudgets::new(rates, |_| windows.next().expect("one per rule"));
    let want = match budgets.queue_allows(queue) {
        Some(allowed) => limit.min(i64::from(allowed)),
        None => limit,
    };
    if want == 0 {
        return Ok(Vec::new());
    }
    // The due jobs in claim order, read one at a time until enough are picked or
    // `LOOK_AHEAD` were passed over. Unkeyed jobs of a spent type are left out in SQL; a
    // keyed one is read even then, as it stands ahead of its key's later jobs. A keyed job
    // may start if its key's running jobs and the queued ones read before it leave room.
    let spent = serde_json::to_string(&budgets.spent_types()).expect("names serialize");
    let mut candidates = connection
        .prepare_cached(
            "SELECT rowid, job_type, concurrency_key, coalesce(concurrency_limit, 1) FROM jobs
             WHERE status = 'Queued' AND queue = ?1 AND run_at <= ?2
               AND NOT EXISTS (SELECT 1 FROM job_paused_queues WHERE name = ?1)
               AND (concurrency_key IS NOT NULL
                    OR job_type NOT IN (SELECT value FROM json_each(?3)))
             ORDER BY priority DESC, run_at, id LIMIT ?4",
        )
        .map_err(failed(CLAIM))?;
    let mut running = connection
        .prepare_cached(
            "SELECT count(*) FROM jobs WHERE status = 'Running' AND concurrency_key = ?1",
        )
        .map_err(failed(CLAIM))?;
    let mut rows = candidates
        .query(params![queue, now, spent, LOOK_AHEAD])
        .map_err(failed(CLAIM))?;
    // Per key: its running jobs, and its jobs read so far.
    let mut keys: std::collections::HashMap<String, (i64, i64)> = std::collections::HashMap::new();
    let mut picked: Vec<i64> = Vec::new();
    while (picked.len() as i64) < want {
        let Some(row) = rows.next().map_err(failed(CLAIM))? else {
            break;
        };
        let (rowid, job_type, key, limit): (i64, String, Option<String>, i64) =
            (|| Ok::<_, rusqlite::Error>((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))()
                .map_err(failed(CLAIM))?;
        if let Some(key) = key {
            let seen = match keys.entry(key) {
                std::collections::hash_map::Entry::Occupied(seen) => seen.into_mut(),
                std::collections::hash_map::Entry::Vacant(new) => {
                    let count: i64 = running
                        .query_row([new.key()], |row| row.get(0))
                        .map_err(failed(CLAIM))?;
                    new.insert((count, 0))
                }
            };
            let room = seen.0 + seen.1 < limit;
            seen.1 += 1;
            if !room {
                continue;
            }
        }
        if budgets.take(queue, &job_type) {
            picked.push(rowid);
        }
    }
    drop(rows);
    let picked = serde_json::to_string(&picked).expect("numbers serialize");
    let claimed = connection
        .prepare_cached(concat!(
            set_running!(),
            " WHERE rowid IN (SELECT value FROM json_each(?4)) AND status = 'Queued' ",
            claimed_columns!()
        ))
        .and_then(|mut statement| {
            statement
                .query_map(params![now, holder, lease_us, picked], RawClaim::read)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(failed(CLAIM))?;
    let mut record = connection
        .prepare_cached(
            "INSERT INTO job_rate_windows (name, opened_at, used) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET
                 opened_at = CASE WHEN ?4 THEN ?2 ELSE opened_at END,
                 used = CASE WHEN ?4 THEN ?3 ELSE used + ?3 END",
        )
        .map_err(failed(CLAIM))?;
    for (rule, opens, taken) in budgets.taken() {
        record
            .execute(params![rule.budget_name(), now, taken, opens])
            .map_err(failed(CLAIM))?;
    }
    Ok(claimed)
}

/// Microseconds until the earliest queued job of `queue` is due (zero or less: one is
/// due now); `None` when none is queued or the queue is paused.
pub(crate) fn next_due(connection: &Connection, queue: &str) -> Result<Option<i64>, StorageError> {
    let earliest: Option<i64> = connection
        .prepare_cached(
            "SELECT min(run_at) FROM jobs WHERE status = 'Queued' AND queue = ?1
               AND NOT EXISTS (SELECT 1 FROM job_paused_queues WHERE name = ?1)",
        )
        .and_then(|mut statement| statement.query_row([queue], |row| row.get(0)))
        .map_err(failed("could not read when the next job is due"))?;
    Ok(earliest.map(|at| at - Timestamp::now().as_unix_micros()))
}

/// One completion as the statement takes it.
pub(crate) struct Change {
    pub(crate) index: usize,
    pub(crate) id: [u8; 16],
    pub(crate) attempt: u32,
    /// `Succeeded`, `Failed`, `Canceled`, `Retry`, `Snooze` or `Release`.
    pub(crate) kind: &'static str,
    /// The job's error (`Failed`).
    pub(crate) error: Option<String>,
    /// The attempt error to append to `errors` (JSON), for `Failed` and `Retry`.
    pub(crate) entry: Option<String>,
    /// The result as JSON, for `Succeeded` with a non-null result.
    pub(crate) result: Option<String>,
    pub(crate) run_at: Option<i64>,
}

/// The `started_at` column (µs) as the text `Timestamp` reads, or NULL; a macro so that
/// the statements below stay literals (prepared from the cache without formatting).
macro_rules! started_at_text {
    () => {
        "strftime('%Y-%m-%dT%H:%M:%S', started_at / 1000000, 'unixepoch') \
         || printf('.%06dZ', started_at % 1000000)"
    };
}

/// `errors` with the attempt error ?5 (JSON) appended, its start time filled in; a full
/// history (`Job::KEPT_ERRORS` entries) first drops its second entry, so the first stays.
macro_rules! errors_with_entry {
    () => {
        concat!(
            "json_insert(CASE WHEN json_array_length(errors) >= 20
                             THEN json_remove(errors, '$[1]') ELSE errors END,
                         '$[#]', json_set(json(?5), '$.startedAt', ",
            started_at_text!(),
            "))"
        )
    };
}

/// Applies `changes` held by `holder`: the status each job is in now, or `None` when it
/// was not `Running` at that attempt for `holder`. Requeues of a job asked to stop end
/// it `Canceled`, by the rule of `Job::finish`. The jobs that ended settle their waiting
/// dependants in the same transaction (recorded as event rows of `origin`); the events of
/// those are the second answer.
pub(crate) fn complete(
    connection: &Connection,
    holder: &str,
    changes: &[Change],
    origin: &str,
) -> Result<(Vec<Option<JobStatus>>, Vec<JobEvent>), StorageError> {
    const WHAT: &str = "could not store the jobs' outcomes";
    let now = Timestamp::now().as_unix_micros();
    // Two statements, no RETURNING (which buffers its rows in a temporary table): the
    // first applies the outcome unless a requeue (?9) meets a requested cancel, the
    // second ends such a requeue `Canceled`. Whether a row changed is the answer. ?10
    // marks a release (the attempt never started).
    let mut apply = connection
        .prepare_cached(concat!(
            "UPDATE jobs SET
                 status = CASE WHEN ?9 THEN 'Queued' ELSE ?3 END,
                 error = CASE WHEN ?3 = 'Failed' THEN ?4 ELSE error END,
                 errors = CASE WHEN ?5 IS NULL THEN errors ELSE ",
            errors_with_entry!(),
            " END,
                 failures = failures + (?5 IS NOT NULL),
                 finished_at = CASE WHEN ?9 THEN NULL ELSE ?7 END,
                 run_at = CASE WHEN ?9 AND ?6 IS NOT NULL THEN ?6 ELSE run_at END,
                 attempt = CASE WHEN ?10 THEN attempt - 1 ELSE attempt END,
                 started_at = CASE WHEN ?10 THEN NULL ELSE started_at END,
                 progress_percent = CASE WHEN ?9 THEN NULL ELSE progress_percent END,
                 progress_message = CASE WHEN ?9 THEN NULL ELSE progress_message END,
                 holder = CASE WHEN ?9 THEN NULL ELSE holder END,
                 lease_until = NULL
             WHERE id = ?1 AND status = 'Running' AND attempt = ?2 AND holder = ?8
               AND NOT (cancel_requested AND ?9)"
        ))
        .map_err(failed(WHAT))?;
    let mut cancel_requeue = connection
        .prepare_cached(concat!(
            "UPDATE jobs SET status = 'Canceled', finished_at = ?4, lease_until = NULL,
                 errors = CASE WHEN ?5 IS NULL THEN errors ELSE ",
            errors_with_entry!(),
            " END,
                 failures = failures + (?5 IS NOT NULL)
             WHERE id = ?1 AND status = 'Running' AND attempt = ?2 AND holder = ?3
               AND cancel_requested"
        ))
        .map_err(failed(WHAT))?;
    let mut store_result = connection
        .prepare_cached("INSERT OR REPLACE INTO job_results (job_id, result) VALUES (?1, ?2)")
        .map_err(failed(WHAT))?;
    let mut answers = Vec::with_capacity(changes.len());
    for change in changes {
        let requeue = matches!(change.kind, "Retry" | "Snooze" | "Release");
        let applied = apply
            .execute(params![
                change.id,
                change.attempt,
                change.kind,
                change.error,
                change.entry,
                change.run_at,
                now,
                holder,
                requeue,
                change.kind == "Release"
            ])
            .map_err(failed(WHAT))?;
        let status = if applied == 1 {
            Some(match change.kind {
                _ if requeue => JobStatus::Queued,
                "Succeeded" => JobStatus::Succeeded,
                "Failed" => JobStatus::Failed,
                _ => JobStatus::Canceled,
            })
        } else if requeue
            && cancel_requeue
                .execute(params![
                    change.id,
                    change.attempt,
                    holder,
                    now,
                    change.entry
                ])
                .map_err(failed(WHAT))?
                == 1
        {
            Some(JobStatus::Canceled)
        } else {
            None
        };
        if status == Some(JobStatus::Succeeded) {
            if let Some(result) = &change.result {
                store_result
                    .execute(params![change.id, result])
                    .map_err(failed(WHAT))?;
            }
        }
        answers.push(status);
    }
    let ended = changes.iter().zip(&answers).filter_map(|(change, status)| {
        Some((
            JobId::from_uuid(uuid::Uuid::from_bytes(change.id)),
            (*status)?,
        ))
    });
    let settled = depend::settle_ended(connection, ended)?;
    record_settled(connection, origin, &settled)?;
    Ok((answers, settled))
}

/// Records the events of dependants settled by a write as an event row of `origin`.
pub(crate) fn record_settled(
    connection: &Connection,
    origin: &str,
    events: &[JobEvent],
) -> Result<(), StorageError> {
    if events.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_string(events)
        .map_err(|error| StorageError::with_source("could not encode job events", error))?;
    record_events(connection, origin, &json)
}

/// Extends the leases held by `holder` to `until` (µs), unless they ran out already.
pub(crate) fn renew(
    connection: &Connection,
    holder: &str,
    leases: &[(JobId, u32)],
    until: i64,
) -> Result<Vec<Renewal>, StorageError> {
    const WHAT: &str = "could not renew leases";
    let now = Timestamp::now().as_unix_micros();
    let mut extend = connection
        .prepare_cached(
            "UPDATE jobs SET lease_until = ?1
             WHERE id = ?2 AND status = 'Running' AND attempt = ?3 AND holder = ?4
               AND lease_until > ?5",
        )
        .map_err(failed(WHAT))?;
    leases
        .iter()
        .map(|(id, attempt)| {
            let renewed = extend
                .execute(params![until, id_bytes(*id), attempt, holder, now])
                .map_err(failed(WHAT))?;
            Ok(if renewed == 1 {
                Renewal::Held {
                    cancel_requested: cancel_requested(connection, *id)?,
                }
            } else {
                Renewal::Lost
            })
        })
        .collect()
}

/// Whether a cancel was requested for job `id`.
fn cancel_requested(connection: &Connection, id: JobId) -> Result<bool, StorageError> {
    connection
        .prepare_cached("SELECT cancel_requested FROM jobs WHERE id = ?1")
        .and_then(|mut statement| statement.query_row([id_bytes(id)], |row| row.get(0)))
        .map_err(failed("could not read a job's cancel flag"))
}

/// Up to `limit` running jobs whose lease ran out, oldest lease first.
pub(crate) fn expired(
    connection: &Connection,
    limit: usize,
) -> Result<Vec<jobs_core::ExpiredLease>, StorageError> {
    const WHAT: &str = "could not look for expired leases";
    let mut statement = connection
        .prepare_cached(
            "SELECT id, attempt, holder, max_attempts, failures, cancel_requested
             FROM jobs WHERE status = 'Running' AND lease_until <= ?1
             ORDER BY lease_until LIMIT ?2",
        )
        .map_err(failed(WHAT))?;
    let rows = statement
        .query_map(
            params![
                Timestamp::now().as_unix_micros(),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            expired_from_row,
        )
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(failed(WHAT))?;
    rows.into_iter().collect()
}

/// Records progress of attempt `attempt`; `Some(cancel_requested)` when it is running.
pub(crate) fn update_progress(
    connection: &Connection,
    id: JobId,
    attempt: u32,
    progress: &Progress,
) -> Result<Option<bool>, StorageError> {
    let stored = connection
        .prepare_cached(
            "UPDATE jobs SET progress_percent = ?3, progress_message = ?4
             WHERE id = ?1 AND status = 'Running' AND attempt = ?2",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                id_bytes(id),
                attempt,
                progress.percent.min(100),
                progress.message
            ])
        })
        .map_err(failed("could not store progress"))?;
    if stored == 1 {
        cancel_requested(connection, id).map(Some)
    } else {
        Ok(None)
    }
}

/// Cancels a queued or waiting job (and settles its dependants, recorded as event rows
/// of `origin`), or flags a running one. The events of the dependants settled are the
/// second answer.
pub(crate) fn request_cancel(
    connection: &Connection,
    id: JobId,
    origin: &str,
) -> Result<(CancelOutcome, Vec<JobEvent>), StorageError> {
    const WHAT: &str = "could not cancel the job";
    let Some(mut job) = get(connection, id)?.map(RawJob::into_job).transpose()? else {
        return Ok((CancelOutcome::NotFound, Vec::new()));
    };
    match job.status {
        JobStatus::Queued | JobStatus::Waiting => {
            job.cancel_queued()
                .map_err(|error| StorageError::with_source(WHAT, error))?;
            connection
                .prepare_cached(
                    "UPDATE jobs SET status = 'Canceled', finished_at = ?2, waiting_for = NULL
                     WHERE id = ?1",
                )
                .and_then(|mut statement| {
                    statement.execute(params![
                        id_bytes(id),
                        job.finished_at.map(|at| at.as_unix_micros())
                    ])
                })
                .map_err(failed(WHAT))?;
            let settled = depend::settle_ended(connection, [(id, JobStatus::Canceled)])?;
            record_settled(connection, origin, &settled)?;
            Ok((CancelOutcome::CanceledQueued(job), settled))
        }
        JobStatus::Running => {
            connection
                .prepare_cached("UPDATE jobs SET cancel_requested = 1 WHERE id = ?1")
                .and_then(|mut statement| statement.execute([id_bytes(id)]))
                .map_err(failed(WHAT))?;
            job.cancel_requested = true;
            Ok((CancelOutcome::Requested(job), Vec::new()))
        }
        status => Ok((CancelOutcome::AlreadyFinished(status), Vec::new())),
    }
}

/// The row of job `id`, if any.
pub(crate) fn get(connection: &Connection, id: JobId) -> Result<Option<RawJob>, StorageError> {
    connection
        .prepare_cached(&format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"))
        .and_then(|mut statement| statement.query_row([id_bytes(id)], RawJob::read).optional())
        .map_err(failed("could not read the job"))
}

/// Rows of a page, newest first: one more than the page when more follow.
pub(crate) fn list(connection: &Connection, query: &JobQuery) -> Result<Vec<RawJob>, StorageError> {
    let mut filters = Vec::new();
    // The status is written into the statement, not bound: the planner can only use the
    // partial index of a rare status (`jobs_failed`, `jobs_canceled`) when it sees it.
    if let Some(status) = query.status {
        filters.push(format!("status = '{}'", status.as_str()));
    }
    if query.job_type.is_some() {
        filters.push("job_type = ?2".to_owned());
    }
    if query.cursor.is_some() {
        filters.push("id < ?3".to_owned());
    }
    if query.queue.is_some() {
        filters.push("queue = ?4".to_owned());
    }
    // ?6, the flow, always appears (a constant test without one), so that the statement
    // has the same parameters whichever filters it uses.
    if query.flow.is_some() {
        filters.push("flow = ?6".to_owned());
    } else {
        filters.push("?6 IS NULL".to_owned());
    }
    let filter = format!("WHERE {}", filters.join(" AND "));
    let sql = format!("SELECT {COLUMNS} FROM jobs {filter} ORDER BY id DESC LIMIT ?5");
    let mut statement = connection
        .prepare_cached(&sql)
        .map_err(failed("could not list jobs"))?;
    // ?5 and ?6 always appear, so the statement has six parameters whichever filters it
    // uses (?1 is left unused, the status being written in).
    let limit = i64::try_from(query.limit.clamp(1, JobQuery::MAX_LIMIT) + 1).unwrap_or(1);
    let jobs = statement
        .query_map(
            params![
                None::<&str>,
                query.job_type,
                query.cursor.map(id_bytes),
                query.queue,
                limit,
                query.flow.map(|flow| *flow.as_uuid().as_bytes())
            ],
            RawJob::read,
        )
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(failed("could not list jobs"))?;
    Ok(jobs)
}

/// The page of `rows` (one more than the page when more follow).
pub(crate) fn page(rows: Vec<RawJob>, limit: usize) -> Result<JobPage, StorageError> {
    let limit = limit.clamp(1, JobQuery::MAX_LIMIT);
    let more = rows.len() > limit;
    let jobs = rows
        .into_iter()
        .take(limit)
        .map(RawJob::into_job)
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if more {
        jobs.last().map(|job| job.id)
    } else {
        None
    };
    Ok(JobPage::new(jobs, next_cursor))
}

/// The result text of a succeeded job (`Some(None)`: it returned none).
pub(crate) fn get_result(
    connection: &Connection,
    id: JobId,
) -> Result<Option<Option<String>>, StorageError> {
    connection
        .prepare_cached(
            "SELECT r.result FROM jobs j LEFT JOIN job_results r ON r.job_id = j.id
             WHERE j.id = ?1 AND j.status = 'Succeeded'",
        )
        .and_then(|mut statement| {
            statement
                .query_row([id_bytes(id)], |row| row.get::<_, Option<String>>(0))
                .optional()
        })
        .map_err(failed("could not read the job's result"))
}

/// How many jobs of each type are in each status.
pub(crate) fn count_jobs(connection: &Connection) -> Result<Vec<JobCount>, StorageError> {
    const WHAT: &str = "could not count jobs";
    let mut statement = connection
        .prepare_cached("SELECT job_type, status, count(*) FROM jobs GROUP BY job_type, status")
        .map_err(failed(WHAT))?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(failed(WHAT))?;
    let mut counts = rows
        .into_iter()
        .map(|(job_type, status, count)| {
            Ok(JobCount::new(
                job_type,
                crate::rows::status(&status)?,
                count.max(0) as u64,
            ))
        })
        .collect::<Result<Vec<_>, StorageError>>()?;
    counts.sort_by(|a, b| (&a.job_type, a.status).cmp(&(&b.job_type, b.status)));
    Ok(counts)
}

/// The condition that job `j` is in no flow, or in one whose members have all finished:
/// retention keeps the members of an unfinished flow (served by `jobs_flow`).
macro_rules! flow_finished {
    () => {
        "(j.flow IS NULL OR NOT EXISTS (SELECT 1 FROM jobs m WHERE m.flow = j.flow
             AND (m.status = 'Waiting' OR m.status = 'Queued' OR m.status = 'Running')))"
    };
}

/// Deletes up to `limit` jobs that finished before `before`, oldest first, with their
/// results.
pub(crate) fn prune_finished(
    connection: &Connection,
    before: Timestamp,
    limit: usize,
) -> Result<u64, StorageError> {
    const WHAT: &str = "could not delete finished jobs";
    let ids: Vec<Vec<u8>> = connection
        .prepare_cached(concat!(
            "SELECT id FROM jobs j WHERE finished_at IS NOT NULL AND finished_at < ?1 AND ",
            flow_finished!(),
            " ORDER BY finished_at LIMIT ?2"
        ))
        .and_then(|mut statement| {
            statement
                .query_map(
                    params![
                        before.as_unix_micros(),
                        i64::try_from(limit).unwrap_or(i64::MAX)
                    ],
                    |row| row.get(0),
                )?
                .collect()
        })
        .map_err(failed(WHAT))?;
    for id in &ids {
        delete_job(connection, id)?;
    }
    Ok(ids.len() as u64)
}

/// How many finished jobs finished before `before`.
pub(crate) fn count_finished_before(
    connection: &Connection,
    before: Timestamp,
) -> Result<u64, StorageError> {
    connection
        .prepare_cached(concat!(
            "SELECT count(*) FROM jobs j WHERE finished_at IS NOT NULL AND finished_at < ?1 AND ",
            flow_finished!()
        ))
        .and_then(|mut statement| {
            statement.query_row(params![before.as_unix_micros()], |row| row.get::<_, i64>(0))
        })
        .map(|count| u64::try_from(count).unwrap_or(0))
        .map_err(failed("could not count finished jobs"))
}

/// Deletes job `id` (its bytes) and its result.
pub(crate) fn delete_job(connection: &Connection, id: &[u8]) -> Result<(), StorageError> {
    const WHAT: &str = "could not delete the job";
    connection
        .prepare_cached("DELETE FROM jobs WHERE id = ?1")
        .and_then(|mut statement| statement.execute([id]))
        .map_err(failed(WHAT))?;
    connection
        .prepare_cached("DELETE FROM job_results WHERE job_id = ?1")
        .and_then(|mut statement| statement.execute([id]))
        .map_err(failed(WHAT))?;
    connection
        .prepare_cached("DELETE FROM job_dependencies WHERE child = ?1")
        .and_then(|mut statement| statement.execute([id]))
        .map_err(failed(WHAT))?;
    Ok(())
}

/// The result text as a value (`null` when none was stored).
pub(crate) fn result_value(text: Option<String>) -> Result<serde_json::Value, StorageError> {
    match text {
        Some(text) => json(&text),
        None => Ok(serde_json::Value::Null),
    }
}

#[cfg(test)]
mod tests {
    /// The statement's cap is written as a literal (statements here are literals): it
    /// must be the jobs' one.
    #[test]
    fn the_error_history_cap_is_the_jobs_one() {
        let cap = format!(">= {}", jobs_core::Job::KEPT_ERRORS);
        assert!(
            errors_with_entry!().contains(&cap),
            "{}",
            errors_with_entry!()
        );
    }
}
