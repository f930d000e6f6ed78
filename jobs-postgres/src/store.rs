//! The store: a pool, the statements of its schema, and the notification listener;
//! [`JobStore`], [`Notifications`] and [`PeriodicTicks`] delegate to the modules that own
//! each concern.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jobs_core::{
    BoxFuture, CancelOutcome, ClaimRequest, ClaimedJob, Completed, Completion, DeleteOutcome,
    EventBus, ExpiredLease, FinishedCount, Inserted, Job, JobCount, JobEvent, JobId, JobPage,
    JobQuery, JobStore, KeyCount, Lease, Notifications, Operations, PausedQueue, PeriodicTicks,
    Progress, ProgressAck, QueueCounts, RateWindow, Renewal, RetryOutcome, Signal, StorageError,
    StorageErrorKind, Timestamp, WorkerInfo,
};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::PgConnection;
use tokio::sync::broadcast;

use crate::claim::Claims;
use crate::complete::Completions;
use crate::depend::Dependencies;
use crate::insert::Inserts;
use crate::lease::Leases;
use crate::notify::{channel, start_listener, Notifier};
use crate::ops::Ops;
use crate::options::valid_schema;
use crate::options::{ConnectError, PostgresOptions};
use crate::read::Reads;

/// Jobs in PostgreSQL: a [`JobStore`] shared by every process on the database, with
/// events across processes ([`Notifications`]) and periodic ticks recorded once
/// ([`PeriodicTicks`]).
///
/// Build it with [`PostgresStore::connect`], run [`PostgresStore::migrate`] at start
/// (every process may), and hand it to `Jobs::builder().store(..)`. Dropping the last
/// reference stops its notification listener.
pub struct PostgresStore {
    pool: PgPool,
    options: PostgresOptions,
    inserts: Inserts,
    claims: Claims,
    completions: Completions,
    leases: Leases,
    reads: Reads,
    ops: Ops,
    notifier: Notifier,
    dependencies: Dependencies,
    bus: Arc<EventBus>,
    listener: tokio::task::AbortHandle,
}

impl PostgresStore {
    /// Connects with the default [`PostgresOptions`].
    pub async fn connect(url: &str) -> Result<Arc<Self>, ConnectError> {
        Self::connect_with(url, PostgresOptions::new()).await
    }

    /// Connects to the database at `url` with a pool of
    /// [`PostgresOptions::max_connections`]. Fails within the connect timeout, with a
    /// clear error, when the URL is malformed or the server cannot be reached.
    pub async fn connect_with(
        url: &str,
        options: PostgresOptions,
    ) -> Result<Arc<Self>, ConnectError> {
        if !valid_schema(&options.schema) {
            return Err(ConnectError::InvalidSchema(options.schema));
        }
        let connect = PgConnectOptions::from_str(url).map_err(ConnectError::InvalidUrl)?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.connect_timeout)
            .connect_with(connect)
            .await
            .map_err(ConnectError::Unreachable)?;
        Self::from_pool(pool, options).await
    }

    /// Uses an existing pool (the application's own, say). The notification listener
    /// opens one connection of its own with the pool's connect options; `max_connections`
    /// is not used. Must be called inside a Tokio runtime (the listener is a task).
    pub async fn from_pool(
        pool: PgPool,
        options: PostgresOptions,
    ) -> Result<Arc<Self>, ConnectError> {
        if !valid_schema(&options.schema) {
            return Err(ConnectError::InvalidSchema(options.schema));
        }
        let schema = options.schema.as_str();
        let channel = channel(schema);
        let bus = Arc::new(EventBus::new(options.event_capacity));
        let listener =
            start_listener(&pool, &channel, bus.clone(), options.connect_timeout).await?;
        Ok(Arc::new(Self {
            inserts: Inserts::new(
                schema,
                options.max_payload_bytes,
                Notifier::new(channel.clone()),
            ),
            claims: Claims::new(schema, options.global_limits.clone()),
            completions: Completions::new(schema),
            leases: Leases::new(schema),
            reads: Reads::new(schema),
            ops: Ops::new(schema),
            dependencies: Dependencies::new(schema, &channel),
            notifier: Notifier::new(channel),
            bus,
            listener,
            pool,
            options,
        }))
    }

    /// Creates or updates the schema; safe to call from several processes at once.
    /// Returns the migration versions it applied (empty when the schema was current).
    pub async fn migrate(&self) -> Result<Vec<i32>, ConnectError> {
        crate::migrate::migrate(&self.pool, &self.options.schema).await
    }

    /// The versions of the migrations [`PostgresStore::migrate`] would apply, in order
    /// (every one when the schema has no jobs tables yet); empty when the schema is
    /// current. Reads only, so a tool can refuse to work on an old schema without
    /// changing it.
    pub async fn pending_migrations(&self) -> Result<Vec<i32>, StorageError> {
        crate::migrate::pending(&self.pool, &self.options.schema).await
    }

    /// Stores a job inside the caller's transaction (or on any connection), so that the
    /// job exists exactly when the application's own changes commit; its submit is
    /// notified on the same connection, so engines hear of it at the commit. Build `job`
    /// with `Jobs::prepare_job`, which checks its type and payload. An error of kind
    /// [`StorageErrorKind::Conflict`] if an active job of its type holds its unique key
    /// (nothing is stored then).
    ///
    /// ```no_run
    /// # async fn run(job: jobs_core::Job, store: std::sync::Arc<jobs_postgres::PostgresStore>)
    /// # -> Result<(), Box<dyn std::error::Error>> {
    /// let mut tx = store.pool().begin().await?;
    /// jobs_postgres::sqlx::query("INSERT INTO users (id) VALUES (42)").execute(&mut *tx).await?;
    /// store.submit_in(&mut tx, &job).await?;
    /// tx.commit().await?; // the user and the job appear together, or neither does
    /// # Ok(())
    /// # }
    /// ```
    pub async fn submit_in(
        &self,
        connection: &mut PgConnection,
        job: &Job,
    ) -> Result<(), StorageError> {
        let answer = self
            .inserts
            .submit_many_in(connection, &self.dependencies, std::slice::from_ref(job))
            .await?;
        match answer.into_iter().next() {
            Some(Inserted::Stored) => Ok(()),
            Some(Inserted::Refused(reason)) => Err(StorageError::of_kind(
                StorageErrorKind::InvalidInput,
                reason,
            )),
            Some(Inserted::Existing(holder)) => Err(StorageError::of_kind(
                StorageErrorKind::Conflict,
                format!(
                    "the unique key {:?} of job type `{}` is held by active job {}",
                    job.unique_key.as_deref().unwrap_or_default(),
                    job.job_type,
                    holder.id
                ),
            )),
            _ => Err(StorageError::new(format!("job {} was not stored", job.id))),
        }
    }

    /// Stores many jobs in one statement (built with `Jobs::prepare_job`), on any
    /// connection or inside the caller's transaction, and notifies the submits of those
    /// stored on the same connection: for bulk loads, where one insert per job would be
    /// slow. Answers per job, in order, as [`JobStore::insert_many`] does: a job whose
    /// unique key an active job holds gets that job, and is not stored; a job the table
    /// cannot keep (a NUL character in a text, a payload over the limit) is
    /// [`Inserted::Refused`] with the reason, and the others are stored all the same.
    pub async fn submit_many_in(
        &self,
        connection: &mut PgConnection,
        jobs: &[Job],
    ) -> Result<Vec<Inserted>, StorageError> {
        self.inserts
            .submit_many_in(connection, &self.dependencies, jobs)
            .await
    }

    /// The connection pool, for the application's own queries and transactions.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.options.schema)
            .field("channel", &self.notifier.channel())
            .finish_non_exhaustive()
    }
}

impl JobStore for PostgresStore {
    fn insert_many(&self, jobs: Vec<Job>) -> BoxFuture<'_, Result<Vec<Inserted>, StorageError>> {
        Box::pin(async move {
            self.inserts
                .insert_many(&self.pool, &self.dependencies, &jobs)
                .await
        })
    }

    fn supports_unique_keys(&self) -> bool {
        true
    }

    fn supports_rate_limits(&self) -> bool {
        true
    }

    fn supports_concurrency_keys(&self) -> bool {
        true
    }

    fn supports_dependencies(&self) -> bool {
        true
    }

    fn claim<'a>(
        &'a self,
        request: ClaimRequest<'a>,
    ) -> BoxFuture<'a, Result<Vec<ClaimedJob>, StorageError>> {
        Box::pin(self.claims.claim(&self.pool, request))
    }

    fn next_due<'a>(
        &'a self,
        queue: &'a str,
    ) -> BoxFuture<'a, Result<Option<Duration>, StorageError>> {
        Box::pin(self.claims.next_due(&self.pool, queue))
    }

    fn complete_many<'a>(
        &'a self,
        holder: &'a str,
        completions: &'a [Completion],
    ) -> BoxFuture<'a, Result<Vec<Completed>, StorageError>> {
        Box::pin(self.completions.complete_many(
            &self.pool,
            &self.dependencies,
            holder,
            completions,
        ))
    }

    fn renew<'a>(
        &'a self,
        holder: &'a str,
        leases: &'a [Lease],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<Renewal>, StorageError>> {
        Box::pin(self.leases.renew(&self.pool, holder, leases, lease))
    }

    fn expired(&self, limit: usize) -> BoxFuture<'_, Result<Vec<ExpiredLease>, StorageError>> {
        Box::pin(self.leases.expired(&self.pool, limit))
    }

    fn update_progress(
        &self,
        id: JobId,
        attempt: u32,
        progress: Progress,
    ) -> BoxFuture<'_, Result<ProgressAck, StorageError>> {
        Box::pin(
            self.reads
                .update_progress(&self.pool, id, attempt, progress),
        )
    }

    fn request_cancel(&self, id: JobId) -> BoxFuture<'_, Result<CancelOutcome, StorageError>> {
        Box::pin(
            self.reads
                .request_cancel(&self.pool, &self.dependencies, id),
        )
    }

    fn get(&self, id: JobId) -> BoxFuture<'_, Result<Option<Job>, StorageError>> {
        Box::pin(self.reads.get(&self.pool, id))
    }

    fn list(&self, query: JobQuery) -> BoxFuture<'_, Result<JobPage, StorageError>> {
        Box::pin(self.reads.list(&self.pool, query))
    }

    fn get_result(&self, id: JobId) -> BoxFuture<'_, Result<Option<Value>, StorageError>> {
        Box::pin(self.reads.get_result(&self.pool, id))
    }

    fn count_jobs(&self) -> BoxFuture<'_, Result<Vec<JobCount>, StorageError>> {
        Box::pin(self.reads.count_jobs(&self.pool))
    }

    /// Exact up to [`PostgresOptions::exact_count_limit`] jobs per type and status, in a
    /// time that does not grow with the table; a larger count is estimated from the
    /// planner's statistics (kept by ANALYZE and autovacuum) and flagged so.
    fn estimate_counts(&self) -> BoxFuture<'_, Result<Vec<JobCount>, StorageError>> {
        Box::pin(
            self.reads
                .estimate_counts(&self.pool, self.options.exact_count_limit),
        )
    }

    fn prune_finished(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> BoxFuture<'_, Result<u64, StorageError>> {
        Box::pin(self.reads.prune_finished(&self.pool, before, limit))
    }

    fn max_payload_bytes(&self) -> Option<usize> {
        Some(self.options.max_payload_bytes)
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn notifications(&self) -> Option<&dyn Notifications> {
        Some(self)
    }

    fn operations(&self) -> Option<&dyn Operations> {
        Some(self)
    }

    fn ticks(&self) -> Option<&dyn PeriodicTicks> {
        Some(self)
    }
}

impl Operations for PostgresStore {
    fn count_finished_before(&self, before: Timestamp) -> BoxFuture<'_, Result<u64, StorageError>> {
        Box::pin(self.reads.count_finished_before(&self.pool, before))
    }

    fn retry_many<'a>(
        &'a self,
        ids: &'a [JobId],
    ) -> BoxFuture<'a, Result<Vec<RetryOutcome>, StorageError>> {
        Box::pin(self.ops.retry_many(&self.pool, &self.dependencies, ids))
    }

    fn delete_many<'a>(
        &'a self,
        ids: &'a [JobId],
    ) -> BoxFuture<'a, Result<Vec<DeleteOutcome>, StorageError>> {
        Box::pin(self.ops.delete_many(&self.pool, ids))
    }

    fn queue_counts(&self) -> BoxFuture<'_, Result<Vec<QueueCounts>, StorageError>> {
        Box::pin(self.ops.queue_counts(&self.pool))
    }

    fn finished_per_minute(
        &self,
        since: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<FinishedCount>, StorageError>> {
        Box::pin(self.ops.finished_per_minute(&self.pool, since))
    }

    fn record_worker<'a>(
        &'a self,
        worker: &'a WorkerInfo,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(self.ops.record_worker(&self.pool, worker))
    }

    fn remove_worker<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(self.ops.remove_worker(&self.pool, id))
    }

    fn workers(&self, since: Timestamp) -> BoxFuture<'_, Result<Vec<WorkerInfo>, StorageError>> {
        Box::pin(self.ops.workers(&self.pool, since))
    }

    fn set_paused<'a>(
        &'a self,
        queue: &'a str,
        paused: bool,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(self.ops.set_paused(&self.pool, queue, paused))
    }

    fn paused_queues(&self) -> BoxFuture<'_, Result<Vec<PausedQueue>, StorageError>> {
        Box::pin(self.ops.paused_queues(&self.pool))
    }

    fn key_counts<'a>(
        &'a self,
        keys: Option<&'a [String]>,
    ) -> BoxFuture<'a, Result<Vec<KeyCount>, StorageError>> {
        Box::pin(self.ops.key_counts(&self.pool, keys))
    }

    fn dependants(&self, id: JobId) -> BoxFuture<'_, Result<Vec<JobId>, StorageError>> {
        Box::pin(self.dependencies.dependants(&self.pool, id))
    }

    fn rate_windows<'a>(
        &'a self,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<(String, RateWindow)>, StorageError>> {
        Box::pin(self.ops.rate_windows(&self.pool, names))
    }
}

impl Notifications for PostgresStore {
    /// Sends `events` with `NOTIFY`, as JSON arrays that fit in a notification; every
    /// store on the schema, this one included, hears them through its listener.
    fn publish(&self, events: Vec<JobEvent>) -> BoxFuture<'_, ()> {
        Box::pin(async move { self.notifier.publish(&self.pool, &events).await })
    }

    fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.bus.subscribe()
    }

    fn signals(&self) -> broadcast::Receiver<Signal> {
        self.bus.signals()
    }

    /// Always `true`: processes elsewhere may listen.
    fn has_subscribers(&self) -> bool {
        true
    }
}

impl PeriodicTicks for PostgresStore {
    fn insert_tick<'a>(
        &'a self,
        job: Job,
        schedule: &'a str,
        tick: Timestamp,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(async move {
            self.inserts
                .insert_tick(&self.pool, &job, schedule, tick)
                .await
        })
    }
}
