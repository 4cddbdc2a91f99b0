//! Entries, envelopes and leaves (SPEC §3–4): the record kinds, who may sign them, the
//! domain-separated signature, and the exact leaf bytes the tree commits to.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::{Value, json};

use crate::jcs;
use crate::keys::PublicKey;

/// Prefix of every signed message, so an entry signature can never be replayed as a
/// signature over anything else (a checkpoint note, another protocol's message).
pub const ENTRY_SIGNING_DOMAIN: &[u8] = b"dcledger/entry/v1\n";

/// The only entry format version this ledger writes and accepts.
pub const ENTRY_VERSION: u64 = 1;

macro_rules! kinds {
    ($($variant:ident = $name:literal => [$($role:ident),+];)+) => {
        /// Every record kind of SPEC §7.
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

            /// The roles whose organisations may sign this kind (SPEC §6 table).
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

/// The roles of SPEC §6. Stored as bits of a `u8` in derived state.
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

/// The message an entry signature covers: the domain prefix and `JCS(entry)`.
pub fn signing_message(entry_jcs: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(ENTRY_SIGNING_DOMAIN.len() + entry_jcs.len());
    msg.extend_from_slice(ENTRY_SIGNING_DOMAIN);
    msg.extend_from_slice(entry_jcs);
    msg
}

/// Strict Ed25519 verification (SPEC §3): refuses non-canonical `S` and small-order keys
/// and `R` points, so one entry has exactly one valid signature encoding per key.
pub fn verify_entry_signature(signer: &PublicKey, entry_jcs: &[u8], sig: &[u8; 64]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(signer) else {
        return false;
    };
    key.verify_strict(&signing_message(entry_jcs), &Signature::from_bytes(sig))
        .is_ok()
}

/// What `dcledger sign` needs to build an entry.
pub struct EntryDraft<'a> {
    pub kind: Kind,
    pub seq: u64,
    pub ts: &'a str,
    pub body: Value,
}

/// Signs a draft and returns the envelope `{"entry": …, "sig": …}`.
pub fn sign_envelope(
    key: &SigningKey,
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
    let sig = key.sign(&signing_message(&entry_jcs));
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

fn json_string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&jcs::canonical(&Value::String(s.to_string())).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn signatures_verify_and_are_domain_separated() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let env = sign_envelope(
            &key,
            EntryDraft {
                kind: Kind::KeyRevoke,
                seq: 2,
                ts: "2025-01-01T00:00:00Z",
                body: json!({"public_key": "00", "reason": "x"}),
            },
        )
        .unwrap();
        let entry_jcs = jcs::canonical(&env["entry"]).unwrap();
        let sig: [u8; 64] = hex::decode(env["sig"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let signer = key.verifying_key().to_bytes();
        assert!(verify_entry_signature(&signer, &entry_jcs, &sig));
        // The same signature over the bare entry (no domain prefix) must not verify.
        let bare = key.sign(&entry_jcs).to_bytes();
        assert!(!verify_entry_signature(&signer, &entry_jcs, &bare));
        let mut flipped = sig;
        flipped[10] ^= 1;
        assert!(!verify_entry_signature(&signer, &entry_jcs, &flipped));
    }
}
