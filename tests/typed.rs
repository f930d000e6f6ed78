//! Typed submission and typed results, and the error types an executor may return.

mod common;

use common::finished;
use jobs::prelude::*;
use jobs::{JobType, NoArgs};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct ExportArgs {
    table: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct ExportReport {
    rows: u64,
}

#[job_executor("Export")]
async fn export(args: ExportArgs, ctx: JobContext) -> Result<ExportReport, anyhow::Error> {
    if args.table.is_empty() {
        anyhow::bail!("no table given");
    }
    ctx.report_progress(100, "copied");
    Ok(ExportReport {
        rows: args.table.len() as u64 * 1_000,
    })
}

#[derive(Debug, thiserror::Error)]
enum ImportError {
    #[error("the file {0} is empty")]
    Empty(String),
}

/// Context first, arguments second, a thiserror enum as the error.
#[job_executor("Import")]
async fn import(ctx: JobContext, file: String) -> Result<(), ImportError> {
    let _ = ctx.job_id();
    Err(ImportError::Empty(file))
}

#[job_executor("Ping")]
async fn ping() -> anyhow::Result<String> {
    Ok("pong".to_owned())
}

/// Declared with a path to the crate, as code that re-exports `jobs` would.
#[job_executor("Renamed", crate = ::jobs)]
async fn renamed(n: u32) -> Result<u32, String> {
    Ok(n + 1)
}

/// A context for calling an executor directly, without a service.
fn context() -> JobContext {
    let token = jobs::CancellationToken::new();
    JobContext::new(JobId::new(), "Export", 1, serde_json::Value::Null, token).0
}

#[tokio::test]
async fn typed_submission_returns_a_typed_output() {
    let jobs = Jobs::builder().concurrency(2).start().unwrap();
    let handle = jobs
        .submit::<export>(ExportArgs {
            table: "users".into(),
        })
        .await
        .unwrap();
    assert_eq!(handle.job().status, JobStatus::Queued);
    assert_eq!(handle.job().payload, json!({ "table": "users" }));
    let report = jobs.wait_for_output(&handle).await.unwrap();
    assert_eq!(report, ExportReport { rows: 5_000 });
    assert_eq!(
        jobs.get_output(&handle).await.unwrap(),
        Some(ExportReport { rows: 5_000 })
    );

    // The same job type takes string-typed submissions too.
    let job = jobs
        .submit_job_with("Export", json!({ "table": "orders" }))
        .await
        .unwrap();
    assert_eq!(finished(&jobs, job.id).await.status, JobStatus::Succeeded);
    assert_eq!(
        jobs.get_job_result(job.id).await.unwrap(),
        Some(json!({ "rows": 6_000 }))
    );
    jobs.shutdown().await;
}

#[tokio::test]
async fn a_typed_job_that_fails_reports_status_and_error() {
    let jobs = Jobs::builder().concurrency(1).start().unwrap();
    let handle = jobs
        .submit::<export>(ExportArgs {
            table: String::new(),
        })
        .await
        .unwrap();
    match jobs.wait_for_output(&handle).await {
        Err(JobsError::NotSucceeded { id, status, error }) => {
            assert_eq!(id, handle.id());
            assert_eq!(status, JobStatus::Failed);
            assert_eq!(error.as_deref(), Some("no table given"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(jobs.get_output(&handle).await.unwrap(), None);

    let import = jobs.submit::<import>("data.csv".to_owned()).await.unwrap();
    let done = finished(&jobs, import.id()).await;
    assert_eq!(done.error.as_deref(), Some("the file data.csv is empty"));
    jobs.shutdown().await;
}

#[tokio::test]
async fn every_accepted_signature_runs() {
    let jobs = Jobs::builder().concurrency(2).start().unwrap();
    let ping = jobs.submit::<ping>(NoArgs).await.unwrap();
    assert_eq!(jobs.wait_for_output(&ping).await.unwrap(), "pong");
    let renamed = jobs.submit::<renamed>(41).await.unwrap();
    assert_eq!(jobs.wait_for_output(&renamed).await.unwrap(), 42);
    jobs.shutdown().await;
}

#[test]
fn the_generated_type_describes_the_job_type() {
    assert_eq!(<export as JobType>::NAME, "Export");
    assert_eq!(<import as JobType>::NAME, "Import");
    fn args_of<J: JobType>() -> &'static str {
        std::any::type_name::<J::Args>()
    }
    assert!(args_of::<export>().ends_with("ExportArgs"));
    assert!(args_of::<ping>().ends_with("NoArgs"));
}

#[tokio::test]
async fn the_function_stays_callable_as_a_plain_function() {
    let report = export(ExportArgs { table: "ab".into() }, context())
        .await
        .unwrap();
    assert_eq!(report, ExportReport { rows: 2_000 });
    assert_eq!(ping().await.unwrap(), "pong");
}
