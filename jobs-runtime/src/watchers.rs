//! Subscriptions to one job's events, and what waits for a job's end is built on.
//!
//! One dispatcher task per service reads the store's events while anyone watches a job,
//! and hands each event to the watchers of its job only. A watcher therefore costs the
//! events of its job, however busy the other jobs are, and a slow watcher falls behind on
//! its own job's events alone (counted in [`JobWatch::missed`]), never because of others.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_core::Stream;
use jobs_core::{JobEvent, JobId, Notifications};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;

/// How many events of its job a watcher may fall behind by.
const CAPACITY: usize = 256;

#[derive(Default)]
pub(crate) struct Watchers {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    by_job: HashMap<JobId, Vec<Slot>>,
    dispatching: bool,
}

struct Slot {
    events: mpsc::Sender<JobEvent>,
    missed: Arc<AtomicU64>,
}

impl Watchers {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts watching `id`'s events from now on.
    pub(crate) fn watch(
        self: &Arc<Self>,
        id: JobId,
        notifications: &dyn Notifications,
    ) -> JobWatch {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let missed = Arc::new(AtomicU64::new(0));
        let mut state = self.lock();
        state.by_job.entry(id).or_default().push(Slot {
            events: tx,
            missed: missed.clone(),
        });
        if !state.dispatching {
            state.dispatching = true;
            let dispatcher = Dispatcher {
                watchers: self.clone(),
                events: notifications.subscribe(),
            };
            tokio::spawn(dispatcher.run());
        }
        JobWatch {
            watchers: self.clone(),
            id,
            events: rx,
            missed,
        }
    }
}

/// The events of one job from now on, from [`Jobs::watch_job`](crate::Jobs::watch_job):
/// a [`Stream`] that ends when the store is gone or the service stops dispatching.
///
/// Unlike a [`JobEvents`](crate::JobEvents) subscription filtered by id, it is handed only
/// its job's events, so other jobs' traffic neither costs it nor pushes it behind. A
/// watcher that reads too slowly skips its job's oldest events; [`JobWatch::missed`]
/// counts them, and [`Jobs::get_job`](crate::Jobs::get_job) tells the current state.
pub struct JobWatch {
    watchers: Arc<Watchers>,
    id: JobId,
    events: mpsc::Receiver<JobEvent>,
    missed: Arc<AtomicU64>,
}

impl JobWatch {
    /// The job watched.
    pub fn job_id(&self) -> JobId {
        self.id
    }

    /// The next event of the job; `None` once the watch has ended.
    pub async fn recv(&mut self) -> Option<JobEvent> {
        self.events.recv().await
    }

    /// Whether the watch has ended: nothing more will arrive.
    pub fn is_closed(&self) -> bool {
        self.events.is_closed() && self.events.is_empty()
    }

    /// How many of the job's events this watcher skipped because it fell behind (or the
    /// dispatcher itself fell behind the store's events).
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }
}

impl Stream for JobWatch {
    type Item = JobEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<JobEvent>> {
        self.events.poll_recv(cx)
    }
}

impl Drop for JobWatch {
    fn drop(&mut self) {
        self.events.close();
        let mut state = self.watchers.lock();
        if let Some(slots) = state.by_job.get_mut(&self.id) {
            slots.retain(|slot| !slot.events.is_closed());
            if slots.is_empty() {
                state.by_job.remove(&self.id);
            }
        }
    }
}

impl std::fmt::Debug for JobWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobWatch")
            .field("id", &self.id)
            .field("missed", &self.missed())
            .finish_non_exhaustive()
    }
}

/// Hands events to the watchers of their job. It ends when nobody watches any more (at
/// the next event), or the store's events end; dropping it clears the `dispatching` flag
/// and ends every watch, so the next watch starts a new one.
struct Dispatcher {
    watchers: Arc<Watchers>,
    events: broadcast::Receiver<JobEvent>,
}

impl Dispatcher {
    async fn run(mut self) {
        loop {
            let received = self.events.recv().await;
            let mut state = self.watchers.lock();
            match received {
                // Events may have been missed: every watcher may have missed its job's.
                Ok(JobEvent::Resync) => {
                    for slot in state.by_job.values().flatten() {
                        slot.missed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(event) => {
                    let Some(id) = event.job_id() else { continue };
                    if let Some(slots) = state.by_job.get_mut(&id) {
                        slots.retain(|slot| match slot.events.try_send(event.clone()) {
                            Ok(()) => true,
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                slot.missed.fetch_add(1, Ordering::Relaxed);
                                true
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => false,
                        });
                        if slots.is_empty() {
                            state.by_job.remove(&id);
                        }
                    }
                }
                // The dispatcher fell behind: any watcher may have missed events.
                Err(RecvError::Lagged(skipped)) => {
                    for slot in state.by_job.values().flatten() {
                        slot.missed.fetch_add(skipped, Ordering::Relaxed);
                    }
                }
                Err(RecvError::Closed) => return,
            }
            if state.by_job.is_empty() {
                return;
            }
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        let mut state = self.watchers.lock();
        state.dispatching = false;
        // Dropping the senders ends every watch still open.
        state.by_job.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobs_core::{EventBus, JobStatus};

    fn finished(id: JobId) -> JobEvent {
        JobEvent::Finished {
            id,
            status: JobStatus::Succeeded,
            error: None,
        }
    }

    #[tokio::test]
    async fn a_watch_gets_its_jobs_events_only_however_many_others_pass() {
        let bus = EventBus::new(16);
        let watchers = Arc::new(Watchers::default());
        let id = JobId::new();
        let mut watch = watchers.watch(id, &bus);
        // Far more events of other jobs than the bus holds, then one of the job: the
        // dispatcher keeps up, and the watch holds only its job's event.
        for _ in 0..10 {
            let others: Vec<JobEvent> = (0..8).map(|_| finished(JobId::new())).collect();
            bus.send(others);
            tokio::task::yield_now().await;
        }
        bus.send(vec![finished(id)]);
        let event = tokio::time::timeout(std::time::Duration::from_secs(5), watch.recv())
            .await
            .expect("the job's event arrives")
            .expect("the watch is open");
        assert_eq!(event.job_id(), Some(id));
        assert!(
            watch.events.try_recv().is_err(),
            "nothing but the job's event"
        );
    }

    #[tokio::test]
    async fn a_dropped_watch_leaves_nothing_behind() {
        let bus = EventBus::default();
        let watchers = Arc::new(Watchers::default());
        let watch = watchers.watch(JobId::new(), &bus);
        assert_eq!(watchers.lock().by_job.len(), 1);
        drop(watch);
        assert!(watchers.lock().by_job.is_empty());
    }
}
