//! Fault tests on PostgreSQL with real processes: a worker killed mid-job, workers killed
//! at random over a thousand jobs (and over parents whose children wait for them), a
//! batch finished by two processes at once, and the database restarted mid-run. Each
//! checks that no job is lost and none finishes twice.
//!
//! Worker processes are this test binary run again with `JOBS_FAULT_WORKER` set: the
//! ignored test `worker_process` then serves jobs until it is killed.

mod common;
#[path = "common/fault_jobs.rs"]
mod fault_jobs;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use jobs::prelude::*;
use jobs_postgres::sqlx::{self, Row};
use jobs_postgres::{PostgresOptions, PostgresStore};

/// Fault tests share the database server (one restarts it): run them one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn options(schema: &str) -> PostgresOptions {
    PostgresOptions::new().schema(schema).max_connections(4)
}

/// A builder on `store` with the fault tests' short leases; a job fails after
/// `max_attempts` lost leases.
fn builder(store: Arc<PostgresStore>, max_attempts: u32) -> jobs::JobsBuilder {
    Jobs::builder()
        .store(store)
        .lease(Duration::from_millis(1_000))
        .rescue_interval(Duration::from_millis(200))
        .poll_interval(Duration::from_millis(200))
        .crash_budget(max_attempts)
}

/// A fresh schema with a trigger that records every move to a terminal status, so the
/// test can count how often each job finished. The backend fails a job after
/// `max_attempts` lost leases, like the workers of the test (its rescuer takes part too).
async fn setup(url: &str, _max_attempts: u32) -> (String, Arc<PostgresStore>) {
    let schema = format!(
        "jobs_fault_{}",
        &jobs::JobId::new().to_string().replace('-', "")[16..]
    );
    let backend = PostgresStore::connect_with(url, options(&schema))
        .await
        .unwrap();
    backend.migrate().await.unwrap();
    sqlx::raw_sql(&format!(
        "CREATE TABLE {schema}.finishes (job_id uuid NOT NULL, status text NOT NULL);
         CREATE FUNCTION {schema}.record_finish() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO {schema}.finishes VALUES (NEW.id, NEW.status);
             RETURN NEW;
         END $$;
         CREATE TRIGGER record_finish AFTER UPDATE OF status ON {schema}.jobs
         FOR EACH ROW WHEN (NEW.status IN ('Succeeded', 'Failed', 'Canceled')
                            AND OLD.status NOT IN ('Succeeded', 'Failed', 'Canceled'))
         EXECUTE FUNCTION {schema}.record_finish();"
    ))
    .execute(backend.pool())
    .await
    .unwrap();
    (schema, backend)
}

/// A service in this process that only submits and reads.
fn client(backend: &Arc<PostgresStore>, max_attempts: u32) -> Jobs {
    builder(backend.clone(), max_attempts)
        .concurrency(0)
        .start()
        .unwrap()
}

fn spawn_worker(url: &str, schema: &str, max_attempts: u32) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["worker_process", "--exact", "--ignored", "--nocapture"])
        .env("JOBS_FAULT_WORKER", "1")
        .env("JOBS_FAULT_SCHEMA", schema)
        .env("JOBS_FAULT_MAX_ATTEMPTS", max_attempts.to_string())
        .env("DATABASE_URL", url)
        .stdout(Stdio::null())
        // A worker that panics (it cannot connect, say) says why in the test's output.
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start a worker process")
}

/// Worker processes, killed when dropped, so that a failing test leaves none behind.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for worker in &mut self.0 {
            let _ = worker.kill();
            let _ = worker.wait();
        }
    }
}

fn kill(child: &mut Child) {
    child.kill().expect("SIGKILL the worker"); // std sends SIGKILL on Unix
    child.wait().unwrap();
}

/// How many jobs in the schema have finished, and how many finish records exist.
async fn finished_counts(backend: &PostgresStore, schema: &str) -> (i64, i64) {
    let row = sqlx::query(&format!(
        "SELECT (SELECT count(*) FROM {schema}.jobs
                 WHERE status IN ('Succeeded', 'Failed', 'Canceled')),
                (SELECT count(*) FROM {schema}.finishes)"
    ))
    .fetch_one(backend.pool())
    .await
    .unwrap();
    (row.get(0), row.get(1))
}

/// Whether `worker` holds a running job, waiting up to five seconds for it to: a worker
/// stamps the jobs it claims with an id that starts with its process id. No event tells
/// this process about another's claims, so it looks every 10 ms.
async fn holds_running_jobs(backend: &PostgresStore, schema: &str, worker: &mut Child) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let pattern = format!("{}-%", worker.id());
    loop {
        let running: i64 = sqlx::query(&format!(
            "SELECT count(*) FROM {schema}.jobs WHERE status = 'Running' AND worker_id LIKE $1"
        ))
        .bind(&pattern)
        .fetch_one(backend.pool())
        .await
        .unwrap()
        .get(0);
        if running > 0 {
            return true;
        }
        if let Ok(Some(status)) = worker.try_wait() {
            panic!("worker process {} exited by itself: {status}", worker.id());
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_all_finished(backend: &PostgresStore, schema: &str, total: i64, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let (finished, _) = finished_counts(backend, schema).await;
        if finished == total {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {finished} of {total} jobs finished in time"
        );
        // Polling the database is the point here: the test reads what every process wrote.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every job succeeded and finished exactly once.
async fn assert_each_finished_once(backend: &PostgresStore, schema: &str, total: i64) {
    assert_each_finished_once_with(backend, schema, total, "Succeeded").await;
}

/// Every job ended in `status` and finished exactly once.
async fn assert_each_finished_once_with(
    backend: &PostgresStore,
    schema: &str,
    total: i64,
    status: &str,
) {
    let row = sqlx::query(&format!(
        "SELECT (SELECT count(*) FROM {schema}.jobs WHERE status = '{status}'),
                (SELECT count(*) FROM (SELECT job_id FROM {schema}.finishes
                                       GROUP BY job_id HAVING count(*) > 1) twice),
                (SELECT count(DISTINCT job_id) FROM {schema}.finishes)"
    ))
    .fetch_one(backend.pool())
    .await
    .unwrap();
    let (succeeded, twice, distinct): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(twice, 0, "jobs finished more than once");
    assert_eq!(distinct, total, "every job finished");
    assert_eq!(succeeded, total, "every job ended {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_is_killed_mid_run_is_run_again_and_finishes_once() {
    let Some(url) = common::database_url() else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let (schema, backend) = setup(&url, 3).await;
    let client = client(&backend, 3);

    let mut first = spawn_worker(&url, &schema, 3);
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

    // The lease runs out, the job goes back to the queue, and a new worker runs it.
    let mut second = spawn_worker(&url, &schema, 3);
    let done = common::finished(&client, job.id).await;
    kill(&mut second);
    assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    assert_eq!(done.attempt, 2);
    assert_eq!(
        client.get_job_result(job.id).await.unwrap(),
        Some(serde_json::json!(2))
    );
    assert_each_finished_once(&backend, &schema, 1).await;
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_at_random_lose_no_job_and_finish_none_twice() {
    let Some(url) = common::database_url() else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let (schema, backend) = setup(&url, MAX_ATTEMPTS).await;
    let client = client(&backend, MAX_ATTEMPTS);
    const TOTAL: i64 = 1_000;
    const MAX_ATTEMPTS: u32 = 50;

    let mut workers = Workers(
        (0..3)
            .map(|_| spawn_worker(&url, &schema, MAX_ATTEMPTS))
            .collect(),
    );
    // About 55 ms each: twelve worker slots need some four seconds for them all, so the
    // kills below land while jobs run. Submitted in one call, so none has run yet.
    let batch = (0..TOTAL)
        .map(|i| {
            let args = serde_json::json!({ "hang_first": false, "sleep_ms": 40 + i % 31 });
            client.prepare_job("Fault", args).unwrap()
        })
        .collect();
    client.submit_many(batch).await.unwrap();
    // The kills start once the workers run jobs: a worker process may take a while to
    // start on a loaded machine, and a kill before then interrupts nothing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while finished_counts(&backend, &schema).await.0 == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no worker process finished a job within a minute"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Each victim is killed once it holds a running job (a fresh worker may still be
    // starting), so every kill interrupts work.
    let interrupted = kill_at_random(&backend, &url, &schema, &mut workers, MAX_ATTEMPTS).await;
    let (finished, _) = finished_counts(&backend, &schema).await;
    assert!(
        interrupted > 0,
        "no kill found its worker running a job ({finished} of {TOTAL} jobs had finished)"
    );
    wait_all_finished(&backend, &schema, TOTAL, Duration::from_secs(120)).await;
    for worker in &mut workers.0 {
        kill(worker);
    }
    assert_each_finished_once(&backend, &schema, TOTAL).await;
    let rerun: i64 = sqlx::query(&format!(
        "SELECT count(*) FROM {schema}.jobs WHERE attempt > 1"
    ))
    .fetch_one(backend.pool())
    .await
    .unwrap()
    .get(0);
    eprintln!("{rerun} of {TOTAL} jobs were run again after their worker was killed");
    assert!(rerun > 0, "the kills landed while jobs ran");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_reconnect_and_carry_on_after_the_database_restarts() {
    let Some(url) = common::database_url() else {
        return;
    };
    let Some(cluster) = postgres_cluster() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to restart PostgreSQL"
        );
        eprintln!("skipped: pg_ctlcluster is not available to restart PostgreSQL");
        return;
    };
    let _serial = SERIAL.lock().await;
    let (schema, backend) = setup(&url, 3).await;
    let worker_backend = PostgresStore::connect_with(&url, options(&schema))
        .await
        .unwrap();
    let workers = builder(worker_backend, 50).concurrency(4).start().unwrap();
    let client = client(&backend, 3);
    let mut events = client.subscribe();
    const TOTAL: i64 = 400;
    for i in 0..TOTAL {
        let args = serde_json::json!({ "hang_first": false, "sleep_ms": 5 + i % 5 });
        client.submit_job_with("Fault", args).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let restarted = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &cluster, "main", "restart"])
        .status()
        .expect("run pg_ctlcluster");
    assert!(restarted.success(), "PostgreSQL restarted");

    wait_all_finished(&backend, &schema, TOTAL, Duration::from_secs(120)).await;
    assert_each_finished_once(&backend, &schema, TOTAL).await;
    // Subscribers were told that they may have missed events.
    let resync = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = events.recv().await {
            if event == jobs::JobEvent::Resync {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        resync,
        Ok(true),
        "a resync event after the listener reconnected"
    );

    // The notification listeners reconnected: a new job is seen to finish through events
    // alone (`finished` waits on them).
    let after = client
        .submit_job_with(
            "Fault",
            serde_json::json!({ "hang_first": false, "sleep_ms": 1 }),
        )
        .await
        .unwrap();
    assert_eq!(
        common::finished(&client, after.id).await.status,
        JobStatus::Succeeded
    );
    workers.shutdown().await;
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_from_this_process_stops_a_job_running_in_another() {
    let Some(url) = common::database_url() else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let (schema, backend) = setup(&url, 3).await;
    let client = client(&backend, 3);
    let mut worker = spawn_worker(&url, &schema, 3);
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
    assert_each_finished_once_with(&backend, &schema, 1, "Canceled").await;
    client.shutdown().await;
}

/// Kills a worker about every 300 ms, ten times, each once it holds a running job, and
/// starts a new one in its place; how many kills interrupted a running job.
async fn kill_at_random(
    backend: &PostgresStore,
    url: &str,
    schema: &str,
    workers: &mut Workers,
    max_attempts: u32,
) -> usize {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut interrupted = 0;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let victim = (seed % workers.0.len() as u64) as usize;
        if holds_running_jobs(backend, schema, &mut workers.0[victim]).await {
            interrupted += 1;
        }
        kill(&mut workers.0[victim]);
        workers.0[victim] = spawn_worker(url, schema, max_attempts);
    }
    interrupted
}

/// Workers killed at random while parents finish: a parent's end and its child's release
/// are one transaction, so whether a kill lands before or after the parent's completion
/// committed, every child is released once, runs with its parent's result, and none is
/// left waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_are_released_whatever_kill_lands_as_their_parents_finish() {
    let Some(url) = common::database_url() else {
        return;
    };
    let _serial = SERIAL.lock().await;
    const MAX_ATTEMPTS: u32 = 50;
    const PAIRS: usize = 300;
    let (schema, backend) = setup(&url, MAX_ATTEMPTS).await;
    let client = client(&backend, MAX_ATTEMPTS);
    let mut workers = Workers(
        (0..3)
            .map(|_| spawn_worker(&url, &schema, MAX_ATTEMPTS))
            .collect(),
    );
    let mut batch = Vec::with_capacity(PAIRS * 2);
    for i in 0..PAIRS {
        let args = serde_json::json!({ "hang_first": false, "sleep_ms": 20 + i % 30 });
        let parent = client.prepare_job("Fault", args).unwrap();
        let options = SubmitOptions::new()
            .depends_on([parent.id])
            .payload_from(jobs::PayloadFrom::Parent);
        let child = client
            .prepare_job_with_options("FaultChild", serde_json::Value::Null, &options)
            .unwrap();
        batch.push(parent);
        batch.push(child);
    }
    let stored = client.submit_many(batch).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while finished_counts(&backend, &schema).await.0 == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no worker process finished a job within a minute"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let interrupted = kill_at_random(&backend, &url, &schema, &mut workers, MAX_ATTEMPTS).await;
    assert!(interrupted > 0, "no kill found its worker running a job");
    wait_all_finished(
        &backend,
        &schema,
        (PAIRS * 2) as i64,
        Duration::from_secs(120),
    )
    .await;
    for worker in &mut workers.0 {
        kill(worker);
    }
    assert_each_finished_once(&backend, &schema, (PAIRS * 2) as i64).await;
    for pair in stored.chunks(2) {
        let parent_result = client.get_job_result(pair[0].id).await.unwrap().unwrap();
        let child = client.get_job(pair[1].id).await.unwrap().unwrap();
        assert_eq!(
            child.payload, parent_result,
            "the child ran with its parent's result"
        );
        let expected = parent_result.as_u64().unwrap() + 100;
        assert_eq!(
            client.get_job_result(pair[1].id).await.unwrap(),
            Some(serde_json::json!(expected))
        );
    }
    let rerun: i64 = sqlx::query(&format!(
        "SELECT count(*) FROM {schema}.jobs WHERE attempt > 1 AND job_type = 'Fault'"
    ))
    .fetch_one(backend.pool())
    .await
    .unwrap()
    .get(0);
    eprintln!("{rerun} of {PAIRS} parents were run again after their worker was killed");
    client.shutdown().await;
}

/// A batch of 1,000 members, some failing, finished by two worker processes at once: the
/// callback is released once, runs once, and is given the right counts and ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_finished_by_two_processes_runs_its_callback_once_with_the_counts() {
    let Some(url) = common::database_url() else {
        return;
    };
    let _serial = SERIAL.lock().await;
    const MEMBERS: usize = 1_000;
    let (schema, backend) = setup(&url, 3).await;
    let client = client(&backend, 3);
    let flow = jobs::FlowId::new();
    let mut batch: Vec<Job> = (0..MEMBERS)
        .map(|i| {
            let args = serde_json::json!({ "fail": i % 7 == 0, "sleep_ms": i % 3 });
            client
                .prepare_job_with_options("FaultMember", args, &SubmitOptions::new().flow(flow))
                .unwrap()
        })
        .collect();
    let failing: Vec<JobId> = batch
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 7 == 0)
        .map(|(_, job)| job.id)
        .collect();
    let options = SubmitOptions::new()
        .depends_on(batch.iter().map(|job| job.id))
        .on_parent_failure(jobs::ParentFailure::Run)
        .payload_from(jobs::PayloadFrom::Batch)
        .flow(flow);
    let callback = client
        .prepare_job_with_options("FaultReport", serde_json::Value::Null, &options)
        .unwrap();
    batch.push(callback.clone());
    client.submit_many(batch).await.unwrap();
    let mut workers = Workers((0..2).map(|_| spawn_worker(&url, &schema, 3)).collect());
    wait_all_finished(
        &backend,
        &schema,
        MEMBERS as i64 + 1,
        Duration::from_secs(120),
    )
    .await;
    for worker in &mut workers.0 {
        kill(worker);
    }
    let done = client.get_job(callback.id).await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.attempt),
        (JobStatus::Succeeded, 1),
        "{done:?}"
    );
    let summary: jobs::BatchSummary = serde_json::from_value(done.payload).unwrap();
    assert_eq!(summary.failed, failing, "the failed members, in order");
    assert_eq!(summary.succeeded.len(), MEMBERS - failing.len());
    assert!(summary.canceled.is_empty());
    assert_eq!(
        client.get_job_result(callback.id).await.unwrap(),
        Some(serde_json::json!([
            MEMBERS - failing.len(),
            failing.len(),
            0
        ]))
    );
    let by_worker: i64 = sqlx::query(&format!(
        "SELECT count(DISTINCT split_part(worker_id, '-', 1)) FROM {schema}.jobs
         WHERE job_type = 'FaultMember'"
    ))
    .fetch_one(backend.pool())
    .await
    .unwrap()
    .get(0);
    assert_eq!(by_worker, 2, "both processes finished members");
    let finishes: i64 = sqlx::query(&format!(
        "SELECT count(*) FROM {schema}.finishes WHERE job_id = $1"
    ))
    .bind(callback.id.as_uuid())
    .fetch_one(backend.pool())
    .await
    .unwrap()
    .get(0);
    assert_eq!(finishes, 1, "the callback finished exactly once");
    client.shutdown().await;
}

/// The version directory of the local PostgreSQL cluster, if it can be restarted here.
fn postgres_cluster() -> Option<String> {
    Command::new("pg_ctlcluster").arg("--help").output().ok()?;
    std::fs::read_dir("/etc/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .next()
}

/// Serves jobs until killed, when run as a worker process by the tests above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a worker process for the fault tests, started by them"]
async fn worker_process() {
    if std::env::var_os("JOBS_FAULT_WORKER").is_none() {
        return;
    }
    let url = std::env::var("DATABASE_URL").unwrap();
    let schema = std::env::var("JOBS_FAULT_SCHEMA").unwrap();
    let max_attempts = std::env::var("JOBS_FAULT_MAX_ATTEMPTS")
        .unwrap()
        .parse()
        .unwrap();
    let backend = PostgresStore::connect_with(&url, options(&schema))
        .await
        .unwrap();
    let _jobs = builder(backend, max_attempts)
        .concurrency(4)
        .start()
        .unwrap();
    std::future::pending::<()>().await;
}
