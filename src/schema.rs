//! The JSON Schemas of `schemas/`, compiled once and enforced at ingest (SPEC §7). The
//! files are embedded at build time, so the binary enforces exactly the schemas shipped
//! beside it.

use std::collections::HashMap;
use std::sync::OnceLock;

use jsonschema::Validator;
use serde_json::Value;

use crate::entry::Kind;
use crate::reject::FieldError;

macro_rules! body_schemas {
    ($($kind:literal),+ $(,)?) => {
        &[$(($kind, include_str!(concat!("../schemas/body/", $kind, ".schema.json")))),+]
    };
}

/// `(kind, schema text)` for every record kind.
pub const BODY_SCHEMAS: &[(&str, &str)] = body_schemas!(
    "ledger.genesis",
    "org.register",
    "key.grant",
    "key.revoke",
    "facility.register",
    "facility.status",
    "facility.transfer",
    "procurement",
    "lot.serials",
    "deployment",
    "lot.transfer",
    "power.report",
    "occupancy.report",
    "finding.response",
    "permit.issue",
    "permit.revoke",
    "subsidy.grant",
    "subsidy.disburse",
    "loan.issue",
    "meter.reading",
    "inspection.report",
    "finding.resolve",
);

pub const ENVELOPE_SCHEMA: &str = include_str!("../schemas/envelope.schema.json");
pub const LEAF_SCHEMA: &str = include_str!("../schemas/leaf.schema.json");

struct Compiled {
    envelope: Validator,
    bodies: HashMap<Kind, Validator>,
}

fn compile(name: &str, text: &str) -> Validator {
    // The schemas are part of the program, checked by this module's tests; a schema
    // that does not compile is a build defect, not an input error.
    let value: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("embedded schema {name} is not JSON: {e}"));
    jsonschema::draft202012::new(&value)
        .unwrap_or_else(|e| panic!("embedded schema {name} does not compile: {e}"))
}

fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| Compiled {
        envelope: compile("envelope", ENVELOPE_SCHEMA),
        bodies: BODY_SCHEMAS
            .iter()
            .filter_map(|(name, text)| Kind::parse(name).map(|k| (k, compile(name, text))))
            .collect(),
    })
}

fn collect(validator: &Validator, instance: &Value, prefix: &str) -> Vec<FieldError> {
    validator
        .iter_errors(instance)
        .map(|e| FieldError {
            path: match e.instance_path().as_str() {
                "" if prefix.is_empty() => "/".to_string(),
                p => format!("{prefix}{p}"),
            },
            message: e.to_string(),
        })
        .collect()
}

/// Errors of an envelope against `envelope.schema.json` (the body is only required to be
/// an object here; `body_errors` checks it against its kind).
pub fn envelope_errors(envelope: &Value) -> Vec<FieldError> {
    collect(&compiled().envelope, envelope, "")
}

/// Errors of a body against its kind's schema, with paths under `/entry/body`.
pub fn body_errors(kind: Kind, body: &Value) -> Vec<FieldError> {
    match compiled().bodies.get(&kind) {
        Some(v) => collect(v, body, "/entry/body"),
        None => vec![FieldError {
            path: "/entry/kind".into(),
            message: format!("no schema for kind {kind}"),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_compiling_schema() {
        for kind in Kind::ALL {
            assert!(compiled().bodies.contains_key(kind), "{kind}");
        }
        compile("leaf", LEAF_SCHEMA);
    }
}
