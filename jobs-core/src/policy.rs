//! How a job is run beyond its executor: retries and their backoff, a time limit, a
//! priority, and when it may start.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{FlowId, JobId, ParentFailure, PayloadFrom, Timestamp, TraceParent};

/// A job type's defaults: how often a failed job is tried again, how long an attempt may
/// run, and how urgent its jobs are. `#[job_executor("T", retries = 3, timeout = "30s",
/// priority = 5, backoff = "2s")]` declares them; a submission can override each
/// ([`SubmitOptions`]).
///
/// The default is the original contract: no retries, no time limit, priority 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobPolicy {
    /// How many times a failed attempt is tried again (0: a failure is final).
    pub retries: u32,
    /// How long one attempt may run; `None` is no limit.
    pub timeout: Option<Duration>,
    /// Higher runs first among jobs that are due; 0 by default.
    pub priority: i16,
    /// The wait before each retry.
    pub backoff: Backoff,
    /// A cron expression: the service submits a job of this type (payload `null`) at
    /// every tick, once across all processes that share the store.
    pub cron: Option<&'static str>,
    /// The IANA time zone whose wall clock [`JobPolicy::cron`] follows (`None`: UTC).
    pub time_zone: Option<&'static str>,
    /// The named queue the type's jobs wait in (`None`: the default queue).
    pub queue: Option<&'static str>,
    /// At most this many of the type's jobs start per period, across every process on
    /// the store (`#[job_executor("T", rate = "100/1m")]`).
    pub rate: Option<crate::RateLimit>,
    /// The field of the arguments whose value keys the type's jobs for
    /// [`JobPolicy::concurrency`] (`#[job_executor("T", concurrency_key = "tenant_id")]`;
    /// the executor reads it, see [`JobExecutor::concurrency_key`](crate::JobExecutor::concurrency_key)).
    pub concurrency_key: Option<&'static str>,
    /// At most this many of the type's jobs with one key run at once across every
    /// process (all its jobs, when it has no [`JobPolicy::concurrency_key`]).
    pub concurrency: Option<u32>,
}

impl JobPolicy {
    /// No retries, no time limit, priority 0, the default backoff.
    pub const fn new() -> Self {
        Self {
            retries: 0,
            timeout: None,
            priority: 0,
            backoff: Backoff::DEFAULT,
            cron: None,
            time_zone: None,
            queue: None,
            rate: None,
            concurrency_key: None,
            concurrency: None,
        }
    }

    /// Tries a failed job again up to `retries` times.
    pub const fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Limits each attempt to `timeout`.
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the priority of the type's jobs.
    pub const fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the backoff between retries.
    pub const fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Puts the type's jobs in the named queue `queue`.
    pub const fn queue(mut self, queue: &'static str) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Runs at most `limit` of the type's jobs at once (per key, with
    /// [`JobPolicy::concurrency_key`]), across every process.
    pub const fn concurrency(mut self, limit: u32) -> Self {
        self.concurrency = Some(limit);
        self
    }

    /// Keys the type's jobs by the argument field `field` for [`JobPolicy::concurrency`].
    pub const fn concurrency_key(mut self, field: &'static str) -> Self {
        self.concurrency_key = Some(field);
        self
    }

    /// Starts at most `rate.max()` of the type's jobs per `rate.period()`.
    pub const fn rate(mut self, rate: crate::RateLimit) -> Self {
        self.rate = Some(rate);
        self
    }

    /// Submits a job of the type at every tick of `cron` (checked when the service
    /// starts; `#[job_executor(cron = ...)]` checks it at compile time).
    pub const fn cron(mut self, cron: &'static str) -> Self {
        self.cron = Some(cron);
        self
    }

    /// Follows the wall clock of the IANA zone `zone` (`"Europe/Berlin"`) for
    /// [`JobPolicy::cron`] instead of UTC, through daylight-saving changes as
    /// `jobs_cron::Schedule::next_after_in` says (checked when the service starts;
    /// `#[job_executor(cron = ..., tz = ...)]` checks it at compile time).
    pub const fn time_zone(mut self, zone: &'static str) -> Self {
        self.time_zone = Some(zone);
        self
    }
}

impl Default for JobPolicy {
    fn default() -> Self {
        Self::new()
    }
}

/// Exponential backoff with jitter and a cap: after the `n`th failure the job waits
/// between half and all of `base × 2ⁿ⁻¹`, never more than `max`.
///
/// The jitter spreads retries of jobs that failed together (say, while a service they call
/// was down), so they do not all come back at the same moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure (before jitter).
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Backoff {
    /// 1 second, doubling, at most 1 hour.
    pub const DEFAULT: Backoff = Backoff {
        base: Duration::from_secs(1),
        max: Duration::from_secs(3_600),
    };

    /// A backoff starting at `base`, at most `max`.
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self { base, max }
    }

    /// The wait before the retry that follows failure number `failures` (from 1).
    pub fn delay(&self, failures: u32) -> Duration {
        let doubling = 1u32 << failures.saturating_sub(1).min(30);
        let full = self.base.saturating_mul(doubling).min(self.max);
        // Equal jitter: half fixed, half random.
        let half = full / 2;
        let spread = half.as_nanos() as u64;
        let random = if spread == 0 {
            0
        } else {
            crate::id::random_u64() % (spread + 1)
        };
        half + Duration::from_nanos(random)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The error of one failed attempt, kept on the job ([`Job::errors`](crate::Job::errors)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AttemptError {
    /// The attempt that failed, from 1.
    pub attempt: u32,
    /// Its error message.
    pub message: String,
    /// When it failed.
    pub at: Timestamp,
    /// When the attempt started (`None` in records written before this was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
}

impl AttemptError {
    /// The longest error message a store keeps, in bytes of UTF-8: a job's `error` and
    /// each entry of its `errors` are cut to this length (see [`AttemptError::cut`]).
    pub const MAX_MESSAGE_BYTES: usize = 4_096;

    /// The failure of `attempt` with `message` (cut to
    /// [`MAX_MESSAGE_BYTES`](AttemptError::MAX_MESSAGE_BYTES)), now.
    pub fn new(attempt: u32, message: impl Into<String>) -> Self {
        Self {
            attempt,
            message: Self::cut(&message.into()).into_owned(),
            at: Timestamp::now(),
            started_at: None,
        }
    }

    /// `message` as a store keeps it: unchanged up to
    /// [`MAX_MESSAGE_BYTES`](AttemptError::MAX_MESSAGE_BYTES), else its longest start that
    /// ends on a character boundary and leaves room for a final `…`, which marks the cut.
    ///
    /// ```
    /// use jobs_core::AttemptError;
    ///
    /// assert_eq!(AttemptError::cut("disk full"), "disk full");
    /// let long = "é".repeat(5_000);
    /// let cut = AttemptError::cut(&long);
    /// assert!(cut.len() <= AttemptError::MAX_MESSAGE_BYTES);
    /// assert!(cut.ends_with('…') && cut.starts_with("éé"));
    /// ```
    pub fn cut(message: &str) -> std::borrow::Cow<'_, str> {
        if message.len() <= Self::MAX_MESSAGE_BYTES {
            return std::borrow::Cow::Borrowed(message);
        }
        let mut end = Self::MAX_MESSAGE_BYTES - '…'.len_utf8();
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        std::borrow::Cow::Owned(format!("{}…", &message[..end]))
    }
}

/// How one submission departs from its type's [`JobPolicy`], and when it may start.
///
/// ```
/// use std::time::Duration;
/// use jobs_core::SubmitOptions;
///
/// let options = SubmitOptions::new()
///     .delay(Duration::from_secs(60))   // not before a minute from now
///     .priority(10)                    // ahead of priority 0
///     .retries(5)                      // up to 6 attempts
///     .timeout(Duration::from_secs(30));
/// # let _ = options;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubmitOptions {
    /// Not before this time (`None`: at once). Overrides `delay`.
    pub run_at: Option<Timestamp>,
    /// Not before this long after the submit.
    pub delay: Option<Duration>,
    /// The priority, instead of the type's.
    pub priority: Option<i16>,
    /// The retries, instead of the type's.
    pub retries: Option<u32>,
    /// The time limit of each attempt, instead of the type's.
    pub timeout: Option<Duration>,
    /// While a job of the same type with this key is `Queued` or `Running`, submitting
    /// another returns that job instead of storing a new one.
    pub unique_key: Option<String>,
    /// The named queue, instead of the type's.
    pub queue: Option<String>,
    /// The concurrency key, instead of the one the type derives from its arguments:
    /// at most [`SubmitOptions::concurrency_limit`] jobs with this key run at once, across
    /// types and processes.
    pub concurrency_key: Option<String>,
    /// How many jobs with the key may run at once, instead of the type's (default 1).
    /// Given without any key (the submission's or the type's), the job is keyed by its
    /// type: at most this many jobs of the type run at once.
    pub concurrency_limit: Option<u32>,
    /// The trace the job belongs to, instead of the one the runtime captures from the
    /// current span (with the `otel` feature; none without it).
    pub trace_parent: Option<TraceParent>,
    /// The jobs it waits for: it is stored [`JobStatus::Waiting`](crate::JobStatus) and
    /// queued once they have all succeeded (see [`SubmitOptions::depends_on`]).
    pub depends_on: Vec<JobId>,
    /// What it does when a parent fails or is canceled (canceled with it, by default).
    pub on_parent_failure: ParentFailure,
    /// Where its arguments come from once its parents are done.
    pub payload_from: PayloadFrom,
    /// The flow or batch it belongs to ([`Job::flow`](crate::Job::flow)).
    pub flow: Option<FlowId>,
}

impl SubmitOptions {
    /// The most retries a job may have.
    pub const MAX_RETRIES: u32 = 10_000;
    /// The longest timeout of one attempt: a hundred years of 365.25 days.
    pub const MAX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3_155_760_000);
    /// The longest unique key, in characters.
    pub const MAX_UNIQUE_KEY_CHARS: usize = 255;
    /// The longest concurrency key, in characters.
    pub const MAX_CONCURRENCY_KEY_CHARS: usize = 255;
    /// The most jobs of one concurrency key that may run at once.
    pub const MAX_CONCURRENCY_LIMIT: u32 = 10_000;
    /// The most parents a job may wait for.
    pub const MAX_PARENTS: usize = 10_000;

    /// The type's policy as it is, to run at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs the job no earlier than `time`.
    pub fn run_at(mut self, time: Timestamp) -> Self {
        self.run_at = Some(time);
        self
    }

    /// Runs the job no earlier than `delay` from now.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Sets the job's priority (higher runs first).
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Tries the job again up to `retries` times after failures.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = Some(retries);
        self
    }

    /// Limits each attempt to `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Puts the job in the named queue `queue`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Makes the job unique by `key` while it is `Queued` or `Running`.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// Runs the job under the concurrency key `key` (1 to 255 characters), shared with
    /// every job that has it whatever its type: at most the key's limit of them run at once.
    pub fn concurrency_key(mut self, key: impl Into<String>) -> Self {
        self.concurrency_key = Some(key.into());
        self
    }

    /// Lets `limit` jobs of the job's concurrency key run at once (1 to 10,000).
    pub fn concurrency_limit(mut self, limit: u32) -> Self {
        self.concurrency_limit = Some(limit);
        self
    }

    /// Submits the job in the trace of `parent`: its executions' spans continue that
    /// trace, in whichever process they run.
    pub fn trace_parent(mut self, parent: TraceParent) -> Self {
        self.trace_parent = Some(parent);
        self
    }

    /// Makes the job wait for `parents` (stored already, or earlier in the same
    /// `submit_many` batch): it is [`Waiting`](crate::JobStatus::Waiting) until they have
    /// all succeeded, then queued, in the same store write that records the last one's
    /// success. When one fails or is canceled, the job is canceled too, unless
    /// [`on_parent_failure`](SubmitOptions::on_parent_failure) says it runs anyway. At
    /// most [`SubmitOptions::MAX_PARENTS`], each named once.
    ///
    /// ```
    /// use jobs_core::{JobId, PayloadFrom, SubmitOptions};
    ///
    /// let fetch = JobId::new();
    /// let transform = SubmitOptions::new()
    ///     .depends_on([fetch])
    ///     .payload_from(PayloadFrom::Parent); // runs with what `fetch` returned
    /// # let _ = transform;
    /// ```
    pub fn depends_on(mut self, parents: impl IntoIterator<Item = JobId>) -> Self {
        self.depends_on = parents.into_iter().collect();
        self
    }

    /// What the job does when a parent fails or is canceled: [`ParentFailure::Cancel`]
    /// (the default) or [`ParentFailure::Run`], once every parent has finished.
    pub fn on_parent_failure(mut self, policy: ParentFailure) -> Self {
        self.on_parent_failure = policy;
        self
    }

    /// Where the job's arguments come from once its parents are done: the payload it is
    /// submitted with (the default), its one parent's result ([`PayloadFrom::Parent`]), or
    /// the array of its parents' results ([`PayloadFrom::Parents`]).
    pub fn payload_from(mut self, source: PayloadFrom) -> Self {
        self.payload_from = source;
        self
    }

    /// Makes the job a member of `flow`: listed with the flow's other members, canceled
    /// with them, and kept by retention until they have all finished.
    pub fn flow(mut self, flow: FlowId) -> Self {
        self.flow = Some(flow);
        self
    }
}

/// Whether `name` can name a queue: 1 to 64 ASCII letters, digits, `_`, `-` or `.`.
pub fn valid_queue_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_its_cap() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        for _ in 0..200 {
            let first = backoff.delay(1);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
            let third = backoff.delay(3);
            assert!(third >= Duration::from_secs(2) && third <= Duration::from_secs(4));
            let late = backoff.delay(40);
            assert!(late >= Duration::from_secs(5) && late <= Duration::from_secs(10));
        }
        let spread: std::collections::HashSet<Duration> =
            (0..50).map(|_| backoff.delay(2)).collect();
        assert!(spread.len() > 10, "the jitter varies the wait");
        assert_eq!(
            Backoff::new(Duration::ZERO, Duration::ZERO).delay(3),
            Duration::ZERO
        );
    }
}
