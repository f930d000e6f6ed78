//! The engine: the one job pipeline, the same over every store.
//!
//! ```text
//! submit / tick / retry ──► store.insert_many                      (submit.rs)
//!   lane per queue: claim ahead in batches ──► buffer ──► workers   (lane.rs, worker.rs)
//!   lease keeper: renew held leases; a lost lease fires the token   (lease.rs)
//!   completion batcher ──► store.complete_many, retried             (completer.rs)
//!   rescuer: expired leases ──► retry / fail / cancel               (rescuer.rs)
//!   events built from the answers ──► the store's notifications
//! ```
//!
//! Stores decide nothing; every choice (how many to claim, what a failure or a lost lease
//! means, what a shutdown does to a running job, which event to announce) is made here.

pub(crate) mod completer;
pub(crate) mod heartbeat;
pub(crate) mod lane;
pub(crate) mod lease;
pub(crate) mod rescuer;
pub(crate) mod running;
pub(crate) mod submit;
pub(crate) mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jobs_core::{EventBus, JobEvent, JobId, JobStore, Notifications, Signal};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::watchers::Watchers;
use completer::Completer;
use lane::Lane;
use running::{Registry, StopReason};

/// Settings fixed at start-up.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) concurrency: usize,
    pub(crate) shutdown_grace: Duration,
    pub(crate) progress_interval: Duration,
    pub(crate) timeout_grace: Duration,
    /// How long a claim holds without renewal.
    pub(crate) lease: Duration,
    /// How often expired leases are looked for.
    pub(crate) rescue_interval: Duration,
    /// After how many lost leases in all a job is failed rather than tried again.
    pub(crate) crash_budget: u32,
    /// How often an idle lane looks for due jobs when nothing wakes it.
    pub(crate) poll_interval: Duration,
    /// The most completions written in one call.
    pub(crate) completion_batch: usize,
    /// How many jobs each lane claims ahead (`None`: by its number of workers).
    pub(crate) prefetch: Option<usize>,
    /// The rate limits on queues and job types.
    pub(crate) rates: Vec<jobs_core::RateRule>,
}

/// What every part of the engine and the service facade share.
pub(crate) struct Inner {
    pub(crate) store: Arc<dyn JobStore>,
    /// The store's notifications, or a bus of this service's own.
    local_bus: Option<EventBus>,
    pub(crate) catalog: Catalog,
    pub(crate) config: Config,
    /// This engine's id as the store records it on the jobs it holds.
    pub(crate) holder: String,
    pub(crate) registry: Registry,
    pub(crate) lanes: HashMap<Arc<str>, Arc<Lane>, crate::id_hash::IdHash>,
    pub(crate) watchers: Arc<Watchers>,
    pub(crate) completer: Completer,
    /// Fired when shutdown begins (or the last handle is dropped): no new submissions,
    /// no new claims; jobs claimed ahead are given back.
    pub(crate) intake: CancellationToken,
    /// Fired when the grace period runs out: running jobs' tokens fire.
    pub(crate) abandon: CancellationToken,
    /// Fired when every held job has been dealt with: the lease keeper and helpers stop.
    pub(crate) stopped: CancellationToken,
    pub(crate) workers: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) helpers: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) shutdown: tokio::sync::OnceCell<()>,
    /// Asks the lease keeper for a renewal round now.
    pub(crate) renew_now: tokio::sync::Notify,
    /// The runtime the service was started in: a drop of the last handle from outside it
    /// still shuts down there.
    pub(crate) runtime: tokio::runtime::Handle,
}

impl Inner {
    pub(crate) fn new(
        store: Arc<dyn JobStore>,
        catalog: Catalog,
        config: Config,
        queues: &[(Arc<str>, usize)],
        runtime: tokio::runtime::Handle,
    ) -> Self {
        let local_bus = store.notifications().is_none().then(EventBus::default);
        let lanes = queues
            .iter()
            .map(|(name, workers)| {
                let rates = config
                    .rates
                    .iter()
                    .filter(|rule| match &rule.scope {
                        jobs_core::RateScope::Queue(queue) => **queue == **name,
                        _ => true,
                    })
                    .cloned()
                    .collect();
                let lane = Lane::new(name.clone(), *workers, config.prefetch, rates);
                (name.clone(), Arc::new(lane))
            })
            .collect();
        Self {
            store,
            local_bus,
            catalog,
            config,
            holder: format!("{}-{}", std::process::id(), &JobId::new().to_string()[19..]),
            registry: Registry::default(),
            lanes,
            watchers: Arc::new(Watchers::default()),
            completer: Completer::default(),
            intake: CancellationToken::new(),
            abandon: CancellationToken::new(),
            stopped: CancellationToken::new(),
            workers: Mutex::new(Vec::new()),
            helpers: Mutex::new(Vec::new()),
            shutdown: tokio::sync::OnceCell::new(),
            renew_now: tokio::sync::Notify::new(),
            runtime,
        }
    }

    /// Where events go: the store's notifications, or this service's own bus.
    pub(crate) fn notifications(&self) -> &dyn Notifications {
        match &self.local_bus {
            Some(bus) => bus,
            None => self
                .store
                .notifications()
                .expect("a store without notifications gets a local bus"),
        }
    }

    /// Whether anyone reads events (else they need not be built).
    pub(crate) fn announcing(&self) -> bool {
        self.notifications().has_subscribers()
    }

    /// Whether anyone reads the events that carry signals (submits, requeues, cancels).
    pub(crate) fn signalling(&self) -> bool {
        let notifications = self.notifications();
        notifications.has_subscribers() || notifications.has_signal_subscribers()
    }

    /// Publishes `events` (already stored changes).
    pub(crate) async fn announce(&self, events: Vec<JobEvent>) {
        if !events.is_empty() {
            self.notifications().publish(events).await;
        }
    }

    /// Takes job `id` out of whichever lane holds it claimed ahead and not started.
    pub(crate) fn take_unstarted(&self, id: JobId) -> Option<running::Claimed> {
        self.lanes.values().find_map(|lane| lane.take(id))
    }

    /// Wakes every lane of this engine: jobs may be due.
    pub(crate) fn wake_lanes(&self) {
        for lane in self.lanes.values() {
            lane.wake();
        }
    }
}

/// Acts on the signals of every engine on the store: due jobs wake the lanes, cancel
/// requests fire the tokens of jobs held here.
pub(crate) async fn listen(
    inner: Arc<Inner>,
    mut signals: tokio::sync::broadcast::Receiver<Signal>,
) {
    loop {
        let signal = tokio::select! {
            _ = inner.stopped.cancelled() => return,
            signal = signals.recv() => signal,
        };
        match signal {
            Ok(Signal::JobsDue) => inner.wake_lanes(),
            Ok(Signal::CancelRequested(id)) => {
                // Claimed ahead and not started: given back, it ends `Canceled` at once
                // (a requeue of a job asked to stop does) instead of starting only to be
                // told to stop.
                match inner.take_unstarted(id) {
                    Some(claimed) => completer::give_back(&inner, vec![claimed]).await,
                    None => {
                        inner.registry.stop(id, StopReason::Canceled);
                    }
                }
            }
            Ok(Signal::Resync) | Err(RecvError::Lagged(_)) => {
                // Some signals were missed: look for jobs, and let the next renewal tell
                // which held jobs were asked to stop.
                inner.wake_lanes();
                lease::renew_soon(&inner);
            }
            Ok(_) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

/// Takes the tasks out of a slot.
pub(crate) fn take(tasks: &Mutex<Vec<JoinHandle<()>>>) -> Vec<JoinHandle<()>> {
    std::mem::take(&mut *tasks.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Awaits every task, up to `limit`; returns whether all ended. Finished tasks are removed.
pub(crate) async fn join_within(tasks: &mut Vec<JoinHandle<()>>, limit: Duration) -> bool {
    let all = async {
        while let Some(task) = tasks.last_mut() {
            let _ = task.await;
            tasks.pop();
        }
    };
    tokio::time::timeout(limit, all).await.is_ok()
}

/// Stops the engine: no new claims, jobs claimed ahead given back, running jobs given the
/// grace period, then told to stop, then abandoned; their outcomes written; what was
/// interrupted goes back to the queue without counting a failure.
pub(crate) async fn shut_down(inner: &Arc<Inner>) {
    inner.intake.cancel();
    let grace = inner.config.shutdown_grace;
    for lane in inner.lanes.values() {
        lane.close();
    }
    // Every lane is closed before anything is given back, so no worker starts a job that
    // is being given back; claims still in flight give theirs back when they land.
    let claimed_ahead: Vec<_> = inner.lanes.values().flat_map(|lane| lane.drain()).collect();
    if tokio::time::timeout(grace, completer::give_back(inner, claimed_ahead))
        .await
        .is_err()
    {
        tracing::warn!("could not give back the jobs claimed ahead within the grace period; they are rescued once their leases run out");
    }
    let mut workers = take(&inner.workers);
    if !join_within(&mut workers, grace).await {
        tracing::warn!(
            ?grace,
            "jobs still running after the grace period; asking them to stop"
        );
        inner.abandon.cancel();
        inner.registry.stop_all(StopReason::Shutdown);
        if !join_within(&mut workers, grace).await {
            for worker in &workers {
                worker.abort();
            }
            for worker in workers.drain(..) {
                let _ = worker.await;
            }
        }
    }
    // Workers that were aborted left their jobs held: give them back, not counted.
    worker::requeue_abandoned(inner).await;
    // Every worker is gone; wait for the outcomes handed in to be written.
    if tokio::time::timeout(grace, inner.completer.until_idle())
        .await
        .is_err()
    {
        tracing::error!(
            held = inner.registry.len(),
            "could not store the outcome of every job within the grace period; \
             those jobs run again once their leases run out"
        );
    }
    if !inner.lanes.is_empty()
        && tokio::time::timeout(grace, heartbeat::forget(inner))
            .await
            .is_err()
    {
        tracing::warn!("could not remove this worker's heartbeat within the grace period");
    }
    inner.stopped.cancel();
    for helper in take(&inner.helpers) {
        helper.abort();
        let _ = helper.await;
    }
}
