//! The facility list and the facility report (PROTOCOL §9): a facility's state as of a month,
//! its monthly series and its findings, every fact with the entry it came from. Typed,
//! so that the JSON answer and the facility's page are written from one value.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use super::Basis;
use crate::audit::facts::day;
use crate::audit::{FacilityFacts, Finding};
use crate::dates::Month;
use crate::domain::bodies::{FacilityRegister, PermitKind, Purpose, Status};
use crate::domain::records::{Inspection, LotMoveKind, OperatorSpell, StatusEvent};
use crate::exact::{Int, total};

/// The months a facility's GPU timeline draws at most: ten years back from as_of.
pub const MAX_TIMELINE_MONTHS: i32 = 120;

/// A line of `GET /v1/facilities`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FacilitySummary<'a> {
    pub facility_id: &'a str,
    pub name: &'a str,
    pub province: &'a str,
    pub city: &'a str,
    pub operator: &'a str,
    pub status: Status,
    pub gpus_deployed: i128,
    pub registered_at: u64,
}

impl<'a> FacilitySummary<'a> {
    pub fn of(f: &'a FacilityFacts, as_of: Month) -> FacilitySummary<'a> {
        let rec = &f.records.facility;
        FacilitySummary {
            facility_id: &rec.registered.facility_id,
            name: &rec.registered.name,
            province: &rec.registered.province,
            city: &rec.registered.city,
            operator: &rec.operator,
            status: f.status_at(as_of.last_day()).0,
            gpus_deployed: f.gpus_on(as_of.last_day()),
            registered_at: rec.registered_at,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Registered<'a> {
    #[serde(flatten)]
    pub body: &'a FacilityRegister,
    pub registered_at: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Revoked<'a> {
    pub effective: &'a str,
    pub reason: &'a str,
    pub index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Permit<'a> {
    pub permit_id: &'a str,
    pub kind: PermitKind,
    pub valid_from: &'a str,
    pub valid_until: &'a str,
    pub limit_kw: Option<u64>,
    pub issuer_org: &'a str,
    pub index: u64,
    pub revocations: Vec<Revoked<'a>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Move<'a> {
    pub quantity: u64,
    pub date: &'a str,
    pub index: u64,
}

/// A lot procured for the facility.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lot<'a> {
    pub lot_id: &'a str,
    pub gpu_model: &'a str,
    pub quantity: u64,
    pub unit_price_minor: u64,
    pub currency: &'a str,
    pub date: &'a str,
    pub undeployed: u64,
    pub deployed: Int,
    pub transferred: Int,
    pub serials: u64,
    pub index: u64,
    pub moves: Vec<Move<'a>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ModelCounts {
    pub procured: Int,
    pub deployed: Int,
    pub transferred: Int,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Condition<'a> {
    pub min_utilization_pct: u8,
    pub by: &'a str,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Disbursed<'a> {
    pub amount_minor: u64,
    pub currency: &'a str,
    pub date: &'a str,
    pub index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Subsidy<'a> {
    pub subsidy_id: &'a str,
    pub purpose: Purpose,
    pub program: &'a str,
    pub grantor_org: &'a str,
    pub recipient_org: &'a str,
    pub amount_minor: u64,
    pub currency: &'a str,
    pub date: &'a str,
    pub condition: Option<Condition<'a>>,
    /// Σ of the disbursements in the grant's currency.
    pub disbursed_minor: Int,
    pub disbursements: Vec<Disbursed<'a>>,
    pub index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pledged<'a> {
    pub item: &'a str,
    /// Whether the item named a lot when the loan was issued.
    pub lot: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Loan<'a> {
    pub loan_id: &'a str,
    pub lender_org: &'a str,
    pub borrower_org: &'a str,
    pub amount_minor: u64,
    pub currency: &'a str,
    pub state_backed: bool,
    pub date: &'a str,
    pub collateral: Vec<Pledged<'a>>,
    pub index: u64,
}

/// One month's reports and the ratios of PROTOCOL §9 over them, in basis points (rounded
/// down, `null` where the denominator is 0 or the report is missing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MonthFigures {
    pub period: String,
    pub gpu_hours_sold: Option<u64>,
    pub gpu_hours_voucher: Option<u64>,
    pub gpu_hours_available: Option<u64>,
    /// sold ÷ available.
    pub utilization_bp: Option<Int>,
    /// voucher ÷ sold.
    pub voucher_share_bp: Option<Int>,
    pub consumed_kwh: Option<u64>,
    pub it_kwh: Option<u64>,
    pub resold_kwh: Option<u64>,
    /// consumed ÷ IT energy (10,000 is a PUE of 1.0).
    pub pue_bp: Option<Int>,
    /// resold ÷ (consumed + resold).
    pub resold_share_bp: Option<Int>,
    pub power_report: Option<u64>,
    pub occupancy_report: Option<u64>,
    pub meter_reading: Option<u64>,
}

/// GPUs at the end of a month: procured for the facility so far, at the facility, and
/// counted by inspectors during the month (the last inspection's count).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GpuMonth {
    pub month: String,
    pub procured: Int,
    pub at_facility: i128,
    pub counted: Option<u64>,
    /// The inspection that counted them.
    pub inspection: Option<u64>,
}

/// `GET /v1/facilities/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FacilityReport<'a> {
    #[serde(flatten)]
    pub basis: Basis,
    pub facility: Registered<'a>,
    pub operator: &'a str,
    pub operators: &'a [OperatorSpell],
    pub status: Status,
    pub status_index: Option<u64>,
    pub statuses: &'a [StatusEvent],
    pub permits: Vec<Permit<'a>>,
    pub gpus: Vec<Lot<'a>>,
    pub gpus_by_model: BTreeMap<&'a str, ModelCounts>,
    pub gpus_at_facility: i128,
    pub subsidies: Vec<Subsidy<'a>>,
    pub loans: Vec<Loan<'a>>,
    pub inspections: &'a [Inspection],
    pub monthly: Vec<MonthFigures>,
    pub gpu_timeline: Vec<GpuMonth>,
    pub findings: Vec<Arc<Finding>>,
}

fn bp(part: u64, whole: u64) -> Option<Int> {
    Int::basis_points(&Int::from(part), &Int::from(whole))
}

/// The facility report as of `basis.as_of`, with the facility's findings.
pub fn report(
    f: &FacilityFacts,
    as_of: Month,
    basis: Basis,
    findings: Vec<Arc<Finding>>,
) -> FacilityReport<'_> {
    let rec = &f.records.facility;
    let end = as_of.last_day();
    let (status, status_index) = f.status_at(end);
    let mut by_model: BTreeMap<&str, ModelCounts> = BTreeMap::new();
    let gpus = f
        .records
        .lots
        .iter()
        .map(|lot| {
            let mut deployed = Int::zero();
            for (_, n) in &lot.deployed {
                deployed += *n;
            }
            let mut transferred = Int::zero();
            for m in &lot.moves {
                if matches!(
                    &m.kind,
                    LotMoveKind::Transfer {
                        to_org: Some(_),
                        ..
                    }
                ) {
                    transferred += m.quantity;
                }
            }
            let counts = by_model.entry(&lot.procured.gpu_model).or_default();
            counts.procured += lot.procured.quantity;
            counts.deployed += &deployed;
            counts.transferred += &transferred;
            Lot {
                lot_id: &lot.procured.lot_id,
                gpu_model: &lot.procured.gpu_model,
                quantity: lot.procured.quantity,
                unit_price_minor: lot.procured.unit_price_minor,
                currency: &lot.procured.currency,
                date: &lot.procured.date,
                undeployed: lot.undeployed,
                deployed,
                transferred,
                serials: lot.serials,
                index: lot.procured_at,
                moves: lot
                    .moves
                    .iter()
                    .map(|m| Move {
                        quantity: m.quantity,
                        date: &m.date,
                        index: m.index,
                    })
                    .collect(),
            }
        })
        .collect();
    FacilityReport {
        basis,
        facility: Registered {
            body: &rec.registered,
            registered_at: rec.registered_at,
        },
        operator: &rec.operator,
        operators: &rec.operators,
        status,
        status_index,
        statuses: &rec.statuses,
        permits: f
            .records
            .permits
            .iter()
            .map(|p| Permit {
                permit_id: &p.issued.permit_id,
                kind: p.issued.kind,
                valid_from: &p.issued.valid_from,
                valid_until: &p.issued.valid_until,
                limit_kw: p.issued.limit_kw,
                issuer_org: &p.issuer_org,
                index: p.issued_at,
                revocations: p
                    .revocations
                    .iter()
                    .map(|r| Revoked {
                        effective: &r.effective,
                        reason: &r.reason,
                        index: r.index,
                    })
                    .collect(),
            })
            .collect(),
        gpus,
        gpus_by_model: by_model,
        gpus_at_facility: f.gpus_on(end),
        subsidies: f
            .records
            .subsidies
            .iter()
            .map(|s| {
                let mut disbursed = Int::zero();
                for d in &s.disbursements {
                    if d.currency == s.granted.currency {
                        disbursed += d.amount_minor;
                    }
                }
                Subsidy {
                    subsidy_id: &s.granted.subsidy_id,
                    purpose: s.granted.purpose,
                    program: &s.granted.program,
                    grantor_org: &s.grantor_org,
                    recipient_org: &s.granted.recipient_org,
                    amount_minor: s.granted.amount_minor,
                    currency: &s.granted.currency,
                    date: &s.granted.date,
                    condition: s.granted.condition.as_ref().map(|c| Condition {
                        min_utilization_pct: c.min_utilization_pct,
                        by: &c.by,
                    }),
                    disbursed_minor: disbursed,
                    disbursements: s
                        .disbursements
                        .iter()
                        .map(|d| Disbursed {
                            amount_minor: d.amount_minor,
                            currency: &d.currency,
                            date: &d.date,
                            index: d.index,
                        })
                        .collect(),
                    index: s.granted_at,
                }
            })
            .collect(),
        loans: f
            .records
            .loans
            .iter()
            .map(|l| Loan {
                loan_id: &l.loan_id,
                lender_org: &l.lender_org,
                borrower_org: &l.borrower_org,
                amount_minor: l.amount_minor,
                currency: &l.currency,
                state_backed: l.state_backed,
                date: &l.date,
                collateral: l
                    .collateral
                    .iter()
                    .map(|c| Pledged {
                        item: &c.item,
                        lot: c.is_lot,
                    })
                    .collect(),
                index: l.issued_at,
            })
            .collect(),
        inspections: &rec.inspections,
        monthly: monthly(f, as_of),
        gpu_timeline: gpu_timeline(f, as_of),
        findings,
    }
}

/// Every month up to as_of with a report, and its figures.
fn monthly(f: &FacilityFacts, as_of: Month) -> Vec<MonthFigures> {
    let months: BTreeSet<Month> = f
        .power
        .keys()
        .chain(f.occupancy.keys())
        .chain(f.meter.keys())
        .copied()
        .filter(|m| *m <= as_of)
        .collect();
    months
        .into_iter()
        .map(|m| {
            let p = f.power.get(&m);
            let o = f.occupancy.get(&m);
            MonthFigures {
                period: m.to_string(),
                gpu_hours_sold: o.map(|o| o.body.gpu_hours_sold),
                gpu_hours_voucher: o.map(|o| o.body.gpu_hours_voucher),
                gpu_hours_available: o.map(|o| o.body.gpu_hours_available),
                utilization_bp: o
                    .and_then(|o| bp(o.body.gpu_hours_sold, o.body.gpu_hours_available)),
                voucher_share_bp: o
                    .and_then(|o| bp(o.body.gpu_hours_voucher, o.body.gpu_hours_sold)),
                consumed_kwh: p.map(|p| p.body.consumed_kwh),
                it_kwh: p.map(|p| p.body.it_kwh),
                resold_kwh: p.map(|p| p.body.resold_kwh),
                pue_bp: p.and_then(|p| bp(p.body.consumed_kwh, p.body.it_kwh)),
                resold_share_bp: p.and_then(|p| {
                    let offered = Int::from(total([p.body.consumed_kwh, p.body.resold_kwh]));
                    Int::basis_points(&Int::from(p.body.resold_kwh), &offered)
                }),
                power_report: p.map(|p| p.index),
                occupancy_report: o.map(|o| o.index),
                meter_reading: f.meter.get(&m).map(|r| r.index),
            }
        })
        .collect()
}

/// GPUs procured, at the facility and counted, month by month from the first month
/// anything was procured, moved or counted (at most `MAX_TIMELINE_MONTHS` back) to as_of.
fn gpu_timeline(f: &FacilityFacts, as_of: Month) -> Vec<GpuMonth> {
    let procured: Vec<(time::Date, u64)> = f
        .dated_lots()
        .map(|(lot, date, _)| (date, lot.procured.quantity))
        .collect();
    let inspections: Vec<(time::Date, &Inspection)> =
        f.dated_inspections().map(|(i, d)| (d, i)).collect();
    let first = procured
        .iter()
        .map(|(d, _)| *d)
        .chain(f.records.facility.gpu_moves.iter().map(|m| day(&m.date)))
        .chain(inspections.iter().map(|(d, _)| *d))
        .map(Month::of)
        .min();
    let Some(first) = first.filter(|m| *m <= as_of) else {
        return Vec::new();
    };
    let first = first.max(as_of.plus(1 - MAX_TIMELINE_MONTHS));
    let mut out = Vec::new();
    let mut m = first;
    while m <= as_of {
        let (start, end) = (m.first_day(), m.last_day());
        let mut total = Int::zero();
        for (d, q) in &procured {
            if *d <= end {
                total += *q;
            }
        }
        // The last inspection of the month (by date, then ledger order).
        let counted = inspections
            .iter()
            .filter(|(d, _)| (start..=end).contains(d))
            .max_by_key(|(d, i)| (*d, i.index));
        out.push(GpuMonth {
            month: m.to_string(),
            procured: total,
            at_facility: f.gpus_on(end),
            counted: counted.map(|(_, i)| i.gpus_counted),
            inspection: counted.map(|(_, i)| i.index),
        });
        m = m.plus(1);
    }
    out
}
