//! Dependencies between jobs, through the service: a job submitted with parents waits
//! (`Waiting`) until they have succeeded, then runs with their results when it asks for
//! them; a failed parent cancels its dependants unless they run anyway; a parent that is
//! not stored is a typed error that stores nothing.

mod common;

use jobs::prelude::*;
use jobs::{ParentFailure, PayloadFrom};
use serde_json::{json, Value};

/// Starts a chain: a number.
#[job_executor("Fetch")]
async fn fetch(start: u32) -> Result<u32, JobError> {
    Ok(start)
}

/// The middle of a chain: doubles what it is given.
#[job_executor("Transform")]
async fn transform(n: u32) -> Result<u32, JobError> {
    Ok(n * 2)
}

/// A fan-in: the sum of its parents' results.
#[job_executor("Merge")]
async fn merge(parts: Vec<u32>) -> Result<u32, JobError> {
    Ok(parts.iter().sum())
}

/// Always fails.
#[job_executor("Breaks")]
async fn breaks() -> Result<(), JobError> {
    Err(JobError::failed("broken on purpose"))
}

/// Runs after anything: what its parents returned, as given.
#[job_executor("Report")]
async fn report(parts: Value) -> Result<Value, JobError> {
    Ok(parts)
}

/// Submits a `Transform` that runs with the result of `parent`.
async fn then_transform(jobs: &Jobs, parent: JobId) -> Job {
    jobs.submit_job_with_options(
        "Transform",
        Value::Null,
        &after(&[parent], PayloadFrom::Parent),
    )
    .await
    .unwrap()
}

fn after(parents: &[JobId], from: PayloadFrom) -> SubmitOptions {
    SubmitOptions::new()
        .depends_on(parents.iter().copied())
        .payload_from(from)
}

#[tokio::test]
async fn a_chain_runs_in_order_and_passes_each_result_on() {
    let jobs = Jobs::builder().concurrency(4).start().unwrap();
    let first = jobs
        .submit_job_with_options(
            "Fetch",
            json!(21),
            &SubmitOptions::new().delay(std::time::Duration::from_millis(200)),
        )
        .await
        .unwrap();
    let second = then_transform(&jobs, first.id).await;
    assert_eq!(second.status, JobStatus::Waiting, "it waits for its parent");
    let third = then_transform(&jobs, second.id).await;
    let done = common::finished(&jobs, third.id).await;
    assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    assert_eq!(
        jobs.get_job_result(third.id).await.unwrap(),
        Some(json!(84))
    );
    let (a, b) = (
        jobs.get_job(first.id).await.unwrap().unwrap(),
        jobs.get_job(second.id).await.unwrap().unwrap(),
    );
    assert!(
        a.finished_at <= b.started_at && b.finished_at <= done.started_at,
        "in order"
    );
    assert_eq!(
        b.payload,
        json!(21),
        "the second ran with the first's result"
    );
    jobs.shutdown().await;
}

#[tokio::test]
async fn a_fan_in_waits_for_every_parent_and_takes_their_results_in_order() {
    let jobs = Jobs::builder().concurrency(4).start().unwrap();
    let shards: Vec<Job> = jobs
        .submit_many(
            (1..=10)
                .map(|n| jobs.prepare_job("Fetch", json!(n)).unwrap())
                .collect(),
        )
        .await
        .unwrap();
    let ids: Vec<JobId> = shards.iter().map(|job| job.id).collect();
    let merged = jobs
        .submit_job_with_options("Merge", Value::Null, &after(&ids, PayloadFrom::Parents))
        .await
        .unwrap();
    let done = common::finished(&jobs, merged.id).await;
    assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    assert_eq!(
        jobs.get_job_result(merged.id).await.unwrap(),
        Some(json!(55))
    );
    assert_eq!(done.payload, json!([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    for id in ids {
        let shard = jobs.get_job(id).await.unwrap().unwrap();
        assert!(
            shard.finished_at <= done.started_at,
            "every parent ended first"
        );
    }
    jobs.shutdown().await;
}

#[tokio::test]
async fn a_failed_parent_cancels_its_dependants_and_run_anyway_runs() {
    let jobs = Jobs::builder().concurrency(2).start().unwrap();
    let parent = jobs.submit_job("Breaks").await.unwrap();
    let child = then_transform(&jobs, parent.id).await;
    let grandchild = then_transform(&jobs, child.id).await;
    let anyway = jobs
        .submit_job_with_options(
            "Report",
            Value::Null,
            &after(&[parent.id], PayloadFrom::Parents).on_parent_failure(ParentFailure::Run),
        )
        .await
        .unwrap();
    let canceled = common::finished(&jobs, grandchild.id).await;
    assert_eq!(
        canceled.status,
        JobStatus::Canceled,
        "canceled down the graph"
    );
    assert_eq!(canceled.attempt, 0, "it never ran");
    let child = jobs.get_job(child.id).await.unwrap().unwrap();
    assert_eq!(child.status, JobStatus::Canceled);
    assert!(
        child
            .error
            .as_deref()
            .unwrap_or("")
            .contains(&parent.id.to_string()),
        "its error names the parent: {child:?}"
    );
    let ran = common::finished(&jobs, anyway.id).await;
    assert_eq!(ran.status, JobStatus::Succeeded, "{ran:?}");
    assert_eq!(
        jobs.get_job_result(anyway.id).await.unwrap(),
        Some(json!([null]))
    );
    jobs.shutdown().await;
}

#[tokio::test]
async fn bad_parents_are_typed_errors_that_store_nothing() {
    let jobs = Jobs::builder().concurrency(0).start().unwrap();
    let missing = JobId::new();
    let error = jobs
        .submit_job_with_options(
            "Transform",
            Value::Null,
            &after(&[missing], PayloadFrom::Parent),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, SubmitError::UnknownParent { parent, .. } if *parent == missing),
        "{error}"
    );
    let parent = jobs
        .submit_job_with_options("Fetch", json!(1), &SubmitOptions::new())
        .await
        .unwrap();
    let twice = jobs
        .submit_job_with_options(
            "Merge",
            Value::Null,
            &after(&[parent.id, parent.id], PayloadFrom::Parents),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(twice, SubmitError::InvalidOptions { .. }),
        "{twice}"
    );
    let two_for_one = jobs
        .submit_job_with_options("Transform", Value::Null, &after(&[], PayloadFrom::Parent))
        .await
        .unwrap_err();
    assert!(
        matches!(two_for_one, SubmitError::InvalidOptions { .. }),
        "{two_for_one}"
    );
    let keyed = jobs
        .submit_job_with_options(
            "Transform",
            Value::Null,
            &after(&[parent.id], PayloadFrom::Parent).unique_key("k"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(keyed, SubmitError::InvalidOptions { .. }),
        "{keyed}"
    );
    let page = jobs.list_jobs(JobQuery::new()).await.unwrap();
    assert_eq!(page.jobs.len(), 1, "only the parent was stored");
    jobs.shutdown().await;
}

#[tokio::test]
async fn canceling_a_waiting_job_cancels_it_and_its_dependants_at_once() {
    let jobs = Jobs::builder().concurrency(0).start().unwrap();
    let parent = jobs
        .submit_job_with_options("Fetch", json!(1), &SubmitOptions::new())
        .await
        .unwrap();
    let child = then_transform(&jobs, parent.id).await;
    let grandchild = then_transform(&jobs, child.id).await;
    let outcome = jobs.cancel(child.id).await.unwrap();
    assert!(outcome.took_effect(), "{outcome:?}");
    for id in [child.id, grandchild.id] {
        let job = jobs.get_job(id).await.unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Canceled, "{job:?}");
    }
    let parent = jobs.get_job(parent.id).await.unwrap().unwrap();
    assert_eq!(parent.status, JobStatus::Queued, "the parent is left alone");
    jobs.shutdown().await;
}
