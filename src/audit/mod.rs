//! The audit engine (SPEC §8): the twenty rules over the projections, as of a month,
//! with configurable thresholds. Findings are alerts for a human to weigh, never
//! verdicts: each carries a stable id, the figures that raised it and the ledger entries
//! it rests on, so anyone can check it against the ledger.

pub mod config;
pub mod facts;
pub mod render;
mod rules;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

pub use config::{AuditConfig, ConfigError, DEFAULT_TOML};
pub use facts::FacilityFacts;

use crate::dates::Month;
use crate::domain::records::FindingNoteKind;
use crate::domain::rules::Touch;
use crate::ledger::{LedgerError, Reader};

macro_rules! rule_table {
    ($($variant:ident = $name:literal, $severity:ident;)+) => {
        /// The rules of SPEC §8.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Rule { $($variant),+ }

        impl Rule {
            pub const ALL: &'static [Rule] = &[$(Rule::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Rule::$variant => $name),+ }
            }

            pub fn severity(self) -> Severity {
                match self { $(Rule::$variant => Severity::$severity),+ }
            }

            pub fn parse(s: &str) -> Option<Rule> {
                match s { $($name => Some(Rule::$variant),)+ _ => None }
            }
        }
    };
}

rule_table! {
    IdleFunded = "idle-funded", High;
    StalledFunded = "stalled-funded", High;
    VoucherDependence = "voucher-dependence", Medium;
    PowerResale = "power-resale", High;
    ResaleWithoutPermit = "resale-without-permit", High;
    LandBanking = "land-banking", High;
    UndeployedGpus = "undeployed-gpus", Medium;
    PhantomCapacity = "phantom-capacity", High;
    DuplicateSerial = "duplicate-serial", Critical;
    DoublePledge = "double-pledge", Critical;
    PriceAnomaly = "price-anomaly", Medium;
    SubsidyStacking = "subsidy-stacking", High;
    SubsidisedAssetSold = "subsidised-asset-sold", Medium;
    ReportingGap = "reporting-gap", Medium;
    PermitMissing = "permit-missing", High;
    PowerOccupancyMismatch = "power-occupancy-mismatch", High;
    MeterMismatch = "meter-mismatch", High;
    InspectionShortfall = "inspection-shortfall", High;
    SubsidyConditionBreach = "subsidy-condition-breach", High;
    PueImplausible = "pue-implausible", Low;
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// `id` of SPEC §8: BLAKE3 over rule, facility and the rule's own key, 32 hex.
pub fn finding_id(rule: Rule, facility_id: &str, key: &str) -> String {
    let mut h = blake3::Hasher::new();
    for part in [rule.as_str(), facility_id, key] {
        h.update(part.as_bytes());
        h.update(&[0]);
    }
    hex::encode(&h.finalize().as_bytes()[..16])
}

/// A response or resolution attached to a finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Note {
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    pub org_id: String,
    pub text: String,
    pub index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub id: String,
    pub rule: &'static str,
    pub severity: &'static str,
    pub facility_id: String,
    /// What the finding is about within the facility (a period, lot, serial, …).
    pub key: String,
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_at_risk_minor: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Indices of the ledger entries the finding rests on, ascending.
    pub evidence: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
}

/// A finding in the making: rules fill these in; `finish` sets the id and orders the
/// evidence.
pub(crate) struct Draft {
    pub rule: Rule,
    pub facility_id: String,
    pub key: String,
    pub summary: String,
    pub money: Option<(u64, String)>,
    pub evidence: Vec<u64>,
}

impl Draft {
    fn finish(mut self) -> Finding {
        self.evidence.sort_unstable();
        self.evidence.dedup();
        let (amount, currency) = match self.money {
            Some((a, c)) => (Some(a), Some(c)),
            None => (None, None),
        };
        Finding {
            id: finding_id(self.rule, &self.facility_id, &self.key),
            rule: self.rule.as_str(),
            severity: self.rule.severity().as_str(),
            facility_id: self.facility_id,
            key: self.key,
            summary: self.summary,
            amount_at_risk_minor: amount,
            currency,
            evidence: self.evidence,
            notes: Vec::new(),
        }
    }
}

/// Everything the audit reads, loaded from the projections once.
pub struct Snapshot {
    /// The ledger size the snapshot reflects at least.
    pub size: u64,
    pub facilities: BTreeMap<String, FacilityFacts>,
    /// Per serial listed in more than one lot: (lot id, facility, lot date, procured_at,
    /// evidence entries).
    pub shared_serials: Vec<(String, Vec<rules::SerialLot>)>,
    /// Per item pledged to more than one loan: its pledges.
    pub shared_collateral: Vec<(String, Vec<crate::domain::records::Pledge>)>,
    /// The latest period of any occupancy or power report.
    pub latest_period: Option<Month>,
    /// The month of the latest `accepted`, for ledgers with no reports.
    pub latest_accepted: Option<Month>,
}

impl Snapshot {
    pub fn load(reader: &Reader) -> Result<Snapshot, LedgerError> {
        // Read the size first: entries committed while loading are picked up by the next
        // refresh, never lost between the two.
        let size = reader.size();
        let mut facilities = BTreeMap::new();
        for facts in load_all(reader, reader.facilities()?)? {
            facilities.insert(facts.id().to_string(), facts);
        }
        let mut snapshot = Snapshot {
            size,
            facilities,
            shared_serials: Vec::new(),
            shared_collateral: Vec::new(),
            latest_period: None,
            latest_accepted: None,
        };
        snapshot.load_shared(reader)?;
        Ok(snapshot)
    }

    /// Brings the snapshot up to the ledger's current size, reloading only the
    /// facilities that entries since the last load or refresh touched.
    pub fn refresh(&mut self, reader: &Reader) -> Result<(), LedgerError> {
        let size = reader.size();
        if size == self.size {
            return Ok(());
        }
        // A facility whose records changed is reloaded whole; one that only received
        // reports gets just those (a month of reports touches every facility).
        let touches = reader.touched_since(self.size)?;
        let whole: BTreeSet<&str> = touches
            .iter()
            .filter_map(|t| match t {
                Touch::Facility(f) => Some(f.as_str()),
                Touch::Report { .. } => None,
            })
            .collect();
        let mut records = Vec::new();
        for id in &whole {
            records.extend(reader.facility(id)?);
        }
        for facts in load_all(reader, records)? {
            self.facilities.insert(facts.id().to_string(), facts);
        }
        let reports: Vec<&Touch> = touches
            .iter()
            .filter(|t| matches!(t, Touch::Report { facility, .. } if !whole.contains(facility.as_str())))
            .collect();
        let fresh = crate::parallel::map(reports, REPORTS_PER_THREAD, |t| match t {
            Touch::Report {
                facility,
                series,
                period,
            } => reader
                .report(facility, *series, period)
                .map(|r| r.map(|r| (facility.clone(), r))),
            Touch::Facility(_) => Ok(None),
        });
        for found in fresh {
            if let Some((facility, report)) = found? {
                match self.facilities.get_mut(&facility) {
                    Some(facts) => facts.set_report(report),
                    // A report for a facility this snapshot has never seen: load it whole.
                    None => {
                        if let Some(f) = reader.facility(&facility)? {
                            self.facilities.insert(facility, load_facts(reader, f)?);
                        }
                    }
                }
            }
        }
        self.size = size;
        self.load_shared(reader)
    }

    /// The cross-facility sets and ledger-wide figures, small enough to reload whole.
    fn load_shared(&mut self, reader: &Reader) -> Result<(), LedgerError> {
        let mut shared_serials = Vec::new();
        for serial in reader.shared_serials()? {
            let mut lots = Vec::new();
            for u in reader.serial_uses(&serial)? {
                if let Some(lot) = reader.lot(&u.lot_id)? {
                    lots.push(rules::SerialLot {
                        lot_id: u.lot_id,
                        facility_id: lot.procured.facility_id,
                        date: lot.procured.date,
                        procured_at: lot.procured_at,
                        listed_at: u.index,
                    });
                }
            }
            shared_serials.push((serial, lots));
        }
        let mut shared_collateral = Vec::new();
        for item in reader.shared_collateral()? {
            shared_collateral.push((item.clone(), reader.pledges(&item)?));
        }
        self.latest_period = self
            .facilities
            .values()
            .flat_map(|f| [f.power.keys().next_back(), f.occupancy.keys().next_back()])
            .flatten()
            .copied()
            .max();
        self.latest_accepted = reader.latest_accepted()?.map(|t| {
            let date = time::OffsetDateTime::from_unix_timestamp(t)
                .map(|dt| dt.date())
                .unwrap_or(time::Date::MIN);
            Month::of(date)
        });
        self.shared_serials = shared_serials;
        self.shared_collateral = shared_collateral;
        Ok(())
    }

    /// SPEC §8's default as_of: the latest report period, else the latest acceptance.
    pub fn default_as_of(&self) -> Option<Month> {
        self.latest_period.or(self.latest_accepted)
    }

    /// Every finding as of `as_of`, ordered by facility, rule and key.
    pub fn audit(&self, as_of: Month, config: &AuditConfig) -> Vec<Finding> {
        let facilities: Vec<&FacilityFacts> = self.facilities.values().collect();
        let mut drafts: Vec<Draft> = crate::parallel::map(facilities, FACILITIES_PER_THREAD, |f| {
            let mut out = Vec::new();
            rules::facility_rules(f, as_of, config, &mut out);
            out
        })
        .into_iter()
        .flatten()
        .collect();
        rules::duplicate_serials(&self.shared_serials, as_of, &mut drafts);
        rules::double_pledges(
            &self.shared_collateral,
            &self.facilities,
            as_of,
            &mut drafts,
        );
        // One finding per rule, facility and key (SPEC §8): merge duplicates.
        let mut by_id: BTreeMap<(String, Rule, String), Finding> = BTreeMap::new();
        for d in drafts {
            let rule = d.rule;
            let finding = d.finish();
            by_id
                .entry((finding.facility_id.clone(), rule, finding.key.clone()))
                .and_modify(|f| {
                    f.evidence.extend(finding.evidence.iter().copied());
                    f.evidence.sort_unstable();
                    f.evidence.dedup();
                })
                .or_insert(finding);
        }
        by_id.into_values().collect()
    }
}

/// What `dcledger audit` and `GET /v1/findings` ask for.
#[derive(Clone, Debug, Default)]
pub struct AuditRequest {
    pub as_of: Option<Month>,
    pub config: AuditConfig,
    pub filter: render::Filter,
}

/// Runs the audit over a ledger: loads the projections, evaluates every rule as of the
/// requested (or default) month, attaches notes, applies the filter.
pub fn run(reader: &Reader, request: &AuditRequest) -> Result<(Month, Vec<Finding>), LedgerError> {
    let snapshot = Snapshot::load(reader)?;
    let as_of = request
        .as_of
        .or_else(|| snapshot.default_as_of())
        .ok_or_else(|| LedgerError::BadRequest("the ledger has no entries to audit".into()))?;
    let mut findings: Vec<Finding> = snapshot
        .audit(as_of, &request.config)
        .into_iter()
        .filter(|f| request.filter.keeps(f))
        .collect();
    attach_notes(reader, &mut findings)?;
    Ok((as_of, findings))
}

/// Facilities per thread below which loading or auditing stays on one thread.
const FACILITIES_PER_THREAD: usize = 64;
/// Report reads per thread below which a refresh stays on one thread.
const REPORTS_PER_THREAD: usize = 256;

/// Loads the facts of many facilities on every core.
fn load_all(
    reader: &Reader,
    records: Vec<crate::domain::records::FacilityRecord>,
) -> Result<Vec<FacilityFacts>, LedgerError> {
    crate::parallel::map(records, FACILITIES_PER_THREAD, |f| load_facts(reader, f))
        .into_iter()
        .collect()
}

fn load_facts(
    reader: &Reader,
    f: crate::domain::records::FacilityRecord,
) -> Result<FacilityFacts, LedgerError> {
    let lots = ids(&f.lots, |id| reader.lot(id))?;
    let permits = ids(&f.permits, |id| reader.permit(id))?;
    let subsidies = ids(&f.subsidies, |id| reader.subsidy(id))?;
    let loans = ids(&f.loans, |id| reader.loan(id))?;
    let reports = reader.reports(f.id())?;
    Ok(FacilityFacts::new(
        f, lots, permits, subsidies, loans, reports,
    ))
}

/// The records a facility lists by id.
fn ids<T>(
    ids: &[String],
    get: impl Fn(&str) -> Result<Option<T>, LedgerError>,
) -> Result<Vec<T>, LedgerError> {
    ids.iter().filter_map(|id| get(id).transpose()).collect()
}

/// Attaches `finding.response` and `finding.resolve` entries to their findings.
pub fn attach_notes(reader: &Reader, findings: &mut [Finding]) -> Result<(), LedgerError> {
    for f in findings {
        f.notes = reader
            .finding_notes(&f.id)?
            .into_iter()
            .map(|n| Note {
                kind: match n.kind {
                    FindingNoteKind::Response => "response",
                    FindingNoteKind::Resolve(_) => "resolution",
                },
                outcome: match n.kind {
                    FindingNoteKind::Resolve(crate::domain::bodies::Outcome::Confirmed) => {
                        Some("confirmed")
                    }
                    FindingNoteKind::Resolve(crate::domain::bodies::Outcome::Dismissed) => {
                        Some("dismissed")
                    }
                    FindingNoteKind::Response => None,
                },
                org_id: n.org_id,
                text: n.text,
                index: n.index,
            })
            .collect();
    }
    Ok(())
}

/// Groups digits by thousands: 48000000 → "48,000,000".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Minor units as whole major units with the currency: 4800000000 fen → "48,000,000 CNY".
pub fn money(minor: u64, currency: &str) -> String {
    format!("{} {currency}", thousands(minor / 100))
}
