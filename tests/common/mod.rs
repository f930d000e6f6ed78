//! Helpers shared by the integration tests: waiting for a state with a deadline, driven by
//! the service's events rather than sleeps.
#![allow(dead_code)]

use std::time::Duration;

use jobs::{Job, JobId, JobStatus, Jobs};

/// The kind of an event, as its JSON names it.
pub fn event_kind(event: &jobs::JobEvent) -> &'static str {
    match event {
        jobs::JobEvent::Submitted { .. } => "submitted",
        jobs::JobEvent::Started { .. } => "started",
        jobs::JobEvent::Progress { .. } => "progress",
        jobs::JobEvent::CancelRequested { .. } => "cancelRequested",
        jobs::JobEvent::Finished { .. } => "finished",
        _ => "other",
    }
}

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

/// Waits until the job's executor has stored progress, which shows it is running.
pub async fn wait_for_progress(jobs: &Jobs, id: JobId) -> Job {
    let mut events = jobs.subscribe();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let job = jobs.get_job(id).await.unwrap().expect("the job exists");
        if job.progress.is_some() {
            return job;
        }
        assert!(
            !job.status.is_terminal(),
            "job ended before reporting progress: {job:?}"
        );
        tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {id} to report progress"));
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

use std::sync::Arc;

use jobs::{JobStore, JobsBuilder};
use jobs_postgres::{PostgresOptions, PostgresStore};
use jobs_sqlite::SqliteStore;

/// The stores the behavioural suite runs against.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Memory,
    Postgres,
    Sqlite,
}

/// One test's storage: services built from it share jobs, queue and events.
pub struct Env {
    backend: Backend,
    store: Arc<dyn JobStore>,
    /// For PostgreSQL: where to connect another process-like store to the same jobs.
    postgres: Option<(String, String)>,
    /// For SQLite: the file (in a directory removed with the last `Env` of the test).
    sqlite: Option<Arc<SqliteFile>>,
}

/// The database URL for PostgreSQL tests; `None` (after saying so) when none is given
/// outside CI. In CI a missing URL is a failure, never a skip.
pub fn database_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("DATABASE_URL must be set in CI: the PostgreSQL tests may not be skipped")
        }
        _ => {
            eprintln!("skipped: set DATABASE_URL to run the PostgreSQL tests");
            None
        }
    }
}

async fn postgres(url: &str, schema: &str) -> Arc<PostgresStore> {
    let options = PostgresOptions::new().schema(schema).max_connections(4);
    PostgresStore::connect_with(url, options)
        .await
        .expect("connect to PostgreSQL")
}

/// A SQLite database file in a fresh directory of its own, removed when dropped.
pub struct SqliteFile {
    dir: std::path::PathBuf,
}

impl SqliteFile {
    /// A fresh directory for a database file.
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(fresh_schema("jobs_sqlite_test"));
        std::fs::create_dir_all(&dir).expect("create a directory for the test database");
        Self { dir }
    }

    /// The database file's path.
    pub fn path(&self) -> std::path::PathBuf {
        self.dir.join("jobs.sqlite3")
    }

    /// A store on the file, as one process would open it.
    pub fn open(&self) -> Arc<SqliteStore> {
        let options = jobs_sqlite::SqliteOptions::new().poll_interval(Duration::from_millis(10));
        SqliteStore::open_with(self.path(), options).expect("open the SQLite database")
    }
}

impl Drop for SqliteFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh schema name.
pub fn fresh_schema(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &jobs::JobId::new().to_string().replace('-', "")[16..]
    )
}

impl Env {
    /// A fresh store: a new in-memory store, or a new PostgreSQL schema. `None` when the
    /// store is not available here (see [`database_url`]).
    pub async fn new(backend: Backend) -> Option<Env> {
        match backend {
            Backend::Memory => Some(Env {
                backend,
                store: Arc::new(jobs::memory::InMemoryStore::new()),
                postgres: None,
                sqlite: None,
            }),
            Backend::Sqlite => {
                let file = Arc::new(SqliteFile::new());
                Some(Env {
                    backend,
                    store: file.open(),
                    postgres: None,
                    sqlite: Some(file),
                })
            }
            Backend::Postgres => {
                let url = database_url()?;
                let schema = fresh_schema("jobs_test");
                let store = postgres(&url, &schema).await;
                store.migrate().await.expect("migrate");
                Some(Env {
                    backend,
                    store,
                    postgres: Some((url, schema)),
                    sqlite: None,
                })
            }
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The store.
    pub fn store(&self) -> Arc<dyn JobStore> {
        self.store.clone()
    }

    /// A builder wired to this store.
    pub fn builder(&self) -> JobsBuilder {
        Jobs::builder()
            .store(self.store.clone())
            .poll_interval(Duration::from_millis(200))
    }

    /// A service with `concurrency` workers on this store.
    pub fn start(&self, concurrency: usize) -> Jobs {
        self.builder().concurrency(concurrency).start().unwrap()
    }

    /// The same store as another process would see it: for PostgreSQL a second store
    /// with its own connections and listener; in memory the same object.
    pub async fn another(&self) -> Env {
        if let Some(file) = &self.sqlite {
            return Env {
                backend: self.backend,
                store: file.open(),
                postgres: None,
                sqlite: Some(file.clone()),
            };
        }
        match &self.postgres {
            None => Env {
                backend: self.backend,
                store: self.store.clone(),
                postgres: None,
                sqlite: None,
            },
            Some((url, schema)) => Env {
                backend: self.backend,
                store: postgres(url, schema).await,
                postgres: self.postgres.clone(),
                sqlite: None,
            },
        }
    }
}
/// Runs each named `async fn(Env)` against every backend, as `memory::name`,
/// `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! for_each_backend {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(env) = $crate::common::Env::new($crate::common::Backend::Memory).await {
                        super::$name(env).await;
                    }
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(env) = $crate::common::Env::new($crate::common::Backend::Sqlite).await {
                        super::$name(env).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(env) = $crate::common::Env::new($crate::common::Backend::Postgres).await {
                        super::$name(env).await;
                    }
                }
            )*
        }
    };
}
