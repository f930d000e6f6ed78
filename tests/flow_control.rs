//! Flow control on every backend, across two services on one store as two processes
//! would share it: paused queues and rate limits.

mod common;

use common::{finished, wait_for_status, Env};
use jobs::prelude::*;
use jobs::{JobEvent, JobQuery, JobStatus};
use serde_json::json;

/// Does nothing.
#[job_executor("FlowNoop")]
async fn flow_noop() -> Result<(), JobError> {
    Ok(())
}

/// At most twenty start per second, whichever service claims them.
#[job_executor("FlowRated", rate = "20/1s")]
async fn flow_rated() -> Result<(), JobError> {
    Ok(())
}

/// A rate limit is one budget for every process on the store: two services of three
/// workers each, with a backlog of a hundred jobs limited to 20 a second, start 40 ± 2 of
/// them in the two seconds from the first start (80 if each had a budget of its own).
async fn a_rate_limit_is_one_budget_across_processes(env: Env) {
    let first_service = env.builder().concurrency(3).start().unwrap();
    let other = env.another().await;
    let second_service = other.builder().concurrency(3).start().unwrap();
    let jobs = (0..100)
        .map(|_| first_service.prepare_job("FlowRated", json!(null)))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    first_service.submit_many(jobs).await.unwrap();
    let window = std::time::Duration::from_secs(2).as_micros() as i64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (first, starts) = loop {
        let page = first_service
            .list_jobs(JobQuery::new().job_type("FlowRated").limit(1_000))
            .await
            .unwrap();
        let starts: Vec<i64> = page
            .jobs
            .iter()
            .filter_map(|job| job.started_at.map(|at| at.as_unix_micros()))
            .collect();
        // Wait for a start two seconds after the first, so the two seconds are over.
        if let Some(first) = starts.iter().copied().min() {
            if starts.iter().any(|&at| at >= first + window) {
                break (first, starts);
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the third window never opened"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let within = starts.iter().filter(|&&at| at < first + window).count();
    assert!(
        (38..=42).contains(&within),
        "{within} jobs started in the first two seconds, not 40"
    );
    second_service.shutdown().await;
    first_service.shutdown().await;
}

/// A pause from one service stops claims in another that serves the queue, while its
/// other queues go on; a resume from the first lets the second run the waiting job. Both
/// changes are announced once, and the pause outlives the services that saw it.
async fn a_pause_from_one_process_stops_claims_in_the_other(env: Env) {
    let operator = env.builder().concurrency(0).start().unwrap();
    let other = env.another().await;
    // Two workers for the default queue and one for `side`.
    let start = || {
        other
            .builder()
            .concurrency(2)
            .serve_queue("side", 1)
            .start()
            .unwrap()
    };
    let worker = start();
    let mut events = operator.subscribe();
    assert!(operator.pause_queue("default").await.unwrap());
    assert!(
        !operator.pause_queue("default").await.unwrap(),
        "paused already"
    );
    assert_eq!(
        operator.pause_queue("not a queue").await.unwrap_err().to_string(),
        "`not a queue` is not a queue name: a queue name is 1 to 64 letters, digits, `_`, `-` or `.`"
    );
    let held = worker.submit_job("FlowNoop").await.unwrap();
    let side = worker
        .submit_job_with_options("FlowNoop", json!(null), &SubmitOptions::new().queue("side"))
        .await
        .unwrap();
    // The worker claims from its other queue, and has looked at the paused one meanwhile.
    finished(&worker, side.id).await;
    let paused = worker.paused_queues().await.unwrap();
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0].queue, "default");
    assert_eq!(
        worker.get_job(held.id).await.unwrap().unwrap().status,
        JobStatus::Queued
    );
    let queues = worker.queues().await.unwrap();
    let default = queues.iter().find(|q| q.queue == "default").unwrap();
    assert!(default.paused_since.is_some());
    assert_eq!(default.queued, 1, "{default:?}");

    // A restart keeps the pause: a new service on the store does not claim either.
    worker.shutdown().await;
    let worker = start();
    let again = worker
        .submit_job_with_options("FlowNoop", json!(null), &SubmitOptions::new().queue("side"))
        .await
        .unwrap();
    finished(&worker, again.id).await;
    assert_eq!(
        worker.get_job(held.id).await.unwrap().unwrap().status,
        JobStatus::Queued
    );

    assert!(operator.resume_queue("default").await.unwrap());
    assert!(
        !operator.resume_queue("default").await.unwrap(),
        "running already"
    );
    wait_for_status(&worker, held.id, JobStatus::Succeeded).await;
    assert!(worker.paused_queues().await.unwrap().is_empty());
    let mut changes = Vec::new();
    while changes.len() < 2 {
        match tokio::time::timeout(std::time::Duration::from_secs(10), events.recv()).await {
            Ok(Some(event @ (JobEvent::QueuePaused { .. } | JobEvent::QueueResumed { .. }))) => {
                changes.push(event)
            }
            Ok(Some(_)) => {}
            other => panic!("the queue's events did not arrive: {other:?} after {changes:?}"),
        }
    }
    assert_eq!(
        changes,
        [
            JobEvent::QueuePaused {
                queue: "default".into()
            },
            JobEvent::QueueResumed {
                queue: "default".into()
            }
        ]
    );
    worker.shutdown().await;
    operator.shutdown().await;
}

for_each_backend!(
    a_pause_from_one_process_stops_claims_in_the_other,
    a_rate_limit_is_one_budget_across_processes
);
