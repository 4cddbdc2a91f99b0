//! Region reports (PROTOCOL §9): per province and `national`, as of a month, the figures a
//! regulator reads at a glance, each an exact sum over the region's facilities.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use serde::ser::SerializeMap;

use super::{Money, Window, included};
use crate::audit::{AuditConfig, Facilities, FacilityFacts, Finding, Rule, Severity};
use crate::domain::bodies::Status;
use crate::exact::{Int, product_lt, total};

/// The region every facility is in, beside its province's (ingest refuses it as a
/// facility's province).
pub const NATIONAL: &str = crate::domain::fields::NATIONAL;

/// Facilities by their status at as_of, all five statuses, zeros included.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    pub announced: u64,
    pub under_construction: u64,
    pub operational: u64,
    pub suspended: u64,
    pub decommissioned: u64,
}

impl StatusCounts {
    fn count(&mut self, status: Status) {
        let slot = match status {
            Status::Announced => &mut self.announced,
            Status::UnderConstruction => &mut self.under_construction,
            Status::Operational => &mut self.operational,
            Status::Suspended => &mut self.suspended,
            Status::Decommissioned => &mut self.decommissioned,
        };
        *slot = slot.saturating_add(1);
    }

    /// (status, count) in the order of PROTOCOL §7's status list.
    pub fn iter(&self) -> [(&'static str, u64); 5] {
        [
            (Status::Announced.as_str(), self.announced),
            (Status::UnderConstruction.as_str(), self.under_construction),
            (Status::Operational.as_str(), self.operational),
            (Status::Suspended.as_str(), self.suspended),
            (Status::Decommissioned.as_str(), self.decommissioned),
        ]
    }
}

/// Findings by rule: rules with none left out, by count descending, then in the order
/// of PROTOCOL §8. A JSON object whose keys come in that order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopFindings(pub Vec<(Rule, u64)>);

impl Serialize for TopFindings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (rule, n) in &self.0 {
            map.serialize_entry(rule.as_str(), n)?;
        }
        map.end()
    }
}

/// One region's report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Region {
    /// The exact `province` of `facility.register`, or `national`.
    pub region: String,
    pub facilities: StatusCounts,
    /// The facilities whose figures the report sums, by id.
    pub facility_ids: Vec<String>,
    pub gpus_deployed: Int,
    pub gpu_hours_sold: Int,
    pub gpu_hours_voucher: Int,
    pub gpu_hours_available: Int,
    pub utilization_bp: Option<Int>,
    pub idle_gpus: Int,
    pub idle_share_bp: Option<Int>,
    pub subsidies_disbursed: Money,
    pub disbursed_at_flagged: Money,
    pub consumed_kwh: Int,
    pub resold_kwh: Int,
    pub resold_share_bp: Option<Int>,
    pub top_findings: TopFindings,
}

/// Sums while facilities are added, then the ratios.
#[derive(Default)]
struct Sums {
    facilities: StatusCounts,
    facility_ids: Vec<String>,
    gpus_deployed: Int,
    sold: Int,
    voucher: Int,
    available: Int,
    idle_gpus: Int,
    disbursed: Money,
    flagged: Money,
    consumed: Int,
    resold: Int,
    findings: BTreeMap<Rule, u64>,
}

/// What one facility adds to its regions.
struct Share<'a> {
    facts: &'a FacilityFacts,
    status: Status,
    gpus: i128,
    sold: u128,
    voucher: u128,
    available: u128,
    idle: bool,
    disbursed: Vec<(&'a str, u64)>,
    flagged: bool,
    consumed: u128,
    resold: u128,
    findings: Vec<Rule>,
}

impl Sums {
    fn add(&mut self, s: &Share<'_>) {
        self.facilities.count(s.status);
        self.facility_ids.push(s.facts.id().to_string());
        self.gpus_deployed += s.gpus;
        self.sold += s.sold;
        self.voucher += s.voucher;
        self.available += s.available;
        if s.idle {
            self.idle_gpus += s.gpus;
        }
        for &(currency, amount) in &s.disbursed {
            self.disbursed.add(currency, amount);
            if s.flagged {
                self.flagged.add(currency, amount);
            }
        }
        self.consumed += s.consumed;
        self.resold += s.resold;
        for rule in &s.findings {
            let n = self.findings.entry(*rule).or_default();
            *n = n.saturating_add(1);
        }
    }

    fn finish(self, region: String) -> Region {
        let mut top: Vec<(Rule, u64)> = self.findings.into_iter().collect();
        // Rule's order is PROTOCOL §8's; the sort is stable.
        top.sort_by_key(|t| std::cmp::Reverse(t.1));
        let offered = &self.consumed + &self.resold;
        Region {
            region,
            facilities: self.facilities,
            facility_ids: self.facility_ids,
            utilization_bp: Int::basis_points(&self.sold, &self.available),
            idle_share_bp: Int::basis_points(&self.idle_gpus, &self.gpus_deployed),
            resold_share_bp: Int::basis_points(&self.resold, &offered),
            gpus_deployed: self.gpus_deployed,
            gpu_hours_sold: self.sold,
            gpu_hours_voucher: self.voucher,
            gpu_hours_available: self.available,
            idle_gpus: self.idle_gpus,
            subsidies_disbursed: self.disbursed,
            disbursed_at_flagged: self.flagged,
            consumed_kwh: self.consumed,
            resold_kwh: self.resold,
            top_findings: TopFindings(top),
        }
    }
}

/// Every region as of `window.last`: `national` first, then each province by name.
/// `findings` are the audit's as of the same month.
pub fn regions(
    facilities: &Facilities,
    window: Window,
    config: &AuditConfig,
    findings: &[Arc<Finding>],
) -> Vec<Region> {
    let flagged: HashSet<&str> = findings
        .iter()
        .filter(|f| Severity::parse(f.severity).is_some_and(|s| s >= Severity::High))
        .map(|f| f.facility_id.as_str())
        .collect();
    let mut by_facility: BTreeMap<&str, Vec<Rule>> = BTreeMap::new();
    for f in findings {
        if let Some(rule) = Rule::parse(f.rule) {
            by_facility.entry(&f.facility_id).or_default().push(rule);
        }
    }
    let mut national = Sums::default();
    let mut provinces: BTreeMap<&str, Sums> = BTreeMap::new();
    for facts in included(facilities, window.last) {
        let share = share(facts, window, config, &flagged, &by_facility);
        national.add(&share);
        provinces
            .entry(&facts.records.facility.registered.province)
            .or_default()
            .add(&share);
    }
    std::iter::once(national.finish(NATIONAL.to_string()))
        .chain(
            provinces
                .into_iter()
                .map(|(province, sums)| sums.finish(province.to_string())),
        )
        .collect()
}

/// Idle (PROTOCOL §9): window utilization undefined, or below the idle-funded threshold,
/// compared exactly.
pub fn is_idle(facts: &FacilityFacts, window: Window, config: &AuditConfig) -> bool {
    match facts.utilization(window.first, window.last).0 {
        None => true,
        Some((sold, available)) => {
            product_lt(sold, 100, config.idle_utilization_pct.into(), available)
        }
    }
}

fn share<'a>(
    facts: &'a FacilityFacts,
    window: Window,
    config: &AuditConfig,
    flagged: &HashSet<&str>,
    findings: &BTreeMap<&str, Vec<Rule>>,
) -> Share<'a> {
    let end = window.last.last_day();
    let occupancy = facts.occupancy.between(Some(window.before()), window.last);
    let sold = total(occupancy.iter().map(|(_, r)| r.body.gpu_hours_sold));
    let voucher = total(occupancy.iter().map(|(_, r)| r.body.gpu_hours_voucher));
    let available = total(occupancy.iter().map(|(_, r)| r.body.gpu_hours_available));
    let power = facts.power.between(Some(window.before()), window.last);
    let consumed = total(power.iter().map(|(_, r)| r.body.consumed_kwh));
    let resold = total(power.iter().map(|(_, r)| r.body.resold_kwh));
    let disbursed = facts
        .disbursements()
        .iter()
        .filter(|d| d.date <= end)
        .map(|d| (d.currency.as_str(), d.amount_minor))
        .collect();
    Share {
        status: facts.status_at(end).0,
        gpus: facts.gpus_on(end),
        sold,
        voucher,
        available,
        idle: is_idle(facts, window, config),
        disbursed,
        flagged: flagged.contains(facts.id()),
        consumed,
        resold,
        findings: findings.get(facts.id()).cloned().unwrap_or_default(),
        facts,
    }
}
