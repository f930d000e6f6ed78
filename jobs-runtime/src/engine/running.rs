//! The attempts this engine holds: claimed ahead, running, or waiting for their outcome
//! to be written. Cancels reach their tokens through it, and the lease keeper renews
//! what it lists.

use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use jobs_core::{AttemptLease, ClaimedJob, JobId, Lease};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::id_hash::IdMap;

/// A claimed job with its registry entry, as lanes hand them to workers.
pub(crate) struct Claimed {
    pub(crate) job: ClaimedJob,
    pub(crate) held: Held,
    /// When the claim was sent.
    pub(crate) claimed_at: Instant,
}

/// Why an attempt's token fired first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// Still running, nobody asked it to stop.
    None = 0,
    /// Someone canceled the job.
    Canceled = 1,
    /// It ran past its time limit.
    TimedOut = 2,
    /// The service is shutting down.
    Shutdown = 3,
    /// The engine no longer holds its lease: another holder may run it.
    LeaseLost = 4,
}

impl StopReason {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => StopReason::Canceled,
            2 => StopReason::TimedOut,
            3 => StopReason::Shutdown,
            4 => StopReason::LeaseLost,
            _ => StopReason::None,
        }
    }
}

/// One held attempt, shared by the registry, its worker and its context: one allocation.
#[derive(Clone)]
pub(crate) struct Held(Arc<HeldState>);

pub(crate) struct HeldState {
    attempt: u32,
    token: CancellationToken,
    /// The first reason its token fired (a cancel wins over a later shutdown, say).
    reason: AtomicU8,
    /// A cancel was requested, whatever else happened.
    canceled: AtomicBool,
    /// The lease is lost: the attempt's outcome is discarded.
    lost: AtomicBool,
    /// When the lease runs out by the local clock, in microseconds since the registry's
    /// epoch.
    deadline_us: AtomicU64,
    epoch: Instant,
    /// Its outcome is on its way to the store.
    finishing: AtomicBool,
    /// Notified when the lease is found lost.
    lost_notice: Notify,
}

impl Held {
    pub(crate) fn attempt(&self) -> u32 {
        self.0.attempt
    }

    pub(crate) fn token(&self) -> &CancellationToken {
        &self.0.token
    }

    /// Fires the token for `reason`; the first reason given is the one kept.
    pub(crate) fn stop(&self, reason: StopReason) {
        let _ = self.0.reason.compare_exchange(
            StopReason::None as u8,
            reason as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        match reason {
            StopReason::Canceled => self.0.canceled.store(true, Ordering::Release),
            StopReason::LeaseLost => {
                self.0.lost.store(true, Ordering::Release);
                self.0.lost_notice.notify_waiters();
            }
            _ => {}
        }
        self.0.token.cancel();
    }

    pub(crate) fn reason(&self) -> StopReason {
        StopReason::from_u8(self.0.reason.load(Ordering::Acquire))
    }

    pub(crate) fn canceled(&self) -> bool {
        self.0.canceled.load(Ordering::Acquire)
    }

    /// Whether the lease is already known lost (no clock read).
    pub(crate) fn is_marked_lost(&self) -> bool {
        self.0.lost.load(Ordering::Acquire)
    }

    /// Completes once the lease is known lost.
    pub(crate) async fn until_lost(&self) {
        loop {
            let notified = self.0.lost_notice.notified();
            if self.is_marked_lost() {
                return;
            }
            notified.await;
        }
    }

    /// Whether the lease is lost, by the store's word or by the local clock.
    pub(crate) fn lost(&self) -> bool {
        if self.0.lost.load(Ordering::Acquire) {
            return true;
        }
        if self.elapsed_us() >= self.0.deadline_us.load(Ordering::Acquire) {
            self.stop(StopReason::LeaseLost);
            return true;
        }
        false
    }

    fn elapsed_us(&self) -> u64 {
        self.0.epoch.elapsed().as_micros() as u64
    }

    /// The lease holds until `sent + lease`: `sent` is when the claim or renewal that
    /// the store answered was sent, so the local deadline is never later than the store's.
    pub(crate) fn extend(&self, sent: Instant, lease: Duration) {
        let until = sent.saturating_duration_since(self.0.epoch) + lease;
        self.0
            .deadline_us
            .fetch_max(until.as_micros() as u64, Ordering::AcqRel);
    }

    /// How long until the local deadline passes (zero once it has).
    pub(crate) fn until_deadline(&self) -> Duration {
        let deadline = self.0.deadline_us.load(Ordering::Acquire);
        Duration::from_micros(deadline.saturating_sub(self.elapsed_us()))
    }

    /// Marks the attempt's outcome as handed to the completion batcher.
    pub(crate) fn finishing(&self) {
        self.0.finishing.store(true, Ordering::Release);
    }

    pub(crate) fn is_finishing(&self) -> bool {
        self.0.finishing.load(Ordering::Acquire)
    }

    pub(crate) fn as_lease(&self) -> Arc<dyn AttemptLease> {
        self.0.clone()
    }
}

impl AttemptLease for HeldState {
    fn has_expired(&self) -> bool {
        if self.lost.load(Ordering::Acquire) {
            return true;
        }
        let elapsed = self.epoch.elapsed().as_micros() as u64;
        if elapsed >= self.deadline_us.load(Ordering::Acquire) {
            let _ = self.reason.compare_exchange(
                StopReason::None as u8,
                StopReason::LeaseLost as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            self.lost.store(true, Ordering::Release);
            self.lost_notice.notify_waiters();
            self.token.cancel();
            return true;
        }
        false
    }
}

/// The registry: one entry per held job id.
pub(crate) struct Registry {
    held: Mutex<IdMap<Held>>,
    epoch: Instant,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            held: Mutex::default(),
            epoch: Instant::now(),
        }
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, IdMap<Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers claimed attempts whose claim was sent at `sent` with lease `lease`. Each
    /// is `Ok` with its entry, or `Err(attempt)` with its claimed attempt when an older
    /// attempt of the same job is still held here (it did not stop when told).
    pub(crate) fn register(
        &self,
        attempts: impl Iterator<Item = (JobId, u32)>,
        sent: Instant,
        lease: Duration,
    ) -> Vec<Result<Held, u32>> {
        let deadline = (sent.saturating_duration_since(self.epoch) + lease).as_micros() as u64;
        let mut held = self.lock();
        attempts
            .map(|(id, attempt)| match held.entry(id) {
                Entry::Occupied(_) => Err(attempt),
                Entry::Vacant(slot) => {
                    let entry = Held(Arc::new(HeldState {
                        attempt,
                        token: CancellationToken::new(),
                        reason: AtomicU8::new(StopReason::None as u8),
                        canceled: AtomicBool::new(false),
                        lost: AtomicBool::new(false),
                        deadline_us: AtomicU64::new(deadline),
                        epoch: self.epoch,
                        finishing: AtomicBool::new(false),
                        lost_notice: Notify::new(),
                    }));
                    Ok(slot.insert(entry).clone())
                }
            })
            .collect()
    }

    /// Forgets the attempts of `ids` (their outcome is written, or discarded).
    pub(crate) fn remove_all(&self, ids: impl Iterator<Item = (JobId, u32)>) {
        let mut held = self.lock();
        for (id, attempt) in ids {
            if let Entry::Occupied(entry) = held.entry(id) {
                if entry.get().attempt() == attempt {
                    entry.remove();
                }
            }
        }
    }

    /// Forgets one attempt.
    pub(crate) fn remove(&self, id: JobId, attempt: u32) {
        self.remove_all(std::iter::once((id, attempt)));
    }

    /// Fires the token of `id`, if held here, for `reason`.
    pub(crate) fn stop(&self, id: JobId, reason: StopReason) -> bool {
        match self.lock().get(&id) {
            Some(held) => {
                held.stop(reason);
                true
            }
            None => false,
        }
    }

    /// Fires every token for `reason`.
    pub(crate) fn stop_all(&self, reason: StopReason) {
        for held in self.lock().values() {
            held.stop(reason);
        }
    }

    /// Every held attempt with its entry.
    pub(crate) fn snapshot(&self) -> Vec<(Lease, Held)> {
        self.lock()
            .iter()
            .map(|(id, held)| {
                (
                    Lease {
                        id: *id,
                        attempt: held.attempt(),
                    },
                    held.clone(),
                )
            })
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}
