//! Helpers for testing an application's jobs.
//!
//! - [`TestJobs`]: a real [`Jobs`](crate::Jobs) service over an in-memory store whose jobs
//!   run when the test says: in [`Mode::Manual`] submitted jobs stay `Queued` until
//!   [`TestJobs::drain`], which runs every due job (the jobs those jobs submit included)
//!   and answers what ran; in [`Mode::Inline`] a submit returns once its jobs have run.
//!   Jobs go through the same engine as in production: policies, retries, time limits,
//!   events.
//! - [`TestJobs::assert_enqueued`] (typed) and [`TestJobs::assert_enqueued_type`] (by name,
//!   with a JSON predicate), whose failure lists what was queued instead.
//! - [`ExecutorTest`]: one executor run directly, with a test context: every progress
//!   report kept, the cancellation token fired where the test says, any attempt number.
//! - Time: on a paused test clock, `TestJobs::advance` (cargo feature `testing`) makes
//!   delays, retry backoff, snoozes, time limits and cron ticks fall due at once.
//!
//! A test that submits and drains:
//!
//! ```
//! use jobs::prelude::*;
//! use jobs::testing::TestJobs;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Email { to: String }
//!
//! #[job_executor("DocTestWelcome")]
//! async fn send_welcome(email: Email) -> Result<String, JobError> {
//!     Ok(format!("welcome sent to {}", email.to))
//! }
//!
//! // The code under test submits a job.
//! async fn sign_up(jobs: &Jobs, address: &str) -> Result<(), SubmitError> {
//!     jobs.submit::<send_welcome>(Email { to: address.into() }).await?;
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let test = TestJobs::manual(Jobs::builder())?;
//! sign_up(&test, "a@b.c").await?;
//! let job = test.assert_enqueued::<send_welcome>(|email| email.to == "a@b.c").await;
//!
//! let ran = test.drain().await;
//! assert_eq!(ran.succeeded(), 1);
//! assert_eq!(test.get_job_result(job.id).await?.unwrap(), "welcome sent to a@b.c");
//! assert!(test.enqueued().await.is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! One executor with a test context:
//!
//! ```
//! use jobs::prelude::*;
//! use jobs::testing::ExecutorTest;
//!
//! #[job_executor("DocTestCopy")]
//! async fn copy(rows: u32, ctx: JobContext) -> Result<u32, JobError> {
//!     for done in 1..=rows {
//!         ctx.check_cancelled()?;
//!         ctx.report_progress((done * 100 / rows) as u8, format!("row {done}"));
//!     }
//!     Ok(rows)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let run = ExecutorTest::<copy>::new(4).attempt(2).run().await;
//! assert_eq!(run.output().unwrap(), 4);
//! assert_eq!(run.percents(), [25, 50, 75, 100]);
//!
//! // The token fires at the report that reaches half way; the executor stops there.
//! let run = ExecutorTest::<copy>::new(4).cancel_when(|p| p.percent >= 50).run().await;
//! assert!(run.was_canceled());
//! assert_eq!(run.percents(), [25, 50]);
//! # }
//! ```
//!
//! Retries on a paused clock: three failures with a minute of backoff, in milliseconds.
//!
//! ```
//! use std::time::Duration;
//! use jobs::prelude::*;
//! use jobs::testing::TestJobs;
//!
//! #[job_executor("DocTestFlaky", retries = 3, backoff = "1m")]
//! async fn flaky(ctx: JobContext) -> Result<u32, JobError> {
//!     if ctx.attempt() <= 3 {
//!         return Err(JobError::failed("not yet"));
//!     }
//!     Ok(ctx.attempt())
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // In a test: #[tokio::test(start_paused = true)]
//! let test = TestJobs::manual(Jobs::builder())?;
//! let job = test.submit_job("DocTestFlaky").await?;
//! for _ in 0..4 {
//!     test.drain().await;                             // one attempt
//!     test.advance(Duration::from_secs(600)).await;   // past its backoff
//! }
//! let done = test.get_job(job.id).await?.unwrap();
//! assert_eq!((done.status, done.attempt), (JobStatus::Succeeded, 4));
//! # Ok(())
//! # }
//! ```
//!
//! ## Time
//!
//! On a test runtime whose clock is paused (`#[tokio::test(start_paused = true)]`, which
//! needs tokio's `test-util` feature in the application's dev-dependencies),
//! `TestJobs::advance` moves time. While the paused runtime has nothing else to do,
//! tokio also moves its clock on by itself to the next timer, so a job that sleeps an
//! hour of test time finishes at once, and [`Jobs::wait_for`](crate::Jobs::wait_for) of a
//! job that retries after a backoff returns once it has run out.
//!
//! The service's clock ([`Timestamp::now`](crate::Timestamp::now): due times, backoff,
//! cron ticks) follows the runtime's, because [`TestJobs`] installs a
//! [`ThreadClock`](crate::ThreadClock) on the thread it starts on; a current-thread
//! runtime (the kind that can pause) runs every task there. On a multi-thread runtime it
//! installs none, and time is the system's. Leases and rate-limit windows are measured
//! on the monotonic system clock and do not move with the test's.

#[doc(inline)]
pub use jobs_runtime::testing::*;
