//! Subscriptions to job events.

use jobs_core::JobEvent;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

/// A subscription to the events of every job, from [`Jobs::subscribe`](crate::Jobs::subscribe).
///
/// Events arrive in the order the repository applied the changes. A subscriber that falls
/// more than the repository's event capacity behind skips the oldest events; [`missed`]
/// counts them, and [`Jobs::get_job`](crate::Jobs::get_job) tells the current state.
///
/// [`missed`]: JobEvents::missed
pub struct JobEvents {
    rx: broadcast::Receiver<JobEvent>,
    missed: u64,
}

impl JobEvents {
    pub(crate) fn new(rx: broadcast::Receiver<JobEvent>) -> Self {
        Self { rx, missed: 0 }
    }

    /// The next event; `None` once the repository is gone.
    pub async fn recv(&mut self) -> Option<JobEvent> {
        loop {
            match self.rx.recv().await {
                Ok(event) => return Some(event),
                Err(RecvError::Lagged(skipped)) => self.missed += skipped,
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// The next event if one is waiting, without blocking.
    pub fn try_recv(&mut self) -> Option<JobEvent> {
        loop {
            match self.rx.try_recv() {
                Ok(event) => return Some(event),
                Err(TryRecvError::Lagged(skipped)) => self.missed += skipped,
                Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
            }
        }
    }

    /// How many events this subscriber skipped because it fell behind.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

impl std::fmt::Debug for JobEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobEvents")
            .field("missed", &self.missed)
            .finish_non_exhaustive()
    }
}
