//! The record bodies of PROTOCOL §7, typed. `prepare` checks a body against its schema and
//! the field rules, then turns it into a `Body` once; admission, the projections, the
//! audit and the reports use that value and never parse JSON again. Every struct refuses
//! fields its schema does not name, as the schemas do (`additionalProperties: false`).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

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
            Kind::LotTransfer => Body::LotTransfer(Deserialize::deserialize(d)?),
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
    pub origin: String,
    pub name: String,
    pub checkpoint_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgRegister {
    pub org_id: String,
    pub name: String,
    /// Role names; the registry refuses one it does not know by its index.
    pub roles: Vec<String>,
    pub province: Option<String>,
    pub registration_no: Option<String>,
    pub parent_org: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyGrant {
    pub org_id: String,
    pub public_key: String,
    pub label: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRevoke {
    pub public_key: String,
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
    pub facility_id: String,
    pub name: String,
    pub province: String,
    pub city: String,
    pub lat_e6: i64,
    pub lon_e6: i64,
    pub planned_it_kw: u64,
    pub planned_gpus: u64,
    pub land_parcel: String,
    pub announced: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacilityStatus {
    pub facility_id: String,
    pub status: Status,
    pub effective: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacilityTransfer {
    pub facility_id: String,
    pub to_org: String,
    pub price_minor: u64,
    pub currency: String,
    pub date: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermitIssue {
    pub permit_id: String,
    pub facility_id: String,
    pub kind: PermitKind,
    pub valid_from: String,
    pub valid_until: String,
    pub limit_kw: Option<u64>,
    pub document_b3: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermitRevoke {
    pub permit_id: String,
    pub effective: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoanIssue {
    pub loan_id: String,
    pub facility_id: String,
    pub borrower_org: String,
    pub amount_minor: u64,
    pub currency: String,
    pub state_backed: bool,
    pub date: String,
    pub collateral: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Procurement {
    pub lot_id: String,
    pub facility_id: String,
    pub gpu_model: String,
    pub quantity: u64,
    pub unit_price_minor: u64,
    pub currency: String,
    pub supplier: String,
    pub date: String,
    pub invoice_b3: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LotSerials {
    pub lot_id: String,
    pub serials: Serials,
}

/// The serials one `lot.serials` entry lists, each once (the schema's `uniqueItems`): so
/// admission takes each as a serial of its own, and a trusted replay, which reads leaves
/// without their schema, still holds to it. Checked here, where bodies are parsed on
/// every core, rather than on the one thread that admits them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Serials(Vec<String>);

impl Serials {
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Serials {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Serials, D::Error> {
        let serials = Vec::<String>::deserialize(d)?;
        let mut sorted: Vec<&str> = serials.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(serde::de::Error::custom(format!(
                "serials: {:?} is listed twice; list each serial once",
                pair[0]
            )));
        }
        Ok(Serials(serials))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    pub lot_id: String,
    pub facility_id: String,
    pub quantity: u64,
    pub date: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LotTransfer {
    pub lot_id: String,
    pub quantity: u64,
    pub from_facility: Option<String>,
    pub to_org: Option<String>,
    pub to_facility: Option<String>,
    pub price_minor: u64,
    pub currency: String,
    pub date: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub min_utilization_pct: u8,
    pub by: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsidyGrant {
    pub subsidy_id: String,
    pub facility_id: String,
    pub recipient_org: String,
    pub program: String,
    pub purpose: Purpose,
    pub amount_minor: u64,
    pub currency: String,
    pub date: String,
    pub condition: Option<Condition>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsidyDisburse {
    pub subsidy_id: String,
    pub amount_minor: u64,
    pub currency: String,
    pub date: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerReport {
    pub facility_id: String,
    pub period: String,
    pub consumed_kwh: u64,
    pub it_kwh: u64,
    pub green_kwh: u64,
    pub resold_kwh: u64,
    pub resale_revenue_minor: u64,
    pub currency: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterReading {
    pub facility_id: String,
    pub period: String,
    pub consumed_kwh: u64,
    pub resold_kwh: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OccupancyReport {
    pub facility_id: String,
    pub period: String,
    pub gpus_installed: u64,
    pub gpu_hours_available: u64,
    pub gpu_hours_sold: u64,
    pub gpu_hours_voucher: u64,
    pub tenants: u64,
    pub revenue_minor: u64,
    pub currency: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectionReport {
    pub facility_id: String,
    pub date: String,
    pub gpus_counted: u64,
    pub gpus_powered: u64,
    pub observed_status: Status,
    pub document_b3: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingResponse {
    pub finding_id: String,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingResolve {
    pub finding_id: String,
    pub outcome: Outcome,
    pub text: String,
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::schema;

    /// Each kind's example body (`schemas/examples/`): it passes its schema and types;
    /// with a field the schema does not name, or without a required one, it fails both.
    #[test]
    fn the_types_accept_and_refuse_what_the_schemas_do() {
        for &kind in Kind::ALL {
            let path = format!(
                "{}/schemas/examples/{kind}.json",
                env!("CARGO_MANIFEST_DIR")
            );
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let example: Value = serde_json::from_str(&text).unwrap();
            let body = example
                .get("entry")
                .and_then(|e| e.get("body"))
                .unwrap_or(&example)
                .clone();
            assert!(
                schema::body_errors(kind, &body).is_empty(),
                "{kind}: schema"
            );
            Body::parse(kind, body.clone()).unwrap_or_else(|e| panic!("{kind}: {e}"));

            let mut extra = body.clone();
            extra
                .as_object_mut()
                .unwrap()
                .insert("unexpected".into(), Value::from(1));
            assert!(
                !schema::body_errors(kind, &extra).is_empty(),
                "{kind}: schema, extra"
            );
            assert!(Body::parse(kind, extra).is_err(), "{kind}: type, extra");

            // A field the schema requires: both refuse its absence. Any other: the type
            // accepts whatever the schema does (the schemas' conditions between fields,
            // such as lot.transfer's destinations, stay the schema's to check).
            let schema_text = std::fs::read_to_string(format!(
                "{}/schemas/body/{kind}.schema.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            let schema_doc: Value = serde_json::from_str(&schema_text).unwrap();
            let required: Vec<&str> = schema_doc["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap())
                .collect();
            for field in body.as_object().unwrap().keys() {
                let mut without = body.clone();
                without.as_object_mut().unwrap().remove(field);
                let schema_refuses = !schema::body_errors(kind, &without).is_empty();
                let type_refuses = Body::parse(kind, without).is_err();
                if required.contains(&field.as_str()) {
                    assert!(schema_refuses && type_refuses, "{kind}: without {field}");
                } else if !schema_refuses {
                    assert!(!type_refuses, "{kind}: without optional {field}");
                }
            }
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
