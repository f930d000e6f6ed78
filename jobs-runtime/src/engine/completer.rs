//! The completion batcher: every outcome that arrives while a write is in flight goes in
//! the next write, so one store call carries many jobs whatever the number of workers.
//!
//! A write that fails for a passing reason (a dropped connection, a busy database) is
//! tried again with backoff while the attempts' leases hold; an outcome is given up only
//! once its lease is lost (the job then runs again elsewhere, which at-least-once allows),
//! and never silently. Events are built here from the store's answers.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Context;
use std::time::Duration;

use jobs_core::{Completed, Completion, JobEvent, JobStatus, Outcome, Timestamp};
use tokio::sync::Notify;

use super::running::{Claimed, Held};
use super::Inner;

/// An outcome on its way to the store, with the attempt's registry entry.
pub(crate) type Pending = (Completion, Held);

/// The batcher. Outcomes queue up while a write is in flight and all go in the next one.
/// There is no task of its own: whoever hands in an outcome while no write is in flight
/// starts the writing, inline when the store answers at once (memory), else as a task
/// that writes until the queue is empty.
#[derive(Default)]
pub(crate) struct Completer {
    state: Mutex<State>,
    idle: Notify,
}

#[derive(Default)]
struct State {
    completions: Vec<Completion>,
    held: Vec<Held>,
    writing: bool,
    // The buffers of the last write, kept for the next one: no allocation per write.
    spare: (Vec<Completion>, Vec<Held>),
}

impl Completer {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands in the outcome of an attempt.
    pub(crate) fn push(&self, inner: &Arc<Inner>, (completion, held): Pending) {
        held.finishing();
        let start = {
            let mut state = self.lock();
            state.completions.push(completion);
            state.held.push(held);
            !std::mem::replace(&mut state.writing, true)
        };
        if start {
            let engine = inner.clone();
            let mut writing: Pin<Box<dyn Future<Output = ()> + Send>> =
                Box::pin(async move { drain(&engine).await });
            let waker = std::task::Waker::noop();
            if writing
                .as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending()
            {
                tokio::spawn(writing);
            }
        }
    }

    /// Completes once every outcome handed in has been written (or given up).
    pub(crate) async fn until_idle(&self) {
        loop {
            let idle = self.idle.notified();
            {
                let state = self.lock();
                if !state.writing && state.completions.is_empty() {
                    return;
                }
            }
            idle.await;
        }
    }
}

/// Clears the writing flag if the writer ends abnormally (a panic in a store, say), so
/// later outcomes are not queued behind a writer that is gone.
struct Writing<'a> {
    completer: &'a Completer,
    armed: bool,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.completer.lock().writing = false;
            self.completer.idle.notify_waiters();
        }
    }
}

/// Writes queued outcomes, as many per call as have arrived, until none is left.
async fn drain(inner: &Inner) {
    let completer = &inner.completer;
    let mut writing = Writing {
        completer,
        armed: true,
    };
    let most = inner.config.completion_batch;
    loop {
        let (mut completions, mut held) = {
            let mut state = completer.lock();
            if state.completions.is_empty() {
                // Cleared under the lock that a push takes: no outcome is left behind.
                state.writing = false;
                writing.armed = false;
                drop(state);
                completer.idle.notify_waiters();
                return;
            }
            let (mut completions, mut held) = std::mem::take(&mut state.spare);
            if state.completions.len() <= most {
                std::mem::swap(&mut completions, &mut state.completions);
                std::mem::swap(&mut held, &mut state.held);
            } else {
                completions.extend(state.completions.drain(..most));
                held.extend(state.held.drain(..most));
            }
            (completions, held)
        };
        write_batch(inner, &mut completions, &mut held).await;
        completions.clear();
        held.clear();
        completer.lock().spare = (completions, held);
    }
}

/// Writes `pending` now, outside the batcher (claims given back, shutdown).
pub(crate) async fn write_direct(inner: &Inner, mut pending: Vec<Pending>) {
    write(inner, &mut pending).await;
}

/// Gives claimed jobs that never started back to the queue, as if never claimed.
pub(crate) async fn give_back(inner: &Inner, claimed: Vec<Claimed>) {
    if claimed.is_empty() {
        return;
    }
    let pending = claimed
        .into_iter()
        .map(|claimed| {
            let completion = Completion {
                id: claimed.job.id,
                attempt: claimed.job.attempt,
                outcome: Outcome::Release,
            };
            (completion, claimed.held)
        })
        .collect();
    write_direct(inner, pending).await;
}

/// Gives back one claimed attempt that never started and whose lease is lost by the local
/// clock (the process was paused): if the store still holds it for this engine, it goes
/// back to the queue without a lost lease counted against it; if not, nothing changes.
pub(crate) async fn release_unstarted(inner: &Inner, id: jobs_core::JobId, attempt: u32) {
    let release = Completion {
        id,
        attempt,
        outcome: Outcome::Release,
    };
    match inner
        .store
        .complete_many(&inner.holder, std::slice::from_ref(&release))
        .await
    {
        Ok(answers) => {
            if let Some(Completed::Applied(status)) = answers.first() {
                inner.announce(vec![event_of(&release, *status)]).await;
                inner.wake_lanes();
            }
        }
        Err(error) => {
            tracing::warn!(job.id = %id, %error, "could not give a claim back; it is rescued once its lease runs out")
        }
    }
    inner.registry.remove(id, attempt);
}

/// The longest wait between two tries of a failed write.
const MOST_BACKOFF: Duration = Duration::from_secs(1);

async fn write(inner: &Inner, pending: &mut Vec<Pending>) {
    let (mut completions, mut held): (Vec<Completion>, Vec<Held>) =
        std::mem::take(pending).into_iter().unzip();
    write_batch(inner, &mut completions, &mut held).await;
}

/// Writes the outcomes `completions` of the attempts `held`, retrying while that may help;
/// leaves both empty or with what is given up.
async fn write_batch(inner: &Inner, completions: &mut Vec<Completion>, held: &mut Vec<Held>) {
    let mut backoff = Duration::from_millis(10);
    // Whether a write failed for a passing reason: it may have committed all the same.
    let mut retried = false;
    loop {
        // An attempt whose lease is lost has a new holder, or soon will: its outcome would
        // be refused, and the job runs again.
        let mut at = 0;
        while at < held.len() {
            if held[at].lost() {
                let completion = completions.swap_remove(at);
                held.swap_remove(at);
                tracing::warn!(
                    job.id = %completion.id,
                    attempt = completion.attempt,
                    "the lease was lost before the outcome could be stored; the job runs again"
                );
                inner.registry.remove(completion.id, completion.attempt);
            } else {
                at += 1;
            }
        }
        if completions.is_empty() {
            return;
        }
        match inner
            .store
            .complete_many(&inner.holder, completions.as_slice())
            .await
        {
            Ok(answers) if answers.len() != completions.len() => {
                tracing::error!(
                    asked = completions.len(),
                    answered = answers.len(),
                    "the store answered a batch of outcomes with the wrong number of answers; \
                     those jobs run again once their leases run out"
                );
                for completion in completions.iter() {
                    inner.registry.remove(completion.id, completion.attempt);
                }
                completions.clear();
                held.clear();
                return;
            }
            Ok(answers) => {
                let refused = applied(inner, completions, held, answers, retried).await;
                if refused.is_empty() {
                    return;
                }
                (*completions, *held) = refused.into_iter().unzip();
            }
            Err(error) if error.is_transient() => {
                retried = true;
                tracing::warn!(%error, jobs = completions.len(), ?backoff, "could not store outcomes; trying again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MOST_BACKOFF);
            }
            Err(error) if completions.len() > 1 => {
                // Not a passing failure: write each alone, so one bad outcome fails alone.
                tracing::warn!(%error, "a batch of outcomes was refused; writing them one by one");
                for one in completions.drain(..).zip(held.drain(..)) {
                    Box::pin(write(inner, &mut vec![one])).await;
                }
                return;
            }
            Err(error) => {
                let completion = &completions[0];
                tracing::error!(
                    job.id = %completion.id,
                    %error,
                    "could not store the job's outcome; it runs again once its lease runs out"
                );
                inner.registry.remove(completion.id, completion.attempt);
                completions.clear();
                held.clear();
                return;
            }
        }
    }
}

/// Deals with the store's answers: events for what was applied, the registry cleared.
/// Returns the outcomes to write again as failures (the store refused them).
async fn applied(
    inner: &Inner,
    written: &mut Vec<Completion>,
    held: &mut Vec<Held>,
    answers: Vec<Completed>,
    retried: bool,
) -> Vec<Pending> {
    let announcing = inner.announcing();
    let signalling = inner.signalling();
    let mut events = Vec::new();
    let mut refused = Vec::new();
    let mut requeued = false;
    let mut unsure = Vec::new();
    for (at, answer) in answers.iter().enumerate() {
        let completion = &written[at];
        match answer {
            Completed::Applied(status) => {
                requeued |= *status == JobStatus::Queued;
                if announcing || (signalling && *status == JobStatus::Queued) {
                    events.push(event_of(completion, *status));
                }
            }
            Completed::Refused(reason) => match &completion.outcome {
                // The failure written for a refused outcome was refused too: give up
                // rather than try for ever (the entry is removed below).
                Outcome::Failed { error } if error.starts_with(REFUSED) => tracing::error!(
                    job.id = %completion.id,
                    %reason,
                    "the store refused the job's outcome and its failure; it runs again once its lease runs out"
                ),
                _ => {
                    let failed = Completion {
                        id: completion.id,
                        attempt: completion.attempt,
                        outcome: Outcome::Failed {
                            error: format!("{REFUSED}: {reason}"),
                        },
                    };
                    refused.push((failed, held[at].clone()));
                }
            },
            // After a failed try, "not held" may mean that try committed after all: say
            // what the job is now, so that nobody waits for an event that never comes.
            Completed::NotHeld if retried => unsure.push(completion.id),
            Completed::NotHeld => tracing::warn!(
                job.id = %completion.id,
                attempt = completion.attempt,
                "the job was moved by someone else; this attempt's outcome was not stored"
            ),
            _ => {}
        }
    }
    for id in unsure {
        if let Ok(Some(job)) = inner.store.get(id).await {
            if let Some(event) = state_of(&job) {
                requeued |= job.status == JobStatus::Queued;
                events.push(event);
            }
        }
    }
    inner.registry.remove_all(
        written
            .iter()
            .filter(|completion| !refused.iter().any(|(again, _)| again.id == completion.id))
            .map(|completion| (completion.id, completion.attempt)),
    );
    written.clear();
    held.clear();
    inner.announce(events).await;
    if requeued {
        inner.wake_lanes();
    }
    refused
}

/// How the failure written for a refused outcome begins.
const REFUSED: &str = "the job's outcome could not be stored";

/// The longest error text an event carries; the job has it whole.
const MAX_EVENT_TEXT_CHARS: usize = 500;

fn short(text: &str) -> String {
    text.chars().take(MAX_EVENT_TEXT_CHARS).collect()
}

/// The event that tells where `job` is now, after a write whose answer was lost: finished,
/// or back in the queue; `None` while it runs.
fn state_of(job: &jobs_core::Job) -> Option<JobEvent> {
    match job.status {
        status if status.is_terminal() => Some(JobEvent::Finished {
            id: job.id,
            status,
            error: job.error.as_deref().map(short),
        }),
        JobStatus::Queued => Some(JobEvent::Requeued {
            id: job.id,
            attempt: job.attempt,
            run_at: job.run_at,
            error: job.errors.last().map(|error| short(&error.message)),
        }),
        _ => None,
    }
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
