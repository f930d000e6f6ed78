//! Trace contexts across the store: captured from the submitter's span, continued by the
//! execution's span. With the `otel` feature this goes through `tracing-opentelemetry`;
//! without it nothing is captured and a given `traceparent` is only recorded.

use jobs_core::TraceParent;

/// The trace context of the current `tracing` span, when an OpenTelemetry layer gives it
/// one that is valid.
#[cfg(feature = "otel")]
pub(crate) fn current() -> Option<TraceParent> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let span = tracing::Span::current();
    if span.is_none() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if !span_context.is_valid() {
        return None;
    }
    TraceParent::new(
        span_context.trace_id().to_bytes(),
        span_context.span_id().to_bytes(),
        span_context.trace_flags().to_u8(),
    )
}

/// Without the `otel` feature nothing is captured.
#[cfg(not(feature = "otel"))]
pub(crate) fn current() -> Option<TraceParent> {
    None
}

/// The W3C trace context a submit made here would store with its job: that of the current
/// `tracing` span when the `otel` feature is on and an OpenTelemetry layer gives the span a
/// valid context, otherwise `None`.
///
/// A server uses it to decide whether an incoming `traceparent` header is needed: when the
/// request already runs in a traced span (its middleware continued the caller's trace),
/// that span is the better parent.
pub fn current_trace_parent() -> Option<TraceParent> {
    current()
}

/// Makes the remote span `parent` the parent of `span`, which must not have been entered
/// yet. Without an OpenTelemetry layer this does nothing.
#[cfg(feature = "otel")]
pub(crate) fn continue_in(span: &tracing::Span, parent: TraceParent) {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let remote = SpanContext::new(
        TraceId::from_bytes(parent.trace_id()),
        SpanId::from_bytes(parent.span_id()),
        TraceFlags::new(parent.flags()),
        true,
        TraceState::default(),
    );
    // Fails only without the layer, or on a span already started: nothing to continue.
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}

/// Without the `otel` feature the span only records the `traceparent` (done at its
/// creation).
#[cfg(not(feature = "otel"))]
pub(crate) fn continue_in(_span: &tracing::Span, _parent: TraceParent) {}
