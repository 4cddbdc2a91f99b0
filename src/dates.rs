//! The three time shapes of PROTOCOL §2, parsed strictly: instants (`2025-03-26T05:00:00Z`,
//! UTC, whole seconds), dates (`YYYY-MM-DD`) and months (`YYYY-MM`). Anything else is
//! refused rather than normalised, because signed bytes must have exactly one spelling.
//!
//! Every date, month and instant lies in years 1970–9999 (PROTOCOL §2: not every verifier's
//! calendar has a year 0, or years before the Unix epoch). `in_range` is that rule, and
//! every parser here applies it, so whatever parses a time (ingest, the audit, query
//! parameters) holds the same range.

use time::{Date, Month as TimeMonth, OffsetDateTime};

/// Seconds since the Unix epoch, UTC.
pub type UnixSeconds = i64;

/// The first and last years a date, month or instant may have (PROTOCOL §2): 1970-01-01 to
/// 9999-12-31.
pub const YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;

/// Why a text is not a date, month or instant of PROTOCOL §2. Its words name the shape to
/// write, so a caller can put them after the field's name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("{text:?} is not {shape}")]
    Shape { text: String, shape: &'static str },
    #[error(
        "{text:?} is outside 1970-01-01..9999-12-31, where every date, month and instant \
         must lie"
    )]
    OutOfRange { text: String },
}

const DATE_SHAPE: &str = "a calendar date (YYYY-MM-DD)";
const MONTH_SHAPE: &str = "a month (YYYY-MM, month 01-12)";
const INSTANT_SHAPE: &str = "a UTC instant (YYYY-MM-DDTHH:MM:SSZ, a real calendar day and time)";

/// The range rule: the year of `text`, a well-formed date, month or instant, lies in
/// [`YEARS`].
fn in_range(text: &str, year: i32) -> Result<(), TimeError> {
    if YEARS.contains(&year) {
        Ok(())
    } else {
        Err(TimeError::OutOfRange { text: text.into() })
    }
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The four-digit year that opens `s`.
fn year_digits(s: &str) -> Option<i32> {
    i32::try_from(digits(s.get(0..4)?)?).ok()
}

fn shape_error(text: &str, shape: &'static str) -> TimeError {
    TimeError::Shape {
        text: text.into(),
        shape,
    }
}

/// `YYYY-MM-DD`: a real calendar day, 1970-01-01 to 9999-12-31.
pub fn date(s: &str) -> Result<Date, TimeError> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(shape_error(s, DATE_SHAPE));
    }
    let calendar = || {
        let month = TimeMonth::try_from(u8::try_from(digits(s.get(5..7)?)?).ok()?).ok()?;
        let day = u8::try_from(digits(s.get(8..10)?)?).ok()?;
        Date::from_calendar_date(year_digits(s)?, month, day).ok()
    };
    // The shape first: "0000-13-45" is not a date at all, whatever its year.
    let day = calendar().ok_or_else(|| shape_error(s, DATE_SHAPE))?;
    in_range(s, day.year())?;
    Ok(day)
}

/// `date`, for callers that need only whether it is one.
pub fn parse_date(s: &str) -> Option<Date> {
    date(s).ok()
}

/// `YYYY-MM-DDTHH:MM:SSZ` as Unix seconds, 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
pub fn instant(s: &str) -> Result<UnixSeconds, TimeError> {
    let b = s.as_bytes();
    let shape = || shape_error(s, INSTANT_SHAPE);
    if b.len() != 20 || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z' {
        return Err(shape());
    }
    let clock = |range| s.get(range).and_then(digits).ok_or_else(shape);
    let (hour, minute, second) = (clock(11..13)?, clock(14..16)?, clock(17..19)?);
    if hour > 23 || minute > 59 || second > 59 {
        return Err(shape());
    }
    let day = date(s.get(0..10).ok_or_else(shape)?).map_err(|e| match e {
        TimeError::Shape { .. } => shape(),
        TimeError::OutOfRange { .. } => TimeError::OutOfRange { text: s.into() },
    })?;
    let midnight = day.midnight().assume_utc().unix_timestamp();
    Ok(midnight + i64::from(hour * 3600 + minute * 60 + second))
}

/// `instant`, for callers that need only whether it is one.
pub fn parse_instant(s: &str) -> Option<UnixSeconds> {
    instant(s).ok()
}

/// The canonical spelling of an instant; `None` outside the range (`YEARS`).
pub fn format_instant(t: UnixSeconds) -> Option<String> {
    let dt = OffsetDateTime::from_unix_timestamp(t).ok()?;
    if !YEARS.contains(&dt.year()) {
        return None;
    }
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    ))
}

/// The canonical spelling of an instant, or an error saying it is out of range: for
/// instants that must be spelt (a clock reading, a signing time).
pub fn spell_instant(t: UnixSeconds) -> Result<String, TimeError> {
    format_instant(t).ok_or_else(|| TimeError::OutOfRange {
        text: format!("{t} s after 1970-01-01T00:00:00Z"),
    })
}

/// The ledger's clock, truncated to whole seconds.
pub fn now() -> UnixSeconds {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// A calendar month, the reporting period of PROTOCOL §2 (`YYYY-MM`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Month {
    pub year: i32,
    /// 1–12.
    pub month: u8,
}

impl Month {
    /// `YYYY-MM`, 1970-01 to 9999-12.
    pub fn checked(s: &str) -> Result<Month, TimeError> {
        let b = s.as_bytes();
        let shape = || shape_error(s, MONTH_SHAPE);
        if b.len() != 7 || b[4] != b'-' {
            return Err(shape());
        }
        let month = s
            .get(5..7)
            .and_then(digits)
            .and_then(|m| u8::try_from(m).ok())
            .filter(|m| (1..=12).contains(m))
            .ok_or_else(shape)?;
        let year = year_digits(s).ok_or_else(shape)?;
        in_range(s, year)?;
        Ok(Month { year, month })
    }

    /// `checked`, for callers that need only whether it is one.
    pub fn parse(s: &str) -> Option<Month> {
        Month::checked(s).ok()
    }

    /// The month an instant falls in.
    pub fn of_instant(t: UnixSeconds) -> Result<Month, TimeError> {
        let out_of_range = || TimeError::OutOfRange {
            text: format!("{t} s after 1970-01-01T00:00:00Z"),
        };
        let dt = OffsetDateTime::from_unix_timestamp(t).map_err(|_| out_of_range())?;
        if !YEARS.contains(&dt.year()) {
            return Err(out_of_range());
        }
        Ok(Month::of(dt.date()))
    }

    pub fn of(date: Date) -> Month {
        Month {
            year: date.year(),
            month: u8::from(date.month()),
        }
    }

    /// Every `Month` is made by `parse`, `of` or `plus`, which keep `month` in 1–12.
    fn time_month(self) -> TimeMonth {
        TimeMonth::try_from(self.month).unwrap_or_else(|_| {
            unreachable!("month {} of {} is outside 1-12", self.month, self.year)
        })
    }

    /// The month's day `day` (at most its length), a real calendar date for any year
    /// the `time` crate holds (±9999).
    fn day(self, day: u8) -> Date {
        Date::from_calendar_date(self.year, self.time_month(), day)
            .unwrap_or_else(|e| unreachable!("{self} day {day}: {e}"))
    }

    pub fn first_day(self) -> Date {
        self.day(1)
    }

    pub fn last_day(self) -> Date {
        self.day(self.time_month().length(self.year))
    }

    pub fn hours(self) -> u64 {
        u64::from(self.time_month().length(self.year)) * 24
    }

    /// The first month of the `months` calendar months that end with this one (a
    /// window of 1 is the month itself).
    pub fn window_start(self, months: u32) -> Month {
        let back = i32::try_from(months.saturating_sub(1))
            .unwrap_or_else(|_| unreachable!("a window of {months} months is past every bound"));
        self.plus(-back)
    }

    /// The month `n` months later (earlier for negative `n`).
    pub fn plus(self, n: i32) -> Month {
        let zero_based = self.year * 12 + i32::from(self.month) - 1 + n;
        Month {
            year: zero_based.div_euclid(12),
            month: (zero_based.rem_euclid(12) + 1) as u8,
        }
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// `date` moved back by `n` calendar months (see `add_months`).
pub fn months_before(date: Date, n: u32) -> Date {
    let back = i32::try_from(n).unwrap_or_else(|_| unreachable!("{n} months is past every bound"));
    add_months(date, -back)
}

/// `date` moved by `n` calendar months, the day clamped to the target month's length
/// (2024-02-29 plus 12 months is 2025-02-28).
pub fn add_months(date: Date, n: i32) -> Date {
    let target = Month::of(date).plus(n);
    target.day(date.day().min(target.time_month().length(target.year)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip_and_refuse_other_spellings() {
        let t = parse_instant("2025-03-26T05:00:00Z").unwrap();
        assert_eq!(t, 1_742_965_200);
        assert_eq!(format_instant(t).unwrap(), "2025-03-26T05:00:00Z");
        for bad in [
            "2025-03-26T05:00:00.5Z",
            "2025-03-26T05:00:00+00:00",
            "2025-03-26 05:00:00Z",
            "2025-02-30T05:00:00Z",
            "2025-03-26T24:00:00Z",
            "2025-03-26T05:00:60Z",
            "2025-3-26T05:00:00Z",
            "+025-03-26T05:00:00Z",
            "",
        ] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
    }

    #[test]
    fn months() {
        let m = Month::parse("2024-02").unwrap();
        assert_eq!(m.last_day(), parse_date("2024-02-29").unwrap());
        assert_eq!(m.hours(), 29 * 24);
        assert_eq!(m.plus(-2).to_string(), "2023-12");
        assert_eq!(m.plus(11).to_string(), "2025-01");
        assert_eq!(Month::parse("2024-13"), None);
        let leap = parse_date("2024-02-29").unwrap();
        assert_eq!(add_months(leap, 12), parse_date("2025-02-28").unwrap());
        assert_eq!(
            add_months(parse_date("2025-03-31").unwrap(), -1),
            parse_date("2025-02-28").unwrap()
        );
    }

    #[test]
    fn dates_months_and_instants_lie_in_1970_to_9999() {
        let out_of_range = |text: &str| TimeError::OutOfRange { text: text.into() };
        // The bounds themselves are in.
        assert_eq!(date("1970-01-01").unwrap().year(), 1970);
        assert_eq!(date("9999-12-31").unwrap().year(), 9999);
        assert_eq!(Month::checked("1970-01").unwrap().to_string(), "1970-01");
        assert_eq!(Month::checked("9999-12").unwrap().to_string(), "9999-12");
        assert_eq!(instant("1970-01-01T00:00:00Z"), Ok(0));
        let last = instant("9999-12-31T23:59:59Z").unwrap();
        assert_eq!(format_instant(last).unwrap(), "9999-12-31T23:59:59Z");
        assert_eq!(format_instant(0).unwrap(), "1970-01-01T00:00:00Z");
        // Anything earlier is out of range, year 0000 among them.
        for text in ["0000-01-01", "0001-01-01", "1969-12-31", "0000-02-29"] {
            assert_eq!(date(text), Err(out_of_range(text)), "{text}");
            assert_eq!(parse_date(text), None, "{text}");
        }
        for text in ["0000-01", "1969-12"] {
            assert_eq!(Month::checked(text), Err(out_of_range(text)), "{text}");
            assert_eq!(Month::parse(text), None, "{text}");
        }
        for text in ["0000-01-01T00:00:00Z", "1969-12-31T23:59:59Z"] {
            assert_eq!(instant(text), Err(out_of_range(text)), "{text}");
            assert_eq!(parse_instant(text), None, "{text}");
        }
        assert_eq!(format_instant(-1), None);
        assert_eq!(format_instant(last + 1), None);
        // An instant that must be spelt or placed in a month is an error outside them.
        assert!(spell_instant(-1).is_err());
        assert_eq!(spell_instant(last).unwrap(), "9999-12-31T23:59:59Z");
        assert_eq!(Month::of_instant(last).unwrap().to_string(), "9999-12");
        assert_eq!(Month::of_instant(0).unwrap().to_string(), "1970-01");
        for (text, month) in [
            ("2024-02-29T23:59:59Z", "2024-02"),
            ("2024-03-01T00:00:00Z", "2024-03"),
            ("2025-12-31T23:59:59Z", "2025-12"),
        ] {
            let t = instant(text).unwrap();
            assert_eq!(Month::of_instant(t).unwrap().to_string(), month, "{text}");
        }
        for t in [-1, last + 1] {
            let e = Month::of_instant(t).unwrap_err();
            assert!(
                e.to_string().contains("outside 1970-01-01..9999-12-31"),
                "{e}"
            );
        }
        // A text that is no date at all says so, whatever its year.
        for text in ["0000-13-01", "1969-02-30", "0000-00"] {
            let e = if text.len() == 7 {
                Month::checked(text).unwrap_err()
            } else {
                date(text).unwrap_err()
            };
            assert!(matches!(e, TimeError::Shape { .. }), "{text}: {e}");
        }
        assert!(
            out_of_range("1969-12-31")
                .to_string()
                .contains("1970-01-01")
        );
    }

    #[test]
    fn dates_are_calendar_checked() {
        assert!(parse_date("2024-02-29").is_some());
        for bad in [
            "2023-02-29",
            "2023-13-01",
            "2023-00-10",
            "2023-1-01",
            "20230101",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }
}
