//! Timestamps on job metadata.

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time in UTC with microsecond precision.
///
/// Serialized as an RFC 3339 string in UTC (`2026-11-29T05:14:56.123456Z`), which every
/// language and database reads; parsed from RFC 3339 with `Z` or a numeric offset
/// (`2026-11-29T06:14:56+01:00`).
///
/// ```
/// use jobs_core::Timestamp;
///
/// let t = Timestamp::from_unix_micros(1_700_000_000_123_456);
/// assert_eq!(t.to_string(), "2023-11-14T22:13:20.123456Z");
/// assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time: the system's clock, unless a [`ThreadClock`] is installed on
    /// this thread (as a test harness does to control time).
    pub fn now() -> Self {
        let installed = THREAD_CLOCK
            .try_with(|clock| clock.borrow().as_ref().map(|now| now()))
            .ok()
            .flatten();
        installed.unwrap_or_else(|| Self::from(SystemTime::now()))
    }

    /// The time `micros` microseconds after the Unix epoch.
    pub const fn from_unix_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_unix_micros(&self) -> i64 {
        self.0
    }

    /// The time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn duration_since(&self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0).max(0) as u64)
    }
}

/// A source of time for one thread.
type ClockFn = Arc<dyn Fn() -> Timestamp + Send + Sync>;

thread_local! {
    static THREAD_CLOCK: RefCell<Option<ClockFn>> = const { RefCell::new(None) };
}

/// A clock that [`Timestamp::now`] reads on this thread instead of the system's, while
/// the guard lives.
///
/// This is what lets a test move time: a test harness installs a clock that follows the
/// test runtime's paused clock, so that delays, retry backoff and cron ticks fall due
/// when the test advances it. It is per thread because a paused runtime is a
/// current-thread runtime: every task of the test runs on the thread that installed the
/// clock. Nothing outside tests needs it.
///
/// ```
/// use jobs_core::{ThreadClock, Timestamp};
///
/// let fixed = Timestamp::from_unix_micros(1_000_000);
/// {
///     let _clock = ThreadClock::install(move || fixed);
///     assert_eq!(Timestamp::now(), fixed);
/// }
/// assert!(Timestamp::now() > fixed, "the system's clock again once the guard is dropped");
/// ```
#[must_use = "the clock is uninstalled when the guard is dropped"]
pub struct ThreadClock {
    previous: Option<ClockFn>,
    // The guard restores this thread's clock, so it must stay on it.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl ThreadClock {
    /// Makes [`Timestamp::now`] answer `now()` on this thread until the guard is dropped
    /// (then the clock installed before, if any, applies again).
    pub fn install(now: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        let previous = THREAD_CLOCK.with(|clock| clock.borrow_mut().replace(Arc::new(now)));
        Self {
            previous,
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Drop for ThreadClock {
    fn drop(&mut self) {
        let previous = self.previous.take();
        THREAD_CLOCK.with(|clock| *clock.borrow_mut() = previous);
    }
}

impl fmt::Debug for ThreadClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadClock").finish_non_exhaustive()
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self(d.as_micros() as i64),
            Err(e) => Self(-(e.duration().as_micros() as i64)),
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> Self {
        if t.0 >= 0 {
            UNIX_EPOCH + Duration::from_micros(t.0 as u64)
        } else {
            UNIX_EPOCH - Duration::from_micros(t.0.unsigned_abs())
        }
    }
}

use jobs_cron::{civil_from_days, days_from_civil};

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, mo, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            rem / 3_600,
            rem % 3_600 / 60,
            rem % 60
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The text given to [`Timestamp::from_str`] is not an RFC 3339 UTC timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{input}` is not a timestamp: expected RFC 3339 such as 2026-01-31T12:00:00.000000Z or 2026-01-31T13:00:00+01:00"
)]
pub struct ParseTimestampError {
    /// The text that failed to parse.
    pub input: String,
}

impl FromStr for Timestamp {
    type Err = ParseTimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseTimestampError {
            input: s.to_owned(),
        };
        // RFC 3339: `Z` (either case) or a numeric offset `±HH:MM`, and `T` in either case.
        let (body, offset_secs) = match s.strip_suffix(['Z', 'z']) {
            Some(body) => (body, 0),
            None => {
                let at = s
                    .len()
                    .checked_sub(6)
                    .filter(|at| s.is_char_boundary(*at))
                    .ok_or_else(err)?;
                let (body, offset) = s.split_at(at);
                let bytes = offset.as_bytes();
                let sign = match bytes[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return Err(err()),
                };
                let digits = |range: std::ops::Range<usize>| -> Result<i64, ParseTimestampError> {
                    let part = &offset[range];
                    if !part.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(err());
                    }
                    part.parse().map_err(|_| err())
                };
                if bytes[3] != b':' {
                    return Err(err());
                }
                let (hours, minutes) = (digits(1..3)?, digits(4..6)?);
                if hours > 23 || minutes > 59 {
                    return Err(err());
                }
                (body, sign * (hours * 3_600 + minutes * 60))
            }
        };
        let (date, time) = body.split_once(['T', 't']).ok_or_else(err)?;
        let mut date_parts = date.splitn(3, '-');
        let num = |part: Option<&str>, len: usize| -> Result<i64, ParseTimestampError> {
            let part = part.ok_or_else(err)?;
            if part.len() != len || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            part.parse().map_err(|_| err())
        };
        let year = num(date_parts.next(), 4)?;
        let month = num(date_parts.next(), 2)?;
        let day = num(date_parts.next(), 2)?;
        let (clock, fraction) = match time.split_once('.') {
            Some((clock, fraction)) => (clock, Some(fraction)),
            None => (time, None),
        };
        let mut clock_parts = clock.splitn(3, ':');
        let hour = num(clock_parts.next(), 2)?;
        let minute = num(clock_parts.next(), 2)?;
        let second = num(clock_parts.next(), 2)?;
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return Err(err());
        }
        let micros = match fraction {
            None => 0,
            Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
                let mut digits = f.to_owned();
                digits.truncate(6);
                while digits.len() < 6 {
                    digits.push('0');
                }
                digits.parse::<i64>().map_err(|_| err())?
            }
            Some(_) => return Err(err()),
        };
        let days = days_from_civil(year, month as u32, day as u32);
        // A day the month does not have (the 31st of April) would roll into the next.
        if civil_from_days(days) != (year, month as u32, day as u32) {
            return Err(err());
        }
        // The local time minus its offset is UTC.
        let secs = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_secs;
        Ok(Self(secs * 1_000_000 + micros))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip_across_eras() {
        for micros in [
            0,
            1,
            -1,
            951_782_400_000_000,    // 2000-02-29
            4_102_444_799_999_999,  // 2099-12-31T23:59:59.999999
            -2_208_988_800_000_000, // 1900-01-01
        ] {
            let t = Timestamp::from_unix_micros(micros);
            let text = t.to_string();
            assert_eq!(text.parse::<Timestamp>().unwrap(), t, "{text}");
        }
        assert_eq!(
            Timestamp::from_unix_micros(951_782_400_000_000).to_string(),
            "2000-02-29T00:00:00.000000Z"
        );
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "",
            "2026-11-29",
            "2026-11-29T05:14:56",
            "2026-13-01T00:00:00Z",
            "2026-1-01T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00.Z",
            "2026-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-01-01T00:00:60Z",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00+0100",
            "2026-01-01T00:00:00 01:00",
            "2026-01-01T00:00:00+01:60",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn reads_offsets_and_either_case_as_rfc_3339_allows() {
        let utc: Timestamp = "2026-01-31T12:00:00Z".parse().unwrap();
        for same in [
            "2026-01-31T13:30:00+01:30",
            "2026-01-31T07:00:00-05:00",
            "2026-01-31t12:00:00z",
            "2026-01-31T12:00:00+00:00",
            "2026-02-01T00:00:00+12:00",
        ] {
            assert_eq!(same.parse::<Timestamp>().unwrap(), utc, "{same}");
        }
        let fraction: Timestamp = "2026-01-31T13:00:00.25+01:00".parse().unwrap();
        assert_eq!(fraction.as_unix_micros() - utc.as_unix_micros(), 250_000);
    }

    #[test]
    fn serializes_as_a_string() {
        let t = Timestamp::from_unix_micros(0);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"1970-01-01T00:00:00.000000Z\""
        );
        let back: Timestamp = serde_json::from_str("\"1970-01-01T00:00:00Z\"").unwrap();
        assert_eq!(back, t);
    }
}
