//! Waiting for jobs to finish without polling.
//!
//! One dispatcher task per service reads the store's events while anyone waits, and
//! wakes the waiters of each job that finishes. It subscribes only while there are waiters,
//! so a service nobody waits on pays nothing for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use jobs_core::{JobEvent, JobId, Notifications};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::oneshot;

#[derive(Default)]
pub(crate) struct Waiters {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    by_job: HashMap<JobId, Vec<oneshot::Sender<()>>>,
    dispatching: bool,
}

impl State {
    fn wake_all(&mut self) {
        for (_, senders) in self.by_job.drain() {
            for sender in senders {
                let _ = sender.send(());
            }
        }
    }
}

/// Interest in one job's end. Dropping it withdraws the interest.
pub(crate) struct Waiter {
    waiters: Arc<Waiters>,
    id: JobId,
    woken: Option<oneshot::Receiver<()>>,
}

/// How long a waiter waits for an event before it reads the job again anyway: a backstop
/// for events a backend could not deliver (notifications sent while a database connection
/// was being re-established), not the way waits normally end.
const BACKSTOP: std::time::Duration = std::time::Duration::from_secs(5);

impl Waiter {
    /// Completes when the job may have finished (or the dispatcher stopped, or the backstop
    /// interval passed): read the job again either way.
    pub(crate) async fn woken(mut self) {
        if let Some(woken) = self.woken.as_mut() {
            let _ = tokio::time::timeout(BACKSTOP, woken).await;
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        drop(self.woken.take());
        let mut state = self.waiters.lock();
        if let Some(senders) = state.by_job.get_mut(&self.id) {
            senders.retain(|sender| !sender.is_closed());
            if senders.is_empty() {
                state.by_job.remove(&self.id);
            }
        }
    }
}

impl Waiters {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers interest in `id`'s end. Registration happens before the caller reads the
    /// job, so a finish in between is not missed.
    pub(crate) fn register(
        self: &Arc<Self>,
        id: JobId,
        notifications: &dyn Notifications,
    ) -> Waiter {
        let (tx, rx) = oneshot::channel();
        let mut state = self.lock();
        state.by_job.entry(id).or_default().push(tx);
        if !state.dispatching {
            state.dispatching = true;
            let dispatcher = Dispatcher {
                waiters: self.clone(),
                events: notifications.subscribe(),
            };
            tokio::spawn(dispatcher.run());
        }
        Waiter {
            waiters: self.clone(),
            id,
            woken: Some(rx),
        }
    }
}

/// Wakes the waiters of finished jobs. Whatever ends it (no waiters left, the store
/// gone, its runtime shutting down), dropping it clears the `dispatching` flag and wakes
/// everyone, so no waiter is left behind and the next registration starts a new one.
struct Dispatcher {
    waiters: Arc<Waiters>,
    events: broadcast::Receiver<JobEvent>,
}

impl Dispatcher {
    async fn run(mut self) {
        loop {
            let received = self.events.recv().await;
            let mut state = self.waiters.lock();
            match received {
                Ok(JobEvent::Finished { id, .. }) => {
                    for sender in state.by_job.remove(&id).unwrap_or_default() {
                        let _ = sender.send(());
                    }
                }
                Ok(_) => {}
                // Fell behind: wake everyone to read their job again.
                Err(RecvError::Lagged(_)) => state.wake_all(),
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
        let mut state = self.waiters.lock();
        state.dispatching = false;
        state.wake_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobs_core::{EventBus, JobStatus};

    #[tokio::test]
    async fn a_dropped_waiter_leaves_nothing_behind() {
        let bus = EventBus::default();
        let waiters = Arc::new(Waiters::default());
        let waiter = waiters.register(JobId::new(), &bus);
        assert_eq!(waiters.lock().by_job.len(), 1);
        drop(waiter);
        assert!(waiters.lock().by_job.is_empty());
    }

    #[tokio::test]
    async fn a_finish_wakes_the_waiter_and_the_dispatcher_stops() {
        let bus = EventBus::default();
        let waiters = Arc::new(Waiters::default());
        let id = JobId::new();
        let waiter = waiters.register(id, &bus);
        let woken = tokio::spawn(waiter.woken());
        bus.send(vec![JobEvent::Finished {
            id,
            status: JobStatus::Canceled,
            error: None,
        }]);
        // Well under the backstop interval: only the finish event can wake it this soon.
        tokio::time::timeout(std::time::Duration::from_millis(500), woken)
            .await
            .expect("woken by the finish event")
            .unwrap();
        // The dispatcher ends once nobody waits; the next waiter starts a new one.
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while waiters.lock().dispatching {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the dispatcher stopped");
    }
}
