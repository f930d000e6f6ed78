//! The `jobs` binary run against a scratch PostgreSQL schema and a scratch SQLite file:
//! each test sets up jobs with a service in this process, runs the tool as a separate
//! process, and checks its answer, its exit code and what it changed in the store.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs::prelude::*;
use jobs::{JobStore, SubmitOptions};
use jobs_postgres::{PostgresOptions, PostgresStore};
use jobs_sqlite::{SqliteOptions, SqliteStore};
use serde_json::{json, Value};

#[job_executor("CliEcho")]
async fn cli_echo(args: Value) -> Result<Value, JobError> {
    Ok(args)
}

#[job_executor("CliFail")]
async fn cli_fail(_args: Value) -> Result<(), JobError> {
    Err(JobError::permanent("the mail server said no"))
}

/// Runs until canceled, saying so in its progress.
#[job_executor("CliWait")]
async fn cli_wait(_args: Value, ctx: JobContext) -> Result<(), JobError> {
    ctx.report_progress(10, "waiting to be canceled");
    ctx.cancelled().await;
    Err(JobError::Canceled)
}

/// A queue that no service in these tests serves: its jobs stay `Queued`.
const IDLE: &str = "idle";

/// One test's database, and where the tool finds it.
enum Scratch {
    Postgres { url: String, schema: String },
    Sqlite { dir: PathBuf },
}

fn fresh(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &JobId::new().to_string().replace('-', "")[16..]
    )
}

impl Scratch {
    /// A fresh SQLite file and, when PostgreSQL is configured, a fresh schema (in CI it
    /// must be: the PostgreSQL half is never skipped there).
    fn all() -> Vec<Scratch> {
        let dir = std::env::temp_dir().join(fresh("jobs_cli_test"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut all = vec![Scratch::Sqlite { dir }];
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => all.push(Scratch::Postgres {
                url,
                schema: fresh("jobs_cli"),
            }),
            _ if std::env::var_os("CI").is_some() => {
                panic!("DATABASE_URL must be set in CI: the PostgreSQL tests may not be skipped")
            }
            _ => eprintln!("skipped PostgreSQL: set DATABASE_URL to run it"),
        }
        all
    }

    fn name(&self) -> &'static str {
        match self {
            Scratch::Postgres { .. } => "postgres",
            Scratch::Sqlite { .. } => "sqlite",
        }
    }

    /// `--database-url` (and `--schema`) for the tool.
    fn args(&self) -> Vec<String> {
        match self {
            Scratch::Postgres { url, schema } => vec![
                "--database-url".into(),
                url.clone(),
                "--schema".into(),
                schema.clone(),
            ],
            Scratch::Sqlite { dir } => vec![
                "--database-url".into(),
                format!("sqlite://{}", dir.join("jobs.db").display()),
            ],
        }
    }

    /// The store, as an application opens it (migrated).
    async fn store(&self) -> Arc<dyn JobStore> {
        match self {
            Scratch::Postgres { url, schema } => {
                let options = PostgresOptions::new().schema(schema).max_connections(4);
                let store = PostgresStore::connect_with(url, options).await.unwrap();
                store.migrate().await.unwrap();
                store
            }
            Scratch::Sqlite { dir } => {
                let options = SqliteOptions::new().poll_interval(Duration::from_millis(10));
                SqliteStore::open_with(dir.join("jobs.db"), options).unwrap()
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Scratch::Sqlite { dir } = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// What one run of the tool did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.stdout))
    }
}

/// Runs `jobs` with `scratch`'s database and `args`, with no `DATABASE_URL` of its own.
async fn cli(scratch: &Scratch, args: &[&str]) -> Run {
    let mut all = scratch.args();
    all.extend(args.iter().map(|arg| (*arg).to_owned()));
    run_tool(all).await
}

async fn run_tool(args: Vec<String>) -> Run {
    tokio::task::spawn_blocking(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_jobs"))
            .args(&args)
            .env_remove("DATABASE_URL")
            .output()
            .expect("run the jobs binary");
        let run = Run {
            code: output.status.code().expect("exited, not killed"),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        };
        assert!(
            !run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"),
            "{args:?} panicked: {}",
            run.stderr
        );
        run
    })
    .await
    .unwrap()
}

/// Runs `jobs` and checks that it succeeded.
async fn ok(scratch: &Scratch, args: &[&str]) -> Run {
    let run = cli(scratch, args).await;
    assert_eq!(run.code, 0, "{} {args:?}: {run:?}", scratch.name());
    run
}

/// Runs `jobs` and checks that it failed with `code` and one line on stderr.
async fn fails(scratch: &Scratch, args: &[&str], code: i32) -> Run {
    let run = cli(scratch, args).await;
    assert_eq!(run.code, code, "{} {args:?}: {run:?}", scratch.name());
    assert_eq!(run.stderr.lines().count(), 1, "one line: {:?}", run.stderr);
    assert!(run.stderr.starts_with("jobs: "), "{:?}", run.stderr);
    run
}

/// Polls `check` until it holds, failing after ten seconds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn status(store: &Arc<dyn JobStore>, id: JobId) -> Option<JobStatus> {
    store.get(id).await.unwrap().map(|job| job.status)
}

/// The stored jobs of the tests: one succeeded, one failed, one queued in a queue no one
/// serves. The service that ran them has stopped.
struct Fixture {
    store: Arc<dyn JobStore>,
    succeeded: JobId,
    failed: JobId,
    queued: JobId,
}

async fn fixture(scratch: &Scratch) -> Fixture {
    let store = scratch.store().await;
    let jobs = Jobs::builder()
        .store(store.clone())
        .concurrency(2)
        .start()
        .unwrap();
    let succeeded = jobs
        .submit_job_with("CliEcho", json!({"to": "a@b.c"}))
        .await
        .unwrap()
        .id;
    let failed = jobs.submit_job_with("CliFail", json!({})).await.unwrap().id;
    let queued = jobs
        .submit_job_with_options(
            "CliEcho",
            json!({"later": true}),
            &SubmitOptions::new().queue(IDLE),
        )
        .await
        .unwrap()
        .id;
    for id in [succeeded, failed] {
        tokio::time::timeout(Duration::from_secs(10), jobs.wait_for(id))
            .await
            .expect("the job ends")
            .unwrap();
    }
    jobs.shutdown().await;
    Fixture {
        store,
        succeeded,
        failed,
        queued,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_commands_refuse_a_database_without_the_schema_until_migrate_creates_it() {
    for scratch in Scratch::all() {
        let run = fails(&scratch, &["list"], 6).await;
        assert!(run.stderr.contains("jobs migrate"), "{}", run.stderr);
        if let Scratch::Sqlite { dir } = &scratch {
            assert!(
                !dir.join("jobs.db").exists(),
                "a mistyped path makes no file"
            );
        }
        let run = ok(&scratch, &["migrate"]).await;
        if let Scratch::Postgres { .. } = scratch {
            assert!(
                run.stdout.starts_with("applied migrations 1, 2,"),
                "{run:?}"
            );
            let again = ok(&scratch, &["migrate", "--json"]).await;
            assert_eq!(again.json()["applied"], json!([]));
        }
        let run = ok(&scratch, &["list"]).await;
        assert_eq!(run.stdout, "no jobs match\n");
        assert_eq!(ok(&scratch, &["list", "--json"]).await.json(), json!([]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_show_and_stats_describe_the_stored_jobs_in_tables_and_json() {
    for scratch in Scratch::all() {
        let f = fixture(&scratch).await;
        let table = ok(&scratch, &["list"]).await.stdout;
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "a header and three jobs: {table}");
        assert!(lines[0].starts_with("ID "), "{table}");
        for (id, status) in [
            (f.queued, "Queued"),
            (f.failed, "Failed"),
            (f.succeeded, "Succeeded"),
        ] {
            let line = lines.iter().find(|line| line.starts_with(&id.to_string()));
            assert!(line.is_some_and(|line| line.contains(status)), "{table}");
        }
        assert!(table.contains("the mail server said no"), "{table}");

        let failed = ok(&scratch, &["list", "--status", "failed", "--json"]).await;
        let failed = failed.json();
        assert_eq!(failed.as_array().unwrap().len(), 1);
        assert_eq!(failed[0]["id"], json!(f.failed.to_string()));
        let idle = ok(
            &scratch,
            &["list", "--queue", IDLE, "--type", "CliEcho", "--json"],
        )
        .await;
        assert_eq!(idle.json()[0]["id"], json!(f.queued.to_string()));
        let one = ok(&scratch, &["list", "--limit", "1"]).await.stdout;
        assert_eq!(one.lines().count(), 3, "{one}");
        assert!(one.contains("more jobs match"), "{one}");

        let shown = ok(&scratch, &["show", &f.succeeded.to_string()])
            .await
            .stdout;
        assert!(shown.contains("status    Succeeded"), "{shown}");
        assert!(shown.contains(r#"result    {"to":"a@b.c"}"#), "{shown}");
        let shown = ok(&scratch, &["show", &f.failed.to_string()]).await.stdout;
        assert!(shown.contains("errors"), "{shown}");
        assert!(shown.contains("the mail server said no"), "{shown}");
        let shown = ok(&scratch, &["show", &f.succeeded.to_string(), "--json"]).await;
        assert_eq!(shown.json()["result"], json!({"to": "a@b.c"}));
        assert_eq!(shown.json()["status"], json!("Succeeded"));

        let run = fails(&scratch, &["show", &JobId::new().to_string()], 3).await;
        assert!(run.stderr.contains("no job has id"), "{}", run.stderr);
        let run = fails(&scratch, &["show", "42"], 2).await;
        assert!(run.stderr.contains("not a job id"), "{}", run.stderr);
        fails(&scratch, &["list", "--status", "finished"], 2).await;

        let stats = ok(&scratch, &["stats", "--json"]).await.json();
        assert_eq!(
            stats["types"],
            json!([
                {"jobType": "CliEcho", "queued": 1, "running": 0, "succeeded": 1, "failed": 0, "canceled": 0},
                {"jobType": "CliFail", "queued": 0, "running": 0, "succeeded": 0, "failed": 1, "canceled": 0},
            ])
        );
        let idle = stats["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|queue| queue["queue"] == json!(IDLE))
            .expect("the idle queue is listed");
        assert_eq!(idle["queued"], json!(1));
        let stats = ok(&scratch, &["stats"]).await.stdout;
        assert!(stats.contains("(all types)"), "{stats}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_cancel_and_delete_change_what_applies_and_say_what_did_not_in_the_exit_code() {
    for scratch in Scratch::all() {
        let f = fixture(&scratch).await;
        let (succeeded, failed, queued) = (
            f.succeeded.to_string(),
            f.failed.to_string(),
            f.queued.to_string(),
        );
        let unknown = JobId::new().to_string();

        let run = ok(&scratch, &["retry", &failed]).await;
        assert!(run.stdout.contains("queued again"), "{run:?}");
        assert_eq!(status(&f.store, f.failed).await, Some(JobStatus::Queued));
        let run = fails(&scratch, &["retry", &succeeded], 4).await;
        assert!(run.stdout.contains("it is Succeeded"), "{run:?}");
        let run = fails(&scratch, &["retry", &succeeded, &unknown, "--json"], 3).await;
        assert_eq!(
            run.json(),
            json!([
                {"id": succeeded, "outcome": "notRetryable", "status": "Succeeded"},
                {"id": unknown, "outcome": "notFound"},
            ])
        );

        let run = ok(&scratch, &["cancel", &queued]).await;
        assert!(run.stdout.contains("canceled"), "{run:?}");
        assert_eq!(status(&f.store, f.queued).await, Some(JobStatus::Canceled));
        fails(&scratch, &["cancel", &queued], 4).await;

        // The retried job is queued again: not deletable until it ends.
        fails(&scratch, &["delete", &failed], 4).await;
        ok(&scratch, &["delete", &succeeded]).await;
        assert_eq!(status(&f.store, f.succeeded).await, None);
        fails(&scratch, &["delete", &succeeded], 3).await;

        // By filter: every queued job of the default queue is canceled, then every
        // canceled one deleted.
        let run = ok(&scratch, &["cancel", "--status", "queued", "--json"]).await;
        assert_eq!(run.json(), json!({"matched": 1, "changed": 1}));
        let run = ok(&scratch, &["delete", "--status", "canceled"]).await;
        assert_eq!(run.stdout, "2 jobs matched; 2 deleted\n");
        assert_eq!(ok(&scratch, &["list", "--json"]).await.json(), json!([]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_from_the_tool_stops_a_job_running_in_another_process() {
    for scratch in Scratch::all() {
        let store = scratch.store().await;
        let jobs = Jobs::builder()
            .store(store.clone())
            .concurrency(1)
            .start()
            .unwrap();
        let id = jobs.submit_job_with("CliWait", json!({})).await.unwrap().id;
        let watched = jobs.clone();
        eventually("the job runs", || {
            let jobs = watched.clone();
            async move {
                jobs.get_job(id)
                    .await
                    .unwrap()
                    .is_some_and(|job| job.progress.is_some())
            }
        })
        .await;
        let listed = ok(&scratch, &["list", "--status", "running"]).await.stdout;
        assert!(listed.contains("10% waiting to be canceled"), "{listed}");
        let run = ok(&scratch, &["cancel", &id.to_string()]).await;
        assert!(run.stdout.contains("asked to stop"), "{run:?}");
        let job = tokio::time::timeout(Duration::from_secs(10), jobs.wait_for(id))
            .await
            .expect("the running job stops")
            .unwrap();
        assert_eq!(job.status, JobStatus::Canceled, "{}", scratch.name());
        jobs.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_deletes_the_jobs_that_finished_before_the_cutoff_and_shows_its_progress() {
    for scratch in Scratch::all() {
        let store = scratch.store().await;
        let jobs = Jobs::builder()
            .store(store.clone())
            .concurrency(4)
            .start()
            .unwrap();
        let batch: Vec<Job> = (0..2_500)
            .map(|i| jobs.prepare_job("CliEcho", json!(i)).unwrap())
            .collect();
        let ids: Vec<JobId> = jobs
            .submit_many(batch)
            .await
            .unwrap()
            .iter()
            .map(|job| job.id)
            .collect();
        let kept = jobs
            .submit_job_with_options("CliEcho", json!({}), &SubmitOptions::new().queue(IDLE))
            .await
            .unwrap()
            .id;
        let last = *ids.last().unwrap();
        for id in [ids[0], last] {
            tokio::time::timeout(Duration::from_secs(30), jobs.wait_for(id))
                .await
                .expect("the jobs run")
                .unwrap();
        }
        let watched = jobs.clone();
        eventually("every job ran", || {
            let jobs = watched.clone();
            async move {
                let counts = jobs.store().count_jobs().await.unwrap();
                counts
                    .iter()
                    .any(|count| count.status == JobStatus::Succeeded && count.count == 2_500)
            }
        })
        .await;
        jobs.shutdown().await;

        let run = ok(&scratch, &["purge", "--finished-before", "1h", "--dry-run"]).await;
        assert!(run.stdout.starts_with("0 jobs finished before"), "{run:?}");
        let run = ok(
            &scratch,
            &["purge", "--finished-before", "0s", "--dry-run", "--json"],
        )
        .await;
        assert_eq!(run.json()["wouldPurge"], json!(2_500));
        let run = ok(
            &scratch,
            &["purge", "--finished-before", "0s", "--progress"],
        )
        .await;
        assert!(run.stdout.starts_with("purged 2500 jobs"), "{run:?}");
        assert!(run.stderr.contains("purging ["), "{run:?}");
        assert!(run.stderr.contains("100%  2500/2500 jobs"), "{run:?}");
        assert_eq!(status(&store, ids[0]).await, None);
        assert_eq!(
            status(&store, kept).await,
            Some(JobStatus::Queued),
            "unfinished jobs stay"
        );
        let run = ok(&scratch, &["purge", "--finished-before", "0s", "--json"]).await;
        assert_eq!(run.json()["purged"], json!(0));
        assert!(
            run.stderr.is_empty(),
            "no bar unless asked or on a terminal: {run:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_pause_and_resume_for_every_process_on_the_store() {
    for scratch in Scratch::all() {
        let f = fixture(&scratch).await;
        let run = ok(&scratch, &["queues", "pause", IDLE]).await;
        assert!(run.stdout.starts_with("paused queue `idle`"), "{run:?}");
        let run = ok(&scratch, &["queues", "pause", IDLE, "--json"]).await;
        assert_eq!(
            run.json(),
            json!({"queue": IDLE, "paused": true, "changed": false})
        );
        let paused = f.store.operations().unwrap().paused_queues().await.unwrap();
        assert_eq!(paused.len(), 1);
        assert_eq!(paused[0].queue, IDLE);
        let listed = ok(&scratch, &["queues"]).await.stdout;
        let line = listed.lines().find(|line| line.starts_with(IDLE)).unwrap();
        assert!(line.contains("since "), "{listed}");
        ok(&scratch, &["queues", "resume", IDLE]).await;
        assert!(f
            .store
            .operations()
            .unwrap()
            .paused_queues()
            .await
            .unwrap()
            .is_empty());
        fails(&scratch, &["queues", "pause"], 2).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_missing_database_is_a_one_line_error_with_its_exit_code() {
    let run = |args: &[&str]| run_tool(args.iter().map(|arg| (*arg).to_owned()).collect());
    let started = Instant::now();
    let unreachable = run(&["--database-url", "postgres://jobs@127.0.0.1:1/jobs", "list"]).await;
    assert_eq!(unreachable.code, 5, "{unreachable:?}");
    assert!(
        unreachable
            .stderr
            .contains("could not connect to PostgreSQL"),
        "{unreachable:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let none = run(&["list"]).await;
    assert_eq!(none.code, 2, "{none:?}");
    assert!(none.stderr.contains("DATABASE_URL"), "{none:?}");
    let other = run(&["--database-url", "mysql://localhost/jobs", "list"]).await;
    assert_eq!(other.code, 2, "{other:?}");
    let typo = run(&["lsit"]).await;
    assert_eq!(typo.code, 2);
    assert_eq!(
        typo.stderr,
        "jobs: unknown command `lsit` (did you mean `list`?); see `jobs --help`\n"
    );
    let help = run(&["--help"]).await;
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Exit codes:"), "{help:?}");
    for run in [&unreachable, &none, &other] {
        assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    }
}
