//! Claims: due queued jobs of a queue become `Running` for a holder, in one statement
//! with `FOR UPDATE SKIP LOCKED`, so that two claims never get the same job.

use std::collections::HashMap;
use std::time::Duration;

use jobs_core::{ClaimRequest, ClaimedJob, StorageError};
use sqlx::postgres::PgPool;

use crate::error::storage;
use crate::rows::{claimed_from_row, micros};

/// The claim statements of one schema, and the queues with a cluster-wide limit.
pub(crate) struct Claims {
    claim: String,
    queue_lock: String,
    next_due: String,
    global_limits: HashMap<String, u32>,
}

impl Claims {
    pub(crate) fn new(schema: &str, global_limits: HashMap<String, u32>) -> Self {
        let jobs = format!("{schema}.jobs");
        let paused = format!("{schema}.job_paused_queues");
        Self {
            // $1 holder, $2 lease (µs), $3 how many, $4 the queue, $5 its cluster-wide
            // limit (NULL: none; else the caller holds the queue's advisory lock). Served
            // by `jobs_due`; a paused queue gives none. Answered in claim order.
            claim: format!(
                "WITH picked AS MATERIALIZED (
                     SELECT id FROM {jobs}
                     WHERE status = 'Queued' AND queue = $4 AND run_at <= now()
                       AND NOT EXISTS (SELECT 1 FROM {paused} WHERE name = $4)
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
                         progress_percent = NULL, progress_message = NULL,
                         worker_id = $1, lease_expires_at = now() + $2 * interval '1 microsecond'
                     FROM picked p WHERE j.id = p.id
                     RETURNING j.id, j.job_type, j.payload, j.attempt, j.max_attempts,
                               jsonb_array_length(j.errors) AS failures, j.timeout_ms,
                               j.priority, j.run_at)
                 SELECT id, job_type, payload, attempt, max_attempts, failures, timeout_ms
                 FROM claimed ORDER BY priority DESC, run_at, id"
            ),
            // Claims of one queue with a cluster-wide limit take turns ($1 the queue).
            queue_lock: format!("SELECT pg_advisory_xact_lock(hashtext('{jobs}.queue.' || $1))"),
            // Microseconds until the earliest queued job is due (NULL when none is queued
            // or the queue is paused; zero or less when one is due now).
            next_due: format!(
                "SELECT (extract(epoch FROM min(run_at) - now()) * 1000000)::int8
                 FROM {jobs} WHERE status = 'Queued' AND queue = $1
                   AND NOT EXISTS (SELECT 1 FROM {paused} WHERE name = $1)"
            ),
            global_limits,
        }
    }

    /// Claims up to `request.limit` due jobs of `request.queue`. A queue with a
    /// cluster-wide limit claims inside a transaction that first takes the queue's
    /// advisory lock, so that its claims take turns across processes and the count of its
    /// running jobs holds.
    pub(crate) async fn claim(
        &self,
        pool: &PgPool,
        request: ClaimRequest<'_>,
    ) -> Result<Vec<ClaimedJob>, StorageError> {
        if request.limit == 0 {
            return Ok(Vec::new());
        }
        let failed = "could not claim jobs";
        let limit = self.global_limits.get(request.queue).map(|n| i64::from(*n));
        let query = sqlx::query(&self.claim)
            .bind(request.holder)
            .bind(micros(request.lease))
            .bind(i64::try_from(request.limit).unwrap_or(i64::MAX))
            .bind(request.queue)
            .bind(limit);
        let rows = if limit.is_none() {
            query.fetch_all(pool).await.map_err(storage(failed))?
        } else {
            let mut tx = pool.begin().await.map_err(storage(failed))?;
            sqlx::query(&self.queue_lock)
                .bind(request.queue)
                .execute(&mut *tx)
                .await
                .map_err(storage(failed))?;
            let rows = query.fetch_all(&mut *tx).await.map_err(storage(failed))?;
            tx.commit().await.map_err(storage(failed))?;
            rows
        };
        rows.iter().map(claimed_from_row).collect()
    }

    /// How long until the earliest queued job of `queue` is due by the database's clock.
    pub(crate) async fn next_due(
        &self,
        pool: &PgPool,
        queue: &str,
    ) -> Result<Option<Duration>, StorageError> {
        let micros: Option<i64> = sqlx::query_scalar(&self.next_due)
            .bind(queue)
            .fetch_one(pool)
            .await
            .map_err(storage("could not read when the next job is due"))?;
        Ok(micros.map(|us| Duration::from_micros(u64::try_from(us).unwrap_or(0))))
    }
}
