//! The operator's statements: retry and delete finished jobs, pause and resume queues,
//! per-queue and per-key counts, rate windows, finishes per minute, and worker heartbeats.

use std::collections::HashMap;

use jobs_core::{
    DeleteOutcome, FinishedCount, JobId, JobStatus, KeyCount, PausedQueue, QueueCounts,
    QueueWorkers, RateWindow, RetryOutcome, StorageError, Timestamp, WorkerInfo,
};
use serde_json::Value;
use sqlx::postgres::PgPool;
use sqlx::types::Json;
use sqlx::Row;
use uuid::Uuid;

use crate::depend::Dependencies;
use crate::error::{storage, unreadable};
use crate::rows::{at_micros, job_from_row, status, COLUMNS};

/// The operator's statements of one schema.
pub(crate) struct Ops {
    retry: String,
    delete: String,
    statuses: String,
    queue_counts: String,
    finished: String,
    record_worker: String,
    remove_worker: String,
    workers: String,
    forget_old_workers: String,
    pause: String,
    resume: String,
    paused: String,
    key_counts: String,
    rate_windows: String,
}

/// The `timestamptz` expression `at` as microseconds since the epoch.
fn micros(at: &str) -> String {
    format!("(extract(epoch FROM {at}) * 1000000)::int8")
}

impl Ops {
    pub(crate) fn new(schema: &str) -> Self {
        let jobs = format!("{schema}.jobs");
        let workers = format!("{schema}.job_workers");
        let paused = format!("{schema}.job_paused_queues");
        let since = at_micros("$1::int8");
        Self {
            // $1 the ids; $2 and $3 the payloads of dependants that take their parents'
            // results, as a release would give them. The rule of `Job::retry_finished`, by compare-and-set on the
            // status. A job whose unique key another active job holds is left alone, and
            // of several retried jobs sharing a key only the newest is queued, so the
            // unique index is never hit.
            retry: format!(
                "WITH locked AS (
                     SELECT j.id AS locked_id, j.job_type AS locked_type, j.unique_key AS locked_key
                     FROM {jobs} j
                     WHERE j.id = ANY($1) AND j.status IN ('Failed', 'Canceled')
                     FOR UPDATE),
                 free AS (
                     SELECT locked_id, locked_key, row_number() OVER (
                         PARTITION BY locked_type, locked_key ORDER BY locked_id DESC) AS rank
                     FROM locked l
                     WHERE locked_key IS NULL OR NOT EXISTS (
                         SELECT 1 FROM {jobs} o
                         WHERE o.job_type = l.locked_type AND o.unique_key = l.locked_key
                           AND o.status IN ('Queued', 'Running')))
                 UPDATE {jobs} j SET
                     status = 'Queued', error = NULL, finished_at = NULL,
                     payload = coalesce((SELECT p.payload FROM unnest($2::uuid[], $3::jsonb[])
                                         AS p(id, payload) WHERE p.id = j.id), j.payload),
                     cancel_requested = false, progress_percent = NULL, progress_message = NULL,
                     run_at = now(), worker_id = NULL, lease_expires_at = NULL,
                     max_attempts = GREATEST(j.max_attempts, j.failures + 1)
                 FROM free f
                 WHERE j.id = f.locked_id AND (f.locked_key IS NULL OR f.rank = 1)
                 RETURNING {COLUMNS}"
            ),
            // Results go with their jobs (ON DELETE CASCADE).
            delete: format!(
                "DELETE FROM {jobs}
                 WHERE id = ANY($1) AND status IN ('Succeeded', 'Failed', 'Canceled')
                 RETURNING id"
            ),
            statuses: format!("SELECT id, status FROM {jobs} WHERE id = ANY($1)"),
            // Served by the partial indexes of queued (`jobs_due`, without reading the
            // table) and running jobs (`jobs_running_lease`): one arm per status, since
            // the planner matches a partial index to `status = '…'`, not to an IN list (with
            // which a table of 10,000,000 finished jobs was read whole, 1.9 s, against 3 ms).
            queue_counts: format!(
                "SELECT queue, sum(due)::int8, sum(scheduled)::int8, sum(running)::int8
                 FROM (
                     SELECT queue, count(*) FILTER (WHERE run_at <= now()) AS due,
                            count(*) FILTER (WHERE run_at > now()) AS scheduled, 0 AS running
                     FROM {jobs} WHERE status = 'Queued' GROUP BY queue
                     UNION ALL
                     SELECT queue, 0, 0, count(*) FROM {jobs}
                     WHERE status = 'Running' GROUP BY queue
                 ) counts
                 GROUP BY queue ORDER BY queue"
            ),
            // Served by `jobs_finished`.
            finished: format!(
                "SELECT {}, queue, status, count(*)
                 FROM {jobs}
                 WHERE status IN ('Succeeded', 'Failed', 'Canceled') AND finished_at >= {since}
                 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
                micros("date_trunc('minute', finished_at)")
            ),
            record_worker: format!(
                "INSERT INTO {workers} (id, host, pid, queues, started_at, last_seen)
                 VALUES ($1, $2, $3, $4, {}, {})
                 ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid,
                     queues = EXCLUDED.queues, last_seen = EXCLUDED.last_seen",
                at_micros("$5::int8"),
                at_micros("$6::int8")
            ),
            remove_worker: format!("DELETE FROM {workers} WHERE id = $1"),
            workers: format!(
                "SELECT id, host, pid, queues, {}, {} FROM {workers}
                 WHERE last_seen >= {since} ORDER BY id",
                micros("started_at"),
                micros("last_seen")
            ),
            forget_old_workers: format!(
                "DELETE FROM {workers} WHERE last_seen < now() - interval '1 day'"
            ),
            // $1 the queue; a row comes back when the call changed it.
            pause: format!(
                "INSERT INTO {paused} (name) VALUES ($1) ON CONFLICT DO NOTHING RETURNING 1"
            ),
            resume: format!("DELETE FROM {paused} WHERE name = $1 RETURNING 1"),
            paused: format!(
                "SELECT name, {} FROM {paused} ORDER BY name",
                micros("since")
            ),
            // $1 the keys (NULL: every key). Served by the partial indexes of queued and
            // running keyed jobs, one arm each (see `queue_counts`).
            key_counts: format!(
                "SELECT concurrency_key, sum(due)::int8, sum(running)::int8,
                        COALESCE(max(lim), 1)
                 FROM (
                     SELECT concurrency_key, count(*) FILTER (WHERE run_at <= now()) AS due,
                            0 AS running, max(concurrency_limit) AS lim
                     FROM {jobs}
                     WHERE status = 'Queued' AND concurrency_key IS NOT NULL
                       AND ($1::text[] IS NULL OR concurrency_key = ANY($1))
                     GROUP BY 1
                     UNION ALL
                     SELECT concurrency_key, 0, count(*), max(concurrency_limit)
                     FROM {jobs}
                     WHERE status = 'Running' AND concurrency_key IS NOT NULL
                       AND ($1::text[] IS NULL OR concurrency_key = ANY($1))
                     GROUP BY 1
                 ) keys
                 GROUP BY 1 ORDER BY 1"
            ),
            rate_windows: format!(
                "SELECT name, (extract(epoch FROM now() - opened_at) * 1000000)::int8, used
                 FROM {schema}.job_rate_windows WHERE name = ANY($1) AND opened_at IS NOT NULL"
            ),
        }
    }

    /// The status of each of `ids` that exists.
    async fn statuses(
        &self,
        pool: &PgPool,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, JobStatus>, StorageError> {
        let rows = sqlx::query(&self.statuses)
            .bind(ids)
            .fetch_all(pool)
            .await
            .map_err(storage("could not read the jobs' statuses"))?;
        rows.iter()
            .map(|row| {
                let id: Uuid = row.try_get(0).map_err(unreadable)?;
                Ok((id, status(row.try_get(1).map_err(unreadable)?)?))
            })
            .collect()
    }

    /// Retries the finished jobs `ids`; a dependant only once its parents have ended as
    /// it needs (read just before: a parent retried meanwhile is not seen).
    pub(crate) async fn retry_many(
        &self,
        pool: &PgPool,
        dependencies: &Dependencies,
        ids: &[JobId],
    ) -> Result<Vec<RetryOutcome>, StorageError> {
        let uuids: Vec<Uuid> = ids.iter().map(|id| *id.as_uuid()).collect();
        let (not_ready, payloads) = dependencies.check_retries(pool, &uuids).await?;
        let ready: Vec<Uuid> = uuids
            .iter()
            .filter(|id| !not_ready.contains(id))
            .copied()
            .collect();
        let (payload_ids, payloads): (Vec<Uuid>, Vec<Json<Value>>) = payloads
            .into_iter()
            .map(|(id, payload)| (id, Json(payload)))
            .unzip();
        let rows = sqlx::query(&self.retry)
            .bind(&ready)
            .bind(payload_ids)
            .bind(payloads)
            .fetch_all(pool)
            .await
            .map_err(storage("could not retry the jobs"))?;
        let mut retried = HashMap::with_capacity(rows.len());
        for row in &rows {
            let job = job_from_row(row)?;
            retried.insert(*job.id.as_uuid(), job);
        }
        let rest = if retried.len() < ids.len() {
            self.statuses(pool, &uuids).await?
        } else {
            HashMap::new()
        };
        Ok(uuids
            .iter()
            .map(|id| match (retried.remove(id), rest.get(id)) {
                (Some(job), _) => RetryOutcome::Retried(Box::new(job)),
                (None, Some(_)) if not_ready.contains(id) => RetryOutcome::ParentsNotDone,
                (None, None) => RetryOutcome::NotFound,
                // Still retryable, so left alone for its unique key.
                (None, Some(JobStatus::Failed | JobStatus::Canceled)) => RetryOutcome::KeyHeld,
                (None, Some(status)) => RetryOutcome::NotRetryable(*status),
            })
            .collect())
    }

    pub(crate) async fn delete_many(
        &self,
        pool: &PgPool,
        ids: &[JobId],
    ) -> Result<Vec<DeleteOutcome>, StorageError> {
        let uuids: Vec<Uuid> = ids.iter().map(|id| *id.as_uuid()).collect();
        let rows = sqlx::query(&self.delete)
            .bind(&uuids)
            .fetch_all(pool)
            .await
            .map_err(storage("could not delete the jobs"))?;
        let deleted: std::collections::HashSet<Uuid> = rows
            .iter()
            .map(|row| row.try_get(0).map_err(unreadable))
            .collect::<Result<_, _>>()?;
        let rest = if deleted.len() < ids.len() {
            self.statuses(pool, &uuids).await?
        } else {
            HashMap::new()
        };
        Ok(uuids
            .iter()
            .map(|id| match rest.get(id) {
                _ if deleted.contains(id) => DeleteOutcome::Deleted,
                None => DeleteOutcome::NotFound,
                // Deleted meanwhile by another call is `NotFound`; a finished job left
                // here finished after the delete looked.
                Some(status) => DeleteOutcome::NotFinished(*status),
            })
            .collect())
    }

    pub(crate) async fn queue_counts(
        &self,
        pool: &PgPool,
    ) -> Result<Vec<QueueCounts>, StorageError> {
        let rows = sqlx::query(&self.queue_counts)
            .fetch_all(pool)
            .await
            .map_err(storage("could not count the queues' jobs"))?;
        let count = |row: &sqlx::postgres::PgRow, at: usize| {
            row.try_get::<i64, _>(at)
                .map(|n| n.max(0) as u64)
                .map_err(unreadable)
        };
        rows.iter()
            .map(|row| {
                let mut counts = QueueCounts::new(row.try_get::<String, _>(0).map_err(unreadable)?);
                counts.queued = count(row, 1)?;
                counts.scheduled = count(row, 2)?;
                counts.running = count(row, 3)?;
                Ok(counts)
            })
            .collect()
    }

    pub(crate) async fn finished_per_minute(
        &self,
        pool: &PgPool,
        since: Timestamp,
    ) -> Result<Vec<FinishedCount>, StorageError> {
        let rows = sqlx::query(&self.finished)
            .bind(since.as_unix_micros())
            .fetch_all(pool)
            .await
            .map_err(storage("could not count finished jobs"))?;
        rows.iter()
            .map(|row| {
                let minute = Timestamp::from_unix_micros(row.try_get(0).map_err(unreadable)?);
                let queue: String = row.try_get(1).map_err(unreadable)?;
                let status = status(row.try_get(2).map_err(unreadable)?)?;
                let count: i64 = row.try_get(3).map_err(unreadable)?;
                Ok(FinishedCount::new(
                    minute,
                    queue,
                    status,
                    count.max(0) as u64,
                ))
            })
            .collect()
    }

    pub(crate) async fn record_worker(
        &self,
        pool: &PgPool,
        worker: &WorkerInfo,
    ) -> Result<(), StorageError> {
        sqlx::query(&self.forget_old_workers)
            .execute(pool)
            .await
            .map_err(storage("could not delete old worker heartbeats"))?;
        sqlx::query(&self.record_worker)
            .bind(&worker.id)
            .bind(&worker.host)
            .bind(i64::from(worker.pid))
            .bind(Json(&worker.queues))
            .bind(worker.started_at.as_unix_micros())
            .bind(worker.last_seen.as_unix_micros())
            .execute(pool)
            .await
            .map_err(storage("could not record the worker's heartbeat"))?;
        Ok(())
    }

    pub(crate) async fn remove_worker(&self, pool: &PgPool, id: &str) -> Result<(), StorageError> {
        sqlx::query(&self.remove_worker)
            .bind(id)
            .execute(pool)
            .await
            .map_err(storage("could not remove the worker's heartbeat"))?;
        Ok(())
    }

    pub(crate) async fn workers(
        &self,
        pool: &PgPool,
        since: Timestamp,
    ) -> Result<Vec<WorkerInfo>, StorageError> {
        let rows = sqlx::query(&self.workers)
            .bind(since.as_unix_micros())
            .fetch_all(pool)
            .await
            .map_err(storage("could not read the workers"))?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get(0).map_err(unreadable)?;
                let host: String = row.try_get(1).map_err(unreadable)?;
                let pid: i64 = row.try_get(2).map_err(unreadable)?;
                let queues: Json<Vec<QueueWorkers>> = row.try_get(3).map_err(unreadable)?;
                let mut worker = WorkerInfo::new(id, host, pid as u32, queues.0);
                worker.started_at =
                    Timestamp::from_unix_micros(row.try_get(4).map_err(unreadable)?);
                worker.last_seen = Timestamp::from_unix_micros(row.try_get(5).map_err(unreadable)?);
                Ok(worker)
            })
            .collect()
    }

    pub(crate) async fn set_paused(
        &self,
        pool: &PgPool,
        queue: &str,
        paused: bool,
    ) -> Result<bool, StorageError> {
        let statement = if paused { &self.pause } else { &self.resume };
        let changed = sqlx::query(statement)
            .bind(queue)
            .fetch_optional(pool)
            .await
            .map_err(storage("could not pause or resume the queue"))?;
        Ok(changed.is_some())
    }

    pub(crate) async fn paused_queues(
        &self,
        pool: &PgPool,
    ) -> Result<Vec<PausedQueue>, StorageError> {
        let rows = sqlx::query(&self.paused)
            .fetch_all(pool)
            .await
            .map_err(storage("could not read the paused queues"))?;
        rows.iter()
            .map(|row| {
                let queue: String = row.try_get(0).map_err(unreadable)?;
                let since = Timestamp::from_unix_micros(row.try_get(1).map_err(unreadable)?);
                Ok(PausedQueue::new(queue, since))
            })
            .collect()
    }

    pub(crate) async fn key_counts(
        &self,
        pool: &PgPool,
        keys: Option<&[String]>,
    ) -> Result<Vec<KeyCount>, StorageError> {
        let rows = sqlx::query(&self.key_counts)
            .bind(keys)
            .fetch_all(pool)
            .await
            .map_err(storage("could not count the jobs of the concurrency keys"))?;
        rows.iter()
            .map(|row| {
                let key: String = row.try_get(0).map_err(unreadable)?;
                let queued: i64 = row.try_get(1).map_err(unreadable)?;
                let running: i64 = row.try_get(2).map_err(unreadable)?;
                let limit: i32 = row.try_get(3).map_err(unreadable)?;
                Ok(KeyCount::new(
                    key,
                    queued as u64,
                    running as u64,
                    limit.max(1) as u32,
                ))
            })
            .collect()
    }

    pub(crate) async fn rate_windows(
        &self,
        pool: &PgPool,
        names: &[String],
    ) -> Result<Vec<(String, RateWindow)>, StorageError> {
        let rows = sqlx::query(&self.rate_windows)
            .bind(names)
            .fetch_all(pool)
            .await
            .map_err(storage("could not read the rate limits' windows"))?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get(0).map_err(unreadable)?;
                let age: i64 = row.try_get(1).map_err(unreadable)?;
                let used: i64 = row.try_get(2).map_err(unreadable)?;
                let window = RateWindow {
                    age: Some(std::time::Duration::from_micros(age.max(0) as u64)),
                    used: u32::try_from(used).unwrap_or(u32::MAX),
                };
                Ok((name, window))
            })
            .collect()
    }
}
