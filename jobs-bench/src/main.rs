//! Benchmark program for `jobs`.
//!
//! ```text
//! cargo run --release -p jobs-bench -- <scenario> [--jobs N] [--concurrency C]
//! ```
//!
//! Scenarios:
//! - `bulk`: submit N no-op jobs up front, then start C workers and time the drain.
//! - `latency`: submit N jobs one at a time, each waited for before the next;
//!   submit→start and submit→finish percentiles, with the caller a task of the runtime
//!   and with the caller outside it.
//! - `interleaved`: submitters and C workers at once (as many submitting tasks as
//!   workers); jobs/second from the first submit until every job has succeeded.
//! - `progress`: bulk, with every job reporting progress 100 times; jobs/second, and how
//!   many progress writes reached the repository.
//! - `memory`: RSS growth per queued no-op job, N queued (default 1,000,000), then drained.
//! - `floor`: the same bulk workload through a bare tokio mpsc channel and a mutex-guarded
//!   map, the least any in-memory job system could cost on this machine. `bulk` and
//!   `interleaved` in memory measure it in the same run and print the fraction.
//!
//! - `rate`: N no-op jobs of a type limited to `--rate` (default `1000/1s`) drained by C
//!   workers, on any backend; the measured start rate over the whole windows, against the
//!   limit.
//!
//! `--backend postgres` (with `DATABASE_URL` set) runs `bulk` and `latency` on PostgreSQL,
//! each run in a fresh schema. For `bulk`, `--processes P` starts P worker processes (this
//! program again, with C workers each) against the pre-inserted jobs; the reference cases
//! are one process of 4 workers and one of 32 (`--concurrency 4`, `--concurrency 32`).
//! `--prefetch N` fixes how many jobs each worker process claims ahead (default:
//! adaptive).
//!
//! `--backend sqlite` runs `bulk` and `latency` on a fresh SQLite file (in the system's
//! temporary directory), `--synchronous normal` (default) or `full`. `bulk` drains with C
//! workers in this process, or with `--processes P` in P worker processes sharing the
//! file; `latency` runs its workers in this process, or with `--processes 1` in another
//! process (submit→start then includes the other process's poll for changes).
//!
//! - `overload` and `listing`: the bounds under runaway load (see the `bounds` module): a
//!   producer ten times faster than the drain against the in-memory bound, and status
//!   listings, a drain beside them and `GET /metrics` at 1,000,000 jobs in memory and
//!   10,000,000 rows on PostgreSQL.
//!
//! - `workflow`: a chain of 3 steps and a fan-out of 100 into 1, each timed from submit
//!   to the last step's end, and N jobs drained as independent jobs and as parent → child
//!   pairs, for the cost of a dependency; on any backend (PostgreSQL and SQLite drain at
//!   most 10,000).
//!
//! Each result is one machine-readable line (`scenario=bulk backend=memory jobs=...`)
//! followed by a short human summary. A scenario fails loudly (exit code 1) unless every
//! job reached `Succeeded`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobs::memory::InMemoryStore;
use jobs::prelude::*;
use jobs::JobStore;
use jobs_postgres::sqlx::{self, Row};
use jobs_postgres::{PostgresOptions, PostgresStore};

/// Prints a line of results; a closed standard output (`| head`) is not an error.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod bounds;
mod rate;
mod sqlite;
mod workflow;

#[job_executor("Noop")]
async fn noop() -> Result<(), JobError> {
    Ok(())
}

/// Reports progress 100 times, yielding between reports as a job doing work would.
#[job_executor("Progress100")]
async fn progress_100(ctx: JobContext) -> Result<(), JobError> {
    for percent in 1..=100 {
        ctx.report_progress(percent, "working");
        tokio::task::yield_now().await;
    }
    Ok(())
}

struct Options {
    scenario: String,
    jobs: usize,
    concurrency: usize,
    backend: String,
    processes: usize,
    schema: Option<String>,
    prefetch: Option<usize>,
    /// `--processes` was given (SQLite: worker processes instead of workers in this one).
    processes_set: bool,
    /// SQLite: `--synchronous normal|full`.
    synchronous: jobs_sqlite::Synchronous,
    /// SQLite worker processes: the database file.
    file: Option<String>,
    /// `rate`: the limit, `starts/period`.
    rate: String,
}

fn parse_options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let scenario = args
        .next()
        .ok_or("usage: jobs-bench <bulk|interleaved|latency|progress|memory|floor|rate|overload|listing|workflow> [--jobs N] [--concurrency C] [--backend memory|postgres|sqlite] [--processes P] [--prefetch N] [--synchronous normal|full] [--rate N/period]")?;
    let mut options = Options {
        scenario,
        jobs: 0,
        concurrency: 1,
        backend: "memory".to_owned(),
        processes: 1,
        schema: None,
        prefetch: None,
        processes_set: false,
        synchronous: jobs_sqlite::Synchronous::Normal,
        file: None,
        rate: "1000/1s".to_owned(),
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
            "--processes" => {
                options.processes = number()?.max(1);
                options.processes_set = true;
            }
            "--backend" if ["memory", "postgres", "sqlite"].contains(&value.as_str()) => {
                options.backend = value.clone()
            }
            "--synchronous" if value == "normal" => {
                options.synchronous = jobs_sqlite::Synchronous::Normal
            }
            "--synchronous" if value == "full" => {
                options.synchronous = jobs_sqlite::Synchronous::Full
            }
            "--file" => options.file = Some(value.clone()),
            "--rate" => options.rate = value.clone(),
            "--schema" => options.schema = Some(value.clone()),
            "--prefetch" => options.prefetch = Some(number()?.max(1)),
            other => {
                return Err(format!(
                    "unknown flag or value `{other} {value}`; expected --jobs N, --concurrency C, \
                     --backend memory|postgres|sqlite, --processes P, --prefetch N, \
                     --synchronous normal|full"
                ))
            }
        }
    }
    if options.jobs == 0 {
        options.jobs = match options.scenario.as_str() {
            "latency" => 10_000,
            "rate" => 5_500,
            "workflow" => 20_000,
            "memory" => 1_000_000,
            _ => 100_000,
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
    let sqlite = options.backend == "sqlite";
    let outcome = match options.scenario.as_str() {
        "bulk" if sqlite => sqlite::bulk(&options).await,
        "latency" if sqlite => sqlite::latency(&options).await,
        "sqlite-worker" => sqlite::worker(&options).await,
        "bulk" if postgres => pg_bulk(&options).await,
        "latency" if postgres => pg_latency(&options).await,
        "pg-worker" => pg_worker(&options).await,
        "bulk" => bulk(&options).await,
        "interleaved" => interleaved(&options).await,
        "latency" => latency(&options).await,
        "progress" => progress(&options).await,
        "memory" => memory(&options).await,
        "floor" => floor(&options).await.map(|rate| report_floor(&options, rate)),
        "rate" => rate::rate(&options).await,
        "overload" => bounds::overload(&options).await,
        "listing" => bounds::listing(&options).await,
        "workflow" => workflow::workflow(&options).await,
        other => Err(format!(
            "unknown scenario `{other}`; expected bulk, interleaved, latency, progress, memory, floor, rate, overload, listing or workflow"
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

/// A service on `store` with `workers` workers.
fn service(store: &Arc<InMemoryStore>, workers: usize) -> Result<Jobs, String> {
    Jobs::builder()
        .concurrency(workers)
        .store(store.clone() as Arc<dyn JobStore>)
        .start()
        .map_err(|e| e.to_string())
}

/// Submits `count` jobs of `job_type` through `jobs`.
async fn submit_many(jobs: &Jobs, job_type: &str, count: usize) -> Result<(), String> {
    for _ in 0..count {
        jobs.submit_job(job_type).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Submits every job through a service without workers, then starts a service with
/// `concurrency` workers on the same repository and queue and times the drain. Returns
/// the drain's jobs per second and the submit rate.
async fn drain(options: &Options, job_type: &str) -> Result<(f64, f64), String> {
    let repository = Arc::new(InMemoryStore::new());
    let submitter = service(&repository, 0)?;
    let submit_started = Instant::now();
    submit_many(&submitter, job_type, options.jobs).await?;
    let submit_elapsed = submit_started.elapsed();

    let drain_started = Instant::now();
    let workers = service(&repository, options.concurrency)?;
    wait_until_done(&repository, options.jobs).await?;
    let drain_elapsed = drain_started.elapsed();
    workers.shutdown().await;
    submitter.shutdown().await;
    verify_all_succeeded(&repository, options.jobs)?;
    Ok((
        options.jobs as f64 / drain_elapsed.as_secs_f64(),
        options.jobs as f64 / submit_elapsed.as_secs_f64(),
    ))
}

async fn bulk(options: &Options) -> Result<(), String> {
    let floor_rate = floor(options).await?;
    let (rate, submit_rate) = drain(options, "Noop").await?;
    out!(
        "scenario=bulk backend=memory jobs={} concurrency={} jobs_per_sec={:.0} submit_per_sec={:.0} floor_jobs_per_sec={:.0} of_floor={:.2}",
        options.jobs, options.concurrency, rate, submit_rate, floor_rate, rate / floor_rate
    );
    out!(
        "  drained {} no-op jobs with {} worker(s): {:.0} jobs/s, {:.0} % of the floor measured in this run ({:.0}/s); submitting: {:.0} jobs/s",
        options.jobs,
        options.concurrency,
        rate,
        100.0 * rate / floor_rate,
        floor_rate,
        submit_rate
    );
    Ok(())
}

/// Submitters and workers at once: `concurrency` tasks submit `jobs` in all while
/// `concurrency` workers run them; timed until every job has succeeded.
async fn interleaved(options: &Options) -> Result<(), String> {
    let floor_rate = floor(options).await?;
    let repository = Arc::new(InMemoryStore::new());
    let jobs = service(&repository, options.concurrency)?;
    let started = Instant::now();
    let submitters: Vec<_> = (0..options.concurrency)
        .map(|i| {
            let share = options.jobs / options.concurrency
                + usize::from(i < options.jobs % options.concurrency);
            let jobs = jobs.clone();
            tokio::spawn(async move { submit_many(&jobs, "Noop", share).await })
        })
        .collect();
    for submitter in submitters {
        submitter.await.map_err(|e| e.to_string())??;
    }
    wait_until_done(&repository, options.jobs).await?;
    let elapsed = started.elapsed();
    jobs.shutdown().await;
    verify_all_succeeded(&repository, options.jobs)?;
    let rate = options.jobs as f64 / elapsed.as_secs_f64();
    out!(
        "scenario=interleaved backend=memory jobs={} concurrency={} jobs_per_sec={:.0} floor_jobs_per_sec={:.0} of_floor={:.2}",
        options.jobs, options.concurrency, rate, floor_rate, rate / floor_rate
    );
    out!(
        "  {} submitting task(s) and {} worker(s) at once moved {} jobs from submit to Succeeded: {:.0} jobs/s ({:.0} % of the floor's drain rate)",
        options.concurrency,
        options.concurrency,
        options.jobs,
        rate,
        100.0 * rate / floor_rate
    );
    Ok(())
}

/// Counts the progress writes that reach the store.
struct CountingStore {
    inner: Arc<InMemoryStore>,
    progress_writes: std::sync::atomic::AtomicU64,
}

impl JobStore for CountingStore {
    fn insert_many(
        &self,
        jobs: Vec<Job>,
    ) -> jobs::BoxFuture<'_, Result<Vec<jobs::Inserted>, jobs::StorageError>> {
        self.inner.insert_many(jobs)
    }
    fn claim<'a>(
        &'a self,
        request: jobs::ClaimRequest<'a>,
    ) -> jobs::BoxFuture<'a, Result<Vec<jobs::ClaimedJob>, jobs::StorageError>> {
        self.inner.claim(request)
    }
    fn next_due<'a>(
        &'a self,
        queue: &'a str,
    ) -> jobs::BoxFuture<'a, Result<Option<Duration>, jobs::StorageError>> {
        self.inner.next_due(queue)
    }
    fn complete_many<'a>(
        &'a self,
        holder: &'a str,
        completions: &'a [jobs::Completion],
    ) -> jobs::BoxFuture<'a, Result<Vec<jobs::Completed>, jobs::StorageError>> {
        self.inner.complete_many(holder, completions)
    }
    fn renew<'a>(
        &'a self,
        holder: &'a str,
        leases: &'a [jobs::Lease],
        lease: Duration,
    ) -> jobs::BoxFuture<'a, Result<Vec<jobs::Renewal>, jobs::StorageError>> {
        self.inner.renew(holder, leases, lease)
    }
    fn expired(
        &self,
        limit: usize,
    ) -> jobs::BoxFuture<'_, Result<Vec<jobs::ExpiredLease>, jobs::StorageError>> {
        self.inner.expired(limit)
    }
    fn update_progress(
        &self,
        id: JobId,
        attempt: u32,
        progress: jobs::Progress,
    ) -> jobs::BoxFuture<'_, Result<jobs::ProgressAck, jobs::StorageError>> {
        self.progress_writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.update_progress(id, attempt, progress)
    }
    fn request_cancel(
        &self,
        id: JobId,
    ) -> jobs::BoxFuture<'_, Result<jobs::CancelOutcome, jobs::StorageError>> {
        self.inner.request_cancel(id)
    }
    fn get(&self, id: JobId) -> jobs::BoxFuture<'_, Result<Option<Job>, jobs::StorageError>> {
        self.inner.get(id)
    }
    fn list(
        &self,
        query: JobQuery,
    ) -> jobs::BoxFuture<'_, Result<jobs::JobPage, jobs::StorageError>> {
        self.inner.list(query)
    }
    fn get_result(
        &self,
        id: JobId,
    ) -> jobs::BoxFuture<'_, Result<Option<jobs::serde_json::Value>, jobs::StorageError>> {
        self.inner.get_result(id)
    }
    fn count_jobs(&self) -> jobs::BoxFuture<'_, Result<Vec<jobs::JobCount>, jobs::StorageError>> {
        self.inner.count_jobs()
    }
    fn estimate_counts(
        &self,
    ) -> jobs::BoxFuture<'_, Result<Vec<jobs::JobCount>, jobs::StorageError>> {
        self.inner.estimate_counts()
    }
    fn prune_finished(
        &self,
        before: jobs::Timestamp,
        limit: usize,
    ) -> jobs::BoxFuture<'_, Result<u64, jobs::StorageError>> {
        self.inner.prune_finished(before, limit)
    }
    fn is_durable(&self) -> bool {
        false
    }
    fn notifications(&self) -> Option<&dyn jobs::Notifications> {
        self.inner.notifications()
    }
}

/// Bulk with jobs that report progress 100 times each: throughput, and the progress
/// writes the repository received.
async fn progress(options: &Options) -> Result<(), String> {
    let repository = Arc::new(InMemoryStore::new());
    let counting = Arc::new(CountingStore {
        inner: repository.clone(),
        progress_writes: Default::default(),
    });
    let build = |workers: usize| {
        Jobs::builder()
            .concurrency(workers)
            .store(counting.clone() as Arc<dyn JobStore>)
            .start()
            .map_err(|e| e.to_string())
    };
    let submitter = build(0)?;
    submit_many(&submitter, "Progress100", options.jobs).await?;
    let started = Instant::now();
    let workers = build(options.concurrency)?;
    wait_until_done(&repository, options.jobs).await?;
    let elapsed = started.elapsed();
    workers.shutdown().await;
    submitter.shutdown().await;
    verify_all_succeeded(&repository, options.jobs)?;
    let last = repository
        .list(JobQuery::new().limit(1))
        .await
        .map_err(|e| e.to_string())?;
    let shown = last.jobs[0].progress.as_ref().map(|p| p.percent);
    if shown != Some(100) {
        return Err(format!("the last job shows progress {shown:?}, not 100"));
    }
    let writes = counting
        .progress_writes
        .load(std::sync::atomic::Ordering::Relaxed);
    let rate = options.jobs as f64 / elapsed.as_secs_f64();
    let per_job = writes as f64 / options.jobs as f64;
    out!(
        "scenario=progress backend=memory jobs={} concurrency={} jobs_per_sec={:.0} progress_calls_per_job=100 progress_writes={writes} writes_per_job={per_job:.2}",
        options.jobs, options.concurrency, rate
    );
    out!(
        "  {} jobs reporting progress 100 times each: {:.0} jobs/s; the repository received {:.2} progress writes per job",
        options.jobs, rate, per_job
    );
    Ok(())
}

/// Resident memory of this process, in bytes.
fn rss_bytes() -> Result<u64, String> {
    let statm = std::fs::read_to_string("/proc/self/statm")
        .map_err(|e| format!("cannot read /proc/self/statm: {e}"))?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .ok_or("unexpected /proc/self/statm")?;
    // The page size of x86-64 and most aarch64 Linux systems.
    Ok(pages * 4096)
}

/// RSS growth per queued no-op job (payload `null`, which takes no heap), then a drain to
/// check every job runs.
async fn memory(options: &Options) -> Result<(), String> {
    let repository = Arc::new(InMemoryStore::new());
    let submitter = service(&repository, 0)?;
    let before = rss_bytes()?;
    submit_many(&submitter, "Noop", options.jobs).await?;
    let after = rss_bytes()?;
    let queued = repository.count(JobStatus::Queued);
    if queued != options.jobs {
        return Err(format!("{queued} of {} jobs are queued", options.jobs));
    }
    let per_job = after.saturating_sub(before) as f64 / options.jobs as f64;
    let workers = service(&repository, options.concurrency)?;
    wait_until_done(&repository, options.jobs).await?;
    workers.shutdown().await;
    submitter.shutdown().await;
    verify_all_succeeded(&repository, options.jobs)?;
    out!(
        "scenario=memory backend=memory jobs={} bytes_per_queued_job={per_job:.0} rss_growth_mib={:.1}",
        options.jobs,
        after.saturating_sub(before) as f64 / (1 << 20) as f64
    );
    out!(
        "  {} queued no-op jobs grew the resident set by {:.1} MiB: {per_job:.0} bytes per job (all then drained to Succeeded)",
        options.jobs,
        after.saturating_sub(before) as f64 / (1 << 20) as f64
    );
    Ok(())
}

/// Waits until `expected` jobs have finished, reading the repository's status counters.
async fn wait_until_done(repository: &InMemoryStore, expected: usize) -> Result<(), String> {
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

fn verify_all_succeeded(repository: &InMemoryStore, expected: usize) -> Result<(), String> {
    let succeeded = repository.count(JobStatus::Succeeded);
    if succeeded != expected || repository.len() != expected {
        return Err(format!(
            "{succeeded} of {expected} jobs succeeded ({} stored)",
            repository.len()
        ));
    }
    Ok(())
}

/// One job at a time: how soon a submitted job starts and finishes. Measured twice: with
/// the caller a task of the runtime (as a request handler or another job is), and with
/// the caller outside it (a thread blocked on the runtime), where every job crosses threads.
async fn latency(options: &Options) -> Result<(), String> {
    let jobs = Jobs::builder()
        .concurrency(options.concurrency)
        .start()
        .map_err(|e| e.to_string())?;
    let caller = jobs.clone();
    let count = options.jobs;
    let (mut to_start, mut to_finish) =
        tokio::spawn(async move { one_at_a_time(&caller, count).await })
            .await
            .map_err(|e| e.to_string())??;
    report_latency(
        "memory caller=task",
        options.concurrency,
        &mut to_start,
        &mut to_finish,
    );
    let (mut to_start, mut to_finish) = one_at_a_time(&jobs, options.jobs).await?;
    report_latency(
        "memory caller=outside",
        options.concurrency,
        &mut to_start,
        &mut to_finish,
    );
    jobs.shutdown().await;
    Ok(())
}

/// Submits `count` no-op jobs one at a time, each waited for before the next; returns
/// the submit→start and submit→finish times.
pub(crate) async fn one_at_a_time(
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
pub(crate) fn report_latency(
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

/// The bulk workload with nothing but a channel of ids and a map of statuses; returns
/// its drain rate.
async fn floor(options: &Options) -> Result<f64, String> {
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
    Ok(options.jobs as f64 / elapsed.as_secs_f64())
}

fn report_floor(options: &Options, rate: f64) {
    out!(
        "scenario=floor backend=memory jobs={} concurrency={} jobs_per_sec={:.0}",
        options.jobs,
        options.concurrency,
        rate
    );
    out!(
        "  a bare channel and a mutex-guarded map move {} ids through two status writes each: {:.0} per s",
        options.jobs, rate
    );
}

pub(crate) fn database_url() -> Result<String, String> {
    std::env::var("DATABASE_URL")
        .map_err(|_| "set DATABASE_URL to run the PostgreSQL scenarios".to_owned())
}

pub(crate) fn pg_options(schema: &str) -> PostgresOptions {
    PostgresOptions::new().schema(schema).max_connections(8)
}

/// A backend on a fresh schema.
pub(crate) async fn fresh_backend() -> Result<(String, Arc<PostgresStore>), String> {
    let schema = format!("jobs_bench_{}", std::process::id());
    let url = database_url()?;
    let backend = PostgresStore::connect_with(&url, pg_options(&schema))
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(backend.pool())
        .await
        .map_err(|e| e.to_string())?;
    backend.migrate().await.map_err(|e| e.to_string())?;
    Ok((schema, backend))
}

pub(crate) async fn drop_schema(backend: &PostgresStore, schema: &str) {
    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(backend.pool())
        .await;
}

async fn count_succeeded(backend: &PostgresStore, schema: &str) -> Result<i64, String> {
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
        .store(backend.clone())
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
                .args(
                    options
                        .prefetch
                        .map(|n| vec!["--prefetch".to_owned(), n.to_string()])
                        .unwrap_or_default(),
                )
                .spawn()
                .map_err(|e| format!("could not start a worker process: {e}"))?,
        );
    }
    // Poll with a check the partial indexes answer (a count would scan the table and take
    // CPU from the database being measured); count once at the end.
    let deadline = Instant::now() + Duration::from_secs(900);
    let unfinished = format!(
        "SELECT EXISTS (SELECT 1 FROM {schema}.jobs WHERE status = 'Queued') \
             OR EXISTS (SELECT 1 FROM {schema}.jobs WHERE status = 'Running')"
    );
    let outcome = loop {
        let busy: bool = sqlx::query(&unfinished)
            .fetch_one(backend.pool())
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        if !busy {
            break Ok(());
        }
        if Instant::now() > deadline {
            break Err(format!("the {} jobs did not finish in time", options.jobs));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let drain_elapsed = drain_started.elapsed();
    let succeeded = count_succeeded(&backend, &schema).await? as usize;
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
    if total as usize != options.jobs || succeeded != options.jobs {
        return Err(format!(
            "{succeeded} of {} jobs succeeded ({total} stored)",
            options.jobs
        ));
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
    let backend = PostgresStore::connect_with(&database_url()?, pg_options(schema))
        .await
        .map_err(|e| e.to_string())?;
    serve_until_killed(backend, options).await
}

/// A worker process's service on `store`, with C workers (and `--prefetch`), serving
/// until the process is killed.
pub(crate) async fn serve_until_killed(
    store: Arc<dyn JobStore>,
    options: &Options,
) -> Result<(), String> {
    let mut builder = Jobs::builder()
        .store(store)
        .concurrency(options.concurrency);
    if let Some(prefetch) = options.prefetch {
        builder = builder.prefetch(prefetch);
    }
    let _jobs = builder.start().map_err(|e| e.to_string())?;
    std::future::pending::<()>().await;
    Ok(())
}

/// One job at a time on PostgreSQL, with the workers in this process.
async fn pg_latency(options: &Options) -> Result<(), String> {
    let (schema, backend) = fresh_backend().await?;
    let jobs = Jobs::builder()
        .store(backend.clone())
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
