//! The JSON error body every route answers with.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use jobs_runtime::{JobsError, StorageError, StorageErrorKind, SubmitError};
use serde_json::{json, Map, Value};

/// An error answer: a status, a stable machine-readable code, a message for people, and
/// extra fields where a client can act on them (the known job types, the job's status).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    extra: Map<String, Value>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
        }
    }

    /// Adds a field to the error object.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    pub(crate) fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {what} here"),
        )
    }

    /// The answer to a failure of the store, by its kind: a passing failure is `503`
    /// (try again shortly), a value the store cannot keep `400`, a conflict `409`,
    /// anything else `500`. Only the kinds whose message describes the request show it;
    /// the others stay in the log, as they may name hosts, tables or credentials.
    pub(crate) fn internal(error: &StorageError) -> Self {
        match error.kind() {
            StorageErrorKind::Transient => {
                tracing::warn!(%error, "the job store is unavailable while serving a request");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the job store is unreachable or busy; try again shortly",
                )
            }
            StorageErrorKind::InvalidInput => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_input",
                error.message().to_owned(),
            ),
            StorageErrorKind::Conflict => {
                Self::new(StatusCode::CONFLICT, "conflict", error.message().to_owned())
            }
            StorageErrorKind::Full => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_full",
                error.message().to_owned(),
            ),
            _ => {
                tracing::error!(%error, "the job store failed while serving a request");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the job store failed; try again later",
                )
            }
        }
    }
}

/// The answer of an operator's call, `None` when the store does not offer such calls (the
/// route then leaves that part out); any other failure is the route's error.
pub(crate) fn if_supported<T>(result: Result<T, JobsError>) -> Result<Option<T>, ApiError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(JobsError::Storage(error)) if error.kind() == StorageErrorKind::Unsupported => Ok(None),
        Err(error) => Err(error.into()),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = Map::new();
        error.insert("code".into(), json!(self.code));
        error.insert("message".into(), json!(self.message));
        error.extend(self.extra);
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

impl From<SubmitError> for ApiError {
    fn from(error: SubmitError) -> Self {
        let message = error.to_string();
        match error {
            SubmitError::UnknownJobType { known, .. } => {
                Self::new(StatusCode::BAD_REQUEST, "unknown_job_type", message)
                    .with("knownTypes", json!(known))
            }
            SubmitError::InvalidPayload { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_payload", message)
            }
            SubmitError::InvalidOptions { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_options", message)
            }
            // The request is well formed; the store does not hold the job it names (never
            // did, or it was deleted): a conflict with the store's state, as a retry whose
            // parents are not done is.
            SubmitError::UnknownParent { parent, .. } => {
                Self::new(StatusCode::CONFLICT, "unknown_parent", message)
                    .with("parent", json!(parent))
            }
            SubmitError::PayloadTooLarge { limit, .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
                    .with("limitBytes", json!(limit))
            }
            SubmitError::ShutDown => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
            }
            SubmitError::StoreFull { .. } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "store_full", message)
            }
            SubmitError::Storage(error) => Self::internal(&error),
            _ => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the submission failed",
            ),
        }
    }
}

impl From<JobsError> for ApiError {
    fn from(error: JobsError) -> Self {
        match error {
            JobsError::NotFound(_) => Self::not_found("job with this id"),
            JobsError::Storage(error) => Self::internal(&error),
            JobsError::ShutDown => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                error.to_string(),
            ),
            JobsError::InvalidQueue(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_queue", error.to_string())
            }
            other => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_failures_are_answered_by_their_kind() {
        let answer = |kind| ApiError::internal(&StorageError::of_kind(kind, "details"));
        let unavailable = answer(StorageErrorKind::Transient);
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.code(), "store_unavailable");
        let response = unavailable.into_response();
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "1");
        let invalid = answer(StorageErrorKind::InvalidInput);
        assert_eq!(
            (invalid.status(), invalid.message.as_str()),
            (StatusCode::BAD_REQUEST, "details")
        );
        assert_eq!(
            answer(StorageErrorKind::Conflict).status(),
            StatusCode::CONFLICT
        );
        let other = answer(StorageErrorKind::Other);
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            !other.message.contains("details"),
            "the details stay in the log"
        );
    }
}
