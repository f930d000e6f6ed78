//! Helpers for testing an application's jobs: a service whose jobs run when the test
//! says so, assertions on what was submitted, one executor run with a test context, and
//! control of time. Used through `jobs::testing`, whose documentation has the examples.
//!
//! [`TestJobs`] is a real [`Jobs`] service over an in-memory store, in [`Mode::Manual`]
//! (jobs wait for [`TestJobs::drain`]) or [`Mode::Inline`] (a submit returns once its
//! jobs have run). Jobs run through the same engine as in production. On a current-thread
//! runtime it installs a [`ThreadClock`] that follows the
//! runtime's clock, so that a paused test clock, moved by `TestJobs::advance` (cargo
//! feature `testing`), moves the service's time too.

mod assert;
mod executor;
mod store;

use std::collections::HashSet;
use std::sync::Arc;

use jobs_core::{Job, JobStatus, ThreadClock, Timestamp};

pub use executor::{ExecutorRun, ExecutorTest};

use crate::{BuildError, Jobs, JobsBuilder};
use store::TestStore;

/// When the jobs of a [`TestJobs`] service run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// Submitted jobs stay queued until [`TestJobs::drain`].
    Manual,
    /// A submit returns once its jobs have run: each has finished, or waits for a later
    /// time (a delay, a retry's backoff, a snooze), or is in a queue the service does not
    /// serve. A job that submits another waits for it on a worker of its own, so the
    /// service keeps at least [`TestJobs::INLINE_WORKERS`] workers.
    Inline,
}

/// A [`Jobs`] service for tests: its jobs run when the test says ([`Mode`]), the test
/// can look at what was submitted, and (on a paused clock) move time.
///
/// Derefs to the [`Jobs`] it wraps. It installs a clock on the test's thread, so it is
/// neither `Send` nor `Sync`: hand [`TestJobs::jobs`] (a clone of the service) to tasks
/// and to the code under test.
pub struct TestJobs {
    jobs: Jobs,
    store: Arc<TestStore>,
    mode: Mode,
    // Declared last: dropped after the service.
    _clock: Option<ThreadClock>,
}

impl TestJobs {
    /// The fewest workers an inline service runs.
    pub const INLINE_WORKERS: usize = 8;

    /// A service in [`Mode::Manual`], configured by `builder` (its executors, policies,
    /// queues, periodic jobs); its store is replaced by the test's in-memory store.
    pub fn manual(builder: JobsBuilder) -> Result<Self, BuildError> {
        Self::start(Mode::Manual, builder)
    }

    /// A service in [`Mode::Inline`], configured by `builder`; its store is replaced by
    /// the test's in-memory store.
    pub fn inline(builder: JobsBuilder) -> Result<Self, BuildError> {
        Self::start(Mode::Inline, builder)
    }

    /// A service in `mode`, configured by `builder`. Must be called inside a Tokio
    /// runtime (else [`BuildError::NoRuntime`]).
    pub fn start(mode: Mode, mut builder: JobsBuilder) -> Result<Self, BuildError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        if mode == Mode::Inline {
            let workers = builder.workers().max(Self::INLINE_WORKERS);
            builder = builder.concurrency(workers);
        }
        let served: HashSet<String> = builder.served_queues().into_iter().collect();
        let store = Arc::new(TestStore::new(mode, served));
        let clock = (runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread)
            .then(follow_runtime_clock);
        let jobs = builder.store(store.clone()).start()?;
        Ok(Self {
            jobs,
            store,
            mode,
            _clock: clock,
        })
    }

    /// The service, to hand to the code under test.
    pub fn jobs(&self) -> Jobs {
        self.jobs.clone()
    }

    /// The mode the service runs in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Runs every due job until none is left: the jobs submitted so far, the jobs they
    /// submit, and retries that fall due meanwhile. Answers the jobs that ran, as they
    /// are now. In [`Mode::Inline`] there is usually nothing left to run; it then waits
    /// for what still runs.
    ///
    /// A job that waits for a later time stays queued: move time with
    /// `TestJobs::advance` and drain again.
    pub async fn drain(&self) -> Drained {
        // Tasks woken just before (a timer the test's clock passed) run first.
        tokio::task::yield_now().await;
        self.store.set_open(true);
        let idle = self.store.wait_until(|| self.store.idle()).await;
        if self.mode == Mode::Manual {
            self.store.set_open(false);
        }
        idle.expect("the in-memory store does not fail");
        let mut jobs = Vec::new();
        for id in self.store.take_claimed() {
            if let Some(job) = self
                .jobs
                .get_job(id)
                .await
                .expect("the in-memory store does not fail")
            {
                jobs.push(job);
            }
        }
        Drained { jobs }
    }

    /// Moves the test's paused clock on by `by`: jobs whose time comes run (in
    /// [`Mode::Inline`], before this returns; in [`Mode::Manual`], at the next
    /// [`TestJobs::drain`]), time limits run out, cron ticks fire.
    ///
    /// # Panics
    ///
    /// When the runtime's clock is not paused (tokio's `time::advance` panics then): use
    /// `#[tokio::test(start_paused = true)]`.
    #[cfg(feature = "testing")]
    pub async fn advance(&self, by: std::time::Duration) {
        tokio::time::advance(by).await;
        if self.mode == Mode::Inline {
            self.store
                .wait_until(|| self.store.idle())
                .await
                .expect("the in-memory store does not fail");
        }
    }

    /// The jobs waiting to run (due now or later), oldest first.
    pub async fn enqueued(&self) -> Vec<Job> {
        self.with_status(JobStatus::Queued).await
    }

    /// Every job of `status`, oldest first.
    pub async fn with_status(&self, status: JobStatus) -> Vec<Job> {
        let mut jobs = Vec::new();
        let mut query = jobs_core::JobQuery::new()
            .status(status)
            .limit(jobs_core::JobQuery::MAX_LIMIT);
        loop {
            let page = self
                .jobs
                .list_jobs(query.clone())
                .await
                .expect("the in-memory store does not fail");
            jobs.extend(page.jobs);
            match page.next_cursor {
                Some(cursor) => query = query.cursor(cursor),
                None => break,
            }
        }
        jobs.reverse();
        jobs
    }

    /// The time as the service sees it (the test's clock).
    pub fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

impl std::ops::Deref for TestJobs {
    type Target = Jobs;

    fn deref(&self) -> &Jobs {
        &self.jobs
    }
}

impl std::fmt::Debug for TestJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestJobs")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Makes [`Timestamp::now`] follow the runtime's clock on this thread: the system's time
/// now, moved on as tokio's clock moves (which a paused clock does only when told, or
/// when every task waits).
fn follow_runtime_clock() -> ThreadClock {
    let base = Timestamp::now();
    let start = tokio::time::Instant::now();
    ThreadClock::install(move || {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(start);
        let micros = i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX);
        Timestamp::from_unix_micros(base.as_unix_micros().saturating_add(micros))
    })
}

/// What a [`TestJobs::drain`] ran: each job once, as it is after the drain.
#[derive(Clone, Debug, Default)]
pub struct Drained {
    jobs: Vec<Job>,
}

impl Drained {
    /// The jobs that ran, in the order they first started.
    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// How many jobs ran.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether no job ran.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// How many of them are now in `status` (`Queued`: to be tried again later).
    pub fn count(&self, status: JobStatus) -> usize {
        self.jobs.iter().filter(|job| job.status == status).count()
    }

    /// How many succeeded.
    pub fn succeeded(&self) -> usize {
        self.count(JobStatus::Succeeded)
    }

    /// How many failed for good.
    pub fn failed(&self) -> usize {
        self.count(JobStatus::Failed)
    }

    /// How many ended canceled.
    pub fn canceled(&self) -> usize {
        self.count(JobStatus::Canceled)
    }

    /// The jobs of type `job_type` that ran.
    pub fn of_type<'a>(&'a self, job_type: &'a str) -> impl Iterator<Item = &'a Job> + 'a {
        self.jobs.iter().filter(move |job| job.job_type == job_type)
    }
}
