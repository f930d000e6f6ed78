//! [`Timestamp`] to and from the time types of jiff, chrono and time (each behind the
//! cargo feature of its name).
//!
//! A conversion into a `Timestamp` keeps microseconds and drops what is finer (rounding
//! toward the past, as a store would). A conversion out of one fails, with
//! [`TimestampOutOfRange`], only for a time outside the other type's range.

use crate::Timestamp;

/// A [`Timestamp`] that the target type cannot represent (it lies beyond that type's
/// range of years).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0} is outside the range of the target time type")]
pub struct TimestampOutOfRange(pub Timestamp);

#[cfg(feature = "jiff")]
mod jiff_crate {
    use super::{Timestamp, TimestampOutOfRange};

    /// Jiff's range (years -9999 to 9999) is narrower than a `Timestamp`'s.
    impl TryFrom<Timestamp> for jiff::Timestamp {
        type Error = TimestampOutOfRange;
        fn try_from(t: Timestamp) -> Result<Self, Self::Error> {
            jiff::Timestamp::from_microsecond(t.as_unix_micros())
                .map_err(|_| TimestampOutOfRange(t))
        }
    }

    impl From<jiff::Timestamp> for Timestamp {
        fn from(t: jiff::Timestamp) -> Self {
            let nanos = t.as_nanosecond();
            Timestamp::from_unix_micros(nanos.div_euclid(1_000) as i64)
        }
    }

    impl From<jiff::Zoned> for Timestamp {
        fn from(t: jiff::Zoned) -> Self {
            t.timestamp().into()
        }
    }
}

#[cfg(feature = "chrono")]
mod chrono_crate {
    use super::{Timestamp, TimestampOutOfRange};

    /// Chrono's range (about 262,000 years either way) is narrower than a
    /// `Timestamp`'s.
    impl TryFrom<Timestamp> for chrono::DateTime<chrono::Utc> {
        type Error = TimestampOutOfRange;
        fn try_from(t: Timestamp) -> Result<Self, Self::Error> {
            chrono::DateTime::from_timestamp_micros(t.as_unix_micros())
                .ok_or(TimestampOutOfRange(t))
        }
    }

    impl<Tz: chrono::TimeZone> From<chrono::DateTime<Tz>> for Timestamp {
        fn from(t: chrono::DateTime<Tz>) -> Self {
            // Every chrono time fits in i64 microseconds.
            Timestamp::from_unix_micros(t.timestamp_micros())
        }
    }
}

#[cfg(feature = "time")]
mod time_crate {
    use super::{Timestamp, TimestampOutOfRange};

    /// The time crate's range (years -9999 to 9999) is narrower than a `Timestamp`'s.
    impl TryFrom<Timestamp> for ::time::OffsetDateTime {
        type Error = TimestampOutOfRange;
        fn try_from(t: Timestamp) -> Result<Self, Self::Error> {
            ::time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(t.as_unix_micros()) * 1_000,
            )
            .map_err(|_| TimestampOutOfRange(t))
        }
    }

    impl From<::time::OffsetDateTime> for Timestamp {
        fn from(t: ::time::OffsetDateTime) -> Self {
            Timestamp::from_unix_micros(t.unix_timestamp_nanos().div_euclid(1_000) as i64)
        }
    }

    impl From<::time::UtcDateTime> for Timestamp {
        fn from(t: ::time::UtcDateTime) -> Self {
            Timestamp::from_unix_micros(t.unix_timestamp_nanos().div_euclid(1_000) as i64)
        }
    }
}

#[cfg(test)]
mod tests {
    #[allow(unused_imports)]
    use super::*;

    /// 2026-03-29T01:30:00.123456Z, and a time with nanoseconds a little later.
    #[allow(dead_code)]
    const MICROS: i64 = 1_774_747_800_123_456;

    #[cfg(feature = "jiff")]
    #[test]
    fn jiff_round_trips_and_drops_nanoseconds() {
        let t = Timestamp::from_unix_micros(MICROS);
        let j = jiff::Timestamp::try_from(t).unwrap();
        assert_eq!(j.to_string(), "2026-03-29T01:30:00.123456Z");
        assert_eq!(Timestamp::from(j), t);
        let finer = jiff::Timestamp::from_nanosecond(i128::from(MICROS) * 1_000 + 999).unwrap();
        assert_eq!(Timestamp::from(finer), t);
        let before = jiff::Timestamp::from_nanosecond(-1).unwrap();
        assert_eq!(
            Timestamp::from(before).as_unix_micros(),
            -1,
            "toward the past"
        );
        let zoned = j.in_tz("Europe/Berlin").unwrap();
        assert_eq!(Timestamp::from(zoned), t);
        let far = Timestamp::from_unix_micros(i64::MAX);
        assert_eq!(
            jiff::Timestamp::try_from(far),
            Err(TimestampOutOfRange(far))
        );
    }

    #[cfg(feature = "chrono")]
    #[test]
    fn chrono_round_trips_and_keeps_the_instant_of_any_zone() {
        let t = Timestamp::from_unix_micros(MICROS);
        let c = chrono::DateTime::<chrono::Utc>::try_from(t).unwrap();
        assert_eq!(c.to_rfc3339(), "2026-03-29T01:30:00.123456+00:00");
        assert_eq!(Timestamp::from(c), t);
        let east = c.with_timezone(&chrono::FixedOffset::east_opt(3_600).unwrap());
        assert_eq!(Timestamp::from(east), t);
        let far = Timestamp::from_unix_micros(i64::MAX);
        assert!(chrono::DateTime::<chrono::Utc>::try_from(far).is_err());
    }

    #[cfg(feature = "time")]
    #[test]
    fn time_round_trips_and_drops_nanoseconds() {
        let t = Timestamp::from_unix_micros(MICROS);
        let o = ::time::OffsetDateTime::try_from(t).unwrap();
        assert_eq!(o.unix_timestamp(), MICROS / 1_000_000);
        assert_eq!(o.microsecond(), 123_456);
        assert_eq!(Timestamp::from(o), t);
        assert_eq!(Timestamp::from(o + ::time::Duration::nanoseconds(999)), t);
        let far = Timestamp::from_unix_micros(i64::MAX);
        assert!(::time::OffsetDateTime::try_from(far).is_err());
    }
}
