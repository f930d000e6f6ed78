//! An in-memory job repository.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use jobs_core::{
    BoxFuture, CancelOutcome, Expected, Inserted, Job, JobCount, JobEvent, JobId, JobPage,
    JobQuery, JobRepository, JobStatus, Progress, ProgressAck, StorageError, Timestamp, Transition,
    TransitionError, TransitionOutcome,
};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::id_hash::IdMap;

/// Job metadata and results in this process's memory.
///
/// The default repository. Every operation takes one short lock that is never held across
/// an `.await`; status changes go through [`Job::apply`], the shared compare-and-set rule.
/// Nothing survives the process: use a durable backend when jobs must outlive it.
///
/// Several [`Jobs`](crate::Jobs) services can share one repository (and one queue) by
/// passing the same `Arc` to their builders; they then see each other's jobs and events.
pub struct InMemoryRepository {
    state: Mutex<State>,
    events: broadcast::Sender<JobEvent>,
    cancellations: broadcast::Sender<JobId>,
}

#[derive(Default)]
struct State {
    // Every job with its result, in the order stored; `index` finds one by id.
    entries: Vec<Entry>,
    index: IdMap<u32>,
    // Ids in order, which is time order (UUID v7): listing newest first is a reverse range.
    order: BTreeSet<JobId>,
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
}

struct Entry {
    job: Job,
    // Stored apart from the job's metadata: only `get_result` reads it.
    result: Option<Value>,
    type_slot: u32,
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

    /// The active job of `job_type` holding `key`, if any.
    fn holder(&self, job_type: &str, key: &str) -> Option<&Job> {
        let id = self.unique.get(&(job_type.to_owned(), key.to_owned()))?;
        self.get(id)
            .map(|entry| &entry.job)
            .filter(|job| !job.status.is_terminal())
    }

    /// Frees the unique key of a job that has just finished.
    fn release_key(&mut self, job: &Job) {
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
        self.order.remove(id);
        self.counts[slot(entry.job.status)] -= 1;
        self.types[entry.type_slot as usize].1[slot(entry.job.status)] -= 1;
    }

    fn moved(&mut self, type_slot: u32, from: JobStatus, to: JobStatus) {
        self.counts[slot(from)] -= 1;
        self.counts[slot(to)] += 1;
        let counts = &mut self.types[type_slot as usize].1;
        counts[slot(from)] -= 1;
        counts[slot(to)] += 1;
    }
}

impl InMemoryRepository {
    /// How many events a subscriber may fall behind before it skips some.
    pub const DEFAULT_EVENT_CAPACITY: usize = 4_096;

    /// An empty repository.
    pub fn new() -> Self {
        Self::with_event_capacity(Self::DEFAULT_EVENT_CAPACITY)
    }

    /// An empty repository whose subscribers may fall `capacity` events behind.
    pub fn with_event_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            state: Mutex::new(State::default()),
            events: broadcast::channel(capacity).0,
            cancellations: broadcast::channel(capacity).0,
        }
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

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a job half-updated (every update is
        // a few field writes after all checks), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes an event if anyone listens; builds it only then.
    fn publish(&self, event: impl FnOnce() -> JobEvent) {
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(event());
        }
    }

    fn insert_now(&self, job: Job) -> Result<(), StorageError> {
        self.insert_unique_now(job)?.stored()
    }

    fn insert_unique_now(&self, job: Job) -> Result<Inserted, StorageError> {
        let mut state = self.lock();
        if let Some(key) = &job.unique_key {
            if let Some(holder) = state.holder(&job.job_type, key) {
                return Ok(Inserted::Existing(Box::new(holder.clone())));
            }
        }
        let at = u32::try_from(state.entries.len())
            .map_err(|_| StorageError::new("the in-memory repository is full"))?;
        let id = job.id;
        match state.index.entry(id) {
            std::collections::hash_map::Entry::Occupied(_) => {
                return Err(StorageError::new(format!(
                    "a job with id {id} is already stored"
                )))
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(at);
            }
        }
        if let Some(key) = &job.unique_key {
            state.unique.insert((job.job_type.clone(), key.clone()), id);
        }
        let type_slot = state.type_slot(&job.job_type);
        state.counts[slot(job.status)] += 1;
        state.types[type_slot as usize].1[slot(job.status)] += 1;
        state.order.insert(id);
        self.publish(|| JobEvent::Submitted {
            id,
            job_type: job.job_type.clone(),
        });
        state.entries.push(Entry {
            job,
            result: None,
            type_slot,
        });
        Ok(Inserted::Stored)
    }

    fn transition_now(
        &self,
        id: JobId,
        expected: Expected,
        transition: Transition,
    ) -> TransitionOutcome {
        let mut state = self.lock();
        let Some(entry) = state.get_mut(&id) else {
            return TransitionOutcome::NotFound;
        };
        let job = &mut entry.job;
        let from = job.status;
        if let Err(error) = job.apply(expected, &transition) {
            let current = match error {
                TransitionError::Conflict { current, .. } => current,
                _ => job.status,
            };
            return TransitionOutcome::Conflict {
                current,
                attempt: job.attempt,
            };
        }
        let job = job.clone();
        let type_slot = entry.type_slot;
        match transition {
            Transition::Start => self.publish(|| JobEvent::Started {
                id,
                attempt: job.attempt,
            }),
            Transition::Succeed { result } => {
                // `null` is what `get_result` answers for a succeeded job without one.
                entry.result = Some(result).filter(|result| !result.is_null());
                self.publish_finished(&job);
            }
            _ if job.status.is_terminal() => self.publish_finished(&job),
            Transition::Retry { error, run_at } => self.publish(|| JobEvent::Requeued {
                id,
                attempt: job.attempt,
                run_at,
                error: Some(error),
            }),
            Transition::Snooze { run_at } => self.publish(|| JobEvent::Requeued {
                id,
                attempt: job.attempt,
                run_at,
                error: None,
            }),
            _ => self.publish_finished(&job),
        }
        state.moved(type_slot, from, job.status);
        state.release_key(&job);
        TransitionOutcome::Applied(job)
    }

    fn publish_finished(&self, job: &Job) {
        self.publish(|| JobEvent::Finished {
            id: job.id,
            status: job.status,
            error: job.error.clone(),
        });
    }

    fn update_progress_now(&self, id: JobId, attempt: u32, progress: Progress) -> ProgressAck {
        let mut state = self.lock();
        match state.get_mut(&id).map(|entry| &mut entry.job) {
            Some(job) if job.status == JobStatus::Running && job.attempt == attempt => {
                let cancel_requested = job.cancel_requested;
                self.publish(|| JobEvent::Progress {
                    id,
                    progress: progress.clone(),
                });
                job.progress = Some(progress);
                ProgressAck::Stored { cancel_requested }
            }
            _ => ProgressAck::NotRunning,
        }
    }

    fn request_cancel_now(&self, id: JobId) -> CancelOutcome {
        let mut state = self.lock();
        let Some(entry) = state.get_mut(&id) else {
            return CancelOutcome::NotFound;
        };
        let type_slot = entry.type_slot;
        let job = &mut entry.job;
        match job.status {
            JobStatus::Queued => {
                let expected = Expected::new(JobStatus::Queued, job.attempt);
                if job.apply(expected, &Transition::Cancel).is_err() {
                    return CancelOutcome::AlreadyFinished(job.status);
                }
                let job = job.clone();
                state.moved(type_slot, JobStatus::Queued, JobStatus::Canceled);
                state.release_key(&job);
                self.publish_finished(&job);
                CancelOutcome::CanceledQueued(job)
            }
            JobStatus::Running => {
                if !job.cancel_requested {
                    job.cancel_requested = true;
                    self.publish(|| JobEvent::CancelRequested { id });
                    if self.cancellations.receiver_count() > 0 {
                        let _ = self.cancellations.send(id);
                    }
                }
                CancelOutcome::Requested(job.clone())
            }
            status => CancelOutcome::AlreadyFinished(status),
        }
    }

    fn list_now(&self, query: &JobQuery) -> JobPage {
        let state = self.lock();
        let limit = query.limit.clamp(1, JobQuery::MAX_LIMIT);
        let range = match query.cursor {
            Some(cursor) => state.order.range(..cursor),
            None => state.order.range(..),
        };
        let mut jobs: Vec<Job> = Vec::with_capacity(limit.min(64));
        let mut more = false;
        for job in range
            .rev()
            .filter_map(|id| state.get(id).map(|entry| &entry.job))
            .filter(|job| query.matches(job))
        {
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
        JobPage::new(jobs, next_cursor)
    }
}

impl Default for InMemoryRepository {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for InMemoryRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryRepository")
            .field("jobs", &self.len())
            .finish_non_exhaustive()
    }
}

impl JobRepository for InMemoryRepository {
    fn insert(&self, job: Job) -> BoxFuture<'_, Result<(), StorageError>> {
        let result = self.insert_now(job);
        Box::pin(async move { result })
    }

    fn insert_unique(&self, job: Job) -> BoxFuture<'_, Result<Inserted, StorageError>> {
        let result = self.insert_unique_now(job);
        Box::pin(async move { result })
    }

    fn insert_scheduled(
        &self,
        job: Job,
        schedule: &str,
        tick: Timestamp,
    ) -> BoxFuture<'_, Result<bool, StorageError>> {
        let result = (|| {
            // The tick is claimed under the lock: only the caller that claims it inserts.
            let mut state = self.lock();
            if state.ticks.get(schedule).is_some_and(|last| *last >= tick) {
                return Ok(false);
            }
            state.ticks.insert(schedule.to_owned(), tick);
            drop(state);
            self.insert_now(job).map(|()| true)
        })();
        Box::pin(async move { result })
    }

    fn prune_finished(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> BoxFuture<'_, Result<u64, StorageError>> {
        let mut state = self.lock();
        // Ids are in submit order and a job finishes after it is submitted: only jobs
        // submitted before `before` can qualify.
        let doomed: Vec<JobId> = state
            .order
            .iter()
            .filter_map(|id| state.get(id))
            .take_while(|entry| entry.job.created_at < before)
            .filter(|entry| entry.job.finished_at.is_some_and(|at| at < before))
            .filter(|entry| entry.job.status.is_terminal())
            .map(|entry| entry.job.id)
            .take(limit)
            .collect();
        for id in &doomed {
            state.remove(id);
        }
        let pruned = doomed.len() as u64;
        Box::pin(async move { Ok(pruned) })
    }

    fn get(&self, id: JobId) -> BoxFuture<'_, Result<Option<Job>, StorageError>> {
        let job = self.lock().get(&id).map(|entry| entry.job.clone());
        Box::pin(async move { Ok(job) })
    }

    fn list(&self, query: JobQuery) -> BoxFuture<'_, Result<JobPage, StorageError>> {
        let page = self.list_now(&query);
        Box::pin(async move { Ok(page) })
    }

    fn transition(
        &self,
        id: JobId,
        expected: Expected,
        transition: Transition,
    ) -> BoxFuture<'_, Result<TransitionOutcome, StorageError>> {
        let outcome = self.transition_now(id, expected, transition);
        Box::pin(async move { Ok(outcome) })
    }

    fn update_progress(
        &self,
        id: JobId,
        attempt: u32,
        progress: Progress,
    ) -> BoxFuture<'_, Result<ProgressAck, StorageError>> {
        let ack = self.update_progress_now(id, attempt, progress);
        Box::pin(async move { Ok(ack) })
    }

    fn request_cancel(&self, id: JobId) -> BoxFuture<'_, Result<CancelOutcome, StorageError>> {
        let outcome = self.request_cancel_now(id);
        Box::pin(async move { Ok(outcome) })
    }

    fn get_result(&self, id: JobId) -> BoxFuture<'_, Result<Option<Value>, StorageError>> {
        let state = self.lock();
        let result = match state.get(&id) {
            Some(entry) if entry.job.status == JobStatus::Succeeded => {
                Some(entry.result.clone().unwrap_or(Value::Null))
            }
            _ => None,
        };
        drop(state);
        Box::pin(async move { Ok(result) })
    }

    fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.events.subscribe()
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
        Box::pin(async move { Ok(counts) })
    }

    fn subscribe_cancellations(&self) -> broadcast::Receiver<JobId> {
        self.cancellations.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(repo: &InMemoryRepository, job_type: &str) -> Job {
        let job = Job::new(job_type, Value::Null);
        repo.insert_now(job.clone()).unwrap();
        job
    }

    #[test]
    fn only_one_of_two_racing_starts_wins() {
        let repo = InMemoryRepository::new();
        let job = queued(&repo, "T");
        let first = repo.transition_now(
            job.id,
            Expected::status(JobStatus::Queued),
            Transition::Start,
        );
        let second = repo.transition_now(
            job.id,
            Expected::status(JobStatus::Queued),
            Transition::Start,
        );
        assert!(matches!(first, TransitionOutcome::Applied(ref j) if j.attempt == 1));
        assert_eq!(
            second,
            TransitionOutcome::Conflict {
                current: JobStatus::Running,
                attempt: 1
            }
        );
    }

    #[test]
    fn result_is_stored_apart_and_returned_only_for_succeeded_jobs() {
        let repo = InMemoryRepository::new();
        let job = queued(&repo, "T");
        let result = |id| block_on(repo.get_result(id)).unwrap();
        repo.transition_now(
            job.id,
            Expected::status(JobStatus::Queued),
            Transition::Start,
        );
        assert_eq!(result(job.id), None, "no result while running");
        repo.transition_now(
            job.id,
            Expected::new(JobStatus::Running, 1),
            Transition::Succeed {
                result: serde_json::json!({"ok": true}),
            },
        );
        assert_eq!(result(job.id), Some(serde_json::json!({"ok": true})));
        assert_eq!(
            repo.lock().get(&job.id).unwrap().result,
            Some(serde_json::json!({"ok": true})),
            "kept beside the job, not in it"
        );

        let failed = queued(&repo, "T");
        repo.transition_now(
            failed.id,
            Expected::status(JobStatus::Queued),
            Transition::Start,
        );
        repo.transition_now(
            failed.id,
            Expected::new(JobStatus::Running, 1),
            Transition::Fail { error: "no".into() },
        );
        assert_eq!(result(failed.id), None);
        assert_eq!(result(JobId::new()), None);

        // A second finish of the succeeded job is refused and leaves its result alone.
        let again = repo.transition_now(
            job.id,
            Expected::new(JobStatus::Running, 1),
            Transition::Succeed {
                result: Value::Null,
            },
        );
        assert!(matches!(
            again,
            TransitionOutcome::Conflict {
                current: JobStatus::Succeeded,
                ..
            }
        ));
        assert_eq!(result(job.id), Some(serde_json::json!({"ok": true})));
    }

    #[test]
    fn listing_is_newest_first_with_filters_and_cursor() {
        let repo = InMemoryRepository::new();
        let ids: Vec<JobId> = (0..5)
            .map(|i| queued(&repo, if i % 2 == 0 { "Even" } else { "Odd" }).id)
            .collect();
        let page = repo.list_now(&JobQuery::new().limit(2));
        assert_eq!(
            page.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![ids[4], ids[3]]
        );
        let next = repo.list_now(&JobQuery::new().limit(2).cursor(page.next_cursor.unwrap()));
        assert_eq!(
            next.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![ids[2], ids[1]]
        );
        let last = repo.list_now(&JobQuery::new().limit(2).cursor(next.next_cursor.unwrap()));
        assert_eq!(last.jobs.len(), 1);
        assert_eq!(last.next_cursor, None);
        let evens = repo.list_now(&JobQuery::new().job_type("Even"));
        assert_eq!(evens.jobs.len(), 3);
        let running = repo.list_now(&JobQuery::new().status(JobStatus::Running));
        assert!(running.jobs.is_empty());
        assert_eq!(repo.count(JobStatus::Queued), 5);
        repo.request_cancel_now(ids[0]);
        repo.transition_now(
            ids[1],
            Expected::status(JobStatus::Queued),
            Transition::Start,
        );
        assert_eq!(
            JobStatus::ALL.map(|s| repo.count(s)),
            [3, 1, 0, 0, 1],
            "counts follow every change"
        );
        let by_type = block_on(repo.count_jobs()).unwrap();
        assert_eq!(
            by_type,
            vec![
                JobCount::new("Even", JobStatus::Queued, 2),
                JobCount::new("Even", JobStatus::Canceled, 1),
                JobCount::new("Odd", JobStatus::Queued, 1),
                JobCount::new("Odd", JobStatus::Running, 1),
            ]
        );
    }

    #[test]
    fn progress_is_stored_only_for_the_running_attempt() {
        let repo = InMemoryRepository::new();
        let job = queued(&repo, "T");
        assert_eq!(
            repo.update_progress_now(job.id, 0, Progress::new(5, "")),
            ProgressAck::NotRunning
        );
        repo.transition_now(
            job.id,
            Expected::status(JobStatus::Queued),
            Transition::Start,
        );
        assert_eq!(
            repo.update_progress_now(job.id, 1, Progress::new(50, "half")),
            ProgressAck::Stored {
                cancel_requested: false
            }
        );
        assert_eq!(
            repo.update_progress_now(job.id, 2, Progress::new(60, "")),
            ProgressAck::NotRunning
        );
        let stored = repo.lock().get(&job.id).unwrap().job.clone();
        assert_eq!(stored.progress, Some(Progress::new(50, "half")));
        assert_eq!(
            stored.status,
            JobStatus::Running,
            "progress never changes the status"
        );
    }

    #[test]
    fn cancel_cancels_queued_jobs_and_flags_running_ones() {
        let repo = InMemoryRepository::new();
        let queued_job = queued(&repo, "T");
        assert!(
            matches!(repo.request_cancel_now(queued_job.id), CancelOutcome::CanceledQueued(ref j) if j.status == JobStatus::Canceled)
        );
        assert_eq!(
            repo.request_cancel_now(queued_job.id),
            CancelOutcome::AlreadyFinished(JobStatus::Canceled)
        );

        let running = queued(&repo, "T");
        repo.transition_now(
            running.id,
            Expected::status(JobStatus::Queued),
            Transition::Start,
        );
        let mut cancellations = repo.subscribe_cancellations();
        assert!(
            matches!(repo.request_cancel_now(running.id), CancelOutcome::Requested(ref j) if j.cancel_requested)
        );
        assert_eq!(cancellations.try_recv().unwrap(), running.id);
        assert_eq!(
            repo.update_progress_now(running.id, 1, Progress::new(1, "")),
            ProgressAck::Stored {
                cancel_requested: true
            }
        );
        assert_eq!(
            repo.request_cancel_now(JobId::new()),
            CancelOutcome::NotFound
        );
    }

    /// A repository that keeps the trait's default `count_jobs`, which pages through
    /// `list`.
    struct ListOnly(InMemoryRepository);

    impl JobRepository for ListOnly {
        fn insert(&self, job: Job) -> BoxFuture<'_, Result<(), StorageError>> {
            self.0.insert(job)
        }
        fn get(&self, id: JobId) -> BoxFuture<'_, Result<Option<Job>, StorageError>> {
            self.0.get(id)
        }
        fn list(&self, query: JobQuery) -> BoxFuture<'_, Result<JobPage, StorageError>> {
            self.0.list(query)
        }
        fn transition(
            &self,
            id: JobId,
            expected: Expected,
            transition: Transition,
        ) -> BoxFuture<'_, Result<TransitionOutcome, StorageError>> {
            self.0.transition(id, expected, transition)
        }
        fn update_progress(
            &self,
            id: JobId,
            attempt: u32,
            progress: Progress,
        ) -> BoxFuture<'_, Result<ProgressAck, StorageError>> {
            self.0.update_progress(id, attempt, progress)
        }
        fn request_cancel(&self, id: JobId) -> BoxFuture<'_, Result<CancelOutcome, StorageError>> {
            self.0.request_cancel(id)
        }
        fn get_result(&self, id: JobId) -> BoxFuture<'_, Result<Option<Value>, StorageError>> {
            self.0.get_result(id)
        }
        fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
            self.0.subscribe()
        }
        fn subscribe_cancellations(&self) -> broadcast::Receiver<JobId> {
            self.0.subscribe_cancellations()
        }
    }

    #[test]
    fn the_default_count_pages_through_every_job_and_agrees_with_the_counters() {
        let repo = ListOnly(InMemoryRepository::new());
        // More than one page of the largest size.
        for i in 0..(JobQuery::MAX_LIMIT + 7) {
            let job = Job::new(if i % 3 == 0 { "A" } else { "B" }, Value::Null);
            repo.0.insert_now(job).unwrap();
        }
        let first = repo.0.list_now(&JobQuery::new().limit(1)).jobs[0].id;
        repo.0.request_cancel_now(first);
        let by_default = block_on(repo.count_jobs()).unwrap();
        let by_counters = block_on(repo.0.count_jobs()).unwrap();
        assert_eq!(by_default, by_counters);
        let total: u64 = by_default.iter().map(|c| c.count).sum();
        assert_eq!(total as usize, JobQuery::MAX_LIMIT + 7);
        assert!(by_default
            .iter()
            .any(|c| c.status == JobStatus::Canceled && c.count == 1));
    }

    // The in-memory futures are ready at once; poll them without a runtime.
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut future = std::pin::pin!(future);
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("in-memory futures complete at once"),
        }
    }
}
