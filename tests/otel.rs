//! OpenTelemetry (feature `otel`): a job carries the trace context of the span it was
//! submitted in (W3C traceparent), and its execution's span continues that trace, in this
//! process and in another one over PostgreSQL.
//!
//! Each test binary has one global subscriber: a `tracing-opentelemetry` layer over an SDK
//! tracer whose exporter keeps every finished span in memory. The cross-process test runs
//! this binary again with `JOBS_OTEL_WORKER` set: the ignored test `otel_worker_process`
//! then serves jobs on the given schema until it is killed.
#![cfg(feature = "otel")]

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use jobs::prelude::*;
use jobs::TraceParent;
use jobs_postgres::{PostgresOptions, PostgresStore};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

/// Answers the trace id (hex) of the span it runs in, as the executor sees it.
#[job_executor("SeesItsTrace")]
async fn sees_its_trace() -> Result<String, JobError> {
    Ok(span_context().trace_id().to_string())
}

/// The OpenTelemetry span context of the current `tracing` span.
fn span_context() -> SpanContext {
    tracing::Span::current()
        .context()
        .span()
        .span_context()
        .clone()
}

/// Keeps every exported span.
#[derive(Clone, Debug, Default)]
struct Kept(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Kept {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

/// Installs the binary's subscriber once; the spans it has exported so far.
fn exported() -> Arc<Mutex<Vec<SpanData>>> {
    static INSTALLED: OnceLock<(Kept, SdkTracerProvider)> = OnceLock::new();
    let (kept, _) = INSTALLED.get_or_init(|| {
        let kept = Kept::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(kept.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("jobs-tests"));
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .expect("the only global subscriber");
        (kept, provider)
    });
    kept.0.clone()
}

/// The exported `job` span of job `id`.
fn job_span(id: JobId) -> SpanData {
    let spans = exported();
    let spans = spans.lock().unwrap();
    spans
        .iter()
        .find(|span| {
            span.name == "job"
                && span
                    .attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == "job.id" && kv.value.as_str() == id.to_string())
        })
        .cloned()
        .unwrap_or_else(|| panic!("no job span of {id} among {} spans", spans.len()))
}

/// Submits a `SeesItsTrace` job inside a new span `request`; the job and that span's
/// context.
async fn submit_in_a_request(jobs: &Jobs, options: SubmitOptions) -> (Job, SpanContext) {
    async {
        let job = jobs
            .submit_job_with_options("SeesItsTrace", serde_json::Value::Null, &options)
            .await
            .unwrap();
        (job, span_context())
    }
    .instrument(tracing::info_span!("request"))
    .await
}

async fn trace_seen_by(jobs: &Jobs, id: JobId) -> String {
    let done = common::finished(jobs, id).await;
    assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    let result = jobs.get_job_result(id).await.unwrap().expect("a result");
    result.as_str().expect("a trace id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_continues_the_trace_it_was_submitted_in() {
    exported();
    let jobs = Jobs::builder().start().unwrap();
    let (job, request) = submit_in_a_request(&jobs, SubmitOptions::new()).await;
    assert!(request.is_valid(), "the request span has a context");
    let parent = job
        .trace_parent
        .expect("the submit captured the request's context");
    assert_eq!(parent.trace_id(), request.trace_id().to_bytes());
    assert_eq!(parent.span_id(), request.span_id().to_bytes());
    assert!(parent.sampled());
    let stored = jobs.get_job(job.id).await.unwrap().unwrap();
    assert_eq!(stored.trace_parent, Some(parent), "stored with the job");

    assert_eq!(
        trace_seen_by(&jobs, job.id).await,
        request.trace_id().to_string(),
        "the executor runs in the request's trace"
    );
    let span = job_span(job.id);
    assert_eq!(span.span_context.trace_id(), request.trace_id());
    assert_eq!(
        span.parent_span_id,
        request.span_id(),
        "the job span is a child of the submitter's span"
    );
    assert!(
        span.parent_span_is_remote,
        "its parent came through the store"
    );
    jobs.shutdown().await;
}

#[tokio::test]
async fn a_job_submitted_outside_a_trace_starts_its_own_and_a_given_trace_parent_wins() {
    exported();
    let jobs = Jobs::builder().start().unwrap();
    let lone = jobs.submit_job("SeesItsTrace").await.unwrap();
    assert_eq!(lone.trace_parent, None, "no span, no trace parent");
    let seen = trace_seen_by(&jobs, lone.id).await;
    assert_ne!(seen, opentelemetry::trace::TraceId::INVALID.to_string());
    assert_eq!(
        job_span(lone.id).parent_span_id,
        SpanId::INVALID,
        "the job span is a root"
    );

    let given: TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        .parse()
        .unwrap();
    let (job, request) = submit_in_a_request(&jobs, SubmitOptions::new().trace_parent(given)).await;
    assert_eq!(
        job.trace_parent,
        Some(given),
        "the option wins over the span"
    );
    assert_ne!(request.trace_id().to_bytes(), given.trace_id());
    assert_eq!(trace_seen_by(&jobs, job.id).await, given.trace_id_hex());
    assert_eq!(job_span(job.id).parent_span_id.to_bytes(), given.span_id());
    jobs.shutdown().await;
}

/// `POST /jobs` in a server whose middleware traces each request: the request's span is the
/// job's parent, and a `traceparent` header it was sent is not read a second time (had the
/// middleware continued it, the span would already be in that trace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_request_span_wins_over_the_traceparent_header() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    exported();
    let jobs = Jobs::builder().concurrency(0).start().unwrap();
    let app = jobs::http::router(jobs.clone()).layer(axum::middleware::from_fn(
        |request: axum::extract::Request, next: axum::middleware::Next| {
            next.run(request)
                .instrument(tracing::info_span!("http_request"))
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let body = r#"{"type": "SeesItsTrace"}"#;
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         traceparent: {header}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, json) = response.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 201"), "{response}");
    let job: Job = serde_json::from_str(json).expect("a job");

    let parent = job.trace_parent.expect("the request span's context");
    assert_ne!(
        parent.trace_id_hex(),
        header[3..35],
        "the header was not read over the span"
    );
    let request_span = {
        let spans = exported();
        let spans = spans.lock().unwrap();
        spans
            .iter()
            .find(|span| {
                span.name == "http_request"
                    && span.span_context.span_id().to_bytes() == parent.span_id()
            })
            .cloned()
            .expect("the job's parent is the exported request span")
    };
    assert_eq!(
        request_span.span_context.trace_id().to_bytes(),
        parent.trace_id()
    );
    server.abort();
    jobs.shutdown().await;
}

/// The hand-written `traceparent` reader and writer agree with OpenTelemetry's W3C
/// propagator on what it accepts and how it writes a context; where they differ, this
/// reader is the stricter one, as the W3C recommendation asks (exact field lengths).
#[test]
fn traceparent_text_agrees_with_the_w3c_propagator() {
    let propagator = TraceContextPropagator::new();
    let extract = |text: &str| {
        let carrier = HashMap::from([("traceparent".to_owned(), text.to_owned())]);
        let context = propagator.extract(&carrier);
        let span = context.span().span_context().clone();
        span.is_valid().then_some(span)
    };
    let both = [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00-4bf92f3577b34da6a3ce929d0e0e473x-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736",
        "",
    ];
    for text in both {
        let ours = text.parse::<TraceParent>().ok();
        let theirs = extract(text);
        assert_eq!(ours.is_some(), theirs.is_some(), "{text:?}");
        if let (Some(ours), Some(theirs)) = (ours, theirs) {
            assert_eq!(ours.trace_id(), theirs.trace_id().to_bytes(), "{text:?}");
            assert_eq!(ours.span_id(), theirs.span_id().to_bytes(), "{text:?}");
            assert_eq!(ours.flags(), theirs.trace_flags().to_u8(), "{text:?}");
            let mut injected: HashMap<String, String> = HashMap::new();
            let context = opentelemetry::Context::new().with_remote_span_context(theirs);
            propagator.inject_context(&context, &mut injected);
            assert_eq!(injected["traceparent"], ours.to_string(), "{text:?}");
        }
    }
    // The propagator reads a short id as one with leading zeros; a W3C id has its length.
    let short = "00-4bf92f3577b34da6-00f067aa0ba902b7-01";
    assert!(extract(short).is_some());
    assert!(short.parse::<TraceParent>().is_err());
}

fn postgres_options(schema: &str) -> PostgresOptions {
    PostgresOptions::new().schema(schema).max_connections(4)
}

/// A worker process, killed when dropped so that a failing test leaves none behind.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_crosses_the_process_boundary_over_postgres() {
    let Some(url) = common::database_url() else {
        return;
    };
    exported();
    let schema = common::fresh_schema("jobs_otel");
    let store = PostgresStore::connect_with(&url, postgres_options(&schema))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    // This process only submits and reads: the job can only run in the worker.
    let jobs = Jobs::builder().store(store).concurrency(0).start().unwrap();
    let _worker = Worker(
        Command::new(std::env::current_exe().unwrap())
            .args(["otel_worker_process", "--exact", "--ignored", "--nocapture"])
            .env("JOBS_OTEL_WORKER", "1")
            .env("JOBS_OTEL_SCHEMA", &schema)
            .env("DATABASE_URL", &url)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a worker process"),
    );
    let (job, request) = submit_in_a_request(&jobs, SubmitOptions::new()).await;
    assert_eq!(
        trace_seen_by(&jobs, job.id).await,
        request.trace_id().to_string(),
        "the worker process ran the job in the submitter's trace"
    );
    jobs.shutdown().await;
}

/// Serves jobs until killed, when run as a worker process by the test above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a worker process for the cross-process test, started by it"]
async fn otel_worker_process() {
    if std::env::var_os("JOBS_OTEL_WORKER").is_none() {
        return;
    }
    exported();
    let url = std::env::var("DATABASE_URL").unwrap();
    let schema = std::env::var("JOBS_OTEL_SCHEMA").unwrap();
    let store = PostgresStore::connect_with(&url, postgres_options(&schema))
        .await
        .unwrap();
    let _jobs = Jobs::builder().store(store).concurrency(2).start().unwrap();
    std::future::pending::<()>().await;
}
