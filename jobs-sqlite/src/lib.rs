//! The SQLite store of the `jobs` framework: durable jobs in one file, with no server to
//! run, shared by every process on the machine that opens the file.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use jobs_runtime::Jobs;
//! use jobs_sqlite::SqliteStore;
//!
//! let store = SqliteStore::open("jobs.sqlite3")?; // creates or migrates the file
//! let jobs = Jobs::builder().store(store).start()?;
//! # drop(jobs);
//! # Ok(())
//! # }
//! ```
//!
//! [`SqliteStore`] keeps rows and applies the changes the runtime's engine asks for, in
//! batches; it decides nothing (retries, leases, rescues and events are the engine's).
//! The file is in WAL mode, so reads never wait for writes. One thread owns the write
//! connection and runs every change of the store: the changes that arrive while one
//! transaction runs share the next (each in its own savepoint), so a commit is paid per
//! group, not per call. A second thread serves the reads.
//!
//! SQLite lets one connection write at a time, across processes too; a claim, a
//! completion or a cluster-wide limit is therefore atomic without row locks, and a
//! write that waits longer than the busy timeout for another process fails with a
//! transient error, which the engine retries.
//!
//! Events reach this process's subscribers as soon as they are published, and are also
//! recorded in the file (one row per batch, kept 30 s), where the other processes' stores
//! find them: each looks every poll interval (20 ms by default) whether another
//! connection committed (`PRAGMA data_version`, a read of shared memory), and reads the
//! new rows only then. [`SqliteStore::submit_in`] stores a job inside the application's
//! own transaction.
#![warn(missing_docs)]

mod conn;
mod depend;
mod error;
mod migrate;
mod ops;
mod options;
mod rows;
mod sql;
mod store;

pub use options::{ConnectError, SqliteOptions, Synchronous};
/// The `rusqlite` this store is built on, for the application's own statements and
/// transactions (and [`SqliteStore::submit_in`]).
pub use rusqlite;
pub use store::SqliteStore;
