//! The JSON Schemas of `schemas/`, compiled once and enforced at ingest (PROTOCOL §7). The
//! files are embedded at build time, so the binary enforces exactly the schemas shipped
//! beside it.

use std::collections::HashMap;
use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use crate::domain::checked::forbidden_in_free_text;
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

/// The `pattern` of every free-text field of the body schemas (PROTOCOL §2, §7): no control
/// characters (U+0000–U+001F, U+007F–U+009F) and no bidirectional controls (U+202A–U+202E,
/// U+2066–U+2069), which could make a text read differently from what was signed. The
/// rule is the schemas'; this copy, which a test holds equal to every field's, lets an
/// error say which character to remove instead of echoing the pattern.
pub const FREE_TEXT_PATTERN: &str =
    "^[^\u{0}-\u{1f}\u{7f}-\u{9f}\u{202a}-\u{202e}\u{2066}-\u{2069}]*$";

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

/// What an error says: the validator's words, except for free text, where they would
/// echo the refused characters and the pattern; there it names the first character the
/// pattern refuses (`checked::forbidden_in_free_text`, held to the pattern by a test) and
/// what to do.
fn message(e: &ValidationError<'_>) -> String {
    if let ValidationErrorKind::Pattern { pattern } = e.kind()
        && pattern == FREE_TEXT_PATTERN
        && let Value::String(text) = e.instance().as_ref()
    {
        let refused = text
            .chars()
            .enumerate()
            .find(|(_, c)| forbidden_in_free_text(*c));
        let rule = "free text may hold no control characters (U+0000-U+001F, U+007F-U+009F) \
                    or bidirectional controls (U+202A-U+202E, U+2066-U+2069); remove them";
        return match refused {
            Some((i, c)) => format!(
                "character {} is U+{:04X}: {rule}",
                i.saturating_add(1),
                u32::from(c)
            ),
            None => rule.to_string(),
        };
    }
    e.to_string()
}

fn collect(validator: &Validator, instance: &Value, prefix: &str) -> Vec<FieldError> {
    validator
        .iter_errors(instance)
        .map(|e| FieldError {
            path: match e.instance_path().as_str() {
                "" if prefix.is_empty() => "/".to_string(),
                p => format!("{prefix}{p}"),
            },
            message: message(&e),
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
    use serde_json::json;

    use super::*;

    #[test]
    fn every_kind_has_a_compiling_schema() {
        for kind in Kind::ALL {
            assert!(compiled().bodies.contains_key(kind), "{kind}");
        }
        compile("leaf", LEAF_SCHEMA);
    }

    /// `(kind, pointer, property schema)` of every string property of the body schemas,
    /// array items included.
    fn string_fields() -> Vec<(Kind, String, Value)> {
        fn walk(kind: Kind, at: &str, schema: &Value, out: &mut Vec<(Kind, String, Value)>) {
            if schema.get("type") == Some(&json!("string")) {
                out.push((kind, at.to_string(), schema.clone()));
            }
            if let Some(items) = schema.get("items") {
                walk(kind, &format!("{at}/0"), items, out);
            }
            for (name, prop) in schema
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                walk(kind, &format!("{at}/{name}"), prop, out);
            }
        }
        let mut out = Vec::new();
        for (name, text) in BODY_SCHEMAS {
            let schema: Value = serde_json::from_str(text).unwrap();
            walk(Kind::parse(name).unwrap(), "", &schema, &mut out);
        }
        out
    }

    /// Free text is every string that no pattern or list constrains otherwise; each
    /// carries exactly the free-text pattern, PROTOCOL §7's named fields among them.
    #[test]
    fn every_free_text_field_refuses_control_and_bidi_characters() {
        let mut free = std::collections::BTreeSet::new();
        for (kind, at, schema) in string_fields() {
            match schema.get("pattern").and_then(Value::as_str) {
                Some(FREE_TEXT_PATTERN) => {
                    assert!(schema.get("maxLength").is_some(), "{kind}{at}");
                    free.insert(at.trim_start_matches('/').to_string());
                }
                Some(_) => {}
                None => assert!(schema.get("enum").is_some(), "{kind}{at}: unconstrained"),
            }
        }
        for field in [
            "name",
            "program",
            "supplier",
            "gpu_model",
            "reason",
            "text",
            "label",
            "province",
            "city",
            "registration_no",
        ] {
            assert!(free.contains(field), "{field} is not free text: {free:?}");
        }
    }

    #[test]
    fn the_free_text_pattern_refuses_exactly_its_ranges() {
        let free_text = compile(
            "free text",
            &json!({"type": "string", "pattern": FREE_TEXT_PATTERN}).to_string(),
        );
        // The pattern's verdict, which `forbidden_in_free_text` (the error messages' and
        // the types') must give too.
        let refused = |c: char| {
            let by_pattern = !free_text.is_valid(&json!(format!("a{c}b")));
            assert_eq!(
                forbidden_in_free_text(c),
                by_pattern,
                "U+{:04X}",
                u32::from(c)
            );
            by_pattern
        };
        for (first, last) in [
            ('\u{0}', '\u{1f}'),
            ('\u{7f}', '\u{9f}'),
            ('\u{202a}', '\u{202e}'),
            ('\u{2066}', '\u{2069}'),
        ] {
            for c in first..=last {
                assert!(refused(c), "U+{:04X}", u32::from(c));
            }
            let before = u32::from(first).checked_sub(1).and_then(char::from_u32);
            let after = char::from_u32(u32::from(last) + 1);
            for c in before.into_iter().chain(after) {
                assert!(!refused(c), "U+{:04X}", u32::from(c));
            }
        }
        for fine in [
            "Zhongyuan 中原 Compute",
            "O'Brien & Söhne",
            "emoji 🚀",
            "\u{200e}",
        ] {
            assert!(free_text.is_valid(&json!(fine)), "{fine}");
        }
    }

    #[test]
    fn a_free_text_error_names_the_character_without_echoing_it() {
        let body = json!({"org_id": "a", "name": "Acme \u{202e}nosrep", "roles": ["operator"]});
        let errors = body_errors(Kind::OrgRegister, &body);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "/entry/body/name");
        let m = &errors[0].message;
        assert!(m.contains("character 6 is U+202E"), "{m}");
        assert!(!m.contains('\u{202e}') && m.contains("remove"), "{m}");
        let body = json!({"org_id": "a", "name": "tab\there", "roles": ["operator"]});
        assert!(
            body_errors(Kind::OrgRegister, &body)[0]
                .message
                .contains("U+0009")
        );
    }
}
