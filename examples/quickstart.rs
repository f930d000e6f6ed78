//! The quickstart: one job type that takes ten steps, submitted and polled until it ends.
//!
//! Run it with `cargo run --example quickstart`.

use std::time::Duration;

use jobs::prelude::*;

/// Ten steps of 100 ms, reporting progress after each and stopping early when canceled.
#[job_executor("YourJobType")]
async fn your_job(ctx: JobContext) -> Result<serde_json::Value, JobError> {
    for i in 1..=10u8 {
        ctx.check_cancelled()?; // early exit once a cancel was requested
        tokio::time::sleep(Duration::from_millis(100)).await;
        ctx.report_progress(i * 10, format!("Running {i}/10..."));
    }
    Ok(serde_json::json!({ "message": "Job complete", "jobId": ctx.job_id() }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let jobs = Jobs::builder().concurrency(4).start()?;
    println!("job types: {:?}", jobs.job_types());

    let job = jobs.submit_job("YourJobType").await?;
    println!("submitted {} ({}): {}", job.id, job.job_type, job.status);

    // Poll the way a client of a remote service would; `jobs.wait_for(id)` waits without
    // polling.
    let mut last = None;
    loop {
        let Some(current) = jobs.get_job(job.id).await? else {
            return Err("the job disappeared".into());
        };
        let line = match &current.progress {
            Some(p) => format!("{} {:>3}% {}", current.status, p.percent, p.message),
            None => current.status.to_string(),
        };
        if last.as_ref() != Some(&line) {
            println!("  {line}");
            last = Some(line);
        }
        if current.status.is_terminal() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let result = jobs.get_job_result(job.id).await?;
    println!("result: {}", serde_json::to_string(&result)?);

    // A second job, canceled while it runs.
    let doomed = jobs.submit_job("YourJobType").await?;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let canceled = jobs.cancel_job(doomed.id).await?;
    let doomed = jobs.wait_for(doomed.id).await?;
    println!(
        "canceled a running job: {canceled}; it ended {} at {}%",
        doomed.status,
        doomed.progress.map_or(0, |p| p.percent)
    );

    // Unknown types are refused before anything is stored.
    if let Err(error) = jobs.submit_job("NoSuchType").await {
        println!("refused: {error}");
    }

    jobs.shutdown().await;
    Ok(())
}
