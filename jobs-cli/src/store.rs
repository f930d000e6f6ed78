//! Opening the store a database URL names, and checking that its schema is current.

use std::sync::Arc;
use std::time::Duration;

use jobs_core::JobStore;
use jobs_postgres::{PostgresOptions, PostgresStore};
use jobs_sqlite::{SqliteOptions, SqliteStore};

use crate::failure::{Code, Failure};

/// How long connecting to PostgreSQL may take before the tool gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the jobs are.
pub enum Database {
    /// PostgreSQL, in a schema.
    Postgres(Arc<PostgresStore>, String),
    /// A SQLite file.
    Sqlite(Arc<SqliteStore>),
}

impl Database {
    /// The store.
    pub fn store(&self) -> Arc<dyn JobStore> {
        match self {
            Database::Postgres(store, _) => store.clone(),
            Database::Sqlite(store) => store.clone(),
        }
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// Opens the store at `url`. `setup` is for `jobs migrate`: a missing SQLite file is
/// created, and PostgreSQL's schema is not checked. Otherwise a missing file or a schema
/// that lacks migrations is a failure with [`Code::Schema`].
pub async fn open(
    url: Option<&str>,
    schema: Option<&str>,
    setup: bool,
) -> Result<Database, Failure> {
    let Some(url) = url else {
        return Err(Failure::usage(
            "no database given: set DATABASE_URL or pass --database-url (postgres://user@host/db or sqlite://path)",
        ));
    };
    if is_postgres(url) {
        let schema = schema.unwrap_or("public");
        let options = PostgresOptions::new()
            .schema(schema)
            .max_connections(4)
            .connect_timeout(CONNECT_TIMEOUT);
        let store =
            PostgresStore::connect_with(url, options)
                .await
                .map_err(|error| match error {
                    jobs_postgres::ConnectError::Unreachable(_) => Failure::new(
                        Code::Unreachable,
                        format!("{error}; check the URL and that the server is running"),
                    ),
                    _ => Failure::usage(error.to_string()),
                })?;
        if !setup {
            let pending = store.pending_migrations().await?;
            if !pending.is_empty() {
                let message = if pending.first() == Some(&1) {
                    format!("the database has no jobs schema in `{schema}`: run `jobs migrate` to create it")
                } else {
                    let list: Vec<String> = pending.iter().map(i32::to_string).collect();
                    format!(
                        "the jobs schema in `{schema}` lacks migrations {}: run `jobs migrate`",
                        list.join(", ")
                    )
                };
                return Err(Failure::new(Code::Schema, message));
            }
        }
        return Ok(Database::Postgres(store, schema.to_owned()));
    }
    if is_sqlite(url) {
        if schema.is_some() {
            return Err(Failure::usage(
                "--schema is for PostgreSQL; a SQLite file holds one set of jobs tables",
            ));
        }
        let options = SqliteOptions::new().create_if_missing(setup);
        // Opening a file reads and may write it: off the runtime's thread.
        let url = url.to_owned();
        let opened = tokio::task::spawn_blocking(move || SqliteStore::connect(&url, options))
            .await
            .map_err(|error| {
                Failure::new(Code::Other, format!("could not open the database: {error}"))
            })?;
        return opened.map(Database::Sqlite).map_err(|error| match error {
            jobs_sqlite::ConnectError::Missing { .. } => Failure::new(
                Code::Schema,
                format!("{error}: check the path, or run `jobs migrate` to create one"),
            ),
            jobs_sqlite::ConnectError::InvalidUrl(_) => Failure::usage(error.to_string()),
            jobs_sqlite::ConnectError::NewerSchema { .. } => {
                Failure::new(Code::Schema, format!("{error}: use a newer `jobs`"))
            }
            _ => Failure::new(Code::Other, error.to_string()),
        });
    }
    Err(Failure::usage(
        "the database URL must start with postgres://, postgresql:// or sqlite:",
    ))
}
