//! The store: the writer and reader threads, the events shared through the file, and the
//! [`JobStore`], [`Notifications`] and [`PeriodicTicks`] contracts over the statements of
//! [`crate::sql`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jobs_core::{
    AttemptError, BoxFuture, CancelOutcome, ClaimRequest, ClaimedJob, Completed, Completion,
    DeleteOutcome, EventBus, ExpiredLease, FinishedCount, Inserted, Job, JobCount, JobEvent, JobId,
    JobPage, JobQuery, JobStore, KeyCount, Lease, Notifications, Operations, Outcome, PausedQueue,
    PeriodicTicks, Progress, ProgressAck, QueueCounts, RateWindow, Renewal, RetryOutcome, Signal,
    StorageError, StorageErrorKind, Timestamp, WorkerInfo,
};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::conn::{Reader, Watch, Writer};
use crate::error::invalid;
use crate::ops;
use crate::options::{ConnectError, SqliteOptions};
use crate::rows::{id_bytes, micros, RawJob};
use crate::sql::{self, Change, NewJob};

/// The origin of event rows written by the application's own transactions
/// ([`SqliteStore::submit_in`]): no store has it, so every store reads them.
const APPLICATION: &str = "";

/// Jobs in one SQLite file: a durable [`JobStore`] that needs no server, shared by every
/// process on the machine that opens the file, with events across those processes
/// ([`Notifications`]) and periodic ticks recorded once ([`PeriodicTicks`]).
///
/// Open it with [`SqliteStore::open`] (which creates the file and its tables, or
/// migrates them) and hand it to `Jobs::builder().store(..)`. Dropping the last
/// reference closes its connections.
pub struct SqliteStore {
    path: PathBuf,
    options: SqliteOptions,
    origin: String,
    writer: Writer,
    reader: Reader,
    bus: Arc<EventBus>,
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` with the default [`SqliteOptions`].
    pub fn open(path: impl AsRef<Path>) -> Result<Arc<Self>, ConnectError> {
        Self::open_with(path, SqliteOptions::new())
    }

    /// Opens the database a URL names: `sqlite://path`, `sqlite:path` or a plain path
    /// (`sqlite:///abs/jobs.db` is an absolute path, `sqlite://jobs.db` a relative one).
    pub fn connect(url: &str, options: SqliteOptions) -> Result<Arc<Self>, ConnectError> {
        Self::open_with(path_of(url)?, options)
    }

    /// Opens (or creates) the database at `path`: WAL mode, the busy timeout and
    /// synchronous setting of `options`, and the jobs tables created or migrated (safe
    /// from several processes at once). A path that cannot be opened, or a file that is
    /// not a SQLite database, is an error here, not at the first job.
    pub fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<Arc<Self>, ConnectError> {
        let path = path.as_ref().to_path_buf();
        if !options.create_if_missing && !path.exists() {
            return Err(ConnectError::Missing { path });
        }
        let write = open_connection(&path, &options, options.create_if_missing)?;
        crate::migrate::migrate(&write)?;
        let read = open_connection(&path, &options, false)?;
        read.pragma_update(None, "query_only", true)
            .map_err(ConnectError::Setup)?;
        let origin = JobId::new().to_string();
        let bus = Arc::new(EventBus::new(options.event_capacity));
        let watch = Watch::new(&write, origin.clone(), bus.clone()).map_err(ConnectError::Setup)?;
        let writer =
            Writer::start(write, watch, options.poll_interval).map_err(ConnectError::Thread)?;
        let reader = Reader::start(read).map_err(ConnectError::Thread)?;
        Ok(Arc::new(Self {
            path,
            options,
            origin,
            writer,
            reader,
            bus,
        }))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new connection to the same file, set up as the store's own (WAL, busy timeout,
    /// synchronous), for the application's own tables and transactions (and
    /// [`SqliteStore::submit_in`]).
    pub fn open_connection(&self) -> Result<Connection, ConnectError> {
        open_connection(&self.path, &self.options, false)
    }

    /// Stores a job inside the caller's transaction (or on any connection to the file),
    /// so that the job exists exactly when the application's own changes commit. Build
    /// `job` with `Jobs::prepare_job`, which checks its type and payload. Every engine on
    /// the file, this process's included, hears of it within the poll interval after the
    /// commit. An error of kind [`StorageErrorKind::Conflict`] if an active job of its
    /// type holds its unique key; after any error, roll the transaction back.
    ///
    /// ```no_run
    /// # fn run(job: jobs_core::Job, store: &jobs_sqlite::SqliteStore)
    /// # -> Result<(), Box<dyn std::error::Error>> {
    /// let mut connection = store.open_connection()?;
    /// let tx = connection.transaction()?;
    /// tx.execute("INSERT INTO users (id) VALUES (42)", [])?;
    /// store.submit_in(&tx, &job)?;
    /// tx.commit()?; // the user and the job appear together, or neither does
    /// # Ok(())
    /// # }
    /// ```
    pub fn submit_in(&self, connection: &Connection, job: &Job) -> Result<(), StorageError> {
        let mut new = self.prepare(job.clone())?;
        let (answers, _, _) =
            sql::insert_jobs(connection, std::slice::from_mut(&mut new), APPLICATION)?;
        match answers.into_iter().next() {
            Some(Inserted::Stored) => Ok(()),
            Some(Inserted::Existing(holder)) => Err(StorageError::of_kind(
                StorageErrorKind::Conflict,
                format!(
                    "the unique key {:?} of job type `{}` is held by active job {}",
                    job.unique_key.as_deref().unwrap_or_default(),
                    job.job_type,
                    holder.id
                ),
            )),
            _ => Err(StorageError::new(format!("job {} was not stored", job.id))),
        }
    }

    /// The job as the insert takes it, checked against the payload limit.
    fn prepare(&self, job: Job) -> Result<NewJob, StorageError> {
        let payload = serde_json::to_string(&job.payload)
            .map_err(|error| invalid(format!("the payload of job {}: {error}", job.id)))?;
        if payload.len() > self.options.max_payload_bytes {
            return Err(invalid(format!(
                "the payload of job {} ({}) is {} bytes of JSON, over the limit of {}",
                job.id,
                job.job_type,
                payload.len(),
                self.options.max_payload_bytes
            )));
        }
        let event = serde_json::to_string(&JobEvent::Submitted {
            id: job.id,
            job_type: job.job_type.clone(),
        })
        .map_err(|error| StorageError::with_source("could not encode an event", error))?;
        Ok(NewJob {
            job,
            payload,
            event,
            exact_run_at: false,
        })
    }
}

/// Hands the `submitted` events of the stored jobs to this process's subscribers (on the
/// writer thread, at the commit, so before anything else about those jobs).
fn announce_stored(bus: &EventBus, jobs: &[NewJob], stored: &[usize]) {
    if stored.is_empty() {
        return;
    }
    let events = stored
        .iter()
        .map(|at| JobEvent::Submitted {
            id: jobs[*at].job.id,
            job_type: jobs[*at].job.job_type.clone(),
        })
        .collect();
    bus.send(events);
}

/// Hands the events of dependants a write settled to this process's subscribers (the
/// other processes read them from the event rows the write recorded).
fn announce(bus: &EventBus, events: &[JobEvent]) {
    if !events.is_empty() {
        bus.send(events.to_vec());
    }
}

/// The path a URL names.
fn path_of(url: &str) -> Result<PathBuf, ConnectError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let rest = rest.split('?').next().unwrap_or_default();
    if rest.is_empty()
        || rest.starts_with(":memory:")
        || url.contains("://") && !url.starts_with("sqlite://")
    {
        return Err(ConnectError::InvalidUrl(url.to_owned()));
    }
    Ok(PathBuf::from(rest))
}

/// A connection to `path` in WAL mode with the settings of `options`; `create` makes
/// the file when it is missing.
fn open_connection(
    path: &Path,
    options: &SqliteOptions,
    create: bool,
) -> Result<Connection, ConnectError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let connection =
        Connection::open_with_flags(path, flags).map_err(|source| ConnectError::CannotOpen {
            path: path.to_path_buf(),
            source,
        })?;
    let setup = |error: rusqlite::Error| match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => ConnectError::NotADatabase {
            path: path.to_path_buf(),
            source: error,
        },
        Some(ErrorCode::CannotOpen) => ConnectError::CannotOpen {
            path: path.to_path_buf(),
            source: error,
        },
        _ => ConnectError::Setup(error),
    };
    connection
        .busy_timeout(options.busy_timeout)
        .map_err(setup)?;
    let mode: String = connection
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(setup)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(%mode, path = %path.display(), "SQLite refused WAL mode");
    }
    connection
        .pragma_update(None, "synchronous", options.synchronous.pragma())
        .map_err(setup)?;
    // A negative cache size is in KiB.
    connection
        .pragma_update(
            None,
            "cache_size",
            -((options.cache_bytes / 1024).max(64) as i64),
        )
        .map_err(setup)?;
    // Statement journals and sorts in memory, not in temporary files.
    connection
        .pragma_update(None, "temp_store", "MEMORY")
        .map_err(setup)?;
    if let Some(bytes) = options.max_size_bytes {
        let page: i64 = connection
            .query_row("PRAGMA page_size", [], |row| row.get(0))
            .map_err(setup)?;
        let pages = (bytes / page.max(512) as u64).max(1);
        let _: i64 = connection
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |row| {
                row.get(0)
            })
            .map_err(setup)?;
    }
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// `completion` as the statement takes it, or `None` for an outcome this store does not
/// know.
fn change(index: usize, completion: &Completion) -> Option<Change> {
    let mut change = Change {
        index,
        id: id_bytes(completion.id),
        attempt: completion.attempt,
        kind: "",
        error: None,
        entry: None,
        result: None,
        run_at: None,
    };
    let entry =
        |error: &str| serde_json::to_string(&AttemptError::new(completion.attempt, error)).ok();
    match &completion.outcome {
        Outcome::Succeeded { result } => {
            change.kind = "Succeeded";
            if !result.is_null() {
                change.result = Some(serde_json::to_string(result).ok()?);
            }
        }
        Outcome::Failed { error } => {
            change.kind = "Failed";
            change.error = Some(AttemptError::cut(error).into_owned());
            change.entry = entry(error);
        }
        Outcome::Canceled => change.kind = "Canceled",
        Outcome::Retry { error, run_at } => {
            change.kind = "Retry";
            change.entry = entry(error);
            change.run_at = Some(run_at.as_unix_micros());
        }
        Outcome::Snooze { run_at } => {
            change.kind = "Snooze";
            change.run_at = Some(run_at.as_unix_micros());
        }
        Outcome::Release => change.kind = "Release",
        _ => return None,
    }
    Some(change)
}

impl JobStore for SqliteStore {
    fn insert_many(&self, jobs: Vec<Job>) -> BoxFuture<'_, Result<Vec<Inserted>, StorageError>> {
        Box::pin(async move {
            if jobs.is_empty() {
                return Ok(Vec::new());
            }
            let mut new = jobs
                .into_iter()
                .map(|job| self.prepare(job))
                .collect::<Result<Vec<_>, _>>()?;
            let origin = self.origin.clone();
            let bus = self.bus.clone();
            let (answers, _) = self
                .writer
                .write_then(
                    move |connection| {
                        let (answers, stored, settled) =
                            sql::insert_jobs(connection, &mut new, &origin)?;
                        Ok((answers, (new, stored, settled)))
                    },
                    move |(_, (new, stored, settled))| {
                        announce_stored(&bus, new, stored);
                        announce(&bus, settled);
                    },
                )
                .await?;
            Ok(answers)
        })
    }

    fn supports_unique_keys(&self) -> bool {
        true
    }

    fn supports_rate_limits(&self) -> bool {
        true
    }

    fn supports_concurrency_keys(&self) -> bool {
        true
    }

    fn supports_dependencies(&self) -> bool {
        true
    }

    fn claim<'a>(
        &'a self,
        request: ClaimRequest<'a>,
    ) -> BoxFuture<'a, Result<Vec<ClaimedJob>, StorageError>> {
        Box::pin(async move {
            if request.limit == 0 {
                return Ok(Vec::new());
            }
            let queue = request.queue.to_owned();
            let holder = request.holder.to_owned();
            let limit = request.limit;
            let lease = micros(request.lease);
            let global = self.options.global_limits.get(request.queue).copied();
            let rates = request.rates.to_vec();
            let rows = self
                .writer
                .write(move |connection| {
                    sql::claim(connection, &queue, limit, &holder, lease, global, &rates)
                })
                .await?;
            rows.into_iter().map(|row| row.into_claimed()).collect()
        })
    }

    fn next_due<'a>(
        &'a self,
        queue: &'a str,
    ) -> BoxFuture<'a, Result<Option<Duration>, StorageError>> {
        Box::pin(async move {
            let queue = queue.to_owned();
            let micros = self
                .reader
                .read(move |connection| sql::next_due(connection, &queue))
                .await?;
            Ok(micros.map(|us| Duration::from_micros(u64::try_from(us).unwrap_or(0))))
        })
    }

    fn complete_many<'a>(
        &'a self,
        holder: &'a str,
        completions: &'a [Completion],
    ) -> BoxFuture<'a, Result<Vec<Completed>, StorageError>> {
        Box::pin(async move {
            let mut answers: Vec<Option<Completed>> = vec![None; completions.len()];
            let mut changes = Vec::with_capacity(completions.len());
            let mut sent = std::collections::HashSet::with_capacity(completions.len());
            for (index, completion) in completions.iter().enumerate() {
                match change(index, completion) {
                    None => {
                        answers[index] = Some(Completed::Refused(format!(
                            "this store does not know the outcome {:?}",
                            completion.outcome
                        )))
                    }
                    // One completion per job in a call: a second one for the same job is
                    // not held.
                    Some(_) if !sent.insert(completion.id) => {
                        answers[index] = Some(Completed::NotHeld)
                    }
                    Some(change) => changes.push(change),
                }
            }
            if !changes.is_empty() {
                let holder = holder.to_owned();
                let origin = self.origin.clone();
                let bus = self.bus.clone();
                let (changes, (applied, _)) = self
                    .writer
                    .write_then(
                        move |connection| {
                            let applied = sql::complete(connection, &holder, &changes, &origin)?;
                            Ok((changes, applied))
                        },
                        // The engine announces the completions; the dependants they
                        // settled are announced here, at the commit.
                        move |(_, (_, settled))| announce(&bus, settled),
                    )
                    .await?;
                for (change, status) in changes.iter().zip(applied) {
                    answers[change.index] = Some(match status {
                        Some(status) => Completed::Applied(status),
                        None => Completed::NotHeld,
                    });
                }
            }
            Ok(answers
                .into_iter()
                .map(|answer| answer.unwrap_or(Completed::NotHeld))
                .collect())
        })
    }

    fn renew<'a>(
        &'a self,
        holder: &'a str,
        leases: &'a [Lease],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<Renewal>, StorageError>> {
        Box::pin(async move {
            if leases.is_empty() {
                return Ok(Vec::new());
            }
            let holder = holder.to_owned();
            let leases: Vec<(JobId, u32)> = leases
                .iter()
                .map(|lease| (lease.id, lease.attempt))
                .collect();
            let lease = micros(lease);
            self.writer
                .write(move |connection| {
                    let until = Timestamp::now().as_unix_micros().saturating_add(lease);
                    sql::renew(connection, &holder, &leases, until)
                })
                .await
        })
    }

    fn expired(&self, limit: usize) -> BoxFuture<'_, Result<Vec<ExpiredLease>, StorageError>> {
        Box::pin(
            self.reader
                .read(move |connection| sql::expired(connection, limit)),
        )
    }

    fn update_progress(
        &self,
        id: JobId,
        attempt: u32,
        progress: Progress,
    ) -> BoxFuture<'_, Result<ProgressAck, StorageError>> {
        Box::pin(async move {
            let held = self
                .writer
                .write(move |connection| sql::update_progress(connection, id, attempt, &progress))
                .await?;
            Ok(match held {
                Some(cancel_requested) => ProgressAck::Stored { cancel_requested },
                None => ProgressAck::NotRunning,
            })
        })
    }

    fn request_cancel(&self, id: JobId) -> BoxFuture<'_, Result<CancelOutcome, StorageError>> {
        let origin = self.origin.clone();
        let bus = self.bus.clone();
        Box::pin(async move {
            let (outcome, _) = self
                .writer
                .write_then(
                    move |connection| sql::request_cancel(connection, id, &origin),
                    move |(_, settled)| announce(&bus, settled),
                )
                .await?;
            Ok(outcome)
        })
    }

    fn get(&self, id: JobId) -> BoxFuture<'_, Result<Option<Job>, StorageError>> {
        Box::pin(async move {
            let raw = self
                .reader
                .read(move |connection| sql::get(connection, id))
                .await?;
            raw.map(RawJob::into_job).transpose()
        })
    }

    fn list(&self, query: JobQuery) -> BoxFuture<'_, Result<JobPage, StorageError>> {
        Box::pin(async move {
            let limit = query.limit;
            let rows = self
                .reader
                .read(move |connection| sql::list(connection, &query))
                .await?;
            sql::page(rows, limit)
        })
    }

    fn get_result(&self, id: JobId) -> BoxFuture<'_, Result<Option<Value>, StorageError>> {
        Box::pin(async move {
            let text = self
                .reader
                .read(move |connection| sql::get_result(connection, id))
                .await?;
            text.map(sql::result_value).transpose()
        })
    }

    fn count_jobs(&self) -> BoxFuture<'_, Result<Vec<JobCount>, StorageError>> {
        Box::pin(self.reader.read(sql::count_jobs))
    }

    fn prune_finished(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> BoxFuture<'_, Result<u64, StorageError>> {
        Box::pin(
            self.writer
                .write(move |connection| sql::prune_finished(connection, before, limit)),
        )
    }

    fn max_payload_bytes(&self) -> Option<usize> {
        Some(self.options.max_payload_bytes)
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn notifications(&self) -> Option<&dyn Notifications> {
        Some(self)
    }

    fn operations(&self) -> Option<&dyn Operations> {
        Some(self)
    }

    fn ticks(&self) -> Option<&dyn PeriodicTicks> {
        Some(self)
    }
}

impl Operations for SqliteStore {
    fn retry_many<'a>(
        &'a self,
        ids: &'a [JobId],
    ) -> BoxFuture<'a, Result<Vec<RetryOutcome>, StorageError>> {
        let ids = ids.to_vec();
        Box::pin(
            self.writer
                .write(move |connection| ops::retry_many(connection, &ids)),
        )
    }

    fn delete_many<'a>(
        &'a self,
        ids: &'a [JobId],
    ) -> BoxFuture<'a, Result<Vec<DeleteOutcome>, StorageError>> {
        let ids = ids.to_vec();
        Box::pin(
            self.writer
                .write(move |connection| ops::delete_many(connection, &ids)),
        )
    }

    fn queue_counts(&self) -> BoxFuture<'_, Result<Vec<QueueCounts>, StorageError>> {
        Box::pin(self.reader.read(ops::queue_counts))
    }

    fn count_finished_before(&self, before: Timestamp) -> BoxFuture<'_, Result<u64, StorageError>> {
        Box::pin(
            self.reader
                .read(move |connection| sql::count_finished_before(connection, before)),
        )
    }

    fn finished_per_minute(
        &self,
        since: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<FinishedCount>, StorageError>> {
        Box::pin(
            self.reader
                .read(move |connection| ops::finished_per_minute(connection, since)),
        )
    }

    fn record_worker<'a>(
        &'a self,
        worker: &'a WorkerInfo,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        let worker = worker.clone();
        Box::pin(self.writer.write(move |connection| {
            ops::forget_old_workers(connection)?;
            ops::record_worker(connection, &worker)
        }))
    }

    fn remove_worker<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        let id = id.to_owned();
        Box::pin(
            self.writer
                .write(move |connection| ops::remove_worker(connection, &id)),
        )
    }

    fn workers(&self, since: Timestamp) -> BoxFuture<'_, Result<Vec<WorkerInfo>, StorageError>> {
        Box::pin(
            self.reader
                .read(move |connection| ops::workers(connection, since)),
        )
    }

    fn set_paused<'a>(
        &'a self,
        queue: &'a str,
        paused: bool,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        let queue = queue.to_owned();
        Box::pin(
            self.writer
                .write(move |connection| ops::set_paused(connection, &queue, paused)),
        )
    }

    fn paused_queues(&self) -> BoxFuture<'_, Result<Vec<PausedQueue>, StorageError>> {
        Box::pin(self.reader.read(ops::paused_queues))
    }

    fn key_counts<'a>(
        &'a self,
        keys: Option<&'a [String]>,
    ) -> BoxFuture<'a, Result<Vec<KeyCount>, StorageError>> {
        let keys = keys.map(<[String]>::to_vec);
        Box::pin(
            self.reader
                .read(move |connection| ops::key_counts(connection, keys.as_deref())),
        )
    }

    fn dependants(&self, id: JobId) -> BoxFuture<'_, Result<Vec<JobId>, StorageError>> {
        Box::pin(
            self.reader
                .read(move |connection| crate::depend::dependants(connection, id)),
        )
    }

    fn rate_windows<'a>(
        &'a self,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<(String, RateWindow)>, StorageError>> {
        let names = names.to_vec();
        Box::pin(
            self.reader
                .read(move |connection| ops::rate_windows(connection, &names)),
        )
    }
}

impl Notifications for SqliteStore {
    /// Hands `events` to this process's subscribers at once, and records them in the
    /// file for the other processes, which read them at their next look.
    fn publish(&self, events: Vec<JobEvent>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if events.is_empty() {
                return;
            }
            let text = serde_json::to_string(&events);
            self.bus.send(events);
            let Ok(text) = text else {
                return;
            };
            let origin = self.origin.clone();
            if let Err(error) = self
                .writer
                .write(move |connection| sql::record_events(connection, &origin, &text))
                .await
            {
                tracing::debug!(%error, "could not record events for other processes");
            }
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.bus.subscribe()
    }

    fn signals(&self) -> broadcast::Receiver<Signal> {
        self.bus.signals()
    }

    /// Always `true`: processes elsewhere may listen.
    fn has_subscribers(&self) -> bool {
        true
    }
}

impl PeriodicTicks for SqliteStore {
    fn insert_tick<'a>(
        &'a self,
        job: Job,
        schedule: &'a str,
        tick: Timestamp,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(async move {
            let new = self.prepare(job)?;
            let origin = self.origin.clone();
            let schedule = schedule.to_owned();
            let bus = self.bus.clone();
            let (_, stored) = self
                .writer
                .write_then(
                    move |connection| {
                        let stored = sql::insert_tick(connection, &new, &schedule, tick, &origin)?;
                        Ok((new, stored))
                    },
                    move |(new, stored)| {
                        if *stored {
                            announce_stored(&bus, std::slice::from_ref(new), &[0]);
                        }
                    },
                )
                .await?;
            Ok(stored)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_paths() {
        assert_eq!(
            path_of("sqlite://jobs.db").unwrap(),
            PathBuf::from("jobs.db")
        );
        assert_eq!(
            path_of("sqlite:///var/jobs.db").unwrap(),
            PathBuf::from("/var/jobs.db")
        );
        assert_eq!(
            path_of("sqlite:jobs.db?mode=rwc").unwrap(),
            PathBuf::from("jobs.db")
        );
        assert_eq!(
            path_of("data/jobs.sqlite3").unwrap(),
            PathBuf::from("data/jobs.sqlite3")
        );
        assert!(path_of("sqlite::memory:").is_err());
        assert!(path_of("postgres://localhost/db").is_err());
        assert!(path_of("sqlite://").is_err());
    }
}
