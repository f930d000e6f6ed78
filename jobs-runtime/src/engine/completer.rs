//! The completion batcher: every outcome that arrives while a write is in flight goes in
//! the next write, so one store call carries many jobs whatever the number of workers.
//!
//! A write that fails for a passing reason (a dropped connection, a busy database) is
//! tried again with backoff while the attempts' leases hold; an outcome is given up only
//! once its lease is lost (the job then runs again elsewhere, which at-least-once allows),
//! and never silently. Events are built here from the store's answers.

use std::sync::Arc;
use std::time::Duration;

use jobs_core::{Completed, Completion, JobEvent, JobStatus, Outcome, Timestamp};
use tokio::sync::mpsc;

use super::Inner;
use crate::engine::lane::Claimed;

/// Where workers send the outcomes of their attempts.
pub(crate) type CompletionSender = mpsc::UnboundedSender<Completion>;

/// Writes the outcomes it receives, as many per call as have arrived, until every sender
/// is gone.
pub(crate) async fn run(inner: Arc<Inner>, mut outcomes: mpsc::UnboundedReceiver<Completion>) {
    let mut batch = Vec::new();
    while let Some(first) = outcomes.recv().await {
        batch.push(first);
        while batch.len() < inner.config.completion_batch {
            match outcomes.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        write(&inner, &mut batch).await;
        batch.clear();
    }
}

/// Writes `completions` now, outside the batcher (claims given back, shutdown).
pub(crate) async fn write_direct(inner: &Inner, mut completions: Vec<Completion>) {
    write(inner, &mut completions).await;
}

/// Gives claimed jobs that never started back to the queue, as if never claimed.
pub(crate) async fn give_back(inner: &Inner, claimed: Vec<Claimed>) {
    if claimed.is_empty() {
        return;
    }
    let completions = claimed
        .into_iter()
        .map(|claimed| Completion {
            id: claimed.job.id,
            attempt: claimed.job.attempt,
            outcome: Outcome::Release,
        })
        .collect();
    write_direct(inner, completions).await;
}

/// The longest wait between two tries of a failed write.
const MOST_BACKOFF: Duration = Duration::from_secs(1);

async fn write(inner: &Inner, pending: &mut Vec<Completion>) {
    let mut backoff = Duration::from_millis(10);
    loop {
        // An attempt whose lease is lost has a new holder, or soon will: its outcome would
        // be refused, and the job runs again.
        pending.retain(|completion| {
            let held = inner.registry.get(completion.id);
            let keep = held
                .as_ref()
                .is_some_and(|held| held.attempt() == completion.attempt && !held.lost());
            if !keep {
                tracing::warn!(
                    job.id = %completion.id,
                    attempt = completion.attempt,
                    "the lease was lost before the outcome could be stored; the job runs again"
                );
                if held.is_some_and(|held| held.attempt() == completion.attempt) {
                    inner.registry.remove(completion.id, completion.attempt);
                }
            }
            keep
        });
        if pending.is_empty() {
            return;
        }
        match inner
            .store
            .complete_many(&inner.holder, pending.as_slice())
            .await
        {
            Ok(answers) => {
                let refused = applied(inner, pending, answers).await;
                if refused.is_empty() {
                    return;
                }
                *pending = refused;
            }
            Err(error) if error.is_transient() => {
                tracing::warn!(%error, jobs = pending.len(), ?backoff, "could not store outcomes; trying again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MOST_BACKOFF);
            }
            Err(error) if pending.len() > 1 => {
                // Not a passing failure: write each alone, so one bad outcome fails alone.
                tracing::warn!(%error, "a batch of outcomes was refused; writing them one by one");
                for completion in std::mem::take(pending) {
                    Box::pin(write(inner, &mut vec![completion])).await;
                }
                return;
            }
            Err(error) => {
                let completion = &pending[0];
                tracing::error!(
                    job.id = %completion.id,
                    %error,
                    "could not store the job's outcome; it runs again once its lease runs out"
                );
                inner.registry.remove(completion.id, completion.attempt);
                return;
            }
        }
    }
}

/// Deals with the store's answers: events for what was applied, the registry cleared.
/// Returns the completions to write again as failures (their outcome was refused).
async fn applied(
    inner: &Inner,
    written: &[Completion],
    answers: Vec<Completed>,
) -> Vec<Completion> {
    let announcing = inner.announcing();
    let mut events = Vec::new();
    let mut refused = Vec::new();
    let mut requeued = false;
    for (completion, answer) in written.iter().zip(answers) {
        match answer {
            Completed::Applied(status) => {
                requeued |= status == JobStatus::Queued;
                if announcing || status == JobStatus::Queued {
                    events.push(event_of(completion, status));
                }
            }
            Completed::NotHeld => tracing::warn!(
                job.id = %completion.id,
                attempt = completion.attempt,
                "the job was moved by someone else; this attempt's outcome was not stored"
            ),
            Completed::Refused(reason) => {
                refused.push(Completion {
                    id: completion.id,
                    attempt: completion.attempt,
                    outcome: Outcome::Failed {
                        error: format!("the job's outcome could not be stored: {reason}"),
                    },
                });
                continue;
            }
            _ => {}
        }
    }
    inner.registry.remove_all(
        written
            .iter()
            .filter(|c| !refused.iter().any(|r| r.id == c.id))
            .map(|c| (c.id, c.attempt)),
    );
    inner.announce(events).await;
    if requeued {
        inner.wake_lanes();
    }
    refused
}

/// The longest error text an event carries; the job has it whole.
const MAX_EVENT_TEXT_CHARS: usize = 500;

fn short(text: &str) -> String {
    text.chars().take(MAX_EVENT_TEXT_CHARS).collect()
}

/// The event announcing that `completion` was applied and left its job in `status`.
pub(crate) fn event_of(completion: &Completion, status: JobStatus) -> JobEvent {
    if status != JobStatus::Queued {
        return JobEvent::Finished {
            id: completion.id,
            status,
            error: match (&completion.outcome, status) {
                (Outcome::Failed { error }, JobStatus::Failed) => Some(short(error)),
                _ => None,
            },
        };
    }
    let (attempt, run_at, error) = match &completion.outcome {
        Outcome::Retry { error, run_at } => (completion.attempt, *run_at, Some(short(error))),
        Outcome::Snooze { run_at } => (completion.attempt, *run_at, None),
        _ => (completion.attempt.saturating_sub(1), Timestamp::now(), None),
    };
    JobEvent::Requeued {
        id: completion.id,
        attempt,
        run_at,
        error,
    }
}
