//! Stored leaves read into typed values straight from their bytes, with no JSON tree in
//! between: trusted ([`trusted`]: the segment's checksum held, and the leaf was judged when
//! it was accepted), or judged again on its own as ingest judged it ([`all_judged`]:
//! `verify`, `reindex`, the monitor). A submitted envelope whose entry is already canonical
//! is read the same way ([`all_prepared`]: a bulk append's lines, an HTTP body).
//!
//! A judged leaf is held to every rule `ingest::prepare` holds a submission to, without
//! building what `prepare` builds: its bytes must be canonical as they stand (the frame
//! around the entry where `entry::leaf_bytes` writes it, the entry `jcs::is_canonical`), so
//! the entry's own bytes are `JCS(entry)` and the signature is checked over them; the
//! envelope's schema is the typed read of [`StoredEntry`] (each of its constraints a check
//! below),
//! the body's is its type (`domain::checked`, proved equivalent to `schemas/body/` by the
//! tests of `domain::bodies`), and the field rules, the clock and the signature are
//! ingest's own functions. The tests below hold each of these to `prepare`'s verdict on
//! each rule broken alone.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::dates::{self, UnixSeconds};
use crate::domain::bodies::Body;
use crate::entry::{self, ENTRY_VERSION, Kind, SignatureCheck};
use crate::ingest::{self, Admissible, Prepared, Signatures};
use crate::jcs;
use crate::keys::{parse_lower_hex, parse_public_hex};
use crate::limits::{MAX_LEAF_BYTES, MAX_SAFE_INTEGER};

/// A leaf read into typed values.
#[derive(Debug)]
pub struct Leaf<'a> {
    pub entry: Admissible,
    pub accepted: UnixSeconds,
    /// The acceptance time as the leaf writes it.
    pub accepted_text: Cow<'a, str>,
}

/// Why a leaf cannot be admitted: the rule it breaks, in words for the operator.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct LeafRefused(String);

fn refused(reason: impl Into<String>) -> LeafRefused {
    LeafRefused(reason.into())
}

/// A leaf as `entry::leaf_bytes` writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredLeaf<'a> {
    #[serde(borrow)]
    accepted: Cow<'a, str>,
    #[serde(borrow)]
    entry: StoredEntry<'a>,
    /// Required, as every leaf has it; trusted, so not checked.
    #[serde(rename = "sig")]
    _sig: serde::de::IgnoredAny,
}

/// An entry (PROTOCOL §3) as the envelope schema describes it: these members and no other,
/// each checked by [`StoredEntry::typed`] as the schema checks it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredEntry<'a> {
    v: u64,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    signer: Cow<'a, str>,
    seq: u64,
    #[serde(borrow)]
    ts: Cow<'a, str>,
    #[serde(borrow)]
    body: &'a RawValue,
}

impl StoredEntry<'_> {
    fn typed(self) -> Result<Admissible, LeafRefused> {
        if self.v != ENTRY_VERSION {
            return Err(refused(format!(
                "its entry format version is {}; this ledger writes only {ENTRY_VERSION}",
                self.v
            )));
        }
        let kind = Kind::parse(&self.kind)
            .ok_or_else(|| refused(format!("unknown record kind {:?}", self.kind)))?;
        let signer = parse_public_hex(&self.signer)
            .ok_or_else(|| refused("its signer is not 64 lowercase hex characters"))?;
        // The schema's bounds: a seq is from 1 to 2^53-1.
        if !(1..=MAX_SAFE_INTEGER.unsigned_abs()).contains(&self.seq) {
            return Err(refused(format!(
                "its seq {} is not from 1 to 2^53-1",
                self.seq
            )));
        }
        let ts = dates::instant(&self.ts).map_err(|e| refused(format!("its ts: {e}")))?;
        let body = Body::from_json(kind, self.body.get())
            .map_err(|e| refused(format!("its body: {e}")))?;
        Ok(Admissible {
            kind,
            signer,
            seq: self.seq,
            ts,
            body,
        })
    }
}

/// A submitted envelope, its entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    entry: &'a RawValue,
    #[serde(borrow)]
    sig: Cow<'a, str>,
}

/// Submitted envelopes whose entries are already in canonical form (as signers write
/// them, and `dcledger sign` and `gen` do), each judged as `ingest::prepare` judges it,
/// straight from its text, in order: `Some` only when `prepare` would accept it, holding
/// what `prepare` would make of it. `None` for any other envelope, which the caller gives
/// to `prepare` for its verdict and its errors (the schemas' pointers and words), so a
/// refusal reads the same whichever way the envelope came. The signatures' last steps are
/// taken together (`SignatureCheck::all_hold`): a bulk append's batch of lines, or a
/// core's share of an HTTP body, at once.
pub fn all_prepared<'t>(
    texts: impl IntoIterator<Item = &'t [u8]>,
    now: UnixSeconds,
    signatures: Signatures<'_>,
) -> Vec<Option<Prepared>> {
    let Signatures::Verify {
        origin: Some(origin),
    } = signatures
    else {
        return texts.into_iter().map(|_| None).collect();
    };
    let unsigned = texts.into_iter().map(|text| match unsigned(text, now) {
        Some((prepared, sig)) => {
            let check =
                entry::signature_check(origin, &prepared.entry.signer, &prepared.entry_jcs, &sig);
            (Some(prepared), check)
        }
        None => (None, SignatureCheck::REFUSED),
    });
    with_verdicts(unsigned)
        .map(|(prepared, holds)| prepared.filter(|_| holds))
        .collect()
}

/// Items each with its signature check, given back with the check's verdict, in order:
/// the checks' last steps taken together (`SignatureCheck::all_hold`).
fn with_verdicts<T>(
    checked: impl IntoIterator<Item = (T, SignatureCheck)>,
) -> impl Iterator<Item = (T, bool)> {
    let (items, checks): (Vec<T>, Vec<SignatureCheck>) = checked.into_iter().unzip();
    let holds = SignatureCheck::all_hold(&checks);
    items.into_iter().zip(holds)
}

/// `all_prepared` of one envelope but for the signature's check: the envelope and the
/// signature's bytes.
fn unsigned(text: &[u8], now: UnixSeconds) -> Option<(Prepared, [u8; 64])> {
    let envelope: Envelope<'_> = serde_json::from_slice(text).ok()?;
    let entry_jcs = envelope.entry.get().as_bytes();
    // A signature that is hex (`parse_lower_hex` below refuses any other) holds no
    // character JSON escapes: its string is its length and two quotes.
    let sig_json_bytes = envelope.sig.len() + 2;
    if ingest::leaf_len(entry_jcs.len(), sig_json_bytes) > MAX_LEAF_BYTES
        || !jcs::is_canonical(entry_jcs)
    {
        return None;
    }
    let entry: StoredEntry<'_> = serde_json::from_str(envelope.entry.get()).ok()?;
    let entry = entry.typed().ok()?;
    ingest::check_fields(&entry.body, entry.ts).ok()?;
    ingest::check_clock(entry.ts, now).ok()?;
    let sig = parse_lower_hex::<64>(&envelope.sig)?;
    Some((
        Prepared {
            entry,
            entry_jcs: entry_jcs.to_vec(),
            sig_hex: envelope.sig.into_owned(),
        },
        sig,
    ))
}

/// A leaf of the ledger's own segments, trusted: its checksum held, and it passed every
/// check (schema, signature, canonical form) when it was accepted. Read in one pass into
/// typed values; the envelope's and the body's constraints hold all the same (they are
/// the types'), so a leaf no schema allows is refused.
pub fn trusted(leaf: &[u8]) -> Result<Leaf<'_>, LeafRefused> {
    let stored: StoredLeaf<'_> = serde_json::from_slice(leaf)
        .map_err(|e| refused(format!("leaf is not a ledger leaf: {e}")))?;
    let accepted = dates::instant(&stored.accepted)
        .map_err(|e| refused(format!("its acceptance time: {e}")))?;
    Ok(Leaf {
        entry: stored.entry.typed()?,
        accepted,
        accepted_text: stored.accepted,
    })
}

/// The origin a genesis leaf names (its type holds it to be a valid ledger origin);
/// `None` for any other leaf. Signatures of a ledger are made for it (PROTOCOL §3, §5).
pub fn genesis_origin(leaf: &[u8]) -> Option<String> {
    match trusted(leaf).ok()?.entry.body {
        Body::LedgerGenesis(g) => Some(g.origin),
        _ => None,
    }
}

/// Leaves each judged on its own as ingest judged it when it was accepted (with its
/// `accepted` as the clock its `ts` is held against), its signature made for the ledger
/// `origin`, and its bytes in canonical form, in order. The signatures' last steps are
/// taken together (`SignatureCheck::all_hold`): `verify` and the monitor judge a core's
/// share of leaves at once.
pub fn all_judged<'a>(
    leaves: impl IntoIterator<Item = &'a [u8]>,
    origin: &str,
) -> Vec<Result<Leaf<'a>, LeafRefused>> {
    let unsigned = leaves.into_iter().map(|leaf| match unsigned_leaf(leaf) {
        Ok((leaf, entry_jcs, sig_hex)) => {
            let check = parse_lower_hex::<64>(sig_hex).map_or(SignatureCheck::REFUSED, |sig| {
                entry::signature_check(origin, &leaf.entry.signer, entry_jcs, &sig)
            });
            (Ok((leaf, entry_jcs, sig_hex)), check)
        }
        Err(e) => (Err(e), SignatureCheck::REFUSED),
    });
    with_verdicts(unsigned)
        .map(|(unsigned, holds)| {
            let (leaf, entry_jcs, sig_hex) = unsigned?;
            if holds {
                return Ok(leaf);
            }
            // Refused: the check alone gives the refusal's words.
            match ingest::check_signature(origin, &leaf.entry.signer, entry_jcs, sig_hex) {
                Err(rejection) => Err(refused(rejection.to_string())),
                Ok(()) => unreachable!("a signature refused in its batch is refused alone"),
            }
        })
        .collect()
}

/// `all_judged` of one leaf but for the signature's check: the leaf, its entry's bytes and
/// its signature's hex.
fn unsigned_leaf(leaf: &[u8]) -> Result<(Leaf<'_>, &[u8], &str), LeafRefused> {
    if leaf.len() > MAX_LEAF_BYTES {
        return Err(refused(format!(
            "it is {} bytes, over the {MAX_LEAF_BYTES}-byte limit",
            leaf.len()
        )));
    }
    let canonical = framed(leaf).filter(|(_, entry_jcs, _)| jcs::is_canonical(entry_jcs));
    let Some((accepted_text, entry_jcs, sig_hex)) = canonical else {
        return Err(refused(
            "its bytes are not the canonical (JCS) form of the leaf",
        ));
    };
    // An instant and a signature's hex hold no character JSON escapes, so once each is
    // found to be one, the frame is the one `entry::leaf_bytes` writes.
    let accepted =
        dates::instant(accepted_text).map_err(|e| refused(format!("its acceptance time: {e}")))?;
    let entry: StoredEntry<'_> =
        serde_json::from_slice(entry_jcs).map_err(|e| refused(format!("its entry: {e}")))?;
    let entry = entry.typed()?;
    let as_rejection = |r: crate::reject::Rejection| refused(r.to_string());
    ingest::check_fields(&entry.body, entry.ts).map_err(as_rejection)?;
    ingest::check_clock(entry.ts, accepted).map_err(as_rejection)?;
    let leaf = Leaf {
        entry,
        accepted,
        accepted_text: Cow::Borrowed(accepted_text),
    };
    Ok((leaf, entry_jcs, sig_hex))
}

/// A leaf's acceptance time, entry and signature, cut from the frame `entry::leaf_bytes`
/// writes around them when the time is an instant and the signature hex:
/// `{"accepted":"<20 bytes>","entry":<entry>,"sig":"<128 bytes>"}`. `None` for bytes framed
/// any other way, which no canonical leaf is. What lies between is for the caller to
/// check.
fn framed(leaf: &[u8]) -> Option<(&str, &[u8], &str)> {
    const INSTANT_BYTES: usize = "1970-01-01T00:00:00Z".len();
    const SIG_HEX_BYTES: usize = 128;
    let rest = leaf.strip_prefix(b"{\"accepted\":\"")?;
    let (accepted, rest) = rest.split_at_checked(INSTANT_BYTES)?;
    let rest = rest.strip_prefix(b"\",\"entry\":")?.strip_suffix(b"\"}")?;
    let (rest, sig) = rest.split_at_checked(rest.len().checked_sub(SIG_HEX_BYTES)?)?;
    let entry = rest.strip_suffix(b",\"sig\":\"")?;
    Some((
        std::str::from_utf8(accepted).ok()?,
        entry,
        std::str::from_utf8(sig).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};
    use serde_json::{Value, json};

    use super::*;
    use crate::entry;
    use crate::json;

    /// `all_prepared` of one envelope: what it makes of the envelope alone.
    fn prepared(text: &[u8], now: UnixSeconds, signatures: Signatures<'_>) -> Option<Prepared> {
        let [prepared] = <[_; 1]>::try_from(all_prepared([text], now, signatures)).unwrap();
        prepared
    }

    /// `all_judged` of one leaf: its judgement alone.
    fn judged<'a>(leaf: &'a [u8], origin: &str) -> Result<Leaf<'a>, LeafRefused> {
        let [judged] = <[_; 1]>::try_from(all_judged([leaf], origin)).unwrap();
        judged
    }

    const ORIGIN: &str = "dcledger.test/leaves";
    const ACCEPTED: &str = "2025-03-05T00:00:00Z";

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    /// How ingest judged a leaf when it was accepted: the envelope it holds parsed into a
    /// tree and prepared (schemas, field rules, clock, signature), then the leaf's bytes
    /// rebuilt from what `prepare` made of it and compared.
    fn as_at_acceptance(leaf: &[u8]) -> bool {
        let Ok(Value::Object(mut envelope)) = json::from_slice(leaf) else {
            return false;
        };
        let Some(Value::String(accepted)) = envelope.remove("accepted") else {
            return false;
        };
        let Ok(at) = dates::instant(&accepted) else {
            return false;
        };
        let signatures = Signatures::Verify {
            origin: Some(ORIGIN),
        };
        ingest::prepare(Value::Object(envelope), at, signatures)
            .is_ok_and(|p| entry::leaf_bytes(&accepted, &p.entry_jcs, &p.sig_hex) == leaf)
    }

    fn example(kind: Kind) -> Value {
        let dir = env!("CARGO_MANIFEST_DIR");
        let text = std::fs::read_to_string(format!("{dir}/schemas/examples/{kind}.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn entry(kind: Kind) -> Value {
        json!({
            "v": 1,
            "kind": kind.as_str(),
            "signer": hex::encode(key().verifying_key().as_bytes()),
            "seq": 1,
            "ts": ACCEPTED,
            "body": example(kind),
        })
    }

    /// The leaf of `entry`, signed for `ORIGIN` over the bytes it is written with
    /// (canonical where it has a canonical form).
    fn leaf(entry: &Value) -> Vec<u8> {
        let (entry_jcs, _) = jcs::canonical_lenient(entry);
        let sig = key().sign(&entry::signing_message(ORIGIN, &entry_jcs));
        entry::leaf_bytes(ACCEPTED, &entry_jcs, &hex::encode(sig.to_bytes()))
    }

    /// A leaf whose entry is written as `entry_text`, canonical or not, signed over those
    /// very bytes: what a signer who skipped JCS would send.
    fn signed_as_written(entry_text: &[u8]) -> Vec<u8> {
        let sig = key().sign(&entry::signing_message(ORIGIN, entry_text));
        entry::leaf_bytes(ACCEPTED, entry_text, &hex::encode(sig.to_bytes()))
    }

    /// `entry(kind)` with one member of the entry set (`Value::Null` here removes it).
    fn changed(kind: Kind, member: &str, value: Value) -> Vec<u8> {
        let mut e = entry(kind);
        let Value::Object(map) = &mut e else {
            unreachable!()
        };
        if value.is_null() {
            map.remove(member);
        } else {
            map.insert(member.into(), value);
        }
        leaf(&e)
    }

    /// `text` with its first `from` replaced by `to`.
    fn edited(text: &[u8], from: &str, to: &str) -> Vec<u8> {
        let text = String::from_utf8(text.to_vec()).unwrap();
        assert!(text.contains(from), "{from} not in {text}");
        text.replacen(from, to, 1).into_bytes()
    }

    /// Each rule a leaf is held to, broken alone, and a leaf breaking none for each kind:
    /// judging a leaf with no JSON tree gives the verdict ingest gave it.
    #[test]
    fn a_leaf_is_judged_as_ingest_judged_it() {
        let mut accepted = 0;
        for (name, bytes, ok) in &cases() {
            assert_eq!(as_at_acceptance(bytes), *ok, "ingest, {name}");
            assert_eq!(judged(bytes, ORIGIN).is_ok(), *ok, "judged, {name}");
            accepted += usize::from(*ok);
        }
        assert_eq!(
            accepted,
            Kind::ALL.len() + 4,
            "the changes by hand are refused"
        );
        // Another ledger's origin: the signature is not for it.
        let good = leaf(&entry(Kind::FacilityRegister));
        assert!(judged(&good, "dcledger.test/other").is_err());
        // Judged as one batch, whose signature checks end together, each leaf gets what it
        // gets alone, a refusal in the same words.
        let cases = cases();
        let together = all_judged(cases.iter().map(|(_, bytes, _)| bytes.as_slice()), ORIGIN);
        assert_eq!(together.len(), cases.len());
        for ((name, bytes, _), together) in cases.iter().zip(together) {
            let alone = judged(bytes, ORIGIN);
            assert_eq!(format!("{together:?}"), format!("{alone:?}"), "{name}");
        }
    }

    /// The same cases as envelopes submitted (the leaf's `accepted` taken off), and a few
    /// of the envelope's own: an envelope the typed read takes is one `prepare` accepts,
    /// and is made into the same `Prepared`; each of the rest it leaves to `prepare`.
    #[test]
    fn a_canonical_envelope_is_prepared_as_prepare_prepares_it() {
        let at = dates::instant(ACCEPTED).unwrap();
        let verify = Signatures::Verify {
            origin: Some(ORIGIN),
        };
        let frame = format!("{{\"accepted\":\"{ACCEPTED}\",");
        let mut envelopes: Vec<(String, Vec<u8>)> = cases()
            .into_iter()
            .filter_map(|(name, bytes, _)| {
                let rest = bytes.strip_prefix(frame.as_bytes())?;
                Some((name, [b"{".as_slice(), rest].concat()))
            })
            .collect();
        let good = String::from_utf8(envelopes[0].1.clone()).unwrap();
        let spaced = good.replacen("{\"entry\":", "{ \"entry\" :\n", 1);
        let sig_at = good.find(",\"sig\":").unwrap();
        let (entry_part, sig_part) = good.split_at(sig_at);
        envelopes.extend([
            ("spaces around the entry".to_string(), spaced.into_bytes()),
            (
                "an entry spelt otherwise than JCS, signed over JCS".to_string(),
                good.replacen("\"kind\":", "\"kind\": ", 1).into_bytes(),
            ),
            (
                "sig first".to_string(),
                format!(
                    "{{{},{}}}",
                    &sig_part[1..sig_part.len() - 1],
                    &entry_part[1..]
                )
                .into_bytes(),
            ),
            (
                "sig twice".to_string(),
                format!("{}{sig_part}", &good[..good.len() - 1]).into_bytes(),
            ),
            (
                "a member after sig".to_string(),
                format!("{},\"z\":1}}", &good[..good.len() - 1]).into_bytes(),
            ),
        ]);
        let mut typed = Vec::new();
        for (name, text) in &envelopes {
            let slow = json::from_slice(text)
                .map_err(|e| e.to_string())
                .and_then(|v| ingest::prepare(v, at, verify).map_err(|r| r.to_string()));
            match prepared(text, at, verify) {
                Some(fast) => {
                    let slow = slow.unwrap_or_else(|e| panic!("{name}: prepare refused: {e}"));
                    assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{name}");
                    typed.push(name.as_str());
                }
                // Left to prepare: refused there, unless its entry is not written as
                // JCS writes it (prepare writes it so, and checks the signature over that).
                None => assert_eq!(
                    slow.is_ok(),
                    name.starts_with("an entry spelt otherwise"),
                    "{name}: left to prepare"
                ),
            }
        }
        // Each kind's example, the edges of seq and ts, JCS as written, and the envelope
        // spelt otherwise around its entry: with spaces, a newline after, `sig` first.
        assert_eq!(typed.len(), Kind::ALL.len() + 3 + 3, "{typed:?}");
        // Judged as one batch, whose signature checks end together, each envelope gets
        // what it gets alone, typed or left to prepare alike.
        let texts = envelopes.iter().map(|(_, text)| text.as_slice());
        let together = all_prepared(texts, at, verify);
        assert_eq!(together.len(), envelopes.len());
        for ((name, text), together) in envelopes.iter().zip(together) {
            let alone = prepared(text, at, verify);
            assert_eq!(format!("{together:?}"), format!("{alone:?}"), "{name}");
        }
    }

    fn cases() -> Vec<(String, Vec<u8>, bool)> {
        let mut cases: Vec<(String, Vec<u8>, bool)> = Vec::new();
        for &kind in Kind::ALL {
            cases.push((format!("{kind}, as its example"), leaf(&entry(kind)), true));
        }
        let fr = Kind::FacilityRegister;
        let good = leaf(&entry(fr));
        let max_seq = MAX_SAFE_INTEGER;
        let entry_cases: Vec<(&str, Value, bool)> = vec![
            ("v", json!(2), false),
            ("v", json!(0), false),
            ("v", json!("1"), false),
            ("v", json!(1.5), false),
            ("v", Value::Null, false),
            ("kind", json!("facility.unknown"), false),
            ("kind", json!("permit.issue"), false),
            ("kind", json!(7), false),
            ("kind", Value::Null, false),
            ("signer", json!("A".repeat(64)), false),
            ("signer", json!("0".repeat(63)), false),
            ("signer", Value::Null, false),
            ("seq", json!(0), false),
            ("seq", json!(-1), false),
            ("seq", json!(max_seq), true),
            ("seq", json!(max_seq + 1), false),
            ("seq", json!("1"), false),
            ("seq", Value::Null, false),
            ("ts", json!("2025-03-05T00:00:00.000Z"), false),
            ("ts", json!("2025-03-05T00:00:00+00:00"), false),
            ("ts", json!("2025-02-30T00:00:00Z"), false),
            ("ts", json!("1969-12-31T23:59:59Z"), false),
            ("ts", json!("2025-03-05T00:05:00Z"), true),
            ("ts", json!("2025-03-05T00:05:01Z"), false),
            ("ts", Value::Null, false),
            ("body", json!([]), false),
            ("body", json!({}), false),
            ("body", Value::Null, false),
            ("extra", json!(1), false),
        ];
        for (member, value, ok) in entry_cases {
            let name = format!("entry.{member} = {value}");
            cases.push((name, changed(fr, member, value), ok));
        }
        let body_cases: Vec<(Kind, &str, Value, bool)> = vec![
            (fr, "announced", json!("2025-02-30"), false),
            (fr, "announced", json!("1969-12-31"), false),
            (fr, "province", json!("national"), false),
            (fr, "name", json!("a\u{7}b"), false),
            (fr, "planned_gpus", json!(-1), false),
            (fr, "extra", json!(1), false),
            (Kind::PowerReport, "period", json!("2025-04"), false),
            (
                Kind::PowerReport,
                "it_kwh",
                json!(10_000_000_000_u64),
                false,
            ),
            (
                Kind::OccupancyReport,
                "gpu_hours_voucher",
                json!(95_001),
                false,
            ),
            (Kind::PermitIssue, "valid_until", json!("2024-08-31"), false),
        ];
        // Within its schema, but a leaf over the size limit (PROTOCOL §6: 413).
        let serials: Vec<String> = (0..1000).map(|i| format!("{i:064}")).collect();
        let long = Kind::LotSerials;
        let mut body_cases = body_cases;
        body_cases.push((long, "serials", json!(serials), false));
        for (kind, field, value, ok) in body_cases {
            let mut e = entry(kind);
            e["body"][field] = value.clone();
            let shown: String = value.to_string().chars().take(60).collect();
            cases.push((format!("{kind} body.{field} = {shown}"), leaf(&e), ok));
        }
        let sig_at = good.len() - 130;
        let mut flipped = good.clone();
        flipped[sig_at] = if flipped[sig_at] == b'0' { b'1' } else { b'0' };
        let byte_cases: Vec<(&str, Vec<u8>)> = vec![
            ("a signature changed", flipped),
            ("the signature in capitals", {
                let sig = String::from_utf8(good[sig_at..good.len() - 2].to_vec()).unwrap();
                edited(&good, &sig, &sig.to_uppercase())
            }),
            ("no signature", {
                let sig_member = &good[sig_at - 8..good.len() - 1];
                assert!(sig_member.starts_with(b",\"sig\":"));
                let mut without = good[..good.len() - 1 - sig_member.len()].to_vec();
                without.push(b'}');
                without
            }),
            ("a member after sig", {
                let mut more = good[..good.len() - 1].to_vec();
                more.extend_from_slice(b",\"z\":1}");
                more
            }),
            (
                "a newline at the end",
                good.iter().copied().chain(*b"\n").collect(),
            ),
            (
                "a space after the leaf's first colon",
                edited(&good, "\"accepted\":", "\"accepted\": "),
            ),
            (
                "accepted not an instant",
                edited(&good, ACCEPTED, "2025-03-05"),
            ),
            (
                "accepted a day later",
                edited(&good, ACCEPTED, "2025-03-06T00:00:00Z"),
            ),
            (
                "accepted a day earlier",
                edited(&good, ACCEPTED, "2025-03-04T00:00:00Z"),
            ),
            (
                "over the leaf limit",
                edited(
                    &good,
                    "\"v\":1",
                    &format!("\"a\":\"{}\",\"v\":1", "x".repeat(MAX_LEAF_BYTES)),
                ),
            ),
            ("not JSON", b"{\"accepted\"".to_vec()),
        ];
        // The entry written otherwise than JCS writes it, and signed as written.
        let signer = hex::encode(key().verifying_key().as_bytes());
        let canonical_entry = jcs::canonical(&entry(fr)).unwrap();
        let seq_signer = format!("\"seq\":1,\"signer\":\"{signer}\"");
        let written_cases: Vec<(&str, &str, String)> = vec![
            ("a space after a colon", "\"kind\":", "\"kind\": ".into()),
            ("a space at the end", "\"v\":1}", "\"v\":1} ".into()),
            (
                "members out of order",
                &seq_signer,
                format!("\"signer\":\"{signer}\",\"seq\":1"),
            ),
            ("a member twice", "\"v\":1}", "\"v\":1,\"v\":1}".into()),
            (
                "an escape JCS does not write",
                "\"kind\":\"f",
                "\"kind\":\"\\u0066".into(),
            ),
            (
                "an escaped solidus",
                "\"kind\":\"f",
                "\"kind\":\"\\/f".into(),
            ),
            ("an exponent", "\"seq\":1", "\"seq\":1e0".into()),
            ("a fraction", "\"seq\":1", "\"seq\":1.0".into()),
            ("a leading zero", "\"seq\":1", "\"seq\":01".into()),
            ("as JCS writes it", "\"seq\":1", "\"seq\":1".into()),
        ];
        for (name, from, to) in written_cases {
            let bytes = signed_as_written(&edited(&canonical_entry, from, &to));
            let ok = name == "as JCS writes it";
            cases.push((format!("entry with {name}, signed as written"), bytes, ok));
        }
        for (name, bytes) in byte_cases {
            // What a leaf changed by hand should be is what ingest says of it.
            let ok = as_at_acceptance(&bytes);
            cases.push((name.to_string(), bytes, ok));
        }
        cases
    }

    /// The test above breaks each constraint the envelope schema has; a constraint added
    /// to it must be added there too.
    #[test]
    fn the_envelope_schema_has_the_constraints_the_test_breaks() {
        let schema: Value = serde_json::from_str(crate::schema::ENVELOPE_SCHEMA).unwrap();
        let entry = &schema["$defs"]["entry"];
        assert_eq!(
            entry["required"],
            json!(["v", "kind", "signer", "seq", "ts", "body"])
        );
        let keywords = |v: &Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.retain(|k| k != "description");
            k.sort();
            k
        };
        let want: &[(&str, &[&str])] = &[
            ("v", &["const"]),
            ("kind", &["enum", "type"]),
            ("signer", &["pattern", "type"]),
            ("seq", &["maximum", "minimum", "type"]),
            ("ts", &["pattern", "type"]),
            ("body", &["type"]),
        ];
        for (name, keys) in want {
            assert_eq!(keywords(&entry["properties"][name]), *keys, "{name}");
        }
        assert_eq!(entry["additionalProperties"], json!(false));
        assert_eq!(schema["required"], json!(["entry", "sig"]));
        assert_eq!(keywords(&schema["properties"]["sig"]), ["pattern", "type"]);
        assert_eq!(schema["additionalProperties"], json!(false));
        assert_eq!(
            entry["properties"]["kind"]["enum"]
                .as_array()
                .unwrap()
                .len(),
            Kind::ALL.len()
        );
    }

    #[test]
    fn trusted_and_judged_read_the_same_leaf_alike() {
        for &kind in Kind::ALL {
            let bytes = leaf(&entry(kind));
            let (t, j) = (trusted(&bytes).unwrap(), judged(&bytes, ORIGIN).unwrap());
            assert_eq!(format!("{t:?}"), format!("{j:?}"), "{kind}");
        }
        let genesis = leaf(&entry(Kind::LedgerGenesis));
        let origin = example(Kind::LedgerGenesis)["origin"].clone();
        assert_eq!(genesis_origin(&genesis).map(Value::from), Some(origin));
        assert_eq!(genesis_origin(&leaf(&entry(Kind::OrgRegister))), None);
    }
}
