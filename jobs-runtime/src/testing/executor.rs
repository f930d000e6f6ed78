//! One executor run directly, with a test context: no service, no store.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jobs_core::{
    CancellationToken, ErrorKind, ExecutionError, JobContext, JobExecutor, JobId, JobType,
    JobsError, Progress,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::Catalog;

/// A predicate on a progress report.
type ProgressRule = Arc<dyn Fn(&Progress) -> bool + Send + Sync>;

/// When the run's cancellation token fires.
#[derive(Clone)]
enum CancelAt {
    Never,
    /// Before the executor starts.
    Start,
    /// At the first report that the rule accepts.
    Report(ProgressRule),
    /// This long after the start (on the runtime's clock, which a paused test moves).
    After(Duration),
}

/// Runs the executor of job type `J` once, directly, with a context the test controls:
/// its attempt number, when its cancellation token fires; every progress report is kept.
///
/// The executor is the one `#[job_executor]` registered for `J` (or one given with
/// [`ExecutorTest::run_with`]); the arguments go through JSON as a stored job's would.
///
/// See `jobs::testing` for an example.
pub struct ExecutorTest<J: JobType> {
    args: J::Args,
    id: JobId,
    attempt: u32,
    cancel: CancelAt,
}

impl<J: JobType> ExecutorTest<J>
where
    J::Args: Serialize,
{
    /// A run of `J`'s executor with `args`, as attempt 1 of a new job id.
    pub fn new(args: J::Args) -> Self {
        Self {
            args,
            id: JobId::new(),
            attempt: 1,
            cancel: CancelAt::Never,
        }
    }

    /// Runs it as attempt `attempt` (from 1), as a retry would.
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt.max(1);
        self
    }

    /// Runs it as job `id`.
    pub fn job_id(mut self, id: JobId) -> Self {
        self.id = id;
        self
    }

    /// Fires the cancellation token before the executor starts.
    pub fn canceled(mut self) -> Self {
        self.cancel = CancelAt::Start;
        self
    }

    /// Fires the cancellation token at the first progress report `rule` accepts, before
    /// the executor's next look at it.
    pub fn cancel_when(mut self, rule: impl Fn(&Progress) -> bool + Send + Sync + 'static) -> Self {
        self.cancel = CancelAt::Report(Arc::new(rule));
        self
    }

    /// Fires the cancellation token at the `n`th progress report (from 1).
    pub fn cancel_after_reports(self, n: usize) -> Self {
        let seen = std::sync::atomic::AtomicUsize::new(0);
        self.cancel_when(move |_| seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 >= n)
    }

    /// Fires the cancellation token `delay` after the start, on the runtime's clock (on a
    /// paused clock, when the test's time gets there).
    pub fn cancel_after(mut self, delay: Duration) -> Self {
        self.cancel = CancelAt::After(delay);
        self
    }

    /// Runs the executor registered for `J` (by `#[job_executor]`).
    ///
    /// # Panics
    ///
    /// When no executor of that name is registered (naming the ones that are), or two are.
    pub async fn run(self) -> ExecutorRun<J> {
        let catalog = Catalog::discover().unwrap_or_else(|duplicate| panic!("{duplicate}"));
        let Some(entry) = catalog.get(J::NAME) else {
            panic!(
                "no executor of job type `{}` is registered; registered: {:?}; pass one to `run_with`",
                J::NAME,
                catalog.job_types()
            );
        };
        let executor = entry.executor().clone();
        self.run_with(executor.as_ref()).await
    }

    /// Runs `executor` (one registered by hand, say) as `J`'s.
    pub async fn run_with(self, executor: &dyn JobExecutor) -> ExecutorRun<J> {
        let payload = serde_json::to_value(&self.args).expect("the arguments serialize to JSON");
        let token = CancellationToken::new();
        let reports = Arc::new(Mutex::new(Vec::new()));
        let observer = {
            let (reports, token, cancel) = (reports.clone(), token.clone(), self.cancel.clone());
            Arc::new(move |progress: &Progress| {
                reports
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(progress.clone());
                if let CancelAt::Report(rule) = &cancel {
                    if rule(progress) {
                        token.cancel();
                    }
                }
            })
        };
        let (ctx, _latest) = JobContext::observed(
            self.id,
            J::NAME,
            self.attempt,
            payload,
            token.clone(),
            observer,
        );
        let timer = match self.cancel {
            CancelAt::Start => {
                token.cancel();
                None
            }
            CancelAt::After(delay) => {
                let token = token.clone();
                Some(tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    token.cancel();
                }))
            }
            _ => None,
        };
        let result = executor.execute(ctx).await;
        if let Some(timer) = timer {
            timer.abort();
        }
        let progress = std::mem::take(&mut *reports.lock().unwrap_or_else(PoisonError::into_inner));
        ExecutorRun {
            id: self.id,
            result,
            progress,
            cancel_fired: token.is_cancelled(),
            marker: std::marker::PhantomData,
        }
    }
}

/// What an [`ExecutorTest`] run did.
pub struct ExecutorRun<J: JobType> {
    id: JobId,
    result: Result<Value, ExecutionError>,
    progress: Vec<Progress>,
    cancel_fired: bool,
    marker: std::marker::PhantomData<fn() -> J>,
}

impl<J: JobType> ExecutorRun<J> {
    /// The executor's answer as the runtime gets it: the result as JSON, or the error
    /// with its kind.
    pub fn result(&self) -> &Result<Value, ExecutionError> {
        &self.result
    }

    /// The output, read back as `J::Output`; a failed run answers
    /// [`JobsError::NotSucceeded`] with its message, an output that does not read back
    /// [`JobsError::InvalidResult`].
    pub fn output(&self) -> Result<J::Output, JobsError>
    where
        J::Output: DeserializeOwned,
    {
        match &self.result {
            Ok(value) => crate::service::decode_output::<J>(self.id, value.clone()),
            Err(error) => Err(JobsError::NotSucceeded {
                id: self.id,
                status: self.status(),
                error: Some(error.message().to_owned()),
            }),
        }
    }

    /// The error, if the executor returned one.
    pub fn error(&self) -> Option<&ExecutionError> {
        self.result.as_ref().err()
    }

    /// What the job would become: `Succeeded`; `Canceled` for an error after the token
    /// fired; `Failed` otherwise (the runtime retries a retryable failure while the
    /// policy allows, and runs a snoozed job again later, `Queued`).
    pub fn status(&self) -> jobs_core::JobStatus {
        use jobs_core::JobStatus;
        match &self.result {
            Ok(_) => JobStatus::Succeeded,
            Err(_) if self.cancel_fired => JobStatus::Canceled,
            Err(error) if matches!(error.kind(), ErrorKind::Snooze(_)) => JobStatus::Queued,
            Err(_) => JobStatus::Failed,
        }
    }

    /// Whether the token fired and the executor then returned an error (the job would end
    /// `Canceled`).
    pub fn was_canceled(&self) -> bool {
        self.cancel_fired && self.result.is_err()
    }

    /// Whether the cancellation token fired (whatever the executor did then).
    pub fn cancel_fired(&self) -> bool {
        self.cancel_fired
    }

    /// Every progress report, in order.
    pub fn progress(&self) -> &[Progress] {
        &self.progress
    }

    /// The percent of every progress report, in order.
    pub fn percents(&self) -> Vec<u8> {
        self.progress.iter().map(|p| p.percent).collect()
    }
}

impl<J: JobType> std::fmt::Debug for ExecutorRun<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorRun")
            .field("job_type", &J::NAME)
            .field("result", &self.result)
            .field("progress", &self.progress)
            .field("cancel_fired", &self.cancel_fired)
            .finish()
    }
}
