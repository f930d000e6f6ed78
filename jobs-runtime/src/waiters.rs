//! Waiting for jobs to finish without polling.
//!
//! One dispatcher task per service reads the repository's events while anyone waits, and
//! wakes the waiters of each job that finishes. It subscribes only while there are waiters,
//! so a service nobody waits on pays nothing for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use jobs_core::{JobEvent, JobId, JobRepository};
use tokio::sync::broadcast::error::RecvError;
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

impl Waiters {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers interest in `id`'s end. The receiver completes (or errs) when the job may
    /// have finished; the caller then reads the job again. Registration happens before the
    /// caller reads the job, so a finish in between is not missed.
    pub(crate) fn register(
        self: &Arc<Self>,
        id: JobId,
        repository: &Arc<dyn JobRepository>,
    ) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut state = self.lock();
        let list = state.by_job.entry(id).or_default();
        list.retain(|sender| !sender.is_closed());
        list.push(tx);
        if !state.dispatching {
            state.dispatching = true;
            let events = repository.subscribe();
            tokio::spawn(self.clone().dispatch(events));
        }
        rx
    }

    async fn dispatch(self: Arc<Self>, mut events: tokio::sync::broadcast::Receiver<JobEvent>) {
        loop {
            let received = events.recv().await;
            let mut state = self.lock();
            match received {
                Ok(JobEvent::Finished { id, .. }) => {
                    for sender in state.by_job.remove(&id).unwrap_or_default() {
                        let _ = sender.send(());
                    }
                }
                Ok(_) => continue,
                // Fell behind: wake everyone to read their job again.
                Err(RecvError::Lagged(_)) => wake_all(&mut state),
                // The repository is gone: wake everyone and stop.
                Err(RecvError::Closed) => {
                    wake_all(&mut state);
                    state.dispatching = false;
                    return;
                }
            }
            if state.by_job.is_empty() {
                state.dispatching = false;
                return;
            }
        }
    }
}

fn wake_all(state: &mut State) {
    for (_, senders) in state.by_job.drain() {
        for sender in senders {
            let _ = sender.send(());
        }
    }
}
