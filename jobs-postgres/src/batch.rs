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

use jobs_core::{CancellationToken, Job, JobId, JobStatus, StorageError};
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

/// The most finishes written in one statement.
const MAX_FINISHES: usize = 500;

/// Writes queued finishes, all that are waiting at once, until `stop` fires and the queue
/// is empty.
pub(crate) async fn write_finishes(
    pool: PgPool,
    sql: String,
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

async fn write(pool: &PgPool, sql: &str, batch: Vec<Finish>) {
    let ids: Vec<uuid::Uuid> = batch.iter().map(|f| *f.id.as_uuid()).collect();
    let attempts: Vec<i32> = batch.iter().map(|f| f.attempt as i32).collect();
    let statuses: Vec<&str> = batch.iter().map(|f| f.status.as_str()).collect();
    let errors: Vec<Option<&str>> = batch.iter().map(|f| f.error.as_deref()).collect();
    let results: Vec<Option<Json<&Value>>> =
        batch.iter().map(|f| f.result.as_ref().map(Json)).collect();
    let written = sqlx::query(sql)
        .bind(ids)
        .bind(attempts)
        .bind(statuses)
        .bind(errors)
        .bind(results)
        .fetch_all(pool)
        .await;
    match written {
        Ok(rows) => {
            let mut applied: HashMap<JobId, Result<Job, StorageError>> = HashMap::new();
            for row in rows {
                let job = job_from_row(&row);
                let id = match &job {
                    Ok(job) => job.id,
                    Err(_) => continue,
                };
                applied.insert(id, job);
            }
            for finish in batch {
                let answer = applied.remove(&finish.id).transpose();
                let _ = finish.reply.send(answer);
            }
        }
        Err(error) => {
            let message = format!("could not store the jobs' outcomes: {error}");
            for finish in batch {
                let _ = finish.reply.send(Err(StorageError::new(message.clone())));
            }
        }
    }
}

/// The sending side, shared by the backend's callers.
pub(crate) type FinishQueue = Arc<mpsc::UnboundedSender<Finish>>;
