//! Versioned, embedded schema migrations.

use sqlx::{Executor, PgPool, Row};

use jobs_core::StorageError;

use crate::error::storage;
use crate::options::ConnectError;

/// The migrations, in order: version, name, SQL (with `{schema}` to replace).
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "jobs", include_str!("../migrations/0001_jobs.sql")),
    (
        2,
        "policies",
        include_str!("../migrations/0002_policies.sql"),
    ),
    (3, "workers", include_str!("../migrations/0003_workers.sql")),
    (
        4,
        "paused queues",
        include_str!("../migrations/0004_paused_queues.sql"),
    ),
    (
        5,
        "rate limits",
        include_str!("../migrations/0005_rate_limits.sql"),
    ),
    (
        6,
        "concurrency keys",
        include_str!("../migrations/0006_concurrency_keys.sql"),
    ),
    (7, "bounds", include_str!("../migrations/0007_bounds.sql")),
    (
        8,
        "trace parents",
        include_str!("../migrations/0008_trace_parents.sql"),
    ),
    (
        9,
        "dependencies",
        include_str!("../migrations/0009_dependencies.sql"),
    ),
];

/// A key for `pg_advisory_xact_lock`, so that processes migrating at once take turns.
const LOCK_KEY: i64 = 0x6a6f_6273_6d69_6772; // "jobsmigr"

/// Applies the migrations not yet applied to `schema`, in one transaction under an
/// advisory lock: several processes may call it at once, and each migration runs once.
/// Returns the versions it applied.
pub(crate) async fn migrate(pool: &PgPool, schema: &str) -> Result<Vec<i32>, ConnectError> {
    let mut tx = pool.begin().await.map_err(ConnectError::migration)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *tx)
        .await
        .map_err(ConnectError::migration)?;
    tx.execute(
        format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}.jobs_schema_migrations (
                 version    integer     PRIMARY KEY,
                 name       text        NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );"
        )
        .as_str(),
    )
    .await
    .map_err(ConnectError::migration)?;
    let applied: Vec<i32> = sqlx::query(&format!(
        "SELECT version FROM {schema}.jobs_schema_migrations"
    ))
    .fetch_all(&mut *tx)
    .await
    .map_err(ConnectError::migration)?
    .iter()
    .map(|row| row.get::<i32, _>(0))
    .collect();
    let mut newly = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.execute(sql.replace("{schema}", schema).as_str())
            .await
            .map_err(ConnectError::migration)?;
        sqlx::query(&format!(
            "INSERT INTO {schema}.jobs_schema_migrations (version, name) VALUES ($1, $2)"
        ))
        .bind(version)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(ConnectError::migration)?;
        newly.push(*version);
    }
    tx.commit().await.map_err(ConnectError::migration)?;
    Ok(newly)
}

/// The versions of the migrations not yet applied to `schema`, in order: all of them
/// when the schema has no jobs tables.
pub(crate) async fn pending(pool: &PgPool, schema: &str) -> Result<Vec<i32>, StorageError> {
    const WHAT: &str = "could not read the jobs schema's version";
    let table = format!("{schema}.jobs_schema_migrations");
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&table)
        .fetch_one(pool)
        .await
        .map_err(storage(WHAT))?;
    let applied: Vec<i32> = if exists {
        sqlx::query_scalar(&format!("SELECT version FROM {table}"))
            .fetch_all(pool)
            .await
            .map_err(storage(WHAT))?
    } else {
        Vec::new()
    };
    Ok(MIGRATIONS
        .iter()
        .map(|(version, _, _)| *version)
        .filter(|version| !applied.contains(version))
        .collect())
}
