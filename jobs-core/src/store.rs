//! The store contract: rows and fenced changes, in batches, and no policy.
//!
//! A store keeps jobs and applies the changes the runtime's engine asks for. It decides
//! nothing: the engine chooses what to claim and how many, when a job is retried, failed
//! or canceled, what a lost lease means and which events to announce. Every change to a
//! running job is *fenced* by its id, attempt and holder, so that a stale worker, or a
//! worker whose lease was taken over, can never change a newer attempt.
//!
//! Abilities that not every store has are separate traits ([`Notifications`],
//! [`PeriodicTicks`]) or declared flags ([`JobStore::supports_unique_keys`]); the engine
//! asks before it relies on one, so nothing fails at run time for want of it.
//!
//! The engine drives a store like this:
//!
//! ```text
//! submit / tick / retry ──► insert_many ──► claim(queue, n, holder, lease) ──► workers
//!                                              renew(holder, leases) ◄── lease keeper
//!        events ◄── engine ◄── complete_many(holder, completions) ◄── completion batcher
//!                                              expired(n) ──► rescuer ──► complete_many
//! ```

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast;

use crate::{Job, JobEvent, JobId, JobStatus, Progress, StorageError, Timestamp, TraceParent};

/// A boxed, `Send` future, the return type of the object-safe store traits.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where jobs live: one contract for every backend (in memory, SQLite, PostgreSQL, ...).
///
/// Every method is one round trip to the storage; batch methods take and answer many jobs
/// at once, in the order given. Implementations must apply each change as a
/// compare-and-set (`UPDATE … WHERE id = $1 AND status = 'Running' AND attempt = $2 AND
/// holder = $3`), never by reading and then writing, and must apply the status rule of
/// [`JobStatus::can_transition_to`]. The conformance suite of the `jobs` crate
/// (`jobs::store_tests`) checks all of this for any store.
pub trait JobStore: Send + Sync + 'static {
    /// Stores new `Queued` jobs in one write. Answers, per job in order, whether it was
    /// stored or an active job of its type already holds its [`Job::unique_key`] (then
    /// nothing is stored for it).
    ///
    /// A store with [`Notifications`] announces [`JobEvent::Submitted`] for every job it
    /// stores as part of the same write (a database: in the same transaction, with the
    /// event serialized by the caller's side, not assembled in SQL), so that a job's
    /// `submitted` comes before anything else about it; it is the one event a store sends
    /// itself. [`PeriodicTicks::insert_tick`] does the same. A job with an id that is already stored is an error of
    /// kind [`StorageErrorKind::Conflict`](crate::StorageErrorKind::Conflict) and nothing of the batch is stored.
    fn insert_many(&self, jobs: Vec<Job>) -> BoxFuture<'_, Result<Vec<Inserted>, StorageError>>;

    /// Whether [`Job::unique_key`] is honoured atomically by [`JobStore::insert_many`].
    /// The engine refuses keyed submissions to stores that answer `false`.
    fn supports_unique_keys(&self) -> bool {
        false
    }

    /// Whether [`Job::concurrency_key`] is honoured by [`JobStore::claim`]: no job is
    /// claimed while [`Job::concurrency_limit`] jobs with its key are `Running`, across
    /// every process on the store, and among the queued jobs of one key the first in claim
    /// order starts first. The engine refuses keyed submissions to stores that answer
    /// `false`.
    fn supports_concurrency_keys(&self) -> bool {
        false
    }

    /// Whether [`Job::depends_on`] is honoured: a job with parents is stored
    /// [`JobStatus::Waiting`] and queued only once they have ended as it needs (see
    /// [`Readiness`](crate::Readiness)), or canceled when one cannot end so. A store that
    /// answers `true`:
    ///
    /// - in [`insert_many`](JobStore::insert_many), sets each new job's status from its
    ///   parents' (each stored already or earlier in the batch; any other parent fails the
    ///   whole call with an error of kind
    ///   [`InvalidInput`](crate::StorageErrorKind::InvalidInput), storing nothing);
    /// - in the same write that ends a job ([`complete_many`](JobStore::complete_many),
    ///   [`request_cancel`](JobStore::request_cancel)), applies
    ///   [`after_parent`](crate::after_parent) to each waiting dependant, and down the
    ///   graph to the dependants of those it cancels, setting the payload of those it
    ///   queues by [`released_payload`](crate::released_payload);
    /// - with [`Notifications`], announces [`JobEvent::Released`] for each dependant it
    ///   queued and [`JobEvent::Finished`] for each it canceled, as part of that write.
    ///
    /// The engine refuses submissions with parents to stores that answer `false`.
    fn supports_dependencies(&self) -> bool {
        false
    }

    /// Whether [`ClaimRequest::rates`] is honoured by [`JobStore::claim`]. The engine
    /// refuses to start with rate limits over a store that answers `false`.
    fn supports_rate_limits(&self) -> bool {
        false
    }

    /// Claims up to `request.limit` due jobs (`Queued`, `run_at` reached) of
    /// `request.queue`, higher priority first, then in the order they became due (first
    /// submitted first among jobs due at once; a store may place a job that went back to
    /// the queue behind those already waiting):
    /// each becomes `Running` at its next attempt, held by `request.holder` until
    /// `now + request.lease` unless renewed. Two claims never get the same job.
    fn claim<'a>(
        &'a self,
        request: ClaimRequest<'a>,
    ) -> BoxFuture<'a, Result<Vec<ClaimedJob>, StorageError>>;

    /// How long until the earliest `Queued` job of `queue` falls due by the store's clock
    /// (zero when one is due now); `None` when the queue has no queued job.
    fn next_due<'a>(
        &'a self,
        queue: &'a str,
    ) -> BoxFuture<'a, Result<Option<Duration>, StorageError>>;

    /// Ends or requeues running attempts held by `holder`, in one write. Each completion
    /// applies only if its job is still `Running` at its attempt and held by `holder`;
    /// the answers say, in order, what became of each. A requeue ([`Outcome::Retry`],
    /// [`Outcome::Snooze`], [`Outcome::Release`]) of a job whose cancel was requested ends
    /// it `Canceled` instead.
    fn complete_many<'a>(
        &'a self,
        holder: &'a str,
        completions: &'a [Completion],
    ) -> BoxFuture<'a, Result<Vec<Completed>, StorageError>>;

    /// Extends the leases of attempts held by `holder` to `now + lease`. Answers, per
    /// lease in order, whether it is still held (and whether a cancel was requested) or
    /// lost: the job is no longer `Running` at that attempt for `holder`, or its lease had
    /// already run out (an expired lease is never renewed; the rescuer takes it).
    fn renew<'a>(
        &'a self,
        holder: &'a str,
        leases: &'a [Lease],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<Renewal>, StorageError>>;

    /// Up to `limit` running jobs whose lease ran out, oldest lease first: the rescuer
    /// decides what becomes of each and completes it with its holder's fence.
    fn expired(&self, limit: usize) -> BoxFuture<'_, Result<Vec<ExpiredLease>, StorageError>>;

    /// Records progress of a running attempt. Never changes the status; does nothing
    /// unless the job is `Running` at `attempt`.
    fn update_progress(
        &self,
        id: JobId,
        attempt: u32,
        progress: Progress,
    ) -> BoxFuture<'_, Result<ProgressAck, StorageError>>;

    /// Cancels a job atomically: a `Queued` job becomes `Canceled` at once; a `Running`
    /// job gets its cancel flag set (its holder is told by the engine); a finished job is
    /// left alone.
    fn request_cancel(&self, id: JobId) -> BoxFuture<'_, Result<CancelOutcome, StorageError>>;

    /// The job with this id, if any.
    fn get(&self, id: JobId) -> BoxFuture<'_, Result<Option<Job>, StorageError>>;

    /// A page of jobs, newest first, matching `query`.
    fn list(&self, query: JobQuery) -> BoxFuture<'_, Result<JobPage, StorageError>>;

    /// The result of a `Succeeded` job (`null` when its executor returned none); `None`
    /// for any other status or an unknown id.
    fn get_result(&self, id: JobId) -> BoxFuture<'_, Result<Option<Value>, StorageError>>;

    /// How many jobs there are of each type in each status (pairs with no job left out),
    /// sorted by type, then status.
    fn count_jobs(&self) -> BoxFuture<'_, Result<Vec<JobCount>, StorageError>>;

    /// Like [`count_jobs`](JobStore::count_jobs), for figures read often (`/metrics`, the
    /// dashboard's totals): a store whose exact count costs a scan of every job may
    /// answer a large count with an estimate, flagged [`JobCount::estimated`], so that the
    /// call's cost stays bounded however many jobs it holds. The default answers
    /// [`count_jobs`](JobStore::count_jobs), exact.
    fn estimate_counts(&self) -> BoxFuture<'_, Result<Vec<JobCount>, StorageError>> {
        self.count_jobs()
    }

    /// Deletes up to `limit` finished jobs (and their results) that finished before
    /// `before`, oldest first; returns how many. Jobs still `Queued` or `Running` are
    /// never deleted.
    fn prune_finished(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> BoxFuture<'_, Result<u64, StorageError>>;

    /// The largest payload, in bytes of compact JSON, this store accepts; `None` for no
    /// limit. The engine refuses larger payloads at submit.
    fn max_payload_bytes(&self) -> Option<usize> {
        None
    }

    /// Whether jobs outlive the process (a database), or end with it (memory).
    fn is_durable(&self) -> bool;

    /// Events shared by every process on this store, if the store can carry them. Without
    /// them, the engine announces events to its own subscribers only.
    fn notifications(&self) -> Option<&dyn Notifications> {
        None
    }

    /// The operator's abilities (retry and delete finished jobs, queue counts, throughput,
    /// worker heartbeats), if this store has them; `None` makes those calls answer
    /// "not supported". Every store of this workspace has them.
    fn operations(&self) -> Option<&dyn crate::Operations> {
        None
    }

    /// Periodic ticks recorded once across processes, if the store can record them.
    /// Without them, a service with periodic jobs refuses to start.
    fn ticks(&self) -> Option<&dyn PeriodicTicks> {
        None
    }
}

/// Events carried across every process that shares a store.
///
/// The engine builds each event from the rows a store call answered and publishes it
/// here once the change is stored; the store only carries it (PostgreSQL: `NOTIFY`). The
/// exception is `submitted`, which the store announces with the insert itself (see
/// [`JobStore::insert_many`]).
pub trait Notifications: Send + Sync {
    /// Announces `events` to every subscriber of every process on the store. Best effort:
    /// the changes are stored already, and a lost event only costs a subscriber a prompt
    /// look (workers poll, waiters re-read).
    fn publish(&self, events: Vec<JobEvent>) -> BoxFuture<'_, ()>;

    /// Every event published from now on, by any process.
    fn subscribe(&self) -> broadcast::Receiver<JobEvent>;

    /// The signals engines act on, from now on: jobs became due (a submit or a requeue
    /// anywhere), a cancel was requested. Derived from the published events, so a store
    /// sends nothing twice.
    fn signals(&self) -> broadcast::Receiver<Signal>;

    /// Whether anyone may be listening to the events: `false` lets the engine skip
    /// building events nobody would read. Stores that cannot tell answer `true`.
    fn has_subscribers(&self) -> bool {
        true
    }

    /// Whether any engine may be listening to the signals: `false` lets the engine skip
    /// the events that carry them too. Stores that cannot tell answer `true`.
    fn has_signal_subscribers(&self) -> bool {
        true
    }
}

/// What an engine learns from [`Notifications::signals`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Signal {
    /// Jobs were submitted or queued again, or a queue was resumed: idle engines look for
    /// due jobs.
    JobsDue,
    /// A cancel was requested for this running job: its holder fires its token.
    CancelRequested(JobId),
    /// Events may have been missed (a lost connection): look for due jobs and ask the
    /// store about the jobs held.
    Resync,
}

impl Signal {
    /// The signals `events` carry: one [`Signal::JobsDue`] for any number of submits and
    /// requeues, and each cancel request.
    pub fn of(events: &[JobEvent], mut send: impl FnMut(Signal)) {
        let mut due = false;
        for event in events {
            match event {
                JobEvent::Submitted { .. }
                | JobEvent::Released { .. }
                | JobEvent::Requeued { .. }
                | JobEvent::Retried { .. }
                | JobEvent::QueueResumed { .. } => due = true,
                JobEvent::CancelRequested { id } => send(Signal::CancelRequested(*id)),
                _ => {}
            }
        }
        if due {
            send(Signal::JobsDue);
        }
    }
}

/// The record of periodic ticks, so that a tick fired by several processes stores its job
/// once.
pub trait PeriodicTicks: Send + Sync {
    /// Stores `job` as the job of tick `tick` of the schedule `schedule`, unless that tick
    /// (or a later one) already has its job. Returns whether this call stored it. The
    /// record of the tick and the job are written together.
    fn insert_tick<'a>(
        &'a self,
        job: Job,
        schedule: &'a str,
        tick: Timestamp,
    ) -> BoxFuture<'a, Result<bool, StorageError>>;
}

/// What [`JobStore::claim`] is asked for.
#[derive(Clone, Copy, Debug)]
pub struct ClaimRequest<'a> {
    /// The named queue.
    pub queue: &'a str,
    /// At most this many jobs.
    pub limit: usize,
    /// Who holds the claimed jobs: one engine's id, unique across processes.
    pub holder: &'a str,
    /// How long the claim holds without a renewal.
    pub lease: Duration,
    /// The rate limits that apply (empty for most claims): a store that
    /// [supports them](JobStore::supports_rate_limits) claims no job beyond the budget
    /// of a rule that covers it (see [`RateRule`](crate::RateRule)), skipping such jobs
    /// for later ones it may still start, and counts each job it claims against every rule
    /// that covers it, for every process on the store.
    pub rates: &'a [crate::RateRule],
}

/// A job as a claim hands it to the engine: what running it takes, no more.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ClaimedJob {
    /// The job.
    pub id: JobId,
    /// Its type.
    pub job_type: String,
    /// Its arguments.
    pub payload: Value,
    /// The attempt this claim started, from 1.
    pub attempt: u32,
    /// How many attempts may fail before the job fails for good.
    pub max_attempts: u32,
    /// How many earlier attempts failed (the length of [`Job::errors`]).
    pub failures: u32,
    /// The time limit of one attempt, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// The trace it was submitted in, which its execution continues.
    pub trace_parent: Option<TraceParent>,
}

impl ClaimedJob {
    /// The claim of `job`, which the store has just moved to `Running`.
    pub fn of(job: &Job) -> Self {
        Self {
            id: job.id,
            job_type: job.job_type.clone(),
            payload: job.payload.clone(),
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            failures: job.failures,
            timeout_ms: job.timeout_ms,
            trace_parent: job.trace_parent,
        }
    }

    /// Whether a failure of this attempt may be tried again.
    pub fn may_retry(&self) -> bool {
        self.failures.saturating_add(1) < self.max_attempts
    }
}

/// One attempt a holder holds: the fence of its changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The job.
    pub id: JobId,
    /// The attempt.
    pub attempt: u32,
}

/// The answer to one lease of a [`JobStore::renew`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Renewal {
    /// Renewed; `cancel_requested` says whether someone asked the job to stop.
    Held {
        /// A cancel was requested.
        cancel_requested: bool,
    },
    /// Not held any more: stop the attempt, its outcome would be refused.
    Lost,
}

/// A running job whose lease ran out, as [`JobStore::expired`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExpiredLease {
    /// The job.
    pub id: JobId,
    /// The attempt that lost its lease.
    pub attempt: u32,
    /// Who held it (the fence of the rescue's completion).
    pub holder: String,
    /// How many attempts may fail before the job fails for good.
    pub max_attempts: u32,
    /// How many earlier attempts failed.
    pub failures: u32,
    /// Whether a cancel was requested.
    pub cancel_requested: bool,
}

impl ExpiredLease {
    /// A description of `job` (`Running`, held by `holder`) whose lease ran out.
    pub fn of(job: &Job, holder: impl Into<String>) -> Self {
        Self {
            id: job.id,
            attempt: job.attempt,
            holder: holder.into(),
            max_attempts: job.max_attempts,
            failures: job.failures,
            cancel_requested: job.cancel_requested,
        }
    }
}

/// One change to a running attempt, for [`JobStore::complete_many`].
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The job.
    pub id: JobId,
    /// The attempt it ends (the fence, with the holder).
    pub attempt: u32,
    /// What becomes of it.
    pub outcome: Outcome,
}

/// What becomes of a running attempt.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// `Succeeded`, with its result stored apart from the job (`null` need not be stored).
    Succeeded {
        /// The executor's result.
        result: Value,
    },
    /// `Failed` for good; the error is also kept in [`Job::errors`].
    Failed {
        /// What went wrong.
        error: String,
    },
    /// `Canceled`.
    Canceled,
    /// Back to `Queued`, due at `run_at`, after a failed attempt (kept in
    /// [`Job::errors`]). The attempt counter stays.
    Retry {
        /// What went wrong in this attempt.
        error: String,
        /// When the next attempt may start.
        run_at: Timestamp,
    },
    /// Back to `Queued`, due at `run_at`, without counting a failure (the executor asked
    /// to run later, or the attempt was interrupted by a shutdown). The attempt counter
    /// stays.
    Snooze {
        /// When the next attempt may start.
        run_at: Timestamp,
    },
    /// Back to `Queued` as if never claimed: the attempt never started (it was claimed
    /// ahead and given back). The attempt counter goes back by one and `started_at` is
    /// cleared.
    Release,
}

impl Outcome {
    /// The status the job ends in, unless a requested cancel turns a requeue into
    /// `Canceled`.
    pub fn status(&self) -> JobStatus {
        match self {
            Outcome::Succeeded { .. } => JobStatus::Succeeded,
            Outcome::Failed { .. } => JobStatus::Failed,
            Outcome::Canceled => JobStatus::Canceled,
            Outcome::Retry { .. } | Outcome::Snooze { .. } | Outcome::Release => JobStatus::Queued,
        }
    }

    /// The error this outcome records, if any.
    pub fn error(&self) -> Option<&str> {
        match self {
            Outcome::Failed { error } | Outcome::Retry { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// The answer to one completion of a [`JobStore::complete_many`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Completed {
    /// Applied; the job is now in this status (a requeue of a job asked to stop ends
    /// `Canceled`).
    Applied(JobStatus),
    /// The job is not `Running` at that attempt for that holder: nothing changed.
    NotHeld,
    /// The store cannot keep what the completion carries (a text it cannot store, a
    /// result over its limit): nothing changed, and the reason says why.
    Refused(String),
}

/// The answer to [`JobStore::insert_many`] for one job.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Inserted {
    /// The job was stored.
    Stored,
    /// An active job of its type holds its unique key: this one, and nothing was stored.
    Existing(Box<Job>),
    /// The store cannot keep this job as it is (a text it cannot store, a payload over
    /// its limit): it was not stored, and the reason says why. The other jobs of the batch
    /// are answered on their own. The engine refuses such jobs before it calls the
    /// store, for the stores of this project; a store with rules of its own answers this,
    /// and `Jobs::submit_many` then fails with `SubmitError::InvalidPayload` naming the
    /// refused job and how many others were stored (they run as usual).
    Refused(String),
}

/// The answer to a [`JobStore::update_progress`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProgressAck {
    /// Stored. `cancel_requested` tells the worker whether someone asked the job to stop.
    Stored {
        /// A cancel was requested for the job.
        cancel_requested: bool,
    },
    /// The job is not running at that attempt any more; nothing was stored.
    NotRunning,
}

/// The answer to a [`JobStore::request_cancel`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum CancelOutcome {
    /// The job was queued and is now `Canceled`; it will never run.
    CanceledQueued(Job),
    /// The job is running; its worker is asked to stop, and the job ends `Canceled` when
    /// the executor returns with an error. Asking again returns this again.
    Requested(Job),
    /// The job had already finished; nothing changed.
    AlreadyFinished(JobStatus),
    /// No job has this id.
    NotFound,
}

impl CancelOutcome {
    /// Whether the cancel took effect (the job was canceled or its worker asked to stop).
    pub fn took_effect(&self) -> bool {
        matches!(
            self,
            CancelOutcome::CanceledQueued(_) | CancelOutcome::Requested(_)
        )
    }
}

/// A filter and page request for [`JobStore::list`].
///
/// ```
/// use jobs_core::{JobQuery, JobStatus};
///
/// let query = JobQuery::new().status(JobStatus::Failed).job_type("Export").limit(20);
/// assert_eq!(query.limit, 20);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobQuery {
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// Only jobs of this type.
    pub job_type: Option<String>,
    /// Only jobs of this named queue.
    pub queue: Option<String>,
    /// At most this many jobs, between 1 and [`JobQuery::MAX_LIMIT`].
    pub limit: usize,
    /// Only jobs older than this one (the `next_cursor` of the previous page).
    pub cursor: Option<JobId>,
    /// Only the members of this flow or batch ([`Job::flow`]).
    pub flow: Option<crate::FlowId>,
}

impl JobQuery {
    /// The page size when none is given.
    pub const DEFAULT_LIMIT: usize = 50;
    /// The largest page a store returns.
    pub const MAX_LIMIT: usize = 1_000;

    /// All jobs, first page, [`JobQuery::DEFAULT_LIMIT`] per page.
    pub fn new() -> Self {
        Self {
            status: None,
            job_type: None,
            queue: None,
            limit: Self::DEFAULT_LIMIT,
            cursor: None,
            flow: None,
        }
    }

    /// Only jobs in `status`.
    pub fn status(mut self, status: JobStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only jobs of `job_type`.
    pub fn job_type(mut self, job_type: impl Into<String>) -> Self {
        self.job_type = Some(job_type.into());
        self
    }

    /// Only jobs of the named queue `queue`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Only the members of `flow`.
    pub fn flow(mut self, flow: crate::FlowId) -> Self {
        self.flow = Some(flow);
        self
    }

    /// Page size, clamped to `1..=MAX_LIMIT`.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit.clamp(1, Self::MAX_LIMIT);
        self
    }

    /// Continue after the page that returned this cursor.
    pub fn cursor(mut self, cursor: JobId) -> Self {
        self.cursor = Some(cursor);
        self
    }

    /// Whether `job` passes the filters (not the cursor).
    pub fn matches(&self, job: &Job) -> bool {
        self.status.is_none_or(|s| s == job.status)
            && self.job_type.as_deref().is_none_or(|t| t == job.job_type)
            && self.queue.as_deref().is_none_or(|q| q == job.queue)
            && self.flow.is_none_or(|f| job.flow == Some(f))
    }
}

impl Default for JobQuery {
    fn default() -> Self {
        Self::new()
    }
}

/// How many jobs of one type are in one status, from [`JobStore::count_jobs`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobCount {
    /// The job type.
    pub job_type: String,
    /// The status.
    pub status: JobStatus,
    /// How many.
    pub count: u64,
    /// Whether `count` is an estimate (from [`JobStore::estimate_counts`] only).
    pub estimated: bool,
}

impl JobCount {
    /// Exactly `count` jobs of `job_type` in `status`.
    pub fn new(job_type: impl Into<String>, status: JobStatus, count: u64) -> Self {
        Self {
            job_type: job_type.into(),
            status,
            count,
            estimated: false,
        }
    }

    /// About `count` jobs of `job_type` in `status`.
    pub fn estimate(job_type: impl Into<String>, status: JobStatus, count: u64) -> Self {
        Self {
            estimated: true,
            ..Self::new(job_type, status, count)
        }
    }
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct JobPage {
    /// The jobs, newest first.
    pub jobs: Vec<Job>,
    /// Pass to [`JobQuery::cursor`] for the next page; `None` on the last page.
    pub next_cursor: Option<JobId>,
}

impl JobPage {
    /// A page of `jobs` followed by `next_cursor`.
    pub fn new(jobs: Vec<Job>, next_cursor: Option<JobId>) -> Self {
        Self { jobs, next_cursor }
    }
}

/// A local carrier of events: what a store without cross-process notifications, or the
/// in-memory store, uses. Subscribers that fall more than its capacity behind skip the
/// oldest events and are told how many.
#[derive(Debug)]
pub struct EventBus {
    events: broadcast::Sender<JobEvent>,
    signals: broadcast::Sender<Signal>,
}

impl EventBus {
    /// How many events a subscriber may fall behind by default.
    pub const DEFAULT_CAPACITY: usize = 4_096;

    /// A bus whose subscribers may fall `capacity` events behind.
    pub fn new(capacity: usize) -> Self {
        Self {
            events: broadcast::channel(capacity.max(1)).0,
            signals: broadcast::channel(capacity.max(1)).0,
        }
    }

    /// Sends `events`, and the signals they carry, to the subscribers now.
    pub fn send(&self, events: Vec<JobEvent>) {
        if self.signals.receiver_count() > 0 {
            Signal::of(&events, |signal| {
                let _ = self.signals.send(signal);
            });
        }
        if self.events.receiver_count() == 0 {
            return;
        }
        for event in events {
            let _ = self.events.send(event);
        }
    }

    /// Sends `signal` alone (a listener that lost events sends [`Signal::Resync`]). A
    /// resync also reaches the event subscribers, as [`JobEvent::Resync`].
    pub fn send_signal(&self, signal: Signal) {
        if self.signals.receiver_count() > 0 {
            let _ = self.signals.send(signal);
        }
        if signal == Signal::Resync && self.events.receiver_count() > 0 {
            let _ = self.events.send(JobEvent::Resync);
        }
    }
}

impl Notifications for EventBus {
    fn publish(&self, events: Vec<JobEvent>) -> BoxFuture<'_, ()> {
        self.send(events);
        Box::pin(std::future::ready(()))
    }

    fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.events.subscribe()
    }

    fn signals(&self) -> broadcast::Receiver<Signal> {
        self.signals.subscribe()
    }

    fn has_subscribers(&self) -> bool {
        self.events.receiver_count() > 0
    }

    fn has_signal_subscribers(&self) -> bool {
        self.signals.receiver_count() > 0
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resync_reaches_the_engines_as_a_signal_and_the_subscribers_as_an_event() {
        let bus = EventBus::new(8);
        let mut events = bus.subscribe();
        let mut signals = bus.signals();
        bus.send_signal(Signal::Resync);
        assert_eq!(signals.try_recv().unwrap(), Signal::Resync);
        assert_eq!(events.try_recv().unwrap(), JobEvent::Resync);
        bus.send_signal(Signal::JobsDue);
        assert!(events.try_recv().is_err(), "other signals are not events");
        let json = serde_json::to_string(&JobEvent::Resync).unwrap();
        assert_eq!(json, r#"{"event":"resync"}"#);
        assert_eq!(JobEvent::Resync.job_id(), None);
    }
}
