//! The typed records the generator plans with, one variant per kind of PROTOCOL §7 it writes,
//! and their JSON bodies. Bodies are built only when signed, so a large world holds
//! compact records (serial numbers as ranges) rather than JSON trees.

use serde_json::{Map, Value, json};

use super::calendar::{Day, Instant, Month, fmt_day};
use crate::entry::Kind;

pub(crate) const CURRENCY: &str = "CNY";

/// GPU models of the reference price table (PROTOCOL §8.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Model {
    H100,
    H800,
    A100,
    H20,
    Ascend910B,
}

impl Model {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Model::H100 => "H100",
            Model::H800 => "H800",
            Model::A100 => "A100",
            Model::H20 => "H20",
            Model::Ascend910B => "Ascend-910B",
        }
    }

    /// Reference price per GPU in CNY (PROTOCOL §8.1), years outside 2023–2026 using the
    /// nearest year.
    pub(crate) fn reference_cny(self, year: i32) -> u64 {
        let row: [u64; 4] = match self {
            Model::H100 => [220_000, 200_000, 160_000, 130_000],
            Model::H800 => [200_000, 180_000, 140_000, 110_000],
            Model::A100 => [120_000, 100_000, 80_000, 60_000],
            Model::H20 => [110_000, 100_000, 90_000, 80_000],
            Model::Ascend910B => [120_000, 110_000, 100_000, 90_000],
        };
        row[(year.clamp(2023, 2026) - 2023) as usize]
    }

    /// Reference price in fen.
    pub(crate) fn reference_fen(self, year: i32) -> u64 {
        self.reference_cny(year) * 100
    }

    /// Market rent in fen per GPU-hour for a month: an 8×H100 server rents for 180,000
    /// CNY a month in 2023–2024 and 75,000 CNY from 2025 (PROTOCOL §8.1), i.e. 31.25 and
    /// about 13.02 CNY per GPU-hour over 720 hours; other models scale by their price
    /// ratio to the H100 in the same year.
    pub(crate) fn rent_fen_per_hour(self, year: i32) -> u64 {
        let server_month_cny: u64 = if year <= 2024 { 180_000 } else { 75_000 };
        let h100 = server_month_cny * 100 / (8 * 720);
        h100 * self.reference_cny(year) / Model::H100.reference_cny(year)
    }

    /// Watt-hours per GPU-hour at full load, server share included.
    pub(crate) fn busy_wh(self) -> u64 {
        match self {
            Model::H100 | Model::H800 => 950,
            Model::A100 | Model::Ascend910B => 780,
            Model::H20 => 720,
        }
    }

    /// Serial prefix: lots of one model share it, so serials stay unique by construction.
    pub(crate) fn serial_prefix(self) -> &'static str {
        match self {
            Model::H100 => "1652",
            Model::H800 => "1653",
            Model::A100 => "1564",
            Model::H20 => "1660",
            Model::Ascend910B => "HW910B",
        }
    }
}

/// The same enumerations ingest and the audit read.
pub(crate) use crate::domain::bodies::{PermitKind, Purpose, Status};

/// Serial numbers of one `lot.serials` entry.
#[derive(Clone, Debug)]
pub(crate) enum Serials {
    /// `prefix` followed by the 5-digit numbers `start .. start + count`.
    Range {
        prefix: String,
        start: u32,
        count: u32,
    },
    List(Vec<String>),
}

impl Serials {
    pub(crate) fn expand(&self) -> Vec<String> {
        match self {
            Serials::Range {
                prefix,
                start,
                count,
            } => (*start..start + count)
                .map(|n| format!("{prefix}{n:05}"))
                .collect(),
            Serials::List(items) => items.clone(),
        }
    }
}

/// One record, as the generator plans it.
#[derive(Clone, Debug)]
pub(crate) enum Body {
    OrgRegister {
        org_id: String,
        name: String,
        role: &'static str,
        province: Option<&'static str>,
        registration_no: String,
    },
    KeyGrant {
        org_id: String,
        public_key: String,
        label: String,
    },
    FacilityRegister {
        facility_id: String,
        name: String,
        province: &'static str,
        city: &'static str,
        lat_e6: i64,
        lon_e6: i64,
        planned_it_kw: u64,
        planned_gpus: u64,
        land_parcel: String,
        announced: Day,
    },
    FacilityStatus {
        facility_id: String,
        status: Status,
        effective: Day,
    },
    FacilityTransfer {
        facility_id: String,
        to_org: String,
        price_minor: u64,
        date: Day,
    },
    PermitIssue {
        permit_id: String,
        facility_id: String,
        kind: PermitKind,
        valid_from: Day,
        valid_until: Day,
        limit_kw: Option<u64>,
        document_b3: String,
    },
    PermitRevoke {
        permit_id: String,
        effective: Day,
        reason: &'static str,
    },
    LoanIssue {
        loan_id: String,
        facility_id: String,
        borrower_org: String,
        amount_minor: u64,
        state_backed: bool,
        date: Day,
        collateral: Vec<String>,
    },
    Procurement {
        lot_id: String,
        facility_id: String,
        model: Model,
        quantity: u64,
        unit_price_minor: u64,
        supplier: &'static str,
        date: Day,
        invoice_b3: String,
    },
    LotSerials {
        lot_id: String,
        serials: Serials,
    },
    Deployment {
        lot_id: String,
        facility_id: String,
        quantity: u64,
        date: Day,
    },
    LotTransfer {
        lot_id: String,
        quantity: u64,
        from_facility: Option<String>,
        to_org: String,
        price_minor: u64,
        date: Day,
    },
    SubsidyGrant {
        subsidy_id: String,
        facility_id: String,
        recipient_org: String,
        program: String,
        purpose: Purpose,
        amount_minor: u64,
        date: Day,
        condition: Option<(u64, Day)>,
    },
    SubsidyDisburse {
        subsidy_id: String,
        amount_minor: u64,
        date: Day,
    },
    PowerReport {
        facility_id: String,
        period: Month,
        consumed_kwh: u64,
        it_kwh: u64,
        green_kwh: u64,
        resold_kwh: u64,
        resale_revenue_minor: u64,
    },
    MeterReading {
        facility_id: String,
        period: Month,
        consumed_kwh: u64,
        resold_kwh: u64,
    },
    OccupancyReport {
        facility_id: String,
        period: Month,
        gpus_installed: u64,
        gpu_hours_available: u64,
        gpu_hours_sold: u64,
        gpu_hours_voucher: u64,
        tenants: u64,
        revenue_minor: u64,
    },
    InspectionReport {
        facility_id: String,
        date: Day,
        gpus_counted: u64,
        gpus_powered: u64,
        observed_status: Status,
        document_b3: String,
    },
}

impl Body {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Body::OrgRegister { .. } => Kind::OrgRegister,
            Body::KeyGrant { .. } => Kind::KeyGrant,
            Body::FacilityRegister { .. } => Kind::FacilityRegister,
            Body::FacilityStatus { .. } => Kind::FacilityStatus,
            Body::FacilityTransfer { .. } => Kind::FacilityTransfer,
            Body::PermitIssue { .. } => Kind::PermitIssue,
            Body::PermitRevoke { .. } => Kind::PermitRevoke,
            Body::LoanIssue { .. } => Kind::LoanIssue,
            Body::Procurement { .. } => Kind::Procurement,
            Body::LotSerials { .. } => Kind::LotSerials,
            Body::Deployment { .. } => Kind::Deployment,
            Body::LotTransfer { .. } => Kind::LotTransfer,
            Body::SubsidyGrant { .. } => Kind::SubsidyGrant,
            Body::SubsidyDisburse { .. } => Kind::SubsidyDisburse,
            Body::PowerReport { .. } => Kind::PowerReport,
            Body::MeterReading { .. } => Kind::MeterReading,
            Body::OccupancyReport { .. } => Kind::OccupancyReport,
            Body::InspectionReport { .. } => Kind::InspectionReport,
        }
    }

    /// The body exactly as PROTOCOL §7 spells it.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Body::OrgRegister {
                org_id,
                name,
                role,
                province,
                registration_no,
            } => {
                let mut m = Map::new();
                m.insert("org_id".into(), json!(org_id));
                m.insert("name".into(), json!(name));
                m.insert("roles".into(), json!([role]));
                if let Some(p) = province {
                    m.insert("province".into(), json!(p));
                }
                m.insert("registration_no".into(), json!(registration_no));
                Value::Object(m)
            }
            Body::KeyGrant {
                org_id,
                public_key,
                label,
            } => json!({"org_id": org_id, "public_key": public_key, "label": label}),
            Body::FacilityRegister {
                facility_id,
                name,
                province,
                city,
                lat_e6,
                lon_e6,
                planned_it_kw,
                planned_gpus,
                land_parcel,
                announced,
            } => json!({
                "facility_id": facility_id, "name": name, "province": province,
                "city": city, "lat_e6": lat_e6, "lon_e6": lon_e6,
                "planned_it_kw": planned_it_kw, "planned_gpus": planned_gpus,
                "land_parcel": land_parcel, "announced": fmt_day(*announced),
            }),
            Body::FacilityStatus {
                facility_id,
                status,
                effective,
            } => json!({"facility_id": facility_id, "status": status.as_str(),
                        "effective": fmt_day(*effective)}),
            Body::FacilityTransfer {
                facility_id,
                to_org,
                price_minor,
                date,
            } => json!({"facility_id": facility_id, "to_org": to_org,
                        "price_minor": price_minor, "currency": CURRENCY,
                        "date": fmt_day(*date)}),
            Body::PermitIssue {
                permit_id,
                facility_id,
                kind,
                valid_from,
                valid_until,
                limit_kw,
                document_b3,
            } => {
                let mut v = json!({"permit_id": permit_id, "facility_id": facility_id,
                                   "kind": kind.as_str(), "valid_from": fmt_day(*valid_from),
                                   "valid_until": fmt_day(*valid_until),
                                   "document_b3": document_b3});
                if let (Some(kw), Some(m)) = (limit_kw, v.as_object_mut()) {
                    m.insert("limit_kw".into(), json!(kw));
                }
                v
            }
            Body::PermitRevoke {
                permit_id,
                effective,
                reason,
            } => json!({"permit_id": permit_id, "effective": fmt_day(*effective),
                        "reason": reason}),
            Body::LoanIssue {
                loan_id,
                facility_id,
                borrower_org,
                amount_minor,
                state_backed,
                date,
                collateral,
            } => json!({"loan_id": loan_id, "facility_id": facility_id,
                        "borrower_org": borrower_org, "amount_minor": amount_minor,
                        "currency": CURRENCY, "state_backed": state_backed,
                        "date": fmt_day(*date), "collateral": collateral}),
            Body::Procurement {
                lot_id,
                facility_id,
                model,
                quantity,
                unit_price_minor,
                supplier,
                date,
                invoice_b3,
            } => json!({"lot_id": lot_id, "facility_id": facility_id,
                        "gpu_model": model.name(), "quantity": quantity,
                        "unit_price_minor": unit_price_minor, "currency": CURRENCY,
                        "supplier": supplier, "date": fmt_day(*date),
                        "invoice_b3": invoice_b3}),
            Body::LotSerials { lot_id, serials } => {
                json!({"lot_id": lot_id, "serials": serials.expand()})
            }
            Body::Deployment {
                lot_id,
                facility_id,
                quantity,
                date,
            } => json!({"lot_id": lot_id, "facility_id": facility_id,
                        "quantity": quantity, "date": fmt_day(*date)}),
            Body::LotTransfer {
                lot_id,
                quantity,
                from_facility,
                to_org,
                price_minor,
                date,
            } => {
                let mut m = Map::new();
                m.insert("lot_id".into(), json!(lot_id));
                m.insert("quantity".into(), json!(quantity));
                if let Some(f) = from_facility {
                    m.insert("from_facility".into(), json!(f));
                }
                m.insert("to_org".into(), json!(to_org));
                m.insert("price_minor".into(), json!(price_minor));
                m.insert("currency".into(), json!(CURRENCY));
                m.insert("date".into(), json!(fmt_day(*date)));
                Value::Object(m)
            }
            Body::SubsidyGrant {
                subsidy_id,
                facility_id,
                recipient_org,
                program,
                purpose,
                amount_minor,
                date,
                condition,
            } => {
                let mut v = json!({"subsidy_id": subsidy_id, "facility_id": facility_id,
                                   "recipient_org": recipient_org, "program": program,
                                   "purpose": purpose.as_str(), "amount_minor": amount_minor,
                                   "currency": CURRENCY, "date": fmt_day(*date)});
                if let (Some((pct, by)), Some(m)) = (condition, v.as_object_mut()) {
                    m.insert(
                        "condition".into(),
                        json!({"min_utilization_pct": pct, "by": fmt_day(*by)}),
                    );
                }
                v
            }
            Body::SubsidyDisburse {
                subsidy_id,
                amount_minor,
                date,
            } => json!({"subsidy_id": subsidy_id, "amount_minor": amount_minor,
                        "currency": CURRENCY, "date": fmt_day(*date)}),
            Body::PowerReport {
                facility_id,
                period,
                consumed_kwh,
                it_kwh,
                green_kwh,
                resold_kwh,
                resale_revenue_minor,
            } => json!({"facility_id": facility_id, "period": period.label(),
                        "consumed_kwh": consumed_kwh, "it_kwh": it_kwh,
                        "green_kwh": green_kwh, "resold_kwh": resold_kwh,
                        "resale_revenue_minor": resale_revenue_minor, "currency": CURRENCY}),
            Body::MeterReading {
                facility_id,
                period,
                consumed_kwh,
                resold_kwh,
            } => json!({"facility_id": facility_id, "period": period.label(),
                        "consumed_kwh": consumed_kwh, "resold_kwh": resold_kwh}),
            Body::OccupancyReport {
                facility_id,
                period,
                gpus_installed,
                gpu_hours_available,
                gpu_hours_sold,
                gpu_hours_voucher,
                tenants,
                revenue_minor,
            } => json!({"facility_id": facility_id, "period": period.label(),
                        "gpus_installed": gpus_installed,
                        "gpu_hours_available": gpu_hours_available,
                        "gpu_hours_sold": gpu_hours_sold,
                        "gpu_hours_voucher": gpu_hours_voucher, "tenants": tenants,
                        "revenue_minor": revenue_minor, "currency": CURRENCY}),
            Body::InspectionReport {
                facility_id,
                date,
                gpus_counted,
                gpus_powered,
                observed_status,
                document_b3,
            } => json!({"facility_id": facility_id, "date": fmt_day(*date),
                        "gpus_counted": gpus_counted, "gpus_powered": gpus_powered,
                        "observed_status": observed_status.as_str(),
                        "document_b3": document_b3}),
        }
    }
}

/// A record with the instant it is signed and the party (index into the party list)
/// that signs it.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub ts: Instant,
    pub signer: usize,
    pub body: Body,
}

/// BLAKE3 hex of a name: stands in for the digest of a scanned document or invoice.
pub(crate) fn document_digest(parts: &[&str]) -> String {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(b"\n");
    }
    h.finalize().to_hex().to_string()
}
