//! The delivery contract: a FIFO of job ids.

use crate::{BoxFuture, JobId, StorageError};

/// One job id handed to a worker. Acknowledge it with [`JobQueue::ack`] once the job's
/// final status is written, so a durable queue knows it may forget it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The job to run.
    pub id: JobId,
    /// A queue-specific tag identifying this delivery (0 where the queue needs none).
    pub tag: u64,
}

/// First-in, first-out delivery of job ids to workers.
///
/// Delivery is at least once: a durable queue may deliver an id again after a worker died
/// holding it. Workers claim each delivery with a compare-and-set `Queued → Running` in the
/// repository, which makes a repeated delivery harmless.
pub trait JobQueue: Send + Sync + 'static {
    /// Appends `id` to the back of the queue.
    fn enqueue(&self, id: JobId) -> BoxFuture<'_, Result<(), StorageError>>;

    /// Waits for the id at the front of the queue and hands it out. Cancel-safe: dropping
    /// the future before it completes loses no id.
    fn dequeue(&self) -> BoxFuture<'_, Result<Delivery, StorageError>>;

    /// Confirms that `delivery` has been dealt with.
    fn ack(&self, delivery: Delivery) -> BoxFuture<'_, Result<(), StorageError>>;

    /// How many ids wait in the queue, where the queue can tell cheaply.
    fn depth(&self) -> Option<usize> {
        None
    }
}
