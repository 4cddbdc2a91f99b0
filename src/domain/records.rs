//! The projections of PROTOCOL §7 kept in derived state: what is known about each facility,
//! lot, permit, subsidy and loan, and the monthly series, each fact with the index of the
//! entry it came from. Dates are `YYYY-MM-DD` and periods `YYYY-MM` strings, which order
//! correctly as text.

use serde::{Deserialize, Serialize};

use super::bodies::{
    FacilityRegister, MeterReading, OccupancyReport, Outcome, PermitIssue, PowerReport,
    Procurement, Status, SubsidyGrant,
};
use crate::store::derived::{family, key};

/// An identifier as a key term: its length first, so no id is a prefix of another's key.
fn term(id: &str) -> Vec<u8> {
    let mut t = Vec::with_capacity(id.len().saturating_add(1));
    // Ids are at most 64 characters (schemas/), so the length fits a byte; a longer one
    // would make keys collide, so it is a defect, never a cap.
    t.push(u8::try_from(id.len()).unwrap_or_else(|_| unreachable!("an id of {} bytes", id.len())));
    t.extend_from_slice(id.as_bytes());
    t
}

pub fn facility_key(facility_id: &str) -> Vec<u8> {
    key(family::FACILITY, &[&term(facility_id)])
}

pub fn lot_key(lot_id: &str) -> Vec<u8> {
    key(family::LOT, &[&term(lot_id)])
}

pub fn permit_key(permit_id: &str) -> Vec<u8> {
    key(family::PERMIT, &[&term(permit_id)])
}

pub fn subsidy_key(subsidy_id: &str) -> Vec<u8> {
    key(family::SUBSIDY, &[&term(subsidy_id)])
}

pub fn loan_key(loan_id: &str) -> Vec<u8> {
    key(family::LOAN, &[&term(loan_id)])
}

pub fn serial_key(serial: &str) -> Vec<u8> {
    key(family::SERIAL, &[&term(serial)])
}

pub fn collateral_key(item: &str) -> Vec<u8> {
    key(family::COLLATERAL, &[&term(item)])
}

pub fn shared_serial_key(serial: &str) -> Vec<u8> {
    key(family::SHARED_SERIAL, &[&term(serial)])
}

pub fn shared_collateral_key(item: &str) -> Vec<u8> {
    key(family::SHARED_COLLATERAL, &[&term(item)])
}

/// The id inside a key built by one of the functions above.
pub fn id_from_key(key: &[u8]) -> Option<&str> {
    // `None` only for a key no `term` made: the caller reports the damage.
    let len = usize::from(*key.get(1)?);
    std::str::from_utf8(key.get(2..2 + len)?).ok()
}

pub fn finding_key(finding_id: &str) -> Vec<u8> {
    key(family::FINDING_NOTE, &[&term(finding_id)])
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorSpell {
    pub org_id: String,
    /// The entry that made this organisation the operator.
    pub index: u64,
    /// For a transfer: its date, price and currency.
    pub date: Option<String>,
    pub price_minor: Option<u64>,
    pub currency: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEvent {
    pub status: Status,
    pub effective: String,
    pub index: u64,
}

/// GPUs arriving at (positive) or leaving (negative) a facility.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuMove {
    pub lot_id: String,
    pub date: String,
    pub delta: i64,
    pub index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inspection {
    pub date: String,
    pub gpus_counted: u64,
    pub gpus_powered: u64,
    pub observed_status: Status,
    pub document_b3: Option<String>,
    pub index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacilityRecord {
    /// What `facility.register` said.
    pub registered: FacilityRegister,
    pub registered_at: u64,
    /// The operating organisation now, and every one before it (first is the registrant).
    pub operator: String,
    pub operators: Vec<OperatorSpell>,
    pub statuses: Vec<StatusEvent>,
    pub permits: Vec<String>,
    /// Lots procured for this facility.
    pub lots: Vec<String>,
    pub subsidies: Vec<String>,
    pub loans: Vec<String>,
    pub gpu_moves: Vec<GpuMove>,
    pub inspections: Vec<Inspection>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LotMoveKind {
    Deployment {
        facility_id: String,
    },
    Transfer {
        from_facility: Option<String>,
        to_org: Option<String>,
        to_facility: Option<String>,
        price_minor: u64,
        currency: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotMove {
    pub kind: LotMoveKind,
    pub quantity: u64,
    pub date: String,
    pub index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotRecord {
    /// What `procurement` said; its `facility_id` is the procurement facility, whose
    /// operator owns the lot.
    pub procured: Procurement,
    pub procured_at: u64,
    /// GPUs not deployed anywhere and not sold.
    pub undeployed: u64,
    /// GPUs of this lot deployed per facility, now.
    pub deployed: Vec<(String, u64)>,
    pub moves: Vec<LotMove>,
    pub serials: u64,
    /// The `lot.serials` entries that listed them.
    pub serial_entries: Vec<u64>,
}

impl FacilityRecord {
    /// A facility as `facility.register` at entry `index`, signed by `org_id`, makes it:
    /// the registrant operates it, and nothing else is recorded yet.
    pub fn registered(registered: FacilityRegister, index: u64, org_id: &str) -> FacilityRecord {
        FacilityRecord {
            registered,
            registered_at: index,
            operator: org_id.to_string(),
            operators: vec![OperatorSpell {
                org_id: org_id.to_string(),
                index,
                date: None,
                price_minor: None,
                currency: None,
            }],
            statuses: Vec::new(),
            permits: Vec::new(),
            lots: Vec::new(),
            subsidies: Vec::new(),
            loans: Vec::new(),
            gpu_moves: Vec::new(),
            inspections: Vec::new(),
        }
    }

    pub fn id(&self) -> &str {
        &self.registered.facility_id
    }
}

impl LotRecord {
    pub fn deployed_at(&self, facility_id: &str) -> u64 {
        self.deployed
            .iter()
            .find(|(f, _)| f == facility_id)
            .map_or(0, |(_, n)| *n)
    }

    /// Records `quantity` more GPUs of this lot deployed at `facility_id` (kept sorted by
    /// facility).
    pub fn deploy(&mut self, facility_id: &str, quantity: u64) {
        match self
            .deployed
            .binary_search_by(|(f, _)| f.as_str().cmp(facility_id))
        {
            Ok(i) => {
                // Quantities are below 2^53 and a lot holds fewer than 2^53 GPUs.
                let n = &mut self.deployed[i].1;
                *n = n
                    .checked_add(quantity)
                    .unwrap_or_else(|| unreachable!("a lot deployed more GPUs than exist"));
            }
            Err(i) => self.deployed.insert(i, (facility_id.to_string(), quantity)),
        }
    }

    /// Records `quantity` GPUs of this lot leaving `facility_id`, which ingest has
    /// checked are there.
    pub fn withdraw(&mut self, facility_id: &str, quantity: u64) {
        let there = self
            .deployed
            .iter_mut()
            .find(|(f, _)| f == facility_id)
            .map(|(_, n)| n)
            .unwrap_or_else(|| unreachable!("ingest checked the GPUs are at {facility_id}"));
        *there = there
            .checked_sub(quantity)
            .unwrap_or_else(|| unreachable!("ingest checked {quantity} GPUs are at {facility_id}"));
    }
}

/// Where a serial number was listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerialUse {
    pub lot_id: String,
    pub index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub effective: String,
    pub reason: String,
    pub index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermitRecord {
    /// What `permit.issue` said.
    pub issued: PermitIssue,
    pub issuer_org: String,
    pub issued_at: u64,
    pub revocations: Vec<Revocation>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disbursement {
    pub amount_minor: u64,
    pub currency: String,
    pub date: String,
    pub index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubsidyRecord {
    /// What `subsidy.grant` said.
    pub granted: SubsidyGrant,
    pub grantor_org: String,
    pub granted_at: u64,
    pub disbursements: Vec<Disbursement>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collateral {
    pub item: String,
    /// True when the item named an existing lot when the loan was issued (PROTOCOL §7).
    pub is_lot: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoanRecord {
    pub loan_id: String,
    pub facility_id: String,
    pub borrower_org: String,
    pub lender_org: String,
    pub amount_minor: u64,
    pub currency: String,
    pub state_backed: bool,
    pub date: String,
    pub collateral: Vec<Collateral>,
    pub issued_at: u64,
}

/// A loan that pledged an item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pledge {
    pub loan_id: String,
    pub facility_id: String,
    pub date: String,
    pub index: u64,
}

/// The body of a monthly report (`power.report`, `meter.reading`, `occupancy.report`), as
/// admission reads it: reduced to its figures for the change log (`domain::figures`),
/// which is where derived state keeps reports.
#[derive(Clone, Copy, Debug)]
pub enum ReportBody<'a> {
    Power(&'a PowerReport),
    Meter(&'a MeterReading),
    Occupancy(&'a OccupancyReport),
}

impl ReportBody<'_> {
    pub fn facility_id(&self) -> &str {
        match self {
            ReportBody::Power(b) => &b.facility_id,
            ReportBody::Meter(b) => &b.facility_id,
            ReportBody::Occupancy(b) => &b.facility_id,
        }
    }

    /// The month reported on, `YYYY-MM` as the schema requires.
    pub fn period(&self) -> &str {
        match self {
            ReportBody::Power(b) => &b.period,
            ReportBody::Meter(b) => &b.period,
            ReportBody::Occupancy(b) => &b.period,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FindingNoteKind {
    Response,
    Resolve(Outcome),
}

/// An operator's response to, or a regulator's resolution of, a finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingNote {
    pub kind: FindingNoteKind,
    pub org_id: String,
    pub text: String,
    pub index: u64,
}
