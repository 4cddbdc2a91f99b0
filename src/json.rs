//! The one parse of a submission (PROTOCOL §2): JSON text to a `serde_json::Value`, refusing
//! an object that holds the same key twice, anywhere (the envelope included).
//!
//! `serde_json` keeps the last of two equal keys, another parser may keep the first: the
//! same signed bytes would then be two different entries, and JCS has no meaning for such
//! an object. So the refusal happens while the text is parsed, once, by a `Deserialize`
//! that builds the `Value` itself and stops at the first repeated key, naming it and the
//! JSON pointer of the object that holds it. Every path by which a submission arrives
//! parses with it when it builds a tree: `POST /v1/entries`, `dcledger append` (NDJSON)
//! and the bodies and envelopes `dcledger sign` and `dcledger submit` read. (An envelope
//! whose entry is canonical is read from its text instead, by `leaves::all_prepared`,
//! which takes no object with a key twice: `jcs::is_canonical` wants each key greater than the
//! one before, and the envelope's own two members are read by a derived `Deserialize`,
//! which refuses either given twice.) Typed bodies can keep it: a typed
//! `Deserialize` can be driven from the `Value` this returns.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::reject::Rejection;

/// Why a text is not a submission's JSON.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not JSON at all (serde_json's words, with line and column).
    #[error("not JSON: {0}")]
    Syntax(serde_json::Error),
    /// An object holds `key` twice; `path` is the JSON pointer of that object (`/` for
    /// the top level).
    #[error("{path}: {}", twice(.key))]
    DuplicateKey { path: String, key: String },
}

impl ParseError {
    /// The ingest refusal (400) for a duplicate key, at the object that holds it; `None`
    /// for text that is not JSON, which callers report in their own words.
    pub fn duplicate_key(&self) -> Option<Rejection> {
        match self {
            ParseError::Syntax(_) => None,
            ParseError::DuplicateKey { path, key } => {
                Some(Rejection::invalid(path.clone(), twice(key)))
            }
        }
    }
}

fn twice(key: &str) -> String {
    format!(
        "the key {key:?} appears twice in this object; a key may appear once (PROTOCOL §2), \
         so remove one of them"
    )
}

/// Parses `bytes` (one JSON text, whitespace around it allowed).
pub fn from_slice(bytes: &[u8]) -> Result<Value, ParseError> {
    parse(&mut serde_json::Deserializer::from_slice(bytes))
}

/// Parses `text` (one JSON text, whitespace around it allowed).
pub fn from_str(text: &str) -> Result<Value, ParseError> {
    parse(&mut serde_json::Deserializer::from_str(text))
}

fn parse<'de, R: serde_json::de::Read<'de>>(
    de: &mut serde_json::Deserializer<R>,
) -> Result<Value, ParseError> {
    let duplicate = RefCell::new(None);
    let seed = Node {
        at: &At::Root,
        duplicate: &duplicate,
    };
    let parsed = seed.deserialize(&mut *de).and_then(|value| {
        de.end()?;
        Ok(value)
    });
    parsed.map_err(|e| match duplicate.into_inner() {
        Some(d) => d,
        None => ParseError::Syntax(e),
    })
}

/// Where a value sits in the text being parsed: a path kept on the stack, turned into a
/// JSON pointer only when a duplicate is found.
enum At<'a> {
    Root,
    Key(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl At<'_> {
    fn write(&self, out: &mut String) {
        match self {
            At::Root => {}
            At::Key(parent, key) => {
                parent.write(out);
                out.push('/');
                // RFC 6901: `~` is written `~0` and `/` is written `~1`.
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            At::Index(parent, i) => {
                parent.write(out);
                out.push('/');
                out.push_str(&i.to_string());
            }
        }
    }

    fn pointer(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        if out.is_empty() {
            out.push('/');
        }
        out
    }
}

/// Builds the value at `at`, recording the first duplicate key in `duplicate`.
struct Node<'a, 'd> {
    at: &'a At<'a>,
    duplicate: &'d RefCell<Option<ParseError>>,
}

impl<'de> DeserializeSeed<'de> for Node<'_, '_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        // JSON text has no NaN or infinity, so serde_json never hands one over.
        Number::from_f64(n)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("{n} is not a JSON number")))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(items.size_hint().unwrap_or(0).min(1024));
        loop {
            let at = At::Index(self.at, out.len());
            let seed = Node {
                at: &at,
                duplicate: self.duplicate,
            };
            match items.next_element_seed(seed)? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            if out.contains_key(&key) {
                let error = ParseError::DuplicateKey {
                    path: self.at.pointer(),
                    key,
                };
                let message = error.to_string();
                *self.duplicate.borrow_mut() = Some(error);
                return Err(de::Error::custom(message));
            }
            let at = At::Key(self.at, &key);
            let value = entries.next_value_seed(Node {
                at: &at,
                duplicate: self.duplicate,
            })?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn duplicate(text: &str) -> (String, String) {
        match from_str(text) {
            Err(ParseError::DuplicateKey { path, key }) => (path, key),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn a_repeated_key_is_refused_at_the_object_that_holds_it() {
        let cases = [
            (r#"{"a": 1, "a": 1}"#, "/", "a"),
            (r#"{"a": 1, "b": {"c": 1, "c": 2}}"#, "/b", "c"),
            (
                r#"{"entry": {"body": {"name": "x", "name": "y"}}, "sig": ""}"#,
                "/entry/body",
                "name",
            ),
            (
                r#"{"entry": {"kind": "a"}, "sig": "", "entry": {"kind": "b"}}"#,
                "/",
                "entry",
            ),
            (r#"[{}, {"x": [1, {"k": 1, "k": 1}]}]"#, "/1/x/1", "k"),
            (r#"{"a/b": {"~": {"q": 1, "q": 1}}}"#, "/a~1b/~0", "q"),
            // Escapes spell the same key differently; it is still the same key.
            (r#"{"ab": 1, "a\u0062": 2}"#, "/", "ab"),
        ];
        for (text, path, key) in cases {
            assert_eq!(
                duplicate(text),
                (path.to_string(), key.to_string()),
                "{text}"
            );
            assert_eq!(
                duplicate(text),
                match from_slice(text.as_bytes()) {
                    Err(ParseError::DuplicateKey { path, key }) => (path, key),
                    other => panic!("{other:?}"),
                }
            );
        }
        let refusal = from_str(r#"{"x": {"k": 1, "k": 2}}"#)
            .unwrap_err()
            .duplicate_key()
            .unwrap();
        assert_eq!(refusal.class, crate::reject::RejectClass::Invalid);
        assert_eq!(refusal.errors[0].path, "/x");
        assert!(refusal.errors[0].message.contains("\"k\""), "{refusal}");
    }

    #[test]
    fn text_that_is_not_json_is_a_syntax_error() {
        for text in [
            "",
            "{",
            r#"{"a": 1} {"a": 1}"#,
            r#"{"a": 1,}"#,
            r#""\ud800""#,
            "[1, 2",
        ] {
            let e = from_str(text).unwrap_err();
            assert!(matches!(e, ParseError::Syntax(_)), "{text}: {e:?}");
            assert!(e.duplicate_key().is_none());
        }
        // serde_json's nesting limit still holds.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(matches!(from_str(&deep), Err(ParseError::Syntax(_))));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e300f64..1e300).prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Without repeated keys this parse is serde_json's, value for value.
        #[test]
        fn equals_serde_json_on_text_without_repeated_keys(v in json_value()) {
            for text in [v.to_string(), serde_json::to_string_pretty(&v).unwrap()] {
                let ours = from_str(&text).unwrap();
                prop_assert_eq!(&ours, &serde_json::from_str::<Value>(&text).unwrap());
                prop_assert_eq!(&ours, &v);
            }
        }
    }
}
