//! Read models of SPEC §9 built from the audit's snapshot of the projections: the
//! facility list and report, region reports and valuations, every figure with the
//! entries or facilities it came from, and what each was computed from (the checkpoint
//! and the configuration). No I/O of its own.

pub mod assumptions;
pub mod exact;
pub mod region;
pub mod render;
pub mod valuation;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};

use crate::audit::facts::day;
use crate::audit::{Facilities, FacilityFacts, Finding, Snapshot};
use crate::config::Config;
use crate::dates::Month;
use crate::domain::records::LotMoveKind;
use crate::ledger::{LedgerError, Reader};
use assumptions::{Assumptions, Overrides};
use exact::Int;

/// Money by currency: only currencies that occur (`{}` when none).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Money(pub BTreeMap<String, Int>);

impl Money {
    pub fn add(&mut self, currency: &str, amount_minor: u64) {
        match self.0.get_mut(currency) {
            Some(sum) => *sum += amount_minor,
            None => {
                self.0.insert(currency.to_string(), Int::from(amount_minor));
            }
        }
    }
}

/// The audit window of SPEC §8: `window_months` calendar months ending with as_of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub first: Month,
    pub last: Month,
}

impl Window {
    pub fn ending(as_of: Month, months: u32) -> Window {
        // `AuditConfig::validate` bounds the window.
        let back = i32::try_from(months)
            .unwrap_or_else(|_| unreachable!("a window of {months} months"))
            - 1;
        Window {
            first: as_of.plus(-back),
            last: as_of,
        }
    }

    /// The month before the window, for `Series::between`.
    pub fn before(self) -> Month {
        self.first.plus(-1)
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Months {
            first: String,
            last: String,
        }
        Months {
            first: self.first.to_string(),
            last: self.last.to_string(),
        }
        .serialize(s)
    }
}

/// The facilities in a report as of `as_of`: those announced by its last day (SPEC §9).
pub fn included(facilities: &Facilities, as_of: Month) -> impl Iterator<Item = &FacilityFacts> {
    let end = as_of.last_day();
    facilities
        .iter()
        .filter(move |f| day(&f.facility.registered.announced) <= end)
}

/// The checkpoint a report was computed from (SPEC §9 "Citable").
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cited {
    pub tree_size: u64,
    /// The tree's root hash, hex.
    pub root: String,
}

/// What every report, finding list and CSV names: its month, window, checkpoint and
/// configuration digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Basis {
    pub as_of: String,
    pub window: Window,
    pub checkpoint: Cited,
    pub config_b3: String,
}

impl Basis {
    /// The basis of an answer as of `as_of` computed from the first `size` entries.
    pub fn new(
        reader: &Reader,
        size: u64,
        as_of: Month,
        config: &Config,
        query: &Overrides,
    ) -> Result<Basis, LedgerError> {
        Ok(Basis {
            as_of: as_of.to_string(),
            window: Window::ending(as_of, config.audit.window_months),
            checkpoint: Cited {
                tree_size: size,
                root: hex::encode(reader.root_at(size)?),
            },
            config_b3: config.b3(query),
        })
    }

    /// The comment line that heads a CSV answer.
    pub fn csv_comment(&self) -> String {
        format!(
            "# as_of={} window={}..{} tree_size={} root={} config_b3={}\n",
            self.as_of,
            self.window.first,
            self.window.last,
            self.checkpoint.tree_size,
            self.checkpoint.root,
            self.config_b3
        )
    }
}

/// `GET /v1/reports/regions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegionsReport {
    #[serde(flatten)]
    pub basis: Basis,
    pub regions: Vec<region::Region>,
}

/// `GET /v1/reports/regions/{province}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegionReport {
    #[serde(flatten)]
    pub basis: Basis,
    #[serde(flatten)]
    pub region: region::Region,
}

/// `GET /v1/reports/valuation/{facility_id}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ValuationReport {
    #[serde(flatten)]
    pub basis: Basis,
    #[serde(flatten)]
    pub valuation: valuation::Valuation,
}

/// `dcledger report valuation --all --format json`: every valuation in full.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ValuationsReport {
    #[serde(flatten)]
    pub basis: Basis,
    pub valuations: Vec<valuation::Valuation>,
}

/// A page of the valuation screen.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScreenPage {
    #[serde(flatten)]
    pub basis: Basis,
    pub assumptions: valuation::InForce,
    pub rows: Vec<valuation::ScreenRow>,
    /// The value to pass as `after` for the next page; None on the last.
    pub next: Option<String>,
}

/// What a report is asked for: the month (default: SPEC §8's), the configuration and a
/// request's valuation overrides.
pub struct Request<'a> {
    pub as_of: Option<Month>,
    pub config: &'a Config,
    pub query: &'a Overrides,
}

/// A snapshot's reports as of one month under one configuration: the basis every answer
/// names and the audit's findings the reports rest on, computed once.
pub struct Reports<'a> {
    pub snapshot: &'a Snapshot,
    pub basis: Basis,
    pub window: Window,
    pub config: &'a Config,
    pub query: &'a Overrides,
    pub findings: Vec<Arc<Finding>>,
}

impl<'a> Reports<'a> {
    pub fn new(
        reader: &Reader,
        snapshot: &'a Snapshot,
        request: &Request<'a>,
    ) -> Result<Reports<'a>, LedgerError> {
        let as_of = request
            .as_of
            .or_else(|| snapshot.default_as_of())
            .ok_or_else(|| {
                LedgerError::BadRequest("the ledger has nothing to report yet".into())
            })?;
        let basis = Basis::new(reader, snapshot.size, as_of, request.config, request.query)?;
        Ok(Reports {
            snapshot,
            findings: snapshot.audit(as_of, &request.config.audit),
            window: basis.window,
            basis,
            config: request.config,
            query: request.query,
        })
    }

    pub fn as_of(&self) -> Month {
        self.window.last
    }

    /// Every region, `national` first.
    pub fn regions(&self) -> RegionsReport {
        RegionsReport {
            basis: self.basis.clone(),
            regions: region::regions(
                &self.snapshot.facilities,
                self.window,
                &self.config.audit,
                &self.findings,
            ),
        }
    }

    /// One region, or None when no facility in the report is in it.
    pub fn region(&self, name: &str) -> Option<RegionReport> {
        let region = self
            .regions()
            .regions
            .into_iter()
            .find(|r| r.region == name && !r.facility_ids.is_empty())?;
        Some(RegionReport {
            basis: self.basis.clone(),
            region,
        })
    }

    fn assumptions(&self) -> Assumptions<'_> {
        Assumptions::new(
            self.as_of().year,
            &self.config.valuation,
            self.query,
            &self.config.audit,
        )
    }

    /// The valuation of a registered facility (announced by as_of or not), or None.
    pub fn valuation(&self, facility_id: &str) -> Option<ValuationReport> {
        let facts = self.snapshot.facilities.get(facility_id)?;
        let lots = valuation::LotIndex::new(&self.snapshot.facilities);
        let breaches = valuation::Breaches::of(&self.findings);
        Some(ValuationReport {
            basis: self.basis.clone(),
            valuation: valuation::value(
                facts,
                &lots,
                self.window,
                &self.config.audit,
                &self.assumptions(),
                &breaches,
            ),
        })
    }

    /// Valuations of every facility in the report, in the screen's order.
    pub fn valuations(&self, filter: &valuation::ScreenFilter) -> Vec<valuation::Valuation> {
        valuation::all(
            &self.snapshot.facilities,
            self.window,
            &self.config.audit,
            &self.assumptions(),
            &self.findings,
            filter,
        )
    }

    /// A page of the valuation screen: the rows after the cursor `after`, at most `limit`.
    pub fn screen(
        &self,
        filter: &valuation::ScreenFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScreenPage, LedgerError> {
        let after = after.map(valuation::Cursor::parse).transpose()?;
        let rows: Vec<valuation::ScreenRow> = self
            .valuations(filter)
            .iter()
            .map(valuation::ScreenRow::of)
            .filter(|r| after.as_ref().is_none_or(|c| c.before(r)))
            .collect();
        let more = rows.len() > limit;
        let rows: Vec<_> = rows.into_iter().take(limit).collect();
        let next = if more {
            rows.last().map(valuation::ScreenRow::cursor)
        } else {
            None
        };
        let models = self
            .config
            .audit
            .reference_prices
            .keys()
            .map(String::as_str);
        let (scalars, rent_gpu_month_minor) = self.assumptions().in_force(models);
        Ok(ScreenPage {
            basis: self.basis.clone(),
            assumptions: valuation::InForce {
                scalars,
                rent_gpu_month_minor,
            },
            rows,
            next,
        })
    }
}

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
