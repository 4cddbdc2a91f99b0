//! Entries, envelopes and leaves (PROTOCOL §3–4): the record kinds, who may sign them, the
//! domain-separated signature, and the exact leaf bytes the tree commits to.

use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};

use crate::jcs;
use crate::keys::PublicKey;
use crate::signer_points::{SIGNER_POINTS, SignerPoints};

/// Prefix of every signed message, so an entry signature can never be replayed as a
/// signature over anything else (a checkpoint note, another protocol's message).
pub const ENTRY_SIGNING_DOMAIN: &[u8] = b"dcledger/entry/v1\n";

/// The only entry format version this ledger writes and accepts.
pub const ENTRY_VERSION: u64 = 1;

macro_rules! kinds {
    ($($variant:ident = $name:literal => [$($role:ident),+];)+) => {
        /// Every record kind of PROTOCOL §7.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind { $($variant),+ }

        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Kind::$variant => $name),+ }
            }

            pub fn parse(s: &str) -> Option<Kind> {
                match s { $($name => Some(Kind::$variant),)+ _ => None }
            }

            /// The roles whose organisations may sign this kind (PROTOCOL §6 table).
            pub fn signing_roles(self) -> &'static [Role] {
                match self { $(Kind::$variant => &[$(Role::$role),+]),+ }
            }
        }
    };
}

kinds! {
    LedgerGenesis = "ledger.genesis" => [Authority];
    OrgRegister = "org.register" => [Authority];
    KeyGrant = "key.grant" => [Authority];
    KeyRevoke = "key.revoke" => [Authority];
    FacilityRegister = "facility.register" => [Operator];
    FacilityStatus = "facility.status" => [Operator, Regulator];
    FacilityTransfer = "facility.transfer" => [Operator];
    Procurement = "procurement" => [Operator];
    LotSerials = "lot.serials" => [Operator];
    Deployment = "deployment" => [Operator];
    LotTransfer = "lot.transfer" => [Operator];
    PowerReport = "power.report" => [Operator];
    OccupancyReport = "occupancy.report" => [Operator];
    FindingResponse = "finding.response" => [Operator];
    PermitIssue = "permit.issue" => [Permitter];
    PermitRevoke = "permit.revoke" => [Permitter];
    SubsidyGrant = "subsidy.grant" => [Grantor];
    SubsidyDisburse = "subsidy.disburse" => [Grantor];
    LoanIssue = "loan.issue" => [Lender];
    MeterReading = "meter.reading" => [Utility];
    InspectionReport = "inspection.report" => [Regulator];
    FindingResolve = "finding.resolve" => [Regulator];
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The roles of PROTOCOL §6. Stored as bits of a `u8` in derived state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Authority,
    Operator,
    Permitter,
    Grantor,
    Lender,
    Utility,
    Regulator,
}

impl Role {
    pub const ALL: &'static [Role] = &[
        Role::Authority,
        Role::Operator,
        Role::Permitter,
        Role::Grantor,
        Role::Lender,
        Role::Utility,
        Role::Regulator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Authority => "authority",
            Role::Operator => "operator",
            Role::Permitter => "permitter",
            Role::Grantor => "grantor",
            Role::Lender => "lender",
            Role::Utility => "utility",
            Role::Regulator => "regulator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.iter().copied().find(|r| r.as_str() == s)
    }

    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of roles as a bit mask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Roles(pub u8);

impl Roles {
    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.iter().copied().filter(move |r| self.contains(*r))
    }
}

impl FromIterator<Role> for Roles {
    fn from_iter<I: IntoIterator<Item = Role>>(iter: I) -> Self {
        Roles(iter.into_iter().fold(0, |acc, r| acc | r.bit()))
    }
}

/// The exact bytes an entry signature covers (PROTOCOL §3): the domain prefix, the ledger's
/// origin and a newline, then `JCS(entry)`. The origin binds the signature to one ledger,
/// so an envelope accepted by one ledger cannot be replayed into another where the same
/// key is registered. Every signer and every verifier takes the message from here and
/// nowhere else ([`signing_message_parts`]).
///
/// `origin` is a valid ledger origin (`checkpoint::valid_origin`): no newline, so the
/// boundary between origin and entry is unambiguous (and JCS output never holds a raw
/// newline either).
pub fn signing_message(origin: &str, entry_jcs: &[u8]) -> Vec<u8> {
    signing_message_parts(origin, entry_jcs).concat()
}

/// The signed message's parts in order, which [`signing_message`] joins and the signature
/// check hashes in turn.
fn signing_message_parts<'a>(origin: &'a str, entry_jcs: &'a [u8]) -> [&'a [u8]; 4] {
    [ENTRY_SIGNING_DOMAIN, origin.as_bytes(), b"\n", entry_jcs]
}

/// How many characters of `JCS(entry)` a bad-signature message quotes.
const QUOTED_JCS_CHARS: usize = 96;

/// Says, for an integrator whose signature was refused, exactly which bytes the ledger
/// verified: the domain, this ledger's origin, `JCS(entry)` (its length and beginning)
/// and the SHA-256 of the whole message, which a signer can compare with the hash of the
/// bytes it signed to find where they part.
pub fn describe_signed_bytes(origin: &str, entry_jcs: &[u8]) -> String {
    use sha2::Digest;
    let message = signing_message(origin, entry_jcs);
    let jcs = String::from_utf8_lossy(entry_jcs);
    // JCS leaves no raw ASCII control in its output; other characters are escaped where
    // they would not print (bidi controls), so the quote reads as the bytes are.
    let mut quoted = String::new();
    for c in jcs.chars().take(QUOTED_JCS_CHARS) {
        if c.is_ascii() {
            quoted.push(c);
        } else {
            quoted.extend(c.escape_debug());
        }
    }
    if jcs.chars().count() > QUOTED_JCS_CHARS {
        quoted.push('…');
    }
    format!(
        "the signed bytes are {:?} + origin {origin:?} + \"\\n\" + JCS(entry) ({} bytes: \
         {quoted}); {} bytes in all, SHA-256 {}",
        String::from_utf8_lossy(ENTRY_SIGNING_DOMAIN),
        entry_jcs.len(),
        message.len(),
        hex::encode(sha2::Sha256::digest(&message))
    )
}

/// Strict Ed25519 verification (PROTOCOL §3) of a signature made for the ledger `origin`:
/// refuses non-canonical `S` and small-order keys and `R` points, so one entry has
/// exactly one valid signature encoding per key and ledger.
///
/// The verdict is exactly `VerifyingKey::verify_strict`'s over `signing_message` (the
/// tests hold it to it, on valid, corrupted and crafted small-order and mixed-order
/// signatures), reached with less work, since every entry is checked this way:
/// `verify_strict` decompresses `R` only to ask whether it is of small order, then
/// accepts only if `R`'s bytes are the encoding of `P = [S]B − [k]A`; so this checks that
/// equality first and asks `P`'s order instead, one square root fewer (a tenth of the
/// check). The signed message is hashed in its parts, never assembled, and the key's
/// point, its order and, for a key that signs often, a table of its multiples come from
/// a cache (`signer_points`). Many signatures are checked for less each with
/// `signature_check` and `SignatureCheck::all_hold`.
pub fn verify_entry_signature(
    origin: &str,
    signer: &PublicKey,
    entry_jcs: &[u8],
    sig: &[u8; 64],
) -> bool {
    SignatureCheck::all_hold(&[signature_check(origin, signer, entry_jcs, sig)]) == [true]
}

/// `verify_entry_signature` up to its last step, which `SignatureCheck::all_hold` takes
/// for many checks at once.
pub fn signature_check(
    origin: &str,
    signer: &PublicKey,
    entry_jcs: &[u8],
    sig: &[u8; 64],
) -> SignatureCheck {
    signature_check_with(&SIGNER_POINTS, origin, signer, entry_jcs, sig)
}

/// `signature_check` with the signer's point from `points`.
fn signature_check_with(
    points: &SignerPoints,
    origin: &str,
    signer: &PublicKey,
    entry_jcs: &[u8],
    sig: &[u8; 64],
) -> SignatureCheck {
    use curve25519_dalek::constants::ED25519_BASEPOINT_TABLE;
    use curve25519_dalek::edwards::EdwardsPoint;
    use curve25519_dalek::scalar::Scalar;
    use sha2::{Digest, Sha512};

    let Some(key) = points.point(signer) else {
        return SignatureCheck::REFUSED;
    };
    if key.small_order {
        return SignatureCheck::REFUSED;
    }
    let (r, s) = sig.split_at(32);
    let (Ok(r), Ok(s)) = (<[u8; 32]>::try_from(r), <[u8; 32]>::try_from(s)) else {
        unreachable!("64 bytes split at 32 leave 32 and 32")
    };
    let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s)) else {
        return SignatureCheck::REFUSED;
    };
    let mut hash = Sha512::new().chain_update(r).chain_update(signer);
    for part in signing_message_parts(origin, entry_jcs) {
        hash.update(part);
    }
    let k = Scalar::from_hash(hash);
    // `[k](−A) + [S]B`, the same point either way (`signer_points`).
    let p = match &key.table {
        Some(minus_a) => (&**minus_a * &k) + (ED25519_BASEPOINT_TABLE * &s),
        None => EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &key.minus_a, &s),
    };
    SignatureCheck(Some(Unfinished { p, r }))
}

/// A strict signature check but for its last step: whether `R`'s bytes are the encoding
/// of the point `P` the signature and key give, and `P` not of small order. Encoding a
/// point takes a field inversion (about a tenth of the check); `all_hold` makes one
/// inversion serve a whole batch (Montgomery's trick), so a bulk append pays it once per
/// batch rather than once per entry.
pub struct SignatureCheck(Option<Unfinished>);

struct Unfinished {
    p: curve25519_dalek::edwards::EdwardsPoint,
    r: [u8; 32],
}

impl SignatureCheck {
    /// A check already failed: the key, or `S`, is not what a strict check accepts.
    pub const REFUSED: Self = Self(None);

    /// Each check's verdict, in order: `verify_entry_signature`'s for the same signature.
    pub fn all_hold(checks: &[SignatureCheck]) -> Vec<bool> {
        use curve25519_dalek::edwards::EdwardsPoint;

        let points: Vec<EdwardsPoint> = checks.iter().flat_map(|c| &c.0).map(|u| u.p).collect();
        let mut encodings = EdwardsPoint::compress_batch_alloc(&points).into_iter();
        let verdicts = checks
            .iter()
            .map(|check| {
                check.0.as_ref().is_some_and(|u| {
                    let Some(encoding) = encodings.next() else {
                        unreachable!("one encoding for each unfinished check")
                    };
                    encoding.as_bytes() == &u.r && !u.p.is_small_order()
                })
            })
            .collect();
        assert!(encodings.next().is_none(), "every encoding was compared");
        verdicts
    }
}

/// What `dcledger sign` needs to build an entry.
pub struct EntryDraft<'a> {
    pub kind: Kind,
    pub seq: u64,
    pub ts: &'a str,
    pub body: Value,
}

/// Signs a draft for the ledger `origin` and returns the envelope `{"entry": …, "sig": …}`.
pub fn sign_envelope(
    key: &SigningKey,
    origin: &str,
    draft: EntryDraft<'_>,
) -> Result<Value, jcs::CanonicalError> {
    let entry = json!({
        "v": ENTRY_VERSION,
        "kind": draft.kind.as_str(),
        "signer": hex::encode(key.verifying_key().as_bytes()),
        "seq": draft.seq,
        "ts": draft.ts,
        "body": draft.body,
    });
    let entry_jcs = jcs::canonical(&entry)?;
    let sig = key.sign(&signing_message(origin, &entry_jcs));
    Ok(json!({"entry": entry, "sig": hex::encode(sig.to_bytes())}))
}

/// The stored leaf bytes: `JCS({"accepted", "entry", "sig"})`, assembled from the already
/// canonical entry so the entry is not serialised twice. Keys are in JCS order.
pub fn leaf_bytes(accepted: &str, entry_jcs: &[u8], sig_hex: &str) -> Vec<u8> {
    let mut leaf = Vec::with_capacity(entry_jcs.len() + sig_hex.len() + 64);
    leaf.extend_from_slice(b"{\"accepted\":");
    json_string(accepted, &mut leaf);
    leaf.extend_from_slice(b",\"entry\":");
    leaf.extend_from_slice(entry_jcs);
    leaf.extend_from_slice(b",\"sig\":");
    json_string(sig_hex, &mut leaf);
    leaf.push(b'}');
    leaf
}

/// Whether `leaf` holds exactly this entry (`JCS(entry)`) and signature, whenever it was
/// accepted: how a retry is told from a replay (PROTOCOL §3). The comparison is of the bytes
/// `leaf_bytes` would write, so a leaf holds an envelope only if it is that envelope.
pub fn leaf_holds(leaf: &[u8], entry_jcs: &[u8], sig_hex: &str) -> bool {
    // `{"accepted":"<instant>",...`: an instant has no character JSON escapes.
    let accepted = leaf
        .strip_prefix(b"{\"accepted\":\"")
        .and_then(|rest| rest.get(..rest.iter().position(|&b| b == b'"')?))
        .and_then(|bytes| std::str::from_utf8(bytes).ok());
    accepted.is_some_and(|accepted| leaf_bytes(accepted, entry_jcs, sig_hex) == leaf)
}

fn json_string(s: &str, out: &mut Vec<u8>) {
    jcs::write_string(s, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    mod strict_signatures {
        use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
        use curve25519_dalek::scalar::Scalar;
        use proptest::prelude::*;
        use sha2::{Digest, Sha512};

        use super::*;

        const ORIGIN: &str = "dcledger.test/strict";

        /// `verify_strict`'s verdict over the assembled message, which ours must equal.
        fn strict(signer: &PublicKey, entry_jcs: &[u8], sig: &[u8; 64]) -> bool {
            ed25519_dalek::VerifyingKey::from_bytes(signer).is_ok_and(|key| {
                key.verify_strict(
                    &signing_message(ORIGIN, entry_jcs),
                    &ed25519_dalek::Signature::from_bytes(sig),
                )
                .is_ok()
            })
        }

        /// Our verdict, held equal to `verify_strict`'s, with the key's point as the
        /// process caches it and both ways the product can be made: with a table of the
        /// key's multiples (built at its first check) and without one.
        fn agreed(signer: &PublicKey, entry_jcs: &[u8], sig: &[u8; 64]) -> bool {
            let ours = verify_entry_signature(ORIGIN, signer, entry_jcs, sig);
            let expected = strict(signer, entry_jcs, sig);
            for (way, points) in [
                ("as cached", None),
                ("with a table", Some(SignerPoints::new(1, 1, 1))),
                ("without a table", Some(SignerPoints::new(1, 0, 1))),
            ] {
                let verdict = match points {
                    None => ours,
                    Some(points) => {
                        SignatureCheck::all_hold(&[signature_check_with(
                            &points, ORIGIN, signer, entry_jcs, sig,
                        )]) == [true]
                    }
                };
                assert_eq!(
                    verdict,
                    expected,
                    "{way}: signer {} sig {}",
                    hex::encode(signer),
                    hex::encode(sig)
                );
            }
            ours
        }

        fn signed(key: &SigningKey, entry_jcs: &[u8]) -> ([u8; 32], [u8; 64]) {
            let sig = key.sign(&signing_message(ORIGIN, entry_jcs));
            (key.verifying_key().to_bytes(), sig.to_bytes())
        }

        /// `k = H(R || A || message)` as the protocol's message is hashed.
        fn challenge(r: &[u8; 32], a: &[u8; 32], entry_jcs: &[u8]) -> Scalar {
            Scalar::from_hash(
                Sha512::new()
                    .chain_update(r)
                    .chain_update(a)
                    .chain_update(signing_message(ORIGIN, entry_jcs)),
            )
        }

        fn sig_of(r: [u8; 32], s: [u8; 32]) -> [u8; 64] {
            let mut sig = [0; 64];
            sig[..32].copy_from_slice(&r);
            sig[32..].copy_from_slice(&s);
            sig
        }

        #[test]
        fn valid_signatures_pass_and_non_canonical_s_fails() {
            let key = SigningKey::from_bytes(&[3; 32]);
            for n in 0..16 {
                let msg = format!("{{\"n\":{n}}}");
                let (a, sig) = signed(&key, msg.as_bytes());
                assert!(agreed(&a, msg.as_bytes(), &sig));
                assert!(!agreed(&a, b"{}", &sig));
                // S + l: the same point, a second encoding of the signature.
                const L: [u8; 32] = [
                    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde,
                    0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
                ];
                let mut high = sig;
                let mut carry = 0u16;
                for (byte, l) in high[32..].iter_mut().zip(L) {
                    let sum = u16::from(*byte) + u16::from(l) + carry;
                    *byte = sum as u8;
                    carry = sum >> 8;
                }
                assert!(!agreed(&a, msg.as_bytes(), &high));
            }
        }

        /// Checks ended together (`SignatureCheck::all_hold`) give each signature the
        /// verdict it gets alone, in a batch that interleaves valid signatures, wrong
        /// messages (checks that fail at the last step) and non-canonical `S` and
        /// small-order keys (checks refused before it).
        #[test]
        fn checks_ended_together_agree_with_each_alone() {
            let key = SigningKey::from_bytes(&[9; 32]);
            let small_order_key = EIGHT_TORSION[1].compress().to_bytes();
            let cases: Vec<([u8; 32], Vec<u8>, [u8; 64])> = (0..40u32)
                .map(|n| {
                    let msg = format!("{{\"n\":{n}}}").into_bytes();
                    let (a, sig) = signed(&key, &msg);
                    match n % 4 {
                        0 => (a, msg, sig),
                        1 => (a, b"{}".to_vec(), sig),
                        2 => {
                            let mut high_s = sig;
                            high_s[63] |= 0xf0;
                            (a, msg, high_s)
                        }
                        _ => (small_order_key, msg, sig),
                    }
                })
                .collect();
            let checks: Vec<SignatureCheck> = cases
                .iter()
                .map(|(a, msg, sig)| signature_check(ORIGIN, a, msg, sig))
                .collect();
            let alone: Vec<bool> = cases
                .iter()
                .map(|(a, msg, sig)| agreed(a, msg, sig))
                .collect();
            assert_eq!(SignatureCheck::all_hold(&checks), alone);
            assert_eq!(alone.iter().filter(|&&holds| holds).count(), 10);
            assert!(SignatureCheck::all_hold(&[]).is_empty());
        }

        /// A small-order key makes `[S]B − [k]A` equal `R` for any message: refused.
        #[test]
        fn small_order_keys_are_refused() {
            for t in EIGHT_TORSION {
                let a = t.compress().to_bytes();
                let r = Scalar::from(7u64);
                let big_r = (ED25519_BASEPOINT_POINT * r).compress().to_bytes();
                // [S]B − [k]T = R exactly when kT is the identity (always, for the
                // identity key); either way refused.
                assert!(!agreed(&a, b"{}", &sig_of(big_r, r.to_bytes())));
            }
        }

        /// A key with a torsion part (mixed order, not small): signatures whose `R` is
        /// `[S]B − [k]A` and of small order must be refused, those whose `R` is that point
        /// and of large order accepted, whatever `k` makes of the torsion.
        #[test]
        fn mixed_order_keys_agree_on_small_and_large_r() {
            let secret = Scalar::from(1_234_567u64);
            let mut small_r_equal = 0;
            let mut large_accepted = 0;
            let mut large_refused = 0;
            for t in &EIGHT_TORSION[1..] {
                let point = ED25519_BASEPOINT_POINT * secret + t;
                let a = point.compress().to_bytes();
                for n in 0..64u32 {
                    let msg = format!("{{\"n\":{n}}}");
                    // R a torsion point, S = k·secret: [S]B − [k]A = −[k]T.
                    for q in EIGHT_TORSION {
                        let r = q.compress().to_bytes();
                        let k = challenge(&r, &a, msg.as_bytes());
                        let s = (k * secret).to_bytes();
                        let equal = -(t * k) == q;
                        assert!(!agreed(&a, msg.as_bytes(), &sig_of(r, s)));
                        small_r_equal += usize::from(equal);
                    }
                    // R = [r]B, S = r + k·secret: [S]B − [k]A = R − [k]T.
                    let r_scalar = Scalar::from(u64::from(n) + 99);
                    let r = (ED25519_BASEPOINT_POINT * r_scalar).compress().to_bytes();
                    let k = challenge(&r, &a, msg.as_bytes());
                    let s = (r_scalar + k * secret).to_bytes();
                    if agreed(&a, msg.as_bytes(), &sig_of(r, s)) {
                        large_accepted += 1;
                    } else {
                        large_refused += 1;
                    }
                }
            }
            // Each way was met: the test reached the cases it is for.
            assert!(small_r_equal > 0, "no small R met [S]B − [k]A");
            assert!(large_accepted > 0 && large_refused > 0);
        }

        /// `R` spelt as no canonical point: `y` at or above p, or `x = 0` with its sign set.
        #[test]
        fn non_canonical_r_is_refused() {
            let key = SigningKey::from_bytes(&[5; 32]);
            let (a, sig) = signed(&key, b"{}");
            let mut p_plus_1 = [0xff; 32];
            p_plus_1[0] = 0xee;
            p_plus_1[31] = 0x7f;
            let mut identity_signed = [0; 32];
            identity_signed[0] = 1;
            identity_signed[31] = 0x80;
            for r in [p_plus_1, identity_signed, [0xff; 32], [0; 32]] {
                let mut forged = sig;
                forged[..32].copy_from_slice(&r);
                assert!(!agreed(&a, b"{}", &forged));
            }
        }

        proptest! {
            /// A valid signature with any bit of the key, the signature or the message
            /// flipped: both checks give one verdict.
            #[test]
            fn corrupted_signatures_get_strict_verdicts(
                seed in any::<[u8; 32]>(),
                msg in proptest::collection::vec(any::<u8>(), 0..200),
                bit in 0usize..(8 * (32 + 64 + 200)),
            ) {
                let (mut a, mut sig) = signed(&SigningKey::from_bytes(&seed), &msg);
                let mut msg = msg;
                let byte = bit / 8;
                let flip = 1u8 << (bit % 8);
                if byte < 32 {
                    a[byte] ^= flip;
                } else if byte < 96 {
                    sig[byte - 32] ^= flip;
                } else if let Some(b) = msg.get_mut(byte - 96) {
                    *b ^= flip;
                }
                agreed(&a, &msg, &sig);
            }
        }
    }

    #[test]
    fn kinds_round_trip_and_have_roles() {
        assert_eq!(Kind::ALL.len(), 22);
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(*kind));
            assert!(!kind.signing_roles().is_empty());
        }
        assert_eq!(Kind::parse("ledger.Genesis"), None);
        assert_eq!(
            Kind::FacilityStatus.signing_roles(),
            &[Role::Operator, Role::Regulator]
        );
    }

    #[test]
    fn leaf_bytes_equal_jcs_of_the_leaf_object() {
        let entry = json!({"v": 1, "kind": "key.revoke", "signer": "ab", "seq": 3,
                           "ts": "2025-01-01T00:00:00Z", "body": {"public_key": "cd", "reason": "lost \"it\""}});
        let entry_jcs = jcs::canonical(&entry).unwrap();
        let built = leaf_bytes("2025-01-01T00:00:05Z", &entry_jcs, "ef");
        let reference = jcs::canonical(&json!({
            "accepted": "2025-01-01T00:00:05Z", "entry": entry, "sig": "ef"}))
        .unwrap();
        assert_eq!(built, reference);
    }

    #[test]
    fn a_leaf_holds_only_its_own_entry_and_signature() {
        let entry_jcs = br#"{"kind":"org.register","seq":3}"#;
        let leaf = leaf_bytes("2025-01-01T00:00:05Z", entry_jcs, "ef");
        assert!(leaf_holds(&leaf, entry_jcs, "ef"));
        assert!(!leaf_holds(&leaf, entry_jcs, "ee"), "another signature");
        assert!(!leaf_holds(
            &leaf,
            br#"{"kind":"org.register","seq":4}"#,
            "ef"
        ));
        assert!(!leaf_holds(
            &leaf,
            br#"{"kind":"org.register","seq":3} "#,
            "ef"
        ));
        assert!(!leaf_holds(b"{}", entry_jcs, "ef"));
        assert!(!leaf_holds(b"", entry_jcs, "ef"));
    }

    const ORIGIN: &str = "dcledger.example/cn-henan";

    fn revoke_draft() -> EntryDraft<'static> {
        EntryDraft {
            kind: Kind::KeyRevoke,
            seq: 2,
            ts: "2025-01-01T00:00:00Z",
            body: json!({"public_key": "00", "reason": "x"}),
        }
    }

    fn parts(env: &Value) -> (Vec<u8>, [u8; 64]) {
        let entry_jcs = jcs::canonical(&env["entry"]).unwrap();
        let sig: [u8; 64] = hex::decode(env["sig"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        (entry_jcs, sig)
    }

    #[test]
    fn signatures_verify_and_are_domain_separated() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let env = sign_envelope(&key, ORIGIN, revoke_draft()).unwrap();
        let (entry_jcs, sig) = parts(&env);
        let signer = key.verifying_key().to_bytes();
        assert!(verify_entry_signature(ORIGIN, &signer, &entry_jcs, &sig));
        // The same signature over the bare entry (no domain prefix) must not verify.
        let bare = key.sign(&entry_jcs).to_bytes();
        assert!(!verify_entry_signature(ORIGIN, &signer, &entry_jcs, &bare));
        let mut flipped = sig;
        flipped[10] ^= 1;
        assert!(!verify_entry_signature(
            ORIGIN, &signer, &entry_jcs, &flipped
        ));
    }

    #[test]
    fn signatures_are_bound_to_the_origin() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let signer = key.verifying_key().to_bytes();
        let env = sign_envelope(&key, ORIGIN, revoke_draft()).unwrap();
        let (entry_jcs, sig) = parts(&env);
        assert!(verify_entry_signature(ORIGIN, &signer, &entry_jcs, &sig));
        // Another ledger, even one whose name extends this one's, refuses it.
        for other in [
            "dcledger.example/cn-hebei",
            "dcledger.example/cn-henan2",
            "d",
        ] {
            assert!(
                !verify_entry_signature(other, &signer, &entry_jcs, &sig),
                "{other}"
            );
        }
        // A signature over the unbound v1 message (no origin line) is refused too.
        let mut unbound = ENTRY_SIGNING_DOMAIN.to_vec();
        unbound.extend_from_slice(&entry_jcs);
        let old = key.sign(&unbound).to_bytes();
        assert!(!verify_entry_signature(ORIGIN, &signer, &entry_jcs, &old));
    }

    /// The signed bytes and the signature for a known key, origin and entry, pinned: a
    /// verifier written from PROTOCOL §3 alone, or `tests/sign_with_openssl.py`, must make
    /// these exact bytes. The signature was computed independently with `openssl pkeyutl
    /// -sign -rawin` over the message below, with the PKCS#8 key of seed [7; 32].
    #[test]
    fn signed_bytes_golden() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let env = sign_envelope(&key, ORIGIN, revoke_draft()).unwrap();
        let (entry_jcs, _) = parts(&env);
        let expected: &[u8] = b"dcledger/entry/v1\n\
            dcledger.example/cn-henan\n\
            {\"body\":{\"public_key\":\"00\",\"reason\":\"x\"},\"kind\":\"key.revoke\",\"seq\":2,\
            \"signer\":\"ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c\",\
            \"ts\":\"2025-01-01T00:00:00Z\",\"v\":1}";
        assert_eq!(
            String::from_utf8_lossy(&signing_message(ORIGIN, &entry_jcs)),
            String::from_utf8_lossy(expected)
        );
        assert_eq!(
            env["sig"],
            "3aa618e7d82c0c4a4bb0f261fbc0c903225beebc0ecf4696d9ad410c4cbf35c0\
             8f47a582d502de9fe7fa86b37f623261a0d7cf5087dc394472457ce675effc04"
        );
    }

    #[test]
    fn bad_signature_description_names_what_was_signed() {
        let entry_jcs =
            "{\"body\":{\"name\":\"\u{202e}evil\"},\"kind\":\"org.register\"}".as_bytes();
        let text = describe_signed_bytes(ORIGIN, entry_jcs);
        // A bidi control is shown escaped, not applied to the rest of the message.
        assert!(
            text.contains(r#"{"body":{"name":"\u{202e}evil"}"#),
            "{text}"
        );
        assert!(text.contains(r#""dcledger/entry/v1\n""#), "{text}");
        assert!(
            text.contains(r#"origin "dcledger.example/cn-henan""#),
            "{text}"
        );
        assert!(
            text.contains(&format!("JCS(entry) ({} bytes", entry_jcs.len())),
            "{text}"
        );
        let message = signing_message(ORIGIN, entry_jcs);
        assert!(
            text.contains(&format!("{} bytes in all", message.len())),
            "{text}"
        );
        use sha2::Digest;
        assert!(
            text.contains(&hex::encode(sha2::Sha256::digest(&message))),
            "{text}"
        );
    }
}
