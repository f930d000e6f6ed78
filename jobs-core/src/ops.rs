//! What an operator does to stored jobs beyond the pipeline: retry and delete finished
//! jobs, pause and resume queues, read per-queue counts and throughput, and see which
//! workers serve the store.

use serde::{Deserialize, Serialize};

use crate::{BoxFuture, Job, JobId, JobStatus, StorageError, Timestamp};

/// The operator's abilities of a store, reached through
/// [`JobStore::operations`](crate::JobStore::operations).
///
/// Like the rest of the store contract these are batch-first and decide nothing: the
/// status rule of a retry is [`Job::retry_finished`], applied by compare-and-set.
pub trait Operations: Send + Sync {
    /// Queues each `Failed` or `Canceled` job of `ids` again by the rule of
    /// [`Job::retry_finished`]; one answer per id, in order.
    fn retry_many<'a>(
        &'a self,
        ids: &'a [JobId],
    ) -> BoxFuture<'a, Result<Vec<RetryOutcome>, StorageError>>;

    /// Deletes each finished job of `ids` with its result; one answer per id, in order.
    fn delete_many<'a>(
        &'a self,
        ids: &'a [JobId],
    ) -> BoxFuture<'a, Result<Vec<DeleteOutcome>, StorageError>>;

    /// The `Queued` (due and scheduled) and `Running` jobs of every queue that has any.
    fn queue_counts(&self) -> BoxFuture<'_, Result<Vec<QueueCounts>, StorageError>>;

    /// How many jobs finished in each minute since `since`, per queue and terminal status.
    /// Durable stores count the finished jobs they still hold, so a retention shorter than
    /// the window leaves out what it pruned; the in-memory store counts as jobs finish.
    fn finished_per_minute(
        &self,
        since: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<FinishedCount>, StorageError>>;

    /// How many finished jobs finished before `before`: what
    /// [`JobStore::prune_finished`](crate::JobStore::prune_finished) would delete, given
    /// no limit, if nothing changed meanwhile (an operator's purge shows its progress
    /// against it).
    fn count_finished_before(&self, before: Timestamp) -> BoxFuture<'_, Result<u64, StorageError>>;

    /// Records (or refreshes) the heartbeat of a worker process; a store may delete
    /// records older than a day here.
    fn record_worker<'a>(
        &'a self,
        worker: &'a WorkerInfo,
    ) -> BoxFuture<'a, Result<(), StorageError>>;

    /// Forgets a worker that stopped.
    fn remove_worker<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), StorageError>>;

    /// The workers whose last heartbeat is at or after `since`, by id.
    fn workers(&self, since: Timestamp) -> BoxFuture<'_, Result<Vec<WorkerInfo>, StorageError>>;

    /// Pauses `queue` (`paused`) or resumes it, for every process on the store, until
    /// told otherwise (a restart changes nothing). Returns whether this call changed it.
    ///
    /// A store with this ability claims no job of a paused queue and answers
    /// [`JobStore::next_due`](crate::JobStore::next_due) with `None` for it; jobs already
    /// claimed are not touched. A queue need not have jobs to be paused.
    fn set_paused<'a>(
        &'a self,
        queue: &'a str,
        paused: bool,
    ) -> BoxFuture<'a, Result<bool, StorageError>>;

    /// The paused queues, by name.
    fn paused_queues(&self) -> BoxFuture<'_, Result<Vec<PausedQueue>, StorageError>>;

    /// The concurrency keys of `Queued` and `Running` jobs (only `keys`, when given), each
    /// with its due queued and running jobs and the largest limit among them, by key.
    fn key_counts<'a>(
        &'a self,
        keys: Option<&'a [String]>,
    ) -> BoxFuture<'a, Result<Vec<KeyCount>, StorageError>>;

    /// The jobs that name `id` among their parents ([`Job::depends_on`]), oldest first,
    /// whatever their status: the children of a job in a flow's graph.
    fn dependants(&self, id: JobId) -> BoxFuture<'_, Result<Vec<JobId>, StorageError>>;

    /// The window under way of each of the rate budgets `names` (see
    /// [`RateRule::budget_name`](crate::RateRule::budget_name)) that has one.
    fn rate_windows<'a>(
        &'a self,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<(String, crate::RateWindow)>, StorageError>>;
}

/// The active jobs of one concurrency key, from [`Operations::key_counts`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct KeyCount {
    /// The key.
    pub key: String,
    /// Its `Queued` jobs that are due.
    pub queued: u64,
    /// Its `Running` jobs.
    pub running: u64,
    /// The largest [`Job::concurrency_limit`](crate::Job::concurrency_limit) among them.
    pub limit: u32,
}

impl KeyCount {
    /// `queued` due and `running` jobs of `key`, with `limit`.
    pub fn new(key: impl Into<String>, queued: u64, running: u64, limit: u32) -> Self {
        Self {
            key: key.into(),
            queued,
            running,
            limit,
        }
    }

    /// Whether its due jobs wait because the key's limit of jobs run.
    pub fn is_busy(&self) -> bool {
        self.running >= u64::from(self.limit.max(1))
    }
}

/// A paused queue, from [`Operations::paused_queues`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PausedQueue {
    /// The queue.
    pub queue: String,
    /// When it was paused.
    pub since: Timestamp,
}

impl PausedQueue {
    /// `queue`, paused at `since`.
    pub fn new(queue: impl Into<String>, since: Timestamp) -> Self {
        Self {
            queue: queue.into(),
            since,
        }
    }
}

/// The answer for one job of [`Operations::retry_many`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RetryOutcome {
    /// The job is `Queued` again; this is it now.
    Retried(Box<Job>),
    /// The job is not `Failed` or `Canceled` (it is queued, running or succeeded).
    NotRetryable(JobStatus),
    /// Another active job of its type holds its unique key; nothing changed.
    KeyHeld,
    /// It depends on jobs that have not all ended as it needs (succeeded; for a job that
    /// runs anyway, finished): retry those first. Nothing changed.
    ParentsNotDone,
    /// No job has this id.
    NotFound,
}

/// The answer for one job of [`Operations::delete_many`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeleteOutcome {
    /// The job and its result are gone.
    Deleted,
    /// The job has not finished; nothing changed.
    NotFinished(JobStatus),
    /// No job has this id.
    NotFound,
}

/// The active jobs of one queue, from [`Operations::queue_counts`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct QueueCounts {
    /// The queue.
    pub queue: String,
    /// `Queued` jobs that are due.
    pub queued: u64,
    /// `Queued` jobs whose `run_at` is still ahead.
    pub scheduled: u64,
    /// `Running` jobs.
    pub running: u64,
}

impl QueueCounts {
    /// No jobs in `queue`.
    pub fn new(queue: impl Into<String>) -> Self {
        Self {
            queue: queue.into(),
            ..Self::default()
        }
    }
}

/// How many jobs of one queue ended in one status during one minute, from
/// [`Operations::finished_per_minute`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct FinishedCount {
    /// The start of the minute.
    pub minute: Timestamp,
    /// The queue.
    pub queue: String,
    /// `Succeeded`, `Failed` or `Canceled`.
    pub status: JobStatus,
    /// How many.
    pub count: u64,
}

impl FinishedCount {
    /// `count` jobs of `queue` that ended `status` in the minute starting at `minute`.
    pub fn new(minute: Timestamp, queue: impl Into<String>, status: JobStatus, count: u64) -> Self {
        Self {
            minute,
            queue: queue.into(),
            status,
            count,
        }
    }

    /// The start of the minute that holds `at`.
    pub fn minute_of(at: Timestamp) -> Timestamp {
        let micros = at.as_unix_micros();
        Timestamp::from_unix_micros(micros - micros.rem_euclid(60_000_000))
    }
}

/// A worker process as its heartbeat records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct WorkerInfo {
    /// The id it holds jobs under (the `holder` of its claims).
    pub id: String,
    /// The host name of its machine.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The queues it serves, each with its number of workers.
    pub queues: Vec<QueueWorkers>,
    /// When it started.
    pub started_at: Timestamp,
    /// Its latest heartbeat.
    pub last_seen: Timestamp,
}

/// How many workers a process runs for one queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct QueueWorkers {
    /// The queue.
    pub queue: String,
    /// Its number of workers in that process.
    pub concurrency: usize,
}

impl QueueWorkers {
    /// `concurrency` workers for `queue`.
    pub fn new(queue: impl Into<String>, concurrency: usize) -> Self {
        Self {
            queue: queue.into(),
            concurrency,
        }
    }
}

impl WorkerInfo {
    /// A worker `id` on `host` with process id `pid`, serving `queues`, started and seen now.
    pub fn new(
        id: impl Into<String>,
        host: impl Into<String>,
        pid: u32,
        queues: Vec<QueueWorkers>,
    ) -> Self {
        let now = Timestamp::now();
        Self {
            id: id.into(),
            host: host.into(),
            pid,
            queues,
            started_at: now,
            last_seen: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_starts_on_the_minute() {
        let at = Timestamp::from_unix_micros(125_000_001);
        assert_eq!(
            FinishedCount::minute_of(at),
            Timestamp::from_unix_micros(120_000_000)
        );
        let before_epoch = Timestamp::from_unix_micros(-1);
        assert_eq!(
            FinishedCount::minute_of(before_epoch),
            Timestamp::from_unix_micros(-60_000_000)
        );
    }
}
