//! GS1 dates and times: YYMMDD with the century sliding window, DD = 00, HHMM, MM\[SS\].
//!
//! All arithmetic is done in `i64`, so no reference year, however absurd, can overflow.

use std::fmt;

/// Why a date or time component is not a real date or time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// The component is not made of the expected number of ASCII digits.
    #[error("expected {expected} digits for a date or time, got {got:?}")]
    NotDigits {
        /// How many digits the component needs.
        expected: usize,
        /// What was there instead.
        got: String,
    },
    /// MM is not 01–12.
    #[error("month {0:02} does not exist")]
    Month(u8),
    /// DD is beyond the end of the month.
    #[error("day {day:02} does not exist in {year:04}-{month:02}")]
    Day {
        /// The day given.
        day: u8,
        /// The year, after the century window.
        year: i64,
        /// The month given.
        month: u8,
    },
    /// DD = 00 ("last day of the month") where the AI requires a real day.
    #[error("day 00 is not allowed here; this AI needs a real day")]
    DayZero,
    /// HH is not 00–23.
    #[error("hour {0:02} does not exist")]
    Hour(u8),
    /// MM is not 00–59.
    #[error("minute {0:02} does not exist")]
    Minute(u8),
    /// SS is not 00–59.
    #[error("second {0:02} does not exist")]
    Second(u8),
    /// Minutes and seconds must be given as MM or MMSS.
    #[error("minutes and seconds must be 2 or 4 digits, got {0}")]
    MinSecLength(usize),
}

/// A calendar date, already resolved to a full year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ymd {
    pub year: i64,
    pub month: u8,
    pub day: u8,
}

impl fmt::Display for Ymd {
    /// ISO 8601: `2026-02-28`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Full year for a two-digit `yy` by the GS1 sliding window: if `yy` is 51 or more years ahead of
/// the reference year's YY it is in the previous century, 50 or more behind it the next one.
pub(crate) fn resolve_year(yy: u8, reference_year: i32) -> i64 {
    let reference = i64::from(reference_year);
    let century = reference.div_euclid(100) * 100;
    let diff = i64::from(yy) - reference.rem_euclid(100);
    if diff >= 51 {
        century - 100 + i64::from(yy)
    } else if diff <= -50 {
        century + 100 + i64::from(yy)
    } else {
        century + i64::from(yy)
    }
}

/// Whether `year` is a Gregorian leap year.
fn is_leap(year: i64) -> bool {
    year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0)
}

/// Number of days in `month` (1–12) of `year`.
pub(crate) fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Reads exactly `N` ASCII digits as two-digit numbers.
fn pairs<const N: usize>(digits: &str) -> Result<[u8; N], DateError> {
    let bytes = digits.as_bytes();
    if bytes.len() != 2 * N || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(DateError::NotDigits {
            expected: 2 * N,
            got: digits.to_owned(),
        });
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (pair[0] - b'0') * 10 + (pair[1] - b'0');
    }
    Ok(out)
}

/// Parses YYMMDD. With `day_zero_ok`, DD = 00 means the last day of the month (GS1 rule for
/// AIs 11–17); otherwise DD = 00 is an error.
pub(crate) fn parse_yymmdd(
    digits: &str,
    reference_year: i32,
    day_zero_ok: bool,
) -> Result<Ymd, DateError> {
    let [yy, month, day] = pairs::<3>(digits)?;
    if !(1..=12).contains(&month) {
        return Err(DateError::Month(month));
    }
    let year = resolve_year(yy, reference_year);
    let last = days_in_month(year, month);
    let day = match day {
        0 if day_zero_ok => last,
        0 => return Err(DateError::DayZero),
        d if d > last => return Err(DateError::Day { day, year, month }),
        d => d,
    };
    Ok(Ymd { year, month, day })
}

/// Parses HH (00–23) and returns it as `HH`.
pub(crate) fn parse_hh(digits: &str) -> Result<String, DateError> {
    let [hh] = pairs::<1>(digits)?;
    if hh > 23 {
        return Err(DateError::Hour(hh));
    }
    Ok(format!("{hh:02}"))
}

/// Parses HHMM and returns it as `HH:MM`.
pub(crate) fn parse_hhmm(digits: &str) -> Result<String, DateError> {
    let [hh, mm] = pairs::<2>(digits)?;
    if hh > 23 {
        return Err(DateError::Hour(hh));
    }
    if mm > 59 {
        return Err(DateError::Minute(mm));
    }
    Ok(format!("{hh:02}:{mm:02}"))
}

/// Parses MM or MMSS (the optional tail of AI 8008) and returns `:MM` or `:MM:SS`.
pub(crate) fn parse_mm_opt_ss(digits: &str) -> Result<String, DateError> {
    let (mm, ss) = match digits.len() {
        2 => (pairs::<1>(digits)?[0], None),
        4 => {
            let [mm, ss] = pairs::<2>(digits)?;
            (mm, Some(ss))
        }
        n => return Err(DateError::MinSecLength(n)),
    };
    if mm > 59 {
        return Err(DateError::Minute(mm));
    }
    match ss {
        Some(ss) if ss > 59 => Err(DateError::Second(ss)),
        Some(ss) => Ok(format!(":{mm:02}:{ss:02}")),
        None => Ok(format!(":{mm:02}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str, zero_ok: bool) -> Result<String, String> {
        parse_yymmdd(s, 2026, zero_ok)
            .map(|d| d.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn day_zero_is_the_last_day_of_the_month() {
        assert_eq!(date("260200", true).unwrap(), "2026-02-28");
        assert_eq!(date("280200", true).unwrap(), "2028-02-29");
        assert_eq!(date("261200", true).unwrap(), "2026-12-31");
        assert_eq!(date("260400", true).unwrap(), "2026-04-30");
        // 2000 is a leap year, 2100 is not.
        assert_eq!(parse_yymmdd("000200", 2026, true).unwrap().day, 29);
        assert_eq!(
            parse_yymmdd("000200", 2080, true).unwrap().to_string(),
            "2100-02-28"
        );
    }

    #[test]
    fn day_zero_rejected_where_a_real_day_is_needed() {
        assert_eq!(
            date("260200", false).unwrap_err(),
            "day 00 is not allowed here; this AI needs a real day"
        );
    }

    #[test]
    fn invalid_days_and_months_are_named() {
        assert_eq!(
            date("261232", true).unwrap_err(),
            "day 32 does not exist in 2026-12"
        );
        assert_eq!(
            date("260229", true).unwrap_err(),
            "day 29 does not exist in 2026-02"
        );
        assert_eq!(date("261301", true).unwrap_err(), "month 13 does not exist");
        assert_eq!(date("260001", true).unwrap_err(), "month 00 does not exist");
        assert!(date("2612", true).is_err());
        assert!(date("26123a", true).is_err());
    }

    #[test]
    fn century_sliding_window() {
        // Reference 2026: YY 76 is 50 ahead → this century; 77 is 51 ahead → previous century.
        assert_eq!(resolve_year(76, 2026), 2076);
        assert_eq!(resolve_year(77, 2026), 1977);
        assert_eq!(resolve_year(26, 2026), 2026);
        assert_eq!(resolve_year(0, 2026), 2000);
        // Reference 2080: YY 30 is 50 behind → next century; 31 is 49 behind → this century.
        assert_eq!(resolve_year(30, 2080), 2130);
        assert_eq!(resolve_year(31, 2080), 2031);
        assert_eq!(resolve_year(99, 2001), 1999);
        // No overflow at the extremes.
        let _ = resolve_year(99, i32::MAX);
        let _ = resolve_year(0, i32::MIN);
    }

    #[test]
    fn times() {
        assert_eq!(parse_hhmm("2359").unwrap(), "23:59");
        assert_eq!(parse_hhmm("2400").unwrap_err(), DateError::Hour(24));
        assert_eq!(parse_hhmm("1260").unwrap_err(), DateError::Minute(60));
        assert_eq!(parse_hh("07").unwrap(), "07");
        assert_eq!(parse_mm_opt_ss("30").unwrap(), ":30");
        assert_eq!(parse_mm_opt_ss("3015").unwrap(), ":30:15");
        assert_eq!(parse_mm_opt_ss("3060").unwrap_err(), DateError::Second(60));
        assert_eq!(
            parse_mm_opt_ss("301").unwrap_err(),
            DateError::MinSecLength(3)
        );
    }
}
