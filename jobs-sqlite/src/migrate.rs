//! Versioned, embedded schema migrations.

use rusqlite::{params, Connection};

use crate::options::ConnectError;

/// The migrations, in order: version, name, SQL.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "jobs", include_str!("../migrations/0001_jobs.sql")),
    (2, "workers", include_str!("../migrations/0002_workers.sql")),
    (
        3,
        "paused queues",
        include_str!("../migrations/0003_paused_queues.sql"),
    ),
    (
        4,
        "rate limits",
        include_str!("../migrations/0004_rate_limits.sql"),
    ),
    (
        5,
        "concurrency keys",
        include_str!("../migrations/0005_concurrency_keys.sql"),
    ),
    (6, "bounds", include_str!("../migrations/0006_bounds.sql")),
    (
        7,
        "trace parents",
        include_str!("../migrations/0007_trace_parents.sql"),
    ),
    (
        8,
        "dependencies",
        include_str!("../migrations/0008_dependencies.sql"),
    ),
];

/// Applies the migrations the file lacks, in one transaction under SQLite's write lock:
/// several processes may open the file at once, and each migration runs once. Returns
/// the versions applied; refuses a file whose schema is newer than this store knows.
pub(crate) fn migrate(connection: &Connection) -> Result<Vec<i64>, ConnectError> {
    connection
        .execute_batch("BEGIN IMMEDIATE")
        .map_err(ConnectError::Setup)?;
    let applied = apply(connection);
    let finished = if applied.is_ok() {
        connection.execute_batch("COMMIT")
    } else {
        connection.execute_batch("ROLLBACK")
    };
    let applied = applied?;
    finished.map_err(ConnectError::Setup)?;
    Ok(applied)
}

fn apply(connection: &Connection) -> Result<Vec<i64>, ConnectError> {
    connection
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS jobs_schema_migrations (
                 version    INTEGER PRIMARY KEY,
                 name       TEXT    NOT NULL,
                 applied_at INTEGER NOT NULL
             );",
        )
        .map_err(ConnectError::Setup)?;
    let found: i64 = connection
        .query_row(
            "SELECT coalesce(max(version), 0) FROM jobs_schema_migrations",
            [],
            |row| row.get(0),
        )
        .map_err(ConnectError::Setup)?;
    let known = MIGRATIONS.last().map_or(0, |(version, _, _)| *version);
    if found > known {
        return Err(ConnectError::NewerSchema { found, known });
    }
    let mut newly = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if *version <= found {
            continue;
        }
        connection.execute_batch(sql).map_err(ConnectError::Setup)?;
        connection
            .execute(
                "INSERT INTO jobs_schema_migrations (version, name, applied_at)
                 VALUES (?1, ?2, ?3)",
                params![version, name, jobs_core::Timestamp::now().as_unix_micros()],
            )
            .map_err(ConnectError::Setup)?;
        newly.push(*version);
    }
    Ok(newly)
}
