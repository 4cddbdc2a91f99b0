//! A submission's body (PROTOCOL §10, `POST /v1/entries`): one envelope, or an array of 1 to
//! `MAX_BATCH_ENTRIES` of them, read and prepared for the writer.
//!
//! Signers write their entries in canonical form (`dcledger sign` and the client libraries
//! do), so a body whose every envelope `leaves::all_prepared` accepts is read straight from
//! its text into typed values: no JSON tree, no schema walk over one. Any other body is parsed
//! into a tree by `json::from_slice` (which refuses a key given twice anywhere in it) and
//! judged by `ingest::prepare`, as every body was before: which envelope a refusal names,
//! and its words, are the same whichever way a body came, because `leaves::all_prepared`
//! accepts only what `prepare` would accept, and makes of it what `prepare` would.

use serde_json::Value;
use serde_json::value::RawValue;

use crate::dates::UnixSeconds;
use crate::ingest::{self, MIN_PREPARED_PER_THREAD, Prepared, Signatures};
use crate::json::{self, ParseError};
use crate::leaves;
use crate::limits::MAX_BATCH_ENTRIES;
use crate::reject::Rejection;

/// Why a body holds no batch to judge.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Not JSON, or JSON with a key given twice in an object.
    #[error("the body is {0}")]
    NotJson(#[from] ParseError),
    #[error("a batch holds 1 to {MAX_BATCH_ENTRIES} envelopes, not {0}")]
    BatchSize(usize),
}

/// Whether a body is a batch (a JSON array) rather than a single envelope: a refusal's
/// path then starts with the envelope's position (PROTOCOL §10).
pub fn is_batch(body: &[u8]) -> bool {
    body.iter().find(|b| !b" \t\n\r".contains(b)) == Some(&b'[')
}

/// Whether a body of `envelopes` envelopes holds a batch the writer takes.
fn is_batch_size(envelopes: usize) -> bool {
    (1..=MAX_BATCH_ENTRIES).contains(&envelopes)
}

/// Reads a body and prepares its envelopes (on every core for a large batch), each held
/// against the clock reading `now`. `ledger_origin` is the origin the ledger's genesis
/// entry fixed, `None` before there is one (the body must then open with it).
pub fn prepare(
    body: &[u8],
    ledger_origin: Option<&str>,
    now: UnixSeconds,
) -> Result<Vec<Result<Prepared, Rejection>>, BodyError> {
    if let Some(prepared) = ledger_origin.and_then(|origin| prepared_from_text(body, origin, now)) {
        return Ok(prepared.into_iter().map(Ok).collect());
    }
    let envelopes = match json::from_slice(body)? {
        Value::Array(items) => items,
        one => vec![one],
    };
    if !is_batch_size(envelopes.len()) {
        return Err(BodyError::BatchSize(envelopes.len()));
    }
    let origin = ingest::submission_origin(ledger_origin, envelopes.first());
    Ok(ingest::prepare_all(
        envelopes.into_iter().map(|e| (e, now)).collect(),
        Signatures::Verify {
            origin: origin.as_deref(),
        },
    ))
}

/// Every envelope of the body read straight from its text, or `None` when the body is
/// not a batch of acceptable size or any envelope is one `leaves::all_prepared` leaves to
/// `prepare`. A body with such an envelope is then judged whole again through the tree:
/// the rare refused batch pays twice so that the accepted ones never build a tree.
fn prepared_from_text(body: &[u8], origin: &str, now: UnixSeconds) -> Option<Vec<Prepared>> {
    let envelopes: Vec<&RawValue> = if is_batch(body) {
        serde_json::from_slice(body).ok()?
    } else {
        vec![serde_json::from_slice(body).ok()?]
    };
    if !is_batch_size(envelopes.len()) {
        return None;
    }
    let signatures = Signatures::Verify {
        origin: Some(origin),
    };
    // Each core's share of the envelopes with its signature checks ending together.
    crate::parallel::map_shares(envelopes, MIN_PREPARED_PER_THREAD, |share| {
        leaves::all_prepared(share.iter().map(|e| e.get().as_bytes()), now, signatures)
    })
    .into_iter()
    .collect()
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use serde_json::json;

    use super::*;
    use crate::dates;
    use crate::entry::{self, EntryDraft, Kind};
    use crate::reject::RejectClass;

    const ORIGIN: &str = "dcledger.test/submission";

    fn now() -> UnixSeconds {
        dates::instant("2025-06-01T00:00:00Z").unwrap()
    }

    /// A registration signed for `ORIGIN`, its entry in canonical form as signers write it.
    fn envelope(seq: u64) -> Value {
        let draft = EntryDraft {
            kind: Kind::OrgRegister,
            seq,
            ts: "2025-01-01T00:00:00Z",
            body: json!({"org_id": format!("org-{seq}"), "name": "N", "roles": ["operator"]}),
        };
        entry::sign_envelope(&SigningKey::from_bytes(&[9; 32]), ORIGIN, draft).unwrap()
    }

    /// What the JSON tree and `ingest::prepare` make of a body: how every body was read
    /// before it could be read from its text.
    fn through_the_tree(body: &[u8]) -> Vec<Result<Prepared, Rejection>> {
        let envelopes = match json::from_slice(body).unwrap() {
            Value::Array(items) => items,
            one => vec![one],
        };
        let origin = Some(ORIGIN);
        ingest::prepare_all(
            envelopes.into_iter().map(|e| (e, now())).collect(),
            Signatures::Verify { origin },
        )
    }

    #[test]
    fn canonical_envelopes_are_read_from_the_text_as_the_tree_reads_them() {
        let one = envelope(1).to_string();
        let batch = json!([envelope(1), envelope(2), envelope(3)]).to_string();
        let spaced = format!(" \n[ {} ,\t{} ]\r\n", envelope(4), envelope(5));
        for body in [one, batch, spaced] {
            let from_text = prepared_from_text(body.as_bytes(), ORIGIN, now())
                .unwrap_or_else(|| panic!("not read from its text: {body}"));
            let from_tree: Vec<Prepared> = through_the_tree(body.as_bytes())
                .into_iter()
                .map(Result::unwrap)
                .collect();
            assert_eq!(from_text, from_tree, "{body}");
            let prepared = prepare(body.as_bytes(), Some(ORIGIN), now()).unwrap();
            assert_eq!(prepared, from_tree.into_iter().map(Ok).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_body_the_text_cannot_take_is_judged_through_the_tree() {
        let canonical = envelope(1).to_string();
        // The same entry with insignificant whitespace: accepted (the signature covers
        // the canonical form), but only the tree canonicalises it.
        let spaced = canonical.replacen("\"kind\":", "\"kind\" : ", 1);
        let mut forged = envelope(2);
        forged["entry"]["body"]["name"] = json!("M");
        let duplicate = canonical.replacen("\"name\":\"N\"", "\"name\":\"N\",\"name\":\"N\"", 1);
        let cases: [(&str, String, Option<usize>); 4] = [
            ("entry not canonical", spaced.clone(), None),
            (
                "batch with a non-canonical entry",
                format!("[{canonical},{spaced}]"),
                None,
            ),
            ("bad signature", forged.to_string(), Some(0)),
            (
                "bad signature second",
                format!("[{canonical},{forged}]"),
                Some(1),
            ),
        ];
        for (name, body, refused_at) in cases {
            assert!(
                prepared_from_text(body.as_bytes(), ORIGIN, now()).is_none(),
                "{name}: read from its text"
            );
            let prepared = prepare(body.as_bytes(), Some(ORIGIN), now()).unwrap();
            assert_eq!(prepared, through_the_tree(body.as_bytes()), "{name}");
            let refused: Vec<usize> = (0..prepared.len())
                .filter(|&i| prepared[i].is_err())
                .collect();
            assert_eq!(refused, Vec::from_iter(refused_at), "{name}");
            if let Some(i) = refused_at {
                let Err(r) = &prepared[i] else { unreachable!() };
                assert_eq!(r.class, RejectClass::Forbidden, "{name}");
            }
        }
        // A key given twice anywhere refuses the body before any envelope is judged, as
        // the tree has always done: even when an envelope before it is itself refused.
        let sig = &canonical[canonical.find(",\"sig\"").unwrap()..canonical.len() - 1];
        let twice_signed = format!("{}{sig}}}", &canonical[..canonical.len() - 1]);
        for (body, path) in [
            (format!("[{forged},{duplicate}]"), "/1/entry/body"),
            (duplicate.clone(), "/entry/body"),
            (format!("[{canonical},{twice_signed}]"), "/1"),
        ] {
            assert!(
                prepared_from_text(body.as_bytes(), ORIGIN, now()).is_none(),
                "{body}"
            );
            match prepare(body.as_bytes(), Some(ORIGIN), now()) {
                Err(BodyError::NotJson(e)) => {
                    let r = e.duplicate_key().expect("a duplicate key");
                    assert_eq!(r.errors[0].path, path, "{r:?}");
                }
                other => panic!("a duplicate key not refused: {body}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_batch_holds_one_to_the_limit_of_envelopes() {
        let full = vec![envelope(1); MAX_BATCH_ENTRIES];
        let over = vec![envelope(1); MAX_BATCH_ENTRIES + 1];
        for (body, size) in [(json!([]), 0), (json!(over), MAX_BATCH_ENTRIES + 1)] {
            match prepare(body.to_string().as_bytes(), Some(ORIGIN), now()) {
                Err(BodyError::BatchSize(n)) => assert_eq!(n, size),
                other => panic!("a batch of {size} not refused: {other:?}"),
            }
        }
        let prepared = prepare(json!(full).to_string().as_bytes(), Some(ORIGIN), now()).unwrap();
        assert_eq!(prepared.len(), MAX_BATCH_ENTRIES);
        match prepare(b"[{\"entry\":", Some(ORIGIN), now()) {
            Err(BodyError::NotJson(e)) => assert!(e.duplicate_key().is_none()),
            other => panic!("text that is not JSON not refused: {other:?}"),
        }
    }

    #[test]
    fn before_a_genesis_entry_the_body_is_read_through_the_tree() {
        // No origin known: `prepared_from_text` has none to check signatures for, and the
        // tree's `prepare` refuses the entry, as it must not be entry 0.
        let prepared = prepare(envelope(1).to_string().as_bytes(), None, now()).unwrap();
        match &prepared[..] {
            [Err(r)] => assert_eq!(r.errors[0].path, "/entry/kind", "{r:?}"),
            other => panic!("an entry before genesis not refused: {other:?}"),
        }
    }

    #[test]
    fn a_batch_is_an_array_whatever_the_whitespace_before_it() {
        for (body, batch) in [
            (&b"[]"[..], true),
            (b" \t\r\n[{}]", true),
            (b"{}", false),
            (b"  {\"a\":[]}", false),
            (b"", false),
        ] {
            assert_eq!(is_batch(body), batch, "{:?}", String::from_utf8_lossy(body));
        }
    }
}
