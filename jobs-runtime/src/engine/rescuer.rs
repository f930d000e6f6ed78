//! The rescuer: jobs whose holder stopped renewing its lease (a crash, a kill, a lost
//! network, a paused process) go back to the queue, or fail once they have lost too many,
//! or end `Canceled` when a cancel was requested. The decision is made here, from each
//! job's policy; the store applies it fenced by the old holder, so a rescue races nothing.

use std::collections::HashMap;
use std::sync::Arc;

use jobs_core::{Completion, ExpiredLease, Outcome, StorageError, Timestamp};

use super::Inner;

/// How many expired leases one round takes at most.
const BATCH: usize = 1_000;

/// Looks for expired leases every rescue interval until the engine stops.
pub(crate) async fn run(inner: Arc<Inner>) {
    let every = inner
        .config
        .rescue_interval
        .max(std::time::Duration::from_millis(20));
    loop {
        tokio::select! {
            _ = inner.stopped.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match rescue(&inner).await {
            Ok(0) => {}
            Ok(jobs) => {
                tracing::info!(jobs, "rescued jobs whose holder stopped renewing its lease")
            }
            Err(error) => tracing::warn!(%error, "could not look for expired leases"),
        }
    }
}

/// One round; returns how many jobs it rescued.
pub(crate) async fn rescue(inner: &Inner) -> Result<usize, StorageError> {
    let expired = inner.store.expired(BATCH).await?;
    let mut by_holder: HashMap<String, Vec<Completion>> = HashMap::new();
    for lease in expired {
        let decision = decide(&lease, inner.config.crash_budget);
        by_holder.entry(lease.holder).or_default().push(decision);
    }
    let mut rescued = 0;
    for (holder, completions) in by_holder {
        let answers = inner.store.complete_many(&holder, &completions).await?;
        let mut events = Vec::new();
        for (completion, answer) in completions.iter().zip(answers) {
            if let jobs_core::Completed::Applied(status) = answer {
                rescued += 1;
                events.push(super::completer::event_of(completion, status));
            }
        }
        inner.announce(events).await;
    }
    if rescued > 0 {
        inner.wake_lanes();
    }
    Ok(rescued)
}

/// What becomes of a job whose lease ran out. A lost lease counts as a failed attempt:
/// the job is tried again while its own attempts allow, and at least `crash_budget`
/// times in all, so a job without retries survives a crashed worker, and a job that keeps
/// killing its worker stops being tried.
pub(crate) fn decide(lease: &ExpiredLease, crash_budget: u32) -> Completion {
    const LOST: &str = "its worker stopped renewing its lease";
    let outcome = if lease.cancel_requested {
        Outcome::Canceled
    } else if lease.failures.saturating_add(1) >= lease.max_attempts.max(crash_budget) {
        Outcome::Failed {
            error: format!(
                "{LOST} during {} attempt(s); not trying again",
                lease.attempt
            ),
        }
    } else {
        Outcome::Retry {
            error: LOST.to_owned(),
            run_at: Timestamp::now(),
        }
    };
    Completion {
        id: lease.id,
        attempt: lease.attempt,
        outcome,
    }
}
