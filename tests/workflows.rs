//! Dependencies between jobs, through the service: a job submitted with parents waits
//! (`Waiting`) until they have succeeded, then runs with their results when it asks for
//! them; a failed parent cancels its dependants unless they run anyway; a parent that is
//! not stored is a typed error that stores nothing. Typed flows (`mod typed`): chains,
//! joins and batches built with `Flow` and `Batch`, stored in one call under one flow id,
//! read back with `get_flow` and canceled with `cancel_flow`.

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

/// A parent with a unique key may not be stored (another active job holds the key), and
/// its dependants in the same batch would then wait for a job that does not exist: such a
/// batch is refused whole, on every store.
async fn a_keyed_parent_in_the_same_batch_is_refused(env: common::Env) {
    let jobs = env.start(0);
    let holder = jobs
        .submit_job_with_options("Fetch", json!(1), &SubmitOptions::new().unique_key("k"))
        .await
        .unwrap();
    let parent = jobs
        .prepare_job_with_options("Fetch", json!(2), &SubmitOptions::new().unique_key("k"))
        .unwrap();
    let child = jobs
        .prepare_job_with_options(
            "Transform",
            Value::Null,
            &after(&[parent.id], PayloadFrom::Parent),
        )
        .unwrap();
    let error = jobs
        .submit_many(vec![parent.clone(), child.clone()])
        .await
        .unwrap_err();
    assert!(
        matches!(&error, SubmitError::InvalidOptions { reason, .. } if reason.contains("unique key")),
        "{error}"
    );
    assert!(
        jobs.get_job(child.id).await.unwrap().is_none(),
        "nothing stored"
    );
    assert!(jobs.get_job(parent.id).await.unwrap().is_none());
    assert_eq!(
        jobs.get_job(holder.id).await.unwrap().unwrap().status,
        JobStatus::Queued
    );
    jobs.shutdown().await;
}

for_each_backend!(a_keyed_parent_in_the_same_batch_is_refused);

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

/// Typed flows: the steps' types are checked by the compiler, the jobs are stored in one
/// call and share a flow id.
mod typed {

    use jobs::prelude::*;
    use jobs::{FlowEdge, FlowId, ParentFailure};
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    use super::common;

    // The README's example, as it is there.

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    struct Page {
        url: String,
        body: String,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    struct Summary {
        url: String,
        words: usize,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    struct ShardReport {
        shard: u32,
        rows: u64,
    }

    #[job_executor("FetchPage")]
    async fn fetch(url: String) -> Result<Page, JobError> {
        let body = format!("the page at {url}");
        Ok(Page { url, body })
    }

    #[job_executor("TransformPage")]
    async fn transform(page: Page) -> Result<Summary, JobError> {
        let words = page.body.split_whitespace().count();
        Ok(Summary {
            url: page.url,
            words,
        })
    }

    #[job_executor("Notify")]
    async fn notify(summary: Summary) -> Result<String, JobError> {
        Ok(format!("{} has {} words", summary.url, summary.words))
    }

    #[job_executor("ExportShard")]
    async fn export(shard: u32) -> Result<ShardReport, JobError> {
        Ok(ShardReport {
            shard,
            rows: u64::from(shard) * 100,
        })
    }

    #[job_executor("MergeShards")]
    async fn merge(reports: Vec<ShardReport>) -> Result<u64, JobError> {
        Ok(reports.iter().map(|report| report.rows).sum())
    }

    #[job_executor("ResizeImage", retries = 0)]
    async fn resize(image: u32) -> Result<u32, JobError> {
        match image % 7 {
            0 => Err(JobError::permanent(format!("image {image} is corrupt"))),
            _ => Ok(image * 2),
        }
    }

    #[job_executor("ResizeReport")]
    async fn report(summary: BatchSummary) -> Result<String, JobError> {
        Ok(format!(
            "{} resized, {} failed",
            summary.succeeded.len(),
            summary.failed.len()
        ))
    }

    async fn readme(
        jobs: &Jobs,
    ) -> Result<(String, u64, String, FlowId), Box<dyn std::error::Error>> {
        // fetch → transform → notify: each step runs with the previous step's output.
        let mut flow = Flow::new();
        let page = flow.start::<fetch>("https://example.com".to_owned());
        let summary = flow.then::<transform>(&page); // transform takes a Page
        let sent = flow.then::<notify>(&summary); // notify takes a Summary
        let submitted = jobs.submit_flow(flow).await?; // every step stored, or none
        let message: String = jobs.wait_for_output(&submitted.handle(&sent)).await?;

        // ten shards → merge: the merge takes the shards' outputs, in order.
        let mut flow = Flow::new();
        let shards: Vec<_> = (0..10).map(|shard| flow.start::<export>(shard)).collect();
        let merged = flow.join::<merge>(&shards); // merge takes Vec<ShardReport>
        let submitted = jobs.submit_flow(flow).await?;
        let rows: u64 = jobs.wait_for_output(&submitted.handle(&merged)).await?;

        // A batch: members that run independently, and a callback that runs once every
        // member has finished, however it ended, with a BatchSummary of them.
        let mut batch = Batch::new();
        for image in 1..=20 {
            batch.add::<resize>(image);
        }
        let done = batch.callback::<report>(); // report takes a BatchSummary
        let submitted = jobs.submit_batch(batch).await?;
        let progress = jobs.get_flow(submitted.id()).await?.expect("stored").counts;
        println!("{} of {} finished", progress.finished, progress.total);
        let report: String = jobs.wait_for_output(&submitted.handle(&done)).await?;

        Ok((message, rows, report, submitted.id()))
    }

    async fn the_readme_examples_run(env: common::Env) {
        let jobs = env.start(4);
        let (message, rows, report, batch) = tokio::time::timeout(common::DEADLINE, readme(&jobs))
            .await
            .expect("in time")
            .unwrap();
        assert_eq!(message, "https://example.com has 4 words");
        assert_eq!(rows, 4_500);
        assert_eq!(report, "18 resized, 2 failed");
        let counts = jobs.get_flow(batch).await.unwrap().unwrap().counts;
        assert_eq!((counts.finished, counts.total), (21, 21));
        assert_eq!((counts.succeeded, counts.failed), (19, 2));
        jobs.shutdown().await;
    }

    #[tokio::test]
    async fn a_typed_chain_runs_each_step_with_the_output_of_the_one_before() {
        let jobs = Jobs::builder().concurrency(4).start().unwrap();
        let mut flow = Flow::new();
        let page = flow.start::<fetch>("https://example.com/a".to_owned());
        let summary = flow.then::<transform>(&page);
        let sent = flow.then::<notify>(&summary);
        let submitted = jobs.submit_flow(flow).await.unwrap();

        let stored = submitted.jobs();
        assert_eq!(stored.len(), 3);
        assert_eq!(
            stored.iter().map(|job| job.status).collect::<Vec<_>>(),
            [JobStatus::Queued, JobStatus::Waiting, JobStatus::Waiting]
        );
        assert!(
            stored.iter().all(|job| job.flow == Some(submitted.id())),
            "one flow id"
        );
        assert_eq!(stored[1].depends_on, [page.id()]);
        assert_eq!(stored[2].depends_on, [summary.id()]);

        let message = tokio::time::timeout(
            common::DEADLINE,
            jobs.wait_for_output(&submitted.handle(&sent)),
        )
        .await
        .expect("in time")
        .unwrap();
        assert_eq!(message, "https://example.com/a has 4 words");
        let summary = jobs.get_output(&submitted.handle(&summary)).await.unwrap();
        assert_eq!(
            summary,
            Some(Summary {
                url: "https://example.com/a".into(),
                words: 4
            })
        );
        let middle = jobs.get_job(stored[1].id).await.unwrap().unwrap();
        assert_eq!(
            middle.payload,
            json!({ "url": "https://example.com/a", "body": "the page at https://example.com/a" }),
            "the transform ran with the fetch's output"
        );
        jobs.shutdown().await;
    }

    #[tokio::test]
    async fn ten_shards_join_into_a_merge_that_gets_every_output_in_order() {
        let jobs = Jobs::builder().concurrency(4).start().unwrap();
        let mut flow = Flow::new();
        // Later shards first in time: the order is the steps', not the finish order.
        let shards: Vec<_> = (0..10)
            .map(|shard| {
                let later = std::time::Duration::from_millis(u64::from(10 - shard) * 5);
                flow.start_with::<export>(shard, &SubmitOptions::new().delay(later))
            })
            .collect();
        let merged = flow.join::<merge>(&shards);
        let submitted = jobs.submit_flow(flow).await.unwrap();
        let rows = tokio::time::timeout(
            common::DEADLINE,
            jobs.wait_for_output(&submitted.handle(&merged)),
        )
        .await
        .expect("in time")
        .unwrap();
        assert_eq!(rows, 4_500);
        let merge_job = jobs.get_job(merged.id()).await.unwrap().unwrap();
        let shards_seen: Vec<u64> = merge_job
            .payload
            .as_array()
            .unwrap()
            .iter()
            .map(|report| report["shard"].as_u64().unwrap())
            .collect();
        assert_eq!(
            shards_seen,
            (0..10).collect::<Vec<u64>>(),
            "in the order of the steps"
        );
        assert_eq!(
            merge_job.depends_on,
            shards.iter().map(|step| step.id()).collect::<Vec<_>>()
        );
        jobs.shutdown().await;
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    struct Customer {
        name: String,
    }

    #[job_executor("LoadCustomer")]
    async fn load_customer(id: u32) -> Result<Customer, JobError> {
        Ok(Customer {
            name: format!("customer {id}"),
        })
    }

    #[job_executor("LoadPrices")]
    async fn load_prices() -> Result<Vec<u32>, JobError> {
        Ok(vec![3, 4, 5])
    }

    #[job_executor("Invoice")]
    async fn invoice(inputs: (Customer, Vec<u32>)) -> Result<String, JobError> {
        let (customer, prices) = inputs;
        Ok(format!(
            "{} owes {}",
            customer.name,
            prices.iter().sum::<u32>()
        ))
    }

    #[tokio::test]
    async fn a_tuple_join_gets_the_outputs_of_steps_of_two_types() {
        let jobs = Jobs::builder().concurrency(4).start().unwrap();
        let mut flow = Flow::new();
        let customer = flow.start::<load_customer>(7);
        let prices = flow.start::<load_prices>(jobs::NoArgs);
        let bill = flow.join::<invoice>((&customer, &prices));
        let submitted = jobs.submit_flow(flow).await.unwrap();
        let text = tokio::time::timeout(
            common::DEADLINE,
            jobs.wait_for_output(&submitted.handle(&bill)),
        )
        .await
        .expect("in time")
        .unwrap();
        assert_eq!(text, "customer 7 owes 12");
        jobs.shutdown().await;
    }

    /// The callback of one test alone, which records each run by the smallest member id
    /// it was given (the test runs on every store at once, in one process).
    #[job_executor("CountEnds")]
    async fn count_ends(summary: BatchSummary) -> Result<String, JobError> {
        let first = summary
            .succeeded
            .iter()
            .chain(&summary.failed)
            .chain(&summary.canceled)
            .min()
            .copied();
        COUNTED.lock().unwrap().extend(first);
        Ok(format!(
            "{} resized, {} failed",
            summary.succeeded.len(),
            summary.failed.len()
        ))
    }

    /// The runs of `count_ends`, each by the smallest member id of its batch.
    static COUNTED: std::sync::Mutex<Vec<JobId>> = std::sync::Mutex::new(Vec::new());

    async fn a_batch_callback_runs_once_with_the_ends_of_every_member(env: common::Env) {
        let jobs = env.start(4);
        let mut batch = Batch::new();
        let mut members: Vec<JobId> = (1..=49)
            .map(|image| batch.add::<resize>(image).id())
            .collect();
        let done = batch.callback::<count_ends>();
        // Added after the callback, waited for all the same; string-typed, image 70 fails.
        members.push(batch.add_job(jobs.prepare_job("ResizeImage", json!(70)).unwrap()));
        assert_eq!(batch.len(), 50);
        let submitted = jobs.submit_batch(batch).await.unwrap();
        assert_eq!(submitted.jobs().len(), 51);
        assert_eq!(
            submitted.jobs().last().unwrap().id,
            done.id(),
            "the callback comes last"
        );

        let text = tokio::time::timeout(
            common::DEADLINE,
            jobs.wait_for_output(&submitted.handle(&done)),
        )
        .await
        .expect("in time")
        .unwrap();
        assert_eq!(text, "42 resized, 8 failed");
        let callback = jobs.get_job(done.id()).await.unwrap().unwrap();
        assert_eq!(callback.attempt, 1);
        let summary: BatchSummary = serde_json::from_value(callback.payload.clone()).unwrap();
        let failing = |id: &JobId| {
            let at = members.iter().position(|member| member == id).unwrap();
            (at + 1) % 7 == 0 || at == 49
        };
        assert_eq!(summary.total(), 50);
        assert_eq!(summary.failed.len(), 8);
        assert!(summary.failed.iter().all(failing), "{summary:?}");
        assert!(!summary.succeeded.iter().any(failing), "{summary:?}");
        let mut ids: Vec<JobId> = summary
            .succeeded
            .iter()
            .chain(&summary.failed)
            .copied()
            .collect();
        ids.sort();
        let mut expected = members.clone();
        expected.sort();
        assert_eq!(ids, expected, "every member once");
        assert_eq!(callback.payload["counts"]["succeeded"], 42);

        let view = jobs.get_flow(submitted.id()).await.unwrap().unwrap();
        assert!(view.is_finished());
        assert_eq!((view.counts.succeeded, view.counts.failed), (43, 8));
        let first = members.iter().min().copied().unwrap();
        let runs = COUNTED
            .lock()
            .unwrap()
            .iter()
            .filter(|id| **id == first)
            .count();
        assert_eq!(runs, 1, "the callback ran once");
        let callbacks = jobs
            .list_jobs(JobQuery::new().job_type("CountEnds"))
            .await
            .unwrap();
        assert_eq!(callbacks.jobs.len(), 1, "one callback job");
        jobs.shutdown().await;
    }

    /// Runs until it is canceled.
    #[job_executor("Crawl")]
    async fn crawl(ctx: JobContext, url: String) -> Result<Page, JobError> {
        ctx.report_progress(10, format!("crawling {url}"));
        ctx.cancelled().await;
        Err(JobError::failed("stopped"))
    }

    #[job_executor("Cleanup")]
    async fn cleanup(dir: String) -> Result<String, JobError> {
        Ok(format!("removed {dir}"))
    }

    #[job_executor("BrokenFetch", retries = 0)]
    async fn broken_fetch(url: String) -> Result<Page, JobError> {
        Err(JobError::permanent(format!("{url} is unreachable")))
    }

    async fn cancel_flow_cancels_waiting_members_at_once_and_stops_running_ones(env: common::Env) {
        let jobs = env.start(2);
        let mut flow = Flow::new();
        let crawled = flow.start::<crawl>("https://example.com/slow".to_owned());
        let summary = flow.then::<transform>(&crawled);
        let sent = flow.then::<notify>(&summary);
        // Would run after the crawl whatever its end: canceled with the flow, it does not.
        let anyway = SubmitOptions::new().on_parent_failure(ParentFailure::Run);
        let cleaned = flow.after_with::<cleanup>("/tmp/crawl".to_owned(), &crawled, &anyway);
        let submitted = jobs.submit_flow(flow).await.unwrap();
        let running = common::wait_for_progress(&jobs, crawled.id()).await;
        assert_eq!(running.status, JobStatus::Running);

        let report = jobs.cancel_flow(submitted.id()).await.unwrap();
        assert_eq!(
            (report.members, report.canceled, report.stop_requested),
            (4, 3, 1),
            "{report:?}"
        );
        for step in [summary.id(), sent.id(), cleaned.id()] {
            let job = jobs.get_job(step).await.unwrap().unwrap();
            assert_eq!(
                (job.status, job.attempt),
                (JobStatus::Canceled, 0),
                "at once: {job:?}"
            );
        }
        let stopped = common::finished(&jobs, crawled.id()).await;
        assert_eq!(stopped.status, JobStatus::Canceled, "{stopped:?}");
        let view = jobs.get_flow(submitted.id()).await.unwrap().unwrap();
        assert_eq!((view.counts.canceled, view.counts.finished), (4, 4));
        assert_eq!(
            jobs.get_job(cleaned.id()).await.unwrap().unwrap().attempt,
            0,
            "the run-anyway step never ran"
        );
        let again = jobs.cancel_flow(submitted.id()).await.unwrap();
        assert_eq!(
            (again.members, again.canceled, again.stop_requested),
            (4, 0, 0)
        );
        jobs.shutdown().await;
    }

    async fn get_flow_shows_the_members_their_edges_and_counts(env: common::Env) {
        let jobs = env.start(0);
        let outside = jobs
            .submit_job_with("FetchPage", json!("https://example.com"))
            .await
            .unwrap();
        let mut flow = Flow::new();
        let customer = flow.start::<load_customer>(1);
        let prices = flow.start::<load_prices>(jobs::NoArgs);
        let bill = flow.join::<invoice>((&customer, &prices));
        let cleaned = flow.after::<cleanup>("/tmp/bill".to_owned(), (&bill, outside.id));
        let submitted = jobs.submit_flow(flow).await.unwrap();

        let view = jobs
            .get_flow(submitted.id())
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(view.id, submitted.id());
        let ids: Vec<JobId> = view.members.iter().map(|job| job.id).collect();
        assert_eq!(ids, [customer.id(), prices.id(), bill.id(), cleaned.id()]);
        assert_eq!(
            view.edges,
            [
                FlowEdge::new(customer.id(), bill.id()),
                FlowEdge::new(prices.id(), bill.id()),
                FlowEdge::new(bill.id(), cleaned.id()),
                FlowEdge::new(outside.id, cleaned.id()),
            ]
        );
        let counts = view.counts;
        assert_eq!(
            (counts.total, counts.finished, counts.queued, counts.waiting),
            (4, 0, 2, 2)
        );
        assert!(
            view.member(outside.id).is_none(),
            "a parent outside the flow is no member"
        );
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["counts"]["total"], 4);
        assert_eq!(json["edges"][0]["parent"], json!(customer.id()));
        assert_eq!(json["members"][3]["flow"], json!(submitted.id()));

        // The customer is canceled: the bill and the clean-up with it, down the graph.
        assert!(jobs.cancel_job(customer.id()).await.unwrap());
        let counts = jobs.get_flow(submitted.id()).await.unwrap().unwrap().counts;
        assert_eq!(
            (
                counts.total,
                counts.finished,
                counts.canceled,
                counts.queued
            ),
            (4, 3, 3, 1)
        );
        assert!(jobs.get_flow(FlowId::new()).await.unwrap().is_none());
        jobs.shutdown().await;
    }

    async fn after_a_failed_step_its_consumers_are_canceled_and_run_anyway_steps_run(
        env: common::Env,
    ) {
        let jobs = env.start(2);
        let mut flow = Flow::new();
        let page = flow.start::<broken_fetch>("https://example.com/gone".to_owned());
        let summary = flow.then::<transform>(&page);
        let anyway = SubmitOptions::new().on_parent_failure(ParentFailure::Run);
        let cleaned = flow.after_with::<cleanup>("/tmp/gone".to_owned(), &page, &anyway);
        let submitted = jobs.submit_flow(flow).await.unwrap();

        let text = tokio::time::timeout(
            common::DEADLINE,
            jobs.wait_for_output(&submitted.handle(&cleaned)),
        )
        .await
        .expect("in time")
        .unwrap();
        assert_eq!(text, "removed /tmp/gone");
        let error = jobs
            .wait_for_output(&submitted.handle(&summary))
            .await
            .unwrap_err();
        let JobsError::NotSucceeded { status, error, .. } = &error else {
            panic!("not NotSucceeded: {error}");
        };
        assert_eq!(*status, JobStatus::Canceled);
        let reason = error.as_deref().unwrap_or_default();
        assert!(
            reason.contains(&page.id().to_string()),
            "names the parent: {reason}"
        );
        jobs.shutdown().await;
    }

    async fn a_flow_with_a_refused_step_stores_nothing(env: common::Env) {
        let jobs = env.start(0);
        let refused = |error: SubmitError, job_type: &str, says: &str| match &error {
            SubmitError::InvalidOptions {
                job_type: refused,
                reason,
            } => {
                assert_eq!(refused, job_type, "{error}");
                assert!(reason.contains(says), "{error}");
            }
            _ => panic!("not InvalidOptions: {error}"),
        };

        // Running anyway a step that needs its parent's output.
        let mut flow = Flow::new();
        let page = flow.start::<fetch>("https://example.com".to_owned());
        let anyway = SubmitOptions::new().on_parent_failure(ParentFailure::Run);
        flow.then_with::<transform>(&page, &anyway);
        refused(
            jobs.submit_flow(flow).await.unwrap_err(),
            "TransformPage",
            "`after`",
        );

        // Options that set what the flow sets, or a unique key.
        for options in [
            SubmitOptions::new().unique_key("once"),
            SubmitOptions::new().depends_on([JobId::new()]),
            SubmitOptions::new().payload_from(jobs::PayloadFrom::Parent),
            SubmitOptions::new().flow(FlowId::new()),
        ] {
            let mut flow = Flow::new();
            flow.start::<export>(1);
            flow.start_with::<export>(2, &options);
            refused(jobs.submit_flow(flow).await.unwrap_err(), "ExportShard", "");
        }

        // A later step's bad option fails the whole flow.
        let mut flow = Flow::new();
        let shard = flow.start::<export>(1);
        let zero = SubmitOptions::new().timeout(std::time::Duration::ZERO);
        flow.join_with::<merge>(&[shard], &zero);
        refused(
            jobs.submit_flow(flow).await.unwrap_err(),
            "MergeShards",
            "timeout",
        );

        // A step of another flow, not submitted, is not stored.
        let mut other = Flow::new();
        let foreign = other.start::<fetch>("https://example.com".to_owned());
        let mut flow = Flow::new();
        flow.then::<transform>(&foreign);
        let error = jobs.submit_flow(flow).await.unwrap_err();
        assert!(
            matches!(&error, SubmitError::UnknownParent { parent, .. } if *parent == foreign.id()),
            "{error}"
        );

        let page = jobs.list_jobs(JobQuery::new()).await.unwrap();
        assert!(page.jobs.is_empty(), "nothing stored: {:?}", page.jobs);
        jobs.shutdown().await;
    }

    // The flows' behaviour over every store: the README's examples, a batch's callback,
    // the cancel of a flow midway, a flow read back, refusals and failed steps.
    crate::for_each_backend!(
        the_readme_examples_run,
        a_batch_callback_runs_once_with_the_ends_of_every_member,
        cancel_flow_cancels_waiting_members_at_once_and_stops_running_ones,
        get_flow_shows_the_members_their_edges_and_counts,
        a_flow_with_a_refused_step_stores_nothing,
        after_a_failed_step_its_consumers_are_canceled_and_run_anyway_steps_run,
    );
}
