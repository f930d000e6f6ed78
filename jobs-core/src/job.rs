//! Job metadata and the transitions applied to it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    AttemptError, FlowId, JobId, JobStatus, Outcome, ParentFailure, PayloadFrom, Timestamp,
    TraceParent,
};

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
    /// The error message of a [`JobStatus::Failed`] job (cut to
    /// [`AttemptError::MAX_MESSAGE_BYTES`]), or why a dependant was canceled with its
    /// parent.
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
    /// The errors of its failed attempts, oldest first: the first one and the latest, at
    /// most [`Job::KEPT_ERRORS`] in all (the ones between are dropped as new ones come;
    /// [`Job::failures`] counts them all), each message cut to
    /// [`AttemptError::MAX_MESSAGE_BYTES`].
    #[serde(default)]
    pub errors: Vec<AttemptError>,
    /// How many of its attempts have failed, including those whose errors are no longer
    /// kept in [`Job::errors`]: what retries and backoff count.
    #[serde(default)]
    pub failures: u32,
    /// While this job is `Queued` or `Running`, a submission of its type with the same key
    /// gets this job instead of a new one.
    #[serde(default)]
    pub unique_key: Option<String>,
    /// The named queue it waits in; only workers of that queue run it.
    #[serde(default = "default_queue")]
    pub queue: String,
    /// At most [`Job::concurrency_limit`] jobs with this key run at once, across every
    /// process on the store; the others wait `Queued`, in their order.
    #[serde(default)]
    pub concurrency_key: Option<String>,
    /// How many jobs with its [`Job::concurrency_key`] may run at once (1 when it has a
    /// key and none is given).
    #[serde(default)]
    pub concurrency_limit: Option<u32>,
    /// The trace it was submitted in (W3C `traceparent`): every execution's span continues
    /// that trace. See [`TraceParent`].
    #[serde(default)]
    pub trace_parent: Option<TraceParent>,
    /// The jobs it waits for (its parents), in order: while they have not finished as it
    /// needs, it is [`JobStatus::Waiting`]. Empty for a job that waits for none.
    #[serde(default)]
    pub depends_on: Vec<JobId>,
    /// What it does when a parent ends `Failed` or `Canceled`.
    #[serde(default)]
    pub on_parent_failure: ParentFailure,
    /// Where its arguments come from when its parents are done: its own payload, or
    /// their results.
    #[serde(default)]
    pub payload_from: PayloadFrom,
    /// The flow or batch it was submitted in, if any: its members are listed, watched and
    /// canceled together, and retention keeps them all until every one has finished.
    #[serde(default)]
    pub flow: Option<FlowId>,
}

/// Whether any string in `value` (object keys included) holds a NUL character (U+0000),
/// which PostgreSQL can store neither in `text` nor in `jsonb`.
pub fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map
            .iter()
            .any(|(key, item)| key.contains('\0') || contains_nul(item)),
        _ => false,
    }
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

    /// How many attempt errors a job keeps: the first, and the latest after it.
    pub const KEPT_ERRORS: usize = 20;

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
            failures: 0,
            unique_key: None,
            queue: default_queue(),
            concurrency_key: None,
            concurrency_limit: None,
            trace_parent: None,
            depends_on: Vec::new(),
            on_parent_failure: ParentFailure::Cancel,
            payload_from: PayloadFrom::Submitted,
            flow: None,
        }
    }

    /// The first of its texts that holds a NUL character (`"payload"`, `"unique key"`,
    /// `"job type"`, `"queue"` or `"concurrency key"`), if any. No store takes such a job:
    /// PostgreSQL cannot store the character, and a job accepted by one store is accepted
    /// by every other.
    ///
    /// ```
    /// use jobs_core::Job;
    ///
    /// let job = Job::new("Export", serde_json::json!({ "name": "a\u{0}b" }));
    /// assert_eq!(job.nul_field(), Some("payload"));
    /// assert_eq!(Job::new("Export", serde_json::Value::Null).nul_field(), None);
    /// ```
    pub fn nul_field(&self) -> Option<&'static str> {
        let has = |text: Option<&str>| text.is_some_and(|text| text.contains('\0'));
        if contains_nul(&self.payload) {
            Some("payload")
        } else if has(self.unique_key.as_deref()) {
            Some("unique key")
        } else if has(Some(&self.job_type)) {
            Some("job type")
        } else if has(Some(&self.queue)) {
            Some("queue")
        } else if has(self.concurrency_key.as_deref()) {
            Some("concurrency key")
        } else {
            None
        }
    }

    /// Whether another attempt may follow a failure of the current one.
    pub fn may_retry(&self) -> bool {
        // The failure being decided on is not counted yet.
        self.failures.saturating_add(1) < self.max_attempts
    }

    /// Claims the job: `Queued → Running` at its next attempt. This and
    /// [`Job::finish`] are the status rule every store applies, written once; stores that
    /// keep rows elsewhere apply the same rule in their own statements.
    ///
    /// ```
    /// use jobs_core::{Job, JobStatus, Outcome, TransitionError};
    ///
    /// let mut job = Job::new("Export", serde_json::Value::Null);
    /// job.start().unwrap();
    /// assert_eq!((job.status, job.attempt), (JobStatus::Running, 1));
    ///
    /// // A stale attempt changes nothing.
    /// let err = job.finish(0, &Outcome::Canceled).unwrap_err();
    /// assert_eq!(err, TransitionError::Conflict { current: JobStatus::Running, attempt: 1 });
    /// ```
    pub fn start(&mut self) -> Result<(), TransitionError> {
        if self.status != JobStatus::Queued {
            return Err(TransitionError::Conflict {
                current: self.status,
                attempt: self.attempt,
            });
        }
        self.status = JobStatus::Running;
        self.attempt += 1;
        self.started_at = Some(Timestamp::now());
        self.progress = None;
        Ok(())
    }

    /// Ends or requeues attempt `attempt` of this running job with `outcome`; returns the
    /// status it is in now. A requeue of a job whose cancel was requested ends it
    /// `Canceled`. The result of a success is *not* stored on the job; the store keeps it
    /// apart.
    pub fn finish(
        &mut self,
        attempt: u32,
        outcome: &Outcome,
    ) -> Result<JobStatus, TransitionError> {
        if self.status != JobStatus::Running || self.attempt != attempt {
            return Err(TransitionError::Conflict {
                current: self.status,
                attempt: self.attempt,
            });
        }
        let now = Timestamp::now();
        let requeue = outcome.status() == JobStatus::Queued;
        let target = if requeue && self.cancel_requested {
            JobStatus::Canceled
        } else {
            outcome.status()
        };
        if let Some(error) = outcome.error() {
            if self.errors.len() >= Self::KEPT_ERRORS {
                // Keep the first: it often says the most about what went wrong.
                self.errors.remove(1);
            }
            self.errors.push(AttemptError {
                attempt: self.attempt,
                message: AttemptError::cut(error).into_owned(),
                at: now,
                started_at: self.started_at,
            });
            self.failures = self.failures.saturating_add(1);
        }
        if let Outcome::Failed { error } = outcome {
            self.error = Some(AttemptError::cut(error).into_owned());
        }
        self.status = target;
        if target.is_terminal() {
            self.finished_at = Some(now);
            return Ok(target);
        }
        self.progress = None;
        match outcome {
            Outcome::Retry { run_at, .. } | Outcome::Snooze { run_at } => self.run_at = *run_at,
            Outcome::Release => {
                self.attempt -= 1;
                self.started_at = None;
            }
            _ => {}
        }
        Ok(target)
    }

    /// Cancels the job while it is `Queued` or `Waiting`: it will never run.
    pub fn cancel_queued(&mut self) -> Result<(), TransitionError> {
        if !matches!(self.status, JobStatus::Queued | JobStatus::Waiting) {
            return Err(TransitionError::Conflict {
                current: self.status,
                attempt: self.attempt,
            });
        }
        self.status = JobStatus::Canceled;
        self.finished_at = Some(Timestamp::now());
        Ok(())
    }
}

impl Job {
    /// Queues a `Failed` or `Canceled` job again, as an operator's retry does: it becomes
    /// `Queued`, due now, with its error, progress, cancel request and finish time
    /// cleared. It keeps its attempt count (the next attempt is numbered after the last)
    /// and the errors of its failed attempts; when its attempts are used up it gets one
    /// more, so the retry runs even if that attempt fails too. A job that had not failed
    /// yet keeps its remaining attempts. Jobs in any other status are refused.
    ///
    /// ```
    /// use jobs_core::{Job, JobStatus, Outcome};
    ///
    /// let mut job = Job::new("Export", serde_json::Value::Null);
    /// job.start().unwrap();
    /// job.finish(1, &Outcome::Failed { error: "disk full".into() }).unwrap();
    /// job.retry_finished().unwrap();
    /// assert_eq!((job.status, job.attempt, job.errors.len()), (JobStatus::Queued, 1, 1));
    /// assert!(job.error.is_none());
    /// assert!(job.retry_finished().is_err(), "a queued job cannot be retried");
    /// ```
    pub fn retry_finished(&mut self) -> Result<(), TransitionError> {
        if !self.status.can_be_retried() {
            return Err(TransitionError::NotAllowed {
                from: self.status,
                to: JobStatus::Queued,
            });
        }
        self.status = JobStatus::Queued;
        self.error = None;
        self.progress = None;
        self.cancel_requested = false;
        self.finished_at = None;
        self.run_at = Timestamp::now();
        self.max_attempts = self.max_attempts.max(self.failures.saturating_add(1));
        Ok(())
    }
}

/// Why [`Job::start`] or [`Job::finish`] changed nothing.
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
        job.start().unwrap();
        assert!(job.started_at.is_some());
        let failed = job.finish(
            1,
            &Outcome::Failed {
                error: "boom".into(),
            },
        );
        assert_eq!(failed, Ok(JobStatus::Failed));
        assert_eq!(job.error.as_deref(), Some("boom"));
        assert_eq!(job.errors.len(), 1);
        assert!(job.finished_at.is_some());
        assert!(job.finish(1, &Outcome::Canceled).is_err());
        assert!(job.start().is_err(), "terminal states never change");

        let mut asked_to_stop = Job::new("T", Value::Null);
        asked_to_stop.start().unwrap();
        asked_to_stop.cancel_requested = true;
        let run_at = Timestamp::from_unix_micros(i64::MAX / 2);
        assert_eq!(
            asked_to_stop.finish(1, &Outcome::Snooze { run_at }),
            Ok(JobStatus::Canceled),
            "no requeue after a cancel"
        );
        assert!(asked_to_stop.finished_at.is_some());
    }

    #[test]
    fn a_stale_attempt_cannot_finish_the_job() {
        let mut job = Job::new("T", Value::Null);
        job.start().unwrap();
        let before = job.clone();
        let err = job
            .finish(
                0,
                &Outcome::Succeeded {
                    result: Value::Null,
                },
            )
            .unwrap_err();
        assert!(matches!(err, TransitionError::Conflict { attempt: 1, .. }));
        assert_eq!(job, before, "a refused change changes nothing");
    }

    #[test]
    fn a_released_job_is_queued_as_if_never_claimed() {
        let mut job = Job::new("T", Value::Null);
        job.start().unwrap();
        assert_eq!(job.finish(1, &Outcome::Release), Ok(JobStatus::Queued));
        assert_eq!((job.attempt, job.started_at), (0, None));
        assert!(job.errors.is_empty());
        let retry_at = Timestamp::from_unix_micros(job.run_at.as_unix_micros() + 1_000);
        job.start().unwrap();
        let retried = job.finish(
            1,
            &Outcome::Retry {
                error: "again".into(),
                run_at: retry_at,
            },
        );
        assert_eq!(retried, Ok(JobStatus::Queued));
        assert_eq!(
            (job.attempt, job.run_at, job.errors.len()),
            (1, retry_at, 1)
        );
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
