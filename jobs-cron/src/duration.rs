//! Durations written as text, such as `"30s"` or `"1h30m"`.

/// Parses a duration written as whole numbers with units — `"500ms"`, `"30s"`, `"5m"`,
/// `"1h"`, `"2d"` and sums such as `"1h30m"` — into milliseconds. The error says what
/// to write instead; it is shown as it is by the `#[job_executor]` attribute and the
/// `jobs` command-line tool.
///
/// ```
/// assert_eq!(jobs_cron::parse_duration("1h30m"), Ok(5_400_000));
/// assert!(jobs_cron::parse_duration("1.5s").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let help = "write a whole number and a unit (ms, s, m, h, d), such as \"500ms\", \"30s\", \"5m\" or \"1h30m\"";
    let bad = || format!("`{text}` is not a duration: {help}");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        total = number
            .checked_mul(scale)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("`{text}` is too long a duration"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_whole_numbers_and_units() {
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("30s"), Ok(30_000));
        assert_eq!(parse_duration("2d"), Ok(172_800_000));
        assert_eq!(parse_duration(" 1h30m "), Ok(5_400_000));
        for bad in ["", "5", "s", "5 parsecs", "1.5s", "-1s", "5sec", "1h 30m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
