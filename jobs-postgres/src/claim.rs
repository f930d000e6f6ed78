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

use jobs_core::{
    ClaimRequest, ClaimedJob, RateBudgets, RateRule, RateScope, RateWindow, StorageError,
};
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::Row;
use uuid::Uuid;

use crate::error::{from_sqlx, storage, unreadable};
use crate::rows::{claimed_from_row, micros};

/// The claim statements of one schema, and the queues with a cluster-wide limit.
pub(crate) struct Claims {
    claim: String,
    peek_windows: String,
    lock_windows: String,
    add_windows: String,
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
                     j.failures, j.timeout_ms, j.priority, j.run_at, j.trace_parent";
        let in_order = "SELECT id, job_type, payload, attempt, max_attempts, failures, timeout_ms,
                     priority, (extract(epoch FROM run_at) * 1000000)::int8 AS run_at_us,
                     trace_parent
                 FROM claimed ORDER BY priority DESC, run_at, id";
        Self {
            // The checked path is one transaction (see the module's docs). $1 the limits'
            // names: their windows' ages by the clock (µs, NULL before a first start) and
            // starts, read without a lock to choose candidates, or locked (`FOR UPDATE`,
            // names sorted) to count.
            peek_windows: format!(
                "SELECT name, (extract(epoch FROM clock_timestamp() - opened_at) * 1000000)::int8, used
                 FROM {windows} WHERE name = ANY($1::text[])"
            ),
            lock_windows: format!(
                "SELECT name, (extract(epoch FROM clock_timestamp() - opened_at) * 1000000)::int8, used
                 FROM {windows} WHERE name = ANY($1::text[]) ORDER BY name FOR UPDATE"
            ),
            add_windows: format!(
                "INSERT INTO {windows} (name) SELECT unnest($1::text[]) ORDER BY 1
                 ON CONFLICT (name) DO NOTHING"
            ),
            // $1 how many, $2 the queue, $3 its cluster-wide limit, $4 the job types
            // whose budget is spent. A keyed job is a candidate only if its key has room
            // for it by this statement's view (its running jobs and the queued ones ahead of
            // it, each count stopping at the limit), so a busy key never fills the look; the
            // count that decides comes later, under the key's lock.
            candidates: format!(
                "SELECT j.id, j.job_type, j.concurrency_key FROM {jobs} j
                 WHERE j.status = 'Queued' AND j.queue = $2 AND j.run_at <= now()
                   AND NOT EXISTS (SELECT 1 FROM {paused} WHERE name = $2)
                   AND j.job_type <> ALL($4::text[])
                   AND (j.concurrency_key IS NULL OR
                        (SELECT count(*) FROM (
                             SELECT 1 FROM {jobs} r
                             WHERE r.status = 'Running' AND r.concurrency_key = j.concurrency_key
                             LIMIT COALESCE(j.concurrency_limit, 1)) running)
                        + (SELECT count(*) FROM (
                             SELECT 1 FROM {jobs} q
                             WHERE q.status = 'Queued' AND q.concurrency_key = j.concurrency_key
                               AND q.queue = $2 AND q.run_at <= now()
                               AND (q.priority > j.priority OR (q.priority = j.priority
                                    AND (q.run_at, q.id) < (j.run_at, j.id)))
                             LIMIT COALESCE(j.concurrency_limit, 1)) ahead)
                        < COALESCE(j.concurrency_limit, 1))
                 ORDER BY j.priority DESC, j.run_at, j.id
                 LIMIT {}
                 FOR UPDATE OF j SKIP LOCKED",
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
                     opened_at = CASE WHEN t.opens THEN clock_timestamp() ELSE w.opened_at END,
                     used = CASE WHEN t.opens THEN t.taken ELSE w.used + t.taken END
                 FROM unnest($1::text[], $2::bool[], $3::int8[]) AS t(name, opens, taken)
                 WHERE w.name = t.name"
            ),
            // The one statement of a claim. $1 holder, $2 lease (µs), $3 how many, $4
            // the queue, $5 its cluster-wide limit (NULL: none; else the caller holds the
            // queue's advisory lock), $6 the job types under a rate limit. Served by
            // `jobs_due`; a paused queue gives none. Jobs with a concurrency key or a
            // limited type among those picked are left queued and answered as `held`
            // rows, so that the checked path claims in their place. In claim order.
            claim: format!(
                "WITH picked AS MATERIALIZED (
                     SELECT id, concurrency_key, job_type FROM {jobs}
                     WHERE status = 'Queued' AND queue = $4 AND run_at <= now()
                       AND NOT EXISTS (SELECT 1 FROM {paused} WHERE name = $4)
                     ORDER BY priority DESC, run_at, id
                     LIMIT {}
                     FOR UPDATE SKIP LOCKED),
                 claimed AS (
                     UPDATE {jobs} j SET {set_running}
                     FROM picked p
                     WHERE j.id = p.id AND p.concurrency_key IS NULL
                       AND p.job_type <> ALL($6::text[])
                     {returning})
                 (SELECT id, job_type, payload, attempt, max_attempts, failures, timeout_ms,
                         priority, (extract(epoch FROM run_at) * 1000000)::int8 AS run_at_us,
                         trace_parent, false AS held
                  FROM claimed ORDER BY priority DESC, run_at, id)
                 UNION ALL
                 (SELECT id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true
                  FROM picked
                  WHERE concurrency_key IS NOT NULL OR job_type = ANY($6::text[]))",
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
        // A queue's own rate limit holds every claim of it: the checked path at once.
        let queue_limited = request
            .rates
            .iter()
            .any(|rule| matches!(&rule.scope, RateScope::Queue(queue) if queue == request.queue));
        if queue_limited {
            let claimed = self.claim_checked(pool, request, limit).await?;
            return Ok(claimed.into_iter().map(|(_, job)| job).collect());
        }
        let limited_types: Vec<&str> = request
            .rates
            .iter()
            .filter_map(|rule| match &rule.scope {
                RateScope::JobType(job_type) => Some(job_type.as_str()),
                _ => None,
            })
            .collect();
        let query = sqlx::query(&self.claim)
            .bind(request.holder)
            .bind(micros(request.lease))
            .bind(i64::try_from(request.limit).unwrap_or(i64::MAX))
            .bind(request.queue)
            .bind(limit)
            .bind(&limited_types);
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
                claimed.push(in_claim_order(row)?);
            }
        }
        if held > 0 {
            // Keyed or limited jobs were among the first due: claim as many again by the
            // checked path, and answer all in claim order. The jobs claimed so far are
            // committed: a failure here keeps them (the next claim tries again).
            let again = ClaimRequest {
                limit: held,
                ..request
            };
            match self.claim_checked(pool, again, limit).await {
                Ok(more) => {
                    claimed.extend(more);
                    claimed.sort_by_key(|a| a.0);
                }
                Err(error) if claimed.is_empty() => return Err(error),
                Err(error) => {
                    tracing::warn!(queue = %request.queue, %error, "could not claim the keyed or rate-limited jobs; claiming them later");
                }
            }
        }
        Ok(claimed.into_iter().map(|(_, job)| job).collect())
    }

    /// The checked claim, in one transaction: rate limits (see `open_windows`) and
    /// concurrency keys (see `lock_keys`).
    async fn claim_checked(
        &self,
        pool: &PgPool,
        request: ClaimRequest<'_>,
        global_limit: Option<i64>,
    ) -> Result<Vec<(ClaimOrder, ClaimedJob)>, StorageError> {
        let failed = |error| from_sqlx("could not claim jobs", error);
        let mut tx = pool.begin().await.map_err(failed)?;
        if global_limit.is_some() {
            sqlx::query(&self.queue_lock)
                .bind(request.queue)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        // The queue's own limits bound the claim: their windows are locked first. The
        // types' windows are read as they are to choose candidates, and locked once the
        // candidates show which limited types are in play, so claims that meet none of a
        // type's jobs do not queue up behind its window.
        let (mut queue_names, mut type_names) = (Vec::new(), Vec::new());
        for rule in request.rates {
            match &rule.scope {
                RateScope::Queue(_) => queue_names.push(rule.budget_name()),
                _ => type_names.push(rule.budget_name()),
            }
        }
        let mut windows = self.lock_windows(&mut tx, queue_names).await?;
        windows.extend(
            self.read_windows(&mut tx, &self.peek_windows, &type_names)
                .await?,
        );
        let budgets = budgets_of(request.rates, &windows);
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
        let mut rows = Vec::with_capacity(candidates.len());
        for row in &candidates {
            let id: Uuid = row.try_get(0).map_err(unreadable)?;
            let job_type: String = row.try_get(1).map_err(unreadable)?;
            let key: Option<String> = row.try_get(2).map_err(unreadable)?;
            rows.push((id, job_type, key));
        }
        let in_play: Vec<String> = request
            .rates
            .iter()
            .filter(|rule| match &rule.scope {
                RateScope::JobType(job_type) => rows.iter().any(|(_, t, _)| t == job_type),
                _ => false,
            })
            .map(|rule| rule.budget_name())
            .collect();
        windows.extend(self.lock_windows(&mut tx, in_play).await?);
        let mut budgets = budgets_of(request.rates, &windows);
        // The keys of the candidates, at most `MAX_KEYS` of them a claim.
        let mut keys: Vec<String> = Vec::new();
        for (_, _, key) in &rows {
            if let Some(key) = key {
                if !keys.contains(key) && keys.len() < MAX_KEYS {
                    keys.push(key.clone());
                }
            }
        }
        keys.sort();
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
        let mut picked: Vec<Uuid> = Vec::with_capacity(want.min(rows.len()));
        for (id, job_type, key) in &rows {
            if picked.len() == want {
                break;
            }
            if key.is_some() && !startable.contains(id) {
                continue;
            }
            if budgets.take(request.queue, job_type) {
                picked.push(*id);
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
        claimed.iter().map(in_claim_order).collect()
    }

    /// Locks the windows `names` (sorted; a missing one is made first), and reads them.
    async fn lock_windows(
        &self,
        tx: &mut PgConnection,
        mut names: Vec<String>,
    ) -> Result<HashMap<String, RateWindow>, StorageError> {
        if names.is_empty() {
            return Ok(HashMap::new());
        }
        names.sort();
        names.dedup();
        let windows = self.read_windows(tx, &self.lock_windows, &names).await?;
        if windows.len() == names.len() {
            return Ok(windows);
        }
        sqlx::query(&self.add_windows)
            .bind(&names)
            .execute(&mut *tx)
            .await
            .map_err(storage("could not claim jobs"))?;
        self.read_windows(tx, &self.lock_windows, &names).await
    }

    /// The windows `names` by `statement` (`peek_windows` or `lock_windows`).
    async fn read_windows(
        &self,
        tx: &mut PgConnection,
        statement: &str,
        names: &[String],
    ) -> Result<HashMap<String, RateWindow>, StorageError> {
        if names.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sqlx::query(statement)
            .bind(names)
            .fetch_all(&mut *tx)
            .await
            .map_err(storage("could not claim jobs"))?;
        let mut windows = HashMap::with_capacity(rows.len());
        for row in &rows {
            let name: String = row.try_get(0).map_err(unreadable)?;
            let age: Option<i64> = row.try_get(1).map_err(unreadable)?;
            let used: i64 = row.try_get(2).map_err(unreadable)?;
            let window = RateWindow {
                age: age.map(|us| Duration::from_micros(u64::try_from(us).unwrap_or(0))),
                used: u32::try_from(used).unwrap_or(u32::MAX),
            };
            windows.insert(name, window);
        }
        Ok(windows)
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

/// The most concurrency keys one claim locks: a claim that meets more leaves the jobs of
/// the others to the next.
const MAX_KEYS: usize = 64;

/// The budgets of `rules` from `windows` (a rule without one gets a fresh window).
fn budgets_of<'a>(rules: &'a [RateRule], windows: &HashMap<String, RateWindow>) -> RateBudgets<'a> {
    RateBudgets::new(rules, |rule| {
        windows
            .get(&rule.budget_name())
            .copied()
            .unwrap_or(RateWindow { age: None, used: 0 })
    })
}

/// Where a claimed job stands in claim order: higher priority first, then due time, then
/// id.
type ClaimOrder = (std::cmp::Reverse<i16>, i64, Uuid);

/// A claimed row with its place in claim order.
fn in_claim_order(row: &PgRow) -> Result<(ClaimOrder, ClaimedJob), StorageError> {
    let priority: i16 = row.try_get("priority").map_err(unreadable)?;
    let run_at: i64 = row.try_get("run_at_us").map_err(unreadable)?;
    let id: Uuid = row.try_get("id").map_err(unreadable)?;
    Ok((
        (std::cmp::Reverse(priority), run_at, id),
        claimed_from_row(row)?,
    ))
}
