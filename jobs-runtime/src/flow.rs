//! Flow control through the service: pausing and resuming queues for every process on
//! the store.

use jobs_core::{JobEvent, JobsError, PausedQueue};

use crate::Jobs;

impl Jobs {
    /// Pauses `queue` for every process on the store: no job of it is claimed until it is
    /// resumed, and it stays paused across restarts. Jobs already running finish; queued
    /// ones (and ones submitted meanwhile) wait `Queued`. A queue need not have jobs to be
    /// paused. Returns whether this call paused it (`false`: it was paused already), and
    /// announces [`JobEvent::QueuePaused`] when it did.
    ///
    /// Jobs a process claimed ahead of its workers before the pause still run there.
    pub async fn pause_queue(&self, queue: &str) -> Result<bool, JobsError> {
        self.set_paused(queue, true).await
    }

    /// Resumes a paused queue; its due jobs are claimed again at once, in every process.
    /// Returns whether this call resumed it (`false`: it was not paused), and announces
    /// [`JobEvent::QueueResumed`] when it did.
    pub async fn resume_queue(&self, queue: &str) -> Result<bool, JobsError> {
        self.set_paused(queue, false).await
    }

    /// The paused queues, by name, with when each was paused.
    pub async fn paused_queues(&self) -> Result<Vec<PausedQueue>, JobsError> {
        Ok(self.operations()?.paused_queues().await?)
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<bool, JobsError> {
        if !jobs_core::valid_queue_name(queue) {
            return Err(JobsError::InvalidQueue(queue.to_owned()));
        }
        let changed = self.operations()?.set_paused(queue, paused).await?;
        if changed {
            let queue = queue.to_owned();
            let event = if paused {
                JobEvent::QueuePaused { queue }
            } else {
                JobEvent::QueueResumed { queue }
            };
            self.inner().announce(vec![event]).await;
        }
        Ok(changed)
    }
}
