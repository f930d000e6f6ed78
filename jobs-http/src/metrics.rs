//! `GET /metrics` in the Prometheus text format.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use jobs_runtime::JobStatus;

use crate::{ApiError, AppState};

/// A label value with `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics`: jobs by type and status (from the store, so every process sees
/// the same), the number of queued jobs, and the durations of the executions this
/// process finished.
pub(crate) async fn serve(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let counts = state
        .jobs
        .store()
        .count_jobs()
        .await
        .map_err(|error| ApiError::internal(&error))?;
    let mut out = String::new();
    out.push_str("# HELP jobs Jobs in the store, by type and status.\n# TYPE jobs gauge\n");
    for count in &counts {
        let _ = writeln!(
            out,
            "jobs{{type=\"{}\",status=\"{}\"}} {}",
            label(&count.job_type),
            count.status,
            count.count
        );
    }
    let queued: u64 = counts
        .iter()
        .filter(|count| count.status == JobStatus::Queued)
        .map(|count| count.count)
        .sum();
    out.push_str("# HELP jobs_queue_depth Jobs waiting to run.\n# TYPE jobs_queue_depth gauge\n");
    let _ = writeln!(out, "jobs_queue_depth {queued}");
    out.push_str(
        "# HELP jobs_execution_duration_seconds Run time of the executions this process finished, by type and outcome.\n\
         # TYPE jobs_execution_duration_seconds histogram\n",
    );
    for (job_type, entry) in state.jobs.catalog().entries() {
        for histogram in entry.stats().histograms() {
            let labels = format!(
                "type=\"{}\",status=\"{}\"",
                label(job_type),
                histogram.status
            );
            for (bound, count) in &histogram.buckets {
                let _ = writeln!(
                    out,
                    "jobs_execution_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "jobs_execution_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "jobs_execution_duration_seconds_sum{{{labels}}} {}",
                histogram.sum_seconds
            );
            let _ = writeln!(
                out,
                "jobs_execution_duration_seconds_count{{{labels}}} {}",
                histogram.count
            );
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}
