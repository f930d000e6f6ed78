//! Reads and the small single-job writes: get, list, result, counts, prune, progress and
//! cancel requests.

use jobs_core::{
    CancelOutcome, Job, JobCount, JobId, JobPage, JobQuery, JobStatus, Progress, ProgressAck,
    StorageError, Timestamp,
};
use serde_json::Value;
use sqlx::postgres::PgPool;
use sqlx::types::Json;
use sqlx::Row;

use crate::checks::without_nul;
use crate::depend::Dependencies;
use crate::error::{storage, unreadable};
use crate::rows::{at_micros, attempt_param, job_from_row, status, COLUMNS};

/// Rows of (type, status, count) as counts.
fn counts_of(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<JobCount>, StorageError> {
    rows.iter()
        .map(|row| {
            let job_type: String = row.try_get(0).map_err(unreadable)?;
            let status = status(row.try_get(1).map_err(unreadable)?)?;
            let count: i64 = row.try_get(2).map_err(unreadable)?;
            Ok(JobCount::new(job_type, status, count.max(0) as u64))
        })
        .collect()
}

/// The read statements of one schema.
pub(crate) struct Reads {
    get: String,
    list_prefix: String,
    result: String,
    counts: String,
    capped_counts: String,
    schema: String,
    prune: String,
    prunable: String,
    progress: String,
    cancel: String,
}

impl Reads {
    pub(crate) fn new(schema: &str) -> Self {
        let jobs = format!("{schema}.jobs");
        let results = format!("{schema}.job_results");
        let before = at_micros("$1::int8");
        // Retention keeps every member of a flow until all of them have finished
        // (`jobs_flow_unfinished`).
        let flow_done = format!(
            "(j.flow IS NULL OR NOT EXISTS (SELECT 1 FROM {jobs} m WHERE m.flow = j.flow
                 AND m.status IN ('Waiting', 'Queued', 'Running')))"
        );
        Self {
            get: format!("SELECT {COLUMNS} FROM {jobs} WHERE id = $1"),
            list_prefix: format!("SELECT {COLUMNS} FROM {jobs}"),
            // A `null` result is not stored: a succeeded job without a row has that result.
            result: format!(
                "SELECT coalesce(r.result, 'null'::jsonb) FROM {jobs} j
                 LEFT JOIN {results} r ON r.job_id = j.id
                 WHERE j.id = $1 AND j.status = 'Succeeded'"
            ),
            counts: format!(
                "SELECT job_type, status, count(*) FROM {jobs} GROUP BY job_type, status"
            ),
            // Every (type, status) pair's count, but at most $1: the types are found by
            // skipping through `jobs_type_status_id` (one probe per type), and each count
            // reads at most $1 of its entries.
            capped_counts: format!(
                "WITH RECURSIVE types(job_type) AS (
                     (SELECT job_type FROM {jobs} ORDER BY job_type LIMIT 1)
                     UNION ALL
                     SELECT (SELECT j.job_type FROM {jobs} j WHERE j.job_type > t.job_type
                             ORDER BY j.job_type LIMIT 1)
                     FROM types t WHERE t.job_type IS NOT NULL)
                 SELECT t.job_type, s.status, c.n
                 FROM types t
                 CROSS JOIN unnest(ARRAY['Waiting', 'Queued', 'Running', 'Succeeded', 'Failed', 'Canceled'])
                     AS s(status)
                 CROSS JOIN LATERAL (
                     SELECT count(*) AS n FROM (
                         SELECT 1 FROM {jobs} j
                         WHERE j.job_type = t.job_type AND j.status = s.status LIMIT $1) capped
                 ) c
                 WHERE t.job_type IS NOT NULL AND c.n > 0"
            ),
            schema: schema.to_owned(),
            // Up to $2 jobs that finished before $1 (µs), oldest first (`jobs_finished`);
            // their results go with them (ON DELETE CASCADE).
            prune: format!(
                "WITH doomed AS MATERIALIZED (
                     SELECT id FROM {jobs} j
                     WHERE status IN ('Succeeded', 'Failed', 'Canceled') AND finished_at < {before}
                       AND {flow_done}
                     ORDER BY finished_at LIMIT $2
                     FOR UPDATE SKIP LOCKED)
                 DELETE FROM {jobs} WHERE id IN (SELECT id FROM doomed)"
            ),
            prunable: format!(
                "SELECT count(*) FROM {jobs} j
                 WHERE status IN ('Succeeded', 'Failed', 'Canceled') AND finished_at < {before}
                   AND {flow_done}"
            ),
            progress: format!(
                "UPDATE {jobs} SET progress_percent = $3, progress_message = $4
                 WHERE id = $1 AND status = 'Running' AND attempt = $2
                 RETURNING cancel_requested"
            ),
            // One statement, one row lock: a queued or waiting job is canceled, a running
            // one gets its flag (once: a job flagged already is not written again).
            cancel: format!(
                "UPDATE {jobs} SET
                     status = CASE WHEN status IN ('Queued', 'Waiting') THEN 'Canceled'
                                   ELSE status END,
                     finished_at = CASE WHEN status IN ('Queued', 'Waiting') THEN now()
                                        ELSE finished_at END,
                     waiting_for = NULL,
                     cancel_requested = cancel_requested OR status = 'Running'
                 WHERE id = $1
                   AND (status IN ('Queued', 'Waiting')
                        OR (status = 'Running' AND NOT cancel_requested))
                 RETURNING {COLUMNS}, has_dependants"
            ),
        }
    }

    pub(crate) async fn get(&self, pool: &PgPool, id: JobId) -> Result<Option<Job>, StorageError> {
        sqlx::query(&self.get)
            .bind(id.as_uuid())
            .fetch_optional(pool)
            .await
            .map_err(storage("could not read the job"))?
            .map(|row| job_from_row(&row))
            .transpose()
    }

    pub(crate) async fn list(
        &self,
        pool: &PgPool,
        query: JobQuery,
    ) -> Result<JobPage, StorageError> {
        let limit = query.limit.clamp(1, JobQuery::MAX_LIMIT);
        let mut conditions = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        // The status is written into the statement, not bound: a generic plan of a
        // prepared statement cannot use the partial index of a rare status
        // (`jobs_failed`, `jobs_canceled`), since it does not know the status.
        if let Some(status) = query.status {
            conditions.push(format!("status = '{}'", status.as_str()));
        }
        if query.job_type.is_some() {
            conditions.push(format!("job_type = ${}", next()));
        }
        if query.queue.is_some() {
            conditions.push(format!("queue = ${}", next()));
        }
        if query.cursor.is_some() {
            conditions.push(format!("id < ${}", next()));
        }
        if query.flow.is_some() {
            conditions.push(format!("flow = ${}", next()));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "{}{filter} ORDER BY id DESC LIMIT {}",
            self.list_prefix,
            limit + 1
        );
        let mut statement = sqlx::query(&sql);
        if let Some(job_type) = &query.job_type {
            statement = statement.bind(job_type);
        }
        if let Some(queue) = &query.queue {
            statement = statement.bind(queue);
        }
        if let Some(cursor) = query.cursor {
            statement = statement.bind(*cursor.as_uuid());
        }
        if let Some(flow) = query.flow {
            statement = statement.bind(*flow.as_uuid());
        }
        let rows = statement
            .fetch_all(pool)
            .await
            .map_err(storage("could not list jobs"))?;
        let mut jobs = rows
            .iter()
            .map(job_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let more = jobs.len() > limit;
        jobs.truncate(limit);
        let next_cursor = if more {
            jobs.last().map(|job| job.id)
        } else {
            None
        };
        Ok(JobPage::new(jobs, next_cursor))
    }

    pub(crate) async fn get_result(
        &self,
        pool: &PgPool,
        id: JobId,
    ) -> Result<Option<Value>, StorageError> {
        let row = sqlx::query(&self.result)
            .bind(id.as_uuid())
            .fetch_optional(pool)
            .await
            .map_err(storage("could not read the result"))?;
        row.map(|row| row.try_get::<Json<Value>, _>(0).map(|json| json.0))
            .transpose()
            .map_err(unreadable)
    }

    pub(crate) async fn count_jobs(&self, pool: &PgPool) -> Result<Vec<JobCount>, StorageError> {
        let rows = sqlx::query(&self.counts)
            .fetch_all(pool)
            .await
            .map_err(storage("could not count jobs"))?;
        let mut counts = counts_of(&rows)?;
        counts.sort_by(|a, b| (&a.job_type, a.status).cmp(&(&b.job_type, b.status)));
        Ok(counts)
    }

    /// Exact counts up to `exact_limit` per type and status, estimates above it (the
    /// planner's, from the statistics of the last ANALYZE scaled to the table's current
    /// size, never less than the limit).
    pub(crate) async fn estimate_counts(
        &self,
        pool: &PgPool,
        exact_limit: u64,
    ) -> Result<Vec<JobCount>, StorageError> {
        let failed = |error| storage("could not count jobs")(error);
        let mut tx = pool.begin().await.map_err(&failed)?;
        // The statement's estimated cost would start the JIT compiler, which costs more
        // than the statement (a probe per type and a short index range per pair).
        sqlx::query("SET LOCAL jit = off")
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
        let cap = i64::try_from(exact_limit.saturating_add(1)).unwrap_or(i64::MAX);
        let rows = sqlx::query(&self.capped_counts)
            .bind(cap)
            .fetch_all(&mut *tx)
            .await
            .map_err(&failed)?;
        let mut counts = counts_of(&rows)?;
        for count in counts.iter_mut().filter(|count| count.count > exact_limit) {
            // The planner's estimate of the pair's rows: the extended statistics of
            // migration 7 (kept by ANALYZE) scaled to the table's current size. Unlike
            // `pg_stats_ext`, it needs no ownership of the table. The values are written
            // in (a type as a quoted literal), so that the plan is made for them.
            let sql = format!(
                "EXPLAIN (FORMAT JSON) SELECT 1 FROM {}.jobs WHERE job_type = '{}' AND status = '{}'",
                self.schema,
                count.job_type.replace('\'', "''"),
                count.status.as_str()
            );
            let plan: Json<Value> = sqlx::query_scalar(&sql)
                .fetch_one(&mut *tx)
                .await
                .map_err(&failed)?;
            let rows = plan.0[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0);
            *count = JobCount::estimate(
                count.job_type.clone(),
                count.status,
                (rows.max(0.0).round() as u64).max(exact_limit + 1),
            );
        }
        tx.commit().await.map_err(&failed)?;
        counts.sort_by(|a, b| (&a.job_type, a.status).cmp(&(&b.job_type, b.status)));
        Ok(counts)
    }

    pub(crate) async fn prune_finished(
        &self,
        pool: &PgPool,
        before: Timestamp,
        limit: usize,
    ) -> Result<u64, StorageError> {
        if limit == 0 {
            return Ok(0);
        }
        let done = sqlx::query(&self.prune)
            .bind(before.as_unix_micros())
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .execute(pool)
            .await
            .map_err(storage("could not delete finished jobs"))?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn count_finished_before(
        &self,
        pool: &PgPool,
        before: Timestamp,
    ) -> Result<u64, StorageError> {
        let count: i64 = sqlx::query_scalar(&self.prunable)
            .bind(before.as_unix_micros())
            .fetch_one(pool)
            .await
            .map_err(storage("could not count finished jobs"))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    pub(crate) async fn update_progress(
        &self,
        pool: &PgPool,
        id: JobId,
        attempt: u32,
        progress: Progress,
    ) -> Result<ProgressAck, StorageError> {
        let row = sqlx::query(&self.progress)
            .bind(id.as_uuid())
            .bind(attempt_param(attempt))
            .bind(i16::from(progress.percent.min(100)))
            .bind(without_nul(&progress.message))
            .fetch_optional(pool)
            .await
            .map_err(storage("could not store progress"))?;
        Ok(match row {
            Some(row) => ProgressAck::Stored {
                cancel_requested: row.try_get(0).map_err(unreadable)?,
            },
            None => ProgressAck::NotRunning,
        })
    }

    /// Cancels a queued job or flags a running one, in one statement; when it changes
    /// nothing, the job is read to say why.
    /// Cancels a queued or waiting job, with its dependants in the same transaction, or
    /// flags a running one.
    pub(crate) async fn request_cancel(
        &self,
        pool: &PgPool,
        dependencies: &Dependencies,
        id: JobId,
    ) -> Result<CancelOutcome, StorageError> {
        let failed = "could not cancel the job";
        // A job read as queued right after the update missed it was stored in between:
        // try again.
        for _ in 0..3 {
            let mut tx = pool.begin().await.map_err(storage(failed))?;
            let changed = sqlx::query(&self.cancel)
                .bind(id.as_uuid())
                .fetch_optional(&mut *tx)
                .await
                .map_err(storage(failed))?;
            if let Some(row) = changed {
                let job = job_from_row(&row)?;
                let has_dependants: bool = row.try_get("has_dependants").map_err(unreadable)?;
                if job.status == JobStatus::Canceled && has_dependants {
                    dependencies
                        .settle_ended(&mut tx, vec![(*id.as_uuid(), JobStatus::Canceled)])
                        .await
                        .map_err(storage(failed))?;
                }
                tx.commit().await.map_err(storage(failed))?;
                return Ok(match job.status {
                    JobStatus::Running => CancelOutcome::Requested(job),
                    _ => CancelOutcome::CanceledQueued(job),
                });
            }
            tx.rollback().await.map_err(storage(failed))?;
            let Some(job) = self.get(pool, id).await? else {
                return Ok(CancelOutcome::NotFound);
            };
            match job.status {
                JobStatus::Queued | JobStatus::Waiting => continue,
                // Flagged already.
                JobStatus::Running => return Ok(CancelOutcome::Requested(job)),
                status => return Ok(CancelOutcome::AlreadyFinished(status)),
            }
        }
        Err(StorageError::transient(format!(
            "{failed}: job {id} kept changing while it was being canceled"
        )))
    }
}
