//! Why a run failed, as one line for people and an exit code for scripts.

use jobs_core::{JobsError, StorageError, StorageErrorKind};

/// The exit codes `jobs --help` documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// The store reported an error of another kind.
    Other = 1,
    /// An unknown command or option, a malformed id, status or age.
    Usage = 2,
    /// An id that no job has.
    NotFound = 3,
    /// A job was in a status the command does not apply to.
    Refused = 4,
    /// The database cannot be reached.
    Unreachable = 5,
    /// No jobs schema, or an old one.
    Schema = 6,
}

/// A failed run: its exit code and the line that says what to do.
#[derive(Debug, PartialEq)]
pub struct Failure {
    /// The exit code.
    pub code: Code,
    /// One line, without the program's name.
    pub message: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        let message: String = message.into();
        // One line, whatever a driver's message holds.
        let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
        Self { code, message }
    }

    /// Bad usage.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Code::Usage, message)
    }

    /// A storage error: unreachable when it is transient (a lost connection, a timeout).
    pub fn storage(error: &StorageError) -> Self {
        match error.kind() {
            StorageErrorKind::Transient => Self::new(
                Code::Unreachable,
                format!("{error}; check that the database is up and reachable"),
            ),
            _ => Self::new(Code::Other, error.to_string()),
        }
    }
}

impl From<JobsError> for Failure {
    fn from(error: JobsError) -> Self {
        match &error {
            JobsError::Storage(storage) => Failure::storage(storage),
            JobsError::NotFound(_) => Failure::new(Code::NotFound, error.to_string()),
            _ => Failure::new(Code::Other, error.to_string()),
        }
    }
}

impl From<StorageError> for Failure {
    fn from(error: StorageError) -> Self {
        Failure::storage(&error)
    }
}
