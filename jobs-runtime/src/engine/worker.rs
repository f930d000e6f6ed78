//! A worker: takes claimed jobs from its lane, runs their executors, decides their
//! outcomes from their policy, and hands the outcomes to the completion batcher.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use jobs_core::{
    BoxFuture, ClaimedJob, Completion, ErrorKind, JobContext, JobEvent, JobStatus, Outcome,
    ProgressAck, ProgressReceiver, StorageError,
};
use tokio::time::Instant;
use tracing::Instrument;

use super::lane::{later, Lane, Next};
use super::running::{Claimed, Held, StopReason};
use super::Inner;
use crate::panic::{panic_message, CatchUnwind};

/// Runs the jobs of `lane` one at a time until the lane closes.
pub(crate) async fn work(inner: Arc<Inner>, lane: Arc<Lane>) {
    loop {
        match lane.next(&inner).await {
            Next::Job(claimed) => run(&inner, claimed).await,
            Next::Closed => return,
        }
    }
}

async fn run(inner: &Arc<Inner>, claimed: Claimed) {
    let Claimed { job, held, .. } = claimed;
    let (id, attempt) = (job.id, job.attempt);
    if held.lost() {
        // Claimed ahead, then the lease ran out by the local clock (a paused process):
        // give it back if the store still holds it here, else another holder has it.
        super::completer::release_unstarted(inner, id, attempt).await;
        return;
    }
    let outcome = if held.canceled() {
        // Canceled while it waited in the buffer: it never starts.
        Some(Outcome::Canceled)
    } else {
        execute(inner, job, &held).await
    };
    match outcome {
        Some(outcome) => {
            let completion = Completion {
                id,
                attempt,
                outcome,
            };
            inner.completer.push(inner, (completion, held));
        }
        None => {
            tracing::warn!(job.id = %id, attempt, "the lease was lost while the job ran; its outcome is discarded");
            inner.registry.remove(id, attempt);
        }
    }
}

/// Runs the executor of `job` and decides what becomes of the attempt.
async fn execute(inner: &Inner, job: ClaimedJob, held: &Held) -> Option<Outcome> {
    let (id, attempt) = (job.id, job.attempt);
    let span = tracing::info_span!(
        "job",
        job.id = %id,
        job.r#type = %job.job_type,
        job.attempt = attempt,
        trace_parent = tracing::field::Empty,
    );
    // Without a subscriber that wants it, a span still costs its bookkeeping on every poll.
    let span = if span.is_disabled() {
        tracing::Span::none()
    } else {
        if let Some(parent) = job.trace_parent {
            span.record("trace_parent", tracing::field::display(parent));
            crate::trace::continue_in(&span, parent);
        }
        span
    };
    let Some(entry) = inner.catalog.get(&job.job_type) else {
        return Some(Outcome::Failed {
            error: format!(
                "no executor for job type `{}` is registered in this process",
                job.job_type
            ),
        });
    };
    let executor = entry.executor().clone();
    // User code (a hand-written executor): a panic here fails the job like one in `execute`.
    let policy = match catch_unwind(AssertUnwindSafe(|| executor.policy())) {
        Ok(policy) => policy,
        Err(payload) => {
            return Some(Outcome::Failed {
                error: format!("the executor panicked: {}", panic_message(payload.as_ref())),
            })
        }
    };
    let may_retry = job.may_retry();
    let failures = job.failures + 1;
    let timeout = job.timeout_ms.map(Duration::from_millis);
    let (ctx, progress) = JobContext::with_lease(
        id,
        job.job_type,
        attempt,
        job.payload,
        held.token().clone(),
        Some(held.as_lease()),
    );
    let started = std::time::Instant::now();
    // `execute` itself may panic before it returns a future (a hand-written executor, a
    // panicking `Deserialize`): catch that too.
    let driven = match catch_unwind(AssertUnwindSafe(|| executor.execute(ctx))) {
        Ok(future) => {
            let execution = CatchUnwind::new(future).instrument(span.clone());
            drive(inner, id, attempt, held, execution, &progress, timeout).await
        }
        Err(payload) => Driven::Ended(Err(panic_message(payload.as_ref()))),
    };
    // The last report, if it came after the last write.
    if let Some(report) = progress.take() {
        let ack = inner
            .store
            .update_progress(id, attempt, report.clone())
            .await;
        handle_ack(inner, id, held, ack, report).await;
    }
    let _enter = span.enter();
    let failed = |error: String| {
        if may_retry {
            Outcome::Retry {
                error,
                run_at: later(policy.backoff.delay(failures)),
            }
        } else {
            Outcome::Failed { error }
        }
    };
    let timed_out = || match timeout {
        Some(timeout) => format!("timed out after {timeout:?}"),
        None => "timed out".to_owned(),
    };
    let reason = held.reason();
    let outcome = match driven {
        _ if held.lost() => return None,
        Driven::Abandoned if held.canceled() => Outcome::Canceled,
        Driven::Abandoned => failed(format!(
            "{}; abandoned after it did not stop within {:?} of being told",
            timed_out(),
            inner.config.timeout_grace
        )),
        Driven::Ended(Ok(Ok(result))) => Outcome::Succeeded { result },
        Driven::Ended(Ok(Err(_))) if held.canceled() => Outcome::Canceled,
        Driven::Ended(Ok(Err(_))) if reason == StopReason::TimedOut => failed(timed_out()),
        // Interrupted by a shutdown: back to the queue at once, no failure counted (as a
        // crash would, but without waiting for the lease to run out).
        Driven::Ended(Ok(Err(_))) if reason == StopReason::Shutdown => Outcome::Snooze {
            run_at: jobs_core::Timestamp::now(),
        },
        Driven::Ended(Ok(Err(error))) => match error.kind() {
            ErrorKind::Permanent => Outcome::Failed {
                error: error.message().to_owned(),
            },
            ErrorKind::Snooze(wait) => Outcome::Snooze {
                run_at: later(wait.min(LONGEST_WAIT)),
            },
            _ => failed(error.message().to_owned()),
        },
        Driven::Ended(Err(panic)) => failed(format!("the executor panicked: {panic}")),
    };
    let elapsed = started.elapsed();
    // A retried attempt failed; a snooze is no outcome.
    let recorded = match &outcome {
        Outcome::Retry { .. } => JobStatus::Failed,
        other => other.status(),
    };
    if !matches!(outcome, Outcome::Snooze { .. }) {
        entry.stats().record(recorded, elapsed);
    }
    tracing::debug!(status = %recorded, elapsed_us = elapsed.as_micros() as u64, "attempt ended");
    Some(outcome)
}

/// The longest a snooze waits.
const LONGEST_WAIT: Duration = Duration::from_secs(366 * 86_400);

/// How a drive ended.
enum Driven<T> {
    /// The execution returned.
    Ended(T),
    /// It did not stop within its grace period after its token fired (past its time
    /// limit, or after its lease was lost); it was dropped.
    Abandoned,
}

/// Polls the execution to its end while storing its progress at most once per
/// `progress_interval`, fires its token when its time limit passes or the service gives
/// up waiting on it, and drops it when it does not stop in time after a time limit or a
/// lost lease.
///
/// A progress write runs next to the execution, never in its way: a slow store delays the
/// next write, not the job.
async fn drive<F: std::future::Future + Unpin>(
    inner: &Inner,
    id: jobs_core::JobId,
    attempt: u32,
    held: &Held,
    mut execution: F,
    progress: &ProgressReceiver,
    timeout: Option<Duration>,
) -> Driven<F::Output> {
    let interval = inner.config.progress_interval;
    let grace = inner.config.timeout_grace;
    // The first report is stored at once; the timer exists from the first write on and is
    // reset, not remade, after each one.
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut pending = false;
    type Write<'w> = BoxFuture<'w, (Result<ProgressAck, StorageError>, jobs_core::Progress)>;
    let mut write: Option<Write<'_>> = None;
    // Made once: a fresh `cancelled()` future per turn of the loop would register anew.
    let abandon = inner.abandon.cancelled();
    tokio::pin!(abandon);
    // Notified when the lease is lost, whatever fired the token before.
    let lost_notice = held.until_lost();
    tokio::pin!(lost_notice);
    let mut timed_out = false;
    // The time limit: when it passes the token fires; when the grace after it passes too,
    // the execution is dropped.
    let mut limit: Option<Pin<Box<tokio::time::Sleep>>> =
        timeout.map(|timeout| Box::pin(tokio::time::sleep(timeout)));
    // Started when the lease is lost: the execution is dropped when it passes.
    let mut lost: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let output = loop {
        tokio::select! {
            biased;
            output = &mut execution => break Driven::Ended(output),
            _ = elapsed(&mut limit), if limit.is_some() => {
                if timed_out {
                    break Driven::Abandoned;
                }
                timed_out = true;
                held.stop(StopReason::TimedOut);
                if let Some(limit) = limit.as_mut() {
                    limit.as_mut().reset(Instant::now() + grace);
                }
            }
            _ = elapsed(&mut lost), if lost.is_some() => break Driven::Abandoned,
            _ = &mut lost_notice, if lost.is_none() => {
                // Another holder may run the job now: this copy must not go on.
                lost = Some(Box::pin(tokio::time::sleep(grace)));
            }
            answer = async { write.as_mut().expect("guarded by the condition").await }, if write.is_some() => {
                write = None;
                let (ack, report) = answer;
                handle_ack(inner, id, held, ack, report).await;
            }
            _ = progress.changed(), if !pending => pending = true,
            _ = elapsed(&mut timer), if pending && write.is_none() => {
                pending = false;
                if let Some(report) = progress.take() {
                    let store = &inner.store;
                    write = Some(Box::pin(async move {
                        (store.update_progress(id, attempt, report.clone()).await, report)
                    }));
                    let next = Instant::now() + interval;
                    match timer.as_mut() {
                        Some(timer) => timer.as_mut().reset(next),
                        None => timer = Some(Box::pin(tokio::time::sleep_until(next))),
                    }
                }
            }
            _ = &mut abandon, if !held.token().is_cancelled() => held.stop(StopReason::Shutdown),
        }
    };
    if let Some(write) = write {
        let (ack, report) = write.await;
        handle_ack(inner, id, held, ack, report).await;
    }
    output
}

/// Completes when `timer` has elapsed, or at once when there is none yet.
async fn elapsed(timer: &mut Option<Pin<Box<tokio::time::Sleep>>>) {
    if let Some(timer) = timer {
        timer.as_mut().await;
    }
}

/// A stored report also tells whether a cancel was requested (the worker learns of it even
/// if the cancel's signal passed it by), and whether the attempt is still the job's.
async fn handle_ack(
    inner: &Inner,
    id: jobs_core::JobId,
    held: &Held,
    ack: Result<ProgressAck, StorageError>,
    progress: jobs_core::Progress,
) {
    match ack {
        Ok(ProgressAck::Stored { cancel_requested }) => {
            if cancel_requested && !held.canceled() {
                held.stop(StopReason::Canceled);
            }
            if inner.announcing() {
                inner
                    .announce(vec![JobEvent::Progress { id, progress }])
                    .await;
            }
        }
        Ok(ProgressAck::NotRunning) => held.stop(StopReason::LeaseLost),
        Ok(_) => {}
        Err(error) => tracing::warn!(job.id = %id, %error, "could not store progress"),
    }
}

/// Gives back the jobs whose workers were aborted at shutdown (they did not stop within
/// the grace periods): back to the queue at once, no failure counted.
pub(crate) async fn requeue_abandoned(inner: &Inner) {
    let abandoned: Vec<_> = inner
        .registry
        .snapshot()
        .into_iter()
        .filter(|(_, held)| !held.is_finishing())
        .map(|(lease, held)| {
            let completion = Completion {
                id: lease.id,
                attempt: lease.attempt,
                outcome: Outcome::Snooze {
                    run_at: jobs_core::Timestamp::now(),
                },
            };
            (completion, held)
        })
        .collect();
    if !abandoned.is_empty() {
        tracing::warn!(
            jobs = abandoned.len(),
            "jobs did not stop within the shutdown grace period; they go back to the queue"
        );
        super::completer::write_direct(inner, abandoned).await;
    }
}
