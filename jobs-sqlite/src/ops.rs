//! The operator's statements: retry and delete finished jobs, pause and resume queues,
//! per-queue counts, finishes per minute, and worker heartbeats. Retries and deletes run on the writer, which holds
//! the write lock, so each look-up and its change are atomic.

use jobs_core::{
    released_payload, DeleteOutcome, FinishedCount, JobId, JobStatus, KeyCount, PausedQueue,
    QueueCounts, QueueWorkers, RateWindow, Readiness, RetryOutcome, StorageError, Timestamp,
    WorkerInfo,
};
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::failed;
use crate::rows::{id_bytes, RawJob};
use crate::sql::{delete_job, get};

/// Queues each `Failed` or `Canceled` job of `ids` again, by `Job::retry_finished`.
pub(crate) fn retry_many(
    connection: &Connection,
    ids: &[JobId],
) -> Result<Vec<RetryOutcome>, StorageError> {
    const WHAT: &str = "could not retry the job";
    let mut key_held = connection
        .prepare_cached(
            "SELECT 1 FROM jobs WHERE job_type = ?1 AND unique_key = ?2
               AND status IN ('Queued', 'Running')",
        )
        .map_err(failed(WHAT))?;
    let mut update = connection
        .prepare_cached(
            "UPDATE jobs SET status = 'Queued', error = NULL, finished_at = NULL,
                 cancel_requested = 0, progress_percent = NULL, progress_message = NULL,
                 run_at = ?2, max_attempts = ?3, holder = NULL, lease_until = NULL,
                 payload = ?4
             WHERE id = ?1 AND (status = 'Failed' OR status = 'Canceled')",
        )
        .map_err(failed(WHAT))?;
    let mut outcomes = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(mut job) = get(connection, *id)?.map(RawJob::into_job).transpose()? else {
            outcomes.push(RetryOutcome::NotFound);
            continue;
        };
        let from = job.status;
        if !matches!(from, JobStatus::Failed | JobStatus::Canceled) {
            outcomes.push(RetryOutcome::NotRetryable(from));
            continue;
        }
        if job.has_parents() {
            // Its parents must have ended as it needs; it then runs with what they left.
            let mut ends = std::collections::HashMap::new();
            for parent in &job.depends_on {
                if let Some(end) = crate::depend::end_of(connection, *parent)? {
                    ends.insert(*parent, end);
                }
            }
            let statuses = job.depends_on.iter().map(|parent| {
                let status = ends.get(parent).map_or(JobStatus::Canceled, |end| end.0);
                (*parent, status)
            });
            if Readiness::of(job.on_parent_failure, statuses) != Readiness::Ready {
                outcomes.push(RetryOutcome::ParentsNotDone);
                continue;
            }
            job.payload = released_payload(&job, |parent| ends.get(&parent).cloned());
        }
        if job.retry_finished().is_err() {
            outcomes.push(RetryOutcome::NotRetryable(from));
            continue;
        }
        if let Some(key) = &job.unique_key {
            let held = key_held
                .query_row(params![job.job_type, key], |_| Ok(()))
                .optional()
                .map_err(failed(WHAT))?;
            if held.is_some() {
                outcomes.push(RetryOutcome::KeyHeld);
                continue;
            }
        }
        update
            .execute(params![
                id_bytes(*id),
                job.run_at.as_unix_micros(),
                job.max_attempts,
                job.payload.to_string()
            ])
            .map_err(failed(WHAT))?;
        outcomes.push(RetryOutcome::Retried(Box::new(job)));
    }
    Ok(outcomes)
}

/// Deletes each finished job of `ids` with its result.
pub(crate) fn delete_many(
    connection: &Connection,
    ids: &[JobId],
) -> Result<Vec<DeleteOutcome>, StorageError> {
    const WHAT: &str = "could not delete the job";
    let mut status = connection
        .prepare_cached("SELECT status FROM jobs WHERE id = ?1")
        .map_err(failed(WHAT))?;
    let mut outcomes = Vec::with_capacity(ids.len());
    for id in ids {
        let key = id_bytes(*id);
        let found: Option<String> = status
            .query_row([&key], |row| row.get(0))
            .optional()
            .map_err(failed(WHAT))?;
        let outcome = match found.map(|text| crate::rows::status(&text)).transpose()? {
            None => DeleteOutcome::NotFound,
            Some(status) if !status.is_terminal() => DeleteOutcome::NotFinished(status),
            Some(_) => {
                delete_job(connection, &key)?;
                DeleteOutcome::Deleted
            }
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The queued (due and scheduled) and running jobs of each queue that has any.
pub(crate) fn queue_counts(connection: &Connection) -> Result<Vec<QueueCounts>, StorageError> {
    const WHAT: &str = "could not count the queues' jobs";
    let mut statement = connection
        .prepare_cached(
            "SELECT queue,
                 sum(status = 'Queued' AND run_at <= ?1),
                 sum(status = 'Queued' AND run_at > ?1),
                 sum(status = 'Running')
             FROM jobs WHERE status IN ('Queued', 'Running')
             GROUP BY queue ORDER BY queue",
        )
        .map_err(failed(WHAT))?;
    let rows = statement
        .query_map([Timestamp::now().as_unix_micros()], |row| {
            let mut counts = QueueCounts::new(row.get::<_, String>(0)?);
            counts.queued = row.get::<_, i64>(1)?.max(0) as u64;
            counts.scheduled = row.get::<_, i64>(2)?.max(0) as u64;
            counts.running = row.get::<_, i64>(3)?.max(0) as u64;
            Ok(counts)
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(failed(WHAT))?;
    Ok(rows)
}

/// The jobs that finished in each minute since `since`, per queue and status. Only
/// finished jobs have a `finished_at`, so `jobs_finished` serves it.
pub(crate) fn finished_per_minute(
    connection: &Connection,
    since: Timestamp,
) -> Result<Vec<FinishedCount>, StorageError> {
    const WHAT: &str = "could not count finished jobs";
    let mut statement = connection
        .prepare_cached(
            "SELECT finished_at - (finished_at % 60000000), queue, status, count(*)
             FROM jobs WHERE finished_at IS NOT NULL AND finished_at >= ?1
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .map_err(failed(WHAT))?;
    let rows = statement
        .query_map([since.as_unix_micros()], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(failed(WHAT))?;
    rows.into_iter()
        .map(|(minute, queue, status, count)| {
            let status: JobStatus = crate::rows::status(&status)?;
            Ok(FinishedCount::new(
                Timestamp::from_unix_micros(minute),
                queue,
                status,
                count.max(0) as u64,
            ))
        })
        .collect()
}

/// Records or refreshes `worker`'s heartbeat.
pub(crate) fn record_worker(
    connection: &Connection,
    worker: &WorkerInfo,
) -> Result<(), StorageError> {
    const WHAT: &str = "could not record the worker's heartbeat";
    let queues = serde_json::to_string(&worker.queues)
        .map_err(|error| StorageError::with_source(WHAT, error))?;
    connection
        .prepare_cached(
            "INSERT INTO job_workers (id, host, pid, queues, started_at, last_seen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid,
                 queues = excluded.queues, last_seen = excluded.last_seen",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                worker.id,
                worker.host,
                worker.pid,
                queues,
                worker.started_at.as_unix_micros(),
                worker.last_seen.as_unix_micros()
            ])
        })
        .map_err(failed(WHAT))?;
    Ok(())
}

/// Forgets worker `id`.
pub(crate) fn remove_worker(connection: &Connection, id: &str) -> Result<(), StorageError> {
    connection
        .prepare_cached("DELETE FROM job_workers WHERE id = ?1")
        .and_then(|mut statement| statement.execute([id]))
        .map_err(failed("could not remove the worker's heartbeat"))?;
    Ok(())
}

/// Deletes heartbeats older than a day.
pub(crate) fn forget_old_workers(connection: &Connection) -> Result<(), StorageError> {
    let day_ago = Timestamp::now().as_unix_micros() - 86_400_000_000;
    connection
        .prepare_cached("DELETE FROM job_workers WHERE last_seen < ?1")
        .and_then(|mut statement| statement.execute([day_ago]))
        .map_err(failed("could not delete old worker heartbeats"))?;
    Ok(())
}

/// The workers seen at or after `since`, by id.
pub(crate) fn workers(
    connection: &Connection,
    since: Timestamp,
) -> Result<Vec<WorkerInfo>, StorageError> {
    const WHAT: &str = "could not read the workers";
    let mut statement = connection
        .prepare_cached(
            "SELECT id, host, pid, queues, started_at, last_seen FROM job_workers
             WHERE last_seen >= ?1 ORDER BY id",
        )
        .map_err(failed(WHAT))?;
    let rows = statement
        .query_map([since.as_unix_micros()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, u32>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, i64>(5)?,
            ))
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(failed(WHAT))?;
    rows.into_iter()
        .map(|(id, host, pid, queues, started_at, last_seen)| {
            let queues: Vec<QueueWorkers> = serde_json::from_str(&queues)
                .map_err(|error| StorageError::with_source(WHAT, error))?;
            let mut worker = WorkerInfo::new(id, host, pid, queues);
            worker.started_at = Timestamp::from_unix_micros(started_at);
            worker.last_seen = Timestamp::from_unix_micros(last_seen);
            Ok(worker)
        })
        .collect()
}

/// Pauses (`paused`) or resumes `queue`; whether this changed it.
pub(crate) fn set_paused(
    connection: &Connection,
    queue: &str,
    paused: bool,
) -> Result<bool, StorageError> {
    let changed = if paused {
        connection
            .prepare_cached(
                "INSERT INTO job_paused_queues (name, since) VALUES (?1, ?2)
                 ON CONFLICT DO NOTHING",
            )
            .and_then(|mut statement| {
                statement.execute(params![queue, Timestamp::now().as_unix_micros()])
            })
    } else {
        connection
            .prepare_cached("DELETE FROM job_paused_queues WHERE name = ?1")
            .and_then(|mut statement| statement.execute([queue]))
    };
    Ok(changed.map_err(failed("could not pause or resume the queue"))? > 0)
}

/// The paused queues, by name.
pub(crate) fn paused_queues(connection: &Connection) -> Result<Vec<PausedQueue>, StorageError> {
    connection
        .prepare_cached("SELECT name, since FROM job_paused_queues ORDER BY name")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| {
                    Ok(PausedQueue::new(
                        row.get::<_, String>(0)?,
                        Timestamp::from_unix_micros(row.get(1)?),
                    ))
                })?
                .collect()
        })
        .map_err(failed("could not read the paused queues"))
}

/// The concurrency keys of active jobs (only `keys`, when given), with their due queued
/// and running jobs and largest limit, by key.
pub(crate) fn key_counts(
    connection: &Connection,
    keys: Option<&[String]>,
) -> Result<Vec<KeyCount>, StorageError> {
    let keys = keys.map(|keys| serde_json::to_string(keys).expect("keys serialize"));
    connection
        .prepare_cached(
            "SELECT concurrency_key,
                 count(*) FILTER (WHERE status = 'Queued' AND run_at <= ?2),
                 count(*) FILTER (WHERE status = 'Running'),
                 coalesce(max(concurrency_limit), 1)
             FROM jobs
             WHERE concurrency_key IS NOT NULL AND status IN ('Queued', 'Running')
               AND (?1 IS NULL OR concurrency_key IN (SELECT value FROM json_each(?1)))
             GROUP BY 1 ORDER BY 1",
        )
        .and_then(|mut statement| {
            statement
                .query_map(params![keys, Timestamp::now().as_unix_micros()], |row| {
                    Ok(KeyCount::new(
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)? as u64,
                        row.get::<_, i64>(2)? as u64,
                        row.get::<_, i64>(3)?.max(1) as u32,
                    ))
                })?
                .collect()
        })
        .map_err(failed("could not count the jobs of the concurrency keys"))
}

/// The window under way of each of the rate budgets `names` that has one.
pub(crate) fn rate_windows(
    connection: &Connection,
    names: &[String],
) -> Result<Vec<(String, RateWindow)>, StorageError> {
    let names = serde_json::to_string(names).expect("names serialize");
    let now = Timestamp::now().as_unix_micros();
    connection
        .prepare_cached(
            "SELECT name, opened_at, used FROM job_rate_windows
             WHERE name IN (SELECT value FROM json_each(?1)) AND opened_at IS NOT NULL",
        )
        .and_then(|mut statement| {
            statement
                .query_map([names], |row| {
                    let opened: i64 = row.get(1)?;
                    let used: i64 = row.get(2)?;
                    let window = RateWindow {
                        age: Some(std::time::Duration::from_micros(
                            (now - opened).max(0) as u64
                        )),
                        used: u32::try_from(used).unwrap_or(u32::MAX),
                    };
                    Ok((row.get::<_, String>(0)?, window))
                })?
                .collect()
        })
        .map_err(failed("could not read the rate limits' windows"))
}
