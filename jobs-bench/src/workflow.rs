//! The `workflow` scenario: what a dependency costs. A chain of three steps and a fan-out
//! of a hundred into one, each timed from its submit to its last step's end, and the
//! drain of independent jobs against the drain of as many jobs in parent → child pairs
//! (stored first, then drained by workers started for it), on any backend.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs::prelude::*;
use jobs::serde_json::{json, Value};
use jobs::{JobStore, PayloadFrom};

use crate::Options;

/// A step: returns its argument plus one (an array's length, for a fan-in), so each
/// step's output is the next step's input.
#[job_executor("WfStep")]
async fn wf_step(input: Value) -> Result<u64, JobError> {
    Ok(match input {
        Value::Array(items) => items.len() as u64,
        other => other.as_u64().unwrap_or(0) + 1,
    })
}

/// How many chains and fan-ins are timed, and how many jobs the drains move.
struct Sizes {
    rounds: usize,
    drain: usize,
}

pub(crate) async fn workflow(options: &Options) -> Result<(), String> {
    let mut scratch = None;
    let mut schema = None;
    let (store, sizes): (Arc<dyn JobStore>, Sizes) = match options.backend.as_str() {
        "postgres" => {
            let (name, store) = crate::fresh_backend().await?;
            schema = Some((name, store.clone()));
            (
                store,
                Sizes {
                    rounds: 50,
                    drain: options.jobs.min(10_000),
                },
            )
        }
        "sqlite" => {
            let (file, store) = crate::sqlite::scratch_store(options)?;
            scratch = Some(file);
            (
                store,
                Sizes {
                    rounds: 50,
                    drain: options.jobs.min(10_000),
                },
            )
        }
        _ => (
            Arc::new(jobs::memory::InMemoryStore::new()),
            Sizes {
                rounds: 200,
                drain: options.jobs,
            },
        ),
    };
    let jobs = Jobs::builder()
        .store(store.clone())
        .concurrency(options.concurrency)
        .start()
        .map_err(|e| e.to_string())?;
    let backend = options.backend.as_str();

    // Warm up: connections, prepared statements, the first claims.
    for _ in 0..20 {
        chain(&jobs).await?;
    }
    fan_in(&jobs, 100).await?;

    let mut chains = Vec::with_capacity(sizes.rounds);
    for _ in 0..sizes.rounds {
        chains.push(chain(&jobs).await?);
    }
    let mut fans = Vec::with_capacity(sizes.rounds);
    for _ in 0..sizes.rounds {
        fans.push(fan_in(&jobs, 100).await?);
    }
    let (chain_p50, chain_p95) = percentiles(&mut chains);
    let (fan_p50, fan_p95) = percentiles(&mut fans);
    out!(
        "scenario=workflow backend={backend} concurrency={} chain3_p50_ms={:.2} chain3_p95_ms={:.2} fan100_p50_ms={:.2} fan100_p95_ms={:.2}",
        options.concurrency,
        ms(chain_p50),
        ms(chain_p95),
        ms(fan_p50),
        ms(fan_p95)
    );
    out!(
        "  a chain of 3 (each step with the previous step's result), submit to last end: {:.2} ms median, {:.2} ms p95 ({} chains)",
        ms(chain_p50),
        ms(chain_p95),
        sizes.rounds
    );
    out!(
        "  100 shards then a merge of their 100 results, submit to the merge's end: {:.2} ms median, {:.2} ms p95 ({} runs)",
        ms(fan_p50),
        ms(fan_p95),
        sizes.rounds
    );

    // The drains run on services of their own.
    jobs.shutdown().await;
    let pairs = sizes.drain / 2;
    let independent = drain(&store, options.concurrency, pairs * 2, false).await?;
    let paired = drain(&store, options.concurrency, pairs * 2, true).await?;
    let per_job = independent.as_secs_f64() / (pairs * 2) as f64;
    let per_dependency = (paired.as_secs_f64() - independent.as_secs_f64()) / pairs as f64;
    let (unit, scale) = if backend == "memory" {
        ("us", 1e6)
    } else {
        ("ms", 1e3)
    };
    out!(
        "scenario=workflow-overhead backend={backend} concurrency={} jobs={} independent_jobs_per_sec={:.0} paired_jobs_per_sec={:.0} dependency_overhead_{unit}={:.3}",
        options.concurrency,
        pairs * 2,
        (pairs * 2) as f64 / independent.as_secs_f64(),
        (pairs * 2) as f64 / paired.as_secs_f64(),
        per_dependency * scale
    );
    out!(
        "  {} independent jobs stored, then drained in {:.3} s ({:.3} {unit} a job); as {pairs} parent -> child pairs in {:.3} s: {:.3} {unit} more per dependency",
        pairs * 2,
        independent.as_secs_f64(),
        per_job * scale,
        paired.as_secs_f64(),
        per_dependency * scale
    );
    if let Some((name, store)) = schema {
        crate::drop_schema(&store, &name).await;
    }
    drop(scratch);
    Ok(())
}

/// Submits `a → b → c`, each taking the previous step's result, and waits for `c`; the
/// time from the submit to its end. Fails unless `c` got 3.
async fn chain(jobs: &Jobs) -> Result<Duration, String> {
    let started = Instant::now();
    let first = jobs
        .prepare_job("WfStep", json!(0))
        .map_err(|e| e.to_string())?;
    let second = after(jobs, &[first.id], PayloadFrom::Parent)?;
    let third = after(jobs, &[second.id], PayloadFrom::Parent)?;
    let last = third.id;
    jobs.submit_many(vec![first, second, third])
        .await
        .map_err(|e| e.to_string())?;
    let done = jobs.wait_for(last).await.map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    let result = jobs.get_job_result(last).await.map_err(|e| e.to_string())?;
    if done.status != JobStatus::Succeeded || result != Some(json!(3)) {
        return Err(format!("the chain ended {:?} with {result:?}", done.status));
    }
    Ok(elapsed)
}

/// Submits `width` shards and a merge of their results, and waits for the merge; the
/// time from the submit to its end. Fails unless the merge saw every shard.
async fn fan_in(jobs: &Jobs, width: usize) -> Result<Duration, String> {
    let started = Instant::now();
    let mut batch = (0..width)
        .map(|n| jobs.prepare_job("WfStep", json!(n)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let parents: Vec<JobId> = batch.iter().map(|job| job.id).collect();
    let merge = after(jobs, &parents, PayloadFrom::Parents)?;
    let last = merge.id;
    batch.push(merge);
    jobs.submit_many(batch).await.map_err(|e| e.to_string())?;
    let done = jobs.wait_for(last).await.map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    let result = jobs.get_job_result(last).await.map_err(|e| e.to_string())?;
    if done.status != JobStatus::Succeeded || result != Some(json!(width)) {
        return Err(format!("the merge ended {:?} with {result:?}", done.status));
    }
    Ok(elapsed)
}

/// A `WfStep` job that waits for `parents` and takes their results.
fn after(jobs: &Jobs, parents: &[JobId], from: PayloadFrom) -> Result<Job, String> {
    let options = SubmitOptions::new()
        .depends_on(parents.iter().copied())
        .payload_from(from);
    jobs.prepare_job_with_options("WfStep", Value::Null, &options)
        .map_err(|e| e.to_string())
}

/// Stores `count` jobs through a service without workers (in batches of 1,000, as parent
/// → child pairs when `paired`, each pair in one batch), then starts `concurrency`
/// workers and times until every job has succeeded, counted from the store's events, so
/// that the wait costs the store nothing.
async fn drain(
    store: &Arc<dyn JobStore>,
    concurrency: usize,
    count: usize,
    paired: bool,
) -> Result<Duration, String> {
    let submitter = Jobs::builder()
        .store(store.clone())
        .concurrency(0)
        .start()
        .map_err(|e| e.to_string())?;
    let mut left = count;
    while left > 0 {
        let size = left.min(1_000);
        let mut batch = Vec::with_capacity(size);
        while batch.len() < size {
            let parent = submitter
                .prepare_job("WfStep", json!(0))
                .map_err(|e| e.to_string())?;
            if paired {
                let child = after(&submitter, &[parent.id], PayloadFrom::Parent)?;
                batch.push(parent);
                batch.push(child);
            } else {
                batch.push(parent);
            }
        }
        left -= batch.len();
        submitter
            .submit_many(batch)
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut events = store
        .notifications()
        .ok_or("the store sends no events")?
        .subscribe();
    let started = Instant::now();
    let workers = Jobs::builder()
        .store(store.clone())
        .concurrency(concurrency)
        .start()
        .map_err(|e| e.to_string())?;
    let mut succeeded = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while succeeded < count {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| "the drain did not finish in ten minutes".to_owned())?;
        match event {
            Ok(jobs::JobEvent::Finished { id, status, .. }) => {
                if status != JobStatus::Succeeded {
                    return Err(format!("job {id} ended {status}"));
                }
                succeeded += 1;
            }
            Ok(_) => {}
            Err(error) => return Err(format!("events were missed: {error}")),
        }
    }
    let elapsed = started.elapsed();
    workers.shutdown().await;
    submitter.shutdown().await;
    Ok(elapsed)
}

/// The median and 95th percentile of `times`.
fn percentiles(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
