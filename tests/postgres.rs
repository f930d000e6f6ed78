//! Behaviour specific to the PostgreSQL backend: start-up errors, the payload limit,
//! concurrent migrations, transactional enqueue, stale workers and events across
//! processes. (The behaviour shared with the in-memory backend is in `lifecycle.rs`.)

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::Env;
use jobs::prelude::*;
use jobs::{JobCount, JobStore};
use jobs_postgres::sqlx::{self, Row};
use jobs_postgres::{ConnectError, PostgresOptions, PostgresStore};
use serde_json::json;

/// Takes 100 ms in the `limited` queue, counting how many run at once in this process.
#[job_executor("PgLimited", queue = "limited")]
async fn pg_limited() -> Result<(), JobError> {
    let now = LIMITED_RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    LIMITED_MOST.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    LIMITED_RUNNING.fetch_sub(1, Ordering::SeqCst);
    Ok(())
}

static LIMITED_RUNNING: AtomicUsize = AtomicUsize::new(0);
static LIMITED_MOST: AtomicUsize = AtomicUsize::new(0);

#[job_executor("PgEcho")]
async fn pg_echo(payload: serde_json::Value) -> Result<serde_json::Value, JobError> {
    Ok(payload)
}

fn schema() -> String {
    format!(
        "jobs_pg_{}",
        &JobId::new().to_string().replace('-', "")[16..]
    )
}

/// Options for a store of its own on `schema`.
fn options(schema: &str) -> PostgresOptions {
    PostgresOptions::new().schema(schema).max_connections(4)
}

async fn backend(url: &str, options: PostgresOptions) -> std::sync::Arc<PostgresStore> {
    let backend = PostgresStore::connect_with(url, options).await.unwrap();
    backend.migrate().await.unwrap();
    backend
}

#[tokio::test]
async fn a_malformed_database_url_is_a_clear_error() {
    let err = PostgresStore::connect("definitely not a url")
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::InvalidUrl(_)), "{err:?}");
    assert!(err.to_string().starts_with("invalid database URL"), "{err}");
}

#[tokio::test]
async fn an_unreachable_database_fails_within_the_connect_timeout() {
    let options = PostgresOptions::new().connect_timeout(Duration::from_secs(2));
    // Port 1 on loopback: nothing listens there.
    let attempt = PostgresStore::connect_with("postgres://jobs@127.0.0.1:1/jobs", options);
    let err = tokio::time::timeout(Duration::from_secs(20), attempt)
        .await
        .expect("gave up instead of hanging")
        .unwrap_err();
    assert!(matches!(err, ConnectError::Unreachable(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("could not connect to PostgreSQL"),
        "{err}"
    );
}

#[tokio::test]
async fn a_schema_name_that_is_not_an_identifier_is_refused() {
    let options = PostgresOptions::new().schema("jobs; DROP TABLE users");
    let err = PostgresStore::connect_with("postgres://jobs@127.0.0.1:1/jobs", options)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::InvalidSchema(_)), "{err:?}");
}

#[tokio::test]
async fn a_payload_over_the_limit_is_refused_and_nothing_is_stored() {
    let Some(url) = common::database_url() else {
        return;
    };
    let backend = backend(
        &url,
        PostgresOptions::new()
            .schema(schema())
            .max_payload_bytes(1_000),
    )
    .await;
    let jobs = Jobs::builder()
        .store(backend)
        .concurrency(0)
        .start()
        .unwrap();
    let big = json!({ "blob": "x".repeat(2_000) });
    let err = jobs.submit_job_with("PgEcho", big).await.unwrap_err();
    assert!(
        matches!(err, SubmitError::PayloadTooLarge { limit: 1_000, ref job_type } if job_type == "PgEcho"),
        "{err:?}"
    );
    assert!(jobs
        .list_jobs(JobQuery::new())
        .await
        .unwrap()
        .jobs
        .is_empty());
    jobs.submit_job_with("PgEcho", json!({ "blob": "small" }))
        .await
        .unwrap();
    jobs.shutdown().await;
}

#[tokio::test]
async fn concurrent_migrations_apply_each_version_once() {
    let Some(url) = common::database_url() else {
        return;
    };
    let schema = schema();
    let mut backends = Vec::new();
    for _ in 0..4 {
        let options = PostgresOptions::new().schema(&schema).max_connections(2);
        backends.push(PostgresStore::connect_with(&url, options).await.unwrap());
    }
    assert_eq!(
        backends[0].pending_migrations().await.unwrap(),
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9],
        "a schema that does not exist yet lacks every migration"
    );
    let runs: Vec<_> = backends
        .iter()
        .cloned()
        .map(|backend| tokio::spawn(async move { backend.migrate().await.unwrap() }))
        .collect();
    let mut applied = Vec::new();
    for run in runs {
        applied.extend(run.await.unwrap());
    }
    assert_eq!(
        applied,
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9],
        "each version applied by exactly one process"
    );
    assert!(
        backends[0].migrate().await.unwrap().is_empty(),
        "nothing left to apply"
    );
    assert!(backends[1].pending_migrations().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_job_submitted_in_a_transaction_exists_exactly_when_it_commits() {
    let Some(url) = common::database_url() else {
        return;
    };
    let schema = schema();
    let backend = backend(&url, PostgresOptions::new().schema(&schema)).await;
    sqlx::query(&format!("CREATE TABLE {schema}.users (id int PRIMARY KEY)"))
        .execute(backend.pool())
        .await
        .unwrap();
    let jobs = Jobs::builder()
        .store(backend.clone())
        .concurrency(1)
        .start()
        .unwrap();

    // Rolled back: neither the user nor the job.
    let doomed = jobs.prepare_job("PgEcho", json!({ "user": 1 })).unwrap();
    let mut tx = backend.pool().begin().await.unwrap();
    sqlx::query(&format!("INSERT INTO {schema}.users VALUES (1)"))
        .execute(&mut *tx)
        .await
        .unwrap();
    backend.submit_in(&mut tx, &doomed).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(jobs.get_job(doomed.id).await.unwrap(), None);

    // Committed: both, and the job runs.
    let kept = jobs.prepare_job("PgEcho", json!({ "user": 2 })).unwrap();
    let mut tx = backend.pool().begin().await.unwrap();
    sqlx::query(&format!("INSERT INTO {schema}.users VALUES (2)"))
        .execute(&mut *tx)
        .await
        .unwrap();
    backend.submit_in(&mut tx, &kept).await.unwrap();
    assert_eq!(
        jobs.get_job(kept.id).await.unwrap(),
        None,
        "invisible before the commit"
    );
    tx.commit().await.unwrap();
    let done = common::finished(&jobs, kept.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    let users: i64 = sqlx::query(&format!("SELECT count(*) FROM {schema}.users"))
        .fetch_one(backend.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 1);
    jobs.shutdown().await;
}

#[tokio::test]
async fn events_reach_subscribers_in_other_processes() {
    let Some(env) = Env::new(common::Backend::Postgres).await else {
        return;
    };
    let worker = env.start(1);
    let observer = env.another().await.start(0);
    let mut events = observer.subscribe();
    let job = worker
        .submit_job_with("PgEcho", json!("seen"))
        .await
        .unwrap();
    let mut kinds = Vec::new();
    while !kinds.contains(&"finished") {
        let event = tokio::time::timeout(common::DEADLINE, events.recv())
            .await
            .expect("events arrive")
            .unwrap();
        if event.job_id() == Some(job.id) {
            kinds.push(common::event_kind(&event));
        }
    }
    assert_eq!(kinds, ["submitted", "started", "finished"]);
    worker.shutdown().await;
    observer.shutdown().await;
}

#[job_executor("PgOddText")]
async fn pg_odd_text(ctx: JobContext) -> Result<(), JobError> {
    ctx.report_progress(50, "nul \0 and emoji 🦀🦀");
    // Under the length a store keeps (`AttemptError::MAX_MESSAGE_BYTES`), so it is kept whole.
    Err(JobError::failed(format!("{}\0end", "🦀".repeat(500))))
}

#[job_executor("PgNulResult")]
async fn pg_nul_result() -> Result<String, JobError> {
    Ok("before\0after".to_owned())
}

/// A batch stored with `submit_many_in` refuses the jobs PostgreSQL cannot keep one at a
/// time, naming each, and stores the others.
#[tokio::test]
async fn a_batch_refuses_only_its_jobs_with_a_nul_character() {
    let Some(url) = common::database_url() else {
        return;
    };
    let schema = schema();
    let store = backend(&url, options(&schema)).await;
    let mut keyed = Job::new("PgEcho", json!(3));
    keyed.unique_key = Some("k\u{0}".to_owned());
    let batch = vec![
        Job::new("PgEcho", json!(1)),
        Job::new("PgEcho", json!({ "a": "b\u{0}" })),
        Job::new("PgEcho", json!(2)),
        keyed,
    ];
    let mut connection = store.pool().acquire().await.unwrap();
    let answers = store.submit_many_in(&mut connection, &batch).await.unwrap();
    assert_eq!(answers[0], jobs::Inserted::Stored);
    assert_eq!(answers[2], jobs::Inserted::Stored);
    for (at, field) in [(1, "payload"), (3, "unique key")] {
        match &answers[at] {
            jobs::Inserted::Refused(reason) => assert!(
                reason.contains(&format!("the {field} of job {}", batch[at].id))
                    && reason.contains("NUL character"),
                "{reason}"
            ),
            other => panic!("job {at} should be refused, not {other:?}"),
        }
    }
    for (at, job) in batch.iter().enumerate() {
        let stored = store.get(job.id).await.unwrap();
        assert_eq!(stored.is_some(), at % 2 == 0, "job {at}");
    }
}

#[tokio::test]
async fn text_postgres_cannot_store_fails_only_its_own_job() {
    let Some(env) = Env::new(common::Backend::Postgres).await else {
        return;
    };
    let jobs = env.start(8);
    let odd = jobs.submit_job("PgOddText").await.unwrap();
    let nul = jobs.submit_job("PgNulResult").await.unwrap();
    let mut others = Vec::new();
    for i in 0..20 {
        others.push(jobs.submit_job_with("PgEcho", json!(i)).await.unwrap().id);
    }
    let odd = common::finished(&jobs, odd.id).await;
    assert_eq!(odd.status, JobStatus::Failed);
    let error = odd.error.unwrap();
    assert!(
        error.starts_with("🦀🦀") && error.ends_with("\u{fffd}end"),
        "NUL replaced, text kept"
    );
    assert_eq!(odd.progress.unwrap().message, "nul \u{fffd} and emoji 🦀🦀");
    let nul = common::finished(&jobs, nul.id).await;
    assert_eq!(nul.status, JobStatus::Failed);
    assert!(nul.error.unwrap().contains("NUL character"));
    for id in others {
        assert_eq!(
            common::finished(&jobs, id).await.status,
            JobStatus::Succeeded
        );
    }
    jobs.shutdown().await;
}

#[tokio::test]
async fn a_delayed_job_from_another_process_starts_on_time_not_at_the_next_poll() {
    let Some(url) = common::database_url() else {
        return;
    };
    let schema = schema();
    // Workers poll every 30 s: only the due-time wake-up can start the job sooner.
    let options = || options(&schema);
    let worker_backend = backend(&url, options()).await;
    let submitter_backend = backend(&url, options()).await;
    let worker = Jobs::builder()
        .store(worker_backend)
        .poll_interval(Duration::from_secs(30))
        .concurrency(1)
        .start()
        .unwrap();
    let submitter = Jobs::builder()
        .store(submitter_backend)
        .concurrency(0)
        .start()
        .unwrap();
    let delay = SubmitOptions::new().delay(Duration::from_millis(500));
    let job = submitter
        .submit_job_with_options("PgEcho", json!("later"), &delay)
        .await
        .unwrap();
    let done = tokio::time::timeout(Duration::from_secs(10), worker.wait_for(job.id))
        .await
        .expect("it ran long before the next poll")
        .unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    let started = done.started_at.unwrap();
    assert!(started >= job.run_at, "not before its time");
    let late = started.duration_since(job.run_at);
    assert!(
        late < Duration::from_secs(5),
        "started {late:?} after its time"
    );
    submitter.shutdown().await;
    worker.shutdown().await;
}

#[tokio::test]
async fn a_cluster_wide_queue_limit_holds_across_processes() {
    let Some(url) = common::database_url() else {
        return;
    };
    let schema = schema();
    let options = || options(&schema).global_limit("limited", 2);
    // Two processes with three workers each for the queue; two may run at once in all.
    let mut services = Vec::new();
    for _ in 0..2 {
        services.push(
            Jobs::builder()
                .store(backend(&url, options()).await)
                .poll_interval(Duration::from_millis(100))
                .concurrency(0)
                .serve_queue("limited", 3)
                .start()
                .unwrap(),
        );
    }
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(services[0].submit_job("PgLimited").await.unwrap().id);
    }
    for id in ids {
        let done = tokio::time::timeout(Duration::from_secs(30), services[1].wait_for(id))
            .await
            .expect("every job runs")
            .unwrap();
        assert_eq!(done.status, JobStatus::Succeeded);
    }
    assert_eq!(
        LIMITED_MOST.load(Ordering::SeqCst),
        2,
        "never more than the limit at once, and the limit used"
    );
    for service in services {
        service.shutdown().await;
    }
}

/// Inserts `n` jobs of `job_type` in `status` straight into the table, as a long-lived
/// store has them, ids in time order.
async fn insert_rows(store: &PostgresStore, schema: &str, job_type: &str, status: &str, n: i64) {
    sqlx::query(&format!(
        "INSERT INTO {schema}.jobs (id, job_type, status, payload, created_at, run_at,
                                   finished_at)
         SELECT (lpad(to_hex(1764000000000 + i), 12, '0') || '70008'
                 || lpad(to_hex(i), 15, '0'))::uuid,
                $1, $2, '{{}}'::jsonb, now(), now(),
                CASE WHEN $2 IN ('Succeeded', 'Failed', 'Canceled') THEN now() END
         FROM generate_series((SELECT count(*) FROM {schema}.jobs) + 1,
                              (SELECT count(*) FROM {schema}.jobs) + $3) AS i"
    ))
    .bind(job_type)
    .bind(status)
    .bind(n)
    .execute(store.pool())
    .await
    .unwrap();
}

/// The counts `/metrics` reads are exact up to the store's limit per type and status,
/// and above it an estimate from the table's statistics, flagged as such; `count_jobs`
/// stays exact.
#[tokio::test]
async fn counts_for_metrics_are_exact_up_to_the_limit_and_estimated_above_it() {
    let Some(url) = common::database_url() else {
        return;
    };
    let schema = schema();
    let store = backend(&url, options(&schema).exact_count_limit(100)).await;
    insert_rows(&store, &schema, "Alpha", "Succeeded", 300).await;
    insert_rows(&store, &schema, "Alpha", "Failed", 40).await;
    insert_rows(&store, &schema, "Beta", "Queued", 50).await;
    let pairs = |counts: &[JobCount]| -> Vec<(String, JobStatus, u64, bool)> {
        counts
            .iter()
            .map(|c| (c.job_type.clone(), c.status, c.count, c.estimated))
            .collect()
    };

    // Before any ANALYZE the planner guesses; the count is known to pass the limit, at
    // least, and says it is an estimate.
    let counts = store.estimate_counts().await.unwrap();
    assert_eq!(
        (counts[0].status, counts[0].estimated),
        (JobStatus::Succeeded, true)
    );
    assert!(counts[0].count >= 101, "{:?}", counts[0]);
    assert_eq!(
        pairs(&counts[1..]),
        vec![
            ("Alpha".to_owned(), JobStatus::Failed, 40, false),
            ("Beta".to_owned(), JobStatus::Queued, 50, false),
        ]
    );

    sqlx::query(&format!("ANALYZE {schema}.jobs"))
        .execute(store.pool())
        .await
        .unwrap();
    let counts = store.estimate_counts().await.unwrap();
    let alpha = &counts[0];
    assert_eq!(
        (alpha.status, alpha.estimated),
        (JobStatus::Succeeded, true)
    );
    assert!(
        (290..=310).contains(&alpha.count),
        "the estimate of 300 jobs is {}",
        alpha.count
    );
    assert_eq!(
        pairs(&counts[1..]),
        pairs(&store.count_jobs().await.unwrap()[1..])
    );
    let exact = store.count_jobs().await.unwrap();
    assert_eq!(exact[0].count, 300);
    assert!(exact.iter().all(|count| !count.estimated));
}

/// A listing of failed or canceled jobs reads an index of those jobs only, not the whole
/// table newest first.
#[tokio::test]
async fn listing_a_rare_status_reads_its_own_index() {
    let Some(url) = common::database_url() else {
        return;
    };
    let schema = schema();
    let store = backend(&url, options(&schema)).await;
    insert_rows(&store, &schema, "Alpha", "Succeeded", 5_000).await;
    insert_rows(&store, &schema, "Alpha", "Failed", 3).await;
    insert_rows(&store, &schema, "Alpha", "Canceled", 2).await;
    sqlx::query(&format!("ANALYZE {schema}.jobs"))
        .execute(store.pool())
        .await
        .unwrap();
    for (status, index) in [("Failed", "jobs_failed"), ("Canceled", "jobs_canceled")] {
        let plan: Vec<String> = sqlx::query_scalar(&format!(
            "EXPLAIN SELECT id FROM {schema}.jobs WHERE status = '{status}'
             ORDER BY id DESC LIMIT 51"
        ))
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert!(
            plan.iter().any(|line| line.contains(index)),
            "{status}: {plan:#?}"
        );
    }
    let page = store
        .list(JobQuery::new().status(JobStatus::Failed))
        .await
        .unwrap();
    assert_eq!(page.jobs.len(), 3);
}
