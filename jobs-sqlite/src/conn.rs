//! The threads that own the connections: one writer, which runs every change of this
//! store inside group-committed transactions and watches for other processes' changes,
//! and one reader for the reads, which WAL mode lets run beside the writes.
//!
//! SQLite has one writer at a time per file, so a change never waits for more than the
//! writer thread. Whatever changes arrive while a transaction runs form the next one:
//! each change runs inside a savepoint of its own (a failed change is rolled back alone),
//! and all of them are answered after the one commit. Under load that turns a commit per
//! call into a commit per group, and statements run on the thread without any
//! asynchronous hand-off in between.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs_core::{EventBus, JobEvent, Signal, StorageError, Timestamp};
use rusqlite::{params, Connection};
use tokio::sync::oneshot;

use crate::error::{failed, stopped};

/// What a change does once its transaction committed or failed: answer its caller.
type Done = Box<dyn FnOnce(Result<(), StorageError>) + Send>;
/// A change: its statements, run inside the writer's transaction; the error they failed
/// with, if any (then its savepoint is rolled back), and how to answer. Given the error
/// instead of the connection when its transaction could not begin, it answers that error
/// at once.
type Change =
    Box<dyn FnOnce(Result<&Connection, &StorageError>) -> (Option<StorageError>, Done) + Send>;
/// A read, which answers its caller itself.
type Read = Box<dyn FnOnce(&Connection) + Send>;

/// The most changes one transaction takes.
const MAX_GROUP: usize = 256;
/// How often the events other processes can no longer need are deleted.
const EVENT_PRUNE_EVERY: Duration = Duration::from_secs(10);
/// How long published events are kept for the other processes (one that falls further
/// behind resyncs).
pub(crate) const EVENT_RETENTION: Duration = Duration::from_secs(30);

/// The writer thread's handle: changes go in, answers come back after the commit.
pub(crate) struct Writer {
    sender: mpsc::Sender<Change>,
}

impl Writer {
    /// Starts the writer thread on `connection`; it watches the file for other
    /// processes' changes every `poll` and hands their events to `bus`.
    pub(crate) fn start(
        connection: Connection,
        watch: Watch,
        poll: Duration,
    ) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::channel::<Change>();
        std::thread::Builder::new()
            .name("jobs-sqlite-writer".into())
            .spawn(move || write_loop(connection, receiver, watch, poll))?;
        Ok(Self { sender })
    }

    /// Runs `change` in the writer's next transaction; its answer once that committed.
    /// A failed change is rolled back alone and answers its error.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        change: impl FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        self.write_then(change, |_| {}).await
    }

    /// Like [`Writer::write`], and runs `committed` on the writer thread as soon as the
    /// change has committed, before the changes after it are answered: what must be
    /// announced before anything that follows the change can be (a job's `submitted`
    /// before its `started`).
    pub(crate) async fn write_then<T: Send + 'static>(
        &self,
        change: impl FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
        committed: impl FnOnce(&T) + Send + 'static,
    ) -> Result<T, StorageError> {
        let (answer, answered) = oneshot::channel();
        let change: Change = Box::new(move |connection| match connection {
            Err(error) => {
                let _ = answer.send(Err(clone_error(error)));
                (None, Box::new(|_| {}) as Done)
            }
            Ok(connection) => {
                let outcome = change(connection);
                let failed = outcome.as_ref().err().map(clone_error);
                let done: Done = Box::new(move |commit| {
                    let outcome = commit.and(outcome);
                    if let Ok(value) = &outcome {
                        committed(value);
                    }
                    let _ = answer.send(outcome);
                });
                (failed, done)
            }
        });
        self.sender.send(change).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// The reader thread's handle.
pub(crate) struct Reader {
    sender: mpsc::Sender<Read>,
}

impl Reader {
    /// Starts the reader thread on `connection`.
    pub(crate) fn start(connection: Connection) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::channel::<Read>();
        std::thread::Builder::new()
            .name("jobs-sqlite-reader".into())
            .spawn(move || {
                while let Ok(read) = receiver.recv() {
                    // A panicking read drops its answer; the caller sees the thread as
                    // stopped for that call, and the next read runs.
                    let _ = catch_unwind(AssertUnwindSafe(|| read(&connection)));
                }
            })?;
        Ok(Self { sender })
    }

    /// Runs `read` on the reader's connection.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let (answer, answered) = oneshot::channel();
        let read: Read = Box::new(move |connection| {
            let _ = answer.send(read(connection));
        });
        self.sender.send(read).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

fn write_loop(
    connection: Connection,
    receiver: mpsc::Receiver<Change>,
    mut watch: Watch,
    poll: Duration,
) {
    let mut polled = Instant::now();
    loop {
        let wait = poll.saturating_sub(polled.elapsed());
        let first = match receiver.recv_timeout(wait) {
            Ok(change) => Some(change),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if let Some(first) = first {
            let mut group = Vec::with_capacity(8);
            group.push(first);
            while group.len() < MAX_GROUP {
                match receiver.try_recv() {
                    Ok(change) => group.push(change),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            commit_group(&connection, group);
        }
        if polled.elapsed() >= poll {
            watch.look(&connection);
            polled = Instant::now();
        }
    }
}

/// Runs `group` in one transaction, each change in a savepoint, and answers every change
/// after the commit (or with the error that kept the transaction from committing).
///
/// Some failures (a full disk, an I/O error) make SQLite roll back the whole transaction,
/// not just the statement: the changes that ran before in it are then answered with that
/// failure, and the rest of the group runs in a new transaction.
fn commit_group(connection: &Connection, group: Vec<Change>) {
    let mut group = group.into_iter();
    while group.len() > 0 {
        if let Err(error) = connection.execute_batch("BEGIN IMMEDIATE") {
            let error = failed("could not start a write")(error);
            for change in group {
                let _ = change(Err(&error));
            }
            return;
        }
        let mut answers: Vec<Done> = Vec::with_capacity(group.len());
        let mut lost: Option<StorageError> = None;
        for change in group.by_ref() {
            let savepoint = connection.execute_batch("SAVEPOINT change");
            let ran = catch_unwind(AssertUnwindSafe(|| change(Ok(connection))));
            let (error, done) = match ran {
                Ok(ran) => ran,
                // The change's answer went with the panic; its caller sees a stopped
                // thread.
                Err(_) => (
                    Some(StorageError::new("a change panicked")),
                    Box::new(|_| {}) as Done,
                ),
            };
            if connection.is_autocommit() {
                // SQLite rolled the whole transaction back.
                let error = error.unwrap_or_else(|| StorageError::new("the write was rolled back"));
                done(Err(clone_error(&error)));
                lost = Some(error);
                break;
            }
            if savepoint.is_ok() {
                let undo = if error.is_some() {
                    "ROLLBACK TO change; RELEASE change"
                } else {
                    "RELEASE change"
                };
                let _ = connection.execute_batch(undo);
            }
            answers.push(done);
        }
        let committed = match lost {
            Some(error) => Err(StorageError::of_kind(
                error.kind(),
                format!(
                    "the write was rolled back with another: {}",
                    error.message()
                ),
            )),
            None => connection
                .execute_batch("COMMIT")
                .map_err(failed("could not commit")),
        };
        if committed.is_err() && !connection.is_autocommit() {
            let _ = connection.execute_batch("ROLLBACK");
        }
        for done in answers {
            done(committed.as_ref().map(|_| ()).map_err(clone_error));
        }
    }
}

/// A copy of `error` for each of the changes it failed.
fn clone_error(error: &StorageError) -> StorageError {
    StorageError::of_kind(error.kind(), error.message())
}

/// What the writer knows of other processes' changes: the file's data version (which
/// moves only when another connection commits) and the last event row it read.
pub(crate) struct Watch {
    origin: String,
    bus: Arc<EventBus>,
    version: i64,
    last_seq: i64,
    pruned: Instant,
}

impl Watch {
    /// A watch from what `connection` shows now: events published before are not read.
    pub(crate) fn new(
        connection: &Connection,
        origin: String,
        bus: Arc<EventBus>,
    ) -> rusqlite::Result<Self> {
        let version = data_version(connection)?;
        let last_seq =
            connection.query_row("SELECT coalesce(max(seq), 0) FROM job_events", [], |row| {
                row.get(0)
            })?;
        Ok(Self {
            origin,
            bus,
            version,
            last_seq,
            pruned: Instant::now(),
        })
    }

    /// Looks whether another connection committed since the last look; if so, hands
    /// the events other stores published to the bus, or a resync when some were missed.
    fn look(&mut self, connection: &Connection) {
        if self.pruned.elapsed() >= EVENT_PRUNE_EVERY {
            self.prune(connection);
        }
        let version = match data_version(connection) {
            Ok(version) => version,
            Err(error) => {
                tracing::warn!(%error, "could not read the SQLite data version");
                return;
            }
        };
        if version == self.version {
            return;
        }
        self.version = version;
        if let Err(error) = self.read_events(connection) {
            tracing::warn!(%error, "could not read other processes' job events");
            self.bus.send_signal(Signal::Resync);
        }
    }

    fn read_events(&mut self, connection: &Connection) -> rusqlite::Result<()> {
        let mut statement = connection.prepare_cached(
            "SELECT seq, CASE WHEN origin = ?2 THEN NULL ELSE events END
             FROM job_events WHERE seq > ?1 ORDER BY seq",
        )?;
        let mut rows = statement.query(params![self.last_seq, self.origin])?;
        let mut missed = false;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            if seq > self.last_seq + 1 {
                // Rows in between were pruned before this store read them.
                missed = true;
            }
            self.last_seq = seq;
            let Some(text) = row.get::<_, Option<String>>(1)? else {
                continue;
            };
            match serde_json::from_str::<Vec<JobEvent>>(&text) {
                Ok(events) => self.bus.send(events),
                Err(error) => {
                    tracing::warn!(%error, "skipped an unreadable job event row");
                    missed = true;
                }
            }
        }
        if missed {
            self.bus.send_signal(Signal::Resync);
        }
        Ok(())
    }

    /// Deletes events older than the retention, always keeping the newest row (the
    /// sequence of the others goes on from it).
    fn prune(&mut self, connection: &Connection) {
        self.pruned = Instant::now();
        let before = Timestamp::now().as_unix_micros() - EVENT_RETENTION.as_micros() as i64;
        if let Err(error) = connection.execute(
            "DELETE FROM job_events
             WHERE at < ?1 AND seq < (SELECT max(seq) FROM job_events)",
            params![before],
        ) {
            tracing::debug!(%error, "could not prune old job events; trying again later");
        }
    }
}

fn data_version(connection: &Connection) -> rusqlite::Result<i64> {
    connection.query_row("PRAGMA data_version", [], |row| row.get(0))
}
