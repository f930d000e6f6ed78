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
    BoxFuture, CancelOutcome, ClaimRequest, ClaimedJob, Completed, Completion, ExpiredLease,
    Inserted, Job, JobCount, JobId, JobPage, JobQuery, JobStatus, JobStore, Lease, Notifications,
    Outcome, PeriodicTicks, Progress, ProgressAck, Renewal, StorageError, StorageErrorKind,
    Timestamp,
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
            Ok(Ok(event)) if event.job_id() == job.id => seen.push(event),
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
/// finished jobs.
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
    assert_eq!(
        store.prune_finished(future, 100).await.unwrap(),
        1,
        "only the finished job"
    );
    assert!(store.get(ids[0]).await.unwrap().is_none());
    assert_eq!(store.list(JobQuery::new()).await.unwrap().jobs.len(), 4);
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
    fn insert_many(&self, jobs: Vec<Job>) -> BoxFuture<'_, Result<Vec<Inserted>, StorageError>> {
        self.inner.insert_many(jobs)
    }
    fn supports_unique_keys(&self) -> bool {
        self.inner.supports_unique_keys()
    }
    fn claim<'a>(
        &'a self,
        request: ClaimRequest<'a>,
    ) -> BoxFuture<'a, Result<Vec<ClaimedJob>, StorageError>> {
        self.inner.claim(request)
    }
    fn next_due<'a>(
        &'a self,
        queue: &'a str,
    ) -> BoxFuture<'a, Result<Option<Duration>, StorageError>> {
        self.inner.next_due(queue)
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
    fn expired(&self, limit: usize) -> BoxFuture<'_, Result<Vec<ExpiredLease>, StorageError>> {
        self.inner.expired(limit)
    }
    fn update_progress(
        &self,
        id: JobId,
        attempt: u32,
        progress: Progress,
    ) -> BoxFuture<'_, Result<ProgressAck, StorageError>> {
        self.inner.update_progress(id, attempt, progress)
    }
    fn request_cancel(&self, id: JobId) -> BoxFuture<'_, Result<CancelOutcome, StorageError>> {
        self.inner.request_cancel(id)
    }
    fn get(&self, id: JobId) -> BoxFuture<'_, Result<Option<Job>, StorageError>> {
        self.inner.get(id)
    }
    fn list(&self, query: JobQuery) -> BoxFuture<'_, Result<JobPage, StorageError>> {
        self.inner.list(query)
    }
    fn get_result(&self, id: JobId) -> BoxFuture<'_, Result<Option<Value>, StorageError>> {
        self.inner.get_result(id)
    }
    fn count_jobs(&self) -> BoxFuture<'_, Result<Vec<JobCount>, StorageError>> {
        self.inner.count_jobs()
    }
    fn prune_finished(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> BoxFuture<'_, Result<u64, StorageError>> {
        self.inner.prune_finished(before, limit)
    }
    fn max_payload_bytes(&self) -> Option<usize> {
        self.inner.max_payload_bytes()
    }
    fn is_durable(&self) -> bool {
        self.inner.is_durable()
    }
    fn notifications(&self) -> Option<&dyn Notifications> {
        self.inner.notifications()
    }
    fn ticks(&self) -> Option<&dyn PeriodicTicks> {
        self.inner.ticks()
    }
}
