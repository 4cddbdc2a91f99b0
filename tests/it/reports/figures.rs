//! Every formula of PROTOCOL §9 on worlds small enough to compute by hand: each case builds
//! a ledger (the audit's `World`: a party per role, facilities `dc-a` and `dc-b` of
//! `op-a` in Henan), computes its reports in process and checks the figures it is about,
//! written as literals with the arithmetic beside them. As of June 2025 unless a case
//! says otherwise: the window is 2025-01..2025-06 and as_of's last day 2025-06-30. The
//! defaults for 2025: H100 rent 937,500 and reference price 160,000 CNY, A100 80,000
//! (rent 937,500 × 80,000 ÷ 160,000 = 468,750), H800 140,000 (rent ⌊820,312.5⌋ =
//! 820,312); tariff 50, maintenance 20,000, life 60 months, discount 10%, haircut 40%.

use dcledger::config::Config;
use dcledger::entry::Kind;
use dcledger::report::assumptions::Overrides;
use serde_json::{Value, json};

use super::{Doc, assert_holds, installed, query, transfer, with_reports};
use crate::audit_rules::{FAC, OTHER, World};

/// The findings of the case as (rule, facility), sorted: what the findings-dependent
/// figures rest on, worked out by hand too.
fn finding_pairs(reports: &dcledger::report::Reports<'_>) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = reports
        .findings
        .iter()
        .map(|f| (f.rule.to_string(), f.facility_id.clone()))
        .collect();
    pairs.sort();
    pairs
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list
        .iter()
        .map(|(r, f)| (r.to_string(), f.to_string()))
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------
// Region reports.

struct RegionCase {
    name: &'static str,
    build: fn(&mut World),
    /// The regions listed, in order.
    regions: &'static [&'static str],
    /// The findings of the world, (rule, facility), by hand, where the figures rest
    /// on them.
    findings: Option<&'static [(&'static str, &'static str)]>,
    /// Per region, the figures the case is about.
    expect: Vec<(&'static str, Value)>,
}

fn check_region(c: RegionCase) {
    let mut w = World::new();
    (c.build)(&mut w);
    with_reports(
        &mut w,
        "2025-06",
        &Config::default(),
        &Overrides::default(),
        |reports| {
            if let Some(findings) = c.findings {
                assert_eq!(
                    finding_pairs(reports),
                    pairs(findings),
                    "{}: the world's findings",
                    c.name
                );
            }
            let doc = Doc::of(&reports.regions());
            let regions = doc.at("/regions").items();
            let names: Vec<String> = regions.iter().map(|r| r.str("/region")).collect();
            assert_eq!(names, c.regions, "{}: regions", c.name);
            for (region, expected) in &c.expect {
                let i = names
                    .iter()
                    .position(|n| n == region)
                    .unwrap_or_else(|| panic!("{}: no region {region}", c.name));
                assert_holds(
                    &regions[i].value(),
                    expected,
                    &format!("{}: {region}", c.name),
                );
                // One region alone says the same.
                let one = reports.region(region).expect("a region with facilities");
                assert_holds(
                    &Doc::of(&one).value(),
                    expected,
                    &format!("{}: {region} alone", c.name),
                );
            }
        },
    );
}

/// Statuses at as_of: the latest effective on or before its last day, by effective date
/// then ledger order; `announced` before any. A facility announced after as_of is in no
/// region, and a province with only such facilities is no region yet.
fn statuses(w: &mut World) {
    w.status("op", FAC, "operational", "2024-01-01");
    w.status("op", FAC, "suspended", "2025-07-01");
    w.status("op", OTHER, "under_construction", "2024-05-01");
    w.status("op", OTHER, "operational", "2025-02-01");
    // The same day, later in the ledger: this one is in force.
    w.status("regulator", OTHER, "suspended", "2025-02-01");
    w.register("dc-g1", "Gansu", "2024-01-01");
    w.status("op", "dc-g1", "decommissioned", "2025-06-30");
    // Announced on as_of's last day: in the report, with no status yet.
    w.register("dc-g2", "Gansu", "2025-06-30");
    w.register("dc-late", "Gansu", "2025-07-01");
    w.status("op", "dc-late", "operational", "2025-01-01");
    w.register("dc-x", "Xinjiang", "2025-07-01");
}

/// dc-a: 60 deployed, 5 moved to dc-b on 03-01 (55); dc-b: 30 deployed on as_of's last
/// day, 5 arrived, 4 sold out of the fleet (31); 10 deployed to dc-a and 1 sold from
/// stock after or outside: 55 + 31 = 86.
fn gpus_deployed(w: &mut World) {
    w.procure("lot-1", FAC, "H100", 101, 16_000_000, "2024-01-10");
    w.deploy("lot-1", FAC, 60, "2024-02-01");
    w.deploy("lot-1", OTHER, 30, "2025-06-30");
    w.deploy("lot-1", FAC, 10, "2025-07-01");
    transfer(
        w,
        "lot-1",
        5,
        Some(FAC),
        json!({"to_facility": OTHER}),
        "2025-03-01",
    );
    transfer(
        w,
        "lot-1",
        4,
        Some(OTHER),
        json!({"to_org": "op-b"}),
        "2025-05-01",
    );
    transfer(w, "lot-1", 1, None, json!({"to_org": "op-b"}), "2025-04-01");
    w.register("dc-g", "Gansu", "2024-01-01");
}

/// A big idle site (dc-a: 10% of 200,000 hours) and a small busy one (dc-b: 90% of
/// 1,000): reports before the window, after as_of and superseded count for nothing.
fn utilization(w: &mut World) {
    w.occupancy("2024-12", 0, 100_000, 100_000, 0);
    w.occupancy("2025-05", 0, 100_000, 90_000, 0);
    // Supersedes the May report above.
    w.occupancy("2025-05", 0, 100_000, 10_000, 0);
    w.occupancy("2025-06", 0, 100_000, 10_000, 0);
    w.occupancy("2025-07", 0, 100_000, 100_000, 0);
    w.occupancy_at(OTHER, "2025-06", 0, 1_000, 900, 100);
}

/// 100 GPUs at 29.99% (idle), 50 at exactly 30% (not), 20 with no reports and 7 whose
/// window has only a report with nothing available (undefined: idle).
fn idle(w: &mut World) {
    w.register("dc-c", "Henan", "2024-01-01");
    w.register("dc-d", "Henan", "2024-01-01");
    w.procure("lot-1", FAC, "H100", 177, 16_000_000, "2024-01-10");
    for (facility, n) in [(FAC, 100), (OTHER, 50), ("dc-c", 20), ("dc-d", 7)] {
        w.deploy("lot-1", facility, n, "2024-02-01");
    }
    w.occupancy("2025-06", 0, 10_000, 2_999, 0);
    w.occupancy_at(OTHER, "2025-06", 0, 10_000, 3_000, 0);
    w.occupancy_at("dc-d", "2024-12", 0, 1_000, 1_000, 0);
    w.occupancy_at("dc-d", "2025-03", 0, 0, 0, 0);
    w.register("dc-g", "Gansu", "2024-01-01");
}

/// GPUs and no reports at all: sums 0, ratios null, maps empty.
fn no_reports(w: &mut World) {
    installed(w, "lot-1", FAC, "H100", 10, "2025-01-10");
    w.register("dc-g", "Gansu", "2024-01-01");
}

/// Disbursements in their own entries' currencies, dated up to as_of's last day. dc-a
/// was paid ≥ 12 months before as_of and never operational (stalled-funded, high):
/// flagged; dc-b was paid in EUR this year and has no finding.
fn money(w: &mut World) {
    w.grant_at(
        FAC,
        "s-1",
        "construction",
        1_000_000,
        "2024-02-01",
        Value::Null,
    );
    w.disburse("s-1", 600_000, "2024-03-01");
    w.disburse_in("s-1", 5_000, "USD", "2025-02-01");
    w.disburse("s-1", 1, "2025-06-30");
    w.disburse("s-1", 400_000, "2025-07-15");
    w.grant_at(OTHER, "s-2", "operations", 10, "2025-01-01", Value::Null);
    w.disburse_in("s-2", 7, "EUR", "2025-01-02");
    w.register("dc-g", "Gansu", "2024-01-01");
}

/// High (dc-a, stalled-funded), medium only (dc-b, undeployed-gpus) and critical
/// (dc-c in Gansu, duplicate-serial on the later lot): the flagged part of the money.
fn flagged(w: &mut World) {
    w.grant_at(
        FAC,
        "s-a",
        "construction",
        9_000_000,
        "2024-01-01",
        Value::Null,
    );
    w.disburse("s-a", 9_000_000, "2024-01-10");
    w.procure("lot-b", OTHER, "H100", 10, 20_000_000, "2024-06-01");
    w.grant_at(
        OTHER,
        "s-b",
        "operations",
        3_000_000,
        "2025-01-01",
        Value::Null,
    );
    w.disburse("s-b", 3_000_000, "2025-01-10");
    w.register("dc-c", "Gansu", "2024-01-01");
    installed(w, "lot-e", FAC, "H100", 1, "2025-01-01");
    installed(w, "lot-c", "dc-c", "H100", 1, "2025-03-01");
    w.add(
        "op",
        Kind::LotSerials,
        json!({"lot_id": "lot-e", "serials": ["SN-1"]}),
    );
    w.add(
        "op",
        Kind::LotSerials,
        json!({"lot_id": "lot-c", "serials": ["SN-1"]}),
    );
    w.grant_at(
        "dc-c",
        "s-c",
        "operations",
        1_000,
        "2025-05-01",
        Value::Null,
    );
    w.disburse("s-c", 1_000, "2025-06-01");
}

/// Operators' power reports of the window (the utility's readings do not count):
/// consumed 100,000 + 50,000 + 10,000, resold 20,000 + 40,000.
fn power(w: &mut World) {
    w.power_at(FAC, "2024-12", 1_000_000, 800_000, 1_000_000, 0);
    w.power_at(FAC, "2025-02", 100_000, 80_000, 90_000, 0);
    // Supersedes the February report above.
    w.power_at(FAC, "2025-02", 100_000, 80_000, 20_000, 0);
    w.power_at(FAC, "2025-06", 50_000, 40_000, 0, 0);
    w.meter_at(FAC, "2025-06", 999_999, 999_999);
    w.power_at(OTHER, "2025-06", 10_000, 8_000, 40_000, 0);
}

/// dc-a: PUE 3.0 in April to June (pue-implausible ×3), the utility's reading a third
/// of the operator's in May and June (meter-mismatch ×2); dc-g in Gansu: half its power
/// resold without a permit (power-resale, resale-without-permit) and a reading of a
/// tenth (meter-mismatch).
fn top_findings(w: &mut World) {
    for period in ["2025-04", "2025-05", "2025-06"] {
        w.power_at(FAC, period, 300_000, 100_000, 0, 0);
    }
    for period in ["2025-05", "2025-06"] {
        w.meter_at(FAC, period, 100_000, 0);
    }
    w.register("dc-g", "Gansu", "2024-01-01");
    w.power_at("dc-g", "2025-06", 10_000, 8_000, 10_000, 0);
    w.meter_at("dc-g", "2025-06", 1_000, 10_000);
}

fn zero_statuses() -> Value {
    json!({"announced": 0, "under_construction": 0, "operational": 0, "suspended": 0,
           "decommissioned": 0})
}

#[test]
fn region_figures_by_hand() {
    let cases = vec![
        RegionCase {
            name: "facilities by status at as_of, zeros included",
            build: statuses,
            regions: &["national", "Gansu", "Henan"],
            findings: None,
            expect: vec![
                (
                    "national",
                    json!({"facilities": {"announced": 1, "under_construction": 0,
                          "operational": 1, "suspended": 1, "decommissioned": 1},
                          "facility_ids": ["dc-a", "dc-b", "dc-g1", "dc-g2"]}),
                ),
                (
                    "Gansu",
                    json!({"facilities": {"announced": 1, "under_construction": 0,
                          "operational": 0, "suspended": 0, "decommissioned": 1},
                          "facility_ids": ["dc-g1", "dc-g2"]}),
                ),
                (
                    "Henan",
                    json!({"facilities": {"announced": 0, "under_construction": 0,
                          "operational": 1, "suspended": 1, "decommissioned": 0},
                          "facility_ids": ["dc-a", "dc-b"]}),
                ),
            ],
        },
        RegionCase {
            name: "gpus_deployed: GPUs at each facility on as_of's last day",
            build: gpus_deployed,
            regions: &["national", "Gansu", "Henan"],
            findings: None,
            expect: vec![
                ("national", json!({"gpus_deployed": 86})),
                ("Henan", json!({"gpus_deployed": 86})),
                ("Gansu", json!({"gpus_deployed": 0})),
            ],
        },
        RegionCase {
            name: "utilization_bp is GPU-hour-weighted: a big idle site outweighs a small busy one",
            build: utilization,
            regions: &["national", "Henan"],
            findings: None,
            expect: vec![(
                "national",
                // sold 10,000 + 10,000 + 900; available 100,000 × 2 + 1,000;
                // ⌊20,900 × 10,000 ÷ 201,000⌋ = ⌊1,039.8⌋ (the sites' mean would be 5,000).
                json!({"gpu_hours_sold": 20_900, "gpu_hours_voucher": 100,
                       "gpu_hours_available": 201_000, "utilization_bp": 1_039}),
            )],
        },
        RegionCase {
            name: "idle_gpus: window utilization undefined or below 30%, exactly",
            build: idle,
            regions: &["national", "Gansu", "Henan"],
            findings: None,
            expect: vec![
                (
                    "national",
                    // idle 100 + 20 + 7 = 127 of 177; ⌊1,270,000 ÷ 177⌋ = ⌊7,175.1⌋.
                    json!({"gpus_deployed": 177, "idle_gpus": 127, "idle_share_bp": 7_175,
                           // ⌊5,999 × 10,000 ÷ 20,000⌋
                           "utilization_bp": 2_999}),
                ),
                (
                    "Gansu",
                    json!({"gpus_deployed": 0, "idle_gpus": 0, "idle_share_bp": null}),
                ),
            ],
        },
        RegionCase {
            name: "no reports at all: sums 0, ratios null, maps empty",
            build: no_reports,
            regions: &["national", "Gansu", "Henan"],
            findings: Some(&[]),
            expect: vec![
                (
                    "national",
                    json!({"facilities": {"announced": 3, "under_construction": 0,
                           "operational": 0, "suspended": 0, "decommissioned": 0},
                           "gpus_deployed": 10, "gpu_hours_sold": 0, "gpu_hours_voucher": 0,
                           "gpu_hours_available": 0, "utilization_bp": null,
                           "idle_gpus": 10, "idle_share_bp": 10_000,
                           "subsidies_disbursed": {}, "disbursed_at_flagged": {},
                           "consumed_kwh": 0, "resold_kwh": 0, "resold_share_bp": null,
                           "top_findings": {}}),
                ),
                (
                    "Gansu",
                    json!({"facilities": {"announced": 1, "under_construction": 0,
                           "operational": 0, "suspended": 0, "decommissioned": 0},
                           "gpus_deployed": 0, "idle_gpus": 0, "idle_share_bp": null,
                           "utilization_bp": null, "resold_share_bp": null}),
                ),
            ],
        },
        RegionCase {
            name: "subsidies_disbursed by currency, up to as_of's last day",
            build: money,
            regions: &["national", "Gansu", "Henan"],
            findings: Some(&[("stalled-funded", FAC)]),
            expect: vec![
                (
                    "national",
                    // CNY 600,000 + 1 (on 06-30; not 400,000 on 07-15); USD 5,000; EUR 7.
                    json!({"subsidies_disbursed": {"CNY": 600_001, "EUR": 7, "USD": 5_000},
                           "disbursed_at_flagged": {"CNY": 600_001, "USD": 5_000}}),
                ),
                (
                    "Henan",
                    json!({"subsidies_disbursed": {"CNY": 600_001, "EUR": 7, "USD": 5_000}}),
                ),
                (
                    "Gansu",
                    json!({"subsidies_disbursed": {}, "disbursed_at_flagged": {}}),
                ),
            ],
        },
        RegionCase {
            name: "disbursed_at_flagged: facilities with a high or critical finding",
            build: flagged,
            regions: &["national", "Gansu", "Henan"],
            findings: Some(&[
                ("stalled-funded", FAC),
                ("undeployed-gpus", OTHER),
                ("duplicate-serial", "dc-c"),
            ]),
            expect: vec![
                (
                    "national",
                    // 9,000,000 (dc-a) + 3,000,000 (dc-b) + 1,000 (dc-c); dc-b's part is
                    // not flagged (a medium finding only).
                    json!({"subsidies_disbursed": {"CNY": 12_001_000},
                           "disbursed_at_flagged": {"CNY": 9_001_000}}),
                ),
                (
                    "Henan",
                    json!({"subsidies_disbursed": {"CNY": 12_000_000},
                           "disbursed_at_flagged": {"CNY": 9_000_000}}),
                ),
                (
                    "Gansu",
                    json!({"subsidies_disbursed": {"CNY": 1_000},
                           "disbursed_at_flagged": {"CNY": 1_000}}),
                ),
            ],
        },
        RegionCase {
            name: "consumed, resold and resold_share_bp over the window's power reports",
            build: power,
            regions: &["national", "Henan"],
            findings: None,
            expect: vec![(
                "national",
                // ⌊60,000 × 10,000 ÷ (160,000 + 60,000)⌋ = ⌊2,727.3⌋
                json!({"consumed_kwh": 160_000, "resold_kwh": 60_000,
                       "resold_share_bp": 2_727}),
            )],
        },
        RegionCase {
            name: "top_findings: by count descending, then in PROTOCOL §8's order",
            build: top_findings,
            regions: &["national", "Gansu", "Henan"],
            findings: Some(&[
                ("pue-implausible", FAC),
                ("pue-implausible", FAC),
                ("pue-implausible", FAC),
                ("meter-mismatch", FAC),
                ("meter-mismatch", FAC),
                ("power-resale", "dc-g"),
                ("resale-without-permit", "dc-g"),
                ("meter-mismatch", "dc-g"),
            ]),
            // Order is checked below, from the JSON text.
            expect: vec![
                (
                    "national",
                    json!({"top_findings": {"meter-mismatch": 3, "pue-implausible": 3,
                           "power-resale": 1, "resale-without-permit": 1}}),
                ),
                (
                    "Henan",
                    json!({"top_findings": {"pue-implausible": 3, "meter-mismatch": 2}}),
                ),
            ],
        },
    ];
    for c in cases {
        check_region(c);
    }
}

#[test]
fn region_facility_counts_cover_every_status() {
    // The status list of PROTOCOL §7, all five keys even where every count is 0.
    let mut w = World::new();
    w.register("dc-g", "Gansu", "2024-01-01");
    w.status("op", "dc-g", "operational", "2024-01-01");
    with_reports(
        &mut w,
        "2025-06",
        &Config::default(),
        &Overrides::default(),
        |reports| {
            let doc = Doc::of(&reports.region("Gansu").expect("Gansu"));
            let keys: Vec<String> = doc
                .at("/facilities")
                .members()
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            let all: Vec<String> = zero_statuses()
                .as_object()
                .expect("object")
                .keys()
                .cloned()
                .collect();
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(sorted, all);
            assert_eq!(doc.at("/facilities/operational").value(), 1);
        },
    );
}

#[test]
fn top_findings_keep_their_order_in_the_json_text() {
    let mut w = World::new();
    top_findings(&mut w);
    with_reports(
        &mut w,
        "2025-06",
        &Config::default(),
        &Overrides::default(),
        |reports| {
            let doc = Doc::of(&reports.regions());
            let order = |i: usize| -> Vec<(String, String)> {
                doc.at(&format!("/regions/{i}/top_findings"))
                    .members()
                    .into_iter()
                    .map(|(k, v)| (k, v.text().to_string()))
                    .collect()
            };
            let own = |list: &[(&str, &str)]| -> Vec<(String, String)> {
                list.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            };
            // national: a tie at 3 goes by PROTOCOL §8 (meter-mismatch is rule 17,
            // pue-implausible 20), as does the tie at 1 (power-resale 4, resale 5).
            assert_eq!(
                order(0),
                own(&[
                    ("meter-mismatch", "3"),
                    ("pue-implausible", "3"),
                    ("power-resale", "1"),
                    ("resale-without-permit", "1"),
                ])
            );
            // Gansu: §8's order, not the alphabet's (meter-mismatch would come first).
            assert_eq!(
                order(1),
                own(&[
                    ("power-resale", "1"),
                    ("resale-without-permit", "1"),
                    ("meter-mismatch", "1"),
                ])
            );
            // Henan: the count first, though pue-implausible is §8's last rule.
            assert_eq!(
                order(2),
                own(&[("pue-implausible", "3"), ("meter-mismatch", "2")])
            );
        },
    );
}

// ---------------------------------------------------------------------------------------
// Valuations.

struct ValuationCase {
    name: &'static str,
    build: fn(&mut World),
    as_of: &'static str,
    /// `[valuation]` of a config file, or "".
    config: &'static str,
    query: &'static [(&'static str, &'static str)],
    /// Per facility, the figures the case is about.
    expect: Vec<(&'static str, Value)>,
}

fn check_valuation(c: ValuationCase) {
    let mut w = World::new();
    (c.build)(&mut w);
    let config = Config::from_toml(c.config).expect("config");
    with_reports(&mut w, c.as_of, &config, &query(c.query), |reports| {
        for (facility, expected) in &c.expect {
            let v = reports
                .valuation(facility)
                .unwrap_or_else(|| panic!("{}: no valuation of {facility}", c.name));
            assert_holds(
                &Doc::of(&v).value(),
                expected,
                &format!("{}: {facility}", c.name),
            );
        }
    });
}

/// dc-a holds 80 H100 of lot-1 (bought 2024-01-10: 17 whole months to 2025-06-30, 43
/// left), 20 A100 of lot-2 (2023-06-15: 24, 36 left) and 4 H800 of dc-b's lot-3
/// (2025-01-31: 5 months less 1 as 30 < 31, so 4, 56 left), 104 in all; lot-4's 3
/// GPUs were sold before as_of and 5 more of lot-1 arrive after it.
fn full(w: &mut World) {
    w.procure("lot-1", FAC, "H100", 105, 16_000_000, "2024-01-10");
    w.deploy("lot-1", FAC, 80, "2024-02-01");
    w.deploy("lot-1", FAC, 5, "2025-07-02");
    installed(w, "lot-2", FAC, "A100", 20, "2023-06-15");
    w.procure("lot-3", OTHER, "H800", 10, 14_000_000, "2025-01-31");
    w.deploy("lot-3", OTHER, 10, "2025-02-01");
    transfer(
        w,
        "lot-3",
        4,
        Some(OTHER),
        json!({"to_facility": FAC}),
        "2025-03-01",
    );
    installed(w, "lot-4", FAC, "H100", 3, "2024-05-01");
    transfer(
        w,
        "lot-4",
        3,
        Some(FAC),
        json!({"to_org": "op-b"}),
        "2025-04-01",
    );
    // Occupancy: April 72,000 / 36,000 / 6,000 and June 72,000 / 30,001 / 0 count;
    // December is before the window.
    w.occupancy("2024-12", 100, 72_000, 72_000, 0);
    w.occupancy("2025-04", 100, 72_000, 36_000, 6_000);
    w.occupancy("2025-06", 100, 72_000, 30_001, 0);
    // Power: 100,000 + 50,000 + 1 kWh in three window months (March's first report
    // superseded); November is before the window.
    w.power("2024-11", 9_999_999, 5_000_000, 0, 0);
    w.power("2025-02", 100_000, 80_000, 0, 0);
    w.power("2025-03", 999_999, 500_000, 0, 0);
    w.power("2025-03", 50_000, 40_000, 0, 0);
    w.power("2025-06", 1, 1, 0, 0);
    // Loans: dc-a's of 2024-01-15 counts; one after as_of, dc-b's (pledging dc-a's lot)
    // and one in EUR do not.
    w.loan(
        "loan-1",
        FAC,
        300_000_000,
        true,
        "2024-01-15",
        &["parcel-dc-a"],
    );
    w.loan(
        "loan-2",
        FAC,
        50_000_000,
        false,
        "2025-07-01",
        &["parcel-dc-a"],
    );
    w.loan("loan-3", OTHER, 70_000_000, false, "2024-06-01", &["lot-1"]);
    w.add(
        "lender",
        Kind::LoanIssue,
        json!({"loan_id": "loan-4", "facility_id": FAC, "borrower_org": "op-a",
               "amount_minor": 9_000, "currency": "EUR", "state_backed": false,
               "date": "2024-02-01", "collateral": ["parcel-dc-a"]}),
    );
}

/// 10 H100 bought 2025-01-01; June sells all 1,000 hours available; `consumed` kWh.
fn noi_at(w: &mut World, consumed: u64) {
    installed(w, "lot-1", FAC, "H100", 10, "2025-01-01");
    w.occupancy("2025-06", 10, 1_000, 1_000, 0);
    w.power("2025-06", consumed, consumed, 0, 0);
}

/// 10 H100; June: 10,000 hours available, 2,500 sold, `voucher` of them vouchered.
fn paid_at(w: &mut World, voucher: u64) {
    installed(w, "lot-1", FAC, "H100", 10, "2025-01-01");
    w.occupancy("2025-06", 10, 10_000, 2_500, voucher);
}

#[test]
fn valuation_figures_by_hand() {
    let cases = vec![
        ValuationCase {
            name: "every figure of one facility",
            build: full,
            as_of: "2025-06",
            config: "",
            query: &[],
            expect: vec![
                (
                    FAC,
                    json!({
                        "gpus": 104,
                        "gpus_by_model": {"A100": 20, "H100": 80, "H800": 4},
                        "lots": [
                            {"lot_id": "lot-1", "gpu_model": "H100", "gpus": 80,
                             "procured": "2024-01-10", "remaining_months": 43,
                             "rent_gpu_month_minor": 937_500,
                             "reference_price_minor": 16_000_000},
                            {"lot_id": "lot-2", "gpu_model": "A100", "gpus": 20,
                             "remaining_months": 36, "rent_gpu_month_minor": 468_750,
                             "reference_price_minor": 8_000_000},
                            {"lot_id": "lot-3", "gpu_model": "H800", "gpus": 4,
                             "remaining_months": 56, "rent_gpu_month_minor": 820_312,
                             "reference_price_minor": 14_000_000},
                        ],
                        "gpu_hours_sold": 66_001, "gpu_hours_voucher": 6_000,
                        "gpu_hours_available": 144_000,
                        // ⌊(66,001 − 6,000) × 10,000 ÷ 144,000⌋ = ⌊4,166.7⌋
                        "paid_utilization_bp": 4_166,
                        "consumed_kwh": 150_001,
                        // rents 80 × 937,500 + 20 × 468,750 + 4 × 820,312 = 87,656,248;
                        // ⌊87,656,248 × 60,001 ÷ 144,000⌋ = ⌊36,524,045.39⌋
                        "revenue_month": 36_524_045,
                        // ⌊150,001 × 50 ÷ 3 reports⌋ = ⌊2,500,016.67⌋
                        "energy_month": 2_500_016,
                        // 104 × 20,000
                        "maintenance_month": 2_080_000,
                        // 36,524,045 − 2,500,016 − 2,080,000
                        "noi_month": 31_944_029,
                        // (80 × 16,000,000 + 20 × 8,000,000 + 4 × 14,000,000) × 6,000
                        // ÷ 10,000 = 1,496,000,000 × 0.6
                        "liquidation_value": 897_600_000,
                        "unpriced_models": [],
                        "clawback_exposure": 0,
                        "loans_outstanding": 300_000_000,
                        "distressed": false,
                        "excluded": [{"figure": "loans_outstanding", "amount_minor": 9_000,
                                      "currency": "EUR"}],
                    }),
                ),
                // dc-b's own loan, pledging dc-a's lot; its 6 H800 are left.
                (
                    OTHER,
                    json!({"loans_outstanding": 70_000_000, "gpus": 6,
                           "gpus_by_model": {"H800": 6}}),
                ),
            ],
        },
        ValuationCase {
            name: "no reports at all: paid utilization null counts as 0",
            build: no_reports,
            as_of: "2025-06",
            config: "",
            query: &[],
            expect: vec![
                (
                    FAC,
                    json!({"gpus": 10, "gpu_hours_available": 0, "paid_utilization_bp": null,
                           "occupancy_reports": [], "power_reports": [],
                           "revenue_month": 0, "energy_month": 0,
                           "maintenance_month": 200_000, "noi_month": -200_000,
                           // 10 × 16,000,000 × 0.6, above a negative income value
                           "liquidation_value": 96_000_000, "asset_value": 96_000_000,
                           "equity_value": 96_000_000, "distressed": true}),
                ),
                (
                    OTHER,
                    json!({"gpus": 0, "gpus_by_model": {}, "lots": [],
                           "paid_utilization_bp": null, "revenue_month": 0,
                           "energy_month": 0, "maintenance_month": 0, "noi_month": 0,
                           "income_value": 0, "liquidation_value": 0, "asset_value": 0,
                           "equity_value": 0, "loans_outstanding": 0,
                           "clawback_exposure": 0, "excluded": [], "distressed": true}),
                ),
            ],
        },
        ValuationCase {
            name: "remaining life floored at 0: no income value",
            build: |w| {
                installed(w, "lot-old", FAC, "H100", 10, "2019-01-01");
                w.occupancy("2025-06", 10, 1_000, 1_000, 0);
            },
            as_of: "2025-06",
            config: "",
            query: &[],
            expect: vec![(
                FAC,
                // 77 whole months since 2019-01-01: max(0, 60 − 77).
                json!({"lots": [{"lot_id": "lot-old", "remaining_months": 0}],
                       "noi_month": 9_175_000, "income_value": 0,
                       "liquidation_value": 96_000_000, "asset_value": 96_000_000}),
            )],
        },
        ValuationCase {
            name: "a discount rate of 0: the annuity factor is n",
            build: |w| {
                installed(w, "lot-1", FAC, "H100", 10, "2024-06-15");
                w.occupancy("2025-06", 10, 1_000, 1_000, 0);
            },
            as_of: "2025-06",
            config: "",
            query: &[("discount_rate_bp", "0")],
            expect: vec![(
                FAC,
                // NOI 10 × 937,500 − 10 × 20,000 = 9,175,000; 12 whole months, 48 left:
                // 9,175,000 × 48.
                json!({"lots": [{"remaining_months": 48}], "noi_month": 9_175_000,
                       "income_value": 440_400_000, "asset_value": 440_400_000}),
            )],
        },
        ValuationCase {
            name: "a model without a reference price: unpriced, rent 0",
            build: |w| {
                installed(w, "lot-b", FAC, "B200", 10, "2025-01-01");
                installed(w, "lot-h", FAC, "H100", 2, "2025-01-01");
                w.occupancy("2025-06", 12, 1_000, 500, 0);
            },
            as_of: "2025-06",
            config: "",
            query: &[],
            expect: vec![(
                FAC,
                json!({"unpriced_models": ["B200"],
                       "assumptions": {"rent_gpu_month_minor": {
                           "B200": {"value": 0, "source": "default"},
                           "H100": {"value": 937_500, "source": "default"}}},
                       "lots": [
                           {"lot_id": "lot-b", "rent_gpu_month_minor": 0,
                            "reference_price_minor": null},
                           {"lot_id": "lot-h", "rent_gpu_month_minor": 937_500,
                            "reference_price_minor": 16_000_000}],
                       // ⌊2 × 937,500 × 500 ÷ 1,000⌋
                       "revenue_month": 937_500,
                       // 2 × 16,000,000 × 0.6: B200 adds nothing
                       "liquidation_value": 19_200_000}),
            )],
        },
        ValuationCase {
            name: "a model without a reference price, its rent given by query",
            build: |w| {
                installed(w, "lot-b", FAC, "B200", 10, "2025-01-01");
                installed(w, "lot-h", FAC, "H100", 2, "2025-01-01");
                w.occupancy("2025-06", 12, 1_000, 500, 0);
            },
            as_of: "2025-06",
            config: "",
            query: &[("rent.B200", "1000000")],
            expect: vec![(
                FAC,
                json!({"unpriced_models": ["B200"],
                       "assumptions": {"rent_gpu_month_minor": {
                           "B200": {"value": 1_000_000, "source": "query"}}},
                       // ⌊(10 × 1,000,000 + 2 × 937,500) × 500 ÷ 1,000⌋
                       "revenue_month": 5_937_500,
                       "liquidation_value": 19_200_000}),
            )],
        },
        ValuationCase {
            name: "distressed by negative NOI (noi −50)",
            build: |w| noi_at(w, 183_501),
            as_of: "2025-06",
            config: "",
            query: &[],
            expect: vec![(
                FAC,
                // 9,375,000 − 183,501 × 50 − 200,000
                json!({"paid_utilization_bp": 10_000, "revenue_month": 9_375_000,
                       "energy_month": 9_175_050, "noi_month": -50, "distressed": true}),
            )],
        },
        ValuationCase {
            name: "not distressed at NOI 0",
            build: |w| noi_at(w, 183_500),
            as_of: "2025-06",
            config: "",
            query: &[],
            expect: vec![(
                FAC,
                json!({"energy_month": 9_175_000, "noi_month": 0, "distressed": false}),
            )],
        },
        ValuationCase {
            name: "distressed by paid utilization below 20% (19.99%)",
            build: |w| paid_at(w, 501),
            as_of: "2025-06",
            config: "",
            query: &[],
            expect: vec![(
                FAC,
                // (2,500 − 501) ÷ 10,000; ⌊9,375,000 × 1,999 ÷ 10,000⌋ = ⌊1,874,062.5⌋
                json!({"paid_utilization_bp": 1_999, "revenue_month": 1_874_062,
                       "noi_month": 1_674_062, "distressed": true}),
            )],
        },
        ValuationCase {
            name: "not distressed at exactly 20%",
            build: |w| paid_at(w, 500),
            as_of: "2025-06",
            config: "",
            query: &[],
            expect: vec![(
                FAC,
                json!({"paid_utilization_bp": 2_000, "revenue_month": 1_875_000,
                       "noi_month": 1_675_000, "distressed": false}),
            )],
        },
        ValuationCase {
            name: "the threshold of distress is an assumption",
            build: |w| paid_at(w, 500),
            as_of: "2025-06",
            config: "",
            query: &[("distressed_utilization_bp", "2001")],
            expect: vec![(
                FAC,
                json!({"distressed": true, "assumptions": {
                    "distressed_utilization_bp": {"value": 2_001, "source": "query"}}}),
            )],
        },
        ValuationCase {
            name: "2024 rents and prices: an as_of in 2024",
            build: |w| {
                installed(w, "lot-1", FAC, "A100", 10, "2024-01-01");
                w.occupancy("2024-06", 10, 1_000, 1_000, 0);
            },
            as_of: "2024-06",
            config: "",
            query: &[],
            expect: vec![(
                FAC,
                // A100 2024: ⌊2,250,000 × 100,000 ÷ 200,000⌋ = 1,125,000 a GPU;
                // liquidation 10 × 10,000,000 × 0.6.
                json!({"lots": [{"rent_gpu_month_minor": 1_125_000,
                                 "reference_price_minor": 10_000_000}],
                       "revenue_month": 11_250_000, "liquidation_value": 60_000_000}),
            )],
        },
        ValuationCase {
            name: "before the table: 2023's prices, H100's rent of 2,250,000",
            build: |w| installed(w, "lot-1", FAC, "A100", 10, "2022-06-01"),
            as_of: "2022-12",
            config: "",
            query: &[],
            expect: vec![(
                FAC,
                // ⌊2,250,000 × 120,000 ÷ 220,000⌋ = ⌊1,227,272.7⌋; 10 × 12,000,000 × 0.6.
                json!({"lots": [{"rent_gpu_month_minor": 1_227_272,
                                 "reference_price_minor": 12_000_000, "remaining_months": 54}],
                       "liquidation_value": 72_000_000}),
            )],
        },
        ValuationCase {
            name: "after the table: 2026's prices, H100's rent of 937,500",
            build: |w| installed(w, "lot-1", FAC, "H800", 10, "2025-01-01"),
            as_of: "2027-01",
            config: "",
            query: &[],
            expect: vec![(
                FAC,
                // ⌊937,500 × 110,000 ÷ 130,000⌋ = ⌊793,269.2⌋; 10 × 11,000,000 × 0.6;
                // 24 whole months to 2027-01-31, 36 left.
                json!({"lots": [{"rent_gpu_month_minor": 793_269,
                                 "reference_price_minor": 11_000_000, "remaining_months": 36}],
                       "liquidation_value": 66_000_000}),
            )],
        },
    ];
    for c in cases {
        check_valuation(c);
    }
}

/// The income value: per lot in lot-id order, share = noi × lot GPUs ÷ GPUs, times
/// (1 − (1 + m)^−n) ÷ m with m = 1.1^(1/12) − 1, summed, rounded half to even; PROTOCOL §9
/// lets independent evaluation orders differ by 1 minor unit.
#[test]
fn income_value_by_hand() {
    let mut w = World::new();
    full(&mut w);
    with_reports(
        &mut w,
        "2025-06",
        &Config::default(),
        &Overrides::default(),
        |reports| {
            let v = Doc::of(&reports.valuation(FAC).expect("dc-a"));
            // noi 31,944,029; lot-1: 31,944,029 × 80 ÷ 104 = 24,572,330 × 36.2818459154
            // (n = 43); lot-2: 6,143,082.5 × 31.1864584422 (n = 36); lot-3: 1,228,616.5 ×
            // 45.0249488511 (n = 56); Σ = 1,138,428,873.006.
            let income = v.int("/income_value");
            let expected = super::big(1_138_428_873u64);
            assert!(
                (&income - &expected) <= super::big(1) && (&expected - &income) <= super::big(1),
                "income_value {income}, by hand {expected}"
            );
            // Above the liquidation value (897,600,000): the asset value; less the loan.
            assert_eq!(v.int("/asset_value"), income);
            assert_eq!(v.int("/equity_value"), &income - super::big(300_000_000));
        },
    );
}

/// "Whole months from d to e" less 1 when e's day is before d's: a lot bought on the
/// 31st, on the 28th, at a leap February, long ago, and (by a GPU that arrived before
/// its procurement's date) after as_of, applied as written.
#[test]
fn remaining_months_count_whole_months() {
    let mut w = World::new();
    for (lot, date) in [
        ("lot-31", "2024-01-31"),
        ("lot-28", "2024-01-28"),
        ("lot-29", "2024-01-29"),
        ("lot-30", "2024-01-30"),
        ("lot-old", "2019-01-01"),
        ("lot-future", "2025-08-01"),
    ] {
        w.procure(lot, FAC, "H100", 1, 16_000_000, date);
        w.deploy(lot, FAC, 1, "2023-12-01");
    }
    for (as_of, lot, remaining) in [
        // 2025-02-28: 13 months less 1 (28 < 31) = 12; 60 − 12.
        ("2025-02", "lot-31", 48),
        // 13 months (28 = 28).
        ("2025-02", "lot-28", 47),
        // 2024-02-29: 1 month (29 = 29) …
        ("2024-02", "lot-29", 59),
        // … and 1 less 1 (29 < 30) = 0.
        ("2024-02", "lot-30", 60),
        // 77 months: max(0, 60 − 77).
        ("2025-06", "lot-old", 0),
        // 2025-08-01 to 2025-06-30: 6 − 8 = −2 months, 62 left.
        ("2025-06", "lot-future", 62),
    ] {
        with_reports(
            &mut w,
            as_of,
            &Config::default(),
            &Overrides::default(),
            |reports| {
                let v = Doc::of(&reports.valuation(FAC).expect("dc-a"));
                let found = v
                    .at("/lots")
                    .items()
                    .into_iter()
                    .find(|l| l.str("/lot_id") == lot)
                    .unwrap_or_else(|| panic!("{lot} not listed as of {as_of}"));
                assert_eq!(
                    found.int("/remaining_months"),
                    super::big(remaining),
                    "{lot} as of {as_of}"
                );
            },
        );
    }
}

/// Clawback: only the CNY disbursements, up to as_of, of subsidies with a
/// subsidy-condition-breach finding; a USD one is excluded and listed.
#[test]
fn clawback_only_where_a_condition_breach_finding_exists() {
    let mut w = World::new();
    let condition = |by: &str| json!({"min_utilization_pct": 60, "by": by});
    // Breached: no reports in January to March 2025 (0% < 60%).
    w.grant(
        "s-cv",
        "compute_voucher",
        30_000_000,
        "2024-06-01",
        condition("2025-03-31"),
    );
    let counted = w.disburse("s-cv", 15_000_000, "2024-07-01");
    let usd = w.disburse_in("s-cv", 2_000, "USD", "2024-08-01");
    w.disburse("s-cv", 1_000_000, "2025-07-01");
    // Due after as_of: no finding yet.
    w.grant(
        "s-later",
        "compute_voucher",
        5_000_000,
        "2024-06-01",
        condition("2025-09-30"),
    );
    w.disburse("s-later", 5_000_000, "2024-07-01");
    // No condition.
    w.grant(
        "s-plain",
        "operations",
        7_000_000,
        "2024-06-01",
        Value::Null,
    );
    w.disburse("s-plain", 7_000_000, "2024-07-01");
    // dc-b met its condition: 60% in January to March.
    w.grant_at(
        OTHER,
        "s-met",
        "compute_voucher",
        4_000_000,
        "2024-06-01",
        condition("2025-03-31"),
    );
    w.disburse("s-met", 4_000_000, "2024-07-01");
    for period in ["2025-01", "2025-02", "2025-03"] {
        w.occupancy_at(OTHER, period, 0, 1_000, 600, 0);
    }
    with_reports(
        &mut w,
        "2025-06",
        &Config::default(),
        &Overrides::default(),
        |reports| {
            let breaches: Vec<(String, String)> = reports
                .findings
                .iter()
                .filter(|f| f.rule == "subsidy-condition-breach")
                .map(|f| (f.facility_id.clone(), f.key.clone()))
                .collect();
            assert_eq!(breaches, [(FAC.to_string(), "s-cv".to_string())]);
            let a = Doc::of(&reports.valuation(FAC).expect("dc-a")).value();
            assert_holds(
                &a,
                &json!({"clawback_exposure": 15_000_000, "clawback_evidence": [counted],
                        "excluded": [{"figure": "clawback_exposure", "amount_minor": 2_000,
                                      "currency": "USD", "index": usd}]}),
                "dc-a",
            );
            let b = Doc::of(&reports.valuation(OTHER).expect("dc-b")).value();
            assert_holds(
                &b,
                &json!({"clawback_exposure": 0, "clawback_evidence": [], "excluded": []}),
                "dc-b",
            );
            // Equity: the asset value less the exposure (no GPUs: 0 − 15,000,000).
            assert_eq!(a["equity_value"], -15_000_000);
        },
    );
}

/// A facility announced after as_of is in no region and not on the screen, but its
/// valuation still answers.
#[test]
fn a_facility_announced_after_as_of_is_valued_but_not_reported() {
    let mut w = World::new();
    w.register("dc-late", "Xinjiang", "2025-07-01");
    installed(&mut w, "lot-1", "dc-late", "H100", 10, "2025-01-01");
    with_reports(
        &mut w,
        "2025-06",
        &Config::default(),
        &Overrides::default(),
        |reports| {
            let regions = Doc::of(&reports.regions()).value();
            let names: Vec<&str> = regions["regions"]
                .as_array()
                .expect("regions")
                .iter()
                .map(|r| r["region"].as_str().expect("name"))
                .collect();
            assert_eq!(names, ["national", "Henan"]);
            assert_eq!(regions["regions"][0]["gpus_deployed"], 0);
            assert!(reports.region("Xinjiang").is_none());
            let screen = reports
                .screen(&Default::default(), None, 100)
                .expect("screen");
            let ids: Vec<&str> = screen.rows.iter().map(|r| r.facility_id.as_str()).collect();
            assert_eq!(ids, [FAC, OTHER]);
            let late = Doc::of(&reports.valuation("dc-late").expect("still valued")).value();
            assert_holds(
                &late,
                &json!({"facility_id": "dc-late", "province": "Xinjiang", "gpus": 10,
                        "liquidation_value": 96_000_000}),
                "dc-late",
            );
        },
    );
}

/// Each assumption shows its source: the default, the config file's `[valuation]`
/// (either spelling of a rent) or the request's, the request winning; the figures follow.
#[test]
fn assumption_sources_default_config_query() {
    let mut w = World::new();
    noi_at(&mut w, 1_000);
    let sourced = |v: &Value, name: &str| {
        (
            v["assumptions"][name]["value"].clone(),
            v["assumptions"][name]["source"].clone(),
        )
    };
    let run = |w: &mut World, config: &str, q: &[(&str, &str)]| -> Value {
        let config = Config::from_toml(config).expect("config");
        with_reports(w, "2025-06", &config, &query(q), |reports| {
            Doc::of(&reports.valuation(FAC).expect("dc-a")).value()
        })
    };
    let defaults = run(&mut w, "", &[]);
    for (name, value) in [
        ("tariff_minor_per_kwh", 50),
        ("maintenance_gpu_month_minor", 20_000),
        ("life_months", 60),
        ("discount_rate_bp", 1_000),
        ("haircut_bp", 4_000),
        ("distressed_utilization_bp", 2_000),
    ] {
        assert_eq!(
            sourced(&defaults, name),
            (json!(value), json!("default")),
            "{name}"
        );
    }
    assert_eq!(
        defaults["assumptions"]["rent_gpu_month_minor"]["H100"],
        json!({"value": 937_500, "source": "default"})
    );
    // 1,000 kWh × 50.
    assert_eq!(defaults["energy_month"], 50_000);

    let configured = run(
        &mut w,
        "[valuation]\ntariff_minor_per_kwh = 60\nhaircut_bp = 5000\n[valuation.rent]\nH100 = 1000000\n",
        &[],
    );
    assert_eq!(
        sourced(&configured, "tariff_minor_per_kwh"),
        (json!(60), json!("config"))
    );
    assert_eq!(
        sourced(&configured, "haircut_bp"),
        (json!(5_000), json!("config"))
    );
    assert_eq!(
        sourced(&configured, "life_months"),
        (json!(60), json!("default"))
    );
    assert_eq!(
        configured["assumptions"]["rent_gpu_month_minor"]["H100"],
        json!({"value": 1_000_000, "source": "config"})
    );
    // 1,000 × 60; 10 × 1,000,000 × 1,000 ÷ 1,000; 10 × 16,000,000 × 0.5.
    assert_holds(
        &configured,
        &json!({"energy_month": 60_000, "revenue_month": 10_000_000,
                "liquidation_value": 80_000_000}),
        "config",
    );

    let queried = run(
        &mut w,
        "[valuation]\ntariff_minor_per_kwh = 60\nrent.H100 = 1000000\n",
        &[
            ("tariff_minor_per_kwh", "70"),
            ("maintenance_gpu_month_minor", "0"),
        ],
    );
    assert_eq!(
        sourced(&queried, "tariff_minor_per_kwh"),
        (json!(70), json!("query"))
    );
    assert_eq!(
        sourced(&queried, "maintenance_gpu_month_minor"),
        (json!(0), json!("query"))
    );
    assert_eq!(
        queried["assumptions"]["rent_gpu_month_minor"]["H100"]["source"],
        "config"
    );
    // 1,000 × 70; 10,000,000 − 70,000 − 0.
    assert_holds(
        &queried,
        &json!({"energy_month": 70_000, "maintenance_month": 0, "noi_month": 9_930_000}),
        "query",
    );
    // Overriding H100's rent does not move another model's default (H800: 820,312).
    let h800 = run(&mut w, "", &[("rent.H100", "1"), ("rent.H800", "7")]);
    assert_eq!(
        h800["assumptions"]["rent_gpu_month_minor"]["H800"],
        json!({"value": 7, "source": "query"})
    );
    let only_h100 = {
        let config = Config::default();
        with_reports(
            &mut w,
            "2025-06",
            &config,
            &query(&[("rent.H100", "1")]),
            |reports| {
                let page = reports
                    .screen(&Default::default(), None, 1)
                    .expect("screen");
                Doc::of(&page).value()
            },
        )
    };
    assert_eq!(
        only_h100["assumptions"]["rent_gpu_month_minor"]["H800"],
        json!({"value": 820_312, "source": "default"})
    );
}

/// PROTOCOL §9: `national` is reserved; a facility registered with that province is
/// refused (400), so it can never be read as a province.
#[test]
fn a_facility_in_province_national_is_refused() {
    let mut w = World::new();
    w.flush();
    w.register("dc-n", "national", "2024-01-01");
    let rejection = w.try_flush().expect_err("a facility in province national");
    assert_eq!(
        rejection.rejection.class,
        dcledger::reject::RejectClass::Invalid,
        "{rejection:?}"
    );
    assert_eq!(rejection.rejection.errors[0].path, "/entry/body/province");
}
