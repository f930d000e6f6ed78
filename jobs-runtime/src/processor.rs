//! The worker pool: takes job ids from the queue and runs their executors.

use std::collections::hash_map::Entry;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jobs_core::{
    BoxFuture, Delivery, ErrorKind, Expected, JobContext, JobId, JobStatus, ProgressAck,
    ProgressReceiver, StorageError, Timestamp, Transition, TransitionOutcome,
};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::id_hash::IdMap;
use crate::panic::{panic_message, CatchUnwind};
use crate::service::Inner;

/// The jobs this service is running, so that a cancel can reach their tokens.
#[derive(Default)]
pub(crate) struct RunningJobs {
    jobs: Mutex<IdMap<RunningJob>>,
}

/// One running job as the registry and its worker share it: one allocation per job.
#[derive(Clone)]
pub(crate) struct RunningJob(Arc<RunningState>);

struct RunningState {
    token: CancellationToken,
    attempt: AtomicU32,
    canceled_by_user: AtomicBool,
    timed_out: AtomicBool,
    /// Set, and `ended` notified, when the worker running it is done with it.
    done: AtomicBool,
    ended: Notify,
}

impl RunningJob {
    fn new() -> Self {
        Self(Arc::new(RunningState {
            token: CancellationToken::new(),
            attempt: AtomicU32::new(0),
            canceled_by_user: AtomicBool::new(false),
            timed_out: AtomicBool::new(false),
            done: AtomicBool::new(false),
            ended: Notify::new(),
        }))
    }

    pub(crate) fn token(&self) -> &CancellationToken {
        &self.0.token
    }

    pub(crate) fn attempt(&self) -> u32 {
        self.0.attempt.load(Ordering::Acquire)
    }

    fn canceled_by_user(&self) -> bool {
        self.0.canceled_by_user.load(Ordering::Acquire)
    }

    fn timed_out(&self) -> bool {
        self.0.timed_out.load(Ordering::Acquire)
    }

    /// Fires the token because the attempt ran past its time limit.
    fn time_out(&self) {
        self.0.timed_out.store(true, Ordering::Release);
        self.0.token.cancel();
    }

    /// Fires the token because someone asked the job to stop.
    fn cancel_by_user(&self) {
        self.0.canceled_by_user.store(true, Ordering::Release);
        self.0.token.cancel();
    }

    /// Tells whoever waits in [`RunningJob::ended`] that its worker is done with it.
    fn end(&self) {
        self.0.done.store(true, Ordering::Release);
        self.0.ended.notify_waiters();
    }

    /// Completes once its worker is done with it.
    async fn ended(&self) {
        loop {
            let notified = self.0.ended.notified();
            if self.0.done.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

impl RunningJobs {
    fn lock(&self) -> MutexGuard<'_, IdMap<RunningJob>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `id` as handled by the calling worker, or returns the entry of the
    /// worker of this service that already handles it.
    fn register(&self, id: JobId) -> Result<RunningJob, RunningJob> {
        match self.lock().entry(id) {
            Entry::Occupied(existing) => Err(existing.get().clone()),
            Entry::Vacant(slot) => Ok(slot.insert(RunningJob::new()).clone()),
        }
    }

    fn remove(&self, id: JobId) {
        if let Some(job) = self.lock().remove(&id) {
            job.end();
        }
    }

    /// Fires the token of `id` if this service runs it, as a user's cancel.
    pub(crate) fn cancel(&self, id: JobId) -> bool {
        match self.lock().get(&id) {
            Some(job) => {
                job.cancel_by_user();
                true
            }
            None => false,
        }
    }

    /// Fires every token (the shutdown grace period ran out).
    pub(crate) fn interrupt_all(&self) {
        for job in self.lock().values() {
            job.0.token.cancel();
        }
    }

    /// Takes every entry left (their workers were stopped).
    pub(crate) fn drain(&self) -> Vec<(JobId, RunningJob)> {
        let drained: Vec<(JobId, RunningJob)> = self.lock().drain().collect();
        for (_, job) in &drained {
            job.end();
        }
        drained
    }

    pub(crate) fn ids(&self) -> Vec<JobId> {
        self.lock().keys().copied().collect()
    }
}

/// A worker's hold on a registry entry: dropping it (normal end, early return, or a
/// panic unwinding the worker) removes the entry and tells anyone waiting for it.
struct Registration<'a> {
    running: &'a RunningJobs,
    id: JobId,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.running.remove(self.id);
    }
}

/// One worker of the named queue `queue`: runs its jobs one at a time until the service
/// stops taking work.
pub(crate) async fn worker(inner: Arc<Inner>, queue: Arc<str>) {
    loop {
        let delivery = tokio::select! {
            biased;
            _ = inner.intake.cancelled() => return,
            delivery = inner.queue.dequeue(&queue) => delivery,
        };
        match delivery {
            Ok(delivery) => run(&inner, delivery).await,
            Err(error) => {
                tracing::warn!(%error, "could not take a job from the queue; retrying");
                tokio::select! {
                    _ = inner.intake.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
}

/// Forwards cancels requested anywhere (for jobs this service runs) to their tokens.
/// `requests` is subscribed before the first worker starts, so no request is missed.
pub(crate) async fn cancel_listener(
    inner: Arc<Inner>,
    mut requests: tokio::sync::broadcast::Receiver<JobId>,
) {
    loop {
        let request = tokio::select! {
            _ = inner.stopped.cancelled() => return,
            request = requests.recv() => request,
        };
        match request {
            Ok(id) => {
                inner.running.cancel(id);
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                // Some requests were skipped: ask the repository about every job we run.
                for id in inner.running.ids() {
                    if let Ok(Some(job)) = inner.repository.get(id).await {
                        if job.cancel_requested {
                            inner.running.cancel(id);
                        }
                    }
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn run(inner: &Inner, mut delivery: Delivery) {
    let id = delivery.id;
    // Register before claiming, so a cancel that arrives right after the claim finds it.
    let running = loop {
        match inner.running.register(id) {
            Ok(running) => break running,
            Err(older) if delivery.claimed.is_some() => {
                // The queue claimed a newer attempt of a job whose older attempt still
                // runs here (its lease ran out meanwhile, say during a database outage).
                // The older attempt's outcome would be refused: stop it, then run this
                // one. If it does not stop in time (or the service stops), give the claim
                // back rather than hold it unrun.
                older.token().cancel();
                let stopped = tokio::select! {
                    _ = older.ended() => true,
                    _ = inner.intake.cancelled() => false,
                    _ = tokio::time::sleep(inner.config.shutdown_grace) => false,
                };
                if !stopped {
                    if let Err(error) = inner.queue.give_back(delivery).await {
                        tracing::warn!(job.id = %id, %error, "could not give back a claimed job");
                    }
                    return;
                }
            }
            Err(_) => {
                // Another worker here already handles this id: a repeated delivery.
                ack(inner, delivery).await;
                return;
            }
        }
    };
    let _registration = Registration {
        running: &inner.running,
        id,
    };
    let job = match delivery.claimed.take() {
        // The queue claimed it for us (a cancel made between that claim and the
        // registration above is picked up from the progress and lease answers).
        Some(job) => *job,
        None => match inner
            .repository
            .transition(id, Expected::status(JobStatus::Queued), Transition::Start)
            .await
        {
            Ok(TransitionOutcome::Applied(job)) => job,
            Ok(_) => {
                // Canceled while queued, or claimed by another worker: nothing to do.
                ack(inner, delivery).await;
                return;
            }
            Err(error) => {
                // Left unacknowledged: a durable queue delivers it again.
                tracing::error!(job.id = %id, %error, "could not claim a job");
                return;
            }
        },
    };
    running.0.attempt.store(job.attempt, Ordering::Release);
    let attempt = job.attempt;
    let span =
        tracing::info_span!("job", job.id = %id, job.r#type = %job.job_type, job.attempt = attempt);
    // Without a subscriber that wants it, a span still costs its bookkeeping on every poll.
    let span = if span.is_disabled() {
        tracing::Span::none()
    } else {
        span
    };

    let transition = match inner.catalog.get(&job.job_type) {
        None => Transition::Fail {
            error: format!(
                "no executor for job type `{}` is registered in this process",
                job.job_type
            ),
        },
        Some(entry) => {
            let executor = entry.executor().clone();
            let policy = executor.policy();
            let may_retry = job.may_retry();
            let failures = job.errors.len() as u32 + 1;
            let timeout = job.timeout_ms.map(Duration::from_millis);
            let (ctx, progress) = JobContext::new(
                id,
                job.job_type,
                attempt,
                job.payload,
                running.token().clone(),
            );
            let started = std::time::Instant::now();
            // `execute` itself may panic before it returns a future (a hand-written
            // executor, a panicking `Deserialize`): catch that too.
            let outcome = match catch_unwind(AssertUnwindSafe(|| executor.execute(ctx))) {
                Ok(future) => {
                    let execution = CatchUnwind::new(future).instrument(span.clone());
                    drive(inner, id, attempt, &running, execution, &progress, timeout).await
                }
                Err(payload) => Driven::Ended(Err(panic_message(payload.as_ref()))),
            };
            // The last report, if it came after the last write.
            store_progress(inner, id, attempt, &running, &progress).await;
            let _enter = span.enter();
            // A failure is tried again while the job's attempts allow, after a backoff.
            let failed = |error: String| {
                if may_retry {
                    let wait = policy.backoff.delay(failures);
                    Transition::Retry {
                        error,
                        run_at: later(wait),
                    }
                } else {
                    Transition::Fail { error }
                }
            };
            let timed_out = || {
                format!(
                    "timed out after {:?}",
                    timeout.expect("only jobs with a timeout time out")
                )
            };
            let transition = match outcome {
                Driven::Abandoned if running.canceled_by_user() => Transition::Cancel,
                Driven::Abandoned => failed(format!(
                    "{}; abandoned after it did not stop within {:?} of being told",
                    timed_out(),
                    inner.config.timeout_grace
                )),
                Driven::Ended(Ok(Ok(result))) => Transition::Succeed { result },
                Driven::Ended(Ok(Err(_))) if running.canceled_by_user() => Transition::Cancel,
                Driven::Ended(Ok(Err(_))) if running.timed_out() => failed(timed_out()),
                // Not retried: in memory the queue goes with the service, and on a
                // durable store the job is as final as any other failure.
                Driven::Ended(Ok(Err(error)))
                    if running.token().is_cancelled() && inner.abandon.is_cancelled() =>
                {
                    Transition::Fail {
                        error: format!("interrupted because the service shut down: {error}"),
                    }
                }
                Driven::Ended(Ok(Err(error))) => match error.kind() {
                    ErrorKind::Permanent => Transition::Fail {
                        error: error.message().to_owned(),
                    },
                    ErrorKind::Snooze(wait) => Transition::Snooze {
                        run_at: later(wait),
                    },
                    _ => failed(error.message().to_owned()),
                },
                Driven::Ended(Err(panic)) => failed(format!("the executor panicked: {panic}")),
            };
            let elapsed = started.elapsed();
            // A retried attempt failed; a snooze is no outcome.
            let recorded = match &transition {
                Transition::Retry { .. } => JobStatus::Failed,
                other => other.target(),
            };
            entry.stats().record(recorded, elapsed);
            tracing::debug!(
                status = %transition.target(),
                elapsed_us = elapsed.as_micros() as u64,
                "attempt ended"
            );
            transition
        }
    };

    match inner
        .repository
        .transition(id, Expected::new(JobStatus::Running, attempt), transition)
        .await
    {
        Ok(TransitionOutcome::Applied(job)) => {
            if job.status == JobStatus::Queued {
                // Retried or snoozed: back in the queue, due at its `run_at`.
                if let Err(error) = inner.queue.enqueue(&job).await {
                    tracing::error!(parent: &span, %error, "could not queue the job again");
                }
            }
        }
        Ok(other) => {
            tracing::warn!(parent: &span, outcome = ?other, "the job was moved by someone else; its outcome was not stored")
        }
        Err(error) => tracing::error!(parent: &span, %error, "could not store the job's outcome"),
    }
    ack(inner, delivery).await;
}

async fn ack(inner: &Inner, delivery: Delivery) {
    let id = delivery.id;
    if let Err(error) = inner.queue.ack(delivery).await {
        tracing::warn!(job.id = %id, %error, "could not acknowledge a delivery");
    }
}

/// Polls the execution to its end while storing its progress at most once per
/// `progress_interval`, and fires its token if the service gives up waiting on it.
///
/// A progress write runs next to the execution, never in its way: a slow repository delays
/// the next write, not the job.
/// How a drive ended.
enum Driven<T> {
    /// The execution returned.
    Ended(T),
    /// It ran past its timeout and did not stop within the grace period after its token
    /// fired; it was dropped.
    Abandoned,
}

/// The longest a retry or a snooze waits.
const LONGEST_WAIT: Duration = Duration::from_secs(366 * 86_400);

/// `wait` from now, at most [`LONGEST_WAIT`].
fn later(wait: Duration) -> Timestamp {
    let micros = wait.min(LONGEST_WAIT).as_micros() as i64;
    Timestamp::from_unix_micros(Timestamp::now().as_unix_micros().saturating_add(micros))
}

async fn drive<F: std::future::Future + Unpin>(
    inner: &Inner,
    id: JobId,
    attempt: u32,
    running: &RunningJob,
    mut execution: F,
    progress: &ProgressReceiver,
    timeout: Option<Duration>,
) -> Driven<F::Output> {
    let interval = inner.config.progress_interval;
    // The first report is stored at once; the timer exists from the first write on and is
    // reset, not remade, after each one.
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut pending = false;
    let mut write: Option<BoxFuture<'_, Result<ProgressAck, StorageError>>> = None;
    // Made once: a fresh `cancelled()` future per turn of the loop would register anew.
    let abandon = inner.abandon.cancelled();
    tokio::pin!(abandon);
    // The time limit: when it passes the token fires; when the grace after it passes too,
    // the execution is dropped.
    let mut limit: Option<Pin<Box<tokio::time::Sleep>>> =
        timeout.map(|timeout| Box::pin(tokio::time::sleep(timeout)));
    let output = loop {
        tokio::select! {
            biased;
            output = &mut execution => break Driven::Ended(output),
            _ = elapsed(&mut limit), if limit.is_some() => {
                if running.timed_out() {
                    break Driven::Abandoned;
                }
                running.time_out();
                if let Some(limit) = limit.as_mut() {
                    limit.as_mut().reset(Instant::now() + inner.config.timeout_grace);
                }
            }
            ack = async { write.as_mut().expect("guarded by the condition").await }, if write.is_some() => {
                write = None;
                handle_ack(id, running, ack);
            }
            _ = progress.changed(), if !pending => pending = true,
            _ = elapsed(&mut timer), if pending && write.is_none() => {
                pending = false;
                if let Some(report) = progress.take() {
                    write = Some(inner.repository.update_progress(id, attempt, report));
                    let next = Instant::now() + interval;
                    match timer.as_mut() {
                        Some(timer) => timer.as_mut().reset(next),
                        None => timer = Some(Box::pin(tokio::time::sleep_until(next))),
                    }
                }
            }
            _ = &mut abandon, if !running.token().is_cancelled() => running.token().cancel(),
        }
    };
    if let Some(write) = write {
        handle_ack(id, running, write.await);
    }
    output
}

/// Completes when `timer` has elapsed, or at once when there is none yet.
async fn elapsed(timer: &mut Option<Pin<Box<tokio::time::Sleep>>>) {
    if let Some(timer) = timer {
        timer.as_mut().await;
    }
}

/// Stores the latest report, if one was made since the last write.
async fn store_progress(
    inner: &Inner,
    id: JobId,
    attempt: u32,
    running: &RunningJob,
    progress: &ProgressReceiver,
) {
    if let Some(report) = progress.take() {
        let ack = inner.repository.update_progress(id, attempt, report).await;
        handle_ack(id, running, ack);
    }
}

/// A stored report also tells whether a cancel was requested: the worker learns of it even
/// if the cancel event passed it by.
fn handle_ack(id: JobId, running: &RunningJob, ack: Result<ProgressAck, StorageError>) {
    match ack {
        Ok(ProgressAck::Stored {
            cancel_requested: true,
        }) if !running.token().is_cancelled() => running.cancel_by_user(),
        Ok(_) => {}
        Err(error) => tracing::warn!(job.id = %id, %error, "could not store progress"),
    }
}
