//! Rows as jobs: the columns every job read selects, read on the connection's thread as
//! plain values, and turned into [`Job`]s (JSON parsed) by the caller, off that thread.

use std::str::FromStr;

use jobs_core::{
    AttemptError, ClaimedJob, ExpiredLease, FlowId, Job, JobId, JobStatus, ParentFailure,
    PayloadFrom, Progress, StorageError, Timestamp,
};
use rusqlite::Row;
use serde_json::Value;

use crate::error::unreadable;

/// The columns of a job, in the order [`RawJob::read`] takes them.
pub(crate) const COLUMNS: &str = "id, job_type, status, payload, progress_percent, \
     progress_message, error, attempt, cancel_requested, created_at, started_at, \
     finished_at, run_at, priority, max_attempts, timeout_ms, errors, unique_key, queue, \
     concurrency_key, concurrency_limit, failures, trace_parent, depends_on, \
     on_parent_failure, payload_from, flow";

/// A job row as SQLite holds it.
pub(crate) struct RawJob {
    id: Vec<u8>,
    job_type: String,
    status: String,
    payload: String,
    percent: Option<i64>,
    message: Option<String>,
    error: Option<String>,
    attempt: i64,
    cancel_requested: bool,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    run_at: i64,
    priority: i64,
    max_attempts: i64,
    timeout_ms: Option<i64>,
    errors: String,
    unique_key: Option<String>,
    queue: String,
    concurrency_key: Option<String>,
    concurrency_limit: Option<i64>,
    failures: i64,
    trace_parent: Option<String>,
    depends_on: Option<String>,
    on_parent_failure: Option<String>,
    payload_from: Option<String>,
    flow: Option<Vec<u8>>,
}

impl RawJob {
    /// A row of [`COLUMNS`].
    pub(crate) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            job_type: row.get(1)?,
            status: row.get(2)?,
            payload: row.get(3)?,
            percent: row.get(4)?,
            message: row.get(5)?,
            error: row.get(6)?,
            attempt: row.get(7)?,
            cancel_requested: row.get(8)?,
            created_at: row.get(9)?,
            started_at: row.get(10)?,
            finished_at: row.get(11)?,
            run_at: row.get(12)?,
            priority: row.get(13)?,
            max_attempts: row.get(14)?,
            timeout_ms: row.get(15)?,
            errors: row.get(16)?,
            unique_key: row.get(17)?,
            queue: row.get(18)?,
            concurrency_key: row.get(19)?,
            concurrency_limit: row.get(20)?,
            failures: row.get(21)?,
            trace_parent: row.get(22)?,
            depends_on: row.get(23)?,
            on_parent_failure: row.get(24)?,
            payload_from: row.get(25)?,
            flow: row.get(26)?,
        })
    }

    /// The job.
    pub(crate) fn into_job(self) -> Result<Job, StorageError> {
        let mut job = Job::queued(
            id(&self.id)?,
            self.job_type,
            json(&self.payload)?,
            Timestamp::from_unix_micros(self.created_at),
        );
        job.status = status(&self.status)?;
        job.progress = self.percent.map(|percent| {
            Progress::new(
                percent.clamp(0, 100) as u8,
                self.message.unwrap_or_default(),
            )
        });
        job.error = self.error;
        job.attempt = count(self.attempt);
        job.cancel_requested = self.cancel_requested;
        job.started_at = self.started_at.map(Timestamp::from_unix_micros);
        job.finished_at = self.finished_at.map(Timestamp::from_unix_micros);
        job.run_at = Timestamp::from_unix_micros(self.run_at);
        job.priority = self.priority.clamp(i16::MIN.into(), i16::MAX.into()) as i16;
        job.max_attempts = count(self.max_attempts).max(1);
        job.timeout_ms = self.timeout_ms.map(|ms| ms.max(1) as u64);
        job.errors = serde_json::from_str::<Vec<AttemptError>>(&self.errors).map_err(unreadable)?;
        job.failures = count(self.failures);
        job.unique_key = self.unique_key;
        job.queue = self.queue;
        job.concurrency_key = self.concurrency_key;
        job.concurrency_limit = self
            .concurrency_limit
            .map(|limit| u32::try_from(limit.max(1)).unwrap_or(u32::MAX));
        job.trace_parent = trace_parent(self.trace_parent);
        if let Some(parents) = &self.depends_on {
            job.depends_on = serde_json::from_str(parents).map_err(unreadable)?;
        }
        job.on_parent_failure = parent_failure_of(self.on_parent_failure.as_deref());
        job.payload_from = payload_from_of(self.payload_from.as_deref());
        job.flow = self
            .flow
            .map(|bytes| uuid::Uuid::from_slice(&bytes).map(FlowId::from_uuid))
            .transpose()
            .map_err(unreadable)?;
        Ok(job)
    }
}

/// The `on_parent_failure` column read back (`NULL`, or a name this version does not
/// know, is the default).
pub(crate) fn parent_failure_of(text: Option<&str>) -> ParentFailure {
    text.and_then(ParentFailure::from_name).unwrap_or_default()
}

/// The `payload_from` column read back (`NULL`, or a name this version does not know,
/// is the job's own payload).
pub(crate) fn payload_from_of(text: Option<&str>) -> PayloadFrom {
    text.and_then(PayloadFrom::from_name).unwrap_or_default()
}

/// A claimed row as SQLite returned it (`id, job_type, payload, attempt, max_attempts,
/// failures, timeout_ms, priority, run_at, trace_parent`).
pub(crate) struct RawClaim {
    id: Vec<u8>,
    job_type: String,
    payload: String,
    attempt: i64,
    max_attempts: i64,
    failures: i64,
    timeout_ms: Option<i64>,
    trace_parent: Option<String>,
    /// The claim order: priority (higher first), due time, id.
    pub(crate) order: (i64, i64),
}

impl RawClaim {
    pub(crate) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            job_type: row.get(1)?,
            payload: row.get(2)?,
            attempt: row.get(3)?,
            max_attempts: row.get(4)?,
            failures: row.get(5)?,
            timeout_ms: row.get(6)?,
            order: (-row.get::<_, i64>(7)?, row.get(8)?),
            trace_parent: row.get(9)?,
        })
    }

    /// The id bytes, the last key of the claim order.
    pub(crate) fn id_bytes(&self) -> &[u8] {
        &self.id
    }

    pub(crate) fn into_claimed(self) -> Result<ClaimedJob, StorageError> {
        let mut claimed = ClaimedJob::of(&bare(id(&self.id)?));
        claimed.job_type = self.job_type;
        claimed.payload = json(&self.payload)?;
        claimed.attempt = count(self.attempt);
        claimed.max_attempts = count(self.max_attempts).max(1);
        claimed.failures = count(self.failures);
        claimed.timeout_ms = self.timeout_ms.map(|ms| ms.max(1) as u64);
        claimed.trace_parent = trace_parent(self.trace_parent);
        Ok(claimed)
    }
}

/// The `trace_parent` column: checked when stored, so a text that does not read (written
/// by hand) is taken as no trace rather than making the job unreadable.
fn trace_parent(text: Option<String>) -> Option<jobs_core::TraceParent> {
    text.and_then(|text| text.parse().ok())
}

/// A row of `expired` (`id, attempt, holder, max_attempts, failures, cancel_requested`).
pub(crate) fn expired_from_row(
    row: &Row<'_>,
) -> rusqlite::Result<Result<ExpiredLease, StorageError>> {
    let bytes: Vec<u8> = row.get(0)?;
    let holder: String = row.get(2)?;
    let attempt: i64 = row.get(1)?;
    let max_attempts: i64 = row.get(3)?;
    let failures: i64 = row.get(4)?;
    let cancel_requested: bool = row.get(5)?;
    Ok(id(&bytes).map(|id| {
        let mut expired = ExpiredLease::of(&bare(id), holder);
        expired.attempt = count(attempt);
        expired.max_attempts = count(max_attempts).max(1);
        expired.failures = count(failures);
        expired.cancel_requested = cancel_requested;
        expired
    }))
}

/// A job of the given identity with nothing else set.
fn bare(id: JobId) -> Job {
    Job::queued(
        id,
        String::new(),
        Value::Null,
        Timestamp::from_unix_micros(0),
    )
}

/// The id column's bytes as a job id.
pub(crate) fn id(bytes: &[u8]) -> Result<JobId, StorageError> {
    uuid::Uuid::from_slice(bytes)
        .map(JobId::from_uuid)
        .map_err(unreadable)
}

/// A job id as the id column holds it.
pub(crate) fn id_bytes(id: JobId) -> [u8; 16] {
    *id.as_uuid().as_bytes()
}

/// A JSON column's value.
pub(crate) fn json(text: &str) -> Result<Value, StorageError> {
    serde_json::from_str(text).map_err(unreadable)
}

/// A status as the `status` column holds it.
pub(crate) fn status(text: &str) -> Result<JobStatus, StorageError> {
    JobStatus::from_str(text).map_err(unreadable)
}

/// A count or attempt from an `INTEGER` column (never negative in practice).
fn count(value: i64) -> u32 {
    value.clamp(0, u32::MAX.into()) as u32
}

/// A duration as whole microseconds.
pub(crate) fn micros(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}
