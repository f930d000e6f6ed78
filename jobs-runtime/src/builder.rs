//! Configuring and starting a [`Jobs`] service.

use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use jobs_core::{JobExecutor, JobStore, RateLimit, RateRule, RateScope, SourceLocation};
use serde_json::Value;

use crate::catalog::{Catalog, DuplicateJobType};
use crate::engine::{self, Config, Inner};
use crate::memory::InMemoryStore;
use crate::scheduler::Periodic;
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
    /// A rate limit cannot be applied: it does not parse, names no queue or known type,
    /// or the store does not apply rate limits.
    #[error("cannot limit {scope} to `{rate}`: {reason}")]
    InvalidRateLimit {
        /// What it limits: ``queue `name` `` or ``type `name` ``.
        scope: String,
        /// The rate as given.
        rate: String,
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
    store: Option<Arc<dyn JobStore>>,
    executors: Vec<(Arc<dyn JobExecutor>, SourceLocation)>,
    discover: bool,
    shutdown_grace: Duration,
    progress_interval: Duration,
    timeout_grace: Duration,
    retention: Option<Duration>,
    periodic: Vec<PeriodicDeclaration>,
    queues: Vec<(String, usize)>,
    lease: Duration,
    rescue_interval: Duration,
    crash_budget: u32,
    poll_interval: Duration,
    prefetch: Option<usize>,
    rates: Vec<(RateScope, String)>,
}

impl JobsBuilder {
    /// The default time a job past its timeout has to stop once told.
    pub const DEFAULT_TIMEOUT_GRACE: Duration = Duration::from_secs(5);
    /// The default shutdown grace period.
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
    /// The default minimum time between two stored progress reports of one job.
    pub const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
    /// The default lease of a claimed job.
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
    /// The default time between two looks for expired leases.
    pub const DEFAULT_RESCUE_INTERVAL: Duration = Duration::from_secs(5);
    /// The default number of lost leases after which a job fails.
    pub const DEFAULT_CRASH_BUDGET: u32 = 3;
    /// The default time an idle queue waits before it looks for due jobs unprompted.
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

    pub(crate) fn new() -> Self {
        Self {
            concurrency: std::thread::available_parallelism().map_or(1, |n| n.get()),
            store: None,
            executors: Vec::new(),
            discover: true,
            shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
            progress_interval: Self::DEFAULT_PROGRESS_INTERVAL,
            timeout_grace: Self::DEFAULT_TIMEOUT_GRACE,
            retention: None,
            periodic: Vec::new(),
            queues: Vec::new(),
            lease: Self::DEFAULT_LEASE,
            rescue_interval: Self::DEFAULT_RESCUE_INTERVAL,
            crash_budget: Self::DEFAULT_CRASH_BUDGET,
            poll_interval: Self::DEFAULT_POLL_INTERVAL,
            prefetch: None,
            rates: Vec::new(),
        }
    }

    /// How many jobs run at once (default: the number of CPUs). `0` starts no worker:
    /// the service only submits and reads, and other services sharing its store run the
    /// jobs.
    pub fn concurrency(mut self, workers: usize) -> Self {
        self.concurrency = workers;
        self
    }

    /// Where jobs are kept (default: a new [`InMemoryStore`]). Services given the same
    /// store share their jobs, events and cancels: in memory within one process, in a
    /// database across processes.
    pub fn store(mut self, store: Arc<dyn JobStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// How many jobs each queue claims ahead of its workers, in batches. Claimed jobs wait
    /// `Running` in this service's buffer until a worker takes them, and go back to the
    /// queue, as if never claimed, when the service stops. Unset (the default), the size
    /// adapts between twice the queue's workers and 1,000: it doubles while workers wait
    /// for a claim and halves while claimed jobs wait for workers, so short jobs are
    /// claimed in large batches (few commits on a database) and long ones are not hoarded
    /// away from other processes. Set, it is fixed at `jobs`; `1` claims one job at a time.
    pub fn prefetch(mut self, jobs: usize) -> Self {
        self.prefetch = Some(jobs.max(1));
        self
    }

    /// How long a claimed job stays this service's without a renewal (default: 30 s,
    /// at least 100 ms). The service renews every third of it. When a lease is lost (the
    /// store cannot be reached for a whole lease, the process was paused past it, or
    /// another process rescued the job), the attempt's cancellation token fires at once
    /// and its outcome is discarded; a job whose holder stopped renewing goes back to the
    /// queue for another worker.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(100));
        self
    }

    /// How often the service looks for jobs whose lease ran out (default: 5 s). Every
    /// service on a store may rescue; each job is rescued once.
    pub fn rescue_interval(mut self, interval: Duration) -> Self {
        self.rescue_interval = interval;
        self
    }

    /// After how many lost leases (failed attempts included) a rescued job is failed
    /// instead of queued again, at least (default: 3): a job that keeps killing its worker
    /// stops being tried. A job whose own retries allow more gets more.
    pub fn crash_budget(mut self, attempts: u32) -> Self {
        self.crash_budget = attempts.max(1);
        self
    }

    /// How long an idle queue waits for a wake-up before it looks for due jobs anyway
    /// (default: 1 s). Stores with notifications wake idle queues at once; this bounds
    /// the delay when a notification is lost. An idle queue also wakes when its earliest
    /// scheduled job falls due.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
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

    /// Starts at most `rate` of the jobs of queue `queue` (`"10/1s"`, see [`RateLimit`]),
    /// counted across every process on the store (in memory: in this service). Jobs over
    /// the limit wait `Queued` and start as the budget refills, in their order; they are
    /// not failed or retried. `start` refuses a rate that does not parse, an invalid queue
    /// name, and a store that does not apply rate limits.
    pub fn queue_rate_limit(mut self, queue: &str, rate: &str) -> Self {
        self.rates
            .push((RateScope::Queue(queue.to_owned()), rate.to_owned()));
        self
    }

    /// Starts at most `rate` of the jobs of type `job_type`, in whichever queue, like
    /// [`JobsBuilder::queue_rate_limit`]; it replaces the type's own
    /// (`#[job_executor("T", rate = "...")]`). `start` also refuses a type the catalog does
    /// not know.
    pub fn type_rate_limit(mut self, job_type: &str, rate: &str) -> Self {
        self.rates
            .push((RateScope::JobType(job_type.to_owned()), rate.to_owned()));
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
            .push((cron.to_owned(), None, job_type.to_owned(), payload));
        self
    }

    /// [`JobsBuilder::periodic`] by the wall clock of the IANA time zone `zone`
    /// (`"Europe/Berlin"`), from the database bundled with `jobs-cron`. On the days the
    /// clocks change, a time the clock skips fires once, moved forward past the gap
    /// (02:30 becomes 03:30); a time the clock shows twice fires once, at its first
    /// occurrence, unless the schedule runs every hour, which fires through both passes
    /// (see `jobs_cron::Schedule::next_after_in`). `start` refuses an unknown zone.
    pub fn periodic_in(mut self, cron: &str, zone: &str, job_type: &str, payload: Value) -> Self {
        self.periodic.push((
            cron.to_owned(),
            Some(zone.to_owned()),
            job_type.to_owned(),
            payload,
        ));
        self
    }

    /// How many workers serve the default queue.
    pub(crate) fn workers(&self) -> usize {
        self.concurrency
    }

    /// The queues the service will serve: the default queue (unless it has no worker) and
    /// every named queue with workers.
    pub(crate) fn served_queues(&self) -> Vec<String> {
        let default = (self.concurrency > 0).then(|| jobs_core::Job::DEFAULT_QUEUE.to_owned());
        default
            .into_iter()
            .chain(
                self.queues
                    .iter()
                    .filter(|(_, workers)| *workers > 0)
                    .map(|(name, _)| name.clone()),
            )
            .collect()
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
        let store = self.store.unwrap_or_else(|| Arc::new(InMemoryStore::new()));
        let rates = rate_rules(&catalog, self.rates, store.as_ref())?;
        if !periodic.is_empty() && store.ticks().is_none() {
            let first = &periodic[0];
            return Err(BuildError::InvalidSchedule {
                job_type: first.job_type.clone(),
                cron: first.schedule.to_string(),
                reason: "this store does not record periodic ticks".to_owned(),
            });
        }
        let config = Config {
            concurrency: self.concurrency,
            shutdown_grace: self.shutdown_grace,
            progress_interval: self.progress_interval,
            timeout_grace: self.timeout_grace,
            lease: self.lease,
            rescue_interval: self.rescue_interval,
            crash_budget: self.crash_budget,
            poll_interval: self.poll_interval,
            completion_batch: 1_000,
            prefetch: self.prefetch,
            rates,
        };
        let mut queues: Vec<(Arc<str>, usize)> = Vec::new();
        if self.concurrency > 0 {
            queues.push((Arc::from(jobs_core::Job::DEFAULT_QUEUE), self.concurrency));
        }
        queues.extend(
            self.queues
                .iter()
                .filter(|(_, workers)| *workers > 0)
                .map(|(name, workers)| (Arc::from(name.as_str()), *workers)),
        );
        let inner = Arc::new(Inner::new(store, catalog, config, &queues, runtime.clone()));
        // Subscribe before any worker runs, so that no cancel request can slip by.
        let signals = inner.notifications().signals();
        let mut workers = Vec::new();
        for lane in inner.lanes.values() {
            for _ in 0..lane.workers {
                workers.push(runtime.spawn(engine::worker::work(inner.clone(), lane.clone())));
            }
        }
        *inner.workers.lock().expect("not shared yet") = workers;
        {
            let mut helpers = inner.helpers.lock().expect("not shared yet");
            // An engine without workers holds no job and claims nothing: it has no use
            // for wake-ups or cancel requests.
            if !inner.lanes.is_empty() {
                helpers.push(runtime.spawn(engine::listen(inner.clone(), signals)));
                helpers.push(runtime.spawn(engine::heartbeat::beat(inner.clone())));
            }
            helpers.push(runtime.spawn(engine::lease::keep(inner.clone())));
            helpers.push(runtime.spawn(engine::rescuer::run(inner.clone())));
        }
        if !periodic.is_empty() {
            let started = jobs_core::Timestamp::now();
            let scheduler = runtime.spawn(crate::scheduler::run(inner.clone(), periodic, started));
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

/// The rate limits the executors declare, replaced or joined by the builder's, checked.
fn rate_rules(
    catalog: &Catalog,
    declared: Vec<(RateScope, String)>,
    store: &dyn JobStore,
) -> Result<Vec<RateRule>, BuildError> {
    let mut rules: Vec<RateRule> = catalog
        .entries()
        .into_iter()
        .filter_map(|(job_type, entry)| {
            let limit = entry.executor().policy().rate?;
            Some(RateRule::new(
                RateScope::JobType(job_type.to_owned()),
                limit,
            ))
        })
        .collect();
    for (scope, rate) in declared {
        let invalid = |scope: &RateScope, reason: String| BuildError::InvalidRateLimit {
            scope: scope_text(scope),
            rate: rate.clone(),
            reason,
        };
        let limit: RateLimit = rate
            .parse()
            .map_err(|e: jobs_core::ParseRateLimitError| invalid(&scope, e.to_string()))?;
        match &scope {
            RateScope::Queue(queue) if !jobs_core::valid_queue_name(queue) => {
                return Err(invalid(
                    &scope,
                    "a queue name is 1 to 64 letters, digits, `_`, `-` or `.`".to_owned(),
                ));
            }
            RateScope::JobType(job_type) if catalog.get(job_type).is_none() => {
                return Err(invalid(
                    &scope,
                    "no executor is registered for this type".to_owned(),
                ));
            }
            _ => {}
        }
        rules.retain(|rule| rule.scope != scope);
        rules.push(RateRule::new(scope, limit));
    }
    if let Some(rule) = rules.first() {
        if !store.supports_rate_limits() {
            return Err(BuildError::InvalidRateLimit {
                scope: scope_text(&rule.scope),
                rate: rule.limit.to_string(),
                reason: "this store does not apply rate limits".to_owned(),
            });
        }
    }
    Ok(rules)
}

/// What a rate limit covers, as [`BuildError::InvalidRateLimit`] names it.
fn scope_text(scope: &RateScope) -> String {
    match scope {
        RateScope::Queue(queue) => format!("queue `{queue}`"),
        RateScope::JobType(job_type) => format!("type `{job_type}`"),
        _ => String::from("an unknown scope"),
    }
}

/// The builder's schedules and those the executors declare, checked.
/// A schedule given to [`JobsBuilder::periodic`]: the expression, its time zone, the job
/// type and the payload.
type PeriodicDeclaration = (String, Option<String>, String, Value);

fn schedules(
    catalog: &Catalog,
    declared: Vec<PeriodicDeclaration>,
) -> Result<Vec<Periodic>, BuildError> {
    let from_types = catalog
        .entries()
        .into_iter()
        .filter_map(|(job_type, entry)| {
            entry.executor().policy().cron.map(|cron| {
                let policy = entry.executor().policy();
                let zone = policy.time_zone.map(str::to_owned);
                (cron.to_owned(), zone, job_type.to_owned(), Value::Null)
            })
        });
    let mut periodic = Vec::new();
    for (cron, zone, job_type, payload) in from_types.chain(declared) {
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
        let zone = zone
            .map(|name| jobs_cron::TimeZone::get(&name))
            .transpose()
            .map_err(|e| invalid(e.to_string()))?;
        periodic.push(Periodic::new(schedule, zone, &job_type, payload));
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
            .field("lease", &self.lease)
            .field("prefetch", &self.prefetch)
            .field("rates", &self.rates)
            .finish_non_exhaustive()
    }
}
