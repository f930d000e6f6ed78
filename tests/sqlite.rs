//! The SQLite store beyond the shared suites: bad files at open, a full disk and a locked
//! database, the application's own transaction, and worker processes killed mid-job,
//! canceled from another process, and sharing a cluster-wide limit.
//!
//! Worker processes are this test binary run again with `JOBS_SQLITE_WORKER` set to the
//! database file: the ignored test `sqlite_worker_process` then serves jobs until killed.

mod common;
#[path = "common/fault_jobs.rs"]
mod fault_jobs;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use jobs::prelude::*;
use jobs::{JobStore, StorageErrorKind};
use jobs_sqlite::rusqlite::Connection;
use jobs_sqlite::{ConnectError, SqliteOptions, SqliteStore};

use common::SqliteFile;

fn options() -> SqliteOptions {
    SqliteOptions::new().poll_interval(Duration::from_millis(10))
}

/// A builder with short leases, so that a killed worker's jobs are rescued quickly, and a
/// crash budget that the kills of a test cannot use up (each kill costs every job the
/// worker held, claimed ahead or running, one crash).
fn builder(store: Arc<SqliteStore>) -> jobs::JobsBuilder {
    Jobs::builder()
        .store(store)
        .lease(Duration::from_millis(1_000))
        .rescue_interval(Duration::from_millis(200))
        .poll_interval(Duration::from_millis(200))
        .crash_budget(50)
}

/// The file, opened with a table that records every move to a terminal status (a
/// trigger), so that the test can count how often each job finished.
fn setup() -> (SqliteFile, Arc<SqliteStore>) {
    let file = SqliteFile::new();
    let store = SqliteStore::open_with(file.path(), options()).unwrap();
    store
        .open_connection()
        .unwrap()
        .execute_batch(
            "CREATE TABLE finishes (job_id BLOB NOT NULL, status TEXT NOT NULL);
             CREATE TRIGGER record_finish AFTER UPDATE OF status ON jobs
             WHEN NEW.status IN ('Succeeded', 'Failed', 'Canceled')
              AND OLD.status NOT IN ('Succeeded', 'Failed', 'Canceled')
             BEGIN INSERT INTO finishes VALUES (NEW.id, NEW.status); END;",
        )
        .unwrap();
    (file, store)
}

fn spawn_worker(file: &SqliteFile, concurrency: usize) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "sqlite_worker_process",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("JOBS_SQLITE_WORKER", file.path())
        .env("JOBS_SQLITE_CONCURRENCY", concurrency.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a worker process")
}

fn kill(child: &mut Child) {
    child.kill().expect("SIGKILL the worker"); // std sends SIGKILL on Unix
    child.wait().unwrap();
}

/// One number from the file.
fn count(connection: &Connection, sql: &str) -> i64 {
    connection.query_row(sql, [], |row| row.get(0)).unwrap()
}

/// Every job ended in `status` and finished exactly once.
fn assert_each_finished_once(connection: &Connection, total: i64, status: &str) {
    let twice = count(
        connection,
        "SELECT count(*) FROM (SELECT job_id FROM finishes GROUP BY job_id HAVING count(*) > 1)",
    );
    assert_eq!(twice, 0, "jobs finished more than once");
    assert_eq!(
        count(connection, "SELECT count(DISTINCT job_id) FROM finishes"),
        total,
        "every job finished"
    );
    assert_eq!(
        count(
            connection,
            &format!("SELECT count(*) FROM jobs WHERE status = '{status}'")
        ),
        total,
        "every job ended {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_cannot_be_opened_or_a_file_that_is_not_a_database_fails_at_open() {
    let file = SqliteFile::new();
    let missing = file.path().join("no such directory").join("jobs.sqlite3");
    let error = SqliteStore::open(&missing).unwrap_err();
    assert!(
        matches!(error, ConnectError::CannotOpen { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("could not open"), "{error}");

    std::fs::write(
        file.path(),
        b"these bytes are not a SQLite database, only text\n".repeat(100),
    )
    .unwrap();
    let error = SqliteStore::open(file.path()).unwrap_err();
    assert!(
        matches!(error, ConnectError::NotADatabase { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("is not a SQLite database"),
        "{error}"
    );
    // The file is left as it was.
    assert!(std::fs::read(file.path())
        .unwrap()
        .starts_with(b"these bytes"));

    let error = SqliteStore::connect("postgres://localhost/jobs", options()).unwrap_err();
    assert!(matches!(error, ConnectError::InvalidUrl(_)), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_create_if_missing_a_missing_file_is_an_error_and_nothing_is_created() {
    let file = SqliteFile::new();
    let missing = file.path().with_extension("missing");
    let error = SqliteStore::open_with(&missing, options().create_if_missing(false)).unwrap_err();
    assert!(matches!(error, ConnectError::Missing { .. }), "{error:?}");
    assert!(error.to_string().contains("no SQLite database"), "{error}");
    assert!(!missing.exists(), "no file was created");
    // An existing database opens as before.
    drop(SqliteStore::open(file.path()).unwrap());
    SqliteStore::open_with(file.path(), options().create_if_missing(false)).unwrap();
}

/// The dependencies migration rebuilds the jobs table (SQLite cannot change its status
/// check in place): a file made by the version before keeps its jobs, results and
/// indexes, and the jobs read back as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dependencies_migration_keeps_the_jobs_of_an_older_file() {
    let file = SqliteFile::new();
    let old = Connection::open(file.path()).unwrap();
    old.execute_batch(
        "CREATE TABLE jobs_schema_migrations (
             version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL);",
    )
    .unwrap();
    let earlier = [
        include_str!("../jobs-sqlite/migrations/0001_jobs.sql"),
        include_str!("../jobs-sqlite/migrations/0002_workers.sql"),
        include_str!("../jobs-sqlite/migrations/0003_paused_queues.sql"),
        include_str!("../jobs-sqlite/migrations/0004_rate_limits.sql"),
        include_str!("../jobs-sqlite/migrations/0005_concurrency_keys.sql"),
        include_str!("../jobs-sqlite/migrations/0006_bounds.sql"),
        include_str!("../jobs-sqlite/migrations/0007_trace_parents.sql"),
    ];
    for (version, sql) in earlier.iter().enumerate() {
        old.execute_batch(sql).unwrap();
        old.execute(
            "INSERT INTO jobs_schema_migrations VALUES (?1, 'earlier', 0)",
            [version as i64 + 1],
        )
        .unwrap();
    }
    let (queued, done) = (JobId::new(), JobId::new());
    old.execute(
        "INSERT INTO jobs (id, job_type, queue, status, payload, created_at, run_at, priority)
         VALUES (?1, 'Old', 'default', 'Queued', '{\"n\":1}', 1, 1, 3),
                (?2, 'Old', 'default', 'Succeeded', 'null', 1, 1, 0)",
        [queued.as_uuid().as_bytes(), done.as_uuid().as_bytes()],
    )
    .unwrap();
    old.execute(
        "INSERT INTO job_results (job_id, result) VALUES (?1, '42')",
        [done.as_uuid().as_bytes()],
    )
    .unwrap();
    drop(old);

    let store = SqliteStore::open(file.path()).unwrap();
    let job = store.get(queued).await.unwrap().expect("kept");
    assert_eq!(
        (job.status, job.priority, job.payload),
        (JobStatus::Queued, 3, serde_json::json!({"n": 1}))
    );
    assert!(job.depends_on.is_empty() && job.flow.is_none());
    assert_eq!(
        store.get_result(done).await.unwrap(),
        Some(serde_json::json!(42))
    );
    let connection = Connection::open(file.path()).unwrap();
    for index in [
        "jobs_due",
        "jobs_unique_active",
        "jobs_keys",
        "jobs_failed",
        "jobs_flow",
    ] {
        assert_eq!(
            count(
                &connection,
                &format!(
                    "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = '{index}'"
                )
            ),
            1,
            "index {index}"
        );
    }
    // The queued job is still claimed from `jobs_due`.
    let claimed = store
        .claim(jobs::ClaimRequest {
            queue: "default",
            limit: 10,
            holder: "holder",
            lease: Duration::from_secs(30),
            rates: &[],
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, queued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_from_a_newer_version_is_refused_and_reopening_migrates_nothing() {
    let file = SqliteFile::new();
    drop(SqliteStore::open(file.path()).unwrap());
    // Reopening is fine: the schema is current.
    drop(SqliteStore::open(file.path()).unwrap());
    let connection = Connection::open(file.path()).unwrap();
    assert_eq!(
        count(&connection, "SELECT count(*) FROM jobs_schema_migrations"),
        8
    );
    connection
        .execute(
            "INSERT INTO jobs_schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)",
            [],
        )
        .unwrap();
    let error = SqliteStore::open(file.path()).unwrap_err();
    assert!(
        matches!(error, ConnectError::NewerSchema { found: 99, .. }),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_write_with_a_clear_error_and_keeps_what_was_committed() {
    let file = SqliteFile::new();
    // Room for the schema and a few jobs, not for a large batch.
    let store = SqliteStore::open_with(file.path(), options().max_size_bytes(256 * 1024)).unwrap();
    let jobs = Jobs::builder()
        .store(store.clone())
        .concurrency(0)
        .start()
        .unwrap();
    let kept = jobs
        .submit_job_with(
            "Fault",
            serde_json::json!({"hang_first": false, "sleep_ms": 0}),
        )
        .await
        .unwrap();
    let big = "x".repeat(10_000);
    let batch: Vec<Job> = (0..100)
        .map(|_| {
            jobs.prepare_job(
                "Fault",
                serde_json::json!({"hang_first": false, "sleep_ms": 0, "pad": big}),
            )
        })
        .collect::<Result<_, _>>()
        .unwrap();
    let error = store.insert_many(batch).await.unwrap_err();
    assert!(error.message().contains("full"), "{error}");
    assert_ne!(error.kind(), StorageErrorKind::Conflict);
    // Nothing of the batch is stored; the job committed before it is there.
    let counts = store.count_jobs().await.unwrap();
    assert_eq!(counts.iter().map(|c| c.count).sum::<u64>(), 1, "{counts:?}");
    assert_eq!(
        jobs.get_job(kept.id).await.unwrap().map(|job| job.status),
        Some(JobStatus::Queued)
    );
    jobs.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_fails_the_write_as_transient_and_loses_nothing() {
    let file = SqliteFile::new();
    let store = SqliteStore::open_with(
        file.path(),
        options().busy_timeout(Duration::from_millis(200)),
    )
    .unwrap();
    let jobs = Jobs::builder()
        .store(store.clone())
        .concurrency(0)
        .start()
        .unwrap();
    let payload = serde_json::json!({"hang_first": false, "sleep_ms": 0});
    let before = jobs
        .submit_job_with("Fault", payload.clone())
        .await
        .unwrap();

    // Another process holds the write lock for longer than the busy timeout.
    let other = Connection::open(file.path()).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let error = jobs
        .submit_job_with("Fault", payload.clone())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("locked"), "{error}");
    let job = jobs.prepare_job("Fault", payload.clone()).unwrap();
    let error = store.insert_many(vec![job]).await.unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::Transient, "{error}");
    other.execute_batch("COMMIT").unwrap();

    // Once the lock is released, writes go on, and nothing committed was lost.
    let after = jobs.submit_job_with("Fault", payload).await.unwrap();
    for id in [before.id, after.id] {
        assert!(jobs.get_job(id).await.unwrap().is_some());
    }
    assert_eq!(
        store
            .count_jobs()
            .await
            .unwrap()
            .iter()
            .map(|c| c.count)
            .sum::<u64>(),
        2
    );
    jobs.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_submitted_in_the_applications_transaction_exists_exactly_when_it_commits() {
    let (_file, store) = setup();
    let jobs = builder(store.clone()).concurrency(1).start().unwrap();
    let mut connection = store.open_connection().unwrap();
    connection
        .execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY)")
        .unwrap();
    let payload = serde_json::json!({"hang_first": false, "sleep_ms": 0});

    let rolled_back = jobs.prepare_job("Fault", payload.clone()).unwrap();
    let tx = connection.transaction().unwrap();
    tx.execute("INSERT INTO users (id) VALUES (1)", []).unwrap();
    store.submit_in(&tx, &rolled_back).unwrap();
    tx.rollback().unwrap();
    assert_eq!(jobs.get_job(rolled_back.id).await.unwrap(), None);

    let committed = jobs.prepare_job("Fault", payload).unwrap();
    let tx = connection.transaction().unwrap();
    tx.execute("INSERT INTO users (id) VALUES (2)", []).unwrap();
    store.submit_in(&tx, &committed).unwrap();
    tx.commit().unwrap();
    // The engine hears of the commit through the file and runs the job.
    let done = common::finished(&jobs, committed.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(count(&connection, "SELECT count(*) FROM users"), 1);
    jobs.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_process_is_killed_mid_run_is_rescued_and_finishes_once() {
    let (file, store) = setup();
    let client = builder(store.clone()).concurrency(0).start().unwrap();
    let mut first = spawn_worker(&file, 2);
    let job = client
        .submit_job_with(
            "Fault",
            serde_json::json!({ "hang_first": true, "sleep_ms": 10 }),
        )
        .await
        .unwrap();
    let running = common::wait_for_progress(&client, job.id).await;
    assert_eq!((running.status, running.attempt), (JobStatus::Running, 1));
    kill(&mut first);

    // The lease runs out, the rescuer of this process puts the job back, and a new worker
    // process runs it.
    let mut second = spawn_worker(&file, 2);
    let done = common::finished(&client, job.id).await;
    kill(&mut second);
    assert_eq!(
        (done.status, done.attempt),
        (JobStatus::Succeeded, 2),
        "{done:?}"
    );
    assert_eq!(
        client.get_job_result(job.id).await.unwrap(),
        Some(serde_json::json!(2))
    );
    assert_each_finished_once(&store.open_connection().unwrap(), 1, "Succeeded");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_processes_killed_at_random_lose_no_job_and_finish_none_twice() {
    let (file, store) = setup();
    let client = builder(store.clone()).concurrency(0).start().unwrap();
    let total = 300;
    let batch: Vec<Job> = (0..total)
        .map(|_| {
            client.prepare_job(
                "Fault",
                serde_json::json!({ "hang_first": false, "sleep_ms": 5 }),
            )
        })
        .collect::<Result<_, _>>()
        .unwrap();
    store.insert_many(batch).await.unwrap();
    let connection = store.open_connection().unwrap();
    let finished = |connection: &Connection| {
        count(
            connection,
            "SELECT count(*) FROM jobs WHERE status IN ('Succeeded', 'Failed', 'Canceled')",
        )
    };
    let mut workers = vec![spawn_worker(&file, 4), spawn_worker(&file, 4)];
    // Kill a worker whenever another tenth of the jobs has finished, and start another.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut kills = 0;
    while finished(&connection) < total {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {total} jobs finished in time",
            finished(&connection)
        );
        if kills < 4 && finished(&connection) > (kills + 1) * total / 6 {
            let mut victim = workers.remove(0);
            kill(&mut victim);
            kills += 1;
            workers.push(spawn_worker(&file, 4));
        }
        // The test reads what other processes wrote: it looks at the file every 20 ms.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for worker in &mut workers {
        kill(worker);
    }
    assert!(
        kills >= 2,
        "the workers were killed mid-run ({kills} kills)"
    );
    assert_each_finished_once(&connection, total, "Succeeded");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_from_this_process_stops_a_job_running_in_another() {
    let (file, store) = setup();
    let client = builder(store.clone()).concurrency(0).start().unwrap();
    let mut worker = spawn_worker(&file, 2);
    let job = client.submit_job("FaultWaits").await.unwrap();
    common::wait_for_progress(&client, job.id).await;
    assert!(client.cancel_job(job.id).await.unwrap());
    let done = common::finished(&client, job.id).await;
    kill(&mut worker);
    assert_eq!(
        (done.status, done.attempt),
        (JobStatus::Canceled, 1),
        "{done:?}"
    );
    assert_each_finished_once(&store.open_connection().unwrap(), 1, "Canceled");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_wide_limit_holds_across_stores_on_one_file() {
    let file = SqliteFile::new();
    let open =
        || SqliteStore::open_with(file.path(), options().global_limit("reports", 2)).unwrap();
    let (here, there) = (open(), open());
    let watch = here.open_connection().unwrap();
    let submitter = Jobs::builder()
        .store(here.clone())
        .concurrency(0)
        .start()
        .unwrap();
    let options = SubmitOptions::new().queue("reports");
    for _ in 0..12 {
        submitter
            .submit_job_with_options(
                "Fault",
                serde_json::json!({ "hang_first": false, "sleep_ms": 100 }),
                &options,
            )
            .await
            .unwrap();
    }
    let services: Vec<Jobs> = [here, there]
        .into_iter()
        .map(|store| {
            Jobs::builder()
                .store(store)
                .concurrency(0)
                .serve_queue("reports", 4)
                .poll_interval(Duration::from_millis(20))
                .start()
                .unwrap()
        })
        .collect();
    let mut most = 0;
    loop {
        let running = count(&watch, "SELECT count(*) FROM jobs WHERE status = 'Running'");
        most = most.max(running);
        let done = count(
            &watch,
            "SELECT count(*) FROM jobs WHERE status = 'Succeeded'",
        );
        if done == 12 {
            break;
        }
        // Sampling what two stores wrote is the point: look every 5 ms.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(most <= 2, "{most} jobs of the limited queue ran at once");
    assert!(most >= 1);
    for service in services {
        service.shutdown().await;
    }
    submitter.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_jobs_outlive_the_store_and_run_after_it_is_opened_again() {
    let file = SqliteFile::new();
    let payload = serde_json::json!({ "hang_first": false, "sleep_ms": 0 });
    let store = SqliteStore::open(file.path()).unwrap();
    let jobs = Jobs::builder().store(store).concurrency(0).start().unwrap();
    let job = jobs.submit_job_with("Fault", payload).await.unwrap();
    jobs.shutdown().await;
    drop(jobs);

    let store = SqliteStore::open(file.path()).unwrap();
    let jobs = Jobs::builder().store(store).concurrency(1).start().unwrap();
    let done = common::finished(&jobs, job.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    jobs.shutdown().await;
}

/// Serves jobs until killed, when run as a worker process by the tests above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a worker process for the SQLite tests, started by them"]
async fn sqlite_worker_process() {
    let Some(path) = std::env::var_os("JOBS_SQLITE_WORKER") else {
        return;
    };
    let concurrency = std::env::var("JOBS_SQLITE_CONCURRENCY")
        .unwrap()
        .parse()
        .unwrap();
    let store = SqliteStore::open_with(path, options()).unwrap();
    let _jobs = builder(store).concurrency(concurrency).start().unwrap();
    std::future::pending::<()>().await;
}

/// A listing of failed or canceled jobs reads an index of those jobs only, not every job
/// newest first.
#[test]
fn listing_a_rare_status_reads_its_own_index() {
    let file = SqliteFile::new();
    drop(SqliteStore::open(file.path()).unwrap());
    let connection = Connection::open(file.path()).unwrap();
    for (status, index) in [("Failed", "jobs_failed"), ("Canceled", "jobs_canceled")] {
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE status = '{status}'
             ORDER BY id DESC LIMIT 51"
        );
        let mut statement = connection.prepare(&sql).unwrap();
        let plan: Vec<String> = statement
            .query_map([], |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|line| line.contains(index)),
            "{status}: {plan:?}"
        );
    }
}
