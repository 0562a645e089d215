//! Wall-clock timestamps as stored in records and written in protojson (RFC 3339, UTC, `Z`).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A point in time, like google.protobuf.Timestamp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: u32,
}

impl Timestamp {
    pub fn new(seconds: i64, nanos: u32) -> Self {
        Timestamp {
            seconds: seconds + i64::from(nanos / 1_000_000_000),
            nanos: nanos % 1_000_000_000,
        }
    }

    /// Whole seconds later (saturating).
    pub fn plus_seconds(self, seconds: u64) -> Self {
        let add = i64::try_from(seconds).unwrap_or(i64::MAX);
        Timestamp {
            seconds: self.seconds.saturating_add(add),
            nanos: self.nanos,
        }
    }

    /// Milliseconds from `earlier` to `self`, 0 when `earlier` is later.
    pub fn millis_since(self, earlier: Timestamp) -> u64 {
        let nanos = (i128::from(self.seconds) - i128::from(earlier.seconds)) * 1_000_000_000
            + i128::from(self.nanos)
            - i128::from(earlier.nanos);
        u64::try_from(nanos / 1_000_000).unwrap_or(0)
    }

    /// Seconds from `earlier` to `self`, 0 when `earlier` is later.
    pub fn seconds_since(self, earlier: Timestamp) -> u64 {
        u64::try_from(self.seconds.saturating_sub(earlier.seconds)).unwrap_or(0)
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a 400-year era.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl fmt::Display for Timestamp {
    /// protojson's form: fractional digits only when needed, in groups of 3, 6 or 9.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.seconds.div_euclid(86_400);
        let secs_of_day = self.seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let (hour, minute, second) = (
            secs_of_day / 3600,
            secs_of_day % 3600 / 60,
            secs_of_day % 60,
        );
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}"
        )?;
        let nanos = self.nanos;
        if nanos == 0 {
        } else if nanos.is_multiple_of(1_000_000) {
            write!(f, ".{:03}", nanos / 1_000_000)?;
        } else if nanos.is_multiple_of(1_000) {
            write!(f, ".{:06}", nanos / 1_000)?;
        } else {
            write!(f, ".{nanos:09}")?;
        }
        f.write_str("Z")
    }
}

/// Parses `1h`, `15m`, `90s`, `1h30m` into whole seconds (at least one).
pub fn parse_duration_seconds(text: &str) -> Option<u64> {
    let text = text.trim();
    let mut total: u64 = 0;
    let mut digits = String::new();
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let unit = match ch {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        let amount: u64 = digits.parse().ok()?;
        total = total.checked_add(amount.checked_mul(unit)?)?;
        digits.clear();
    }
    (digits.is_empty() && total > 0).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_protojson() {
        assert_eq!(Timestamp::new(0, 0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Timestamp::new(951_782_400, 0).to_string(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            Timestamp::new(1_764_201_600, 5_000_000).to_string(),
            "2025-11-27T00:00:00.005Z"
        );
        assert_eq!(
            Timestamp::new(1_764_201_601, 120_000).to_string(),
            "2025-11-27T00:00:01.000120Z"
        );
        assert_eq!(
            Timestamp::new(4_102_444_799, 1).to_string(),
            "2099-12-31T23:59:59.000000001Z"
        );
        assert_eq!(Timestamp::new(-1, 0).to_string(), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::new(100, 0);
        assert_eq!(t.plus_seconds(3600).seconds, 3700);
        assert_eq!(t.seconds_since(Timestamp::new(40, 0)), 60);
        assert_eq!(Timestamp::new(40, 0).seconds_since(t), 0);
        assert_eq!(t.plus_seconds(u64::MAX).seconds, i64::MAX);
    }
}
