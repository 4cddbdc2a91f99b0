//! Region reports and valuations (PROTOCOL §9): every figure proved on worlds small enough to
//! compute by hand (`figures`), the assumptions' sources and refusals over HTTP and the
//! CLI, citable answers, paging and CSV (`interfaces`), generated worlds against an
//! oracle computed from their entries alone (`oracle`), and figures past 2^53 whose
//! products need more than 128 bits (`big`).
//!
//! Helpers shared by those modules: `Doc` reads a JSON answer's integers exactly, whatever
//! their size, and `with_reports` computes a `World`'s reports in process.

mod big;
mod figures;
mod interfaces;
mod oracle;

use std::str::FromStr;

use dcledger::audit::Snapshot;
use dcledger::config::Config;
use dcledger::dates::Month;
use dcledger::report::assumptions::Overrides;
use dcledger::report::{Reports, Request};
use num_bigint::BigInt;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::audit_rules::World;
use dcledger::entry::Kind;
use serde_json::json;

/// A JSON document read exactly: `serde_json::Value` would turn an integer beyond u64
/// into a float, so figures are read from their literals as big integers, and objects
/// keep their members in the order written.
#[derive(Clone, Debug)]
pub(crate) struct Doc(String);

/// A JSON object's members in the order written.
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Members, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Box<RawValue>>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

impl Doc {
    pub(crate) fn new(text: impl Into<String>) -> Doc {
        let text = text.into();
        serde_json::from_str::<Box<RawValue>>(&text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        Doc(text)
    }

    /// The document as written by serde_json, from a value of the library.
    pub(crate) fn of<T: serde::Serialize>(value: &T) -> Doc {
        Doc(serde_json::to_string(value).expect("serialises"))
    }

    pub(crate) fn text(&self) -> &str {
        &self.0
    }

    /// An object's members, in the order written.
    pub(crate) fn members(&self) -> Vec<(String, Doc)> {
        let Members(members) = serde_json::from_str(&self.0)
            .unwrap_or_else(|e| panic!("not an object ({e}): {}", self.0));
        members
            .into_iter()
            .map(|(k, v)| (k, Doc(v.get().to_string())))
            .collect()
    }

    /// An array's items.
    pub(crate) fn items(&self) -> Vec<Doc> {
        let items: Vec<Box<RawValue>> = serde_json::from_str(&self.0)
            .unwrap_or_else(|e| panic!("not an array ({e}): {}", self.0));
        items
            .into_iter()
            .map(|v| Doc(v.get().to_string()))
            .collect()
    }

    /// The part at a JSON pointer (`/valuations/3/noi_month`).
    pub(crate) fn at(&self, pointer: &str) -> Doc {
        let mut doc = self.clone();
        for step in pointer.split('/').skip(1) {
            doc = if doc.0.trim_start().starts_with('[') {
                let i: usize = step.parse().expect("an array index");
                doc.items()
                    .into_iter()
                    .nth(i)
                    .unwrap_or_else(|| panic!("no item {i} at {pointer} in {}", self.0))
            } else {
                doc.members()
                    .into_iter()
                    .find(|(k, _)| k == step)
                    .map(|(_, v)| v)
                    .unwrap_or_else(|| panic!("no member {step:?} at {pointer} in {}", self.0))
            };
        }
        doc
    }

    /// An integer figure, exactly; anything but an integer literal fails.
    pub(crate) fn int(&self, pointer: &str) -> BigInt {
        self.opt_int(pointer)
            .unwrap_or_else(|| panic!("{pointer} is null in {}", self.0))
    }

    /// An integer figure or None for `null`.
    pub(crate) fn opt_int(&self, pointer: &str) -> Option<BigInt> {
        let raw = self.at(pointer).0;
        let raw = raw.trim();
        if raw == "null" {
            return None;
        }
        let exact = raw
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-' && raw.len() > 1));
        assert!(exact, "{pointer} is not an integer literal: {raw}");
        Some(BigInt::from_str(raw).expect("digits"))
    }

    /// The document as a `Value` (integers beyond u64 become floats: read those with
    /// `int`).
    pub(crate) fn value(&self) -> Value {
        serde_json::from_str(&self.0).expect("JSON")
    }

    /// A string member.
    pub(crate) fn str(&self, pointer: &str) -> String {
        match self.at(pointer).value() {
            Value::String(s) => s,
            other => panic!("{pointer} is not a string: {other}"),
        }
    }
}

/// A big integer from anything that converts.
pub(crate) fn big(x: impl Into<BigInt>) -> BigInt {
    x.into()
}

/// Asserts that `actual` holds `expected`: every member `expected` names, with the value
/// it gives (arrays item by item, of the same length); `what` names the case.
pub(crate) fn assert_holds(actual: &Value, expected: &Value, what: &str) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (k, v) in e {
                let got = a
                    .get(k)
                    .unwrap_or_else(|| panic!("{what}: no member {k:?} in {actual}"));
                assert_holds(got, v, &format!("{what}.{k}"));
            }
        }
        (Value::Array(a), Value::Array(e)) => {
            assert_eq!(
                a.len(),
                e.len(),
                "{what}: {actual} has not the items of {expected}"
            );
            for (i, (got, want)) in a.iter().zip(e).enumerate() {
                assert_holds(got, want, &format!("{what}[{i}]"));
            }
        }
        _ => assert_eq!(actual, expected, "{what}"),
    }
}

/// Runs `f` over the reports of `w`'s ledger as of `as_of` under `config` and a
/// request's `query` overrides (entries still queued are appended first).
pub(crate) fn with_reports<T>(
    w: &mut World,
    as_of: &str,
    config: &Config,
    query: &Overrides,
    f: impl FnOnce(&Reports<'_>) -> T,
) -> T {
    w.flush();
    let reader = w.t.ledger.reader();
    let snapshot = Snapshot::load(&reader).expect("snapshot");
    let request = Request {
        as_of: Some(Month::parse(as_of).expect("YYYY-MM")),
        config,
        query,
    };
    let reports = Reports::new(&reader, &snapshot, &request).expect("reports");
    f(&reports)
}

/// Overrides as a request gives them, `(name, decimal text)`.
pub(crate) fn query(pairs: &[(&str, &str)]) -> Overrides {
    let mut o = Overrides::default();
    for (name, value) in pairs {
        o.set_text(name, value).expect("a valid assumption");
    }
    o
}

/// A lot of `n` GPUs of `model` for `facility`, bought at its 2025 reference price
/// (never a price anomaly) on `date`, and deployed there whole on the same day.
pub(crate) fn installed(w: &mut World, lot: &str, facility: &str, model: &str, n: u64, date: &str) {
    let unit = match model {
        "H100" => 16_000_000,
        "H800" => 14_000_000,
        "A100" => 8_000_000,
        _ => 1_000_000,
    };
    w.procure(lot, facility, model, n, unit, date);
    w.deploy(lot, facility, n, date);
}

/// A `lot.transfer` of `n` GPUs of `lot` (`from` a facility, or from stock) to a
/// facility or out of the fleet to an organisation.
pub(crate) fn transfer(
    w: &mut World,
    lot: &str,
    n: u64,
    from: Option<&str>,
    to: Value,
    date: &str,
) {
    let mut body = json!({"lot_id": lot, "quantity": n, "price_minor": 0, "currency": "CNY",
                          "date": date});
    if let Some(from) = from {
        body["from_facility"] = json!(from);
    }
    for (k, v) in to.as_object().expect("to_org or to_facility") {
        body[k] = v.clone();
    }
    w.add("op", Kind::LotTransfer, body);
}
