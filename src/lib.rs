//! # jobs
//!
//! Background jobs for Rust: declare a job type with one attribute, then submit jobs, watch
//! their status and progress, fetch their results and cancel them.
//!
//! ```
//! use std::time::Duration;
//! use jobs::prelude::*;
//!
//! #[job_executor("Countdown")]
//! async fn countdown(ctx: JobContext) -> Result<serde_json::Value, JobError> {
//!     for i in 1..=5u8 {
//!         ctx.check_cancelled()?; // return early once a cancel was requested
//!         tokio::time::sleep(Duration::from_millis(5)).await;
//!         ctx.report_progress(i * 20, format!("step {i}/5"));
//!     }
//!     Ok(serde_json::json!({ "message": "done", "jobId": ctx.job_id() }))
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let jobs = Jobs::builder().concurrency(4).start()?;   // an in-memory store
//! let job = jobs.submit_job("Countdown").await?;        // Queued
//! let done = jobs.wait_for(job.id).await?;              // woken by events, no polling
//! assert_eq!(done.status, JobStatus::Succeeded);
//! assert_eq!(done.progress.unwrap().percent, 100);
//! let result = jobs.get_job_result(job.id).await?.unwrap();
//! assert_eq!(result["message"], "done");
//! jobs.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Declaring job types
//!
//! [`macro@job_executor`] goes on a free `async fn`. The function takes, in any order, at
//! most one arguments parameter (an owned type implementing `serde::Deserialize`, into
//! which the job's JSON payload is deserialized) and at most one [`JobContext`]. It returns
//! `Result<T, E>` where `T: Serialize` (the job's result; `()` and `serde_json::Value`
//! included) and `E: Display` ([`JobError`], `anyhow::Error`, a `thiserror` enum...). Its
//! future must be `Send`. The function stays callable as a plain function.
//!
//! The attribute registers the executor with [`inventory`](https://docs.rs/inventory), so
//! the service's [`Catalog`] finds it at start-up without any registration call. Two
//! executors with one type name are a start-up error naming both source locations. A crate
//! the program never references is not linked, and its executors are not found: reference
//! it, or register executors by hand with [`JobsBuilder::register`] (see [`executor_fn`]).
//!
//! ## Typed submission
//!
//! Next to the function, the attribute generates a type of the same name implementing
//! [`JobType`]. Submitting through it checks the arguments at compile time and reads the
//! result back as the function's output type:
//!
//! ```
//! use jobs::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct ExportArgs { table: String }
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct ExportReport { rows: u64 }
//!
//! #[job_executor("DocExport")]
//! async fn export(args: ExportArgs) -> Result<ExportReport, JobError> {
//!     Ok(ExportReport { rows: args.table.len() as u64 })
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let jobs = Jobs::builder().start()?;
//! let handle = jobs.submit::<export>(ExportArgs { table: "users".into() }).await?;
//! let report = jobs.wait_for_output(&handle).await?;
//! assert_eq!(report, ExportReport { rows: 5 });
//! # jobs.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Workflows
//!
//! A [`Flow`] puts typed steps together: [`Flow::then`] runs a step with its parent's
//! output, [`Flow::join`] with the outputs of several, [`Flow::after`] with arguments of
//! its own once its parents are done, and a [`Batch`]'s callback once every member has
//! finished, with a [`BatchSummary`]. [`Jobs::submit_flow`] stores every step in one store
//! call, under one [`FlowId`]; [`Jobs::get_flow`] shows how far it got and
//! [`Jobs::cancel_flow`] cancels what is left (see [`workflow`]).
//!
//! ```
//! use jobs::prelude::*;
//!
//! #[job_executor("DocShard")]
//! async fn shard(n: u64) -> Result<u64, JobError> {
//!     Ok(n * n)
//! }
//!
//! #[job_executor("DocTotal")]
//! async fn total(squares: Vec<u64>) -> Result<String, JobError> {
//!     Ok(format!("{squares:?} make {}", squares.iter().sum::<u64>()))
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let jobs = Jobs::builder().start()?;
//! let mut flow = Flow::new();
//! let shards: Vec<_> = (1..=3).map(|n| flow.start::<shard>(n)).collect();
//! let sum = flow.join::<total>(&shards); // `total` takes the shards' outputs, in order
//! let submitted = jobs.submit_flow(flow).await?;
//! let text = jobs.wait_for_output(&submitted.handle(&sum)).await?;
//! assert_eq!(text, "[1, 4, 9] make 14");
//! let view = jobs.get_flow(submitted.id()).await?.unwrap();
//! assert_eq!((view.counts.succeeded, view.counts.total, view.edges.len()), (4, 4, 3));
//! # jobs.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! A step that does not take what its parent returns does not compile:
//!
//! ```compile_fail,E0277
//! use jobs::prelude::*;
//!
//! #[job_executor("DocCount")]
//! async fn count(text: String) -> Result<usize, JobError> {
//!     Ok(text.len())
//! }
//!
//! #[job_executor("DocShout")]
//! async fn shout(text: String) -> Result<String, JobError> {
//!     Ok(text.to_uppercase())
//! }
//!
//! let mut flow = Flow::new();
//! let counted = flow.start::<count>("hello".to_owned());
//! flow.then::<shout>(&counted); // `count` returns `usize`, `shout` takes `String`
//! ```
//!
//! ## Statuses, errors and cancellation
//!
//! A job moves `Queued → Running → Succeeded | Failed | Canceled`, or `Queued → Canceled`
//! when canceled before it ran, and back from `Running` to `Queued` for a retry; terminal
//! states never change ([`JobStatus`]). Every change
//! is a compare-and-set in the store. Submitting an unknown type fails with
//! [`SubmitError::UnknownJobType`] (listing the known types) and a payload that does not
//! deserialize into the executor's arguments with [`SubmitError::InvalidPayload`]; neither
//! stores anything. [`Jobs::cancel_job`] cancels a queued job at once; for a running job it
//! fires the job's cancellation token, and the job ends `Canceled` when its executor
//! returns an error (as `ctx.check_cancelled()?` does). A panicking executor fails its job
//! with the panic message; the worker lives on.
//!
//! ## Run policies
//!
//! A job type declares retries (with exponential backoff and jitter), a time limit, a
//! priority and a cron schedule on the attribute; a submission can override them with
//! [`SubmitOptions`], which also starts a job later and makes it unique by a key. Every
//! failed attempt's error stays on the job ([`Job::errors`]). An executor that returns
//! [`JobError::permanent`] is not retried; [`JobError::snooze`] runs it again later
//! without counting a failure. [`JobsBuilder::retention`] deletes finished jobs after an
//! age. The options are checked at compile time.
//!
//! ```
//! use std::time::Duration;
//! use jobs::prelude::*;
//!
//! #[job_executor("DocFlaky", retries = 2, backoff = "10ms", timeout = "5s")]
//! async fn flaky(ctx: JobContext) -> Result<u32, JobError> {
//!     if ctx.attempt() < 3 {
//!         return Err(JobError::failed(format!("not yet ({})", ctx.attempt())));
//!     }
//!     Ok(ctx.attempt())
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let jobs = Jobs::builder().start()?;
//! let job = jobs.submit_job("DocFlaky").await?;
//! let done = jobs.wait_for(job.id).await?;
//! assert_eq!((done.status, done.attempt), (JobStatus::Succeeded, 3));
//! assert_eq!(done.errors.len(), 2); // "not yet (1)", "not yet (2)"
//!
//! let later = SubmitOptions::new().delay(Duration::from_secs(60)).unique_key("nightly");
//! let first = jobs.submit_job_with_options("DocFlaky", serde_json::Value::Null, &later).await?;
//! let again = jobs.submit_job_with_options("DocFlaky", serde_json::Value::Null, &later).await?;
//! assert_eq!(first.id, again.id); // the key is held while the first is queued
//! # jobs.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Stores and the engine
//!
//! Jobs live in a store ([`JobStore`]): in memory by default ([`memory::InMemoryStore`]:
//! fast, for one process, not durable), SQLite with the cargo feature `sqlite`
//! (`jobs::sqlite`: durable jobs in one file, shared by the processes of one machine, no
//! server to run), or PostgreSQL with the cargo feature `postgres` (`jobs::postgres`:
//! many worker processes on many machines share one database and see each other's events
//! through `LISTEN/NOTIFY`). A store keeps rows and applies fenced
//! changes in batches; it decides nothing. The engine inside every [`Jobs`] service runs
//! the same pipeline over any store:
//!
//! ```text
//! submit / cron tick ──► store.insert_many
//!   per queue: claim ahead in batches ──► buffer ──► workers ──► executor(ctx)
//!   lease keeper: renew held leases in one call; a lost lease fires the token
//!   completion batcher ──► store.complete_many (fenced by id, attempt, holder; retried)
//!   rescuer: expired leases ──► retried, failed or canceled by each job's policy
//!   events, built from the store's answers ──► subscribers, waiters, other processes
//! ```
//!
//! [`testing`] has what an application's tests need: a service whose jobs run when the
//! test drains them (or inline, at submit), assertions on what was submitted, one
//! executor run with a test context, and time moved on a paused clock.
//!
//! Other cargo features: `http` (`jobs::http`, the HTTP API and dashboard), `schemars`
//! (argument schemas), `testing` (a paused test clock), `jiff`, `chrono` and `time`
//! (conversions of `Timestamp`), `otel` (a job continues the OpenTelemetry trace it was
//! submitted in, through `tracing-opentelemetry`), and `full` (`http`, `postgres`,
//! `sqlite`, `schemars`, `otel`).
//!
//! Delivery is at least once: a job may run again after a crash, so write executors that
//! are safe to run again. A stale attempt can never finish a job, and once its lease is
//! lost it is told to stop at once ([`JobContext::is_cancelled`] is true as soon as the
//! lease has run out by the local clock, even in a process that was paused).
#![warn(missing_docs)]

#[doc(inline)]
pub use jobs_macros::job_executor;
#[doc(inline)]
pub use jobs_runtime::*;

pub mod testing;

/// The JSON library job payloads and results are expressed in.
pub use serde_json;

/// The PostgreSQL store (cargo feature `postgres`): durable jobs shared by many
/// processes. `Jobs::builder().store(PostgresStore::connect(url).await?)`.
#[cfg(feature = "postgres")]
#[doc(inline)]
pub use jobs_postgres as postgres;

/// The SQLite store (cargo feature `sqlite`): durable jobs in one file, shared by the
/// processes of one machine. `Jobs::builder().store(SqliteStore::open("jobs.sqlite3")?)`.
#[cfg(feature = "sqlite")]
#[doc(inline)]
pub use jobs_sqlite as sqlite;

/// The HTTP API and dashboard (cargo feature `http`): an axum `Router` over a `Jobs`
/// handle, `jobs::http::router(jobs)`, to mount beside the application's own routes.
#[cfg(feature = "http")]
#[doc(inline)]
pub use jobs_http as http;

/// What most users import: `use jobs::prelude::*;`.
pub mod prelude {
    #[doc(no_inline)]
    pub use crate::{
        job_executor, Batch, BatchSummary, Flow, Job, JobContext, JobError, JobHandle, JobId,
        JobQuery, JobStatus, Jobs, JobsError, SubmitError, SubmitOptions,
    };
}

/// Paths used by the code `#[job_executor]` generates. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use jobs_core::inventory;
    pub use jobs_core::macro_support::*;
    pub use jobs_core::{
        Backoff, BoxFuture, ConcurrencyKey, ExecutionError, ExecutorRegistration, JobContext,
        JobExecutor, JobPolicy, JobType, NoArgs, PayloadError, RateLimit, SourceLocation,
    };
    pub use serde_json::Value;
    pub use std::sync::Arc;
}
