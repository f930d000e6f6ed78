//! The settings of a store, and why opening one can fail.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// How SQLite makes a commit durable (`PRAGMA synchronous`), in WAL mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Synchronous {
    /// `NORMAL`: a commit survives a crash of the process; a power loss or an operating
    /// system crash may lose the last commits before a checkpoint (never corrupts). The
    /// default.
    Normal,
    /// `FULL`: every commit waits for the disk (`fsync` of the write-ahead log), so it
    /// survives a power loss too; slower.
    Full,
}

impl Synchronous {
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// Settings of a [`SqliteStore`](crate::SqliteStore).
///
/// How long a lease lasts, how many jobs to claim at once and when to give up on a job are
/// the engine's settings (`Jobs::builder()`), not the store's.
///
/// ```
/// use std::time::Duration;
/// use jobs_sqlite::{SqliteOptions, Synchronous};
///
/// let options = SqliteOptions::new()
///     .synchronous(Synchronous::Full)
///     .busy_timeout(Duration::from_secs(2))
///     .poll_interval(Duration::from_millis(10))
///     .global_limit("reports", 4);
/// ```
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    pub(crate) synchronous: Synchronous,
    pub(crate) busy_timeout: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) event_capacity: usize,
    pub(crate) max_payload_bytes: usize,
    pub(crate) max_size_bytes: Option<u64>,
    pub(crate) cache_bytes: u64,
    pub(crate) global_limits: HashMap<String, u32>,
    pub(crate) create_if_missing: bool,
}

impl SqliteOptions {
    /// The default payload limit: 1 MiB of compact JSON.
    pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1 << 20;

    /// The default page cache of each of the store's two connections: 32 MiB, taken
    /// only as the file's hot pages need it.
    pub const DEFAULT_CACHE_BYTES: u64 = 32 << 20;

    /// The defaults: `synchronous = NORMAL`, a 5 s busy timeout, a 20 ms look for other
    /// processes' changes, 1 MiB payloads, room for 4,096 events per subscriber, a 32 MiB
    /// page cache per connection, no size limit, no cluster-wide queue limits, and a missing file created.
    pub fn new() -> Self {
        Self {
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            poll_interval: Duration::from_millis(20),
            event_capacity: jobs_core::EventBus::DEFAULT_CAPACITY,
            max_payload_bytes: Self::DEFAULT_MAX_PAYLOAD_BYTES,
            max_size_bytes: None,
            cache_bytes: Self::DEFAULT_CACHE_BYTES,
            global_limits: HashMap::new(),
            create_if_missing: true,
        }
    }

    /// How commits reach the disk (default [`Synchronous::Normal`]).
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// How long a write waits for another process's write to finish before it fails
    /// with a transient error ("database is locked"); the engine retries such failures.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How often the store looks whether another process changed the file (a read of
    /// `PRAGMA data_version`, about a microsecond), and if so reads the events it
    /// published: the longest a job submitted by another process waits to be noticed.
    /// Changes made through this store are announced at once. Clamped to at least 1 ms.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How many events a subscriber of this process may fall behind before it skips the
    /// oldest (default 4,096).
    pub fn event_capacity(mut self, events: usize) -> Self {
        self.event_capacity = events.max(1);
        self
    }

    /// The largest payload accepted, in bytes of compact JSON (default 1 MiB). Larger
    /// submissions are refused and store nothing.
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }

    /// The largest the database file may grow to (rounded down to whole pages). A write
    /// that needs more fails with an error of kind `InvalidInput` ("database or disk is
    /// full"), as on a full disk, and changes nothing; what was committed stays. Default:
    /// no limit but the disk's.
    pub fn max_size_bytes(mut self, bytes: u64) -> Self {
        self.max_size_bytes = Some(bytes);
        self
    }

    /// How much memory each of the store's two connections may use to cache the file's
    /// pages (`PRAGMA cache_size`; default 32 MiB). SQLite's own default, 2 MiB, holds the
    /// indexes of some ten thousand jobs; past that every claim and completion reads
    /// pages back from the operating system.
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Whether opening a path where no file is creates a new database there (the
    /// default) or fails with [`ConnectError::Missing`]: a tool that reads an existing
    /// database turns a mistyped path into an error, not an empty database.
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// At most `limit` jobs of the named queue `queue` run at once across every process
    /// on this file, however many each process claims. Claims are serialized by SQLite's
    /// write lock, so the count of the queue's running jobs holds; a job whose holder died
    /// counts until its lease is rescued. Every process on the file should set the same
    /// limits.
    pub fn global_limit(mut self, queue: &str, limit: u32) -> Self {
        self.global_limits.insert(queue.to_owned(), limit);
        self
    }
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Why the store could not open its file, or migrate its schema.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is neither a path nor `sqlite://path` (or `sqlite::memory:`).
    #[error("invalid SQLite URL `{0}`: use a path, sqlite://path or sqlite::memory:")]
    InvalidUrl(String),
    /// The file cannot be opened or created (a missing directory, no permission).
    #[error("could not open the SQLite database {path}: {source}")]
    CannotOpen {
        /// The path.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// No file is at the path, and [`SqliteOptions::create_if_missing`] is off.
    #[error("no SQLite database at {path}")]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// The file exists but is not a SQLite database (or is encrypted or corrupt).
    #[error("{path} is not a SQLite database: {source}")]
    NotADatabase {
        /// The path.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer version of this store: its schema has
    /// migrations this version does not know.
    #[error("the database's jobs schema is at version {found}, newer than this store's {known}")]
    NewerSchema {
        /// The version in the file.
        found: i64,
        /// The newest version this store knows.
        known: i64,
    },
    /// Setting up the connection or applying the schema failed.
    #[error("could not prepare the SQLite database: {0}")]
    Setup(#[source] rusqlite::Error),
    /// The store's threads could not be started.
    #[error("could not start the store's threads: {0}")]
    Thread(#[source] std::io::Error),
}
