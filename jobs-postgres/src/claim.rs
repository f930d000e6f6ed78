//! Claims: due queued jobs of a queue become `Running` for a holder, in one statement
//! with `FOR UPDATE SKIP LOCKED`, so that two claims never get the same job.
//!
//! Jobs with a concurrency key, and claims under rate limits, take the checked path: one
//! transaction that locks the limits' windows, the due jobs, and the keys (advisory
//! locks, in name order, so that claims of one key take turns), then counts the running
//! jobs of each key in a statement of its own, which sees every claim committed before
//! the lock was granted.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jobs_core::{ClaimRequest, ClaimedJob, RateBudgets, RateWindow, StorageError};
use sqlx::postgres::PgPool;
use sqlx::Row;
use uuid::Uuid;

use crate::error::{from_sqlx, storage, unreadable};
use crate::rows::{claimed_from_row, micros};

/// The claim statements of one schema, and the queues with a cluster-wide limit.
pub(crate) struct Claims {
    claim: String,
    open_windows: String,
    candidates: String,
    claim_ids: String,
    record_windows: String,
    lock_keys: String,
    key_heads: String,
    queue_lock: String,
    next_due: String,
    global_limits: HashMap<String, u32>,
}

impl Claims {
    pub(crate) fn new(schema: &str, global_limits: HashMap<String, u32>) -> Self {
        let jobs = format!("{schema}.jobs");
        let paused = format!("{schema}.job_paused_queues");
        let windows = format!("{schema}.job_rate_windows");
        // The most jobs of queue `queue` a claim may take: `n`, or less under the
        // queue's cluster-wide limit `global` (NULL: none).
        let at_most = |n: &str, queue: &str, global: &str| {
            format!(
                "CASE WHEN {global}::int8 IS NULL THEN {n}
                      ELSE LEAST({n}, GREATEST(0, {global}::int8 - (
                          SELECT count(*) FROM {jobs} WHERE status = 'Running' AND queue = {queue})))
                 END"
            )
        };
        let set_running = "status = 'Running', attempt = j.attempt + 1, started_at = now(),
                 progress_percent = NULL, progress_message = NULL,
                 worker_id = $1, lease_expires_at = now() + $2 * interval '1 microsecond'";
        let returning = "RETURNING j.id, j.job_type, j.payload, j.attempt, j.max_attempts,
                     jsonb_array_length(j.errors) AS failures, j.timeout_ms, j.priority, j.run_at";
        let in_order = "SELECT id, job_type, payload, attempt, max_attempts, failures, timeout_ms
                 FROM claimed ORDER BY priority DESC, run_at, id";
        Self {
            // Under rate limits, a claim is one transaction: lock each limit's window
            // (the names sorted, so claims lock in one order), lock the due jobs the
            // limits may allow, pick among them by the budgets (`RateBudgets`), claim
            // those and count them in the windows; the jobs passed over stay queued.
            // $1 the limits' names: a row for each, locked, with the window's age (µs,
            // NULL before its first start) and its starts.
            open_windows: format!(
                "INSERT INTO {windows} AS w (name) SELECT unnest($1::text[])
                 ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
                 RETURNING w.name, (extract(epoch FROM now() - w.opened_at) * 1000000)::int8, w.used"
            ),
            // $1 how many, $2 the queue, $3 its cluster-wide limit, $4 the job types
            // whose budget is spent.
            candidates: format!(
                "SELECT id, job_type, concurrency_key FROM {jobs}
                 WHERE status = 'Queued' AND queue = $2 AND run_at <= now()
                   AND NOT EXISTS (SELECT 1 FROM {paused} WHERE name = $2)
                   AND job_type <> ALL($4::text[])
                 ORDER BY priority DESC, run_at, id
                 LIMIT {}
                 FOR UPDATE SKIP LOCKED",
                at_most("$1", "$2", "$3")
            ),
            // $1 holder, $2 lease (µs), $3 the picked ids, locked by this transaction.
            claim_ids: format!(
                "WITH claimed AS (
                     UPDATE {jobs} j SET {set_running}
                     WHERE j.id = ANY($3::uuid[]) AND j.status = 'Queued'
                     {returning})
                 {in_order}"
            ),
            // $1 the keys, sorted: claims of one key take turns until their commit.
            lock_keys: format!(
                "SELECT pg_advisory_xact_lock(hashtextextended('{jobs}.key.' || k, 0))
                 FROM unnest($1::text[]) AS k"
            ),
            // $1 the keys, $2 the queue: the queued due jobs of each key that may start
            // now, the first in claim order, as many as its limit leaves beside the running
            // ones (in any queue).
            key_heads: format!(
                "WITH running AS (
                     SELECT concurrency_key AS k, count(*) AS n FROM {jobs}
                     WHERE status = 'Running' AND concurrency_key = ANY($1::text[])
                     GROUP BY 1),
                 queued AS (
                     SELECT id, concurrency_key AS k, concurrency_limit AS lim,
                            row_number() OVER (PARTITION BY concurrency_key
                                               ORDER BY priority DESC, run_at, id) AS rn
                     FROM {jobs}
                     WHERE status = 'Queued' AND queue = $2 AND run_at <= now()
                       AND concurrency_key = ANY($1::text[]))
                 SELECT q.id FROM queued q LEFT JOIN running r ON r.k = q.k
                 WHERE q.rn <= COALESCE(q.lim, 1) - COALESCE(r.n, 0)"
            ),
            // $1 names, $2 whether each window opens now, $3 the starts taken.
            record_windows: format!(
                "UPDATE {windows} w SET
                     opened_at = CASE WHEN t.opens THEN now() ELSE w.opened_at END,
                     used = CASE WHEN t.opens THEN t.taken ELSE w.used + t.taken END
                 FROM unnest($1::text[], $2::bool[], $3::int8[]) AS t(name, opens, taken)
                 WHERE w.name = t.name"
            ),
            // $1 holder, $2 lease (µs), $3 how many, $4 the queue, $5 its cluster-wide
            // limit (NULL: none; else the caller holds the queue's advisory lock). Served
            // by `jobs_due`; a paused queue gives none. Answered in claim order.
            // The one statement of a claim without rate limits. Jobs with a concurrency
            // key among those picked are left queued and answered as `held` rows, so that
            // the checked path claims in their place.
            claim: format!(
                "WITH picked AS MATERIALIZED (
                     SELECT id, concurrency_key FROM {jobs}
                     WHERE status = 'Queued' AND queue = $4 AND run_at <= now()
                       AND NOT EXISTS (SELECT 1 FROM {paused} WHERE name = $4)
                     ORDER BY priority DESC, run_at, id
                     LIMIT {}
                     FOR UPDATE SKIP LOCKED),
                 claimed AS (
                     UPDATE {jobs} j SET {set_running}
                     FROM picked p WHERE j.id = p.id AND p.concurrency_key IS NULL
                     {returning})
                 (SELECT id, job_type, payload, attempt, max_attempts, failures, timeout_ms,
                         false AS held
                  FROM claimed ORDER BY priority DESC, run_at, id)
                 UNION ALL
                 (SELECT id, NULL, NULL, NULL, NULL, NULL, NULL, true
                  FROM picked WHERE concurrency_key IS NOT NULL)",
                at_most("$3", "$4", "$5")
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
        if !request.rates.is_empty() {
            return self.claim_checked(pool, request, limit).await;
        }
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
        let mut claimed = Vec::with_capacity(rows.len());
        let mut held = 0;
        for row in &rows {
            if row.try_get::<bool, _>("held").map_err(unreadable)? {
                held += 1;
            } else {
                claimed.push(claimed_from_row(row)?);
            }
        }
        if held > 0 {
            // Keyed jobs were among the first due: claim as many again by the checked path.
            let again = ClaimRequest {
                limit: held,
                ..request
            };
            claimed.extend(self.claim_checked(pool, again, limit).await?);
        }
        Ok(claimed)
    }

    /// The checked claim, in one transaction: rate limits (see `open_windows`) and
    /// concurrency keys (see `lock_keys`).
    async fn claim_checked(
        &self,
        pool: &PgPool,
        request: ClaimRequest<'_>,
        global_limit: Option<i64>,
    ) -> Result<Vec<ClaimedJob>, StorageError> {
        let failed = |error| from_sqlx("could not claim jobs", error);
        let mut tx = pool.begin().await.map_err(failed)?;
        if global_limit.is_some() {
            sqlx::query(&self.queue_lock)
                .bind(request.queue)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        let mut names: Vec<String> = request.rates.iter().map(|r| r.budget_name()).collect();
        names.sort();
        names.dedup();
        let rows = if names.is_empty() {
            Vec::new()
        } else {
            sqlx::query(&self.open_windows)
                .bind(&names)
                .fetch_all(&mut *tx)
                .await
                .map_err(failed)?
        };
        let mut windows = HashMap::with_capacity(rows.len());
        for row in &rows {
            let name: String = row.try_get(0).map_err(unreadable)?;
            let age: Option<i64> = row.try_get(1).map_err(unreadable)?;
            let used: i64 = row.try_get(2).map_err(unreadable)?;
            windows.insert(
                name,
                RateWindow {
                    age: age.map(|us| Duration::from_micros(u64::try_from(us).unwrap_or(0))),
                    used: u32::try_from(used).unwrap_or(u32::MAX),
                },
            );
        }
        let mut budgets = RateBudgets::new(request.rates, |rule| {
            windows
                .get(&rule.budget_name())
                .copied()
                .unwrap_or(RateWindow { age: None, used: 0 })
        });
        let want = match budgets.queue_allows(request.queue) {
            Some(allowed) => request.limit.min(allowed as usize),
            None => request.limit,
        };
        if want == 0 {
            tx.commit().await.map_err(failed)?;
            return Ok(Vec::new());
        }
        // Look past jobs that a partly spent limit holds back, within reason.
        let look = want.saturating_mul(2).min(want.max(10_000));
        let spent: Vec<&str> = budgets.spent_types();
        let candidates = sqlx::query(&self.candidates)
            .bind(i64::try_from(look).unwrap_or(i64::MAX))
            .bind(request.queue)
            .bind(global_limit)
            .bind(&spent)
            .fetch_all(&mut *tx)
            .await
            .map_err(failed)?;
        let mut keys: Vec<String> = Vec::new();
        for row in &candidates {
            if let Some(key) = row.try_get::<Option<String>, _>(2).map_err(unreadable)? {
                keys.push(key);
            }
        }
        keys.sort();
        keys.dedup();
        let mut startable: HashSet<Uuid> = HashSet::new();
        if !keys.is_empty() {
            sqlx::query(&self.lock_keys)
                .bind(&keys)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
            // A statement of its own: it sees the claims that held the keys before us.
            let heads = sqlx::query(&self.key_heads)
                .bind(&keys)
                .bind(request.queue)
                .fetch_all(&mut *tx)
                .await
                .map_err(failed)?;
            for row in &heads {
                startable.insert(row.try_get(0).map_err(unreadable)?);
            }
        }
        let mut picked: Vec<Uuid> = Vec::with_capacity(want.min(candidates.len()));
        for row in &candidates {
            if picked.len() == want {
                break;
            }
            let id: Uuid = row.try_get(0).map_err(unreadable)?;
            let keyed = row
                .try_get::<Option<&str>, _>(2)
                .map_err(unreadable)?
                .is_some();
            if keyed && !startable.contains(&id) {
                continue;
            }
            let job_type: &str = row.try_get(1).map_err(unreadable)?;
            if budgets.take(request.queue, job_type) {
                picked.push(id);
            }
        }
        let claimed = sqlx::query(&self.claim_ids)
            .bind(request.holder)
            .bind(micros(request.lease))
            .bind(&picked)
            .fetch_all(&mut *tx)
            .await
            .map_err(failed)?;
        let (mut names, mut opens, mut taken) = (Vec::new(), Vec::new(), Vec::new());
        for (rule, opened, count) in budgets.taken() {
            names.push(rule.budget_name());
            opens.push(opened);
            taken.push(i64::from(count));
        }
        if !names.is_empty() {
            sqlx::query(&self.record_windows)
                .bind(&names)
                .bind(&opens)
                .bind(&taken)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        tx.commit().await.map_err(failed)?;
        claimed.iter().map(claimed_from_row).collect()
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
