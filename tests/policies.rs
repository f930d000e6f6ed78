//! Run policies, on every backend: retries with backoff and the error of every attempt,
//! permanent failures, snoozes, time limits, scheduled starts and priorities.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::{finished, Env};
use jobs::prelude::*;
use jobs::{JobEvent, Timestamp};
use serde_json::{json, Value};

/// Fails its first two attempts, then succeeds with the attempt number.
#[job_executor("FlakyTwice", retries = 3, backoff = "10ms")]
async fn flaky_twice(ctx: JobContext) -> Result<u32, JobError> {
    if ctx.attempt() < 3 {
        return Err(JobError::failed(format!("flaky {}", ctx.attempt())));
    }
    Ok(ctx.attempt())
}

/// Always fails.
#[job_executor("AlwaysFlaky", retries = 2, backoff = "10ms")]
async fn always_flaky(ctx: JobContext) -> Result<(), JobError> {
    Err(JobError::failed(format!("nope {}", ctx.attempt())))
}

/// Fails in a way no retry can fix.
#[job_executor("Broken", retries = 5, backoff = "10ms")]
async fn broken() -> Result<(), JobError> {
    Err(JobError::permanent("bad input"))
}

/// Snoozes its first two attempts; it has no retries, so snoozes must not count.
#[job_executor("Sleepy")]
async fn sleepy(ctx: JobContext) -> Result<u32, JobError> {
    if ctx.attempt() < 3 {
        return Err(JobError::snooze(Duration::from_millis(20)));
    }
    Ok(ctx.attempt())
}

/// Ignores its cancellation token: only abandoning it stops it.
#[job_executor("Stubborn", timeout = "100ms")]
async fn stubborn() -> Result<(), JobError> {
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Stops as soon as its token fires.
#[job_executor("Polite", timeout = "100ms")]
async fn polite(ctx: JobContext) -> Result<(), JobError> {
    ctx.cancelled().await;
    ctx.check_cancelled()
}

/// Takes 150 ms in the `slow` queue, counting how many run at once.
#[job_executor("SlowLane", queue = "slow")]
async fn slow_lane() -> Result<(), JobError> {
    let now = SLOW_RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    SLOW_MOST.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    SLOW_RUNNING.fetch_sub(1, Ordering::SeqCst);
    Ok(())
}

static SLOW_RUNNING: AtomicUsize = AtomicUsize::new(0);
static SLOW_MOST: AtomicUsize = AtomicUsize::new(0);
/// The queue tests share the counters: one at a time.
static SLOW_TESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Records the order in which jobs run, per test run.
#[job_executor("Record")]
async fn record(args: Value) -> Result<(), JobError> {
    let run = args["run"].as_str().unwrap_or_default().to_owned();
    let label = args["label"].as_str().unwrap_or_default().to_owned();
    ORDER.lock().unwrap().push((run, label));
    Ok(())
}

/// (run, label) of every `Record` job, in the order they ran.
static ORDER: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

for_each_backend!(
    a_failing_job_is_retried_with_backoff_and_keeps_every_error,
    a_job_that_keeps_failing_ends_failed_after_its_last_attempt,
    a_permanent_failure_is_not_retried,
    a_snooze_runs_the_job_again_without_counting_a_failure,
    a_submission_can_change_the_retries_of_its_type,
    a_job_past_its_time_limit_is_told_to_stop_and_fails,
    a_job_that_ignores_its_time_limit_is_abandoned,
    a_delayed_job_does_not_start_before_its_time,
    due_jobs_run_by_priority,
    options_that_cannot_be_honoured_are_refused_and_nothing_is_stored,
    a_unique_key_admits_one_active_job_at_a_time,
    racing_submits_with_one_key_store_one_job,
    finished_jobs_are_pruned_and_active_ones_kept,
    a_retention_period_prunes_by_itself,
    a_tick_gets_one_job_however_many_fire_it,
    periodic_jobs_run_once_per_tick_across_services,
    a_schedule_that_cannot_run_is_refused_at_start,
    unique_keys_are_per_job_type,
    a_burst_in_one_queue_does_not_hold_up_the_others,
    queue_names_are_checked,
);

async fn a_failing_job_is_retried_with_backoff_and_keeps_every_error(env: Env) {
    let jobs = env.start(2);
    let mut events = jobs.subscribe();
    let job = jobs.submit_job("FlakyTwice").await.unwrap();
    assert_eq!(job.max_attempts, 4, "retries = 3 allow 4 attempts");
    let done = finished(&jobs, job.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.attempt, 3);
    let errors: Vec<(u32, &str)> = done
        .errors
        .iter()
        .map(|e| (e.attempt, e.message.as_str()))
        .collect();
    assert_eq!(errors, vec![(1, "flaky 1"), (2, "flaky 2")]);
    assert!(done.errors[0].at <= done.errors[1].at);
    assert_eq!(done.error, None, "a job that succeeded has no error");
    assert_eq!(jobs.get_job_result(job.id).await.unwrap(), Some(json!(3)));
    let mut requeued = Vec::new();
    let mut due = Vec::new();
    while let Some(event) = events.try_recv() {
        if let JobEvent::Requeued {
            id,
            attempt,
            error,
            run_at,
        } = event
        {
            if id == job.id {
                requeued.push((attempt, error));
                due.push(run_at);
            }
        }
    }
    // The last retry waited out its backoff (at least half of 10 ms doubled), measured on
    // one clock (the one that chose the due time and stamped the start may differ on
    // PostgreSQL by the time a statement takes).
    assert!(
        done.started_at.unwrap() >= due[1],
        "started before it was due"
    );
    let backoff = due[1].duration_since(done.errors[1].at);
    assert!(backoff >= Duration::from_millis(5), "{backoff:?}");
    assert_eq!(
        requeued,
        vec![
            (1, Some("flaky 1".to_owned())),
            (2, Some("flaky 2".to_owned()))
        ]
    );
    jobs.shutdown().await;
}

async fn a_job_that_keeps_failing_ends_failed_after_its_last_attempt(env: Env) {
    let jobs = env.start(2);
    let job = jobs.submit_job("AlwaysFlaky").await.unwrap();
    let done = finished(&jobs, job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(done.attempt, 3, "retries = 2: three attempts");
    assert_eq!(done.error.as_deref(), Some("nope 3"));
    let attempts: Vec<u32> = done.errors.iter().map(|e| e.attempt).collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    jobs.shutdown().await;
}

async fn a_permanent_failure_is_not_retried(env: Env) {
    let jobs = env.start(2);
    let job = jobs.submit_job("Broken").await.unwrap();
    let done = finished(&jobs, job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(
        done.attempt, 1,
        "retries remained, but the failure was permanent"
    );
    assert_eq!(done.error.as_deref(), Some("bad input"));
    assert_eq!(done.errors.len(), 1);
    jobs.shutdown().await;
}

async fn a_snooze_runs_the_job_again_without_counting_a_failure(env: Env) {
    let jobs = env.start(2);
    let job = jobs.submit_job("Sleepy").await.unwrap();
    assert_eq!(job.max_attempts, 1, "no retries");
    let done = finished(&jobs, job.id).await;
    assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    assert_eq!(done.attempt, 3);
    assert!(done.errors.is_empty(), "a snooze is no failure");
    jobs.shutdown().await;
}

async fn a_submission_can_change_the_retries_of_its_type(env: Env) {
    let jobs = env.start(2);
    let options = SubmitOptions::new().retries(0);
    let job = jobs
        .submit_job_with_options("AlwaysFlaky", Value::Null, &options)
        .await
        .unwrap();
    assert_eq!(job.max_attempts, 1);
    let done = finished(&jobs, job.id).await;
    assert_eq!((done.status, done.attempt), (JobStatus::Failed, 1));
    jobs.shutdown().await;
}

async fn a_job_past_its_time_limit_is_told_to_stop_and_fails(env: Env) {
    let jobs = env.start(1);
    let job = jobs.submit_job("Polite").await.unwrap();
    assert_eq!(job.timeout_ms, Some(100));
    let done = finished(&jobs, job.id).await;
    assert_eq!(
        done.status,
        JobStatus::Failed,
        "a timeout is a failure, not a cancel"
    );
    assert_eq!(done.error.as_deref(), Some("timed out after 100ms"));
    jobs.shutdown().await;
}

async fn a_job_that_ignores_its_time_limit_is_abandoned(env: Env) {
    let jobs = env
        .builder()
        .concurrency(1)
        .timeout_grace(Duration::from_millis(100))
        .start()
        .unwrap();
    let job = jobs.submit_job("Stubborn").await.unwrap();
    let done = finished(&jobs, job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    let error = done.error.unwrap();
    assert!(
        error.starts_with("timed out after 100ms; abandoned"),
        "{error}"
    );
    // The worker is free again: another job runs.
    let next = jobs.submit_job("Sleepy").await.unwrap();
    assert_eq!(finished(&jobs, next.id).await.status, JobStatus::Succeeded);
    jobs.shutdown().await;
}

async fn a_delayed_job_does_not_start_before_its_time(env: Env) {
    let jobs = env.start(2);
    let run = jobs::JobId::new().to_string();
    let payload = json!({ "run": run, "label": "late" });
    let options = SubmitOptions::new().delay(Duration::from_millis(300));
    let job = jobs
        .submit_job_with_options("Record", payload, &options)
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(
        job.run_at.as_unix_micros() - job.created_at.as_unix_micros(),
        300_000
    );
    // A job submitted after it, without delay, runs first.
    let now = jobs
        .submit_job_with("Record", json!({ "run": run, "label": "now" }))
        .await
        .unwrap();
    finished(&jobs, now.id).await;
    let done = finished(&jobs, job.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert!(done.started_at.unwrap() >= job.run_at, "{done:?}");
    assert_eq!(order(&run), vec!["now", "late"]);

    // A time in the past means at once.
    let past = Timestamp::from_unix_micros(0);
    let job = jobs
        .submit_job_with_options(
            "Record",
            json!({ "run": run, "label": "past" }),
            &SubmitOptions::new().run_at(past),
        )
        .await
        .unwrap();
    assert_eq!(job.run_at, job.created_at);
    assert_eq!(finished(&jobs, job.id).await.status, JobStatus::Succeeded);
    jobs.shutdown().await;
}

async fn due_jobs_run_by_priority(env: Env) {
    // Queued while nothing runs, then drained by one worker.
    let submitter = env.start(0);
    let run = jobs::JobId::new().to_string();
    let mut ids = Vec::new();
    for (label, priority) in [
        ("low-1", 0),
        ("high", 10),
        ("low-2", 0),
        ("mid", 5),
        ("neg", -1),
    ] {
        let job = submitter
            .submit_job_with_options(
                "Record",
                json!({ "run": run, "label": label }),
                &SubmitOptions::new().priority(priority),
            )
            .await
            .unwrap();
        assert_eq!(job.priority, priority);
        ids.push(job.id);
    }
    let worker = env.another().await.start(1);
    for id in ids {
        finished(&worker, id).await;
    }
    assert_eq!(order(&run), vec!["high", "mid", "low-1", "low-2", "neg"]);
    worker.shutdown().await;
    submitter.shutdown().await;
}

async fn options_that_cannot_be_honoured_are_refused_and_nothing_is_stored(env: Env) {
    let jobs = env.start(1);
    let too_long = SubmitOptions::MAX_TIMEOUT + Duration::from_secs(1);
    let key = "é".repeat(SubmitOptions::MAX_UNIQUE_KEY_CHARS + 1);
    for (options, says) in [
        (SubmitOptions::new().timeout(Duration::ZERO), "zero"),
        (SubmitOptions::new().timeout(too_long), "hundred years"),
        (
            SubmitOptions::new().retries(SubmitOptions::MAX_RETRIES + 1),
            "retries",
        ),
        (SubmitOptions::new().unique_key(key), "255 characters"),
    ] {
        let error = jobs
            .submit_job_with_options("Record", json!({}), &options)
            .await
            .unwrap_err();
        assert!(
            matches!(error, SubmitError::InvalidOptions { ref reason, .. } if reason.contains(says)),
            "{error}"
        );
    }
    let page = jobs.list_jobs(jobs::JobQuery::new()).await.unwrap();
    assert!(page.jobs.is_empty(), "nothing stored");
    // A key of 255 characters is fine even when it takes more bytes.
    let key = "é".repeat(SubmitOptions::MAX_UNIQUE_KEY_CHARS);
    let options = SubmitOptions::new().unique_key(key.clone());
    let accepted = jobs
        .submit_job_with_options("Record", json!({}), &options)
        .await
        .unwrap();
    assert_eq!(accepted.unique_key, Some(key));
    jobs.shutdown().await;
}

async fn a_unique_key_admits_one_active_job_at_a_time(env: Env) {
    // No workers yet: the first job stays Queued.
    let submitter = env.start(0);
    let unique = SubmitOptions::new().unique_key("report-42");
    let first = submitter
        .submit_job_with_options("Record", json!({}), &unique)
        .await
        .unwrap();
    assert_eq!(first.unique_key.as_deref(), Some("report-42"));
    let again = submitter
        .submit_job_with_options("Record", json!({ "other": "payload" }), &unique)
        .await
        .unwrap();
    assert_eq!(again.id, first.id, "the active job is returned");
    assert_eq!(
        again.payload,
        json!({}),
        "and it is the first one, unchanged"
    );
    let other_key = submitter
        .submit_job_with_options(
            "Record",
            json!({}),
            &SubmitOptions::new().unique_key("report-43"),
        )
        .await
        .unwrap();
    assert_ne!(other_key.id, first.id);
    let all = submitter.list_jobs(jobs::JobQuery::new()).await.unwrap();
    assert_eq!(all.jobs.len(), 2);

    // Once it has finished, the key is free.
    let worker = env.another().await.start(1);
    finished(&worker, first.id).await;
    let next = submitter
        .submit_job_with_options("Record", json!({}), &unique)
        .await
        .unwrap();
    assert_ne!(next.id, first.id, "a finished job no longer holds its key");
    finished(&worker, next.id).await;
    worker.shutdown().await;
    submitter.shutdown().await;
}

async fn racing_submits_with_one_key_store_one_job(env: Env) {
    // Two services (two processes on PostgreSQL), eight submitters each, one key.
    let here = env.start(0);
    let there = env.another().await.start(0);
    let unique = SubmitOptions::new().unique_key("nightly-export");
    let mut racers = Vec::new();
    for n in 0..16 {
        let jobs = if n % 2 == 0 {
            here.clone()
        } else {
            there.clone()
        };
        let unique = unique.clone();
        racers.push(tokio::spawn(async move {
            jobs.submit_job_with_options("Record", json!({ "n": n }), &unique)
                .await
                .unwrap()
                .id
        }));
    }
    let mut ids = Vec::new();
    for racer in racers {
        ids.push(racer.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every submit got the same job: {ids:?}");
    let all = here.list_jobs(jobs::JobQuery::new()).await.unwrap();
    assert_eq!(all.jobs.len(), 1, "one job stored");
    there.shutdown().await;
    here.shutdown().await;
}

async fn finished_jobs_are_pruned_and_active_ones_kept(env: Env) {
    let jobs = env.start(2);
    let mut done = Vec::new();
    for n in 0..3 {
        let job = jobs
            .submit_job_with("Record", json!({ "n": n }))
            .await
            .unwrap();
        done.push(job.id);
    }
    let failed = jobs.submit_job("Broken").await.unwrap();
    done.push(failed.id);
    for id in &done {
        finished(&jobs, *id).await;
    }
    let later = jobs
        .submit_job_with_options(
            "Record",
            json!({}),
            &SubmitOptions::new().delay(Duration::from_secs(3_600)),
        )
        .await
        .unwrap();
    // Nothing has been finished for an hour yet.
    assert_eq!(
        jobs.prune_finished(Duration::from_secs(3_600))
            .await
            .unwrap(),
        0
    );
    // Everything finished is older than zero seconds.
    assert_eq!(jobs.prune_finished(Duration::ZERO).await.unwrap(), 4);
    for id in &done {
        assert_eq!(jobs.get_job(*id).await.unwrap(), None);
        assert_eq!(jobs.get_job_result(*id).await.unwrap(), None);
    }
    let kept = jobs
        .get_job(later.id)
        .await
        .unwrap()
        .expect("a queued job is kept");
    assert_eq!(kept.status, JobStatus::Queued);
    let page = jobs.list_jobs(jobs::JobQuery::new()).await.unwrap();
    assert_eq!(page.jobs.len(), 1);
    jobs.shutdown().await;
}

async fn a_retention_period_prunes_by_itself(env: Env) {
    let jobs = env
        .builder()
        .concurrency(1)
        .retention(Duration::from_millis(50))
        .start()
        .unwrap();
    let job = jobs.submit_job_with("Record", json!({})).await.unwrap();
    finished(&jobs, job.id).await;
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    // No event says a job was deleted: look every 20 ms until it is gone.
    while jobs.get_job(job.id).await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "never pruned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    jobs.shutdown().await;
}

async fn a_tick_gets_one_job_however_many_fire_it(env: Env) {
    let here = env.start(0);
    let there = env.another().await.start(0);
    let tick = Timestamp::from_unix_micros(1_900_000_000_000_000);
    let mut racers = Vec::new();
    for n in 0..10 {
        let jobs = if n % 2 == 0 {
            here.clone()
        } else {
            there.clone()
        };
        racers.push(tokio::spawn(async move {
            let job = jobs.prepare_job("Record", json!({ "n": n })).unwrap();
            jobs.store()
                .ticks()
                .expect("the store records ticks")
                .insert_tick(job, "Record nightly", tick)
                .await
                .unwrap()
        }));
    }
    let mut stored = 0;
    for racer in racers {
        stored += usize::from(racer.await.unwrap());
    }
    assert_eq!(stored, 1, "one of ten stored the tick's job");
    let store = here.store().clone();
    let repository = store.ticks().unwrap();
    let job = || here.prepare_job("Record", json!({})).unwrap();
    assert!(!repository
        .insert_tick(job(), "Record nightly", tick)
        .await
        .unwrap());
    let earlier = Timestamp::from_unix_micros(tick.as_unix_micros() - 60_000_000);
    assert!(
        !repository
            .insert_tick(job(), "Record nightly", earlier)
            .await
            .unwrap(),
        "the past is done"
    );
    let later = Timestamp::from_unix_micros(tick.as_unix_micros() + 60_000_000);
    assert!(repository
        .insert_tick(job(), "Record nightly", later)
        .await
        .unwrap());
    assert!(
        repository
            .insert_tick(job(), "Record hourly", tick)
            .await
            .unwrap(),
        "schedules are apart"
    );
    let page = here.list_jobs(jobs::JobQuery::new()).await.unwrap();
    assert_eq!(page.jobs.len(), 3);
    there.shutdown().await;
    here.shutdown().await;
}

async fn periodic_jobs_run_once_per_tick_across_services(env: Env) {
    // Two services (two processes on PostgreSQL) declare the same every-second schedule.
    let run = jobs::JobId::new().to_string();
    let payload = json!({ "run": run, "label": "tick" });
    let here = env
        .builder()
        .concurrency(1)
        .periodic("* * * * * *", "Record", payload.clone())
        .start()
        .unwrap();
    let there = env
        .another()
        .await
        .builder()
        .concurrency(1)
        .periodic("* * * * * *", "Record", payload)
        .start()
        .unwrap();
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    // No event marks "three ticks done": look every 100 ms.
    while order(&run).len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the schedule did not fire"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    here.shutdown().await;
    there.shutdown().await;
    let page = env
        .start(0)
        .list_jobs(jobs::JobQuery::new().job_type("Record"))
        .await
        .unwrap();
    let mut ticks: Vec<i64> = page
        .jobs
        .iter()
        .filter(|job| job.payload["run"] == run.as_str())
        .map(|job| job.run_at.as_unix_micros())
        .collect();
    let jobs_made = ticks.len();
    ticks.sort_unstable();
    ticks.dedup();
    assert_eq!(ticks.len(), jobs_made, "one job per tick: {ticks:?}");
    assert!(ticks.len() >= 3);
    assert!(
        ticks.iter().all(|t| t % 1_000_000 == 0),
        "each job is due at its whole-second tick"
    );
}

async fn a_schedule_that_cannot_run_is_refused_at_start(env: Env) {
    // An expression, a type, a payload, and a time zone that do not fit.
    for (cron, job_type, payload, says) in [
        (
            "61 * * * *",
            "Record",
            json!({}),
            "minute 61 is out of range",
        ),
        ("* * * * *", "Nope", json!({}), "no executor"),
        (
            "* * * * *",
            "Broken",
            json!({ "x": 1 }),
            "payload does not fit",
        ),
    ] {
        let error = env
            .builder()
            .concurrency(0)
            .periodic(cron, job_type, payload)
            .start()
            .unwrap_err();
        assert!(
            matches!(&error, jobs::BuildError::InvalidSchedule { .. })
                && error.to_string().contains(says),
            "{cron} {job_type}: {error}"
        );
    }
    let error = env
        .builder()
        .concurrency(0)
        .periodic_in("0 3 * * *", "Europe/Berln", "Record", json!({}))
        .start()
        .unwrap_err();
    assert!(
        matches!(&error, jobs::BuildError::InvalidSchedule { .. })
            && error.to_string().contains("did you mean `Europe/Berlin`?"),
        "{error}"
    );
}

async fn unique_keys_are_per_job_type(env: Env) {
    let jobs = env.start(0);
    let key = SubmitOptions::new().unique_key("account-7");
    let record = jobs
        .submit_job_with_options("Record", json!({}), &key)
        .await
        .unwrap();
    let sleepy = jobs
        .submit_job_with_options("Sleepy", Value::Null, &key)
        .await
        .unwrap();
    assert_ne!(record.id, sleepy.id, "another type does not share the key");
    jobs.shutdown().await;
}

async fn a_burst_in_one_queue_does_not_hold_up_the_others(env: Env) {
    let _one_at_a_time = SLOW_TESTS.lock().await;
    SLOW_MOST.store(0, Ordering::SeqCst);
    // Two workers for the slow queue, two for everything else.
    let jobs = env
        .builder()
        .concurrency(2)
        .serve_queue("slow", 2)
        .start()
        .unwrap();
    let mut burst = Vec::new();
    for _ in 0..8 {
        let job = jobs.submit_job("SlowLane").await.unwrap();
        assert_eq!(job.queue, "slow", "the type's queue");
        burst.push(job.id);
    }
    let run = jobs::JobId::new().to_string();
    let quick = jobs
        .submit_job_with("Record", json!({ "run": run, "label": "quick" }))
        .await
        .unwrap();
    assert_eq!(quick.queue, "default");
    finished(&jobs, quick.id).await;
    // The quick job is done while most of the burst still waits its turn.
    let mut waiting = 0;
    for id in &burst {
        if !jobs
            .get_job(*id)
            .await
            .unwrap()
            .unwrap()
            .status
            .is_terminal()
        {
            waiting += 1;
        }
    }
    assert!(
        waiting >= 4,
        "only {waiting} of 8 slow jobs left when the quick one finished"
    );
    for id in burst {
        assert_eq!(finished(&jobs, id).await.status, JobStatus::Succeeded);
    }
    assert_eq!(
        SLOW_MOST.load(Ordering::SeqCst),
        2,
        "the queue's two workers, no more"
    );

    // A submission can choose a queue too; one that no service serves waits.
    let elsewhere = jobs
        .submit_job_with_options("Record", json!({}), &SubmitOptions::new().queue("reports"))
        .await
        .unwrap();
    let next = jobs.submit_job_with("Record", json!({})).await.unwrap();
    finished(&jobs, next.id).await;
    let waiting = jobs.get_job(elsewhere.id).await.unwrap().unwrap();
    assert_eq!(
        (waiting.status, waiting.queue.as_str()),
        (JobStatus::Queued, "reports")
    );
    jobs.shutdown().await;
}

async fn queue_names_are_checked(env: Env) {
    let jobs = env.start(0);
    let error = jobs
        .submit_job_with_options(
            "Record",
            json!({}),
            &SubmitOptions::new().queue("no spaces"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, SubmitError::InvalidOptions { .. }),
        "{error}"
    );
    jobs.shutdown().await;
    for (name, says) in [
        ("", "letters"),
        ("default", "concurrency"),
        ("a/b", "letters"),
    ] {
        let error = env.builder().serve_queue(name, 1).start().unwrap_err();
        assert!(
            matches!(&error, jobs::BuildError::InvalidQueue { .. })
                && error.to_string().contains(says),
            "{name:?}: {error}"
        );
    }
    let twice = env
        .builder()
        .serve_queue("x", 1)
        .serve_queue("x", 2)
        .start()
        .unwrap_err();
    assert!(twice.to_string().contains("twice"), "{twice}");
}

/// The labels of the `Record` jobs of `run`, in the order they ran.
fn order(run: &str) -> Vec<String> {
    ORDER
        .lock()
        .unwrap()
        .iter()
        .filter(|(r, _)| r == run)
        .map(|(_, label)| label.clone())
        .collect()
}
