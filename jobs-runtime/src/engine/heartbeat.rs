//! The heartbeat: this engine's record in the store's list of workers (its id, host,
//! process and queues), refreshed every [`INTERVAL`] so an operator sees which processes
//! serve which queues, and removed when the engine stops.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs_core::{Operations, QueueWorkers, Timestamp, WorkerInfo};

use super::Inner;

/// How often the record is refreshed. A worker not seen for three intervals is shown as
/// gone quiet.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

/// This engine's record.
pub(crate) fn info(inner: &Inner) -> WorkerInfo {
    let mut queues: Vec<QueueWorkers> = inner
        .lanes
        .values()
        .map(|lane| QueueWorkers::new(lane.name.to_string(), lane.workers))
        .collect();
    queues.sort_by(|a, b| a.queue.cmp(&b.queue));
    WorkerInfo::new(
        inner.holder.clone(),
        host_name(),
        std::process::id(),
        queues,
    )
}

/// Refreshes the record until the engine stops. A failed write is logged and tried again
/// at the next beat: the record is for operators, and no job depends on it.
pub(crate) async fn beat(inner: Arc<Inner>) {
    let Some(operations) = inner.store.operations() else {
        return;
    };
    let mut worker = info(&inner);
    let mut warned: HashMap<String, Instant> = HashMap::new();
    let mut beats: u64 = 0;
    loop {
        worker.last_seen = Timestamp::now();
        if let Err(error) = operations.record_worker(&worker).await {
            tracing::warn!(%error, "could not record this worker's heartbeat");
        }
        // Every sixth beat (a minute), after the first few beats of every process had
        // time to land: warn of queues whose jobs nothing serves.
        beats += 1;
        if beats % 6 == 3 {
            warn_unserved(operations, &mut warned).await;
        }
        tokio::select! {
            _ = inner.intake.cancelled() => return,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
}

/// Logs a warning for each queue with queued jobs that no process serves, at most every
/// [`WARN_EVERY`] per queue.
async fn warn_unserved(operations: &dyn Operations, warned: &mut HashMap<String, Instant>) {
    let Ok(unserved) = crate::operations::unserved(operations).await else {
        return;
    };
    warned.retain(|queue, _| unserved.iter().any(|u| u.queue == *queue));
    for queue in unserved {
        let due = warned
            .get(&queue.queue)
            .is_none_or(|at| at.elapsed() >= WARN_EVERY);
        if due {
            tracing::warn!(queue = %queue.queue, waiting = queue.waiting, "jobs wait in a queue that no process serves; serve it (JobsBuilder::serve_queue) or move them");
            warned.insert(queue.queue, Instant::now());
        }
    }
}

/// How often the warning of one unserved queue repeats.
const WARN_EVERY: Duration = Duration::from_secs(600);

/// Removes the record of a stopping engine.
pub(crate) async fn forget(inner: &Inner) {
    if let Some(operations) = inner.store.operations() {
        if let Err(error) = operations.remove_worker(&inner.holder).await {
            tracing::warn!(%error, "could not remove this worker's heartbeat");
        }
    }
}

/// The machine's host name, as the kernel or the environment knows it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}
