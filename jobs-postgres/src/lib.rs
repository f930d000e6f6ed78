//! The PostgreSQL backend of the `jobs` framework: durable jobs that many worker
//! processes on many machines share through one database.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use jobs_postgres::PostgresBackend;
//!
//! let backend = PostgresBackend::connect("postgres://localhost/app").await?;
//! backend.migrate().await?;             // safe to run from every process at start
//! // Jobs::builder().backend(backend).start()?
//! # Ok(())
//! # }
//! ```
//!
//! One [`PostgresBackend`] is both the repository and the queue: the jobs table is the
//! queue. A worker claims the oldest queued job with `FOR UPDATE SKIP LOCKED`, moving it to
//! `Running` in the same statement, so two workers never claim one job. Every status write
//! is a compare-and-set on (id, status, attempt). Results live in their own table.
//!
//! Changes are announced with `NOTIFY` on a channel named after the schema; one listener
//! connection per backend turns them into [`JobEvent`](jobs_core::JobEvent)s, wakes idle
//! workers within milliseconds of a submit, and forwards cancel requests to the worker
//! that holds the job, whichever process it is in. Workers also poll, so a lost
//! notification only delays a job by the poll interval. The listener reconnects by itself
//! when its connection drops.
#![warn(missing_docs)]

mod backend;
mod batch;
mod lease;
mod migrate;
mod sql;

pub use backend::{ConnectError, PostgresBackend, PostgresOptions};
/// The `sqlx` this backend is built on, for the application's own queries and
/// transactions.
pub use sqlx;
