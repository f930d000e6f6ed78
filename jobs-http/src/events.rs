//! Server-sent events.
//!
//! Every stream ends when the job service begins to shut down, after a last event
//! `shutdown` that tells the client why, so a server's graceful shutdown never waits on
//! an open dashboard. A job's stream is handed that job's events alone, and ends after
//! its `finished` event. At most
//! [`HttpOptions::max_streams`](crate::HttpOptions::max_streams) streams are open at once;
//! beyond that a request gets `503`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, KeepAliveStream, Sse};
use futures_core::Stream;
use jobs_runtime::{JobEvent, JobEventStream, JobId, JobWatch};

use crate::routes::parse_id;
use crate::{ApiError, AppState};

/// Job events as SSE events: the event name is the kind, the data its JSON.
///
/// A client that reads too slowly skips events; it is then sent `event: lagged` with
/// `{"missed": n}` before the next event, so it knows to read the jobs again.
pub(crate) struct SseEvents {
    events: Source,
    only: Option<JobId>,
    reported_missed: u64,
    /// An event read while a `lagged` notice went out first.
    held: Option<JobEvent>,
    /// Completes when the service begins to shut down.
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// Set once the last event has gone out: the stream ends.
    done: bool,
    _slot: StreamSlot,
}

/// Where a stream's events come from: every job's, or one job's alone (handed only that
/// job's events, so other jobs' traffic costs it nothing and never pushes it behind).
enum Source {
    All(JobEventStream),
    One(JobWatch),
}

impl Source {
    fn missed(&self) -> u64 {
        match self {
            Source::All(events) => events.missed(),
            Source::One(watch) => watch.missed(),
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<JobEvent>> {
        match self {
            Source::All(events) => Pin::new(events).poll_next(cx),
            Source::One(watch) => Pin::new(watch).poll_next(cx),
        }
    }
}

/// One of the open streams, counted while it lives.
pub(crate) struct StreamSlot(Arc<AtomicUsize>);

impl StreamSlot {
    /// A slot if fewer than `limit` streams are open.
    fn take(open: &Arc<AtomicUsize>, limit: usize) -> Result<Self, ApiError> {
        let taken = open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok();
        if !taken {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_streams",
                format!("{limit} event streams are open already; close one or try again later"),
            ));
        }
        Ok(Self(open.clone()))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl SseEvents {
    fn new(state: &AppState, only: Option<JobId>, slot: StreamSlot) -> Self {
        let events = match only {
            None => Source::All(state.jobs.subscribe().into_stream()),
            Some(id) => Source::One(state.jobs.watch_job(id)),
        };
        let reported_missed = events.missed();
        Self {
            events,
            only,
            reported_missed,
            held: None,
            shutdown: Box::pin(state.jobs.shutdown_begun()),
            done: false,
            _slot: slot,
        }
    }

    fn encode(event: &JobEvent) -> Event {
        let data = serde_json::to_value(event).unwrap_or_default();
        let name = data["event"].as_str().unwrap_or("event").to_owned();
        Event::default().event(name).data(data.to_string())
    }
}

impl Stream for SseEvents {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.shutdown.as_mut().poll(cx).is_ready() {
            self.done = true;
            let last = Event::default()
                .event("shutdown")
                .data(r#"{"reason":"the server is shutting down"}"#);
            return Poll::Ready(Some(Ok(last)));
        }
        loop {
            let event = match self.held.take() {
                Some(event) => event,
                None => {
                    let Some(event) = std::task::ready!(self.events.poll_next(cx)) else {
                        return Poll::Ready(None);
                    };
                    let missed = self.events.missed();
                    if missed > self.reported_missed {
                        let lagged = Event::default()
                            .event("lagged")
                            .data(format!("{{\"missed\":{}}}", missed - self.reported_missed));
                        self.reported_missed = missed;
                        self.held = Some(event);
                        return Poll::Ready(Some(Ok(lagged)));
                    }
                    event
                }
            };
            if self.only.is_some_and(|id| Some(id) != event.job_id()) {
                continue;
            }
            // A job's stream has nothing more to say once the job has finished.
            if self.only.is_some() && matches!(event, JobEvent::Finished { .. }) {
                self.done = true;
            }
            return Poll::Ready(Some(Ok(Self::encode(&event))));
        }
    }
}

/// `GET /events`: every job's events from now on.
pub(crate) async fn all_events(
    State(state): State<AppState>,
) -> Result<Sse<KeepAliveStream<SseEvents>>, ApiError> {
    let slot = StreamSlot::take(&state.open_streams, state.max_streams)?;
    Ok(Sse::new(SseEvents::new(&state, None, slot)).keep_alive(KeepAlive::default()))
}

/// `GET /jobs/{id}/events`: one job's events from now on, until it has finished. For a
/// job that has finished already, its `finished` event alone.
pub(crate) async fn job_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<KeepAliveStream<SseEvents>>, ApiError> {
    let id = parse_id(&id)?;
    let slot = StreamSlot::take(&state.open_streams, state.max_streams)?;
    // Subscribe before reading the job, so no event falls in between.
    let mut stream = SseEvents::new(&state, Some(id), slot);
    let Some(job) = state.jobs.get_job(id).await? else {
        return Err(ApiError::not_found("job with this id"));
    };
    if job.status.is_terminal() {
        stream.held = Some(JobEvent::Finished {
            id,
            status: job.status,
            error: job.error,
        });
    }
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
