//! SQLite errors as [`StorageError`]s of the right kind.

use jobs_core::{StorageError, StorageErrorKind};
use rusqlite::ErrorCode;

/// What kind of failure `error` is.
pub(crate) fn kind_of(error: &rusqlite::Error) -> StorageErrorKind {
    match error {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            // Another connection holds the write lock longer than the busy timeout.
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StorageErrorKind::Transient,
            ErrorCode::ConstraintViolation
                if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                StorageErrorKind::Conflict
            }
            ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch => {
                StorageErrorKind::InvalidInput
            }
            // A full disk (or the size limit), a read-only or corrupt file: waiting does
            // not help.
            _ => StorageErrorKind::Other,
        },
        rusqlite::Error::ToSqlConversionFailure(_) | rusqlite::Error::InvalidParameterCount(..) => {
            StorageErrorKind::InvalidInput
        }
        _ => StorageErrorKind::Other,
    }
}

/// `error` of the statement doing `what` ("could not claim jobs"), with its kind.
pub(crate) fn storage(what: &str, error: rusqlite::Error) -> StorageError {
    let kind = kind_of(&error);
    let detail = match &error {
        rusqlite::Error::SqliteFailure(failure, Some(message)) => {
            format!("{message} ({:?})", failure.code)
        }
        other => other.to_string(),
    };
    StorageError::with_source(format!("{what}: {detail}"), error).kind_of(kind)
}

/// A closure for `map_err` that maps an error of the statement doing `what`.
pub(crate) fn failed(what: &str) -> impl FnOnce(rusqlite::Error) -> StorageError + '_ {
    move |error| storage(what, error)
}

/// A value read back from the file that does not make sense.
pub(crate) fn unreadable(what: impl std::fmt::Display) -> StorageError {
    StorageError::new(format!("unreadable job row: {what}"))
}

/// A value the caller gave that the store cannot keep.
pub(crate) fn invalid(message: impl Into<String>) -> StorageError {
    StorageError::of_kind(StorageErrorKind::InvalidInput, message)
}

/// The store's threads stopped (a panic in a statement, or the store is being dropped).
pub(crate) fn stopped() -> StorageError {
    StorageError::new("the SQLite store's connection thread stopped")
}
