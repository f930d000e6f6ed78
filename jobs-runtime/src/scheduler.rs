//! Periodic jobs: a job submitted at every tick of a cron schedule, once across all the
//! services that share a store.

use std::sync::Arc;
use std::time::Duration;

use jobs_core::{SubmitOptions, Timestamp};
use jobs_cron::{Schedule, TimeZone};
use serde_json::Value;

use crate::engine::{submit, Inner};

/// One periodic job.
pub(crate) struct Periodic {
    /// Names the schedule in the store: the job type and the expression, so that a
    /// changed expression starts a schedule of its own.
    pub(crate) name: String,
    pub(crate) schedule: Schedule,
    /// The wall clock it follows; `None`: UTC.
    pub(crate) zone: Option<TimeZone>,
    pub(crate) job_type: String,
    pub(crate) payload: Value,
}

impl Periodic {
    /// The first tick after `after` (seconds since the epoch).
    fn next_after(&self, after: i64) -> Option<i64> {
        match &self.zone {
            Some(zone) => self.schedule.next_after_in(after, zone),
            None => self.schedule.next_after(after),
        }
    }

    pub(crate) fn new(
        schedule: Schedule,
        zone: Option<TimeZone>,
        job_type: &str,
        payload: Value,
    ) -> Self {
        // The payload is part of the name: one type on one schedule with two payloads is
        // two schedules.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in payload.to_string().bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        // A zone is part of the name too (UTC schedules keep the names they always had).
        let zone_name = zone
            .as_ref()
            .map(|zone| format!(" {zone}"))
            .unwrap_or_default();
        Self {
            name: format!("{job_type} {schedule}{zone_name} {hash:016x}"),
            schedule,
            zone,
            job_type: job_type.to_owned(),
            payload,
        }
    }
}

/// Seconds since the epoch of a timestamp.
fn seconds(time: Timestamp) -> i64 {
    time.as_unix_micros().div_euclid(1_000_000)
}

/// Submits each schedule's job at each of its ticks after `started` (the service's start,
/// read before this task first runs, so that no tick falls between) until the service
/// stops. Ticks missed while no service ran, or while this one was paused, are not made
/// up.
pub(crate) async fn run(inner: Arc<Inner>, periodic: Vec<Periodic>, started: Timestamp) {
    let now = seconds(started);
    let mut next: Vec<Option<i64>> = periodic.iter().map(|p| p.next_after(now)).collect();
    loop {
        let Some(due) = next.iter().flatten().min().copied() else {
            return;
        };
        let wait = Duration::from_micros(
            (due * 1_000_000 - Timestamp::now().as_unix_micros()).max(0) as u64,
        );
        if inner.intake.is_cancelled() {
            return;
        }
        // A tick already due fires now, not after another turn of the timer.
        if !wait.is_zero() {
            tokio::select! {
                _ = inner.intake.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        for (index, entry) in periodic.iter().enumerate() {
            if next[index] != Some(due) {
                continue;
            }
            fire(&inner, entry, due).await;
            // After a pause (a suspended machine, a clock step) the ticks missed are not
            // made up: the next is the first after now.
            let now = seconds(Timestamp::now());
            next[index] = entry.next_after(due.max(now));
        }
    }
}

async fn fire(inner: &Inner, entry: &Periodic, tick: i64) {
    let tick = Timestamp::from_unix_micros(tick * 1_000_000);
    let stored = match submit::prepare(
        inner,
        &entry.job_type,
        entry.payload.clone(),
        &SubmitOptions::new(),
    ) {
        Ok(job) => submit::insert_tick(inner, job, &entry.name, tick).await,
        Err(error) => Err(error),
    };
    // `Ok(false)`: another service fired this tick.
    if let Err(error) = stored {
        tracing::error!(schedule = %entry.name, %error, "could not submit a periodic job");
    }
}
