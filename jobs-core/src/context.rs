//! What an executor sees of the job it runs.

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::{JobError, JobId, Progress};

/// The running job, as handed to its executor: identity, payload, a progress reporter and
/// a cancellation signal.
///
/// Cloning is cheap; clones share the progress reporter and the cancellation token.
///
/// ```
/// use jobs_core::{JobContext, JobId};
/// use tokio_util::sync::CancellationToken;
///
/// // Runtimes build contexts; tests of an executor can too.
/// let token = CancellationToken::new();
/// let (ctx, progress) = JobContext::new(JobId::new(), "Export", 1, serde_json::Value::Null, token.clone());
/// ctx.report_progress(40, "copying rows");
/// assert_eq!(progress.take().unwrap().percent, 40);
///
/// assert!(ctx.check_cancelled().is_ok());
/// token.cancel();
/// assert!(ctx.check_cancelled().is_err());
/// ```
#[derive(Clone)]
pub struct JobContext {
    inner: Arc<Shared>,
}

/// What a context, its clones and its progress receiver share: one allocation per run.
struct Shared {
    id: JobId,
    job_type: String,
    attempt: u32,
    payload: Value,
    token: CancellationToken,
    lease: Option<Arc<dyn AttemptLease>>,
    /// Sees every report as it is made (a test's recorder).
    observer: Option<ProgressObserver>,
    latest: Mutex<Option<Progress>>,
    changed: Notify,
}

/// The runtime's local view of an attempt's lease, consulted whenever an executor asks
/// whether to stop: a process that was paused or starved past its lease learns that it
/// lost the job as soon as it looks, before any round trip to the store.
pub trait AttemptLease: Send + Sync + 'static {
    /// Whether the lease has run out by the local clock (the runtime then also fires the
    /// attempt's token).
    fn has_expired(&self) -> bool;
}

/// A function that sees every progress report of a context as it is made.
pub type ProgressObserver = Arc<dyn Fn(&Progress) + Send + Sync>;

/// The runtime's end of a context's progress reporter: the latest unsent report.
///
/// Reports overwrite each other, so a chatty executor costs one slot, and the runtime
/// decides how often to store what is there.
pub struct ProgressReceiver {
    slot: Arc<Shared>,
}

impl ProgressReceiver {
    /// Takes the latest report made since the last `take`, if any.
    pub fn take(&self) -> Option<Progress> {
        self.slot
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Waits until a report is made (returns at once if one was made since the last wait).
    pub async fn changed(&self) {
        self.slot.changed.notified().await;
    }
}

impl JobContext {
    /// A context for attempt `attempt` of job `id`, cancelled through `token`. Returns the
    /// receiver on which the runtime reads progress reports.
    pub fn new(
        id: JobId,
        job_type: impl Into<String>,
        attempt: u32,
        payload: Value,
        token: CancellationToken,
    ) -> (Self, ProgressReceiver) {
        Self::with_lease(id, job_type, attempt, payload, token, None)
    }

    /// A context as [`JobContext::new`] makes it, whose stop checks also consult `lease`:
    /// once it has expired, [`JobContext::is_cancelled`] is true.
    pub fn with_lease(
        id: JobId,
        job_type: impl Into<String>,
        attempt: u32,
        payload: Value,
        token: CancellationToken,
        lease: Option<Arc<dyn AttemptLease>>,
    ) -> (Self, ProgressReceiver) {
        Self::build(id, job_type.into(), attempt, payload, token, lease, None)
    }

    /// A context as [`JobContext::new`] makes it that also hands every progress report
    /// to `observer` as it is made, before later reports overwrite it (the receiver keeps
    /// only the latest). Test harnesses record reports with it.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use jobs_core::{JobContext, JobId, CancellationToken};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let record = seen.clone();
    /// let (ctx, _progress) = JobContext::observed(
    ///     JobId::new(), "Export", 1, serde_json::Value::Null, CancellationToken::new(),
    ///     Arc::new(move |p| record.lock().unwrap().push(p.percent)),
    /// );
    /// ctx.report_progress(10, "a");
    /// ctx.report_progress(20, "b");
    /// assert_eq!(*seen.lock().unwrap(), [10, 20]);
    /// ```
    pub fn observed(
        id: JobId,
        job_type: impl Into<String>,
        attempt: u32,
        payload: Value,
        token: CancellationToken,
        observer: ProgressObserver,
    ) -> (Self, ProgressReceiver) {
        Self::build(
            id,
            job_type.into(),
            attempt,
            payload,
            token,
            None,
            Some(observer),
        )
    }

    fn build(
        id: JobId,
        job_type: String,
        attempt: u32,
        payload: Value,
        token: CancellationToken,
        lease: Option<Arc<dyn AttemptLease>>,
        observer: Option<ProgressObserver>,
    ) -> (Self, ProgressReceiver) {
        let inner = Arc::new(Shared {
            id,
            job_type,
            attempt,
            payload,
            token,
            lease,
            observer,
            latest: Mutex::new(None),
            changed: Notify::new(),
        });
        let slot = inner.clone();
        (Self { inner }, ProgressReceiver { slot })
    }

    /// The job's id.
    pub fn job_id(&self) -> JobId {
        self.inner.id
    }

    /// The job's type.
    pub fn job_type(&self) -> &str {
        &self.inner.job_type
    }

    /// The attempt being run, from 1.
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    /// The payload the job was submitted with, as JSON.
    pub fn payload(&self) -> &Value {
        &self.inner.payload
    }

    /// Reports progress: `percent` (clamped to 100) and what the job is doing.
    ///
    /// Cheap and never blocks: it overwrites the latest report, and the runtime stores
    /// reports at a bounded rate, so calling it in a tight loop is fine.
    pub fn report_progress(&self, percent: u8, message: impl Into<String>) {
        let progress = Progress::new(percent, message);
        if let Some(observer) = &self.inner.observer {
            observer(&progress);
        }
        *self
            .inner
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(progress);
        self.inner.changed.notify_one();
    }

    /// Whether the job has been asked to stop: canceled, past its time limit, interrupted
    /// by a shutdown, or no longer this process's because its lease was lost. The lease is
    /// judged by the local clock on every call, so a process that was paused or starved
    /// past its lease sees `true` as soon as it looks, before anyone has told it.
    pub fn is_cancelled(&self) -> bool {
        self.inner.token.is_cancelled()
            || self
                .inner
                .lease
                .as_ref()
                .is_some_and(|lease| lease.has_expired())
    }

    /// `Err(JobError::Canceled)` once the job has been asked to stop, for an early return
    /// with `?`.
    pub fn check_cancelled(&self) -> Result<(), JobError> {
        if self.is_cancelled() {
            Err(JobError::Canceled)
        } else {
            Ok(())
        }
    }

    /// Completes when the job is asked to stop; use it in `tokio::select!` to interrupt a
    /// long wait.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.inner.token.cancelled()
    }

    /// The job's cancellation token, to hand to code that takes one.
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.inner.token
    }
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.inner.id)
            .field("job_type", &self.inner.job_type)
            .field("attempt", &self.inner.attempt)
            .field("cancelled", &self.inner.token.is_cancelled())
            .finish_non_exhaustive()
    }
}
