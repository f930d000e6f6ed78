//! An in-memory queue: due jobs by priority, first in first out within one, and a
//! schedule of jobs not yet due.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jobs_core::{BoxFuture, Delivery, Job, JobId, JobQueue, StorageError, Timestamp};
use tokio::sync::Notify;

/// A queue of job ids in this process's memory, shared by any number of workers.
///
/// Jobs whose `run_at` has come are handed out by priority (higher first), and in the
/// order they were queued within a priority; jobs with a later `run_at` wait in a schedule
/// and join the due ones when their time comes. Dequeuing is cancel-safe: an id leaves the
/// queue only in the same step that hands it to a worker.
#[derive(Default)]
pub struct ChannelQueue {
    lanes: Mutex<HashMap<String, Lane>>,
}

/// One named queue: its jobs, and the wake-up of the workers waiting on it.
#[derive(Default)]
struct Lane {
    items: Items,
    available: Arc<Notify>,
}

#[derive(Default)]
struct Items {
    // Due jobs of priority 0, the common case, in a plain FIFO.
    fifo: VecDeque<JobId>,
    // Due jobs of any other priority.
    ranked: BinaryHeap<Ranked>,
    // Jobs not yet due, earliest first.
    scheduled: BinaryHeap<Reverse<Scheduled>>,
    // Order of arrival, to keep FIFO within a priority.
    sequence: u64,
}

#[derive(PartialEq, Eq)]
struct Ranked {
    priority: i16,
    sequence: u64,
    id: JobId,
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        // Higher priority first, then earlier arrival.
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.sequence.cmp(&self.sequence))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Scheduled {
    run_at: Timestamp,
    sequence: u64,
    id: JobId,
    priority: i16,
}

impl Items {
    fn len(&self) -> usize {
        self.fifo.len() + self.ranked.len() + self.scheduled.len()
    }

    fn push_due(&mut self, id: JobId, priority: i16) {
        if priority == 0 {
            self.fifo.push_back(id);
        } else {
            self.sequence += 1;
            self.ranked.push(Ranked {
                priority,
                sequence: self.sequence,
                id,
            });
        }
    }

    /// Moves the jobs whose time has come from the schedule to the due ones.
    fn promote(&mut self) {
        if self.scheduled.is_empty() {
            return;
        }
        let now = Timestamp::now();
        while self
            .scheduled
            .peek()
            .is_some_and(|Reverse(next)| next.run_at <= now)
        {
            let Reverse(job) = self.scheduled.pop().expect("peeked");
            self.push_due(job.id, job.priority);
        }
    }

    /// The next due job, by priority; or how long until the next scheduled one is due.
    fn pop(&mut self) -> Result<JobId, Option<Duration>> {
        self.promote();
        let ranked_first = match (self.ranked.peek(), self.fifo.is_empty()) {
            (Some(top), false) => top.priority > 0,
            (Some(_), true) => true,
            (None, _) => false,
        };
        if ranked_first {
            return Ok(self.ranked.pop().expect("peeked").id);
        }
        if let Some(id) = self.fifo.pop_front() {
            return Ok(id);
        }
        Err(self.scheduled.peek().map(|Reverse(next)| {
            let now = Timestamp::now();
            next.run_at.duration_since(now)
        }))
    }
}

impl ChannelQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Lane>> {
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many ids are queued, due or scheduled, in every named queue.
    pub fn len(&self) -> usize {
        self.lock().values().map(|lane| lane.items.len()).sum()
    }

    /// The next due id of `queue`, or how long until one is due; and the lane's wake-up.
    fn pop(&self, queue: &str) -> (Result<JobId, Option<Duration>>, Arc<Notify>) {
        let mut lanes = self.lock();
        let lane = match lanes.get_mut(queue) {
            Some(lane) => lane,
            None => lanes.entry(queue.to_owned()).or_default(),
        };
        (lane.items.pop(), lane.available.clone())
    }

    /// Whether no id is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    fn enqueue(&self, job: &Job) -> BoxFuture<'_, Result<(), StorageError>> {
        let mut lanes = self.lock();
        let lane = match lanes.get_mut(job.queue.as_str()) {
            Some(lane) => lane,
            None => lanes.entry(job.queue.clone()).or_default(),
        };
        let items = &mut lane.items;
        if job.run_at > job.created_at && job.run_at > Timestamp::now() {
            items.sequence += 1;
            let sequence = items.sequence;
            items.scheduled.push(Reverse(Scheduled {
                run_at: job.run_at,
                sequence,
                id: job.id,
                priority: job.priority,
            }));
        } else {
            items.push_due(job.id, job.priority);
        }
        // For a scheduled job too: a waiting worker may be sleeping until a later time.
        let available = lane.available.clone();
        drop(lanes);
        available.notify_one();
        Box::pin(async { Ok(()) })
    }

    fn dequeue<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<Delivery, StorageError>> {
        Box::pin(async move {
            loop {
                // Register for a wake-up before looking, so an enqueue that lands between
                // the look and the wait is not missed. A busy queue answers without it.
                let (wait, available) = match self.pop(queue) {
                    (Ok(id), _) => return Ok(Delivery::new(id, 0)),
                    (Err(wait), available) => (wait, available),
                };
                let notified = available.notified();
                let mut notified = std::pin::pin!(notified);
                notified.as_mut().enable();
                let wait = match self.pop(queue).0 {
                    Ok(id) => return Ok(Delivery::new(id, 0)),
                    Err(later) => later.or(wait),
                };
                match wait {
                    Some(until_due) => {
                        tokio::select! {
                            _ = notified => {}
                            _ = tokio::time::sleep(until_due) => {}
                        }
                    }
                    None => notified.await,
                }
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

    fn job() -> Job {
        Job::new("T", serde_json::Value::Null)
    }

    fn with_priority(priority: i16) -> Job {
        let mut job = job();
        job.priority = priority;
        job
    }

    #[tokio::test]
    async fn hands_out_ids_in_fifo_order() {
        let queue = ChannelQueue::new();
        let jobs: Vec<Job> = (0..100).map(|_| job()).collect();
        for job in &jobs {
            queue.enqueue(job).await.unwrap();
        }
        assert_eq!(queue.depth(), Some(100));
        for job in &jobs {
            assert_eq!(queue.dequeue(Job::DEFAULT_QUEUE).await.unwrap().id, job.id);
        }
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn higher_priorities_go_first_and_fifo_holds_within_one() {
        let queue = ChannelQueue::new();
        let jobs: Vec<Job> = [0, 5, -1, 5, 0, 9, -1]
            .into_iter()
            .map(with_priority)
            .collect();
        for job in &jobs {
            queue.enqueue(job).await.unwrap();
        }
        let mut order = Vec::new();
        for _ in 0..jobs.len() {
            let id = queue.dequeue(Job::DEFAULT_QUEUE).await.unwrap().id;
            order.push(jobs.iter().position(|job| job.id == id).unwrap());
        }
        assert_eq!(order, vec![5, 1, 3, 0, 4, 2, 6]);
    }

    #[tokio::test]
    async fn a_scheduled_job_waits_for_its_time_then_goes_by_priority() {
        let queue = ChannelQueue::new();
        let mut later = with_priority(7);
        let delay = std::time::Duration::from_millis(150);
        later.run_at = Timestamp::from_unix_micros(
            Timestamp::now().as_unix_micros() + delay.as_micros() as i64,
        );
        let now = job();
        queue.enqueue(&later).await.unwrap();
        queue.enqueue(&now).await.unwrap();
        let started = std::time::Instant::now();
        assert_eq!(
            queue.dequeue(Job::DEFAULT_QUEUE).await.unwrap().id,
            now.id,
            "due first"
        );
        assert_eq!(
            queue.dequeue(Job::DEFAULT_QUEUE).await.unwrap().id,
            later.id
        );
        assert!(started.elapsed() >= delay - std::time::Duration::from_millis(2));
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
        let mut waiting = queue.dequeue(Job::DEFAULT_QUEUE);
        let (woken, waker) = flag();
        let mut cx = Context::from_waker(&waker);
        assert!(
            waiting.as_mut().poll(&mut cx).is_pending(),
            "nothing queued yet"
        );
        assert!(!woken.0.load(Ordering::SeqCst));

        let job = job();
        let id = job.id;
        let mut enqueue = queue.enqueue(&job);
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
        let mut first = queue.dequeue(Job::DEFAULT_QUEUE);
        let mut second = queue.dequeue(Job::DEFAULT_QUEUE);
        assert!(first
            .as_mut()
            .poll(&mut Context::from_waker(&waker_a))
            .is_pending());
        assert!(second
            .as_mut()
            .poll(&mut Context::from_waker(&waker_b))
            .is_pending());

        // The wake-up goes to the first waiter, which is dropped without taking the id.
        let job = job();
        let id = job.id;
        let mut enqueue = queue.enqueue(&job);
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
