//! The backend: connection pool, notification listener, repository and queue.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jobs_core::CancellationToken as Token;
use jobs_core::{
    BoxFuture, CancelOutcome, Delivery, Expected, Inserted, Job, JobCount, JobEvent, JobId,
    JobPage, JobQuery, JobQueue, JobRepository, JobStatus, Progress, ProgressAck, StorageError,
    Timestamp, Transition, TransitionOutcome,
};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::Row;
use tokio::sync::{broadcast, oneshot, Notify};

use crate::batch::{contains_nul, without_nul, ClaimBuffer, Finish, FinishQueue, Waiting};
use crate::sql::Statements;

/// Settings of a [`PostgresBackend`].
///
/// ```
/// use std::time::Duration;
/// use jobs_postgres::PostgresOptions;
///
/// let options = PostgresOptions::new()
///     .schema("billing_jobs")
///     .poll_interval(Duration::from_millis(500))
///     .max_connections(20);
/// ```
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    schema: String,
    poll_interval: Duration,
    lease: Duration,
    max_connections: u32,
    connect_timeout: Duration,
    event_capacity: usize,
    rescue_interval: Duration,
    max_attempts: u32,
    max_payload_bytes: usize,
    claim_batch: usize,
    global_limits: HashMap<String, u32>,
}

impl PostgresOptions {
    /// The default payload limit: 1 MiB of compact JSON.
    pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1 << 20;

    /// The defaults: schema `public`, 1 s poll interval, 30 s lease, 5 s rescue interval,
    /// 3 attempts, 1 MiB payloads, 10 connections,
    /// 5 s connect timeout.
    pub fn new() -> Self {
        Self {
            schema: "public".to_owned(),
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(30),
            max_connections: 10,
            connect_timeout: Duration::from_secs(5),
            event_capacity: 4_096,
            rescue_interval: Duration::from_secs(5),
            max_attempts: 3,
            max_payload_bytes: Self::DEFAULT_MAX_PAYLOAD_BYTES,
            claim_batch: 100,
            global_limits: HashMap::new(),
        }
    }

    /// The schema that holds the tables (created by [`PostgresBackend::migrate`]). Services
    /// that share a schema share their jobs; separate schemas keep them apart. A lowercase
    /// identifier: letters, digits and `_`, not starting with a digit.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// How often an idle worker looks for jobs when no notification wakes it.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How long a claimed job stays reserved for its worker without a renewal. Workers
    /// renew their leases every third of it; a job whose lease runs out (its worker
    /// crashed, was killed or lost the database) goes back to the queue. Default 30 s.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(150));
        self
    }

    /// How often each backend looks for expired leases (one backend at a time across the
    /// cluster does the work). Default 5 s.
    pub fn rescue_interval(mut self, interval: Duration) -> Self {
        self.rescue_interval = interval;
        self
    }

    /// At most `limit` jobs of the named queue `queue` run at once across every process
    /// on this database, whatever each process's workers for it (`JobsBuilder::serve_queue`).
    /// Claims of such a queue take turns under an advisory lock and count its running
    /// jobs; a job whose worker died counts until its lease is rescued.
    pub fn global_limit(mut self, queue: &str, limit: u32) -> Self {
        self.global_limits.insert(queue.to_owned(), limit);
        self
    }

    /// After how many failed attempts (lost leases included) a job whose lease expires is
    /// failed instead of queued again, at least: a job that keeps killing its worker stops
    /// being retried. A job whose own retries allow more gets more. Default 3.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The largest payload accepted, in bytes of compact JSON (default 1 MiB). Larger
    /// submissions fail with `SubmitError::PayloadTooLarge` and store nothing: a queue row
    /// is no place for bulk data.
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }

    /// The most jobs claimed in one statement (default 100). A claim takes as many jobs as
    /// there are idle workers waiting, up to this cap, so a process never claims more
    /// than it can start at once.
    pub fn claim_batch(mut self, jobs: usize) -> Self {
        self.claim_batch = jobs.max(1);
        self
    }

    /// The size of the connection pool (the listener uses one more connection).
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// How long connecting may take before [`PostgresBackend::connect`] gives up.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Why the backend could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The database URL does not parse.
    #[error("invalid database URL: {0} (expected postgres://user@host:port/database)")]
    InvalidUrl(#[source] sqlx::Error),
    /// The schema name is not a plain identifier.
    #[error("invalid schema name `{0}`: use lowercase letters, digits and `_`, not starting with a digit")]
    InvalidSchema(String),
    /// The database could not be reached in time, or refused the connection.
    #[error("could not connect to PostgreSQL: {0}")]
    Unreachable(#[source] sqlx::Error),
    /// Applying the schema failed.
    #[error("could not migrate the jobs schema: {0}")]
    Migration(#[source] sqlx::Error),
}

impl ConnectError {
    pub(crate) fn migration(error: sqlx::Error) -> Self {
        ConnectError::Migration(error)
    }
}

/// Jobs in PostgreSQL: a [`JobRepository`] and a [`JobQueue`] in one.
///
/// Build it with [`PostgresBackend::connect`], run [`PostgresBackend::migrate`] once at
/// start (every process may), and hand it to `Jobs::builder().backend(..)`.
pub struct PostgresBackend {
    pool: PgPool,
    sql: Statements,
    options: PostgresOptions,
    worker_id: String,
    shared: Arc<Shared>,
    stop: Token,
    finishes: FinishQueue,
}

/// One named queue as this backend serves it.
#[derive(Default)]
pub(crate) struct Lane {
    /// One claim at a time per queue; the other workers take from its batch.
    claim_lock: Arc<tokio::sync::Mutex<()>>,
    /// Jobs claimed in a batch and not handed to a worker yet.
    pub(crate) claimed: ClaimBuffer,
    /// Wakes the queue's idle workers.
    wake: Notify,
}

/// What the listener and maintenance tasks share with the backend.
pub(crate) struct Shared {
    events: broadcast::Sender<JobEvent>,
    pub(crate) cancellations: broadcast::Sender<JobId>,
    /// The jobs this backend claimed and has not finished: the leases it renews. A job
    /// whose final write failed leaves this set, so its lease runs out and it is rescued.
    pub(crate) held: std::sync::Mutex<std::collections::HashSet<(JobId, u32)>>,
    /// The named queues this backend's workers have asked for.
    lanes: std::sync::Mutex<HashMap<String, Arc<Lane>>>,
}

impl Shared {
    /// The lane of `queue`, made on first use.
    fn lane(&self, queue: &str) -> Arc<Lane> {
        let mut lanes = self
            .lanes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match lanes.get(queue) {
            Some(lane) => lane.clone(),
            None => lanes.entry(queue.to_owned()).or_default().clone(),
        }
    }

    fn all_lanes(&self) -> Vec<Arc<Lane>> {
        self.lanes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Wakes every idle worker of every queue (notifications may have been lost).
    fn wake_all(&self) {
        for lane in self.all_lanes() {
            lane.wake.notify_waiters();
        }
    }

    /// Wakes one idle worker of each queue: a job was submitted or queued again (to one
    /// of them). If it is not due yet, the worker sleeps until it is (`next_due`).
    fn wake_one_each(&self) {
        for lane in self.all_lanes() {
            lane.wake.notify_one();
        }
    }

    /// Marks attempt `attempt` of `id` as held (its lease renewed) or not.
    fn hold(&self, id: JobId, attempt: u32, held: bool) {
        let mut set = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if held {
            set.insert((id, attempt));
        } else {
            set.remove(&(id, attempt));
        }
    }
}

fn storage(what: &str) -> impl FnOnce(sqlx::Error) -> StorageError + '_ {
    move |error| StorageError::with_source(format!("{what}: {error}"), error)
}

fn valid_schema(schema: &str) -> bool {
    let mut chars = schema.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= 40
}

impl PostgresBackend {
    /// Connects with the default [`PostgresOptions`].
    pub async fn connect(url: &str) -> Result<Arc<Self>, ConnectError> {
        Self::connect_with(url, PostgresOptions::new()).await
    }

    /// Connects to the database at `url`. Fails within the connect timeout, with a clear
    /// error, when the URL is malformed or the server cannot be reached.
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

    /// Uses an existing pool (for example the application's own).
    pub async fn from_pool(
        pool: PgPool,
        options: PostgresOptions,
    ) -> Result<Arc<Self>, ConnectError> {
        if !valid_schema(&options.schema) {
            return Err(ConnectError::InvalidSchema(options.schema));
        }
        let channel = format!("{}_jobs_events", options.schema);
        let shared = Arc::new(Shared {
            events: broadcast::channel(options.event_capacity).0,
            cancellations: broadcast::channel(options.event_capacity).0,
            held: Default::default(),
            lanes: Default::default(),
        });
        // The listener keeps its connection for good: give it a pool of its own rather
        // than take one from the application's.
        let listener_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.connect_timeout)
            .connect_lazy_with((*pool.connect_options()).clone());
        let mut listener = tokio::time::timeout(
            options.connect_timeout,
            PgListener::connect_with(&listener_pool),
        )
        .await
        .map_err(|_| ConnectError::Unreachable(sqlx::Error::PoolTimedOut))?
        .map_err(ConnectError::Unreachable)?;
        listener
            .listen(&channel)
            .await
            .map_err(ConnectError::Unreachable)?;
        let stop = Token::default();
        tokio::spawn(listen(listener, shared.clone(), stop.clone()));
        let sql = Statements::new(&options.schema, &channel);
        let worker_id = format!("{}-{}", std::process::id(), &JobId::new().to_string()[24..]);
        tokio::spawn(crate::lease::maintain(
            crate::lease::Maintenance {
                pool: pool.clone(),
                shared: shared.clone(),
                worker_id: worker_id.clone(),
                lease: options.lease,
                rescue_interval: options.rescue_interval,
                max_attempts: options.max_attempts,
                heartbeat_sql: sql.heartbeat.clone(),
                rescue_lock_sql: sql.rescue_lock.clone(),
                rescue_sql: sql.rescue.clone(),
            },
            stop.clone(),
        ));
        let (finishes, finish_queue) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(crate::batch::write_finishes(
            pool.clone(),
            crate::batch::FinishSql {
                finish_many: sql.finish_many.clone(),
                notify: sql.notify.clone(),
            },
            finish_queue,
            stop.clone(),
        ));
        Ok(Arc::new(Self {
            finishes: Arc::new(finishes),
            sql,
            worker_id,
            pool,
            options,
            shared,
            stop,
        }))
    }

    /// Creates or updates the schema; safe to call from several processes at once.
    /// Returns the migration versions it applied (empty when the schema was current).
    pub async fn migrate(&self) -> Result<Vec<i32>, ConnectError> {
        crate::migrate::migrate(&self.pool, &self.options.schema).await
    }

    /// Stores a job inside the caller's transaction (or on any connection), so that the job
    /// exists exactly when the application's own changes commit; workers are told at the
    /// commit. Build `job` with `Jobs::prepare_job`, which checks the type and payload.
    ///
    /// ```no_run
    /// # async fn run(jobs: jobs_runtime::Jobs, backend: std::sync::Arc<jobs_postgres::PostgresBackend>)
    /// # -> Result<(), Box<dyn std::error::Error>> {
    /// let job = jobs.prepare_job("SendWelcome", serde_json::json!({ "user": 42 }))?;
    /// let mut tx = backend.pool().begin().await?;
    /// jobs_postgres::sqlx::query("INSERT INTO users (id) VALUES (42)").execute(&mut *tx).await?;
    /// backend.submit_in(&mut tx, &job).await?;
    /// tx.commit().await?; // the user and the job appear together, or neither does
    /// # Ok(())
    /// # }
    /// ```
    pub async fn submit_in(
        &self,
        connection: &mut sqlx::PgConnection,
        job: &Job,
    ) -> Result<(), StorageError> {
        self.check_size(job)?;
        if self.store(connection, job).await? {
            Ok(())
        } else {
            Err(key_held(job))
        }
    }

    /// Stores many jobs in one statement (built with `Jobs::prepare_job`), on any
    /// connection or inside the caller's transaction: for bulk loads, where one insert per
    /// job would be slow. Each job is announced as submitted, as with single submissions.
    pub async fn submit_many_in(
        &self,
        connection: &mut sqlx::PgConnection,
        jobs: &[Job],
    ) -> Result<(), StorageError> {
        for job in jobs {
            self.check_size(job)?;
        }
        let ids: Vec<uuid::Uuid> = jobs.iter().map(|job| *job.id.as_uuid()).collect();
        let types: Vec<&str> = jobs.iter().map(|job| job.job_type.as_str()).collect();
        let payloads: Vec<Json<&Value>> = jobs.iter().map(|job| Json(&job.payload)).collect();
        let created: Vec<i64> = jobs
            .iter()
            .map(|job| job.created_at.as_unix_micros())
            .collect();
        let run_at: Vec<i64> = jobs.iter().map(|job| job.run_at.as_unix_micros()).collect();
        let priorities: Vec<i16> = jobs.iter().map(|job| job.priority).collect();
        let max_attempts: Vec<i32> = jobs.iter().map(max_attempts).collect();
        let timeouts: Vec<Option<i64>> = jobs.iter().map(timeout_ms).collect();
        let keys: Vec<Option<&str>> = jobs.iter().map(|job| job.unique_key.as_deref()).collect();
        let queues: Vec<&str> = jobs.iter().map(|job| job.queue.as_str()).collect();
        sqlx::query(&self.sql.insert_many)
            .bind(ids)
            .bind(types)
            .bind(payloads)
            .bind(created)
            .bind(run_at)
            .bind(priorities)
            .bind(max_attempts)
            .bind(timeouts)
            .bind(keys)
            .bind(queues)
            .execute(connection)
            .await
            .map_err(storage("could not store the jobs"))?;
        Ok(())
    }

    /// Refuses a payload over the limit (the service checks before calling `insert`;
    /// direct callers of `submit_in` are checked here).
    fn check_size(&self, job: &Job) -> Result<(), StorageError> {
        let limit = self.options.max_payload_bytes;
        let size = serde_json::to_vec(&job.payload).map_or(usize::MAX, |bytes| bytes.len());
        if size > limit {
            return Err(StorageError::new(format!(
                "the payload of job {} is {size} bytes of JSON, over the limit of {limit}",
                job.id
            )));
        }
        Ok(())
    }

    /// Inserts a checked job; `false` if an active job holds its unique key.
    async fn store(
        &self,
        connection: &mut sqlx::PgConnection,
        job: &Job,
    ) -> Result<bool, StorageError> {
        let row = bind_job(sqlx::query(&self.sql.insert), job)
            .fetch_optional(connection)
            .await
            .map_err(storage("could not store the job"))?;
        Ok(row.is_some())
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// This process's worker id, stamped on the jobs it claims.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Claims jobs for the idle workers into the buffer; whether any were claimed (or
    /// another dequeuer's claim filled the buffer meanwhile).
    async fn fill(&self, queue: &str, lane: &Arc<Lane>) -> Result<bool, StorageError> {
        // The guard moves into the claim task, so the lock is held until the claimed jobs
        // are in the buffer, even if this dequeuer stops waiting: `close` takes the lock
        // too, and so never misses a claim still in flight.
        let one_claim_at_a_time = lane.claim_lock.clone().lock_owned().await;
        if !lane.claimed.is_empty() {
            return Ok(true);
        }
        let want = lane
            .claimed
            .waiting
            .load(std::sync::atomic::Ordering::Acquire)
            .clamp(1, self.options.claim_batch);
        // The claim runs in its own task and lands in the buffer: a worker that stops
        // waiting (shutdown) leaves the jobs there for the others, or for `close`.
        let (tx, rx) = oneshot::channel();
        let pool = self.pool.clone();
        let claim = self.sql.claim.clone();
        let notify = self.sql.notify.clone();
        let worker_id = self.worker_id.clone();
        let lease_ms = self.options.lease.as_millis() as i64;
        let shared = self.shared.clone();
        let lane_in_task = lane.clone();
        let queue = queue.to_owned();
        let limit = self
            .options
            .global_limits
            .get(&queue)
            .map(|n| i64::from(*n));
        let lock_sql = self.sql.queue_lock.clone();
        tokio::spawn(async move {
            let _one_claim_at_a_time = one_claim_at_a_time;
            let claimed = claim_rows(
                &pool, &claim, &lock_sql, &worker_id, lease_ms, want, &queue, limit,
            )
            .await
            .map_err(storage("could not claim jobs"))
            .and_then(|rows| rows.iter().map(job_from_row).collect::<Result<Vec<_>, _>>());
            if let Ok(jobs) = &claimed {
                // Announced before the jobs run, so `started` comes before `finished`.
                let events: Vec<JobEvent> = jobs.iter().map(crate::batch::event_of).collect();
                crate::batch::announce(&pool, &notify, &events).await;
            }
            let answer = claimed.map(|jobs| {
                let count = jobs.len();
                for job in &jobs {
                    shared.hold(job.id, job.attempt, true);
                }
                lane_in_task.claimed.push_all(jobs);
                count
            });
            let _ = tx.send(answer);
        });
        let count = rx
            .await
            .unwrap_or_else(|_| Err(StorageError::new("the claim task stopped")))?;
        if count > 1 {
            lane.wake.notify_waiters();
        }
        Ok(count > 0)
    }

    /// How long until the earliest queued job falls due, by the database's clock, if that
    /// is sooner than the next poll: an idle worker sleeps only that long, so a delayed,
    /// retried or periodic job submitted by any process starts on time.
    async fn next_due(&self, queue: &str) -> Option<Duration> {
        let micros: Option<i64> = sqlx::query_scalar(&self.sql.next_due)
            .bind(queue)
            .fetch_one(&self.pool)
            .await
            .ok()
            .flatten();
        let wait = Duration::from_micros(u64::try_from(micros?).ok()?);
        (wait < self.options.poll_interval).then_some(wait)
    }

    /// Gives claimed jobs back to the queue, as if never claimed (or cancels them if a
    /// cancel was requested meanwhile).
    async fn release(&self, jobs: Vec<Job>) -> Result<(), StorageError> {
        if jobs.is_empty() {
            return Ok(());
        }
        for job in &jobs {
            self.shared.hold(job.id, job.attempt, false);
        }
        let ids: Vec<uuid::Uuid> = jobs.iter().map(|job| *job.id.as_uuid()).collect();
        let attempts: Vec<i32> = jobs.iter().map(|job| job.attempt as i32).collect();
        sqlx::query(&self.sql.release)
            .bind(ids)
            .bind(attempts)
            .execute(&self.pool)
            .await
            .map_err(storage("could not give back claimed jobs"))?;
        Ok(())
    }
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("schema", &self.options.schema)
            .field("worker_id", &self.worker_id)
            .finish_non_exhaustive()
    }
}

/// Turns notifications into events, wake-ups and cancel requests. `PgListener` reconnects
/// by itself; after a reconnect, notifications sent meanwhile are lost, so idle workers
/// are woken to look for jobs.
async fn listen(mut listener: PgListener, shared: Arc<Shared>, stop: Token) {
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => return,
            received = listener.try_recv() => received,
        };
        match received {
            Ok(Some(notification)) => match events_in(notification.payload()) {
                Ok(events) => {
                    for event in events {
                        match &event {
                            JobEvent::Submitted { .. } | JobEvent::Requeued { .. } => {
                                shared.wake_one_each()
                            }
                            JobEvent::CancelRequested { id } => {
                                let _ = shared.cancellations.send(*id);
                            }
                            _ => {}
                        }
                        if shared.events.receiver_count() > 0 {
                            let _ = shared.events.send(event);
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, payload = notification.payload(), "unreadable job notification")
                }
            },
            Ok(None) => {
                tracing::warn!("lost the notification connection; reconnecting");
                shared.wake_all();
            }
            Err(error) => {
                tracing::warn!(%error, "notification listener failed; retrying");
                shared.wake_all();
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}

/// The events of one notification: a single event, or an array of them (statements that
/// change many rows announce them together).
fn events_in(payload: &str) -> Result<Vec<JobEvent>, serde_json::Error> {
    if payload.starts_with('[') {
        serde_json::from_str(payload)
    } else {
        serde_json::from_str(payload).map(|event| vec![event])
    }
}

/// Runs the claim of `queue`. A queue with a cluster-wide `limit` claims inside a
/// transaction that first takes the queue's advisory lock, so that claims of that queue
/// take turns across processes and the count of its running jobs holds.
#[allow(clippy::too_many_arguments)]
async fn claim_rows(
    pool: &PgPool,
    claim: &str,
    lock_sql: &str,
    worker_id: &str,
    lease_ms: i64,
    want: usize,
    queue: &str,
    limit: Option<i64>,
) -> Result<Vec<PgRow>, sqlx::Error> {
    let query = sqlx::query(claim)
        .bind(worker_id)
        .bind(lease_ms)
        .bind(want as i64)
        .bind(queue)
        .bind(limit);
    if limit.is_none() {
        return query.fetch_all(pool).await;
    }
    let mut tx = pool.begin().await?;
    sqlx::query(lock_sql).bind(queue).execute(&mut *tx).await?;
    let rows = query.fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(rows)
}

/// The error of an insert refused because an active job holds the key.
fn key_held(job: &Job) -> StorageError {
    StorageError::new(format!(
        "the unique key {:?} is held by an active job",
        job.unique_key.as_deref().unwrap_or_default()
    ))
}

/// Binds a new job's columns as the insert statements take them, `$1` to `$10`.
fn bind_job<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    job: &'q Job,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(job.id.as_uuid())
        .bind(&job.job_type)
        .bind(Json(&job.payload))
        .bind(job.created_at.as_unix_micros())
        .bind(job.run_at.as_unix_micros())
        .bind(job.priority)
        .bind(max_attempts(job))
        .bind(timeout_ms(job))
        .bind(job.unique_key.as_deref())
        .bind(&job.queue)
}

/// A job's attempt limit as the `integer` column holds it.
fn max_attempts(job: &Job) -> i32 {
    i32::try_from(job.max_attempts.max(1)).unwrap_or(i32::MAX)
}

/// A job's time limit as the `bigint` column holds it.
fn timeout_ms(job: &Job) -> Option<i64> {
    job.timeout_ms
        .map(|ms| i64::try_from(ms.max(1)).unwrap_or(i64::MAX))
}

pub(crate) fn job_from_row(row: &PgRow) -> Result<Job, StorageError> {
    let bad = |error: sqlx::Error| {
        StorageError::with_source(format!("unreadable job row: {error}"), error)
    };
    let status: String = row.try_get("status").map_err(bad)?;
    let status = JobStatus::from_str(&status)
        .map_err(|e| StorageError::with_source("unreadable job status", e))?;
    let created: i64 = row.try_get("created_us").map_err(bad)?;
    let mut job = Job::queued(
        JobId::from_uuid(row.try_get("id").map_err(bad)?),
        row.try_get::<String, _>("job_type").map_err(bad)?,
        row.try_get::<Json<Value>, _>("payload").map_err(bad)?.0,
        Timestamp::from_unix_micros(created),
    );
    job.status = status;
    let percent: Option<i16> = row.try_get("progress_percent").map_err(bad)?;
    let message: Option<String> = row.try_get("progress_message").map_err(bad)?;
    job.progress =
        percent.map(|p| Progress::new(p.clamp(0, 100) as u8, message.unwrap_or_default()));
    job.error = row.try_get("error").map_err(bad)?;
    job.attempt = row.try_get::<i32, _>("attempt").map_err(bad)?.max(0) as u32;
    job.cancel_requested = row.try_get("cancel_requested").map_err(bad)?;
    job.started_at = row
        .try_get::<Option<i64>, _>("started_us")
        .map_err(bad)?
        .map(Timestamp::from_unix_micros);
    job.finished_at = row
        .try_get::<Option<i64>, _>("finished_us")
        .map_err(bad)?
        .map(Timestamp::from_unix_micros);
    job.run_at = Timestamp::from_unix_micros(row.try_get("run_at_us").map_err(bad)?);
    job.priority = row.try_get("priority").map_err(bad)?;
    job.max_attempts = row.try_get::<i32, _>("max_attempts").map_err(bad)?.max(1) as u32;
    job.timeout_ms = row
        .try_get::<Option<i64>, _>("timeout_ms")
        .map_err(bad)?
        .map(|ms| ms.max(1) as u64);
    job.errors = row
        .try_get::<Json<Vec<jobs_core::AttemptError>>, _>("errors")
        .map_err(bad)?
        .0;
    job.unique_key = row.try_get("unique_key").map_err(bad)?;
    job.queue = row.try_get("queue").map_err(bad)?;
    Ok(job)
}

impl JobRepository for PostgresBackend {
    fn insert(&self, job: Job) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move {
            // The service checked the payload's size already.
            self.insert_unique(job).await?.stored()
        })
    }

    fn insert_unique(&self, job: Job) -> BoxFuture<'_, Result<Inserted, StorageError>> {
        Box::pin(async move {
            let mut connection = self
                .pool
                .acquire()
                .await
                .map_err(storage("could not store the job"))?;
            // The insert and the look-up are two statements: if the holder finishes in
            // between, the key is free again, so try again.
            for _ in 0..5 {
                if self.store(&mut connection, &job).await? {
                    return Ok(Inserted::Stored);
                }
                let holder = sqlx::query(&self.sql.holder)
                    .bind(job.unique_key.as_deref())
                    .bind(&job.job_type)
                    .fetch_optional(&mut *connection)
                    .await
                    .map_err(storage("could not read the job holding the unique key"))?;
                if let Some(row) = holder {
                    return Ok(Inserted::Existing(Box::new(job_from_row(&row)?)));
                }
            }
            Err(key_held(&job))
        })
    }

    fn insert_scheduled(
        &self,
        job: Job,
        schedule: &str,
        tick: Timestamp,
    ) -> BoxFuture<'_, Result<bool, StorageError>> {
        let schedule = schedule.to_owned();
        Box::pin(async move {
            self.check_size(&job)?;
            let row = bind_job(sqlx::query(&self.sql.insert_scheduled), &job)
                .bind(&schedule)
                .bind(tick.as_unix_micros())
                .fetch_optional(&self.pool)
                .await
                .map_err(storage("could not store the periodic job"))?;
            Ok(row.is_some())
        })
    }

    fn prune_finished(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> BoxFuture<'_, Result<u64, StorageError>> {
        Box::pin(async move {
            let done = sqlx::query(&self.sql.prune)
                .bind(before.as_unix_micros())
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .execute(&self.pool)
                .await
                .map_err(storage("could not delete finished jobs"))?;
            Ok(done.rows_affected())
        })
    }

    fn get(&self, id: JobId) -> BoxFuture<'_, Result<Option<Job>, StorageError>> {
        Box::pin(async move {
            sqlx::query(&self.sql.get)
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err(storage("could not read the job"))?
                .map(|row| job_from_row(&row))
                .transpose()
        })
    }

    fn list(&self, query: JobQuery) -> BoxFuture<'_, Result<JobPage, StorageError>> {
        Box::pin(async move {
            let limit = query.limit.clamp(1, JobQuery::MAX_LIMIT);
            let mut conditions = Vec::new();
            let mut n = 0;
            let mut next = || {
                n += 1;
                n
            };
            if query.status.is_some() {
                conditions.push(format!("status = ${}", next()));
            }
            if query.job_type.is_some() {
                conditions.push(format!("job_type = ${}", next()));
            }
            if query.cursor.is_some() {
                conditions.push(format!("id < ${}", next()));
            }
            let filter = if conditions.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", conditions.join(" AND "))
            };
            let sql = format!(
                "{}{filter} ORDER BY id DESC LIMIT {}",
                self.sql.list_prefix,
                limit + 1
            );
            let mut statement = sqlx::query(&sql);
            if let Some(status) = query.status {
                statement = statement.bind(status.as_str());
            }
            if let Some(job_type) = &query.job_type {
                statement = statement.bind(job_type);
            }
            if let Some(cursor) = query.cursor {
                statement = statement.bind(*cursor.as_uuid());
            }
            let rows = statement
                .fetch_all(&self.pool)
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
        })
    }

    fn transition(
        &self,
        id: JobId,
        expected: Expected,
        transition: Transition,
    ) -> BoxFuture<'_, Result<TransitionOutcome, StorageError>> {
        Box::pin(async move {
            let target = transition.target();
            if let (true, JobStatus::Running, Some(attempt)) =
                (target.is_terminal(), expected.status, expected.attempt)
            {
                // Whatever comes of this write, this worker is done with that attempt.
                self.shared.hold(id, attempt, false);
            }
            if let (true, JobStatus::Running, Some(attempt)) =
                (target.is_terminal(), expected.status, expected.attempt)
            {
                let (status, error, result) = match transition {
                    Transition::Fail { error } => (target, Some(without_nul(error)), None),
                    Transition::Succeed { result } if contains_nul(&result) => (
                        JobStatus::Failed,
                        Some("the job's result contains a NUL character, which PostgreSQL cannot store".to_owned()),
                        None,
                    ),
                    Transition::Succeed { result } => (target, None, Some(result)),
                    _ => (target, None, None),
                };
                let (reply, answer) = oneshot::channel();
                let finish = Finish {
                    id,
                    attempt,
                    status,
                    error,
                    result,
                    reply,
                };
                if self.finishes.send(finish).is_ok() {
                    match answer.await {
                        Ok(Ok(Some(job))) => return Ok(TransitionOutcome::Applied(job)),
                        Ok(Ok(None)) => {} // not Running at that attempt: say why below
                        Ok(Err(error)) => return Err(error),
                        Err(_) => return Err(StorageError::new("the backend is shutting down")),
                    }
                } else {
                    return Err(StorageError::new("the backend is shutting down"));
                }
            } else if let (
                Transition::Retry { .. } | Transition::Snooze { .. },
                JobStatus::Running,
                Some(attempt),
            ) = (&transition, expected.status, expected.attempt)
            {
                // Whatever comes of this write, this worker is done with that attempt.
                self.shared.hold(id, attempt, false);
                let (run_at, error) = match transition {
                    Transition::Retry { error, run_at } => (run_at, Some(without_nul(error))),
                    Transition::Snooze { run_at } => (run_at, None),
                    _ => unreachable!("matched above"),
                };
                let row = sqlx::query(&self.sql.requeue)
                    .bind(id.as_uuid())
                    .bind(attempt as i32)
                    .bind(run_at.as_unix_micros())
                    .bind(error)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(storage("could not queue the job again"))?;
                if let Some(row) = row {
                    return Ok(TransitionOutcome::Applied(job_from_row(&row)?));
                }
            } else if expected.status.can_transition_to(target) {
                let (error, result) = match transition {
                    Transition::Fail { error } => (Some(without_nul(error)), None),
                    Transition::Succeed { result } => (None, Some(Json(result))),
                    _ => (None, None),
                };
                let row = sqlx::query(&self.sql.transition)
                    .bind(id.as_uuid())
                    .bind(expected.status.as_str())
                    .bind(expected.attempt.map(|a| a as i32))
                    .bind(target.as_str())
                    .bind(error)
                    .bind(result)
                    .bind(self.options.lease.as_millis() as i64)
                    .bind(&self.worker_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(storage("could not change the job's status"))?;
                if let Some(row) = row {
                    let job = job_from_row(&row)?;
                    if job.status == JobStatus::Running {
                        self.shared.hold(job.id, job.attempt, true);
                    }
                    return Ok(TransitionOutcome::Applied(job));
                }
            }
            let current = sqlx::query(&self.sql.current)
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err(storage("could not read the job"))?;
            Ok(match current {
                None => TransitionOutcome::NotFound,
                Some(row) => {
                    let status: String = row.get(0);
                    TransitionOutcome::Conflict {
                        current: JobStatus::from_str(&status)
                            .map_err(|e| StorageError::with_source("unreadable job status", e))?,
                        attempt: row.get::<i32, _>(1).max(0) as u32,
                    }
                }
            })
        })
    }

    fn update_progress(
        &self,
        id: JobId,
        attempt: u32,
        progress: Progress,
    ) -> BoxFuture<'_, Result<ProgressAck, StorageError>> {
        Box::pin(async move {
            let row = sqlx::query(&self.sql.progress)
                .bind(id.as_uuid())
                .bind(attempt as i32)
                .bind(i16::from(progress.percent))
                .bind(without_nul(progress.message))
                .fetch_optional(&self.pool)
                .await
                .map_err(storage("could not store progress"))?;
            Ok(match row {
                Some(row) => ProgressAck::Stored {
                    cancel_requested: row.get(0),
                },
                None => ProgressAck::NotRunning,
            })
        })
    }

    fn request_cancel(&self, id: JobId) -> BoxFuture<'_, Result<CancelOutcome, StorageError>> {
        Box::pin(async move {
            let failed = storage("could not cancel the job");
            let mut tx = self
                .pool
                .begin()
                .await
                .map_err(storage("could not cancel the job"))?;
            let Some(row) = sqlx::query(&self.sql.lock_for_cancel)
                .bind(id.as_uuid())
                .fetch_optional(&mut *tx)
                .await
                .map_err(failed)?
            else {
                return Ok(CancelOutcome::NotFound);
            };
            let job = job_from_row(&row)?;
            let outcome = match job.status {
                JobStatus::Queued => {
                    let row = sqlx::query(&self.sql.cancel_queued)
                        .bind(id.as_uuid())
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(storage("could not cancel the job"))?;
                    CancelOutcome::CanceledQueued(job_from_row(&row)?)
                }
                JobStatus::Running if !job.cancel_requested => {
                    let row = sqlx::query(&self.sql.flag_cancel)
                        .bind(id.as_uuid())
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(storage("could not cancel the job"))?;
                    CancelOutcome::Requested(job_from_row(&row)?)
                }
                JobStatus::Running => CancelOutcome::Requested(job),
                status => CancelOutcome::AlreadyFinished(status),
            };
            tx.commit()
                .await
                .map_err(storage("could not cancel the job"))?;
            Ok(outcome)
        })
    }

    fn get_result(&self, id: JobId) -> BoxFuture<'_, Result<Option<Value>, StorageError>> {
        Box::pin(async move {
            let row = sqlx::query(&self.sql.result)
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err(storage("could not read the result"))?;
            Ok(row.map(|row| row.get::<Json<Value>, _>(0).0))
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.shared.events.subscribe()
    }

    fn max_payload_bytes(&self) -> Option<usize> {
        Some(self.options.max_payload_bytes)
    }

    fn count_jobs(&self) -> BoxFuture<'_, Result<Vec<JobCount>, StorageError>> {
        Box::pin(async move {
            let rows = sqlx::query(&self.sql.counts)
                .fetch_all(&self.pool)
                .await
                .map_err(storage("could not count jobs"))?;
            let mut counts = Vec::with_capacity(rows.len());
            for row in rows {
                let status: String = row.get(1);
                let status = JobStatus::from_str(&status)
                    .map_err(|e| StorageError::with_source("unreadable job status", e))?;
                counts.push(JobCount::new(
                    row.get::<String, _>(0),
                    status,
                    row.get::<i64, _>(2).max(0) as u64,
                ));
            }
            counts.sort_by(|a, b| (&a.job_type, a.status).cmp(&(&b.job_type, b.status)));
            Ok(counts)
        })
    }

    fn subscribe_cancellations(&self) -> broadcast::Receiver<JobId> {
        self.shared.cancellations.subscribe()
    }
}

impl JobQueue for PostgresBackend {
    /// Nothing to do: a stored `Queued` row is already in the queue, and its insert
    /// notified the workers.
    fn enqueue(&self, _job: &Job) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async { Ok(()) })
    }

    fn dequeue<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<Delivery, StorageError>> {
        Box::pin(async move {
            let lane = self.shared.lane(queue);
            let _waiting = Waiting::new(&lane.claimed.waiting);
            loop {
                let notified = lane.wake.notified();
                let mut notified = std::pin::pin!(notified);
                notified.as_mut().enable();
                if let Some(job) = lane.claimed.pop() {
                    return Ok(Delivery::claimed(job, 0));
                }
                if self.fill(queue, &lane).await? {
                    continue;
                }
                let wait = self
                    .next_due(queue)
                    .await
                    .unwrap_or(self.options.poll_interval);
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        })
    }

    /// Nothing to do: the job's status is the record of what happened to it.
    fn ack(&self, _delivery: Delivery) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async { Ok(()) })
    }

    /// Gives the jobs claimed but not handed out back to the queue.
    fn close(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move {
            for lane in self.shared.all_lanes() {
                let _no_claim_in_flight = lane.claim_lock.lock().await;
                self.release(lane.claimed.drain()).await?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_carries_one_event_or_an_array_of_them() {
        let id = JobId::new();
        let one = format!(r#"{{"event":"started","id":"{id}","attempt":1}}"#);
        assert_eq!(
            events_in(&one).unwrap(),
            vec![JobEvent::Started { id, attempt: 1 }]
        );
        let many =
            format!(r#"[{one},{{"event":"finished","id":"{id}","status":"Failed","error":"no"}}]"#);
        let events = events_in(&many).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].job_id(), id);
        assert!(events_in("not json").is_err());
    }
}
