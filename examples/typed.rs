//! Typed job arguments and results: the compiler checks what is submitted, and the result
//! comes back as the executor's own type.
//!
//! Run it with `cargo run --example typed`.

use std::time::Duration;

use jobs::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug)]
struct ExportArgs {
    table: String,
    batch_size: u32,
}

#[derive(Serialize, Deserialize, Debug)]
struct ExportReport {
    table: String,
    rows: u64,
    batches: u32,
}

/// Pretends to export a table in batches, reporting progress after each.
#[job_executor("Export")]
async fn export(args: ExportArgs, ctx: JobContext) -> Result<ExportReport, anyhow::Error> {
    anyhow::ensure!(args.batch_size > 0, "batch_size must be at least 1");
    let rows = 1_000u64;
    let batches = rows.div_ceil(u64::from(args.batch_size)) as u32;
    for batch in 1..=batches {
        ctx.check_cancelled()?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let percent = (u64::from(batch) * 100 / u64::from(batches)) as u8;
        ctx.report_progress(
            percent,
            format!("batch {batch}/{batches} of {}", args.table),
        );
    }
    Ok(ExportReport {
        table: args.table,
        rows,
        batches,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let jobs = Jobs::builder().concurrency(2).start()?;

    // Watch every event of this service while the jobs run.
    let mut events = jobs.subscribe();
    let watcher = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            println!(
                "  event: {}",
                serde_json::to_string(&event).unwrap_or_default()
            );
        }
    });

    let handle = jobs
        .submit::<export>(ExportArgs {
            table: "users".into(),
            batch_size: 250,
        })
        .await?;
    println!("submitted {handle:?}");
    let report: ExportReport = jobs.wait_for_output(&handle).await?;
    println!("report: {report:?}");

    // A job that fails: the typed wait says how it ended.
    let bad = jobs
        .submit::<export>(ExportArgs {
            table: "orders".into(),
            batch_size: 0,
        })
        .await?;
    match jobs.wait_for_output(&bad).await {
        Ok(report) => println!("unexpected success: {report:?}"),
        Err(error) => println!("the second export did not succeed: {error}"),
    }

    // The same type by name, as a caller without the Rust types would submit it.
    let refused = jobs
        .submit_job_with("Export", serde_json::json!({ "table": 42 }))
        .await;
    if let Err(error) = refused {
        println!("refused: {error}");
    }

    jobs.shutdown().await;
    watcher.abort();
    Ok(())
}
