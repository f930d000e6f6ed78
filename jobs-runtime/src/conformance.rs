//! The conformance suite for stores, and a store wrapper that injects faults.
//!
//! Anyone writing a [`JobStore`] runs [`run_all`] against it (from a test of their crate,
//! with a fresh, empty store); the in-memory and PostgreSQL stores of this project pass
//! it. Each check panics with a message naming the contract it found broken. The
//! behavioural suites of the `jobs` crate run the engine over every store as well, and
//! drive the fault cases through [`FaultyStore`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::sync::Arc;
//! use jobs_runtime::{conformance, memory::InMemoryStore};
//!
//! conformance::run_all(|| async { Arc::new(InMemoryStore::new()) as Arc<dyn jobs_runtime::JobStore> }).await;
//! # }
//! ```

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jobs_core::{
    BoxFuture, CancelOutcome, ClaimRequest, ClaimedJob, Completed, Completion, Inserted, Job,
    JobCount, JobId, JobPage, JobQuery, JobStatus, JobStore, Lease, Outcome, Progress, ProgressAck,
    Renewal, StorageError, StorageErrorKind, Timestamp,
};
use serde_json::{json, Value};

const HOLDER: &str = "conformance-holder";
const OTHER: &str = "conformance-other";

fn claim_request<'a>(
    queue: &'a str,
    limit: usize,
    holder: &'static str,
    lease: Duration,
) -> ClaimRequest<'a> {
    ClaimRequest {
        queue,
        limit,
        holder,
        lease,
        rates: &[],
    }
}

async fn claim(
    store: &dyn JobStore,
    limit: usize,
    holder: &'static str,
    lease: Duration,
) -> Vec<ClaimedJob> {
    store
        .claim(claim_request(Job::DEFAULT_QUEUE, limit, holder, lease))
        .await
        .expect("claim")
}

async fn insert(store: &dyn JobStore, jobs: Vec<Job>) -> Vec<Inserted> {
    store.insert_many(jobs).await.expect("insert_many")
}

async fn status(store: &dyn JobStore, id: JobId) -> Job {
    store.get(id).await.expect("get").expect("the job exists")
}

async fn complete(store: &dyn JobStore, holder: &str, completion: Completion) -> Completed {
    let mut answers = store
        .complete_many(holder, std::slice::from_ref(&completion))
        .await
        .expect("complete_many");
    assert_eq!(answers.len(), 1, "one answer per completion");
    answers.pop().expect("an answer")
}

/// Runs every check, each on a store `fresh` makes.
pub async fn run_all<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn JobStore>>,
{
    claims_are_exclusive_ordered_and_counted(fresh().await.as_ref()).await;
    completions_are_fenced_by_attempt_and_holder(fresh().await.as_ref()).await;
    requeues_of_a_job_asked_to_stop_end_it_canceled(fresh().await.as_ref()).await;
    a_released_claim_is_queued_as_if_never_claimed(fresh().await.as_ref()).await;
    leases_renew_until_they_run_out_then_are_found_expired(fresh().await.as_ref()).await;
    results_are_kept_apart_and_shown_only_for_succeeded_jobs(fresh().await.as_ref()).await;
    inserts_are_atomic_and_unique_keys_admit_one_active_job(fresh().await.as_ref()).await;
    cancel_and_progress_follow_the_status(fresh().await.as_ref()).await;
    scheduled_jobs_wait_and_next_due_says_how_long(fresh().await.as_ref()).await;
    listing_counting_and_pruning_agree(fresh().await.as_ref()).await;
    a_store_with_notifications_announces_its_inserts(fresh().await.as_ref()).await;
    operators_retry_and_delete_finished_jobs_only(fresh().await.as_ref()).await;
    queue_counts_and_finishes_per_minute_add_up(fresh().await.as_ref()).await;
    worker_heartbeats_are_recorded_refreshed_and_forgotten(fresh().await.as_ref()).await;
    a_paused_queue_gives_no_jobs_until_resumed(fresh().await.as_ref()).await;
    claims_spend_rate_budgets_and_wait_for_the_next_window(fresh().await.as_ref()).await;
    claims_run_at_most_the_limit_of_a_concurrency_key_in_order(fresh().await.as_ref()).await;
    the_error_history_keeps_the_first_and_latest_errors_cut_short(fresh().await.as_ref()).await;
    trace_parents_are_kept_and_handed_to_the_claim(fresh().await.as_ref()).await;
    dependants_wait_and_are_released_with_their_parents_results(fresh().await.as_ref()).await;
    a_failed_parent_cancels_its_dependants_unless_they_run_anyway(fresh().await.as_ref()).await;
    new_dependants_are_settled_against_stored_parents(fresh().await.as_ref()).await;
    a_batch_callback_gets_the_summary_and_retention_keeps_the_flow(fresh().await.as_ref()).await;
    a_retried_dependant_waits_for_its_parents_and_takes_their_results(fresh().await.as_ref()).await;
}

/// A job with parents ([`Job::depends_on`]) as the engine hands it to the store.
fn dependant(parents: &[JobId], from: jobs_core::PayloadFrom) -> Job {
    let mut job = Job::new("Dependant", Value::Null);
    job.status = JobStatus::Waiting;
    job.depends_on = parents.to_vec();
    job.payload_from = from;
    job
}

/// Claims everything due and ends each claimed job with `outcome`; the ids claimed.
async fn run_due(store: &dyn JobStore, outcome: impl Fn(&ClaimedJob) -> Outcome) -> Vec<JobId> {
    let claimed = claim(store, 100, HOLDER, Duration::from_secs(30)).await;
    let completions: Vec<Completion> = claimed
        .iter()
        .map(|job| Completion {
            id: job.id,
            attempt: job.attempt,
            outcome: outcome(job),
        })
        .collect();
    let answers = store
        .complete_many(HOLDER, &completions)
        .await
        .expect("complete_many");
    assert!(
        answers.iter().all(|a| matches!(a, Completed::Applied(_))),
        "{answers:?}"
    );
    claimed.iter().map(|job| job.id).collect()
}

/// A chain and a fan-in: a dependant is stored `Waiting`, never claimed, counted and
/// listed as waiting, and queued in the write that records its last parent's success,
/// with its parent's result (or the array of its parents' results) as its payload; the
/// store announces its release.
pub async fn dependants_wait_and_are_released_with_their_parents_results(store: &dyn JobStore) {
    use jobs_core::PayloadFrom;
    if !store.supports_dependencies() {
        return;
    }
    let mut events = store.notifications().map(|n| n.subscribe());
    let first = Job::new("First", json!({"n": 1}));
    let second = dependant(&[first.id], PayloadFrom::Parent);
    let third = dependant(&[second.id], PayloadFrom::Parent);
    let (left, right) = (
        Job::new("Left", Value::Null),
        Job::new("Right", Value::Null),
    );
    let merge = dependant(&[left.id, right.id], PayloadFrom::Parents);
    insert(
        store,
        vec![
            first.clone(),
            second.clone(),
            third.clone(),
            left.clone(),
            right.clone(),
            merge.clone(),
        ],
    )
    .await;
    for id in [second.id, third.id, merge.id] {
        assert_eq!(
            status(store, id).await.status,
            JobStatus::Waiting,
            "a dependant waits"
        );
    }
    let waiting = store
        .list(JobQuery::new().status(JobStatus::Waiting))
        .await
        .expect("list");
    assert_eq!(waiting.jobs.len(), 3, "listed as waiting");
    let counts = store.count_jobs().await.expect("count_jobs");
    assert!(
        counts.contains(&JobCount::new("Dependant", JobStatus::Waiting, 3)),
        "counted as waiting: {counts:?}"
    );

    // Only the jobs without parents are claimed; `First` doubles its `n`.
    let double = |job: &ClaimedJob| Outcome::Succeeded {
        result: match job.payload["n"].as_i64() {
            Some(n) => json!({"n": n * 2}),
            None => json!(job.job_type),
        },
    };
    let mut ran = run_due(store, double).await;
    ran.sort();
    let mut roots = vec![first.id, left.id, right.id];
    roots.sort();
    assert_eq!(ran, roots, "waiting jobs are not claimed");
    let released = status(store, second.id).await;
    assert_eq!(
        released.status,
        JobStatus::Queued,
        "released with its parent's success"
    );
    assert_eq!(
        released.payload,
        json!({"n": 2}),
        "with its parent's result"
    );
    assert_eq!(status(store, third.id).await.status, JobStatus::Waiting);
    let merged = status(store, merge.id).await;
    assert_eq!(merged.status, JobStatus::Queued);
    assert_eq!(
        merged.payload,
        json!(["Left", "Right"]),
        "the results, in parent order"
    );

    assert_eq!(
        run_due(store, double).await.len(),
        2,
        "the released jobs are claimed"
    );
    let last = status(store, third.id).await;
    assert_eq!(
        (last.status, last.payload),
        (JobStatus::Queued, json!({"n": 4}))
    );
    if let Some(events) = events.as_mut() {
        let mut released = Vec::new();
        while let Ok(event) = events.try_recv() {
            if let jobs_core::JobEvent::Released { id } = event {
                released.push(id);
            }
        }
        if released.len() < 3 {
            // Events of a database store arrive through its listener: give them a moment.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while released.len() < 3 {
                match tokio::time::timeout_at(deadline, events.recv()).await {
                    Ok(Ok(jobs_core::JobEvent::Released { id })) => released.push(id),
                    Ok(Ok(_)) => {}
                    other => panic!("expected three releases, got {released:?} then {other:?}"),
                }
            }
        }
        released.sort();
        let mut expected = vec![second.id, third.id, merge.id];
        expected.sort();
        assert_eq!(released, expected, "each release is announced");
    }
}

/// A parent that fails cancels its dependants (and theirs, down the graph), with an error
/// naming it; a dependant that runs anyway is queued once all its parents have finished.
/// Canceling a waiting job cancels it at once, and its dependants with it.
pub async fn a_failed_parent_cancels_its_dependants_unless_they_run_anyway(store: &dyn JobStore) {
    use jobs_core::{ParentFailure, PayloadFrom};
    if !store.supports_dependencies() {
        return;
    }
    let parent = Job::new("Parent", Value::Null);
    // In a queue of its own, so that `Parent` is claimed alone first.
    let mut other = Job::new("Other", Value::Null);
    other.queue = "conformance-other".into();
    let child = dependant(&[parent.id], PayloadFrom::Submitted);
    let grandchild = dependant(&[child.id], PayloadFrom::Submitted);
    let mut cleanup = dependant(&[parent.id, other.id], PayloadFrom::Parents);
    cleanup.on_parent_failure = ParentFailure::Run;
    let mut after_cleanup = dependant(&[cleanup.id], PayloadFrom::Submitted);
    after_cleanup.payload = json!({"kept": true});
    insert(
        store,
        vec![
            parent.clone(),
            other.clone(),
            child.clone(),
            grandchild.clone(),
            cleanup.clone(),
            after_cleanup.clone(),
        ],
    )
    .await;
    let ran = run_due(store, |_| Outcome::Failed {
        error: "broken".into(),
    })
    .await;
    assert_eq!(ran, vec![parent.id]);
    for id in [child.id, grandchild.id] {
        let job = status(store, id).await;
        assert_eq!(job.status, JobStatus::Canceled, "canceled down the graph");
        assert!(job.finished_at.is_some());
        assert!(job.error.is_some(), "its error says why");
    }
    let child_error = status(store, child.id).await.error.expect("an error");
    assert!(
        child_error.contains(&parent.id.to_string()),
        "{child_error}"
    );
    assert_eq!(
        status(store, cleanup.id).await.status,
        JobStatus::Waiting,
        "a job that runs anyway still waits for its other parent"
    );
    let claimed = store
        .claim(claim_request(
            "conformance-other",
            10,
            HOLDER,
            Duration::from_secs(30),
        ))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    let answer = complete(
        store,
        HOLDER,
        Completion {
            id: other.id,
            attempt: claimed[0].attempt,
            outcome: Outcome::Succeeded { result: json!(7) },
        },
    )
    .await;
    assert_eq!(answer, Completed::Applied(JobStatus::Succeeded));
    let cleanup_now = status(store, cleanup.id).await;
    assert_eq!(cleanup_now.status, JobStatus::Queued, "it runs anyway");
    assert_eq!(
        cleanup_now.payload,
        json!([null, 7]),
        "a failed parent has no result"
    );

    // A cancel of a waiting job takes effect at once, and reaches its dependants.
    assert_eq!(
        status(store, after_cleanup.id).await.status,
        JobStatus::Waiting
    );
    let waiting = dependant(&[cleanup.id], PayloadFrom::Submitted);
    let below = dependant(&[waiting.id], PayloadFrom::Submitted);
    insert(store, vec![waiting.clone(), below.clone()]).await;
    let outcome = store
        .request_cancel(waiting.id)
        .await
        .expect("request_cancel");
    assert!(
        matches!(outcome, CancelOutcome::CanceledQueued(_)),
        "{outcome:?}"
    );
    assert_eq!(status(store, waiting.id).await.status, JobStatus::Canceled);
    assert_eq!(status(store, below.id).await.status, JobStatus::Canceled);
    assert_eq!(
        status(store, after_cleanup.id).await.status,
        JobStatus::Waiting,
        "a sibling is left alone"
    );
}

/// A new job whose parents are stored already is settled as it is stored: queued with
/// their results when they succeeded, canceled when one failed. A parent that is not
/// stored fails the whole batch with `InvalidInput`, storing nothing.
pub async fn new_dependants_are_settled_against_stored_parents(store: &dyn JobStore) {
    use jobs_core::PayloadFrom;
    if !store.supports_dependencies() {
        return;
    }
    let done = Job::new("Done", Value::Null);
    let broken = Job::new("Broken", Value::Null);
    insert(store, vec![done.clone()]).await;
    run_due(store, |_| Outcome::Succeeded {
        result: json!("made"),
    })
    .await;
    insert(store, vec![broken.clone()]).await;
    run_due(store, |_| Outcome::Failed { error: "no".into() }).await;

    let after_done = dependant(&[done.id], PayloadFrom::Parent);
    let after_broken = dependant(&[broken.id], PayloadFrom::Submitted);
    insert(store, vec![after_done.clone(), after_broken.clone()]).await;
    let queued = status(store, after_done.id).await;
    assert_eq!(
        (queued.status, queued.payload),
        (JobStatus::Queued, json!("made"))
    );
    assert_eq!(
        status(store, after_broken.id).await.status,
        JobStatus::Canceled
    );

    let fine = Job::new("Fine", Value::Null);
    let orphan = dependant(&[JobId::new()], PayloadFrom::Submitted);
    let error = store
        .insert_many(vec![fine.clone(), orphan.clone()])
        .await
        .expect_err("a parent that is not stored");
    assert_eq!(error.kind(), StorageErrorKind::InvalidInput, "{error}");
    assert!(
        store.get(fine.id).await.expect("get").is_none(),
        "nothing of the batch is stored"
    );
    assert!(store.get(orphan.id).await.expect("get").is_none());
}

/// A batch: members and a callback that runs anyway with a [`BatchSummary`] of how they
/// ended, all in one flow. The flow's members are listed by [`JobQuery::flow`], a
/// member's dependants are read back, and retention deletes no member of the flow until
/// every one of them has finished (it deletes the other finished jobs).
///
/// [`BatchSummary`]: jobs_core::BatchSummary
pub async fn a_batch_callback_gets_the_summary_and_retention_keeps_the_flow(store: &dyn JobStore) {
    use jobs_core::{BatchSummary, FlowId, ParentFailure, PayloadFrom};
    if !store.supports_dependencies() {
        return;
    }
    let flow = FlowId::new();
    let members: Vec<Job> = (0..4)
        .map(|n| {
            let mut job = Job::new("Member", json!(n));
            job.flow = Some(flow);
            job
        })
        .collect();
    let ids: Vec<JobId> = members.iter().map(|job| job.id).collect();
    let mut callback = dependant(&ids, PayloadFrom::Batch);
    callback.on_parent_failure = ParentFailure::Run;
    callback.flow = Some(flow);
    let outsider = Job::new("Outsider", Value::Null);
    let mut batch = members.clone();
    batch.push(callback.clone());
    batch.push(outsider.clone());
    insert(store, batch).await;

    let listed = store
        .list(JobQuery::new().flow(flow))
        .await
        .expect("list a flow");
    let mut expected: Vec<JobId> = ids.iter().copied().chain([callback.id]).collect();
    expected.reverse();
    assert_eq!(
        listed.jobs.iter().map(|job| job.id).collect::<Vec<_>>(),
        expected,
        "a flow's members, newest first, and no other job"
    );
    assert!(listed.jobs.iter().all(|job| job.flow == Some(flow)));
    if let Some(operations) = store.operations() {
        assert_eq!(
            operations.dependants(ids[0]).await.expect("dependants"),
            vec![callback.id]
        );
        assert!(operations
            .dependants(callback.id)
            .await
            .expect("dependants")
            .is_empty());
    }

    // The last member is canceled before it runs; of the others one fails.
    store.request_cancel(ids[3]).await.expect("request_cancel");
    let ran = run_due(store, |job| {
        if job.id == ids[2] {
            Outcome::Failed {
                error: "bounced".into(),
            }
        } else {
            Outcome::Succeeded { result: json!(1) }
        }
    })
    .await;
    assert_eq!(ran.len(), 4, "three members and the outsider: {ran:?}");
    let released = status(store, callback.id).await;
    assert_eq!(released.status, JobStatus::Queued, "it runs anyway");
    let summary: BatchSummary =
        serde_json::from_value(released.payload.clone()).expect("a batch summary");
    assert_eq!(
        summary,
        BatchSummary {
            succeeded: vec![ids[0], ids[1]],
            failed: vec![ids[2]],
            canceled: vec![ids[3]],
        }
    );
    assert_eq!(released.payload["counts"]["total"], 4);

    let far = Timestamp::from_unix_micros(Timestamp::now().as_unix_micros() + 3_600_000_000);
    let pruned = store.prune_finished(far, 100).await.expect("prune");
    assert_eq!(
        pruned, 1,
        "only the outsider: the flow has an unfinished member"
    );
    for id in &ids {
        assert!(
            store.get(*id).await.expect("get").is_some(),
            "member {id} is kept"
        );
    }
    if let Some(operations) = store.operations() {
        assert_eq!(
            operations.count_finished_before(far).await.expect("count"),
            0,
            "what a purge would delete agrees with retention"
        );
    }
    run_due(store, |_| Outcome::Succeeded {
        result: json!("reported"),
    })
    .await;
    let pruned = store.prune_finished(far, 100).await.expect("prune");
    assert_eq!(pruned, 5, "the whole flow once every member has finished");
    assert!(store
        .list(JobQuery::new().flow(flow))
        .await
        .expect("list")
        .jobs
        .is_empty());
}

/// An operator's retry of a dependant canceled with its failed parent is refused while
/// the parent has not succeeded; once it has, the retry queues the dependant with the
/// parent's result as its payload.
pub async fn a_retried_dependant_waits_for_its_parents_and_takes_their_results(
    store: &dyn JobStore,
) {
    use jobs_core::{PayloadFrom, RetryOutcome};
    let Some(operations) = store.operations() else {
        return;
    };
    if !store.supports_dependencies() {
        return;
    }
    let parent = Job::new("Parent", Value::Null);
    let child = dependant(&[parent.id], PayloadFrom::Parent);
    insert(store, vec![parent.clone(), child.clone()]).await;
    run_due(store, |_| Outcome::Failed { error: "no".into() }).await;
    assert_eq!(status(store, child.id).await.status, JobStatus::Canceled);

    let refused = operations.retry_many(&[child.id]).await.expect("retry");
    assert_eq!(refused, vec![RetryOutcome::ParentsNotDone]);
    assert_eq!(
        status(store, child.id).await.status,
        JobStatus::Canceled,
        "a refused retry changes nothing"
    );

    let retried = operations.retry_many(&[parent.id]).await.expect("retry");
    assert!(
        matches!(retried[0], RetryOutcome::Retried(_)),
        "{retried:?}"
    );
    run_due(store, |_| Outcome::Succeeded {
        result: json!({"made": true}),
    })
    .await;
    let retried = operations.retry_many(&[child.id]).await.expect("retry");
    assert!(
        matches!(retried[0], RetryOutcome::Retried(_)),
        "{retried:?}"
    );
    let queued = status(store, child.id).await;
    assert_eq!(
        (queued.status, queued.payload),
        (JobStatus::Queued, json!({"made": true}))
    );
}

/// A job's trace parent (W3C `traceparent`) is stored as given, read back by `get`, and
/// handed to the worker with the claim, so that the execution continues the submitter's
/// trace in whichever process claims it; a job without one has none. The job of a
/// periodic tick keeps its trace parent too.
pub async fn trace_parents_are_kept_and_handed_to_the_claim(store: &dyn JobStore) {
    let parent: jobs_core::TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        .parse()
        .expect("a traceparent");
    let mut traced = Job::new("Traced", Value::Null);
    traced.trace_parent = Some(parent);
    let untraced = Job::new("Untraced", Value::Null);
    insert(store, vec![traced.clone(), untraced.clone()]).await;
    assert_eq!(status(store, traced.id).await.trace_parent, Some(parent));
    assert_eq!(status(store, untraced.id).await.trace_parent, None);
    let claimed = claim(store, 10, HOLDER, Duration::from_secs(30)).await;
    let parent_of = |id: JobId| {
        claimed
            .iter()
            .find(|job| job.id == id)
            .map(|job| job.trace_parent)
            .expect("the job is claimed")
    };
    assert_eq!(parent_of(traced.id), Some(parent), "the claim carries it");
    assert_eq!(parent_of(untraced.id), None);
    if let Some(ticks) = store.ticks() {
        let mut tick_job = Job::new("Tick", Value::Null);
        tick_job.trace_parent = Some(parent);
        let at = tick_job.created_at;
        tick_job.run_at = at;
        assert!(ticks
            .insert_tick(tick_job.clone(), "traced-schedule", at)
            .await
            .expect("insert_tick"));
        assert_eq!(status(store, tick_job.id).await.trace_parent, Some(parent));
    }
}

/// A store with notifications announces `submitted` for each job it stores (and for no
/// job whose unique key was held), and carries published events to subscribers.
pub async fn a_store_with_notifications_announces_its_inserts(store: &dyn JobStore) {
    let Some(notifications) = store.notifications() else {
        return;
    };
    let mut events = notifications.subscribe();
    let job = Job::new("T", Value::Null);
    insert(store, vec![job.clone()]).await;
    let published = jobs_core::JobEvent::Started {
        id: job.id,
        attempt: 1,
    };
    notifications.publish(vec![published.clone()]).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Ok(event)) if event.job_id() == Some(job.id) => seen.push(event),
            Ok(Ok(_)) => {}
            other => panic!("expected the job's events, got {other:?} after {seen:?}"),
        }
    }
    assert_eq!(
        seen,
        vec![
            jobs_core::JobEvent::Submitted {
                id: job.id,
                job_type: "T".into()
            },
            published
        ],
        "the insert's own event first, then what was published"
    );
}

/// Claims hand out each job once, by priority then submit order, and move it to
/// `Running` at its next attempt.
pub async fn claims_are_exclusive_ordered_and_counted(store: &dyn JobStore) {
    let lease = Duration::from_secs(30);
    let mut jobs: Vec<Job> = (0..6).map(|_| Job::new("T", Value::Null)).collect();
    jobs[4].priority = 5;
    let ids: Vec<JobId> = jobs.iter().map(|job| job.id).collect();
    insert(store, jobs).await;
    let first = claim(store, 3, HOLDER, lease).await;
    let second = claim(store, 10, OTHER, lease).await;
    let order: Vec<JobId> = first.iter().chain(&second).map(|job| job.id).collect();
    assert_eq!(
        order,
        vec![ids[4], ids[0], ids[1], ids[2], ids[3], ids[5]],
        "claims go by priority, then submit order, and never hand out a job twice"
    );
    assert!(first.iter().chain(&second).all(|job| job.attempt == 1));
    assert!(
        claim(store, 10, HOLDER, lease).await.is_empty(),
        "nothing left"
    );
    let running = status(store, ids[0]).await;
    assert_eq!((running.status, running.attempt), (JobStatus::Running, 1));
    assert!(running.started_at.is_some());
    let other_queue = store
        .claim(claim_request("elsewhere", 10, HOLDER, lease))
        .await
        .unwrap();
    assert!(
        other_queue.is_empty(),
        "a claim takes only its own queue's jobs"
    );
}

/// A completion applies only to the attempt and holder it names.
pub async fn completions_are_fenced_by_attempt_and_holder(store: &dyn JobStore) {
    let job = Job::new("T", Value::Null);
    let id = job.id;
    insert(store, vec![job]).await;
    let claimed = claim(store, 1, HOLDER, Duration::from_secs(30)).await;
    assert_eq!(claimed.len(), 1);
    let done = |attempt| Completion {
        id,
        attempt,
        outcome: Outcome::Succeeded { result: json!(1) },
    };
    assert_eq!(
        complete(store, OTHER, done(1)).await,
        Completed::NotHeld,
        "another holder"
    );
    assert_eq!(
        complete(store, HOLDER, done(2)).await,
        Completed::NotHeld,
        "another attempt"
    );
    assert_eq!(
        complete(store, HOLDER, done(1)).await,
        Completed::Applied(JobStatus::Succeeded)
    );
    assert_eq!(
        complete(store, HOLDER, done(1)).await,
        Completed::NotHeld,
        "a job finishes once"
    );
    let many = store
        .complete_many(HOLDER, &[done(1), done(1)])
        .await
        .unwrap();
    assert_eq!(
        many,
        vec![Completed::NotHeld, Completed::NotHeld],
        "answers in order"
    );
}

/// A retry, snooze or release of a job whose cancel was requested ends it `Canceled`.
pub async fn requeues_of_a_job_asked_to_stop_end_it_canceled(store: &dyn JobStore) {
    for outcome in [
        Outcome::Retry {
            error: "flaky".into(),
            run_at: Timestamp::now(),
        },
        Outcome::Snooze {
            run_at: Timestamp::now(),
        },
        Outcome::Release,
    ] {
        let job = Job::new("T", Value::Null);
        let id = job.id;
        insert(store, vec![job]).await;
        claim(store, 1, HOLDER, Duration::from_secs(30)).await;
        assert!(matches!(
            store.request_cancel(id).await.unwrap(),
            CancelOutcome::Requested(ref job) if job.cancel_requested
        ));
        let answer = complete(
            store,
            HOLDER,
            Completion {
                id,
                attempt: 1,
                outcome,
            },
        )
        .await;
        assert_eq!(answer, Completed::Applied(JobStatus::Canceled));
        let stored = status(store, id).await;
        assert_eq!(stored.status, JobStatus::Canceled);
        assert!(stored.finished_at.is_some());
    }
}

/// A released claim goes back to `Queued` at the attempt before the claim; a retry
/// keeps the error and waits for its time.
pub async fn a_released_claim_is_queued_as_if_never_claimed(store: &dyn JobStore) {
    let job = Job::new("T", Value::Null);
    let id = job.id;
    insert(store, vec![job]).await;
    claim(store, 1, HOLDER, Duration::from_secs(30)).await;
    let release = Completion {
        id,
        attempt: 1,
        outcome: Outcome::Release,
    };
    assert_eq!(
        complete(store, HOLDER, release).await,
        Completed::Applied(JobStatus::Queued)
    );
    let stored = status(store, id).await;
    assert_eq!(
        (stored.status, stored.attempt, stored.started_at),
        (JobStatus::Queued, 0, None)
    );
    assert!(stored.errors.is_empty(), "a release counts no failure");
    let again = claim(store, 1, OTHER, Duration::from_secs(30)).await;
    assert_eq!((again[0].id, again[0].attempt), (id, 1));
    let later = Timestamp::from_unix_micros(Timestamp::now().as_unix_micros() + 3_600_000_000);
    let retry = Completion {
        id,
        attempt: 1,
        outcome: Outcome::Retry {
            error: "boom".into(),
            run_at: later,
        },
    };
    assert_eq!(
        complete(store, OTHER, retry).await,
        Completed::Applied(JobStatus::Queued)
    );
    let stored = status(store, id).await;
    assert_eq!(stored.errors.len(), 1, "the retry keeps its error");
    assert_eq!(stored.errors[0].message, "boom");
    assert!(
        claim(store, 1, HOLDER, Duration::from_secs(30))
            .await
            .is_empty(),
        "not due yet"
    );
}

/// Renewals keep a lease; a lease that ran out is never renewed and is found expired.
pub async fn leases_renew_until_they_run_out_then_are_found_expired(store: &dyn JobStore) {
    let jobs: Vec<Job> = (0..2).map(|_| Job::new("T", Value::Null)).collect();
    let ids: Vec<JobId> = jobs.iter().map(|job| job.id).collect();
    insert(store, jobs).await;
    let short = Duration::from_millis(300);
    let claimed = claim(store, 2, HOLDER, short).await;
    assert_eq!(claimed.len(), 2);
    let leases: Vec<Lease> = ids
        .iter()
        .map(|id| Lease {
            id: *id,
            attempt: 1,
        })
        .collect();
    let renewed = store
        .renew(HOLDER, &leases, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        renewed,
        vec![
            Renewal::Held {
                cancel_requested: false
            };
            2
        ]
    );
    let wrong = store
        .renew(OTHER, &leases, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(wrong, vec![Renewal::Lost; 2], "only the holder renews");
    // Let the first run out; keep the second.
    let first = [leases[0]];
    store
        .renew(HOLDER, &[leases[1]], Duration::from_secs(30))
        .await
        .unwrap();
    // Shorten the first by renewing it with a tiny lease, then wait past it.
    store
        .renew(HOLDER, &first, Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        store
            .renew(HOLDER, &first, Duration::from_secs(30))
            .await
            .unwrap(),
        vec![Renewal::Lost],
        "an expired lease is never renewed"
    );
    let expired = store.expired(10).await.unwrap();
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!((expired[0].id, expired[0].attempt), (ids[0], 1));
    assert_eq!(expired[0].holder, HOLDER);
    // The rescue completes it with the old holder's fence.
    let rescue = Completion {
        id: ids[0],
        attempt: 1,
        outcome: Outcome::Retry {
            error: "lost".into(),
            run_at: Timestamp::now(),
        },
    };
    assert_eq!(
        complete(store, HOLDER, rescue).await,
        Completed::Applied(JobStatus::Queued)
    );
    assert!(store.expired(10).await.unwrap().is_empty());
}

/// Results are stored apart and shown only for `Succeeded` jobs.
pub async fn results_are_kept_apart_and_shown_only_for_succeeded_jobs(store: &dyn JobStore) {
    let jobs: Vec<Job> = (0..3).map(|_| Job::new("T", Value::Null)).collect();
    let ids: Vec<JobId> = jobs.iter().map(|job| job.id).collect();
    insert(store, jobs).await;
    claim(store, 3, HOLDER, Duration::from_secs(30)).await;
    assert_eq!(
        store.get_result(ids[0]).await.unwrap(),
        None,
        "none while running"
    );
    let outcomes = [
        Outcome::Succeeded {
            result: json!({"ok": true}),
        },
        Outcome::Succeeded {
            result: Value::Null,
        },
        Outcome::Failed { error: "no".into() },
    ];
    let completions: Vec<Completion> = ids
        .iter()
        .zip(outcomes)
        .map(|(id, outcome)| Completion {
            id: *id,
            attempt: 1,
            outcome,
        })
        .collect();
    let answers = store.complete_many(HOLDER, &completions).await.unwrap();
    assert_eq!(
        answers,
        vec![
            Completed::Applied(JobStatus::Succeeded),
            Completed::Applied(JobStatus::Succeeded),
            Completed::Applied(JobStatus::Failed)
        ]
    );
    assert_eq!(
        store.get_result(ids[0]).await.unwrap(),
        Some(json!({"ok": true}))
    );
    assert_eq!(store.get_result(ids[1]).await.unwrap(), Some(Value::Null));
    assert_eq!(store.get_result(ids[2]).await.unwrap(), None);
    assert_eq!(store.get_result(JobId::new()).await.unwrap(), None);
    let failed = status(store, ids[2]).await;
    assert_eq!(failed.error.as_deref(), Some("no"));
    assert_eq!(failed.errors.len(), 1);
}

/// A job that fails many times keeps the error of its first attempt and of its latest
/// ones, [`Job::KEPT_ERRORS`] in all, each message cut to
/// [`AttemptError::MAX_MESSAGE_BYTES`](jobs_core::AttemptError::MAX_MESSAGE_BYTES); its
/// failures are all counted, and its attempts run out by that count.
pub async fn the_error_history_keeps_the_first_and_latest_errors_cut_short(store: &dyn JobStore) {
    let attempts = Job::KEPT_ERRORS as u32 + 10;
    let mut job = Job::new("T", Value::Null);
    job.max_attempts = attempts;
    let id = job.id;
    insert(store, vec![job]).await;
    let long = "x".repeat(3 * jobs_core::AttemptError::MAX_MESSAGE_BYTES);
    for attempt in 1..=attempts {
        let claimed = claim(store, 1, HOLDER, Duration::from_secs(30)).await;
        assert_eq!(claimed.len(), 1, "attempt {attempt} is claimed");
        assert_eq!(
            (claimed[0].attempt, claimed[0].failures),
            (attempt, attempt - 1),
            "every failure counts, kept or not"
        );
        assert_eq!(claimed[0].may_retry(), attempt < attempts);
        let error = format!("failure {attempt}: {long}");
        let outcome = if attempt < attempts {
            Outcome::Retry {
                error,
                run_at: Timestamp::now(),
            }
        } else {
            Outcome::Failed { error }
        };
        let completion = Completion {
            id,
            attempt,
            outcome,
        };
        complete(store, HOLDER, completion).await;
    }
    let failed = status(store, id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.failures, attempts);
    let kept: Vec<u32> = failed.errors.iter().map(|error| error.attempt).collect();
    let mut expected = vec![1];
    expected.extend(attempts + 2 - Job::KEPT_ERRORS as u32..=attempts);
    assert_eq!(kept, expected, "the first error and the latest ones");
    for error in &failed.errors {
        assert!(
            error.message.len() <= jobs_core::AttemptError::MAX_MESSAGE_BYTES
                && error.message.ends_with('…')
                && error
                    .message
                    .starts_with(&format!("failure {}: xxx", error.attempt)),
            "attempt {}'s message is cut: {} bytes",
            error.attempt,
            error.message.len()
        );
    }
    let last = failed.error.expect("a failed job has its error");
    assert!(last.len() <= jobs_core::AttemptError::MAX_MESSAGE_BYTES);
    assert!(last.starts_with(&format!("failure {attempts}: ")));
}

/// A batch with a stored id stores nothing; a held unique key answers its holder.
pub async fn inserts_are_atomic_and_unique_keys_admit_one_active_job(store: &dyn JobStore) {
    let first = Job::new("T", Value::Null);
    insert(store, vec![first.clone()]).await;
    let fresh = Job::new("T", Value::Null);
    let error = store
        .insert_many(vec![fresh.clone(), first.clone()])
        .await
        .expect_err("a stored id is refused");
    assert_eq!(error.kind(), StorageErrorKind::Conflict, "{error}");
    assert!(
        store.get(fresh.id).await.unwrap().is_none(),
        "a refused batch stores nothing"
    );
    if !store.supports_unique_keys() {
        return;
    }
    let keyed = |key: &str| {
        let mut job = Job::new("Keyed", Value::Null);
        job.unique_key = Some(key.to_owned());
        job
    };
    let holder = keyed("k");
    let answers = insert(store, vec![holder.clone(), keyed("k"), keyed("other")]).await;
    assert_eq!(answers[0], Inserted::Stored);
    assert!(matches!(&answers[1], Inserted::Existing(job) if job.id == holder.id));
    assert_eq!(answers[2], Inserted::Stored);
    store.request_cancel(holder.id).await.unwrap();
    let again = insert(store, vec![keyed("k")]).await;
    assert_eq!(
        again,
        vec![Inserted::Stored],
        "a finished job frees its key"
    );
}

/// Cancel cancels queued jobs and flags running ones; progress is kept only for the
/// running attempt.
pub async fn cancel_and_progress_follow_the_status(store: &dyn JobStore) {
    let running = Job::new("T", Value::Null);
    let queued = Job::new("T", Value::Null);
    let (queued_id, running_id) = (queued.id, running.id);
    insert(store, vec![running, queued]).await;
    claim(store, 1, HOLDER, Duration::from_secs(30)).await;
    assert!(matches!(
        store.request_cancel(queued_id).await.unwrap(),
        CancelOutcome::CanceledQueued(ref job) if job.status == JobStatus::Canceled
    ));
    assert_eq!(
        store.request_cancel(queued_id).await.unwrap(),
        CancelOutcome::AlreadyFinished(JobStatus::Canceled)
    );
    assert!(
        claim(store, 5, HOLDER, Duration::from_secs(30))
            .await
            .is_empty(),
        "a canceled job is never claimed"
    );
    assert_eq!(
        store
            .update_progress(running_id, 2, Progress::new(5, ""))
            .await
            .unwrap(),
        ProgressAck::NotRunning
    );
    assert_eq!(
        store
            .update_progress(running_id, 1, Progress::new(50, "half"))
            .await
            .unwrap(),
        ProgressAck::Stored {
            cancel_requested: false
        }
    );
    store.request_cancel(running_id).await.unwrap();
    assert_eq!(
        store
            .update_progress(running_id, 1, Progress::new(60, ""))
            .await
            .unwrap(),
        ProgressAck::Stored {
            cancel_requested: true
        }
    );
    let renewed = store
        .renew(
            HOLDER,
            &[Lease {
                id: running_id,
                attempt: 1,
            }],
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(
        renewed,
        vec![Renewal::Held {
            cancel_requested: true
        }]
    );
    assert_eq!(status(store, running_id).await.status, JobStatus::Running);
    assert_eq!(
        store.request_cancel(JobId::new()).await.unwrap(),
        CancelOutcome::NotFound
    );
}

/// A job due later is not claimed before its time; `next_due` says how long to wait.
pub async fn scheduled_jobs_wait_and_next_due_says_how_long(store: &dyn JobStore) {
    assert_eq!(
        store.next_due(Job::DEFAULT_QUEUE).await.unwrap(),
        None,
        "nothing queued"
    );
    let mut later = Job::new("T", Value::Null);
    later.run_at = Timestamp::from_unix_micros(later.created_at.as_unix_micros() + 400_000);
    insert(store, vec![later.clone()]).await;
    let wait = store
        .next_due(Job::DEFAULT_QUEUE)
        .await
        .unwrap()
        .expect("a job is queued");
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(400),
        "{wait:?}"
    );
    assert!(claim(store, 1, HOLDER, Duration::from_secs(30))
        .await
        .is_empty());
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    assert_eq!(
        store.next_due(Job::DEFAULT_QUEUE).await.unwrap(),
        Some(Duration::ZERO)
    );
    assert_eq!(
        claim(store, 1, HOLDER, Duration::from_secs(30)).await[0].id,
        later.id
    );
    if let Some(ticks) = store.ticks() {
        let tick = Timestamp::from_unix_micros(1_900_000_000_000_000);
        assert!(ticks
            .insert_tick(Job::new("T", Value::Null), "every", tick)
            .await
            .unwrap());
        assert!(
            !ticks
                .insert_tick(Job::new("T", Value::Null), "every", tick)
                .await
                .unwrap(),
            "a tick stores one job"
        );
    }
}

/// Listing is newest first with filters; counts follow every change; pruning removes only
/// finished jobs, as many as a store with operations counts beforehand.
pub async fn listing_counting_and_pruning_agree(store: &dyn JobStore) {
    let jobs: Vec<Job> = (0..5)
        .map(|i| Job::new(if i % 2 == 0 { "Even" } else { "Odd" }, Value::Null))
        .collect();
    let ids: Vec<JobId> = jobs.iter().map(|job| job.id).collect();
    insert(store, jobs).await;
    let page = store.list(JobQuery::new().limit(2)).await.unwrap();
    assert_eq!(
        page.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[4], ids[3]]
    );
    let rest: JobPage = store
        .list(
            JobQuery::new()
                .limit(10)
                .cursor(page.next_cursor.expect("more")),
        )
        .await
        .unwrap();
    assert_eq!(rest.jobs.len(), 3);
    assert_eq!(rest.next_cursor, None);
    store.request_cancel(ids[0]).await.unwrap();
    let counts = store.count_jobs().await.unwrap();
    assert_eq!(
        counts,
        vec![
            JobCount::new("Even", JobStatus::Queued, 2),
            JobCount::new("Even", JobStatus::Canceled, 1),
            JobCount::new("Odd", JobStatus::Queued, 2),
        ]
    );
    let evens = store
        .list(JobQuery::new().job_type("Even").status(JobStatus::Queued))
        .await
        .unwrap();
    assert_eq!(
        evens.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[4], ids[2]]
    );
    let future = Timestamp::from_unix_micros(Timestamp::now().as_unix_micros() + 60_000_000);
    let past = Timestamp::from_unix_micros(Timestamp::now().as_unix_micros() - 60_000_000);
    if let Some(operations) = store.operations() {
        assert_eq!(operations.count_finished_before(future).await.unwrap(), 1);
        assert_eq!(
            operations.count_finished_before(past).await.unwrap(),
            0,
            "the job finished after `past`"
        );
    }
    assert_eq!(
        store.prune_finished(future, 100).await.unwrap(),
        1,
        "only the finished job"
    );
    assert!(store.get(ids[0]).await.unwrap().is_none());
    if let Some(operations) = store.operations() {
        assert_eq!(operations.count_finished_before(future).await.unwrap(), 0);
    }
    assert_eq!(store.list(JobQuery::new()).await.unwrap().jobs.len(), 4);
}

/// A store with [`Operations`](jobs_core::Operations) retries only `Failed` and
/// `Canceled` jobs (keeping their attempts and errors, each error with its attempt's
/// start), never over an active job's unique key, and deletes only finished jobs, with
/// their results.
pub async fn operators_retry_and_delete_finished_jobs_only(store: &dyn JobStore) {
    let Some(operations) = store.operations() else {
        return;
    };
    let failed = Job::new("T", Value::Null);
    let mut canceled = Job::new("T", Value::Null);
    canceled.unique_key = Some("k".into());
    let succeeded = Job::new("T", Value::Null);
    let mut blocked = Job::new("T", Value::Null);
    blocked.unique_key = Some("held".into());
    let ids = [failed.id, canceled.id, succeeded.id, blocked.id];
    insert(store, vec![failed, canceled, succeeded, blocked]).await;
    assert_eq!(
        claim(store, 10, HOLDER, Duration::from_secs(60))
            .await
            .len(),
        4
    );
    let end = |id, outcome| Completion {
        id,
        attempt: 1,
        outcome,
    };
    let boom = || Outcome::Failed {
        error: "boom".into(),
    };
    for completion in [
        end(ids[0], boom()),
        end(ids[1], Outcome::Canceled),
        end(ids[2], Outcome::Succeeded { result: json!(7) }),
        end(ids[3], boom()),
    ] {
        assert!(matches!(
            complete(store, HOLDER, completion).await,
            Completed::Applied(_)
        ));
    }
    // Another active job takes the blocked job's key.
    let mut holder = Job::new("T", Value::Null);
    holder.unique_key = Some("held".into());
    assert_eq!(insert(store, vec![holder]).await, vec![Inserted::Stored]);

    let unknown = JobId::new();
    let outcomes = operations
        .retry_many(&[ids[0], ids[1], ids[2], ids[3], unknown])
        .await
        .expect("retry_many");
    assert_eq!(outcomes.len(), 5, "one answer per id");
    let retried = match &outcomes[0] {
        jobs_core::RetryOutcome::Retried(job) => job.clone(),
        other => panic!("a failed job is retried, got {other:?}"),
    };
    assert_eq!(
        (retried.status, retried.attempt, retried.errors.len()),
        (JobStatus::Queued, 1, 1),
        "a retry keeps the attempt count and the errors"
    );
    assert_eq!((retried.error.clone(), retried.finished_at), (None, None));
    assert_eq!(retried.max_attempts, 2, "one more attempt than it had used");
    assert!(
        retried.errors[0].started_at.is_some(),
        "an attempt's error records when the attempt started"
    );
    assert!(matches!(outcomes[1], jobs_core::RetryOutcome::Retried(_)));
    assert_eq!(
        outcomes[2],
        jobs_core::RetryOutcome::NotRetryable(JobStatus::Succeeded)
    );
    assert_eq!(outcomes[3], jobs_core::RetryOutcome::KeyHeld);
    assert_eq!(outcomes[4], jobs_core::RetryOutcome::NotFound);
    assert_eq!(
        status(store, ids[3]).await.status,
        JobStatus::Failed,
        "left alone"
    );
    assert_eq!(
        status(store, ids[0]).await,
        *retried,
        "the answer is the stored job"
    );
    // The retried job with a key holds it again.
    let mut again = Job::new("T", Value::Null);
    again.unique_key = Some("k".into());
    assert!(
        matches!(&insert(store, vec![again]).await[0], Inserted::Existing(job) if job.id == ids[1]),
        "a retried job holds its unique key again"
    );
    // The retried jobs run again, at their next attempt.
    let claimed = claim(store, 10, HOLDER, Duration::from_secs(60)).await;
    let mut attempts: Vec<(JobId, u32)> = claimed.iter().map(|c| (c.id, c.attempt)).collect();
    attempts.sort();
    let mut expected = vec![(ids[0], 2), (ids[1], 2)];
    expected.sort();
    let holder_of_held: Vec<_> = attempts
        .iter()
        .filter(|(id, _)| !ids.contains(id))
        .cloned()
        .collect();
    attempts.retain(|(id, _)| ids.contains(id));
    assert_eq!(
        attempts, expected,
        "retried jobs are claimed at their next attempt"
    );
    assert_eq!(holder_of_held.len(), 1, "and the key's new holder");

    let outcomes = operations
        .delete_many(&[ids[2], ids[0], unknown])
        .await
        .expect("delete_many");
    assert_eq!(
        outcomes,
        vec![
            jobs_core::DeleteOutcome::Deleted,
            jobs_core::DeleteOutcome::NotFinished(JobStatus::Running),
            jobs_core::DeleteOutcome::NotFound,
        ]
    );
    assert!(
        store.get(ids[2]).await.unwrap().is_none(),
        "the deleted job is gone"
    );
    assert!(
        store.get_result(ids[2]).await.unwrap().is_none(),
        "with its result"
    );
    assert_eq!(status(store, ids[0]).await.status, JobStatus::Running);
}

/// A store with [`Operations`](jobs_core::Operations) counts each queue's due, scheduled
/// and running jobs, lists by queue, and counts finishes in the minute they happened.
pub async fn queue_counts_and_finishes_per_minute_add_up(store: &dyn JobStore) {
    let Some(operations) = store.operations() else {
        return;
    };
    let in_queue = |queue: &str| {
        let mut job = Job::new("T", Value::Null);
        job.queue = queue.to_owned();
        job
    };
    let later = Timestamp::from_unix_micros(Timestamp::now().as_unix_micros() + 3_600_000_000);
    let mut scheduled = in_queue("mail");
    scheduled.run_at = later;
    let jobs = vec![
        in_queue("mail"),
        in_queue("mail"),
        scheduled,
        in_queue("export"),
    ];
    let export = jobs[3].id;
    insert(store, jobs).await;
    let claimed = store
        .claim(claim_request("export", 5, HOLDER, Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let mut expected_mail = jobs_core::QueueCounts::new("mail");
    expected_mail.queued = 2;
    expected_mail.scheduled = 1;
    let mut expected_export = jobs_core::QueueCounts::new("export");
    expected_export.running = 1;
    assert_eq!(
        operations.queue_counts().await.unwrap(),
        vec![expected_export, expected_mail],
        "due, scheduled and running per queue, by name"
    );
    let mail = store.list(JobQuery::new().queue("mail")).await.unwrap();
    assert_eq!(mail.jobs.len(), 3, "a listing by queue");
    assert!(mail.jobs.iter().all(|job| job.queue == "mail"));
    let since = jobs_core::FinishedCount::minute_of(Timestamp::now());
    let done = complete(
        store,
        HOLDER,
        Completion {
            id: export,
            attempt: 1,
            outcome: Outcome::Succeeded {
                result: Value::Null,
            },
        },
    )
    .await;
    assert_eq!(done, Completed::Applied(JobStatus::Succeeded));
    let finished_at = status(store, export).await.finished_at.expect("finished");
    let counts = operations.finished_per_minute(since).await.unwrap();
    assert_eq!(
        counts,
        vec![jobs_core::FinishedCount::new(
            jobs_core::FinishedCount::minute_of(finished_at),
            "export",
            JobStatus::Succeeded,
            1
        )],
        "the finish, in its minute"
    );
    let next_hour = Timestamp::from_unix_micros(Timestamp::now().as_unix_micros() + 3_600_000_000);
    assert!(operations
        .finished_per_minute(next_hour)
        .await
        .unwrap()
        .is_empty());
}

/// A store with [`Operations`](jobs_core::Operations) keeps one heartbeat per worker,
/// refreshed in place (its start kept), shown when recent enough, and forgotten on
/// request.
pub async fn worker_heartbeats_are_recorded_refreshed_and_forgotten(store: &dyn JobStore) {
    let Some(operations) = store.operations() else {
        return;
    };
    let queues = vec![jobs_core::QueueWorkers::new("default", 4)];
    let mut fresh = jobs_core::WorkerInfo::new("w-fresh", "host-a", 10, queues.clone());
    let now = Timestamp::now().as_unix_micros();
    // Whole microseconds, as every store keeps them.
    fresh.started_at = Timestamp::from_unix_micros(now - 5_000_000);
    fresh.last_seen = Timestamp::from_unix_micros(now);
    let mut old = jobs_core::WorkerInfo::new("w-old", "host-b", 11, queues);
    old.started_at = Timestamp::from_unix_micros(now - 7_200_000_000);
    old.last_seen = Timestamp::from_unix_micros(now - 3_600_000_000);
    operations.record_worker(&fresh).await.unwrap();
    operations.record_worker(&old).await.unwrap();
    let recent = Timestamp::from_unix_micros(now - 60_000_000);
    assert_eq!(
        operations.workers(recent).await.unwrap(),
        vec![fresh.clone()]
    );
    let all = Timestamp::from_unix_micros(now - 86_000_000_000);
    assert_eq!(operations.workers(all).await.unwrap().len(), 2);
    let mut beat = fresh.clone();
    beat.started_at = Timestamp::from_unix_micros(now);
    beat.last_seen = Timestamp::from_unix_micros(now + 10_000_000);
    operations.record_worker(&beat).await.unwrap();
    let seen = operations.workers(recent).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].last_seen, beat.last_seen,
        "a beat refreshes the record"
    );
    assert_eq!(seen[0].started_at, fresh.started_at, "and keeps its start");
    operations.remove_worker("w-fresh").await.unwrap();
    operations.remove_worker("w-old").await.unwrap();
    assert!(operations.workers(all).await.unwrap().is_empty());
}

/// A store with [`Operations`](jobs_core::Operations) claims nothing from a paused queue
/// (and says nothing is due there) until it is resumed, leaves other queues alone, keeps
/// jobs claimed before the pause, and answers whether each call changed anything.
pub async fn a_paused_queue_gives_no_jobs_until_resumed(store: &dyn JobStore) {
    let Some(operations) = store.operations() else {
        return;
    };
    let mut jobs: Vec<Job> = (0..3).map(|_| Job::new("T", Value::Null)).collect();
    jobs[2].queue = "other".to_owned();
    insert(store, jobs.clone()).await;
    let lease = Duration::from_secs(30);
    let early = claim(store, 1, HOLDER, lease).await;
    assert_eq!(early.len(), 1);
    assert!(
        operations.set_paused("default", true).await.unwrap(),
        "paused"
    );
    assert!(
        !operations.set_paused("default", true).await.unwrap(),
        "pausing a paused queue changes nothing"
    );
    assert!(
        operations.set_paused("empty", true).await.unwrap(),
        "a queue without jobs"
    );
    let paused = operations.paused_queues().await.unwrap();
    let names: Vec<&str> = paused.iter().map(|queue| queue.queue.as_str()).collect();
    assert_eq!(names, ["default", "empty"], "by name");
    assert!(
        claim(store, 10, OTHER, lease).await.is_empty(),
        "a paused queue gives no jobs"
    );
    assert_eq!(
        store.next_due("default").await.unwrap(),
        None,
        "nothing is due there"
    );
    let other = store
        .claim(claim_request("other", 10, OTHER, lease))
        .await
        .unwrap();
    assert_eq!(other.len(), 1, "other queues are served");
    assert_eq!(
        status(store, early[0].id).await.status,
        JobStatus::Running,
        "a job claimed before the pause keeps running"
    );
    assert!(
        operations.set_paused("default", false).await.unwrap(),
        "resumed"
    );
    assert!(
        !operations.set_paused("default", false).await.unwrap(),
        "resuming a running queue changes nothing"
    );
    assert_eq!(
        store.next_due("default").await.unwrap(),
        Some(Duration::ZERO)
    );
    let later = claim(store, 10, OTHER, lease).await;
    assert_eq!(later.len(), 1, "the queued job is claimed once resumed");
    assert_eq!(later[0].id, jobs[1].id);
    let paused = operations.paused_queues().await.unwrap();
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0].queue, "empty");
}

/// A store that [supports rate limits](JobStore::supports_rate_limits) claims no job
/// beyond a covering rule's budget, passing over held-back jobs for later ones it may
/// start (in claim order), shares a budget between claims, and gives a rule its whole
/// budget again once its window has passed.
pub async fn claims_spend_rate_budgets_and_wait_for_the_next_window(store: &dyn JobStore) {
    if !store.supports_rate_limits() {
        return;
    }
    use jobs_core::{RateRule, RateScope};
    let rule = |scope, rate: &str| RateRule::new(scope, rate.parse().unwrap());
    let lease = Duration::from_secs(30);
    let limited = |queue, rates| ClaimRequest {
        rates,
        ..claim_request(queue, 100, HOLDER, lease)
    };

    // A type's budget: two of five `Mail` jobs start, the `Other` jobs between and after
    // them are not held up.
    let types = [
        "Mail", "Other", "Mail", "Other", "Mail", "Mail", "Other", "Mail",
    ];
    let jobs: Vec<Job> = types.iter().map(|t| Job::new(*t, Value::Null)).collect();
    insert(store, jobs.clone()).await;
    let mail = [rule(RateScope::JobType("Mail".into()), "2/1h")];
    let claimed = store.claim(limited("default", &mail)).await.unwrap();
    let ids: Vec<JobId> = claimed.iter().map(|job| job.id).collect();
    let expected: Vec<JobId> = [0, 1, 2, 3, 6].iter().map(|&at| jobs[at].id).collect();
    assert_eq!(
        ids, expected,
        "two Mail jobs and every Other job, in claim order"
    );
    assert!(
        store
            .claim(limited("default", &mail))
            .await
            .unwrap()
            .is_empty(),
        "the budget is spent for this window"
    );
    let unlimited = claim(store, 100, OTHER, lease).await;
    assert_eq!(
        unlimited.len(),
        3,
        "a claim without the rule takes the rest"
    );

    // A queue's budget, shared by every claim that names the rule.
    let queued: Vec<Job> = (0..4)
        .map(|_| {
            let mut job = Job::new("T", Value::Null);
            job.queue = "limited".to_owned();
            job
        })
        .collect();
    insert(store, queued.clone()).await;
    let queue = [rule(RateScope::Queue("limited".into()), "3/1h")];
    let first = ClaimRequest {
        limit: 2,
        ..limited("limited", &queue)
    };
    assert_eq!(store.claim(first).await.unwrap().len(), 2);
    let second = store.claim(limited("limited", &queue)).await.unwrap();
    assert_eq!(second.len(), 1, "what the first claim left of the budget");
    assert_eq!(second[0].id, queued[2].id);
    assert!(store
        .claim(limited("limited", &queue))
        .await
        .unwrap()
        .is_empty());

    // A short window: spent, then whole again once it has passed.
    let short: Vec<Job> = (0..4).map(|_| Job::new("Short", Value::Null)).collect();
    insert(store, short).await;
    let rates = [rule(RateScope::JobType("Short".into()), "2/300ms")];
    let opened = std::time::Instant::now();
    assert_eq!(
        store.claim(limited("default", &rates)).await.unwrap().len(),
        2
    );
    assert!(store
        .claim(limited("default", &rates))
        .await
        .unwrap()
        .is_empty());
    let deadline = opened + Duration::from_secs(10);
    let refilled = loop {
        let claimed = store.claim(limited("default", &rates)).await.unwrap();
        if !claimed.is_empty() {
            break claimed;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the budget never refilled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(refilled.len(), 2, "a new window gives the whole budget");
    assert!(
        opened.elapsed() >= Duration::from_millis(250),
        "not before the window passed: {:?}",
        opened.elapsed()
    );
}

/// A store that [supports concurrency keys](JobStore::supports_concurrency_keys) claims
/// no job while its key's limit of jobs run (in any queue, of any type), takes the jobs
/// of one key in claim order, passes over a busy key's jobs for the others, and frees a
/// place when a job of the key finishes.
pub async fn claims_run_at_most_the_limit_of_a_concurrency_key_in_order(store: &dyn JobStore) {
    if !store.supports_concurrency_keys() {
        return;
    }
    let keyed = |key: &str, limit: u32| {
        let mut job = Job::new("Keyed", Value::Null);
        job.concurrency_key = Some(key.to_owned());
        job.concurrency_limit = Some(limit);
        job
    };
    let jobs = vec![
        keyed("a", 1),
        keyed("b", 2),
        keyed("a", 1),
        keyed("b", 2),
        Job::new("Free", Value::Null),
        keyed("a", 1),
        keyed("b", 2),
    ];
    insert(store, jobs.clone()).await;
    let lease = Duration::from_secs(30);
    let ids = |claimed: &[ClaimedJob]| {
        let mut ids: Vec<JobId> = claimed.iter().map(|job| job.id).collect();
        ids.sort();
        ids
    };
    let first = claim(store, 100, HOLDER, lease).await;
    let mut expected = vec![jobs[0].id, jobs[1].id, jobs[3].id, jobs[4].id];
    expected.sort();
    assert_eq!(ids(&first), expected, "one of a, two of b, the free job");
    assert!(
        claim(store, 100, OTHER, lease).await.is_empty(),
        "the keys are busy"
    );
    let stored = status(store, jobs[0].id).await;
    assert_eq!(
        (stored.concurrency_key.as_deref(), stored.concurrency_limit),
        (Some("a"), Some(1)),
        "the key and its limit are kept"
    );

    // A job of a busy key in another queue waits too.
    let mut elsewhere = keyed("a", 1);
    elsewhere.queue = "elsewhere".to_owned();
    insert(store, vec![elsewhere.clone()]).await;
    let other_queue = store
        .claim(claim_request("elsewhere", 10, OTHER, lease))
        .await
        .unwrap();
    assert!(other_queue.is_empty(), "key a runs in the default queue");

    // The running job of `a` ends: the next `a` in order starts, and only it.
    let done = Completion {
        id: jobs[0].id,
        attempt: 1,
        outcome: Outcome::Succeeded {
            result: Value::Null,
        },
    };
    complete(store, HOLDER, done).await;
    let next = claim(store, 100, OTHER, lease).await;
    assert_eq!(
        ids(&next),
        vec![jobs[2].id],
        "the second a, before the third"
    );

    // A busy key's backlog does not hold up the queue: with jobs of key `hot` first, a
    // claim of two still finds the others.
    let mut later: Vec<Job> = (0..10).map(|_| keyed("hot", 1)).collect();
    later.push(keyed("cold", 1));
    later.push(Job::new("Free", Value::Null));
    for job in &mut later {
        job.queue = "backlog".to_owned();
    }
    insert(store, later.clone()).await;
    let two = |holder| claim_request("backlog", 2, holder, lease);
    let first = store.claim(two(HOLDER)).await.unwrap();
    let mut expected = vec![later[0].id, later[10].id];
    expected.sort();
    assert_eq!(
        ids(&first),
        expected,
        "the first hot job, and the cold one past the others"
    );
    let second = store.claim(two(OTHER)).await.unwrap();
    assert_eq!(
        ids(&second),
        vec![later[11].id],
        "the free job past the busy keys"
    );

    // A job held back by a rate limit keeps its key's later jobs (of another type) behind
    // it.
    if store.supports_rate_limits() {
        let rates = [jobs_core::RateRule::new(
            jobs_core::RateScope::JobType("Rated".into()),
            "1/1h".parse().unwrap(),
        )];
        let limited = |queue| ClaimRequest {
            rates: &rates,
            ..claim_request(queue, 10, HOLDER, lease)
        };
        let mut spend = Job::new("Rated", Value::Null);
        spend.queue = "ordered".to_owned();
        insert(store, vec![spend]).await;
        assert_eq!(store.claim(limited("ordered")).await.unwrap().len(), 1);
        let mut rated = keyed("x", 1);
        rated.job_type = "Rated".to_owned();
        let mut other = keyed("x", 1);
        other.job_type = "Other".to_owned();
        for job in [&mut rated, &mut other] {
            job.queue = "ordered".to_owned();
        }
        insert(store, vec![rated, other]).await;
        assert!(
            store.claim(limited("ordered")).await.unwrap().is_empty(),
            "the key's second job waits for its first, which waits for the rate limit"
        );
    }
}

/// A store that passes every call to another, failing or holding back the calls a test
/// asks it to: for the engine's fault cases (a write that fails, renewals that stop, a
/// connection that drops).
pub struct FaultyStore {
    inner: Arc<dyn JobStore>,
    failing_completions: AtomicUsize,
    lost_answers: AtomicUsize,
    failing_renewals: AtomicBool,
    completions_seen: AtomicUsize,
}

impl FaultyStore {
    /// A wrapper around `inner` that injects no fault yet.
    pub fn new(inner: Arc<dyn JobStore>) -> Self {
        Self {
            inner,
            failing_completions: AtomicUsize::new(0),
            lost_answers: AtomicUsize::new(0),
            failing_renewals: AtomicBool::new(false),
            completions_seen: AtomicUsize::new(0),
        }
    }

    /// The next `n` calls of `complete_many` fail with a transient error (a dropped
    /// connection) and change nothing.
    pub fn fail_next_completions(&self, n: usize) {
        self.failing_completions.store(n, Ordering::SeqCst);
    }

    /// The next `n` calls of `complete_many` are applied, then answered with a transient
    /// error, as when a connection drops after the commit and before the answer.
    pub fn lose_next_answers(&self, n: usize) {
        self.lost_answers.store(n, Ordering::SeqCst);
    }

    /// From now on, every `renew` fails with a transient error (the store is unreachable)
    /// until this is called with `false`.
    pub fn fail_renewals(&self, failing: bool) {
        self.failing_renewals.store(failing, Ordering::SeqCst);
    }

    /// How many `complete_many` calls were made, failed ones included.
    pub fn completion_calls(&self) -> usize {
        self.completions_seen.load(Ordering::SeqCst)
    }

    fn dropped(what: &str) -> StorageError {
        StorageError::transient(format!(
            "{what}: the connection was dropped (injected fault)"
        ))
    }
}

impl JobStore for FaultyStore {
    crate::delegate::delegate_store!(inner);
    fn insert_many(&self, jobs: Vec<Job>) -> BoxFuture<'_, Result<Vec<Inserted>, StorageError>> {
        self.inner.insert_many(jobs)
    }
    fn claim<'a>(
        &'a self,
        request: ClaimRequest<'a>,
    ) -> BoxFuture<'a, Result<Vec<ClaimedJob>, StorageError>> {
        self.inner.claim(request)
    }
    fn complete_many<'a>(
        &'a self,
        holder: &'a str,
        completions: &'a [Completion],
    ) -> BoxFuture<'a, Result<Vec<Completed>, StorageError>> {
        self.completions_seen.fetch_add(1, Ordering::SeqCst);
        let fail = self
            .failing_completions
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Box::pin(async { Err(Self::dropped("could not store the outcomes")) });
        }
        let lose = self
            .lost_answers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if lose {
            let applied = self.inner.complete_many(holder, completions);
            return Box::pin(async move {
                let _ = applied.await;
                Err(Self::dropped(
                    "the outcomes were stored, but the answer was lost",
                ))
            });
        }
        self.inner.complete_many(holder, completions)
    }
    fn renew<'a>(
        &'a self,
        holder: &'a str,
        leases: &'a [Lease],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<Renewal>, StorageError>> {
        if self.failing_renewals.load(Ordering::SeqCst) {
            return Box::pin(async { Err(Self::dropped("could not renew leases")) });
        }
        self.inner.renew(holder, leases, lease)
    }
    fn is_durable(&self) -> bool {
        self.inner.is_durable()
    }
}
