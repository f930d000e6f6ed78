//! The service facade: submit, read, cancel, wait, subscribe, shut down.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jobs_core::{
    CancelOutcome, Inserted, Job, JobId, JobPage, JobPolicy, JobQuery, JobQueue, JobRepository,
    JobStatus, JobType, JobsError, SubmitError, SubmitOptions, Timestamp,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::events::JobEvents;
use crate::processor::RunningJobs;
use crate::typed::JobHandle;
use crate::waiters::Waiters;
use crate::JobsBuilder;

/// Settings fixed at start-up.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) concurrency: usize,
    pub(crate) shutdown_grace: Duration,
    pub(crate) progress_interval: Duration,
    pub(crate) timeout_grace: Duration,
}

pub(crate) struct Inner {
    pub(crate) repository: Arc<dyn JobRepository>,
    pub(crate) queue: Arc<dyn JobQueue>,
    pub(crate) catalog: Catalog,
    pub(crate) config: Config,
    pub(crate) running: RunningJobs,
    pub(crate) waiters: Arc<Waiters>,
    /// Fired when shutdown begins: no new submissions, workers take no new jobs.
    pub(crate) intake: CancellationToken,
    /// Fired when the grace period runs out: running jobs' tokens fire.
    pub(crate) abandon: CancellationToken,
    /// Fired when shutdown is complete: helper tasks stop.
    pub(crate) stopped: CancellationToken,
    /// The worker tasks.
    pub(crate) workers: Mutex<Vec<JoinHandle<()>>>,
    /// Tasks that serve the workers (the cancel listener).
    pub(crate) helpers: Mutex<Vec<JoinHandle<()>>>,
    /// Completed once shutdown is done; concurrent `shutdown` calls wait on it.
    pub(crate) shutdown: tokio::sync::OnceCell<()>,
}

/// Stops the workers taking new jobs when the last [`Jobs`] handle is dropped without a
/// [`Jobs::shutdown`].
struct Handle {
    inner: Arc<Inner>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.inner.intake.cancel();
        self.inner.stopped.cancel();
    }
}

/// The job service: submit jobs, read their status, progress and results, cancel them,
/// wait for them, and watch their events, while its workers run them.
///
/// Cheap to clone; clones share one service. Build one with [`Jobs::builder`].
///
/// ```
/// use jobs_runtime::{executor_fn, JobError, JobStatus, Jobs};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let jobs = Jobs::builder()
///     .discover(false)
///     .register(executor_fn("Double", |ctx| async move {
///         let n = ctx.payload()["n"].as_i64().ok_or("n must be a number")?;
///         Ok::<_, JobError>(n * 2)
///     }))
///     .start()?;
///
/// let job = jobs.submit_job_with("Double", serde_json::json!({ "n": 21 })).await?;
/// let done = jobs.wait_for(job.id).await?;
/// assert_eq!(done.status, JobStatus::Succeeded);
/// assert_eq!(jobs.get_job_result(job.id).await?, Some(serde_json::json!(42)));
///
/// assert!(jobs.submit_job("Triple").await.is_err()); // unknown type: nothing stored
/// jobs.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Jobs {
    handle: Arc<Handle>,
}

impl Jobs {
    /// A builder with the defaults: in-memory repository and queue, every `#[job_executor]`
    /// of the program, one worker per CPU.
    pub fn builder() -> JobsBuilder {
        JobsBuilder::new()
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Self {
            handle: Arc::new(Handle { inner }),
        }
    }

    fn inner(&self) -> &Inner {
        &self.handle.inner
    }

    /// Submits a job of `job_type` without arguments (its payload is `null`).
    ///
    /// Fails with [`SubmitError::UnknownJobType`] for a type with no executor, and with
    /// [`SubmitError::InvalidPayload`] when the executor takes arguments; neither stores
    /// anything.
    pub async fn submit_job(&self, job_type: &str) -> Result<Job, SubmitError> {
        self.submit_job_with(job_type, Value::Null).await
    }

    /// Submits a job of `job_type` whose arguments are `payload`.
    ///
    /// The payload is checked against the executor's argument type before anything is
    /// stored: one that does not deserialize fails with [`SubmitError::InvalidPayload`].
    /// Returns the job as stored, `Queued`.
    pub async fn submit_job_with(
        &self,
        job_type: &str,
        payload: Value,
    ) -> Result<Job, SubmitError> {
        self.submit_job_with_options(job_type, payload, &SubmitOptions::new())
            .await
    }

    /// Submits a job as [`Jobs::submit_job_with`] does, with `options`: a later start,
    /// another priority, retries or time limit than its type's.
    ///
    /// ```ignore
    /// let job = jobs
    ///     .submit_job_with_options("Export", payload, &SubmitOptions::new().delay(Duration::from_secs(60)))
    ///     .await?; // Queued, with `run_at` a minute from now
    /// ```
    pub async fn submit_job_with_options(
        &self,
        job_type: &str,
        payload: Value,
        options: &SubmitOptions,
    ) -> Result<Job, SubmitError> {
        let job = self.prepare_job_with_options(job_type, payload, options)?;
        self.store_and_enqueue(job).await
    }

    /// Stores and queues a job built by [`Jobs::prepare_job`] or
    /// [`Jobs::prepare_job_with_options`]. Returns the job as stored; when its unique key
    /// is held by an active job, that job, whose id differs from the prepared one's.
    pub async fn submit_prepared(&self, job: Job) -> Result<Job, SubmitError> {
        if self.inner().catalog.get(&job.job_type).is_none() {
            return Err(SubmitError::UnknownJobType {
                job_type: job.job_type,
                known: self.inner().catalog.job_types(),
            });
        }
        self.store_and_enqueue(job).await
    }

    /// Checks a submission as [`Jobs::submit_job_with`] does and builds the `Queued` job,
    /// without storing it: for backends that store it inside the application's own
    /// transaction (see the PostgreSQL backend's `submit_in`).
    pub fn prepare_job(&self, job_type: &str, payload: Value) -> Result<Job, SubmitError> {
        self.prepare_job_with_options(job_type, payload, &SubmitOptions::new())
    }

    /// [`Jobs::prepare_job`] with `options`.
    pub fn prepare_job_with_options(
        &self,
        job_type: &str,
        payload: Value,
        options: &SubmitOptions,
    ) -> Result<Job, SubmitError> {
        prepare(self.inner(), job_type, payload, options)
    }

    /// Submits a job of the type `J`, generated by `#[job_executor]`, with typed
    /// arguments: the compiler checks them, so no payload check is needed at run time.
    ///
    /// ```ignore
    /// #[job_executor("Export")]
    /// async fn export(args: ExportArgs) -> Result<ExportReport, anyhow::Error> { .. }
    ///
    /// let handle = jobs.submit::<export>(ExportArgs { table: "users".into() }).await?;
    /// let report: ExportReport = jobs.wait_for_output(&handle).await?;
    /// ```
    pub async fn submit<J: JobType>(&self, args: J::Args) -> Result<JobHandle<J>, SubmitError>
    where
        J::Args: Serialize,
    {
        self.submit_with::<J>(args, &SubmitOptions::new()).await
    }

    /// [`Jobs::submit`] with `options`.
    pub async fn submit_with<J: JobType>(
        &self,
        args: J::Args,
        options: &SubmitOptions,
    ) -> Result<JobHandle<J>, SubmitError>
    where
        J::Args: Serialize,
    {
        let Some(entry) = self.inner().catalog.get(J::NAME) else {
            return Err(SubmitError::UnknownJobType {
                job_type: J::NAME.to_owned(),
                known: self.inner().catalog.job_types(),
            });
        };
        let invalid = |reason: String| SubmitError::InvalidPayload {
            job_type: J::NAME.to_owned(),
            reason,
        };
        let payload = serde_json::to_value(&args)
            .map_err(|error| invalid(format!("the arguments do not serialize to JSON: {error}")))?;
        // The executor registered under this name may not be `J`'s own (one registered by
        // hand): it has the last word on the payload.
        entry
            .executor()
            .validate(&payload)
            .map_err(|error| invalid(error.message().to_owned()))?;
        let job = with_policy(
            Job::new(J::NAME, payload),
            entry.executor().policy(),
            options,
        )?;
        let job = self.store_and_enqueue(job).await?;
        Ok(JobHandle::new(job))
    }

    async fn store_and_enqueue(&self, job: Job) -> Result<Job, SubmitError> {
        let inner = self.inner();
        if inner.intake.is_cancelled() {
            return Err(SubmitError::ShutDown);
        }
        check_payload_size(&job, inner.repository.max_payload_bytes())?;
        if job.unique_key.is_some() {
            // An active job with the key answers instead; it is queued already.
            if let Inserted::Existing(existing) =
                inner.repository.insert_unique(job.clone()).await?
            {
                return Ok(*existing);
            }
        } else {
            inner.repository.insert(job.clone()).await?;
        }
        if let Err(error) = inner.queue.enqueue(&job).await {
            // Stored but not queued, it would never run: cancel it rather than leave it.
            let _ = inner.repository.request_cancel(job.id).await;
            return Err(error.into());
        }
        Ok(job)
    }

    /// Deletes every job (and its result) that finished more than `age` ago, in batches;
    /// returns how many it deleted. Jobs still `Queued` or `Running` are never deleted.
    /// [`JobsBuilder::retention`](crate::JobsBuilder::retention) does this periodically.
    pub async fn prune_finished(&self, age: Duration) -> Result<u64, JobsError> {
        prune(self.inner(), age).await
    }

    /// The job with this id, or `None`.
    pub async fn get_job(&self, id: JobId) -> Result<Option<Job>, JobsError> {
        Ok(self.inner().repository.get(id).await?)
    }

    /// The result of a job, once it has `Succeeded`; `None` before that, for a job that
    /// ended otherwise, and for an unknown id.
    pub async fn get_job_result(&self, id: JobId) -> Result<Option<Value>, JobsError> {
        Ok(self.inner().repository.get_result(id).await?)
    }

    /// The typed output of a job submitted with [`Jobs::submit`], once it has `Succeeded`.
    pub async fn get_output<J: JobType>(
        &self,
        handle: &JobHandle<J>,
    ) -> Result<Option<J::Output>, JobsError>
    where
        J::Output: DeserializeOwned,
    {
        match self.get_job_result(handle.id()).await? {
            None => Ok(None),
            Some(value) => decode_output::<J>(handle.id(), value).map(Some),
        }
    }

    /// A page of jobs, newest first; see [`JobQuery`] for filters and the cursor.
    pub async fn list_jobs(&self, query: JobQuery) -> Result<JobPage, JobsError> {
        Ok(self.inner().repository.list(query).await?)
    }

    /// Cancels a job. A queued job becomes `Canceled` at once and never runs; a running
    /// job's cancellation token fires, and it ends `Canceled` when its executor returns an
    /// error (as [`JobContext::check_cancelled`](jobs_core::JobContext::check_cancelled)
    /// does). Returns whether the cancel took effect: `false` for a finished job or an
    /// unknown id.
    pub async fn cancel_job(&self, id: JobId) -> Result<bool, JobsError> {
        Ok(self.cancel(id).await?.took_effect())
    }

    /// Like [`Jobs::cancel_job`], but says what happened.
    pub async fn cancel(&self, id: JobId) -> Result<CancelOutcome, JobsError> {
        let outcome = self.inner().repository.request_cancel(id).await?;
        if let CancelOutcome::Requested(_) = outcome {
            // This service may hold the job: tell it now rather than through the event.
            self.inner().running.cancel(id);
        }
        Ok(outcome)
    }

    /// Waits until the job reaches a terminal state and returns it, without polling: the
    /// wait is woken by the repository's events. Wrap it in `tokio::time::timeout` to bound it.
    pub async fn wait_for(&self, id: JobId) -> Result<Job, JobsError> {
        let inner = self.inner();
        loop {
            let waiter = inner.waiters.register(id, &inner.repository);
            let job = inner
                .repository
                .get(id)
                .await?
                .ok_or(JobsError::NotFound(id))?;
            if job.status.is_terminal() {
                return Ok(job);
            }
            waiter.woken().await;
        }
    }

    /// Waits for a job submitted with [`Jobs::submit`] and returns its typed output, or
    /// [`JobsError::NotSucceeded`] if it failed or was canceled.
    pub async fn wait_for_output<J: JobType>(
        &self,
        handle: &JobHandle<J>,
    ) -> Result<J::Output, JobsError>
    where
        J::Output: DeserializeOwned,
    {
        let job = self.wait_for(handle.id()).await?;
        if job.status != JobStatus::Succeeded {
            return Err(JobsError::NotSucceeded {
                id: job.id,
                status: job.status,
                error: job.error,
            });
        }
        let value = self.get_job_result(job.id).await?.unwrap_or(Value::Null);
        decode_output::<J>(job.id, value)
    }

    /// A subscription to the events of every job (submitted, started, progress, cancel
    /// requested, finished) from now on.
    pub fn subscribe(&self) -> JobEvents {
        JobEvents::new(self.inner().repository.subscribe())
    }

    /// The job types this service accepts, sorted.
    pub fn job_types(&self) -> Vec<String> {
        self.inner().catalog.job_types()
    }

    /// The catalog of executors.
    pub fn catalog(&self) -> &Catalog {
        &self.inner().catalog
    }

    /// The repository the service stores jobs in.
    pub fn repository(&self) -> &Arc<dyn JobRepository> {
        &self.inner().repository
    }

    /// The queue the service delivers jobs through.
    pub fn queue(&self) -> &Arc<dyn JobQueue> {
        &self.inner().queue
    }

    /// How many workers run jobs (0 for a submit-only service).
    pub fn concurrency(&self) -> usize {
        self.inner().config.concurrency
    }

    /// Whether [`Jobs::shutdown`] has begun.
    pub fn is_shut_down(&self) -> bool {
        self.inner().intake.is_cancelled()
    }

    /// Shuts the service down gracefully.
    ///
    /// Submissions are refused from now on and workers take no new jobs. Running jobs get
    /// the grace period (see [`JobsBuilder::shutdown_grace`]) to finish; then their
    /// cancellation tokens fire and they get a second grace period to return. Jobs still
    /// running after that are abandoned and marked `Failed`. Jobs still queued stay
    /// `Queued` (the in-memory queue is not durable, so they end with the process).
    ///
    /// It runs once: calling it again, or from a clone, waits for that one run to end.
    pub async fn shutdown(&self) {
        let inner = self.inner();
        inner.shutdown.get_or_init(|| self.shut_down_once()).await;
    }

    async fn shut_down_once(&self) {
        let inner = self.inner();
        inner.intake.cancel();
        let mut workers = take(&inner.workers);
        let grace = inner.config.shutdown_grace;
        let mut abandoned = Vec::new();
        if !join_within(&mut workers, grace).await {
            tracing::warn!(
                ?grace,
                "jobs still running after the grace period; asking them to stop"
            );
            inner.abandon.cancel();
            inner.running.interrupt_all();
            if !join_within(&mut workers, grace).await {
                // Note what still runs before the workers go: aborting them drops their
                // registrations.
                abandoned = inner.running.drain();
                for worker in &workers {
                    worker.abort();
                }
                for worker in workers.drain(..) {
                    let _ = worker.await;
                }
            }
        }
        if let Err(error) = inner.queue.close().await {
            tracing::warn!(%error, "could not give back jobs claimed ahead");
        }
        inner.stopped.cancel();
        for helper in take(&inner.helpers) {
            helper.abort();
            let _ = helper.await;
        }
        // These were running on the aborted workers; the compare-and-set leaves alone any
        // that finished after all.
        for (id, job) in abandoned {
            let expected = jobs_core::Expected::new(JobStatus::Running, job.attempt());
            let transition = jobs_core::Transition::Fail {
                error: "abandoned: the job did not stop within the shutdown grace period".into(),
            };
            if let Err(error) = inner.repository.transition(id, expected, transition).await {
                tracing::error!(job.id = %id, %error, "could not mark an abandoned job as failed");
            }
        }
    }
}

fn take(tasks: &Mutex<Vec<JoinHandle<()>>>) -> Vec<JoinHandle<()>> {
    std::mem::take(&mut *tasks.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Awaits every task, up to `limit`; returns whether all ended. Finished tasks are removed.
async fn join_within(tasks: &mut Vec<JoinHandle<()>>, limit: Duration) -> bool {
    let all = async {
        while let Some(task) = tasks.last_mut() {
            let _ = task.await;
            tasks.pop();
        }
    };
    tokio::time::timeout(limit, all).await.is_ok()
}

/// Checks a submission and builds its `Queued` job with the type's policy and `options`.
pub(crate) fn prepare(
    inner: &Inner,
    job_type: &str,
    payload: Value,
    options: &SubmitOptions,
) -> Result<Job, SubmitError> {
    let Some(entry) = inner.catalog.get(job_type) else {
        return Err(SubmitError::UnknownJobType {
            job_type: job_type.to_owned(),
            known: inner.catalog.job_types(),
        });
    };
    entry
        .executor()
        .validate(&payload)
        .map_err(|error| SubmitError::InvalidPayload {
            job_type: job_type.to_owned(),
            reason: error.message().to_owned(),
        })?;
    let job = with_policy(
        Job::new(job_type, payload),
        entry.executor().policy(),
        options,
    )?;
    check_payload_size(&job, inner.repository.max_payload_bytes())?;
    Ok(job)
}

/// How many finished jobs one prune statement deletes at most.
const PRUNE_BATCH: usize = 1_000;

async fn prune(inner: &Inner, age: Duration) -> Result<u64, JobsError> {
    let now = Timestamp::now().as_unix_micros();
    let age = i64::try_from(age.as_micros()).unwrap_or(i64::MAX);
    let before = Timestamp::from_unix_micros(now.saturating_sub(age));
    let mut total = 0;
    loop {
        let deleted = inner.repository.prune_finished(before, PRUNE_BATCH).await?;
        total += deleted;
        if deleted < PRUNE_BATCH as u64 {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// The retention task: prunes every quarter of `age` until the service stops.
pub(crate) async fn prune_periodically(inner: Arc<Inner>, age: Duration) {
    let every = (age / 4).clamp(Duration::from_millis(10), Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = inner.stopped.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match prune(&inner, age).await {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "pruned finished jobs"),
            Err(error) => tracing::warn!(%error, "could not prune finished jobs"),
        }
    }
}

/// The most retries a job may have.
const MAX_RETRIES: u32 = 10_000;

/// The latest start a job may ask for: the end of the year 9999.
const LATEST_RUN_AT: Timestamp = Timestamp::from_unix_micros(253_402_300_799_999_999);

/// The job with its type's policy and the submission's options applied.
fn with_policy(
    mut job: Job,
    policy: JobPolicy,
    options: &SubmitOptions,
) -> Result<Job, SubmitError> {
    let invalid = |reason: &str| SubmitError::InvalidOptions {
        job_type: job.job_type.clone(),
        reason: reason.to_owned(),
    };
    let timeout = options.timeout.or(policy.timeout);
    if timeout.is_some_and(|timeout| timeout.is_zero()) {
        return Err(invalid("the timeout must be longer than zero"));
    }
    let retries = options.retries.unwrap_or(policy.retries);
    if retries > MAX_RETRIES {
        return Err(invalid("at most 10,000 retries"));
    }
    job.max_attempts = retries
        .checked_add(1)
        .ok_or_else(|| invalid("too many retries"))?;
    job.priority = options.priority.unwrap_or(policy.priority);
    if let Some(queue) = options.queue.as_deref().or(policy.queue) {
        if !jobs_core::valid_queue_name(queue) {
            return Err(invalid(
                "a queue name is 1 to 64 letters, digits, `_`, `-` or `.`",
            ));
        }
        job.queue = queue.to_owned();
    }
    if let Some(key) = &options.unique_key {
        if key.is_empty() || key.len() > 255 {
            return Err(invalid("the unique key must be 1 to 255 bytes long"));
        }
        job.unique_key = Some(key.clone());
    }
    job.timeout_ms = timeout.map(|timeout| timeout.as_millis().max(1) as u64);
    match (options.run_at, options.delay) {
        (Some(_), Some(_)) => return Err(invalid("give a run_at or a delay, not both")),
        (Some(run_at), None) => job.run_at = run_at.max(job.created_at),
        (None, Some(delay)) => {
            let micros = i64::try_from(delay.as_micros()).unwrap_or(i64::MAX);
            job.run_at =
                Timestamp::from_unix_micros(job.created_at.as_unix_micros().saturating_add(micros));
        }
        (None, None) => {}
    }
    if job.run_at > LATEST_RUN_AT {
        return Err(invalid("the start is after the year 9999"));
    }
    Ok(job)
}

/// Refuses a payload whose compact JSON is longer than `limit`, stopping the count as soon
/// as the limit is passed.
pub(crate) fn check_payload_size(job: &Job, limit: Option<usize>) -> Result<(), SubmitError> {
    let Some(limit) = limit else {
        return Ok(());
    };
    struct Counter {
        left: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.left = self
                .left
                .checked_sub(buf.len())
                .ok_or_else(|| std::io::Error::other("over the limit"))?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(&mut Counter { left: limit }, &job.payload).map_err(|_| {
        SubmitError::PayloadTooLarge {
            job_type: job.job_type.clone(),
            limit,
        }
    })
}

fn decode_output<J: JobType>(id: JobId, value: Value) -> Result<J::Output, JobsError>
where
    J::Output: DeserializeOwned,
{
    serde_json::from_value(value).map_err(|error| JobsError::InvalidResult {
        id,
        reason: error.to_string(),
    })
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("job_types", &self.job_types())
            .field("concurrency", &self.concurrency())
            .field("shut_down", &self.is_shut_down())
            .finish()
    }
}
