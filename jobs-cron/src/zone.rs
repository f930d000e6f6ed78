//! Schedules in a time zone: the next tick by the wall clock of an IANA zone, through
//! daylight-saving changes.

use std::fmt;

use jiff::tz::{AmbiguousOffset, Offset};

use crate::Schedule;

/// An IANA time zone (`Europe/Berlin`), from the time-zone database bundled with this
/// crate (jiff's copy of the IANA database, updated with the crate), so that a schedule
/// ticks the same on every machine whatever the system's own zone files hold.
#[derive(Clone)]
pub struct TimeZone {
    name: String,
    zone: jiff::tz::TimeZone,
}

/// A name that is not an IANA time zone of the bundled database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownTimeZone {
    name: String,
    suggestion: Option<String>,
}

impl fmt::Display for UnknownTimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not an IANA time zone", self.name)?;
        if let Some(suggestion) = &self.suggestion {
            write!(f, " (did you mean `{suggestion}`?)")?;
        }
        write!(
            f,
            ": write a name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\""
        )
    }
}

impl std::error::Error for UnknownTimeZone {}

impl TimeZone {
    /// The zone named `name` (exactly as the IANA database spells it, or in another
    /// case: `europe/berlin` is `Europe/Berlin`).
    ///
    /// ```
    /// assert_eq!(jobs_cron::TimeZone::get("Europe/Berlin").unwrap().name(), "Europe/Berlin");
    /// let error = jobs_cron::TimeZone::get("Europe/Berln").unwrap_err();
    /// assert!(error.to_string().contains("did you mean `Europe/Berlin`?"));
    /// ```
    pub fn get(name: &str) -> Result<Self, UnknownTimeZone> {
        let database = jiff::tz::db();
        match database.get(name) {
            Ok(zone) => Ok(Self {
                name: zone.iana_name().unwrap_or(name).to_owned(),
                zone,
            }),
            Err(_) => {
                let names: Vec<String> = database.available().map(|n| n.to_string()).collect();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                Err(UnknownTimeZone {
                    name: name.to_owned(),
                    suggestion: crate::closest(name, &names, 3).map(str::to_owned),
                })
            }
        }
    }

    /// The zone's IANA name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The instants (seconds since the epoch) at which the wall clock shows `local` (a
    /// time written as seconds since 1970-01-01T00:00 of this zone's calendar): one, two
    /// in a fold (the earlier first), or, in a gap, the one `local` is moved to (forward by
    /// the gap's length).
    fn instants(&self, local: i64) -> Option<[Option<i64>; 2]> {
        let civil = jiff::Timestamp::from_second(local)
            .ok()?
            .to_zoned(jiff::tz::TimeZone::UTC)
            .datetime();
        let at = |offset: Offset| local - i64::from(offset.seconds());
        Some(match self.zone.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Unambiguous { offset } => [Some(at(offset)), None],
            // The offset in force before the gap moves the time forward past it.
            AmbiguousOffset::Gap { before, .. } => [Some(at(before)), None],
            AmbiguousOffset::Fold { before, after } => [Some(at(before)), Some(at(after))],
        })
    }

    /// The offset from UTC in force at `instant`, in seconds.
    fn offset_at(&self, instant: i64) -> Option<i64> {
        let at = jiff::Timestamp::from_second(instant).ok()?;
        Some(i64::from(self.zone.to_offset(at).seconds()))
    }

    /// The first change of offset after `instant`, if any.
    fn next_change(&self, instant: i64) -> Option<i64> {
        let at = jiff::Timestamp::from_second(instant).ok()?;
        self.zone
            .following(at)
            .next()
            .map(|transition| transition.timestamp().as_second())
    }
}

impl fmt::Debug for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TimeZone").field(&self.name).finish()
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl PartialEq for TimeZone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for TimeZone {}

/// How far before and after a change of offset the slow search looks: more than any
/// change there has been (the largest are two hours).
const REACH: i64 = 3 * 3_600;

impl Schedule {
    /// The first tick strictly after `after` (seconds since the epoch) by the wall clock
    /// of `zone`, as seconds since the epoch.
    ///
    /// On the days the clocks change:
    /// - a wall-clock time that does not exist (the hour skipped in spring) fires once,
    ///   moved forward by the length of the gap: a 02:30 tick in Europe/Berlin on
    ///   2026-03-29 fires at 03:30 CEST;
    /// - a wall-clock time that happens twice (the hour repeated in autumn) fires once, at
    ///   its first occurrence, when the schedule names its hours (`30 1 * * *` fires at
    ///   01:30 EDT in America/New_York on 2026-11-01, not again at 01:30 EST); a schedule
    ///   that runs every hour (`*/15 * * * *`) fires by the clock through both passes, so
    ///   it never pauses for an hour;
    /// - no instant fires twice, and ticks stay in order.
    ///
    /// ```
    /// use jobs_cron::{Schedule, TimeZone};
    ///
    /// let nightly: Schedule = "0 3 * * *".parse().unwrap();
    /// let berlin = TimeZone::get("Europe/Berlin").unwrap();
    /// // 2026-07-01T00:00:00Z → 03:00 CEST is 01:00 UTC.
    /// assert_eq!(nightly.next_after_in(1_782_864_000, &berlin), Some(1_782_867_600));
    /// ```
    pub fn next_after_in(&self, after: i64, zone: &TimeZone) -> Option<i64> {
        let offset = zone.offset_at(after)?;
        // Far from a change of offset, the wall clock is UTC shifted by one offset.
        let first = self.next_after(after.checked_add(offset)?)? - offset;
        let change = zone.next_change(after.checked_sub(REACH)?);
        if change.is_none_or(|change| change > first + REACH) {
            return Some(first);
        }
        // Near a change: every wall-clock tick from a little before, each at each of its
        // instants, the earliest one after `after`.
        let every_hour = self.fires_every_hour();
        let local = after + offset;
        let mut best: Option<i64> = None;
        let mut tick = self.next_after(local - 2 * REACH)?;
        loop {
            let instants = zone.instants(tick)?;
            let candidates = if every_hour {
                &instants[..]
            } else {
                &instants[..1]
            };
            for instant in candidates.iter().flatten().copied() {
                if instant > after && best.is_none_or(|best| instant < best) {
                    best = Some(instant);
                }
            }
            if tick > local + 2 * REACH && best.is_some() {
                return best;
            }
            tick = self.next_after(tick)?;
        }
    }

    /// Whether the schedule fires in every hour of the day.
    fn fires_every_hour(&self) -> bool {
        self.hours & 0x00ff_ffff == 0x00ff_ffff
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::days_from_civil;

    /// Seconds since the epoch of a UTC time.
    fn utc(year: i64, month: u32, day: u32, hour: i64, minute: i64) -> i64 {
        days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60
    }

    fn ticks(expression: &str, zone: &str, from: i64, count: usize) -> Vec<i64> {
        let schedule: Schedule = expression.parse().unwrap();
        let zone = TimeZone::get(zone).unwrap();
        let mut at = from;
        (0..count)
            .map(|_| {
                at = schedule.next_after_in(at, &zone).unwrap();
                at
            })
            .collect()
    }

    #[test]
    fn a_daily_tick_follows_the_zones_offset_through_the_year() {
        // 03:00 in Berlin: 02:00 UTC in winter (CET), 01:00 UTC in summer (CEST).
        let winter = ticks("0 3 * * *", "Europe/Berlin", utc(2026, 3, 27, 12, 0), 3);
        assert_eq!(
            winter,
            [
                utc(2026, 3, 28, 2, 0),
                utc(2026, 3, 29, 1, 0),
                utc(2026, 3, 30, 1, 0)
            ]
        );
        let autumn = ticks("0 3 * * *", "Europe/Berlin", utc(2026, 10, 24, 12, 0), 2);
        assert_eq!(autumn, [utc(2026, 10, 25, 2, 0), utc(2026, 10, 26, 2, 0)]);
    }

    #[test]
    fn a_time_skipped_in_spring_fires_once_moved_past_the_gap() {
        // Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST. 02:30 does not exist
        // and fires at 03:30 CEST (01:30 UTC), once; the next day at 02:30 CEST.
        let ticks = ticks("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12, 0), 2);
        assert_eq!(ticks, [utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)]);
    }

    #[test]
    fn an_hourly_schedule_through_the_spring_gap_fires_each_instant_once() {
        // 01:30 CET, then 02:30 (moved to 03:30 CEST), then 04:30 CEST: 03:30 CEST is the
        // same instant as the moved 02:30 and fires once.
        let ticks = ticks("30 * * * *", "Europe/Berlin", utc(2026, 3, 29, 0, 0), 3);
        assert_eq!(
            ticks,
            [
                utc(2026, 3, 29, 0, 30),
                utc(2026, 3, 29, 1, 30),
                utc(2026, 3, 29, 2, 30)
            ]
        );
    }

    #[test]
    fn a_time_repeated_in_autumn_fires_once_at_its_first_occurrence() {
        // America/New_York, 2026-11-01: 02:00 EDT falls back to 01:00 EST, so 01:30 is
        // seen twice. It fires at 01:30 EDT (05:30 UTC) only, then the next day 01:30 EST.
        let ticks = ticks(
            "30 1 * * *",
            "America/New_York",
            utc(2026, 10, 31, 12, 0),
            3,
        );
        assert_eq!(
            ticks,
            [
                utc(2026, 11, 1, 5, 30),
                utc(2026, 11, 2, 6, 30),
                utc(2026, 11, 3, 6, 30)
            ]
        );
    }

    #[test]
    fn a_schedule_of_every_hour_fires_through_both_passes_of_the_repeated_hour() {
        // Every 30 minutes in New York across the fall back: 00:30 EDT, 01:00 EDT, 01:30
        // EDT, 01:00 EST, 01:30 EST, 02:00 EST — every half hour of real time.
        let ticks = ticks(
            "*/30 * * * *",
            "America/New_York",
            utc(2026, 11, 1, 4, 0),
            6,
        );
        assert_eq!(
            ticks,
            [
                utc(2026, 11, 1, 4, 30),
                utc(2026, 11, 1, 5, 0),
                utc(2026, 11, 1, 5, 30),
                utc(2026, 11, 1, 6, 0),
                utc(2026, 11, 1, 6, 30),
                utc(2026, 11, 1, 7, 0)
            ]
        );
    }

    #[test]
    fn utc_and_fixed_zones_tick_as_the_plain_schedule() {
        let schedule: Schedule = "*/7 3 * * *".parse().unwrap();
        let zone = TimeZone::get("UTC").unwrap();
        let mut at = utc(2026, 1, 1, 0, 0);
        for _ in 0..50 {
            let next = schedule.next_after_in(at, &zone);
            assert_eq!(next, schedule.next_after(at));
            at = next.unwrap();
        }
    }

    #[test]
    fn names_are_checked_with_a_suggestion() {
        assert_eq!(
            TimeZone::get("america/new_york").unwrap().name(),
            "America/New_York"
        );
        let error = TimeZone::get("Europe/Berln").unwrap_err().to_string();
        assert!(error.contains("did you mean `Europe/Berlin`?"), "{error}");
        let error = TimeZone::get("Mars/Olympus").unwrap_err().to_string();
        assert!(error.contains("is not an IANA time zone"), "{error}");
    }
}
