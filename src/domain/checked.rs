//! The constraints `schemas/body/` puts on single fields (PROTOCOL §2, §7), as the
//! deserializers of the typed bodies' fields (`#[serde(deserialize_with = …)]`): a body
//! that parses into its type holds every pattern, length, bound and list rule of its
//! schema. `bodies`' tests break each constraint of every body schema alone, generated
//! from the schema files, and hold that the schema and the type both refuse it and both
//! accept the values at its edges; a keyword or pattern those tests do not know fails
//! them, so a schema cannot gain a rule the types lack unnoticed.
//!
//! Why the types hold them too, though ingest checks the schemas: a replay that trusts
//! the segments reads bodies without their schemas, and judging a body without a JSON
//! tree needs types that refuse what the schemas refuse.
//!
//! The constraints are the JSON form's: they hold when the deserializer is human-readable
//! (JSON text or tree). The derived store keeps the same types as postcard, which is not;
//! those bytes were checked as JSON before they were stored, so they are read as plain
//! values, at no cost, and optional fields keep postcard's own encoding of `Option`.

use serde::de::{Deserialize, Deserializer, Error};

use crate::entry::Role;
use crate::keys::parse_lower_hex;
use crate::limits::MAX_SAFE_INTEGER;
use crate::log::checkpoint::valid_origin;

/// `T` from `d`, if `holds` of it; otherwise an error saying what it must be.
/// The value is not echoed: free text may hold the very characters it must not, and a
/// list may be long.
fn checked<'de, D, T>(d: D, holds: impl Fn(&T) -> bool, what: &str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let json = d.is_human_readable();
    let value = T::deserialize(d)?;
    if !json || holds(&value) {
        Ok(value)
    } else {
        Err(D::Error::custom(format!("must be {what}")))
    }
}

/// Whether `s` is `min..=max` bytes, each `allowed`: for the patterns' ASCII sets, whose
/// every character is a byte (any other character's bytes are refused).
fn ascii_within(s: &str, min: usize, max: usize, allowed: impl Fn(u8) -> bool) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(allowed)
}

/// `^[a-z0-9][a-z0-9._-]{0,63}$`: an identifier (PROTOCOL §2).
fn is_id(s: &str) -> bool {
    s.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && ascii_within(s, 1, 64, |b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

/// Two ASCII digits from `lo` to `hi` (two digits each), as the date patterns spell their
/// alternatives: digit strings of one width compare as their numbers do.
fn two_digits_within(pair: &[u8], lo: &[u8; 2], hi: &[u8; 2]) -> bool {
    pair.len() == 2 && pair.iter().all(u8::is_ascii_digit) && (&lo[..]..=&hi[..]).contains(&pair)
}

/// `^[0-9]{4}-(0[1-9]|1[0-2])$`: a month (the years it may be in are the field rules').
fn is_month(s: &str) -> bool {
    month_bytes(s.as_bytes())
}

fn month_bytes(b: &[u8]) -> bool {
    b.len() == 7
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && two_digits_within(&b[5..7], b"01", b"12")
}

/// `^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$`: a date (whether the day exists
/// in its month is the field rules').
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && month_bytes(&b[..7])
        && b[7] == b'-'
        && two_digits_within(&b[8..10], b"01", b"31")
}

/// `^[A-Z]{3}$`: an ISO 4217 currency code.
fn is_currency(s: &str) -> bool {
    ascii_within(s, 3, 3, |b| b.is_ascii_uppercase())
}

/// Free text of 1 to `max` characters (PROTOCOL §2): none `forbidden_in_free_text`.
fn is_free_text(s: &str, max: usize) -> bool {
    !s.is_empty() && s.chars().count() <= max && !s.chars().any(forbidden_in_free_text)
}

/// A control character (U+0000–U+001F, U+007F–U+009F) or a bidirectional control
/// (U+202A–U+202E, U+2066–U+2069): what the schemas' `FREE_TEXT_PATTERN` refuses, a
/// test in `schema` holds, character by character.
pub(crate) fn forbidden_in_free_text(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `^[A-Za-z0-9._/-]{1,64}$`: a land parcel or a collateral reference.
fn is_reference(s: &str) -> bool {
    ascii_within(s, 1, 64, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-')
    })
}

/// `^[A-Za-z0-9._-]{1,64}$`: a GPU serial number.
pub(crate) fn is_serial(s: &str) -> bool {
    ascii_within(s, 1, 64, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
    })
}

/// The most items a body's list may hold (`maxItems` of `collateral` and `serials`).
pub(crate) const MAX_LIST_ITEMS: usize = 1000;

/// An item `items` holds more than once, if any (`uniqueItems`).
pub(crate) fn first_repeated<'a>(items: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut sorted: Vec<&str> = items.into_iter().collect();
    sorted.sort_unstable();
    sorted
        .windows(2)
        .find(|pair| pair[0] == pair[1])
        .map(|pair| pair[0])
}

/// An optional field that is present: its schema gives it a type, so `null` is refused
/// where serde would read it as absent.
pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    optional(d, T::deserialize)
}

/// An optional field as JSON holds it (`some` of it, since the field is there), or as
/// the stored form encodes an `Option`.
fn optional<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
    some: impl FnOnce(D) -> Result<T, D::Error>,
) -> Result<Option<T>, D::Error> {
    if d.is_human_readable() {
        some(d).map(Some)
    } else {
        Option::<T>::deserialize(d)
    }
}

pub(crate) fn id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked(
        d,
        |s: &String| is_id(s),
        "an identifier: 1-64 of [a-z0-9._-], beginning with a letter or digit",
    )
}

pub(crate) fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    optional(d, id)
}

pub(crate) fn date<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked(d, |s: &String| is_date(s), "a date YYYY-MM-DD")
}

pub(crate) fn month<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked(d, |s: &String| is_month(s), "a month YYYY-MM")
}

pub(crate) fn currency<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked(
        d,
        |s: &String| is_currency(s),
        "an ISO 4217 code (three capital letters)",
    )
}

pub(crate) fn hex64<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked(
        d,
        |s: &String| parse_lower_hex::<32>(s).is_some(),
        "64 lowercase hex characters",
    )
}

pub(crate) fn opt_hex64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    optional(d, hex64)
}

pub(crate) fn hex32<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked(
        d,
        |s: &String| parse_lower_hex::<16>(s).is_some(),
        "32 lowercase hex characters",
    )
}

pub(crate) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked(
        d,
        |s: &String| is_free_text(s, 200),
        "free text of 1-200 characters without control or bidirectional characters",
    )
}

pub(crate) fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    optional(d, text)
}

pub(crate) fn long_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked(
        d,
        |s: &String| is_free_text(s, 4000),
        "free text of 1-4000 characters without control or bidirectional characters",
    )
}

pub(crate) fn reference<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked(d, |s: &String| is_reference(s), "1-64 of [A-Za-z0-9._/-]")
}

pub(crate) fn origin<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    // `^[A-Za-z0-9._/:-]{1,255}$`: the one rule for an origin, the checkpoints' own.
    checked(d, |s: &String| valid_origin(s), "1-255 of [A-Za-z0-9._/:-]")
}

pub(crate) fn collateral<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    checked(
        d,
        |items: &Vec<String>| {
            (1..=MAX_LIST_ITEMS).contains(&items.len()) && items.iter().all(|s| is_reference(s))
        },
        "a list of 1-1000 references, each 1-64 of [A-Za-z0-9._/-]",
    )
}

/// Serials as `lot.serials` lists them, but for `uniqueItems`, which `bodies::Serials`
/// checks with a message naming the serial listed twice.
pub(crate) fn roles<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    checked(
        d,
        |items: &Vec<String>| {
            !items.is_empty()
                && items.iter().all(|r| Role::parse(r).is_some())
                && first_repeated(items.iter().map(String::as_str)).is_none()
        },
        "a list of different roles (authority, operator, permitter, grantor, lender, utility, \
         regulator)",
    )
}

fn safe(n: u64) -> bool {
    n <= MAX_SAFE_INTEGER.unsigned_abs()
}

/// An integer from 0 to 2^53-1.
pub(crate) fn amount<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    checked(d, |n: &u64| safe(*n), "an integer from 0 to 2^53-1")
}

pub(crate) fn opt_amount<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    optional(d, amount)
}

/// An integer from 1 to 2^53-1.
pub(crate) fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    checked(
        d,
        |n: &u64| *n >= 1 && safe(*n),
        "an integer from 1 to 2^53-1",
    )
}

pub(crate) fn percent<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    checked(d, |n: &u8| *n <= 100, "an integer from 0 to 100")
}

pub(crate) fn lat_e6<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    checked(
        d,
        |n: &i64| (-90_000_000..=90_000_000).contains(n),
        "degrees × 10^6 from -90000000 to 90000000",
    )
}

pub(crate) fn lon_e6<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    checked(
        d,
        |n: &i64| (-180_000_000..=180_000_000).contains(n),
        "degrees × 10^6 from -180000000 to 180000000",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patterns_accept_and_refuse_as_their_regexes_do() {
        // (predicate, accepted, refused): `bodies`' generated schema cases cover each
        // field; these pin the predicates' own edges, multi-byte characters among them.
        let long = |n: usize| "a".repeat(n);
        type Case = (fn(&str) -> bool, Vec<String>, Vec<String>);
        let cases: Vec<Case> = vec![
            (
                is_id,
                vec!["a".into(), "0".into(), "a.b_c-d".into(), long(64)],
                vec![
                    "".into(),
                    "A".into(),
                    "-a".into(),
                    ".a".into(),
                    "a b".into(),
                    "é".into(),
                    long(65),
                ],
            ),
            (
                is_date,
                vec![
                    "1970-01-01".into(),
                    "9999-12-31".into(),
                    "2025-02-30".into(),
                ],
                [
                    "2025-13-01",
                    "2025-00-10",
                    "2025-01-32",
                    "2025-01-00",
                    "2025-1-01",
                    "25-01-01",
                    "2025-01-01T00:00:00Z",
                    "２025-01-01",
                    "2025-01-0１",
                ]
                .map(String::from)
                .to_vec(),
            ),
            (
                is_month,
                vec!["2025-01".into(), "2025-12".into()],
                ["2025-13", "2025-00", "2025-1", "2025-01-01", "２025-1"]
                    .map(String::from)
                    .to_vec(),
            ),
            (
                is_currency,
                vec!["CNY".into(), "USD".into()],
                ["cny", "CN", "CNYY", "C1Y", ""].map(String::from).to_vec(),
            ),
            (
                |s| is_free_text(s, 3),
                ["a", "abc", "中文字", "🚀", "\u{200e}"]
                    .map(String::from)
                    .to_vec(),
                [
                    "",
                    "abcd",
                    "a\u{7}",
                    "\u{9f}",
                    "a\u{202e}b",
                    "\u{2069}",
                    "\n",
                ]
                .map(String::from)
                .to_vec(),
            ),
            (
                is_reference,
                vec!["A/b.c-d_e".into(), long(64)],
                vec!["".into(), "a b".into(), "a:b".into(), long(65)],
            ),
            (
                is_serial,
                vec!["SN-1.a_B".into(), long(64)],
                vec!["".into(), "a/b".into(), long(65)],
            ),
            (
                valid_origin,
                vec!["dcledger.example/x:1".into(), long(255)],
                vec!["".into(), "a b".into(), long(256)],
            ),
        ];
        for (i, (holds, accepted, refused)) in cases.iter().enumerate() {
            for s in accepted {
                assert!(holds(s), "case {i}: {s:?} refused");
            }
            for s in refused {
                assert!(!holds(s), "case {i}: {s:?} accepted");
            }
        }
    }
}
