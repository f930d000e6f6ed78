//! Each execution runs inside a `job` tracing span that carries the job's id and type, so
//! everything an executor logs can be traced back to its job.

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use jobs::prelude::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

#[job_executor("Traced")]
async fn traced(ctx: JobContext) -> Result<(), JobError> {
    tracing::info!(step = 1, "working on {}", ctx.job_id());
    tokio::task::yield_now().await;
    tracing::info!(step = 2, "still working");
    Ok(())
}

type Fields = HashMap<String, String>;
/// A span's name and fields.
type SpanRecord = (String, Fields);
/// An event's fields and the span it was emitted in.
type EventRecord = (Fields, Option<SpanRecord>);

/// Records the fields of every span, and for every event the fields of the span it was
/// emitted in.
#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<HashMap<u64, SpanRecord>>>,
    events: Arc<Mutex<Vec<EventRecord>>>,
    next_id: Arc<AtomicU64>,
}

thread_local! {
    static ENTERED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

struct FieldVisitor<'a>(&'a mut Fields);

impl Visit for FieldVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mut fields = Fields::new();
        attrs.record(&mut FieldVisitor(&mut fields));
        self.spans
            .lock()
            .unwrap()
            .insert(id, (attrs.metadata().name().to_owned(), fields));
        Id::from_u64(id)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::new();
        event.record(&mut FieldVisitor(&mut fields));
        let current = ENTERED.with(|stack| stack.borrow().last().copied());
        let span = current.and_then(|id| self.spans.lock().unwrap().get(&id).cloned());
        self.events.lock().unwrap().push((fields, span));
    }
    fn enter(&self, span: &Id) {
        ENTERED.with(|stack| stack.borrow_mut().push(span.into_u64()));
    }
    fn exit(&self, _: &Id) {
        ENTERED.with(|stack| {
            stack.borrow_mut().pop();
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_execution_runs_in_a_span_with_the_job_id_and_type() {
    let capture = Capture::default();
    tracing::subscriber::set_global_default(capture.clone()).unwrap();

    let jobs = Jobs::builder().concurrency(2).start().unwrap();
    let job = jobs.submit_job("Traced").await.unwrap();
    assert_eq!(
        common::finished(&jobs, job.id).await.status,
        JobStatus::Succeeded
    );
    jobs.shutdown().await;

    let events = capture.events.lock().unwrap();
    let from_executor: Vec<_> = events
        .iter()
        .filter(|(fields, _)| fields.contains_key("step"))
        .collect();
    assert_eq!(from_executor.len(), 2, "both executor events were captured");
    for (fields, span) in from_executor {
        let (name, span_fields) = span
            .as_ref()
            .unwrap_or_else(|| panic!("event {fields:?} outside any span"));
        assert_eq!(name, "job");
        assert_eq!(span_fields["job.id"], job.id.to_string());
        assert_eq!(span_fields["job.type"], "Traced");
        assert_eq!(span_fields["job.attempt"], "1");
    }
}
