//! The three time shapes of SPEC §2, parsed strictly: instants (`2025-03-26T05:00:00Z`,
//! UTC, whole seconds), dates (`YYYY-MM-DD`) and months (`YYYY-MM`). Anything else is
//! refused rather than normalised, because signed bytes must have exactly one spelling.

use time::{Date, Month as TimeMonth, OffsetDateTime};

/// Seconds since the Unix epoch, UTC.
pub type UnixSeconds = i64;

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `YYYY-MM-DD` with a real calendar day.
pub fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(s.get(0..4)?)?;
    let month = TimeMonth::try_from(u8::try_from(digits(s.get(5..7)?)?).ok()?).ok()?;
    let day = u8::try_from(digits(s.get(8..10)?)?).ok()?;
    Date::from_calendar_date(i32::try_from(year).ok()?, month, day).ok()
}

/// `YYYY-MM-DDTHH:MM:SSZ` as Unix seconds.
pub fn parse_instant(s: &str) -> Option<UnixSeconds> {
    let b = s.as_bytes();
    if b.len() != 20 || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let date = parse_date(s.get(0..10)?)?;
    let hour = digits(s.get(11..13)?)?;
    let minute = digits(s.get(14..16)?)?;
    let second = digits(s.get(17..19)?)?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let midnight = date.midnight().assume_utc().unix_timestamp();
    Some(midnight + i64::from(hour * 3600 + minute * 60 + second))
}

/// The canonical spelling of an instant; `None` outside years 0000–9999.
pub fn format_instant(t: UnixSeconds) -> Option<String> {
    let dt = OffsetDateTime::from_unix_timestamp(t).ok()?;
    if !(0..=9999).contains(&dt.year()) {
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

/// The ledger's clock, truncated to whole seconds.
pub fn now() -> UnixSeconds {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// A calendar month, the reporting period of SPEC §2 (`YYYY-MM`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Month {
    pub year: i32,
    /// 1–12.
    pub month: u8,
}

impl Month {
    pub fn parse(s: &str) -> Option<Month> {
        let b = s.as_bytes();
        if b.len() != 7 || b[4] != b'-' {
            return None;
        }
        let year = i32::try_from(digits(s.get(0..4)?)?).ok()?;
        let month = u8::try_from(digits(s.get(5..7)?)?).ok()?;
        (1..=12).contains(&month).then_some(Month { year, month })
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
        self.plus(-i32::try_from(months.saturating_sub(1)).unwrap_or(i32::MAX))
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
    add_months(date, -i32::try_from(n).unwrap_or(i32::MAX))
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
