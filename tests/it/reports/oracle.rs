//! Generated worlds against an independent oracle: `dcledger gen` writes a world, it is
//! loaded, and every region figure (each province and national) and every facility's
//! valuation is computed here straight from the world's `entries.ndjson` with this
//! file's own arithmetic, then compared with what `dcledger report` answers. Nothing of
//! `dcledger::report` or `dcledger::audit` is called for the expectations; the findings,
//! which the audit tests check against each world's labels, are taken from the CLI's
//! `dcledger audit --format json`, and only the figures that rest on them use them.

use std::collections::{BTreeMap, BTreeSet};

use num_bigint::BigInt;
use num_traits::{Signed, ToPrimitive, Zero};
use serde_json::Value;

use super::{Doc, big};
use crate::http::{Server, get, new_agent};
use crate::support::{path_str, run_ok, stdout};
use crate::worlds::load;

/// PROTOCOL §8's rules, in its order (the order `top_findings` breaks ties by).
const RULES: [&str; 20] = [
    "idle-funded",
    "stalled-funded",
    "voucher-dependence",
    "power-resale",
    "resale-without-permit",
    "land-banking",
    "undeployed-gpus",
    "phantom-capacity",
    "duplicate-serial",
    "double-pledge",
    "price-anomaly",
    "subsidy-stacking",
    "subsidised-asset-sold",
    "reporting-gap",
    "permit-missing",
    "power-occupancy-mismatch",
    "meter-mismatch",
    "inspection-shortfall",
    "subsidy-condition-breach",
    "pue-implausible",
];

/// PROTOCOL §8.1's reference prices, CNY per GPU, 2023 to 2026.
const PRICES: [(&str, [u64; 4]); 5] = [
    ("H100", [220_000, 200_000, 160_000, 130_000]),
    ("H800", [200_000, 180_000, 140_000, 110_000]),
    ("A100", [120_000, 100_000, 80_000, 60_000]),
    ("H20", [110_000, 100_000, 90_000, 80_000]),
    ("Ascend-910B", [120_000, 110_000, 100_000, 90_000]),
];

/// The valuation's assumptions, PROTOCOL §9's defaults unless a test sets them.
pub(super) struct Assume {
    pub tariff: u64,
    pub maintenance: u64,
    pub life: i64,
    pub discount_bp: u64,
    pub haircut_bp: u64,
    pub distressed_bp: u64,
    /// Rents given by model, for as_of's year.
    pub rents: BTreeMap<String, u64>,
}

impl Default for Assume {
    fn default() -> Assume {
        Assume {
            tariff: 50,
            maintenance: 20_000,
            life: 60,
            discount_bp: 1_000,
            haircut_bp: 4_000,
            distressed_bp: 2_000,
            rents: BTreeMap::new(),
        }
    }
}

/// The idle-funded threshold (PROTOCOL §8).
const IDLE_PCT: u64 = 30;
const WINDOW: i64 = 6;

const STATUSES: [&str; 5] = [
    "announced",
    "under_construction",
    "operational",
    "suspended",
    "decommissioned",
];

/// A calendar date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Day(i64, i64, i64);

impl Day {
    fn parse(s: &str) -> Day {
        let p: Vec<i64> = s.split('-').map(|x| x.parse().expect("digits")).collect();
        Day(p[0], p[1], p[2])
    }
}

/// A month as a count of months, year × 12 + month − 1.
pub(super) fn month(s: &str) -> i64 {
    let (y, m) = s.split_once('-').expect("YYYY-MM");
    y.parse::<i64>().expect("year") * 12 + m.parse::<i64>().expect("month") - 1
}

fn last_day(m: i64) -> Day {
    let (y, mo) = (m.div_euclid(12), m.rem_euclid(12) + 1);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match mo {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    Day(y, mo, days)
}

/// PROTOCOL §9: (e.year − d.year) × 12 + e.month − d.month, less 1 when e.day < d.day.
fn whole_months(d: Day, e: Day) -> i64 {
    (e.0 - d.0) * 12 + e.1 - d.1 - i64::from(e.2 < d.2)
}

fn price(model: &str, year: i64) -> Option<u64> {
    let (_, by_year) = PRICES.iter().find(|(m, _)| *m == model)?;
    Some(by_year[(year.clamp(2023, 2026) - 2023) as usize])
}

fn rent(a: &Assume, model: &str, year: i64) -> u64 {
    if let Some(given) = a.rents.get(model) {
        return *given;
    }
    let h100 = if year <= 2024 { 2_250_000 } else { 937_500 };
    match (price(model, year), price("H100", year)) {
        _ if model == "H100" => h100,
        (Some(p), Some(h)) => h100 * p / h,
        _ => 0,
    }
}

/// ⌊a × 10,000 ÷ b⌋, None when b is 0.
fn bp(a: &BigInt, b: &BigInt) -> Option<BigInt> {
    (!b.is_zero()).then(|| a * 10_000 / b)
}

#[derive(Default)]
struct Facility {
    province: String,
    announced: String,
    /// (effective, ledger position, status).
    statuses: Vec<(Day, usize, String)>,
    /// (date, lot, GPUs in (+) or out (−)).
    moves: Vec<(Day, String, i64)>,
    /// period → (available, sold, voucher), the latest report.
    occupancy: BTreeMap<i64, (u64, u64, u64)>,
    /// period → (consumed, resold), the latest report.
    power: BTreeMap<i64, (u64, u64)>,
}

struct Lot {
    model: String,
    date: Day,
}

struct Disbursement {
    facility: String,
    subsidy: String,
    amount: u64,
    currency: String,
    date: Day,
}

/// What the oracle knows of a world: only its entries, read here.
#[derive(Default)]
pub(super) struct World {
    facilities: BTreeMap<String, Facility>,
    lots: BTreeMap<String, Lot>,
    disbursements: Vec<Disbursement>,
    /// (facility, amount, currency, date).
    loans: Vec<(String, u64, String, Day)>,
}

fn facility<'a>(w: &'a mut World, id: &Value) -> &'a mut Facility {
    w.facilities.get_mut(&s(id)).expect("a registered facility")
}

fn u(v: &Value) -> u64 {
    v.as_u64().expect("an integer ≥ 0")
}

fn s(v: &Value) -> String {
    v.as_str().expect("a string").to_string()
}

impl World {
    /// From envelopes (or leaves: anything with the `entry`) in ledger order, as JSON.
    pub(super) fn read<S: AsRef<str>>(lines: impl Iterator<Item = S>) -> World {
        let mut w = World::default();
        let mut subsidy_facility = BTreeMap::new();
        for (position, line) in lines.enumerate() {
            let envelope: Value = serde_json::from_str(line.as_ref()).expect("JSON line");
            let entry = &envelope["entry"];
            let b = &entry["body"];
            match entry["kind"].as_str().expect("kind") {
                "facility.register" => {
                    w.facilities.insert(
                        s(&b["facility_id"]),
                        Facility {
                            province: s(&b["province"]),
                            announced: s(&b["announced"]),
                            ..Facility::default()
                        },
                    );
                }
                "facility.status" => facility(&mut w, &b["facility_id"]).statuses.push((
                    Day::parse(&s(&b["effective"])),
                    position,
                    s(&b["status"]),
                )),
                "procurement" => {
                    w.lots.insert(
                        s(&b["lot_id"]),
                        Lot {
                            model: s(&b["gpu_model"]),
                            date: Day::parse(&s(&b["date"])),
                        },
                    );
                }
                "deployment" => {
                    let n = u(&b["quantity"]) as i64;
                    let date = Day::parse(&s(&b["date"]));
                    facility(&mut w, &b["facility_id"])
                        .moves
                        .push((date, s(&b["lot_id"]), n));
                }
                "lot.transfer" => {
                    let n = u(&b["quantity"]) as i64;
                    let date = Day::parse(&s(&b["date"]));
                    if !b["from_facility"].is_null() {
                        facility(&mut w, &b["from_facility"]).moves.push((
                            date,
                            s(&b["lot_id"]),
                            -n,
                        ));
                    }
                    if !b["to_facility"].is_null() {
                        facility(&mut w, &b["to_facility"])
                            .moves
                            .push((date, s(&b["lot_id"]), n));
                    }
                }
                "subsidy.grant" => {
                    subsidy_facility.insert(s(&b["subsidy_id"]), s(&b["facility_id"]));
                }
                "subsidy.disburse" => {
                    let subsidy = s(&b["subsidy_id"]);
                    w.disbursements.push(Disbursement {
                        facility: subsidy_facility[&subsidy].clone(),
                        subsidy,
                        amount: u(&b["amount_minor"]),
                        currency: s(&b["currency"]),
                        date: Day::parse(&s(&b["date"])),
                    });
                }
                "loan.issue" => w.loans.push((
                    s(&b["facility_id"]),
                    u(&b["amount_minor"]),
                    s(&b["currency"]),
                    Day::parse(&s(&b["date"])),
                )),
                // A later report for the same facility and period supersedes.
                "occupancy.report" => {
                    let figures = (
                        u(&b["gpu_hours_available"]),
                        u(&b["gpu_hours_sold"]),
                        u(&b["gpu_hours_voucher"]),
                    );
                    facility(&mut w, &b["facility_id"])
                        .occupancy
                        .insert(month(&s(&b["period"])), figures);
                }
                "power.report" => {
                    let figures = (u(&b["consumed_kwh"]), u(&b["resold_kwh"]));
                    facility(&mut w, &b["facility_id"])
                        .power
                        .insert(month(&s(&b["period"])), figures);
                }
                _ => {}
            }
        }
        w
    }
}

/// A finding as the CLI printed it: (rule, severity, facility, key).
pub(super) type Found = (String, String, String, String);

/// The findings of a `dcledger audit --format json` answer.
pub(super) fn findings(audit: &Doc) -> Vec<Found> {
    audit
        .at("/findings")
        .items()
        .iter()
        .map(|f| {
            (
                f.str("/rule"),
                f.str("/severity"),
                f.str("/facility_id"),
                f.str("/key"),
            )
        })
        .collect()
}

/// One facility's part in its region, as of a month.
struct Share {
    status: &'static str,
    gpus: BigInt,
    sold: BigInt,
    voucher: BigInt,
    available: BigInt,
    consumed: BigInt,
    resold: BigInt,
    power_reports: usize,
    /// lot → GPUs here on as_of's last day (non-zero only).
    lots: BTreeMap<String, i64>,
}

fn share(f: &Facility, as_of: i64) -> Share {
    let end = last_day(as_of);
    let mut statuses: Vec<&(Day, usize, String)> =
        f.statuses.iter().filter(|(d, _, _)| *d <= end).collect();
    statuses.sort_by_key(|(d, p, _)| (*d, *p));
    let status = statuses.last().map_or("announced", |(_, _, st)| {
        STATUSES
            .iter()
            .find(|x| **x == st)
            .copied()
            .expect("a status")
    });
    let mut lots: BTreeMap<String, i64> = BTreeMap::new();
    for (d, lot, n) in &f.moves {
        if *d <= end {
            *lots.entry(lot.clone()).or_default() += n;
        }
    }
    lots.retain(|_, n| *n != 0);
    let window = (as_of - WINDOW + 1)..=as_of;
    let (mut sold, mut voucher, mut available) = (big(0), big(0), big(0));
    for (_, (a, so, v)) in f.occupancy.range(window.clone()) {
        available += *a;
        sold += *so;
        voucher += *v;
    }
    let (mut consumed, mut resold) = (big(0), big(0));
    let mut power_reports = 0;
    for (_, (c, r)) in f.power.range(window) {
        consumed += *c;
        resold += *r;
        power_reports += 1;
    }
    Share {
        status,
        gpus: big(lots.values().sum::<i64>()),
        sold,
        voucher,
        available,
        consumed,
        resold,
        power_reports,
        lots,
    }
}

fn included(w: &World, as_of: i64) -> impl Iterator<Item = (&String, &Facility)> {
    let end = last_day(as_of);
    w.facilities
        .iter()
        .filter(move |(_, f)| Day::parse(&f.announced) <= end)
}

/// Compares every region of `regions` (a `report regions` answer) with the oracle's.
pub(super) fn check_regions(w: &World, as_of: i64, findings: &[Found], regions: &Doc, what: &str) {
    let end = last_day(as_of);
    let flagged: BTreeSet<&str> = findings
        .iter()
        .filter(|f| f.1 == "high" || f.1 == "critical")
        .map(|f| f.2.as_str())
        .collect();
    let mut names: Vec<String> = vec!["national".into()];
    let provinces: BTreeSet<String> = included(w, as_of)
        .map(|(_, f)| f.province.clone())
        .collect();
    names.extend(provinces);
    let listed: Vec<Doc> = regions.at("/regions").items();
    let listed_names: Vec<String> = listed.iter().map(|r| r.str("/region")).collect();
    assert_eq!(listed_names, names, "{what}: regions");
    for (region, r) in names.iter().zip(&listed) {
        let what = format!("{what}, {region}");
        let members: Vec<(&String, &Facility)> = included(w, as_of)
            .filter(|(_, f)| region == "national" || f.province == *region)
            .collect();
        let ids: Vec<String> = members.iter().map(|(id, _)| id.to_string()).collect();
        let listed_ids: Vec<String> = r
            .at("/facility_ids")
            .items()
            .iter()
            .map(|d| d.value().as_str().expect("id").to_string())
            .collect();
        assert_eq!(listed_ids, ids, "{what}: facility_ids");
        let mut counts: BTreeMap<&str, u64> = STATUSES.iter().map(|s| (*s, 0)).collect();
        let (mut gpus, mut sold, mut voucher, mut available) = (big(0), big(0), big(0), big(0));
        let (mut idle, mut consumed, mut resold) = (big(0), big(0), big(0));
        let mut disbursed: BTreeMap<String, BigInt> = BTreeMap::new();
        let mut at_flagged: BTreeMap<String, BigInt> = BTreeMap::new();
        let mut rules: BTreeMap<&str, u64> = BTreeMap::new();
        for (id, f) in &members {
            let sh = share(f, as_of);
            *counts.get_mut(sh.status).expect("status") += 1;
            // Idle: utilization undefined, or sold ÷ available < 30%, exactly.
            if sh.available.is_zero() || &sh.sold * 100 < &sh.available * IDLE_PCT {
                idle += &sh.gpus;
            }
            gpus += &sh.gpus;
            sold += &sh.sold;
            voucher += &sh.voucher;
            available += &sh.available;
            consumed += &sh.consumed;
            resold += &sh.resold;
            for d in w
                .disbursements
                .iter()
                .filter(|d| d.facility == **id && d.date <= end)
            {
                *disbursed.entry(d.currency.clone()).or_default() += d.amount;
                if flagged.contains(id.as_str()) {
                    *at_flagged.entry(d.currency.clone()).or_default() += d.amount;
                }
            }
            for f in findings.iter().filter(|f| f.2 == **id) {
                let rule: &str = RULES.iter().copied().find(|r| *r == f.0).expect("a rule");
                *rules.entry(rule).or_default() += 1;
            }
        }
        for (status, n) in &counts {
            assert_eq!(
                r.int(&format!("/facilities/{status}")),
                big(*n),
                "{what}: {status}"
            );
        }
        for (field, value) in [
            ("gpus_deployed", &gpus),
            ("gpu_hours_sold", &sold),
            ("gpu_hours_voucher", &voucher),
            ("gpu_hours_available", &available),
            ("idle_gpus", &idle),
            ("consumed_kwh", &consumed),
            ("resold_kwh", &resold),
        ] {
            assert_eq!(&r.int(&format!("/{field}")), value, "{what}: {field}");
        }
        let offered = &consumed + &resold;
        for (field, value) in [
            ("utilization_bp", bp(&sold, &available)),
            ("idle_share_bp", bp(&idle, &gpus)),
            ("resold_share_bp", bp(&resold, &offered)),
        ] {
            assert_eq!(r.opt_int(&format!("/{field}")), value, "{what}: {field}");
        }
        for (field, money) in [
            ("subsidies_disbursed", &disbursed),
            ("disbursed_at_flagged", &at_flagged),
        ] {
            let listed: BTreeMap<String, BigInt> = r
                .at(&format!("/{field}"))
                .members()
                .into_iter()
                .map(|(c, a)| (c, a.int("")))
                .collect();
            assert_eq!(&listed, money, "{what}: {field}");
        }
        let mut top: Vec<(&str, u64)> = rules.into_iter().collect();
        let order = |rule: &str| RULES.iter().position(|r| *r == rule);
        top.sort_by_key(|(rule, n)| (std::cmp::Reverse(*n), order(rule)));
        let listed: Vec<(String, BigInt)> = r
            .at("/top_findings")
            .members()
            .into_iter()
            .map(|(k, v)| (k, v.int("")))
            .collect();
        let top: Vec<(String, BigInt)> =
            top.iter().map(|(k, n)| (k.to_string(), big(*n))).collect();
        assert_eq!(listed, top, "{what}: top_findings");
    }
}

/// The oracle's income value: per lot in lot-id order, in binary64 (PROTOCOL §9).
fn income(noi: &BigInt, gpus: &BigInt, lots: &[(i64, i64)], discount_bp: u64) -> f64 {
    if gpus.is_zero() {
        return 0.0;
    }
    let m = (1.0 + discount_bp as f64 / 10_000.0).powf(1.0 / 12.0) - 1.0;
    let (noi, gpus) = (noi.to_f64().expect("f64"), gpus.to_f64().expect("f64"));
    let mut total = 0.0;
    for (n_gpus, n) in lots {
        let share = noi * *n_gpus as f64 / gpus;
        let factor = if *n == 0 {
            0.0
        } else if m == 0.0 {
            *n as f64
        } else {
            (1.0 - (1.0 + m).powf(-(*n as f64))) / m
        };
        total += share * factor;
    }
    total.round_ties_even()
}

/// Compares every valuation of `all` (a `report valuation --all` answer) with the
/// oracle's, and the screen's order.
pub(super) fn check_valuations(
    w: &World,
    as_of: i64,
    findings: &[Found],
    all: &Doc,
    a: &Assume,
    what: &str,
) {
    let end = last_day(as_of);
    let year = end.0;
    let breached: BTreeSet<(&str, &str)> = findings
        .iter()
        .filter(|f| f.0 == "subsidy-condition-breach")
        .map(|f| (f.2.as_str(), f.3.as_str()))
        .collect();
    let listed = all.at("/valuations").items();
    let ids: Vec<String> = listed.iter().map(|v| v.str("/facility_id")).collect();
    let expected_ids: BTreeSet<String> = included(w, as_of).map(|(id, _)| id.clone()).collect();
    assert_eq!(
        ids.iter().cloned().collect::<BTreeSet<_>>(),
        expected_ids,
        "{what}: facilities"
    );
    assert_eq!(ids.len(), expected_ids.len(), "{what}: each facility once");
    let mut order = Vec::new();
    for v in &listed {
        let id = v.str("/facility_id");
        let what = format!("{what}, {id}");
        let f = &w.facilities[&id];
        let sh = share(f, as_of);
        let (mut rents, mut priced) = (big(0), big(0));
        let mut by_model: BTreeMap<String, BigInt> = BTreeMap::new();
        let mut unpriced = BTreeSet::new();
        let mut lots = Vec::new();
        for (lot_id, n) in &sh.lots {
            let lot = &w.lots[lot_id];
            *by_model.entry(lot.model.clone()).or_default() += *n;
            rents += big(*n) * rent(a, &lot.model, year);
            match price(&lot.model, year) {
                Some(p) => priced += big(*n) * p * 100u64,
                None => {
                    unpriced.insert(lot.model.clone());
                }
            }
            let remaining = (a.life - whole_months(lot.date, end)).max(0);
            lots.push((lot_id.clone(), *n, remaining));
        }
        let listed_lots: Vec<(String, i64, i64)> = v
            .at("/lots")
            .items()
            .iter()
            .map(|l| {
                (
                    l.str("/lot_id"),
                    l.int("/gpus").to_i64().expect("i64"),
                    l.int("/remaining_months").to_i64().expect("i64"),
                )
            })
            .collect();
        assert_eq!(listed_lots, lots, "{what}: lots");
        let listed_models: BTreeMap<String, BigInt> = v
            .at("/gpus_by_model")
            .members()
            .into_iter()
            .map(|(k, d)| (k, d.int("")))
            .collect();
        assert_eq!(listed_models, by_model, "{what}: gpus_by_model");
        let paid = &sh.sold - &sh.voucher;
        let revenue = if sh.available.is_zero() {
            big(0)
        } else {
            &rents * &paid / &sh.available
        };
        let energy = if sh.power_reports == 0 {
            big(0)
        } else {
            &sh.consumed * a.tariff / sh.power_reports
        };
        let maintenance = &sh.gpus * a.maintenance;
        let noi = &revenue - &energy - &maintenance;
        let liquidation = &priced * (10_000 - a.haircut_bp) / 10_000u64;
        let mut clawback = big(0);
        for d in w.disbursements.iter().filter(|d| {
            d.facility == id
                && d.date <= end
                && d.currency == "CNY"
                && breached.contains(&(id.as_str(), d.subsidy.as_str()))
        }) {
            clawback += d.amount;
        }
        let mut loans = big(0);
        for (_, amount, _, _) in w
            .loans
            .iter()
            .filter(|(f, _, c, d)| *f == id && c == "CNY" && *d <= end)
        {
            loans += *amount;
        }
        let distressed = noi.is_negative()
            || if sh.available.is_zero() {
                a.distressed_bp > 0
            } else {
                &paid * 10_000 < &sh.available * a.distressed_bp
            };
        for (field, value) in [
            ("gpus", &sh.gpus),
            ("gpu_hours_sold", &sh.sold),
            ("gpu_hours_voucher", &sh.voucher),
            ("gpu_hours_available", &sh.available),
            ("consumed_kwh", &sh.consumed),
            ("revenue_month", &revenue),
            ("energy_month", &energy),
            ("maintenance_month", &maintenance),
            ("noi_month", &noi),
            ("liquidation_value", &liquidation),
            ("clawback_exposure", &clawback),
            ("loans_outstanding", &loans),
        ] {
            assert_eq!(&v.int(&format!("/{field}")), value, "{what}: {field}");
        }
        assert_eq!(
            v.opt_int("/paid_utilization_bp"),
            bp(&paid, &sh.available),
            "{what}: paid_utilization_bp"
        );
        assert_eq!(
            v.at("/distressed").value(),
            Value::Bool(distressed),
            "{what}: distressed"
        );
        let listed_unpriced: BTreeSet<String> = v
            .at("/unpriced_models")
            .items()
            .iter()
            .map(|d| d.value().as_str().expect("model").to_string())
            .collect();
        assert_eq!(listed_unpriced, unpriced, "{what}: unpriced_models");
        // Independent evaluation orders may differ by one minor unit.
        let lot_shares: Vec<(i64, i64)> = lots.iter().map(|(_, n, r)| (*n, *r)).collect();
        let oracle = income(&noi, &sh.gpus, &lot_shares, a.discount_bp);
        let got = v.int("/income_value");
        assert!(
            (got.to_f64().expect("f64") - oracle).abs() <= 1.0,
            "{what}: income_value {got}, oracle {oracle}"
        );
        let asset = got.max(liquidation);
        assert_eq!(v.int("/asset_value"), asset, "{what}: asset_value");
        let equity = &asset - &loans - &clawback;
        assert_eq!(v.int("/equity_value"), equity, "{what}: equity_value");
        order.push((equity, id));
    }
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "{what}: equity ascending, then facility id");
}

/// `dcledger gen` a world, load it, and check its reports as of its last month and as
/// of an earlier one (when fewer facilities were announced and fewer facts known).
fn check_world(seed: u64, facilities: u32, months: u32, serve: bool) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let world = tmp.path().join("world");
    run_ok(&[
        "gen",
        "--facilities",
        &facilities.to_string(),
        "--months",
        &months.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        path_str(&world),
    ]);
    let data = tmp.path().join("data");
    load(&world, &data).close().expect("close");
    let entries = std::fs::read_to_string(world.join("entries.ndjson")).expect("entries");
    let w = World::read(entries.lines());
    let cli = |args: &[&str]| -> Doc {
        let mut all = args.to_vec();
        all.extend(["--data", path_str(&data), "--format", "json"]);
        Doc::new(stdout(&run_ok(&all)))
    };
    let latest = cli(&["audit"]).str("/as_of");
    let earlier = {
        let m = month(&latest) - 9;
        format!("{:04}-{:02}", m.div_euclid(12), m.rem_euclid(12) + 1)
    };
    for as_of in [latest.as_str(), earlier.as_str()] {
        let what = format!("seed {seed} as of {as_of}");
        let audit = cli(&["audit", "--as-of", as_of]);
        let findings: Vec<Found> = audit
            .at("/findings")
            .items()
            .iter()
            .map(|f| {
                (
                    f.str("/rule"),
                    f.str("/severity"),
                    f.str("/facility_id"),
                    f.str("/key"),
                )
            })
            .collect();
        let m = month(as_of);
        let regions = cli(&["report", "regions", "--as-of", as_of]);
        check_regions(&w, m, &findings, &regions, &what);
        let valuations = cli(&["report", "valuation", "--all", "--as-of", as_of]);
        check_valuations(&w, m, &findings, &valuations, &Assume::default(), &what);
        if serve && as_of == latest {
            // The server answers the same bytes as the CLI.
            let server = Server::start(&data, &tmp.path().join("server.log"));
            let agent = new_agent();
            let regions_http = get(&agent, &server.url("/v1/reports/regions"));
            assert_eq!(
                regions_http.text.trim_end(),
                regions.text().trim_end(),
                "{what}: HTTP regions"
            );
            for v in valuations.at("/valuations").items() {
                let id = v.str("/facility_id");
                let one =
                    Doc::new(get(&agent, &server.url(&format!("/v1/reports/valuation/{id}"))).text);
                assert_eq!(
                    one.at("/equity_value").text(),
                    v.at("/equity_value").text(),
                    "{what}: {id}"
                );
                assert_eq!(one.at("/lots").text(), v.at("/lots").text(), "{what}: {id}");
            }
        }
    }
}

#[test]
fn generated_worlds_match_an_oracle_computed_from_their_entries() {
    for (seed, facilities, months, serve) in
        [(2, 40, 30, false), (3, 45, 24, true), (11, 40, 36, false)]
    {
        check_world(seed, facilities, months, serve);
    }
}
