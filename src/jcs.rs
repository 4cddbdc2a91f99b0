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

/// `s` as a JSON string in canonical form, appended to `out`.
pub fn write_string(s: &str, out: &mut Vec<u8>) {
    // serde_json's string escaper cannot fail on a Vec writer; a &str holds no lone
    // surrogates (the parser refused them), which is the only case JCS forbids.
    if serde_json::to_writer(&mut *out, s).is_err() {
        unreachable!("writing a string to a Vec<u8> is infallible");
    }
}

/// Whether `text` is, byte for byte, what [`canonical`] writes for the value it holds:
/// valid UTF-8; no whitespace; integers in `[-(2^53-1), 2^53-1]` with no sign on zero, no
/// leading zeros, fractions or exponents; strings escaped exactly as `JSON.stringify` does
/// (only `"`, `\` and the controls, in their short forms where they have one, else
/// `\u00xx` in lowercase); object keys in strictly increasing UTF-16 order, so none twice;
/// nested no deeper than [`canonical`] allows. It reads the text once and builds nothing,
/// so checking a stored leaf costs a fraction of parsing it into a tree and writing it
/// again.
pub fn is_canonical(text: &[u8]) -> bool {
    if std::str::from_utf8(text).is_err() {
        return false;
    }
    let mut scan = Scan { text, at: 0 };
    scan.value(0) && scan.at == text.len()
}

/// A cursor over text known to be UTF-8, for [`is_canonical`].
struct Scan<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let here = self.peek() == Some(byte);
        if here {
            self.at += 1;
        }
        here
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        let here = self
            .text
            .get(self.at..)
            .is_some_and(|rest| rest.starts_with(word));
        if here {
            self.at += word.len();
        }
        here
    }

    fn value(&mut self, depth: usize) -> bool {
        if depth > MAX_JSON_DEPTH {
            return false;
        }
        match self.peek() {
            Some(b'n') => self.literal(b"null"),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'"') => self.string().is_some(),
            Some(b'[') => self.array(depth),
            Some(b'{') => self.object(depth),
            Some(b'-' | b'0'..=b'9') => self.integer(),
            _ => false,
        }
    }

    /// `0`, or an optional `-` and digits without a leading zero, at most 2^53-1.
    fn integer(&mut self) -> bool {
        let negative = self.eat(b'-');
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        let digits = &self.text[start..self.at];
        let magnitude = digits.iter().try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        });
        let well_formed = match digits {
            [] => false,
            [b'0'] => !negative,
            [b'0', ..] => false,
            _ => true,
        };
        // A fraction or an exponent has no canonical form under the project's rules.
        well_formed
            && !matches!(self.peek(), Some(b'.' | b'e' | b'E'))
            && magnitude.is_some_and(|n| n <= MAX_SAFE_INTEGER as u64)
    }

    /// A string in canonical form; returns its text as written, escapes and all.
    fn string(&mut self) -> Option<&'a [u8]> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.at;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => {
                    self.at += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
                        b'u' => {
                            let hex = self.text.get(self.at + 1..self.at + 5)?;
                            let code = std::str::from_utf8(hex)
                                .ok()
                                .filter(|h| {
                                    h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                                })
                                .and_then(|h| u8::from_str_radix(h, 16).ok())?;
                            // Only controls without a short escape are written this way.
                            if code >= 0x20 || matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                                return None;
                            }
                            self.at += 5;
                        }
                        _ => return None,
                    }
                }
                byte if byte < 0x20 => return None,
                _ => self.at += 1,
            }
        }
        let written = &self.text[start..self.at];
        self.at += 1;
        Some(written)
    }

    fn array(&mut self, depth: usize) -> bool {
        self.at += 1;
        if self.eat(b']') {
            return true;
        }
        loop {
            if !self.value(depth + 1) {
                return false;
            }
            if self.eat(b']') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    fn object(&mut self, depth: usize) -> bool {
        self.at += 1;
        if self.eat(b'}') {
            return true;
        }
        let mut previous: Option<&'a [u8]> = None;
        loop {
            let Some(key) = self.string() else {
                return false;
            };
            if previous.is_some_and(|p| !key_precedes(p, key)) {
                return false;
            }
            previous = Some(key);
            if !self.eat(b':') || !self.value(depth + 1) {
                return false;
            }
            if self.eat(b'}') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }
}

/// Whether key `a` sorts strictly before key `b` in JCS's order (UTF-16 code units), both
/// as written in canonical strings. Keys of plain ASCII with no escape compare as bytes;
/// any other pair is decoded and compared exactly.
fn key_precedes(a: &[u8], b: &[u8]) -> bool {
    let plain = |k: &[u8]| k.iter().all(|&c| c.is_ascii() && c != b'\\');
    if plain(a) && plain(b) {
        return a < b;
    }
    let decode = |k: &[u8]| {
        let mut quoted = Vec::with_capacity(k.len() + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(k);
        quoted.push(b'"');
        serde_json::from_slice::<String>(&quoted).ok()
    };
    match (decode(a), decode(b)) {
        (Some(a), Some(b)) => a.encode_utf16().lt(b.encode_utf16()),
        // `string` lets through only escapes serde_json reads, in UTF-8 text, so this
        // cannot happen; were it to, the text is refused, never taken as canonical.
        _ => false,
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

    /// What `is_canonical` must say of `text`: whether it parses and `canonical` writes
    /// the value it holds back as exactly these bytes.
    fn canonical_by_round_trip(text: &[u8]) -> bool {
        crate::json::from_slice(text)
            .ok()
            .and_then(|v| canonical(&v).ok())
            .is_some_and(|written| written == text)
    }

    #[test]
    fn canonical_text_is_told_from_the_rest() {
        let cases: &[(&str, bool)] = &[
            (r#"{"a":[true,null,"x"],"b":1}"#, true),
            (r#"{"a":1,"a":1}"#, false),
            (r#"{"b":1,"a":1}"#, false),
            (r#"{"a": 1}"#, false),
            (" 1", false),
            ("1 ", false),
            ("0", true),
            ("-0", false),
            ("01", false),
            ("-1", true),
            ("1.0", false),
            ("1e2", false),
            ("9007199254740991", true),
            ("9007199254740992", false),
            ("-9007199254740991", true),
            ("-9007199254740992", false),
            ("99999999999999999999999", false),
            (r#""\u0007\n\"\\/é€""#, true),
            (r#""\u0041""#, false),
            (r#""\u000a""#, false),
            (r#""\u001F""#, false),
            (r#""\u001f""#, true),
            (r#""\/""#, false),
            ("\"\u{7}\"", false),
            ("\"\u{7f}\u{2028}\"", true),
            (r#"{"\u0001":1,"a":2}"#, true),
            (r#"{"a":2,"\u0001":1}"#, false),
            // UTF-16 order: U+FF61 sorts after U+1F600's surrogates, byte order the other way.
            ("{\"\u{1F600}\":1,\"\u{FF61}\":2}", true),
            ("{\"\u{FF61}\":2,\"\u{1F600}\":1}", false),
            ("[]", true),
            ("[1,]", false),
            ("{}", true),
            ("{,}", false),
            ("", false),
            ("nul", false),
        ];
        for (text, want) in cases {
            assert_eq!(is_canonical(text.as_bytes()), *want, "{text}");
            assert_eq!(canonical_by_round_trip(text.as_bytes()), *want, "{text}");
        }
        assert!(!is_canonical(b"\"\xff\""));
        let mut deep = "1".to_string();
        for _ in 0..=MAX_JSON_DEPTH {
            deep = format!("[{deep}]");
        }
        assert!(!is_canonical(deep.as_bytes()));
        assert!(is_canonical(&deep.as_bytes()[1..deep.len() - 1]));
    }

    proptest! {
        /// Every canonical form is recognised as one.
        #[test]
        fn what_canonical_writes_is_canonical(v in arb_json()) {
            prop_assert!(is_canonical(&canonical(&v).unwrap()));
        }

        /// A canonical form changed anywhere (a byte replaced, inserted or removed) is
        /// recognised exactly when it is still the canonical form of what it holds.
        #[test]
        fn changed_text_is_canonical_exactly_when_it_round_trips(
            v in arb_json(),
            at in any::<prop::sample::Index>(),
            byte in prop::sample::select(b" \"\\,:[]{}-019.eEu/abntf\x01\x7f\xc3\xa9".to_vec()),
            how in 0..3u8,
        ) {
            let mut text = canonical(&v).unwrap();
            let i = at.index(text.len() + 1);
            match how {
                0 if i < text.len() => text[i] = byte,
                1 => text.insert(i, byte),
                _ if i < text.len() => { text.remove(i); }
                _ => text.push(byte),
            }
            prop_assert_eq!(is_canonical(&text), canonical_by_round_trip(&text));
        }
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
