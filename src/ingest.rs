//! The ingest pipeline (PROTOCOL §3, §6, §7): from a submitted envelope to an admitted entry.
//!
//! Two stages. `prepare` judges an envelope on its own (size, encoding, schema, field
//! rules, clock, signature); it is pure, so batches are prepared on every core.
//! `admit` then judges it against the ledger as it stands at its index (signer, role,
//! seq, references, ownership, duplicates) and records its effects in the overlay; it
//! runs in ledger order. Refusals come in PROTOCOL §6's order: 413, 400, 403 (signature,
//! signer, role), 409 (seq), 422, 403 (ownership), 409 (duplicates, quantities).
//!
//! `apply_kind` is the one place where a record kind's ledger-dependent rules plug in.

use std::sync::Arc;

use serde_json::Value;

use crate::dates::{self, UnixSeconds};
use crate::domain;
use crate::domain::bodies::Body;
use crate::entry::{self, Kind, Roles};
use crate::jcs;
use crate::keys::{PublicKey, parse_lower_hex, parse_public_hex};
use crate::limits::{MAX_LEAF_BYTES, MAX_TS_AHEAD_S};
use crate::log::checkpoint;
use crate::registry::{self, AdmitError, SignerRecord};
use crate::reject::{RejectClass, Rejection};
use crate::schema;
use crate::store::derived::{DerivedError, Overlay};

/// What admission judges of an entry: its kind, signer, seq, time and typed body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admissible {
    pub kind: Kind,
    pub signer: PublicKey,
    pub seq: u64,
    pub ts: UnixSeconds,
    /// The body, typed once; nothing after parses it again.
    pub body: Body,
}

/// An envelope that passed every check that needs no ledger state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    pub entry: Admissible,
    /// `JCS(entry)`: what the signature covers and what the leaf embeds.
    pub entry_jcs: Vec<u8>,
    pub sig_hex: String,
}

/// Whether `prepare` verifies signatures, and for which ledger. Replaying the ledger's
/// own segments into derived state skips them (checksums guard those bytes); `verify`
/// and `reindex` never do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signatures<'a> {
    /// Each signature must be made for the ledger named `origin` (PROTOCOL §3): its own, or,
    /// for a ledger without a genesis entry yet, the one its genesis will name
    /// ([`submission_origin`]). `None`: no origin is known, so no entry can be judged;
    /// the ledger's first entry must be the genesis that names it.
    Verify {
        origin: Option<&'a str>,
    },
    Trust,
}

/// The origin every signature of a submission must be made for (PROTOCOL §3, §5): the
/// ledger's, fixed by its genesis entry (`ledger`); or, for a ledger that has none yet,
/// the origin named by the genesis entry that opens the submission (`first`), since a
/// genesis entry is signed for the origin its own body declares and everything after it
/// for that same origin. `None` when neither gives a valid origin.
pub fn submission_origin(ledger: Option<&str>, first: Option<&Value>) -> Option<String> {
    if let Some(origin) = ledger {
        return Some(origin.to_string());
    }
    let entry = first?.get("entry")?;
    if entry.get("kind").and_then(Value::as_str) != Some(Kind::LedgerGenesis.as_str()) {
        return None;
    }
    let origin = entry.get("body")?.get("origin")?.as_str()?;
    checkpoint::valid_origin(origin).then(|| origin.to_string())
}

/// Bytes a leaf adds around the entry and the signature string:
/// `{"accepted":"YYYY-MM-DDTHH:MM:SSZ","entry":` … `,"sig":` … `}`.
const LEAF_FRAME_BYTES: usize = 51;

pub(crate) fn leaf_len(entry_jcs_len: usize, sig_json_len: usize) -> usize {
    LEAF_FRAME_BYTES + entry_jcs_len + sig_json_len
}

/// Judges one envelope on its own. `now` is the ledger clock the `ts` is held against.
pub fn prepare(
    envelope: Value,
    now: UnixSeconds,
    signatures: Signatures<'_>,
) -> Result<Prepared, Rejection> {
    // 413 first: the leaf this would become, if it can become one at all.
    let mut entry_problem = None;
    let mut entry_jcs = Vec::new();
    if let Some(entry) = envelope.get("entry") {
        let (bytes, problem) = jcs::canonical_lenient(entry);
        let sig_json_len = envelope
            .get("sig")
            .map_or(2, |s| jcs::canonical_lenient(s).0.len());
        let len = leaf_len(bytes.len(), sig_json_len);
        if len > MAX_LEAF_BYTES {
            return Err(Rejection::new(
                RejectClass::TooLarge,
                "/entry",
                format!("the leaf would be {len} bytes, over the {MAX_LEAF_BYTES}-byte limit"),
            ));
        }
        entry_problem = problem;
        entry_jcs = bytes;
    }

    // 400: encoding rules, then the schemas.
    if let Some(problem) = entry_problem {
        let path = if problem.path == "/" {
            String::new()
        } else {
            problem.path
        };
        return Err(Rejection::invalid(format!("/entry{path}"), problem.message));
    }
    let errors = schema::envelope_errors(&envelope);
    if !errors.is_empty() {
        return Err(Rejection {
            class: RejectClass::Invalid,
            errors,
            expected_seq: None,
        });
    }
    let Value::Object(mut env) = envelope else {
        return Err(Rejection::invalid("/", "envelope must be an object"));
    };
    let sig_hex = match env.remove("sig") {
        Some(Value::String(s)) => s,
        _ => {
            return Err(Rejection::invalid(
                "/sig",
                "must be 128 lowercase hex characters",
            ));
        }
    };
    let Some(Value::Object(mut entry)) = env.remove("entry") else {
        return Err(Rejection::invalid("/entry", "must be an object"));
    };
    let kind = entry
        .get("kind")
        .and_then(Value::as_str)
        .and_then(Kind::parse)
        .ok_or_else(|| Rejection::invalid("/entry/kind", "unknown record kind"))?;
    let body = match entry.remove("body") {
        Some(Value::Object(body)) => body,
        _ => return Err(Rejection::invalid("/entry/body", "must be an object")),
    };
    let body = Value::Object(body);
    let errors = schema::body_errors(kind, &body);
    if !errors.is_empty() {
        return Err(Rejection {
            class: RejectClass::Invalid,
            errors,
            expected_seq: None,
        });
    }
    let body = Body::parse(kind, body)?;
    let ts_text = entry
        .get("ts")
        .and_then(Value::as_str)
        .ok_or_else(|| Rejection::invalid("/entry/ts", "must be a string"))?;
    let ts = dates::instant(ts_text).map_err(|e| Rejection::invalid("/entry/ts", e.to_string()))?;
    check_fields(&body, ts)?;
    check_clock(ts, now)?;
    let signer = entry
        .get("signer")
        .and_then(Value::as_str)
        .and_then(parse_public_hex)
        .ok_or_else(|| {
            Rejection::invalid("/entry/signer", "must be 64 lowercase hex characters")
        })?;
    let seq = entry
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or_else(|| Rejection::invalid("/entry/seq", "must be an integer >= 1"))?;

    // 403: the signature.
    if let Signatures::Verify { origin } = signatures {
        let Some(origin) = origin else {
            return Err(Rejection::invalid(
                "/entry/kind",
                "entry 0 must be ledger.genesis: this ledger has no genesis entry yet, so no \
                 origin that signatures could be made for",
            ));
        };
        check_signature(origin, &signer, &entry_jcs, &sig_hex)?;
    }
    Ok(Prepared {
        entry: Admissible {
            kind,
            signer,
            seq,
            ts,
            body,
        },
        entry_jcs,
        sig_hex,
    })
}

/// The field rules (400), every violation named.
pub(crate) fn check_fields(body: &Body, ts: UnixSeconds) -> Result<(), Rejection> {
    let errors = domain::fields::field_errors(body, ts);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Rejection {
            class: RejectClass::Invalid,
            errors,
            expected_seq: None,
        })
    }
}

/// The signature (403): a strict Ed25519 signature by `signer` over `entry_jcs`, made for
/// the ledger `origin`.
pub(crate) fn check_signature(
    origin: &str,
    signer: &PublicKey,
    entry_jcs: &[u8],
    sig_hex: &str,
) -> Result<(), Rejection> {
    let sig = parse_lower_hex::<64>(sig_hex)
        .ok_or_else(|| Rejection::invalid("/sig", "must be 128 lowercase hex characters"))?;
    if entry::verify_entry_signature(origin, signer, entry_jcs, &sig) {
        return Ok(());
    }
    Err(Rejection::forbidden(
        "/sig",
        format!(
            "bad signature: it must be a strict Ed25519 signature by entry.signer, made for this \
             ledger (origin {origin:?}); {}",
            entry::describe_signed_bytes(origin, entry_jcs)
        ),
    ))
}

/// `ts` may be at most `MAX_TS_AHEAD_S` after the ledger clock `now` (400).
pub(crate) fn check_clock(ts: UnixSeconds, now: UnixSeconds) -> Result<(), Rejection> {
    if ts > now + MAX_TS_AHEAD_S {
        return Err(Rejection::invalid(
            "/entry/ts",
            format!(
                "ts is {} s ahead of the ledger clock ({}); at most {MAX_TS_AHEAD_S} s is allowed",
                ts - now,
                dates::format_instant(now).unwrap_or_else(|| format!("{now} s"))
            ),
        ));
    }
    Ok(())
}

/// Envelopes worth a thread of their own when preparing in parallel: a strict signature
/// check costs ~60 µs, so 32 of them pay for a thread start.
pub const MIN_PREPARED_PER_THREAD: usize = 32;

/// Prepares envelopes, each against its own clock reading, on every available core,
/// keeping their order.
pub fn prepare_all(
    envelopes: Vec<(Value, UnixSeconds)>,
    signatures: Signatures<'_>,
) -> Vec<Result<Prepared, Rejection>> {
    crate::parallel::map(envelopes, MIN_PREPARED_PER_THREAD, |(e, now)| {
        prepare(e, now, signatures)
    })
}

/// What admission learned about an entry, for the indexes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Admitted {
    /// What the entry changed in the projections, each once.
    pub touches: Vec<domain::rules::Touch>,
}

/// Whether the signer has already used `p.seq` (PROTOCOL §3): the envelope is then either a
/// retry of the entry the ledger holds with that seq, if it is the same entry and
/// signature, or a replay, which `admit` refuses. Signers whose key the ledger does not
/// know have used no seq.
pub fn seq_taken(state: &Overlay<'_>, p: &Admissible) -> Result<bool, DerivedError> {
    Ok(registry::signer(state, &p.signer)?.is_some_and(|s| p.seq < s.next_seq))
}

/// Judges a prepared entry against the ledger state at `index` and records its effects.
/// `accepted` is the ledger clock of its batch.
pub fn admit(
    state: &mut Overlay<'_>,
    index: u64,
    accepted: UnixSeconds,
    p: &Admissible,
) -> Result<Admitted, AdmitError> {
    // Prepare checked the clock already; the ledger clock of the batch may differ from the
    // one prepare saw, and the stored leaf must satisfy the rule against its own
    // `accepted`, so check again (cheap).
    check_clock(p.ts, accepted)?;
    if index == 0 {
        // The body's type is its kind's.
        let Body::LedgerGenesis(genesis) = &p.body else {
            return Err(Rejection::invalid("/entry/kind", "entry 0 must be ledger.genesis").into());
        };
        registry::apply_genesis(state, &p.signer, genesis)?;
    }
    let (signer, roles) = authorize(state, p)?;
    if p.seq != signer.next_seq {
        let mut r = Rejection::conflict(
            "/entry/seq",
            format!(
                "expected seq {} for this signer, got {}",
                signer.next_seq, p.seq
            ),
        );
        r.expected_seq = Some(signer.next_seq);
        return Err(r.into());
    }
    let admitted = if index == 0 {
        Admitted::default()
    } else {
        let who = domain::rules::Signer {
            org_id: &signer.org_id,
            roles,
        };
        apply_kind(state, index, p, &who)?
    };
    // A key.revoke may have just revoked this very signer: re-read so the revocation and
    // the seq advance land in one record. No other kind changes a signer's record.
    let current = match p.kind {
        Kind::KeyRevoke => registry::signer(state, &p.signer)?.unwrap_or(signer),
        _ => signer,
    };
    let advanced = SignerRecord {
        next_seq: current.next_seq + 1,
        ..SignerRecord::clone(&current)
    };
    state.put_record(registry::signer_key(&p.signer), advanced);
    Ok(admitted)
}

/// 403 checks: the signer is a live key whose organisation holds a role for the kind.
fn authorize(
    state: &Overlay<'_>,
    p: &Admissible,
) -> Result<(Arc<SignerRecord>, Roles), AdmitError> {
    let Some(signer) = registry::signer(state, &p.signer)? else {
        return Err(Rejection::forbidden(
            "/entry/signer",
            "unknown signer: no key.grant has registered this key",
        )
        .into());
    };
    if let Some(at) = signer.revoked_at {
        return Err(Rejection::forbidden(
            "/entry/signer",
            format!("the signer's key was revoked at entry {at}"),
        )
        .into());
    }
    // A signer's organisation was registered before its key was granted: one missing is
    // damage to derived state, never an organisation without roles.
    let roles = registry::org(state, &signer.org_id)?
        .ok_or_else(|| DerivedError::Decode {
            key: format!("organisation {:?}", signer.org_id),
            reason: "a signer's organisation is missing".into(),
        })?
        .roles;
    if !p.kind.signing_roles().iter().any(|r| roles.contains(*r)) {
        let have: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        let need: Vec<&str> = p.kind.signing_roles().iter().map(|r| r.as_str()).collect();
        return Err(Rejection::forbidden(
            "/entry/kind",
            format!(
                "organisation {:?} has roles [{}]; {} needs one of [{}]",
                signer.org_id,
                have.join(", "),
                p.kind,
                need.join(", ")
            ),
        )
        .into());
    }
    Ok((signer, roles))
}

/// The one place where each record kind's ledger-dependent rules (references, ownership,
/// duplicates, quantities) plug into ingest.
fn apply_kind(
    state: &mut Overlay<'_>,
    index: u64,
    p: &Admissible,
    signer: &domain::rules::Signer<'_>,
) -> Result<Admitted, AdmitError> {
    match p.kind {
        Kind::LedgerGenesis => Err(Rejection::conflict(
            "/entry/kind",
            "the ledger already has its genesis entry (entry 0)",
        )
        .into()),
        Kind::OrgRegister | Kind::KeyGrant | Kind::KeyRevoke => {
            registry::apply(state, index, &p.body).map(|()| Admitted::default())
        }
        _ => {
            domain::rules::apply(state, index, signer, &p.body).map(|touches| Admitted { touches })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use ed25519_dalek::SigningKey;
    use serde_json::json;

    const A: &str = "dcledger.test/a";
    const B: &str = "dcledger.test/b";

    fn genesis(origin: &str) -> Value {
        json!({"entry": {"kind": "ledger.genesis",
                         "body": {"origin": origin, "name": "n", "checkpoint_key": "00"}}})
    }

    #[test]
    fn the_submission_origin_is_the_ledgers_or_its_genesis() {
        assert_eq!(
            submission_origin(Some(A), Some(&genesis(B))).as_deref(),
            Some(A)
        );
        assert_eq!(
            submission_origin(None, Some(&genesis(B))).as_deref(),
            Some(B)
        );
        assert_eq!(submission_origin(None, Some(&genesis("not valid"))), None);
        assert_eq!(submission_origin(None, None), None);
        let other = json!({"entry": {"kind": "org.register", "body": {"origin": A}}});
        assert_eq!(submission_origin(None, Some(&other)), None);
    }

    #[test]
    fn signatures_are_checked_for_the_given_origin() {
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let now = dates::parse_instant("2025-01-01T00:00:00Z").unwrap();
        let envelope = entry::sign_envelope(
            &key,
            A,
            entry::EntryDraft {
                kind: Kind::OrgRegister,
                seq: 1,
                ts: "2025-01-01T00:00:00Z",
                body: json!({"org_id": "acme", "name": "Acme", "roles": ["operator"]}),
            },
        )
        .unwrap();
        let verify = |origin| prepare(envelope.clone(), now, Signatures::Verify { origin });
        assert!(verify(Some(A)).is_ok());
        let refused = verify(Some(B)).unwrap_err();
        assert_eq!(refused.class, RejectClass::Forbidden);
        assert_eq!(refused.errors[0].path, "/sig");
        assert!(
            refused.errors[0].message.contains(&format!("origin {B:?}")),
            "{refused}"
        );
        // No origin known (a ledger without genesis, a submission not opening with one).
        let refused = verify(None).unwrap_err();
        assert_eq!(refused.class, RejectClass::Invalid);
        assert_eq!(refused.errors[0].path, "/entry/kind");
        // Trusted replay does not look at the signature.
        assert!(prepare(envelope.clone(), now, Signatures::Trust).is_ok());
    }

    #[test]
    fn leaf_frame_matches_leaf_bytes() {
        let leaf = entry::leaf_bytes("2025-01-01T00:00:00Z", b"{}", "ab");
        assert_eq!(leaf.len(), leaf_len(2, 4));
    }
}
