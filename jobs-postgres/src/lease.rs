//! Leases: each backend renews the leases of the jobs it claimed, and returns the jobs of
//! workers that stopped renewing (a crash, a kill, a lost network) to the queue.

use std::sync::Arc;
use std::time::Duration;

use jobs_core::{CancellationToken, JobId};
use sqlx::{PgPool, Row};

use crate::backend::Shared;

/// What the maintenance task needs.
pub(crate) struct Maintenance {
    pub(crate) pool: PgPool,
    pub(crate) shared: Arc<Shared>,
    pub(crate) worker_id: String,
    pub(crate) lease: Duration,
    pub(crate) rescue_interval: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) heartbeat_sql: String,
    pub(crate) rescue_lock_sql: String,
    pub(crate) rescue_sql: String,
}

/// Renews this worker's leases every third of a lease, and rescues expired ones every
/// `rescue_interval`, until `stop` fires. Failures are logged and retried next round.
pub(crate) async fn maintain(m: Maintenance, stop: CancellationToken) {
    let heartbeat_every = (m.lease / 3).max(Duration::from_millis(50));
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    let mut rescue = tokio::time::interval(m.rescue_interval.max(Duration::from_millis(50)));
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    rescue.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = heartbeat.tick() => {
                if let Err(error) = renew(&m).await {
                    tracing::warn!(%error, "could not renew job leases");
                }
            }
            _ = rescue.tick() => {
                match rescue_expired(&m).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(jobs = n, "rescued jobs whose worker stopped renewing its lease"),
                    Err(error) => tracing::warn!(%error, "could not rescue expired jobs"),
                }
            }
        }
    }
}

/// Extends the leases of every job this worker runs. The answer also carries their cancel
/// flags, so a cancel whose notification was missed still reaches the job.
async fn renew(m: &Maintenance) -> Result<(), sqlx::Error> {
    let (ids, attempts): (Vec<uuid::Uuid>, Vec<i32>) = m
        .shared
        .held
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(id, attempt)| (*id.as_uuid(), *attempt as i32))
        .unzip();
    if ids.is_empty() {
        return Ok(());
    }
    let rows = sqlx::query(&m.heartbeat_sql)
        .bind(&m.worker_id)
        .bind(m.lease.as_millis() as i64)
        .bind(ids)
        .bind(attempts)
        .fetch_all(&m.pool)
        .await?;
    for row in rows {
        if row.try_get::<bool, _>("cancel_requested")? {
            let id = JobId::from_uuid(row.try_get("id")?);
            let _ = m.shared.cancellations.send(id);
        }
    }
    Ok(())
}

/// Returns expired jobs to the queue (or fails them once they used up their attempts, or
/// cancels them when a cancel was requested), one rescuer at a time across the cluster.
pub(crate) async fn rescue_expired(m: &Maintenance) -> Result<u64, sqlx::Error> {
    let mut tx = m.pool.begin().await?;
    let leader: bool = sqlx::query(&m.rescue_lock_sql)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    if !leader {
        return Ok(0);
    }
    let rescued = sqlx::query(&m.rescue_sql)
        .bind(m.max_attempts as i32)
        .bind(1_000_i64)
        .fetch_all(&mut *tx)
        .await?
        .len() as u64;
    tx.commit().await?;
    Ok(rescued)
}
