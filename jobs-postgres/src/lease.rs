//! Leases: renewals of the attempts a holder runs, and the attempts whose lease ran out
//! (the engine's rescuer decides what becomes of them).

use std::collections::HashMap;
use std::time::Duration;

use jobs_core::{ExpiredLease, Lease, Renewal, StorageError};
use sqlx::postgres::PgPool;
use sqlx::Row;
use uuid::Uuid;

use crate::error::{storage, unreadable};
use crate::plan::{nested_loops, LARGE_BATCH, RUNNING_BY_ID};
use crate::rows::{attempt_param, expired_from_row, micros};

/// The lease statements of one schema.
pub(crate) struct Leases {
    /// For a few leases, on a cached plan.
    renew: String,
    /// For many, planned for themselves without nested loops (see `crate::plan`).
    renew_large: String,
    expired: String,
}

impl Leases {
    pub(crate) fn new(schema: &str) -> Self {
        let jobs = format!("{schema}.jobs");
        // $1 holder, $2 lease (µs), $3 and $4 the ids and attempts. A lease that has run
        // out is not renewed: the rescuer takes it.
        let renew = |running: &str| {
            format!(
                "UPDATE {jobs} j SET lease_expires_at = now() + $2 * interval '1 microsecond'
                 FROM unnest($3::uuid[], $4::int4[]) AS h(id, attempt)
                 WHERE j.id = h.id AND j.attempt = h.attempt
                   AND {running} AND j.worker_id = $1
                   AND j.lease_expires_at > now()
                 RETURNING j.id, j.attempt, j.cancel_requested"
            )
        };
        Self {
            renew: renew(RUNNING_BY_ID),
            renew_large: renew("j.status = 'Running'"),
            // Up to $1 running jobs whose lease ran out, oldest lease first (served by
            // `jobs_running_lease`).
            expired: format!(
                "SELECT id, attempt, coalesce(worker_id, '') AS holder, max_attempts,
                        failures, cancel_requested
                 FROM {jobs}
                 WHERE status = 'Running' AND lease_expires_at < now()
                 ORDER BY lease_expires_at
                 LIMIT $1"
            ),
        }
    }

    /// Extends the leases `holder` still holds to now + `lease`; answers in their order.
    pub(crate) async fn renew(
        &self,
        pool: &PgPool,
        holder: &str,
        leases: &[Lease],
        lease: Duration,
    ) -> Result<Vec<Renewal>, StorageError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = leases.iter().map(|l| *l.id.as_uuid()).collect();
        let attempts: Vec<i32> = leases.iter().map(|l| attempt_param(l.attempt)).collect();
        let failed = "could not renew the leases";
        let large = leases.len() >= LARGE_BATCH;
        // A large batch is planned for itself, without nested loops (see `crate::plan`).
        let statement = sqlx::query(if large {
            &self.renew_large
        } else {
            &self.renew
        })
        .persistent(!large)
        .bind(holder)
        .bind(micros(lease))
        .bind(ids)
        .bind(attempts);
        let rows = if large {
            let mut tx = pool.begin().await.map_err(storage(failed))?;
            nested_loops(&mut tx, false)
                .await
                .map_err(storage(failed))?;
            let rows = statement
                .fetch_all(&mut *tx)
                .await
                .map_err(storage(failed))?;
            tx.commit().await.map_err(storage(failed))?;
            rows
        } else {
            statement.fetch_all(pool).await.map_err(storage(failed))?
        };
        let mut held = HashMap::with_capacity(rows.len());
        for row in rows {
            let id: Uuid = row.try_get(0).map_err(unreadable)?;
            let attempt: i32 = row.try_get(1).map_err(unreadable)?;
            let cancel_requested: bool = row.try_get(2).map_err(unreadable)?;
            held.insert((id, attempt), cancel_requested);
        }
        Ok(leases
            .iter()
            .map(
                |l| match held.get(&(*l.id.as_uuid(), attempt_param(l.attempt))) {
                    Some(&cancel_requested) => Renewal::Held { cancel_requested },
                    None => Renewal::Lost,
                },
            )
            .collect())
    }

    /// Up to `limit` running jobs whose lease ran out, oldest lease first.
    pub(crate) async fn expired(
        &self,
        pool: &PgPool,
        limit: usize,
    ) -> Result<Vec<ExpiredLease>, StorageError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        sqlx::query(&self.expired)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(pool)
            .await
            .map_err(storage("could not look for expired leases"))?
            .iter()
            .map(expired_from_row)
            .collect()
    }
}
