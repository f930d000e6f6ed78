//! Server-sent events.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, KeepAliveStream, Sse};
use futures_core::Stream;
use jobs_runtime::{JobEvent, JobEventStream, JobId};

use crate::routes::parse_id_public as parse_id;
use crate::{ApiError, AppState};

/// Job events as SSE events: the event name is the kind, the data its JSON.
///
/// A client that reads too slowly skips events; it is then sent `event: lagged` with
/// `{"missed": n}` before the next event, so it knows to read the jobs again.
pub(crate) struct SseEvents {
    events: JobEventStream,
    only: Option<JobId>,
    reported_missed: u64,
    /// An event read while a `lagged` notice went out first.
    held: Option<JobEvent>,
}

impl SseEvents {
    fn new(events: JobEventStream, only: Option<JobId>) -> Self {
        let reported_missed = events.missed();
        Self {
            events,
            only,
            reported_missed,
            held: None,
        }
    }
}

impl Stream for SseEvents {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let event = match self.held.take() {
                Some(event) => event,
                None => {
                    let Some(event) = std::task::ready!(Pin::new(&mut self.events).poll_next(cx))
                    else {
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
            if self.only.is_some_and(|id| id != event.job_id()) {
                continue;
            }
            let data = serde_json::to_value(&event).unwrap_or_default();
            let name = data["event"].as_str().unwrap_or("event").to_owned();
            let sse = Event::default().event(name).data(data.to_string());
            return Poll::Ready(Some(Ok(sse)));
        }
    }
}

/// `GET /events`: every job's events from now on.
pub(crate) async fn all_events(State(state): State<AppState>) -> Sse<KeepAliveStream<SseEvents>> {
    let events = state.jobs.subscribe().into_stream();
    Sse::new(SseEvents::new(events, None)).keep_alive(KeepAlive::default())
}

/// `GET /jobs/{id}/events`: one job's events from now on.
pub(crate) async fn job_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<KeepAliveStream<SseEvents>>, ApiError> {
    let id = parse_id(&id)?;
    // Subscribe before checking the job exists, so no event falls in between.
    let events = state.jobs.subscribe().into_stream();
    if state.jobs.get_job(id).await?.is_none() {
        return Err(ApiError::not_found("job with this id"));
    }
    Ok(Sse::new(SseEvents::new(events, Some(id))).keep_alive(KeepAlive::default()))
}
