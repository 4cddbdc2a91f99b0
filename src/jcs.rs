//! Canonical JSON bytes (RFC 8785, JCS) under the project's rules (PROTOCOL §2).
//!
//! With integers only, JCS reduces to: object keys sorted by UTF-16 code units, no
//! insignificant whitespace, strings escaped as ECMAScript `JSON.stringify` does. The
//! writer below sorts keys itself rather than relying on `serde_json::Map` ordering, so a
//! dependency that switches on serde_json's `preserve_order` cannot change signed bytes.
//! String escaping is delegated to serde_json, whose escapes are exactly JSON.stringify's
//! (tests compare against `serde_json_canonicalizer` on random values).

use serde_json::Value;

use crate::limits::{MAX_JSON_DEPTH, MAX_SAFE_INTEGER};

/// Why a value has no canonical form. `path` is a JSON pointer relative to the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct CanonicalError {
    pub path: String,
    pub message: String,
}

/// Canonical bytes of `value`, or the first reason it has none.
pub fn canonical(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let (bytes, problem) = canonical_lenient(value);
    match problem {
        None => Ok(bytes),
        Some(e) => Err(e),
    }
}

/// Canonical-form bytes even for values that break the rules (a float is written as
/// serde_json writes it), together with the first rule broken. Ingest needs the length of
/// what the leaf would be before it may report a schema error (PROTOCOL §6: 413 before 400).
pub fn canonical_lenient(value: &Value) -> (Vec<u8>, Option<CanonicalError>) {
    let mut out = Vec::with_capacity(256);
    let mut problem = None;
    let mut path = String::new();
    write_value(value, &mut out, &mut path, 0, &mut problem);
    (out, problem)
}

fn note(problem: &mut Option<CanonicalError>, path: &str, message: impl Into<String>) {
    if problem.is_none() {
        *problem = Some(CanonicalError {
            path: if path.is_empty() {
                "/".into()
            } else {
                path.to_string()
            },
            message: message.into(),
        });
    }
}

fn write_value(
    value: &Value,
    out: &mut Vec<u8>,
    path: &mut String,
    depth: usize,
    problem: &mut Option<CanonicalError>,
) {
    if depth > MAX_JSON_DEPTH {
        note(
            problem,
            path,
            format!("nested deeper than {MAX_JSON_DEPTH} levels"),
        );
        out.extend_from_slice(b"null");
        return;
    }
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            let safe = match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i),
                (None, Some(u)) => u <= MAX_SAFE_INTEGER as u64,
                (None, None) => {
                    note(
                        problem,
                        path,
                        "numbers must be integers (no fractions or exponents)",
                    );
                    true
                }
            };
            if !safe {
                note(problem, path, "integer outside [-(2^53-1), 2^53-1]");
            }
            out.extend_from_slice(n.to_string().as_bytes());
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                write_value(item, out, path, depth + 1, problem);
                path.truncate(len);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            // JCS orders by UTF-16 code units; for ASCII keys that is byte order, and the
            // comparison below is exact for the rest too.
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                let len = path.len();
                path.push('/');
                push_pointer_token(path, key);
                if let Some(v) = map.get(key) {
                    write_value(v, out, path, depth + 1, problem);
                }
                path.truncate(len);
            }
            out.push(b'}');
        }
    }
}

/// JSON pointer escaping (RFC 6901) of one reference token.
fn push_pointer_token(path: &mut String, token: &str) {
    for c in token.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // serde_json's string escaper cannot fail on a Vec writer; a &str holds no lone
    // surrogates (the parser refused them), which is the only case JCS forbids.
    if serde_json::to_writer(&mut *out, s).is_err() {
        unreachable!("writing a string to a Vec<u8> is infallible");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn golden_forms() {
        let cases: &[(Value, &str)] = &[
            (
                json!({"b": 1, "a": [true, null, "x"]}),
                r#"{"a":[true,null,"x"],"b":1}"#,
            ),
            (
                json!({"k": "\u{0007}\n\"\\/é€"}),
                "{\"k\":\"\\u0007\\n\\\"\\\\/é€\"}",
            ),
            (json!({"z": {"y": -5, "x": 0}}), r#"{"z":{"x":0,"y":-5}}"#),
            (json!(9007199254740991_i64), "9007199254740991"),
            (json!([]), "[]"),
            (json!({}), "{}"),
        ];
        for (value, want) in cases {
            assert_eq!(String::from_utf8(canonical(value).unwrap()).unwrap(), *want);
        }
    }

    #[test]
    fn refusals_name_the_path() {
        let cases: &[(&str, &str)] = &[
            (r#"{"a":{"b":[1,2.5]}}"#, "/a/b/1"),
            (r#"{"a":9007199254740992}"#, "/a"),
            (r#"{"a":-9007199254740992}"#, "/a"),
            (r#"{"x/y":1e3}"#, "/x~1y"),
        ];
        for (text, path) in cases {
            let v: Value = serde_json::from_str(text).unwrap();
            assert_eq!(canonical(&v).unwrap_err().path, *path, "{text}");
        }
    }

    #[test]
    fn lone_surrogates_never_reach_us() {
        assert!(serde_json::from_str::<Value>(r#""\ud800""#).is_err());
    }

    #[test]
    fn depth_is_bounded() {
        let mut v = json!(1);
        for _ in 0..(MAX_JSON_DEPTH + 2) {
            v = json!([v]);
        }
        assert!(canonical(&v).is_err());
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).prop_map(|i| json!(i)),
            any::<String>().prop_map(Value::String),
            "[\\x00-\\x7f]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[ -~]{0,8}|\\PC{0,4}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The hand-written writer is byte-identical to a full RFC 8785 implementation on
        /// every value the project's rules admit (PROTOCOL §12 asks for this proof).
        #[test]
        fn equals_reference_jcs(v in arb_json()) {
            let reference = serde_json_canonicalizer::to_vec(&v).unwrap();
            prop_assert_eq!(canonical(&v).unwrap(), reference);
        }
    }
}
