//! Job metadata and the transitions applied to it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{AttemptError, JobId, JobStatus, Timestamp};

/// How far a running job has got, as reported by its executor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Percent done, 0 to 100.
    pub percent: u8,
    /// What the job is doing now (may be empty).
    pub message: String,
}

impl Progress {
    /// A progress report; `percent` above 100 is clamped to 100.
    pub fn new(percent: u8, message: impl Into<String>) -> Self {
        Self {
            percent: percent.min(100),
            message: message.into(),
        }
    }
}

/// Everything known about a job except its result, which is stored apart (fetch it with
/// the service's `get_job_result` once the job has [`JobStatus::Succeeded`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Job {
    /// The job's identifier.
    pub id: JobId,
    /// The job type, naming the executor that runs it.
    pub job_type: String,
    /// Where the job is in its life.
    pub status: JobStatus,
    /// The arguments it was submitted with (`null` when it takes none).
    pub payload: Value,
    /// The latest progress its executor reported, if any.
    pub progress: Option<Progress>,
    /// The error message of a [`JobStatus::Failed`] job.
    pub error: Option<String>,
    /// How many times execution has started (0 while it has never run).
    pub attempt: u32,
    /// Whether a cancel was requested while the job was running.
    pub cancel_requested: bool,
    /// When it was submitted.
    pub created_at: Timestamp,
    /// When its latest execution started.
    pub started_at: Option<Timestamp>,
    /// When it reached a terminal state.
    pub finished_at: Option<Timestamp>,
    /// Not started before this time: the submit time, a requested later time, or the end
    /// of a retry's backoff. A `Queued` job with a future `run_at` is scheduled.
    pub run_at: Timestamp,
    /// Among jobs that are due, higher runs first.
    #[serde(default)]
    pub priority: i16,
    /// How many attempts may fail before the job is `Failed`: 1 + its retries.
    #[serde(default = "one")]
    pub max_attempts: u32,
    /// How long one attempt may run, in milliseconds; `None` is no limit.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// The error of every failed attempt, oldest first.
    #[serde(default)]
    pub errors: Vec<AttemptError>,
    /// While this job is `Queued` or `Running`, a submission of its type with the same key
    /// gets this job instead of a new one.
    #[serde(default)]
    pub unique_key: Option<String>,
    /// The named queue it waits in; only workers of that queue run it.
    #[serde(default = "default_queue")]
    pub queue: String,
}

fn default_queue() -> String {
    Job::DEFAULT_QUEUE.to_owned()
}

fn one() -> u32 {
    1
}

impl Job {
    /// The queue of jobs that name none, served by the service's main pool of workers.
    pub const DEFAULT_QUEUE: &'static str = "default";

    /// A new [`JobStatus::Queued`] job with a fresh id.
    pub fn new(job_type: impl Into<String>, payload: Value) -> Self {
        let now = Timestamp::now();
        Self::queued(JobId::at(now), job_type, payload, now)
    }

    /// A [`JobStatus::Queued`] job with the given identity, as a backend rebuilds one from
    /// storage before setting the other fields.
    pub fn queued(
        id: JobId,
        job_type: impl Into<String>,
        payload: Value,
        created_at: Timestamp,
    ) -> Self {
        Self {
            id,
            job_type: job_type.into(),
            status: JobStatus::Queued,
            payload,
            progress: None,
            error: None,
            attempt: 0,
            cancel_requested: false,
            created_at,
            started_at: None,
            finished_at: None,
            run_at: created_at,
            priority: 0,
            max_attempts: 1,
            timeout_ms: None,
            errors: Vec::new(),
            unique_key: None,
            queue: default_queue(),
        }
    }

    /// Whether another attempt may follow a failure of the current one.
    pub fn may_retry(&self) -> bool {
        // The failure being decided on is not in `errors` yet.
        (self.errors.len() as u32).saturating_add(1) < self.max_attempts
    }

    /// Applies `transition` if the job is in the `expected` status and attempt.
    ///
    /// This is the compare-and-set every repository performs, written once: it checks the
    /// expectation and the status rule, then updates status, attempt, timestamps and error.
    /// The result of a [`Transition::Succeed`] is *not* stored on the job; the repository
    /// keeps it apart.
    ///
    /// ```
    /// use jobs_core::{Expected, Job, JobStatus, Transition, TransitionError};
    ///
    /// let mut job = Job::new("Export", serde_json::Value::Null);
    /// job.apply(Expected::new(JobStatus::Queued, 0), &Transition::Start).unwrap();
    /// assert_eq!((job.status, job.attempt), (JobStatus::Running, 1));
    ///
    /// // A stale expectation changes nothing.
    /// let err = job.apply(Expected::new(JobStatus::Queued, 0), &Transition::Cancel).unwrap_err();
    /// assert_eq!(err, TransitionError::Conflict { current: JobStatus::Running, attempt: 1 });
    /// ```
    pub fn apply(
        &mut self,
        expected: Expected,
        transition: &Transition,
    ) -> Result<(), TransitionError> {
        if self.status != expected.status || expected.attempt.is_some_and(|a| a != self.attempt) {
            return Err(TransitionError::Conflict {
                current: self.status,
                attempt: self.attempt,
            });
        }
        // A job asked to stop does not go back to the queue: a retry or a snooze of it
        // ends it `Canceled`.
        let requeue = matches!(
            transition,
            Transition::Retry { .. } | Transition::Snooze { .. }
        );
        let target = if requeue && self.cancel_requested {
            JobStatus::Canceled
        } else {
            transition.target()
        };
        if !self.status.can_transition_to(target) {
            return Err(TransitionError::NotAllowed {
                from: self.status,
                to: target,
            });
        }
        let now = Timestamp::now();
        self.status = target;
        match transition {
            Transition::Start => {
                self.attempt += 1;
                self.started_at = Some(now);
            }
            Transition::Succeed { .. } | Transition::Cancel => self.finished_at = Some(now),
            Transition::Fail { error } => {
                self.errors.push(AttemptError {
                    attempt: self.attempt,
                    message: error.clone(),
                    at: now,
                });
                self.error = Some(error.clone());
                self.finished_at = Some(now);
            }
            Transition::Retry { error, .. } if target == JobStatus::Canceled => {
                self.errors.push(AttemptError {
                    attempt: self.attempt,
                    message: error.clone(),
                    at: now,
                });
                self.finished_at = Some(now);
            }
            Transition::Snooze { .. } if target == JobStatus::Canceled => {
                self.finished_at = Some(now);
            }
            Transition::Retry { error, run_at } => {
                self.errors.push(AttemptError {
                    attempt: self.attempt,
                    message: error.clone(),
                    at: now,
                });
                self.run_at = *run_at;
                self.progress = None;
            }
            Transition::Snooze { run_at } => {
                self.run_at = *run_at;
                self.progress = None;
            }
        }
        Ok(())
    }
}

/// The status, and optionally the attempt, a compare-and-set expects to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected {
    /// The status the job must be in.
    pub status: JobStatus,
    /// The attempt count the job must have, if checked; guards against a stale worker
    /// finishing a newer attempt of the same job.
    pub attempt: Option<u32>,
}

impl Expected {
    /// Expect `status` at `attempt`.
    pub const fn new(status: JobStatus, attempt: u32) -> Self {
        Self {
            status,
            attempt: Some(attempt),
        }
    }

    /// Expect `status`, whatever the attempt (a worker claiming a queued delivery does not
    /// know the attempt count; the status alone decides who wins).
    pub const fn status(status: JobStatus) -> Self {
        Self {
            status,
            attempt: None,
        }
    }
}

/// A change of status.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Transition {
    /// `Queued → Running`: a worker claimed the job. Increments the attempt.
    Start,
    /// `Running → Succeeded`, storing the result apart from the metadata.
    Succeed {
        /// The executor's result.
        result: Value,
    },
    /// `Running → Failed` with an error message.
    Fail {
        /// What went wrong.
        error: String,
    },
    /// `Queued → Canceled` or `Running → Canceled`.
    Cancel,
    /// `Running → Queued` after a failed attempt that may be tried again: the error is
    /// kept in [`Job::errors`] and the job waits until `run_at`. A job whose cancel was
    /// requested ends `Canceled` instead.
    Retry {
        /// What went wrong in this attempt.
        error: String,
        /// When the next attempt may start (the end of the backoff).
        run_at: Timestamp,
    },
    /// `Running → Queued` because the executor asked to run again later; not a failure. A
    /// job whose cancel was requested ends `Canceled` instead.
    Snooze {
        /// When the next attempt may start.
        run_at: Timestamp,
    },
}

impl Transition {
    /// The status this transition moves a job to.
    pub const fn target(&self) -> JobStatus {
        match self {
            Transition::Start => JobStatus::Running,
            Transition::Succeed { .. } => JobStatus::Succeeded,
            Transition::Fail { .. } => JobStatus::Failed,
            Transition::Cancel => JobStatus::Canceled,
            Transition::Retry { .. } | Transition::Snooze { .. } => JobStatus::Queued,
        }
    }
}

/// Why [`Job::apply`] changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// The job was not in the expected status and attempt (someone else moved it first).
    #[error("the job is {current} at attempt {attempt}, not in the expected state")]
    Conflict {
        /// Its status now.
        current: JobStatus,
        /// Its attempt now.
        attempt: u32,
    },
    /// The status machine forbids the move.
    #[error("a job cannot move from {from} to {to}")]
    NotAllowed {
        /// The status it is in.
        from: JobStatus,
        /// The status that was asked for.
        to: JobStatus,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_runs_once_then_stays_terminal() {
        let mut job = Job::new("T", Value::Null);
        job.apply(Expected::new(JobStatus::Queued, 0), &Transition::Start)
            .unwrap();
        assert!(job.started_at.is_some());
        job.apply(
            Expected::new(JobStatus::Running, 1),
            &Transition::Fail {
                error: "boom".into(),
            },
        )
        .unwrap();
        assert_eq!(job.status, JobStatus::Failed);
        assert_eq!(job.error.as_deref(), Some("boom"));
        assert!(job.finished_at.is_some());
        let err = job
            .apply(Expected::new(JobStatus::Failed, 1), &Transition::Cancel)
            .unwrap_err();
        let mut asked_to_stop = Job::new("T", Value::Null);
        asked_to_stop
            .apply(Expected::new(JobStatus::Queued, 0), &Transition::Start)
            .unwrap();
        asked_to_stop.cancel_requested = true;
        let run_at = Timestamp::from_unix_micros(i64::MAX / 2);
        asked_to_stop
            .apply(
                Expected::new(JobStatus::Running, 1),
                &Transition::Snooze { run_at },
            )
            .unwrap();
        assert_eq!(
            asked_to_stop.status,
            JobStatus::Canceled,
            "no requeue after a cancel"
        );
        assert!(asked_to_stop.finished_at.is_some());
        assert_eq!(
            err,
            TransitionError::NotAllowed {
                from: JobStatus::Failed,
                to: JobStatus::Canceled
            }
        );
    }

    #[test]
    fn a_stale_attempt_cannot_finish_the_job() {
        let mut job = Job::new("T", Value::Null);
        job.apply(Expected::new(JobStatus::Queued, 0), &Transition::Start)
            .unwrap();
        let before = job.clone();
        let err = job
            .apply(
                Expected::new(JobStatus::Running, 0),
                &Transition::Succeed {
                    result: Value::Null,
                },
            )
            .unwrap_err();
        assert!(matches!(err, TransitionError::Conflict { attempt: 1, .. }));
        assert_eq!(job, before, "a refused transition changes nothing");
    }

    #[test]
    fn progress_is_clamped_to_one_hundred() {
        assert_eq!(Progress::new(250, "x").percent, 100);
    }

    #[test]
    fn serializes_with_camel_case_fields() {
        let job = Job::new("Export", serde_json::json!({"table": "users"}));
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["jobType"], "Export");
        assert_eq!(json["status"], "Queued");
        let back: Job = serde_json::from_value(json).unwrap();
        assert_eq!(back, job);
    }
}
