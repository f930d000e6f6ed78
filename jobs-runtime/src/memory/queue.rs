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
            // A busy queue answers at once, without registering for a wake-up.
            if let Some(id) = self.try_pop() {
                return Ok(Delivery::new(id, 0));
            }
            loop {
                // Register for a wake-up before looking, so an enqueue that lands between
                // the look and the wait is not missed.
                let notified = self.available.notified();
                let mut notified = std::pin::pin!(notified);
                notified.as_mut().enable();
                if let Some(id) = self.try_pop() {
                    return Ok(Delivery::new(id, 0));
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
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

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

    /// A waker that records whether it was woken.
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn flag() -> (Arc<Flag>, Waker) {
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        (flag.clone(), Waker::from(flag))
    }

    #[test]
    fn a_waiting_worker_is_woken_by_an_enqueue() {
        let queue = ChannelQueue::new();
        let mut waiting = queue.dequeue();
        let (woken, waker) = flag();
        let mut cx = Context::from_waker(&waker);
        assert!(
            waiting.as_mut().poll(&mut cx).is_pending(),
            "nothing queued yet"
        );
        assert!(!woken.0.load(Ordering::SeqCst));

        let id = JobId::new();
        let mut enqueue = queue.enqueue(id);
        assert!(enqueue.as_mut().poll(&mut cx).is_ready());
        assert!(
            woken.0.load(Ordering::SeqCst),
            "the waiting worker was woken"
        );
        match waiting.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(delivery)) => assert_eq!(delivery.id, id),
            other => panic!("expected the id, got {other:?}"),
        }
    }

    #[test]
    fn a_wake_up_given_to_a_dropped_dequeue_passes_to_another_worker() {
        let queue = ChannelQueue::new();
        let (_, waker_a) = flag();
        let (woken_b, waker_b) = flag();
        let mut first = queue.dequeue();
        let mut second = queue.dequeue();
        assert!(first
            .as_mut()
            .poll(&mut Context::from_waker(&waker_a))
            .is_pending());
        assert!(second
            .as_mut()
            .poll(&mut Context::from_waker(&waker_b))
            .is_pending());

        // The wake-up goes to the first waiter, which is dropped without taking the id.
        let id = JobId::new();
        let mut enqueue = queue.enqueue(id);
        assert!(enqueue
            .as_mut()
            .poll(&mut Context::from_waker(&waker_a))
            .is_ready());
        drop(first);

        assert!(
            woken_b.0.load(Ordering::SeqCst),
            "the wake-up was passed on"
        );
        match second.as_mut().poll(&mut Context::from_waker(&waker_b)) {
            Poll::Ready(Ok(delivery)) => assert_eq!(delivery.id, id),
            other => panic!("expected the id, got {other:?}"),
        }
        assert!(queue.is_empty());
    }
}
