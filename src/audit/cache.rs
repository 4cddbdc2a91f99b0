//! Findings of the period rules, kept between audits with the facts they rest on
//! (`FacilityFacts::kept`). A period's findings depend on the facility's records and
//! that period's reports alone (`rules::period_rules`), never on as_of; so after one
//! more month of reports an audit evaluates the new month and the months whose reports
//! changed, and reuses the rest. Pure memory, no I/O; at most one entry per reported
//! month, as the facts hold one report per series and month.

use super::facts::{FacilityFacts, Series};
use super::{AuditConfig, Draft, Found, rules};
use crate::dates::Month;

/// One facility's kept period findings.
#[derive(Clone, Debug, Default)]
pub struct Periods {
    /// The facts' report revision they reflect.
    revision: u64,
    /// Every reported month up to and including this one has been evaluated.
    through: Option<Month>,
    /// The months with findings, by month.
    months: Vec<(Month, Vec<Found>)>,
}

impl Periods {
    /// Appends the period findings of `f` up to and including `as_of` to `out`,
    /// evaluating only the months that are new or whose reports changed since; all of
    /// them if `afresh` (another configuration than last time).
    pub(super) fn findings(
        &mut self,
        f: &FacilityFacts,
        as_of: Month,
        config: &AuditConfig,
        afresh: bool,
        out: &mut Vec<Found>,
    ) {
        let revised = match self.through {
            Some(_) if !afresh => f.revised_since(self.revision),
            _ => None,
        };
        match (revised, self.through) {
            (Some(revised), Some(through)) => {
                for m in revised.filter(|m| *m <= through) {
                    self.evaluate(f, m, config);
                }
                if as_of > through {
                    for m in reported_months(f, Some(through), as_of) {
                        self.evaluate(f, m, config);
                    }
                    self.through = Some(as_of);
                }
            }
            // New, another configuration, or further behind than the journal reaches:
            // start over.
            _ => {
                self.months.clear();
                for m in reported_months(f, None, as_of) {
                    self.evaluate(f, m, config);
                }
                self.through = Some(as_of);
            }
        }
        self.revision = f.revision();
        let end = self.months.partition_point(|(m, _)| *m <= as_of);
        for (_, found) in &self.months[..end] {
            out.extend(found.iter().cloned());
        }
    }

    /// (Re)evaluates one month; a month without findings keeps no entry.
    fn evaluate(&mut self, f: &FacilityFacts, m: Month, config: &AuditConfig) {
        let mut drafts = Vec::new();
        rules::period_rules(f, m, config, &mut drafts);
        let found: Vec<Found> = drafts.into_iter().map(Draft::finish).collect();
        match self.months.binary_search_by_key(&m, |(month, _)| *month) {
            Ok(i) if found.is_empty() => {
                self.months.remove(i);
            }
            Ok(i) => self.months[i].1 = found,
            Err(_) if found.is_empty() => {}
            Err(i) => self.months.insert(i, (m, found)),
        }
    }
}

/// The months after `after` (all if None) up to and including `last` with a power or
/// an occupancy report (the period rules find nothing in a month without), in order:
/// the two series' months merged as they are read, as every audit asks this of every
/// facility.
fn reported_months(
    f: &FacilityFacts,
    after: Option<Month>,
    last: Month,
) -> impl Iterator<Item = Month> + '_ {
    let mut power = months_of(&f.power, after, last).peekable();
    let mut occupancy = months_of(&f.occupancy, after, last).peekable();
    std::iter::from_fn(move || {
        let next = match (power.peek(), occupancy.peek()) {
            (Some(p), Some(o)) => *p.min(o),
            (Some(m), None) | (None, Some(m)) => *m,
            (None, None) => return None,
        };
        power.next_if_eq(&next);
        occupancy.next_if_eq(&next);
        Some(next)
    })
}

/// The months of `series`' reports after `after` up to and including `last`.
fn months_of<T>(
    series: &Series<T>,
    after: Option<Month>,
    last: Month,
) -> impl Iterator<Item = Month> + '_ {
    series.between(after, last).iter().map(|(m, _)| *m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::facts::tests::registered;
    use crate::domain::figures::{Currency, Figures, MeterFigures, OccupancyFigures, PowerFigures};

    #[test]
    fn reported_months_merge_both_series_once_each_within_the_bounds() {
        let mut f = FacilityFacts::new(
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            registered("F-1", 1),
        );
        let month = |m: u8| Month::parse(&format!("2025-{m:02}")).unwrap();
        let power = Figures::Power(PowerFigures {
            consumed_kwh: 10,
            it_kwh: 8,
            resold_kwh: 0,
            resale_revenue_minor: 0,
            currency: Currency::new("CNY").unwrap(),
        });
        let occupancy = Figures::Occupancy(OccupancyFigures {
            gpus_installed: 8,
            gpu_hours_available: 100,
            gpu_hours_sold: 50,
            gpu_hours_voucher: 0,
        });
        let meter = Figures::Meter(MeterFigures {
            consumed_kwh: 1,
            resold_kwh: 0,
        });
        for (m, figures) in [(1, power), (3, power), (5, power), (9, power)] {
            f.set_report(month(m), figures, u64::from(m));
        }
        for (m, figures) in [(2, occupancy), (3, occupancy), (6, occupancy), (7, meter)] {
            f.set_report(month(m), figures, 100 + u64::from(m));
        }
        let months = |after: Option<u8>, last: u8| -> Vec<Month> {
            reported_months(&f, after.map(month), month(last)).collect()
        };
        // Meter readings alone make no reported month; each month comes once.
        assert_eq!(months(None, 12), [1, 2, 3, 5, 6, 9].map(month));
        assert_eq!(months(Some(2), 6), [3, 5, 6].map(month));
        assert_eq!(months(Some(3), 3), []);
        assert_eq!(months(None, 2), [1, 2].map(month));
    }
}
