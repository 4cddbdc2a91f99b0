//! The twenty audit rules of PROTOCOL §8, each on a minimal real ledger (signed entries
//! appended through `Ledger::append_batch`): once with the triggering figure just past
//! the threshold, where the rule fires on the intended facility, and once on its twin
//! with the figure just inside, where it does not. Then thresholds from TOML, the CLI's
//! JSON, and responses and resolutions attached to findings.

use std::collections::BTreeSet;
use std::sync::Arc;

use dcledger::audit::{self, AuditConfig, AuditRequest, Finding, Rule};
use dcledger::config::Config;
use dcledger::dates::{Month, parse_date};
use dcledger::entry::Kind;
use serde_json::{Value, json};

use crate::support::{Party, TestLedger, bin, path_str};

/// Every entry is signed at this instant: after every date and period below.
pub(crate) const TS: &str = "2025-12-01T00:00:00Z";
/// PROTOCOL §2: the largest integer in signed content, 2^53 − 1.
pub(crate) const MAX_SAFE: u64 = (1 << 53) - 1;
/// The facility the rules are meant to fire on, and a second one of the same operator.
pub(crate) const FAC: &str = "dc-a";
pub(crate) const OTHER: &str = "dc-b";

/// (name in the scenarios, organisation, role, key seed).
const PARTIES: [(&str, &str, &str, u8); 7] = [
    ("op", "op-a", "operator", 3),
    ("op2", "op-b", "operator", 4),
    ("permitter", "permit-bureau", "permitter", 5),
    ("grantor", "compute-fund", "grantor", 6),
    ("lender", "state-bank", "lender", 7),
    ("utility", "state-grid", "utility", 8),
    ("regulator", "inspectorate", "regulator", 9),
];

/// A fresh ledger with one organisation and key per role and two facilities of `op-a`;
/// entries queue up and are appended as one batch before an audit. The helpers that
/// take no facility write about `FAC`; their `*_at` forms take one.
pub(crate) struct World {
    pub(crate) t: TestLedger,
    parties: Vec<(&'static str, Party)>,
    pending: Vec<Value>,
}

impl World {
    pub(crate) fn new() -> World {
        let mut t = TestLedger::new();
        let mut pending = Vec::new();
        let mut parties = Vec::new();
        for (name, org, role, seed) in PARTIES {
            let party = Party::new(seed);
            pending.push(t.authority.sign(
                Kind::OrgRegister,
                json!({"org_id": org, "name": org, "roles": [role]}),
            ));
            pending.push(t.authority.sign(
                Kind::KeyGrant,
                json!({"org_id": org, "public_key": party.public_hex()}),
            ));
            parties.push((name, party));
        }
        let mut w = World {
            t,
            parties,
            pending,
        };
        for id in [FAC, OTHER] {
            w.register(id, "Henan", "2023-01-15");
        }
        w
    }

    /// Registers a facility of `op-a` in `province`, announced on `announced`.
    pub(crate) fn register(&mut self, id: &str, province: &str, announced: &str) -> u64 {
        self.add(
            "op",
            Kind::FacilityRegister,
            json!({"facility_id": id, "name": format!("{id} computing centre"),
                   "province": province, "city": "Zhengzhou", "lat_e6": 34_519_700,
                   "lon_e6": 113_840_900, "planned_it_kw": 20_000, "planned_gpus": 4_096,
                   "land_parcel": format!("parcel-{id}"), "announced": announced}),
        )
    }

    /// Queues an entry signed by `who` with its next seq; returns the index it will get.
    pub(crate) fn add(&mut self, who: &str, kind: Kind, body: Value) -> u64 {
        let index = self.t.ledger.size() + self.pending.len() as u64;
        let party = &mut self
            .parties
            .iter_mut()
            .find(|(name, _)| *name == who)
            .unwrap_or_else(|| panic!("no party {who}"))
            .1;
        let envelope = party.sign_with(kind, party.next_seq, TS, body);
        party.next_seq += 1;
        self.pending.push(envelope);
        index
    }

    pub(crate) fn flush(&mut self) {
        let batch = std::mem::take(&mut self.pending);
        if !batch.is_empty() {
            self.t.accept(batch);
        }
    }

    /// Appends what is queued, or returns why the ledger refused it (nothing written).
    pub(crate) fn try_flush(&mut self) -> Result<(), dcledger::reject::BatchRejection> {
        let batch = std::mem::take(&mut self.pending);
        let answer = self.t.ledger.append_batch(batch).expect("storage");
        answer.map(|_| ())
    }

    fn audit_with(&mut self, as_of: &str, config: AuditConfig) -> Vec<Arc<Finding>> {
        self.flush();
        let request = AuditRequest {
            as_of: Some(Month::parse(as_of).expect("YYYY-MM")),
            config,
            ..AuditRequest::default()
        };
        let (month, findings) = audit::run(&self.t.ledger.reader(), &request).expect("audit");
        assert_eq!(month.to_string(), as_of);
        findings
    }

    fn audit(&mut self, as_of: &str) -> Vec<Arc<Finding>> {
        self.audit_with(as_of, AuditConfig::default())
    }

    // One helper per kind, signed by the party whose role it is.

    pub(crate) fn status(
        &mut self,
        who: &str,
        facility: &str,
        status: &str,
        effective: &str,
    ) -> u64 {
        self.add(
            who,
            Kind::FacilityStatus,
            json!({"facility_id": facility, "status": status, "effective": effective}),
        )
    }

    pub(crate) fn permit(
        &mut self,
        id: &str,
        kind: &str,
        valid_from: &str,
        valid_until: &str,
    ) -> u64 {
        self.permit_at(FAC, id, kind, valid_from, valid_until)
    }

    pub(crate) fn permit_at(
        &mut self,
        facility: &str,
        id: &str,
        kind: &str,
        valid_from: &str,
        valid_until: &str,
    ) -> u64 {
        self.add(
            "permitter",
            Kind::PermitIssue,
            json!({"permit_id": id, "facility_id": facility, "kind": kind,
                   "valid_from": valid_from, "valid_until": valid_until}),
        )
    }

    pub(crate) fn revoke(&mut self, id: &str, effective: &str) -> u64 {
        self.add(
            "permitter",
            Kind::PermitRevoke,
            json!({"permit_id": id, "effective": effective, "reason": "conditions not met"}),
        )
    }

    pub(crate) fn procure(
        &mut self,
        lot: &str,
        facility: &str,
        model: &str,
        n: u64,
        unit: u64,
        date: &str,
    ) {
        self.add(
            "op",
            Kind::Procurement,
            json!({"lot_id": lot, "facility_id": facility, "gpu_model": model, "quantity": n,
                   "unit_price_minor": unit, "currency": "CNY", "supplier": "Integrator Ltd",
                   "date": date}),
        );
    }

    pub(crate) fn procurement(
        &mut self,
        lot: &str,
        model: &str,
        n: u64,
        unit: u64,
        date: &str,
    ) -> u64 {
        let index = self.t.ledger.size() + self.pending.len() as u64;
        self.procure(lot, FAC, model, n, unit, date);
        index
    }

    pub(crate) fn serials(&mut self, lot: &str, serials: &[&str]) -> u64 {
        self.add(
            "op",
            Kind::LotSerials,
            json!({"lot_id": lot, "serials": serials}),
        )
    }

    pub(crate) fn deploy(&mut self, lot: &str, facility: &str, n: u64, date: &str) -> u64 {
        self.add(
            "op",
            Kind::Deployment,
            json!({"lot_id": lot, "facility_id": facility, "quantity": n, "date": date}),
        )
    }

    pub(crate) fn grant(
        &mut self,
        id: &str,
        purpose: &str,
        amount: u64,
        date: &str,
        condition: Value,
    ) -> u64 {
        self.grant_at(FAC, id, purpose, amount, date, condition)
    }

    pub(crate) fn grant_at(
        &mut self,
        facility: &str,
        id: &str,
        purpose: &str,
        amount: u64,
        date: &str,
        condition: Value,
    ) -> u64 {
        let mut body = json!({"subsidy_id": id, "facility_id": facility, "recipient_org": "op-a",
                              "program": "provincial compute programme", "purpose": purpose,
                              "amount_minor": amount, "currency": "CNY", "date": date});
        if !condition.is_null() {
            body["condition"] = condition;
        }
        self.add("grantor", Kind::SubsidyGrant, body)
    }

    pub(crate) fn disburse(&mut self, id: &str, amount: u64, date: &str) -> u64 {
        self.disburse_in(id, amount, "CNY", date)
    }

    /// A disbursement in `currency`.
    pub(crate) fn disburse_in(&mut self, id: &str, amount: u64, currency: &str, date: &str) -> u64 {
        self.add(
            "grantor",
            Kind::SubsidyDisburse,
            json!({"subsidy_id": id, "amount_minor": amount, "currency": currency, "date": date}),
        )
    }

    pub(crate) fn loan(
        &mut self,
        id: &str,
        facility: &str,
        amount: u64,
        state_backed: bool,
        date: &str,
        collateral: &[&str],
    ) -> u64 {
        self.add(
            "lender",
            Kind::LoanIssue,
            json!({"loan_id": id, "facility_id": facility, "borrower_org": "op-a",
                   "amount_minor": amount, "currency": "CNY", "state_backed": state_backed,
                   "date": date, "collateral": collateral}),
        )
    }

    /// A power report of `FAC`: consumed, IT, resold kWh and resale revenue.
    pub(crate) fn power(
        &mut self,
        period: &str,
        consumed: u64,
        it: u64,
        resold: u64,
        revenue: u64,
    ) -> u64 {
        self.power_at(FAC, period, consumed, it, resold, revenue)
    }

    pub(crate) fn power_at(
        &mut self,
        facility: &str,
        period: &str,
        consumed: u64,
        it: u64,
        resold: u64,
        revenue: u64,
    ) -> u64 {
        self.add(
            "op",
            Kind::PowerReport,
            json!({"facility_id": facility, "period": period, "consumed_kwh": consumed,
                   "it_kwh": it, "green_kwh": 0, "resold_kwh": resold,
                   "resale_revenue_minor": revenue, "currency": "CNY"}),
        )
    }

    pub(crate) fn meter(&mut self, period: &str, consumed: u64, resold: u64) -> u64 {
        self.meter_at(FAC, period, consumed, resold)
    }

    pub(crate) fn meter_at(
        &mut self,
        facility: &str,
        period: &str,
        consumed: u64,
        resold: u64,
    ) -> u64 {
        self.add(
            "utility",
            Kind::MeterReading,
            json!({"facility_id": facility, "period": period, "consumed_kwh": consumed,
                   "resold_kwh": resold}),
        )
    }

    /// An occupancy report of `FAC`: GPUs installed, GPU-hours available, sold, voucher.
    pub(crate) fn occupancy(
        &mut self,
        period: &str,
        gpus: u64,
        available: u64,
        sold: u64,
        voucher: u64,
    ) -> u64 {
        self.occupancy_at(FAC, period, gpus, available, sold, voucher)
    }

    pub(crate) fn occupancy_at(
        &mut self,
        facility: &str,
        period: &str,
        gpus: u64,
        available: u64,
        sold: u64,
        voucher: u64,
    ) -> u64 {
        self.add(
            "op",
            Kind::OccupancyReport,
            json!({"facility_id": facility, "period": period, "gpus_installed": gpus,
                   "gpu_hours_available": available, "gpu_hours_sold": sold,
                   "gpu_hours_voucher": voucher, "tenants": 3,
                   // Within PROTOCOL §2's integers whatever the hours sold.
                   "revenue_minor": sold.saturating_mul(100).min(MAX_SAFE), "currency": "CNY"}),
        )
    }

    pub(crate) fn inspection(&mut self, date: &str, counted: u64) -> u64 {
        self.add(
            "regulator",
            Kind::InspectionReport,
            json!({"facility_id": FAC, "date": date, "gpus_counted": counted,
                   "gpus_powered": counted, "observed_status": "operational"}),
        )
    }
}

/// `date` moved by `days` (negative: earlier), as `YYYY-MM-DD`.
fn shift(date: &str, days: i64) -> String {
    let d = parse_date(date).expect("date") + time::Duration::days(days);
    d.to_string()
}

/// One rule's pair of scenarios.
struct Case {
    rule: Rule,
    as_of: &'static str,
    /// The triggering figure just past the threshold …
    fires: u64,
    /// … and just inside it, in the twin.
    twin: u64,
    /// Builds the scenario around the figure; returns the index of the key entry.
    build: fn(&mut World, u64) -> u64,
    /// What the firing finding's summary shows.
    shows: &'static [&'static str],
    /// Money rules: the amount at risk, in CNY minor units.
    money: Option<u64>,
}

fn check(c: Case) {
    let rule = c.rule.as_str();
    let mut w = World::new();
    let key = (c.build)(&mut w, c.fires);
    let findings = w.audit(c.as_of);
    let hits: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.rule == rule)
        .map(|f| &**f)
        .collect();
    assert_eq!(
        hits.iter()
            .map(|f| f.facility_id.as_str())
            .collect::<Vec<_>>(),
        [FAC],
        "{rule} at {}: one finding on {FAC} wanted; all findings: {findings:#?}",
        c.fires
    );
    let f = hits[0];
    assert_eq!(f.severity, c.rule.severity().as_str());
    assert_eq!(f.id, audit::finding_id(c.rule, FAC, &f.key));
    assert!(
        f.evidence.contains(&key),
        "{rule}: evidence lacks entry {key}: {f:#?}"
    );
    assert!(f.evidence.is_sorted(), "{rule}: evidence ascending");
    for figure in c.shows {
        assert!(
            f.summary.contains(figure),
            "{rule}: summary lacks {figure:?}: {}",
            f.summary
        );
    }
    assert_eq!(
        f.amount_at_risk_minor,
        c.money.map(dcledger::exact::Int::from),
        "{rule}: amount at risk"
    );
    assert_eq!(
        f.currency.as_deref(),
        c.money.map(|_| "CNY"),
        "{rule}: currency"
    );

    let mut w = World::new();
    (c.build)(&mut w, c.twin);
    let findings = w.audit(c.as_of);
    let quiet: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.rule == rule)
        .map(|f| &**f)
        .collect();
    assert!(
        quiet.is_empty(),
        "{rule} fired on its twin at {}: {quiet:#?}",
        c.twin
    );
}

// ---- The scenarios: one builder per rule, parameterised by its triggering figure. ----

/// Operational since 2024 with 200,000 CNY disbursed; June 2025 sold `pct`% of the
/// available hours. A disbursement after as_of counts for nothing.
fn idle_funded(w: &mut World, pct: u64) -> u64 {
    w.status("op", FAC, "operational", "2024-01-01");
    w.grant("s-ops", "operations", 50_000_000, "2024-03-01", Value::Null);
    let disbursed = w.disburse("s-ops", 20_000_000, "2024-06-01");
    w.disburse("s-ops", 5_000_000, "2025-08-01");
    w.occupancy("2025-06", 200, 100_000, pct * 1_000, 0);
    disbursed
}

/// Construction money disbursed `days` before 2025-06-30; operational only after as_of.
fn stalled_funded(w: &mut World, days: u64) -> u64 {
    w.status("op", FAC, "under_construction", "2024-01-01");
    w.grant(
        "s-build",
        "construction",
        80_000_000,
        "2024-01-15",
        Value::Null,
    );
    let disbursed = w.disburse("s-build", 80_000_000, &shift("2025-06-30", -(days as i64)));
    w.status("op", FAC, "operational", "2025-07-01");
    disbursed
}

/// 100,000 hours sold over May and June, `pct`% of them with vouchers; an all-voucher
/// December 2024 lies outside the window.
fn voucher_dependence(w: &mut World, pct: u64) -> u64 {
    w.occupancy("2024-12", 200, 100_000, 100_000, 100_000);
    w.occupancy("2025-05", 200, 100_000, 50_000, 40_000);
    w.occupancy("2025-06", 200, 100_000, 50_000, pct * 1_000 - 40_000)
}

/// June resold `pct`% of the 100,000 kWh taken; a heavy-resale month outside the
/// window adds neither kWh nor revenue.
fn power_resale(w: &mut World, pct: u64) -> u64 {
    w.power("2024-12", 10_000, 8_000, 90_000, 9_000_000);
    let resold = pct * 1_000;
    w.power("2025-06", 100_000 - resold, 50_000, resold, 3_000_000)
}

/// Power resold in June 2025 under a power_sale permit to 06-15 and its renewal from
/// 06-`day`.
fn resale_without_permit(w: &mut World, day: u64) -> u64 {
    w.permit("ps-1", "power_sale", "2024-01-01", "2025-06-15");
    w.permit(
        "ps-2",
        "power_sale",
        &format!("2025-06-{day:02}"),
        "2026-12-31",
    );
    w.power("2025-06", 100_000, 80_000, 1_234, 50_000)
}

/// A land-use permit and a state-backed loan of 2024-01-15; a construction permit from
/// 2025-01-`day` (12 months after the loan is 2025-01-15).
fn land_banking(w: &mut World, day: u64) -> u64 {
    w.permit("lu-1", "land_use", "2023-06-01", "2073-05-31");
    let loan = w.loan(
        "loan-1",
        FAC,
        300_000_000,
        true,
        "2024-01-15",
        &["parcel-dc-a"],
    );
    w.permit(
        "c-1",
        "construction",
        &format!("2025-01-{day:02}"),
        "2026-01-15",
    );
    loan
}

/// The same, with a state-backed loan `days` before 2025-06-30 and no construction.
fn land_banking_loan_age(w: &mut World, days: u64) -> u64 {
    w.permit("lu-1", "land_use", "2023-06-01", "2073-05-31");
    let date = shift("2025-06-30", -(days as i64));
    w.loan("loan-1", FAC, 300_000_000, true, &date, &["parcel-dc-a"])
}

/// The same, with construction starting (a status, no permit) on 2025-01-`day`.
fn land_banking_status(w: &mut World, day: u64) -> u64 {
    w.permit("lu-1", "land_use", "2023-06-01", "2073-05-31");
    let loan = w.loan(
        "loan-1",
        FAC,
        300_000_000,
        true,
        "2024-01-15",
        &["parcel-dc-a"],
    );
    w.status(
        "op",
        FAC,
        "under_construction",
        &format!("2025-01-{day:02}"),
    );
    loan
}

/// 10 H100 procured `days` before 2025-06-30, 6 deployed by then, 4 after as_of.
fn undeployed_gpus(w: &mut World, days: u64) -> u64 {
    let date = shift("2025-06-30", -(days as i64));
    let lot = w.procurement("lot-1", "H100", 10, 16_000_000, &date);
    w.deploy("lot-1", FAC, 6, "2025-06-30");
    w.deploy("lot-1", FAC, 4, "2025-07-15");
    lot
}

/// 100 GPUs at the facility on 2025-06-30 (120 deployed, 20 moved to the other site on
/// that day, 30 more deployed the day after); June reports `gpus` installed.
fn phantom_installed(w: &mut World, gpus: u64) -> u64 {
    w.procure("lot-1", FAC, "H100", 150, 16_000_000, "2025-05-01");
    w.deploy("lot-1", FAC, 120, "2025-05-02");
    w.add(
        "op",
        Kind::LotTransfer,
        json!({"lot_id": "lot-1", "quantity": 20, "from_facility": FAC,
               "to_facility": OTHER, "price_minor": 0, "currency": "CNY",
               "date": "2025-06-30"}),
    );
    w.deploy("lot-1", FAC, 30, "2025-07-01");
    w.occupancy("2025-06", gpus, 100 * 720, 0, 0)
}

/// 100 GPUs deployed; June (720 hours) reports `hours` GPU-hours available.
fn phantom_hours(w: &mut World, hours: u64) -> u64 {
    w.procure("lot-1", FAC, "H100", 100, 16_000_000, "2025-05-01");
    w.deploy("lot-1", FAC, 100, "2025-06-01");
    w.occupancy("2025-06", 100, hours, 0, 0)
}

/// The later lot by date (entered first in the ledger) lists SN-000`n`; the earlier lot,
/// at the other facility, lists SN-0001.
fn duplicate_serial(w: &mut World, n: u64) -> u64 {
    w.procure("lot-late", FAC, "H100", 2, 16_000_000, "2025-03-01");
    w.procure("lot-early", OTHER, "H100", 2, 16_000_000, "2025-01-01");
    let listed = w.serials("lot-late", &[&format!("SN-000{n}"), "SN-0100"]);
    w.serials("lot-early", &["SN-0001", "SN-0200"]);
    listed
}

/// Two loans on the same date, the second in ledger order on `FAC`; it pledges
/// parcel-x-`n`, the first parcel-x-1.
fn duplicate_pledge_tie(w: &mut World, n: u64) -> u64 {
    w.loan(
        "loan-a",
        OTHER,
        100_000_000,
        false,
        "2024-06-01",
        &["parcel-x-1"],
    );
    w.loan(
        "loan-b",
        FAC,
        200_000_000,
        false,
        "2024-06-01",
        &[&format!("parcel-x-{n}")],
    )
}

/// The later loan by date (entered first) pledges parcel-x-1, the earlier one on the
/// other facility parcel-x-`n`.
fn double_pledge(w: &mut World, n: u64) -> u64 {
    let later = w.loan(
        "loan-late",
        FAC,
        200_000_000,
        false,
        "2024-06-01",
        &["parcel-x-1"],
    );
    w.loan(
        "loan-early",
        OTHER,
        100_000_000,
        false,
        "2024-05-01",
        &[&format!("parcel-x-{n}")],
    );
    later
}

/// 4 H100 bought in 2024 (reference 200,000 CNY) at `price` fen each.
fn price_high(w: &mut World, price: u64) -> u64 {
    w.procurement("lot-1", "H100", 4, price, "2024-05-10")
}

/// 4 H100 bought in 2022 (nearest year 2023: 220,000 CNY) at `price` fen each.
fn price_low(w: &mut World, price: u64) -> u64 {
    w.procurement("lot-1", "H100", 4, price, "2022-11-01")
}

/// GPUs worth 1,000,000 CNY procured; equipment grants of `amount` fen up to as_of,
/// plus a construction grant and a later equipment grant that do not count.
fn subsidy_stacking(w: &mut World, amount: u64) -> u64 {
    w.procure("lot-1", FAC, "B200", 10, 10_000_000, "2024-05-01");
    // Procured after as_of: adds nothing to the value.
    w.procure("lot-2", FAC, "B200", 10, 10_000_000, "2025-09-01");
    let granted = w.grant("s-eq", "equipment", amount, "2024-06-01", Value::Null);
    w.grant(
        "s-build",
        "construction",
        500_000_000,
        "2024-06-01",
        Value::Null,
    );
    w.grant(
        "s-eq-late",
        "equipment",
        50_000_000,
        "2025-08-01",
        Value::Null,
    );
    granted
}

/// Equipment money disbursed 2020-03-01; the lot's GPUs sold on 2025-03-`day` (5 years
/// after is 2025-03-01). An operations disbursement does not count.
fn sold_lot(w: &mut World, day: u64) -> u64 {
    w.grant("s-eq", "equipment", 40_000_000, "2020-02-01", Value::Null);
    w.disburse("s-eq", 40_000_000, "2020-03-01");
    w.grant("s-ops", "operations", 9_000_000, "2024-01-01", Value::Null);
    w.disburse("s-ops", 9_000_000, "2024-01-02");
    w.procure("lot-1", FAC, "A100", 8, 10_000_000, "2020-03-05");
    w.deploy("lot-1", FAC, 8, "2020-04-01");
    w.add(
        "op",
        Kind::LotTransfer,
        json!({"lot_id": "lot-1", "quantity": 8, "from_facility": FAC, "to_org": "op-b",
               "price_minor": 1_000_000, "currency": "CNY",
               "date": format!("2025-03-{day:02}")}),
    )
}

/// Construction money disbursed 2020-03-01; the facility sold on 2025-03-`day`.
fn sold_facility(w: &mut World, day: u64) -> u64 {
    w.grant(
        "s-build",
        "construction",
        60_000_000,
        "2020-02-01",
        Value::Null,
    );
    w.disburse("s-build", 60_000_000, "2020-03-01");
    w.add(
        "op",
        Kind::FacilityTransfer,
        json!({"facility_id": FAC, "to_org": "op-b", "price_minor": 900_000_000,
               "currency": "CNY", "date": format!("2025-03-{day:02}")}),
    )
}

/// Operational (by the regulator's record) from 2025-06-`day`; June has its occupancy
/// report but no power report.
fn reporting_gap(w: &mut World, day: u64) -> u64 {
    w.status("op", FAC, "under_construction", "2024-06-01");
    let operational = w.status(
        "regulator",
        FAC,
        "operational",
        &format!("2025-06-{day:02}"),
    );
    w.occupancy("2025-06", 0, 0, 0, 0);
    operational
}

/// Operational from May with May fully reported; suspended `days` after 2025-06-29.
fn reporting_gap_last_day(w: &mut World, days: u64) -> u64 {
    w.status("op", FAC, "under_construction", "2024-06-01");
    let operational = w.status("op", FAC, "operational", "2025-05-01");
    w.occupancy("2025-05", 0, 0, 0, 0);
    w.power("2025-05", 1_500, 1_000, 0, 0);
    w.status("op", FAC, "suspended", &shift("2025-06-29", days as i64));
    operational
}

/// Hours sold in June under an operation permit revoked `days` after 2025-06-30.
fn permit_missing(w: &mut World, days: u64) -> u64 {
    w.permit("op-1", "operation", "2024-01-01", "2027-12-31");
    w.revoke("op-1", &shift("2025-06-30", days as i64));
    w.occupancy("2025-06", 100, 72_000, 5_000, 0)
}

/// 100,000 GPU-hours sold in June against `it` kWh of IT energy.
fn power_occupancy_mismatch(w: &mut World, it: u64) -> u64 {
    w.occupancy("2025-06", 200, 144_000, 100_000, 0);
    w.power("2025-06", it * 3 / 2, it, 0, 0)
}

/// The operator reports 100,000 kWh consumed; the utility's latest reading says
/// `metered` (an earlier, superseded reading said 50,000).
fn meter_consumed(w: &mut World, metered: u64) -> u64 {
    w.power("2025-06", 100_000, 70_000, 0, 0);
    w.meter("2025-06", 50_000, 0);
    w.meter("2025-06", metered, 0)
}

/// The operator reports 10,000 kWh resold; the utility `metered`.
fn meter_resold(w: &mut World, metered: u64) -> u64 {
    w.power("2025-06", 100_000, 70_000, 10_000, 400_000);
    w.meter("2025-06", 100_000, metered)
}

/// 100 GPUs at the facility on 2025-05-10 (50 more deployed the day after); the
/// inspectors count `counted`.
fn inspection_shortfall(w: &mut World, counted: u64) -> u64 {
    w.procure("lot-1", FAC, "H100", 150, 16_000_000, "2025-01-10");
    w.deploy("lot-1", FAC, 100, "2025-02-01");
    w.deploy("lot-1", FAC, 50, "2025-05-11");
    w.inspection("2025-05-10", counted)
}

/// 60% utilization required by 2025-03-31; January to March show `pct`%, a full
/// December 2024 lies outside the three months.
fn condition_breach(w: &mut World, pct: u64) -> u64 {
    let condition = json!({"min_utilization_pct": 60, "by": "2025-03-31"});
    w.grant(
        "s-cv",
        "compute_voucher",
        30_000_000,
        "2024-06-01",
        condition,
    );
    let disbursed = w.disburse("s-cv", 15_000_000, "2024-07-01");
    w.occupancy("2024-12", 0, 100_000, 100_000, 0);
    for period in ["2025-01", "2025-02", "2025-03"] {
        w.occupancy(period, 0, 100_000, pct * 1_000, 0);
    }
    disbursed
}

/// A `min`% condition by 2025-03-31 and no reports at all (counts as 0%).
fn condition_breach_unreported(w: &mut World, min: u64) -> u64 {
    let condition = json!({"min_utilization_pct": min, "by": "2025-03-31"});
    let granted = w.grant(
        "s-cv",
        "compute_voucher",
        30_000_000,
        "2024-06-01",
        condition,
    );
    w.disburse("s-cv", 15_000_000, "2024-07-01");
    granted
}

/// June: `consumed` kWh against 100,000 kWh of IT energy.
fn pue(w: &mut World, consumed: u64) -> u64 {
    w.power("2025-06", consumed, 100_000, 0, 0)
}

/// June: `consumed` kWh and no IT energy at all.
fn pue_without_it(w: &mut World, consumed: u64) -> u64 {
    w.power("2025-06", consumed, 0, 0, 0)
}

macro_rules! cases {
    ($($name:ident: $case:expr;)+) => {
        $(
            #[test]
            fn $name() {
                check($case);
            }
        )+

        #[test]
        fn every_rule_has_a_case() {
            let covered: BTreeSet<Rule> = [$($case.rule),+].into_iter().collect();
            let all: BTreeSet<Rule> = Rule::ALL.iter().copied().collect();
            assert_eq!(covered, all);
        }
    };
}

cases! {
    idle_funded_below_30_pct: Case {
        rule: Rule::IdleFunded, as_of: "2025-06", fires: 29, twin: 30, build: idle_funded,
        shows: &["29.0%", "200,000 CNY"], money: Some(20_000_000),
    };
    stalled_funded_12_months_after_disbursement: Case {
        rule: Rule::StalledFunded, as_of: "2025-06", fires: 365, twin: 364,
        build: stalled_funded, shows: &["800,000 CNY", "2024-06-30"], money: Some(80_000_000),
    };
    voucher_dependence_over_half_of_sold_hours: Case {
        rule: Rule::VoucherDependence, as_of: "2025-06", fires: 51, twin: 50,
        build: voucher_dependence, shows: &["51.0%", "100,000"], money: None,
    };
    power_resale_over_30_pct: Case {
        rule: Rule::PowerResale, as_of: "2025-06", fires: 31, twin: 30, build: power_resale,
        shows: &["31,000 kWh", "31.0%"], money: Some(3_000_000),
    };
    resale_without_permit_one_uncovered_day: Case {
        rule: Rule::ResaleWithoutPermit, as_of: "2025-06", fires: 17, twin: 16,
        build: resale_without_permit, shows: &["1,234 kWh", "2025-06"], money: Some(50_000),
    };
    land_banking_construction_permit_after_12_months: Case {
        rule: Rule::LandBanking, as_of: "2025-06", fires: 16, twin: 15, build: land_banking,
        shows: &["loan-1", "3,000,000 CNY", "2024-01-15"], money: Some(300_000_000),
    };
    land_banking_loan_12_months_old: Case {
        rule: Rule::LandBanking, as_of: "2025-06", fires: 365, twin: 364,
        build: land_banking_loan_age, shows: &["2024-06-30"], money: Some(300_000_000),
    };
    land_banking_construction_status_after_12_months: Case {
        rule: Rule::LandBanking, as_of: "2025-06", fires: 16, twin: 15,
        build: land_banking_status, shows: &["loan-1"], money: Some(300_000_000),
    };
    undeployed_gpus_after_90_days: Case {
        rule: Rule::UndeployedGpus, as_of: "2025-06", fires: 91, twin: 90,
        build: undeployed_gpus, shows: &["4 of 10", "2025-03-31"], money: Some(64_000_000),
    };
    phantom_capacity_more_installed_than_there: Case {
        rule: Rule::PhantomCapacity, as_of: "2025-07", fires: 101, twin: 100,
        build: phantom_installed, shows: &["101 GPUs", "shows 100"], money: None,
    };
    phantom_capacity_more_hours_than_the_month_has: Case {
        rule: Rule::PhantomCapacity, as_of: "2025-06", fires: 72_001, twin: 72_000,
        build: phantom_hours, shows: &["72,001", "720 hours"], money: None,
    };
    duplicate_serial_names_the_later_lot_by_date: Case {
        rule: Rule::DuplicateSerial, as_of: "2025-06", fires: 1, twin: 2,
        build: duplicate_serial, shows: &["SN-0001", "2 lots"], money: None,
    };
    double_pledge_names_the_later_loan_by_date: Case {
        rule: Rule::DoublePledge, as_of: "2025-06", fires: 1, twin: 2, build: double_pledge,
        shows: &["parcel-x-1", "2 loans"], money: Some(200_000_000),
    };
    double_pledge_same_date_names_the_later_in_ledger_order: Case {
        rule: Rule::DoublePledge, as_of: "2025-06", fires: 1, twin: 2,
        build: duplicate_pledge_tie, shows: &["parcel-x-1"], money: Some(200_000_000),
    };
    price_anomaly_above_150_pct: Case {
        rule: Rule::PriceAnomaly, as_of: "2025-06", fires: 30_000_001, twin: 30_000_000,
        build: price_high, shows: &["300,000 CNY", "200,000 CNY"],
        money: Some(4 * 10_000_001),
    };
    price_anomaly_below_50_pct_of_the_nearest_year: Case {
        rule: Rule::PriceAnomaly, as_of: "2025-06", fires: 10_999_999, twin: 11_000_000,
        build: price_low, shows: &["49.9%", "220,000 CNY"], money: Some(4 * 11_000_001),
    };
    subsidy_stacking_above_procured_value: Case {
        rule: Rule::SubsidyStacking, as_of: "2025-06", fires: 100_000_100, twin: 100_000_000,
        build: subsidy_stacking, shows: &["1,000,001 CNY", "1,000,000 CNY"], money: Some(100),
    };
    subsidised_lot_sold_within_5_years: Case {
        rule: Rule::SubsidisedAssetSold, as_of: "2025-06", fires: 1, twin: 2, build: sold_lot,
        shows: &["lot-1", "op-b", "2025-03-01", "400,000 CNY"], money: Some(40_000_000),
    };
    subsidised_facility_sold_within_5_years: Case {
        rule: Rule::SubsidisedAssetSold, as_of: "2025-06", fires: 1, twin: 2,
        build: sold_facility, shows: &["op-b", "2025-03-01", "600,000 CNY"],
        money: Some(60_000_000),
    };
    reporting_gap_operational_from_the_first_day: Case {
        rule: Rule::ReportingGap, as_of: "2025-06", fires: 1, twin: 2, build: reporting_gap,
        shows: &["2025-06", "no power report"], money: None,
    };
    reporting_gap_operational_to_the_last_day: Case {
        rule: Rule::ReportingGap, as_of: "2025-06", fires: 2, twin: 1,
        build: reporting_gap_last_day, shows: &["2025-06", "occupancy or power"], money: None,
    };
    permit_missing_revoked_on_the_last_day: Case {
        rule: Rule::PermitMissing, as_of: "2025-06", fires: 0, twin: 1, build: permit_missing,
        shows: &["5,000", "2025-06"], money: None,
    };
    power_occupancy_mismatch_below_half_a_kwh_per_hour: Case {
        rule: Rule::PowerOccupancyMismatch, as_of: "2025-06", fires: 49_999, twin: 50_000,
        build: power_occupancy_mismatch, shows: &["100,000 GPU-hours", "49,999 kWh"],
        money: None,
    };
    meter_mismatch_consumed_over_10_pct: Case {
        rule: Rule::MeterMismatch, as_of: "2025-06", fires: 89_999, twin: 90_000,
        build: meter_consumed, shows: &["89,999", "100,000"], money: None,
    };
    meter_mismatch_resold_over_10_pct: Case {
        rule: Rule::MeterMismatch, as_of: "2025-06", fires: 8_999, twin: 9_000,
        build: meter_resold, shows: &["8,999", "10,000"], money: None,
    };
    inspection_shortfall_below_90_pct: Case {
        rule: Rule::InspectionShortfall, as_of: "2025-06", fires: 89, twin: 90,
        build: inspection_shortfall, shows: &["counted 89", "records 100"], money: None,
    };
    subsidy_condition_breach_below_minimum: Case {
        rule: Rule::SubsidyConditionBreach, as_of: "2025-06", fires: 59, twin: 60,
        build: condition_breach, shows: &["59.0%", "60%", "150,000 CNY"],
        money: Some(15_000_000),
    };
    subsidy_condition_breach_without_reports: Case {
        rule: Rule::SubsidyConditionBreach, as_of: "2025-06", fires: 1, twin: 0,
        build: condition_breach_unreported, shows: &["0.0%"], money: Some(15_000_000),
    };
    pue_implausible_above_2: Case {
        rule: Rule::PueImplausible, as_of: "2025-06", fires: 200_001, twin: 200_000,
        build: pue, shows: &["200,001 kWh consumed", "100,000 kWh IT"], money: None,
    };
    pue_implausible_below_1_05: Case {
        rule: Rule::PueImplausible, as_of: "2025-06", fires: 104_999, twin: 105_000,
        build: pue, shows: &["PUE 1.04", "104,999"], money: None,
    };
    pue_implausible_without_it_energy: Case {
        rule: Rule::PueImplausible, as_of: "2025-06", fires: 1, twin: 0,
        build: pue_without_it, shows: &["undefined"], money: None,
    };
}

fn fired(findings: &[Arc<Finding>], rule: Rule) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| f.rule == rule.as_str())
        .map(|f| &**f)
        .collect()
}

#[test]
fn facts_after_as_of_are_ignored() {
    let mut w = World::new();
    inspection_shortfall(&mut w, 50); // inspection of 2025-05-10
    meter_consumed(&mut w, 10_000); // reports for 2025-06
    let rules = |findings: &[Arc<Finding>]| {
        [Rule::InspectionShortfall, Rule::MeterMismatch]
            .into_iter()
            .filter(|r| !fired(findings, *r).is_empty())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        rules(&w.audit("2025-06")),
        [Rule::InspectionShortfall, Rule::MeterMismatch]
    );
    assert_eq!(rules(&w.audit("2025-05")), [Rule::InspectionShortfall]);
    assert_eq!(rules(&w.audit("2025-04")), Vec::<Rule>::new());
}

/// reporting-gap looks at every month of the window, not only as_of: each month that
/// lacks a report is named with what it lacks, whatever order the reports came in, and
/// a report before the window covers nothing in it.
#[test]
fn reporting_gap_names_every_month_of_the_window_that_lacks_a_report() {
    let mut w = World::new();
    w.status("op", FAC, "operational", "2024-01-01");
    // As of 2025-06 the window (six months by default) is January to June.
    for period in [
        "2025-05", "2024-12", "2025-01", "2025-02", "2025-04", "2025-06",
    ] {
        w.occupancy(period, 0, 0, 0, 0);
    }
    for period in ["2025-06", "2024-12", "2025-02", "2025-03", "2025-05"] {
        w.power(period, 0, 0, 0, 0);
    }
    let gaps: Vec<(String, String)> = fired(&w.audit("2025-06"), Rule::ReportingGap)
        .into_iter()
        .map(|f| (f.key.clone(), f.summary.clone()))
        .collect();
    let want = |month: &str, missing: &str| {
        (
            month.to_string(),
            format!("operational through {month} but no {missing} report for it"),
        )
    };
    assert_eq!(
        gaps,
        [
            want("2025-01", "power"),
            want("2025-03", "occupancy"),
            want("2025-04", "power"),
        ]
    );
}

#[test]
fn a_model_missing_from_the_price_table_is_never_an_anomaly() {
    let mut w = World::new();
    w.procure("lot-1", FAC, "B200", 4, 1, "2024-05-10");
    w.procure("lot-2", FAC, "B200", 4, 900_000_000_000, "2024-05-10");
    assert!(fired(&w.audit("2025-06"), Rule::PriceAnomaly).is_empty());
}

#[test]
fn a_threshold_from_toml_changes_what_fires() {
    let mut w = World::new();
    idle_funded(&mut w, 20);
    let defaults = w.audit("2025-06");
    assert_eq!(fired(&defaults, Rule::IdleFunded).len(), 1);
    let config = Config::from_toml("[audit]\nidle_utilization_pct = 10\n")
        .expect("config")
        .audit;
    assert_eq!(config.window_months, AuditConfig::default().window_months);
    let tuned = w.audit_with("2025-06", config);
    assert!(fired(&tuned, Rule::IdleFunded).is_empty(), "{tuned:#?}");
    // Nothing else changed.
    let others = |findings: &[Arc<Finding>]| {
        findings
            .iter()
            .filter(|f| f.rule != Rule::IdleFunded.as_str())
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(others(&defaults), others(&tuned));
}

#[test]
fn responses_and_resolutions_attach_to_their_finding() {
    let mut w = World::new();
    idle_funded(&mut w, 20);
    pue(&mut w, 300_000);
    let findings = w.audit("2025-06");
    let id = fired(&findings, Rule::IdleFunded)[0].id.clone();
    assert_eq!(id, audit::finding_id(Rule::IdleFunded, FAC, ""));
    assert!(findings.iter().all(|f| f.notes.is_empty()));

    let response = w.add(
        "op",
        Kind::FindingResponse,
        json!({"finding_id": id, "text": "Tenants moved in after the period."}),
    );
    let resolution = w.add(
        "regulator",
        Kind::FindingResolve,
        json!({"finding_id": id, "outcome": "confirmed", "text": "Site visit confirms it."}),
    );
    // A note about some other finding attaches to nothing here.
    w.add(
        "op",
        Kind::FindingResponse,
        json!({"finding_id": "0".repeat(32), "text": "unrelated"}),
    );
    let findings = w.audit("2025-06");
    let idle = fired(&findings, Rule::IdleFunded)[0];
    assert_eq!(idle.id, id, "ids are stable across runs");
    let notes: Vec<_> = idle
        .notes
        .iter()
        .map(|n| {
            (
                n.kind,
                n.outcome,
                n.org_id.as_str(),
                n.index,
                n.text.as_str(),
            )
        })
        .collect();
    assert_eq!(
        notes,
        [
            (
                "response",
                None,
                "op-a",
                response,
                "Tenants moved in after the period."
            ),
            (
                "resolution",
                Some("confirmed"),
                "inspectorate",
                resolution,
                "Site visit confirms it."
            ),
        ]
    );
    let pue_finding = fired(&findings, Rule::PueImplausible)[0];
    assert!(pue_finding.notes.is_empty());
}

#[test]
fn cli_prints_the_default_config_and_deterministic_json() {
    let printed = bin()
        .args(["audit", "--print-config"])
        .output()
        .expect("run dcledger");
    assert!(printed.status.success());
    let text = String::from_utf8(printed.stdout).expect("utf-8");
    assert_eq!(
        Config::from_toml(&text).expect("parses").audit,
        AuditConfig::default()
    );
    // A thresholds file of the old flat format is refused with a way to convert it.
    let dir = tempfile::tempdir().expect("tempdir");
    let flat = dir.path().join("flat.toml");
    std::fs::write(&flat, "idle_utilization_pct = 10\n").expect("write");
    let refused = bin()
        .args([
            "audit",
            "--data",
            path_str(dir.path()),
            "--config",
            path_str(&flat),
        ])
        .output()
        .expect("run dcledger");
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("old flat format") && message.contains("[audit]"),
        "{message}"
    );

    let mut w = World::new();
    idle_funded(&mut w, 20);
    meter_consumed(&mut w, 10_000);
    inspection_shortfall(&mut w, 50);
    w.flush();
    let data = w.t.data();
    let World { t, .. } = w;
    let TestLedger { dir, ledger, .. } = t;
    let size = ledger.size();
    // One process opens a ledger at a time.
    ledger.close().expect("close");

    let run = || {
        let out = bin()
            .args(["audit", "--data", path_str(&data), "--format", "json"])
            .output()
            .expect("run dcledger");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let first = run();
    assert_eq!(first, run(), "same ledger, same bytes");
    let doc: Value = serde_json::from_slice(&first).expect("json");
    // The default as_of is the latest report period.
    assert_eq!(doc["as_of"], "2025-06");
    // Citable: the checkpoint and the configuration it was computed from.
    assert_eq!(doc["checkpoint"]["tree_size"], size);
    assert_eq!(doc["checkpoint"]["root"].as_str().map(str::len), Some(64));
    assert_eq!(doc["config_b3"].as_str().map(str::len), Some(64));
    let findings = doc["findings"].as_array().expect("findings");
    assert_eq!(doc["count"], findings.len());
    let mut seen = BTreeSet::new();
    for f in findings {
        let id = f["id"].as_str().expect("id");
        assert!(
            id.len() == 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "id {id}"
        );
        let rule = Rule::parse(f["rule"].as_str().expect("rule")).expect("a rule of PROTOCOL §8");
        assert_eq!(f["severity"], rule.severity().as_str());
        assert!(!f["summary"].as_str().expect("summary").is_empty());
        let evidence: Vec<u64> = f["evidence"]
            .as_array()
            .expect("evidence")
            .iter()
            .map(|i| i.as_u64().expect("index"))
            .collect();
        assert!(!evidence.is_empty() && evidence.is_sorted());
        seen.insert((
            rule,
            f["facility_id"].as_str().expect("facility").to_string(),
        ));
    }
    for rule in [
        Rule::IdleFunded,
        Rule::MeterMismatch,
        Rule::InspectionShortfall,
    ] {
        assert!(
            seen.contains(&(rule, FAC.to_string())),
            "{rule:?}: {seen:?}"
        );
    }
    drop(dir);
}

#[test]
fn the_default_as_of_is_the_latest_report_period() {
    let mut w = World::new();
    w.occupancy("2025-06", 0, 0, 0, 0);
    w.power("2025-07", 1_500, 1_000, 0, 0);
    w.meter("2025-09", 1_500, 0); // a meter reading is not a report of the operator's
    w.flush();
    let (as_of, _) = audit::run(&w.t.ledger.reader(), &AuditRequest::default()).expect("audit");
    assert_eq!(as_of, Month::parse("2025-07").unwrap());
}

/// A snapshot kept across refreshes, whose period findings are reused between audits,
/// audits exactly like one loaded afresh: after a corrected report for an old month, a
/// late meter reading, a meter reading ahead of every report, another month, and a
/// revocation (the facility reloads whole),
/// at as_ofs moving back and forth, under two configurations.
#[test]
fn a_kept_snapshot_audits_like_a_fresh_one_after_revisions() {
    let strict = AuditConfig {
        meter_tolerance_pct: 0,
        pue_max_centi: 120,
        ..AuditConfig::default()
    };
    // The kept findings hold for one configuration; starting and ending with the same
    // one makes the first audit after a refresh reuse what the last one kept.
    let configs = [AuditConfig::default(), strict, AuditConfig::default()];
    let compare = |kept: &audit::Snapshot, w: &World, step: &str| {
        let fresh = audit::Snapshot::load(&w.t.ledger.reader()).unwrap();
        assert_eq!(
            kept.default_as_of(),
            fresh.default_as_of(),
            "{step}: default as_of"
        );
        for config in &configs {
            for as_of in ["2025-06", "2025-03", "2025-07", "2025-05", "2025-06"] {
                let month = Month::parse(as_of).unwrap();
                assert_eq!(
                    kept.audit(month, config),
                    fresh.audit(month, config),
                    "{step}, as of {as_of}, {config:?}"
                );
            }
        }
    };
    let mut w = World::new();
    w.status("op", FAC, "operational", "2024-01-01");
    w.permit("op-1", "operation", "2024-01-01", "2030-12-31");
    w.procure("lot-1", FAC, "H100", 100, 16_000_000, "2024-01-10");
    w.deploy("lot-1", FAC, 100, "2024-01-15");
    for m in 1..=6 {
        let period = format!("2025-{m:02}");
        w.power(&period, 100_000, 80_000, 0, 0);
        w.occupancy(&period, 100, 72_000, 50_000, 0);
        w.meter(&period, 100_000, 0);
    }
    w.flush();
    let mut kept = audit::Snapshot::load(&w.t.ledger.reader()).unwrap();
    compare(&kept, &w, "loaded");

    w.power("2025-02", 300_000, 80_000, 0, 0);
    w.meter("2025-04", 150_000, 0);
    // A meter reading for a month no operator reported: not the latest report period.
    w.meter("2025-09", 100_000, 0);
    w.power("2025-07", 100_000, 80_000, 0, 0);
    w.occupancy("2025-07", 100, 72_000, 50_000, 0);
    w.flush();
    kept.refresh(&w.t.ledger.reader()).unwrap();
    compare(&kept, &w, "revised");
    let july = kept.audit(Month::parse("2025-07").unwrap(), &AuditConfig::default());
    let keys = |rule| -> Vec<String> { fired(&july, rule).iter().map(|f| f.key.clone()).collect() };
    assert_eq!(keys(Rule::PueImplausible), ["2025-02"]);
    assert_eq!(keys(Rule::MeterMismatch), ["2025-02", "2025-04"]);

    w.revoke("op-1", "2025-03-01");
    w.flush();
    kept.refresh(&w.t.ledger.reader()).unwrap();
    compare(&kept, &w, "revoked");
    let july = kept.audit(Month::parse("2025-07").unwrap(), &AuditConfig::default());
    assert_eq!(fired(&july, Rule::PermitMissing).len(), 5, "March to July");
}

/// A serial's finding as of each month names only the lots dated by then, whether the
/// snapshot worked it out for that month or reuses the one it keeps for after the
/// newest lot.
#[test]
fn a_duplicate_serial_grows_with_its_lots_month_by_month() {
    let mut w = World::new();
    w.procure("lot-1", OTHER, "H100", 2, 16_000_000, "2025-01-10");
    w.procure("lot-2", FAC, "H100", 2, 16_000_000, "2025-03-10");
    w.procure("lot-3", OTHER, "H100", 2, 16_000_000, "2025-05-10");
    for lot in ["lot-1", "lot-2", "lot-3"] {
        w.serials(lot, &["SN-SHARED", &format!("SN-{lot}")]);
    }
    w.flush();
    let snapshot = audit::Snapshot::load(&w.t.ledger.reader()).unwrap();
    for (as_of, wanted) in [
        ("2025-06", Some((OTHER, "3 lots (lot-1, lot-2, lot-3)"))),
        ("2025-04", Some((FAC, "2 lots (lot-1, lot-2)"))),
        ("2025-02", None),
        ("2025-05", Some((OTHER, "3 lots (lot-1, lot-2, lot-3)"))),
    ] {
        let findings = snapshot.audit(Month::parse(as_of).unwrap(), &AuditConfig::default());
        let found: Vec<(&str, &str)> = fired(&findings, Rule::DuplicateSerial)
            .iter()
            .map(|f| (f.facility_id.as_str(), f.summary.as_str()))
            .collect();
        match wanted {
            None => assert!(found.is_empty(), "as of {as_of}: {found:?}"),
            Some((facility, lots)) => {
                assert_eq!(found.len(), 1, "as of {as_of}: {found:?}");
                assert_eq!(found[0].0, facility, "as of {as_of}");
                assert!(found[0].1.contains(lots), "as of {as_of}: {}", found[0].1);
            }
        }
    }
}
