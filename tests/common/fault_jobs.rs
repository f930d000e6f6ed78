//! The job types of the fault tests with real worker processes (`faults.rs` on
//! PostgreSQL, `sqlite.rs` on SQLite): a job that can hang on its first attempt, and one
//! that runs until canceled.

use std::time::Duration;

use jobs::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct FaultArgs {
    /// Hang on the first attempt, so that the test can kill the worker mid-job.
    hang_first: bool,
    sleep_ms: u64,
}

#[job_executor("Fault")]
async fn fault(args: FaultArgs, ctx: JobContext) -> Result<u32, JobError> {
    ctx.report_progress(1, format!("attempt {}", ctx.attempt()));
    if args.hang_first && ctx.attempt() == 1 {
        tokio::time::sleep(Duration::from_secs(3_600)).await;
    }
    tokio::time::sleep(Duration::from_millis(args.sleep_ms)).await;
    Ok(ctx.attempt())
}

/// Runs until canceled.
#[job_executor("FaultWaits")]
async fn fault_waits(ctx: JobContext) -> Result<(), JobError> {
    ctx.report_progress(1, "waiting to be canceled");
    ctx.cancelled().await;
    ctx.check_cancelled()
}
