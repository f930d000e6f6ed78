//! `GET /metrics` in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use jobs_runtime::{JobStatus, RateScope, WaitReason};

use crate::error::if_supported;
use crate::{ApiError, AppState};

/// A label value with `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The store's figures for `/metrics` as text, and when they were read.
pub(crate) type StoreFigures = (Instant, Arc<str>);

/// `GET /metrics`: jobs by type and status (from the store, so every process sees
/// the same), the number of queued jobs, jobs held back by limits, unserved queues (the
/// store's figures, read at most once per `HttpOptions::metrics_cache`), and the durations
/// of the executions this process finished.
pub(crate) async fn serve(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let mut out = {
        // One read at a time: scrapes that come during a read wait for it and share it.
        let mut cached = state.store_metrics.lock().await;
        match cached.as_ref() {
            Some((read_at, text)) if read_at.elapsed() < state.metrics_cache => text.to_string(),
            _ => {
                let text: Arc<str> = Arc::from(store_figures(&state).await?);
                *cached = Some((Instant::now(), text.clone()));
                text.to_string()
            }
        }
    };
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

/// The figures `/metrics` reads from the store, as Prometheus text.
async fn store_figures(state: &AppState) -> Result<String, ApiError> {
    let counts = state
        .jobs
        .store()
        .estimate_counts()
        .await
        .map_err(|error| ApiError::internal(&error))?;
    let mut out = String::new();
    out.push_str("# HELP jobs Jobs in the store, by type and status (a store may estimate large counts: see jobs_estimated).\n# TYPE jobs gauge\n");
    for count in &counts {
        let _ = writeln!(
            out,
            "jobs{{type=\"{}\",status=\"{}\"}} {}",
            label(&count.job_type),
            count.status,
            count.count
        );
    }
    if counts.iter().any(|count| count.estimated) {
        out.push_str(
            "# HELP jobs_estimated 1 for the pairs of type and status whose count in `jobs` is an estimate.\n\
             # TYPE jobs_estimated gauge\n",
        );
        for count in counts.iter().filter(|count| count.estimated) {
            let _ = writeln!(
                out,
                "jobs_estimated{{type=\"{}\",status=\"{}\"}} 1",
                label(&count.job_type),
                count.status
            );
        }
    }
    let queued: u64 = counts
        .iter()
        .filter(|count| count.status == JobStatus::Queued)
        .map(|count| count.count)
        .sum();
    out.push_str("# HELP jobs_queue_depth Jobs waiting to run.\n# TYPE jobs_queue_depth gauge\n");
    let _ = writeln!(out, "jobs_queue_depth {queued}");
    // Queues whose jobs no process serves.
    if let Some(unserved) = if_supported(state.jobs.unserved_queues().await)? {
        out.push_str(
            "# HELP jobs_unserved_queue_jobs Queued jobs of a queue that no process with a recent heartbeat serves.\n\
             # TYPE jobs_unserved_queue_jobs gauge\n",
        );
        for queue in unserved {
            let _ = writeln!(
                out,
                "jobs_unserved_queue_jobs{{queue=\"{}\"}} {}",
                label(&queue.queue),
                queue.waiting
            );
        }
    }
    // What holds due jobs back; a store without the operator's calls cannot tell.
    if let Some(waits) = if_supported(state.jobs.limit_waits().await)? {
        out.push_str(
            "# HELP jobs_waiting_on_limit Due jobs held back by a limit: a paused queue, a spent rate limit, a busy concurrency key (the 100 busiest).\n\
             # TYPE jobs_waiting_on_limit gauge\n",
        );
        for wait in waits {
            let what = match &wait.reason {
                WaitReason::QueuePaused { queue } => format!("queue=\"{}\"", label(queue)),
                WaitReason::RateLimit {
                    scope: RateScope::Queue(queue),
                } => format!("queue=\"{}\"", label(queue)),
                WaitReason::RateLimit {
                    scope: RateScope::JobType(job_type),
                } => format!("type=\"{}\"", label(job_type)),
                WaitReason::KeyBusy { key } => format!("key=\"{}\"", label(key)),
                _ => continue,
            };
            let _ = writeln!(
                out,
                "jobs_waiting_on_limit{{limit=\"{}\",{what}}} {}",
                wait.reason.kind(),
                wait.waiting
            );
        }
    }
    Ok(out)
}
