//! Read models of SPEC §9 built from the projections: the facility list and the facility
//! report, every fact with the index of the entry it came from. No I/O of its own.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::audit::{FacilityFacts, Finding};
use crate::dates::Month;
use crate::domain::records::LotMoveKind;

fn ratio(part: u64, whole: u64, decimals: i32) -> Value {
    if whole == 0 {
        return Value::Null;
    }
    let scale = 10f64.powi(decimals);
    json!((part as f64 / whole as f64 * scale).round() / scale)
}

/// A line of `GET /v1/facilities`.
pub fn facility_summary(f: &FacilityFacts, as_of: Month) -> Value {
    let rec = &f.facility;
    json!({
        "facility_id": rec.registered.facility_id,
        "name": rec.registered.name,
        "province": rec.registered.province,
        "city": rec.registered.city,
        "operator": rec.operator,
        "status": f.status_at(as_of.last_day()).0.as_str(),
        "gpus_deployed": f.gpus_on(as_of.last_day()),
        "registered_at": rec.registered_at,
    })
}

/// `GET /v1/facilities/{id}`: current state, monthly series and findings (SPEC §9).
pub fn facility_report(f: &FacilityFacts, as_of: Month, findings: &[Arc<Finding>]) -> Value {
    let rec = &f.facility;
    let end = as_of.last_day();
    let (status, status_index) = f.status_at(end);
    let mut by_model: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    let gpus: Vec<Value> = f
        .lots
        .iter()
        .map(|lot| {
            let deployed: u64 = lot.deployed.iter().map(|(_, n)| n).sum();
            let transferred: u64 = lot
                .moves
                .iter()
                .filter(|m| matches!(&m.kind, LotMoveKind::Transfer { to_org: Some(_), .. }))
                .map(|m| m.quantity)
                .sum();
            let e = by_model.entry(&lot.procured.gpu_model).or_default();
            e.0 += lot.procured.quantity;
            e.1 += deployed;
            e.2 += transferred;
            json!({
                "lot_id": lot.procured.lot_id, "gpu_model": lot.procured.gpu_model, "quantity": lot.procured.quantity,
                "unit_price_minor": lot.procured.unit_price_minor, "currency": lot.procured.currency, "date": lot.procured.date,
                "undeployed": lot.undeployed, "deployed": deployed, "transferred": transferred,
                "serials": lot.serials, "index": lot.procured_at,
                "moves": lot.moves.iter().map(|m| json!({"quantity": m.quantity, "date": m.date, "index": m.index})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let months: Vec<Month> = f
        .power
        .keys()
        .chain(f.occupancy.keys())
        .chain(f.meter.keys())
        .copied()
        .filter(|m| *m <= as_of)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let monthly: Vec<Value> = months
        .iter()
        .map(|m| {
            let p = f.power.get(m);
            let o = f.occupancy.get(m);
            json!({
                "period": m.to_string(),
                "utilization_pct": o.map_or(Value::Null, |o| ratio(o.body.gpu_hours_sold * 100, o.body.gpu_hours_available, 1)),
                "voucher_share_pct": o.map_or(Value::Null, |o| ratio(o.body.gpu_hours_voucher * 100, o.body.gpu_hours_sold, 1)),
                "pue": p.map_or(Value::Null, |p| ratio(p.body.consumed_kwh, p.body.it_kwh, 2)),
                "resold_share_pct": p.map_or(Value::Null, |p| ratio(p.body.resold_kwh * 100, p.body.consumed_kwh + p.body.resold_kwh, 1)),
                "power_report": p.map(|p| p.index),
                "occupancy_report": o.map(|o| o.index),
                "meter_reading": f.meter.get(m).map(|r| r.index),
            })
        })
        .collect();
    json!({
        "as_of": as_of.to_string(),
        "facility": {
            "facility_id": rec.registered.facility_id, "name": rec.registered.name,
            "province": rec.registered.province, "city": rec.registered.city,
            "lat_e6": rec.registered.lat_e6, "lon_e6": rec.registered.lon_e6,
            "planned_it_kw": rec.registered.planned_it_kw, "planned_gpus": rec.registered.planned_gpus,
            "land_parcel": rec.registered.land_parcel, "announced": rec.registered.announced,
            "registered_at": rec.registered_at,
        },
        "operator": rec.operator,
        "operators": rec.operators.iter().map(|o| json!({
            "org_id": o.org_id, "index": o.index, "date": o.date, "price_minor": o.price_minor, "currency": o.currency,
        })).collect::<Vec<_>>(),
        "status": status.as_str(),
        "status_index": status_index,
        "statuses": rec.statuses.iter().map(|s| json!({"status": s.status.as_str(), "effective": s.effective, "index": s.index})).collect::<Vec<_>>(),
        "permits": f.permits.iter().map(|p| json!({
            "permit_id": p.issued.permit_id, "kind": p.issued.kind.as_str(), "valid_from": p.issued.valid_from, "valid_until": p.issued.valid_until,
            "limit_kw": p.issued.limit_kw, "issuer_org": p.issuer_org, "index": p.issued_at,
            "revocations": p.revocations.iter().map(|r| json!({"effective": r.effective, "reason": r.reason, "index": r.index})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "gpus": gpus,
        "gpus_by_model": by_model.iter().map(|(model, (procured, deployed, transferred))| {
            (model.to_string(), json!({"procured": procured, "deployed": deployed, "transferred": transferred}))
        }).collect::<serde_json::Map<_, _>>(),
        "gpus_at_facility": f.gpus_on(end),
        "subsidies": f.subsidies.iter().map(|s| json!({
            "subsidy_id": s.granted.subsidy_id, "purpose": s.granted.purpose.as_str(), "program": s.granted.program,
            "grantor_org": s.grantor_org, "recipient_org": s.granted.recipient_org,
            "amount_minor": s.granted.amount_minor, "currency": s.granted.currency, "date": s.granted.date, "condition": s.granted.condition.as_ref().map(|c| json!({"min_utilization_pct": c.min_utilization_pct, "by": c.by})),
            "disbursed_minor": s.disbursements.iter().map(|d| d.amount_minor).sum::<u64>(),
            "disbursements": s.disbursements.iter().map(|d| json!({"amount_minor": d.amount_minor, "date": d.date, "index": d.index})).collect::<Vec<_>>(),
            "index": s.granted_at,
        })).collect::<Vec<_>>(),
        "loans": f.loans.iter().map(|l| json!({
            "loan_id": l.loan_id, "lender_org": l.lender_org, "borrower_org": l.borrower_org,
            "amount_minor": l.amount_minor, "currency": l.currency, "state_backed": l.state_backed, "date": l.date,
            "collateral": l.collateral.iter().map(|c| json!({"item": c.item, "lot": c.is_lot})).collect::<Vec<_>>(),
            "index": l.issued_at,
        })).collect::<Vec<_>>(),
        "inspections": rec.inspections.iter().map(|i| json!({
            "date": i.date, "gpus_counted": i.gpus_counted, "gpus_powered": i.gpus_powered,
            "observed_status": i.observed_status.as_str(), "index": i.index,
        })).collect::<Vec<_>>(),
        "monthly": monthly,
        "findings": findings,
    })
}
