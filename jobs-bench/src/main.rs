//! Benchmark program for `jobs`.
//!
//! ```text
//! cargo run --release -p jobs-bench -- <scenario> [--jobs N] [--concurrency C]
//! ```
//!
//! Scenarios:
//! - `bulk`: submit N no-op jobs up front, then start C workers and time the drain.
//! - `latency`: submit N jobs one at a time, each waited for before the next;
//!   submit→start and submit→finish percentiles.
//! - `floor`: the same bulk workload through a bare tokio mpsc channel and a mutex-guarded
//!   map, the least any in-memory job system could cost on this machine.
//!
//! `--backend postgres` (with `DATABASE_URL` set) runs `bulk` and `latency` on PostgreSQL,
//! each run in a fresh schema. For `bulk`, `--processes P` starts P worker processes (this
//! program again, with C workers each) against the pre-inserted jobs.
//!
//! Each result is one machine-readable line (`scenario=bulk backend=memory jobs=...`)
//! followed by a short human summary. A scenario fails loudly (exit code 1) unless every
//! job reached `Succeeded`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobs::memory::{ChannelQueue, InMemoryRepository};
use jobs::prelude::*;
use jobs::{JobQueue, JobRepository};
use jobs_postgres::sqlx::{self, Row};
use jobs_postgres::{PostgresBackend, PostgresOptions};

/// Prints a line of results; a closed standard output (`| head`) is not an error.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[job_executor("Noop")]
async fn noop() -> Result<(), JobError> {
    Ok(())
}

struct Options {
    scenario: String,
    jobs: usize,
    concurrency: usize,
    backend: String,
    processes: usize,
    schema: Option<String>,
}

fn parse_options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let scenario = args
        .next()
        .ok_or("usage: jobs-bench <bulk|latency|floor> [--jobs N] [--concurrency C] [--backend memory|postgres] [--processes P]")?;
    let mut options = Options {
        scenario,
        jobs: 0,
        concurrency: 1,
        backend: "memory".to_owned(),
        processes: 1,
        schema: None,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || -> Result<usize, String> {
            value
                .replace('_', "")
                .parse()
                .map_err(|_| format!("{flag}: `{value}` is not a number"))
        };
        match flag.as_str() {
            "--jobs" => options.jobs = number()?,
            "--concurrency" => options.concurrency = number()?.max(1),
            "--processes" => options.processes = number()?.max(1),
            "--backend" if value == "memory" || value == "postgres" => {
                options.backend = value.clone()
            }
            "--schema" => options.schema = Some(value.clone()),
            other => {
                return Err(format!(
                    "unknown flag or value `{other} {value}`; expected --jobs N, --concurrency C, \
                     --backend memory|postgres, --processes P"
                ))
            }
        }
    }
    if options.jobs == 0 {
        options.jobs = if options.scenario == "latency" {
            10_000
        } else {
            100_000
        };
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let postgres = options.backend == "postgres";
    let outcome = match options.scenario.as_str() {
        "bulk" if postgres => pg_bulk(&options).await,
        "latency" if postgres => pg_latency(&options).await,
        "pg-worker" => pg_worker(&options).await,
        "bulk" => bulk(&options).await,
        "latency" => latency(&options).await,
        "floor" => floor(&options).await,
        other => Err(format!(
            "unknown scenario `{other}`; expected bulk, latency or floor"
        )),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Submits every job through a service without workers, then starts a service with
/// `concurrency` workers on the same repository and queue and times the drain.
async fn bulk(options: &Options) -> Result<(), String> {
    let repository = Arc::new(InMemoryRepository::new());
    let queue = Arc::new(ChannelQueue::new());
    let submitter = Jobs::builder()
        .concurrency(0)
        .repository(repository.clone() as Arc<dyn JobRepository>)
        .queue(queue.clone() as Arc<dyn JobQueue>)
        .start()
        .map_err(|e| e.to_string())?;
    let submit_started = Instant::now();
    for _ in 0..options.jobs {
        submitter
            .submit_job("Noop")
            .await
            .map_err(|e| e.to_string())?;
    }
    let submit_elapsed = submit_started.elapsed();

    let drain_started = Instant::now();
    let workers = Jobs::builder()
        .concurrency(options.concurrency)
        .repository(repository.clone() as Arc<dyn JobRepository>)
        .queue(queue.clone() as Arc<dyn JobQueue>)
        .start()
        .map_err(|e| e.to_string())?;
    wait_until_done(&repository, options.jobs).await?;
    let drain_elapsed = drain_started.elapsed();
    workers.shutdown().await;
    submitter.shutdown().await;
    verify_all_succeeded(&repository, options.jobs)?;

    let drain_rate = options.jobs as f64 / drain_elapsed.as_secs_f64();
    let submit_rate = options.jobs as f64 / submit_elapsed.as_secs_f64();
    out!(
        "scenario=bulk backend=memory jobs={} concurrency={} jobs_per_sec={:.0} submit_per_sec={:.0}",
        options.jobs, options.concurrency, drain_rate, submit_rate
    );
    out!(
        "  drained {} no-op jobs with {} worker(s) in {:.3} s ({:.0} jobs/s); submitting took {:.3} s ({:.0} jobs/s)",
        options.jobs,
        options.concurrency,
        drain_elapsed.as_secs_f64(),
        drain_rate,
        submit_elapsed.as_secs_f64(),
        submit_rate
    );
    Ok(())
}

/// Waits until `expected` jobs have finished, reading the repository's status counters.
async fn wait_until_done(repository: &InMemoryRepository, expected: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let finished: usize = [JobStatus::Succeeded, JobStatus::Failed, JobStatus::Canceled]
            .into_iter()
            .map(|status| repository.count(status))
            .sum();
        if finished >= expected {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {finished} of {expected} jobs finished in time"
            ));
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

fn verify_all_succeeded(repository: &InMemoryRepository, expected: usize) -> Result<(), String> {
    let succeeded = repository.count(JobStatus::Succeeded);
    if succeeded != expected || repository.len() != expected {
        return Err(format!(
            "{succeeded} of {expected} jobs succeeded ({} stored)",
            repository.len()
        ));
    }
    Ok(())
}

/// One job at a time: how soon a submitted job starts and finishes.
async fn latency(options: &Options) -> Result<(), String> {
    let jobs = Jobs::builder()
        .concurrency(options.concurrency)
        .start()
        .map_err(|e| e.to_string())?;
    let (mut to_start, mut to_finish) = one_at_a_time(&jobs, options.jobs).await?;
    jobs.shutdown().await;
    report_latency("memory", options.concurrency, &mut to_start, &mut to_finish);
    Ok(())
}

/// Submits `count` no-op jobs one at a time, each waited for before the next; returns
/// the submit→start and submit→finish times.
async fn one_at_a_time(
    jobs: &Jobs,
    count: usize,
) -> Result<(Vec<Duration>, Vec<Duration>), String> {
    let mut to_start = Vec::with_capacity(count);
    let mut to_finish = Vec::with_capacity(count);
    for _ in 0..count {
        let submitted = Instant::now();
        let job = jobs.submit_job("Noop").await.map_err(|e| e.to_string())?;
        let done = jobs.wait_for(job.id).await.map_err(|e| e.to_string())?;
        to_finish.push(submitted.elapsed());
        if done.status != JobStatus::Succeeded {
            return Err(format!("job {} ended {}", done.id, done.status));
        }
        let started = done.started_at.ok_or("a finished job has no start time")?;
        to_start.push(started.duration_since(done.created_at));
    }
    Ok((to_start, to_finish))
}

/// Prints the latency result line and its summary.
fn report_latency(
    backend: &str,
    concurrency: usize,
    to_start: &mut [Duration],
    to_finish: &mut [Duration],
) {
    let count = to_finish.len();
    let (start_p50, start_p99) = percentiles(to_start);
    let (finish_p50, finish_p99) = percentiles(to_finish);
    out!(
        "scenario=latency backend={backend} jobs={count} concurrency={concurrency} p50_us={} p99_us={} start_p50_us={} start_p99_us={}",
        finish_p50.as_micros(),
        finish_p99.as_micros(),
        start_p50.as_micros(),
        start_p99.as_micros()
    );
    out!(
        "  submit→finish p50 {finish_p50:?}, p99 {finish_p99:?}; submit→start p50 {start_p50:?}, p99 {start_p99:?} (over {count} jobs, one at a time)"
    );
}

fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.50), at(0.99))
}

/// The bulk workload with nothing but a channel of ids and a map of statuses.
async fn floor(options: &Options) -> Result<(), String> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Queued,
        Running,
        Succeeded,
    }
    let map: Arc<Mutex<HashMap<u64, State>>> = Arc::new(Mutex::new(HashMap::new()));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    for id in 0..options.jobs as u64 {
        map.lock().unwrap().insert(id, State::Queued);
        tx.send(id).map_err(|e| e.to_string())?;
    }
    drop(tx);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let started = Instant::now();
    let workers: Vec<_> = (0..options.concurrency)
        .map(|_| {
            let (map, rx) = (map.clone(), rx.clone());
            tokio::spawn(async move {
                loop {
                    let Some(id) = rx.lock().await.recv().await else {
                        return;
                    };
                    map.lock().unwrap().insert(id, State::Running);
                    map.lock().unwrap().insert(id, State::Succeeded);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.map_err(|e| e.to_string())?;
    }
    let elapsed = started.elapsed();
    let succeeded = map
        .lock()
        .unwrap()
        .values()
        .filter(|s| **s == State::Succeeded)
        .count();
    if succeeded != options.jobs {
        return Err(format!(
            "{succeeded} of {} ids reached the end",
            options.jobs
        ));
    }
    let rate = options.jobs as f64 / elapsed.as_secs_f64();
    out!(
        "scenario=floor backend=memory jobs={} concurrency={} jobs_per_sec={:.0}",
        options.jobs,
        options.concurrency,
        rate
    );
    out!(
        "  a bare channel and mutex-guarded map move {} ids through two status writes each in {:.3} s ({:.0} per s)",
        options.jobs,
        elapsed.as_secs_f64(),
        rate
    );
    Ok(())
}

fn database_url() -> Result<String, String> {
    std::env::var("DATABASE_URL")
        .map_err(|_| "set DATABASE_URL to run the PostgreSQL scenarios".to_owned())
}

fn pg_options(schema: &str) -> PostgresOptions {
    PostgresOptions::new()
        .schema(schema)
        .max_connections(8)
        .poll_interval(Duration::from_millis(200))
}

/// A backend on a fresh schema.
async fn fresh_backend() -> Result<(String, Arc<PostgresBackend>), String> {
    let schema = format!("jobs_bench_{}", std::process::id());
    let url = database_url()?;
    let backend = PostgresBackend::connect_with(&url, pg_options(&schema))
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(backend.pool())
        .await
        .map_err(|e| e.to_string())?;
    backend.migrate().await.map_err(|e| e.to_string())?;
    Ok((schema, backend))
}

async fn drop_schema(backend: &PostgresBackend, schema: &str) {
    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(backend.pool())
        .await;
}

async fn count_succeeded(backend: &PostgresBackend, schema: &str) -> Result<i64, String> {
    sqlx::query(&format!(
        "SELECT count(*) FROM {schema}.jobs WHERE status = 'Succeeded'"
    ))
    .fetch_one(backend.pool())
    .await
    .map(|row| row.get::<i64, _>(0))
    .map_err(|e| e.to_string())
}

/// Pre-inserts N jobs, then starts P worker processes with C workers each and times the
/// drain.
async fn pg_bulk(options: &Options) -> Result<(), String> {
    let (schema, backend) = fresh_backend().await?;
    let client = Jobs::builder()
        .backend(backend.clone())
        .concurrency(0)
        .start()
        .map_err(|e| e.to_string())?;
    let insert_started = Instant::now();
    let mut connection = backend.pool().acquire().await.map_err(|e| e.to_string())?;
    let mut left = options.jobs;
    while left > 0 {
        let batch: Vec<Job> = (0..left.min(5_000))
            .map(|_| client.prepare_job("Noop", jobs::serde_json::Value::Null))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        left -= batch.len();
        backend
            .submit_many_in(&mut connection, &batch)
            .await
            .map_err(|e| e.to_string())?;
    }
    drop(connection);
    let insert_elapsed = insert_started.elapsed();

    let drain_started = Instant::now();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut workers = Vec::new();
    for _ in 0..options.processes {
        workers.push(
            std::process::Command::new(&exe)
                .args(["pg-worker", "--backend", "postgres", "--schema", &schema])
                .args(["--concurrency", &options.concurrency.to_string()])
                .spawn()
                .map_err(|e| format!("could not start a worker process: {e}"))?,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(900);
    let outcome = loop {
        let done = count_succeeded(&backend, &schema).await?;
        if done as usize >= options.jobs {
            break Ok(());
        }
        if Instant::now() > deadline {
            break Err(format!(
                "only {done} of {} jobs succeeded in time",
                options.jobs
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let drain_elapsed = drain_started.elapsed();
    for worker in &mut workers {
        let _ = worker.kill();
        let _ = worker.wait();
    }
    client.shutdown().await;
    let total: i64 = sqlx::query(&format!("SELECT count(*) FROM {schema}.jobs"))
        .fetch_one(backend.pool())
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    drop_schema(&backend, &schema).await;
    outcome?;
    if total as usize != options.jobs {
        return Err(format!("{total} jobs stored, expected {}", options.jobs));
    }
    let rate = options.jobs as f64 / drain_elapsed.as_secs_f64();
    out!(
        "scenario=bulk backend=postgres jobs={} processes={} concurrency={} jobs_per_sec={:.0} insert_per_sec={:.0}",
        options.jobs,
        options.processes,
        options.concurrency,
        rate,
        options.jobs as f64 / insert_elapsed.as_secs_f64()
    );
    out!(
        "  {} worker process(es) x {} workers drained {} pre-inserted no-op jobs in {:.2} s ({:.0} jobs/s, process start included)",
        options.processes,
        options.concurrency,
        options.jobs,
        drain_elapsed.as_secs_f64(),
        rate
    );
    Ok(())
}

/// A worker process of `pg_bulk`: serves jobs until it is killed.
async fn pg_worker(options: &Options) -> Result<(), String> {
    let schema = options
        .schema
        .as_deref()
        .ok_or("pg-worker needs --schema")?;
    let backend = PostgresBackend::connect_with(&database_url()?, pg_options(schema))
        .await
        .map_err(|e| e.to_string())?;
    let _jobs = Jobs::builder()
        .backend(backend)
        .concurrency(options.concurrency)
        .start()
        .map_err(|e| e.to_string())?;
    std::future::pending::<()>().await;
    Ok(())
}

/// One job at a time on PostgreSQL, with the workers in this process.
async fn pg_latency(options: &Options) -> Result<(), String> {
    let (schema, backend) = fresh_backend().await?;
    let jobs = Jobs::builder()
        .backend(backend.clone())
        .concurrency(options.concurrency)
        .start()
        .map_err(|e| e.to_string())?;
    let count = options.jobs.min(5_000);
    let (mut to_start, mut to_finish) = one_at_a_time(&jobs, count).await?;
    jobs.shutdown().await;
    drop_schema(&backend, &schema).await;
    report_latency(
        "postgres",
        options.concurrency,
        &mut to_start,
        &mut to_finish,
    );
    Ok(())
}
