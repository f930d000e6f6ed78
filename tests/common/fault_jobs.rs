//! The job types of the fault tests with real worker processes (`faults.rs` on
//! PostgreSQL, `sqlite.rs` on SQLite): a job that can hang on its first attempt, one
//! that runs until canceled, and the steps of workflows (a dependant that takes its
//! parent's result, a batch member that may fail, a batch callback).

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

/// A dependant: runs with its parent's result (a `Fault` job's attempt) and returns it
/// plus 100, so that the test sees the value came through.
#[job_executor("FaultChild")]
async fn fault_child(parent: u32) -> Result<u32, JobError> {
    tokio::time::sleep(Duration::from_millis(5)).await;
    Ok(parent + 100)
}

#[derive(Deserialize)]
struct MemberArgs {
    fail: bool,
    sleep_ms: u64,
}

/// A member of a batch, which fails when told to.
#[job_executor("FaultMember")]
async fn fault_member(args: MemberArgs) -> Result<(), JobError> {
    tokio::time::sleep(Duration::from_millis(args.sleep_ms)).await;
    if args.fail {
        return Err(JobError::permanent("told to fail"));
    }
    Ok(())
}

/// The callback of a batch: returns the counts it was given, `[succeeded, failed,
/// canceled]`.
#[job_executor("FaultReport")]
async fn fault_report(summary: jobs::BatchSummary) -> Result<[usize; 3], JobError> {
    Ok([
        summary.succeeded.len(),
        summary.failed.len(),
        summary.canceled.len(),
    ])
}
