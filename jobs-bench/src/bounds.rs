//! Scenarios that show the store's bounds hold under runaway load:
//!
//! - `overload`: a producer submits ten times faster than the workers drain into an
//!   in-memory store bounded at N active jobs (default 100,000), finished jobs kept for a
//!   second; the resident set per second, and how many submissions were refused instead of
//!   stored.
//! - `listing`: N jobs (default 1,000,000 in memory, 10,000,000 on PostgreSQL), nearly all
//!   succeeded, a few canceled and failed; the latency of a page of each status (p50 /
//!   p99), and a bulk drain of 20,000 jobs with and without a caller listing the rare
//!   status all the while. On PostgreSQL, also `GET /metrics` (its store-wide figures read
//!   on every request), `estimate_counts` and the exact `count_jobs` at that size.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs::memory::InMemoryStore;
use jobs::prelude::*;
use jobs::JobStore;
use jobs_postgres::sqlx;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{percentiles, rss_bytes, service, wait_until_done, Options};

/// Takes a millisecond, so that a few workers drain a known, slow rate.
#[job_executor("Sleep1ms")]
async fn sleep_1ms() -> Result<(), JobError> {
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(())
}

/// How long the producer of `overload` runs.
const OVERLOAD_SECONDS: u64 = 20;

pub(crate) async fn overload(options: &Options) -> Result<(), String> {
    let bound = options.jobs;
    let store = Arc::new(InMemoryStore::new().with_max_active_jobs(bound));
    // Finished jobs are deleted after a second: the bound is on active jobs, and what
    // finished jobs hold is retention's to limit.
    let jobs = Jobs::builder()
        .concurrency(options.concurrency)
        .retention(Duration::from_secs(1))
        .store(store.clone() as Arc<dyn JobStore>)
        .start()
        .map_err(|e| e.to_string())?;
    // The drain rate, measured first on a backlog.
    let probe = 2_000.min(bound);
    let batch: Vec<Job> = (0..probe)
        .map(|_| jobs.prepare_job("Sleep1ms", jobs::serde_json::Value::Null))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    jobs.submit_many(batch).await.map_err(|e| e.to_string())?;
    wait_until_done(&store, probe).await?;
    let drain_rate = probe as f64 / started.elapsed().as_secs_f64();
    let produce_rate = 10.0 * drain_rate;
    let refused = Arc::new(AtomicU64::new(0));
    let stored = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (jobs, refused, stored, stop) =
            (jobs.clone(), refused.clone(), stored.clone(), stop.clone());
        tokio::spawn(async move {
            // Batches of 100 at the producer's rate.
            let every = Duration::from_secs_f64(100.0 / produce_rate);
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            while !stop.load(Ordering::Relaxed) {
                ticks.tick().await;
                let batch: Vec<Job> = (0..100)
                    .filter_map(|_| {
                        jobs.prepare_job("Sleep1ms", jobs::serde_json::Value::Null)
                            .ok()
                    })
                    .collect();
                match jobs.submit_many(batch).await {
                    Ok(done) => stored.fetch_add(done.len() as u64, Ordering::Relaxed),
                    Err(SubmitError::StoreFull { .. }) => refused.fetch_add(100, Ordering::Relaxed),
                    Err(other) => panic!("a submission failed: {other}"),
                };
            }
        })
    };
    let start_rss = rss_bytes()?;
    let mut samples = Vec::new();
    for second in 1..=OVERLOAD_SECONDS {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss = rss_bytes()?;
        let active = store.count(JobStatus::Queued) + store.count(JobStatus::Running);
        samples.push(rss);
        out!(
            "  t={second:>2}s rss={:.1} MiB active={active} stored={} refused={}",
            mib(rss),
            stored.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed)
        );
        if active > bound {
            return Err(format!("{active} active jobs, over the bound of {bound}"));
        }
    }
    stop.store(true, Ordering::Relaxed);
    producer.await.map_err(|e| e.to_string())?;
    jobs.shutdown().await;
    // The resident set once the bound was reached (the first seconds fill it).
    let settled = &samples[samples.len() / 2..];
    let low = settled.iter().min().copied().unwrap_or(0);
    let high = settled.iter().max().copied().unwrap_or(0);
    out!(
        "scenario=overload backend=memory bound={bound} concurrency={} drain_per_sec={drain_rate:.0} produce_per_sec={produce_rate:.0} rss_start_mib={:.1} rss_settled_min_mib={:.1} rss_settled_max_mib={:.1} stored={} refused={}",
        options.concurrency,
        mib(start_rss),
        mib(low),
        mib(high),
        stored.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed)
    );
    out!(
        "  a producer at {produce_rate:.0} jobs/s against a drain of {drain_rate:.0}/s for {OVERLOAD_SECONDS} s: the resident set stayed between {:.1} and {:.1} MiB over the second half while {} submissions were refused",
        mib(low),
        mib(high),
        refused.load(Ordering::Relaxed)
    );
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// How many pages of each status `listing` reads.
const PAGES: usize = 200;

pub(crate) async fn listing(options: &Options) -> Result<(), String> {
    let postgres = options.backend == "postgres";
    let total = if options.jobs == 0 || options.jobs == 100_000 {
        if postgres {
            10_000_000
        } else {
            1_000_000
        }
    } else {
        options.jobs
    };
    let mut schema = None;
    let store: Arc<dyn JobStore> = if postgres {
        let (name, store) = crate::fresh_backend().await?;
        load_rows(&store, &name, total).await?;
        schema = Some((name, store.clone()));
        store
    } else {
        let store = Arc::new(InMemoryStore::new());
        load_memory(&store, total).await?;
        store
    };
    let backend = &options.backend;
    let mut listed = Vec::new();
    for status in JobStatus::ALL {
        let mut samples = Vec::with_capacity(PAGES);
        let mut found = 0;
        for _ in 0..PAGES {
            let started = Instant::now();
            let page = store
                .list(JobQuery::new().status(status))
                .await
                .map_err(|e| e.to_string())?;
            samples.push(started.elapsed());
            found = page.jobs.len();
        }
        let (p50, p99) = percentiles(&mut samples);
        out!(
            "scenario=listing backend={backend} jobs={total} status={status} page={found} p50_ms={:.3} p99_ms={:.3}",
            ms(p50),
            ms(p99)
        );
        listed.push((status, p50, p99));
    }
    // The effect on a drain of a caller listing the rare status all the while: the
    // flat-out listing first, then one every 10 ms, then none. Each drain has a queue of
    // its own, on PostgreSQL a store of its own too, and starts after a VACUUM; even so,
    // on PostgreSQL a drain after others runs slower than the first (with or without a
    // listing: an effect of the earlier drains, not of the listing). Read the listing's
    // cost in memory from these figures; on PostgreSQL, only that a drain beside a
    // flat-out listing still reaches a fresh table's rate.
    let mut rates = Vec::new();
    for listing in [Some(Duration::ZERO), Some(Duration::from_millis(10)), None] {
        if let Some((name, pg)) = &schema {
            sqlx::query(&format!("VACUUM {name}.jobs"))
                .execute(pg.pool())
                .await
                .map_err(|e| e.to_string())?;
        }
        let drained_on: Arc<dyn JobStore> = match &schema {
            Some((name, _)) => jobs_postgres::PostgresStore::connect_with(
                &crate::database_url()?,
                crate::pg_options(name),
            )
            .await
            .map_err(|e| e.to_string())?,
            None => store.clone(),
        };
        let queue = format!("drain{}", rates.len());
        rates.push(drain_rate(&drained_on, &queue, listing).await?);
    }
    let (quiet, paced, busy) = (rates[2], rates[1], rates[0]);
    out!(
        "scenario=listing-drain backend={backend} jobs={total} concurrency=4 drain_per_sec={quiet:.0} drain_per_sec_listing_every_10ms={paced:.0} drain_per_sec_listing_flat_out={busy:.0}"
    );
    if let Some((name, pg)) = &schema {
        metrics_reads(pg, total).await?;
        crate::drop_schema(pg, name).await;
    }
    let rare = listed
        .iter()
        .find(|(status, ..)| *status == JobStatus::Canceled)
        .map(|(_, p50, p99)| (ms(*p50), ms(*p99)))
        .unwrap_or_default();
    out!(
        "  {total} jobs on {backend}: a page of canceled jobs (0.02 % of them) in {:.3} ms (p50), {:.3} ms (p99); a drain of 20,000 jobs by 4 workers at {quiet:.0}/s alone, {paced:.0}/s with a caller listing them every 10 ms, {busy:.0}/s with one listing them as fast as it can",
        rare.0,
        rare.1
    );
    Ok(())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// Fills the store with `total` jobs: 0.02 % canceled (one in 5,000), the rest succeeded.
async fn load_memory(store: &Arc<InMemoryStore>, total: usize) -> Result<(), String> {
    let submitter = service(store, 0)?;
    let mut left = total;
    let mut canceled = Vec::new();
    while left > 0 {
        let batch: Vec<Job> = (0..left.min(10_000))
            .map(|_| submitter.prepare_job("Noop", jobs::serde_json::Value::Null))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        left -= batch.len();
        let stored = submitter
            .submit_many(batch)
            .await
            .map_err(|e| e.to_string())?;
        canceled.extend(stored.iter().step_by(5_000).map(|job| job.id));
    }
    for id in &canceled {
        submitter.cancel(*id).await.map_err(|e| e.to_string())?;
    }
    let workers = service(store, 4)?;
    wait_until_done(store, total).await?;
    workers.shutdown().await;
    submitter.shutdown().await;
    Ok(())
}

/// Inserts `total` finished rows straight into the table, as a long-lived store has them:
/// one in 2,000 failed, one in 5,000 canceled, the rest succeeded; then ANALYZE.
async fn load_rows(
    store: &jobs_postgres::PostgresStore,
    schema: &str,
    total: usize,
) -> Result<(), String> {
    let started = Instant::now();
    let chunk = 1_000_000;
    let mut from = 0;
    while from < total {
        let to = (from + chunk).min(total);
        sqlx::query(&format!(
            "INSERT INTO {schema}.jobs (id, job_type, status, payload, attempt, created_at,
                                       started_at, finished_at, run_at, failures, errors, error)
             SELECT (lpad(to_hex(1764000000000 + i), 12, '0') || '7' || lpad(to_hex(i % 4096), 3, '0')
                     || '8' || lpad(to_hex(i), 15, '0'))::uuid,
                    'Noop',
                    CASE WHEN i % 2000 = 1 THEN 'Failed' WHEN i % 5000 = 2 THEN 'Canceled'
                         ELSE 'Succeeded' END,
                    'null'::jsonb, 1, now(), now(), now(), now(),
                    CASE WHEN i % 2000 = 1 THEN 1 ELSE 0 END,
                    CASE WHEN i % 2000 = 1
                         THEN '[{{\"attempt\": 1, \"message\": \"boom\", \"at\": \"2026-01-01T00:00:00Z\"}}]'::jsonb
                         ELSE '[]'::jsonb END,
                    CASE WHEN i % 2000 = 1 THEN 'boom' END
             FROM generate_series($1::int8, $2::int8) AS i"
        ))
        .bind(from as i64 + 1)
        .bind(to as i64)
        .execute(store.pool())
        .await
        .map_err(|e| e.to_string())?;
        from = to;
        out!(
            "  loaded {from} rows in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    sqlx::query(&format!("VACUUM ANALYZE {schema}.jobs"))
        .execute(store.pool())
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Jobs per second of 20,000 no-op jobs drained by 4 workers of this process, with or
/// without a thread listing canceled jobs meanwhile, a page every `listing` (zero: as
/// fast as it can).
async fn drain_rate(
    store: &Arc<dyn JobStore>,
    queue: &str,
    listing: Option<Duration>,
) -> Result<f64, String> {
    const JOBS: usize = 20_000;
    let submitter = Jobs::builder()
        .concurrency(0)
        .store(store.clone())
        .start()
        .map_err(|e| e.to_string())?;
    let (mut first, mut last) = (None, None);
    for _ in 0..JOBS / 1_000 {
        let options = SubmitOptions::new().queue(queue);
        let batch: Vec<Job> = (0..1_000)
            .map(|_| {
                submitter.prepare_job_with_options("Noop", jobs::serde_json::Value::Null, &options)
            })
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let stored = submitter
            .submit_many(batch)
            .await
            .map_err(|e| e.to_string())?;
        first = first.or(stored.first().map(|job| job.id));
        last = stored.last().map(|job| job.id);
    }
    let (first, last) = first.zip(last).expect("jobs were submitted");
    let stop = Arc::new(AtomicBool::new(false));
    // A task of this process's runtime (a thread with a runtime of its own would drive
    // pooled connections that the workers then wait on). A page of `Canceled`, the rare
    // status.
    let lister = listing.map(|every| {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut pages = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = store
                    .list(JobQuery::new().status(JobStatus::Canceled))
                    .await;
                pages += 1;
                if every.is_zero() {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(every).await;
                }
            }
            pages
        })
    });
    let started = Instant::now();
    let workers = Jobs::builder()
        .concurrency(0)
        .serve_queue(queue, 4)
        .store(store.clone())
        .start()
        .map_err(|e| e.to_string())?;
    // Claims take the oldest first: once the last job has finished and none is queued or
    // running, every one has.
    let deadline = Instant::now() + Duration::from_secs(600);
    while !drained(store, last).await? {
        if Instant::now() > deadline {
            return Err("the drain did not finish in time".to_owned());
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    if let Some(lister) = lister {
        let pages = lister.await.map_err(|e| e.to_string())?;
        out!(
            "  while draining: {pages} pages of canceled jobs listed, {:.0} per second",
            pages as f64 / elapsed.as_secs_f64()
        );
    }
    workers.shutdown().await;
    submitter.shutdown().await;
    // The newest failed job, if any, must be older than the drain's jobs.
    let failed = store
        .list(JobQuery::new().status(JobStatus::Failed).limit(1))
        .await
        .map_err(|e| e.to_string())?;
    if failed.jobs.first().is_some_and(|job| job.id >= first) {
        return Err("a job of the drain failed".to_owned());
    }
    Ok(JOBS as f64 / elapsed.as_secs_f64())
}

/// Whether `last` has finished and no job is queued or running.
async fn drained(store: &Arc<dyn JobStore>, last: JobId) -> Result<bool, String> {
    let finished = store
        .get(last)
        .await
        .map_err(|e| e.to_string())?
        .is_some_and(|job| job.status.is_terminal());
    Ok(finished
        && !has_any(store, JobStatus::Queued).await?
        && !has_any(store, JobStatus::Running).await?)
}

async fn has_any(store: &Arc<dyn JobStore>, status: JobStatus) -> Result<bool, String> {
    let page = store
        .list(JobQuery::new().status(status).limit(1))
        .await
        .map_err(|e| e.to_string())?;
    Ok(!page.jobs.is_empty())
}

/// `GET /metrics` (its store-wide figures read on every request), `estimate_counts` and
/// the exact `count_jobs`, at the table's size.
async fn metrics_reads(
    store: &Arc<jobs_postgres::PostgresStore>,
    total: usize,
) -> Result<(), String> {
    let jobs = Jobs::builder()
        .concurrency(0)
        .store(store.clone() as Arc<dyn JobStore>)
        .start()
        .map_err(|e| e.to_string())?;
    let options = jobs_http::HttpOptions::new().metrics_cache(Duration::ZERO);
    let app = jobs_http::router_with(jobs.clone(), options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut scrapes = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let body = get(address, "/metrics").await?;
        scrapes.push(started.elapsed());
        if !body.contains("jobs{type=\"Noop\",status=\"Succeeded\"}") {
            return Err(format!("/metrics lacks the jobs' counts:\n{body}"));
        }
    }
    let mut estimates = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        store.estimate_counts().await.map_err(|e| e.to_string())?;
        estimates.push(started.elapsed());
    }
    let mut exact = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        store.count_jobs().await.map_err(|e| e.to_string())?;
        exact.push(started.elapsed());
    }
    server.abort();
    jobs.shutdown().await;
    let (scrape_p50, scrape_p99) = percentiles(&mut scrapes);
    let (estimate_p50, estimate_p99) = percentiles(&mut estimates);
    let (exact_p50, _) = percentiles(&mut exact);
    out!(
        "scenario=metrics backend=postgres jobs={total} metrics_p50_ms={:.1} metrics_p99_ms={:.1} estimate_counts_p50_ms={:.1} estimate_counts_p99_ms={:.1} count_jobs_p50_ms={:.1}",
        ms(scrape_p50),
        ms(scrape_p99),
        ms(estimate_p50),
        ms(estimate_p99),
        ms(exact_p50)
    );
    Ok(())
}

/// The body of a plain HTTP/1.1 GET of `path`.
async fn get(address: std::net::SocketAddr, path: &str) -> Result<String, String> {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    if !response.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "GET {path}: {}",
            response.lines().next().unwrap_or("")
        ));
    }
    Ok(response)
}
