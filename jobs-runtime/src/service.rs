//! The service facade: submit, read, cancel, wait, subscribe, shut down.

use std::sync::Arc;
use std::time::Duration;

use jobs_core::{
    CancelOutcome, Job, JobId, JobPage, JobQuery, JobStatus, JobStore, JobType, JobsError,
    SubmitError, SubmitOptions, Timestamp,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::catalog::Catalog;
use crate::engine::running::StopReason;
use crate::engine::{submit, Inner};
use crate::events::JobEvents;
use crate::typed::JobHandle;
use crate::watchers::JobWatch;

/// How long [`Jobs::wait_for`] waits for its job's finish event before it reads the job
/// again anyway: a backstop, not the way waits normally end.
const WAIT_BACKSTOP: std::time::Duration = std::time::Duration::from_secs(5);
use crate::JobsBuilder;

/// Shuts the service down when the last [`Jobs`] handle is dropped without a
/// [`Jobs::shutdown`]: it takes no new jobs, gives back the jobs it claimed ahead, lets
/// running jobs finish and stores their outcomes, in a task of the runtime.
struct Handle {
    inner: Arc<Inner>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let inner = self.inner.clone();
        // On the service's own runtime, wherever the handle is dropped; a runtime that is
        // itself shutting down drops the task, and the store's leases run out as after a
        // crash.
        let runtime = inner.runtime.clone();
        runtime.spawn(async move {
            inner
                .shutdown
                .get_or_init(|| crate::engine::shut_down(&inner))
                .await;
        });
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
    /// A builder with the defaults: an in-memory store, every `#[job_executor]` of the
    /// program, one worker per CPU.
    pub fn builder() -> JobsBuilder {
        JobsBuilder::new()
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Self {
            handle: Arc::new(Handle { inner }),
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
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
        self.store_one(job).await
    }

    /// Submits many prepared jobs (built with [`Jobs::prepare_job`] or
    /// [`Jobs::prepare_job_with_options`]) in one store call: for bulk loads. Answers, in
    /// order, each job as stored, or the active job holding its unique key. Fails as a
    /// whole, storing nothing, when any job is refused.
    pub async fn submit_many(&self, jobs: Vec<Job>) -> Result<Vec<Job>, SubmitError> {
        for job in &jobs {
            self.known(&job.job_type)?;
        }
        submit::insert(self.inner(), jobs).await
    }

    fn known(&self, job_type: &str) -> Result<(), SubmitError> {
        if self.inner().catalog.get(job_type).is_none() {
            return Err(SubmitError::UnknownJobType {
                job_type: job_type.to_owned(),
                known: self.inner().catalog.job_types(),
            });
        }
        Ok(())
    }

    async fn store_one(&self, job: Job) -> Result<Job, SubmitError> {
        let mut stored = submit::insert(self.inner(), vec![job]).await?;
        Ok(stored.pop().expect("one answer per job"))
    }

    /// Stores and queues a job built by [`Jobs::prepare_job`] or
    /// [`Jobs::prepare_job_with_options`]. Returns the job as stored; when its unique key
    /// is held by an active job, that job, whose id differs from the prepared one's.
    pub async fn submit_prepared(&self, job: Job) -> Result<Job, SubmitError> {
        self.known(&job.job_type)?;
        self.store_one(job).await
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
        submit::prepare(self.inner(), job_type, payload, options)
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
        let payload = serde_json::to_value(&args).map_err(|error| SubmitError::InvalidPayload {
            job_type: J::NAME.to_owned(),
            reason: format!("the arguments do not serialize to JSON: {error}"),
        })?;
        let job = submit::check(self.inner(), Job::new(J::NAME, payload), options)?;
        let job = self.store_one(job).await?;
        Ok(JobHandle::new(job))
    }

    /// Deletes every job (and its result) that finished more than `age` ago, in batches;
    /// returns how many it deleted. Jobs still `Queued` or `Running` are never deleted.
    /// [`JobsBuilder::retention`](crate::JobsBuilder::retention) does this periodically.
    pub async fn prune_finished(&self, age: Duration) -> Result<u64, JobsError> {
        prune(self.inner(), age).await
    }

    /// The job with this id, or `None`.
    pub async fn get_job(&self, id: JobId) -> Result<Option<Job>, JobsError> {
        Ok(self.inner().store.get(id).await?)
    }

    /// The result of a job, once it has `Succeeded`; `None` before that, for a job that
    /// ended otherwise, and for an unknown id.
    pub async fn get_job_result(&self, id: JobId) -> Result<Option<Value>, JobsError> {
        Ok(self.inner().store.get_result(id).await?)
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
        Ok(self.inner().store.list(query).await?)
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
        let inner = self.inner();
        // A job this engine claimed ahead but has not started is still queued as far as
        // the caller is concerned: give it back first, so that the cancel finds it queued
        // (it ends `Canceled` at attempt 0 and never runs).
        if let Some(claimed) = inner.take_unstarted(id) {
            crate::engine::completer::give_back(inner, vec![claimed]).await;
        }
        let outcome = inner.store.request_cancel(id).await?;
        if let CancelOutcome::Requested(_) = &outcome {
            // Claimed ahead in between: given back now, it ends `Canceled` at once (a
            // requeue of a job asked to stop does).
            if let Some(claimed) = inner.take_unstarted(id) {
                crate::engine::completer::give_back(inner, vec![claimed]).await;
                if let Some(job) = inner.store.get(id).await? {
                    if job.status == JobStatus::Canceled {
                        return Ok(CancelOutcome::CanceledQueued(job));
                    }
                }
            }
        }
        let event = match &outcome {
            CancelOutcome::Requested(job) if job.cancel_requested => {
                Some(jobs_core::JobEvent::CancelRequested { id })
            }
            CancelOutcome::CanceledQueued(_) => Some(jobs_core::JobEvent::Finished {
                id,
                status: JobStatus::Canceled,
                error: None,
            }),
            _ => None,
        };
        if let Some(event) = event {
            inner.announce(vec![event]).await;
        }
        if let CancelOutcome::Requested(_) = outcome {
            // This service may hold the job: tell it now rather than through the event.
            self.inner().registry.stop(id, StopReason::Canceled);
        }
        Ok(outcome)
    }

    /// Waits until the job reaches a terminal state and returns it, without polling: the
    /// wait is woken by the store's events. Wrap it in `tokio::time::timeout` to bound it.
    pub async fn wait_for(&self, id: JobId) -> Result<Job, JobsError> {
        let inner = self.inner();
        // Watch before reading, so a finish in between is not missed.
        let mut watch = inner.watchers.watch(id, inner.notifications());
        loop {
            let job = inner.store.get(id).await?.ok_or(JobsError::NotFound(id))?;
            if job.status.is_terminal() {
                return Ok(job);
            }
            // Read again at the job's finish, or when the watch ended or may have missed
            // it, or after the backstop interval (for an event a store could not deliver:
            // notifications sent while its connection was being re-established).
            let missed = watch.missed();
            let _ = tokio::time::timeout(WAIT_BACKSTOP, async {
                while let Some(event) = watch.recv().await {
                    if matches!(event, jobs_core::JobEvent::Finished { .. })
                        || watch.missed() > missed
                    {
                        return;
                    }
                }
                // The watch ended (the store is gone): wait out the backstop.
                std::future::pending::<()>().await;
            })
            .await;
            if watch.is_closed() {
                watch = inner.watchers.watch(id, inner.notifications());
            }
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
        JobEvents::new(self.inner().notifications().subscribe())
    }

    /// The events of job `id` from now on, and no other job's: what a page that follows
    /// one job wants. Cheaper than filtering [`Jobs::subscribe`] (one task hands each event
    /// to the watchers of its job), and other jobs' traffic never makes it fall behind.
    /// Read the job with [`Jobs::get_job`] after starting the watch, so that no event falls
    /// in between.
    pub fn watch_job(&self, id: JobId) -> JobWatch {
        let inner = self.inner();
        inner.watchers.watch(id, inner.notifications())
    }

    /// The job types this service accepts, sorted.
    pub fn job_types(&self) -> Vec<String> {
        self.inner().catalog.job_types()
    }

    /// The catalog of executors.
    pub fn catalog(&self) -> &Catalog {
        &self.inner().catalog
    }

    /// The store the service keeps its jobs in.
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.inner().store
    }

    /// How many jobs of every queue this service has claimed ahead and not started.
    pub fn prefetched(&self) -> usize {
        self.inner()
            .lanes
            .values()
            .map(|lane| lane.buffered())
            .sum()
    }

    /// How many attempts this service holds: claimed ahead, running, or waiting for their
    /// outcome to be stored.
    pub fn held(&self) -> usize {
        self.inner().registry.len()
    }

    /// How many workers run jobs (0 for a submit-only service).
    pub fn concurrency(&self) -> usize {
        self.inner().config.concurrency
    }

    /// Whether [`Jobs::shutdown`] has begun.
    pub fn is_shut_down(&self) -> bool {
        self.inner().intake.is_cancelled()
    }

    /// Completes when [`Jobs::shutdown`] begins (at once if it has): for what should end
    /// with the service, such as the event streams of an HTTP server.
    pub fn shutdown_begun(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.inner().intake.clone().cancelled_owned()
    }

    /// Shuts the service down gracefully.
    ///
    /// Submissions are refused from now on and no more jobs are claimed; jobs claimed
    /// ahead and not started go back to the queue as if never claimed. Running jobs get
    /// the grace period (see [`JobsBuilder::shutdown_grace`]) to finish; then their
    /// cancellation tokens fire and they get a second grace period to return. A job that
    /// returns an error after being told to stop, or that is abandoned because it did not
    /// stop, goes back to the queue at once without counting a failed attempt, so another
    /// process (or the next start, on a durable store) runs it again. Outcomes are stored
    /// before `shutdown` returns. Dropping the last handle without calling it does the
    /// same in a task of the runtime.
    ///
    /// It runs once: calling it again, or from a clone, waits for that one run to end.
    pub async fn shutdown(&self) {
        let inner = &self.handle.inner;
        inner
            .shutdown
            .get_or_init(|| crate::engine::shut_down(inner))
            .await;
    }
}

/// How many finished jobs one prune statement deletes at most.
const PRUNE_BATCH: usize = 1_000;

async fn prune(inner: &Inner, age: Duration) -> Result<u64, JobsError> {
    let now = Timestamp::now().as_unix_micros();
    let age = i64::try_from(age.as_micros()).unwrap_or(i64::MAX);
    let before = Timestamp::from_unix_micros(now.saturating_sub(age));
    let mut total = 0;
    loop {
        let deleted = inner.store.prune_finished(before, PRUNE_BATCH).await?;
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

pub(crate) fn decode_output<J: JobType>(id: JobId, value: Value) -> Result<J::Output, JobsError>
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
