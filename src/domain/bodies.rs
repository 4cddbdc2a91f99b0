//! The record bodies of PROTOCOL §7, typed. `prepare` checks a body against its schema and
//! the field rules, then turns it into a `Body` once; admission, the projections, the
//! audit and the reports use that value and never parse JSON again. Every struct refuses
//! fields its schema does not name, as the schemas do (`additionalProperties: false`),
//! and each field holds its schema's constraints (`domain::checked`); the tests below
//! break every constraint of `schemas/body/` alone and hold that the schemas and the
//! types agree on each case.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::domain::checked;
use crate::entry::Kind;
use crate::reject::Rejection;

/// A body, typed by its entry's kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    LedgerGenesis(LedgerGenesis),
    OrgRegister(OrgRegister),
    KeyGrant(KeyGrant),
    KeyRevoke(KeyRevoke),
    FacilityRegister(FacilityRegister),
    FacilityStatus(FacilityStatus),
    FacilityTransfer(FacilityTransfer),
    Procurement(Procurement),
    LotSerials(LotSerials),
    Deployment(Deployment),
    LotTransfer(LotTransfer),
    PowerReport(PowerReport),
    OccupancyReport(OccupancyReport),
    FindingResponse(FindingResponse),
    PermitIssue(PermitIssue),
    PermitRevoke(PermitRevoke),
    SubsidyGrant(SubsidyGrant),
    SubsidyDisburse(SubsidyDisburse),
    LoanIssue(LoanIssue),
    MeterReading(MeterReading),
    InspectionReport(InspectionReport),
    FindingResolve(FindingResolve),
}

impl Body {
    /// The body of a `kind` entry, from the JSON object that passed its schema. A body
    /// that does not fit its type is refused naming `/entry/body`: after the schema that
    /// would be a schema and a type that disagree, which the schema-equivalence tests
    /// exist to catch.
    pub fn parse(kind: Kind, body: Value) -> Result<Body, Rejection> {
        Body::deserialize_as(kind, body)
            .map_err(|e| Rejection::invalid("/entry/body", e.to_string()))
    }

    /// The body of a `kind` entry from its JSON text, straight into its type: how replay
    /// reads the bodies of the ledger's own leaves, without a JSON tree in between.
    pub fn from_json(kind: Kind, text: &str) -> Result<Body, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let body = Body::deserialize_as(kind, &mut de)?;
        de.end()?;
        Ok(body)
    }

    fn deserialize_as<'de, D: Deserializer<'de>>(kind: Kind, d: D) -> Result<Body, D::Error> {
        Ok(match kind {
            Kind::LedgerGenesis => Body::LedgerGenesis(Deserialize::deserialize(d)?),
            Kind::OrgRegister => Body::OrgRegister(Deserialize::deserialize(d)?),
            Kind::KeyGrant => Body::KeyGrant(Deserialize::deserialize(d)?),
            Kind::KeyRevoke => Body::KeyRevoke(Deserialize::deserialize(d)?),
            Kind::FacilityRegister => Body::FacilityRegister(Deserialize::deserialize(d)?),
            Kind::FacilityStatus => Body::FacilityStatus(Deserialize::deserialize(d)?),
            Kind::FacilityTransfer => Body::FacilityTransfer(Deserialize::deserialize(d)?),
            Kind::Procurement => Body::Procurement(Deserialize::deserialize(d)?),
            Kind::LotSerials => Body::LotSerials(Deserialize::deserialize(d)?),
            Kind::Deployment => Body::Deployment(Deserialize::deserialize(d)?),
            Kind::LotTransfer => {
                let transfer: LotTransfer = Deserialize::deserialize(d)?;
                // The schema's `oneOf`: a lot's GPUs go to an organisation or a facility.
                if transfer.to_org.is_some() == transfer.to_facility.is_some() {
                    return Err(serde::de::Error::custom(
                        "lot.transfer names exactly one of to_org and to_facility",
                    ));
                }
                Body::LotTransfer(transfer)
            }
            Kind::PowerReport => Body::PowerReport(Deserialize::deserialize(d)?),
            Kind::OccupancyReport => Body::OccupancyReport(Deserialize::deserialize(d)?),
            Kind::FindingResponse => Body::FindingResponse(Deserialize::deserialize(d)?),
            Kind::PermitIssue => Body::PermitIssue(Deserialize::deserialize(d)?),
            Kind::PermitRevoke => Body::PermitRevoke(Deserialize::deserialize(d)?),
            Kind::SubsidyGrant => Body::SubsidyGrant(Deserialize::deserialize(d)?),
            Kind::SubsidyDisburse => Body::SubsidyDisburse(Deserialize::deserialize(d)?),
            Kind::LoanIssue => Body::LoanIssue(Deserialize::deserialize(d)?),
            Kind::MeterReading => Body::MeterReading(Deserialize::deserialize(d)?),
            Kind::InspectionReport => Body::InspectionReport(Deserialize::deserialize(d)?),
            Kind::FindingResolve => Body::FindingResolve(Deserialize::deserialize(d)?),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerGenesis {
    #[serde(deserialize_with = "checked::origin")]
    pub origin: String,
    #[serde(deserialize_with = "checked::text")]
    pub name: String,
    #[serde(deserialize_with = "checked::hex64")]
    pub checkpoint_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgRegister {
    #[serde(deserialize_with = "checked::id")]
    pub org_id: String,
    #[serde(deserialize_with = "checked::text")]
    pub name: String,
    /// Role names, each a known role and listed once (`checked::roles`); the registry
    /// turns them into `Roles`.
    #[serde(deserialize_with = "checked::roles")]
    pub roles: Vec<String>,
    #[serde(default, deserialize_with = "checked::opt_text")]
    pub province: Option<String>,
    #[serde(default, deserialize_with = "checked::opt_text")]
    pub registration_no: Option<String>,
    #[serde(default, deserialize_with = "checked::opt_id")]
    pub parent_org: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyGrant {
    #[serde(deserialize_with = "checked::id")]
    pub org_id: String,
    #[serde(deserialize_with = "checked::hex64")]
    pub public_key: String,
    #[serde(default, deserialize_with = "checked::opt_text")]
    pub label: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRevoke {
    #[serde(deserialize_with = "checked::hex64")]
    pub public_key: String,
    #[serde(deserialize_with = "checked::text")]
    pub reason: String,
}

/// The facility lifecycle states of PROTOCOL §7.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Announced,
    UnderConstruction,
    Operational,
    Suspended,
    Decommissioned,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Announced => "announced",
            Status::UnderConstruction => "under_construction",
            Status::Operational => "operational",
            Status::Suspended => "suspended",
            Status::Decommissioned => "decommissioned",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PermitKind {
    LandUse,
    Construction,
    EnergyReview,
    GridConnection,
    PowerGeneration,
    PowerSale,
    Operation,
}

impl PermitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PermitKind::LandUse => "land_use",
            PermitKind::Construction => "construction",
            PermitKind::EnergyReview => "energy_review",
            PermitKind::GridConnection => "grid_connection",
            PermitKind::PowerGeneration => "power_generation",
            PermitKind::PowerSale => "power_sale",
            PermitKind::Operation => "operation",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Construction,
    Equipment,
    Electricity,
    ComputeVoucher,
    Operations,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Construction => "construction",
            Purpose::Equipment => "equipment",
            Purpose::Electricity => "electricity",
            Purpose::ComputeVoucher => "compute_voucher",
            Purpose::Operations => "operations",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Confirmed,
    Dismissed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacilityRegister {
    #[serde(deserialize_with = "checked::id")]
    pub facility_id: String,
    #[serde(deserialize_with = "checked::text")]
    pub name: String,
    #[serde(deserialize_with = "checked::text")]
    pub province: String,
    #[serde(deserialize_with = "checked::text")]
    pub city: String,
    #[serde(deserialize_with = "checked::lat_e6")]
    pub lat_e6: i64,
    #[serde(deserialize_with = "checked::lon_e6")]
    pub lon_e6: i64,
    #[serde(deserialize_with = "checked::amount")]
    pub planned_it_kw: u64,
    #[serde(deserialize_with = "checked::amount")]
    pub planned_gpus: u64,
    #[serde(deserialize_with = "checked::reference")]
    pub land_parcel: String,
    #[serde(deserialize_with = "checked::date")]
    pub announced: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacilityStatus {
    #[serde(deserialize_with = "checked::id")]
    pub facility_id: String,
    pub status: Status,
    #[serde(deserialize_with = "checked::date")]
    pub effective: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacilityTransfer {
    #[serde(deserialize_with = "checked::id")]
    pub facility_id: String,
    #[serde(deserialize_with = "checked::id")]
    pub to_org: String,
    #[serde(deserialize_with = "checked::amount")]
    pub price_minor: u64,
    #[serde(deserialize_with = "checked::currency")]
    pub currency: String,
    #[serde(deserialize_with = "checked::date")]
    pub date: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermitIssue {
    #[serde(deserialize_with = "checked::id")]
    pub permit_id: String,
    #[serde(deserialize_with = "checked::id")]
    pub facility_id: String,
    pub kind: PermitKind,
    #[serde(deserialize_with = "checked::date")]
    pub valid_from: String,
    #[serde(deserialize_with = "checked::date")]
    pub valid_until: String,
    #[serde(default, deserialize_with = "checked::opt_amount")]
    pub limit_kw: Option<u64>,
    #[serde(default, deserialize_with = "checked::opt_hex64")]
    pub document_b3: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermitRevoke {
    #[serde(deserialize_with = "checked::id")]
    pub permit_id: String,
    #[serde(deserialize_with = "checked::date")]
    pub effective: String,
    #[serde(deserialize_with = "checked::text")]
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoanIssue {
    #[serde(deserialize_with = "checked::id")]
    pub loan_id: String,
    #[serde(deserialize_with = "checked::id")]
    pub facility_id: String,
    #[serde(deserialize_with = "checked::id")]
    pub borrower_org: String,
    #[serde(deserialize_with = "checked::positive")]
    pub amount_minor: u64,
    #[serde(deserialize_with = "checked::currency")]
    pub currency: String,
    pub state_backed: bool,
    #[serde(deserialize_with = "checked::date")]
    pub date: String,
    #[serde(deserialize_with = "checked::collateral")]
    pub collateral: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Procurement {
    #[serde(deserialize_with = "checked::id")]
    pub lot_id: String,
    #[serde(deserialize_with = "checked::id")]
    pub facility_id: String,
    #[serde(deserialize_with = "checked::text")]
    pub gpu_model: String,
    #[serde(deserialize_with = "checked::positive")]
    pub quantity: u64,
    #[serde(deserialize_with = "checked::amount")]
    pub unit_price_minor: u64,
    #[serde(deserialize_with = "checked::currency")]
    pub currency: String,
    #[serde(deserialize_with = "checked::text")]
    pub supplier: String,
    #[serde(deserialize_with = "checked::date")]
    pub date: String,
    #[serde(default, deserialize_with = "checked::opt_hex64")]
    pub invoice_b3: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LotSerials {
    #[serde(deserialize_with = "checked::id")]
    pub lot_id: String,
    pub serials: Serials,
}

/// The serials one `lot.serials` entry lists, each once (the schema's `uniqueItems`): so
/// admission takes each as a serial of its own, and a trusted replay, which reads leaves
/// without their schema, still holds to it. Checked here, where bodies are parsed on
/// every core, rather than on the one thread that admits them.
///
/// Held as one text and where each serial ends in it: a list of up to 1,000 serials costs
/// two allocations, not one a serial (they were two fifths of a bulk append's calls to
/// the allocator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Serials {
    text: String,
    /// The end of each serial in `text`, in the entry's order; each starts where the one
    /// before ends.
    ends: Vec<u32>,
}

impl Serials {
    /// The serials, in the entry's order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            // `ends` grows with `text` and never passes it (`AppendSerial`).
            let serial = &self.text[start..end as usize];
            start = end as usize;
            serial
        })
    }

    /// The serials, in the entry's order, as a list.
    pub fn to_strs(&self) -> Vec<&str> {
        self.iter().collect()
    }
}

impl<'de> Deserialize<'de> for Serials {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Serials, D::Error> {
        use serde::de::Error;
        let serials = d.deserialize_seq(SerialsVisitor)?;
        if serials.ends.is_empty() || !serials.iter().all(checked::is_serial) {
            return Err(D::Error::custom(SERIALS_RULE));
        }
        if let Some(serial) = checked::first_repeated(serials.iter()) {
            return Err(D::Error::custom(format!(
                "serials: {serial:?} is listed twice; list each serial once"
            )));
        }
        Ok(serials)
    }
}

/// What a `lot.serials` body's list must be, the schema's words.
const SERIALS_RULE: &str = "must be a list of 1-1000 serials, each 1-64 of [A-Za-z0-9._-]";

/// Reads a list of strings into a `Serials`, refusing it at its 1,001st item rather than
/// holding a list of any length.
struct SerialsVisitor;

impl<'de> serde::de::Visitor<'de> for SerialsVisitor {
    type Value = Serials;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of 1-1000 serials")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Serials, A::Error> {
        use serde::de::Error;
        let mut serials = Serials {
            text: String::new(),
            ends: Vec::with_capacity(seq.size_hint().unwrap_or(0).min(checked::MAX_LIST_ITEMS)),
        };
        while seq.next_element_seed(AppendSerial(&mut serials))?.is_some() {
            if serials.ends.len() > checked::MAX_LIST_ITEMS {
                return Err(A::Error::custom(SERIALS_RULE));
            }
        }
        Ok(serials)
    }
}

/// One serial, appended to the list's text: a string borrowed from the input or handed
/// over by the deserializer, copied once.
struct AppendSerial<'a>(&'a mut Serials);

impl<'de> serde::de::DeserializeSeed<'de> for AppendSerial<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for AppendSerial<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a serial number (a string)")
    }

    fn visit_str<E: serde::de::Error>(self, serial: &str) -> Result<(), E> {
        self.0.text.push_str(serial);
        let end = u32::try_from(self.0.text.len())
            .map_err(|_| E::custom("the serials' text is over 4 GiB"))?;
        self.0.ends.push(end);
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    #[serde(deserialize_with = "checked::id")]
    pub lot_id: String,
    #[serde(deserialize_with = "checked::id")]
    pub facility_id: String,
    #[serde(deserialize_with = "checked::positive")]
    pub quantity: u64,
    #[serde(deserialize_with = "checked::date")]
    pub date: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LotTransfer {
    #[serde(deserialize_with = "checked::id")]
    pub lot_id: String,
    #[serde(deserialize_with = "checked::positive")]
    pub quantity: u64,
    #[serde(default, deserialize_with = "checked::opt_id")]
    pub from_facility: Option<String>,
    #[serde(default, deserialize_with = "checked::opt_id")]
    pub to_org: Option<String>,
    #[serde(default, deserialize_with = "checked::opt_id")]
    pub to_facility: Option<String>,
    #[serde(deserialize_with = "checked::amount")]
    pub price_minor: u64,
    #[serde(deserialize_with = "checked::currency")]
    pub currency: String,
    #[serde(deserialize_with = "checked::date")]
    pub date: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(deserialize_with = "checked::percent")]
    pub min_utilization_pct: u8,
    #[serde(deserialize_with = "checked::date")]
    pub by: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsidyGrant {
    #[serde(deserialize_with = "checked::id")]
    pub subsidy_id: String,
    #[serde(deserialize_with = "checked::id")]
    pub facility_id: String,
    #[serde(deserialize_with = "checked::id")]
    pub recipient_org: String,
    #[serde(deserialize_with = "checked::text")]
    pub program: String,
    pub purpose: Purpose,
    #[serde(deserialize_with = "checked::positive")]
    pub amount_minor: u64,
    #[serde(deserialize_with = "checked::currency")]
    pub currency: String,
    #[serde(deserialize_with = "checked::date")]
    pub date: String,
    #[serde(default, deserialize_with = "checked::present")]
    pub condition: Option<Condition>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsidyDisburse {
    #[serde(deserialize_with = "checked::id")]
    pub subsidy_id: String,
    #[serde(deserialize_with = "checked::positive")]
    pub amount_minor: u64,
    #[serde(deserialize_with = "checked::currency")]
    pub currency: String,
    #[serde(deserialize_with = "checked::date")]
    pub date: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerReport {
    #[serde(deserialize_with = "checked::id")]
    pub facility_id: String,
    #[serde(deserialize_with = "checked::month")]
    pub period: String,
    #[serde(deserialize_with = "checked::amount")]
    pub consumed_kwh: u64,
    #[serde(deserialize_with = "checked::amount")]
    pub it_kwh: u64,
    #[serde(deserialize_with = "checked::amount")]
    pub green_kwh: u64,
    #[serde(deserialize_with = "checked::amount")]
    pub resold_kwh: u64,
    #[serde(deserialize_with = "checked::amount")]
    pub resale_revenue_minor: u64,
    #[serde(deserialize_with = "checked::currency")]
    pub currency: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterReading {
    #[serde(deserialize_with = "checked::id")]
    pub facility_id: String,
    #[serde(deserialize_with = "checked::month")]
    pub period: String,
    #[serde(deserialize_with = "checked::amount")]
    pub consumed_kwh: u64,
    #[serde(deserialize_with = "checked::amount")]
    pub resold_kwh: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OccupancyReport {
    #[serde(deserialize_with = "checked::id")]
    pub facility_id: String,
    #[serde(deserialize_with = "checked::month")]
    pub period: String,
    #[serde(deserialize_with = "checked::amount")]
    pub gpus_installed: u64,
    #[serde(deserialize_with = "checked::amount")]
    pub gpu_hours_available: u64,
    #[serde(deserialize_with = "checked::amount")]
    pub gpu_hours_sold: u64,
    #[serde(deserialize_with = "checked::amount")]
    pub gpu_hours_voucher: u64,
    #[serde(deserialize_with = "checked::amount")]
    pub tenants: u64,
    #[serde(deserialize_with = "checked::amount")]
    pub revenue_minor: u64,
    #[serde(deserialize_with = "checked::currency")]
    pub currency: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectionReport {
    #[serde(deserialize_with = "checked::id")]
    pub facility_id: String,
    #[serde(deserialize_with = "checked::date")]
    pub date: String,
    #[serde(deserialize_with = "checked::amount")]
    pub gpus_counted: u64,
    #[serde(deserialize_with = "checked::amount")]
    pub gpus_powered: u64,
    pub observed_status: Status,
    #[serde(default, deserialize_with = "checked::opt_hex64")]
    pub document_b3: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingResponse {
    #[serde(deserialize_with = "checked::hex32")]
    pub finding_id: String,
    #[serde(deserialize_with = "checked::long_text")]
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingResolve {
    #[serde(deserialize_with = "checked::hex32")]
    pub finding_id: String,
    pub outcome: Outcome,
    #[serde(deserialize_with = "checked::long_text")]
    pub text: String,
}

#[cfg(test)]
// The cases are built from the schema files' own bounds and lengths (at most 2^53-1 and
// 4,000), one step past each: no sum or difference here comes near overflowing.
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::schema;

    /// `(accepted, refused)`: values a pattern of `schemas/body/` accepts, and values it
    /// refuses. Free text (`FREE_TEXT_PATTERN`) is `free_text_values`, with its lengths.
    fn pattern_values(pattern: &str) -> (Vec<Value>, Vec<Value>) {
        let strings = |v: &[String]| v.iter().map(|s| Value::from(s.as_str())).collect();
        let (accepted, refused): (Vec<String>, Vec<String>) = match pattern {
            "^[a-z0-9][a-z0-9._-]{0,63}$" => (
                vec!["a".into(), "0.a_b-c".into(), "a".repeat(64)],
                vec![
                    "".into(),
                    "A".into(),
                    "-a".into(),
                    "a b".into(),
                    "a".repeat(65),
                ],
            ),
            "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$" => (
                vec![
                    "1970-01-01".into(),
                    "2025-02-30".into(),
                    "9999-12-31".into(),
                ],
                [
                    "2025-13-01",
                    "2025-00-01",
                    "2025-01-32",
                    "2025-01-00",
                    "2025-1-01",
                    "2025-01-01T00:00:00Z",
                    "",
                ]
                .map(String::from)
                .to_vec(),
            ),
            "^[0-9]{4}-(0[1-9]|1[0-2])$" => (
                vec!["2025-01".into(), "2025-12".into()],
                ["2025-13", "2025-00", "2025-1", "2025-01-01", ""]
                    .map(String::from)
                    .to_vec(),
            ),
            "^[A-Z]{3}$" => (
                vec!["CNY".into()],
                ["cny", "CN", "CNYY", "C1Y", ""].map(String::from).to_vec(),
            ),
            "^[0-9a-f]{64}$" | "^[0-9a-f]{32}$" => {
                let n = if pattern.contains("64") { 64 } else { 32 };
                (
                    vec!["0".repeat(n), "af".repeat(n / 2)],
                    vec![
                        "A".repeat(n),
                        "0".repeat(n - 1),
                        "0".repeat(n + 1),
                        "g".repeat(n),
                    ],
                )
            }
            "^[A-Za-z0-9._/-]{1,64}$" => (
                vec!["A/b.c-d_e".into(), "a".repeat(64)],
                vec!["".into(), "a b".into(), "a:b".into(), "a".repeat(65)],
            ),
            "^[A-Za-z0-9._-]{1,64}$" => (
                vec!["SN-1.a_B".into(), "a".repeat(64)],
                vec!["".into(), "a/b".into(), "a".repeat(65)],
            ),
            "^[A-Za-z0-9._/:-]{1,255}$" => (
                vec!["dcledger.example/x:1".into(), "a".repeat(255)],
                vec!["".into(), "a b".into(), "a".repeat(256)],
            ),
            other => panic!("pattern {other:?} is new: add the values it accepts and refuses"),
        };
        (strings(&accepted), strings(&refused))
    }

    /// Free text of at most `max` characters: the edges of its length and its characters.
    fn free_text_values(max: usize) -> (Vec<Value>, Vec<Value>) {
        let accepted = [
            "x".to_string(),
            "x".repeat(max),
            "中".repeat(max),
            "emoji 🚀 \u{200e}".into(),
        ];
        let refused = [
            "".to_string(),
            "x".repeat(max + 1),
            "中".repeat(max + 1),
            "a\u{7}b".into(),
            "\u{9f}".into(),
            "a\u{202e}b".into(),
            "\u{2069}".into(),
            "tab\there".into(),
        ];
        (
            accepted.map(Value::from).to_vec(),
            refused.map(Value::from).to_vec(),
        )
    }

    /// Fails on a keyword of `schema` outside `known`: the cases below would not break it.
    fn only_keywords(schema: &Value, known: &[&str]) {
        for keyword in schema.as_object().unwrap().keys() {
            assert!(
                known.contains(&keyword.as_str()),
                "keyword {keyword:?} is new: generate its cases"
            );
        }
    }

    /// What a property schema accepts and refuses, each value a case of one constraint
    /// (or of the type) broken alone. Fails on a keyword it does not know.
    fn property_values(schema: &Value) -> (Vec<Value>, Vec<Value>) {
        let known = [
            "type",
            "description",
            "pattern",
            "minLength",
            "maxLength",
            "minimum",
            "maximum",
            "enum",
            "items",
            "minItems",
            "maxItems",
            "uniqueItems",
            "properties",
            "required",
            "additionalProperties",
        ];
        only_keywords(schema, &known);
        let int = |key: &str| schema.get(key).and_then(Value::as_i64);
        let (mut accepted, mut refused) = (Vec::new(), Vec::new());
        match schema["type"].as_str().unwrap() {
            "string" => {
                refused.extend([json!(1), json!(null), json!(true), json!([]), json!({})]);
                if let Some(members) = schema.get("enum").and_then(Value::as_array) {
                    accepted.extend(members.iter().cloned());
                    let first = members[0].as_str().unwrap();
                    refused.extend([
                        json!("zzz"),
                        json!(first.to_uppercase()),
                        json!(format!("{first} ")),
                    ]);
                } else {
                    let pattern = schema["pattern"].as_str().unwrap();
                    let (a, r) = if pattern == schema::FREE_TEXT_PATTERN {
                        assert_eq!(int("minLength"), Some(1));
                        free_text_values(usize::try_from(int("maxLength").unwrap()).unwrap())
                    } else {
                        assert!(
                            schema.get("maxLength").is_none(),
                            "lengths without free text"
                        );
                        pattern_values(pattern)
                    };
                    accepted.extend(a);
                    refused.extend(r);
                }
            }
            "integer" => {
                let (min, max) = (int("minimum").unwrap(), int("maximum").unwrap());
                accepted.extend([json!(min), json!(max)]);
                refused.extend([
                    json!(min - 1),
                    json!(max + 1),
                    json!("1"),
                    json!(null),
                    json!(true),
                    json!(1.5),
                ]);
            }
            "boolean" => {
                accepted.extend([json!(true), json!(false)]);
                refused.extend([json!("true"), json!(1), json!(null)]);
            }
            "array" => {
                refused.extend([json!("x"), json!({}), json!(null)]);
                let items = &schema["items"];
                let (item_ok, item_bad) = property_values(items);
                let (min, max) = (int("minItems").unwrap(), int("maxItems").unwrap());
                assert_eq!(min, 1);
                refused.push(json!([]));
                accepted.extend(item_ok.iter().map(|v| json!([v])));
                refused.extend(item_bad.iter().map(|v| json!([v])));
                // The most items, all different: an enum's members, or generated names.
                let most: Vec<Value> = match items.get("enum").and_then(Value::as_array) {
                    Some(members) => members.clone(),
                    None => (0..max).map(|i| json!(format!("a{i}"))).collect(),
                };
                assert_eq!(most.len(), usize::try_from(max).unwrap());
                accepted.push(Value::from(most.clone()));
                // One more: a new name where there are names; an enum's members with
                // one repeated (no list of different members is longer), refused for it.
                let mut over = most.clone();
                over.push(match items.get("enum") {
                    Some(_) => most[0].clone(),
                    None => json!(format!("a{max}")),
                });
                refused.push(Value::from(over));
                if schema.get("uniqueItems") == Some(&json!(true)) {
                    refused.push(json!([most[0], most[0]]));
                }
            }
            "object" => {
                refused.extend([json!("x"), json!([]), json!(null)]);
                let base = valid_object(schema);
                accepted.push(base.clone());
                refused.extend(
                    object_cases(schema, &base)
                        .into_iter()
                        .filter(|(_, ok)| !ok)
                        .map(|(v, _)| v),
                );
            }
            other => panic!("type {other:?} is new: generate its cases"),
        }
        (accepted, refused)
    }

    /// An object with every property of `schema`, each its first accepted value.
    fn valid_object(schema: &Value) -> Value {
        let properties = schema["properties"].as_object().unwrap();
        Value::Object(
            properties
                .iter()
                .map(|(name, p)| (name.clone(), property_values(p).0[0].clone()))
                .collect(),
        )
    }

    /// Whether `body` meets the `oneOf` of `schema`, if it has one: exactly one branch's
    /// `required` fields all present.
    fn one_of_holds(schema: &Value, body: &Value) -> bool {
        let Some(branches) = schema.get("oneOf").and_then(Value::as_array) else {
            return true;
        };
        let met = branches.iter().filter(|branch| {
            let known = ["title", "required"];
            assert!(
                branch
                    .as_object()
                    .unwrap()
                    .keys()
                    .all(|k| known.contains(&k.as_str())),
                "a new kind of oneOf"
            );
            branch["required"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| body.get(f.as_str().unwrap()).is_some())
        });
        met.count() == 1
    }

    /// `(object, whether the schema accepts it)` for `base` with each property's every
    /// value, without each property, and with one property too many; the `oneOf` judged
    /// as the schema does.
    fn object_cases(schema: &Value, base: &Value) -> Vec<(Value, bool)> {
        let known = [
            "$schema",
            "$id",
            "title",
            "description",
            "type",
            "required",
            "properties",
            "additionalProperties",
            "oneOf",
        ];
        only_keywords(schema, &known);
        assert_eq!(schema["additionalProperties"], json!(false));
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map_or(vec![], |r| r.iter().map(|f| f.as_str().unwrap()).collect());
        let with = |name: &str, value: Option<Value>| {
            let mut body = base.clone();
            let map = body.as_object_mut().unwrap();
            match value {
                Some(v) => map.insert(name.to_string(), v),
                None => map.remove(name),
            };
            body
        };
        let mut cases = Vec::new();
        for (name, property) in schema["properties"].as_object().unwrap() {
            let (accepted, refused) = property_values(property);
            cases.extend(accepted.into_iter().map(|v| (with(name, Some(v)), true)));
            cases.extend(refused.into_iter().map(|v| (with(name, Some(v)), false)));
            cases.push((with(name, None), !required.contains(&name.as_str())));
        }
        cases.push((with("unexpected", Some(json!(1))), false));
        cases
            .into_iter()
            .map(|(body, ok)| {
                let ok = ok && one_of_holds(schema, &body);
                (body, ok)
            })
            .collect()
    }

    /// The types refuse what the schemas refuse, and accept what they accept: every
    /// constraint of every body schema broken alone, from the schema files themselves,
    /// around each kind's example body (`schemas/examples/`). Both ways into a type are
    /// held to it: from a JSON tree (ingest) and from the text (a trusted replay).
    /// Numbers with a fraction are left out: the encoding rules refuse them before any
    /// schema (PROTOCOL §2), and JSON Schema counts `1.0` an integer where no type does.
    #[test]
    fn the_types_accept_and_refuse_what_the_schemas_do() {
        let mut checked = 0;
        for &kind in Kind::ALL {
            let dir = env!("CARGO_MANIFEST_DIR");
            let example: Value = serde_json::from_str(
                &std::fs::read_to_string(format!("{dir}/schemas/examples/{kind}.json")).unwrap(),
            )
            .unwrap();
            let example = example
                .get("entry")
                .and_then(|e| e.get("body"))
                .unwrap_or(&example)
                .clone();
            let schema_doc: Value = serde_json::from_str(
                &std::fs::read_to_string(format!("{dir}/schemas/body/{kind}.schema.json")).unwrap(),
            )
            .unwrap();
            let mut cases = vec![(example.clone(), true)];
            cases.extend(object_cases(&schema_doc, &example));
            if schema_doc.get("oneOf").is_some() {
                // Every branch's fields at once: more than one branch holds.
                let mut all = example.clone();
                for (name, property) in schema_doc["properties"].as_object().unwrap() {
                    all.as_object_mut()
                        .unwrap()
                        .entry(name.clone())
                        .or_insert_with(|| property_values(property).0[0].clone());
                }
                cases.push((all, false));
            }
            for (body, expected) in cases {
                let schema_accepts = schema::body_errors(kind, &body).is_empty();
                let tree_accepts = Body::parse(kind, body.clone()).is_ok();
                let text_accepts = Body::from_json(kind, &body.to_string()).is_ok();
                assert_eq!(schema_accepts, expected, "{kind}: the schema, {body}");
                assert_eq!(
                    tree_accepts, expected,
                    "{kind}: the type from a tree, {body}"
                );
                assert_eq!(text_accepts, expected, "{kind}: the type from text, {body}");
                checked += 1;
            }
        }
        assert!(checked > 1000, "only {checked} cases");
    }

    /// The derived store keeps bodies as postcard, which reads them as plain values
    /// (`checked` holds JSON to the schemas' constraints) with its own `Option`s.
    #[test]
    fn the_stored_form_reads_back_whole_with_its_options() {
        use crate::store::derived::{decode, encode};
        let permit = |limit_kw, document_b3| PermitIssue {
            permit_id: "p-1".into(),
            facility_id: "f-1".into(),
            kind: PermitKind::PowerSale,
            valid_from: "2025-01-01".into(),
            valid_until: "2026-01-01".into(),
            limit_kw,
            document_b3,
        };
        for p in [permit(None, None), permit(Some(5), Some("ab".repeat(32)))] {
            assert_eq!(decode::<PermitIssue>(b"k", &encode(&p)).unwrap(), p);
        }
        let grant = |condition| SubsidyGrant {
            subsidy_id: "s-1".into(),
            facility_id: "f-1".into(),
            recipient_org: "o-1".into(),
            program: "a programme".into(),
            purpose: Purpose::ComputeVoucher,
            amount_minor: 1,
            currency: "CNY".into(),
            date: "2025-01-01".into(),
            condition,
        };
        let condition = Condition {
            min_utilization_pct: 60,
            by: "2026-01-01".into(),
        };
        for g in [grant(None), grant(Some(condition))] {
            assert_eq!(decode::<SubsidyGrant>(b"k", &encode(&g)).unwrap(), g);
        }
    }

    /// Serials read either way into a type come back as listed, in order.
    #[test]
    fn serials_read_back_as_listed() {
        let listed = ["A1", "B22", "C-333.x", "d_4"];
        let body = serde_json::json!({"lot_id": "lot-1", "serials": listed});
        for read in [
            Body::parse(Kind::LotSerials, body.clone()).unwrap(),
            Body::from_json(Kind::LotSerials, &body.to_string()).unwrap(),
        ] {
            let Body::LotSerials(lot) = read else {
                unreachable!("a lot.serials body")
            };
            assert_eq!(lot.serials.to_strs(), listed);
        }
    }

    /// `uniqueItems`, which no example body breaks: a serial listed twice fails the
    /// schema and both ways into the type.
    #[test]
    fn a_serial_listed_twice_fails_the_schema_and_the_type() {
        let body = serde_json::json!({"lot_id": "lot-1", "serials": ["A1", "B2", "A1"]});
        assert!(!schema::body_errors(Kind::LotSerials, &body).is_empty());
        let refused = Body::parse(Kind::LotSerials, body.clone()).unwrap_err();
        assert!(
            refused.to_string().contains("\"A1\" is listed twice"),
            "{refused}"
        );
        assert!(Body::from_json(Kind::LotSerials, &body.to_string()).is_err());
        let once = serde_json::json!({"lot_id": "lot-1", "serials": ["A1", "B2", "a1"]});
        assert!(schema::body_errors(Kind::LotSerials, &once).is_empty());
        assert!(Body::parse(Kind::LotSerials, once).is_ok());
    }
}
