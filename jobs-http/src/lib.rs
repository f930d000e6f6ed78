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
//! | `GET /` | the dashboard: a page that lists jobs live, submits, cancels and shows results, and shows a flow's steps live; it asks for the token when one is required |
//! | `GET /health` | `200 {"status":"ok"}`, without authentication |
//! | `POST /jobs` `{"type": "...", "payload": ...}` (and run options: `runAt`, `delayMs`, `priority`, `retries`, `timeoutMs`, `uniqueKey`, `queue`, `concurrencyKey`, `concurrencyLimit`; dependencies: `dependsOn` (parent ids), `onParentFailure` (`"cancel"`, `"run"`), `payloadFrom` (`"submitted"`, `"parent"`, `"parents"`, `"batch"`), `flow` (a flow id to join); a `traceparent` header puts it in that trace) | `201` and the job, `Queued` or `Waiting` for its parents (`200` and the existing job when its `uniqueKey` is held); `400 invalid_options`; `400` with `unknown_job_type` (and `knownTypes`) or `invalid_payload`; `409 unknown_parent` (and `parent`) when a parent is not stored; `400`/`422 invalid_body` for malformed JSON or fields; `415 unsupported_media_type`; `413 body_too_large` / `payload_too_large` |
//! | `GET /jobs?status=&type=&queue=&limit=&cursor=` | `200 {"jobs": [...], "nextCursor": ...}`, newest first |
//! | `GET /jobs/{id}` | `200` and the job, with `waitingOn` (`{"limit", "reason"}` when a limit holds the due job back, else `null`), `parents` (the ids it waits for) and `children` (the ids of the jobs that wait for it); `404 not_found`; `400 invalid_id` |
//! | `DELETE /jobs/{id}` | `204`: a finished job and its result are gone; `409 not_finished` |
//! | `POST /jobs/{id}/retry` (JSON body, ignored) | `200` and the job, `Queued` again (a `Failed` or `Canceled` job; it keeps its attempts and errors); `409 not_retryable` or `unique_key_held` |
//! | `POST /jobs/bulk` `{"action": "cancel"\|"retry"\|"delete", "filter": {"status", "type", "queue"}, "dryRun": bool}` | `200 {"matched": n, "changed": n}`; with `dryRun` only counts |
//! | `GET /queues` | `200 {"queues": [...]}`: per queue its queued, scheduled and running jobs, jobs finished and failed per minute, and the worker processes serving it (from their heartbeats) |
//! | `POST /queues/{queue}/pause`, `/resume` (JSON body, ignored) | `200 {"queue", "paused", "changed"}`: the queue is paused (or runs again) for every process on the store; `400 invalid_queue` |
//! | `GET /throughput?minutes=60` | `200 {"minutes": [{"minute", "succeeded", "failed", "canceled"}]}`, oldest first, the last the minute under way |
//! | `GET /jobs/{id}/result` | `200 {"result": ...}` once succeeded; `409 not_succeeded` with the status |
//! | `POST /jobs/{id}/cancel` | `200 {"canceled": bool, "status": ...}`; `404 not_found` |
//! | `GET /flows/{id}` | `200 {"id", "members": [job...], "edges": [{"parent", "child"}], "counts": {"total", "finished", "waiting", "queued", "running", "succeeded", "failed", "canceled"}}` ([`FlowView`](jobs_runtime::FlowView)); `404 not_found` when no job belongs to it; `400 invalid_id` |
//! | `POST /flows/{id}/cancel` (JSON body, ignored) | `200 {"members", "canceled", "stopRequested"}` ([`FlowCancellation`](jobs_runtime::FlowCancellation)): waiting and queued members canceled, running ones asked to stop; `404 not_found` |
//! | `GET /jobs/{id}/events`, `GET /events` | server-sent events (`submitted`, `released` (a waiting job's parents are done), `started`, `progress`, `cancelRequested`, `requeued`, `retried`, `deleted`, `finished`, and on `/events` `queuePaused` / `queueResumed`; `lagged` with `{"missed": n}` when a slow client skipped events and should read the jobs again) |
//! | `GET /job-types` | `200 {"jobTypes": [{"type": ..., "declaredAt": ..., "argsSchema": ...}]}`; `argsSchema` is the JSON Schema of the payload where known ([`JobExecutor::args_schema`](jobs_runtime::JobExecutor::args_schema)), else `null` |
//! | `GET /metrics` | Prometheus text: `jobs{type,status}`, `jobs_queue_depth`, `jobs_waiting_on_limit{limit,...}`, `jobs_execution_duration_seconds` (histogram by type and outcome, this process) |
//! | `GET /openapi.json` | the OpenAPI 3 description of these routes, without authentication |
//!
//! Every error body is `{"error": {"code": "...", "message": "..."}}` with a stable `code`;
//! storage failures answer `500 internal` without their details, which go to the log.
//! With [`HttpOptions::bearer_token`], every route but `/health` requires
//! `Authorization: Bearer <token>` (compared in constant time). Without one, only requests
//! naming a loopback host (`localhost`, `127.0.0.1`, `[::1]`) are served
//! ([`HttpOptions::allowed_hosts`]), against DNS rebinding.
#![warn(missing_docs)]

mod auth;
mod dashboard;
mod error;
mod events;
mod flows;
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
    allowed_hosts: Option<Vec<String>>,
    metrics_cache: std::time::Duration,
}

impl HttpOptions {
    /// No authentication (so loopback host names only), request bodies up to 1 MiB, at
    /// most 1,000 event streams.
    pub fn new() -> Self {
        Self {
            bearer_token: None,
            max_body_bytes: 1 << 20,
            max_streams: 1_000,
            allowed_hosts: None,
            metrics_cache: Self::DEFAULT_METRICS_CACHE,
        }
    }

    /// How long `GET /metrics` keeps the figures it reads from the store by default.
    pub const DEFAULT_METRICS_CACHE: std::time::Duration = std::time::Duration::from_secs(5);

    /// How long `GET /metrics` keeps the figures it reads from the store (jobs by type and
    /// status, the queue depth, jobs held back by limits, unserved queues) before reading
    /// them again: scrapes within `ttl` of a read get its figures, and concurrent scrapes
    /// share one read, so however often and from however many scrapers `/metrics` is read,
    /// the store counts at most once per `ttl` (default five seconds; zero reads on every
    /// scrape). The execution histograms are this process's own and always current.
    pub fn metrics_cache(mut self, ttl: std::time::Duration) -> Self {
        self.metrics_cache = ttl;
        self
    }

    /// The host names (without port) requests may name in their `Host` header; others get
    /// `403 host_not_allowed`. By default, without a bearer token only the loopback names
    /// are served ([`HttpOptions::LOOPBACK_HOSTS`]), so that a web page the operator
    /// visits cannot reach an unauthenticated server through DNS rebinding (its requests
    /// carry the attacker's host name); with a token, any host. Setting a list applies it
    /// with or without a token. `/health` answers any host. Requests without a `Host`
    /// header (not sent by browsers) are served.
    pub fn allowed_hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_hosts = Some(
            hosts
                .into_iter()
                .map(|host| host.into().to_ascii_lowercase())
                .collect(),
        );
        self
    }

    /// The host names served by default without a token.
    pub const LOOPBACK_HOSTS: [&'static str; 3] = ["localhost", "127.0.0.1", "[::1]"];

    /// Whether the router will serve requests without authentication.
    pub fn is_unauthenticated(&self) -> bool {
        self.bearer_token.is_none()
    }

    /// At most `streams` server-sent event streams (`/events`, `/jobs/{id}/events`) open
    /// at once across all clients (default 1,000); beyond it a request gets `503` with
    /// the code `too_many_streams`.
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
    /// The host names served (`None`: any).
    pub(crate) allowed_hosts: Option<Arc<[String]>>,
    /// The store's figures for `/metrics`, with when they were read, kept this long.
    pub(crate) store_metrics: Arc<tokio::sync::Mutex<Option<metrics::StoreFigures>>>,
    pub(crate) metrics_cache: std::time::Duration,
}

/// The API router with the default [`HttpOptions`].
pub fn router(jobs: Jobs) -> Router {
    router_with(jobs, HttpOptions::new())
}

/// The API router with `options`.
pub fn router_with(jobs: Jobs, options: HttpOptions) -> Router {
    let allowed_hosts = match (&options.allowed_hosts, &options.bearer_token) {
        (Some(hosts), _) => Some(hosts.clone()),
        (None, None) => Some(HttpOptions::LOOPBACK_HOSTS.map(str::to_owned).to_vec()),
        (None, Some(_)) => None,
    };
    let state = AppState {
        jobs,
        token: options.bearer_token.map(Arc::from),
        open_streams: Arc::default(),
        max_streams: options.max_streams,
        allowed_hosts: allowed_hosts.map(Arc::from),
        store_metrics: Arc::default(),
        metrics_cache: options.metrics_cache,
    };
    let api = Router::new()
        .route("/jobs", post(routes::submit).get(routes::list))
        .route("/jobs/bulk", post(routes::bulk))
        .route("/jobs/{id}", get(routes::get_job).delete(routes::delete))
        .route("/jobs/{id}/retry", post(routes::retry))
        .route("/jobs/{id}/result", get(routes::result))
        .route("/jobs/{id}/cancel", post(routes::cancel))
        .route("/jobs/{id}/events", get(events::job_events))
        .route("/events", get(events::all_events))
        .route("/flows/{id}", get(flows::get_flow))
        .route("/flows/{id}/cancel", post(flows::cancel_flow))
        .route("/job-types", get(routes::job_types))
        .route("/queues", get(routes::queues))
        .route("/queues/{queue}/pause", post(routes::pause_queue))
        .route("/queues/{queue}/resume", post(routes::resume_queue))
        .route("/throughput", get(routes::throughput))
        .route("/metrics", get(metrics::serve))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let pages = Router::new()
        .route("/", get(dashboard::serve))
        .route("/dashboard/app.js", get(dashboard::script))
        .route("/dashboard/app.css", get(dashboard::style))
        .route("/openapi.json", get(openapi::serve))
        .merge(api)
        .fallback(routes::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_allowed_host,
        ));
    Router::new()
        .route("/health", get(routes::health))
        .merge(pages)
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .with_state(state)
}
