//! The JSON routes.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use std::time::Duration;

use jobs_runtime::{CancelOutcome, JobId, JobQuery, JobStatus, SubmitOptions, Timestamp};
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
    #[serde(default)]
    payload: Value,
    /// Not before this time (RFC 3339).
    run_at: Option<Timestamp>,
    /// Not before this many milliseconds from now.
    delay_ms: Option<u64>,
    priority: Option<i16>,
    retries: Option<u32>,
    timeout_ms: Option<u64>,
    unique_key: Option<String>,
    queue: Option<String>,
}

impl SubmitBody {
    fn options(&self) -> SubmitOptions {
        let mut options = SubmitOptions::new();
        if let Some(run_at) = self.run_at {
            options = options.run_at(run_at);
        }
        if let Some(ms) = self.delay_ms {
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
        options
    }
}

fn body_error(rejection: JsonRejection) -> ApiError {
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
            "{}; send JSON such as {{\"type\": \"SendEmail\", \"payload\": {{...}}}} with Content-Type: application/json",
            rejection.body_text()
        ),
    )
}

/// `POST /jobs`.
pub(crate) async fn submit(
    State(state): State<AppState>,
    body: Result<Json<SubmitBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body.map_err(body_error)?;
    let options = body.options();
    let prepared = state
        .jobs
        .prepare_job_with_options(&body.job_type, body.payload, &options)?;
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

pub(crate) fn parse_id_public(id: &str) -> Result<JobId, ApiError> {
    parse_id(id)
}

fn parse_id(id: &str) -> Result<JobId, ApiError> {
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
    match state.jobs.get_job(id).await? {
        Some(job) => Ok(Json(job)),
        None => Err(ApiError::not_found("job with this id")),
    }
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
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /jobs`.
pub(crate) async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(params) = params.map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!(
                "{}; accepted: status, type, limit, cursor",
                rejection.body_text()
            ),
        )
    })?;
    let mut query = JobQuery::new();
    if let Some(status) = params.status {
        let status: JobStatus =
            status
                .parse()
                .map_err(|error: jobs_runtime::ParseJobStatusError| {
                    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", error.to_string())
                })?;
        query = query.status(status);
    }
    if let Some(job_type) = params.job_type.filter(|t| !t.is_empty()) {
        query = query.job_type(job_type);
    }
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
fn require_json(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
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
