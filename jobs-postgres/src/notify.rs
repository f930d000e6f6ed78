//! Events across processes: `NOTIFY` on a channel named after the schema, and one
//! listener per store that hands what it hears to the local subscribers.

use std::sync::Arc;
use std::time::Duration;

use jobs_core::{EventBus, JobEvent, Signal};
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};

use crate::options::ConnectError;

/// The largest notification payload sent (PostgreSQL refuses 8,000 bytes and more).
pub(crate) const MAX_NOTIFICATION_BYTES: usize = 7_500;

/// The longest text (an error, a progress message) an event keeps when it would not fit
/// in a notification otherwise; `get` has the text whole.
const MAX_EVENT_TEXT_CHARS: usize = 500;

/// The channel of the store whose tables are in `schema`.
pub(crate) fn channel(schema: &str) -> String {
    format!("{schema}_jobs_events")
}

/// Sends notifications on one channel.
pub(crate) struct Notifier {
    channel: String,
}

impl Notifier {
    pub(crate) fn new(channel: String) -> Self {
        Self { channel }
    }

    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// Announces `events` to every process, after the changes they describe committed. A
    /// failure only costs listeners the events (engines poll, waiters re-read), so it is
    /// logged, not returned.
    pub(crate) async fn publish(&self, pool: &PgPool, events: &[JobEvent]) {
        let payloads = payloads(events);
        if payloads.is_empty() {
            return;
        }
        if let Err(error) = notify_query(&self.channel, payloads).execute(pool).await {
            tracing::warn!(%error, events = events.len(), "could not announce job events");
        }
    }
}

/// One statement that sends every payload, in order.
fn notify_query(
    channel: &str,
    payloads: Vec<String>,
) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS p(payload)")
        .bind(channel)
        .bind(payloads)
}

/// `event` as JSON that fits in a notification: texts are shortened if it would not;
/// `None` (logged) if even that does not fit.
fn event_json(event: &JobEvent) -> Option<String> {
    let json = serde_json::to_string(event).ok()?;
    if json.len() + 2 <= MAX_NOTIFICATION_BYTES {
        return Some(json);
    }
    let short = |text: &str| text.chars().take(MAX_EVENT_TEXT_CHARS).collect::<String>();
    let shortened = match event.clone() {
        JobEvent::Finished { id, status, error } => JobEvent::Finished {
            id,
            status,
            error: error.as_deref().map(short),
        },
        JobEvent::Requeued {
            id,
            attempt,
            run_at,
            error,
        } => JobEvent::Requeued {
            id,
            attempt,
            run_at,
            error: error.as_deref().map(short),
        },
        JobEvent::Progress { id, mut progress } => {
            progress.message = short(&progress.message);
            JobEvent::Progress { id, progress }
        }
        other => other,
    };
    match serde_json::to_string(&shortened) {
        Ok(json) if json.len() + 2 <= MAX_NOTIFICATION_BYTES => Some(json),
        _ => {
            tracing::warn!(id = ?event.job_id(), "a job event too large to notify was dropped");
            None
        }
    }
}

/// The events as JSON arrays that each fit in a notification, in order.
pub(crate) fn payloads(events: &[JobEvent]) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = String::from("[");
    for json in events.iter().filter_map(event_json) {
        if current.len() > 1 && current.len() + json.len() + 2 > MAX_NOTIFICATION_BYTES {
            current.push(']');
            payloads.push(std::mem::replace(&mut current, String::from("[")));
        }
        if current.len() > 1 {
            current.push(',');
        }
        current.push_str(&json);
    }
    if current.len() > 1 {
        current.push(']');
        payloads.push(current);
    }
    payloads
}

/// The events of one notification: an array of them, or a single event (as older
/// versions of this crate sent some).
pub(crate) fn events_in(payload: &str) -> Result<Vec<JobEvent>, serde_json::Error> {
    if payload.trim_start().starts_with('[') {
        serde_json::from_str(payload)
    } else {
        serde_json::from_str(payload).map(|event| vec![event])
    }
}

/// Listens on `channel` with a connection of its own (made with `pool`'s settings, so the
/// application's pool keeps all of its connections), and spawns the task that hands what
/// it hears to `bus` until it is aborted.
pub(crate) async fn start_listener(
    pool: &PgPool,
    channel: &str,
    bus: Arc<EventBus>,
    timeout: Duration,
) -> Result<tokio::task::AbortHandle, ConnectError> {
    let listener_pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(timeout)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with((*pool.connect_options()).clone());
    let mut listener = tokio::time::timeout(timeout, PgListener::connect_with(&listener_pool))
        .await
        .map_err(|_| ConnectError::Unreachable(sqlx::Error::PoolTimedOut))?
        .map_err(ConnectError::Unreachable)?;
    listener
        .listen(channel)
        .await
        .map_err(ConnectError::Unreachable)?;
    Ok(tokio::spawn(listen(listener, bus)).abort_handle())
}

/// Hands every notification's events to `bus`, and a [`Signal::Resync`] whenever the
/// connection was lost (notifications sent meanwhile are gone) or comes back.
async fn listen(mut listener: PgListener, bus: Arc<EventBus>) {
    let mut retry = Duration::from_millis(250);
    let mut lost = false;
    loop {
        if lost {
            // Reconnect (and listen again) explicitly, so that the resync follows the
            // moment notifications flow again, not the next notification.
            match sqlx::query("SELECT 1").execute(&mut listener).await {
                Ok(_) => {
                    tracing::info!("the job notification listener is connected again");
                    lost = false;
                    retry = Duration::from_millis(250);
                    bus.send_signal(Signal::Resync);
                }
                Err(error) => {
                    tracing::debug!(%error, "the job notification listener could not reconnect");
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
        }
        match listener.try_recv().await {
            Ok(Some(notification)) => match events_in(notification.payload()) {
                Ok(events) => bus.send(events),
                Err(error) => tracing::warn!(
                    %error,
                    payload = notification.payload(),
                    "unreadable job notification"
                ),
            },
            // Lost, and connected again already (sqlx reconnects before answering).
            Ok(None) => {
                tracing::warn!("the job notification listener lost its connection");
                bus.send_signal(Signal::Resync);
            }
            Err(error) => {
                tracing::warn!(%error, "the job notification listener failed; reconnecting");
                bus.send_signal(Signal::Resync);
                lost = true;
                tokio::time::sleep(retry).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use jobs_core::{JobId, JobStatus, Progress, Timestamp};

    use super::*;

    fn failure(error: String) -> JobEvent {
        JobEvent::Finished {
            id: JobId::new(),
            status: JobStatus::Failed,
            error: Some(error),
        }
    }

    #[test]
    fn events_are_split_into_payloads_under_the_limit() {
        let events: Vec<JobEvent> = (0..300).map(|_| failure("€".repeat(400))).collect();
        let split = payloads(&events);
        assert!(split.len() > 1);
        let mut heard = Vec::new();
        for payload in &split {
            assert!(
                payload.len() <= MAX_NOTIFICATION_BYTES,
                "{} bytes",
                payload.len()
            );
            heard.extend(events_in(payload).unwrap());
        }
        assert_eq!(heard, events, "every event, once, in order");
        assert!(
            payloads(&[]).is_empty(),
            "nothing to announce, no notification"
        );
    }

    #[test]
    fn an_event_too_large_for_a_notification_is_shortened() {
        let id = JobId::new();
        let events = vec![
            failure("€".repeat(5_000)),
            JobEvent::Requeued {
                id,
                attempt: 1,
                run_at: Timestamp::now(),
                error: Some("x".repeat(9_000)),
            },
            JobEvent::Progress {
                id,
                progress: Progress::new(5, "y".repeat(9_000)),
            },
            JobEvent::Submitted {
                id,
                job_type: "z".repeat(9_000),
            },
        ];
        let split = payloads(&events);
        let heard: Vec<JobEvent> = split.iter().flat_map(|p| events_in(p).unwrap()).collect();
        assert!(split.iter().all(|p| p.len() <= MAX_NOTIFICATION_BYTES));
        assert_eq!(
            heard.len(),
            3,
            "the submit whose type alone is too long is dropped"
        );
        let JobEvent::Finished {
            error: Some(error), ..
        } = &heard[0]
        else {
            panic!("{:?}", heard[0]);
        };
        assert_eq!(error.chars().count(), MAX_EVENT_TEXT_CHARS);
        let JobEvent::Progress { progress, .. } = &heard[2] else {
            panic!("{:?}", heard[2]);
        };
        assert_eq!(
            (progress.percent, progress.message.len()),
            (5, MAX_EVENT_TEXT_CHARS)
        );
    }

    #[test]
    fn a_notification_carries_one_event_or_an_array_of_them() {
        let id = JobId::new();
        let one = format!(r#"{{"event":"started","id":"{id}","attempt":1}}"#);
        assert_eq!(
            events_in(&one).unwrap(),
            vec![JobEvent::Started { id, attempt: 1 }]
        );
        let many =
            format!(r#"[{one},{{"event":"finished","id":"{id}","status":"Failed","error":"no"}}]"#);
        assert_eq!(events_in(&many).unwrap().len(), 2);
        assert!(events_in("not json").is_err());
        let submitted = serde_json::to_string(&vec![JobEvent::Submitted {
            id,
            job_type: "T".into(),
        }])
        .unwrap();
        assert_eq!(payloads(&events_in(&submitted).unwrap()), vec![submitted]);
    }
}
