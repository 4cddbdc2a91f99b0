//! Figures past 2^53: a world whose quantities, GPU-hours, kWh and amounts are at or
//! near 2^53 − 1, thousands of them summed, valued at rents near 2^53 given by query,
//! so that sums pass 2^64 and the products the figures divide need more than 128 bits.
//! The oracle of `oracle` computes every figure exactly with num-bigint from the
//! ledger's own leaves; the answers are read from their JSON literals, never as floats.

use std::collections::BTreeMap;

use dcledger::entry::Kind;
use num_bigint::BigInt;
use serde_json::{Value, json};

use super::oracle::{Assume, World as Oracle, check_regions, check_valuations, findings, month};
use super::{Doc, big};
use crate::audit_rules::{FAC, MAX_SAFE, OTHER, World};
use crate::http::{Server, close, get, new_agent};
use crate::support::{path_str, run_ok, stdout};

/// Lots of 2^53 − 1 GPUs at dc-a, dc-b and dc-c.
const LOTS: [usize; 3] = [400, 200, 100];
/// Loans of 2^53 − 1 to dc-a: their sum passes i64.
const LOANS: usize = 1_100;
/// Disbursements of about 2^53 − 1 per subsidy: the three pass 2^64.
const DISBURSEMENTS: usize = 700;
/// Facilities in Xinjiang with six reports of 2^53 − 1 GPU-hours available each.
const FILLERS: usize = 100;
const MAINTENANCE: u64 = 1 << 40;

/// A lot of 2^53 − 1 GPUs bought in USD (so the audit's CNY price checks leave it
/// alone), deployed whole at `facility` on its procurement date.
fn big_lot(w: &mut World, lot: &str, facility: &str, model: &str, date: &str) {
    w.add(
        "op",
        Kind::Procurement,
        json!({"lot_id": lot, "facility_id": facility, "gpu_model": model,
               "quantity": MAX_SAFE, "unit_price_minor": 1, "currency": "USD",
               "supplier": "Integrator Ltd", "date": date}),
    );
    w.deploy(lot, facility, MAX_SAFE, date);
}

/// Appends what is queued once it is a batch's worth.
fn flush_often(w: &mut World, i: usize) {
    if i % 500 == 499 {
        w.flush();
    }
}

/// dc-a (Henan): lots of H100 fully sold in Q1, power in Q2, disbursements paid ≥ 12
/// months before as_of (stalled-funded) and loans, all of 2^53 − 1. dc-b (Henan): lots
/// of H800 at their default rent. dc-c (Gansu): lots of B200 (no reference price) and a
/// compute-voucher subsidy breached (no reports), paid in CNY and once in USD. Facilities
/// in Xinjiang report 2^53 − 1 GPU-hours available every month of the window.
fn build() -> World {
    let mut w = World::new();
    w.register("dc-c", "Gansu", "2023-01-15");
    for ((facility, prefix, model), lots) in [
        (FAC, "a", "H100"),
        (OTHER, "b", "H800"),
        ("dc-c", "c", "B200"),
    ]
    .into_iter()
    .zip(LOTS)
    {
        for i in 0..lots {
            let date = format!("2024-{:02}-{:02}", 1 + i % 12, 1 + i % 28);
            big_lot(&mut w, &format!("{prefix}-{i:04}"), facility, model, &date);
            flush_often(&mut w, i);
        }
    }
    for (period, voucher) in [("2025-01", 1), ("2025-02", 2), ("2025-03", 3)] {
        w.occupancy(period, MAX_SAFE, MAX_SAFE, MAX_SAFE, voucher);
    }
    for period in ["2025-04", "2025-05", "2025-06"] {
        w.power(period, MAX_SAFE, MAX_SAFE, MAX_SAFE, 0);
        w.occupancy_at(OTHER, period, MAX_SAFE, MAX_SAFE, MAX_SAFE - 1_000, 0);
    }
    w.grant("s-a", "construction", MAX_SAFE, "2023-06-01", Value::Null);
    w.grant_at(
        OTHER,
        "s-b",
        "operations",
        MAX_SAFE,
        "2024-06-01",
        Value::Null,
    );
    w.grant_at(
        "dc-c",
        "s-c",
        "compute_voucher",
        MAX_SAFE,
        "2024-06-01",
        json!({"min_utilization_pct": 1, "by": "2025-03-31"}),
    );
    for i in 0..DISBURSEMENTS {
        w.disburse("s-a", MAX_SAFE, "2024-01-01");
        w.disburse("s-b", MAX_SAFE - i as u64, "2025-03-01");
        w.disburse("s-c", MAX_SAFE, "2024-07-01");
        flush_often(&mut w, i);
    }
    w.disburse_in("s-c", MAX_SAFE, "USD", "2024-07-01");
    for i in 0..LOANS {
        let parcel = format!("p-{i}");
        w.loan(
            &format!("l-{i:04}"),
            FAC,
            MAX_SAFE,
            false,
            "2024-02-01",
            &[&parcel],
        );
        flush_often(&mut w, i);
    }
    for i in 0..FILLERS {
        let id = format!("f-{i:03}");
        w.register(&id, "Xinjiang", "2024-01-01");
        for m in 1..=6 {
            w.occupancy_at(
                &id,
                &format!("2025-{m:02}"),
                0,
                MAX_SAFE,
                MAX_SAFE - i as u64,
                0,
            );
        }
        flush_often(&mut w, i);
    }
    w.flush();
    w
}

#[test]
fn figures_past_2_to_the_53_are_exact() {
    let w = build();
    let oracle = {
        let reader = w.t.ledger.reader();
        let leaves: Vec<String> = (0..reader.size())
            .map(|i| String::from_utf8(reader.entry(i).expect("leaf").leaf).expect("UTF-8"))
            .collect();
        Oracle::read(leaves.iter())
    };
    let (dir, data, _) = close(w.t);

    let max = MAX_SAFE.to_string();
    let rents = [("H100", MAX_SAFE), ("B200", MAX_SAFE - 1)];
    let assume = Assume {
        tariff: MAX_SAFE,
        maintenance: MAINTENANCE,
        life: i64::try_from(MAX_SAFE).expect("i64"),
        haircut_bp: 1,
        rents: rents
            .iter()
            .map(|(m, r)| (m.to_string(), *r))
            .collect::<BTreeMap<_, _>>(),
        ..Assume::default()
    };
    let set = [
        format!("tariff_minor_per_kwh={max}"),
        format!("maintenance_gpu_month_minor={MAINTENANCE}"),
        format!("life_months={max}"),
        "haircut_bp=1".to_string(),
    ];
    let cli = |args: &[&str]| -> Doc {
        let mut all = args.to_vec();
        all.extend(["--data", path_str(&data), "--format", "json"]);
        Doc::new(stdout(&run_ok(&all)))
    };
    let found = findings(&cli(&["audit"]));
    let as_of = "2025-06";
    let regions = cli(&["report", "regions", "--as-of", as_of]);
    check_regions(&oracle, month(as_of), &found, &regions, "big world");
    let mut args: Vec<String> = ["report", "valuation", "--all", "--as-of", as_of]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for s in &set {
        args.extend(["--set".to_string(), s.clone()]);
    }
    for (model, r) in rents {
        args.extend(["--rent".to_string(), format!("{model}={r}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let valuations = cli(&args);
    check_valuations(
        &oracle,
        month(as_of),
        &found,
        &valuations,
        &assume,
        "big world",
    );

    // The world reaches what it is meant to: sums past i64 and u64, a product past 2^128.
    let national = regions.at("/regions/0");
    assert!(national.int("/subsidies_disbursed/CNY") > big(u64::MAX));
    let a = valuations
        .at("/valuations")
        .items()
        .into_iter()
        .find(|v| v.str("/facility_id") == FAC)
        .expect("dc-a");
    assert!(a.int("/loans_outstanding") > big(i64::MAX));
    // Σ rents × Σ (sold − voucher), which revenue_month divides.
    let product: BigInt =
        a.int("/gpus") * MAX_SAFE * (a.int("/gpu_hours_sold") - a.int("/gpu_hours_voucher"));
    assert!(product.bits() > 128, "{} bits", product.bits());
    // revenue = ⌊G × R × (3R − 6) ÷ 3R⌋ = G × R − 2G exactly, with R = 2^53 − 1.
    let g = big(LOTS[0] as u64) * MAX_SAFE;
    assert_eq!(a.int("/revenue_month"), &g * MAX_SAFE - &g * 2);
    // energy = ⌊3R × R ÷ 3⌋ = R².
    assert_eq!(a.int("/energy_month"), big(MAX_SAFE) * MAX_SAFE);
    assert!(
        a.at("/income_value").text().len() > 30,
        "{}",
        a.at("/income_value").text()
    );

    // The server, asked by query parameters, writes the same literals.
    let server = Server::start(&data, &dir.path().join("server.log"));
    let agent = new_agent();
    let query = format!(
        "/v1/reports/valuation/dc-a?as_of={as_of}&{}&rent.H100={max}&rent.B200={}",
        set.join("&"),
        MAX_SAFE - 1
    );
    let one = Doc::new(get(&agent, &server.url(&query)).text);
    for field in [
        "gpus",
        "revenue_month",
        "energy_month",
        "maintenance_month",
        "noi_month",
        "income_value",
        "liquidation_value",
        "loans_outstanding",
        "equity_value",
    ] {
        assert_eq!(
            one.at(&format!("/{field}")).text(),
            a.at(&format!("/{field}")).text(),
            "{field}"
        );
    }
    assert_eq!(
        one.str("/assumptions/rent_gpu_month_minor/H100/source"),
        "query"
    );
}
