//! An in-memory FIFO queue.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use jobs_core::{BoxFuture, Delivery, JobId, JobQueue, StorageError};
use tokio::sync::Notify;

/// A first-in, first-out queue of job ids in this process's memory, shared by any number
/// of workers.
///
/// Ids are handed out in the order they were enqueued. Dequeuing is cancel-safe: an id
/// leaves the queue only in the same step that hands it to a worker.
#[derive(Default)]
pub struct ChannelQueue {
    items: Mutex<VecDeque<JobId>>,
    available: Notify,
}

impl ChannelQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<JobId>> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many ids are waiting.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no id is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn try_pop(&self) -> Option<JobId> {
        self.lock().pop_front()
    }
}

impl std::fmt::Debug for ChannelQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelQueue")
            .field("len", &self.len())
            .finish()
    }
}

impl JobQueue for ChannelQueue {
    fn enqueue(&self, id: JobId) -> BoxFuture<'_, Result<(), StorageError>> {
        self.lock().push_back(id);
        self.available.notify_one();
        Box::pin(async { Ok(()) })
    }

    fn dequeue(&self) -> BoxFuture<'_, Result<Delivery, StorageError>> {
        Box::pin(async move {
            loop {
                // Register for a wake-up before looking, so an enqueue that lands between
                // the look and the wait is not missed.
                let notified = self.available.notified();
                let mut notified = std::pin::pin!(notified);
                notified.as_mut().enable();
                if let Some(id) = self.try_pop() {
                    return Ok(Delivery { id, tag: 0 });
                }
                notified.await;
            }
        })
    }

    fn ack(&self, _delivery: Delivery) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async { Ok(()) })
    }

    fn depth(&self) -> Option<usize> {
        Some(self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hands_out_ids_in_fifo_order() {
        let queue = ChannelQueue::new();
        let ids: Vec<JobId> = (0..100).map(|_| JobId::new()).collect();
        for id in &ids {
            queue.enqueue(*id).await.unwrap();
        }
        assert_eq!(queue.depth(), Some(100));
        for id in &ids {
            assert_eq!(queue.dequeue().await.unwrap().id, *id);
        }
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn a_waiting_worker_wakes_on_enqueue() {
        let queue = std::sync::Arc::new(ChannelQueue::new());
        let waiter = tokio::spawn({
            let queue = queue.clone();
            async move { queue.dequeue().await.unwrap().id }
        });
        tokio::task::yield_now().await;
        let id = JobId::new();
        queue.enqueue(id).await.unwrap();
        assert_eq!(waiter.await.unwrap(), id);
    }

    #[tokio::test]
    async fn a_dropped_dequeue_loses_nothing() {
        let queue = ChannelQueue::new();
        {
            let pending = queue.dequeue();
            drop(pending);
        }
        let id = JobId::new();
        queue.enqueue(id).await.unwrap();
        assert_eq!(queue.dequeue().await.unwrap().id, id);
    }
}
