//! Cron expressions: parsing, and the next time one fires, in UTC or by the wall clock of
//! an IANA time zone ([`Schedule::next_after_in`]); and durations written
//! as text ([`parse_duration`]), and the suggestions of error messages ([`closest`]).
//!
//! Five fields — minute, hour, day of month, month, day of week — or six, with seconds
//! first. Each field takes `*`, a value, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`, and
//! comma-separated lists of these; months and days of the week also take their English
//! three-letter names (`JAN`, `MON`). Day of week runs from 0 (Sunday) to 6, and 7 is
//! Sunday too. As in classic cron, when both the day of month and the day of week are
//! restricted, a day matching either fires. `@yearly`, `@monthly`, `@weekly`, `@daily`
//! and `@hourly` stand for their usual expressions.
//!
//! ```
//! use jobs_cron::Schedule;
//!
//! let every_quarter_hour: Schedule = "*/15 * * * *".parse().unwrap();
//! // 2026-01-01T00:07:00Z → 00:15:00Z
//! assert_eq!(every_quarter_hour.next_after(1_767_226_020), Some(1_767_226_500));
//! assert!("61 * * * *".parse::<Schedule>().is_err());
//! ```
#![warn(missing_docs)]

use std::fmt;
use std::str::FromStr;

mod duration;
mod suggest;
mod zone;

pub use duration::parse_duration;
pub use suggest::closest;
pub use zone::{TimeZone, UnknownTimeZone};

/// A parsed cron expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    seconds: u64,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    days_restricted: bool,
    weekdays_restricted: bool,
    source: String,
}

/// Why an expression is not a schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const SECOND: Field = Field::numeric("second", 0, 59);
const MINUTE: Field = Field::numeric("minute", 0, 59);
const HOUR: Field = Field::numeric("hour", 0, 23);
const DAY: Field = Field::numeric("day of month", 1, 31);
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
const WEEKDAY: Field = Field {
    name: "day of week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

impl Field {
    const fn numeric(name: &'static str, min: u32, max: u32) -> Self {
        Self {
            name,
            min,
            max,
            names: &[],
        }
    }

    fn value(&self, text: &str) -> Result<u32, String> {
        let upper = text.to_ascii_uppercase();
        if let Some(index) = self.names.iter().position(|name| *name == upper) {
            return Ok(index as u32 + self.min);
        }
        let value: u32 = text
            .parse()
            .map_err(|_| format!("`{text}` is not a valid {}", self.name))?;
        if value < self.min || value > self.max {
            return Err(format!(
                "{} {value} is out of range ({} to {})",
                self.name, self.min, self.max
            ));
        }
        Ok(value)
    }

    /// The set of values `text` selects, as bits; and whether it was `*`.
    fn parse(&self, text: &str) -> Result<(u64, bool), String> {
        let mut bits = 0u64;
        for part in text.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((range, step)) => {
                    let step: u32 =
                        step.parse().ok().filter(|step| *step > 0).ok_or_else(|| {
                            format!("`{step}` is not a valid step in the {} field", self.name)
                        })?;
                    (range, Some(step))
                }
                None => (part, None),
            };
            let (low, high) = if range == "*" {
                (self.min, self.max)
            } else if let Some((low, high)) = range.split_once('-') {
                let (low, high) = (self.value(low)?, self.value(high)?);
                if low > high {
                    return Err(format!("the {} range {range} runs backwards", self.name));
                }
                (low, high)
            } else {
                let value = self.value(range)?;
                // `a/n` means from a to the end, every n.
                (value, if step.is_some() { self.max } else { value })
            };
            let step = step.unwrap_or(1);
            let mut value = low;
            while value <= high {
                bits |= 1 << value;
                let Some(next) = value.checked_add(step) else {
                    break;
                };
                value = next;
            }
        }
        Ok((bits, text == "*"))
    }
}

impl FromStr for Schedule {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        let expanded = match text.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let error = |message: String| ParseError {
            message: format!("`{text}` is not a cron expression: {message}"),
        };
        let (seconds, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(error(format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (with seconds first), found {n}"
                )))
            }
        };
        let (seconds, _) = SECOND.parse(seconds).map_err(error)?;
        let (minutes, _) = MINUTE.parse(rest[0]).map_err(error)?;
        let (hours, _) = HOUR.parse(rest[1]).map_err(error)?;
        let (days, days_star) = DAY.parse(rest[2]).map_err(error)?;
        let (months, _) = MONTH.parse(rest[3]).map_err(error)?;
        let (mut weekdays, weekdays_star) = WEEKDAY.parse(rest[4]).map_err(error)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f; // 7 is Sunday
        }
        let schedule = Schedule {
            seconds,
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: (months >> 1) as u16,
            weekdays: weekdays as u8,
            days_restricted: !days_star,
            weekdays_restricted: !weekdays_star,
            source: text.trim().to_owned(),
        };
        // 2000-01-01T00:00:00Z: eight years ahead hold every day of every month.
        if schedule.next_after(946_684_800).is_none() {
            return Err(error(
                "it never fires (no such day in any month)".to_owned(),
            ));
        }
        Ok(schedule)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Schedule {
    /// The first time after `after` (seconds since the Unix epoch, UTC) when the schedule
    /// fires, in the same unit; `None` if it does not fire within eight years.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let mut t = after.checked_add(1)?;
        let limit = after.checked_add(8 * 366 * 86_400)?;
        while t <= limit {
            let days = t.div_euclid(86_400);
            let (year, month, day) = civil_from_days(days);
            let of_day = t.rem_euclid(86_400);
            let (hour, minute, second) = (of_day / 3_600, of_day / 60 % 60, of_day % 60);
            if self.months & (1 << (month - 1)) == 0 {
                // The first second of the next month.
                let (y, m) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                t = days_from_civil(y, m, 1) * 86_400;
                continue;
            }
            if !self.day_matches(days, day) {
                t = (days + 1) * 86_400;
                continue;
            }
            if self.hours & (1 << hour) == 0 {
                t = days * 86_400 + (hour + 1) * 3_600;
                continue;
            }
            if self.minutes & (1 << minute) == 0 {
                t = days * 86_400 + hour * 3_600 + (minute + 1) * 60;
                continue;
            }
            if self.seconds & (1 << second) == 0 {
                t += 1;
                continue;
            }
            return Some(t);
        }
        None
    }

    fn day_matches(&self, days: i64, day: u32) -> bool {
        let by_day = self.days & (1 << day) != 0;
        // 1970-01-01 was a Thursday (4).
        let weekday = (days + 4).rem_euclid(7);
        let by_weekday = self.weekdays & (1 << weekday) != 0;
        if self.days_restricted && self.weekdays_restricted {
            by_day || by_weekday
        } else {
            by_day && by_weekday
        }
    }
}

/// (year, month 1–12, day 1–31) of a count of days since 1970-01-01, in the proleptic
/// Gregorian calendar (after Howard Hinnant's derivation).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a civil date (year, month 1–12, day 1–31).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seconds since the epoch of a UTC time.
    fn at(year: i64, month: u32, day: u32, hour: i64, minute: i64, second: i64) -> i64 {
        days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second
    }

    fn next(expression: &str, after: i64) -> i64 {
        expression
            .parse::<Schedule>()
            .unwrap()
            .next_after(after)
            .unwrap()
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-800_000, -1, 0, 59, 11_016, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn finds_the_next_tick() {
        let t = at(2026, 11, 29, 9, 7, 30);
        assert_eq!(next("* * * * *", t), at(2026, 11, 29, 9, 8, 0));
        assert_eq!(next("*/15 * * * *", t), at(2026, 11, 29, 9, 15, 0));
        assert_eq!(next("0 9 * * *", t), at(2026, 11, 30, 9, 0, 0));
        assert_eq!(next("30 2 1 * *", t), at(2026, 12, 1, 2, 30, 0));
        assert_eq!(next("0 0 1 JAN *", t), at(2027, 1, 1, 0, 0, 0));
        assert_eq!(next("@hourly", t), at(2026, 11, 29, 10, 0, 0));
        // 2026-11-29 is a Sunday: the next Monday 08:00 is the 30th.
        assert_eq!(next("0 8 * * MON", t), at(2026, 11, 30, 8, 0, 0));
        assert_eq!(next("0 8 * * 7", t), at(2026, 12, 6, 8, 0, 0));
        assert_eq!(next("0 8 * * 1-5", t), at(2026, 11, 30, 8, 0, 0));
        // Day of month or day of week, when both are restricted.
        assert_eq!(next("0 0 13 * FRI", t), at(2026, 12, 4, 0, 0, 0));
        // Only leap years have the 29th of February.
        assert_eq!(next("0 0 29 2 *", t), at(2028, 2, 29, 0, 0, 0));
        // Seconds first when there are six fields.
        assert_eq!(next("*/10 * * * * *", t), at(2026, 11, 29, 9, 7, 40));
        assert_eq!(next("0 5/20 * * * *", t), at(2026, 11, 29, 9, 25, 0));
        // Strictly after: a tick at `after` itself is not next.
        assert_eq!(
            next("* * * * *", at(2026, 1, 1, 0, 0, 0)),
            at(2026, 1, 1, 0, 1, 0)
        );
        // The end of a year.
        assert_eq!(
            next("59 23 31 12 *", at(2026, 12, 31, 23, 59, 0)),
            at(2027, 12, 31, 23, 59, 0)
        );
    }

    #[test]
    fn refuses_what_is_not_a_schedule() {
        for (bad, says) in [
            ("", "found 0"),
            ("* * * *", "found 4"),
            ("* * * * * * *", "found 7"),
            ("60 * * * *", "minute 60 is out of range"),
            ("* 24 * * *", "hour 24"),
            ("* * 0 * *", "day of month 0"),
            ("* * * 13 *", "month 13"),
            ("* * * * 8", "day of week 8"),
            ("*/0 * * * *", "not a valid step"),
            ("5-1 * * * *", "runs backwards"),
            ("a * * * *", "not a valid minute"),
            ("0 0 30 2 *", "never fires"),
            ("0 0 31 4,6,9,11 *", "never fires"),
            ("1/4294967296 * * * *", "not a valid step"),
        ] {
            let error = bad.parse::<Schedule>().unwrap_err().to_string();
            assert!(error.contains(says), "{bad:?}: {error}");
        }
        assert_eq!(
            "*/5 * * * *".parse::<Schedule>().unwrap().to_string(),
            "*/5 * * * *"
        );
    }
}
