//! Several services on one store: every one of 10,000 jobs runs
//! exactly once, even when its id is delivered twice.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock};

use jobs::memory::InMemoryStore;
use jobs::prelude::*;
use jobs::JobStore;

const JOBS: usize = 10_000;

static RUNS: LazyLock<Vec<AtomicU32>> =
    LazyLock::new(|| (0..JOBS).map(|_| AtomicU32::new(0)).collect());

#[job_executor("StressCount")]
async fn stress_count(index: usize) -> Result<(), JobError> {
    RUNS[index].fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_jobs_on_four_services_each_run_exactly_once() {
    let store: Arc<dyn JobStore> = Arc::new(InMemoryStore::new());
    let services: Vec<Jobs> = (0..4)
        .map(|_| {
            Jobs::builder()
                .concurrency(4)
                .store(store.clone())
                .start()
                .unwrap()
        })
        .collect();

    let mut ids = Vec::with_capacity(JOBS);
    for index in 0..JOBS {
        let submitter = &services[index % services.len()];
        let job = submitter
            .submit_job_with("StressCount", serde_json::json!(index))
            .await
            .unwrap();
        ids.push(job.id);
    }

    for id in &ids {
        let job = common::finished(&services[0], *id).await;
        assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
        assert_eq!(job.attempt, 1, "{job:?}");
    }
    let runs: Vec<u32> = RUNS.iter().map(|r| r.load(Ordering::SeqCst)).collect();
    let wrong: Vec<(usize, u32)> = runs
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, n)| *n != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "jobs not run exactly once (index, runs): {:?}",
        &wrong[..wrong.len().min(10)]
    );
    for service in &services {
        service.shutdown().await;
    }
    assert_eq!(services[0].held(), 0, "nothing is held after shutdown");
}
