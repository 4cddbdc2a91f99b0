//! What the audit knows about one facility, loaded once from the projections, and the
//! definitions of SPEC §8 over it: status at a date, GPUs at a facility, utilization,
//! permit coverage. Pure functions of the loaded facts; no I/O.

use std::collections::BTreeMap;

use time::Date;

use crate::dates::{Month, parse_date};
use crate::domain::bodies::{MeterReading, OccupancyReport, PermitKind, PowerReport, Status};
use crate::domain::records::{
    FacilityRecord, LoanRecord, LotRecord, PermitRecord, ReportBody, ReportRecord, SubsidyRecord,
};

/// A report that counts, with the entry it came from.
#[derive(Clone, Debug)]
pub struct Dated<T> {
    pub body: T,
    pub index: u64,
}

/// One facility and everything recorded about it.
#[derive(Clone, Debug)]
pub struct FacilityFacts {
    pub facility: FacilityRecord,
    pub lots: Vec<LotRecord>,
    pub permits: Vec<PermitRecord>,
    pub subsidies: Vec<SubsidyRecord>,
    pub loans: Vec<LoanRecord>,
    pub power: BTreeMap<Month, Dated<PowerReport>>,
    pub meter: BTreeMap<Month, Dated<MeterReading>>,
    pub occupancy: BTreeMap<Month, Dated<OccupancyReport>>,
}

/// A date field of a record; records hold only validated dates, so a failure means a
/// defect, and the earliest possible date keeps such a fact from hiding.
pub fn day(s: &str) -> Date {
    parse_date(s).unwrap_or(Date::MIN)
}

impl FacilityFacts {
    pub fn new(
        facility: FacilityRecord,
        lots: Vec<LotRecord>,
        permits: Vec<PermitRecord>,
        subsidies: Vec<SubsidyRecord>,
        loans: Vec<LoanRecord>,
        reports: Vec<ReportRecord>,
    ) -> FacilityFacts {
        let mut facts = FacilityFacts {
            facility,
            lots,
            permits,
            subsidies,
            loans,
            power: BTreeMap::new(),
            meter: BTreeMap::new(),
            occupancy: BTreeMap::new(),
        };
        for r in reports {
            facts.set_report(r);
        }
        facts
    }

    /// Puts the report that now counts for its series and period in place.
    pub fn set_report(&mut self, r: ReportRecord) {
        let index = r.index;
        match r.body {
            ReportBody::Power(b) => {
                if let Some(m) = Month::parse(&b.period) {
                    self.power.insert(m, Dated { body: b, index });
                }
            }
            ReportBody::Meter(b) => {
                if let Some(m) = Month::parse(&b.period) {
                    self.meter.insert(m, Dated { body: b, index });
                }
            }
            ReportBody::Occupancy(b) => {
                if let Some(m) = Month::parse(&b.period) {
                    self.occupancy.insert(m, Dated { body: b, index });
                }
            }
        }
    }

    pub fn id(&self) -> &str {
        self.facility.id()
    }

    /// The latest `facility.status` effective on or before `date` (by effective date,
    /// then ledger order), with its entry; `announced` before any.
    pub fn status_at(&self, date: Date) -> (Status, Option<u64>) {
        self.facility
            .statuses
            .iter()
            .filter(|s| day(&s.effective) <= date)
            .max_by_key(|s| (day(&s.effective), s.index))
            .map_or((Status::Announced, None), |s| (s.status, Some(s.index)))
    }

    /// Days (each an effective date up to `until`) on which the status changed, with
    /// the status from then on.
    pub fn status_changes(&self, until: Date) -> Vec<(Date, Status, u64)> {
        let mut dates: Vec<Date> = self
            .facility
            .statuses
            .iter()
            .map(|s| day(&s.effective))
            .filter(|d| *d <= until)
            .collect();
        dates.sort();
        dates.dedup();
        dates
            .into_iter()
            .map(|d| {
                let (status, index) = self.status_at(d);
                (d, status, index.unwrap_or_default())
            })
            .collect()
    }

    /// Was the status one of `wanted` on some day of `[from, to]`? Returns the entry
    /// that made it so.
    pub fn status_in(&self, from: Date, to: Date, wanted: &[Status]) -> Option<u64> {
        if let (s, Some(index)) = self.status_at(from)
            && wanted.contains(&s)
        {
            return Some(index);
        }
        self.status_changes(to)
            .into_iter()
            .find(|(d, s, _)| *d > from && wanted.contains(s))
            .map(|(_, _, index)| index)
    }

    /// Operational on the first and on the last day of `month` (SPEC §8).
    pub fn operational_through(&self, month: Month) -> bool {
        self.status_at(month.first_day()).0 == Status::Operational
            && self.status_at(month.last_day()).0 == Status::Operational
    }

    /// GPUs at the facility on `date`: deployments and transfers to it minus transfers
    /// from it, dated on or before it. With the entries that count.
    pub fn gpus_at(&self, date: Date) -> (i64, Vec<u64>) {
        let moves: Vec<_> = self
            .facility
            .gpu_moves
            .iter()
            .filter(|m| day(&m.date) <= date)
            .collect();
        (
            moves.iter().map(|m| m.delta).sum(),
            moves.iter().map(|m| m.index).collect(),
        )
    }

    /// Σ sold and Σ available over the occupancy reports of `months`, with their
    /// entries; utilization is undefined (None) with no reports or nothing available.
    pub fn utilization(&self, months: &[Month]) -> (Option<(u64, u64)>, Vec<u64>) {
        let reports: Vec<_> = months
            .iter()
            .filter_map(|m| self.occupancy.get(m))
            .collect();
        let sold = reports.iter().map(|r| r.body.gpu_hours_sold).sum::<u64>();
        let available = reports
            .iter()
            .map(|r| r.body.gpu_hours_available)
            .sum::<u64>();
        let evidence = reports.iter().map(|r| r.index).collect();
        if reports.is_empty() || available == 0 {
            (None, evidence)
        } else {
            (Some((sold, available)), evidence)
        }
    }

    /// Is every day of `month` inside some valid permit of `kind`? Validity runs from
    /// `valid_from` to `valid_until`, ending the day before the earliest revocation.
    /// Returns the permits that cover part of it, as evidence either way.
    pub fn covered(&self, kind: PermitKind, month: Month) -> (bool, Vec<u64>) {
        let mut spans: Vec<(Date, Date, u64)> = self
            .permits
            .iter()
            .filter(|p| p.issued.kind == kind)
            .filter_map(|p| {
                let from = day(&p.issued.valid_from);
                let mut until = day(&p.issued.valid_until);
                if let Some(rev) = p.revocations.iter().map(|r| day(&r.effective)).min() {
                    until = until.min(rev.previous_day().unwrap_or(Date::MIN));
                }
                (from <= until && from <= month.last_day() && until >= month.first_day())
                    .then_some((from, until, p.issued_at))
            })
            .collect();
        spans.sort();
        let evidence = spans.iter().map(|s| s.2).collect();
        let mut reached = month.first_day();
        for (from, until, _) in &spans {
            if *from > reached {
                break;
            }
            if *until >= reached {
                match until.next_day() {
                    Some(next) => reached = next,
                    None => return (true, evidence),
                }
            }
            if reached > month.last_day() {
                return (true, evidence);
            }
        }
        (reached > month.last_day(), evidence)
    }
}
