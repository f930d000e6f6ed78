//! Rows as jobs: the columns every job read selects, and their mapping to [`Job`],
//! [`ClaimedJob`] and [`ExpiredLease`].

use std::str::FromStr;

use jobs_core::{
    AttemptError, ClaimedJob, ExpiredLease, FlowId, Job, JobId, JobStatus, ParentFailure,
    PayloadFrom, Progress, StorageError, Timestamp, TraceParent,
};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::Row;

use crate::error::unreadable;

/// The columns of a job, with timestamps as microseconds since the Unix epoch.
pub(crate) const COLUMNS: &str = "id, job_type, status, payload, progress_percent, \
     progress_message, error, attempt, cancel_requested, \
     (extract(epoch FROM created_at) * 1000000)::int8 AS created_us, \
     (extract(epoch FROM started_at) * 1000000)::int8 AS started_us, \
     (extract(epoch FROM finished_at) * 1000000)::int8 AS finished_us, \
     (extract(epoch FROM run_at) * 1000000)::int8 AS run_at_us, \
     priority, max_attempts, timeout_ms, errors, failures, unique_key, queue, \
     concurrency_key, concurrency_limit, trace_parent, depends_on, on_parent_failure, \
     payload_from, flow";

/// The SQL time `micros` (an `int8` expression of microseconds since the epoch) stands
/// for.
pub(crate) fn at_micros(micros: &str) -> String {
    format!("('epoch'::timestamptz + {micros} * interval '1 microsecond')")
}

/// The `AttemptError` (JSON) of attempt `attempt` (started at the `timestamptz`
/// expression `started_at`) failing with `message` now, its times in the format
/// `Timestamp` reads.
pub(crate) fn attempt_error(attempt: &str, started_at: &str, message: &str) -> String {
    let text =
        |at: &str| format!("to_char({at} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    format!(
        "jsonb_build_object('attempt', {attempt}, 'message', {message}, 'at', {}, \
         'startedAt', {})",
        text("now()"),
        text(started_at)
    )
}

/// A status as the `status` column holds it.
pub(crate) fn status(text: &str) -> Result<JobStatus, StorageError> {
    JobStatus::from_str(text).map_err(|e| StorageError::with_source("unreadable job status", e))
}

/// A count or attempt from an `integer` column (never negative in practice).
fn count(value: i32) -> u32 {
    value.max(0) as u32
}

/// A row of [`COLUMNS`] as a job.
pub(crate) fn job_from_row(row: &PgRow) -> Result<Job, StorageError> {
    let created: i64 = row.try_get("created_us").map_err(unreadable)?;
    let mut job = Job::queued(
        JobId::from_uuid(row.try_get("id").map_err(unreadable)?),
        row.try_get::<String, _>("job_type").map_err(unreadable)?,
        row.try_get::<Json<Value>, _>("payload")
            .map_err(unreadable)?
            .0,
        Timestamp::from_unix_micros(created),
    );
    job.status = status(row.try_get("status").map_err(unreadable)?)?;
    let percent: Option<i16> = row.try_get("progress_percent").map_err(unreadable)?;
    let message: Option<String> = row.try_get("progress_message").map_err(unreadable)?;
    job.progress =
        percent.map(|p| Progress::new(p.clamp(0, 100) as u8, message.unwrap_or_default()));
    job.error = row.try_get("error").map_err(unreadable)?;
    job.attempt = count(row.try_get("attempt").map_err(unreadable)?);
    job.cancel_requested = row.try_get("cancel_requested").map_err(unreadable)?;
    let micros = |column: &str| -> Result<Option<Timestamp>, StorageError> {
        Ok(row
            .try_get::<Option<i64>, _>(column)
            .map_err(unreadable)?
            .map(Timestamp::from_unix_micros))
    };
    job.started_at = micros("started_us")?;
    job.finished_at = micros("finished_us")?;
    job.run_at = Timestamp::from_unix_micros(row.try_get("run_at_us").map_err(unreadable)?);
    job.priority = row.try_get("priority").map_err(unreadable)?;
    job.max_attempts = count(row.try_get("max_attempts").map_err(unreadable)?).max(1);
    job.timeout_ms = timeout(row.try_get("timeout_ms").map_err(unreadable)?);
    job.errors = row
        .try_get::<Json<Vec<AttemptError>>, _>("errors")
        .map_err(unreadable)?
        .0;
    job.failures = count(row.try_get("failures").map_err(unreadable)?);
    job.unique_key = row.try_get("unique_key").map_err(unreadable)?;
    job.queue = row.try_get("queue").map_err(unreadable)?;
    job.concurrency_key = row.try_get("concurrency_key").map_err(unreadable)?;
    job.concurrency_limit = row
        .try_get::<Option<i32>, _>("concurrency_limit")
        .map_err(unreadable)?
        .map(count);
    job.trace_parent = trace_parent(row)?;
    if let Some(Json(parents)) = row
        .try_get::<Option<Json<Vec<JobId>>>, _>("depends_on")
        .map_err(unreadable)?
    {
        job.depends_on = parents;
    }
    let policy: Option<String> = row.try_get("on_parent_failure").map_err(unreadable)?;
    job.on_parent_failure = parent_failure_of(policy.as_deref());
    let source: Option<String> = row.try_get("payload_from").map_err(unreadable)?;
    job.payload_from = payload_from_of(source.as_deref());
    job.flow = row
        .try_get::<Option<uuid::Uuid>, _>("flow")
        .map_err(unreadable)?
        .map(FlowId::from_uuid);
    Ok(job)
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

/// The `trace_parent` column: checked when stored, so a text that does not read (written
/// by hand) is taken as no trace rather than making the job unreadable.
fn trace_parent(row: &PgRow) -> Result<Option<TraceParent>, StorageError> {
    Ok(row
        .try_get::<Option<String>, _>("trace_parent")
        .map_err(unreadable)?
        .and_then(|text| text.parse().ok()))
}

/// A job of the given identity with nothing else set, for the descriptions that only
/// build from a [`Job`].
fn bare(id: JobId) -> Job {
    Job::queued(
        id,
        String::new(),
        Value::Null,
        Timestamp::from_unix_micros(0),
    )
}

/// A row of the claim (`id, job_type, payload, attempt, max_attempts, failures,
/// timeout_ms, trace_parent`) as the engine takes it.
pub(crate) fn claimed_from_row(row: &PgRow) -> Result<ClaimedJob, StorageError> {
    let mut claimed = ClaimedJob::of(&bare(JobId::from_uuid(
        row.try_get("id").map_err(unreadable)?,
    )));
    claimed.job_type = row.try_get("job_type").map_err(unreadable)?;
    claimed.payload = row
        .try_get::<Json<Value>, _>("payload")
        .map_err(unreadable)?
        .0;
    claimed.attempt = count(row.try_get("attempt").map_err(unreadable)?);
    claimed.max_attempts = count(row.try_get("max_attempts").map_err(unreadable)?).max(1);
    claimed.failures = count(row.try_get("failures").map_err(unreadable)?);
    claimed.timeout_ms = timeout(row.try_get("timeout_ms").map_err(unreadable)?);
    claimed.trace_parent = trace_parent(row)?;
    Ok(claimed)
}

/// A row of `expired` (`id, attempt, holder, max_attempts, failures, cancel_requested`).
pub(crate) fn expired_from_row(row: &PgRow) -> Result<ExpiredLease, StorageError> {
    let id = JobId::from_uuid(row.try_get("id").map_err(unreadable)?);
    let holder: String = row.try_get("holder").map_err(unreadable)?;
    let mut expired = ExpiredLease::of(&bare(id), holder);
    expired.attempt = count(row.try_get("attempt").map_err(unreadable)?);
    expired.max_attempts = count(row.try_get("max_attempts").map_err(unreadable)?).max(1);
    expired.failures = count(row.try_get("failures").map_err(unreadable)?);
    expired.cancel_requested = row.try_get("cancel_requested").map_err(unreadable)?;
    Ok(expired)
}

fn timeout(ms: Option<i64>) -> Option<u64> {
    ms.map(|ms| ms.max(1) as u64)
}

/// A job's attempt limit as the `integer` column holds it.
pub(crate) fn max_attempts_column(job: &Job) -> i32 {
    i32::try_from(job.max_attempts.max(1)).unwrap_or(i32::MAX)
}

/// A job's time limit as the `bigint` column holds it.
pub(crate) fn timeout_column(job: &Job) -> Option<i64> {
    job.timeout_ms
        .map(|ms| i64::try_from(ms.max(1)).unwrap_or(i64::MAX))
}

/// A duration as whole microseconds for an `int8` parameter.
pub(crate) fn micros(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// An attempt number for an `int4` parameter.
pub(crate) fn attempt_param(attempt: u32) -> i32 {
    i32::try_from(attempt).unwrap_or(i32::MAX)
}
