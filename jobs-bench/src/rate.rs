//! The `rate` scenario: how close the measured start rate of a rate-limited type comes to
//! its limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs::prelude::*;
use jobs::{JobStore, RateLimit};

use crate::Options;

/// Like `Noop`, under the limit the scenario sets.
#[job_executor("RatedNoop")]
async fn rated_noop() -> Result<(), JobError> {
    Ok(())
}

/// Drains N `RatedNoop` jobs under `--rate` with C workers and reports the start rate
/// over the whole windows the drain took (the last, partial window left out).
pub(crate) async fn rate(options: &Options) -> Result<(), String> {
    let limit: RateLimit = options.rate.parse().map_err(|e| format!("{e}"))?;
    let mut scratch = None;
    let mut schema = None;
    let store: Arc<dyn JobStore> = match options.backend.as_str() {
        "postgres" => {
            let (name, store) = crate::fresh_backend().await?;
            schema = Some((name, store.clone()));
            store
        }
        "sqlite" => {
            let (file, store) = crate::sqlite::scratch_store(options)?;
            scratch = Some(file);
            store
        }
        _ => Arc::new(jobs::memory::InMemoryStore::new()),
    };
    let jobs = Jobs::builder()
        .store(store)
        .concurrency(options.concurrency)
        .type_rate_limit("RatedNoop", &options.rate)
        .start()
        .map_err(|e| e.to_string())?;
    let mut ids = Vec::with_capacity(options.jobs);
    let mut left = options.jobs;
    while left > 0 {
        let batch = (0..left.min(1_000))
            .map(|_| jobs.prepare_job("RatedNoop", jobs::serde_json::Value::Null))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        left -= batch.len();
        ids.extend(
            jobs.submit_many(batch)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|job| job.id),
        );
    }
    let started = Instant::now();
    let budget = limit
        .period()
        .mul_f64(options.jobs as f64 / f64::from(limit.max()) + 3.0)
        + Duration::from_secs(30);
    let mut starts = Vec::with_capacity(ids.len());
    for id in &ids {
        let left = budget.saturating_sub(started.elapsed());
        let job = tokio::time::timeout(left, jobs.wait_for(*id))
            .await
            .map_err(|_| format!("the jobs did not finish within {budget:?}"))?
            .map_err(|e| e.to_string())?;
        if job.status != JobStatus::Succeeded {
            return Err(format!("job {} ended {}", job.id, job.status));
        }
        starts.push(
            job.started_at
                .ok_or("a finished job without a start")?
                .as_unix_micros(),
        );
    }
    jobs.shutdown().await;
    if let Some((name, store)) = schema {
        crate::drop_schema(&store, &name).await;
    }
    drop(scratch);
    let first = *starts.iter().min().ok_or("no jobs")?;
    let last = *starts.iter().max().ok_or("no jobs")?;
    let period = limit.period().as_micros() as i64;
    let windows = (last - first) / period;
    if windows == 0 {
        return Err("the jobs fit in one window: give more --jobs".to_owned());
    }
    let within = starts
        .iter()
        .filter(|&&at| at < first + windows * period)
        .count();
    // When each window opened (its first start), and how late after the one before ended.
    starts.sort_unstable();
    let mut opened = vec![first];
    for &at in &starts {
        if at >= opened[opened.len() - 1] + period {
            opened.push(at);
        }
    }
    let late: Vec<i64> = opened.windows(2).map(|w| w[1] - w[0] - period).collect();
    let late_ms = late.iter().sum::<i64>() as f64 / late.len().max(1) as f64 / 1_000.0;
    let sustained = f64::from(limit.max()) / (limit.period().as_secs_f64() + late_ms / 1_000.0);
    let seconds = Duration::from_micros((windows * period) as u64).as_secs_f64();
    let measured = within as f64 / seconds;
    let target = f64::from(limit.max()) / limit.period().as_secs_f64();
    out!(
        "scenario=rate backend={} jobs={} concurrency={} limit={} windows={windows} started={within} starts_per_second={measured:.1} target={target:.1} ratio={:.4} window_late_ms={late_ms:.1} sustained_per_second={sustained:.1}",
        options.backend,
        options.jobs,
        options.concurrency,
        limit,
        measured / target
    );
    out!(
        "  {within} starts in {windows} whole windows of {:?}: {measured:.1}/s against a limit of {target:.1}/s ({:+.2} %)",
        limit.period(),
        (measured / target - 1.0) * 100.0
    );
    out!(
        "  each window opened {late_ms:.1} ms after the one before ended (the engine looks again every 20 ms while a limit holds its jobs): a sustained {sustained:.1}/s ({:+.2} %)",
        (sustained / target - 1.0) * 100.0
    );
    Ok(())
}
