//! Flow control through the service: pausing and resuming queues for every process on
//! the store, and why due jobs wait (a paused queue, a spent rate limit, a busy key).

use std::fmt;

use jobs_core::{
    Job, JobEvent, JobStatus, JobsError, KeyCount, PausedQueue, RateRule, RateScope, Timestamp,
};

use crate::Jobs;

/// Why a due `Queued` job waits, from [`Jobs::waiting_reason`] and [`Jobs::limit_waits`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitReason {
    /// Its queue is paused.
    QueuePaused {
        /// The queue.
        queue: String,
    },
    /// A rate limit's budget is spent for the window under way.
    RateLimit {
        /// What the limit covers: `queue <name>` or the job type's name.
        scope: RateScope,
    },
    /// Its concurrency key's limit of jobs run.
    KeyBusy {
        /// The key.
        key: String,
    },
}

impl WaitReason {
    /// The kind of limit, as HTTP and metrics name it: `paused`, `rate` or `key`.
    pub fn kind(&self) -> &'static str {
        match self {
            WaitReason::QueuePaused { .. } => "paused",
            WaitReason::RateLimit { .. } => "rate",
            WaitReason::KeyBusy { .. } => "key",
        }
    }
}

impl fmt::Display for WaitReason {
    /// `queue paused`, `rate limit of SendEmail`, `rate limit of queue exports`,
    /// `key tenant-42 busy`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitReason::QueuePaused { queue } => write!(f, "queue {queue} paused"),
            WaitReason::RateLimit {
                scope: RateScope::JobType(job_type),
            } => write!(f, "rate limit of {job_type}"),
            WaitReason::RateLimit {
                scope: RateScope::Queue(queue),
            } => write!(f, "rate limit of queue {queue}"),
            WaitReason::RateLimit { .. } => write!(f, "rate limit"),
            WaitReason::KeyBusy { key } => write!(f, "key {key} busy"),
        }
    }
}

/// How many due jobs wait for one reason, from [`Jobs::limit_waits`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitWait {
    /// Why they wait.
    pub reason: WaitReason,
    /// How many (for a type's rate limit: its queued jobs, scheduled ones included).
    pub waiting: u64,
}

impl Jobs {
    /// Pauses `queue` for every process on the store: no job of it is claimed until it is
    /// resumed, and it stays paused across restarts. Jobs already running finish; queued
    /// ones (and ones submitted meanwhile) wait `Queued`. A queue need not have jobs to be
    /// paused. Returns whether this call paused it (`false`: it was paused already), and
    /// announces [`JobEvent::QueuePaused`] when it did.
    ///
    /// Jobs a process claimed ahead of its workers before the pause still run there.
    pub async fn pause_queue(&self, queue: &str) -> Result<bool, JobsError> {
        self.set_paused(queue, true).await
    }

    /// Resumes a paused queue; its due jobs are claimed again at once, in every process.
    /// Returns whether this call resumed it (`false`: it was not paused), and announces
    /// [`JobEvent::QueueResumed`] when it did.
    pub async fn resume_queue(&self, queue: &str) -> Result<bool, JobsError> {
        self.set_paused(queue, false).await
    }

    /// The paused queues, by name, with when each was paused.
    pub async fn paused_queues(&self) -> Result<Vec<PausedQueue>, JobsError> {
        Ok(self.operations()?.paused_queues().await?)
    }

    /// Why `job` waits though it is due: its queue is paused, a rate limit this service
    /// declares has spent its budget for the window under way, or its concurrency key's
    /// limit of jobs run (in that order). `None` for a job that is not `Queued` and due, or
    /// that waits for none of these (a worker is about to take it, or no service here
    /// serves its queue). What it reads is a moment's view: the job may start at once.
    pub async fn waiting_reason(&self, job: &Job) -> Result<Option<WaitReason>, JobsError> {
        if job.status != JobStatus::Queued || job.run_at > Timestamp::now() {
            return Ok(None);
        }
        let operations = self.operations()?;
        let paused = operations.paused_queues().await?;
        if paused.iter().any(|paused| paused.queue == job.queue) {
            return Ok(Some(WaitReason::QueuePaused {
                queue: job.queue.clone(),
            }));
        }
        let rules: Vec<&RateRule> = self
            .inner()
            .config
            .rates
            .iter()
            .filter(|rule| rule.covers(&job.queue, &job.job_type))
            .collect();
        if let Some(scope) = self.spent(&rules).await?.into_iter().next() {
            return Ok(Some(WaitReason::RateLimit { scope }));
        }
        if let Some(key) = &job.concurrency_key {
            let counts = operations
                .key_counts(Some(std::slice::from_ref(key)))
                .await?;
            let limit = job.concurrency_limit.unwrap_or(1);
            let running = counts.first().map_or(0, |count| count.running);
            if running >= u64::from(limit) {
                return Ok(Some(WaitReason::KeyBusy { key: key.clone() }));
            }
        }
        Ok(None)
    }

    /// The due jobs held back by each limit now: per paused queue its due jobs, per rate
    /// limit of this service whose budget is spent its queued jobs, and per busy
    /// concurrency key its due jobs (the [`Jobs::LIMIT_WAITS_KEYS`] keys with the most).
    pub async fn limit_waits(&self) -> Result<Vec<LimitWait>, JobsError> {
        let operations = self.operations()?;
        let mut waits = Vec::new();
        let paused = operations.paused_queues().await?;
        let rules: Vec<&RateRule> = self.inner().config.rates.iter().collect();
        let spent = self.spent(&rules).await?;
        if !paused.is_empty() || !spent.is_empty() {
            let queues = operations.queue_counts().await?;
            let due = |queue: &str| {
                queues
                    .iter()
                    .find(|counts| counts.queue == queue)
                    .map_or(0, |counts| counts.queued)
            };
            for queue in paused {
                let waiting = due(&queue.queue);
                waits.push(LimitWait {
                    reason: WaitReason::QueuePaused { queue: queue.queue },
                    waiting,
                });
            }
            let types = if spent.iter().any(|s| matches!(s, RateScope::JobType(_))) {
                self.inner().store.estimate_counts().await?
            } else {
                Vec::new()
            };
            for scope in spent {
                let waiting = match &scope {
                    RateScope::Queue(queue) => due(queue),
                    RateScope::JobType(job_type) => types
                        .iter()
                        .filter(|c| c.job_type == *job_type && c.status == JobStatus::Queued)
                        .map(|c| c.count)
                        .sum(),
                    _ => 0,
                };
                waits.push(LimitWait {
                    reason: WaitReason::RateLimit { scope },
                    waiting,
                });
            }
        }
        let mut busy: Vec<KeyCount> = operations
            .key_counts(None)
            .await?
            .into_iter()
            .filter(|count| count.is_busy() && count.queued > 0)
            .collect();
        busy.sort_by(|a, b| b.queued.cmp(&a.queued).then_with(|| a.key.cmp(&b.key)));
        busy.truncate(Self::LIMIT_WAITS_KEYS);
        waits.extend(busy.into_iter().map(|count| LimitWait {
            reason: WaitReason::KeyBusy { key: count.key },
            waiting: count.queued,
        }));
        Ok(waits)
    }

    /// The most busy keys [`Jobs::limit_waits`] lists.
    pub const LIMIT_WAITS_KEYS: usize = 100;

    /// The scopes of `rules` whose budget is spent for the window under way.
    async fn spent(&self, rules: &[&RateRule]) -> Result<Vec<RateScope>, JobsError> {
        if rules.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = rules.iter().map(|rule| rule.budget_name()).collect();
        let windows = self.operations()?.rate_windows(&names).await?;
        Ok(rules
            .iter()
            .zip(&names)
            .filter(|(rule, name)| {
                windows
                    .iter()
                    .find(|(window, _)| window == *name)
                    .is_some_and(|(_, window)| window.open(&rule.limit).0 == 0)
            })
            .map(|(rule, _)| rule.scope.clone())
            .collect())
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<bool, JobsError> {
        if !jobs_core::valid_queue_name(queue) {
            return Err(JobsError::InvalidQueue(queue.to_owned()));
        }
        let changed = self.operations()?.set_paused(queue, paused).await?;
        if changed {
            let queue = queue.to_owned();
            let event = if paused {
                JobEvent::QueuePaused { queue }
            } else {
                JobEvent::QueueResumed { queue }
            };
            self.inner().announce(vec![event]).await;
        }
        Ok(changed)
    }
}
