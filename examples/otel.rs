//! OpenTelemetry: a job submitted inside a span runs in that span's trace, and both spans
//! are exported to stdout. With PostgreSQL the execution may be in another process; the
//! trace context travels with the job.
//!
//! Run it with `cargo run --example otel --features otel`: it prints the `checkout` span
//! and the `job` span with one trace id, the job's parent being the checkout.

use jobs::prelude::*;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

#[job_executor("SendReceipt")]
async fn send_receipt(order: u64) -> Result<String, JobError> {
    tracing::info!(order, "receipt sent");
    Ok(format!("receipt for order {order}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Spans go to stdout as they end; any exporter (OTLP, Jaeger, ...) plugs in the same way.
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(opentelemetry_stdout::SpanExporter::default())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("otel-example"));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))?;

    let jobs = Jobs::builder().start()?;
    // The submit captures the checkout span's trace context and stores it with the job.
    let job = async { jobs.submit::<send_receipt>(42).await }
        .instrument(tracing::info_span!("checkout"))
        .await?;
    let output = jobs.wait_for_output(&job).await?;
    let trace = job.job().trace_parent.map(|parent| parent.trace_id_hex());
    println!("{output}, submitted in trace {}", trace.unwrap_or_default());

    jobs.shutdown().await;
    provider.shutdown()?;
    Ok(())
}
