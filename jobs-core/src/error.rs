//! Typed errors.

use std::error::Error as StdError;
use std::fmt;

use crate::{JobId, JobStatus};

/// A repository or queue could not do what was asked (connection lost, disk full, ...).
///
/// Backends wrap their own errors in it, keeping the cause as [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StorageError {
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl StorageError {
    /// An error with a message and no underlying cause.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// An error caused by `source`.
    pub fn with_source(
        message: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
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
    /// The payload is larger than the repository accepts.
    #[error("the payload of job type `{job_type}` is too large: more than {limit} bytes of JSON; pass large data by reference (a URL, a key) instead")]
    PayloadTooLarge {
        /// The job type.
        job_type: String,
        /// The limit, in bytes of compact JSON.
        limit: usize,
    },
    /// The service has been shut down; start a new one to submit again.
    #[error("the job service has shut down: start a new one to submit jobs")]
    ShutDown,
    /// The repository or queue failed.
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
    /// The repository or queue failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The error an executor's run ended with, as the processor records it on the job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExecutionError {
    message: String,
}

impl ExecutionError {
    /// An error with the given message.
    pub fn new(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
        }
    }

    /// The message stored on the failed job.
    pub fn message(&self) -> &str {
        &self.message
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
    /// The job failed with this message.
    #[error("{0}")]
    Failed(String),
}

impl JobError {
    /// A failure with the message of `error`.
    pub fn failed(error: impl fmt::Display) -> Self {
        JobError::Failed(error.to_string())
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
