//! The HTTP API of the `jobs` framework: an [axum](https://docs.rs/axum) router that an
//! application mounts next to its own routes.
//!
//! ```no_run
//! # async fn run(jobs: jobs_runtime::Jobs) -> std::io::Result<()> {
//! let app = jobs_http::router(jobs.clone());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /` | the dashboard: a page that lists jobs live, submits, cancels and shows results; it asks for the token when one is required |
//! | `GET /health` | `200 {"status":"ok"}`, without authentication |
//! | `POST /jobs` `{"type": "...", "payload": ...}` (and run options: `runAt`, `delayMs`, `priority`, `retries`, `timeoutMs`, `uniqueKey`, `queue`) | `201` and the job (`200` and the existing job when its `uniqueKey` is held); `400 invalid_options`; `400` with `unknown_job_type` (and `knownTypes`) or `invalid_payload`; `400`/`422 invalid_body` for malformed JSON or fields; `415 unsupported_media_type`; `413 body_too_large` / `payload_too_large` |
//! | `GET /jobs?status=&type=&limit=&cursor=` | `200 {"jobs": [...], "nextCursor": ...}`, newest first |
//! | `GET /jobs/{id}` | `200` and the job; `404 not_found`; `400 invalid_id` |
//! | `GET /jobs/{id}/result` | `200 {"result": ...}` once succeeded; `409 not_succeeded` with the status |
//! | `POST /jobs/{id}/cancel` | `200 {"canceled": bool, "status": ...}`; `404 not_found` |
//! | `GET /jobs/{id}/events`, `GET /events` | server-sent events (`submitted`, `started`, `progress`, `cancelRequested`, `finished`; `lagged` with `{"missed": n}` when a slow client skipped events and should read the jobs again) |
//! | `GET /job-types` | `200 {"jobTypes": [{"type": ..., "declaredAt": ..., "argsSchema": ...}]}`; `argsSchema` is the JSON Schema of the payload where known ([`JobExecutor::args_schema`](jobs_runtime::JobExecutor::args_schema)), else `null` |
//! | `GET /metrics` | Prometheus text: `jobs{type,status}`, `jobs_queue_depth`, `jobs_execution_duration_seconds` (histogram by type and outcome, this process) |
//! | `GET /openapi.json` | the OpenAPI 3 description of these routes, without authentication |
//!
//! Every error body is `{"error": {"code": "...", "message": "..."}}` with a stable `code`;
//! storage failures answer `500 internal` without their details, which go to the log.
//! With [`HttpOptions::bearer_token`], every route but `/health` requires
//! `Authorization: Bearer <token>` (compared in constant time).
#![warn(missing_docs)]

mod auth;
mod dashboard;
mod error;
mod events;
mod metrics;
mod openapi;
mod routes;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use jobs_runtime::Jobs;

pub use error::ApiError;

/// Settings of the router.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    bearer_token: Option<String>,
    max_body_bytes: usize,
    max_streams: usize,
}

impl HttpOptions {
    /// No authentication, request bodies up to 1 MiB, at most 1,000 event streams.
    pub fn new() -> Self {
        Self {
            bearer_token: None,
            max_body_bytes: 1 << 20,
            max_streams: 1_000,
        }
    }

    /// At most `streams` server-sent event streams (`/events`, `/jobs/{id}/events`) open
    /// at once across all clients (default 1,000); beyond it a request gets `503` with
    /// the code `too_many_streams`. Each open stream holds a subscription to every event.
    pub fn max_streams(mut self, streams: usize) -> Self {
        self.max_streams = streams;
        self
    }

    /// Require `Authorization: Bearer <token>` on every route but `/health`.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into()).filter(|t: &String| !t.is_empty());
        self
    }

    /// The token from the environment variable `name`, if it is set and not empty.
    pub fn bearer_token_from_env(self, name: &str) -> Self {
        match std::env::var(name) {
            Ok(token) if !token.is_empty() => self.bearer_token(token),
            _ => self,
        }
    }

    /// The largest request body accepted (default 1 MiB); larger ones get `413`.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) jobs: Jobs,
    pub(crate) token: Option<Arc<str>>,
    /// How many event streams are open, and the most allowed.
    pub(crate) open_streams: Arc<std::sync::atomic::AtomicUsize>,
    pub(crate) max_streams: usize,
}

/// The API router with the default [`HttpOptions`].
pub fn router(jobs: Jobs) -> Router {
    router_with(jobs, HttpOptions::new())
}

/// The API router with `options`.
pub fn router_with(jobs: Jobs, options: HttpOptions) -> Router {
    let state = AppState {
        jobs,
        token: options.bearer_token.map(Arc::from),
        open_streams: Arc::default(),
        max_streams: options.max_streams,
    };
    let api = Router::new()
        .route("/jobs", post(routes::submit).get(routes::list))
        .route("/jobs/{id}", get(routes::get_job))
        .route("/jobs/{id}/result", get(routes::result))
        .route("/jobs/{id}/cancel", post(routes::cancel))
        .route("/jobs/{id}/events", get(events::job_events))
        .route("/events", get(events::all_events))
        .route("/job-types", get(routes::job_types))
        .route("/metrics", get(metrics::serve))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/", get(dashboard::serve))
        .route("/health", get(routes::health))
        .route("/openapi.json", get(openapi::serve))
        .merge(api)
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .with_state(state)
}
