//! The PostgreSQL store of the `jobs` framework: durable jobs that many worker processes
//! on many machines share through one database.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use jobs_postgres::PostgresStore;
//! use jobs_runtime::Jobs;
//!
//! let store = PostgresStore::connect("postgres://localhost/app").await?;
//! store.migrate().await?; // safe to run from every process at start
//! let jobs = Jobs::builder().store(store).start()?;
//! # drop(jobs);
//! # Ok(())
//! # }
//! ```
//!
//! [`PostgresStore`] keeps rows and applies the changes the runtime's engine asks for, in
//! batches; it decides nothing (retries, leases, rescues and events are the engine's).
//! The jobs table is the queue: a claim takes a queue's due jobs with
//! `FOR UPDATE SKIP LOCKED`, moving them to `Running` for their holder in the same
//! statement, so two claims never get one job. Every change to a running job is fenced by
//! its id, attempt and holder. Batches (inserts, claims, completions, renewals) are one
//! statement over arrays. Results live in a table of their own.
//!
//! Events travel with `NOTIFY` on a channel named after the schema: the engine publishes
//! them after its changes commit, and one listener connection per store hands every
//! event heard, from any process, to its subscribers and engines (jobs became due, a
//! cancel was requested), with a resync signal whenever the listener lost its connection.
//! [`PostgresStore::submit_in`] stores a job inside the application's own transaction
//! and notifies it at that commit.
//!
//! PostgreSQL cannot store the NUL character (`\u0000`): a payload or unique key holding
//! one is refused, as is a result holding one; error and progress texts are stored with
//! it replaced by U+FFFD.
#![warn(missing_docs)]

mod checks;
mod claim;
mod complete;
mod depend;
mod error;
mod insert;
mod lease;
mod migrate;
mod notify;
mod ops;
mod options;
mod plan;
mod read;
mod rows;
mod store;

pub use options::{ConnectError, PostgresOptions};
/// The `sqlx` this store is built on, for the application's own queries and
/// transactions (and [`PostgresStore::submit_in`]).
pub use sqlx;
pub use store::PostgresStore;
