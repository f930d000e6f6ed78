//! The in-memory store stays bounded under runaway or hostile load: a bound on active
//! jobs refused at submit, and no ids or lanes left behind by canceled jobs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use jobs::memory::InMemoryStore;
use jobs::prelude::*;
use jobs::JobStore;
use serde_json::json;

/// Does nothing.
#[job_executor("BoundNoop")]
async fn bound_noop() -> Result<(), JobError> {
    Ok(())
}

/// Takes any payload.
#[job_executor("BoundEcho")]
async fn bound_echo(payload: serde_json::Value) -> Result<serde_json::Value, JobError> {
    Ok(payload)
}

for_each_backend!(text_no_store_can_keep_is_refused_at_submit_and_nothing_is_stored);

/// A NUL character, which PostgreSQL cannot store, is refused at submit on every store (a
/// job one store accepts, every store accepts) with a typed error naming the field, and
/// nothing is stored; a batch with such a job is refused whole.
async fn text_no_store_can_keep_is_refused_at_submit_and_nothing_is_stored(env: common::Env) {
    let jobs = env.start(0);
    let error = jobs
        .submit_job_with("BoundEcho", json!({ "name": "a\u{0}b" }))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, SubmitError::InvalidPayload { job_type, .. } if job_type == "BoundEcho"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "invalid payload for job type `BoundEcho`: the payload contains a NUL character (\\u0000), which no store accepts"
    );
    let keyed = SubmitOptions::new().unique_key("key\u{0}");
    let error = jobs
        .submit_job_with_options("BoundEcho", json!(1), &keyed)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, SubmitError::InvalidOptions { reason, .. } if reason.starts_with("the unique key contains a NUL")),
        "{error:?}"
    );
    let batch = vec![
        Job::new("BoundEcho", json!("fine")),
        Job::new("BoundEcho", json!(["a\u{0}"])),
    ];
    let error = jobs.submit_many(batch).await.unwrap_err();
    assert!(
        matches!(error, SubmitError::InvalidPayload { .. }),
        "{error:?}"
    );
    let page = jobs.list_jobs(JobQuery::new()).await.unwrap();
    assert!(page.jobs.is_empty(), "nothing stored: {:?}", page.jobs);
    jobs.shutdown().await;
}

fn service(store: &Arc<InMemoryStore>) -> Jobs {
    Jobs::builder()
        .concurrency(0)
        .store(store.clone() as Arc<dyn JobStore>)
        .start()
        .unwrap()
}

/// Past its bound of active jobs the store refuses a submission with a typed error and
/// stores nothing of it (a batch is refused whole); a finished job frees its place.
#[tokio::test]
async fn a_full_in_memory_store_refuses_submissions_and_stores_nothing() {
    let store = Arc::new(InMemoryStore::new().with_max_active_jobs(3));
    let jobs = service(&store);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(jobs.submit_job("BoundNoop").await.unwrap().id);
    }
    let error = jobs.submit_job("BoundNoop").await.unwrap_err();
    assert!(matches!(error, SubmitError::StoreFull { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the job store is full: the in-memory store holds 3 waiting, queued and running jobs, and at most 3; try again once jobs have finished"
    );
    assert_eq!(store.len(), 3, "nothing stored");
    jobs.cancel(ids[0]).await.unwrap();
    let batch = (0..2)
        .map(|_| jobs.prepare_job("BoundNoop", json!(null)))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let error = jobs.submit_many(batch).await.unwrap_err();
    assert!(matches!(error, SubmitError::StoreFull { .. }), "{error:?}");
    assert_eq!(store.len(), 3, "a batch over the bound is refused whole");
    jobs.submit_job("BoundNoop")
        .await
        .expect("the canceled job's place");
    jobs.shutdown().await;
}

/// A canceled job scheduled far ahead leaves the schedule at once, so a submit-and-cancel
/// loop does not grow it (before, each id stayed until its time came, years ahead).
#[tokio::test]
async fn canceled_scheduled_jobs_leave_the_schedule() {
    let store = Arc::new(InMemoryStore::new());
    let jobs = service(&store);
    let later = SubmitOptions::new().delay(Duration::from_secs(365 * 86_400));
    let kept = jobs
        .submit_job_with_options("BoundNoop", json!(null), &later)
        .await
        .unwrap();
    for _ in 0..10_000 {
        let job = jobs
            .submit_job_with_options("BoundNoop", json!(null), &later)
            .await
            .unwrap();
        jobs.cancel(job.id).await.unwrap();
    }
    assert!(store.queued_ids() <= 2, "{} ids left", store.queued_ids());
    let job = jobs.get_job(kept.id).await.unwrap().unwrap();
    assert_eq!(
        job.status,
        JobStatus::Queued,
        "the job still queued keeps its place"
    );
    assert_eq!(
        store
            .next_due("default")
            .await
            .unwrap()
            .map(|d| d > Duration::from_secs(86_400)),
        Some(true)
    );
    jobs.shutdown().await;
}

/// Queues that no service serves, emptied by cancels, keep no lane (before, every queue
/// name ever used kept one).
#[tokio::test]
async fn lanes_of_emptied_queues_nothing_serves_are_dropped() {
    let store = Arc::new(InMemoryStore::new());
    let jobs = service(&store);
    for n in 0..1_000 {
        let options = SubmitOptions::new().queue(format!("tenant-{n}"));
        let job = jobs
            .submit_job_with_options("BoundNoop", json!(null), &options)
            .await
            .unwrap();
        jobs.cancel(job.id).await.unwrap();
    }
    assert_eq!(store.queue_lanes(), 0);
    jobs.shutdown().await;
}

/// Jobs of a queue that no running service serves are reported, with how many wait;
/// a served queue is not, even with jobs queued.
#[tokio::test]
async fn queues_nothing_serves_are_reported() {
    let store = Arc::new(InMemoryStore::new());
    let worker = Jobs::builder()
        .concurrency(1)
        .store(store.clone() as Arc<dyn JobStore>)
        .start()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while worker.workers().await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no heartbeat");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let nowhere = SubmitOptions::new().queue("nowhere");
    for _ in 0..2 {
        worker
            .submit_job_with_options("BoundNoop", json!(null), &nowhere)
            .await
            .unwrap();
    }
    let later = SubmitOptions::new().delay(Duration::from_secs(3_600));
    worker
        .submit_job_with_options("BoundNoop", json!(null), &later)
        .await
        .unwrap();
    let unserved = worker.unserved_queues().await.unwrap();
    assert_eq!(unserved.len(), 1, "{unserved:?}");
    assert_eq!(
        (unserved[0].queue.as_str(), unserved[0].waiting),
        ("nowhere", 2)
    );
    worker.shutdown().await;
}
