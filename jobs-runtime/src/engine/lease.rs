//! The lease keeper: renews the leases of every attempt this engine holds, in one store
//! call per round, and stops the attempts whose lease is lost.
//!
//! A lease is lost when the store says so (the job was rescued and perhaps claimed
//! elsewhere, or it is no longer running at that attempt) or when no renewal has been
//! answered for a whole lease by the local monotonic clock (the store is unreachable, or
//! this process was paused or starved). Either way the attempt's token fires and its
//! outcome is discarded: the job's new holder is the only one running it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs_core::{Lease, Renewal};

use super::running::StopReason;
use super::Inner;

/// Asks the keeper for a round now (signals were missed).
pub(crate) fn renew_soon(inner: &Inner) {
    inner.renew_now.notify_one();
}

/// Renews every third of a lease, until the engine has stopped. A renewal that does not
/// answer within a third of a lease is given up for that round: the local deadlines are
/// checked whatever the store does, so a stuck call cannot keep a lost attempt running.
pub(crate) async fn keep(inner: Arc<Inner>) {
    let every = (inner.config.lease / 3).max(Duration::from_millis(20));
    let mut next = tokio::time::Instant::now() + every;
    loop {
        // Wake early when a held attempt's local deadline comes first, to stop it on time.
        let wake = next.min(tokio::time::Instant::now() + earliest_deadline(&inner, every));
        let asked = tokio::select! {
            _ = inner.stopped.cancelled() => return,
            _ = inner.renew_now.notified() => true,
            _ = tokio::time::sleep_until(wake) => false,
        };
        sweep(&inner);
        if asked || tokio::time::Instant::now() >= next {
            next = tokio::time::Instant::now() + every;
            if tokio::time::timeout(every, renew(&inner)).await.is_err() {
                tracing::warn!("renewing job leases took longer than a third of the lease");
            }
            sweep(&inner);
        }
    }
}

/// Stops the attempts whose local deadline has passed.
fn sweep(inner: &Inner) {
    for (_, held) in inner.registry.snapshot() {
        held.lost();
    }
}

/// How long until the earliest local deadline of an attempt not yet known lost.
fn earliest_deadline(inner: &Inner, at_most: Duration) -> Duration {
    inner
        .registry
        .snapshot()
        .iter()
        .filter(|(_, held)| !held.is_marked_lost())
        .map(|(_, held)| held.until_deadline())
        .min()
        .unwrap_or(at_most)
        .min(at_most)
}

/// One round: renews every held lease; stops the lost ones; forwards cancel requests.
pub(crate) async fn renew(inner: &Inner) {
    let held = inner.registry.snapshot();
    if held.is_empty() {
        return;
    }
    let leases: Vec<Lease> = held.iter().map(|(lease, _)| *lease).collect();
    let sent = Instant::now();
    let lease = inner.config.lease;
    match inner.store.renew(&inner.holder, &leases, lease).await {
        Ok(answers) => {
            for ((_, held), answer) in held.iter().zip(answers) {
                match answer {
                    Renewal::Held { cancel_requested } => {
                        held.extend(sent, lease);
                        if cancel_requested && !held.canceled() {
                            held.stop(StopReason::Canceled);
                        }
                    }
                    Renewal::Lost => {
                        if !held.lost() {
                            tracing::warn!(
                                attempt = held.attempt(),
                                "a job's lease was lost; stopping its attempt"
                            );
                        }
                        held.stop(StopReason::LeaseLost);
                    }
                    _ => {}
                }
            }
        }
        Err(error) => tracing::warn!(%error, jobs = leases.len(), "could not renew job leases"),
    }
}
