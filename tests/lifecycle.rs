//! The service's behaviour on the in-memory backend: every transition, every submit
//! error, cancellation, panics, ordering, parallelism, progress, events and shutdown.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{finished, until, wait_for_progress, wait_for_status, Env};
use jobs::prelude::*;
use jobs::{executor_fn, BuildError, CancelOutcome, JobEvent};
use serde::Deserialize;
use serde_json::{json, Value};

#[job_executor("Echo")]
async fn echo(payload: Value) -> Result<Value, JobError> {
    Ok(payload)
}

#[derive(Deserialize)]
struct AddArgs {
    a: i64,
    b: i64,
}

#[job_executor("Add")]
async fn add(args: AddArgs) -> Result<i64, JobError> {
    Ok(args.a + args.b)
}

#[job_executor("Nothing")]
async fn nothing() -> Result<(), JobError> {
    Ok(())
}

/// Runs until canceled (or until the service gives up on it at shutdown).
#[job_executor("Blocker")]
async fn blocker(ctx: JobContext) -> Result<(), JobError> {
    ctx.report_progress(50, "blocking");
    ctx.cancelled().await;
    ctx.check_cancelled()
}

/// Ignores cancellation altogether.
#[job_executor("Stubborn")]
async fn stubborn(ctx: JobContext) -> Result<(), JobError> {
    ctx.report_progress(1, "ignoring cancellation");
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok(())
}

#[job_executor("Failer")]
async fn failer() -> Result<(), JobError> {
    Err(JobError::failed("disk full"))
}

#[job_executor("Panicker")]
async fn panicker() -> Result<(), JobError> {
    panic!("kaboom")
}

static COUNTED: AtomicUsize = AtomicUsize::new(0);

#[job_executor("Counted")]
async fn counted() -> Result<(), JobError> {
    COUNTED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// What each test run (named by a string) recorded; runs of the suite on several
/// backends go on at once in this process.
static RECORDED: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());

#[derive(Deserialize)]
struct RecordArgs {
    run: String,
    index: u64,
}

#[job_executor("Recorder")]
async fn recorder(args: RecordArgs) -> Result<(), JobError> {
    RECORDED.lock().unwrap().push((args.run, args.index));
    Ok(())
}

static RENDEZVOUS: Mutex<Vec<(String, Arc<tokio::sync::Barrier>)>> = Mutex::new(Vec::new());

/// Completes only once four of its run are running at the same time.
#[job_executor("Rendezvous")]
async fn rendezvous(run: String) -> Result<(), JobError> {
    let barrier = {
        let mut barriers = RENDEZVOUS.lock().unwrap();
        match barriers.iter().find(|(r, _)| *r == run) {
            Some((_, barrier)) => barrier.clone(),
            None => {
                let barrier = Arc::new(tokio::sync::Barrier::new(4));
                barriers.push((run, barrier.clone()));
                barrier
            }
        }
    };
    barrier.wait().await;
    Ok(())
}

#[job_executor("Chatty")]
async fn chatty(ctx: JobContext) -> Result<(), JobError> {
    for i in 0..=10_000u32 {
        ctx.report_progress((i / 100) as u8, format!("step {i}"));
        if i % 1_000 == 0 {
            tokio::task::yield_now().await;
        }
    }
    Ok(())
}

/// No job is stored or queued.
async fn assert_nothing_stored(jobs: &Jobs) {
    assert!(
        jobs.list_jobs(JobQuery::new())
            .await
            .unwrap()
            .jobs
            .is_empty(),
        "nothing stored"
    );
    let counts = jobs.store().count_jobs().await.unwrap();
    assert!(counts.is_empty(), "nothing queued: {counts:?}");
}

/// One worker and one job type, `Slow`: reports progress, then sleeps 200 ms.
fn slow_service(env: &Env) -> Jobs {
    env.builder()
        .concurrency(1)
        .discover(false)
        .register(executor_fn("Slow", |ctx| async move {
            ctx.report_progress(1, "sleeping");
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok::<_, JobError>("slept")
        }))
        .start()
        .unwrap()
}

fn start(concurrency: usize) -> Jobs {
    Jobs::builder().concurrency(concurrency).start().unwrap()
}

for_each_backend!(
    submitted_job_runs_from_queued_to_succeeded_and_keeps_its_result,
    result_is_returned_only_once_the_job_has_succeeded,
    unknown_job_type_is_refused_with_the_known_types_and_nothing_is_stored,
    payload_that_does_not_fit_the_arguments_is_refused_and_nothing_is_stored,
    failing_executor_fails_the_job_with_its_message,
    panicking_executor_fails_the_job_and_the_worker_lives_on,
    cancel_of_queued_job_prevents_execution,
    cancel_of_running_job_fires_its_token_and_it_ends_canceled,
    cancel_from_another_service_on_the_same_repository_reaches_the_worker,
    cancel_of_a_finished_or_unknown_job_is_a_no_op_returning_false,
    jobs_run_in_fifo_order_with_concurrency_one,
    concurrency_n_runs_n_jobs_at_the_same_time,
    progress_is_visible_while_running,
    a_chatty_executor_cannot_flood_the_repository_with_progress,
    events_follow_a_job_through_its_life,
    wait_for_an_unknown_job_says_not_found,
    listing_filters_by_status_and_type_newest_first,
    shutdown_lets_running_jobs_finish_and_refuses_new_submissions,
    shutdown_interrupts_then_abandons_jobs_that_outlive_the_grace_period,
    manual_registration_without_discovery_runs_only_what_was_registered,
    the_event_subscription_is_also_a_stream,
    an_executor_that_panics_before_returning_its_future_fails_only_its_job,
    concurrent_shutdowns_share_one_grace_period,
    jobs_are_counted_by_type_and_status,
);

async fn submitted_job_runs_from_queued_to_succeeded_and_keeps_its_result(env: Env) {
    let jobs = env.start(2);
    let job = jobs
        .submit_job_with("Echo", json!({ "hello": "world" }))
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.attempt, 0);
    assert_eq!(job.job_type, "Echo");
    assert!(job.started_at.is_none() && job.finished_at.is_none());

    let done = finished(&jobs, job.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.attempt, 1);
    assert!(done.started_at.unwrap() >= done.created_at);
    assert!(done.finished_at.unwrap() >= done.started_at.unwrap());
    assert_eq!(done.error, None);
    assert_eq!(
        jobs.get_job_result(job.id).await.unwrap(),
        Some(json!({ "hello": "world" }))
    );
    jobs.shutdown().await;
}

async fn result_is_returned_only_once_the_job_has_succeeded(env: Env) {
    let jobs = env.start(2);
    let running = jobs.submit_job("Blocker").await.unwrap();
    wait_for_status(&jobs, running.id, JobStatus::Running).await;
    assert_eq!(jobs.get_job_result(running.id).await.unwrap(), None);
    jobs.cancel_job(running.id).await.unwrap();
    assert_eq!(
        finished(&jobs, running.id).await.status,
        JobStatus::Canceled
    );
    assert_eq!(jobs.get_job_result(running.id).await.unwrap(), None);

    let failed = jobs.submit_job("Failer").await.unwrap();
    assert_eq!(finished(&jobs, failed.id).await.status, JobStatus::Failed);
    assert_eq!(jobs.get_job_result(failed.id).await.unwrap(), None);

    let unit = jobs.submit_job("Nothing").await.unwrap();
    assert_eq!(finished(&jobs, unit.id).await.status, JobStatus::Succeeded);
    assert_eq!(
        jobs.get_job_result(unit.id).await.unwrap(),
        Some(Value::Null)
    );

    assert_eq!(jobs.get_job_result(JobId::new()).await.unwrap(), None);
    jobs.shutdown().await;
}

async fn unknown_job_type_is_refused_with_the_known_types_and_nothing_is_stored(env: Env) {
    let jobs = env.start(1);
    let err = jobs.submit_job("NoSuchType").await.unwrap_err();
    match &err {
        SubmitError::UnknownJobType { job_type, known } => {
            assert_eq!(job_type, "NoSuchType");
            assert!(known.contains(&"Echo".to_owned()) && known.contains(&"Add".to_owned()));
            assert!(known.windows(2).all(|w| w[0] < w[1]), "sorted: {known:?}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err
        .to_string()
        .starts_with("unknown job type `NoSuchType`: known types are"));
    assert_nothing_stored(&jobs).await;
    jobs.shutdown().await;
}

async fn payload_that_does_not_fit_the_arguments_is_refused_and_nothing_is_stored(env: Env) {
    let jobs = env.start(1);
    for bad in [
        json!({ "a": "one", "b": 2 }),
        json!({ "a": 1 }),
        json!(null),
        json!("1 + 2"),
    ] {
        let err = jobs.submit_job_with("Add", bad.clone()).await.unwrap_err();
        let SubmitError::InvalidPayload { job_type, reason } = &err else {
            panic!("{bad}: unexpected error {err:?}")
        };
        assert_eq!(job_type, "Add");
        assert!(!reason.is_empty());
    }
    let err = jobs
        .submit_job_with("Nothing", json!({ "x": 1 }))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SubmitError::InvalidPayload { reason, .. } if reason.contains("takes no arguments")),
        "{err}"
    );
    assert_nothing_stored(&jobs).await;

    let ok = jobs
        .submit_job_with("Add", json!({ "a": 40, "b": 2 }))
        .await
        .unwrap();
    finished(&jobs, ok.id).await;
    assert_eq!(jobs.get_job_result(ok.id).await.unwrap(), Some(json!(42)));
    jobs.shutdown().await;
}

async fn failing_executor_fails_the_job_with_its_message(env: Env) {
    let jobs = env.start(1);
    let job = jobs.submit_job("Failer").await.unwrap();
    let done = finished(&jobs, job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(done.error.as_deref(), Some("disk full"));
    assert!(done.finished_at.is_some());
    jobs.shutdown().await;
}

async fn panicking_executor_fails_the_job_and_the_worker_lives_on(env: Env) {
    let jobs = env.start(1);
    let job = jobs.submit_job("Panicker").await.unwrap();
    let done = finished(&jobs, job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(done.error.as_deref(), Some("the executor panicked: kaboom"));

    // The only worker survived: it runs the next job.
    let next = jobs.submit_job_with("Echo", json!(1)).await.unwrap();
    assert_eq!(finished(&jobs, next.id).await.status, JobStatus::Succeeded);
    jobs.shutdown().await;
}

async fn cancel_of_queued_job_prevents_execution(env: Env) {
    let jobs = env.start(1);
    let blocker = jobs.submit_job("Blocker").await.unwrap();
    wait_for_status(&jobs, blocker.id, JobStatus::Running).await;

    let queued = jobs.submit_job("Counted").await.unwrap();
    let outcome = jobs.cancel(queued.id).await.unwrap();
    // The service may have claimed the job ahead of its busy worker (it is then Running
    // in the service's buffer, and the cancel is a request); a job still in the store's
    // queue is canceled at once.
    let claimed_ahead = match outcome {
        CancelOutcome::CanceledQueued(ref job) => {
            assert_eq!(job.status, JobStatus::Canceled);
            false
        }
        CancelOutcome::Requested(ref job) => {
            assert!(job.cancel_requested, "{job:?}");
            true
        }
        other => panic!("unexpected cancel outcome {other:?}"),
    };
    if !claimed_ahead {
        let now = jobs.get_job(queued.id).await.unwrap().unwrap();
        assert_eq!(
            now.status,
            JobStatus::Canceled,
            "canceled at once, not when dequeued"
        );
        assert!(now.finished_at.is_some());
    }

    // Free the worker; a job queued after the canceled one runs, so the canceled one's
    // delivery has been handled by then (FIFO, one worker).
    assert!(jobs.cancel_job(blocker.id).await.unwrap());
    let sentinel = jobs.submit_job_with("Echo", json!("after")).await.unwrap();
    assert_eq!(
        finished(&jobs, sentinel.id).await.status,
        JobStatus::Succeeded
    );

    assert_eq!(finished(&jobs, queued.id).await.status, JobStatus::Canceled);
    assert_eq!(
        COUNTED.load(Ordering::SeqCst),
        0,
        "a canceled queued job never runs"
    );
    let after = jobs.get_job(queued.id).await.unwrap().unwrap();
    assert_eq!((after.status, after.attempt), (JobStatus::Canceled, 0));
    jobs.shutdown().await;
}

async fn cancel_of_running_job_fires_its_token_and_it_ends_canceled(env: Env) {
    let jobs = env.start(1);
    let job = jobs.submit_job("Blocker").await.unwrap();
    // Its progress shows the executor runs: `Running` alone may be a job claimed ahead
    // and not yet started, which a cancel gives back and cancels as a queued job.
    wait_for_progress(&jobs, job.id).await;
    assert!(jobs.cancel_job(job.id).await.unwrap());
    let done = finished(&jobs, job.id).await;
    assert_eq!(done.status, JobStatus::Canceled);
    assert!(done.cancel_requested);
    assert_eq!(done.error, None);
    jobs.shutdown().await;
}

async fn cancel_from_another_service_on_the_same_repository_reaches_the_worker(env: Env) {
    // For PostgreSQL the client is a second backend with its own connections, as another
    // process would have.
    let worker = env.start(1);
    let client = env.another().await.start(0);
    let job = client.submit_job("Blocker").await.unwrap();
    wait_for_status(&client, job.id, JobStatus::Running).await;
    assert!(client.cancel_job(job.id).await.unwrap());
    assert_eq!(finished(&client, job.id).await.status, JobStatus::Canceled);
    worker.shutdown().await;
    client.shutdown().await;
}

async fn cancel_of_a_finished_or_unknown_job_is_a_no_op_returning_false(env: Env) {
    let jobs = env.start(1);
    let job = jobs.submit_job_with("Echo", json!(1)).await.unwrap();
    finished(&jobs, job.id).await;
    assert!(!jobs.cancel_job(job.id).await.unwrap());
    assert_eq!(
        jobs.cancel(job.id).await.unwrap(),
        CancelOutcome::AlreadyFinished(JobStatus::Succeeded)
    );
    let after = jobs.get_job(job.id).await.unwrap().unwrap();
    assert_eq!(
        after.status,
        JobStatus::Succeeded,
        "a finished job stays finished"
    );
    assert!(!jobs.cancel_job(JobId::new()).await.unwrap());
    assert_eq!(
        jobs.cancel(JobId::new()).await.unwrap(),
        CancelOutcome::NotFound
    );
    jobs.shutdown().await;
}

async fn jobs_run_in_fifo_order_with_concurrency_one(env: Env) {
    let jobs = env.start(1);
    let run = format!("{:?}", env.backend());
    let mut ids = Vec::new();
    for index in 0..200u64 {
        let args = json!({ "run": run, "index": index });
        ids.push(jobs.submit_job_with("Recorder", args).await.unwrap().id);
    }
    for id in &ids {
        finished(&jobs, *id).await;
    }
    let recorded: Vec<u64> = RECORDED
        .lock()
        .unwrap()
        .iter()
        .filter(|(r, _)| *r == run)
        .map(|(_, index)| *index)
        .collect();
    assert_eq!(recorded, (0..200).collect::<Vec<u64>>());
    jobs.shutdown().await;
}

async fn concurrency_n_runs_n_jobs_at_the_same_time(env: Env) {
    // Each Rendezvous job completes only when four run at once: with fewer workers they
    // would wait forever and the deadline would fail the test.
    let jobs = env.start(4);
    let mut ids = Vec::new();
    let run = format!("{:?}", env.backend());
    for _ in 0..4 {
        ids.push(
            jobs.submit_job_with("Rendezvous", json!(run))
                .await
                .unwrap()
                .id,
        );
    }
    for id in ids {
        assert_eq!(finished(&jobs, id).await.status, JobStatus::Succeeded);
    }
    jobs.shutdown().await;
}

async fn progress_is_visible_while_running(env: Env) {
    let jobs = env.start(1);
    // Subscribed before the submit: the first report is stored at once, and may come
    // before the submit call returns.
    let mut events = jobs.subscribe();
    let job = jobs.submit_job("Blocker").await.unwrap();
    wait_for_status(&jobs, job.id, JobStatus::Running).await;
    until(
        &jobs,
        "progress to be stored",
        || matches!(events.try_recv(), Some(JobEvent::Progress { id, .. }) if id == job.id),
    )
    .await;
    let running = jobs.get_job(job.id).await.unwrap().unwrap();
    let progress = running.progress.expect("progress stored");
    assert_eq!(
        (progress.percent, progress.message.as_str()),
        (50, "blocking")
    );
    jobs.cancel_job(job.id).await.unwrap();
    finished(&jobs, job.id).await;
    jobs.shutdown().await;
}

async fn a_chatty_executor_cannot_flood_the_repository_with_progress(env: Env) {
    let jobs = env
        .builder()
        .concurrency(1)
        .progress_interval(Duration::from_secs(1))
        .start()
        .unwrap();
    let mut events = jobs.subscribe();
    let job = jobs.submit_job("Chatty").await.unwrap();
    let done = finished(&jobs, job.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    let mut writes = 0;
    while let Some(event) = events.try_recv() {
        if matches!(event, JobEvent::Progress { id, .. } if id == job.id) {
            writes += 1;
        }
    }
    assert_eq!(events.missed(), 0);
    // 10,001 reports: the first is stored at once, the last when the job ends, and the
    // interval (1 s, longer than the job) allows nothing in between.
    assert!((1..=2).contains(&writes), "{writes} progress writes");
    let last = done.progress.expect("final progress stored");
    assert_eq!((last.percent, last.message.as_str()), (100, "step 10000"));
    jobs.shutdown().await;
}

async fn events_follow_a_job_through_its_life(env: Env) {
    let jobs = env.start(1);
    let mut events = jobs.subscribe();
    let job = jobs.submit_job_with("Echo", json!("e")).await.unwrap();
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(common::DEADLINE, events.recv())
            .await
            .unwrap()
            .unwrap();
        if event.job_id() != Some(job.id) {
            continue;
        }
        let last = matches!(event, JobEvent::Finished { .. });
        seen.push(event);
        if last {
            break;
        }
    }
    assert_eq!(
        seen,
        vec![
            JobEvent::Submitted {
                id: job.id,
                job_type: "Echo".into()
            },
            JobEvent::Started {
                id: job.id,
                attempt: 1
            },
            JobEvent::Finished {
                id: job.id,
                status: JobStatus::Succeeded,
                error: None
            },
        ]
    );
    jobs.shutdown().await;
}

async fn wait_for_an_unknown_job_says_not_found(env: Env) {
    let jobs = env.start(1);
    let id = JobId::new();
    assert!(matches!(jobs.wait_for(id).await, Err(JobsError::NotFound(missing)) if missing == id));
    jobs.shutdown().await;
}

async fn listing_filters_by_status_and_type_newest_first(env: Env) {
    let jobs = env.start(0); // nothing runs: every job stays Queued
    let mut ids = Vec::new();
    for i in 0..5 {
        let job_type = if i % 2 == 0 { "Echo" } else { "Nothing" };
        let payload = if i % 2 == 0 { json!(i) } else { Value::Null };
        ids.push(jobs.submit_job_with(job_type, payload).await.unwrap().id);
    }
    jobs.cancel_job(ids[0]).await.unwrap();

    let page = jobs.list_jobs(JobQuery::new().limit(3)).await.unwrap();
    assert_eq!(
        page.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[4], ids[3], ids[2]]
    );
    let rest = jobs
        .list_jobs(JobQuery::new().limit(3).cursor(page.next_cursor.unwrap()))
        .await
        .unwrap();
    assert_eq!(
        rest.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[1], ids[0]]
    );
    assert_eq!(rest.next_cursor, None);

    let echo = jobs
        .list_jobs(JobQuery::new().job_type("Echo"))
        .await
        .unwrap();
    assert_eq!(echo.jobs.len(), 3);
    let queued_echo = jobs
        .list_jobs(JobQuery::new().job_type("Echo").status(JobStatus::Queued))
        .await
        .unwrap();
    assert_eq!(
        queued_echo.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[4], ids[2]]
    );
    jobs.shutdown().await;
}

async fn shutdown_lets_running_jobs_finish_and_refuses_new_submissions(env: Env) {
    let jobs = slow_service(&env);
    let job = jobs.submit_job("Slow").await.unwrap();
    // Wait for the executor itself, not only the status: a job claimed but not yet handed
    // to a worker when shutdown begins is given back to the queue, not run.
    wait_for_progress(&jobs, job.id).await;
    jobs.shutdown().await;
    let after = jobs.get_job(job.id).await.unwrap().unwrap();
    assert_eq!(
        after.status,
        JobStatus::Succeeded,
        "the running job was allowed to finish"
    );
    assert!(jobs.is_shut_down());
    assert!(matches!(
        jobs.submit_job("Slow").await,
        Err(SubmitError::ShutDown)
    ));
}

async fn shutdown_interrupts_then_abandons_jobs_that_outlive_the_grace_period(env: Env) {
    let jobs = env
        .builder()
        .concurrency(2)
        .shutdown_grace(Duration::from_millis(100))
        .start()
        .unwrap();
    let cooperative = jobs.submit_job("Blocker").await.unwrap();
    let stubborn = jobs.submit_job("Stubborn").await.unwrap();
    // Both executors have started (they report progress first thing).
    wait_for_progress(&jobs, cooperative.id).await;
    wait_for_progress(&jobs, stubborn.id).await;
    jobs.shutdown().await;

    // Interrupted (it stopped when told) and abandoned (it did not): both go back to the
    // queue at once, with no failure counted, for another service to run them.
    for id in [cooperative.id, stubborn.id] {
        let job = jobs.get_job(id).await.unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Queued, "{job:?}");
        assert!(job.errors.is_empty(), "no failure counted: {job:?}");
        assert_eq!(job.error, None);
    }
    let next = env
        .another()
        .await
        .builder()
        .concurrency(2)
        .shutdown_grace(Duration::from_millis(100))
        .start()
        .unwrap();
    let rerun = wait_for_progress(&next, cooperative.id).await;
    assert_eq!(rerun.attempt, 2, "run again by the next service: {rerun:?}");
    assert!(next.cancel_job(cooperative.id).await.unwrap());
    assert_eq!(
        finished(&next, cooperative.id).await.status,
        JobStatus::Canceled
    );
    next.shutdown().await;
}

#[tokio::test]
async fn a_second_executor_for_a_type_is_a_start_up_error_naming_both_places() {
    let err = Jobs::builder()
        .register(executor_fn("Echo", |_ctx| async { Ok::<_, JobError>(()) }))
        .start()
        .unwrap_err();
    let BuildError::DuplicateJobType(duplicate) = &err else {
        panic!("unexpected error {err:?}")
    };
    assert_eq!(duplicate.job_type, "Echo");
    assert!(
        duplicate.first.starts_with("tests/lifecycle.rs:"),
        "{}",
        duplicate.first
    );
    assert!(
        duplicate.second.starts_with("tests/lifecycle.rs:"),
        "{}",
        duplicate.second
    );
    assert_ne!(duplicate.first, duplicate.second);
    assert!(err
        .to_string()
        .contains("job type `Echo` has two executors"));
}

async fn manual_registration_without_discovery_runs_only_what_was_registered(env: Env) {
    let jobs = env
        .builder()
        .discover(false)
        .register(executor_fn("Greet", |ctx| async move {
            let name = ctx.payload()["name"]
                .as_str()
                .unwrap_or("nobody")
                .to_owned();
            Ok::<_, JobError>(format!("hello {name}"))
        }))
        .start()
        .unwrap();
    assert_eq!(jobs.job_types(), vec!["Greet".to_owned()]);
    let job = jobs
        .submit_job_with("Greet", json!({ "name": "Ada" }))
        .await
        .unwrap();
    finished(&jobs, job.id).await;
    assert_eq!(
        jobs.get_job_result(job.id).await.unwrap(),
        Some(json!("hello Ada"))
    );
    assert!(matches!(
        jobs.submit_job("Echo").await,
        Err(SubmitError::UnknownJobType { .. })
    ));
    jobs.shutdown().await;
}

#[test]
fn starting_outside_a_tokio_runtime_is_a_clear_error() {
    let err = Jobs::builder().start().unwrap_err();
    assert!(matches!(err, BuildError::NoRuntime));
    assert!(err.to_string().contains("inside a Tokio runtime"));
}

#[tokio::test]
async fn catalog_records_where_each_executor_was_declared() {
    let jobs = start(0);
    let entries: HashMap<String, String> = jobs
        .catalog()
        .entries()
        .into_iter()
        .map(|(name, entry)| (name.to_owned(), entry.location().to_string()))
        .collect();
    let echo = &entries["Echo"];
    assert!(echo.starts_with("tests/lifecycle.rs:"), "{echo}");
    assert!(echo.ends_with("(lifecycle)"), "{echo}");
    jobs.shutdown().await;
}

async fn the_event_subscription_is_also_a_stream(env: Env) {
    use std::future::poll_fn;
    use std::pin::Pin;

    use futures_core::Stream;

    let jobs = env.start(1);
    let mut stream = jobs.subscribe().into_stream();
    let job = jobs.submit_job_with("Echo", json!("s")).await.unwrap();
    let mut statuses = Vec::new();
    while statuses.last() != Some(&"finished") {
        let next = tokio::time::timeout(
            common::DEADLINE,
            poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)),
        )
        .await
        .unwrap()
        .expect("the stream stays open while the service runs");
        if next.job_id() == Some(job.id) {
            statuses.push(common::event_kind(&next));
        }
    }
    assert_eq!(statuses, ["submitted", "started", "finished"]);
    assert_eq!(stream.missed(), 0);
    jobs.shutdown().await;
}

async fn an_executor_that_panics_before_returning_its_future_fails_only_its_job(env: Env) {
    let jobs = env
        .builder()
        .concurrency(1)
        .discover(false)
        .register(executor_fn("Eager", |ctx| {
            assert!(ctx.payload().is_object(), "payload must be an object");
            async { Ok::<_, JobError>(()) }
        }))
        .start()
        .unwrap();
    let job = jobs.submit_job("Eager").await.unwrap();
    let done = finished(&jobs, job.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(
        done.error.as_deref(),
        Some("the executor panicked: payload must be an object")
    );
    let next = jobs.submit_job_with("Eager", json!({})).await.unwrap();
    assert_eq!(finished(&jobs, next.id).await.status, JobStatus::Succeeded);
    jobs.shutdown().await;
}

async fn concurrent_shutdowns_share_one_grace_period(env: Env) {
    let jobs = slow_service(&env);
    let job = jobs.submit_job("Slow").await.unwrap();
    // Wait for the executor itself, not only the status: a job claimed but not yet handed
    // to a worker when shutdown begins is given back to the queue, not run.
    wait_for_progress(&jobs, job.id).await;
    let other = jobs.clone();
    tokio::join!(jobs.shutdown(), other.shutdown());
    let after = jobs.get_job(job.id).await.unwrap().unwrap();
    assert_eq!(
        after.status,
        JobStatus::Succeeded,
        "neither call abandoned the job: {after:?}"
    );
}

async fn jobs_are_counted_by_type_and_status(env: Env) {
    let jobs = env.start(1);
    let done = jobs.submit_job_with("Echo", json!(1)).await.unwrap();
    finished(&jobs, done.id).await;
    let failed = jobs.submit_job("Failer").await.unwrap();
    finished(&jobs, failed.id).await;
    let canceled = jobs.submit_job("Blocker").await.unwrap();
    wait_for_status(&jobs, canceled.id, JobStatus::Running).await;
    let queued = jobs.submit_job_with("Echo", json!(2)).await.unwrap();
    let counts = jobs.store().count_jobs().await.unwrap();
    let expected = vec![
        jobs::JobCount::new("Blocker", JobStatus::Running, 1),
        jobs::JobCount::new("Echo", JobStatus::Queued, 1),
        jobs::JobCount::new("Echo", JobStatus::Succeeded, 1),
        jobs::JobCount::new("Failer", JobStatus::Failed, 1),
    ];
    assert_eq!(counts, expected);
    jobs.cancel_job(canceled.id).await.unwrap();
    finished(&jobs, canceled.id).await;
    finished(&jobs, queued.id).await;
    jobs.shutdown().await;
}
