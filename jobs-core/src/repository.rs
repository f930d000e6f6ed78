//! The storage contract for job metadata and results.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;
use tokio::sync::broadcast;

use crate::{Expected, Job, JobEvent, JobId, JobStatus, Progress, StorageError, Transition};

/// A boxed, `Send` future, the return type of the object-safe backend traits.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Stores job metadata and, apart from it, results.
///
/// Every status change is a compare-and-set ([`JobRepository::transition`]), so two workers
/// that race for the same job cannot both win, and a stale worker cannot overwrite a newer
/// attempt. Implementations apply the status rule through [`Job::apply`] or an equivalent
/// conditional write (`UPDATE … WHERE id = $1 AND status = $2 AND attempt = $3`), never by
/// reading and then writing.
pub trait JobRepository: Send + Sync + 'static {
    /// Stores a new job. Publishes [`JobEvent::Submitted`].
    fn insert(&self, job: Job) -> BoxFuture<'_, Result<(), StorageError>>;

    /// The job with this id, if any.
    fn get(&self, id: JobId) -> BoxFuture<'_, Result<Option<Job>, StorageError>>;

    /// A page of jobs, newest first, matching `query`.
    fn list(&self, query: JobQuery) -> BoxFuture<'_, Result<JobPage, StorageError>>;

    /// Applies `transition` if and only if the job is in the `expected` status and attempt.
    /// A [`Transition::Succeed`] stores its result apart from the metadata. Publishes
    /// [`JobEvent::Started`] or [`JobEvent::Finished`] when applied.
    fn transition(
        &self,
        id: JobId,
        expected: Expected,
        transition: Transition,
    ) -> BoxFuture<'_, Result<TransitionOutcome, StorageError>>;

    /// Records progress of a running attempt. Best effort: never changes the status, and
    /// does nothing unless the job is `Running` at `attempt`. Publishes
    /// [`JobEvent::Progress`] when stored.
    fn update_progress(
        &self,
        id: JobId,
        attempt: u32,
        progress: Progress,
    ) -> BoxFuture<'_, Result<ProgressAck, StorageError>>;

    /// Cancels a job atomically: a `Queued` job becomes `Canceled` at once; a `Running`
    /// job gets its cancel flag set and [`JobEvent::CancelRequested`] is published so that
    /// the worker holding it fires its cancellation token; a finished job is left alone.
    fn request_cancel(&self, id: JobId) -> BoxFuture<'_, Result<CancelOutcome, StorageError>>;

    /// The result of a `Succeeded` job; `None` for any other status or an unknown id.
    fn get_result(&self, id: JobId) -> BoxFuture<'_, Result<Option<Value>, StorageError>>;

    /// Stores a new job unless its [`Job::unique_key`] is held by a `Queued` or `Running`
    /// job, in which case that job is returned and nothing is stored. Atomic: of racing
    /// inserts with one key, exactly one stores its job. A job without a key is stored as
    /// [`JobRepository::insert`] stores it.
    ///
    /// The default supports jobs without a key only (it cannot check atomically).
    fn insert_unique(&self, job: Job) -> BoxFuture<'_, Result<Inserted, StorageError>> {
        Box::pin(async move {
            if job.unique_key.is_some() {
                return Err(StorageError::new(
                    "this repository does not support unique keys",
                ));
            }
            self.insert(job).await.map(|()| Inserted::Stored)
        })
    }

    /// Stores `job` as the job of tick `tick` of the periodic schedule `schedule`, unless
    /// that tick (or a later one) of the schedule already has its job: of several
    /// processes firing the same tick, exactly one stores a job. Returns whether this call
    /// did. The record of the tick and the job are written together.
    ///
    /// The default refuses: it could not tell another process's tick from its own.
    fn insert_scheduled(
        &self,
        job: Job,
        schedule: &str,
        tick: crate::Timestamp,
    ) -> BoxFuture<'_, Result<bool, StorageError>> {
        let _ = (job, schedule, tick);
        Box::pin(async {
            Err(StorageError::new(
                "this repository does not record periodic ticks",
            ))
        })
    }

    /// Deletes up to `limit` finished jobs (and their results) that finished before
    /// `before`, oldest first; returns how many it deleted. Jobs still `Queued` or
    /// `Running` are never deleted.
    ///
    /// The default deletes nothing.
    fn prune_finished(
        &self,
        before: crate::Timestamp,
        limit: usize,
    ) -> BoxFuture<'_, Result<u64, StorageError>> {
        let _ = (before, limit);
        Box::pin(async { Ok(0) })
    }

    /// A receiver of every event published from now on. A receiver that falls more than
    /// the channel's capacity behind skips the oldest events (and is told how many).
    fn subscribe(&self) -> broadcast::Receiver<JobEvent>;

    /// How many jobs there are of each type in each status (pairs with no job left out).
    ///
    /// The default pages through [`JobRepository::list`]; repositories that can count
    /// more cheaply override it.
    fn count_jobs(&self) -> BoxFuture<'_, Result<Vec<JobCount>, StorageError>> {
        Box::pin(async move {
            let mut counts: std::collections::BTreeMap<(String, JobStatus), u64> =
                std::collections::BTreeMap::new();
            let mut query = JobQuery::new().limit(JobQuery::MAX_LIMIT);
            loop {
                let page = self.list(query.clone()).await?;
                for job in &page.jobs {
                    *counts
                        .entry((job.job_type.clone(), job.status))
                        .or_default() += 1;
                }
                match page.next_cursor {
                    Some(cursor) => query = query.cursor(cursor),
                    None => break,
                }
            }
            Ok(counts
                .into_iter()
                .map(|((job_type, status), count)| JobCount::new(job_type, status, count))
                .collect())
        })
    }

    /// The largest payload, in bytes of compact JSON, this repository accepts; `None` for
    /// no limit. The service refuses larger payloads at submit with
    /// [`SubmitError::PayloadTooLarge`](crate::SubmitError::PayloadTooLarge).
    fn max_payload_bytes(&self) -> Option<usize> {
        None
    }

    /// A receiver of the ids of running jobs for which a cancel is requested from now on
    /// (the [`JobEvent::CancelRequested`] events alone, so that workers need not read every
    /// event).
    fn subscribe_cancellations(&self) -> broadcast::Receiver<JobId>;
}

/// The answer to a [`JobRepository::insert_unique`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Inserted {
    /// The job was stored.
    Stored,
    /// An active job holds the key: this one, and nothing was stored.
    Existing(Box<Job>),
}

impl Inserted {
    /// `Ok` if the job was stored; the error [`JobRepository::insert`] answers when an
    /// active job holds its unique key.
    pub fn stored(self) -> Result<(), StorageError> {
        match self {
            Inserted::Stored => Ok(()),
            Inserted::Existing(holder) => Err(StorageError::new(format!(
                "the unique key {:?} is held by the active job {}",
                holder.unique_key.as_deref().unwrap_or_default(),
                holder.id
            ))),
        }
    }
}

/// The answer to a [`JobRepository::transition`].
// The job is moved out once per transition; boxing it would cost an allocation each time.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum TransitionOutcome {
    /// The change was made; the job as it is now.
    Applied(Job),
    /// The job was not in the expected status and attempt; nothing changed.
    Conflict {
        /// Its status now.
        current: JobStatus,
        /// Its attempt now.
        attempt: u32,
    },
    /// No job has this id.
    NotFound,
}

/// The answer to a [`JobRepository::update_progress`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProgressAck {
    /// Stored. `cancel_requested` tells the worker whether someone asked the job to stop,
    /// so a worker learns of a cancel even without events.
    Stored {
        /// A cancel was requested for the job.
        cancel_requested: bool,
    },
    /// The job is not running at that attempt any more; nothing was stored.
    NotRunning,
}

/// The answer to a [`JobRepository::request_cancel`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum CancelOutcome {
    /// The job was queued and is now `Canceled`; it will never run.
    CanceledQueued(Job),
    /// The job is running; its worker has been asked to stop, and the job ends `Canceled`
    /// when the executor returns with an error. Asking again returns this again.
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

/// A filter and page request for [`JobRepository::list`].
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
    /// At most this many jobs, between 1 and [`JobQuery::MAX_LIMIT`].
    pub limit: usize,
    /// Only jobs older than this one (the `next_cursor` of the previous page).
    pub cursor: Option<JobId>,
}

impl JobQuery {
    /// The page size when none is given.
    pub const DEFAULT_LIMIT: usize = 50;
    /// The largest page a repository returns.
    pub const MAX_LIMIT: usize = 1_000;

    /// All jobs, first page, [`JobQuery::DEFAULT_LIMIT`] per page.
    pub fn new() -> Self {
        Self {
            status: None,
            job_type: None,
            limit: Self::DEFAULT_LIMIT,
            cursor: None,
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
    }
}

impl Default for JobQuery {
    fn default() -> Self {
        Self::new()
    }
}

/// How many jobs of one type are in one status, from [`JobRepository::count_jobs`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobCount {
    /// The job type.
    pub job_type: String,
    /// The status.
    pub status: JobStatus,
    /// How many.
    pub count: u64,
}

impl JobCount {
    /// `count` jobs of `job_type` in `status`.
    pub fn new(job_type: impl Into<String>, status: JobStatus, count: u64) -> Self {
        Self {
            job_type: job_type.into(),
            status,
            count,
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
