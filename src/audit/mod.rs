//! The audit engine (PROTOCOL §8): the twenty rules over the projections, as of a month,
//! with configurable thresholds. Findings are alerts for a human to weigh, never
//! verdicts: each carries a stable id, the figures that raised it and the ledger entries
//! it rests on, so anyone can check it against the ledger.

// Money, energy and GPU-hours are exact here: no silent wrap, truncation or sign loss.
// An `allow` names the one expression it covers and why that expression cannot lose.
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::arithmetic_side_effects
)]

mod cache;
pub mod config;
pub mod facilities;
pub mod facts;
mod published;
pub mod render;
mod rules;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use serde::Serialize;

pub use config::AuditConfig;
pub use facilities::Facilities;
pub use facts::FacilityFacts;
use facts::Reports;
pub use published::Published;

use crate::dates::Month;
use crate::domain::figures::Figures;
use crate::domain::records::{FindingNoteKind, LotRecord};
use crate::domain::rules::Touch;
use crate::exact::Int;
use crate::ledger::{LedgerError, Reader};
use crate::parallel::joined;

macro_rules! rule_table {
    ($($variant:ident = $name:literal, $severity:ident;)+) => {
        /// The rules of PROTOCOL §8.
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

/// `id` of PROTOCOL §8: BLAKE3 over rule, facility and the rule's own key, 32 hex.
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

/// A finding is never changed once made but for the notes attached to it on the way
/// out, so audits share it (`Arc`) between the findings they keep and their results:
/// tens of thousands of kept findings cost a reference count each, not six copies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub id: String,
    pub rule: &'static str,
    pub severity: &'static str,
    pub facility_id: String,
    /// What the finding is about within the facility (a period, lot, serial, …).
    pub key: String,
    pub summary: String,
    /// Exact, of any size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_at_risk_minor: Option<Int>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Indices of the ledger entries the finding rests on, ascending.
    pub evidence: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
}

/// A finding in the making: rules fill these in; `finish` sets the id and orders the
/// evidence.
#[derive(Debug)]
pub(crate) struct Draft {
    pub rule: Rule,
    pub facility_id: String,
    pub key: String,
    pub summary: String,
    pub money: Option<(Int, String)>,
    pub evidence: Vec<u64>,
}

impl Draft {
    /// The finding, with its rule to order it by.
    fn finish(mut self) -> Found {
        self.evidence.sort_unstable();
        self.evidence.dedup();
        let (amount, currency) = match self.money {
            Some((a, c)) => (Some(a), Some(c)),
            None => (None, None),
        };
        let finding = Finding {
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
        };
        (self.rule, Arc::new(finding))
    }
}

/// A finished finding with its rule to order it by.
pub(crate) type Found = (Rule, Arc<Finding>);

/// Everything the audit reads, loaded from the projections once.
pub struct Snapshot {
    /// The ledger size the snapshot reflects at least.
    pub size: u64,
    pub facilities: Facilities,
    /// Every serial listed in more than one lot, with those lots. The cross-facility
    /// sets are replaced whole or not at all, so a copy of the snapshot shares them.
    pub shared_serials: Arc<[rules::SharedSerial]>,
    /// Their settled findings, placed by facility (`load_cross_facility`).
    placed_serials: Arc<[PlacedSerial]>,
    /// Per item pledged to more than one loan: its pledges.
    pub shared_collateral: Arc<[(String, Vec<crate::domain::records::Pledge>)]>,
    /// The latest period of any occupancy or power report.
    pub latest_period: Option<Month>,
    /// The month of the latest `accepted`, for ledgers with no reports.
    pub latest_accepted: Option<Month>,
    /// The configuration the kept period findings (`FacilityFacts::kept`) were made
    /// under; another one starts them afresh.
    audited_with: std::sync::Mutex<Option<AuditConfig>>,
    /// The latest audit's findings with the month and configuration they are for: the
    /// same question of the same snapshot is a lookup (a page, a report, a finding).
    /// A refresh that changes the snapshot forgets them.
    last_audit: std::sync::Mutex<Option<Audited>>,
}

/// A copy shares every facility with the original until a refresh changes it, and
/// keeps the period findings the original's audits kept; the latest audit's answer it
/// does not keep, since a copy is made to be refreshed.
impl Clone for Snapshot {
    fn clone(&self) -> Snapshot {
        Snapshot {
            size: self.size,
            facilities: self.facilities.clone(),
            shared_serials: self.shared_serials.clone(),
            placed_serials: self.placed_serials.clone(),
            shared_collateral: self.shared_collateral.clone(),
            latest_period: self.latest_period,
            latest_accepted: self.latest_accepted,
            audited_with: std::sync::Mutex::new(
                self.audited_with
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone(),
            ),
            last_audit: Default::default(),
        }
    }
}

/// An audit's answer and its question.
struct Audited {
    as_of: Month,
    config: AuditConfig,
    findings: Vec<Arc<Finding>>,
    /// Where each finding is in `findings`, by id: a finding is a lookup. Made by the
    /// first lookup, as most audits are never asked for one finding: at a million
    /// entries the index of 24,000 ids took 7 of an audit's 31 ms (`benches/audit.rs`).
    by_id: OnceLock<HashMap<String, usize>>,
}

impl Snapshot {
    /// Loads everything the audit reads: each family of records in one sequential pass,
    /// then every report from the change log, so the cost is a few scans rather than a
    /// lookup per record.
    pub fn load(reader: &Reader) -> Result<Snapshot, LedgerError> {
        // Read the size first: entries committed while loading are picked up by the next
        // refresh, never lost between the two.
        let size = reader.size();
        // The records (store-bound) and the change log (mostly decoding) load side by
        // side. The changes borrow from the log, which is kept here, outside the threads.
        let log = OnceLock::new();
        let (facilities_loaded, changes) = std::thread::scope(|scope| {
            let changes = scope.spawn(|| {
                let read = reader.change_log_since(0)?;
                log.get_or_init(|| read).changes()
            });
            let facilities = load_records(reader);
            (facilities, joined(changes))
        });
        let mut facilities = Facilities::default();
        facilities.insert(facilities_loaded?);
        // Reports of a facility registered after the records were read wait for the
        // next refresh, which sees its registration.
        facilities.put_reports(&changes?);
        let mut snapshot = Snapshot {
            size,
            facilities,
            shared_serials: Arc::new([]),
            placed_serials: Arc::new([]),
            shared_collateral: Arc::new([]),
            latest_period: None,
            latest_accepted: None,
            audited_with: Default::default(),
            last_audit: Default::default(),
        };
        snapshot.load_cross_facility(reader)?;
        snapshot.latest_period = snapshot.facilities_latest_period();
        snapshot.update_latest_accepted(reader)?;
        Ok(snapshot)
    }

    /// Brings the snapshot up to the ledger's current size from the change log: a
    /// facility whose records changed is reloaded whole; a report (a month of them
    /// touches every facility) is put in place from the figures the log carries.
    pub fn refresh(&mut self, reader: &Reader) -> Result<(), LedgerError> {
        let size = reader.size();
        if size == self.size {
            return Ok(());
        }
        *self.last_audit.get_mut().unwrap_or_else(|p| p.into_inner()) = None;
        let log = reader.change_log_since(self.size)?;
        let changes = log.changes()?;
        let whole: BTreeSet<String> = changes
            .iter()
            .filter_map(|c| match &c.touch {
                Touch::Facility(f) => Some(f.to_string()),
                Touch::Report(_) => None,
            })
            .collect();
        // Reports are never taken back, so the latest period moves only forward, to the
        // latest of the new power and occupancy reports, if later.
        let newest = changes
            .iter()
            .filter_map(|c| match &c.touch {
                Touch::Report(r) => match r.figures {
                    Figures::Power(_) | Figures::Occupancy(_) => Some(r.period),
                    Figures::Meter(_) => None,
                },
                Touch::Facility(_) => None,
            })
            .max();
        self.reload(reader, &whole, ReportsToCome::Yes)?;
        // Then every report among the changes, those of the reloaded facilities too. A
        // facility with reports but unknown to the snapshot (which no registration since
        // its load explains) is loaded whole, its reports from the store, rather than
        // left out.
        let unseen = self.facilities.put_reports(&changes);
        self.reload(reader, &unseen, ReportsToCome::No)?;
        self.size = size;
        if !whole.is_empty() || !unseen.is_empty() {
            self.load_cross_facility(reader)?;
        }
        self.latest_period = self.latest_period.max(newest);
        debug_assert_eq!(self.latest_period, self.facilities_latest_period());
        self.update_latest_accepted(reader)
    }

    /// Loads these facilities' records afresh. Their reports are the snapshot's, which
    /// the change log's bring up to date (`put_reports`), so a refresh reads none: a
    /// facility the snapshot has keeps its own; one registered since has none yet, if the
    /// changes' reports (every one of its reports) are still to be put in place; any
    /// other (a facility the snapshot should have had) takes every report of the change
    /// log, read whole once for all of them, as a load does.
    fn reload(
        &mut self,
        reader: &Reader,
        ids: &BTreeSet<String>,
        to_come: ReportsToCome,
    ) -> Result<(), LedgerError> {
        let mut records = Vec::new();
        let mut from_log = BTreeSet::new();
        for id in ids {
            let Some(record) = reader.facility(id)? else {
                continue;
            };
            let reports = match self.facilities.get(id) {
                Some(facts) => ReportsFrom::Carried(facts.reports()),
                None if to_come == ReportsToCome::Yes && record.registered_at >= self.size => {
                    ReportsFrom::NoneYet
                }
                None => {
                    from_log.insert(id.as_str());
                    ReportsFrom::ChangeLog
                }
            };
            records.push((record, reports));
        }
        self.facilities.insert(load_all(reader, records)?);
        if !from_log.is_empty() {
            let log = reader.change_log_since(0)?;
            let theirs: Vec<_> = log
                .changes()?
                .into_iter()
                .filter(|c| match &c.touch {
                    Touch::Report(r) => from_log.contains(r.facility_id),
                    Touch::Facility(_) => false,
                })
                .collect();
            let unseen = self.facilities.put_reports(&theirs);
            assert!(
                unseen.is_empty(),
                "the facilities just loaded take their own reports"
            );
        }
        Ok(())
    }

    /// The cross-facility sets: serials listed in more than one lot, items pledged to
    /// more than one loan. Only `lot.serials` and `loan.issue` change them, and both touch
    /// a facility, so a refresh that reloaded no facility keeps them as they are.
    fn load_cross_facility(&mut self, reader: &Reader) -> Result<(), LedgerError> {
        let lots: HashMap<&str, &LotRecord> = self
            .facilities
            .iter()
            .flat_map(|f| &f.records.lots)
            .map(|l| (l.procured.lot_id.as_str(), l))
            .collect();
        let uses = crate::parallel::map(
            reader.shared_serials()?,
            SERIAL_READS_PER_THREAD,
            |serial| reader.serial_uses(&serial).map(|uses| (serial, uses)),
        );
        let mut shared_serials = Vec::with_capacity(uses.len());
        for found in uses {
            let (serial, uses) = found?;
            let mut listed = Vec::with_capacity(uses.len());
            for u in uses {
                // Every lot is listed by the facility that procured it; the lookup is a
                // fallback that keeps a defect there from hiding a duplicate.
                let fetched;
                let lot = match lots.get(u.lot_id.as_str()) {
                    Some(lot) => *lot,
                    None => match reader.lot(&u.lot_id)? {
                        Some(lot) => {
                            fetched = lot;
                            &fetched
                        }
                        None => {
                            return Err(LedgerError::Verify(format!(
                                "serial {serial:?} is listed by lot {:?}, which derived state \
                                 does not hold: it is damaged; run `dcledger reindex`",
                                u.lot_id
                            )));
                        }
                    },
                };
                listed.push(rules::SerialLot {
                    facility_id: lot.procured.facility_id.clone(),
                    date: facts::day(&lot.procured.date),
                    procured_at: lot.procured_at,
                    lot_id: u.lot_id,
                    listed_at: u.index,
                });
            }
            shared_serials.push(rules::SharedSerial::new(serial, listed));
        }
        let mut shared_collateral = Vec::new();
        for item in reader.shared_collateral()? {
            shared_collateral.push((item.clone(), reader.pledges(&item)?));
        }
        // Placed here, as the facilities' positions change only with a reload, which
        // loads these sets again.
        let mut placed_serials: Vec<PlacedSerial> = shared_serials
            .iter()
            .filter_map(rules::SharedSerial::settled)
            .map(|(from, found)| PlacedSerial {
                at: self.facilities.position(&found.1.facility_id),
                from,
                found,
            })
            .collect();
        placed_serials.sort_by_key(|p| p.at);
        self.placed_serials = placed_serials.into();
        self.shared_serials = shared_serials.into();
        self.shared_collateral = shared_collateral.into();
        Ok(())
    }

    /// The latest period of any facility's power or occupancy report, found by reading
    /// every facility's.
    fn facilities_latest_period(&self) -> Option<Month> {
        self.facilities
            .iter()
            .flat_map(|f| [f.power.keys().next_back(), f.occupancy.keys().next_back()])
            .flatten()
            .copied()
            .max()
    }

    /// The month of the latest acceptance, for the default as_of of a ledger without
    /// reports.
    fn update_latest_accepted(&mut self, reader: &Reader) -> Result<(), LedgerError> {
        self.latest_accepted = reader
            .latest_accepted()?
            .map(|t| {
                time::OffsetDateTime::from_unix_timestamp(t)
                    .map(|dt| Month::of(dt.date()))
                    .map_err(|_| {
                        LedgerError::Verify(format!(
                            "the derived state's last acceptance time {t} is not a date: run `dcledger reindex`"
                        ))
                    })
            })
            .transpose()?;
        Ok(())
    }

    /// PROTOCOL §8's default as_of: the latest report period, else the latest acceptance.
    pub fn default_as_of(&self) -> Option<Month> {
        self.latest_period.or(self.latest_accepted)
    }

    /// Every finding as of `as_of`, ordered by facility, rule and key. Period findings
    /// kept from earlier audits of this snapshot under the same configuration are reused
    /// where nothing they rest on changed.
    pub fn audit(&self, as_of: Month, config: &AuditConfig) -> Vec<Arc<Finding>> {
        self.audited(as_of, config, |done| done.findings.clone())
    }

    /// The finding with this id as of `as_of`: a lookup once the snapshot has been
    /// audited for that month and configuration (an audit otherwise).
    pub fn finding(&self, as_of: Month, config: &AuditConfig, id: &str) -> Option<Arc<Finding>> {
        self.audited(as_of, config, |done| {
            let by_id = done.by_id.get_or_init(|| {
                done.findings
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (f.id.clone(), i))
                    .collect()
            });
            by_id.get(id).map(|&i| done.findings[i].clone())
        })
    }

    /// Answers from the audit as of `as_of` under `config`, made now unless it is the
    /// one kept.
    fn audited<T>(
        &self,
        as_of: Month,
        config: &AuditConfig,
        answer: impl FnOnce(&Audited) -> T,
    ) -> T {
        // Held while auditing, so that concurrent askers of one question audit once.
        let mut last = self.last_audit.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(done) = last.as_ref()
            && done.as_of == as_of
            && done.config == *config
        {
            return answer(done);
        }
        answer(last.insert(Audited {
            as_of,
            config: config.clone(),
            findings: self.evaluate(as_of, config),
            by_id: OnceLock::new(),
        }))
    }

    /// Every rule, evaluated: `audit` without the memo.
    fn evaluate(&self, as_of: Month, config: &AuditConfig) -> Vec<Arc<Finding>> {
        // The cross-facility findings first, by the facility they name, so that each
        // facility's findings are completed, ordered and merged on its own thread, and
        // the facilities, kept in id order, need only be concatenated.
        let mut drafts = Vec::new();
        rules::double_pledges(
            &self.shared_collateral,
            &self.facilities,
            as_of,
            &mut drafts,
        );
        let cross = rules::unsettled_duplicate_serials(&self.shared_serials, as_of)
            .into_iter()
            .chain(drafts.into_iter().map(Draft::finish));
        let mut by_facility: Vec<Vec<Found>> = self.facilities.iter().map(|_| Vec::new()).collect();
        // Lots and loans belong to registered facilities, so none should be left over;
        // if one is, it still counts, in its place.
        let mut elsewhere = Vec::new();
        for found in cross {
            match self.facilities.position(&found.1.facility_id) {
                Some(i) => by_facility[i].push(found),
                None => elsewhere.push(found),
            }
        }
        // The settled duplicate-serial findings (most of a large ledger's findings) are
        // handed to their facilities by position, none looked up by id.
        let end = as_of.last_day();
        let holds = |p: &&PlacedSerial| p.from <= end;
        let placed_from = self.placed_serials.partition_point(|p| p.at.is_none());
        let (unplaced, mut placed) = self.placed_serials.split_at(placed_from);
        elsewhere.extend(unplaced.iter().filter(holds).map(|p| p.found.clone()));
        // Held for the whole audit: audits under different configurations take turns.
        let mut audited_with = self.audited_with.lock().unwrap_or_else(|p| p.into_inner());
        let afresh = audited_with.as_ref() != Some(config);
        if afresh {
            *audited_with = Some(config.clone());
        }
        let work: Vec<_> = self
            .facilities
            .iter()
            .enumerate()
            .zip(by_facility)
            .map(|((i, f), found)| {
                let (mine, rest) = placed.split_at(placed.partition_point(|p| p.at == Some(i)));
                placed = rest;
                (i, f, found, mine)
            })
            .collect();
        assert!(
            placed.is_empty(),
            "every placed finding's facility is among the facilities"
        );
        let done = crate::parallel::map(work, FACILITIES_PER_THREAD, |(i, f, mut found, mine)| {
            self.facilities.prefetch_for_audit(i);
            debug_assert!(mine.iter().all(|p| p.found.1.facility_id == f.id()));
            found.extend(mine.iter().filter(holds).map(|p| p.found.clone()));
            let mut drafts = Vec::new();
            rules::facility_rules(f, as_of, config, &mut drafts);
            found.extend(drafts.into_iter().map(Draft::finish));
            // A panic while updating leaves kept months that are each still right.
            let mut kept = f.kept.0.lock().unwrap_or_else(|p| p.into_inner());
            kept.findings(f, as_of, config, afresh, &mut found);
            merge_facility(found)
        });
        let mut out: Vec<Found> = done.into_iter().flatten().collect();
        if !elsewhere.is_empty() {
            out.extend(elsewhere);
            out = merge(out);
        }
        out.into_iter().map(|(_, f)| f).collect()
    }
}

/// A duplicate-serial finding settled for good (`rules::SharedSerial::settled`), with
/// where its facility is among the snapshot's.
#[derive(Clone, Debug)]
struct PlacedSerial {
    /// The facility's position; `None` if it is not among them.
    at: Option<usize>,
    /// It holds as of this day and every day after.
    from: time::Date,
    found: Found,
}

/// One finding per rule, facility and key (PROTOCOL §8), ordered by them: duplicates merge
/// their evidence into the first.
fn merge(mut all: Vec<Found>) -> Vec<Found> {
    // Stable, so that of duplicates the first drafted stays first.
    all.sort_by(|(ra, a), (rb, b)| (&a.facility_id, ra, &a.key).cmp(&(&b.facility_id, rb, &b.key)));
    merge_sorted(all, |a, b| a.facility_id == b.facility_id && a.key == b.key)
}

/// `merge` for the findings of one facility: by rule and key, as every one names it.
fn merge_facility(mut found: Vec<Found>) -> Vec<Found> {
    debug_assert!(
        found
            .windows(2)
            .all(|w| w[0].1.facility_id == w[1].1.facility_id)
    );
    found.sort_by(|(ra, a), (rb, b)| (ra, &a.key).cmp(&(rb, &b.key)));
    merge_sorted(found, |a, b| a.key == b.key)
}

/// `merge` of findings already in its order; `same` tells findings of one rule apart.
/// In place: of each run of duplicates the first stays, with the others' evidence.
fn merge_sorted(mut all: Vec<Found>, same: impl Fn(&Finding, &Finding) -> bool) -> Vec<Found> {
    all.dedup_by(|(rule, later), (first_rule, first)| {
        let duplicate = *first_rule == *rule && same(first, later);
        if duplicate {
            let evidence = &mut Arc::make_mut(first).evidence;
            evidence.extend_from_slice(&later.evidence);
            evidence.sort_unstable();
            evidence.dedup();
        }
        duplicate
    });
    all
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
pub fn run(
    reader: &Reader,
    request: &AuditRequest,
) -> Result<(Month, Vec<Arc<Finding>>), LedgerError> {
    let snapshot = Snapshot::load(reader)?;
    let as_of = request
        .as_of
        .or_else(|| snapshot.default_as_of())
        .ok_or_else(|| LedgerError::BadRequest("the ledger has no entries to audit".into()))?;
    let mut findings: Vec<Arc<Finding>> = snapshot
        .audit(as_of, &request.config)
        .into_iter()
        .filter(|f| request.filter.keeps(f))
        .collect();
    attach_notes(reader, &mut findings)?;
    Ok((as_of, findings))
}

/// Shared serials per thread below which their lookups stay on one thread.
const SERIAL_READS_PER_THREAD: usize = 256;
/// Facilities per thread below which loading, auditing or putting reports in place stays
/// on one thread.
const FACILITIES_PER_THREAD: usize = 64;

/// Whether the refresh's reports are still to be put in place (`put_reports`) when
/// facilities are reloaded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReportsToCome {
    Yes,
    No,
}

/// Where the reports of a facility being loaded come from.
enum ReportsFrom {
    /// The facts the snapshot had for it.
    Carried(Reports),
    /// Nowhere yet: it was registered after the snapshot's last entry.
    NoneYet,
    /// The whole change log, once the facility is loaded (`Snapshot::reload`).
    ChangeLog,
}

/// Loads the facts of many facilities on every core.
fn load_all(
    reader: &Reader,
    records: Vec<(crate::domain::records::FacilityRecord, ReportsFrom)>,
) -> Result<Vec<FacilityFacts>, LedgerError> {
    crate::parallel::map(records, FACILITIES_PER_THREAD, |(f, reports)| {
        load_facts(reader, f, reports)
    })
    .into_iter()
    .collect()
}

fn load_facts(
    reader: &Reader,
    f: crate::domain::records::FacilityRecord,
    reports: ReportsFrom,
) -> Result<FacilityFacts, LedgerError> {
    let lots = ids(&f.lots, |id| reader.lot(id))?;
    let permits = ids(&f.permits, |id| reader.permit(id))?;
    let subsidies = ids(&f.subsidies, |id| reader.subsidy(id))?;
    let loans = ids(&f.loans, |id| reader.loan(id))?;
    let facts = FacilityFacts::new(lots, permits, subsidies, loans, f);
    Ok(match reports {
        ReportsFrom::Carried(carried) => facts.with_reports(carried),
        ReportsFrom::NoneYet | ReportsFrom::ChangeLog => facts,
    })
}

/// The records a facility lists by id.
fn ids<T>(
    ids: &[String],
    get: impl Fn(&str) -> Result<Option<T>, LedgerError>,
) -> Result<Vec<T>, LedgerError> {
    ids.iter()
        .map(|id| {
            get(id)?.ok_or_else(|| {
                LedgerError::Verify(format!(
                    "a facility lists {id:?}, which derived state does not hold: it is damaged; \
                     run `dcledger reindex`"
                ))
            })
        })
        .collect()
}

/// Every facility with its lots, permits, subsidies and loans, but no reports: each
/// family in one sequential pass, the largest (permits) beside the others.
fn load_records(reader: &Reader) -> Result<Vec<FacilityFacts>, LedgerError> {
    let (permits, rest) = std::thread::scope(|scope| {
        let permits = scope.spawn(|| reader.permits());
        let rest = (|| -> Result<RecordFamilies, LedgerError> {
            Ok((
                reader.facilities()?,
                reader.lots()?,
                reader.subsidies()?,
                reader.loans()?,
            ))
        })();
        (joined(permits), rest)
    });
    let (facilities, lots, subsidies, loans) = rest?;
    let permits = by_id(permits?, |p| &p.issued.permit_id);
    let lots = by_id(lots, |l| &l.procured.lot_id);
    let subsidies = by_id(subsidies, |s| &s.granted.subsidy_id);
    let loans = by_id(loans, |l| &l.loan_id);
    Ok(facilities
        .into_iter()
        .map(|f| {
            FacilityFacts::new(
                listed(&f.lots, &lots),
                listed(&f.permits, &permits),
                listed(&f.subsidies, &subsidies),
                listed(&f.loans, &loans),
                f,
            )
        })
        .collect())
}

type RecordFamilies = (
    Vec<crate::domain::records::FacilityRecord>,
    Vec<LotRecord>,
    Vec<crate::domain::records::SubsidyRecord>,
    Vec<crate::domain::records::LoanRecord>,
);

/// Records of one family by their id.
fn by_id<T>(records: Vec<T>, id: impl Fn(&T) -> &String) -> HashMap<String, T> {
    records.into_iter().map(|r| (id(&r).clone(), r)).collect()
}

/// The records a facility lists, from a family loaded whole. A record can be listed by
/// more than one facility (a lot deployed at several), so each is cloned.
fn listed<T: Clone>(ids: &[String], records: &HashMap<String, T>) -> Vec<T> {
    ids.iter()
        .filter_map(|id| records.get(id).cloned())
        .collect()
}

/// Attaches `finding.response` and `finding.resolve` entries to their findings; a
/// finding with notes becomes the results' own copy, so kept findings stay without.
pub fn attach_notes(reader: &Reader, findings: &mut [Arc<Finding>]) -> Result<(), LedgerError> {
    for f in findings {
        let notes = reader.finding_notes(&f.id)?;
        if notes.is_empty() {
            continue;
        }
        Arc::make_mut(f).notes = notes
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
pub fn thousands(n: impl std::fmt::Display) -> String {
    crate::exact::grouped(&n.to_string())
}

/// Minor units as whole major units (rounded down) with the currency: 4800000000 fen →
/// "48,000,000 CNY".
pub fn money(minor: impl Into<Int>, currency: &str) -> String {
    let major = minor
        .into()
        .div_floor(&Int::from(100u64))
        .unwrap_or_else(|| unreachable!("100 is not 0"));
    format!("{} {currency}", thousands(major))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(rule: Rule, facility_id: &str, key: &str, summary: &str, evidence: &[u64]) -> Found {
        Draft {
            rule,
            facility_id: facility_id.to_string(),
            key: key.to_string(),
            summary: summary.to_string(),
            money: None,
            evidence: evidence.to_vec(),
        }
        .finish()
    }

    /// (rule, facility, key, summary, evidence) of each, in order.
    fn shown(all: &[Found]) -> Vec<(Rule, &str, &str, &str, &[u64])> {
        all.iter()
            .map(|(r, f)| (*r, &*f.facility_id, &*f.key, &*f.summary, &*f.evidence))
            .collect()
    }

    #[test]
    fn merging_orders_and_keeps_the_first_of_each_duplicate_with_all_their_evidence() {
        use Rule::{DuplicateSerial as Serial, PueImplausible as Pue};
        let one_facility = vec![
            found(Pue, "f-1", "2025-02", "second month", &[9]),
            found(Serial, "f-1", "SN-1", "first", &[5, 3]),
            found(Pue, "f-1", "2025-01", "first month", &[7]),
            found(Serial, "f-1", "SN-1", "again", &[4, 5]),
        ];
        let expected = vec![
            (Serial, "f-1", "SN-1", "first", &[3, 4, 5][..]),
            (Pue, "f-1", "2025-01", "first month", &[7][..]),
            (Pue, "f-1", "2025-02", "second month", &[9][..]),
        ];
        assert_eq!(shown(&merge_facility(one_facility.clone())), expected);
        assert_eq!(shown(&merge(one_facility)), expected);

        let two_facilities = vec![
            found(Serial, "f-2", "SN-1", "later facility", &[8]),
            found(Serial, "f-1", "SN-1", "earlier facility", &[2]),
            found(Serial, "f-2", "SN-1", "again", &[1]),
        ];
        assert_eq!(
            shown(&merge(two_facilities)),
            vec![
                (Serial, "f-1", "SN-1", "earlier facility", &[2][..]),
                (Serial, "f-2", "SN-1", "later facility", &[1, 8][..]),
            ]
        );
    }

    /// Every report of a facility, as (series, month, index).
    fn reports_of(snapshot: &Snapshot, id: &str) -> Vec<(&'static str, Month, u64)> {
        let f = snapshot.facilities.get(id).expect("the facility is loaded");
        let mut all = Vec::new();
        for m in f.power.keys() {
            all.extend(f.power.get(m).map(|r| ("power", *m, r.index)));
        }
        for m in f.meter.keys() {
            all.extend(f.meter.get(m).map(|r| ("meter", *m, r.index)));
        }
        for m in f.occupancy.keys() {
            all.extend(f.occupancy.get(m).map(|r| ("occupancy", *m, r.index)));
        }
        all
    }

    /// A refresh that meets reports of a facility its snapshot lacks (which no load
    /// leaves, but a refresh still answers) loads the facility whole, with every report
    /// the change log holds for it: the facts a fresh load gives.
    #[test]
    fn a_facility_the_snapshot_lacks_takes_every_report_from_the_change_log() {
        use crate::ledger::Ledger;
        use crate::synthetic::{GenConfig, ORIGIN, generate};
        let tmp = tempfile::tempdir().unwrap();
        let world = tmp.path().join("world");
        let config = GenConfig {
            facilities: 3,
            months: 18,
            seed: 11,
            ..GenConfig::default()
        };
        generate(&config, &world).unwrap();
        let text = std::fs::read_to_string(world.join("entries.ndjson")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let key = |name: &str| crate::keys::load_signing_key(&world.join("keys").join(name));
        let (authority, log) = (key("authority.pem").unwrap(), key("log.pem").unwrap());
        let data = tmp.path().join("data");
        let mut ledger = Ledger::init(&data, ORIGIN, "w", &authority, &log).unwrap();
        let reader = ledger.reader();
        let mut append = |part: &[&str]| {
            let input = std::io::Cursor::new(part.join("\n"));
            let summary = crate::bulk::append_ndjson(&mut ledger, input, |_| {}).unwrap();
            assert!(summary.refused.is_none(), "{:?}", summary.refused);
        };
        let (first, rest) = lines.split_at(lines.len() * 3 / 4);
        append(first);
        let mut snapshot = Snapshot::load(&reader).unwrap();
        let lacking = snapshot.facilities.iter().next().unwrap().id().to_string();
        let had = reports_of(&snapshot, &lacking).len();
        let kept = snapshot
            .facilities
            .iter()
            .filter(|f| f.id() != lacking)
            .cloned()
            .collect();
        snapshot.facilities = Facilities::default();
        snapshot.facilities.insert(kept);
        append(rest);
        snapshot.refresh(&reader).unwrap();
        let reports = reports_of(&snapshot, &lacking);
        assert!(
            had > 0 && reports.len() > had,
            "reports of {lacking} before and after the snapshot's load: {had}, {}",
            reports.len()
        );
        assert_eq!(
            reports,
            reports_of(&Snapshot::load(&reader).unwrap(), &lacking)
        );
    }
}
