//! Events that describe what happens to jobs.

use serde::{Deserialize, Serialize};

use crate::{JobId, JobStatus, Progress, Timestamp};

/// Something that happened to a job. The engine builds these from what the store answered
/// and publishes them once the change is stored, through the store's notifications, so a
/// subscriber sees the changes of every process that shares the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "camelCase")]
#[non_exhaustive]
pub enum JobEvent {
    /// A job was stored: queued, or waiting for its parents.
    #[serde(rename_all = "camelCase")]
    Submitted {
        /// The job.
        id: JobId,
        /// Its type.
        job_type: String,
    },
    /// A waiting job's parents ended as it needs: it is queued now (with their results as
    /// its arguments, if it takes them). Sent by the store, with the change that caused it.
    #[serde(rename_all = "camelCase")]
    Released {
        /// The job.
        id: JobId,
    },
    /// A worker started an attempt.
    #[serde(rename_all = "camelCase")]
    Started {
        /// The job.
        id: JobId,
        /// The attempt number, from 1.
        attempt: u32,
    },
    /// New progress was stored (reports are coalesced, so not every call shows up).
    #[serde(rename_all = "camelCase")]
    Progress {
        /// The job.
        id: JobId,
        /// The progress now stored.
        progress: Progress,
    },
    /// A cancel was requested for a running job; its worker is being told.
    #[serde(rename_all = "camelCase")]
    CancelRequested {
        /// The job.
        id: JobId,
    },
    /// A running job went back to the queue: a failed attempt to be tried again (with
    /// its error), or a snooze (without one). It waits until `run_at`.
    #[serde(rename_all = "camelCase")]
    Requeued {
        /// The job.
        id: JobId,
        /// The attempt that ended.
        attempt: u32,
        /// When the next attempt may start.
        run_at: Timestamp,
        /// The failed attempt's error; `None` for a snooze.
        error: Option<String>,
    },
    /// A `Failed` or `Canceled` job was queued again by an operator's retry.
    #[serde(rename_all = "camelCase")]
    Retried {
        /// The job.
        id: JobId,
        /// Its type.
        job_type: String,
    },
    /// A finished job was deleted with its result.
    #[serde(rename_all = "camelCase")]
    Deleted {
        /// The job.
        id: JobId,
    },
    /// The job reached a terminal state.
    #[serde(rename_all = "camelCase")]
    Finished {
        /// The job.
        id: JobId,
        /// `Succeeded`, `Failed` or `Canceled`.
        status: JobStatus,
        /// The error message of a failed job.
        error: Option<String>,
    },
    /// A queue was paused: its queued jobs wait, in every process, until it is resumed.
    #[serde(rename_all = "camelCase")]
    QueuePaused {
        /// The queue.
        queue: String,
    },
    /// A paused queue was resumed.
    #[serde(rename_all = "camelCase")]
    QueueResumed {
        /// The queue.
        queue: String,
    },
    /// Events may have been missed (the store's notifications were interrupted, a
    /// connection was lost and came back): read the jobs again rather than trust what the
    /// events said so far. Sent by the store's listener, never stored.
    Resync,
}

impl JobEvent {
    /// The job the event is about; `None` for an event about a queue.
    pub fn job_id(&self) -> Option<JobId> {
        Some(match self {
            JobEvent::Submitted { id, .. }
            | JobEvent::Released { id }
            | JobEvent::Started { id, .. }
            | JobEvent::Progress { id, .. }
            | JobEvent::CancelRequested { id }
            | JobEvent::Requeued { id, .. }
            | JobEvent::Retried { id, .. }
            | JobEvent::Deleted { id }
            | JobEvent::Finished { id, .. } => *id,
            JobEvent::QueuePaused { .. } | JobEvent::QueueResumed { .. } | JobEvent::Resync => {
                return None
            }
        })
    }
}
