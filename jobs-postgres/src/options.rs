//! The settings of a store, and why connecting can fail.

use std::collections::HashMap;
use std::time::Duration;

/// Settings of a [`PostgresStore`](crate::PostgresStore).
///
/// How often to poll, how long a lease lasts, how many jobs to claim at once and when to
/// give up on a job are the engine's settings (`Jobs::builder()`), not the store's.
///
/// ```
/// use std::time::Duration;
/// use jobs_postgres::PostgresOptions;
///
/// let options = PostgresOptions::new()
///     .schema("billing_jobs")
///     .max_connections(20)
///     .connect_timeout(Duration::from_secs(2))
///     .global_limit("reports", 4);
/// ```
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    pub(crate) schema: String,
    pub(crate) max_connections: u32,
    pub(crate) connect_timeout: Duration,
    pub(crate) event_capacity: usize,
    pub(crate) max_payload_bytes: usize,
    pub(crate) global_limits: HashMap<String, u32>,
    pub(crate) exact_count_limit: u64,
}

impl PostgresOptions {
    /// The default payload limit: 1 MiB of compact JSON.
    pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1 << 20;

    /// The default of [`exact_count_limit`](PostgresOptions::exact_count_limit).
    pub const DEFAULT_EXACT_COUNT_LIMIT: u64 = 100_000;

    /// The default number of events a local subscriber may fall behind by.
    pub const DEFAULT_EVENT_CAPACITY: usize = jobs_core::EventBus::DEFAULT_CAPACITY;

    /// The defaults: schema `public`, 10 connections, 5 s connect timeout, 1 MiB payloads,
    /// room for 4,096 events per subscriber, no cluster-wide queue limits, counts for
    /// `/metrics` exact up to 100,000 jobs per type and status.
    pub fn new() -> Self {
        Self {
            schema: "public".to_owned(),
            max_connections: 10,
            connect_timeout: Duration::from_secs(5),
            event_capacity: Self::DEFAULT_EVENT_CAPACITY,
            max_payload_bytes: Self::DEFAULT_MAX_PAYLOAD_BYTES,
            global_limits: HashMap::new(),
            exact_count_limit: Self::DEFAULT_EXACT_COUNT_LIMIT,
        }
    }

    /// The schema that holds the tables (created by
    /// [`PostgresStore::migrate`](crate::PostgresStore::migrate)). Services that share a
    /// schema share their jobs; separate schemas keep them apart. A lowercase identifier
    /// of at most 40 characters: letters, digits and `_`, not starting with a digit.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The size of the connection pool made by
    /// [`PostgresStore::connect_with`](crate::PostgresStore::connect_with). The
    /// notification listener uses one more connection, of its own.
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// How long connecting (and later, waiting for a free connection) may take before
    /// the store gives up with an error.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The largest payload accepted, in bytes of compact JSON (default 1 MiB). Larger
    /// submissions are refused and store nothing: a queue row is no place for bulk data.
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }

    /// How many events a subscriber of this process (`subscribe`, `signals`) may fall
    /// behind before it skips the oldest (default 4,096).
    pub fn event_capacity(mut self, events: usize) -> Self {
        self.event_capacity = events.max(1);
        self
    }

    /// At most `limit` jobs of the named queue `queue` run at once across every process
    /// on this database, however many each process claims. Claims of such a queue take
    /// turns under an advisory lock and count its running jobs; a job whose holder died
    /// counts until its lease is rescued. Every process sharing the schema should set
    /// the same limits.
    pub fn global_limit(mut self, queue: &str, limit: u32) -> Self {
        self.global_limits.insert(queue.to_owned(), limit);
        self
    }

    /// Up to how many jobs of one type in one status
    /// [`estimate_counts`](jobs_core::JobStore::estimate_counts) (what `/metrics` reads)
    /// counts exactly; above it the count is the planner's estimate (from the
    /// table's statistics, kept by ANALYZE, scaled to its current size), flagged as such.
    /// The read then costs a probe per job type and at most this many index entries per
    /// pair, however large the table (16 – 27 ms at 10,000,000 rows with the default,
    /// against 0.85 – 1.24 s for an exact count). `count_jobs` stays exact.
    pub fn exact_count_limit(mut self, jobs: u64) -> Self {
        self.exact_count_limit = jobs;
        self
    }
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Why the store could not start, or its schema could not be migrated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The database URL does not parse.
    #[error("invalid database URL: {0} (expected postgres://user@host:port/database)")]
    InvalidUrl(#[source] sqlx::Error),
    /// The schema name is not a plain identifier.
    #[error("invalid schema name `{0}`: use at most 40 lowercase letters, digits and `_`, not starting with a digit")]
    InvalidSchema(String),
    /// The database could not be reached in time, or refused the connection.
    #[error("could not connect to PostgreSQL: {0}")]
    Unreachable(#[source] sqlx::Error),
    /// Applying the schema failed.
    #[error("could not migrate the jobs schema: {0}")]
    Migration(#[source] sqlx::Error),
}

impl ConnectError {
    pub(crate) fn migration(error: sqlx::Error) -> Self {
        ConnectError::Migration(error)
    }
}

/// Whether `schema` is safe to write into statements: a short lowercase identifier.
pub(crate) fn valid_schema(schema: &str) -> bool {
    let mut chars = schema.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= 40
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_identifiers_are_schemas() {
        assert!(valid_schema("public"));
        assert!(valid_schema("_jobs2"));
        assert!(!valid_schema(""));
        assert!(!valid_schema("2jobs"));
        assert!(!valid_schema("Jobs"));
        assert!(!valid_schema("jobs; DROP TABLE x"));
        assert!(!valid_schema(&"a".repeat(41)));
    }
}
