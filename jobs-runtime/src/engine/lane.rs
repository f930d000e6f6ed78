//! One named queue as this engine serves it: a buffer of jobs claimed ahead of its
//! workers, refilled in batches.
//!
//! A worker that finds the buffer low starts a claim for what the buffer lacks; the claim
//! lands in the buffer even if nobody waits for it any more, so dropping a waiting worker
//! loses nothing. Only one claim per lane is in flight at a time. A claim that a store
//! answers at once (memory) is run inline; one that waits (a database) runs as its own
//! task, so the worker that started it carries on with the buffer meanwhile.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Context;
use std::time::{Duration, Instant};

use jobs_core::{ClaimRequest, ClaimedJob, Completion, Outcome, StorageError, Timestamp};
use tokio::sync::Notify;

use super::running::Claimed;
use super::Inner;

/// The idle worker that times the lane's next look: gives the watch up when it wakes
/// (or is dropped at shutdown).
struct Watch<'a>(&'a Lane);

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        self.0.lock().watching = false;
    }
}

/// How long a claimed job may wait in the buffer before the lane keeps fewer.
const WAITED_TOO_LONG: Duration = Duration::from_millis(500);

pub(crate) struct Lane {
    pub(crate) name: Arc<str>,
    /// How many workers serve it here.
    pub(crate) workers: usize,
    /// The most jobs it claims ahead (the buffer's largest size).
    capacity: usize,
    /// The least it aims to keep buffered.
    floor: usize,
    state: Mutex<State>,
    /// Wakes the lane's idle workers.
    ready: Notify,
    /// The rate limits its claims honour: its queue's and every job type's.
    rates: Vec<jobs_core::RateRule>,
}

#[derive(Default)]
struct State {
    buffer: VecDeque<Claimed>,
    /// How many it aims to keep buffered now, between the floor and the capacity: it
    /// doubles while workers wait for claims, and halves while claimed jobs wait for
    /// workers, so short jobs are claimed in large batches and long ones are not hoarded.
    target: usize,
    claiming: bool,
    closed: bool,
    /// The last claim got fewer jobs than it asked for: the store has no more due now.
    drained: bool,
    /// An idle worker is timing the next look for due jobs.
    watching: bool,
    /// The lane's last claim failed: idle workers wait before trying again.
    failing: bool,
}

/// What a worker gets from [`Lane::next`].
pub(crate) enum Next {
    Job(Claimed),
    Closed,
}

impl Lane {
    pub(crate) fn new(
        name: Arc<str>,
        workers: usize,
        prefetch: Option<usize>,
        rates: Vec<jobs_core::RateRule>,
    ) -> Self {
        Self {
            name,
            workers,
            capacity: prefetch.unwrap_or(DEFAULT_PREFETCH).max(1),
            // A size that was set is kept; the default adapts between these bounds.
            floor: match prefetch {
                Some(jobs) => jobs.max(1),
                None => (2 * workers).clamp(1, DEFAULT_PREFETCH),
            },
            state: Mutex::default(),
            ready: Notify::new(),
            rates,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Jobs may be due: one idle worker looks (and wakes others if it finds many).
    pub(crate) fn wake(&self) {
        self.lock().drained = false;
        self.ready.notify_one();
    }

    /// No more claims; workers waiting for jobs end.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_waiters();
    }

    /// How many jobs wait in the buffer.
    pub(crate) fn buffered(&self) -> usize {
        self.lock().buffer.len()
    }

    /// Takes job `id` out of the buffer, if it waits there (claimed ahead, not started).
    pub(crate) fn take(&self, id: jobs_core::JobId) -> Option<Claimed> {
        let mut state = self.lock();
        let at = state
            .buffer
            .iter()
            .position(|claimed| claimed.job.id == id)?;
        state.buffer.remove(at)
    }

    /// Takes every buffered job (to give them back).
    pub(crate) fn drain(&self) -> Vec<Claimed> {
        self.lock().buffer.drain(..).collect()
    }

    /// The next job for a worker, claiming more when the buffer runs low; waits while
    /// nothing is due. `Closed` once the lane is closed.
    pub(crate) async fn next(self: &Arc<Self>, inner: &Arc<Inner>) -> Next {
        loop {
            let notified = self.ready.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let (job, claim) = {
                let mut state = self.lock();
                if state.closed {
                    return Next::Closed;
                }
                if state.target == 0 {
                    state.target = self.floor;
                }
                let job = state.buffer.pop_front();
                match &job {
                    // Claimed jobs wait for workers: keep fewer.
                    Some(claimed)
                        if state.buffer.len() >= self.workers
                            && claimed.claimed_at.elapsed() > WAITED_TOO_LONG =>
                    {
                        state.target = (state.target / 2).max(self.floor);
                    }
                    // A worker found nothing while the store still had jobs: claim more
                    // at a time.
                    None if !state.drained => {
                        state.target = (state.target * 2).min(self.capacity);
                    }
                    _ => {}
                }
                let target = state.target;
                let want = target.saturating_sub(state.buffer.len());
                // Refill once the buffer is down to half, unless the store ran dry (then
                // only a wake-up or the timer tries again).
                let claim = !state.claiming
                    && !state.drained
                    && state.buffer.len() <= target / 2
                    && want > 0;
                state.claiming |= claim;
                (job, claim.then_some(want))
            };
            if let Some(want) = claim {
                self.start_claim(inner, want);
            }
            if let Some(job) = job {
                return Next::Job(job);
            }
            let (buffered, claiming) = {
                let state = self.lock();
                (!state.buffer.is_empty(), state.claiming)
            };
            if buffered {
                continue;
            }
            if claiming {
                // The claim in flight wakes us when it lands.
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep(inner.config.poll_interval) => {}
                }
                continue;
            }
            // One idle worker watches the clock (asks the store when the next job is due);
            // the others sleep until woken, or until the poll interval at the latest, so an
            // idle lane costs the store one look per wake-up, not one per worker.
            let watcher = !std::mem::replace(&mut self.lock().watching, true);
            let _watch = watcher.then(|| Watch(self));
            let wait = if watcher {
                self.idle_wait(inner).await
            } else {
                inner.config.poll_interval
            };
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(wait) => {
                    let mut state = self.lock();
                    state.drained = false;
                    state.failing = false;
                }
            }
        }
    }

    /// How long an idle worker sleeps when nothing wakes it: until the earliest queued job
    /// is due, at most the poll interval.
    async fn idle_wait(&self, inner: &Inner) -> Duration {
        let poll = inner.config.poll_interval;
        if self.lock().failing {
            return poll.min(Duration::from_millis(200));
        }
        match inner.store.next_due(&self.name).await {
            // Due now, yet the last claim got none: another process holds it, or a
            // cluster-wide limit is reached. Look again shortly, not in a tight loop.
            Ok(Some(due)) if due.is_zero() => poll.min(Duration::from_millis(20)),
            Ok(Some(due)) => due.min(poll).max(Duration::from_millis(1)),
            _ => poll,
        }
    }

    /// Claims up to `want` jobs into the buffer: inline when the store answers at once,
    /// else in a task of its own.
    fn start_claim(self: &Arc<Self>, inner: &Arc<Inner>, want: usize) {
        let lane = self.clone();
        let engine = inner.clone();
        let mut claim: Pin<Box<dyn Future<Output = ()> + Send>> =
            Box::pin(async move { lane.claim(&engine, want).await });
        let waker = std::task::Waker::noop();
        if claim
            .as_mut()
            .poll(&mut Context::from_waker(waker))
            .is_pending()
        {
            tokio::spawn(claim);
        }
    }

    async fn claim(self: &Arc<Self>, inner: &Arc<Inner>, want: usize) {
        let sent = Instant::now();
        let lease = inner.config.lease;
        let claimed = inner
            .store
            .claim(ClaimRequest {
                queue: &self.name,
                limit: want,
                holder: &inner.holder,
                lease,
                rates: &self.rates,
            })
            .await;
        let jobs = match claimed {
            Ok(jobs) => jobs,
            Err(error) => {
                self.claim_failed(&error);
                return;
            }
        };
        let count = jobs.len();
        let entries =
            inner
                .registry
                .register(jobs.iter().map(|job| (job.id, job.attempt)), sent, lease);
        let mut ready = Vec::with_capacity(count);
        for (job, entry) in jobs.into_iter().zip(entries) {
            match entry {
                Ok(held) => ready.push(Claimed {
                    job,
                    held,
                    claimed_at: sent,
                }),
                // An older attempt of this job still runs here: its lease was lost, so it
                // has been told to stop and is dropped if it does not. This attempt runs
                // once it is gone, never beside it; if it will not go, the claim is given
                // back rather than held unrun.
                Err(_) => {
                    tokio::spawn(adopt(self.clone(), inner.clone(), job, sent));
                }
            }
        }
        if inner.announcing() {
            let events = ready
                .iter()
                .map(|claimed| jobs_core::JobEvent::Started {
                    id: claimed.job.id,
                    attempt: claimed.job.attempt,
                })
                .collect();
            inner.announce(events).await;
        }
        let closed = {
            let mut state = self.lock();
            state.claiming = false;
            state.drained = count < want;
            if !state.drained {
                // The store had all that was asked for: ask for more next time.
                state.target = (state.target * 2).min(self.capacity);
            }
            if state.closed {
                true
            } else {
                state.buffer.extend(ready.drain(..));
                false
            }
        };
        if closed {
            // Closed while the claim was in flight: give them back at once.
            super::completer::give_back(inner, ready).await;
            return;
        }
        match count {
            0 | 1 => self.ready.notify_one(),
            _ => self.ready.notify_waiters(),
        }
    }

    /// Adds a claimed job to the buffer.
    async fn push(&self, inner: &Inner, claimed: Claimed) {
        let refused = {
            let mut state = self.lock();
            if state.closed {
                Some(claimed)
            } else {
                state.buffer.push_back(claimed);
                None
            }
        };
        match refused {
            Some(claimed) => super::completer::give_back(inner, vec![claimed]).await,
            None => self.ready.notify_one(),
        }
    }

    fn claim_failed(&self, error: &StorageError) {
        tracing::warn!(queue = %self.name, %error, "could not claim jobs; trying again shortly");
        let mut state = self.lock();
        state.claiming = false;
        state.failing = true;
        drop(state);
        self.ready.notify_one();
    }
}

/// Runs a newer attempt of a job once its older attempt here is gone (stopped, or dropped
/// after its grace period); gives the claim back if that takes longer than it should.
async fn adopt(lane: Arc<Lane>, inner: Arc<Inner>, job: ClaimedJob, sent: Instant) {
    let give_up = Instant::now() + inner.config.timeout_grace + Duration::from_secs(1);
    loop {
        let entry = inner
            .registry
            .register(
                std::iter::once((job.id, job.attempt)),
                sent,
                inner.config.lease,
            )
            .pop();
        if let Some(Ok(held)) = entry {
            if held.lost() {
                // The wait outlasted the claim's lease: give it back if still held here.
                super::completer::release_unstarted(&inner, job.id, job.attempt).await;
                return;
            }
            if inner.announcing() {
                let started = jobs_core::JobEvent::Started {
                    id: job.id,
                    attempt: job.attempt,
                };
                inner.announce(vec![started]).await;
            }
            lane.push(
                &inner,
                Claimed {
                    job,
                    held,
                    claimed_at: sent,
                },
            )
            .await;
            return;
        }
        if Instant::now() >= give_up || inner.intake.is_cancelled() {
            tracing::warn!(job.id = %job.id, "an older attempt of the job did not stop; giving the new claim back");
            let release = Completion {
                id: job.id,
                attempt: job.attempt,
                outcome: Outcome::Release,
            };
            // Not registered: write it without the batcher's lease check.
            if let Err(error) = inner
                .store
                .complete_many(&inner.holder, std::slice::from_ref(&release))
                .await
            {
                tracing::warn!(job.id = %job.id, %error, "could not give a claim back; it is rescued once its lease runs out");
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The most jobs a lane claims ahead unless set.
pub(crate) const DEFAULT_PREFETCH: usize = 1_000;

/// `wait` from now.
pub(crate) fn later(wait: Duration) -> Timestamp {
    let micros = i64::try_from(wait.as_micros()).unwrap_or(i64::MAX);
    Timestamp::from_unix_micros(Timestamp::now().as_unix_micros().saturating_add(micros))
}
