//! Every domain kind of PROTOCOL §7: a valid body is accepted, invalid bodies are refused
//! naming the field, and the referential and ownership rules of §6 hold. Nothing is
//! written on a refusal.

use dcledger::entry::Kind;
use dcledger::reject::RejectClass;
use serde_json::{Value, json};

use crate::support::{Party, TestLedger, assert_rebuild_equals_incremental};

const TS: &str = "2025-11-30T00:00:00Z";

fn example(kind: &str) -> Value {
    let path = format!(
        "{}/schemas/examples/{kind}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("example")).expect("json")
}

/// The parties of the examples' story about facility `zz-dc-01`.
struct World {
    t: TestLedger,
    op: Party,
    op2: Party,
    permitter: Party,
    grantor: Party,
    grantor2: Party,
    lender: Party,
    utility: Party,
    regulator: Party,
}

impl World {
    fn new() -> World {
        let mut t = TestLedger::new();
        let w = |seed| Party::new(seed);
        let (op, op2, permitter, grantor, grantor2, lender, utility, regulator) =
            (w(3), w(4), w(5), w(6), w(7), w(8), w(9), w(10));
        for (org, roles) in [
            ("zhongyuan-holdings", "operator"),
            ("buyer-hk-ltd", "operator"),
        ] {
            let e = t.authority.sign(
                Kind::OrgRegister,
                json!({"org_id": org, "name": org, "roles": [roles]}),
            );
            t.accept(vec![e]);
        }
        t.onboard("zhongyuan-compute", &["operator"], &op);
        t.onboard("central-plains-capital", &["operator"], &op2);
        t.onboard("henan-nda", &["permitter"], &permitter);
        t.onboard("henan-fund", &["grantor"], &grantor);
        t.onboard("other-fund", &["grantor"], &grantor2);
        t.onboard("cdb", &["lender"], &lender);
        t.onboard("state-grid-henan", &["utility"], &utility);
        t.onboard("nda-inspect", &["regulator"], &regulator);
        World {
            t,
            op,
            op2,
            permitter,
            grantor,
            grantor2,
            lender,
            utility,
            regulator,
        }
    }

    fn party(&mut self, name: &str) -> &mut Party {
        match name {
            "op" => &mut self.op,
            "op2" => &mut self.op2,
            "permitter" => &mut self.permitter,
            "grantor" => &mut self.grantor,
            "grantor2" => &mut self.grantor2,
            "lender" => &mut self.lender,
            "utility" => &mut self.utility,
            "regulator" => &mut self.regulator,
            "authority" => &mut self.t.authority,
            other => panic!("no party {other}"),
        }
    }

    /// Signs with the party's next seq without advancing it (the caller decides).
    fn envelope(&mut self, who: &str, kind: Kind, body: Value) -> Value {
        let p = self.party(who);
        p.sign_with(kind, p.next_seq, TS, body)
    }

    fn submit(
        &mut self,
        who: &str,
        kind: Kind,
        body: Value,
    ) -> Result<(), dcledger::reject::BatchRejection> {
        let env = self.envelope(who, kind, body);
        let outcome = self.t.ledger.append_batch(vec![env]).expect("storage");
        if outcome.is_ok() {
            self.party(who).next_seq += 1;
        }
        outcome.map(|_| ())
    }

    fn accept(&mut self, who: &str, kind: Kind, body: Value) {
        if let Err(r) = self.submit(who, kind, body.clone()) {
            panic!("{kind} by {who} refused: {r}\n{body}");
        }
    }

    /// The examples' story up to a deployed lot, operational, with one month reported.
    fn story(&mut self) {
        for (who, kind) in [
            ("op", "facility.register"),
            ("permitter", "permit.issue"),
            ("op", "procurement"),
            ("op", "lot.serials"),
            ("lender", "loan.issue"),
            ("grantor", "subsidy.grant"),
            ("grantor", "subsidy.disburse"),
            ("op", "deployment"),
            ("op", "facility.status"),
            ("op", "power.report"),
            ("utility", "meter.reading"),
            ("op", "occupancy.report"),
            ("regulator", "inspection.report"),
        ] {
            let k = Kind::parse(kind).unwrap();
            self.accept(who, k, example(kind));
        }
    }
}

#[test]
fn every_domain_kind_is_accepted_with_a_valid_body() {
    let mut w = World::new();
    w.story();
    for (who, kind) in [
        ("op", "lot.transfer"),
        ("permitter", "permit.revoke"),
        ("op", "finding.response"),
        ("regulator", "finding.resolve"),
        ("op", "facility.transfer"),
    ] {
        w.accept(who, Kind::parse(kind).unwrap(), example(kind));
    }
    // A second report for a period supersedes the first; both stay in the ledger.
    let mut later = example("power.report");
    later["consumed_kwh"] = json!(5_300_000);
    let before = w.t.ledger.size();
    w.accept("op2", Kind::PowerReport, later);
    assert_eq!(w.t.ledger.size(), before + 1);
    w.t.ledger.verify().expect("verify");
}

/// Mutations of each kind's valid example, each refused (400) with an error at `path`.
#[test]
fn invalid_bodies_name_the_field_and_write_nothing() {
    type Mutate = fn(&mut Value);
    let cases: Vec<(&str, &str, Mutate, &str)> = vec![
        (
            "op",
            "facility.register",
            |b| b["lat_e6"] = json!(91_000_000),
            "/entry/body/lat_e6",
        ),
        (
            "op",
            "facility.register",
            |b| b["announced"] = json!("2023-02-30"),
            "/entry/body/announced",
        ),
        (
            "op",
            "facility.register",
            |b| b["colour"] = json!("red"),
            "/entry/body",
        ),
        (
            "op",
            "facility.register",
            |b| b["announced"] = json!("0000-01-01"),
            "/entry/body/announced",
        ),
        (
            "op",
            "facility.register",
            |b| b["province"] = json!("national"),
            "/entry/body/province",
        ),
        (
            "op",
            "facility.register",
            |b| b["city"] = json!("Zhengzhou\u{2067}"),
            "/entry/body/city",
        ),
        (
            "op",
            "facility.status",
            |b| b["status"] = json!("closed"),
            "/entry/body/status",
        ),
        (
            "op",
            "facility.status",
            |b| b["effective"] = json!("2024-9-01"),
            "/entry/body/effective",
        ),
        (
            "op",
            "facility.transfer",
            |b| b["currency"] = json!("cny"),
            "/entry/body/currency",
        ),
        (
            "op",
            "facility.transfer",
            |b| b["price_minor"] = json!(-1),
            "/entry/body/price_minor",
        ),
        (
            "op",
            "procurement",
            |b| b["quantity"] = json!(0),
            "/entry/body/quantity",
        ),
        (
            "op",
            "procurement",
            |b| b["gpu_model"] = json!(""),
            "/entry/body/gpu_model",
        ),
        (
            "op",
            "lot.serials",
            |b| b["serials"] = json!([]),
            "/entry/body/serials",
        ),
        (
            "op",
            "lot.serials",
            |b| b["serials"] = json!(["A1", "A1"]),
            "/entry/body/serials",
        ),
        (
            "op",
            "lot.serials",
            |b| b["serials"] = json!(["has space"]),
            "/entry/body/serials/0",
        ),
        (
            "op",
            "deployment",
            |b| b["quantity"] = json!(0),
            "/entry/body/quantity",
        ),
        (
            "op",
            "deployment",
            |b| b["date"] = json!("2024-13-01"),
            "/entry/body/date",
        ),
        (
            "op",
            "lot.transfer",
            |b| b["to_facility"] = json!("zz-dc-01"),
            "/entry/body",
        ),
        (
            "op",
            "lot.transfer",
            |b| {
                b.as_object_mut().unwrap().remove("quantity");
            },
            "/entry/body",
        ),
        (
            "permitter",
            "permit.issue",
            |b| b["kind"] = json!("mining"),
            "/entry/body/kind",
        ),
        (
            "permitter",
            "permit.issue",
            |b| b["valid_until"] = json!("2024-08-31"),
            "/entry/body/valid_until",
        ),
        (
            "permitter",
            "permit.issue",
            |b| b["valid_from"] = json!("1969-12-31"),
            "/entry/body/valid_from",
        ),
        (
            "permitter",
            "permit.revoke",
            |b| b["reason"] = json!(""),
            "/entry/body/reason",
        ),
        (
            "permitter",
            "permit.revoke",
            |b| b["effective"] = json!("2025-06-31"),
            "/entry/body/effective",
        ),
        (
            "grantor",
            "subsidy.grant",
            |b| b["purpose"] = json!("bribes"),
            "/entry/body/purpose",
        ),
        (
            "grantor",
            "subsidy.grant",
            |b| b["condition"]["min_utilization_pct"] = json!(101),
            "/entry/body/condition/min_utilization_pct",
        ),
        (
            "grantor",
            "subsidy.grant",
            |b| b["condition"]["by"] = json!("0000-06-30"),
            "/entry/body/condition/by",
        ),
        (
            "grantor",
            "subsidy.disburse",
            |b| b["amount_minor"] = json!(0),
            "/entry/body/amount_minor",
        ),
        (
            "grantor",
            "subsidy.disburse",
            |b| b["currency"] = json!("EURO"),
            "/entry/body/currency",
        ),
        (
            "lender",
            "loan.issue",
            |b| b["collateral"] = json!([]),
            "/entry/body/collateral",
        ),
        (
            "lender",
            "loan.issue",
            |b| b["state_backed"] = json!("yes"),
            "/entry/body/state_backed",
        ),
        (
            "op",
            "power.report",
            |b| b["it_kwh"] = json!(6_000_000),
            "/entry/body/it_kwh",
        ),
        (
            "op",
            "power.report",
            |b| b["period"] = json!("2025-13"),
            "/entry/body/period",
        ),
        (
            "op",
            "power.report",
            |b| b["period"] = json!("0000-12"),
            "/entry/body/period",
        ),
        (
            "utility",
            "meter.reading",
            |b| b["period"] = json!("1969-12"),
            "/entry/body/period",
        ),
        (
            "utility",
            "meter.reading",
            |b| b["period"] = json!("2026-01"),
            "/entry/body/period",
        ),
        (
            "utility",
            "meter.reading",
            |b| b["consumed_kwh"] = json!(-5),
            "/entry/body/consumed_kwh",
        ),
        (
            "op",
            "occupancy.report",
            |b| b["gpu_hours_voucher"] = json!(95_001),
            "/entry/body/gpu_hours_voucher",
        ),
        (
            "op",
            "occupancy.report",
            |b| b["gpu_hours_sold"] = json!(400_000),
            "/entry/body/gpu_hours_sold",
        ),
        (
            "regulator",
            "inspection.report",
            |b| b["observed_status"] = json!("fine"),
            "/entry/body/observed_status",
        ),
        (
            "regulator",
            "inspection.report",
            |b| b["document_b3"] = json!("XYZ"),
            "/entry/body/document_b3",
        ),
        (
            "op",
            "finding.response",
            |b| b["finding_id"] = json!("abc"),
            "/entry/body/finding_id",
        ),
        (
            "op",
            "finding.response",
            |b| b["text"] = json!("x".repeat(4001)),
            "/entry/body/text",
        ),
        (
            "regulator",
            "finding.resolve",
            |b| b["outcome"] = json!("maybe"),
            "/entry/body/outcome",
        ),
        (
            "regulator",
            "finding.resolve",
            |b| b["finding_id"] = json!("0F3A9C2D41B7E6A85C1D2E3F4A5B6C7D"),
            "/entry/body/finding_id",
        ),
    ];
    let mut w = World::new();
    w.story();
    let mut per_kind = std::collections::BTreeMap::<&str, usize>::new();
    for (who, kind, mutate, path) in cases {
        let mut body = example(kind);
        mutate(&mut body);
        let size = w.t.ledger.size();
        let refusal = match w.submit(who, Kind::parse(kind).unwrap(), body) {
            Ok(()) => panic!("{kind} {path}: accepted"),
            Err(r) => r.rejection,
        };
        assert_eq!(
            refusal.class,
            RejectClass::Invalid,
            "{kind} {path}: {refusal}"
        );
        assert!(
            refusal.errors.iter().any(|e| e.path == path),
            "{kind}: wanted {path}: {refusal}"
        );
        assert_eq!(w.t.ledger.size(), size, "{kind}: ledger grew");
        *per_kind.entry(kind).or_default() += 1;
    }
    let domain_kinds = Kind::ALL.len() - 4; // genesis, org.register, key.grant, key.revoke
    assert_eq!(
        per_kind.len(),
        domain_kinds,
        "every domain kind has invalid cases"
    );
    assert!(per_kind.values().all(|n| *n >= 2));
}

/// Who signs each kind in the examples' story.
fn signer_of(kind: &str) -> &'static str {
    match kind {
        "ledger.genesis" | "org.register" | "key.grant" | "key.revoke" => "authority",
        "permit.issue" | "permit.revoke" => "permitter",
        "subsidy.grant" | "subsidy.disburse" => "grantor",
        "loan.issue" => "lender",
        "meter.reading" => "utility",
        "inspection.report" | "finding.resolve" => "regulator",
        _ => "op",
    }
}

/// `(kind, field)` of every free-text field, as the schemas mark them (PROTOCOL §7's named
/// fields, `province`, `city` and `registration_no`).
fn free_text_fields() -> Vec<(&'static str, String)> {
    let mut fields = Vec::new();
    for (kind, text) in dcledger::schema::BODY_SCHEMAS {
        let schema: Value = serde_json::from_str(text).expect("schema");
        for (field, prop) in schema["properties"].as_object().expect("properties") {
            if prop["pattern"] == dcledger::schema::FREE_TEXT_PATTERN {
                fields.push((*kind, field.clone()));
            }
        }
    }
    fields
}

/// PROTOCOL §2: free text holds no control characters (U+0000–U+001F, U+007F–U+009F) and no
/// bidirectional controls (U+202A–U+202E, U+2066–U+2069). Every free-text field of every
/// kind, each with characters of every range, is refused (400 at the field, naming the
/// character) and nothing is written.
#[test]
fn free_text_holds_no_control_or_bidirectional_characters() {
    let mut w = World::new();
    w.story();
    let fields = free_text_fields();
    assert_eq!(fields.len(), 15, "{fields:?}");
    for (kind, field) in fields {
        for (bad, code) in [
            ('\u{0}', "U+0000"),
            ('\n', "U+000A"),
            ('\u{7f}', "U+007F"),
            ('\u{9f}', "U+009F"),
            ('\u{202e}', "U+202E"),
            ('\u{2069}', "U+2069"),
        ] {
            let mut body = example(kind);
            body[field.as_str()] = json!(format!("Zheng{bad}zhou"));
            let size = w.t.ledger.size();
            let refusal = match w.submit(signer_of(kind), Kind::parse(kind).unwrap(), body) {
                Ok(()) => panic!("{kind}/{field} with {code}: accepted"),
                Err(r) => r.rejection,
            };
            assert_eq!(
                refusal.class,
                RejectClass::Invalid,
                "{kind}/{field} {code}: {refusal}"
            );
            let path = format!("/entry/body/{field}");
            assert!(
                refusal
                    .errors
                    .iter()
                    .any(|e| e.path == path && e.message.contains(code)),
                "{kind}/{field} {code}: {refusal}"
            );
            assert_eq!(w.t.ledger.size(), size, "{kind}/{field}: ledger grew");
        }
    }
}

#[test]
fn references_ownership_and_quantities() {
    struct Case {
        name: &'static str,
        who: &'static str,
        kind: Kind,
        body: Value,
        class: RejectClass,
        path: &'static str,
    }
    let with = |kind: &str, patch: Value| {
        let mut b = example(kind);
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    use RejectClass::*;
    let cases = vec![
        Case {
            name: "status of an unknown facility",
            who: "op",
            kind: Kind::FacilityStatus,
            body: with("facility.status", json!({"facility_id": "ghost"})),
            class: UnknownReference,
            path: "/entry/body/facility_id",
        },
        Case {
            name: "procurement for an unknown facility (422 before 403)",
            who: "op2",
            kind: Kind::Procurement,
            body: with(
                "procurement",
                json!({"facility_id": "ghost", "lot_id": "new-lot"}),
            ),
            class: UnknownReference,
            path: "/entry/body/facility_id",
        },
        Case {
            name: "procurement for another operator's facility",
            who: "op2",
            kind: Kind::Procurement,
            body: with("procurement", json!({"lot_id": "new-lot"})),
            class: Forbidden,
            path: "/entry/body/facility_id",
        },
        Case {
            name: "ownership before duplicate (403 before 409)",
            who: "op2",
            kind: Kind::Procurement,
            body: example("procurement"),
            class: Forbidden,
            path: "/entry/body/facility_id",
        },
        Case {
            name: "facility registered twice",
            who: "op2",
            kind: Kind::FacilityRegister,
            body: example("facility.register"),
            class: Conflict,
            path: "/entry/body/facility_id",
        },
        Case {
            name: "lot registered twice",
            who: "op",
            kind: Kind::Procurement,
            body: example("procurement"),
            class: Conflict,
            path: "/entry/body/lot_id",
        },
        Case {
            name: "permit registered twice",
            who: "permitter",
            kind: Kind::PermitIssue,
            body: example("permit.issue"),
            class: Conflict,
            path: "/entry/body/permit_id",
        },
        Case {
            name: "subsidy registered twice",
            who: "grantor",
            kind: Kind::SubsidyGrant,
            body: example("subsidy.grant"),
            class: Conflict,
            path: "/entry/body/subsidy_id",
        },
        Case {
            name: "loan registered twice",
            who: "lender",
            kind: Kind::LoanIssue,
            body: example("loan.issue"),
            class: Conflict,
            path: "/entry/body/loan_id",
        },
        Case {
            name: "deploying more than the lot's stock",
            who: "op",
            kind: Kind::Deployment,
            body: with("deployment", json!({"quantity": 513})),
            class: Conflict,
            path: "/entry/body/quantity",
        },
        Case {
            name: "deploying another operator's lot",
            who: "op2",
            kind: Kind::Deployment,
            body: example("deployment"),
            class: Forbidden,
            path: "/entry/body/lot_id",
        },
        Case {
            name: "serials of an unknown lot",
            who: "op",
            kind: Kind::LotSerials,
            body: with("lot.serials", json!({"lot_id": "ghost-lot"})),
            class: UnknownReference,
            path: "/entry/body/lot_id",
        },
        Case {
            name: "serials of another operator's lot",
            who: "op2",
            kind: Kind::LotSerials,
            body: example("lot.serials"),
            class: Forbidden,
            path: "/entry/body/lot_id",
        },
        Case {
            name: "transfer from a facility of more than is deployed there",
            who: "op",
            kind: Kind::LotTransfer,
            body: with("lot.transfer", json!({"quantity": 513})),
            class: Conflict,
            path: "/entry/body/quantity",
        },
        Case {
            name: "transfer from stock of more than is undeployed",
            who: "op",
            kind: Kind::LotTransfer,
            body: with(
                "lot.transfer",
                json!({"from_facility": null, "quantity": 513}),
            ),
            class: Conflict,
            path: "/entry/body/quantity",
        },
        Case {
            name: "transfer to an unknown organisation",
            who: "op",
            kind: Kind::LotTransfer,
            body: with("lot.transfer", json!({"to_org": "nobody"})),
            class: UnknownReference,
            path: "/entry/body/to_org",
        },
        Case {
            name: "transfer to another operator's facility",
            who: "op",
            kind: Kind::LotTransfer,
            body: with(
                "lot.transfer",
                json!({"to_org": null, "to_facility": "cp-dc-09"}),
            ),
            class: Forbidden,
            path: "/entry/body/to_facility",
        },
        Case {
            name: "transfer to an unknown facility",
            who: "op",
            kind: Kind::LotTransfer,
            body: with(
                "lot.transfer",
                json!({"to_org": null, "to_facility": "ghost"}),
            ),
            class: UnknownReference,
            path: "/entry/body/to_facility",
        },
        Case {
            name: "disbursing another grantor's subsidy",
            who: "grantor2",
            kind: Kind::SubsidyDisburse,
            body: example("subsidy.disburse"),
            class: Forbidden,
            path: "/entry/body/subsidy_id",
        },
        Case {
            name: "disbursing an unknown subsidy",
            who: "grantor",
            kind: Kind::SubsidyDisburse,
            body: with("subsidy.disburse", json!({"subsidy_id": "ghost"})),
            class: UnknownReference,
            path: "/entry/body/subsidy_id",
        },
        Case {
            name: "revoking an unknown permit",
            who: "permitter",
            kind: Kind::PermitRevoke,
            body: with("permit.revoke", json!({"permit_id": "ghost"})),
            class: UnknownReference,
            path: "/entry/body/permit_id",
        },
        Case {
            name: "loan to an unknown borrower",
            who: "lender",
            kind: Kind::LoanIssue,
            body: with(
                "loan.issue",
                json!({"loan_id": "l2", "borrower_org": "nobody"}),
            ),
            class: UnknownReference,
            path: "/entry/body/borrower_org",
        },
        Case {
            name: "grant to an unknown recipient",
            who: "grantor",
            kind: Kind::SubsidyGrant,
            body: with(
                "subsidy.grant",
                json!({"subsidy_id": "s2", "recipient_org": "nobody"}),
            ),
            class: UnknownReference,
            path: "/entry/body/recipient_org",
        },
        Case {
            name: "power report by a non-operator",
            who: "op2",
            kind: Kind::PowerReport,
            body: example("power.report"),
            class: Forbidden,
            path: "/entry/body/facility_id",
        },
        Case {
            name: "meter reading for an unknown facility",
            who: "utility",
            kind: Kind::MeterReading,
            body: with("meter.reading", json!({"facility_id": "ghost"})),
            class: UnknownReference,
            path: "/entry/body/facility_id",
        },
        Case {
            name: "transfer of a facility by a non-operator",
            who: "op2",
            kind: Kind::FacilityTransfer,
            body: example("facility.transfer"),
            class: Forbidden,
            path: "/entry/body/facility_id",
        },
        Case {
            name: "transfer of a facility to an unknown organisation",
            who: "op",
            kind: Kind::FacilityTransfer,
            body: with("facility.transfer", json!({"to_org": "nobody"})),
            class: UnknownReference,
            path: "/entry/body/to_org",
        },
        Case {
            name: "an operator role cannot issue permits",
            who: "op",
            kind: Kind::PermitIssue,
            body: with("permit.issue", json!({"permit_id": "p2"})),
            class: Forbidden,
            path: "/entry/kind",
        },
    ];
    let mut w = World::new();
    w.story();
    // op2 operates its own facility, for the cross-operator cases.
    let mut other = example("facility.register");
    other["facility_id"] = json!("cp-dc-09");
    w.accept("op2", Kind::FacilityRegister, other);
    for c in cases {
        let size = w.t.ledger.size();
        let r = match w.submit(c.who, c.kind, c.body) {
            Ok(()) => panic!("{}: accepted", c.name),
            Err(r) => r.rejection,
        };
        assert_eq!(r.class, c.class, "{}: {r}", c.name);
        assert!(
            r.errors.iter().any(|e| e.path == c.path),
            "{}: wanted {}: {r}",
            c.name,
            c.path
        );
        assert_eq!(w.t.ledger.size(), size, "{}: ledger grew", c.name);
    }
}

#[test]
fn a_facility_transfer_hands_over_the_facility_and_its_lots() {
    let mut w = World::new();
    w.story();
    // A regulator records a status without operating the facility.
    w.accept(
        "regulator",
        Kind::FacilityStatus,
        json!({"facility_id": "zz-dc-01", "status": "suspended", "effective": "2025-05-01"}),
    );
    w.accept("op", Kind::FacilityTransfer, example("facility.transfer"));
    // The old operator can no longer write about it or its lots …
    let refused = w
        .submit("op", Kind::PowerReport, example("power.report"))
        .unwrap_err();
    assert_eq!(refused.rejection.class, RejectClass::Forbidden);
    let refused = w.submit("op", Kind::Deployment, json!({"lot_id": "lot-2024-001", "facility_id": "zz-dc-01", "quantity": 1, "date": "2025-12-01"}));
    assert_eq!(refused.unwrap_err().rejection.class, RejectClass::Forbidden);
    // … the new one can, including deploying the lot procured for it.
    w.accept("op2", Kind::PowerReport, example("power.report"));
    w.accept("op2", Kind::Deployment, json!({"lot_id": "lot-2024-001", "facility_id": "zz-dc-01", "quantity": 100, "date": "2025-12-01"}));
    // Stock is 1024 - 512 - 100 = 412: one more than that is refused.
    let too_many = w.submit("op2", Kind::Deployment, json!({"lot_id": "lot-2024-001", "facility_id": "zz-dc-01", "quantity": 413, "date": "2025-12-01"}));
    assert_eq!(too_many.unwrap_err().rejection.class, RejectClass::Conflict);
    w.accept("op2", Kind::Deployment, json!({"lot_id": "lot-2024-001", "facility_id": "zz-dc-01", "quantity": 412, "date": "2025-12-01"}));
}

#[test]
fn projections_rebuilt_from_the_segments_equal_incremental_ones() {
    let mut w = World::new();
    w.story();
    w.accept("op", Kind::LotTransfer, example("lot.transfer"));
    w.accept("permitter", Kind::PermitRevoke, example("permit.revoke"));
    w.accept("op", Kind::FacilityTransfer, example("facility.transfer"));
    let data = w.t.data();
    let World { t, .. } = w;
    let TestLedger { dir, ledger, .. } = t;
    ledger.close().unwrap();
    assert_rebuild_equals_incremental(&data, "examples world");
    drop(dir);
}
