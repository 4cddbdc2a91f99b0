//! The human pages of PROTOCOL §10, rendered on the server from the same report values the
//! JSON API answers with (askama templates in `templates/`, no script). Every figure is
//! a `<data>` element naming its field in the API answer of its section's
//! `data-source`, so what a person reads can be checked against the API; every chart is
//! inline SVG with a `<title>`. Strings from the ledger are escaped by the templates.
//! This module knows HTML but not HTTP: `server::pages` routes requests to it.

pub mod chart;
pub mod fig;

use std::sync::Arc;

use askama::Template;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::audit::FacilityFacts;
use crate::audit::render::Selection;
use crate::audit::{Finding, Rule, Severity};
use crate::exact::Int;
use crate::report::assumptions::Assumption;
use crate::report::facility::{FacilityReport, FacilitySummary};
use crate::report::region::{self, NATIONAL, Region};
use crate::report::valuation::{ScreenRow, Valuation};
use crate::report::{Basis, RegionsReport, Reports, ScreenPage};
use chart::{Chart, Line, Source, Value};
use fig::Fig;

/// Rows of findings a page lists at most; the API pages through the rest.
pub const MAX_FINDINGS_SHOWN: usize = 500;
/// Facilities the overview lists as most at risk.
const AT_RISK_SHOWN: usize = 10;

/// The page's head: what every page names (PROTOCOL §9 "Citable").
pub struct Head {
    pub title: String,
    /// `?as_of=M`, for links that keep the month.
    pub query: String,
    pub as_of: String,
    pub window: String,
    pub tree_size: u64,
    pub root: String,
    pub root_short: String,
    pub config_b3: String,
    pub config_short: String,
}

impl Head {
    pub fn new(title: impl Into<String>, basis: &Basis) -> Head {
        Head {
            title: title.into(),
            query: format!("?as_of={}", basis.as_of),
            as_of: basis.as_of.clone(),
            window: format!("{} to {}", basis.window.first, basis.window.last),
            tree_size: basis.checkpoint.tree_size,
            root: basis.checkpoint.root.clone(),
            root_short: basis.checkpoint.root.chars().take(12).collect(),
            config_b3: basis.config_b3.clone(),
            config_short: basis.config_b3.chars().take(12).collect(),
        }
    }
}

/// A labelled figure (or a money map's figures).
pub struct Stat {
    pub label: &'static str,
    pub figs: Vec<Fig>,
    /// The ledger entries the figures rest on, where they are few enough to list.
    pub entries: Vec<u64>,
}

fn stat(label: &'static str, fig: Fig) -> Stat {
    Stat {
        label,
        figs: vec![fig],
        entries: Vec::new(),
    }
}

/// A label over several figures (a money map's currencies, the statuses).
fn stats(label: &'static str, figs: Vec<Fig>) -> Stat {
    Stat {
        label,
        figs,
        entries: Vec::new(),
    }
}

impl Stat {
    fn resting_on(mut self, entries: impl IntoIterator<Item = u64>) -> Stat {
        self.entries.extend(entries);
        self
    }
}

/// A path segment, percent-encoded (provinces are free text).
pub fn segment(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// A magnitude for placing a mark; exactness lives in the mark's `data-value`.
fn magnitude(x: &Int) -> f64 {
    x.to_f64()
}

fn drawn(exact: &Int, label: String) -> Option<Value> {
    Some(Value {
        exact: exact.to_string(),
        magnitude: magnitude(exact),
        label,
    })
}

fn percent_label(y: f64) -> String {
    format!("{:.0}%", y / 100.0)
}

fn amount_label(y: f64) -> String {
    if y >= 1e9 {
        format!("{:.1}G", y / 1e9)
    } else if y >= 1e6 {
        format!("{:.1}M", y / 1e6)
    } else if y >= 1e3 {
        format!("{:.1}k", y / 1e3)
    } else {
        format!("{y:.0}")
    }
}

// ---------------------------------------------------------------------------------------
// Regions

pub struct RegionRow {
    pub name: String,
    pub href: String,
    pub source: String,
    pub facilities: usize,
    pub gpus: Fig,
    pub utilization: Fig,
    pub idle_share: Fig,
    pub disbursed: Vec<Fig>,
    pub flagged: Vec<Fig>,
    pub resold_share: Fig,
}

fn region_source(name: &str, as_of: &str) -> String {
    format!("/v1/reports/regions/{}?as_of={as_of}", segment(name))
}

fn region_row(r: &Region, as_of: &str) -> RegionRow {
    RegionRow {
        name: r.region.clone(),
        href: format!("/regions/{}?as_of={as_of}", segment(&r.region)),
        source: region_source(&r.region, as_of),
        facilities: r.facility_ids.len(),
        gpus: fig::count("gpus_deployed", &r.gpus_deployed),
        utilization: fig::ratio("utilization_bp", &r.utilization_bp),
        idle_share: fig::ratio("idle_share_bp", &r.idle_share_bp),
        disbursed: fig::money_map("subsidies_disbursed", &r.subsidies_disbursed),
        flagged: fig::money_map("disbursed_at_flagged", &r.disbursed_at_flagged),
        resold_share: fig::ratio("resold_share_bp", &r.resold_share_bp),
    }
}

fn region_stats(r: &Region) -> Vec<Stat> {
    let statuses = r
        .facilities
        .iter()
        .into_iter()
        .map(|(status, n)| fig::Fig {
            text: format!("{n} {}", status.replace('_', " ")),
            value: n.to_string(),
            field: format!("facilities.{status}"),
        })
        .collect();
    vec![
        stats("Facilities by status", statuses),
        stat(
            "GPUs deployed",
            fig::count("gpus_deployed", &r.gpus_deployed),
        ),
        stat(
            "GPU-hours sold in the window",
            fig::count("gpu_hours_sold", &r.gpu_hours_sold),
        ),
        stat(
            "of which on vouchers",
            fig::count("gpu_hours_voucher", &r.gpu_hours_voucher),
        ),
        stat(
            "GPU-hours available",
            fig::count("gpu_hours_available", &r.gpu_hours_available),
        ),
        stat(
            "Utilization (sold / available)",
            fig::ratio("utilization_bp", &r.utilization_bp),
        ),
        stat("Idle GPUs", fig::count("idle_gpus", &r.idle_gpus)),
        stat(
            "Idle share of deployed GPUs",
            fig::ratio("idle_share_bp", &r.idle_share_bp),
        ),
        stats(
            "Subsidies disbursed",
            fig::money_map("subsidies_disbursed", &r.subsidies_disbursed),
        ),
        stats(
            "of which to flagged facilities",
            fig::money_map("disbursed_at_flagged", &r.disbursed_at_flagged),
        ),
        stat(
            "Energy consumed in the window, kWh",
            fig::count("consumed_kwh", &r.consumed_kwh),
        ),
        stat(
            "Energy resold, kWh",
            fig::count("resold_kwh", &r.resold_kwh),
        ),
        stat(
            "Resold share",
            fig::ratio("resold_share_bp", &r.resold_share_bp),
        ),
    ]
}

/// The idle-share and subsidy-at-risk charts over the provinces.
fn province_charts(report: &RegionsReport) -> Vec<Chart> {
    let as_of = &report.basis.as_of;
    let provinces: Vec<&Region> = report
        .regions
        .iter()
        .filter(|r| r.region != NATIONAL)
        .collect();
    let keys: Vec<String> = provinces.iter().map(|r| r.region.clone()).collect();
    let source = Source {
        url: format!("/v1/reports/regions?as_of={as_of}"),
        list: "regions".into(),
        key_field: "region".into(),
    };
    let idle = chart::bars(
        "chart-idle",
        format!("Idle share of deployed GPUs by province, as of {as_of}"),
        source.clone(),
        keys.clone(),
        vec![Line {
            name: "idle share".into(),
            class: "s2",
            field: "idle_share_bp".into(),
            values: provinces
                .iter()
                .map(|r| {
                    let bp = r.idle_share_bp.as_ref()?;
                    drawn(bp, fig::ratio("", &r.idle_share_bp).text)
                })
                .collect(),
        }],
        percent_label,
    );
    let at_risk = chart::bars(
        "chart-subsidy-at-risk",
        format!(
            "Subsidy disbursed to facilities with a high or critical finding, CNY, by province, as of {as_of}"
        ),
        source,
        keys,
        vec![
            Line {
                name: "disbursed".into(),
                class: "s1",
                field: "subsidies_disbursed.CNY".into(),
                values: provinces
                    .iter()
                    .map(|r| cny(&r.subsidies_disbursed))
                    .collect(),
            },
            Line {
                name: "at flagged facilities".into(),
                class: "s2",
                field: "disbursed_at_flagged.CNY".into(),
                values: provinces
                    .iter()
                    .map(|r| cny(&r.disbursed_at_flagged))
                    .collect(),
            },
        ],
        |y| amount_label(y / 100.0),
    );
    vec![idle, at_risk]
}

fn cny(m: &crate::report::Money) -> Option<Value> {
    let amount = m.0.get("CNY")?;
    drawn(amount, fig::money("", amount, "CNY").text)
}

#[derive(Template)]
#[template(path = "index.html")]
pub struct IndexPage {
    pub head: Head,
    pub national: Section,
    pub regions: Vec<RegionRow>,
    pub charts: Vec<Chart>,
    pub at_risk: Vec<RiskRow>,
}

/// Figures that come from one API answer.
pub struct Section {
    pub source: String,
    pub stats: Vec<Stat>,
}

#[derive(Template)]
#[template(path = "regions.html")]
pub struct RegionsPage {
    pub head: Head,
    pub regions: Vec<RegionRow>,
    pub charts: Vec<Chart>,
}

pub struct TopRow {
    pub rule: &'static str,
    pub province_query: String,
    pub count: Fig,
}

pub struct FacilityRow {
    pub facility_id: String,
    pub name: String,
    pub href: String,
    pub source: String,
    pub status: Fig,
    pub gpus: Fig,
    pub utilization: String,
}

#[derive(Template)]
#[template(path = "region.html")]
pub struct RegionPage {
    pub head: Head,
    pub name: String,
    pub region: Section,
    pub top_findings: Vec<TopRow>,
    pub facilities: Vec<FacilityRow>,
    pub charts: Vec<Chart>,
}

// ---------------------------------------------------------------------------------------
// Valuation

pub struct RiskRow {
    pub facility_id: String,
    pub province: String,
    pub href: String,
    pub source: String,
    pub gpus: Fig,
    pub paid_utilization: Fig,
    pub noi: Fig,
    pub asset: Fig,
    pub equity: Fig,
    pub distressed: Fig,
}

fn risk_row(r: &ScreenRow, as_of: &str, assumptions: &str) -> RiskRow {
    RiskRow {
        facility_id: r.facility_id.clone(),
        province: r.province.clone(),
        href: format!("/facilities/{}?as_of={as_of}", r.facility_id),
        source: format!(
            "/v1/reports/valuation/{}?as_of={as_of}{assumptions}",
            r.facility_id
        ),
        gpus: fig::count("gpus", &r.gpus),
        paid_utilization: fig::ratio("paid_utilization_bp", &r.paid_utilization_bp),
        noi: fig::money("noi_month", &r.noi_month, "CNY"),
        asset: fig::money("asset_value", &r.asset_value, "CNY"),
        equity: fig::money("equity_value", &r.equity_value, "CNY"),
        distressed: fig::flag("distressed", r.distressed),
    }
}

pub struct AssumptionInput {
    pub name: String,
    pub value: String,
    pub source: &'static str,
}

#[derive(Template)]
#[template(path = "valuation.html")]
pub struct ValuationPage {
    pub head: Head,
    pub province: String,
    pub distressed: String,
    pub assumptions: Vec<AssumptionInput>,
    pub api: String,
    pub csv: String,
    pub at_risk: Vec<RiskRow>,
    pub next: Option<String>,
}

fn valuation_stats(v: &Valuation) -> Vec<Stat> {
    let money = |field: &'static str, x: &Int| fig::money(field, x, "CNY");
    vec![
        stat("GPUs at the facility", fig::count("gpus", &v.gpus)),
        stat(
            "Paid utilization",
            fig::ratio("paid_utilization_bp", &v.paid_utilization_bp),
        ),
        stat(
            "Revenue per month",
            money("revenue_month", &v.revenue_month),
        ),
        stat("Energy per month", money("energy_month", &v.energy_month)),
        stat(
            "Maintenance per month",
            money("maintenance_month", &v.maintenance_month),
        ),
        stat(
            "Net operating income per month",
            money("noi_month", &v.noi_month),
        ),
        stat("Income value", money("income_value", &v.income_value)),
        stat(
            "Liquidation value",
            money("liquidation_value", &v.liquidation_value),
        ),
        stat("Asset value", money("asset_value", &v.asset_value)),
        stat(
            "Loans outstanding",
            money("loans_outstanding", &v.loans_outstanding),
        ),
        stat(
            "Subsidy clawback exposure",
            money("clawback_exposure", &v.clawback_exposure),
        ),
        stat("Equity value", money("equity_value", &v.equity_value)),
        stat("Distressed", fig::flag("distressed", v.distressed)),
    ]
}

// ---------------------------------------------------------------------------------------
// Facility

pub struct PermitRow {
    pub id: String,
    pub kind: &'static str,
    pub from: String,
    pub until: String,
    pub issuer: String,
    pub revoked: String,
    pub index: u64,
}

pub struct LotRow {
    pub id: String,
    pub model: String,
    pub quantity: Fig,
    pub price: Fig,
    pub date: String,
    pub deployed: Fig,
    pub undeployed: Fig,
    pub transferred: Fig,
    pub index: u64,
}

pub struct MoneyRow {
    pub id: String,
    pub kind: String,
    pub amount: Fig,
    pub disbursed: Option<Fig>,
    pub date: String,
    pub index: u64,
}

pub struct MonthRow {
    pub period: String,
    pub utilization: Fig,
    pub voucher_share: Fig,
    pub consumed: Vec<Fig>,
    pub resold: Vec<Fig>,
    pub pue: Fig,
    pub entries: Vec<u64>,
}

#[derive(Template)]
#[template(path = "facility.html")]
pub struct FacilityPage {
    pub head: Head,
    pub name: String,
    pub facility_id: String,
    pub city: String,
    pub province: String,
    pub province_path: String,
    pub registered_at: u64,
    pub source: String,
    pub state: Vec<Stat>,
    pub permits: Vec<PermitRow>,
    pub lots: Vec<LotRow>,
    pub money: Vec<MoneyRow>,
    pub charts: Vec<Chart>,
    pub monthly: Vec<MonthRow>,
    pub findings: Vec<Arc<Finding>>,
    pub valuation_source: String,
    pub valuation: Vec<Stat>,
}

fn optional(field: String, x: Option<u64>) -> Vec<Fig> {
    x.map(|x| fig::count(field, x)).into_iter().collect()
}

fn series_value(x: Option<u64>) -> Option<Value> {
    x.map(|x| {
        let exact = Int::from(x);
        Value {
            magnitude: magnitude(&exact),
            label: fig::grouped(&exact.to_string()),
            exact: exact.to_string(),
        }
    })
}

fn ratio_value(bp: &Option<Int>) -> Option<Value> {
    drawn(bp.as_ref()?, fig::ratio("", bp).text)
}

fn facility_charts(r: &FacilityReport<'_>, source: &str) -> Vec<Chart> {
    let keys: Vec<String> = r.monthly.iter().map(|m| m.period.clone()).collect();
    let monthly = Source {
        url: source.to_string(),
        list: "monthly".into(),
        key_field: "period".into(),
    };
    let (first, last) = (
        keys.first().cloned().unwrap_or_default(),
        keys.last().cloned().unwrap_or_default(),
    );
    let utilization = chart::lines(
        "chart-utilization",
        format!("Monthly utilization and voucher share, {first} to {last}"),
        monthly.clone(),
        keys.clone(),
        vec![
            Line {
                name: "utilization".into(),
                class: "s1",
                field: "utilization_bp".into(),
                values: r
                    .monthly
                    .iter()
                    .map(|m| ratio_value(&m.utilization_bp))
                    .collect(),
            },
            Line {
                name: "voucher share of sold hours".into(),
                class: "s2",
                field: "voucher_share_bp".into(),
                values: r
                    .monthly
                    .iter()
                    .map(|m| ratio_value(&m.voucher_share_bp))
                    .collect(),
            },
        ],
        percent_label,
    );
    let power = chart::lines(
        "chart-power",
        format!("Power consumed and resold to the grid, kWh, {first} to {last}"),
        monthly,
        keys,
        vec![
            Line {
                name: "consumed".into(),
                class: "s1",
                field: "consumed_kwh".into(),
                values: r
                    .monthly
                    .iter()
                    .map(|m| series_value(m.consumed_kwh))
                    .collect(),
            },
            Line {
                name: "resold".into(),
                class: "s2",
                field: "resold_kwh".into(),
                values: r
                    .monthly
                    .iter()
                    .map(|m| series_value(m.resold_kwh))
                    .collect(),
            },
        ],
        amount_label,
    );
    let months: Vec<String> = r.gpu_timeline.iter().map(|m| m.month.clone()).collect();
    let gpus = chart::lines(
        "chart-gpus",
        format!(
            "GPUs procured, at the facility and counted by inspectors, {} to {}",
            months.first().cloned().unwrap_or_default(),
            months.last().cloned().unwrap_or_default()
        ),
        Source {
            url: source.to_string(),
            list: "gpu_timeline".into(),
            key_field: "month".into(),
        },
        months,
        vec![
            Line {
                name: "procured".into(),
                class: "s1",
                field: "procured".into(),
                values: r
                    .gpu_timeline
                    .iter()
                    .map(|m| drawn(&m.procured, fig::grouped(&m.procured.to_string())))
                    .collect(),
            },
            Line {
                name: "at the facility".into(),
                class: "s3",
                field: "at_facility".into(),
                values: r
                    .gpu_timeline
                    .iter()
                    .map(|m| {
                        let n = Int::from(m.at_facility);
                        drawn(&n, fig::grouped(&n.to_string()))
                    })
                    .collect(),
            },
            Line {
                name: "counted by inspectors".into(),
                class: "s2",
                field: "counted".into(),
                values: r
                    .gpu_timeline
                    .iter()
                    .map(|m| series_value(m.counted))
                    .collect(),
            },
        ],
        amount_label,
    );
    vec![utilization, power, gpus]
}

/// The facility page from its report and valuation (both as of the same month).
pub fn facility(report: &FacilityReport<'_>, valuation: &Valuation) -> FacilityPage {
    let as_of = &report.basis.as_of;
    let reg = report.facility.body;
    let source = format!("/v1/facilities/{}?as_of={as_of}", reg.facility_id);
    let mut state = vec![
        stat("Status", fig::word("status", report.status.as_str())).resting_on(report.status_index),
        stat("Operator", fig::word("operator", report.operator))
            .resting_on(report.operators.last().map(|o| o.index)),
        stat(
            "GPUs at the facility",
            fig::count("gpus_at_facility", report.gpus_at_facility),
        ),
        stat(
            "GPUs planned",
            fig::count("facility.planned_gpus", reg.planned_gpus),
        ),
        stat(
            "IT capacity planned, kW",
            fig::count("facility.planned_it_kw", reg.planned_it_kw),
        ),
    ];
    for (model, counts) in &report.gpus_by_model {
        let part = |field: &str, shown: &str, n: &Int| fig::Fig {
            text: format!("{} {shown}", fig::grouped(&n.to_string())),
            value: n.to_string(),
            field: format!("gpus_by_model.{model}.{field}"),
        };
        let mut procured = part("procured", "procured", &counts.procured);
        procured.text = format!("{model}: {}", procured.text);
        state.push(stats(
            "GPUs procured, deployed and sold, by model",
            vec![
                procured,
                part("deployed", "deployed", &counts.deployed),
                part("transferred", "sold", &counts.transferred),
            ],
        ));
    }
    let permits = report
        .permits
        .iter()
        .map(|p| PermitRow {
            id: p.permit_id.to_string(),
            kind: p.kind.as_str(),
            from: p.valid_from.to_string(),
            until: p.valid_until.to_string(),
            issuer: p.issuer_org.to_string(),
            revoked: p
                .revocations
                .iter()
                .map(|r| format!("from {} ({})", r.effective, r.reason))
                .collect::<Vec<_>>()
                .join("; "),
            index: p.index,
        })
        .collect();
    let lots = report
        .gpus
        .iter()
        .enumerate()
        .map(|(i, l)| LotRow {
            id: l.lot_id.to_string(),
            model: l.gpu_model.to_string(),
            quantity: fig::count(format!("gpus.{i}.quantity"), l.quantity),
            price: fig::money(
                format!("gpus.{i}.unit_price_minor"),
                &Int::from(l.unit_price_minor),
                l.currency,
            ),
            date: l.date.to_string(),
            deployed: fig::count(format!("gpus.{i}.deployed"), &l.deployed),
            undeployed: fig::count(format!("gpus.{i}.undeployed"), l.undeployed),
            transferred: fig::count(format!("gpus.{i}.transferred"), &l.transferred),
            index: l.index,
        })
        .collect();
    let mut money: Vec<MoneyRow> = report
        .subsidies
        .iter()
        .enumerate()
        .map(|(i, s)| MoneyRow {
            id: s.subsidy_id.to_string(),
            kind: format!(
                "{} subsidy ({})",
                s.purpose.as_str().replace('_', " "),
                s.program
            ),
            amount: fig::money(
                format!("subsidies.{i}.amount_minor"),
                &Int::from(s.amount_minor),
                s.currency,
            ),
            disbursed: Some(fig::money(
                format!("subsidies.{i}.disbursed_minor"),
                &s.disbursed_minor,
                s.currency,
            )),
            date: s.date.to_string(),
            index: s.index,
        })
        .collect();
    money.extend(report.loans.iter().enumerate().map(|(i, l)| {
        MoneyRow {
            id: l.loan_id.to_string(),
            kind: if l.state_backed {
                "state-backed loan"
            } else {
                "loan"
            }
            .to_string(),
            amount: fig::money(
                format!("loans.{i}.amount_minor"),
                &Int::from(l.amount_minor),
                l.currency,
            ),
            disbursed: None,
            date: l.date.to_string(),
            index: l.index,
        }
    }));
    let monthly = report
        .monthly
        .iter()
        .enumerate()
        .map(|(i, m)| MonthRow {
            period: m.period.clone(),
            utilization: fig::ratio(format!("monthly.{i}.utilization_bp"), &m.utilization_bp),
            voucher_share: fig::ratio(format!("monthly.{i}.voucher_share_bp"), &m.voucher_share_bp),
            consumed: optional(format!("monthly.{i}.consumed_kwh"), m.consumed_kwh),
            resold: optional(format!("monthly.{i}.resold_kwh"), m.resold_kwh),
            pue: fig::factor(format!("monthly.{i}.pue_bp"), &m.pue_bp),
            entries: [m.occupancy_report, m.power_report, m.meter_reading]
                .into_iter()
                .flatten()
                .collect(),
        })
        .collect();
    FacilityPage {
        head: Head::new(reg.name.clone(), &report.basis),
        name: reg.name.clone(),
        facility_id: reg.facility_id.clone(),
        city: reg.city.clone(),
        province: reg.province.clone(),
        province_path: segment(&reg.province),
        registered_at: report.facility.registered_at,
        charts: facility_charts(report, &source),
        source,
        state,
        permits,
        lots,
        money,
        monthly,
        findings: report.findings.clone(),
        valuation_source: format!("/v1/reports/valuation/{}?as_of={as_of}", reg.facility_id),
        valuation: valuation_stats(valuation),
    }
}

// ---------------------------------------------------------------------------------------
// Findings

pub struct Choice {
    pub value: &'static str,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "findings.html")]
pub struct FindingsPage {
    pub head: Head,
    pub rules: Vec<Choice>,
    pub severities: Vec<Choice>,
    pub province: String,
    pub facility: String,
    pub total: usize,
    pub shown: usize,
    pub api: String,
    pub csv: String,
    pub findings: Vec<Arc<Finding>>,
}

pub fn findings(basis: &Basis, query: &Selection, all: Vec<Arc<Finding>>) -> FindingsPage {
    let mut api_query: Vec<(&str, String)> = vec![("as_of", basis.as_of.clone())];
    if let Some(r) = query.rule {
        api_query.push(("rule", r.as_str().to_string()));
    }
    if let Some(s) = query.severity {
        api_query.push(("severity", s.as_str().to_string()));
    }
    if let Some(p) = &query.province {
        api_query.push(("province", p.clone()));
    }
    if let Some(f) = &query.facility {
        api_query.push(("facility", f.clone()));
    }
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(api_query.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let total = all.len();
    let findings: Vec<Arc<Finding>> = all.into_iter().take(MAX_FINDINGS_SHOWN).collect();
    FindingsPage {
        head: Head::new("Findings", basis),
        rules: Rule::ALL
            .iter()
            .map(|r| Choice {
                value: r.as_str(),
                selected: query.rule == Some(*r),
            })
            .collect(),
        severities: [
            Severity::Critical,
            Severity::High,
            Severity::Medium,
            Severity::Low,
        ]
        .into_iter()
        .map(|s| Choice {
            value: s.as_str(),
            selected: query.severity == Some(s),
        })
        .collect(),
        province: query.province.clone().unwrap_or_default(),
        facility: query.facility.clone().unwrap_or_default(),
        total,
        shown: findings.len(),
        api: format!("/v1/findings?{encoded}"),
        csv: format!("/v1/findings?{encoded}&format=csv"),
        findings,
    }
}

// ---------------------------------------------------------------------------------------
// Pages from reports

/// `/`: national figures, the provinces, the facilities most at risk.
pub fn index(reports: &Reports<'_>) -> IndexPage {
    let all = reports.regions();
    let as_of = all.basis.as_of.clone();
    let national = all
        .regions
        .iter()
        .find(|r| r.region == NATIONAL)
        .map(|r| Section {
            source: region_source(NATIONAL, &as_of),
            stats: region_stats(r),
        })
        .unwrap_or_else(|| unreachable!("the regions report always has national"));
    let valuations = reports.valuations(&Default::default());
    IndexPage {
        head: Head::new("Overview", &all.basis),
        national,
        regions: all
            .regions
            .iter()
            .filter(|r| r.region != NATIONAL)
            .map(|r| region_row(r, &as_of))
            .collect(),
        charts: province_charts(&all),
        at_risk: valuations
            .iter()
            .take(AT_RISK_SHOWN)
            .map(|v| risk_row(&ScreenRow::of(v), &as_of, ""))
            .collect(),
    }
}

/// `/regions`.
pub fn regions(reports: &Reports<'_>) -> RegionsPage {
    let all = reports.regions();
    let as_of = all.basis.as_of.clone();
    RegionsPage {
        head: Head::new("Regions", &all.basis),
        regions: all.regions.iter().map(|r| region_row(r, &as_of)).collect(),
        charts: province_charts(&all),
    }
}

/// `/regions/{province}`, or None when no facility in the report is in it.
pub fn region(reports: &Reports<'_>, name: &str) -> Option<RegionPage> {
    let one = reports.region(name)?;
    let as_of = one.basis.as_of.clone();
    let r = &one.region;
    let window = reports.window;
    let province_query = if name == NATIONAL {
        String::new()
    } else {
        format!("&province={}", segment(name))
    };
    let member_facts: Vec<&FacilityFacts> = r
        .facility_ids
        .iter()
        .filter_map(|id| reports.snapshot.facilities.get(id))
        .collect();
    let members: Vec<FacilitySummary<'_>> = member_facts
        .iter()
        .map(|f| FacilitySummary::of(f, reports.as_of()))
        .collect();
    let facilities: Vec<FacilityRow> = members
        .iter()
        .zip(&member_facts)
        .map(|(f, facts)| {
            let utilization = facts.utilization(window.first, window.last).0.map_or_else(
                || "n/a".to_string(),
                |(sold, available)| {
                    fig::ratio(
                        "",
                        &Int::basis_points(&Int::from(sold), &Int::from(available)),
                    )
                    .text
                },
            );
            FacilityRow {
                facility_id: f.facility_id.to_string(),
                name: f.name.to_string(),
                href: format!("/facilities/{}?as_of={as_of}", f.facility_id),
                source: format!("/v1/facilities/{}?as_of={as_of}", f.facility_id),
                status: fig::word("status", f.status.as_str()),
                gpus: fig::count("gpus_at_facility", f.gpus_deployed),
                utilization,
            }
        })
        .collect();
    let screen = format!(
        "/v1/reports/valuation?as_of={as_of}&limit={}{}",
        crate::limits::MAX_BATCH_ENTRIES,
        province_query
    );
    let keys: Vec<String> = members.iter().map(|f| f.facility_id.to_string()).collect();
    let idle: Vec<bool> = member_facts
        .iter()
        .map(|facts| region::is_idle(facts, window, &reports.config.audit))
        .collect();
    let gpus_of = |want_idle: bool| -> Vec<Option<Value>> {
        members
            .iter()
            .zip(&idle)
            .map(|(f, i)| {
                (*i == want_idle).then(|| {
                    let n = Int::from(f.gpus_deployed);
                    Value {
                        magnitude: magnitude(&n),
                        label: fig::grouped(&n.to_string()),
                        exact: n.to_string(),
                    }
                })
            })
            .collect()
    };
    let chart = chart::bars(
        "chart-facilities",
        format!(
            "GPUs at each facility in {name}, idle (window utilization undefined or below the idle threshold) or in use, as of {as_of}"
        ),
        Source {
            url: screen,
            list: "rows".into(),
            key_field: "facility_id".into(),
        },
        keys,
        vec![
            Line {
                name: "in use".into(),
                class: "s1",
                field: "gpus".into(),
                values: gpus_of(false),
            },
            Line {
                name: "idle".into(),
                class: "s2",
                field: "gpus".into(),
                values: gpus_of(true),
            },
        ],
        amount_label,
    );
    Some(RegionPage {
        head: Head::new(name.to_string(), &one.basis),
        name: name.to_string(),
        region: Section {
            source: region_source(name, &as_of),
            stats: region_stats(r),
        },
        top_findings: r
            .top_findings
            .0
            .iter()
            .map(|(rule, n)| TopRow {
                rule: rule.as_str(),
                province_query: format!("{province_query}&as_of={as_of}"),
                count: fig::count(format!("top_findings.{}", rule.as_str()), n),
            })
            .collect(),
        facilities,
        charts: vec![chart],
    })
}

/// `/valuation`: a page of the screen with the assumptions in force.
pub fn valuation(page: &ScreenPage, query: &[(String, String)], path: &str) -> ValuationPage {
    let as_of = &page.basis.as_of;
    let assumption_query: String = query
        .iter()
        .filter(|(k, _)| Assumption::parse(k).is_some() || k.starts_with("rent."))
        .map(|(k, v)| {
            format!(
                "&{}",
                form_urlencoded::Serializer::new(String::new())
                    .append_pair(k, v)
                    .finish()
            )
        })
        .collect();
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let encoded = |extra: &[(&str, &str)]| {
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| !["after", "format", "as_of"].contains(&k.as_str()))
            .cloned()
            .collect();
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    };
    let source = |s: crate::report::assumptions::Source| match s {
        crate::report::assumptions::Source::Default => "default",
        crate::report::assumptions::Source::Config => "config",
        crate::report::assumptions::Source::Query => "query",
    };
    let mut assumptions: Vec<AssumptionInput> = page
        .assumptions
        .scalars
        .iter()
        .map(|(name, s)| AssumptionInput {
            name: name.to_string(),
            value: s.value.to_string(),
            source: source(s.source),
        })
        .collect();
    assumptions.extend(
        page.assumptions
            .rent_gpu_month_minor
            .iter()
            .map(|(model, s)| AssumptionInput {
                name: format!("rent.{model}"),
                value: s.value.to_string(),
                source: source(s.source),
            }),
    );
    ValuationPage {
        head: Head::new("Valuation", &page.basis),
        province: get("province"),
        distressed: get("distressed"),
        assumptions,
        api: format!("/v1/reports/valuation?{}", encoded(&[("as_of", as_of)])),
        csv: format!(
            "/v1/reports/valuation?{}",
            encoded(&[("as_of", as_of), ("format", "csv")])
        ),
        at_risk: page
            .rows
            .iter()
            .map(|r| risk_row(r, as_of, &assumption_query))
            .collect(),
        next: page
            .next
            .as_ref()
            .map(|n| format!("{path}?{}", encoded(&[("as_of", as_of), ("after", n)]))),
    }
}

/// A page that could not be made: what went wrong, as a page.
#[derive(Template)]
#[template(path = "problem.html")]
pub struct ProblemPage {
    pub heading: String,
    pub detail: String,
}
