//! Flow control: rate limits on job starts, for a queue or a job type, that every process
//! on a store shares.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// At most `max` job starts per `period`: `"100/1m"`, `"20/s"`, `"5/500ms"`.
///
/// The budget is a window of `period` that opens with the first start after the previous
/// window closed: up to `max` jobs start in it, at once if they are due, and the others
/// wait `Queued` until the next window opens. So `"100/1m"` starts a backlog of jobs a
/// hundred at a time, a minute apart; write `"10/6s"` to spread them more evenly.
///
/// ```
/// use std::time::Duration;
/// use jobs_core::RateLimit;
///
/// let limit: RateLimit = "100/1m".parse().unwrap();
/// assert_eq!((limit.max(), limit.period()), (100, Duration::from_secs(60)));
/// assert_eq!(limit.to_string(), "100/1m");
/// assert!("0/1s".parse::<RateLimit>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateLimit {
    max: u32,
    period: Duration,
}

/// Why a rate limit was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid rate limit `{given}`: {reason}")]
pub struct ParseRateLimitError {
    given: String,
    reason: &'static str,
}

impl RateLimit {
    /// The longest period: a day.
    pub const MAX_PERIOD: Duration = Duration::from_secs(86_400);

    /// `max` starts per `period`; `max` from 1, `period` from 1 ms to a day, in whole
    /// milliseconds.
    pub fn new(max: u32, period: Duration) -> Result<Self, ParseRateLimitError> {
        let refuse = |reason| ParseRateLimitError {
            given: format!("{max}/{}ms", period.as_millis()),
            reason,
        };
        if max == 0 {
            return Err(refuse("the number of starts must be at least 1"));
        }
        if period < Duration::from_millis(1) || period > Self::MAX_PERIOD {
            return Err(refuse("the period must be 1 ms to 1 day"));
        }
        if period.subsec_nanos() % 1_000_000 != 0 {
            return Err(refuse("the period must be whole milliseconds"));
        }
        Ok(Self { max, period })
    }

    /// How many jobs may start in one window.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// How long a window lasts.
    pub fn period(&self) -> Duration {
        self.period
    }
}

/// The units of a period, longest name first where one is a prefix of another.
const UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

impl FromStr for RateLimit {
    type Err = ParseRateLimitError;

    /// `N/period`: `N` starts (from 1) per a period of an optional whole number and a
    /// unit, `ms`, `s`, `m`, `h` or `d` (`20/s` is `20/1s`).
    fn from_str(given: &str) -> Result<Self, Self::Err> {
        let refuse = |reason| ParseRateLimitError {
            given: given.to_owned(),
            reason,
        };
        let shape = "write it as starts/period, like \"100/1m\" or \"20/s\" (units ms, s, m, h, d)";
        let (max, period) = given.trim().split_once('/').ok_or_else(|| refuse(shape))?;
        let max: u32 = max.trim().parse().map_err(|_| refuse(shape))?;
        let period = period.trim();
        let digits = period.bytes().take_while(u8::is_ascii_digit).count();
        let (count, unit) = period.split_at(digits);
        let count: u64 = if count.is_empty() {
            1
        } else {
            count.parse().map_err(|_| refuse(shape))?
        };
        let (_, millis) = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .ok_or_else(|| refuse(shape))?;
        let millis = count
            .checked_mul(*millis)
            .ok_or_else(|| refuse("the period must be 1 ms to 1 day"))?;
        Self::new(max, Duration::from_millis(millis)).map_err(|error| refuse(error.reason))
    }
}

impl fmt::Display for RateLimit {
    /// The shortest `N/period` that reads back as this limit.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.period.as_millis() as u64;
        let (unit, size) = UNITS
            .iter()
            .rev()
            .find(|(_, size)| millis % size == 0)
            .expect("every period is whole milliseconds");
        write!(f, "{}/{}{unit}", self.max, millis / size)
    }
}

/// A value that can key jobs for a concurrency limit: the type of the field that
/// `#[job_executor("T", concurrency_key = "field")]` names.
///
/// Strings, integers, `bool`, `char`, [`uuid::Uuid`] and [`JobId`](crate::JobId) are keys
/// as they print; an `Option` of one is no key when `None` (that job is not limited).
/// Implement it for a type of your own to key by it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a concurrency key",
    label = "the field `concurrency_key` names has this type",
    note = "a concurrency key is a string, an integer, a `bool`, a `char` or a `Uuid`, or an `Option` of one; implement `jobs::ConcurrencyKey` for a type of your own"
)]
pub trait ConcurrencyKey {
    /// The key, as text; `None`: no key.
    fn concurrency_key(&self) -> Option<String>;
}

macro_rules! key_as_printed {
    ($($t:ty),*) => {$(
        impl ConcurrencyKey for $t {
            fn concurrency_key(&self) -> Option<String> {
                Some(self.to_string())
            }
        }
    )*};
}

key_as_printed!(
    str,
    String,
    bool,
    char,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    uuid::Uuid,
    crate::JobId
);

impl<T: ConcurrencyKey + ?Sized> ConcurrencyKey for &T {
    fn concurrency_key(&self) -> Option<String> {
        (**self).concurrency_key()
    }
}

impl<T: ConcurrencyKey> ConcurrencyKey for Option<T> {
    fn concurrency_key(&self) -> Option<String> {
        self.as_ref().and_then(ConcurrencyKey::concurrency_key)
    }
}

/// What a [`RateRule`] limits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RateScope {
    /// Every job of one named queue.
    Queue(String),
    /// Every job of one type, in whichever queue.
    JobType(String),
}

/// A rate limit on a queue or a job type, as the engine hands it to a store's claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateRule {
    /// What it limits.
    pub scope: RateScope,
    /// The limit.
    pub limit: RateLimit,
}

impl RateRule {
    /// `limit` on `scope`.
    pub fn new(scope: RateScope, limit: RateLimit) -> Self {
        Self { scope, limit }
    }

    /// The rule's budget as stores name it: `queue:<name>` or `type:<name>`. Processes
    /// that declare the same scope share one budget, whatever limit each declares.
    pub fn budget_name(&self) -> String {
        match &self.scope {
            RateScope::Queue(queue) => format!("queue:{queue}"),
            RateScope::JobType(job_type) => format!("type:{job_type}"),
        }
    }

    /// Whether the rule covers a job of `job_type` in `queue`.
    pub fn covers(&self, queue: &str, job_type: &str) -> bool {
        match &self.scope {
            RateScope::Queue(name) => name == queue,
            RateScope::JobType(name) => name == job_type,
        }
    }
}

/// One rule's budget in the window under way, as a store keeps it.
///
/// Stores keep, per [`RateRule::budget_name`], when the window opened and how many starts
/// it has had; [`RateWindow::open`] says what is left and how the record changes, so the
/// rule is written once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateWindow {
    /// How long ago the window opened; `None` when the budget has no record yet.
    pub age: Option<Duration>,
    /// Starts counted in it.
    pub used: u32,
}

impl RateWindow {
    /// The starts `limit` allows now, and whether a new window opens now (the record's
    /// start moves to now and its count to the starts taken).
    pub fn open(self, limit: &RateLimit) -> (u32, bool) {
        match self.age {
            Some(age) if age < limit.period => (limit.max.saturating_sub(self.used), false),
            _ => (limit.max, true),
        }
    }
}

/// The rate limits of one claim, as a store applies them: what each rule's budget allows
/// now, whether a job may be taken, and what the claim took, to be recorded in the same
/// write. Every store uses this, so the rule is written once.
#[derive(Debug)]
pub struct RateBudgets<'a> {
    rules: &'a [RateRule],
    /// Per rule: starts left, whether its window opens now, starts taken.
    left: Vec<(u32, bool, u32)>,
}

impl<'a> RateBudgets<'a> {
    /// The budgets of `rules`, from the window each is in (one per rule, in order; a rule
    /// without a window gets a fresh one).
    pub fn new(rules: &'a [RateRule], mut windows: impl FnMut(&RateRule) -> RateWindow) -> Self {
        let left = rules
            .iter()
            .map(|rule| {
                let (left, opens) = windows(rule).open(&rule.limit);
                (left, opens, 0)
            })
            .collect();
        Self { rules, left }
    }

    /// The most jobs of `queue` the queue's own rules allow now (`None`: no such rule).
    pub fn queue_allows(&self, queue: &str) -> Option<u32> {
        self.rules
            .iter()
            .zip(&self.left)
            .filter(|(rule, _)| matches!(&rule.scope, RateScope::Queue(name) if name == queue))
            .map(|(_, (left, ..))| *left)
            .min()
    }

    /// The job types whose rule has no start left: none of their jobs may be taken.
    pub fn spent_types(&self) -> Vec<&'a str> {
        self.rules
            .iter()
            .zip(&self.left)
            .filter_map(|(rule, (left, ..))| match &rule.scope {
                RateScope::JobType(name) if *left == 0 => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Takes a start for a job of `job_type` in `queue` from every rule that covers it;
    /// `false`, and nothing taken, when one of them has none left.
    pub fn take(&mut self, queue: &str, job_type: &str) -> bool {
        let blocked = self
            .rules
            .iter()
            .zip(&self.left)
            .any(|(rule, (left, ..))| *left == 0 && rule.covers(queue, job_type));
        if blocked {
            return false;
        }
        for (rule, (left, _, taken)) in self.rules.iter().zip(&mut self.left) {
            if rule.covers(queue, job_type) {
                *left -= 1;
                *taken += 1;
            }
        }
        true
    }

    /// What to record of each rule the claim took starts from: the rule, whether its
    /// window opens now (its start moves to now and its count restarts), and the starts
    /// taken. Rules nothing was taken from are left as they are: a window opens with its
    /// first start.
    pub fn taken(&self) -> impl Iterator<Item = (&'a RateRule, bool, u32)> + '_ {
        self.rules
            .iter()
            .zip(&self.left)
            .filter(|(_, (_, _, taken))| *taken > 0)
            .map(|(rule, (_, opens, taken))| (rule, *opens, *taken))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_starts_per_period_and_writes_it_back() {
        for (given, max, millis, shown) in [
            ("100/1m", 100, 60_000, "100/1m"),
            ("20/s", 20, 1_000, "20/1s"),
            ("5/500ms", 5, 500, "5/500ms"),
            (" 7 / 90s ", 7, 90_000, "7/90s"),
            ("1/1d", 1, 86_400_000, "1/1d"),
            ("3/120m", 3, 7_200_000, "3/2h"),
        ] {
            let limit: RateLimit = given.parse().unwrap();
            assert_eq!((limit.max(), limit.period().as_millis()), (max, millis));
            assert_eq!(limit.to_string(), shown);
            assert_eq!(shown.parse::<RateLimit>().unwrap(), limit);
        }
    }

    #[test]
    fn refuses_what_is_not_a_rate() {
        for given in [
            "", "100", "/1m", "x/1m", "100/1y", "100/", "0/1s", "1/2d", "1/0ms", "-1/s",
        ] {
            let error = given.parse::<RateLimit>().unwrap_err();
            assert!(
                error.to_string().starts_with("invalid rate limit"),
                "{error}"
            );
        }
        assert!(RateLimit::new(1, Duration::from_micros(1500)).is_err());
    }

    #[test]
    fn a_window_gives_its_remaining_budget_then_opens_anew() {
        let limit: RateLimit = "10/1s".parse().unwrap();
        let fresh = RateWindow { age: None, used: 0 };
        assert_eq!(fresh.open(&limit), (10, true));
        let half = RateWindow {
            age: Some(Duration::from_millis(400)),
            used: 6,
        };
        assert_eq!(half.open(&limit), (4, false));
        let spent = RateWindow {
            age: Some(Duration::from_millis(999)),
            used: 10,
        };
        assert_eq!(spent.open(&limit), (0, false));
        let over = RateWindow {
            age: Some(Duration::from_secs(1)),
            used: 10,
        };
        assert_eq!(over.open(&limit), (10, true));
    }

    #[test]
    fn budgets_hold_back_jobs_of_a_spent_rule_and_count_what_was_taken() {
        let rules = [
            RateRule::new(RateScope::JobType("Mail".into()), "2/1h".parse().unwrap()),
            RateRule::new(RateScope::Queue("default".into()), "3/1h".parse().unwrap()),
            RateRule::new(RateScope::JobType("Other".into()), "9/1h".parse().unwrap()),
        ];
        let mut budgets = RateBudgets::new(&rules, |rule| match rule.scope {
            RateScope::JobType(_) => RateWindow { age: None, used: 0 },
            _ => RateWindow {
                age: Some(Duration::from_secs(5)),
                used: 1,
            },
        });
        assert_eq!(budgets.queue_allows("default"), Some(2));
        assert_eq!(budgets.queue_allows("elsewhere"), None);
        assert!(budgets.take("elsewhere", "Mail"));
        assert!(budgets.take("default", "Mail"));
        assert_eq!(budgets.spent_types(), ["Mail"]);
        assert!(
            !budgets.take("default", "Mail"),
            "the type's budget is spent"
        );
        assert!(budgets.take("default", "Any"));
        assert_eq!(budgets.queue_allows("default"), Some(0));
        assert!(
            !budgets.take("default", "Any"),
            "the queue's budget is spent"
        );
        let taken: Vec<(String, bool, u32)> = budgets
            .taken()
            .map(|(rule, opens, taken)| (rule.budget_name(), opens, taken))
            .collect();
        assert_eq!(
            taken,
            [
                ("type:Mail".into(), true, 2),
                ("queue:default".into(), false, 2)
            ],
            "the untouched rule is left alone"
        );
    }
}
