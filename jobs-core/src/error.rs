//! Typed errors.

use std::error::Error as StdError;
use std::fmt;

use crate::{JobId, JobStatus};

/// A store could not do what was asked (connection lost, disk full, a value it cannot
/// keep, ...).
///
/// Stores wrap their own errors in it, keeping the cause as [`std::error::Error::source`],
/// and say what kind of failure it is ([`StorageError::kind`]), so the engine knows what to
/// retry and an HTTP layer what to answer.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StorageError {
    message: String,
    kind: StorageErrorKind,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

/// What kind of failure a [`StorageError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// The store could not be reached or was busy (a dropped connection, a timeout, a
    /// restart, a lock held too long): the same call may succeed if tried again.
    Transient,
    /// The call conflicts with what is stored (an id that exists already).
    Conflict,
    /// The store cannot keep a value it was given (a character it cannot store, a value
    /// out of range): trying again will not help.
    InvalidInput,
    /// The store does not do what was asked.
    Unsupported,
    /// The store holds as many jobs as it may: trying again once some have finished may
    /// succeed.
    Full,
    /// Anything else.
    Other,
}

impl StorageError {
    /// An error of kind [`StorageErrorKind::Other`] with a message and no cause.
    pub fn new(message: impl Into<String>) -> Self {
        Self::of_kind(StorageErrorKind::Other, message)
    }

    /// An error of `kind` with a message and no cause.
    pub fn of_kind(kind: StorageErrorKind, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            kind,
            source: None,
        }
    }

    /// A [`StorageErrorKind::Transient`] error: worth trying again.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::of_kind(StorageErrorKind::Transient, message)
    }

    /// An error of kind [`StorageErrorKind::Other`] caused by `source`.
    pub fn with_source(
        message: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            kind: StorageErrorKind::Other,
            source: Some(Box::new(source)),
        }
    }

    /// The same error with another kind.
    pub fn kind_of(mut self, kind: StorageErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StorageErrorKind {
        self.kind
    }

    /// Whether trying the same call again may succeed.
    pub fn is_transient(&self) -> bool {
        self.kind == StorageErrorKind::Transient
    }

    /// The message alone, without the cause.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A payload does not fit the arguments of its job type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PayloadError {
    message: String,
}

impl PayloadError {
    /// A payload error with a message such as serde's.
    pub fn new(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Why a submission was refused. A refused submission stores and enqueues nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// No executor is registered for the job type.
    #[error("unknown job type `{job_type}`: known types are {}", display_list(.known))]
    UnknownJobType {
        /// The type that was asked for.
        job_type: String,
        /// Every registered type, sorted.
        known: Vec<String>,
    },
    /// The payload does not deserialize into the executor's arguments.
    #[error("invalid payload for job type `{job_type}`: {reason}")]
    InvalidPayload {
        /// The job type.
        job_type: String,
        /// What serde said about the payload.
        reason: String,
    },
    /// The payload is larger than the store accepts.
    #[error("the payload of job type `{job_type}` is too large: more than {limit} bytes of JSON; pass large data by reference (a URL, a key) instead")]
    PayloadTooLarge {
        /// The job type.
        job_type: String,
        /// The limit, in bytes of compact JSON.
        limit: usize,
    },
    /// The submission's options cannot be honoured (a zero timeout, say).
    #[error("invalid options for job type `{job_type}`: {reason}")]
    InvalidOptions {
        /// The job type.
        job_type: String,
        /// What is wrong.
        reason: String,
    },
    /// A parent named in `depends_on` is not stored (nor earlier in the batch); nothing
    /// was stored.
    #[error("job type `{job_type}` depends on job {parent}, which is not stored: submit the parent first, or earlier in the same batch")]
    UnknownParent {
        /// The dependant's type.
        job_type: String,
        /// The parent that is not stored.
        parent: crate::JobId,
    },
    /// The service has been shut down; start a new one to submit again.
    #[error("the job service has shut down: start a new one to submit jobs")]
    ShutDown,
    /// The store holds as many active jobs as it may; nothing was stored. Try again once
    /// some have finished.
    #[error("the job store is full: {reason}; try again once jobs have finished")]
    StoreFull {
        /// What limit was reached.
        reason: String,
    },
    /// The store failed (its kind says whether trying again may help).
    #[error("could not store the job: {0}")]
    Storage(#[from] StorageError),
}

fn display_list(items: &[String]) -> String {
    if items.is_empty() {
        "none (register an executor with #[job_executor(\"Type\")])".to_owned()
    } else {
        items
            .iter()
            .map(|item| format!("`{item}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why a read, cancel or wait failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobsError {
    /// No job has this id.
    #[error("no job with id {0}")]
    NotFound(JobId),
    /// The job finished in a status other than the one the caller needs
    /// (for example fetching the typed result of a failed job).
    #[error("job {id} ended {status}{}", .error.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    NotSucceeded {
        /// The job.
        id: JobId,
        /// The status it ended in.
        status: JobStatus,
        /// Its error message, when it failed.
        error: Option<String>,
    },
    /// A stored result does not deserialize into the job type's output type.
    #[error("the result of job {id} does not match its output type: {reason}")]
    InvalidResult {
        /// The job.
        id: JobId,
        /// What serde said.
        reason: String,
    },
    /// The service shut down while waiting.
    #[error("the job service has shut down")]
    ShutDown,
    /// The name given is not a queue's name; nothing changed.
    #[error("`{0}` is not a queue name: a queue name is 1 to 64 letters, digits, `_`, `-` or `.`")]
    InvalidQueue(String),
    /// The store failed (its kind says whether trying again may help).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The error an executor's run ended with, as the processor records it on the job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExecutionError {
    message: String,
    kind: ErrorKind,
}

/// What an [`ExecutionError`] asks of the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A failure, tried again if the job's policy allows.
    Retryable,
    /// A failure that is final.
    Permanent,
    /// Run again after this long; not a failure.
    Snooze(std::time::Duration),
}

impl ExecutionError {
    /// A failure with the given message, retried if the job's policy allows. A
    /// [`JobError`] keeps its kind: use [`ExecutionError::from_job_error`] (or
    /// [`into_execution_result`](crate::into_execution_result), which does).
    pub fn new(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            kind: ErrorKind::Retryable,
        }
    }

    /// A failure that is final, whatever retries remain.
    pub fn permanent(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            kind: ErrorKind::Permanent,
        }
    }

    /// The error of a [`JobError`], with its kind: `Permanent` stays final, `Snooze`
    /// asks for a later run.
    pub fn from_job_error(error: &JobError) -> Self {
        let kind = match error {
            JobError::Permanent(_) => ErrorKind::Permanent,
            JobError::Snooze(delay) => ErrorKind::Snooze(*delay),
            JobError::Failed(_) | JobError::Canceled => ErrorKind::Retryable,
        };
        Self {
            message: error.to_string(),
            kind,
        }
    }

    /// The message stored on the failed job.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What the error asks of the runtime.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// The error type offered to executors.
///
/// Any `E: Display` may be an executor's error type (`anyhow::Error`, a `thiserror` enum,
/// `String`); `JobError` is the ready-made choice, and what
/// [`JobContext::check_cancelled`](crate::JobContext::check_cancelled) returns.
///
/// ```
/// use jobs_core::JobError;
///
/// fn parse(n: &str) -> Result<u32, JobError> {
///     n.parse::<u32>().map_err(JobError::failed)
/// }
/// assert_eq!(parse("x").unwrap_err().to_string(), "invalid digit found in string");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The job was asked to stop (canceled, or the service is shutting down).
    #[error("the job was canceled")]
    Canceled,
    /// The job failed with this message; it is tried again if its policy allows.
    #[error("{0}")]
    Failed(String),
    /// The job failed in a way another attempt cannot fix (bad input, a record that is
    /// gone): it is `Failed` at once, whatever retries remain.
    #[error("{0}")]
    Permanent(String),
    /// Not a failure: run the job again after this long (the resource it needs is busy,
    /// its input is not ready). The attempt does not count against its retries.
    #[error("snoozed for {0:?}")]
    Snooze(std::time::Duration),
}

impl JobError {
    /// A failure with the message of `error`, retried if the job's policy allows.
    pub fn failed(error: impl fmt::Display) -> Self {
        JobError::Failed(error.to_string())
    }

    /// A failure that is final, whatever retries remain.
    pub fn permanent(error: impl fmt::Display) -> Self {
        JobError::Permanent(error.to_string())
    }

    /// Asks to run the job again after `delay`, without counting a failure.
    pub fn snooze(delay: std::time::Duration) -> Self {
        JobError::Snooze(delay)
    }
}

impl From<String> for JobError {
    fn from(message: String) -> Self {
        JobError::Failed(message)
    }
}

impl From<&str> for JobError {
    fn from(message: &str) -> Self {
        JobError::Failed(message.to_owned())
    }
}

impl From<serde_json::Error> for JobError {
    fn from(error: serde_json::Error) -> Self {
        JobError::failed(error)
    }
}

impl From<std::io::Error> for JobError {
    fn from(error: std::io::Error) -> Self {
        JobError::failed(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_type_message_lists_the_known_types() {
        let err = SubmitError::UnknownJobType {
            job_type: "Nope".into(),
            known: vec!["A".into(), "B".into()],
        };
        assert_eq!(
            err.to_string(),
            "unknown job type `Nope`: known types are `A`, `B`"
        );
    }

    #[test]
    fn storage_error_keeps_its_cause() {
        let err = StorageError::with_source("write failed", std::io::Error::other("disk full"));
        assert_eq!(err.source().unwrap().to_string(), "disk full");
    }
}
