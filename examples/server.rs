//! The jobs HTTP API and dashboard with example job types. Jobs are kept in the SQLite
//! file `jobs.sqlite3` in the working directory, so they outlive a restart or a crash;
//! `JOBS_DATABASE_URL` chooses another place (`sqlite://path`, `postgres://…`, or
//! `memory` to keep nothing), and `DATABASE_URL=postgres://…` selects PostgreSQL when
//! `JOBS_DATABASE_URL` is not set. `JOBS_API_TOKEN`, when set, is required as a bearer
//! token, and `JOBS_ADDR` changes the address (default 127.0.0.1:8080).
//!
//! ```sh
//! cargo run --example server --features full   # then open http://127.0.0.1:8080/ for the dashboard
//! curl -s -X POST localhost:8080/jobs -H 'content-type: application/json' \
//!      -d '{"type": "Countdown", "payload": {"steps": 5}}'
//! curl -s localhost:8080/jobs/<id>
//! curl -N localhost:8080/events
//! ```

use std::time::Duration;

use jobs::prelude::*;
use schemars::JsonSchema;
use serde::Deserialize;

/// Counts down, a step a second.
#[derive(Deserialize, JsonSchema)]
struct CountdownArgs {
    /// How many one-second steps to take, 1 to 100 (0 is taken as 1, more than 100 as
    /// 100; the schema says what deserializes, which is every `u8`).
    steps: u8,
}

/// Counts down, a step a second, reporting progress; stops early when canceled.
#[job_executor("Countdown", timeout = "5m")]
async fn countdown(args: CountdownArgs, ctx: JobContext) -> Result<serde_json::Value, JobError> {
    let steps = args.steps.clamp(1, 100);
    for step in 1..=steps {
        tokio::select! {
            _ = ctx.cancelled() => return Err(JobError::Canceled),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let percent = (u16::from(step) * 100 / u16::from(steps)) as u8;
        ctx.report_progress(percent, format!("step {step} of {steps}"));
    }
    Ok(serde_json::json!({ "message": "lift-off", "steps": steps }))
}

/// Fails its first two attempts, then succeeds: retries with backoff, and the errors of
/// the failed attempts kept on the job.
#[job_executor("Flaky", retries = 3, backoff = "1s")]
async fn flaky(ctx: JobContext) -> Result<String, JobError> {
    if ctx.attempt() < 3 {
        return Err(JobError::failed(format!(
            "the service it calls was down (attempt {})",
            ctx.attempt()
        )));
    }
    Ok(format!("done on attempt {}", ctx.attempt()))
}

/// Fails on purpose, to show an error in the API.
#[job_executor("AlwaysFails")]
async fn always_fails(reason: String) -> Result<(), JobError> {
    Err(JobError::Failed(reason))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let builder = Jobs::builder().concurrency(8);
    let url = std::env::var("JOBS_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .or_else(|| {
            std::env::var("DATABASE_URL")
                .ok()
                .filter(|url| url.starts_with("postgres"))
        })
        .unwrap_or_else(|| "sqlite://jobs.sqlite3".to_owned());
    let (builder, storage) = if url == "memory" {
        (builder, "memory".to_owned())
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let backend = jobs::postgres::PostgresStore::connect(&url).await?;
        backend.migrate().await?;
        (builder.store(backend), "PostgreSQL".to_owned())
    } else {
        let backend = jobs::sqlite::SqliteStore::connect(&url, jobs::sqlite::SqliteOptions::new())?;
        let storage = format!("SQLite file {}", backend.path().display());
        (builder.store(backend), storage)
    };
    let jobs = builder.start()?;
    let options = jobs::http::HttpOptions::new().bearer_token_from_env("JOBS_API_TOKEN");
    if options.is_unauthenticated() {
        println!(
            "no JOBS_API_TOKEN: serving without authentication, to loopback host names only \
             (localhost, 127.0.0.1, [::1]); set JOBS_API_TOKEN to serve other hosts"
        );
    }
    let app = jobs::http::router_with(jobs.clone(), options);
    let addr = std::env::var("JOBS_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "jobs API and dashboard on http://{}/ (storage: {storage}; job types: {})",
        listener.local_addr()?,
        jobs.job_types().join(", ")
    );
    let stopping = jobs.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop_signal().await;
            println!("shutting down");
            // Shutting the service down ends every event stream (with a last `shutdown`
            // event), so the server's graceful shutdown does not wait on open dashboards.
            tokio::spawn(async move { stopping.shutdown().await });
        })
        .await?;
    jobs.shutdown().await;
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM (what a process manager sends).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
