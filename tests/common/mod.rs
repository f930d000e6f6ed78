//! Helpers shared by the integration tests: waiting for a state with a deadline, driven by
//! the service's events rather than sleeps.
#![allow(dead_code)]

use std::time::Duration;

use jobs::{Job, JobId, JobStatus, Jobs};

/// How long any wait in the tests may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Waits until the job is in `status`; panics if it ends in another terminal state or the
/// deadline passes.
pub async fn wait_for_status(jobs: &Jobs, id: JobId, status: JobStatus) -> Job {
    let mut events = jobs.subscribe();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let job = jobs.get_job(id).await.unwrap().expect("the job exists");
        if job.status == status {
            return job;
        }
        assert!(
            !job.status.is_terminal(),
            "job ended {} while waiting for {status}: {job:?}",
            job.status
        );
        tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {id} to be {status}"));
    }
}

/// Waits until the job has finished, with the deadline.
pub async fn finished(jobs: &Jobs, id: JobId) -> Job {
    tokio::time::timeout(DEADLINE, jobs.wait_for(id))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {id} to finish"))
        .unwrap()
}

/// Waits until `check` holds, re-checking on every event, with the deadline.
pub async fn until<F: FnMut() -> bool>(jobs: &Jobs, what: &str, mut check: F) {
    let mut events = jobs.subscribe();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check() {
        // Events wake the check; the short tick covers conditions no event announces.
        let _ = tokio::time::timeout_at(
            deadline.min(tokio::time::Instant::now() + Duration::from_millis(20)),
            events.recv(),
        )
        .await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
    }
}
