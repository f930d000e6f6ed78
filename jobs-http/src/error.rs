//! The JSON error body every route answers with.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use jobs_runtime::{JobsError, StorageError, SubmitError};
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

    pub(crate) fn internal(error: &StorageError) -> Self {
        // The details stay in the log: they may name hosts, tables or credentials.
        tracing::error!(%error, "the job store failed while serving a request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the job store failed; try again later",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = Map::new();
        error.insert("code".into(), json!(self.code));
        error.insert("message".into(), json!(self.message));
        error.extend(self.extra);
        (self.status, Json(json!({ "error": error }))).into_response()
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
            SubmitError::PayloadTooLarge { limit, .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
                    .with("limitBytes", json!(limit))
            }
            SubmitError::ShutDown => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
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
            other => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            ),
        }
    }
}
