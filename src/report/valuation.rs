//! Valuation of a facility for investors (PROTOCOL §9), as of a month: what its GPUs earn at
//! the assumed rents and its paid utilization, what it costs to run, what it is worth
//! as a going concern and in liquidation, and what is owed against it. Every figure but
//! `income_value` is exact integer arithmetic that divides last and rounds down.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use time::Date;

use super::Window;
use super::assumptions::{Assumption, Assumptions, BP_WHOLE, Sourced};
use crate::audit::facts::day;
use crate::audit::{AuditConfig, Facilities, FacilityFacts, Finding, Rule};
use crate::domain::records::LotRecord;
use crate::exact::{Int, times};
use crate::ledger::LedgerError;

/// The currency every money figure of a valuation is in (PROTOCOL §9).
pub const VALUATION_CURRENCY: &str = "CNY";
/// Reference prices are whole CNY; figures are in fen.
const MINOR_PER_CNY: u64 = 100;

/// The assumptions in force, each with its source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InForce {
    #[serde(flatten)]
    pub scalars: BTreeMap<&'static str, Sourced>,
    /// Monthly rent of one GPU by model, for as_of's year.
    pub rent_gpu_month_minor: BTreeMap<String, Sourced>,
}

/// A lot with GPUs at the facility on as_of's last day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LotShare {
    pub lot_id: String,
    pub gpu_model: String,
    pub gpus: Int,
    /// The lot's procurement date, from which its life runs.
    pub procured: String,
    pub remaining_months: Int,
    pub rent_gpu_month_minor: u128,
    /// The reference price per GPU in minor units, None for a model without one.
    pub reference_price_minor: Option<u128>,
    /// The `procurement` entry.
    pub index: u64,
}

/// An amount in another currency than CNY, left out of a figure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Excluded {
    pub figure: &'static str,
    pub amount_minor: u64,
    pub currency: String,
    pub index: u64,
}

/// `GET /v1/reports/valuation/{facility_id}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Valuation {
    pub facility_id: String,
    pub name: String,
    pub province: String,
    pub assumptions: InForce,
    pub gpus: Int,
    pub gpus_by_model: BTreeMap<String, Int>,
    pub lots: Vec<LotShare>,
    pub gpu_hours_sold: Int,
    pub gpu_hours_voucher: Int,
    pub gpu_hours_available: Int,
    pub paid_utilization_bp: Option<Int>,
    /// The window's occupancy reports (the ones that count).
    pub occupancy_reports: Vec<u64>,
    pub consumed_kwh: Int,
    /// The window's power reports.
    pub power_reports: Vec<u64>,
    pub revenue_month: Int,
    pub energy_month: Int,
    pub maintenance_month: Int,
    pub noi_month: Int,
    pub income_value: Int,
    pub liquidation_value: Int,
    pub unpriced_models: Vec<String>,
    pub clawback_exposure: Int,
    /// The disbursements `clawback_exposure` sums.
    pub clawback_evidence: Vec<u64>,
    pub loans_outstanding: Int,
    /// The loans `loans_outstanding` sums.
    pub loan_evidence: Vec<u64>,
    pub asset_value: Int,
    pub equity_value: Int,
    pub distressed: bool,
    pub excluded: Vec<Excluded>,
}

/// A row of the valuation screen (`GET /v1/reports/valuation`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScreenRow {
    pub facility_id: String,
    pub province: String,
    pub gpus: Int,
    pub paid_utilization_bp: Option<Int>,
    pub noi_month: Int,
    pub asset_value: Int,
    pub equity_value: Int,
    pub distressed: bool,
}

impl ScreenRow {
    pub fn of(v: &Valuation) -> ScreenRow {
        ScreenRow {
            facility_id: v.facility_id.clone(),
            province: v.province.clone(),
            gpus: v.gpus.clone(),
            paid_utilization_bp: v.paid_utilization_bp.clone(),
            noi_month: v.noi_month.clone(),
            asset_value: v.asset_value.clone(),
            equity_value: v.equity_value.clone(),
            distressed: v.distressed,
        }
    }

    /// The screen's total order: equity value ascending, then facility id (unique).
    pub fn order_key(&self) -> (&Int, &str) {
        (&self.equity_value, &self.facility_id)
    }

    /// The cursor that pages past this row: `<equity_value>:<facility_id>` (facility
    /// ids hold no `:`).
    pub fn cursor(&self) -> String {
        format!("{}:{}", self.equity_value, self.facility_id)
    }
}

/// Every lot of the ledger by id (a facility's GPUs can come from lots procured for
/// another facility of its operator), and each GPU model's rent and reference price in
/// minor units for the valuation's year, worked out once per request rather than once
/// per lot.
pub struct LotIndex<'a> {
    lots: HashMap<&'a str, &'a LotRecord>,
    prices: HashMap<&'a str, (u128, Option<u128>)>,
}

impl<'a> LotIndex<'a> {
    pub fn new(
        facilities: &'a Facilities,
        assumptions: &Assumptions<'_>,
        config: &AuditConfig,
    ) -> LotIndex<'a> {
        let lots: HashMap<&str, &LotRecord> = facilities
            .iter()
            .flat_map(|f| &f.records.lots)
            .map(|l| (l.procured.lot_id.as_str(), l))
            .collect();
        let mut prices = HashMap::new();
        for lot in lots.values() {
            let model = lot.procured.gpu_model.as_str();
            prices.entry(model).or_insert_with(|| {
                let reference = config
                    .reference_price(model, assumptions.year)
                    .map(|p| times(p, MINOR_PER_CNY));
                (assumptions.rent(model).value, reference)
            });
        }
        LotIndex { lots, prices }
    }
}

/// "Whole months from date d to date e" of PROTOCOL §9.
pub fn whole_months(d: Date, e: Date) -> Int {
    let years = &Int::from(i64::from(e.year())) - &Int::from(i64::from(d.year()));
    let months = &(&years * &Int::from(12u64)) + &Int::from(i64::from(u8::from(e.month())));
    let months = &months - &Int::from(i64::from(u8::from(d.month())));
    if e.day() < d.day() {
        &months - &Int::from(1u64)
    } else {
        months
    }
}

/// The annuity factor (1 − (1 + m)^−n) ÷ m of PROTOCOL §9: 0 when n = 0, n when m = 0.
fn annuity(m: f64, n: f64) -> f64 {
    if n == 0.0 {
        0.0
    } else if m == 0.0 {
        n
    } else {
        (1.0 - (1.0 + m).powf(-n)) / m
    }
}

/// A money figure of the valuation: CNY amounts summed with their entries, others left
/// out and listed (PROTOCOL §9).
struct Owed {
    figure: &'static str,
    sum: Int,
    evidence: Vec<u64>,
}

impl Owed {
    fn new(figure: &'static str) -> Owed {
        Owed {
            figure,
            sum: Int::zero(),
            evidence: Vec::new(),
        }
    }

    fn add(&mut self, amount_minor: u64, currency: &str, index: u64, excluded: &mut Vec<Excluded>) {
        if currency == VALUATION_CURRENCY {
            self.sum += amount_minor;
            self.evidence.push(index);
        } else {
            excluded.push(Excluded {
                figure: self.figure,
                amount_minor,
                currency: currency.to_string(),
                index,
            });
        }
    }

    /// The sum and its entries, ascending.
    fn finish(mut self) -> (Int, Vec<u64>) {
        self.evidence.sort_unstable();
        (self.sum, self.evidence)
    }
}

/// The subsidies with a subsidy-condition-breach finding, as (facility, subsidy): what
/// decides the clawback exposure.
pub struct Breaches<'a>(HashSet<(&'a str, &'a str)>);

impl<'a> Breaches<'a> {
    /// From the audit's findings as of the valuation's month.
    pub fn of(findings: &'a [Arc<Finding>]) -> Breaches<'a> {
        Breaches(
            findings
                .iter()
                .filter(|f| f.rule == Rule::SubsidyConditionBreach.as_str())
                .map(|f| (f.facility_id.as_str(), f.key.as_str()))
                .collect(),
        )
    }
}

/// Values one facility as of `window.last`.
pub fn value(
    facts: &FacilityFacts,
    lots: &LotIndex<'_>,
    window: Window,
    assumptions: &Assumptions<'_>,
    breaches: &Breaches<'_>,
) -> Valuation {
    let end = window.last.last_day();
    let a = |x: Assumption| assumptions.get(x).value;
    let mut excluded = Vec::new();

    // GPUs at the facility on as_of's last day, by lot (PROTOCOL §8's definition, per lot).
    let mut by_lot: BTreeMap<&str, Int> = BTreeMap::new();
    for m in &facts.records.facility.gpu_moves {
        if day(&m.date) <= end {
            *by_lot.entry(m.lot_id.as_str()).or_default() += m.delta;
        }
    }
    let mut models = BTreeSet::new();
    let mut shares = Vec::new();
    let mut gpus = Int::zero();
    let mut rent_total = Int::zero();
    let mut priced_total = Int::zero();
    let mut unpriced = BTreeSet::new();
    let mut gpus_by_model: BTreeMap<String, Int> = BTreeMap::new();
    for (&lot_id, count) in &by_lot {
        // A lot is listed while it has GPUs at the facility (PROTOCOL §9); only moves dated
        // out of ledger order can leave a count below zero.
        if *count <= Int::zero() {
            continue;
        }
        let Some(lot) = lots.lots.get(lot_id) else {
            unreachable!("a GPU move names lot {lot_id}, which ingest required to exist");
        };
        let model = lot.procured.gpu_model.as_str();
        models.insert(model);
        let Some(&(rent, reference)) = lots.prices.get(model) else {
            unreachable!("every lot's model is priced");
        };
        let n = count.clone();
        gpus += count;
        *gpus_by_model.entry(model.to_string()).or_default() += count;
        rent_total += &(&n * &Int::from(rent));
        match reference {
            Some(p) => priced_total += &(&n * &Int::from(p)),
            None => {
                unpriced.insert(model.to_string());
            }
        }
        let procured = day(&lot.procured.date);
        let life = Int::from(a(Assumption::LifeMonths));
        let remaining = (&life - &whole_months(procured, end)).max(Int::zero());
        shares.push(LotShare {
            lot_id: lot_id.to_string(),
            gpu_model: model.to_string(),
            gpus: count.clone(),
            procured: lot.procured.date.clone(),
            remaining_months: remaining,
            rent_gpu_month_minor: rent,
            reference_price_minor: reference,
            index: lot.procured_at,
        });
    }

    // Paid utilization over the window's occupancy reports.
    let occupancy = facts.occupancy.between(Some(window.before()), window.last);
    let (mut sold, mut voucher, mut available) = (Int::zero(), Int::zero(), Int::zero());
    for (_, r) in occupancy {
        sold += r.body.gpu_hours_sold;
        voucher += r.body.gpu_hours_voucher;
        available += r.body.gpu_hours_available;
    }
    let paid = &sold - &voucher;
    let paid_utilization_bp = Int::basis_points(&paid, &available);
    // Undefined paid utilization counts as 0.
    let revenue_month = (&rent_total * &paid)
        .div_floor(&available)
        .unwrap_or_default();

    let power = facts.power.between(Some(window.before()), window.last);
    let mut consumed = Int::zero();
    for (_, r) in power {
        consumed += r.body.consumed_kwh;
    }
    let tariff = Int::from(a(Assumption::TariffMinorPerKwh));
    // With no power report there is no energy cost to average (0).
    let energy_month = (&consumed * &tariff)
        .div_floor(&Int::from(power.len()))
        .unwrap_or_default();
    let maintenance_month = &gpus * &Int::from(a(Assumption::MaintenanceGpuMonthMinor));
    let noi_month = &(&revenue_month - &energy_month) - &maintenance_month;

    let income_value = income(&noi_month, &gpus, &shares, a(Assumption::DiscountRateBp));
    let keep = &Int::from(BP_WHOLE) - &Int::from(a(Assumption::HaircutBp));
    let liquidation_value = (&priced_total * &keep)
        .div_floor(&Int::from(10_000u64))
        .unwrap_or_else(|| unreachable!("10,000 is not 0"));

    let mut clawback = Owed::new("clawback_exposure");
    for s in &facts.records.subsidies {
        if breaches
            .0
            .contains(&(facts.id(), s.granted.subsidy_id.as_str()))
        {
            for d in s.disbursements.iter().filter(|d| day(&d.date) <= end) {
                clawback.add(d.amount_minor, &d.currency, d.index, &mut excluded);
            }
        }
    }
    let mut loans = Owed::new("loans_outstanding");
    for (l, date) in facts.dated_loans() {
        if date <= end && l.facility_id == facts.id() {
            loans.add(l.amount_minor, &l.currency, l.issued_at, &mut excluded);
        }
    }
    excluded.sort_by_key(|e| e.index);
    let (clawback_exposure, clawback_evidence) = clawback.finish();
    let (loans_outstanding, loan_evidence) = loans.finish();

    let asset_value = income_value.clone().max(liquidation_value.clone());
    let equity_value = &(&asset_value - &loans_outstanding) - &clawback_exposure;
    let threshold = Int::from(a(Assumption::DistressedUtilizationBp));
    // paid ÷ available < threshold ÷ 10,000, exactly; undefined counts as 0.
    let low_utilization = if available == Int::zero() {
        Int::zero() < threshold
    } else {
        &paid * &Int::from(10_000u64) < &threshold * &available
    };
    let (scalars, rent_gpu_month_minor) = assumptions.in_force(models.iter().copied());
    Valuation {
        facility_id: facts.id().to_string(),
        name: facts.records.facility.registered.name.clone(),
        province: facts.records.facility.registered.province.clone(),
        assumptions: InForce {
            scalars,
            rent_gpu_month_minor,
        },
        gpus,
        gpus_by_model,
        lots: shares,
        gpu_hours_sold: sold,
        gpu_hours_voucher: voucher,
        gpu_hours_available: available,
        paid_utilization_bp,
        occupancy_reports: occupancy.iter().map(|(_, r)| r.index).collect(),
        consumed_kwh: consumed,
        power_reports: power.iter().map(|(_, r)| r.index).collect(),
        revenue_month,
        energy_month,
        distressed: noi_month.is_negative() || low_utilization,
        maintenance_month,
        noi_month,
        income_value,
        liquidation_value,
        unpriced_models: unpriced.into_iter().collect(),
        clawback_exposure,
        clawback_evidence,
        loans_outstanding,
        loan_evidence,
        asset_value,
        equity_value,
        excluded,
    }
}

/// PROTOCOL §9's income value: per lot, in lot-id order, the lot's share of the NOI (by GPU
/// count) times the annuity factor of its remaining months, in binary64; the sum rounded
/// half to even. With no GPUs there is no NOI to share (0).
fn income(noi: &Int, gpus: &Int, lots: &[LotShare], discount_rate_bp: u128) -> Int {
    if *gpus == Int::zero() {
        return Int::zero();
    }
    // A rate of at most 10,000 basis points is exact in binary64.
    let rate = f64::from(
        u32::try_from(discount_rate_bp)
            .unwrap_or_else(|_| unreachable!("discount_rate_bp is at most 10,000")),
    ) / 10_000.0;
    let m = (1.0 + rate).powf(1.0 / 12.0) - 1.0;
    let (noi, gpus) = (noi.to_f64(), gpus.to_f64());
    let total: f64 = lots
        .iter()
        .map(|lot| {
            // Binary64, as PROTOCOL §9 computes the income value.
            let share = noi * lot.gpus.to_f64() / gpus;
            share * annuity(m, lot.remaining_months.to_f64())
        })
        .sum();
    let rounded = total.round_ties_even();
    // NOI is far below binary64's range (its factors are below 2^53 each) and the
    // factor below n, so the sum is finite.
    Int::from_whole_f64(rounded)
        .unwrap_or_else(|| unreachable!("income value {total} is not a finite whole number"))
}

/// Which facilities the screen shows.
#[derive(Clone, Debug, Default)]
pub struct ScreenFilter {
    pub province: Option<String>,
    pub distressed: Option<bool>,
}

/// The valuations of every facility in a report as of `window.last` that `filter`
/// keeps, in the screen's total order.
pub fn all(
    facilities: &Facilities,
    window: Window,
    config: &AuditConfig,
    assumptions: &Assumptions<'_>,
    findings: &[Arc<Finding>],
    filter: &ScreenFilter,
) -> Vec<Valuation> {
    let lots = LotIndex::new(facilities, assumptions, config);
    let breaches = Breaches::of(findings);
    let mut all: Vec<Valuation> = super::included(facilities, window.last)
        .filter(|f| {
            filter
                .province
                .as_ref()
                .is_none_or(|p| *p == f.records.facility.registered.province)
        })
        .map(|f| value(f, &lots, window, assumptions, &breaches))
        .filter(|v| filter.distressed.is_none_or(|d| d == v.distressed))
        .collect();
    all.sort_by(|a, b| (&a.equity_value, &a.facility_id).cmp(&(&b.equity_value, &b.facility_id)));
    all
}

/// A position in the screen's order: the rows after it come on the next page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    equity_value: Int,
    facility_id: String,
}

impl Cursor {
    /// `<equity_value>:<facility_id>`, as `ScreenRow::cursor` writes it.
    pub fn parse(text: &str) -> Result<Cursor, LedgerError> {
        let bad = || {
            LedgerError::BadRequest(format!(
                "after={text:?} is not a cursor of this screen (pass the `next` of the page before)"
            ))
        };
        let (equity, id) = text.split_once(':').ok_or_else(bad)?;
        let digits = equity.strip_prefix('-').unwrap_or(equity);
        if digits.is_empty()
            || digits.len() > 200
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || id.is_empty()
        {
            return Err(bad());
        }
        Ok(Cursor {
            equity_value: Int::parse_decimal(equity).ok_or_else(bad)?,
            facility_id: id.to_string(),
        })
    }

    /// Does the row come after this cursor?
    pub fn before(&self, row: &ScreenRow) -> bool {
        (&self.equity_value, self.facility_id.as_str()) < row.order_key()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        day(s)
    }

    #[test]
    fn whole_months_count_a_month_only_once_its_day_is_reached() {
        for (from, to, months) in [
            ("2024-01-31", "2024-02-29", 0),
            ("2024-01-31", "2024-03-31", 2),
            ("2024-01-15", "2024-01-14", -1),
            ("2024-01-15", "2025-01-15", 12),
            ("2025-03-31", "2025-03-31", 0),
            ("2026-01-01", "2025-12-31", -1),
        ] {
            assert_eq!(
                whole_months(d(from), d(to)),
                Int::from(months as i64),
                "{from} → {to}"
            );
        }
    }

    #[test]
    fn the_annuity_factor_has_its_limits() {
        assert_eq!(annuity(0.01, 0.0), 0.0);
        assert_eq!(annuity(0.0, 7.0), 7.0);
        let f = annuity(0.01, 12.0);
        assert!((f - 11.2550775).abs() < 1e-6, "{f}");
    }
}
