//! The SQLite scenarios: a bulk drain and one-at-a-time latency on a fresh file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs::prelude::*;
use jobs::JobStore;
use jobs_sqlite::{SqliteOptions, SqliteStore, Synchronous};

use crate::Options;

/// A fresh database file, removed (with its WAL) when dropped.
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("jobs-bench-{}.sqlite3", std::process::id()));
        let scratch = Self(path);
        scratch.remove();
        scratch
    }

    fn remove(&self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut name = self.0.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A store on a fresh file, which goes when the scratch is dropped.
pub(crate) fn scratch_store(options: &Options) -> Result<(Scratch, Arc<SqliteStore>), String> {
    let scratch = Scratch::new();
    let store = open(&scratch.0, options)?;
    Ok((scratch, store))
}

fn store_options(options: &Options) -> SqliteOptions {
    SqliteOptions::new().synchronous(options.synchronous)
}

fn open(path: &Path, options: &Options) -> Result<Arc<SqliteStore>, String> {
    SqliteStore::open_with(path, store_options(options)).map_err(|e| e.to_string())
}

fn synchronous(options: &Options) -> &'static str {
    match options.synchronous {
        Synchronous::Full => "full",
        _ => "normal",
    }
}

/// Starts `count` worker processes (this program again) on the file.
fn worker_processes(
    options: &Options,
    path: &Path,
    count: usize,
) -> Result<Vec<std::process::Child>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    (0..count)
        .map(|_| {
            std::process::Command::new(&exe)
                .args(["sqlite-worker", "--backend", "sqlite"])
                .args(["--file", &path.display().to_string()])
                .args(["--concurrency", &options.concurrency.to_string()])
                .args(["--synchronous", synchronous(options)])
                .spawn()
                .map_err(|e| format!("could not start a worker process: {e}"))
        })
        .collect()
}

/// Whether any job is still queued or running (the partial indexes answer it).
fn busy(connection: &jobs_sqlite::rusqlite::Connection) -> Result<bool, String> {
    connection
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE status = 'Queued')
                 OR EXISTS (SELECT 1 FROM jobs WHERE status = 'Running')",
            [],
            |row| row.get(0),
        )
        .map_err(|e| e.to_string())
}

/// Pre-inserts N jobs, then drains them with C workers in this process (or P worker
/// processes) and times the drain.
pub(crate) async fn bulk(options: &Options) -> Result<(), String> {
    let scratch = Scratch::new();
    let store = open(&scratch.0, options)?;
    let client = Jobs::builder()
        .store(store.clone())
        .concurrency(0)
        .start()
        .map_err(|e| e.to_string())?;
    let insert_started = Instant::now();
    let mut left = options.jobs;
    while left > 0 {
        let batch: Vec<Job> = (0..left.min(5_000))
            .map(|_| client.prepare_job("Noop", jobs::serde_json::Value::Null))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        left -= batch.len();
        store.insert_many(batch).await.map_err(|e| e.to_string())?;
    }
    let insert_elapsed = insert_started.elapsed();
    let watcher = store.open_connection().map_err(|e| e.to_string())?;

    let drain_started = Instant::now();
    let processes = if options.processes_set {
        options.processes
    } else {
        0
    };
    let mut children = worker_processes(options, &scratch.0, processes)?;
    let mut builder = Jobs::builder()
        .store(store.clone())
        .concurrency(if processes == 0 {
            options.concurrency
        } else {
            0
        });
    if let Some(prefetch) = options.prefetch {
        builder = builder.prefetch(prefetch);
    }
    let workers = builder.start().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(900);
    let outcome = loop {
        if !busy(&watcher)? {
            break Ok(());
        }
        if Instant::now() > deadline {
            break Err(format!("the {} jobs did not finish in time", options.jobs));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let drain_elapsed = drain_started.elapsed();
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    workers.shutdown().await;
    client.shutdown().await;
    outcome?;
    let succeeded: usize = store
        .count_jobs()
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .filter(|count| count.status == JobStatus::Succeeded)
        .map(|count| count.count as usize)
        .sum();
    if succeeded != options.jobs {
        return Err(format!("{succeeded} of {} jobs succeeded", options.jobs));
    }
    let rate = options.jobs as f64 / drain_elapsed.as_secs_f64();
    out!(
        "scenario=bulk backend=sqlite synchronous={} jobs={} processes={processes} concurrency={} jobs_per_sec={rate:.0} insert_per_sec={:.0}",
        synchronous(options),
        options.jobs,
        options.concurrency,
        options.jobs as f64 / insert_elapsed.as_secs_f64()
    );
    out!(
        "  {} workers ({}) drained {} pre-inserted no-op jobs from one SQLite file in {:.2} s ({rate:.0} jobs/s)",
        options.concurrency,
        if processes == 0 {
            "in this process".to_owned()
        } else {
            format!("in each of {processes} processes")
        },
        options.jobs,
        drain_elapsed.as_secs_f64(),
    );
    Ok(())
}

/// A worker process: serves the file's jobs until it is killed.
pub(crate) async fn worker(options: &Options) -> Result<(), String> {
    let path = options
        .file
        .as_deref()
        .ok_or("sqlite-worker needs --file")?;
    crate::serve_until_killed(open(Path::new(path), options)?, options).await
}

/// One job at a time: workers in this process, or with `--processes` in another.
pub(crate) async fn latency(options: &Options) -> Result<(), String> {
    let scratch = Scratch::new();
    let store = open(&scratch.0, options)?;
    let across = options.processes_set;
    let mut children = worker_processes(options, &scratch.0, usize::from(across))?;
    let jobs = Jobs::builder()
        .store(store)
        .concurrency(if across { 0 } else { options.concurrency })
        .start()
        .map_err(|e| e.to_string())?;
    if across {
        // Let the worker process open the file and start listening.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let count = options.jobs.min(5_000);
    let outcome = crate::one_at_a_time(&jobs, count).await;
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    jobs.shutdown().await;
    let (mut to_start, mut to_finish) = outcome?;
    crate::report_latency(
        if across {
            "sqlite workers=another-process"
        } else {
            "sqlite workers=this-process"
        },
        options.concurrency,
        &mut to_start,
        &mut to_finish,
    );
    Ok(())
}
