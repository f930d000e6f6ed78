//! The engine's pipeline under faults, on every store, driven through the fault-injecting
//! wrapper of the conformance suite: a lost lease stops its attempt at once (also in a
//! process that was starved past it), a newer attempt never runs beside an older one that
//! will not stop, a failed final write is retried rather than dropped, and jobs claimed
//! ahead go back to the queue when a service is dropped.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{finished, wait_for_progress, Env};
use jobs::conformance::FaultyStore;
use jobs::prelude::*;
use jobs::{CancelOutcome, JobEvent};
use serde_json::json;

/// What attempts of the `Frozen` jobs saw, by run key.
static SEEN: Mutex<Vec<(String, u32, &'static str, Instant)>> = Mutex::new(Vec::new());

fn seen(run: &str) -> Vec<(u32, &'static str, Instant)> {
    SEEN.lock()
        .unwrap()
        .iter()
        .filter(|(r, ..)| r == run)
        .map(|(_, attempt, what, at)| (*attempt, *what, *at))
        .collect()
}

fn record(run: &str, attempt: u32, what: &'static str) {
    SEEN.lock()
        .unwrap()
        .push((run.to_owned(), attempt, what, Instant::now()));
}

/// Attempt 1 blocks its thread for `block_ms` (a process paused or starved past its
/// lease), then records whether it has been told to stop and returns a stale result.
/// Later attempts return at once.
#[job_executor("Frozen")]
async fn frozen(args: serde_json::Value, ctx: JobContext) -> Result<String, JobError> {
    let run = args["run"].as_str().unwrap_or_default().to_owned();
    record(&run, ctx.attempt(), "start");
    if ctx.attempt() == 1 {
        ctx.report_progress(1, "about to freeze");
        std::thread::sleep(Duration::from_millis(
            args["block_ms"].as_u64().unwrap_or(0),
        ));
        record(
            &run,
            1,
            if ctx.is_cancelled() {
                "told to stop"
            } else {
                "not told"
            },
        );
        // The token itself has fired too (the lease keeper ran while this thread slept),
        // so an executor that waits on it rather than asking stops as well.
        let fired = tokio::time::timeout(Duration::from_millis(200), ctx.cancelled()).await;
        record(
            &run,
            1,
            if fired.is_ok() {
                "token fired"
            } else {
                "token silent"
            },
        );
        record(&run, 1, "end");
        return Ok("stale".to_owned());
    }
    record(&run, ctx.attempt(), "end");
    Ok("fresh".to_owned())
}

/// Records the end of an attempt when dropped: when it returns, and when the engine drops
/// an attempt that does not stop.
struct Ends(String, u32);

impl Drop for Ends {
    fn drop(&mut self) {
        record(&self.0, self.1, "end");
    }
}

/// Attempt 1 ignores its token altogether; later attempts succeed.
#[job_executor("Deaf")]
async fn deaf(run: String, ctx: JobContext) -> Result<u32, JobError> {
    record(&run, ctx.attempt(), "start");
    let _ends = Ends(run, ctx.attempt());
    if ctx.attempt() == 1 {
        ctx.report_progress(1, "not listening");
        tokio::time::sleep(Duration::from_secs(3_600)).await;
    }
    Ok(ctx.attempt())
}

static ONCE_RUNS: AtomicU32 = AtomicU32::new(0);

#[job_executor("RunsOnce")]
async fn runs_once() -> Result<&'static str, JobError> {
    ONCE_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok("done")
}

#[job_executor("Quick")]
async fn quick() -> Result<(), JobError> {
    Ok(())
}

/// Waits until it is canceled.
#[job_executor("Parked")]
async fn parked(ctx: JobContext) -> Result<(), JobError> {
    ctx.cancelled().await;
    Err(JobError::Canceled)
}

/// Records that it ran, under its run key.
#[job_executor("Noted")]
async fn noted(run: String, ctx: JobContext) -> Result<(), JobError> {
    record(&run, ctx.attempt(), "start");
    Ok(())
}

static HOLD: AtomicBool = AtomicBool::new(true);

/// Waits while `HOLD` is set.
#[job_executor("Held")]
async fn held(ctx: JobContext) -> Result<(), JobError> {
    ctx.report_progress(1, "holding");
    while HOLD.load(Ordering::SeqCst) && !ctx.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

for_each_backend!(
    a_lost_lease_stops_its_attempt_at_once_and_discards_its_outcome,
    a_newer_attempt_waits_for_an_older_one_that_will_not_stop,
    a_final_write_that_fails_is_retried_not_dropped,
    a_final_write_whose_answer_is_lost_is_still_announced,
    jobs_claimed_ahead_go_back_when_the_service_is_dropped,
    a_job_claimed_ahead_and_not_started_is_canceled_as_a_queued_one,
    a_cancel_from_elsewhere_ends_a_job_claimed_ahead_without_starting_it,
);

/// A service on a fault-injecting wrapper of `env`'s store, with short leases and room
/// for many lost leases (the tests lose some on purpose).
fn short_leases(env: &Env) -> (Arc<FaultyStore>, Jobs) {
    let faulty = Arc::new(FaultyStore::new(env.store()));
    let jobs = Jobs::builder()
        .store(faulty.clone())
        .concurrency(2)
        .lease(Duration::from_millis(300))
        .rescue_interval(Duration::from_millis(100))
        .poll_interval(Duration::from_millis(100))
        .timeout_grace(Duration::from_millis(200))
        .crash_budget(10)
        .start()
        .unwrap();
    (faulty, jobs)
}

/// A service of one worker on a fault-injecting wrapper of `env`'s store.
fn one_worker(env: &Env) -> (Arc<FaultyStore>, Jobs) {
    let faulty = Arc::new(FaultyStore::new(env.store()));
    let jobs = Jobs::builder()
        .store(faulty.clone())
        .concurrency(1)
        .start()
        .unwrap();
    (faulty, jobs)
}

/// Asserts that every attempt after the first started only once attempt 1 had ended.
fn assert_attempts_did_not_overlap(run: &str) {
    let seen = seen(run);
    let first_end = seen
        .iter()
        .find(|(a, what, _)| *a == 1 && *what == "end")
        .unwrap_or_else(|| panic!("attempt 1 ended: {seen:?}"))
        .2;
    let later_start = seen
        .iter()
        .filter(|(a, what, _)| *a > 1 && *what == "start")
        .map(|(_, _, at)| *at)
        .min()
        .unwrap_or_else(|| panic!("a later attempt ran: {seen:?}"));
    assert!(later_start >= first_end, "attempts overlapped: {seen:?}");
}

/// Defect 2: the renewals fail (an outage) while attempt 1 is frozen past its lease. When
/// it wakes, `ctx.is_cancelled()` is already true; its result is discarded, and the job
/// runs again only after attempt 1 has ended.
async fn a_lost_lease_stops_its_attempt_at_once_and_discards_its_outcome(env: Env) {
    let (faulty, jobs) = short_leases(&env);
    let run = JobId::new().to_string();
    faulty.fail_renewals(true);
    let job = jobs
        .submit_job_with("Frozen", json!({ "run": run, "block_ms": 900 }))
        .await
        .unwrap();
    // Attempt 1 wakes after 900 ms, three leases later; renewals work again from then on.
    common::until(&jobs, "attempt 1 to wake", || {
        seen(&run)
            .iter()
            .any(|(a, what, _)| *a == 1 && *what == "end")
    })
    .await;
    faulty.fail_renewals(false);
    let done = finished(&jobs, job.id).await;
    assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    assert!(done.attempt >= 2, "{done:?}");
    assert_eq!(
        jobs.get_job_result(job.id).await.unwrap(),
        Some(json!("fresh")),
        "the stale attempt's result was discarded"
    );
    let seen = seen(&run);
    assert!(
        seen.iter()
            .any(|(a, what, _)| *a == 1 && *what == "told to stop"),
        "attempt 1 was told to stop when it woke: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|(a, what, _)| *a == 1 && *what == "token fired"),
        "attempt 1's token fired: {seen:?}"
    );
    assert_attempts_did_not_overlap(&run);
    jobs.shutdown().await;
}

/// Defect 1: attempt 1 ignores its token; its lease is lost and the job is rescued and
/// claimed again here. The new claim is neither held unrun nor run beside the old one:
/// the old one is dropped after the grace period and the new one runs.
async fn a_newer_attempt_waits_for_an_older_one_that_will_not_stop(env: Env) {
    let (faulty, jobs) = short_leases(&env);
    let run = JobId::new().to_string();
    let job = jobs.submit_job_with("Deaf", json!(run)).await.unwrap();
    wait_for_progress(&jobs, job.id).await;
    faulty.fail_renewals(true);
    // Attempt 1 loses its lease by the local clock; the store's lease runs out too and
    // the rescuer queues the job again. Renewals work again for the next attempt.
    common::until(&jobs, "the job to be rescued", || {
        futures_now(jobs.get_job(job.id)).is_some_and(|j| j.attempt >= 2 || !j.errors.is_empty())
    })
    .await;
    faulty.fail_renewals(false);
    let done = finished(&jobs, job.id).await;
    assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    assert_eq!(
        jobs.get_job_result(job.id).await.unwrap(),
        Some(json!(done.attempt))
    );
    assert!(done.attempt >= 2);
    // Attempt 1 was dropped before any later attempt started: never two at once.
    assert_attempts_did_not_overlap(&run);
    jobs.shutdown().await;
}

/// Defect 3: the first writes of a job's success fail (a connection drop): the success is
/// retried and stored; the job does not run again.
async fn a_final_write_that_fails_is_retried_not_dropped(env: Env) {
    let (faulty, jobs) = one_worker(&env);
    let before = ONCE_RUNS.load(Ordering::SeqCst);
    faulty.fail_next_completions(3);
    let job = jobs.submit_job("RunsOnce").await.unwrap();
    let done = finished(&jobs, job.id).await;
    assert_eq!(
        (done.status, done.attempt),
        (JobStatus::Succeeded, 1),
        "{done:?}"
    );
    assert!(done.errors.is_empty());
    assert_eq!(
        jobs.get_job_result(job.id).await.unwrap(),
        Some(json!("done"))
    );
    assert!(
        faulty.completion_calls() >= 4,
        "three failed writes, then the one that stored it"
    );
    assert_eq!(ONCE_RUNS.load(Ordering::SeqCst) - before, 1, "it ran once");
    jobs.shutdown().await;
}

/// A final write that committed but whose answer was lost (a connection drop after the
/// commit) is tried again and answered "not held": the engine reads the job and announces
/// its end anyway, so a subscriber hears of it at once.
async fn a_final_write_whose_answer_is_lost_is_still_announced(env: Env) {
    let (faulty, jobs) = one_worker(&env);
    let mut events = jobs.subscribe();
    faulty.lose_next_answers(1);
    let job = jobs.submit_job("Quick").await.unwrap();
    let finished = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match events.recv().await {
                Some(JobEvent::Finished { id, status, .. }) if id == job.id => return status,
                Some(_) => {}
                None => panic!("the event stream ended"),
            }
        }
    })
    .await
    .expect("the finish was announced well before any backstop");
    assert_eq!(finished, JobStatus::Succeeded);
    let done = jobs.get_job(job.id).await.unwrap().unwrap();
    assert_eq!((done.status, done.attempt), (JobStatus::Succeeded, 1));
    jobs.shutdown().await;
}

/// Defect 5: a service dropped without `shutdown` gives back the jobs it claimed ahead
/// (in every queue, even when a write fails once), so another service runs them at once
/// rather than after their leases run out.
async fn jobs_claimed_ahead_go_back_when_the_service_is_dropped(env: Env) {
    HOLD.store(true, Ordering::SeqCst);
    let faulty = Arc::new(FaultyStore::new(env.store()));
    let submitter = env.start(0);
    let mut ids = Vec::new();
    for queue in ["default", "side"] {
        for _ in 0..4 {
            let options = SubmitOptions::new().queue(queue);
            let job = submitter
                .submit_job_with_options("Held", serde_json::Value::Null, &options)
                .await
                .unwrap();
            ids.push(job.id);
        }
    }
    let first = Jobs::builder()
        .store(faulty.clone())
        .concurrency(1)
        .prefetch(8)
        .serve_queue("side", 1)
        .start()
        .unwrap();
    common::until(&submitter, "the first service to claim ahead", || {
        first.prefetched() >= 6
    })
    .await;
    // The first give-back write fails; it is tried again.
    faulty.fail_next_completions(1);
    drop(first);
    common::until(
        &submitter,
        "the claimed-ahead jobs to be queued again",
        || {
            ids.iter()
                .filter(|id| {
                    futures_now(submitter.get_job(**id))
                        .is_some_and(|j| j.status == JobStatus::Queued)
                })
                .count()
                >= 6
        },
    )
    .await;
    HOLD.store(false, Ordering::SeqCst);
    let second = env
        .another()
        .await
        .builder()
        .concurrency(2)
        .serve_queue("side", 2)
        .start()
        .unwrap();
    for id in &ids {
        let done = finished(&second, *id).await;
        assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
        assert!(done.errors.is_empty(), "no lost lease: {done:?}");
    }
    second.shutdown().await;
    submitter.shutdown().await;
}

/// The answer of a store call that the in-memory store gives at once; for PostgreSQL it
/// blocks this thread briefly (a test-only shortcut for checks inside `until`).
fn futures_now<T>(
    future: impl std::future::Future<Output = Result<Option<T>, JobsError>>,
) -> Option<T> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| handle.block_on(future))
        .ok()
        .flatten()
}

/// One service submits a job that waits to be canceled and then `Noted` (under `run`);
/// a second service of one worker claims both in one batch, runs the first and holds the
/// other claimed ahead, not started.
async fn one_running_one_claimed_ahead(env: &Env, run: &str) -> (Jobs, Jobs, JobId, JobId) {
    let submitter = env.start(0);
    let blocker = submitter.submit_job("Parked").await.unwrap();
    let target = submitter
        .submit_job_with("Noted", json!(run))
        .await
        .unwrap();
    let worker = env
        .another()
        .await
        .builder()
        .concurrency(1)
        .prefetch(8)
        .start()
        .unwrap();
    common::until(&submitter, "one job running and one claimed ahead", || {
        worker.prefetched() >= 1
    })
    .await;
    let held = submitter.get_job(target.id).await.unwrap().unwrap();
    assert_eq!(held.status, JobStatus::Running, "the store has it claimed");
    (submitter, worker, blocker.id, target.id)
}

/// Ends both services once the blocker is canceled and a job queued after the target has
/// run (so the target's delivery has been dealt with); returns the target as stored.
async fn after_the_blocker(
    submitter: Jobs,
    worker: Jobs,
    blocker: JobId,
    target: JobId,
    run: &str,
) -> Job {
    assert!(worker.cancel_job(blocker).await.unwrap());
    let sentinel = worker
        .submit_job_with("Noted", json!(format!("{run}-after")))
        .await
        .unwrap();
    assert_eq!(
        finished(&worker, sentinel.id).await.status,
        JobStatus::Succeeded
    );
    assert!(
        seen(run).is_empty(),
        "the canceled job never ran: {:?}",
        seen(run)
    );
    let job = submitter.get_job(target).await.unwrap().unwrap();
    worker.shutdown().await;
    submitter.shutdown().await;
    job
}

async fn a_job_claimed_ahead_and_not_started_is_canceled_as_a_queued_one(env: Env) {
    let run = format!("claimed-ahead-{}", JobId::new());
    let (submitter, worker, blocker, target) = one_running_one_claimed_ahead(&env, &run).await;
    let outcome = worker.cancel(target).await.unwrap();
    assert!(
        matches!(outcome, CancelOutcome::CanceledQueued(ref job)
            if job.status == JobStatus::Canceled && job.attempt == 0),
        "canceled as the queued job it is to the caller: {outcome:?}"
    );
    let job = after_the_blocker(submitter, worker, blocker, target, &run).await;
    assert_eq!((job.status, job.attempt), (JobStatus::Canceled, 0));
    assert!(job.finished_at.is_some());
}

async fn a_cancel_from_elsewhere_ends_a_job_claimed_ahead_without_starting_it(env: Env) {
    let run = format!("canceled-elsewhere-{}", JobId::new());
    let (submitter, worker, blocker, target) = one_running_one_claimed_ahead(&env, &run).await;
    // The submitter does not hold the job: the store flags it, and the holder, told by
    // the store's events, gives it back unstarted, which ends it.
    let outcome = submitter.cancel(target).await.unwrap();
    assert!(
        matches!(outcome, CancelOutcome::Requested(_)),
        "{outcome:?}"
    );
    let ended = finished(&submitter, target).await;
    assert_eq!(ended.status, JobStatus::Canceled);
    assert_eq!(worker.prefetched(), 0, "no longer held");
    let job = after_the_blocker(submitter, worker, blocker, target, &run).await;
    assert_eq!(job.status, JobStatus::Canceled);
}
