//! The JSON routes.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use std::time::Duration;

use jobs_runtime::{
    BulkAction, CancelOutcome, DeleteOutcome, FlowId, JobId, JobQuery, JobStatus, ParentFailure,
    PayloadFrom, RetryOutcome, SubmitOptions, Timestamp,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{ApiError, AppState};

/// `GET /health`.
pub(crate) async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Any route not served here.
pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SubmitBody {
    #[serde(rename = "type")]
    job_type: String,
    /// Left out, it is `null`. Given (even as `null`), it is the job's own arguments, which
    /// a job that runs with its parents' results does not have: refused beside a
    /// `payloadFrom` other than `submitted`.
    #[serde(default, deserialize_with = "present")]
    payload: Option<Value>,
    // The options may be left out; `null` is refused (the document types each option
    // without it).
    /// Not before this time (RFC 3339).
    #[serde(default, deserialize_with = "present")]
    run_at: Option<Timestamp>,
    /// Not before this many milliseconds from now.
    #[serde(default, deserialize_with = "present")]
    delay_ms: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    priority: Option<i16>,
    #[serde(default, deserialize_with = "present")]
    retries: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    unique_key: Option<String>,
    #[serde(default, deserialize_with = "present")]
    queue: Option<String>,
    #[serde(default, deserialize_with = "present")]
    concurrency_key: Option<String>,
    #[serde(default, deserialize_with = "present")]
    concurrency_limit: Option<u32>,
    /// The jobs it waits for (its parents), by id.
    #[serde(default, deserialize_with = "present")]
    depends_on: Option<Vec<JobId>>,
    #[serde(default, deserialize_with = "present_name")]
    on_parent_failure: Option<ParentFailure>,
    #[serde(default, deserialize_with = "present_name")]
    payload_from: Option<PayloadFrom>,
    /// The flow or batch it joins.
    #[serde(default, deserialize_with = "present")]
    flow: Option<FlowId>,
}

/// A field that, when given, holds a value (not `null`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A field that, when given, is one of the names of `T` (a unit-variant enum): `null` is
/// refused as a value of the wrong type, as for the other options, not as malformed JSON.
fn present_name<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error;
    match Value::deserialize(deserializer)? {
        Value::Null => Err(D::Error::invalid_type(
            serde::de::Unexpected::Other("null"),
            &"one of its names (leave the field out for the default)",
        )),
        value => T::deserialize(value).map(Some).map_err(D::Error::custom),
    }
}

/// The longest `delayMs`: a hundred years.
pub(crate) const MAX_DELAY_MS: u64 = SubmitOptions::MAX_TIMEOUT.as_millis() as u64;

impl SubmitBody {
    fn options(&self) -> Result<SubmitOptions, ApiError> {
        let mut options = SubmitOptions::new();
        if let Some(run_at) = self.run_at {
            options = options.run_at(run_at);
        }
        if let Some(ms) = self.delay_ms {
            if ms > MAX_DELAY_MS {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_options",
                    format!("delayMs must be at most {MAX_DELAY_MS} (a hundred years)"),
                ));
            }
            options = options.delay(Duration::from_millis(ms));
        }
        if let Some(priority) = self.priority {
            options = options.priority(priority);
        }
        if let Some(retries) = self.retries {
            options = options.retries(retries);
        }
        if let Some(ms) = self.timeout_ms {
            options = options.timeout(Duration::from_millis(ms));
        }
        if let Some(key) = &self.unique_key {
            options = options.unique_key(key.clone());
        }
        if let Some(queue) = &self.queue {
            options = options.queue(queue.clone());
        }
        if let Some(key) = &self.concurrency_key {
            options = options.concurrency_key(key.clone());
        }
        if let Some(limit) = self.concurrency_limit {
            options = options.concurrency_limit(limit);
        }
        if let Some(parents) = &self.depends_on {
            options = options.depends_on(parents.iter().copied());
        }
        if let Some(policy) = self.on_parent_failure {
            options = options.on_parent_failure(policy);
        }
        if let Some(source) = self.payload_from {
            if source != PayloadFrom::Submitted && self.payload.is_some() {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_options",
                    format!(
                        "payloadFrom \"{}\" runs the job with its parents' results: leave out the payload",
                        source.as_str()
                    ),
                ));
            }
            options = options.payload_from(source);
        }
        if let Some(flow) = self.flow {
            options = options.flow(flow);
        }
        Ok(options)
    }
}

/// A JSON body the route cannot read, with an example of one it can.
fn body_error(rejection: JsonRejection, example: &str) -> ApiError {
    let status = rejection.status();
    let code = match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        _ => "invalid_body",
    };
    ApiError::new(
        status,
        code,
        format!(
            "{}; send JSON such as {example} with Content-Type: application/json",
            rejection.body_text()
        ),
    )
}

/// `POST /jobs`.
///
/// A `traceparent` header puts the job in that trace, unless the request already runs in a
/// traced span (a tracing middleware continued the header there), whose context is then
/// taken instead. A header that does not read, or that is sent more than once, is ignored
/// (the W3C recommendation has a receiver start a new trace then): tracing is not a reason
/// to refuse work.
pub(crate) async fn submit(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Result<Json<SubmitBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body
        .map_err(|rejection| body_error(rejection, r#"{"type": "SendEmail", "payload": {...}}"#))?;
    let mut options = body.options()?;
    if jobs_runtime::current_trace_parent().is_none() {
        if let Some(parent) = header_trace_parent(&headers) {
            options = options.trace_parent(parent);
        }
    }
    let payload = body.payload.unwrap_or(Value::Null);
    let prepared = state
        .jobs
        .prepare_job_with_options(&body.job_type, payload, &options)?;
    let id = prepared.id;
    let job = state.jobs.submit_prepared(prepared).await?;
    // A unique key held by an active job answers with that job: nothing was created.
    let status = if job.id == id {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(job)))
}

/// The request's one well-formed `traceparent` header, if it has one.
fn header_trace_parent(headers: &axum::http::HeaderMap) -> Option<jobs_runtime::TraceParent> {
    let mut values = headers.get_all("traceparent").iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()?.parse().ok()
}

/// A job or flow id from a path: `400 invalid_id` when it is not one.
pub(crate) fn parse_id<T>(id: &str) -> Result<T, ApiError>
where
    T: std::str::FromStr<Err = jobs_runtime::ParseJobIdError>,
{
    id.parse().map_err(|error: jobs_runtime::ParseJobIdError| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", error.to_string())
    })
}

/// `GET /jobs/{id}`.
pub(crate) async fn get_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    let Some(job) = state.jobs.get_job(id).await? else {
        return Err(ApiError::not_found("job with this id"));
    };
    // Why a due job waits, and which jobs wait for it; a store without the operator's
    // calls cannot tell.
    let waiting = crate::error::if_supported(state.jobs.waiting_reason(&job).await)?.flatten();
    let children = crate::error::if_supported(state.jobs.dependants(id).await)?;
    let mut body = serde_json::to_value(&job).map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("could not describe the job: {error}"),
        )
    })?;
    body["waitingOn"] = match waiting {
        Some(reason) => json!({ "limit": reason.kind(), "reason": reason.to_string() }),
        None => Value::Null,
    };
    // Both ways through the graph: the jobs it waits for, and those that wait for it.
    body["parents"] = json!(job.depends_on);
    body["children"] = json!(children);
    Ok(Json(body))
}

/// `GET /jobs/{id}/result`.
pub(crate) async fn result(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    let Some(job) = state.jobs.get_job(id).await? else {
        return Err(ApiError::not_found("job with this id"));
    };
    if job.status != JobStatus::Succeeded {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_succeeded",
            format!(
                "the job is {}; a result exists only once it has succeeded",
                job.status
            ),
        )
        .with("status", json!(job.status))
        .with("jobError", json!(job.error)));
    }
    let result = state.jobs.get_job_result(id).await?.unwrap_or(Value::Null);
    Ok(Json(json!({ "result": result })))
}

/// `POST /jobs/{id}/cancel`.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    require_json(&headers)?;
    let (canceled, status) = match state.jobs.cancel(id).await? {
        CancelOutcome::CanceledQueued(job) => (true, job.status),
        CancelOutcome::Requested(job) => (true, job.status),
        CancelOutcome::AlreadyFinished(status) => (false, status),
        CancelOutcome::NotFound => return Err(ApiError::not_found("job with this id")),
        _ => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "unexpected cancel outcome",
            ))
        }
    };
    Ok(Json(json!({ "canceled": canceled, "status": status })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    status: Option<String>,
    #[serde(rename = "type")]
    job_type: Option<String>,
    queue: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// A query string the route cannot read, with what it accepts.
fn query_error(rejection: QueryRejection, accepted: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        format!("{}; accepted: {accepted}", rejection.body_text()),
    )
}

/// `GET /jobs`.
pub(crate) async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(params) =
        params.map_err(|rejection| query_error(rejection, "status, type, queue, limit, cursor"))?;
    let mut query = filter_query(
        params.status.as_deref(),
        params.job_type,
        params.queue,
        "invalid_query",
    )?;
    if let Some(limit) = params.limit {
        if limit == 0 || limit > JobQuery::MAX_LIMIT {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("limit must be between 1 and {}", JobQuery::MAX_LIMIT),
            ));
        }
        query = query.limit(limit);
    }
    if let Some(cursor) = params.cursor {
        query = query.cursor(parse_id(&cursor)?);
    }
    let page = state.jobs.list_jobs(query).await?;
    Ok(Json(
        json!({ "jobs": page.jobs, "nextCursor": page.next_cursor }),
    ))
}

/// The filter of a listing or a bulk action; an empty type or queue is no filter.
fn filter_query(
    status: Option<&str>,
    job_type: Option<String>,
    queue: Option<String>,
    code: &'static str,
) -> Result<JobQuery, ApiError> {
    let mut query = JobQuery::new();
    if let Some(status) = status {
        let status: JobStatus =
            status
                .parse()
                .map_err(|error: jobs_runtime::ParseJobStatusError| {
                    ApiError::new(StatusCode::BAD_REQUEST, code, error.to_string())
                })?;
        query = query.status(status);
    }
    if let Some(job_type) = job_type.filter(|t| !t.is_empty()) {
        query = query.job_type(job_type);
    }
    if let Some(queue) = queue.filter(|q| !q.is_empty()) {
        query = query.queue(queue);
    }
    Ok(query)
}

/// `POST /jobs/{id}/retry`.
pub(crate) async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    require_json(&headers)?;
    match state.jobs.retry_job(id).await? {
        RetryOutcome::Retried(job) => Ok(Json(*job)),
        RetryOutcome::NotRetryable(status) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_retryable",
            format!("the job is {status}; only a Failed or Canceled job can be retried"),
        )
        .with("status", json!(status))),
        RetryOutcome::KeyHeld => Err(ApiError::new(
            StatusCode::CONFLICT,
            "unique_key_held",
            "another active job of this type holds the job's unique key; retry it once that job has finished",
        )),
        RetryOutcome::ParentsNotDone => Err(ApiError::new(
            StatusCode::CONFLICT,
            "parents_not_done",
            "the job depends on jobs that have not all ended as it needs; retry those first",
        )),
        _ => Err(ApiError::not_found("job with this id")),
    }
}

/// `DELETE /jobs/{id}`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    match state.jobs.delete_job(id).await? {
        DeleteOutcome::Deleted => Ok(StatusCode::NO_CONTENT),
        DeleteOutcome::NotFinished(status) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_finished",
            format!("the job is {status}; only a finished job can be deleted (cancel it first)"),
        )
        .with("status", json!(status))),
        _ => Err(ApiError::not_found("job with this id")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkFilter {
    status: Option<String>,
    #[serde(rename = "type")]
    job_type: Option<String>,
    queue: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct BulkBody {
    action: BulkActionName,
    filter: BulkFilter,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
enum BulkActionName {
    Cancel,
    Retry,
    Delete,
}

/// `POST /jobs/bulk`: cancel, retry or delete every job that matches a filter, or with
/// `dryRun` count them (what the dashboard shows before asking to confirm).
pub(crate) async fn bulk(
    State(state): State<AppState>,
    body: Result<Json<BulkBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body.map_err(|rejection| {
        body_error(
            rejection,
            r#"{"action": "retry", "filter": {"status": "Failed"}}"#,
        )
    })?;
    let filter = filter_query(
        body.filter.status.as_deref(),
        body.filter.job_type,
        body.filter.queue,
        "invalid_body",
    )?;
    if body.dry_run {
        let matched = state.jobs.count_matching(&filter).await?;
        return Ok(Json(json!({ "matched": matched, "changed": 0 })));
    }
    let action = match body.action {
        BulkActionName::Cancel => BulkAction::Cancel,
        BulkActionName::Retry => BulkAction::Retry,
        BulkActionName::Delete => BulkAction::Delete,
    };
    let report = state.jobs.bulk(action, &filter).await?;
    Ok(Json(json!(report)))
}

/// `GET /queues`.
pub(crate) async fn queues(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let queues = state.jobs.queues().await?;
    Ok(Json(json!({ "queues": queues })))
}

/// `POST /queues/{queue}/pause`.
pub(crate) async fn pause_queue(
    state: State<AppState>,
    queue: Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    set_paused(state, queue, headers, true).await
}

/// `POST /queues/{queue}/resume`.
pub(crate) async fn resume_queue(
    state: State<AppState>,
    queue: Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    set_paused(state, queue, headers, false).await
}

/// Pauses or resumes a queue; answers its state and whether the call changed it.
async fn set_paused(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    headers: axum::http::HeaderMap,
    paused: bool,
) -> Result<Json<Value>, ApiError> {
    require_json(&headers)?;
    let changed = if paused {
        state.jobs.pause_queue(&queue).await?
    } else {
        state.jobs.resume_queue(&queue).await?
    };
    Ok(Json(
        json!({ "queue": queue, "paused": paused, "changed": changed }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ThroughputParams {
    minutes: Option<u32>,
}

/// `GET /throughput?minutes=`.
pub(crate) async fn throughput(
    State(state): State<AppState>,
    params: Result<Query<ThroughputParams>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(params) =
        params.map_err(|rejection| query_error(rejection, "minutes (1 to 1440)"))?;
    let minutes = params.minutes.unwrap_or(60);
    if !(1..=1_440).contains(&minutes) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "minutes must be between 1 and 1440",
        ));
    }
    let series = state.jobs.throughput(minutes).await?;
    Ok(Json(json!({ "minutes": series })))
}

/// `GET /job-types`.
pub(crate) async fn job_types(State(state): State<AppState>) -> Json<Value> {
    let types: Vec<Value> = state
        .jobs
        .catalog()
        .entries()
        .into_iter()
        .map(|(name, entry)| {
            json!({
                "type": name,
                "declaredAt": entry.location().to_string(),
                "argsSchema": entry.executor().args_schema(),
            })
        })
        .collect();
    Json(json!({ "jobTypes": types }))
}

/// Refuses a state-changing request that does not say it is JSON. A cross-site HTML form
/// can only send form encodings or plain text, and a page script cannot send JSON to
/// another origin without a preflight that this server never grants, so this keeps a page
/// the operator visits from changing jobs behind their back.
pub(crate) fn require_json(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "json_required",
            "send this request with Content-Type: application/json (cross-site forms cannot)",
        ))
    }
}
