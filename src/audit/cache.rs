//! Findings of the period rules, kept between audits with the facts they rest on
//! (`FacilityFacts::kept`). A period's findings depend on the facility's records and
//! that period's reports alone (`rules::period_rules`), never on as_of; so after one
//! more month of reports an audit evaluates the new month and the months whose reports
//! changed, and reuses the rest. Pure memory, no I/O; at most one entry per reported
//! month, as the facts hold one report per series and month.

use super::facts::FacilityFacts;
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
        let revised: Option<Vec<Month>> = match self.through {
            Some(_) if !afresh => f.revised_since(self.revision).map(Iterator::collect),
            _ => None,
        };
        match (revised, self.through) {
            (Some(revised), Some(through)) => {
                for m in revised.into_iter().filter(|m| *m <= through) {
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
/// an occupancy report (the period rules find nothing in a month without), in order.
fn reported_months(f: &FacilityFacts, after: Option<Month>, last: Month) -> Vec<Month> {
    let power = f.power.between(after, last).iter().map(|(m, _)| *m);
    let occupancy = f.occupancy.between(after, last).iter().map(|(m, _)| *m);
    let mut months: Vec<Month> = power.chain(occupancy).collect();
    months.sort_unstable();
    months.dedup();
    months
}
