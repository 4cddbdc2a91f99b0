//! Civil dates as day numbers and months as month numbers: the small, allocation-free
//! calendar the generator needs (days since 1970-01-01, proleptic Gregorian, UTC).

/// Days since 1970-01-01.
pub(crate) type Day = i32;

/// Seconds since the Unix epoch, UTC.
pub(crate) type Instant = i64;

pub(crate) const SECONDS_PER_DAY: Instant = 86_400;

/// Day number of a civil date (H. Hinnant's `days_from_civil`).
pub(crate) fn day_of(year: i32, month: u32, day: u32) -> Day {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe as u32 * 365 + yoe as u32 / 4 - yoe as u32 / 100 + doy;
    era * 146_097 + doe as i32 - 719_468
}

/// Civil date `(year, month, day)` of a day number.
pub(crate) fn civil(day: Day) -> (i32, u32, u32) {
    let z = day + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u32;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe as i32 + era * 400 + i32::from(m <= 2);
    (y, m, d)
}

/// `YYYY-MM-DD`.
pub(crate) fn fmt_day(day: Day) -> String {
    let (y, m, d) = civil(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The same day of the month `n` months later, clamped to the month's last day.
pub(crate) fn add_months(day: Day, n: i32) -> Day {
    let (y, m, d) = civil(day);
    let target = Month::new(y, m).plus(n);
    let last = target.days();
    target.first_day() + d.min(last) as i32 - 1
}

/// A calendar month, counted as `year * 12 + (month - 1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Month(pub i32);

impl Month {
    pub(crate) fn new(year: i32, month: u32) -> Month {
        Month(year * 12 + month as i32 - 1)
    }

    pub(crate) fn of(day: Day) -> Month {
        let (y, m, _) = civil(day);
        Month::new(y, m)
    }

    pub(crate) fn year(self) -> i32 {
        self.0.div_euclid(12)
    }

    pub(crate) fn month(self) -> u32 {
        self.0.rem_euclid(12) as u32 + 1
    }

    pub(crate) fn plus(self, n: i32) -> Month {
        Month(self.0 + n)
    }

    pub(crate) fn first_day(self) -> Day {
        day_of(self.year(), self.month(), 1)
    }

    pub(crate) fn last_day(self) -> Day {
        self.plus(1).first_day() - 1
    }

    pub(crate) fn days(self) -> u32 {
        (self.last_day() - self.first_day() + 1) as u32
    }

    pub(crate) fn hours(self) -> u64 {
        u64::from(self.days()) * 24
    }

    /// `YYYY-MM`.
    pub(crate) fn label(self) -> String {
        format!("{:04}-{:02}", self.year(), self.month())
    }
}

/// Seconds since the epoch of `day` at `hh:mm:ss`.
pub(crate) fn instant(day: Day, seconds_of_day: u32) -> Instant {
    Instant::from(day) * SECONDS_PER_DAY + Instant::from(seconds_of_day)
}

/// The day an instant falls on.
pub(crate) fn day_at(t: Instant) -> Day {
    t.div_euclid(SECONDS_PER_DAY) as Day
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_month_arithmetic() {
        assert_eq!(day_of(1970, 1, 1), 0);
        assert_eq!(fmt_day(day_of(2024, 2, 29)), "2024-02-29");
        for d in -1000..40_000 {
            let (y, m, dd) = civil(d);
            assert_eq!(day_of(y, m, dd), d);
        }
        let m = Month::new(2024, 12);
        assert_eq!(m.plus(1).label(), "2025-01");
        assert_eq!(Month::new(2024, 2).days(), 29);
        assert_eq!(Month::new(2025, 2).hours(), 672);
        assert_eq!(fmt_day(add_months(day_of(2024, 1, 31), 1)), "2024-02-29");
        assert_eq!(fmt_day(add_months(day_of(2024, 3, 15), 12)), "2025-03-15");
        assert_eq!(Month::of(day_of(2025, 3, 31)), Month::new(2025, 3));
        assert_eq!(fmt_day(Month::new(2025, 3).last_day()), "2025-03-31");
        assert_eq!(day_at(instant(100, 86_399)), 100);
    }
}
