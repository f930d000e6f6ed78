//! `sqlx` errors as [`StorageError`]s of the right kind.

use jobs_core::{StorageError, StorageErrorKind};

/// What kind of failure `error` is: whether the same call may succeed later
/// (`Transient`), conflicts with what is stored, or carries a value the database refuses.
pub(crate) fn kind_of(error: &sqlx::Error) -> StorageErrorKind {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => StorageErrorKind::Transient,
        sqlx::Error::Encode(_) => StorageErrorKind::InvalidInput,
        sqlx::Error::Database(database) => match database.code() {
            Some(code) => kind_of_sqlstate(&code),
            None => StorageErrorKind::Other,
        },
        _ => StorageErrorKind::Other,
    }
}

/// The kind of a database error by its SQLSTATE.
fn kind_of_sqlstate(code: &str) -> StorageErrorKind {
    match code {
        // Serialization failure, deadlock, an unknown commit outcome, a lock not had in
        // time, a read-only server (a replica being promoted after a failover).
        "40001" | "40P01" | "40003" | "55P03" | "25006" => StorageErrorKind::Transient,
        // Disk full, a database dropped: waiting does not help.
        "53100" | "57P04" => StorageErrorKind::Other,
        "23505" => StorageErrorKind::Conflict,
        // Connection exceptions, insufficient resources, operator intervention (an admin
        // shutdown, a crash recovery, a canceled statement).
        _ if code.starts_with("08") || code.starts_with("53") || code.starts_with("57") => {
            StorageErrorKind::Transient
        }
        // Data exceptions (a value out of range, a character the encoding lacks) and
        // violated checks.
        _ if code.starts_with("22") || code == "23514" => StorageErrorKind::InvalidInput,
        _ => StorageErrorKind::Other,
    }
}

/// Whether the database refused `error`'s statement for a value one of its rows carries
/// (a data exception, a violated constraint other than a unique key, a value too large),
/// so that the same change without that row may succeed.
pub(crate) fn caused_by_a_row(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(database) = error else {
        return matches!(error, sqlx::Error::Encode(_));
    };
    database.code().is_some_and(|code| {
        code.starts_with("22") || (code.starts_with("23") && code != "23505") || code == "54000"
    })
}

/// Maps an error of the statement doing `what` ("could not claim jobs").
pub(crate) fn storage(what: &str) -> impl FnOnce(sqlx::Error) -> StorageError + '_ {
    move |error| from_sqlx(what, error)
}

/// The error of `what` that failed with `error`, with its kind and `error` as source.
pub(crate) fn from_sqlx(what: &str, error: sqlx::Error) -> StorageError {
    let kind = kind_of(&error);
    StorageError::with_source(format!("{what}: {error}"), error).kind_of(kind)
}

/// An error of kind [`StorageErrorKind::InvalidInput`]: a value this store cannot keep.
pub(crate) fn invalid(message: impl Into<String>) -> StorageError {
    StorageError::of_kind(StorageErrorKind::InvalidInput, message)
}

/// A row that does not read as a job (a column of an unexpected type).
pub(crate) fn unreadable(error: sqlx::Error) -> StorageError {
    StorageError::with_source(format!("unreadable job row: {error}"), error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_kinds() {
        use StorageErrorKind::*;
        for (code, kind) in [
            ("08006", Transient),
            ("08P01", Transient),
            ("53300", Transient),
            ("57P01", Transient),
            ("57014", Transient),
            ("40001", Transient),
            ("40P01", Transient),
            ("55P03", Transient),
            ("25006", Transient),
            ("53100", Other),
            ("57P04", Other),
            ("23505", Conflict),
            ("23514", InvalidInput),
            ("22021", InvalidInput),
            ("22P05", InvalidInput),
            ("23503", Other),
            ("42P01", Other),
            ("XX000", Other),
        ] {
            assert_eq!(kind_of_sqlstate(code), kind, "{code}");
        }
    }

    #[test]
    fn connection_failures_are_transient() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(kind_of(&io), StorageErrorKind::Transient);
        assert_eq!(
            kind_of(&sqlx::Error::PoolTimedOut),
            StorageErrorKind::Transient
        );
        assert_eq!(
            kind_of(&sqlx::Error::PoolClosed),
            StorageErrorKind::Transient
        );
        assert_eq!(kind_of(&sqlx::Error::RowNotFound), StorageErrorKind::Other);
        let error = from_sqlx("could not claim jobs", sqlx::Error::PoolTimedOut);
        assert!(error.is_transient());
        assert!(error.message().starts_with("could not claim jobs: "));
        assert!(
            std::error::Error::source(&error).is_some(),
            "keeps the sqlx error"
        );
        assert!(!caused_by_a_row(&sqlx::Error::PoolTimedOut));
    }
}
