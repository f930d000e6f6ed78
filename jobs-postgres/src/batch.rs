//! Batching of the two statements every job costs: the claim and the finish.
//!
//! Claims: one dequeuer at a time claims as many jobs as there are idle workers waiting
//! (up to a cap) and leaves them in a local buffer that the others take from. Finishes:
//! a writer task takes every finish queued while its previous write was in flight and
//! writes them in one statement, so under load a commit carries many jobs while a lone
//! finish is written at once.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use jobs_core::{CancellationToken, Job, JobEvent, JobId, JobStatus, StorageError};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use crate::backend::job_from_row;

/// Jobs claimed for this backend's workers and not handed out yet.
#[derive(Default)]
pub(crate) struct ClaimBuffer {
    jobs: Mutex<VecDeque<Job>>,
    /// How many dequeuers are waiting: the size of the next claim.
    pub(crate) waiting: AtomicUsize,
}

impl ClaimBuffer {
    pub(crate) fn pop(&self) -> Option<Job> {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }

    pub(crate) fn push_all(&self, jobs: Vec<Job>) {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(jobs);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    pub(crate) fn drain(&self) -> Vec<Job> {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect()
    }
}

/// Counts a dequeuer as waiting for as long as it lives.
pub(crate) struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    pub(crate) fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Self(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One finish to write: `Running` at `attempt` → `status`.
pub(crate) struct Finish {
    pub(crate) id: JobId,
    pub(crate) attempt: u32,
    pub(crate) status: JobStatus,
    pub(crate) error: Option<String>,
    pub(crate) result: Option<Value>,
    /// The job as stored if the change was made; `None` if the job was not `Running` at
    /// that attempt.
    pub(crate) reply: oneshot::Sender<Result<Option<Job>, StorageError>>,
}

/// The largest notification payload sent (PostgreSQL refuses 8,000 bytes and more).
const MAX_NOTIFICATION_BYTES: usize = 7_500;

/// The longest error message an event carries; `get_job` has it whole.
const MAX_EVENT_TEXT_CHARS: usize = 500;

/// The event of a job a batch statement changed: `started` after a claim, `finished`
/// after a finish.
pub(crate) fn event_of(job: &Job) -> JobEvent {
    if job.status == JobStatus::Running {
        JobEvent::Started {
            id: job.id,
            attempt: job.attempt,
        }
    } else {
        JobEvent::Finished {
            id: job.id,
            status: job.status,
            error: job
                .error
                .as_ref()
                .map(|error| error.chars().take(MAX_EVENT_TEXT_CHARS).collect()),
        }
    }
}

/// Announces `events` on the backend's channel, as JSON arrays of at most
/// `MAX_NOTIFICATION_BYTES` each. The changes are committed already: a failure here only
/// costs listeners the events (workers poll, waiters re-read), so it is logged.
pub(crate) async fn announce(pool: &PgPool, notify_sql: &str, events: &[JobEvent]) {
    for payload in payloads(events) {
        if let Err(error) = sqlx::query(notify_sql).bind(&payload).execute(pool).await {
            tracing::warn!(%error, "could not announce job events");
        }
    }
}

/// The events as JSON arrays that each fit in a notification.
fn payloads(events: &[JobEvent]) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = String::from("[");
    for event in events {
        let Ok(json) = serde_json::to_string(event) else {
            continue;
        };
        if current.len() > 1 && current.len() + json.len() + 2 > MAX_NOTIFICATION_BYTES {
            current.push(']');
            payloads.push(std::mem::replace(&mut current, String::from("[")));
        }
        if current.len() > 1 {
            current.push(',');
        }
        current.push_str(&json);
    }
    if current.len() > 1 {
        current.push(']');
        payloads.push(current);
    }
    payloads
}

/// The most finishes written in one statement.
const MAX_FINISHES: usize = 500;

/// Writes queued finishes, all that are waiting at once, until `stop` fires and the queue
/// is empty.
pub(crate) async fn write_finishes(
    pool: PgPool,
    sql: FinishSql,
    mut queue: mpsc::UnboundedReceiver<Finish>,
    stop: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            biased;
            finish = queue.recv() => match finish {
                Some(finish) => finish,
                None => return,
            },
            _ = stop.cancelled() => return,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_FINISHES {
            match queue.try_recv() {
                Ok(finish) => batch.push(finish),
                Err(_) => break,
            }
        }
        write(&pool, &sql, batch).await;
    }
}

/// The statements of the finish writer.
pub(crate) struct FinishSql {
    /// Writes many finishes.
    pub(crate) finish_many: String,
    /// Announces events.
    pub(crate) notify: String,
}

/// Writes a batch; if the statement fails, writes each finish on its own, so that one
/// bad row (one the database refuses) cannot fail the others.
async fn write(pool: &PgPool, sql: &FinishSql, batch: Vec<Finish>) {
    // One finish per job in a statement: a second one for the same job (an abandoned
    // attempt's failure racing its own success at shutdown) is answered "not applied".
    let mut seen = std::collections::HashSet::new();
    let (batch, repeated): (Vec<Finish>, Vec<Finish>) =
        batch.into_iter().partition(|finish| seen.insert(finish.id));
    for finish in repeated {
        let _ = finish.reply.send(Ok(None));
    }
    match write_once(pool, sql, &batch).await {
        Ok(mut applied) => {
            for finish in batch {
                let _ = finish.reply.send(applied.remove(&finish.id).transpose());
            }
        }
        // The database refused the statement (a value it cannot store): write each finish
        // on its own, so the bad one fails alone.
        Err(sqlx::Error::Database(_)) if batch.len() > 1 => {
            for finish in batch {
                let answer = write_once(pool, sql, std::slice::from_ref(&finish))
                    .await
                    .map_err(outcome_error)
                    .and_then(|mut applied| applied.remove(&finish.id).transpose());
                let _ = finish.reply.send(answer);
            }
        }
        // Anything else (the connection, a timeout) would fail each row the same way.
        Err(error) => {
            let message = outcome_error(error).to_string();
            for finish in batch {
                let _ = finish.reply.send(Err(StorageError::new(message.clone())));
            }
        }
    }
}

fn outcome_error(error: sqlx::Error) -> StorageError {
    StorageError::with_source(
        format!("could not store the jobs' outcomes: {error}"),
        error,
    )
}

async fn write_once(
    pool: &PgPool,
    sql: &FinishSql,
    batch: &[Finish],
) -> Result<HashMap<JobId, Result<Job, StorageError>>, sqlx::Error> {
    let ids: Vec<uuid::Uuid> = batch.iter().map(|f| *f.id.as_uuid()).collect();
    let attempts: Vec<i32> = batch.iter().map(|f| f.attempt as i32).collect();
    let statuses: Vec<&str> = batch.iter().map(|f| f.status.as_str()).collect();
    let errors: Vec<Option<&str>> = batch.iter().map(|f| f.error.as_deref()).collect();
    let results: Vec<Option<Json<&Value>>> =
        batch.iter().map(|f| f.result.as_ref().map(Json)).collect();
    let rows = sqlx::query(&sql.finish_many)
        .bind(ids)
        .bind(attempts)
        .bind(statuses)
        .bind(errors)
        .bind(results)
        .fetch_all(pool)
        .await?;
    let jobs: Vec<Job> = rows
        .iter()
        .filter_map(|row| job_from_row(row).ok())
        .collect();
    let events: Vec<JobEvent> = jobs.iter().map(event_of).collect();
    announce(pool, &sql.notify, &events).await;
    Ok(jobs.into_iter().map(|job| (job.id, Ok(job))).collect())
}

/// Whether any string in `value` (keys included) holds a NUL character, which PostgreSQL
/// cannot store in `text` or `jsonb`.
pub(crate) fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map
            .iter()
            .any(|(key, item)| key.contains('\0') || contains_nul(item)),
        _ => false,
    }
}

/// `text` with NUL characters (which PostgreSQL cannot store) replaced.
pub(crate) fn without_nul(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{fffd}")
    } else {
        text
    }
}

/// The sending side, shared by the backend's callers.
pub(crate) type FinishQueue = Arc<mpsc::UnboundedSender<Finish>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_into_payloads_under_the_limit() {
        // 300 failures with the longest messages an event carries (500 three-byte chars).
        let events: Vec<JobEvent> = (0..300)
            .map(|_| {
                let mut job = Job::new("T", Value::Null);
                job.status = JobStatus::Failed;
                job.error = Some("€".repeat(2_000));
                event_of(&job)
            })
            .collect();
        let split = payloads(&events);
        assert!(split.len() > 1);
        let mut parsed = 0;
        for payload in &split {
            assert!(
                payload.len() <= MAX_NOTIFICATION_BYTES,
                "{} bytes",
                payload.len()
            );
            let batch: Vec<JobEvent> = serde_json::from_str(payload).unwrap();
            for event in &batch {
                let JobEvent::Finished {
                    error: Some(error), ..
                } = event
                else {
                    panic!("a finished event with its error");
                };
                assert_eq!(error.chars().count(), MAX_EVENT_TEXT_CHARS);
            }
            parsed += batch.len();
        }
        assert_eq!(parsed, 300, "every event, once");
        assert!(
            payloads(&[]).is_empty(),
            "nothing to announce, no notification"
        );
    }
}
