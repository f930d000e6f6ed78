//! The dashboard end to end in headless Chromium: a person's path through the page —
//! give the token, submit a job and watch its progress reach 100 %, read its result,
//! cancel a running job, see a failing job's error (markup in it shown as text), see a
//! retried job's earlier error, be told about a bad payload, filter by status; then the
//! operator's console: the queues view with its workers, the throughput chart's live
//! update, retry from a row, find by id and a job's page with its attempts, delete,
//! a queue filter, bulk cancel / retry / delete behind a confirmation, and pausing and
//! resuming a queue; then flows: a chain submitted by ids, reached from a job's page,
//! whose steps change status live to the end, and a flow canceled from its page — driven
//! by `tests/e2e/dashboard.mjs`
//! (playwright-core) against a real server with the router mounted under a prefix, and
//! then checked against the job store.
//!
//! Needs Debian's `chromium` and `npm ci --prefix jobs-http/tests/e2e`. Without them the
//! test says so and passes locally; with `CI` set it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use jobs_http::{router_with, HttpOptions};
use jobs_runtime::{
    executor_fn, Backoff, BoxFuture, ExecutionError, FlowId, JobContext, JobError, JobExecutor,
    JobId, JobPolicy, JobStatus, Jobs, PayloadError,
};
use serde_json::{json, Value};

const TOKEN: &str = "dashboard-secret";

/// The error message of the failing job: markup that must be shown, never run.
const HOSTILE: &str = "disk on fire <img src=x onerror=\"window.pwned=1\">";

/// `{"steps": n, "delayMs": ms}`: n steps of ms each, reporting progress after each.
struct Steps;

impl Steps {
    fn read(payload: &Value) -> Result<(u64, u64), PayloadError> {
        let steps = payload["steps"]
            .as_u64()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| PayloadError::new("`steps` must be a whole number from 1 to 100"))?;
        let delay = payload["delayMs"].as_u64().unwrap_or(100).min(5_000);
        Ok((steps, delay))
    }
}

impl JobExecutor for Steps {
    fn job_type(&self) -> &str {
        "Steps"
    }

    fn validate(&self, payload: &Value) -> Result<(), PayloadError> {
        Self::read(payload).map(drop)
    }

    fn execute(&self, ctx: JobContext) -> BoxFuture<'static, Result<Value, ExecutionError>> {
        Box::pin(async move {
            let (steps, delay) = Self::read(ctx.payload()).map_err(ExecutionError::new)?;
            for step in 1..=steps {
                tokio::select! {
                    _ = ctx.cancelled() => return Err(ExecutionError::new(JobError::Canceled)),
                    _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
                }
                ctx.report_progress(
                    (step * 100 / steps) as u8,
                    format!("step {step} of {steps}"),
                );
            }
            Ok(json!({ "done": steps }))
        })
    }

    fn args_schema(&self) -> Option<Value> {
        Some(json!({
            "type": "object",
            "required": ["steps"],
            "properties": {
                "steps": { "type": "integer", "minimum": 1, "maximum": 100 },
                "delayMs": { "type": "integer", "default": 100 }
            }
        }))
    }
}

fn jobs() -> Jobs {
    Jobs::builder()
        .discover(false)
        .concurrency(4)
        .register(Steps)
        .register(executor_fn("Wait", |ctx| async move {
            ctx.report_progress(10, "waiting to be canceled");
            ctx.cancelled().await;
            ctx.check_cancelled()
        }))
        .register(
            executor_fn("Retry", |ctx| async move {
                if ctx.attempt() == 1 {
                    return Err(JobError::failed("first attempt lost its connection"));
                }
                Ok(ctx.attempt())
            })
            .with_policy(JobPolicy::new().retries(1).backoff(Backoff::new(
                Duration::from_millis(10),
                Duration::from_secs(1),
            ))),
        )
        .register(executor_fn("Explode", |ctx| async move {
            // The message comes from the payload: the page must show it as text.
            let message = ctx.payload()["message"].as_str().unwrap_or("disk on fire");
            Err::<(), _>(JobError::failed(message))
        }))
        .start()
        .unwrap()
}

/// The browser and the driver, or why they are missing.
fn tools() -> Result<(PathBuf, PathBuf), String> {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.exists() {
        return Err(format!(
            "no browser at {} (apt-get install chromium, or set CHROMIUM)",
            chromium.display()
        ));
    }
    if !e2e.join("node_modules/playwright-core").exists() {
        return Err(
            "playwright-core is not installed (npm ci --prefix jobs-http/tests/e2e)".into(),
        );
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Err("node is not installed".into());
    }
    Ok((chromium, e2e.join("dashboard.mjs")))
}

async fn status_of(jobs: &Jobs, id: &str) -> (JobStatus, Option<String>) {
    let id: JobId = id.parse().unwrap();
    let job = jobs.get_job(id).await.unwrap().expect("the job is stored");
    (job.status, job.error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_can_submit_watch_cancel_and_read_errors_in_the_dashboard() {
    let (chromium, script) = match tools() {
        Ok(tools) => tools,
        Err(missing) if std::env::var_os("CI").is_some() => {
            panic!("the dashboard test cannot run: {missing}")
        }
        Err(missing) => {
            eprintln!("skipped: {missing}");
            return;
        }
    };
    let jobs = jobs();
    // Mounted under a prefix, as an application would next to its own routes.
    let app = axum::Router::new().nest(
        "/ops",
        router_with(jobs.clone(), HttpOptions::new().bearer_token(TOKEN)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ops", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let screenshot = std::env::var_os("DASHBOARD_SCREENSHOT");
    let output = tokio::task::spawn_blocking(move || {
        let mut command = Command::new("node");
        command
            .arg(script)
            .arg(url)
            .env("CHROMIUM", chromium)
            .env("JOBS_TOKEN", TOKEN)
            .env("HOSTILE", HOSTILE);
        if let Some(path) = screenshot {
            command.env("SCREENSHOT", path);
        }
        command.output().expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser run failed:\n{stdout}\n{stderr}"
    );

    // What the page showed is what the store holds.
    let ids: Value = stdout
        .lines()
        .find_map(|line| line.strip_prefix("RESULT "))
        .map(|json| serde_json::from_str(json).unwrap())
        .expect("the run reports the jobs it made");
    let succeeded = ids["succeeded"].as_str().unwrap();
    assert_eq!(status_of(&jobs, succeeded).await.0, JobStatus::Succeeded);
    let result = jobs
        .get_job_result(succeeded.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(result, Some(json!({ "done": 5 })));
    assert_eq!(
        status_of(&jobs, ids["canceled"].as_str().unwrap()).await.0,
        JobStatus::Canceled
    );
    let gone = |key: &str| -> JobId { ids[key].as_str().unwrap().parse().unwrap() };
    assert_eq!(
        jobs.get_job(gone("failed")).await.unwrap(),
        None,
        "the failed job was retried, then deleted from its page"
    );
    let parked = jobs.get_job(gone("parked")).await.unwrap().unwrap();
    assert_eq!(
        (parked.status, parked.queue.as_str()),
        (JobStatus::Canceled, "reports"),
        "the bulk cancel by queue"
    );
    for id in ids["burst"].as_array().unwrap() {
        let id: JobId = id.as_str().unwrap().parse().unwrap();
        assert_eq!(
            jobs.get_job(id).await.unwrap(),
            None,
            "bulk retried, then bulk deleted"
        );
    }
    let flow = |key: &str| -> FlowId { ids[key].as_str().unwrap().parse().unwrap() };
    let chain = jobs.get_flow(flow("flow")).await.unwrap().expect("stored");
    assert_eq!(
        (
            chain.counts.total,
            chain.counts.succeeded,
            chain.edges.len()
        ),
        (3, 3, 3),
        "the chain ran to the end"
    );
    let doomed = jobs
        .get_flow(flow("doomed"))
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(
        (doomed.counts.total, doomed.counts.canceled),
        (2, 2),
        "the flow was canceled whole"
    );
    let all = jobs.list_jobs(jobs_runtime::JobQuery::new()).await.unwrap();
    // Steps (succeeded), Wait (canceled), Retry, the quick Steps job, the parked one, the
    // one held by the paused queue, and the two flows' five.
    assert_eq!(all.jobs.len(), 11, "the refused submissions stored nothing");

    server.abort();
    jobs.shutdown().await;
}
