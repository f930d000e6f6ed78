//! The delivery contract: due jobs by priority, first in first out within one.

use crate::{BoxFuture, Job, JobId, StorageError};

/// One job handed to a worker. Acknowledge it with [`JobQueue::ack`] once the job's
/// final status is written, so a durable queue knows it may forget it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Delivery {
    /// The job to run.
    pub id: JobId,
    /// A queue-specific tag identifying this delivery (0 where the queue needs none).
    pub tag: u64,
    /// Set by queues that claim as they deliver (a database queue moves the job to
    /// `Running` in the same statement that hands it out): the job as claimed, already
    /// `Running` at its new attempt. `None` means the worker claims it itself with the
    /// compare-and-set `Queued → Running`.
    pub claimed: Option<Box<Job>>,
}

impl Delivery {
    /// A delivery of `id` that the worker still has to claim.
    pub fn new(id: JobId, tag: u64) -> Self {
        Self {
            id,
            tag,
            claimed: None,
        }
    }

    /// A delivery of a job the queue has already claimed for the worker.
    pub fn claimed(job: Job, tag: u64) -> Self {
        Self {
            id: job.id,
            tag,
            claimed: Some(Box::new(job)),
        }
    }
}

/// Delivery of jobs to workers: among the jobs that are due ([`Job::run_at`] reached),
/// higher [`Job::priority`] first, and first in, first out within a priority.
///
/// Delivery is at least once: a durable queue may deliver an id again after a worker died
/// holding it. Workers claim each delivery with a compare-and-set `Queued → Running` in the
/// repository, which makes a repeated delivery harmless.
pub trait JobQueue: Send + Sync + 'static {
    /// Queues `job` (stored, `Queued`): delivered once its `run_at` has come, in the order
    /// of its priority.
    fn enqueue(&self, job: &Job) -> BoxFuture<'_, Result<(), StorageError>>;

    /// Waits for the next due job of the named queue `queue` ([`Job::queue`]) and hands
    /// it out. Cancel-safe: dropping the future before it completes loses no id.
    fn dequeue<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<Delivery, StorageError>>;

    /// Confirms that `delivery` has been dealt with.
    fn ack(&self, delivery: Delivery) -> BoxFuture<'_, Result<(), StorageError>>;

    /// Gives back a delivery the worker could not start, so that it is delivered again.
    /// Only queues that claim as they deliver ([`Delivery::claimed`]) need it; the
    /// default does nothing.
    fn give_back(&self, delivery: Delivery) -> BoxFuture<'_, Result<(), StorageError>> {
        let _ = delivery;
        Box::pin(async { Ok(()) })
    }

    /// The service is stopping and will take no more deliveries: give back anything
    /// claimed ahead for it. The default does nothing.
    fn close(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async { Ok(()) })
    }

    /// How many ids wait in the queue, where the queue can tell cheaply.
    fn depth(&self) -> Option<usize> {
        None
    }
}
