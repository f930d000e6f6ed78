//! The routes of flows and batches: a flow as it stands, and the cancel of what in it has
//! not finished.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use jobs_runtime::FlowId;

use crate::routes::{parse_id, require_json};
use crate::{ApiError, AppState};

fn no_such_flow() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no stored job belongs to a flow with this id",
    )
}

/// `GET /flows/{id}`: the members with their statuses, the edges between them (parent →
/// child) and how many are in each status.
pub(crate) async fn get_flow(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id: FlowId = parse_id(&id)?;
    match state.jobs.get_flow(id).await? {
        Some(flow) => Ok(Json(flow)),
        None => Err(no_such_flow()),
    }
}

/// `POST /flows/{id}/cancel`: cancels every member that has not finished (waiting and
/// queued ones at once, running ones asked to stop); answers how many of each.
pub(crate) async fn cancel_flow(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let id: FlowId = parse_id(&id)?;
    require_json(&headers)?;
    let report = state.jobs.cancel_flow(id).await?;
    if report.members == 0 {
        return Err(no_such_flow());
    }
    Ok(Json(report))
}
