//! Typed views of the record bodies of SPEC §7. Ingest has already validated each body
//! against its schema, so deserialising is a change of representation, not a check.

use serde::{Deserialize, Serialize};

/// The facility lifecycle states of SPEC §7.
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

#[derive(Deserialize)]
pub struct FacilityStatus {
    pub facility_id: String,
    pub status: Status,
    pub effective: String,
}

#[derive(Deserialize)]
pub struct FacilityTransfer {
    pub facility_id: String,
    pub to_org: String,
    pub price_minor: u64,
    pub currency: String,
    pub date: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermitIssue {
    pub permit_id: String,
    pub facility_id: String,
    pub kind: PermitKind,
    pub valid_from: String,
    pub valid_until: String,
    pub limit_kw: Option<u64>,
    pub document_b3: Option<String>,
}

#[derive(Deserialize)]
pub struct PermitRevoke {
    pub permit_id: String,
    pub effective: String,
    pub reason: String,
}

#[derive(Deserialize)]
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

#[derive(Deserialize)]
pub struct LotSerials {
    pub lot_id: String,
    pub serials: Vec<String>,
}

#[derive(Deserialize)]
pub struct Deployment {
    pub lot_id: String,
    pub facility_id: String,
    pub quantity: u64,
    pub date: String,
}

#[derive(Deserialize)]
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
pub struct Condition {
    pub min_utilization_pct: u8,
    pub by: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Deserialize)]
pub struct SubsidyDisburse {
    pub subsidy_id: String,
    pub amount_minor: u64,
    pub currency: String,
    pub date: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
pub struct MeterReading {
    pub facility_id: String,
    pub period: String,
    pub consumed_kwh: u64,
    pub resold_kwh: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Deserialize)]
pub struct InspectionReport {
    pub facility_id: String,
    pub date: String,
    pub gpus_counted: u64,
    pub gpus_powered: u64,
    pub observed_status: Status,
    pub document_b3: Option<String>,
}

#[derive(Deserialize)]
pub struct FindingResponse {
    pub finding_id: String,
    pub text: String,
}

#[derive(Deserialize)]
pub struct FindingResolve {
    pub finding_id: String,
    pub outcome: Outcome,
    pub text: String,
}
