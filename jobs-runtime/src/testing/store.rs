//! The store of a test service: the in-memory store, with a gate on claims (manual mode)
//! or a submit that returns once its jobs have run (inline mode).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use jobs_core::{
    BoxFuture, ClaimRequest, ClaimedJob, Completed, Completion, Inserted, Job, JobId, JobStatus,
    JobStore, Lease, Notifications, Renewal, Signal, StorageError, Timestamp,
};
use tokio::sync::broadcast::error::RecvError;

use super::Mode;
use crate::memory::InMemoryStore;

/// How long a settling wait sleeps when no event came: the time a job's executor waits
/// on a timer must pass, and on a paused clock it passes only while every task sleeps.
const SETTLE_TICK: Duration = Duration::from_millis(1);

pub(crate) struct TestStore {
    pub(crate) memory: InMemoryStore,
    mode: Mode,
    /// Claims get jobs (always in inline mode; during a drain in manual mode).
    open: AtomicBool,
    /// The queues the service serves: a job of another queue never runs here, so it
    /// counts as settled.
    served: HashSet<String>,
    /// The jobs claimed since the last [`TestStore::take_claimed`], in claim order.
    claimed: Mutex<Vec<JobId>>,
}

impl TestStore {
    pub(crate) fn new(mode: Mode, served: HashSet<String>) -> Self {
        Self {
            memory: InMemoryStore::new(),
            open: AtomicBool::new(mode == Mode::Inline),
            mode,
            served,
            claimed: Mutex::new(Vec::new()),
        }
    }

    /// Lets claims get jobs (or not), and wakes the engine when they may.
    pub(crate) fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
        if open {
            self.memory.bus().send_signal(Signal::JobsDue);
        }
    }

    /// The jobs claimed since the last call, each once, in the order of their first claim.
    pub(crate) fn take_claimed(&self) -> Vec<JobId> {
        let claimed =
            std::mem::take(&mut *self.claimed.lock().unwrap_or_else(PoisonError::into_inner));
        let mut seen = HashSet::new();
        claimed.into_iter().filter(|id| seen.insert(*id)).collect()
    }

    /// Whether nothing is left to do now: no job runs and no served queue has a due job.
    pub(crate) async fn idle(&self) -> Result<bool, StorageError> {
        if self.memory.count(JobStatus::Running) > 0 {
            return Ok(false);
        }
        for queue in &self.served {
            if self.memory.next_due(queue).await? == Some(Duration::ZERO) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether each of `ids` is finished, or waits for a later time, or is in a queue this
    /// service does not serve.
    async fn settled(&self, ids: &[JobId]) -> Result<bool, StorageError> {
        let now = Timestamp::now();
        for id in ids {
            let Some(job) = self.memory.get(*id).await? else {
                continue;
            };
            let waiting = job.status == JobStatus::Queued
                && (job.run_at > now || !self.served.contains(&*job.queue));
            if !job.status.is_terminal() && !waiting {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Waits until `ready` answers true, looking again after every event of the store.
    pub(crate) async fn wait_until<F, Fut>(&self, mut ready: F) -> Result<(), StorageError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<bool, StorageError>>,
    {
        let mut events = self.memory.bus().subscribe();
        loop {
            if ready().await? {
                return Ok(());
            }
            tokio::select! {
                event = events.recv() => {
                    if let Err(RecvError::Closed) = event {
                        return Ok(());
                    }
                }
                _ = tokio::time::sleep(SETTLE_TICK) => {}
            }
        }
    }
}

impl JobStore for TestStore {
    crate::delegate::delegate_store!(memory);
    fn insert_many(&self, jobs: Vec<Job>) -> BoxFuture<'_, Result<Vec<Inserted>, StorageError>> {
        let ids: Vec<JobId> = jobs.iter().map(|job| job.id).collect();
        let inserted = self.memory.insert_many(jobs);
        if self.mode != Mode::Inline {
            return inserted;
        }
        Box::pin(async move {
            let answers = inserted.await?;
            let stored: Vec<JobId> = ids
                .into_iter()
                .zip(&answers)
                .filter(|(_, answer)| matches!(answer, Inserted::Stored))
                .map(|(id, _)| id)
                .collect();
            self.wait_until(|| self.settled(&stored)).await?;
            Ok(answers)
        })
    }
    fn claim<'a>(
        &'a self,
        request: ClaimRequest<'a>,
    ) -> BoxFuture<'a, Result<Vec<ClaimedJob>, StorageError>> {
        if !self.open.load(Ordering::SeqCst) {
            return Box::pin(std::future::ready(Ok(Vec::new())));
        }
        let claim = self.memory.claim(request);
        Box::pin(async move {
            let claimed = claim.await?;
            self.claimed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(claimed.iter().map(|job| job.id));
            Ok(claimed)
        })
    }
    fn complete_many<'a>(
        &'a self,
        holder: &'a str,
        completions: &'a [Completion],
    ) -> BoxFuture<'a, Result<Vec<Completed>, StorageError>> {
        self.memory.complete_many(holder, completions)
    }
    fn renew<'a>(
        &'a self,
        holder: &'a str,
        leases: &'a [Lease],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<Renewal>, StorageError>> {
        self.memory.renew(holder, leases, lease)
    }
    fn is_durable(&self) -> bool {
        false
    }
}
