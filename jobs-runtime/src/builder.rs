//! Configuring and starting a [`Jobs`] service.

use std::panic::Location;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobs_core::{JobExecutor, JobQueue, JobRepository, SourceLocation};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::catalog::{Catalog, DuplicateJobType};
use crate::memory::{ChannelQueue, InMemoryRepository};
use crate::processor::{cancel_listener, worker, RunningJobs};
use crate::scheduler::Periodic;
use crate::service::{Config, Inner};
use crate::waiters::Waiters;
use crate::Jobs;

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Two executors claim one job type.
    #[error(transparent)]
    DuplicateJobType(#[from] DuplicateJobType),
    /// `start` was called outside a Tokio runtime.
    #[error("Jobs::builder().start() must be called inside a Tokio runtime (for example from #[tokio::main])")]
    NoRuntime,
    /// A named queue cannot be served.
    #[error("cannot serve the queue `{name}`: {reason}")]
    InvalidQueue {
        /// The queue's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A periodic job cannot be scheduled: its cron expression, its type or its payload.
    #[error("cannot schedule `{job_type}` at `{cron}`: {reason}")]
    InvalidSchedule {
        /// The job type.
        job_type: String,
        /// The cron expression.
        cron: String,
        /// What is wrong.
        reason: String,
    },
}

/// Configures a [`Jobs`] service. Every setting has a default; see each method.
///
/// ```
/// use std::time::Duration;
/// use jobs_runtime::Jobs;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), jobs_runtime::BuildError> {
/// let jobs = Jobs::builder()
///     .concurrency(8)
///     .shutdown_grace(Duration::from_secs(5))
///     .progress_interval(Duration::from_millis(200))
///     .start()?;
/// jobs.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[must_use = "a builder does nothing until .start() is called"]
pub struct JobsBuilder {
    concurrency: usize,
    repository: Option<Arc<dyn JobRepository>>,
    queue: Option<Arc<dyn JobQueue>>,
    executors: Vec<(Arc<dyn JobExecutor>, SourceLocation)>,
    discover: bool,
    shutdown_grace: Duration,
    progress_interval: Duration,
    timeout_grace: Duration,
    retention: Option<Duration>,
    periodic: Vec<(String, String, Value)>,
    queues: Vec<(String, usize)>,
}

impl JobsBuilder {
    /// The default time a job past its timeout has to stop once told.
    pub const DEFAULT_TIMEOUT_GRACE: Duration = Duration::from_secs(5);
    /// The default shutdown grace period.
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
    /// The default minimum time between two stored progress reports of one job.
    pub const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

    pub(crate) fn new() -> Self {
        Self {
            concurrency: std::thread::available_parallelism().map_or(1, |n| n.get()),
            repository: None,
            queue: None,
            executors: Vec::new(),
            discover: true,
            shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
            progress_interval: Self::DEFAULT_PROGRESS_INTERVAL,
            timeout_grace: Self::DEFAULT_TIMEOUT_GRACE,
            retention: None,
            periodic: Vec::new(),
            queues: Vec::new(),
        }
    }

    /// How many jobs run at once (default: the number of CPUs). `0` starts no worker:
    /// the service only submits and reads, and other services sharing its repository and
    /// queue run the jobs.
    pub fn concurrency(mut self, workers: usize) -> Self {
        self.concurrency = workers;
        self
    }

    /// Where jobs are stored (default: a new [`InMemoryRepository`]).
    pub fn repository(mut self, repository: Arc<dyn JobRepository>) -> Self {
        self.repository = Some(repository);
        self
    }

    /// Where job ids wait for workers (default: a new [`ChannelQueue`]).
    pub fn queue(mut self, queue: Arc<dyn JobQueue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Uses one backend as both repository and queue, as database backends are (the jobs
    /// table is the queue).
    pub fn backend<B: JobRepository + JobQueue>(self, backend: Arc<B>) -> Self {
        self.repository(backend.clone()).queue(backend)
    }

    /// Registers an executor by hand, next to those found by discovery. Its location in
    /// error messages is the line that calls `register`.
    #[track_caller]
    pub fn register(self, executor: impl JobExecutor) -> Self {
        self.register_arc(Arc::new(executor))
    }

    /// Registers a shared executor by hand.
    #[track_caller]
    pub fn register_arc(mut self, executor: Arc<dyn JobExecutor>) -> Self {
        let caller = Location::caller();
        let location = SourceLocation {
            file: caller.file(),
            line: caller.line(),
            module_path: "registered by hand",
        };
        self.executors.push((executor, location));
        self
    }

    /// Whether to collect every `#[job_executor]` linked into the program (default: yes).
    /// Turn it off to run only the executors registered by hand.
    pub fn discover(mut self, discover: bool) -> Self {
        self.discover = discover;
        self
    }

    /// How long [`Jobs::shutdown`] waits for running jobs before firing their cancellation
    /// tokens, and again before abandoning them (default: 10 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The least time between two stored progress reports of one job (default: 100 ms).
    /// Reports made in between overwrite each other; the latest is always stored, at the
    /// latest when the job finishes.
    pub fn progress_interval(mut self, interval: Duration) -> Self {
        self.progress_interval = interval;
        self
    }

    /// How long an attempt that ran past its timeout has, once its cancellation token
    /// fired, to stop by itself before it is abandoned (default: 5 s). Either way the
    /// attempt fails with a timeout error (and is retried if its policy allows).
    pub fn timeout_grace(mut self, grace: Duration) -> Self {
        self.timeout_grace = grace;
        self
    }

    /// Deletes finished jobs (and their results) once they have been finished for `age`
    /// (default: kept for ever). A task of this service looks every quarter of `age`
    /// (between 10 ms and one minute) and deletes in batches of 1,000, yielding between
    /// batches, so workers are never held up. Several services on one store may all
    /// prune; each job is deleted once. See also [`Jobs::prune_finished`].
    pub fn retention(mut self, age: Duration) -> Self {
        self.retention = Some(age);
        self
    }

    /// Serves the named queue `name` with `workers` workers of its own, beside the main
    /// pool ([`JobsBuilder::concurrency`]), which serves the default queue. At most
    /// `workers` of its jobs run at once in this service, and a burst of them never holds
    /// the other queues' workers. A service runs the jobs of the queues it serves only;
    /// jobs of a queue no service serves wait. `start` refuses a name that is not 1 to 64
    /// letters, digits, `_`, `-` or `.`, the default queue's name, and a name given twice.
    pub fn serve_queue(mut self, name: &str, workers: usize) -> Self {
        self.queues.push((name.to_owned(), workers));
        self
    }

    /// Submits a job of `job_type` with `payload` at every tick of `cron`, UTC (five
    /// fields, or six with seconds first; see `jobs_cron`). Every service on a store may
    /// declare the same schedule: each tick's job is stored once, whichever service fires
    /// first. Ticks missed while no service ran are not made up. `start` refuses an
    /// expression that does not parse, an unknown type, or a payload the executor refuses.
    /// `#[job_executor("T", cron = "...")]` declares one with a `null` payload.
    pub fn periodic(mut self, cron: &str, job_type: &str, payload: Value) -> Self {
        self.periodic
            .push((cron.to_owned(), job_type.to_owned(), payload));
        self
    }

    /// Builds the catalog and starts the workers.
    ///
    /// Fails if two executors claim one job type (naming both), or outside a Tokio runtime.
    pub fn start(self) -> Result<Jobs, BuildError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let mut catalog = if self.discover {
            Catalog::discover()?
        } else {
            Catalog::new()
        };
        for (executor, location) in self.executors {
            catalog.add(executor, location)?;
        }
        let periodic = schedules(&catalog, self.periodic)?;
        let mut seen = std::collections::HashSet::new();
        for (name, _) in &self.queues {
            let reason = if !jobs_core::valid_queue_name(name) {
                Some("use 1 to 64 letters, digits, `_`, `-` or `.`")
            } else if name == jobs_core::Job::DEFAULT_QUEUE {
                Some("the default queue is served by `concurrency`")
            } else if !seen.insert(name.as_str()) {
                Some("it is given twice")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(BuildError::InvalidQueue {
                    name: name.clone(),
                    reason: reason.to_owned(),
                });
            }
        }
        let inner = Arc::new(Inner {
            repository: self
                .repository
                .unwrap_or_else(|| Arc::new(InMemoryRepository::new())),
            queue: self.queue.unwrap_or_else(|| Arc::new(ChannelQueue::new())),
            catalog,
            config: Config {
                concurrency: self.concurrency,
                shutdown_grace: self.shutdown_grace,
                progress_interval: self.progress_interval,
                timeout_grace: self.timeout_grace,
            },
            running: RunningJobs::default(),
            waiters: Arc::new(Waiters::default()),
            intake: CancellationToken::new(),
            abandon: CancellationToken::new(),
            stopped: CancellationToken::new(),
            workers: Mutex::new(Vec::new()),
            helpers: Mutex::new(Vec::new()),
            shutdown: tokio::sync::OnceCell::new(),
        });
        if self.concurrency + self.queues.iter().map(|(_, n)| n).sum::<usize>() > 0 {
            // Subscribe before any worker runs, so that no cancel request can slip by.
            let cancel_requests = inner.repository.subscribe_cancellations();
            let default: Arc<str> = Arc::from(jobs_core::Job::DEFAULT_QUEUE);
            let workers = std::iter::repeat_n(default, self.concurrency)
                .chain(self.queues.iter().flat_map(|(name, workers)| {
                    std::iter::repeat_n(Arc::<str>::from(name.as_str()), *workers)
                }))
                .map(|queue| runtime.spawn(worker(inner.clone(), queue)))
                .collect();
            *inner.workers.lock().expect("not shared yet") = workers;
            let listener = runtime.spawn(cancel_listener(inner.clone(), cancel_requests));
            inner.helpers.lock().expect("not shared yet").push(listener);
        }
        if !periodic.is_empty() {
            let scheduler = runtime.spawn(crate::scheduler::run(inner.clone(), periodic));
            inner
                .helpers
                .lock()
                .expect("not shared yet")
                .push(scheduler);
        }
        if let Some(age) = self.retention {
            let pruner = runtime.spawn(crate::service::prune_periodically(inner.clone(), age));
            inner.helpers.lock().expect("not shared yet").push(pruner);
        }
        Ok(Jobs::from_inner(inner))
    }
}

/// The builder's schedules and those the executors declare, checked.
fn schedules(
    catalog: &Catalog,
    declared: Vec<(String, String, Value)>,
) -> Result<Vec<Periodic>, BuildError> {
    let from_types = catalog
        .entries()
        .into_iter()
        .filter_map(|(job_type, entry)| {
            entry
                .executor()
                .policy()
                .cron
                .map(|cron| (cron.to_owned(), job_type.to_owned(), Value::Null))
        });
    let mut periodic = Vec::new();
    for (cron, job_type, payload) in from_types.chain(declared) {
        let invalid = |reason: String| BuildError::InvalidSchedule {
            job_type: job_type.clone(),
            cron: cron.clone(),
            reason,
        };
        let schedule: jobs_cron::Schedule = cron
            .parse()
            .map_err(|e: jobs_cron::ParseError| invalid(e.to_string()))?;
        let Some(entry) = catalog.get(&job_type) else {
            return Err(invalid(
                "no executor is registered for this type".to_owned(),
            ));
        };
        entry
            .executor()
            .validate(&payload)
            .map_err(|e| invalid(format!("the payload does not fit: {}", e.message())))?;
        periodic.push(Periodic::new(schedule, &job_type, payload));
    }
    Ok(periodic)
}

impl std::fmt::Debug for JobsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobsBuilder")
            .field("concurrency", &self.concurrency)
            .field("discover", &self.discover)
            .field("executors", &self.executors.len())
            .field("shutdown_grace", &self.shutdown_grace)
            .field("progress_interval", &self.progress_interval)
            .field("timeout_grace", &self.timeout_grace)
            .field("retention", &self.retention)
            .field("periodic", &self.periodic.len())
            .field("queues", &self.queues)
            .finish_non_exhaustive()
    }
}
