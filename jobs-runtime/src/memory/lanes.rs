//! The in-memory store's queues: due jobs by priority, first in first out within one,
//! and a schedule of jobs not yet due.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use jobs_core::{Job, JobId, Timestamp};

#[derive(Default)]
struct Items {
    // Due jobs of priority 0, the common case, in a plain FIFO.
    fifo: VecDeque<JobId>,
    // Due jobs of any other priority.
    ranked: BinaryHeap<Ranked>,
    // Jobs not yet due, earliest first.
    scheduled: BinaryHeap<Reverse<Scheduled>>,
    // Order of arrival, to keep FIFO within a priority.
    sequence: u64,
    // Below every arrival: the places of jobs put back at the front, counting down.
    front: i64,
    // Ids here whose jobs left the queue without being handed out (canceled).
    dead: usize,
}

#[derive(PartialEq, Eq)]
struct Ranked {
    priority: i16,
    // Arrivals count up from 1; jobs put back at the front count down from 0.
    sequence: i64,
    id: JobId,
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        // Higher priority first, then earlier arrival.
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.sequence.cmp(&self.sequence))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Scheduled {
    run_at: Timestamp,
    sequence: u64,
    id: JobId,
    priority: i16,
}

impl Items {
    fn len(&self) -> usize {
        self.fifo.len() + self.ranked.len() + self.scheduled.len()
    }

    /// Keeps only the ids `live` accepts.
    fn retain(&mut self, live: impl Fn(JobId) -> bool) {
        self.fifo.retain(|id| live(*id));
        self.ranked.retain(|ranked| live(ranked.id));
        self.scheduled.retain(|Reverse(job)| live(job.id));
        self.dead = 0;
    }

    fn push_due(&mut self, id: JobId, priority: i16) {
        if priority == 0 {
            self.fifo.push_back(id);
        } else {
            self.sequence += 1;
            self.ranked.push(Ranked {
                priority,
                sequence: self.sequence as i64,
                id,
            });
        }
    }

    /// Puts due jobs taken by [`Items::pop`] back ahead of the others of their priority,
    /// in the order given.
    fn put_back(&mut self, jobs: &[(JobId, i16)]) {
        for &(id, priority) in jobs.iter().rev() {
            if priority == 0 {
                self.fifo.push_front(id);
            } else {
                self.front -= 1;
                self.ranked.push(Ranked {
                    priority,
                    sequence: self.front,
                    id,
                });
            }
        }
    }

    /// Moves the jobs whose time has come from the schedule to the due ones.
    fn promote(&mut self) {
        if self.scheduled.is_empty() {
            return;
        }
        let now = Timestamp::now();
        while self
            .scheduled
            .peek()
            .is_some_and(|Reverse(next)| next.run_at <= now)
        {
            let Reverse(job) = self.scheduled.pop().expect("peeked");
            self.push_due(job.id, job.priority);
        }
    }

    /// The next due job, by priority; or how long until the next scheduled one is due.
    fn pop(&mut self) -> Result<JobId, Option<Duration>> {
        self.promote();
        let ranked_first = match (self.ranked.peek(), self.fifo.is_empty()) {
            (Some(top), false) => top.priority > 0,
            (Some(_), true) => true,
            (None, _) => false,
        };
        if ranked_first {
            return Ok(self.ranked.pop().expect("peeked").id);
        }
        if let Some(id) = self.fifo.pop_front() {
            return Ok(id);
        }
        Err(self.scheduled.peek().map(|Reverse(next)| {
            let now = Timestamp::now();
            next.run_at.duration_since(now)
        }))
    }
}

/// The queued ids of every named queue.
#[derive(Default)]
pub(crate) struct Lanes {
    lanes: HashMap<String, Items, crate::id_hash::IdHash>,
}

impl Lanes {
    /// Queues `job` (stored, `Queued`) in its named queue: due now, or scheduled for its
    /// `run_at`.
    pub(crate) fn push(&mut self, job: &Job) {
        let items = match self.lanes.get_mut(job.queue.as_str()) {
            Some(items) => items,
            None => self.lanes.entry(job.queue.clone()).or_default(),
        };
        if job.run_at > Timestamp::now() {
            items.sequence += 1;
            let sequence = items.sequence;
            items.scheduled.push(Reverse(Scheduled {
                run_at: job.run_at,
                sequence,
                id: job.id,
                priority: job.priority,
            }));
        } else {
            items.push_due(job.id, job.priority);
        }
    }

    /// The next due id of `queue`, by priority; or how long until the next scheduled one
    /// is due (`None` when nothing is queued).
    pub(crate) fn pop(&mut self, queue: &str) -> Result<JobId, Option<Duration>> {
        match self.lanes.get_mut(queue) {
            Some(items) => items.pop(),
            None => Err(None),
        }
    }

    /// Puts jobs of `queue` that [`Lanes::pop`] handed out, due, with their priorities,
    /// back where they were: ahead of the others of their priority, in the order given.
    pub(crate) fn put_back(&mut self, queue: &str, jobs: &[(JobId, i16)]) {
        if let Some(items) = self.lanes.get_mut(queue) {
            items.put_back(jobs);
        }
    }

    /// A job of `queue` left it without being handed out (it was canceled): its id
    /// lingers, due or scheduled, until the lane next drops the ids of such jobs, which it
    /// does (keeping those `live` accepts) once they are half of it, so a cancel costs
    /// amortized constant time and a canceled job scheduled years ahead does not stay for
    /// years. A lane left empty is dropped, so queues nothing serves do not keep one each.
    pub(crate) fn discard(&mut self, queue: &str, live: impl Fn(JobId) -> bool) {
        let Some(items) = self.lanes.get_mut(queue) else {
            return;
        };
        items.dead += 1;
        if items.dead * 2 >= items.len() {
            items.retain(live);
        }
        if items.len() == 0 {
            self.lanes.remove(queue);
        }
    }

    /// How many named queues have a lane here.
    pub(crate) fn lane_count(&self) -> usize {
        self.lanes.len()
    }

    /// How long until the next id of `queue` is due: zero when one is due now, `None`
    /// when nothing is queued.
    pub(crate) fn next_due(&mut self, queue: &str) -> Option<Duration> {
        let items = self.lanes.get_mut(queue)?;
        items.promote();
        if !items.fifo.is_empty() || !items.ranked.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = Timestamp::now();
        items
            .scheduled
            .peek()
            .map(|Reverse(next)| next.run_at.duration_since(now))
    }

    /// Every queued id with its queue name (an id may appear more than once, and ids of
    /// jobs no longer queued linger until a claim reaches them).
    pub(crate) fn ids(&self) -> impl Iterator<Item = (&str, JobId)> + '_ {
        self.lanes.iter().flat_map(|(queue, items)| {
            let due = items.fifo.iter().copied();
            let ranked = items.ranked.iter().map(|ranked| ranked.id);
            let scheduled = items.scheduled.iter().map(|Reverse(job)| job.id);
            due.chain(ranked)
                .chain(scheduled)
                .map(move |id| (queue.as_str(), id))
        })
    }

    /// How many ids are queued, due or scheduled, in every named queue.
    pub(crate) fn len(&self) -> usize {
        self.lanes.values().map(Items::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job::new("T", serde_json::Value::Null)
    }

    fn with_priority(priority: i16) -> Job {
        let mut job = job();
        job.priority = priority;
        job
    }

    #[test]
    fn hands_out_ids_in_fifo_order() {
        let mut lanes = Lanes::default();
        let jobs: Vec<Job> = (0..100).map(|_| job()).collect();
        for job in &jobs {
            lanes.push(job);
        }
        assert_eq!(lanes.len(), 100);
        for job in &jobs {
            assert_eq!(lanes.pop(Job::DEFAULT_QUEUE), Ok(job.id));
        }
        assert_eq!(lanes.pop(Job::DEFAULT_QUEUE), Err(None));
    }

    #[test]
    fn higher_priorities_go_first_and_fifo_holds_within_one() {
        let mut lanes = Lanes::default();
        let jobs: Vec<Job> = [0, 5, -1, 5, 0, 9, -1]
            .into_iter()
            .map(with_priority)
            .collect();
        for job in &jobs {
            lanes.push(job);
        }
        let mut order = Vec::new();
        for _ in 0..jobs.len() {
            let id = lanes.pop(Job::DEFAULT_QUEUE).unwrap();
            order.push(jobs.iter().position(|job| job.id == id).unwrap());
        }
        assert_eq!(order, vec![5, 1, 3, 0, 4, 2, 6]);
    }

    #[test]
    fn jobs_put_back_go_first_again_in_their_order() {
        let mut lanes = Lanes::default();
        let jobs: Vec<Job> = [0, 3, 0, 3, 3].into_iter().map(with_priority).collect();
        for job in &jobs {
            lanes.push(job);
        }
        let taken: Vec<(JobId, i16)> = (0..4)
            .map(|_| {
                let id = lanes.pop(Job::DEFAULT_QUEUE).unwrap();
                let job = jobs.iter().find(|job| job.id == id).unwrap();
                (id, job.priority)
            })
            .collect();
        lanes.put_back(Job::DEFAULT_QUEUE, &taken);
        let mut order = Vec::new();
        while let Ok(id) = lanes.pop(Job::DEFAULT_QUEUE) {
            order.push(jobs.iter().position(|job| job.id == id).unwrap());
        }
        assert_eq!(order, vec![1, 3, 4, 0, 2], "as if never taken");
    }

    #[test]
    fn a_scheduled_job_waits_for_its_time_then_goes_by_priority() {
        let mut lanes = Lanes::default();
        let mut later = with_priority(7);
        let delay = Duration::from_millis(150);
        later.run_at = Timestamp::from_unix_micros(
            Timestamp::now().as_unix_micros() + delay.as_micros() as i64,
        );
        let now = job();
        lanes.push(&later);
        lanes.push(&now);
        assert_eq!(lanes.pop(Job::DEFAULT_QUEUE), Ok(now.id), "due first");
        match lanes.pop(Job::DEFAULT_QUEUE) {
            Err(Some(wait)) => assert!(wait <= delay && wait > Duration::ZERO, "{wait:?}"),
            other => panic!("expected a wait, got {other:?}"),
        }
        std::thread::sleep(delay);
        assert_eq!(lanes.pop(Job::DEFAULT_QUEUE), Ok(later.id));
        assert_eq!(lanes.len(), 0);
    }
}
