//! Subscriptions to job events.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_core::Stream;
use jobs_core::JobEvent;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_util::sync::ReusableBoxFuture;

/// A subscription to the events of every job, from [`Jobs::subscribe`](crate::Jobs::subscribe).
///
/// Events arrive in the order the engines published them. A subscriber that falls
/// more than the store's event capacity behind skips the oldest events; [`missed`]
/// counts them, and [`Jobs::get_job`](crate::Jobs::get_job) tells the current state.
///
/// [`missed`]: JobEvents::missed
pub struct JobEvents {
    rx: broadcast::Receiver<JobEvent>,
    missed: u64,
}

impl JobEvents {
    pub(crate) fn new(rx: broadcast::Receiver<JobEvent>) -> Self {
        Self { rx, missed: 0 }
    }

    /// The next event; `None` once the store is gone.
    pub async fn recv(&mut self) -> Option<JobEvent> {
        loop {
            match self.rx.recv().await {
                Ok(event) => return Some(event),
                Err(RecvError::Lagged(skipped)) => self.missed += skipped,
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// The next event if one is waiting, without blocking.
    pub fn try_recv(&mut self) -> Option<JobEvent> {
        loop {
            match self.rx.try_recv() {
                Ok(event) => return Some(event),
                Err(TryRecvError::Lagged(skipped)) => self.missed += skipped,
                Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
            }
        }
    }

    /// How many events this subscriber skipped because it fell behind.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// The subscription as a [`Stream`], for stream combinators (`StreamExt` of the
    /// `futures` or `tokio-stream` crates) and for `select!` over several sources.
    pub fn into_stream(self) -> JobEventStream {
        JobEventStream {
            next: ReusableBoxFuture::new(next_event(self.rx)),
            missed: self.missed,
            closed: false,
        }
    }
}

type Received = (Result<JobEvent, RecvError>, broadcast::Receiver<JobEvent>);

async fn next_event(mut rx: broadcast::Receiver<JobEvent>) -> Received {
    let received = rx.recv().await;
    (received, rx)
}

/// A [`Stream`] of job events, from [`JobEvents::into_stream`]. Ends when the store
/// is gone; skips events when it falls behind, counting them in [`JobEventStream::missed`].
pub struct JobEventStream {
    next: ReusableBoxFuture<'static, Received>,
    missed: u64,
    closed: bool,
}

impl JobEventStream {
    /// How many events this stream skipped because it fell behind.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

impl Stream for JobEventStream {
    type Item = JobEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<JobEvent>> {
        loop {
            if self.closed {
                return Poll::Ready(None);
            }
            let (received, rx) = ready!(self.next.poll(cx));
            self.next.set(next_event(rx));
            match received {
                Ok(event) => return Poll::Ready(Some(event)),
                Err(RecvError::Lagged(skipped)) => self.missed += skipped,
                Err(RecvError::Closed) => self.closed = true,
            }
        }
    }
}

impl std::fmt::Debug for JobEventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobEventStream")
            .field("missed", &self.missed)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for JobEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobEvents")
            .field("missed", &self.missed)
            .finish_non_exhaustive()
    }
}
