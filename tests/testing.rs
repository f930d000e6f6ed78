//! `jobs::testing`: manual and inline services, assertions on what was submitted, one
//! executor run with a test context, and time moved on a paused clock.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use jobs::prelude::*;
use jobs::testing::{ExecutorTest, Mode, TestJobs};
use jobs::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Order {
    id: u32,
    email: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Email {
    to: String,
    subject: String,
}

/// Places an order and submits its confirmation e-mail: a job that submits a job.
#[job_executor("TestingPlaceOrder")]
async fn place_order(order: Order) -> Result<u32, JobError> {
    let jobs = SERVICE
        .with(|service| service.borrow().clone())
        .expect("a service is set");
    jobs.submit::<send_email>(Email {
        to: order.email,
        subject: format!("order {}", order.id),
    })
    .await
    .map_err(JobError::failed)?;
    Ok(order.id)
}

static SENT: AtomicU32 = AtomicU32::new(0);

#[job_executor("TestingSendEmail")]
async fn send_email(email: Email) -> Result<String, JobError> {
    SENT.fetch_add(1, Ordering::SeqCst);
    Ok(format!("sent to {}", email.to))
}

thread_local! {
    /// The service the order job submits through, as an application would hold it.
    static SERVICE: std::cell::RefCell<Option<Jobs>> = const { std::cell::RefCell::new(None) };
}

fn use_service(test: &TestJobs) {
    SERVICE.with(|service| *service.borrow_mut() = Some(test.jobs()));
}

#[tokio::test]
async fn in_manual_mode_jobs_wait_for_drain_which_runs_them_and_the_jobs_they_submit() {
    let test = TestJobs::manual(Jobs::builder()).unwrap();
    use_service(&test);
    let order = test
        .submit::<place_order>(Order {
            id: 7,
            email: "a@b.c".into(),
        })
        .await
        .unwrap();
    tokio::task::yield_now().await;
    assert_eq!(
        test.get_job(order.id()).await.unwrap().unwrap().status,
        JobStatus::Queued
    );
    test.assert_enqueued::<place_order>(|order| order.id == 7)
        .await;

    let ran = test.drain().await;
    assert_eq!(
        ran.len(),
        2,
        "the order and the e-mail it submitted: {ran:?}"
    );
    assert_eq!(ran.succeeded(), 2);
    assert_eq!(ran.jobs()[0].id, order.id(), "in the order they started");
    let email = ran.of_type("TestingSendEmail").next().unwrap();
    assert_eq!(
        email.payload,
        json!({ "to": "a@b.c", "subject": "order 7" })
    );
    assert!(test.enqueued().await.is_empty());
    assert_eq!(test.get_output(&order).await.unwrap(), Some(7));

    assert!(test.drain().await.is_empty(), "nothing left to run");
}

#[tokio::test]
async fn in_inline_mode_a_submit_returns_once_the_job_and_its_children_have_run() {
    let test = TestJobs::inline(Jobs::builder()).unwrap();
    assert_eq!(test.mode(), Mode::Inline);
    use_service(&test);
    let order = test
        .submit::<place_order>(Order {
            id: 8,
            email: "c@d.e".into(),
        })
        .await
        .unwrap();
    let job = test.get_job(order.id()).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Succeeded);
    let emails = test.with_status(JobStatus::Succeeded).await;
    assert!(
        emails
            .iter()
            .any(|job| job.job_type == "TestingSendEmail" && job.payload["to"] == "c@d.e"),
        "the e-mail ran before the order's submit returned: {emails:?}"
    );
}

#[tokio::test]
async fn assert_enqueued_finds_a_job_by_a_json_predicate_too() {
    let test = TestJobs::manual(Jobs::builder()).unwrap();
    test.submit_job_with(
        "TestingSendEmail",
        json!({ "to": "x@y.z", "subject": "hi" }),
    )
    .await
    .unwrap();
    let job = test
        .assert_enqueued_type("TestingSendEmail", |payload| payload["subject"] == "hi")
        .await;
    assert_eq!(job.payload["to"], "x@y.z");
    test.assert_not_enqueued::<send_email>(|email| email.to == "nobody")
        .await;
}

#[tokio::test]
#[should_panic(
    expected = "expected a queued `TestingSendEmail` job whose arguments match; queued instead (1):\n  TestingSendEmail {\"subject\":\"hi\",\"to\":\"x@y.z\"}"
)]
async fn a_failed_assert_enqueued_lists_what_was_queued_instead() {
    let test = TestJobs::manual(Jobs::builder()).unwrap();
    test.submit::<send_email>(Email {
        to: "x@y.z".into(),
        subject: "hi".into(),
    })
    .await
    .unwrap();
    test.assert_enqueued::<send_email>(|email| email.to == "someone@else")
        .await;
}

#[job_executor("TestingCopy")]
async fn copy_rows(rows: u32, ctx: JobContext) -> Result<u32, JobError> {
    for done in 1..=rows {
        ctx.check_cancelled()?;
        ctx.report_progress((done * 100 / rows) as u8, format!("row {done} of {rows}"));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(rows + ctx.attempt() * 1000)
}

#[tokio::test(start_paused = true)]
async fn an_executor_run_keeps_every_report_and_stops_where_the_test_fires_the_token() {
    let run = ExecutorTest::<copy_rows>::new(5).attempt(2).run().await;
    assert_eq!(
        run.output().unwrap(),
        2005,
        "attempt 2 is what the executor saw"
    );
    assert_eq!(run.percents(), [20, 40, 60, 80, 100]);
    assert_eq!(run.progress()[1].message, "row 2 of 5");
    assert_eq!(run.status(), JobStatus::Succeeded);

    let run = ExecutorTest::<copy_rows>::new(5)
        .cancel_after_reports(3)
        .run()
        .await;
    assert!(run.was_canceled());
    assert_eq!(run.status(), JobStatus::Canceled);
    assert_eq!(run.percents(), [20, 40, 60], "it stopped at the next look");
    assert!(run.output().is_err());

    let run = ExecutorTest::<copy_rows>::new(5)
        .cancel_after(Duration::from_millis(2500))
        .run()
        .await;
    assert_eq!(
        run.percents(),
        [20, 40, 60],
        "canceled 2.5 s in, on the paused clock"
    );

    let run = ExecutorTest::<copy_rows>::new(5).canceled().run().await;
    assert!(run.was_canceled() && run.progress().is_empty());
}

static FLAKY_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

/// Fails three times, then succeeds; a minute of backoff before the first retry.
#[job_executor("TestingFlaky", retries = 3, backoff = "1m")]
async fn flaky(ctx: JobContext) -> Result<u32, JobError> {
    FLAKY_ATTEMPTS.fetch_add(1, Ordering::SeqCst);
    if ctx.attempt() <= 3 {
        return Err(JobError::failed(format!("not yet ({})", ctx.attempt())));
    }
    Ok(ctx.attempt())
}

#[tokio::test(start_paused = true)]
async fn three_retries_with_minutes_of_backoff_run_when_the_test_moves_time() {
    let test = TestJobs::manual(Jobs::builder()).unwrap();
    let started = test.now();
    let job = test.submit_job("TestingFlaky").await.unwrap();

    let first = test.drain().await;
    assert_eq!(
        first.count(JobStatus::Queued),
        1,
        "tried once, queued for a retry"
    );
    let retry_at = test.get_job(job.id).await.unwrap().unwrap().run_at;
    assert!(
        retry_at.duration_since(started) >= Duration::from_secs(30),
        "the retry waits for its backoff: {retry_at} after {started}"
    );
    assert!(test.drain().await.is_empty(), "the retry is not due yet");

    let mut drains = 0;
    loop {
        test.advance(Duration::from_secs(10 * 60)).await;
        drains += 1;
        let ran = test.drain().await;
        if ran.succeeded() == 1 {
            break;
        }
        assert!(drains < 10, "still not done after {drains} drains: {ran:?}");
    }
    let done = test.get_job(job.id).await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.attempt, done.errors.len()),
        (JobStatus::Succeeded, 4, 3)
    );
    assert!(
        Timestamp::now().duration_since(started) >= Duration::from_secs(3 * 60),
        "at least the backoff of three retries passed on the test's clock"
    );
}

#[tokio::test(start_paused = true)]
async fn a_delayed_job_runs_once_the_test_clock_reaches_its_time() {
    let test = TestJobs::inline(Jobs::builder()).unwrap();
    let later = SubmitOptions::new().delay(Duration::from_secs(3600));
    let job = test
        .submit_job_with_options(
            "TestingSendEmail",
            json!({ "to": "l@t.r", "subject": "later" }),
            &later,
        )
        .await
        .unwrap();
    assert_eq!(
        test.get_job(job.id).await.unwrap().unwrap().status,
        JobStatus::Queued
    );
    test.advance(Duration::from_secs(3599)).await;
    assert_eq!(
        test.get_job(job.id).await.unwrap().unwrap().status,
        JobStatus::Queued
    );
    test.advance(Duration::from_secs(2)).await;
    assert_eq!(
        test.get_job(job.id).await.unwrap().unwrap().status,
        JobStatus::Succeeded
    );
}

#[job_executor("TestingSlow", timeout = "30s")]
async fn slow() -> Result<(), JobError> {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_time_limit_runs_out_on_the_paused_clock() {
    let test = TestJobs::inline(Jobs::builder()).unwrap();
    let job = test.submit_job("TestingSlow").await.unwrap();
    let done = test.get_job(job.id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Failed, "{done:?}");
    assert!(
        done.error.unwrap().contains("time"),
        "failed by its time limit"
    );
}

static TICKS: AtomicU32 = AtomicU32::new(0);

#[job_executor("TestingTick")]
async fn tick() -> Result<(), JobError> {
    TICKS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn cron_ticks_fire_as_the_test_clock_passes_them() {
    let test =
        TestJobs::manual(Jobs::builder().periodic("*/5 * * * *", "TestingTick", json!(null)))
            .unwrap();
    for step in 1..=3 {
        test.advance(Duration::from_secs(5 * 60)).await;
        let ran = test.drain().await;
        assert_eq!(
            (ran.of_type("TestingTick").count(), ran.succeeded()),
            (1, 1),
            "one tick in each 5 minutes of a 5-minute schedule (step {step}): {ran:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_schedule_in_a_time_zone_ticks_by_that_zones_clock() {
    // On the hour in Asia/Kolkata (UTC+05:30, no daylight saving) is half past the hour
    // in UTC: each tick's job is due at minute 30, second 0, of a UTC hour.
    let test = TestJobs::manual(Jobs::builder().periodic_in(
        "0 0 * * * *",
        "Asia/Kolkata",
        "TestingTick",
        json!(null),
    ))
    .unwrap();
    for step in 1..=2 {
        test.advance(Duration::from_secs(3_600)).await;
        let ran = test.drain().await;
        let ticks: Vec<i64> = ran
            .of_type("TestingTick")
            .map(|job| job.run_at.as_unix_micros())
            .collect();
        assert_eq!(ticks.len(), 1, "one tick an hour (step {step}): {ran:?}");
        assert_eq!(
            ticks[0].rem_euclid(3_600_000_000),
            30 * 60_000_000,
            "the tick is on Kolkata's hour, half past UTC's (step {step})"
        );
    }
}
