//! The in-memory store.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use jobs_core::{
    after_parent, released_payload, BoxFuture, CancelOutcome, ClaimRequest, ClaimedJob, Completed,
    Completion, DeleteOutcome, EventBus, ExpiredLease, FinishedCount, FlowId, Inserted, Job,
    JobCount, JobEvent, JobId, JobPage, JobQuery, JobStatus, JobStore, KeyCount, Lease,
    Notifications, Operations, Outcome, PausedQueue, PayloadFrom, PeriodicTicks, Progress,
    ProgressAck, QueueCounts, RateBudgets, RateWindow, Readiness, Renewal, RetryOutcome,
    StorageError, StorageErrorKind, Timestamp, WorkerInfo,
};
use serde_json::Value;

use super::lanes::Lanes;
use crate::id_hash::IdMap;

/// Jobs, their queues and their results in this process's memory.
///
/// The default store. Every call takes one short lock that is never held across an
/// `.await`, and batch calls (claims, completions, renewals) take it once for the whole
/// batch; status changes go through [`Job::start`] and [`Job::finish`], the shared rule.
/// Nothing survives the process: use a durable store when jobs must outlive it.
///
/// Several [`Jobs`](crate::Jobs) services can share one store by passing the same `Arc`
/// to their builders; they then see each other's jobs, events and cancels.
pub struct InMemoryStore {
    state: Mutex<State>,
    bus: EventBus,
    max_active: usize,
}

#[derive(Default)]
struct State {
    // Every job with its result, in the order stored; `index` finds one by id.
    entries: Vec<Entry>,
    index: IdMap<u32>,
    // The ids of each status, indexed like `JobStatus::ALL`, in id order, which is time
    // order (UUID v7): listing a status newest first is a reverse range of its set, and
    // never looks at jobs of other statuses. `Running` jobs are not kept here: `running`
    // holds them (and it is bounded by the workers' concurrency).
    by_status: [BTreeSet<JobId>; JobStatus::ALL.len()],
    // Jobs per status, indexed like `JobStatus::ALL`, kept up to date on every change.
    counts: [usize; JobStatus::ALL.len()],
    // The same per job type; an entry keeps the slot of its type, so a change updates
    // these without hashing the type's name.
    types: Vec<(String, [usize; JobStatus::ALL.len()])>,
    type_slots: HashMap<String, u32>,
    // The unique keys of `Queued` and `Running` jobs, by job type and key.
    unique: HashMap<(String, String), JobId>,
    // The latest tick of each periodic schedule that got its job.
    ticks: HashMap<String, Timestamp>,
    // The queued ids of each named queue.
    lanes: Lanes,
    // The holders that ever claimed here; entries keep an index into it.
    holders: Vec<String>,
    // The ids of jobs claimed since the last compaction, among them every running job:
    // the rescuer looks at these for expired leases. Ids of jobs no longer running are
    // dropped whenever they outnumber the running ones (no work per finish).
    running: Vec<JobId>,
    // Jobs finished per minute, per queue and terminal status, for the last hour or so.
    finished: Finished,
    // The heartbeats of the workers on this store, by id.
    workers: HashMap<String, WorkerInfo>,
    // The paused queues, with when each was paused.
    paused: HashMap<String, Timestamp>,
    // The window under way of each rate limit's budget: when it opened, starts in it.
    rate_windows: HashMap<String, (Instant, u32)>,
    // How many `Running` jobs hold each concurrency key (keys without any are removed).
    running_keys: HashMap<String, u32>,
    // The waiting dependants of each unfinished parent, dropped once the parent ends.
    dependants: IdMap<Vec<JobId>>,
    // Every stored dependant of each parent, in submit order, for readers of the graph.
    children: IdMap<Vec<JobId>>,
    // The members of each flow or batch.
    flows: HashMap<FlowId, FlowMembers>,
}

/// The members of one flow, and how many of them have not finished.
#[derive(Default)]
struct FlowMembers {
    ids: BTreeSet<JobId>,
    unfinished: usize,
}

/// The most due jobs a claim passes over because a rate limit holds them back.
const LOOK_AHEAD: usize = 10_000;

/// A rate budget's window as stores describe it, from when it opened and its starts
/// (`None`: no window yet).
fn window_at(record: Option<&(Instant, u32)>, now: Instant) -> RateWindow {
    RateWindow {
        age: record.map(|(opened, _)| now.saturating_duration_since(*opened)),
        used: record.map_or(0, |(_, used)| *used),
    }
}

/// Counts of finished jobs per minute, kept as jobs finish: a minute's bucket holds a
/// few queues, found by a linear search (no hashing on the completion path).
#[derive(Default)]
struct Finished {
    minutes: VecDeque<(Timestamp, Vec<QueueFinishes>)>,
}

/// A queue's succeeded, failed and canceled jobs in one minute.
type QueueFinishes = (String, [u64; 3]);

impl Finished {
    /// How many minutes are kept.
    const KEPT: usize = 61;

    fn record(&mut self, queue: &str, status: JobStatus, at: Timestamp) {
        let column = match status {
            JobStatus::Succeeded => 0,
            JobStatus::Failed => 1,
            JobStatus::Canceled => 2,
            _ => return,
        };
        let minute = FinishedCount::minute_of(at);
        // Minutes are kept in order; a finish stamped earlier than the latest minute (the
        // clock stepped back) goes to its own minute, made in place if need be.
        let at = match self.minutes.iter().rposition(|(m, _)| *m <= minute) {
            Some(at) if self.minutes[at].0 == minute => at,
            found => {
                let at = found.map_or(0, |at| at + 1);
                self.minutes.insert(at, (minute, Vec::new()));
                at
            }
        };
        let queues = &mut self.minutes[at].1;
        match queues.iter_mut().find(|(name, _)| name == queue) {
            Some((_, counts)) => counts[column] += 1,
            None => {
                let mut counts = [0; 3];
                counts[column] = 1;
                queues.push((queue.to_owned(), counts));
            }
        }
        while self.minutes.len() > Self::KEPT {
            self.minutes.pop_front();
        }
    }

    fn since(&self, since: Timestamp) -> Vec<FinishedCount> {
        let statuses = [JobStatus::Succeeded, JobStatus::Failed, JobStatus::Canceled];
        self.minutes
            .iter()
            .filter(|(minute, _)| *minute >= FinishedCount::minute_of(since))
            .flat_map(|(minute, queues)| {
                queues.iter().flat_map(move |(queue, counts)| {
                    statuses
                        .into_iter()
                        .zip(counts)
                        .filter(|(_, count)| **count > 0)
                        .map(move |(status, count)| {
                            FinishedCount::new(*minute, queue.clone(), status, *count)
                        })
                })
            })
            .collect()
    }
}

struct Entry {
    job: Job,
    // Stored apart from the job's metadata: only `get_result` reads it.
    result: Option<Value>,
    type_slot: u32,
    // While running: who holds it (an index into `holders`) and until when.
    holder: u32,
    lease_until: Option<Instant>,
    // While `Waiting`: how many parents it still waits for.
    waiting: u32,
}

fn slot(status: JobStatus) -> usize {
    JobStatus::ALL
        .iter()
        .position(|s| *s == status)
        .expect("every status is in ALL")
}

impl State {
    fn get(&self, id: &JobId) -> Option<&Entry> {
        self.index.get(id).map(|at| &self.entries[*at as usize])
    }

    fn get_mut(&mut self, id: &JobId) -> Option<&mut Entry> {
        self.index.get(id).map(|at| &mut self.entries[*at as usize])
    }

    /// The slot of `job_type`, made on first sight.
    fn type_slot(&mut self, job_type: &str) -> u32 {
        // Jobs come in runs of one type: try the newest entry's type before hashing.
        if let Some(last) = self.entries.last() {
            if self.types[last.type_slot as usize].0 == job_type {
                return last.type_slot;
            }
        }
        if let Some(slot) = self.type_slots.get(job_type) {
            return *slot;
        }
        let slot = self.types.len() as u32;
        self.types
            .push((job_type.to_owned(), [0; JobStatus::ALL.len()]));
        self.type_slots.insert(job_type.to_owned(), slot);
        slot
    }

    /// The index of `holder`, made on first sight.
    fn holder_slot(&mut self, holder: &str) -> u32 {
        match self.holders.iter().position(|known| known == holder) {
            Some(at) => at as u32,
            None => {
                self.holders.push(holder.to_owned());
                (self.holders.len() - 1) as u32
            }
        }
    }

    fn holder_index(&self, holder: &str) -> Option<u32> {
        self.holders
            .iter()
            .position(|known| known == holder)
            .map(|at| at as u32)
    }

    /// The active job of `job_type` holding `key`, if any.
    fn holder_of_key(&self, job_type: &str, key: &str) -> Option<&Job> {
        let id = self.unique.get(&(job_type.to_owned(), key.to_owned()))?;
        self.get(id)
            .map(|entry| &entry.job)
            .filter(|job| !job.status.is_terminal())
    }

    /// Frees the unique key of a job that has just finished.
    fn release_key(&mut self, at: usize) {
        let job = &self.entries[at].job;
        if let Some(key) = &job.unique_key {
            let key = (job.job_type.clone(), key.clone());
            if job.status.is_terminal() && self.unique.get(&key) == Some(&job.id) {
                self.unique.remove(&key);
            }
        }
    }

    /// Deletes a finished job, moving the last entry into its place.
    fn remove(&mut self, id: &JobId) {
        let Some(at) = self.index.remove(id) else {
            return;
        };
        let entry = self.entries.swap_remove(at as usize);
        if let Some(moved) = self.entries.get(at as usize) {
            self.index.insert(moved.job.id, at);
        }
        self.unlist(id, entry.job.status);
        self.counts[slot(entry.job.status)] -= 1;
        self.types[entry.type_slot as usize].1[slot(entry.job.status)] -= 1;
        if let Some(flow) = entry.job.flow {
            if let Some(members) = self.flows.get_mut(&flow) {
                members.ids.remove(id);
                members.unfinished -= usize::from(!entry.job.status.is_terminal());
                if members.ids.is_empty() {
                    self.flows.remove(&flow);
                }
            }
        }
        self.children.remove(id);
        for parent in &entry.job.depends_on {
            if let Some(children) = self.children.get_mut(parent) {
                children.retain(|child| child != id);
                if children.is_empty() {
                    self.children.remove(parent);
                }
            }
        }
    }

    /// Whether `job` may be deleted by retention: it is in no flow, or every member of
    /// its flow has finished.
    fn flow_finished(&self, job: &Job) -> bool {
        job.flow
            .and_then(|flow| self.flows.get(&flow))
            .is_none_or(|members| members.unfinished == 0)
    }

    /// Adds `id` to the ids of `status` (`Running` ids live in `running`).
    fn list_as(&mut self, id: JobId, status: JobStatus) {
        if status != JobStatus::Running {
            self.by_status[slot(status)].insert(id);
        }
    }

    fn unlist(&mut self, id: &JobId, status: JobStatus) {
        if status != JobStatus::Running {
            self.by_status[slot(status)].remove(id);
        }
    }

    fn moved(&mut self, id: JobId, type_slot: u32, from: JobStatus, to: JobStatus) {
        if from == to {
            return;
        }
        self.unlist(&id, from);
        self.list_as(id, to);
        self.counts[slot(from)] -= 1;
        self.counts[slot(to)] += 1;
        let counts = &mut self.types[type_slot as usize].1;
        counts[slot(from)] -= 1;
        counts[slot(to)] += 1;
        if !self.flows.is_empty() && from.is_terminal() != to.is_terminal() {
            let flow = self.get(&id).and_then(|entry| entry.job.flow);
            if let Some(members) = flow.and_then(|flow| self.flows.get_mut(&flow)) {
                if to.is_terminal() {
                    members.unfinished -= 1;
                } else {
                    members.unfinished += 1;
                }
            }
        }
    }

    /// Sets the status of a new job with parents from theirs (all stored, or earlier in
    /// its batch): queued with its payload when they are done, canceled when one ended
    /// in a way it cannot run after, otherwise waiting, listed as a dependant of each
    /// unfinished parent. Answers how many parents it waits for.
    fn settle_new(&mut self, job: &mut Job, events: &mut Vec<JobEvent>) -> u32 {
        let parents = job.depends_on.iter().map(|parent| {
            let status = self
                .get(parent)
                .map_or(JobStatus::Canceled, |e| e.job.status);
            (*parent, status)
        });
        match Readiness::of(job.on_parent_failure, parents) {
            Readiness::Ready => {
                job.status = JobStatus::Waiting;
                let payload = released_payload(job, |parent| self.end_of(parent));
                job.release(payload);
                0
            }
            Readiness::Doomed { parent, status } => {
                job.status = JobStatus::Waiting;
                job.doom(parent, status);
                events.push(JobEvent::Finished {
                    id: job.id,
                    status: JobStatus::Canceled,
                    error: job.error.clone(),
                });
                0
            }
            Readiness::Waiting(waiting) => {
                job.status = JobStatus::Waiting;
                for parent in &job.depends_on {
                    let unfinished = self
                        .get(parent)
                        .is_some_and(|entry| !entry.job.status.is_terminal());
                    if unfinished {
                        let list = self.dependants.entry(*parent).or_default();
                        if !list.contains(&job.id) {
                            list.push(job.id);
                        }
                    }
                }
                waiting
            }
            _ => 0,
        }
    }

    /// How `id` ended (or stands) and its stored result, if it is stored.
    fn end_of(&self, id: JobId) -> Option<(JobStatus, Option<Value>)> {
        self.get(&id)
            .map(|entry| (entry.job.status, entry.result.clone()))
    }

    /// Applies the end of `parent` (in `status`) to its waiting dependants, and theirs in
    /// turn: each is queued once the parents it needs are done, or canceled. Their events
    /// go to `events`.
    fn settle_dependants(&mut self, parent: JobId, status: JobStatus, events: &mut Vec<JobEvent>) {
        if self.dependants.is_empty() {
            return;
        }
        let mut ended = vec![(parent, status)];
        while let Some((parent, status)) = ended.pop() {
            let Some(children) = self.dependants.remove(&parent) else {
                continue;
            };
            for child in children {
                let Some(&at) = self.index.get(&child) else {
                    continue;
                };
                let entry = &mut self.entries[at as usize];
                if entry.job.status != JobStatus::Waiting {
                    continue;
                }
                let readiness =
                    after_parent(entry.job.on_parent_failure, entry.waiting, parent, status);
                match readiness {
                    Readiness::Waiting(left) => entry.waiting = left,
                    Readiness::Ready => {
                        entry.waiting = 0;
                        let payload =
                            released_payload(&self.entries[at as usize].job, |p| self.end_of(p));
                        let entry = &mut self.entries[at as usize];
                        entry.job.release(payload);
                        let type_slot = entry.type_slot;
                        self.lanes.push(&self.entries[at as usize].job);
                        self.moved(child, type_slot, JobStatus::Waiting, JobStatus::Queued);
                        events.push(JobEvent::Released { id: child });
                    }
                    Readiness::Doomed { parent, status } => {
                        entry.waiting = 0;
                        entry.job.doom(parent, status);
                        let type_slot = entry.type_slot;
                        self.moved(child, type_slot, JobStatus::Waiting, JobStatus::Canceled);
                        let job = &self.entries[at as usize].job;
                        if let Some(finished_at) = job.finished_at {
                            self.finished
                                .record(&job.queue, JobStatus::Canceled, finished_at);
                        }
                        events.push(JobEvent::Finished {
                            id: child,
                            status: JobStatus::Canceled,
                            error: job.error.clone(),
                        });
                        self.release_key(at as usize);
                        ended.push((child, JobStatus::Canceled));
                    }
                    _ => {}
                }
            }
        }
    }

    fn insert(
        &mut self,
        jobs: Vec<Job>,
        max_active: usize,
        events: &mut Vec<JobEvent>,
    ) -> Result<Vec<Inserted>, StorageError> {
        // Check the whole batch first: a refused batch stores nothing.
        let active = self.counts[slot(JobStatus::Queued)]
            + self.counts[slot(JobStatus::Running)]
            + self.counts[slot(JobStatus::Waiting)];
        if active.saturating_add(jobs.len()) > max_active {
            return Err(StorageError::of_kind(
                StorageErrorKind::Full,
                format!(
                    "the in-memory store holds {active} waiting, queued and running jobs, and at most {max_active}"
                ),
            ));
        }
        let mut ids = IdMap::default();
        for job in &jobs {
            // A parent is stored already, or comes earlier in the batch.
            if let Some(parent) = job
                .depends_on
                .iter()
                .find(|parent| !self.index.contains_key(parent) && !ids.contains_key(parent))
            {
                return Err(missing_parent(job.id, *parent));
            }
            let repeated = jobs.len() > 1 && ids.insert(job.id, ()).is_some();
            if repeated || self.index.contains_key(&job.id) {
                return Err(StorageError::of_kind(
                    StorageErrorKind::Conflict,
                    format!("a job with id {} is already stored", job.id),
                ));
            }
        }
        u32::try_from(self.entries.len() + jobs.len()).map_err(|_| {
            StorageError::of_kind(
                StorageErrorKind::InvalidInput,
                "the in-memory store is full",
            )
        })?;
        let mut answers = Vec::with_capacity(jobs.len());
        for mut job in jobs {
            let waiting = if job.has_parents() {
                self.settle_new(&mut job, events)
            } else {
                0
            };
            if let Some(key) = &job.unique_key {
                if let Some(holder) = self.holder_of_key(&job.job_type, key) {
                    answers.push(Inserted::Existing(Box::new(holder.clone())));
                    continue;
                }
                self.unique
                    .insert((job.job_type.clone(), key.clone()), job.id);
            }
            let at = self.entries.len() as u32;
            self.index.insert(job.id, at);
            let type_slot = self.type_slot(&job.job_type);
            self.counts[slot(job.status)] += 1;
            self.types[type_slot as usize].1[slot(job.status)] += 1;
            self.list_as(job.id, job.status);
            if job.status == JobStatus::Queued {
                self.lanes.push(&job);
            }
            if let Some(flow) = job.flow {
                let members = self.flows.entry(flow).or_default();
                members.ids.insert(job.id);
                members.unfinished += usize::from(!job.status.is_terminal());
            }
            for parent in &job.depends_on {
                self.children.entry(*parent).or_default().push(job.id);
            }
            if let Some(finished_at) = job.finished_at {
                self.finished.record(&job.queue, job.status, finished_at);
            }
            self.entries.push(Entry {
                job,
                result: None,
                type_slot,
                holder: 0,
                lease_until: None,
                waiting,
            });
            answers.push(Inserted::Stored);
        }
        Ok(answers)
    }

    fn claim(&mut self, request: &ClaimRequest<'_>) -> Vec<ClaimedJob> {
        if !self.paused.is_empty() && self.paused.contains_key(request.queue) {
            return Vec::new();
        }
        let holder = self.holder_slot(request.holder);
        let opened = Instant::now();
        let until = opened + request.lease;
        let now = Timestamp::now();
        let mut claimed = Vec::with_capacity(request.limit.min(1_024));
        let windows = &self.rate_windows;
        let mut budgets = RateBudgets::new(request.rates, |rule| {
            window_at(windows.get(&rule.budget_name()), opened)
        });
        let limit = match budgets.queue_allows(request.queue) {
            Some(allowed) => request.limit.min(allowed as usize),
            None => request.limit,
        };
        // Due jobs a rate limit holds back, to go back where they were.
        let mut held: Vec<(JobId, i16)> = Vec::new();
        let mut held_keys: Vec<String> = Vec::new();
        while claimed.len() < limit {
            let Ok(id) = self.lanes.pop(request.queue) else {
                break;
            };
            let Some(&at) = self.index.get(&id) else {
                continue; // pruned meanwhile
            };
            let entry = &mut self.entries[at as usize];
            // A canceled job leaves its id behind; it is skipped here, and so is an id
            // left behind by a job that was retried and is now scheduled for later (its
            // live id waits in the schedule).
            if entry.job.run_at > now || entry.job.status != JobStatus::Queued {
                continue;
            }
            // A key with a job held back here stays closed for this claim, so its jobs
            // keep their order.
            let key_busy = entry.job.concurrency_key.as_ref().is_some_and(|key| {
                let running = self.running_keys.get(key).copied().unwrap_or(0);
                running >= entry.job.concurrency_limit.unwrap_or(1) || held_keys.contains(key)
            });
            if key_busy || !budgets.take(request.queue, &entry.job.job_type) {
                if let Some(key) = &entry.job.concurrency_key {
                    if !held_keys.contains(key) {
                        held_keys.push(key.clone());
                    }
                }
                held.push((id, entry.job.priority));
                if held.len() >= LOOK_AHEAD {
                    break;
                }
                continue;
            }
            entry.job.start().expect("a queued job starts");
            if let Some(key) = &entry.job.concurrency_key {
                *self.running_keys.entry(key.clone()).or_insert(0) += 1;
            }
            entry.holder = holder;
            entry.lease_until = Some(until);
            claimed.push(ClaimedJob::of(&entry.job));
            let type_slot = entry.type_slot;
            self.moved(id, type_slot, JobStatus::Queued, JobStatus::Running);
            self.running.push(id);
        }
        self.lanes.put_back(request.queue, &held);
        for (rule, opens, taken) in budgets.taken() {
            let window = self
                .rate_windows
                .entry(rule.budget_name())
                .or_insert((opened, 0));
            if opens {
                *window = (opened, 0);
            }
            window.1 += taken;
        }
        let live = self.counts[slot(JobStatus::Running)];
        if self.running.len() > 2 * live + 64 {
            let (index, entries) = (&self.index, &self.entries);
            self.running.retain(|id| {
                index
                    .get(id)
                    .is_some_and(|at| entries[*at as usize].job.status == JobStatus::Running)
            });
        }
        claimed
    }

    fn complete(
        &mut self,
        holder: &str,
        completions: &[Completion],
        events: &mut Vec<JobEvent>,
    ) -> Vec<Completed> {
        let Some(holder) = self.holder_index(holder) else {
            return vec![Completed::NotHeld; completions.len()];
        };
        completions
            .iter()
            .map(|completion| {
                let answer = self.complete_one(holder, completion);
                if let Completed::Applied(status) = answer {
                    if status.is_terminal() {
                        self.settle_dependants(completion.id, status, events);
                    }
                }
                answer
            })
            .collect()
    }

    fn complete_one(&mut self, holder: u32, completion: &Completion) -> Completed {
        let Some(&at) = self.index.get(&completion.id) else {
            return Completed::NotHeld;
        };
        let entry = &mut self.entries[at as usize];
        if entry.holder != holder || entry.job.status != JobStatus::Running {
            return Completed::NotHeld;
        }
        let Ok(status) = entry.job.finish(completion.attempt, &completion.outcome) else {
            return Completed::NotHeld;
        };
        if let Outcome::Succeeded { result } = &completion.outcome {
            // `null` is what `get_result` answers for a succeeded job without one.
            if !result.is_null() {
                entry.result = Some(result.clone());
            }
        }
        entry.lease_until = None;
        let type_slot = entry.type_slot;
        if status == JobStatus::Queued {
            // Borrow dance: the lanes want the job, which lives in `entries`.
            let job = &self.entries[at as usize].job;
            self.lanes.push(job);
        }
        self.moved(completion.id, type_slot, JobStatus::Running, status);
        self.release_key(at as usize);
        if let Some(key) = &self.entries[at as usize].job.concurrency_key {
            if let Some(running) = self.running_keys.get_mut(key) {
                *running -= 1;
                if *running == 0 {
                    self.running_keys.remove(key);
                }
            }
        }
        let job = &self.entries[at as usize].job;
        if let Some(finished_at) = job.finished_at.filter(|_| status.is_terminal()) {
            self.finished.record(&job.queue, status, finished_at);
        }
        Completed::Applied(status)
    }

    fn renew(&mut self, holder: &str, leases: &[Lease], lease: Duration) -> Vec<Renewal> {
        let now = Instant::now();
        let holder = self.holder_index(holder);
        leases
            .iter()
            .map(|held| {
                let entry = match (holder, self.get_mut(&held.id)) {
                    (Some(holder), Some(entry)) if entry.holder == holder => entry,
                    _ => return Renewal::Lost,
                };
                let live = entry.job.status == JobStatus::Running
                    && entry.job.attempt == held.attempt
                    && entry.lease_until.is_some_and(|until| until > now);
                if !live {
                    return Renewal::Lost;
                }
                entry.lease_until = Some(now + lease);
                Renewal::Held {
                    cancel_requested: entry.job.cancel_requested,
                }
            })
            .collect()
    }

    fn expired(&self, limit: usize) -> Vec<ExpiredLease> {
        let now = Instant::now();
        let mut expired: Vec<(Instant, ExpiredLease)> = self
            .running
            .iter()
            .filter_map(|id| self.get(id))
            .filter(|entry| entry.job.status == JobStatus::Running)
            .filter_map(|entry| {
                let until = entry.lease_until?;
                (until <= now).then(|| {
                    let holder = self.holders[entry.holder as usize].clone();
                    (until, ExpiredLease::of(&entry.job, holder))
                })
            })
            .collect();
        expired.sort_by_key(|(until, lease)| (*until, lease.id));
        // An id claimed twice since the last compaction appears twice.
        expired.dedup_by_key(|(_, lease)| lease.id);
        expired.truncate(limit);
        expired.into_iter().map(|(_, lease)| lease).collect()
    }

    fn request_cancel(&mut self, id: JobId, events: &mut Vec<JobEvent>) -> CancelOutcome {
        let Some(&at) = self.index.get(&id) else {
            return CancelOutcome::NotFound;
        };
        let entry = &mut self.entries[at as usize];
        let type_slot = entry.type_slot;
        match entry.job.status {
            from @ (JobStatus::Queued | JobStatus::Waiting) => {
                if entry.job.cancel_queued().is_err() {
                    return CancelOutcome::AlreadyFinished(entry.job.status);
                }
                entry.waiting = 0;
                let job = entry.job.clone();
                self.moved(id, type_slot, from, JobStatus::Canceled);
                self.release_key(at as usize);
                self.settle_dependants(id, JobStatus::Canceled, events);
                let (index, entries) = (&self.index, &self.entries);
                self.lanes.discard(&job.queue, |id| {
                    index
                        .get(&id)
                        .is_some_and(|at| entries[*at as usize].job.status == JobStatus::Queued)
                });
                let at = job.finished_at.unwrap_or_else(Timestamp::now);
                self.finished.record(&job.queue, JobStatus::Canceled, at);
                CancelOutcome::CanceledQueued(job)
            }
            JobStatus::Running => {
                entry.job.cancel_requested = true;
                CancelOutcome::Requested(entry.job.clone())
            }
            status => CancelOutcome::AlreadyFinished(status),
        }
    }

    fn retry(&mut self, id: &JobId) -> RetryOutcome {
        let Some(&at) = self.index.get(id) else {
            return RetryOutcome::NotFound;
        };
        let job = &self.entries[at as usize].job;
        if !matches!(job.status, JobStatus::Failed | JobStatus::Canceled) {
            return RetryOutcome::NotRetryable(job.status);
        }
        if job.has_parents() {
            let parents = job.depends_on.iter().map(|parent| {
                let status = self
                    .get(parent)
                    .map_or(JobStatus::Canceled, |e| e.job.status);
                (*parent, status)
            });
            if Readiness::of(job.on_parent_failure, parents) != Readiness::Ready {
                return RetryOutcome::ParentsNotDone;
            }
        }
        if let Some(key) = &job.unique_key {
            if self.holder_of_key(&job.job_type, key).is_some() {
                return RetryOutcome::KeyHeld;
            }
            let key = (job.job_type.clone(), key.clone());
            self.unique.insert(key, job.id);
        }
        let entry = &mut self.entries[at as usize];
        let from = entry.job.status;
        if entry.job.retry_finished().is_err() {
            return RetryOutcome::NotRetryable(from);
        }
        entry.result = None;
        if entry.job.has_parents() && entry.job.payload_from != PayloadFrom::Submitted {
            // Its parents' results, as a release would have given it.
            let payload = released_payload(&self.entries[at as usize].job, |p| self.end_of(p));
            self.entries[at as usize].job.payload = payload;
        }
        let entry = &mut self.entries[at as usize];
        let type_slot = entry.type_slot;
        self.moved(*id, type_slot, from, JobStatus::Queued);
        let job = &self.entries[at as usize].job;
        self.lanes.push(job);
        RetryOutcome::Retried(Box::new(job.clone()))
    }

    fn delete(&mut self, id: &JobId) -> DeleteOutcome {
        match self.get(id).map(|entry| entry.job.status) {
            None => DeleteOutcome::NotFound,
            Some(status) if !status.is_terminal() => DeleteOutcome::NotFinished(status),
            Some(_) => {
                self.remove(id);
                DeleteOutcome::Deleted
            }
        }
    }

    /// The concurrency keys of active jobs (only `keys`, when given): the due queued jobs
    /// from the queues' ids, the running ones from the ids of claimed jobs.
    fn key_counts(&self, keys: Option<&[String]>) -> Vec<KeyCount> {
        let wanted = |key: &str| keys.is_none_or(|keys| keys.iter().any(|k| k == key));
        let now = Timestamp::now();
        let mut counts: HashMap<&str, KeyCount> = HashMap::new();
        let mut seen: HashSet<JobId> = HashSet::new();
        let queued = self.lanes.ids().map(|(_, id)| id);
        for id in queued.chain(self.running.iter().copied()) {
            let Some(entry) = self.get(&id) else { continue };
            let job = &entry.job;
            let Some(key) = job.concurrency_key.as_deref().filter(|key| wanted(key)) else {
                continue;
            };
            let due = job.status == JobStatus::Queued && job.run_at <= now;
            if !(due || job.status == JobStatus::Running) || !seen.insert(id) {
                continue;
            }
            let count = counts
                .entry(key)
                .or_insert_with(|| KeyCount::new(key, 0, 0, 1));
            if due {
                count.queued += 1;
            } else {
                count.running += 1;
            }
            count.limit = count.limit.max(job.concurrency_limit.unwrap_or(1));
        }
        let mut counts: Vec<KeyCount> = counts.into_values().collect();
        counts.sort_by(|a, b| a.key.cmp(&b.key));
        counts
    }

    fn queue_counts(&self) -> Vec<QueueCounts> {
        let now = Timestamp::now();
        let mut counts: Vec<QueueCounts> = Vec::new();
        let mut seen = HashSet::new();
        let mut count = |queue: &str, field: fn(&mut QueueCounts) -> &mut u64| {
            let at = match counts.iter().position(|c| c.queue == queue) {
                Some(at) => at,
                None => {
                    counts.push(QueueCounts::new(queue));
                    counts.len() - 1
                }
            };
            *field(&mut counts[at]) += 1;
        };
        for (queue, id) in self.lanes.ids() {
            let Some(job) = self.get(&id).map(|entry| &entry.job) else {
                continue;
            };
            if job.status != JobStatus::Queued || job.queue != queue || !seen.insert(id) {
                continue;
            }
            if job.run_at > now {
                count(queue, |c| &mut c.scheduled);
            } else {
                count(queue, |c| &mut c.queued);
            }
        }
        for id in &self.running {
            let Some(job) = self.get(id).map(|entry| &entry.job) else {
                continue;
            };
            if job.status == JobStatus::Running && seen.insert(*id) {
                count(&job.queue, |c| &mut c.running);
            }
        }
        counts.sort_by(|a, b| a.queue.cmp(&b.queue));
        counts
    }

    fn list(&self, query: &JobQuery) -> JobPage {
        self.list_visiting(query).0
    }

    /// A page of `query`, and how many jobs were looked at to make it.
    ///
    /// A status filter reads that status's ids only; without one, the statuses' ids are
    /// merged newest first. Type and queue filters are checked per job.
    fn list_visiting(&self, query: &JobQuery) -> (JobPage, usize) {
        let limit = query.limit.clamp(1, JobQuery::MAX_LIMIT);
        let mut visited = 0;
        let mut jobs: Vec<Job> = Vec::with_capacity(limit.min(64));
        let mut more = false;
        let statuses: Vec<JobStatus> = match query.status {
            Some(status) => vec![status],
            None => JobStatus::ALL.to_vec(),
        };
        let mut sources: Vec<_> = match query.flow {
            // A flow's members, whatever their status (filtered per job below).
            Some(flow) => {
                let members = self.flows.get(&flow);
                let ids: Box<dyn Iterator<Item = JobId> + '_> = match (members, query.cursor) {
                    (None, _) => Box::new(std::iter::empty()),
                    (Some(set), Some(cursor)) => Box::new(set.ids.range(..cursor).rev().copied()),
                    (Some(set), None) => Box::new(set.ids.iter().rev().copied()),
                };
                vec![ids.peekable()]
            }
            None => statuses
                .into_iter()
                .map(|status| self.ids_newest_first(status, query.cursor).peekable())
                .collect(),
        };
        loop {
            // The newest id at the head of any status's ids comes next.
            let mut newest: Option<(usize, JobId)> = None;
            for (at, source) in sources.iter_mut().enumerate() {
                if let Some(&id) = source.peek() {
                    if newest.is_none_or(|(_, best)| id > best) {
                        newest = Some((at, id));
                    }
                }
            }
            let Some((source, _)) = newest else {
                break;
            };
            let id = sources[source].next().expect("peeked");
            let Some(job) = self.get(&id).map(|entry| &entry.job) else {
                continue;
            };
            visited += 1;
            if !query.matches(job) {
                continue;
            }
            if jobs.len() == limit {
                more = true;
                break;
            }
            jobs.push(job.clone());
        }
        let next_cursor = if more {
            jobs.last().map(|job| job.id)
        } else {
            None
        };
        (JobPage::new(jobs, next_cursor), visited)
    }

    /// The ids of `status` older than `cursor`, newest first.
    fn ids_newest_first(
        &self,
        status: JobStatus,
        cursor: Option<JobId>,
    ) -> Box<dyn Iterator<Item = JobId> + '_> {
        if status == JobStatus::Running {
            let mut ids: Vec<JobId> = self
                .running
                .iter()
                .copied()
                .filter(|id| cursor.is_none_or(|cursor| *id < cursor))
                .filter(|id| self.get(id).is_some_and(|e| e.job.status == status))
                .collect();
            // An id claimed twice since the last compaction appears twice.
            ids.sort_unstable_by(|a, b| b.cmp(a));
            ids.dedup();
            return Box::new(ids.into_iter());
        }
        let set = &self.by_status[slot(status)];
        match cursor {
            Some(cursor) => Box::new(set.range(..cursor).rev().copied()),
            None => Box::new(set.iter().rev().copied()),
        }
    }
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::with_event_capacity(EventBus::DEFAULT_CAPACITY)
    }

    /// An empty store whose event subscribers may fall `capacity` events behind.
    pub fn with_event_capacity(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            bus: EventBus::new(capacity),
            max_active: Self::DEFAULT_MAX_ACTIVE,
        }
    }

    /// The most `Queued` and `Running` jobs a store holds unless told otherwise.
    pub const DEFAULT_MAX_ACTIVE: usize = 1_000_000;

    /// Holds at most `jobs` `Waiting`, `Queued` and `Running` jobs (default
    /// [`InMemoryStore::DEFAULT_MAX_ACTIVE`]): a submission beyond it is refused with
    /// [`SubmitError::StoreFull`](jobs_core::SubmitError::StoreFull) (`503` over HTTP) and
    /// nothing of it is stored, so a producer faster than the workers, or jobs for a queue
    /// nothing serves, cannot grow the process without end. Finished jobs do not count
    /// (retention removes them).
    pub fn with_max_active_jobs(mut self, jobs: usize) -> Self {
        self.max_active = jobs;
        self
    }

    /// How many stored jobs are in `status`, counted as jobs change (no scan).
    pub fn count(&self, status: JobStatus) -> usize {
        self.lock().counts[slot(status)]
    }

    /// How many jobs are stored.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no job is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many ids wait in the queues (due or scheduled; canceled jobs' ids leave at the
    /// next claim that reaches them, or once they are half of their queue's).
    pub fn queued_ids(&self) -> usize {
        self.lock().lanes.len()
    }

    /// How many named queues keep a lane of queued ids here (a queue left without queued
    /// jobs by cancels loses its lane).
    pub fn queue_lanes(&self) -> usize {
        self.lock().lanes.lane_count()
    }

    /// The bus that carries this store's events and signals.
    pub(crate) fn bus(&self) -> &EventBus {
        &self.bus
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a job half-updated (every update is
        // a few field writes after all checks), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for InMemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryStore")
            .field("jobs", &self.len())
            .finish_non_exhaustive()
    }
}

/// The refusal of a batch in which `job` names a parent that is not stored.
fn missing_parent(job: JobId, parent: JobId) -> StorageError {
    StorageError::of_kind(
        StorageErrorKind::InvalidInput,
        format!("job {job} depends on {parent}, which is not stored: submit the parent first, or in the same batch before it"),
    )
}

/// The `submitted` events of `jobs`.
fn submitted(jobs: &[Job]) -> Vec<JobEvent> {
    jobs.iter()
        .map(|job| JobEvent::Submitted {
            id: job.id,
            job_type: job.job_type.clone(),
        })
        .collect()
}

/// The events of the jobs that `answers` say were stored.
fn stored_only(events: Vec<JobEvent>, answers: &[Inserted]) -> Vec<JobEvent> {
    events
        .into_iter()
        .zip(answers)
        .filter(|(_, answer)| matches!(answer, Inserted::Stored))
        .map(|(event, _)| event)
        .collect()
}

/// An answer that is ready at once.
fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl JobStore for InMemoryStore {
    fn insert_many(&self, jobs: Vec<Job>) -> BoxFuture<'_, Result<Vec<Inserted>, StorageError>> {
        let announce = self.bus.has_subscribers() || self.bus.has_signal_subscribers();
        let events = announce.then(|| submitted(&jobs));
        let mut state = self.lock();
        let mut settled = Vec::new();
        let answers = state.insert(jobs, self.max_active, &mut settled);
        if let (Ok(answers), Some(events)) = (&answers, events) {
            // Sent under the lock, so no claim (which takes it) can come before.
            let mut events = stored_only(events, answers);
            events.append(&mut settled);
            self.bus.send(events);
        }
        drop(state);
        ready(answers)
    }

    fn supports_unique_keys(&self) -> bool {
        true
    }

    fn supports_rate_limits(&self) -> bool {
        true
    }

    fn supports_concurrency_keys(&self) -> bool {
        true
    }

    fn supports_dependencies(&self) -> bool {
        true
    }

    fn claim<'a>(
        &'a self,
        request: ClaimRequest<'a>,
    ) -> BoxFuture<'a, Result<Vec<ClaimedJob>, StorageError>> {
        ready(Ok(self.lock().claim(&request)))
    }

    fn next_due<'a>(
        &'a self,
        queue: &'a str,
    ) -> BoxFuture<'a, Result<Option<Duration>, StorageError>> {
        let mut state = self.lock();
        if state.paused.contains_key(queue) {
            return ready(Ok(None));
        }
        ready(Ok(state.lanes.next_due(queue)))
    }

    fn complete_many<'a>(
        &'a self,
        holder: &'a str,
        completions: &'a [Completion],
    ) -> BoxFuture<'a, Result<Vec<Completed>, StorageError>> {
        let mut events = Vec::new();
        let mut state = self.lock();
        let answers = state.complete(holder, completions, &mut events);
        if !events.is_empty() {
            // The engine announces the completions themselves; the dependants they
            // settled are announced here, under the lock, before any claim of theirs.
            self.bus.send(events);
        }
        drop(state);
        ready(Ok(answers))
    }

    fn renew<'a>(
        &'a self,
        holder: &'a str,
        leases: &'a [Lease],
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<Renewal>, StorageError>> {
        ready(Ok(self.lock().renew(holder, leases, lease)))
    }

    fn expired(&self, limit: usize) -> BoxFuture<'_, Result<Vec<ExpiredLease>, StorageError>> {
        ready(Ok(self.lock().expired(limit)))
    }

    fn update_progress(
        &self,
        id: JobId,
        attempt: u32,
        progress: Progress,
    ) -> BoxFuture<'_, Result<ProgressAck, StorageError>> {
        let mut state = self.lock();
        let ack = match state.get_mut(&id).map(|entry| &mut entry.job) {
            Some(job) if job.status == JobStatus::Running && job.attempt == attempt => {
                job.progress = Some(progress);
                ProgressAck::Stored {
                    cancel_requested: job.cancel_requested,
                }
            }
            _ => ProgressAck::NotRunning,
        };
        ready(Ok(ack))
    }

    fn request_cancel(&self, id: JobId) -> BoxFuture<'_, Result<CancelOutcome, StorageError>> {
        let mut events = Vec::new();
        let mut state = self.lock();
        let outcome = state.request_cancel(id, &mut events);
        if !events.is_empty() {
            self.bus.send(events);
        }
        drop(state);
        ready(Ok(outcome))
    }

    fn get(&self, id: JobId) -> BoxFuture<'_, Result<Option<Job>, StorageError>> {
        ready(Ok(self.lock().get(&id).map(|entry| entry.job.clone())))
    }

    fn list(&self, query: JobQuery) -> BoxFuture<'_, Result<JobPage, StorageError>> {
        ready(Ok(self.lock().list(&query)))
    }

    fn get_result(&self, id: JobId) -> BoxFuture<'_, Result<Option<Value>, StorageError>> {
        let state = self.lock();
        let result = match state.get(&id) {
            Some(entry) if entry.job.status == JobStatus::Succeeded => {
                Some(entry.result.clone().unwrap_or(Value::Null))
            }
            _ => None,
        };
        ready(Ok(result))
    }

    fn count_jobs(&self) -> BoxFuture<'_, Result<Vec<JobCount>, StorageError>> {
        let state = self.lock();
        let mut counts: Vec<JobCount> = state
            .types
            .iter()
            .flat_map(|(job_type, counts)| {
                JobStatus::ALL
                    .into_iter()
                    .zip(counts.iter())
                    .filter(|(_, count)| **count > 0)
                    .map(|(status, count)| JobCount::new(job_type.clone(), status, *count as u64))
            })
            .collect();
        drop(state);
        counts.sort_by(|a, b| (&a.job_type, a.status).cmp(&(&b.job_type, b.status)));
        ready(Ok(counts))
    }

    fn prune_finished(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> BoxFuture<'_, Result<u64, StorageError>> {
        let mut state = self.lock();
        let mut doomed: Vec<JobId> = finished_before(&state, before, limit).collect();
        // The oldest first, across the statuses.
        doomed.sort_unstable();
        doomed.truncate(limit);
        for id in &doomed {
            state.remove(id);
        }
        ready(Ok(doomed.len() as u64))
    }

    fn is_durable(&self) -> bool {
        false
    }

    fn notifications(&self) -> Option<&dyn Notifications> {
        Some(&self.bus)
    }

    fn operations(&self) -> Option<&dyn Operations> {
        Some(self)
    }

    fn ticks(&self) -> Option<&dyn PeriodicTicks> {
        Some(self)
    }
}

/// The finished jobs that finished before `before`, at most `limit` of each status, by
/// status and then in submit order. Ids are in submit order and a job finishes after it
/// is submitted: only jobs submitted before `before` can qualify, so each finished
/// status's ids are read from the oldest up to the first one submitted later.
fn finished_before<'s>(
    state: &'s State,
    before: Timestamp,
    limit: usize,
) -> impl Iterator<Item = JobId> + 's {
    [JobStatus::Succeeded, JobStatus::Failed, JobStatus::Canceled]
        .into_iter()
        .flat_map(move |status| {
            state.by_status[slot(status)]
                .iter()
                .filter_map(|id| state.get(id))
                .take_while(move |entry| entry.job.created_at < before)
                .filter(move |entry| entry.job.finished_at.is_some_and(|at| at < before))
                .filter(|entry| state.flow_finished(&entry.job))
                .map(|entry| entry.job.id)
                .take(limit)
        })
}

impl Operations for InMemoryStore {
    fn retry_many<'a>(
        &'a self,
        ids: &'a [JobId],
    ) -> BoxFuture<'a, Result<Vec<RetryOutcome>, StorageError>> {
        let mut state = self.lock();
        ready(Ok(ids.iter().map(|id| state.retry(id)).collect()))
    }

    fn delete_many<'a>(
        &'a self,
        ids: &'a [JobId],
    ) -> BoxFuture<'a, Result<Vec<DeleteOutcome>, StorageError>> {
        let mut state = self.lock();
        ready(Ok(ids.iter().map(|id| state.delete(id)).collect()))
    }

    fn count_finished_before(&self, before: Timestamp) -> BoxFuture<'_, Result<u64, StorageError>> {
        let state = self.lock();
        ready(Ok(
            finished_before(&state, before, usize::MAX).count() as u64
        ))
    }

    fn queue_counts(&self) -> BoxFuture<'_, Result<Vec<QueueCounts>, StorageError>> {
        ready(Ok(self.lock().queue_counts()))
    }

    fn finished_per_minute(
        &self,
        since: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<FinishedCount>, StorageError>> {
        ready(Ok(self.lock().finished.since(since)))
    }

    fn record_worker<'a>(
        &'a self,
        worker: &'a WorkerInfo,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        let mut state = self.lock();
        let mut worker = worker.clone();
        if let Some(known) = state.workers.get(&worker.id) {
            worker.started_at = known.started_at;
        }
        state.workers.insert(worker.id.clone(), worker);
        ready(Ok(()))
    }

    fn remove_worker<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        self.lock().workers.remove(id);
        ready(Ok(()))
    }

    fn workers(&self, since: Timestamp) -> BoxFuture<'_, Result<Vec<WorkerInfo>, StorageError>> {
        let mut state = self.lock();
        let day_ago =
            Timestamp::from_unix_micros(Timestamp::now().as_unix_micros() - 86_400_000_000);
        state
            .workers
            .retain(|_, worker| worker.last_seen >= day_ago);
        let mut workers: Vec<WorkerInfo> = state
            .workers
            .values()
            .filter(|worker| worker.last_seen >= since)
            .cloned()
            .collect();
        drop(state);
        workers.sort_by(|a, b| a.id.cmp(&b.id));
        ready(Ok(workers))
    }

    fn set_paused<'a>(
        &'a self,
        queue: &'a str,
        paused: bool,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        let mut state = self.lock();
        let changed = if paused {
            match state.paused.entry(queue.to_owned()) {
                std::collections::hash_map::Entry::Occupied(_) => false,
                std::collections::hash_map::Entry::Vacant(entry) => {
                    entry.insert(Timestamp::now());
                    true
                }
            }
        } else {
            state.paused.remove(queue).is_some()
        };
        ready(Ok(changed))
    }

    fn key_counts<'a>(
        &'a self,
        keys: Option<&'a [String]>,
    ) -> BoxFuture<'a, Result<Vec<KeyCount>, StorageError>> {
        ready(Ok(self.lock().key_counts(keys)))
    }

    fn dependants(&self, id: JobId) -> BoxFuture<'_, Result<Vec<JobId>, StorageError>> {
        let state = self.lock();
        ready(Ok(state.children.get(&id).cloned().unwrap_or_default()))
    }

    fn rate_windows<'a>(
        &'a self,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<(String, RateWindow)>, StorageError>> {
        let state = self.lock();
        let now = Instant::now();
        let windows = names
            .iter()
            .filter_map(|name| {
                let record = state.rate_windows.get(name)?;
                Some((name.clone(), window_at(Some(record), now)))
            })
            .collect();
        ready(Ok(windows))
    }

    fn paused_queues(&self) -> BoxFuture<'_, Result<Vec<PausedQueue>, StorageError>> {
        let mut paused: Vec<PausedQueue> = self
            .lock()
            .paused
            .iter()
            .map(|(queue, since)| PausedQueue::new(queue.clone(), *since))
            .collect();
        paused.sort_by(|a, b| a.queue.cmp(&b.queue));
        ready(Ok(paused))
    }
}

impl PeriodicTicks for InMemoryStore {
    fn insert_tick<'a>(
        &'a self,
        job: Job,
        schedule: &'a str,
        tick: Timestamp,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        // The tick is claimed under the lock: only the caller that claims it inserts.
        let mut state = self.lock();
        if state.ticks.get(schedule).is_some_and(|last| *last >= tick) {
            return ready(Ok(false));
        }
        let events = submitted(std::slice::from_ref(&job));
        let stored = state
            .insert(vec![job], self.max_active, &mut Vec::new())
            .map(|answers| matches!(answers.first(), Some(Inserted::Stored)));
        if let Ok(true) = stored {
            state.ticks.insert(schedule.to_owned(), tick);
            self.bus.send(events);
        }
        ready(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(n: i64) -> Timestamp {
        Timestamp::from_unix_micros(n * 60_000_000 + 1_000)
    }

    /// Listing one status looks at that status's jobs only, however many others the
    /// store holds, and an unfiltered listing still pages through every job newest first.
    #[test]
    fn a_status_listing_visits_only_jobs_of_that_status() {
        let mut state = State::default();
        let jobs: Vec<Job> = (0..5_000).map(|_| Job::new("t", Value::Null)).collect();
        let ids: Vec<JobId> = jobs.iter().map(|job| job.id).collect();
        state.insert(jobs, usize::MAX, &mut Vec::new()).unwrap();
        let canceled = ids[1_234];
        assert!(matches!(
            state.request_cancel(canceled, &mut Vec::new()),
            CancelOutcome::CanceledQueued(_)
        ));
        let request = ClaimRequest {
            queue: Job::DEFAULT_QUEUE,
            limit: 3,
            holder: "h",
            lease: Duration::from_secs(60),
            rates: &[],
        };
        let running: Vec<JobId> = state.claim(&request).iter().map(|job| job.id).collect();
        assert_eq!(
            running,
            ids[..3].to_vec(),
            "the oldest queued jobs are claimed"
        );

        let (page, visited) = state.list_visiting(&JobQuery::new().status(JobStatus::Canceled));
        let listed: Vec<JobId> = page.jobs.iter().map(|job| job.id).collect();
        assert_eq!(listed, vec![canceled]);
        assert_eq!(visited, 1, "only the canceled job is looked at");

        let (page, visited) = state.list_visiting(&JobQuery::new().status(JobStatus::Running));
        let listed: Vec<JobId> = page.jobs.iter().map(|job| job.id).collect();
        assert_eq!(listed, vec![ids[2], ids[1], ids[0]], "newest first");
        assert_eq!(visited, 3);

        let (page, visited) = state.list_visiting(&JobQuery::new().status(JobStatus::Succeeded));
        assert!(page.jobs.is_empty());
        assert_eq!(visited, 0);

        let query = JobQuery::new().status(JobStatus::Queued).limit(10);
        let (page, visited) = state.list_visiting(&query);
        assert_eq!(page.jobs.len(), 10);
        assert!(
            visited <= 11,
            "a page looks at one job past its end, not {visited}"
        );

        // Every job, all statuses merged, newest first, a page at a time.
        let mut seen = Vec::new();
        let mut query = JobQuery::new().limit(JobQuery::MAX_LIMIT);
        loop {
            let (page, _) = state.list_visiting(&query);
            seen.extend(page.jobs.iter().map(|job| job.id));
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => break,
            }
        }
        let mut newest_first = ids.clone();
        newest_first.reverse();
        assert_eq!(seen, newest_first);
    }

    #[test]
    fn finishes_count_in_their_own_minute_even_out_of_order() {
        let mut finished = Finished::default();
        finished.record("q", JobStatus::Succeeded, minute(10));
        finished.record("q", JobStatus::Failed, minute(12));
        // Stamped in a minute between the two (the clock stepped back).
        finished.record("q", JobStatus::Succeeded, minute(11));
        finished.record("r", JobStatus::Canceled, minute(12));
        let counts = finished.since(Timestamp::from_unix_micros(0));
        let minutes: Vec<(i64, &str, JobStatus, u64)> = counts
            .iter()
            .map(|c| {
                let minute = c.minute.as_unix_micros() / 60_000_000;
                (minute, c.queue.as_str(), c.status, c.count)
            })
            .collect();
        assert_eq!(
            minutes,
            vec![
                (10, "q", JobStatus::Succeeded, 1),
                (11, "q", JobStatus::Succeeded, 1),
                (12, "q", JobStatus::Failed, 1),
                (12, "r", JobStatus::Canceled, 1),
            ]
        );
        for n in 13..13 + Finished::KEPT as i64 {
            finished.record("q", JobStatus::Succeeded, minute(n));
        }
        assert_eq!(
            finished.minutes.len(),
            Finished::KEPT,
            "only the last hour is kept"
        );
    }
}
