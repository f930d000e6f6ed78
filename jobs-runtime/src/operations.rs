//! What an operator does through the service: retry and delete finished jobs, act on
//! every job that matches a filter, and read the queues, their workers and throughput.

use std::time::Duration;

use jobs_core::{
    DeleteOutcome, FinishedCount, JobEvent, JobId, JobQuery, JobStatus, JobsError, Operations,
    RetryOutcome, StorageError, StorageErrorKind, Timestamp, WorkerInfo,
};
use serde::Serialize;

use crate::Jobs;

/// What [`Jobs::bulk`] does to each matching job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BulkAction {
    /// [`Jobs::cancel`] each (queued jobs end at once, running ones are asked to stop).
    Cancel,
    /// [`Jobs::retry_job`] each `Failed` or `Canceled` one.
    Retry,
    /// [`Jobs::delete_job`] each finished one.
    Delete,
}

/// What [`Jobs::bulk`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct BulkReport {
    /// How many jobs matched the filter.
    pub matched: u64,
    /// How many of them the action changed (the others were in a status it does not
    /// apply to, or changed meanwhile).
    pub changed: u64,
}

/// One queue as an operator sees it, from [`Jobs::queues`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct QueueOverview {
    /// The queue's name.
    pub queue: String,
    /// `Queued` jobs that are due.
    pub queued: u64,
    /// `Queued` jobs whose time has not come.
    pub scheduled: u64,
    /// `Running` jobs.
    pub running: u64,
    /// Jobs that ended (succeeded, failed or canceled) per minute, over the last
    /// [`Jobs::RATE_WINDOW_MINUTES`] whole minutes.
    pub finished_per_minute: f64,
    /// Of those, the ones that failed.
    pub failed_per_minute: f64,
    /// The worker processes that serve it.
    pub workers: Vec<QueueWorker>,
    /// When it was paused ([`Jobs::pause_queue`]); `None` while it runs.
    pub paused_since: Option<Timestamp>,
}

/// A queue whose jobs wait with no running process to serve them, from
/// [`Jobs::unserved_queues`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct UnservedQueue {
    /// The queue.
    pub queue: String,
    /// Its `Queued` jobs, due and scheduled.
    pub waiting: u64,
}

/// The queues with queued jobs that no process with a recent heartbeat serves.
pub(crate) async fn unserved(
    operations: &dyn Operations,
) -> Result<Vec<UnservedQueue>, StorageError> {
    let counts = operations.queue_counts().await?;
    if counts
        .iter()
        .all(|count| count.queued + count.scheduled == 0)
    {
        return Ok(Vec::new());
    }
    let quiet = crate::engine::heartbeat::INTERVAL * 3;
    let since = Timestamp::from_unix_micros(
        Timestamp::now().as_unix_micros() - i64::try_from(quiet.as_micros()).unwrap_or(0),
    );
    let workers = operations.workers(since).await?;
    Ok(counts
        .into_iter()
        .filter(|count| count.queued + count.scheduled > 0)
        .filter(|count| {
            !workers.iter().any(|worker| {
                worker
                    .queues
                    .iter()
                    .any(|served| served.queue == count.queue && served.concurrency > 0)
            })
        })
        .map(|count| UnservedQueue {
            waiting: count.queued + count.scheduled,
            queue: count.queue,
        })
        .collect())
}

/// A process that serves a queue, from its heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct QueueWorker {
    /// The id it holds jobs under.
    pub id: String,
    /// Its host name.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// Its number of workers for this queue.
    pub concurrency: usize,
    /// Its latest heartbeat.
    pub last_seen: Timestamp,
    /// Whether that heartbeat is older than three beats: the process may be gone.
    pub quiet: bool,
}

/// The jobs that ended in one minute, over every queue, from [`Jobs::throughput`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct MinuteThroughput {
    /// The start of the minute.
    pub minute: Timestamp,
    /// How many succeeded.
    pub succeeded: u64,
    /// How many failed.
    pub failed: u64,
    /// How many were canceled.
    pub canceled: u64,
}

fn minutes_ago(now: Timestamp, minutes: i64) -> Timestamp {
    Timestamp::from_unix_micros(now.as_unix_micros() - minutes * 60_000_000)
}

impl Jobs {
    /// How many whole minutes [`QueueOverview`]'s rates average over.
    pub const RATE_WINDOW_MINUTES: u32 = 5;

    /// How long a worker's heartbeat is kept in view after its last beat.
    pub const WORKERS_SHOWN_FOR: Duration = Duration::from_secs(600);

    pub(crate) fn operations(&self) -> Result<&dyn Operations, JobsError> {
        self.inner().store.operations().ok_or_else(|| {
            JobsError::Storage(StorageError::of_kind(
                StorageErrorKind::Unsupported,
                "this store does not offer the operator's calls (retry, delete, pause, queue counts)",
            ))
        })
    }

    /// Queues a `Failed` or `Canceled` job again, due now. It keeps its attempt count and
    /// the errors of its failed attempts (its timeline), and gets one more attempt if it
    /// had used them all; its error, progress and finish time are cleared. A job holding
    /// a unique key gets it back unless another active job of its type took it meanwhile
    /// ([`RetryOutcome::KeyHeld`]). Queued, running and succeeded jobs are left alone
    /// ([`RetryOutcome::NotRetryable`]): a success has a result, which is never replaced.
    pub async fn retry_job(&self, id: JobId) -> Result<RetryOutcome, JobsError> {
        let mut outcomes = self.retry_jobs(&[id]).await?;
        Ok(outcomes.pop().unwrap_or(RetryOutcome::NotFound))
    }

    /// [`Jobs::retry_job`] for many jobs in one store call; one answer per id, in order.
    pub async fn retry_jobs(&self, ids: &[JobId]) -> Result<Vec<RetryOutcome>, JobsError> {
        let outcomes = self.operations()?.retry_many(ids).await?;
        let events: Vec<JobEvent> = outcomes
            .iter()
            .filter_map(|outcome| match outcome {
                RetryOutcome::Retried(job) => Some(JobEvent::Retried {
                    id: job.id,
                    job_type: job.job_type.clone(),
                }),
                _ => None,
            })
            .collect();
        self.inner().announce(events).await;
        Ok(outcomes)
    }

    /// Deletes a finished job and its result. Jobs that have not finished are left alone
    /// ([`DeleteOutcome::NotFinished`]): cancel them first.
    pub async fn delete_job(&self, id: JobId) -> Result<DeleteOutcome, JobsError> {
        let mut outcomes = self.delete_jobs(&[id]).await?;
        Ok(outcomes.pop().unwrap_or(DeleteOutcome::NotFound))
    }

    /// [`Jobs::delete_job`] for many jobs in one store call; one answer per id, in order.
    pub async fn delete_jobs(&self, ids: &[JobId]) -> Result<Vec<DeleteOutcome>, JobsError> {
        let outcomes = self.operations()?.delete_many(ids).await?;
        let events: Vec<JobEvent> = ids
            .iter()
            .zip(&outcomes)
            .filter(|(_, outcome)| **outcome == DeleteOutcome::Deleted)
            .map(|(id, _)| JobEvent::Deleted { id: *id })
            .collect();
        self.inner().announce(events).await;
        Ok(outcomes)
    }

    /// The jobs that wait for job `id` (that name it in their [`Job::depends_on`]),
    /// oldest first, whatever their status: its children in a flow's graph, as
    /// [`Job::depends_on`] holds its parents. Empty for a job without dependants and for
    /// an id no job has. A store without the operator's calls answers an error of kind
    /// [`StorageErrorKind::Unsupported`].
    ///
    /// [`Job::depends_on`]: jobs_core::Job::depends_on
    ///
    /// ```
    /// use jobs_runtime::{executor_fn, JobError, Jobs, SubmitOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let jobs = Jobs::builder()
    ///     .discover(false)
    ///     .concurrency(0) // nothing runs: the dependant keeps waiting
    ///     .register(executor_fn("Step", |_ctx| async { Ok::<_, JobError>(()) }))
    ///     .start()?;
    /// let parent = jobs.submit_job("Step").await?;
    /// let child = jobs
    ///     .submit_job_with_options(
    ///         "Step",
    ///         serde_json::Value::Null,
    ///         &SubmitOptions::new().depends_on([parent.id]),
    ///     )
    ///     .await?;
    /// assert_eq!(jobs.dependants(parent.id).await?, [child.id]);
    /// assert_eq!(jobs.dependants(child.id).await?, []);
    /// # jobs.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn dependants(&self, id: JobId) -> Result<Vec<JobId>, JobsError> {
        Ok(self.operations()?.dependants(id).await?)
    }

    /// How many stored jobs match `filter` (its status, type and queue; not its limit or
    /// cursor): what [`Jobs::bulk`] would act on now.
    pub async fn count_matching(&self, filter: &JobQuery) -> Result<u64, JobsError> {
        let mut matched = 0;
        self.each_page(filter, |ids| {
            matched += ids.len() as u64;
            async { Ok(0) }
        })
        .await?;
        Ok(matched)
    }

    /// Applies `action` to every job that matches `filter` (its status, type and queue;
    /// not its limit or cursor), a page of [`JobQuery::MAX_LIMIT`] jobs at a time, newest
    /// first. Jobs submitted after the call began are not touched. Each job is changed by
    /// the same rule as one at a time, so a job in a status the action does not apply to
    /// is counted as matched but not changed.
    pub async fn bulk(
        &self,
        action: BulkAction,
        filter: &JobQuery,
    ) -> Result<BulkReport, JobsError> {
        let mut report = BulkReport::default();
        let changed = self
            .each_page(filter, |ids| {
                report.matched += ids.len() as u64;
                let jobs = self.clone();
                async move {
                    let changed = match action {
                        BulkAction::Cancel => {
                            let mut changed = 0;
                            for id in ids {
                                if jobs.cancel(id).await?.took_effect() {
                                    changed += 1;
                                }
                            }
                            changed
                        }
                        BulkAction::Retry => jobs
                            .retry_jobs(&ids)
                            .await?
                            .iter()
                            .filter(|outcome| matches!(outcome, RetryOutcome::Retried(_)))
                            .count() as u64,
                        BulkAction::Delete => jobs
                            .delete_jobs(&ids)
                            .await?
                            .iter()
                            .filter(|outcome| **outcome == DeleteOutcome::Deleted)
                            .count() as u64,
                    };
                    Ok(changed)
                }
            })
            .await?;
        report.changed = changed;
        Ok(report)
    }

    /// Calls `act` with the ids of each page of jobs matching `filter`, newest first;
    /// returns the sum of its answers.
    async fn each_page<F, Fut>(&self, filter: &JobQuery, mut act: F) -> Result<u64, JobsError>
    where
        F: FnMut(Vec<JobId>) -> Fut,
        Fut: std::future::Future<Output = Result<u64, JobsError>>,
    {
        let mut query = filter.clone().limit(JobQuery::MAX_LIMIT);
        query.cursor = None;
        let mut total = 0;
        loop {
            let page = self.list_jobs(query.clone()).await?;
            let ids: Vec<JobId> = page.jobs.iter().map(|job| job.id).collect();
            if !ids.is_empty() {
                total += act(ids).await?;
            }
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => return Ok(total),
            }
        }
    }

    /// Every queue that has jobs, workers or recent finishes, or is paused: its counts,
    /// its rates, whether it is paused and the processes that serve it (from their
    /// heartbeats, across every process on the store), by name.
    pub async fn queues(&self) -> Result<Vec<QueueOverview>, JobsError> {
        let operations = self.operations()?;
        let now = Timestamp::now();
        let this_minute = FinishedCount::minute_of(now);
        let window = i64::from(Self::RATE_WINDOW_MINUTES);
        let since = minutes_ago(this_minute, window);
        let counts = operations.queue_counts().await?;
        let finished = operations.finished_per_minute(since).await?;
        let workers = self.workers().await?;
        let paused = operations.paused_queues().await?;
        let mut queues: Vec<QueueOverview> = Vec::new();
        fn entry<'a>(queues: &'a mut Vec<QueueOverview>, name: &str) -> &'a mut QueueOverview {
            let at = match queues.iter().position(|queue| queue.queue == name) {
                Some(at) => at,
                None => {
                    queues.push(QueueOverview {
                        queue: name.to_owned(),
                        queued: 0,
                        scheduled: 0,
                        running: 0,
                        finished_per_minute: 0.0,
                        failed_per_minute: 0.0,
                        workers: Vec::new(),
                        paused_since: None,
                    });
                    queues.len() - 1
                }
            };
            &mut queues[at]
        }
        for count in counts {
            let queue = entry(&mut queues, &count.queue);
            queue.queued = count.queued;
            queue.scheduled = count.scheduled;
            queue.running = count.running;
        }
        for count in finished.iter().filter(|count| count.minute < this_minute) {
            let queue = entry(&mut queues, &count.queue);
            let per_minute = count.count as f64 / window as f64;
            queue.finished_per_minute += per_minute;
            if count.status == JobStatus::Failed {
                queue.failed_per_minute += per_minute;
            }
        }
        let quiet_after = crate::engine::heartbeat::INTERVAL * 3;
        for worker in &workers {
            let quiet = now.duration_since(worker.last_seen) > quiet_after;
            for served in &worker.queues {
                entry(&mut queues, &served.queue).workers.push(QueueWorker {
                    id: worker.id.clone(),
                    host: worker.host.clone(),
                    pid: worker.pid,
                    concurrency: served.concurrency,
                    last_seen: worker.last_seen,
                    quiet,
                });
            }
        }
        for queue in paused {
            entry(&mut queues, &queue.queue).paused_since = Some(queue.since);
        }
        queues.sort_by(|a, b| a.queue.cmp(&b.queue));
        Ok(queues)
    }

    /// The queues whose `Queued` jobs no process serves: none with workers for the queue
    /// has beaten in the last three heartbeat intervals (30 s). Their jobs wait until a
    /// service serves the queue. Every process with workers also logs a warning for each,
    /// at most every ten minutes, and `GET /metrics` exports them as
    /// `jobs_unserved_queue_jobs{queue}`.
    pub async fn unserved_queues(&self) -> Result<Vec<UnservedQueue>, JobsError> {
        Ok(unserved(self.operations()?).await?)
    }

    /// The worker processes on this store whose heartbeat is at most
    /// [`Jobs::WORKERS_SHOWN_FOR`] old, by id. Each process with workers beats every ten
    /// seconds and removes its record when it shuts down.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, JobsError> {
        let shown = i64::try_from(Self::WORKERS_SHOWN_FOR.as_micros()).unwrap_or(i64::MAX);
        let since = Timestamp::from_unix_micros(Timestamp::now().as_unix_micros() - shown);
        Ok(self.operations()?.workers(since).await?)
    }

    /// The jobs that ended in each of the last `minutes` minutes (at most 1,440), over
    /// every queue, oldest first; the last entry is the minute under way. Minutes without
    /// finishes are there with zeros.
    pub async fn throughput(&self, minutes: u32) -> Result<Vec<MinuteThroughput>, JobsError> {
        let minutes = i64::from(minutes.clamp(1, 1_440));
        let this_minute = FinishedCount::minute_of(Timestamp::now());
        let first = minutes_ago(this_minute, minutes - 1);
        let finished = self.operations()?.finished_per_minute(first).await?;
        let mut series: Vec<MinuteThroughput> = (0..minutes)
            .map(|at| MinuteThroughput {
                minute: minutes_ago(this_minute, minutes - 1 - at),
                succeeded: 0,
                failed: 0,
                canceled: 0,
            })
            .collect();
        for count in finished {
            let offset = (count.minute.as_unix_micros() - first.as_unix_micros()) / 60_000_000;
            let Some(minute) = usize::try_from(offset)
                .ok()
                .and_then(|at| series.get_mut(at))
            else {
                continue;
            };
            match count.status {
                JobStatus::Succeeded => minute.succeeded += count.count,
                JobStatus::Failed => minute.failed += count.count,
                JobStatus::Canceled => minute.canceled += count.count,
                _ => {}
            }
        }
        Ok(series)
    }
}
