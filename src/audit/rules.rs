//! The twenty rules of PROTOCOL §8, each a few lines over `FacilityFacts`. Facts dated after
//! as_of's last day, and reports for later periods, are ignored throughout.

use time::{Date, Duration};

use super::facts::{Disbursed, FacilityFacts, Series, Span, day};
use super::{AuditConfig, Draft, Found, Rule, money, thousands};
use crate::dates::{Month, add_months, months_before};
use crate::domain::bodies::{PermitKind, Purpose, Status};
use crate::domain::records::{LotMoveKind, Pledge};
use crate::exact::{Int, product_lt, times, total};

/// One lot that lists a shared serial.
#[derive(Clone, Debug)]
pub struct SerialLot {
    pub lot_id: String,
    pub facility_id: String,
    /// The lot's procurement date.
    pub date: Date,
    pub procured_at: u64,
    pub listed_at: u64,
}

/// `part / whole` as a percentage with one decimal, rounded down, so that a figure just
/// past a threshold never reads as the threshold itself ("50.1%", not "50%"); "0.0"
/// where there is no whole (no reports).
fn pct(part: u128, whole: u128) -> String {
    decimal(part, whole, 1_000, 1)
}

/// `part / whole × scale`, rounded down, written with `decimals` decimals (scale is
/// 10^(2 + decimals) for a percentage, 10^decimals for a plain ratio); zero over zero
/// reads 0.
fn decimal(part: u128, whole: u128, scale: u64, decimals: usize) -> String {
    let scaled = (&Int::from(part) * &Int::from(scale))
        .div_floor(&Int::from(whole))
        .unwrap_or_default()
        .to_string();
    let padded = format!("{scaled:0>width$}", width = decimals.saturating_add(1));
    let (whole, fraction) = padded.split_at(padded.len().saturating_sub(decimals));
    format!("{whole}.{fraction}")
}

/// An amount at risk in a currency.
fn at_risk(amount: impl Into<Int>, currency: &str) -> Option<(Int, String)> {
    Some((amount.into(), currency.to_string()))
}

struct Ctx<'a> {
    f: &'a FacilityFacts,
    end: Date,
    /// The window: its first month to as_of.
    first: Month,
    as_of: Month,
    config: &'a AuditConfig,
}

impl Ctx<'_> {
    /// The reports of a series in the window.
    fn window<'s, T>(&self, series: &'s Series<T>) -> Span<'s, T> {
        series.between(Some(self.first.plus(-1)), self.as_of)
    }

    fn draft(
        &self,
        rule: Rule,
        key: impl Into<String>,
        summary: String,
        money: Option<(Int, String)>,
        evidence: Vec<u64>,
    ) -> Draft {
        draft(self.f, rule, key.into(), summary, money, evidence)
    }

    /// Disbursements to this facility dated on or before as_of.
    fn disbursements(&self) -> impl Iterator<Item = &Disbursed> + Clone {
        self.f.disbursements().iter().filter(|d| d.date <= self.end)
    }

    /// The currency of a subsidy's disbursements.
    fn currency(&self, d: &Disbursed) -> &str {
        &self.f.records.subsidies[d.subsidy].granted.currency
    }
}

struct PeriodCtx<'a> {
    f: &'a FacilityFacts,
    m: Month,
}

impl PeriodCtx<'_> {
    /// A finding about the period, keyed by it.
    fn draft(
        &self,
        rule: Rule,
        summary: String,
        money: Option<(Int, String)>,
        evidence: Vec<u64>,
    ) -> Draft {
        draft(self.f, rule, self.m.to_string(), summary, money, evidence)
    }

    /// A finding that `what` (reported at entry `report`) happened in the period
    /// without a valid `kind` permit for the whole of it, if so; the permits valid on
    /// some day of it are the evidence either way. `what` and `money` are made only
    /// for a finding: nearly every facility's every month is covered, and formatting
    /// them anyway took about 6 ms of a re-audit at a million entries.
    fn without_permit(
        &self,
        rule: Rule,
        kind: PermitKind,
        what: impl FnOnce() -> String,
        money: impl FnOnce() -> Option<(Int, String)>,
        report: u64,
    ) -> Option<Draft> {
        let m = self.m;
        (!self.f.covered(kind, m)).then(|| {
            self.draft(
                rule,
                format!(
                    "{} in {m} without a valid {} permit for the whole month",
                    what(),
                    kind.as_str()
                ),
                money(),
                [vec![report], self.f.permits_during(kind, m)].concat(),
            )
        })
    }
}

/// A finding about facility `f`.
fn draft(
    f: &FacilityFacts,
    rule: Rule,
    key: String,
    summary: String,
    money: Option<(Int, String)>,
    evidence: Vec<u64>,
) -> Draft {
    Draft {
        rule,
        facility_id: f.id().to_string(),
        key,
        summary,
        money,
        evidence,
    }
}

/// Every single-facility rule but the period rules.
pub(super) fn facility_rules(
    f: &FacilityFacts,
    as_of: Month,
    config: &AuditConfig,
    out: &mut Vec<Draft>,
) {
    let cx = Ctx {
        f,
        end: as_of.last_day(),
        first: as_of.window_start(config.window_months),
        as_of,
        config,
    };
    idle_and_stalled(&cx, out);
    window_shares(&cx, out);
    reporting_gaps(&cx, out);
    land_banking(&cx, out);
    lots(&cx, out);
    subsidies(&cx, out);
    inspections(&cx, out);
}

/// idle-funded, stalled-funded.
fn idle_and_stalled(cx: &Ctx<'_>, out: &mut Vec<Draft>) {
    let disbursed = cx.disbursements();
    let Some(first) = disbursed.clone().next() else {
        return;
    };
    let disbursed_total = total(disbursed.clone().map(|d| d.amount_minor));
    let currency = cx.currency(first);
    let (status, status_entry) = cx.f.status_at(cx.end);
    if status == Status::Operational {
        let (util, reports) = cx.f.utilization(cx.first, cx.as_of);
        if let Some((sold, available)) = util
            && product_lt(sold, 100, cx.config.idle_utilization_pct.into(), available)
        {
            let mut evidence: Vec<u64> = disbursed.clone().map(|d| d.index).collect();
            evidence.extend(reports);
            evidence.extend(status_entry);
            out.push(cx.draft(
                Rule::IdleFunded,
                "",
                format!(
                    "window utilization {}% < {}% at an operational site with {} disbursed: funded capacity may be standing idle",
                    pct(sold, available),
                    cx.config.idle_utilization_pct,
                    money(disbursed_total, currency)
                ),
                at_risk(disbursed_total, currency),
                evidence,
            ));
        }
    }
    let cutoff = months_before(cx.end, cx.config.stalled_months);
    let early = disbursed.filter(|d| d.date <= cutoff);
    let ever_operational = || {
        cx.f.status_changes(cx.end)
            .iter()
            .any(|(_, s, _)| *s == Status::Operational)
    };
    if early.clone().next().is_some() && !ever_operational() {
        let amount = total(early.clone().map(|d| d.amount_minor));
        let first = early
            .clone()
            .map(|d| d.date)
            .min()
            .unwrap_or_else(|| unreachable!("early disbursements were found above"));
        let mut evidence: Vec<u64> = early.map(|d| d.index).collect();
        evidence.push(cx.f.records.facility.registered_at);
        evidence.extend(cx.f.records.facility.statuses.iter().map(|s| s.index));
        out.push(cx.draft(
            Rule::StalledFunded,
            "",
            format!(
                "{} disbursed from {first} and the site has not been operational on any day up to {}: the funded build may have stalled",
                money(amount, currency),
                cx.end
            ),
            at_risk(amount, currency),
            evidence,
        ));
    }
}

/// voucher-dependence and power-resale over the window.
fn window_shares(cx: &Ctx<'_>, out: &mut Vec<Draft>) {
    let occ = cx.window(&cx.f.occupancy);
    let sold = total(occ.iter().map(|(_, r)| r.body.gpu_hours_sold));
    let voucher = total(occ.iter().map(|(_, r)| r.body.gpu_hours_voucher));
    if sold > 0 && product_lt(cx.config.voucher_share_pct.into(), sold, voucher, 100) {
        out.push(cx.draft(
            Rule::VoucherDependence,
            "",
            format!(
                "{}% of the window's {} sold GPU-hours were paid with compute vouchers (> {}%): demand may be subsidised rather than real",
                pct(voucher, sold),
                thousands(sold),
                cx.config.voucher_share_pct
            ),
            None,
            occ.iter().map(|(_, r)| r.index).collect(),
        ));
    }
    let power = cx.window(&cx.f.power);
    let resold = total(power.iter().map(|(_, r)| r.body.resold_kwh));
    let base = total(
        power
            .iter()
            .flat_map(|(_, r)| [r.body.consumed_kwh, r.body.resold_kwh]),
    );
    if base > 0 && product_lt(cx.config.resale_share_pct.into(), base, resold, 100) {
        let revenue = total(power.iter().map(|(_, r)| r.body.resale_revenue_minor));
        let currency = power
            .first()
            .map(|(_, r)| r.body.currency.to_string())
            .unwrap_or_else(|| unreachable!("energy was reported, so a report is there"));
        out.push(cx.draft(
            Rule::PowerResale,
            "",
            format!(
                "{} kWh resold in the window, {}% of energy taken (> {}%), for {}: subsidised power may be resold rather than used",
                thousands(resold),
                pct(resold, base),
                cx.config.resale_share_pct,
                money(revenue, &currency)
            ),
            at_risk(revenue, &currency),
            power.iter().map(|(_, r)| r.index).collect(),
        ));
    }
}

/// The rules about one period: resale-without-permit, pue-implausible, meter-mismatch
/// and power-occupancy-mismatch from its power report, phantom-capacity and
/// permit-missing from its occupancy report. They read the facility's facts for that
/// period and nothing about as_of, which is what lets an audit keep their findings
/// between runs (`super::cache`).
pub(super) fn period_rules(
    f: &FacilityFacts,
    m: Month,
    config: &AuditConfig,
    out: &mut Vec<Draft>,
) {
    let cx = PeriodCtx { f, m };
    if let Some(p) = f.power.get(&m) {
        if p.body.resold_kwh > 0 {
            out.extend(cx.without_permit(
                Rule::ResaleWithoutPermit,
                PermitKind::PowerSale,
                || format!("{} kWh resold", thousands(p.body.resold_kwh)),
                || at_risk(p.body.resale_revenue_minor, p.body.currency.as_str()),
                p.index,
            ));
        }
        let (consumed, it) = (p.body.consumed_kwh, p.body.it_kwh);
        let (consumed_wide, it_wide) = (u128::from(consumed), u128::from(it));
        let implausible = if it == 0 {
            consumed > 0
        } else {
            product_lt(consumed_wide, 100, config.pue_min_centi.into(), it_wide)
                || product_lt(config.pue_max_centi.into(), it_wide, consumed_wide, 100)
        };
        if implausible {
            let pue = if it == 0 {
                "undefined (no IT energy)".to_string()
            } else {
                decimal(consumed_wide, it_wide, 100, 2)
            };
            out.push(cx.draft(
                Rule::PueImplausible,
                format!(
                    "PUE {pue} in {m} ({} kWh consumed, {} kWh IT) is outside {}–{}: the power figures may be misreported",
                    thousands(consumed),
                    thousands(it),
                    decimal(config.pue_min_centi.into(), 1, 1, 2),
                    decimal(config.pue_max_centi.into(), 1, 1, 2)
                ),
                None,
                vec![p.index],
            ));
        }
        if let Some(meter) = f.meter.get(&m) {
            let differs = |a: u64, b: u64| {
                product_lt(
                    config.meter_tolerance_pct.into(),
                    a.max(b).into(),
                    a.abs_diff(b).into(),
                    100,
                )
            };
            let c = differs(meter.body.consumed_kwh, consumed);
            let r = differs(meter.body.resold_kwh, p.body.resold_kwh);
            if c || r {
                out.push(cx.draft(
                    Rule::MeterMismatch,
                    format!(
                        "in {m} the utility metered {} kWh consumed / {} kWh resold against the operator's {} / {} (> {}% apart)",
                        thousands(meter.body.consumed_kwh),
                        thousands(meter.body.resold_kwh),
                        thousands(consumed),
                        thousands(p.body.resold_kwh),
                        config.meter_tolerance_pct
                    ),
                    None,
                    vec![p.index, meter.index],
                ));
            }
        }
        if let Some(o) = f.occupancy.get(&m) {
            let sold = o.body.gpu_hours_sold;
            // it_kwh < min_share% × sold × kWh per GPU-hour, in thousandths of a kWh.
            let needed = times(config.min_it_share_pct, config.kwh_per_gpu_hour_milli);
            if product_lt(it_wide, 100_000, needed, sold.into()) {
                out.push(cx.draft(
                    Rule::PowerOccupancyMismatch,
                    format!(
                        "{} GPU-hours sold in {m} but only {} kWh of IT energy used: the sold hours may not have been delivered",
                        thousands(sold),
                        thousands(it)
                    ),
                    None,
                    vec![p.index, o.index],
                ));
            }
        }
    }
    if let Some(o) = f.occupancy.get(&m) {
        let gpus = f.gpus_on(m.last_day());
        let installed = o.body.gpus_installed;
        let over_installed = i128::from(installed) > gpus;
        let over_hours = u128::from(o.body.gpu_hours_available) > times(installed, m.hours());
        if over_installed || over_hours {
            out.push(cx.draft(
                Rule::PhantomCapacity,
                if over_installed {
                    format!("{m}: {installed} GPUs reported installed but the ledger shows {gpus} there: capacity may be overstated")
                } else {
                    format!(
                        "{m}: {} GPU-hours available exceeds {installed} GPUs × {} hours: capacity may be overstated",
                        thousands(o.body.gpu_hours_available),
                        m.hours()
                    )
                },
                None,
                [vec![o.index], f.gpu_evidence(m.last_day())].concat(),
            ));
        }
        if o.body.gpu_hours_sold > 0 {
            out.extend(cx.without_permit(
                Rule::PermitMissing,
                PermitKind::Operation,
                || format!("{} GPU-hours sold", thousands(o.body.gpu_hours_sold)),
                || None,
                o.index,
            ));
        }
    }
}

/// reporting-gap over the window.
fn reporting_gaps(cx: &Ctx<'_>, out: &mut Vec<Draft>) {
    let f = cx.f;
    // The window's reports walked beside its months, rather than searched for each.
    let mut occupancy = cx.window(&f.occupancy).iter().map(|(m, _)| *m).peekable();
    let mut power = cx.window(&f.power).iter().map(|(m, _)| *m).peekable();
    for m in (0..)
        .map(|k| cx.first.plus(k))
        .take_while(|m| *m <= cx.as_of)
    {
        let reported = (reports_for(&mut occupancy, m), reports_for(&mut power, m));
        if !f.operational_through(m) {
            continue;
        }
        let missing = match reported {
            (true, true) => continue,
            (false, true) => "occupancy",
            (true, false) => "power",
            (false, false) => "occupancy or power",
        };
        out.push(
            cx.draft(
                Rule::ReportingGap,
                m.to_string(),
                format!("operational through {m} but no {missing} report for it"),
                None,
                f.records
                    .facility
                    .statuses
                    .iter()
                    .map(|s| s.index)
                    .collect(),
            ),
        );
    }
}

/// Whether the month-ordered `months` hold `m`, passing every month up to it: called
/// with months in order, it walks them once.
fn reports_for(months: &mut std::iter::Peekable<impl Iterator<Item = Month>>, m: Month) -> bool {
    while months.next_if(|reported| *reported < m).is_some() {}
    months.next_if_eq(&m).is_some()
}

/// land-banking: per state-backed loan.
fn land_banking(cx: &Ctx<'_>, out: &mut Vec<Draft>) {
    let f = cx.f;
    let months = cx.config.months(cx.config.land_banking_months);
    // (loan, its date, the end of its construction period), for loans past that end.
    let due: Vec<_> = f
        .dated_loans()
        .filter(|(l, _)| l.state_backed)
        .map(|(l, date)| (l, date, add_months(date, months)))
        .filter(|(_, _, until)| *until <= cx.end)
        .collect();
    if due.is_empty() {
        return;
    }
    let land: Vec<u64> = f
        .dated_permits()
        .filter(|(p, from)| p.issued.kind == PermitKind::LandUse && *from <= cx.end)
        .map(|(p, _)| p.issued_at)
        .collect();
    if land.is_empty() {
        return;
    }
    for (loan, date, until) in due {
        let construction_permit = !f
            .permits_valid(PermitKind::Construction, date, until)
            .is_empty();
        let built = f.status_in(
            date,
            until,
            &[Status::UnderConstruction, Status::Operational],
        );
        if !construction_permit && built.is_none() {
            out.push(cx.draft(
                Rule::LandBanking,
                loan.loan_id.clone(),
                format!(
                    "state-backed loan {} of {} on {} against land with a land-use permit, and no construction permit or construction in the {months} months after: the land may be held only to secure credit",
                    loan.loan_id,
                    money(loan.amount_minor, &loan.currency),
                    loan.date
                ),
                at_risk(loan.amount_minor, &loan.currency),
                [vec![loan.issued_at], land.clone()].concat(),
            ));
        }
    }
}

/// undeployed-gpus, price-anomaly, subsidised-asset-sold (lots), subsidy-stacking.
fn lots(cx: &Ctx<'_>, out: &mut Vec<Draft>) {
    let f = cx.f;
    // A lot procured before this is stale. A century before as_of is still a date.
    let stale = cx
        .end
        .checked_sub(Duration::days(i64::from(cx.config.undeployed_days)))
        .unwrap_or_else(|| unreachable!("{} days before {}", cx.config.undeployed_days, cx.end));
    let procured_lots = f
        .dated_lots()
        .filter(|(_, procured, _)| *procured <= cx.end);
    for (lot, procured, moved) in procured_lots.clone() {
        // The lot's moves on or before as_of.
        let moves = || {
            lot.moves
                .iter()
                .zip(moved)
                .filter(|(_, date)| **date <= cx.end)
                .map(|(m, _)| m)
        };
        // Stock at as_of: procured minus what left stock (deployments and transfers
        // without a source facility) on or before as_of.
        let left = total(
            moves()
                .filter(|m| match &m.kind {
                    LotMoveKind::Deployment { .. } => true,
                    LotMoveKind::Transfer { from_facility, .. } => from_facility.is_none(),
                })
                .map(|m| m.quantity),
        );
        // Ingest never lets a lot give away more than it holds, so what left its stock
        // by any date is at most what it procured.
        let stock = u128::from(lot.procured.quantity)
            .checked_sub(left)
            .unwrap_or_else(|| {
                unreachable!("lot {} gave away more than it holds", lot.procured.lot_id)
            });
        if stock > 0 && procured < stale {
            let mut evidence = vec![lot.procured_at];
            evidence.extend(moves().map(|m| m.index));
            out.push(cx.draft(
                Rule::UndeployedGpus,
                lot.procured.lot_id.clone(),
                format!(
                    "lot {}: {stock} of {} {} GPUs procured on {} are still undeployed at {} (> {} days)",
                    lot.procured.lot_id, lot.procured.quantity, lot.procured.gpu_model, lot.procured.date, cx.end, cx.config.undeployed_days
                ),
                at_risk(
                    &Int::from(stock) * &Int::from(lot.procured.unit_price_minor),
                    &lot.procured.currency,
                ),
                evidence,
            ));
        }
        if lot.procured.currency == "CNY"
            && let Some(reference) = cx
                .config
                .reference_price(&lot.procured.gpu_model, procured.year())
        {
            let reference_minor = times(reference, 100);
            let price = lot.procured.unit_price_minor;
            let price_wide = u128::from(price);
            if product_lt(
                cx.config.price_high_pct.into(),
                reference_minor,
                price_wide,
                100,
            ) || product_lt(
                price_wide,
                100,
                cx.config.price_low_pct.into(),
                reference_minor,
            ) {
                out.push(cx.draft(
                    Rule::PriceAnomaly,
                    lot.procured.lot_id.clone(),
                    format!(
                        "lot {}: {} {} at {} each is {}% of the {} reference of {} CNY: the price may be inflated or the GPUs misdescribed",
                        lot.procured.lot_id,
                        lot.procured.quantity,
                        lot.procured.gpu_model,
                        money(price, "CNY"),
                        pct(price_wide, reference_minor),
                        procured.year(),
                        thousands(reference)
                    ),
                    at_risk(
                        &Int::from(price_wide.abs_diff(reference_minor))
                            * &Int::from(lot.procured.quantity),
                        "CNY",
                    ),
                    vec![lot.procured_at],
                ));
            }
        }
    }
    let equipment: Vec<_> = f
        .dated_subsidies()
        .filter(|(s, granted)| {
            s.granted.purpose == Purpose::Equipment
                && s.granted.currency == "CNY"
                && *granted <= cx.end
        })
        .map(|(s, _)| s)
        .collect();
    // The value of the GPUs procured for the site, in CNY, only where a grant needs it.
    let procured_value = || {
        let mut value = Int::zero();
        for (lot, ..) in procured_lots.clone() {
            if lot.procured.currency == "CNY" {
                value += &(&Int::from(lot.procured.quantity)
                    * &Int::from(lot.procured.unit_price_minor));
            }
        }
        value
    };
    let granted = Int::from(total(equipment.iter().map(|s| s.granted.amount_minor)));
    if let Some(procured_value) = (!equipment.is_empty()).then(procured_value)
        && granted > procured_value
    {
        out.push(cx.draft(
            Rule::SubsidyStacking,
            "",
            format!(
                "equipment subsidies of {} exceed the {} of GPUs procured for the site: the hardware may be funded more than once",
                money(granted.clone(), "CNY"),
                money(procured_value.clone(), "CNY")
            ),
            at_risk(&granted - &procured_value, "CNY"),
            equipment
                .iter()
                .map(|s| s.granted_at)
                .chain(procured_lots.map(|(lot, ..)| lot.procured_at))
                .collect(),
        ));
    }
    // subsidised-asset-sold
    let years = cx.config.months(cx.config.subsidised_sale_years);
    let capital: Vec<&Disbursed> = cx
        .disbursements()
        .filter(|d| {
            matches!(
                f.records.subsidies[d.subsidy].granted.purpose,
                Purpose::Equipment | Purpose::Construction
            )
        })
        .collect();
    if capital.is_empty() {
        return;
    }
    let within = |t: Date| {
        capital
            .iter()
            .filter(|d| d.date <= t && t <= add_months(d.date, years.saturating_mul(12)))
            .collect::<Vec<_>>()
    };
    let mut sales: Vec<(Date, u64, Sale<'_>)> = Vec::new();
    for (lot, _, moved) in f.dated_lots() {
        for (m, date) in lot.moves.iter().zip(moved) {
            if let LotMoveKind::Transfer {
                to_org: Some(org), ..
            } = &m.kind
            {
                let lot_id = lot.procured.lot_id.as_str();
                let gpus = Sale::Gpus(lot_id, m.quantity, org);
                sales.push((*date, m.index, gpus));
            }
        }
    }
    for spell in f.records.facility.operators.iter().skip(1) {
        if let Some(date) = &spell.date {
            sales.push((day(date), spell.index, Sale::Facility(&spell.org_id)));
        }
    }
    for (date, index, sale) in sales {
        if date > cx.end {
            continue;
        }
        let funding = within(date);
        if funding.is_empty() {
            continue;
        }
        let (key, what) = match sale {
            Sale::Gpus(lot_id, quantity, org) => (
                lot_id.to_string(),
                format!("{quantity} GPUs of lot {lot_id} sold to {org}"),
            ),
            Sale::Facility(org) => (String::new(), format!("the facility transferred to {org}")),
        };
        let amount = total(funding.iter().map(|d| d.amount_minor));
        let currency = cx.currency(funding[0]);
        let mut evidence = vec![index];
        evidence.extend(funding.iter().map(|d| d.index));
        out.push(cx.draft(
            Rule::SubsidisedAssetSold,
            key,
            format!(
                "{what} on {date}, within {years} years of {} of equipment or construction subsidy",
                money(amount, currency)
            ),
            at_risk(amount, currency),
            evidence,
        ));
    }
}

/// A sale that subsidised-asset-sold weighs, put in words only for a finding.
enum Sale<'a> {
    /// GPUs of a lot (its id, how many) sold to an organisation.
    Gpus(&'a str, u64, &'a str),
    /// The facility itself, transferred to an organisation.
    Facility(&'a str),
}

/// subsidy-condition-breach.
fn subsidies(cx: &Ctx<'_>, out: &mut Vec<Draft>) {
    for (position, s) in cx.f.records.subsidies.iter().enumerate() {
        let Some(condition) = &s.granted.condition else {
            continue;
        };
        let by = cx
            .f
            .condition_deadline(position)
            .unwrap_or_else(|| unreachable!("subsidy {position} has a condition, so a deadline"));
        if by > cx.end {
            continue;
        }
        let disbursed: Vec<_> = cx
            .disbursements()
            .filter(|d| d.subsidy == position)
            .collect();
        if disbursed.is_empty() {
            continue;
        }
        let last = Month::of(by);
        let first = last.window_start(cx.config.condition_months);
        let (util, reports) = cx.f.utilization(first, last);
        // No reports, or nothing available, counts as 0% (PROTOCOL §8).
        let (sold, available) = util.unwrap_or((0, 1));
        if product_lt(sold, 100, condition.min_utilization_pct.into(), available) {
            let amount = total(disbursed.iter().map(|d| d.amount_minor));
            let mut evidence = vec![s.granted_at];
            evidence.extend(disbursed.iter().map(|d| d.index));
            evidence.extend(reports);
            out.push(cx.draft(
                Rule::SubsidyConditionBreach,
                s.granted.subsidy_id.clone(),
                format!(
                    "subsidy {} required {}% utilization by {}; the {} months to then show {}%: {} disbursed may be subject to clawback",
                    s.granted.subsidy_id,
                    condition.min_utilization_pct,
                    condition.by,
                    cx.config.condition_months,
                    pct(sold, available),
                    money(amount, &s.granted.currency)
                ),
                at_risk(amount, &s.granted.currency),
                evidence,
            ));
        }
    }
}

/// inspection-shortfall.
fn inspections(cx: &Ctx<'_>, out: &mut Vec<Draft>) {
    for (i, date) in cx.f.dated_inspections() {
        if date > cx.end {
            continue;
        }
        let gpus = cx.f.gpus_on(date);
        if let Ok(recorded) = u128::try_from(gpus)
            && recorded > 0
            && product_lt(
                i.gpus_counted.into(),
                100,
                cx.config.inspection_min_pct.into(),
                recorded,
            )
        {
            out.push(cx.draft(
                Rule::InspectionShortfall,
                i.date.clone(),
                format!(
                    "inspectors counted {} GPUs on {} where the ledger records {gpus}: GPUs may be missing or never installed",
                    i.gpus_counted, i.date
                ),
                None,
                [vec![i.index], cx.f.gpu_evidence(date)].concat(),
            ));
        }
    }
}

/// duplicate-serial for the serials with a lot after as_of's last day: one finding per
/// serial, naming the facility of the later lot. Every other serial's finding is its
/// settled one (`SharedSerial::settled`), which the snapshot works out once and hands
/// out where it lies.
pub(super) fn unsettled_duplicate_serials(shared: &[SharedSerial], as_of: Month) -> Vec<Found> {
    let end = as_of.last_day();
    let unsettled: Vec<&SharedSerial> = shared.iter().filter(|s| !s.settled_by(end)).collect();
    // Thousands of serials can be shared in a large ledger; each is independent.
    crate::parallel::map(unsettled, SERIALS_PER_THREAD, |s| {
        duplicate_serial(&s.serial, &s.lots, end).map(Draft::finish)
    })
    .into_iter()
    .flatten()
    .collect()
}

/// A serial listed in more than one lot, with those lots.
#[derive(Clone, Debug)]
pub struct SharedSerial {
    pub serial: String,
    /// By date, then procurement entry.
    pub lots: Vec<SerialLot>,
}

impl SharedSerial {
    pub(super) fn new(serial: String, mut lots: Vec<SerialLot>) -> SharedSerial {
        lots.sort_by_key(|u| (u.date, u.procured_at));
        SharedSerial { serial, lots }
    }

    /// Whether its finding as of `end` is the settled one: no lot is dated after it.
    fn settled_by(&self, end: Date) -> bool {
        self.lots.last().is_some_and(|newest| newest.date <= end)
    }

    /// Its finding as of any day from the one returned on (its newest lot's), if it
    /// has one: every audit but one as of a month before some of its lots uses it.
    pub(super) fn settled(&self) -> Option<(Date, Found)> {
        let newest = self.lots.last()?;
        let found = duplicate_serial(&self.serial, &self.lots, Date::MAX)?.finish();
        Some((newest.date, found))
    }
}

/// Serials per thread below which they are judged on one thread.
const SERIALS_PER_THREAD: usize = 512;

/// duplicate-serial for one serial as of `end`, over its lots by date, then procurement
/// entry.
fn duplicate_serial(serial: &str, lots: &[SerialLot], end: Date) -> Option<Draft> {
    let lots = &lots[..lots.partition_point(|u| u.date <= end)];
    let mut names: Vec<&str> = lots.iter().map(|u| u.lot_id.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if names.len() < 2 {
        return None;
    }
    let later = lots.last()?;
    let mut evidence: Vec<u64> = lots
        .iter()
        .flat_map(|u| [u.procured_at, u.listed_at])
        .collect();
    evidence.sort_unstable();
    Some(Draft {
        rule: Rule::DuplicateSerial,
        facility_id: later.facility_id.clone(),
        key: serial.to_string(),
        summary: format!(
            "GPU serial {serial} is listed in {} lots ({}): the same GPU may be claimed twice",
            names.len(),
            names.join(", ")
        ),
        money: None,
        evidence,
    })
}

/// double-pledge: one finding per item, naming the facility of the later loan.
pub(super) fn double_pledges(
    shared: &[(String, Vec<Pledge>)],
    facilities: &super::Facilities,
    as_of: Month,
    out: &mut Vec<Draft>,
) {
    let end = as_of.last_day();
    for (item, pledges) in shared {
        let mut loans: Vec<&Pledge> = pledges.iter().filter(|p| day(&p.date) <= end).collect();
        loans.sort_by_key(|p| (day(&p.date), p.index));
        let mut ids: Vec<&str> = loans.iter().map(|p| p.loan_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() < 2 {
            continue;
        }
        let Some(later) = loans.last() else { continue };
        let amount = facilities
            .get(&later.facility_id)
            .and_then(|f| f.records.loans.iter().find(|l| l.loan_id == later.loan_id))
            .map(|l| (Int::from(l.amount_minor), l.currency.clone()));
        out.push(Draft {
            rule: Rule::DoublePledge,
            facility_id: later.facility_id.clone(),
            key: item.clone(),
            summary: format!(
                "{item} is pledged as collateral for {} loans ({}): lenders may share security they each believe is theirs",
                ids.len(),
                ids.join(", ")
            ),
            money: amount,
            evidence: loans.iter().map(|p| p.index).collect(),
        });
    }
}

#[cfg(test)]
mod tests {
    //! The rules' money and thresholds at the edges of PROTOCOL §2's integers: every amount
    //! at risk equals a big-integer computation, whatever the sizes. And the walk over a
    //! series' months that reporting-gap makes.

    use num_bigint::BigInt;
    use proptest::prelude::*;

    use super::*;
    use crate::audit::facts::tests::registered;
    use crate::domain::bodies::{Procurement, SubsidyGrant};
    use crate::domain::figures::{Figures, OccupancyFigures};
    use crate::domain::records::{Disbursement, LotRecord, StatusEvent, SubsidyRecord};

    const MAX: u64 = crate::limits::MAX_SAFE_INTEGER.unsigned_abs();
    const AS_OF: &str = "2025-06";

    fn lot(id: &str, quantity: u64, price: u64, date: &str) -> LotRecord {
        LotRecord {
            procured: Procurement {
                lot_id: id.into(),
                facility_id: "F-1".into(),
                gpu_model: "H100".into(),
                quantity,
                unit_price_minor: price,
                currency: "CNY".into(),
                supplier: "S".into(),
                date: date.into(),
                invoice_b3: None,
            },
            procured_at: 2,
            undeployed: quantity,
            deployed: Vec::new(),
            moves: Vec::new(),
            serials: 0,
            serial_entries: Vec::new(),
        }
    }

    fn subsidy(purpose: Purpose, granted: u64, disbursed: &[u64]) -> SubsidyRecord {
        SubsidyRecord {
            granted: SubsidyGrant {
                subsidy_id: "S-1".into(),
                facility_id: "F-1".into(),
                recipient_org: "op".into(),
                program: "P".into(),
                purpose,
                amount_minor: granted,
                currency: "CNY".into(),
                date: "2024-01-01".into(),
                condition: None,
            },
            grantor_org: "fund".into(),
            granted_at: 3,
            disbursements: disbursed
                .iter()
                .zip(10..)
                .map(|(amount, index)| Disbursement {
                    amount_minor: *amount,
                    currency: "CNY".into(),
                    date: "2024-02-01".into(),
                    index,
                })
                .collect(),
        }
    }

    /// An operational facility with these lots and subsidies, and an idle window.
    fn facility(lots: Vec<LotRecord>, subsidies: Vec<SubsidyRecord>) -> FacilityFacts {
        let mut record = registered("F-1", 1);
        record.statuses.push(StatusEvent {
            status: Status::Operational,
            effective: "2024-01-01".into(),
            index: 4,
        });
        let mut f = FacilityFacts::new(lots, Vec::new(), subsidies, Vec::new(), record);
        let occupancy = OccupancyFigures {
            gpus_installed: 0,
            gpu_hours_available: MAX,
            gpu_hours_sold: 1,
            gpu_hours_voucher: 0,
        };
        f.set_report(
            Month::parse(AS_OF).unwrap(),
            Figures::Occupancy(occupancy),
            5,
        );
        f
    }

    fn amounts(f: &FacilityFacts) -> Vec<(Rule, BigInt)> {
        let mut out = Vec::new();
        facility_rules(
            f,
            Month::parse(AS_OF).unwrap(),
            &AuditConfig::default(),
            &mut out,
        );
        out.into_iter()
            .filter_map(|d| {
                let (amount, _) = d.money?;
                Some((d.rule, amount.to_string().parse().unwrap()))
            })
            .collect()
    }

    fn amount_of(found: &[(Rule, BigInt)], rule: Rule) -> BigInt {
        let mut of = found.iter().filter(|(r, _)| *r == rule);
        let (_, amount) = of
            .next()
            .unwrap_or_else(|| panic!("{rule} did not fire: {found:?}"));
        assert!(of.next().is_none(), "{rule} fired twice");
        amount.clone()
    }

    #[test]
    fn walking_the_reported_months_answers_as_a_search_for_each_month_would() {
        let at = |k: i32| Month::parse("2025-01").map(|m| m.plus(k)).unwrap();
        for reported in [
            vec![],
            vec![0],
            vec![1, 2, 5],
            vec![-3, 0, 4, 11],
            vec![12, 13],
        ] {
            let mut walk = reported.iter().map(|k| at(*k)).peekable();
            // Asked of every month in order, as the rule asks (before it skips a month
            // in which the facility was not operational).
            for k in 0..12 {
                assert_eq!(
                    reports_for(&mut walk, at(k)),
                    reported.contains(&k),
                    "{reported:?} at month {k}"
                );
            }
        }
    }

    #[test]
    fn thousands_of_the_largest_disbursements_sum_exactly() {
        let disbursed = vec![MAX; 3_000];
        let f = facility(
            Vec::new(),
            vec![subsidy(Purpose::Operations, MAX, &disbursed)],
        );
        let want = BigInt::from(MAX) * 3_000;
        assert_eq!(amount_of(&amounts(&f), Rule::IdleFunded), want);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Stock × price (undeployed), |price − reference| × quantity (price anomaly) and
        /// grants over the value of the hardware (stacking), at any size.
        #[test]
        fn amounts_at_risk_equal_a_big_integer_reference(
            lots in proptest::collection::vec((1..=MAX, 1..=MAX), 1..6),
            grants in proptest::collection::vec(1..=MAX, 1..40),
        ) {
            let records: Vec<LotRecord> = lots
                .iter()
                .enumerate()
                .map(|(i, (q, p))| lot(&format!("L-{i}"), *q, *p, "2024-01-15"))
                .collect();
            let mut subsidies = Vec::new();
            for (i, g) in grants.iter().enumerate() {
                let mut s = subsidy(Purpose::Equipment, *g, &[]);
                s.granted.subsidy_id = format!("S-{i}");
                subsidies.push(s);
            }
            let f = facility(records, subsidies);
            let found = amounts(&f);
            let value: BigInt = lots.iter().map(|(q, p)| BigInt::from(*q) * BigInt::from(*p)).sum();
            let grant_total: BigInt = grants.iter().map(|g| BigInt::from(*g)).sum::<BigInt>();
            let stacking = found.iter().find(|(r, _)| *r == Rule::SubsidyStacking);
            if grant_total > value {
                prop_assert_eq!(stacking.map(|(_, a)| a.clone()), Some(grant_total - &value));
            } else {
                prop_assert!(stacking.is_none());
            }
            // Every lot is undeployed past 90 days: stock × price each.
            let undeployed: Vec<BigInt> = found
                .iter()
                .filter(|(r, _)| *r == Rule::UndeployedGpus)
                .map(|(_, a)| a.clone())
                .collect();
            let want: Vec<BigInt> = lots.iter().map(|(q, p)| BigInt::from(*q) * BigInt::from(*p)).collect();
            prop_assert_eq!(undeployed, want);
            // The 2024 H100 reference is 200,000 CNY = 20,000,000 fen a GPU.
            let reference = BigInt::from(20_000_000u64);
            for (q, p) in &lots {
                let price = BigInt::from(*p);
                let anomalous = &price * 100 > &reference * 150 || &price * 100 < &reference * 50;
                let diff = if price > reference { &price - &reference } else { &reference - &price };
                let expected = diff * BigInt::from(*q);
                prop_assert_eq!(
                    found.iter().any(|(r, a)| *r == Rule::PriceAnomaly && *a == expected),
                    anomalous
                );
            }
        }
    }
}
