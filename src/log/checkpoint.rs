//! Signed checkpoints of the ledger, in the formats used by standard
//! transparency-log tooling.
//!
//! A checkpoint is a [C2SP signed note](https://c2sp.org/signed-note) whose text
//! is a [C2SP tlog checkpoint](https://c2sp.org/tlog-checkpoint):
//!
//! ```text
//! <origin>\n
//! <tree size, decimal>\n
//! <base64 root hash>\n
//! \n
//! — <key name> <base64(key_id || signature)>\n
//! ```
//!
//! The ledger signs with Ed25519 under a key whose name is the origin. Witness
//! cosignatures are further signature lines. Parsing of the note follows Go's
//! `golang.org/x/mod/sumdb/note` (`Open`) rule for rule; signatures are checked
//! with Ed25519 `verify_strict`. The checkpoint body is parsed more strictly
//! than the C2SP spec requires, because this ledger writes no extension lines.
//!
//! This module does no I/O.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

/// Signature type identifier byte of Ed25519 in C2SP signed notes.
const ALG_ED25519: u8 = 0x01;

/// Prefix of every signature line: U+2014 EM DASH and a space.
pub(crate) const SIG_PREFIX: &str = "\u{2014} ";

/// Most signature lines a note may carry, as in Go's `note.Open`.
///
/// C2SP requires accepting at least 16; Go rejects more than 100.
pub const MAX_SIGNATURES: usize = 100;

/// Longest origin, in bytes (all allowed characters are ASCII).
pub const MAX_ORIGIN_LEN: usize = 255;

/// Length of a key ID in bytes.
pub const KEY_ID_LEN: usize = 4;

/// Base64 decoding of signature lines as lenient as Go's
/// `base64.StdEncoding`: padding required, non-zero trailing bits allowed.
const SIG_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Longest excerpt of untrusted input quoted in an error message.
const EXCERPT_LEN: usize = 80;

/// What went wrong building, parsing or verifying a checkpoint.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// The note contains an ASCII control character other than newline.
    #[error(
        "note contains control character {0:#04x}; a signed note may hold no ASCII control characters other than newline"
    )]
    ControlCharacter(u32),
    /// The note lacks the blank line that separates text from signatures, or
    /// has no signature lines after it.
    #[error(
        "note has no signature block: the text must end in a newline and be followed by a blank line and at least one signature line"
    )]
    MissingSignatureBlock,
    /// The note (its last signature line) does not end in a newline.
    #[error("note does not end in a newline: every signature line must end with '\\n'")]
    MissingTrailingNewline,
    /// A line of the signature block is not `— <key name> <base64>`.
    #[error(
        "signature line {line} is malformed: expected \"\u{2014} <key name> <base64(key id || signature)>\""
    )]
    MalformedSignatureLine {
        /// 1-based index of the line within the signature block.
        line: usize,
    },
    /// More signature lines than [`MAX_SIGNATURES`].
    #[error("note has more than {MAX_SIGNATURES} signature lines")]
    TooManySignatures,
    /// Two different known keys share one key name and key ID.
    #[error(
        "ambiguous verifier key {name}+{key_id}: two different known keys share this name and key id; remove one"
    )]
    AmbiguousVerifier {
        /// Key name.
        name: String,
        /// Key ID, 8 lowercase hex digits.
        key_id: String,
    },
    /// A signature from a known key did not verify.
    #[error(
        "invalid signature from known key {name}+{key_id}: the note was altered or not signed by this key"
    )]
    InvalidSignature {
        /// Key name.
        name: String,
        /// Key ID, 8 lowercase hex digits.
        key_id: String,
    },
    /// No signature line is from a known key.
    #[error(
        "note has no signature from a known key; check that the verifier key for this ledger is configured"
    )]
    NoKnownSignature,
    /// The checkpoint body does not end in a newline.
    #[error("checkpoint body does not end in a newline")]
    BodyMissingNewline,
    /// The checkpoint body has fewer than three lines.
    #[error("checkpoint body has {0} line(s); expected 3: origin, tree size and root hash")]
    TruncatedBody(usize),
    /// The checkpoint body has lines after the root hash.
    #[error(
        "checkpoint body has extension lines after the root hash; this ledger's checkpoints have exactly 3 lines"
    )]
    ExtensionLines,
    /// The origin line is not a valid ledger origin.
    #[error(
        "invalid origin {0:?}: must be 1-255 characters of A-Z, a-z, 0-9, '.', '_', '/', ':', '-'"
    )]
    InvalidOrigin(String),
    /// The tree size line is not a canonical decimal `u64`.
    #[error(
        "invalid tree size {0:?}: must be decimal digits without leading zeros (\"0\" for an empty tree) and fit in 64 bits"
    )]
    InvalidSize(String),
    /// The root hash line is not base64 of 32 bytes.
    #[error("invalid root hash {0:?}: must be standard padded base64 of exactly 32 bytes")]
    InvalidRootHash(String),
    /// A key name is empty or contains a space or '+'.
    #[error("invalid key name {0:?}: must be non-empty and contain no spaces and no '+'")]
    InvalidKeyName(String),
    /// A verifier key string is not `<name>+<hex key id>+<base64 key>`.
    #[error(
        "malformed verifier key: expected <name>+<8 hex digit key id>+<base64(0x01 || 32-byte ed25519 public key)>"
    )]
    MalformedVerifierKey,
    /// A verifier key has another signature type than the one its use needs: Ed25519
    /// (0x01) for a log's key, Ed25519 `cosignature/v1` (0x04) for a witness's.
    #[error(
        "verifier key of signature type {got:#04x} where {expected:#04x} is needed (0x01: a log's ed25519 key; 0x04: a witness's ed25519 cosignature/v1 key)"
    )]
    UnsupportedAlgorithm { got: u8, expected: u8 },
    /// A verifier key's key ID does not match its name and public key.
    #[error(
        "verifier key id {got} does not match {expected} computed from its name and public key; the key string is corrupt"
    )]
    KeyIdMismatch {
        /// Key ID written in the key string.
        got: String,
        /// Key ID computed from the name and key.
        expected: String,
    },
    /// The 32 bytes are not a valid Ed25519 public key.
    #[error("invalid ed25519 public key: the 32 bytes do not encode a curve point")]
    InvalidPublicKey,
}

/// The head of the ledger's Merkle tree at some size, as a C2SP tlog checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The ledger's name; also the name of its signing key.
    pub origin: String,
    /// Number of leaves in the tree.
    pub size: u64,
    /// RFC 6962 Merkle tree hash of the first `size` leaves.
    pub root: [u8; 32],
}

impl Checkpoint {
    /// The note text: origin, size and base64 root hash, each ending in `'\n'`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// Parses a checkpoint note text strictly: exactly three lines, a valid
    /// origin, a canonical decimal size and the base64 of a 32-byte root hash.
    pub fn parse_body(text: &str) -> Result<Checkpoint, CheckpointError> {
        let Some(text) = text.strip_suffix('\n') else {
            return Err(CheckpointError::BodyMissingNewline);
        };
        let mut lines = text.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(CheckpointError::TruncatedBody(text.split('\n').count()));
        };
        if lines.next().is_some() {
            return Err(CheckpointError::ExtensionLines);
        }
        if !valid_origin(origin) {
            return Err(CheckpointError::InvalidOrigin(excerpt(origin)));
        }
        let size = parse_size(size).ok_or_else(|| CheckpointError::InvalidSize(excerpt(size)))?;
        let root = STANDARD
            .decode(root)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| CheckpointError::InvalidRootHash(excerpt(root)))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// Signs the checkpoint with `key` under the key name `origin` and returns
    /// the full signed note (body, blank line, one signature line).
    ///
    /// The origin should satisfy [`valid_origin`]; [`open`] rejects a
    /// checkpoint whose origin does not.
    pub fn sign(&self, key: &SigningKey) -> String {
        let body = self.body();
        let line = signature_line(&body, &self.origin, key);
        format!("{body}\n{line}")
    }
}

/// Whether `origin` is a valid ledger name: 1–255 characters of
/// `[A-Za-z0-9._/:-]`.
pub fn valid_origin(origin: &str) -> bool {
    (1..=MAX_ORIGIN_LEN).contains(&origin.len())
        && origin
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b':' | b'-'))
}

/// The C2SP key ID of an Ed25519 key:
/// the first 4 bytes of `SHA-256(name || 0x0A || 0x01 || public_key)`.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', ALG_ED25519])
        .chain_update(public_key)
        .finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// The verifier key string `<name>+<8 lowercase hex key_id>+<base64(0x01 || public_key)>`,
/// as read by Go's `note.NewVerifier` and C2SP witnesses.
pub fn verifier_key_string(name: &str, public_key: &[u8; 32]) -> String {
    let mut encoded = [0u8; 33];
    encoded[0] = ALG_ED25519;
    encoded[1..].copy_from_slice(public_key);
    format!(
        "{name}+{}+{}",
        hex::encode(key_id(name, public_key)),
        STANDARD.encode(encoded)
    )
}

/// A known Ed25519 key that may have signed a note: the ledger's own key or a
/// witness's.
#[derive(Clone, Debug)]
pub struct NoteVerifier {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    /// A verifier for the Ed25519 `public_key` under the key name `name`.
    pub fn new(name: &str, public_key: &[u8; 32]) -> Result<Self, CheckpointError> {
        if !valid_key_name(name) {
            return Err(CheckpointError::InvalidKeyName(excerpt(name)));
        }
        let key =
            VerifyingKey::from_bytes(public_key).map_err(|_| CheckpointError::InvalidPublicKey)?;
        Ok(NoteVerifier {
            name: name.to_owned(),
            key_id: key_id(name, public_key),
            key,
        })
    }

    /// Parses a verifier key string `<name>+<hex key_id>+<base64(0x01 || public_key)>`,
    /// checking that the key ID matches the name and key.
    pub fn parse(vkey: &str) -> Result<Self, CheckpointError> {
        let (name, key) = decode_vkey(vkey, ALG_ED25519)?;
        NoteVerifier::new(name, &key)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The verifier key string of this key (see [`verifier_key_string`]).
    pub fn key_string(&self) -> String {
        verifier_key_string(&self.name, self.key.as_bytes())
    }
}

/// Decodes a verifier key string `<name>+<hex key_id>+<base64(alg || public_key)>` whose
/// algorithm byte must be `alg`, checking that the key ID matches the name and key.
pub(crate) fn decode_vkey(vkey: &str, alg: u8) -> Result<(&str, [u8; 32]), CheckpointError> {
    let (name, rest) = vkey
        .split_once('+')
        .ok_or(CheckpointError::MalformedVerifierKey)?;
    let (id_hex, key_b64) = rest
        .split_once('+')
        .ok_or(CheckpointError::MalformedVerifierKey)?;
    if !valid_key_name(name) {
        return Err(CheckpointError::InvalidKeyName(excerpt(name)));
    }
    let mut id = [0u8; 4];
    if id_hex.len() != 8 || hex::decode_to_slice(id_hex, &mut id).is_err() {
        return Err(CheckpointError::MalformedVerifierKey);
    }
    let encoded = STANDARD
        .decode(key_b64)
        .map_err(|_| CheckpointError::MalformedVerifierKey)?;
    let Some((&got, key)) = encoded.split_first() else {
        return Err(CheckpointError::MalformedVerifierKey);
    };
    // As in Go: the key ID covers the algorithm byte and key, so check it first.
    let expected = key_id_of_encoded(name, &encoded);
    if id != expected {
        return Err(CheckpointError::KeyIdMismatch {
            got: hex::encode(id),
            expected: hex::encode(expected),
        });
    }
    if got != alg {
        return Err(CheckpointError::UnsupportedAlgorithm { got, expected: alg });
    }
    let key = <[u8; 32]>::try_from(key).map_err(|_| CheckpointError::MalformedVerifierKey)?;
    Ok((name, key))
}

/// Verify a signed note against the known verifiers and parse its checkpoint body.
/// Ignores signature lines from unknown keys; errors if none verifies.
///
/// A known key is one whose name *and* key ID match a verifier; a line that
/// matches only one of them is from an unknown key. A signature from a known
/// key that fails to verify rejects the whole note. The caller should check
/// that the returned `origin` is the ledger it expects.
pub fn open(note: &str, verifiers: &[NoteVerifier]) -> Result<Checkpoint, CheckpointError> {
    Checkpoint::parse_body(open_note(note, verifiers)?)
}

/// The checkpoint a note carries, its signatures left unchecked: for the ledger's own
/// notes (its `checkpoint` file, the one its derived state recorded), which it signed
/// itself and only needs to read the size and root of. Anything from outside goes
/// through [`open`].
pub fn own_note_body(note: &str) -> Result<Checkpoint, CheckpointError> {
    let split = note
        .rfind("\n\n")
        .ok_or(CheckpointError::MissingSignatureBlock)?;
    Checkpoint::parse_body(&note[..=split])
}

/// Verifies a signed note as Go's `note.Open` does and returns its text
/// (ending in a newline, without the separating blank line).
fn open_note<'a>(note: &'a str, verifiers: &[NoteVerifier]) -> Result<&'a str, CheckpointError> {
    if let Some(c) = note.chars().find(|&c| c < ' ' && c != '\n') {
        return Err(CheckpointError::ControlCharacter(u32::from(c)));
    }
    let (text, sigs) = split_note(note)?;
    let mut verified: HashSet<(&str, [u8; 4])> = HashSet::new();
    for (index, line) in sigs.split('\n').enumerate() {
        let malformed = CheckpointError::MalformedSignatureLine { line: index + 1 };
        let (name, id, sig) = parse_signature_line(line).ok_or(malformed)?;
        if index >= MAX_SIGNATURES {
            return Err(CheckpointError::TooManySignatures);
        }
        let Some(verifier) = find_verifier(verifiers, name, id)? else {
            continue;
        };
        // Like Go, only the first signature line of each known key counts.
        if !verified.insert((name, id)) {
            continue;
        }
        let valid = <[u8; 64]>::try_from(sig).is_ok_and(|sig| {
            verifier
                .key
                .verify_strict(text.as_bytes(), &Signature::from_bytes(&sig))
                .is_ok()
        });
        if !valid {
            return Err(CheckpointError::InvalidSignature {
                name: name.to_owned(),
                key_id: hex::encode(id),
            });
        }
    }
    if verified.is_empty() {
        return Err(CheckpointError::NoKnownSignature);
    }
    Ok(text)
}

/// A note's text (ending in a newline) and its signature lines (without the last
/// newline), split at the last blank line.
pub(crate) fn split_note(note: &str) -> Result<(&str, &str), CheckpointError> {
    let split = note
        .rfind("\n\n")
        .ok_or(CheckpointError::MissingSignatureBlock)?;
    let (text, sigs) = (&note[..=split], &note[split + 2..]);
    if sigs.is_empty() {
        return Err(CheckpointError::MissingSignatureBlock);
    }
    let Some(sigs) = sigs.strip_suffix('\n') else {
        return Err(CheckpointError::MissingTrailingNewline);
    };
    Ok((text, sigs))
}

/// Splits `— <name> <base64>` into name, key ID and signature bytes.
pub(crate) fn parse_signature_line(line: &str) -> Option<(&str, [u8; 4], Vec<u8>)> {
    let rest = line.strip_prefix(SIG_PREFIX)?;
    let (name, b64) = rest.split_once(' ').unwrap_or((rest, ""));
    if !valid_key_name(name) || b64.is_empty() {
        return None;
    }
    let mut sig = SIG_BASE64.decode(b64).ok()?;
    if sig.len() <= KEY_ID_LEN {
        return None;
    }
    let id = [sig[0], sig[1], sig[2], sig[3]];
    sig.drain(..KEY_ID_LEN);
    Some((name, id, sig))
}

/// The verifier for `name` and `id`, if known; an error if several different
/// keys match.
fn find_verifier<'v>(
    verifiers: &'v [NoteVerifier],
    name: &str,
    id: [u8; 4],
) -> Result<Option<&'v NoteVerifier>, CheckpointError> {
    let mut matching = verifiers
        .iter()
        .filter(|v| v.name == name && v.key_id == id);
    let Some(first) = matching.next() else {
        return Ok(None);
    };
    if matching.any(|v| v.key != first.key) {
        return Err(CheckpointError::AmbiguousVerifier {
            name: name.to_owned(),
            key_id: hex::encode(id),
        });
    }
    Ok(Some(first))
}

/// The signature line `— <name> <base64(key_id || signature)>\n` of `text`.
fn signature_line(text: &str, name: &str, key: &SigningKey) -> String {
    let public_key = key.verifying_key().to_bytes();
    let signature = key.sign(text.as_bytes()).to_bytes();
    let mut bytes = Vec::with_capacity(KEY_ID_LEN + signature.len());
    bytes.extend_from_slice(&key_id(name, &public_key));
    bytes.extend_from_slice(&signature);
    format!("{SIG_PREFIX}{name} {}\n", STANDARD.encode(bytes))
}

/// Key ID over an encoded key (algorithm byte followed by the key).
pub(crate) fn key_id_of_encoded(name: &str, encoded: &[u8]) -> [u8; 4] {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(b"\n")
        .chain_update(encoded)
        .finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// C2SP key names: non-empty, no Unicode white space, no '+'.
fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c == '+')
}

/// Canonical decimal `u64`: digits only, no leading zero unless exactly "0".
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

/// At most [`EXCERPT_LEN`] characters of untrusted input, for error messages.
pub(crate) fn excerpt(s: &str) -> String {
    match s.char_indices().nth(EXCERPT_LEN) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- Vectors from golang.org/x/mod/sumdb/note (note.go docs, note_test.go). ----

    /// Go's `TestSign`/`TestOpen` signer key (algorithm byte 0x01 then the seed).
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    // ---- A real sum.golang.org checkpoint, from transparency-dev/formats log/note_test.go. ----

    const SUMDB_VKEY: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
    const SUMDB_TEXT: &str =
        "go.sum database tree\n6476701\nmb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n";
    const SUMDB_SIG: &str = "\u{2014} sum.golang.org Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4nPRYfvimWEPWL+o3GeoWwOoAw=\n";

    fn peter_signing_key() -> SigningKey {
        let encoded = PETER_SKEY
            .strip_prefix("PRIVATE+KEY+PeterNeumann+c74f20a3+")
            .unwrap();
        let bytes = STANDARD.decode(encoded).unwrap();
        assert_eq!(bytes[0], ALG_ED25519);
        SigningKey::from_bytes(&bytes[1..].try_into().unwrap())
    }

    fn peter() -> NoteVerifier {
        NoteVerifier::parse(PETER_VKEY).unwrap()
    }

    fn enoch() -> NoteVerifier {
        NoteVerifier::parse(ENOCH_VKEY).unwrap()
    }

    fn test_key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn verifier_for(name: &str, key: &SigningKey) -> NoteVerifier {
        NoteVerifier::new(name, key.verifying_key().as_bytes()).unwrap()
    }

    fn example() -> Checkpoint {
        Checkpoint {
            origin: "example.com/log".to_owned(),
            size: 20852163,
            root: STANDARD
                .decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
                .unwrap()
                .try_into()
                .unwrap(),
        }
    }

    /// `example()` signed by `test_key(1)`, with that key's verifier.
    fn signed_example() -> (String, NoteVerifier) {
        let key = test_key(1);
        let cp = example();
        (cp.sign(&key), verifier_for(&cp.origin, &key))
    }

    /// Replaces the single occurrence of `from` in `s` by `to`.
    fn replace_once(s: &str, from: &str, to: &str) -> String {
        assert_eq!(s.matches(from).count(), 1, "{from:?} in {s:?}");
        s.replacen(from, to, 1)
    }

    #[test]
    fn go_key_id_and_verifier_key_string() {
        let key = peter_signing_key();
        let public_key = key.verifying_key().to_bytes();
        assert_eq!(hex::encode(key_id("PeterNeumann", &public_key)), "c74f20a3");
        assert_eq!(verifier_key_string("PeterNeumann", &public_key), PETER_VKEY);

        let v = peter();
        assert_eq!(v.name(), "PeterNeumann");
        assert_eq!(v.key_id(), [0xc7, 0x4f, 0x20, 0xa3]);
        assert_eq!(v.public_key(), public_key);
        assert_eq!(v.key_string(), PETER_VKEY);
        for vkey in [ENOCH_VKEY, SUMDB_VKEY] {
            assert_eq!(NoteVerifier::parse(vkey).unwrap().key_string(), vkey);
        }
    }

    #[test]
    fn go_signature_is_reproduced() {
        // Ed25519 is deterministic, so signing Go's text must give Go's bytes.
        let key = peter_signing_key();
        let line = signature_line(GO_TEXT, "PeterNeumann", &key);
        assert_eq!(line, PETER_SIG);
        let note = format!("{GO_TEXT}\n{line}");
        assert_eq!(open_note(&note, &[peter()]), Ok(GO_TEXT));
    }

    #[test]
    fn go_open_cosigned_note() {
        let note = format!("{GO_TEXT}\n{PETER_SIG}{ENOCH_SIG}");
        // One known, one unknown; both known; in either order.
        assert_eq!(open_note(&note, &[peter()]), Ok(GO_TEXT));
        assert_eq!(open_note(&note, &[enoch()]), Ok(GO_TEXT));
        assert_eq!(open_note(&note, &[enoch(), peter()]), Ok(GO_TEXT));
        // Neither known.
        assert_eq!(
            open_note(&note, &[]),
            Err(CheckpointError::NoKnownSignature)
        );
        // Go's text is not a checkpoint: signatures verify, the body does not parse.
        assert_eq!(
            open(&note, &[peter()]),
            Err(CheckpointError::TruncatedBody(2))
        );
    }

    #[test]
    fn go_open_duplicates_and_limits() {
        // Repeated known and unknown lines, plus a corrupt unknown one, are accepted.
        let corrupt_enoch = format!("{}ABCD{}", &ENOCH_SIG[..60], &ENOCH_SIG[60..]);
        let note =
            format!("{GO_TEXT}\n{PETER_SIG}{PETER_SIG}{ENOCH_SIG}{ENOCH_SIG}{corrupt_enoch}");
        assert_eq!(open_note(&note, &[peter()]), Ok(GO_TEXT));

        // A corrupt signature from a known key rejects the note.
        let corrupt_peter = format!("{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
        assert_eq!(
            open_note(&format!("{GO_TEXT}\n{corrupt_peter}"), &[peter()]),
            Err(CheckpointError::InvalidSignature {
                name: "PeterNeumann".to_owned(),
                key_id: "c74f20a3".to_owned(),
            })
        );

        // At most 100 signature lines, known or not.
        let ok = format!("{GO_TEXT}\n{}", PETER_SIG.repeat(MAX_SIGNATURES));
        assert_eq!(open_note(&ok, &[peter()]), Ok(GO_TEXT));
        let too_many = format!("{GO_TEXT}\n{}", PETER_SIG.repeat(MAX_SIGNATURES + 1));
        for known in [vec![peter()], vec![]] {
            assert_eq!(
                open_note(&too_many, &known),
                Err(CheckpointError::TooManySignatures)
            );
        }

        // Different keys under one name and key ID are ambiguous only when used;
        // the same key listed twice is not.
        let mut twin = peter();
        twin.key = enoch().key;
        let note = format!("{GO_TEXT}\n{PETER_SIG}");
        assert!(matches!(
            open_note(&note, &[peter(), twin.clone()]),
            Err(CheckpointError::AmbiguousVerifier { .. })
        ));
        assert_eq!(open_note(&note, &[peter(), peter()]), Ok(GO_TEXT));
        let note = format!("{GO_TEXT}\n{ENOCH_SIG}");
        assert_eq!(open_note(&note, &[enoch(), peter(), twin]), Ok(GO_TEXT));
    }

    #[test]
    fn go_malformed_notes() {
        // Go's TestOpen "invalid encoded message syntax" list (its "\xff" case
        // cannot be a &str), plus an empty note.
        let cases = [
            (GO_TEXT.to_owned(), CheckpointError::MissingSignatureBlock),
            (
                format!("{GO_TEXT}\n"),
                CheckpointError::MissingSignatureBlock,
            ),
            (
                format!("{GO_TEXT}\n{}", PETER_SIG.trim_end_matches('\n')),
                CheckpointError::MissingTrailingNewline,
            ),
            (
                format!("\x01{GO_TEXT}\n{PETER_SIG}"),
                CheckpointError::ControlCharacter(1),
            ),
            (
                format!(
                    "{GO_TEXT}\n{}",
                    PETER_SIG.replacen("PeterNeumann", "Bad Name", 1)
                ),
                CheckpointError::MalformedSignatureLine { line: 1 },
            ),
            (
                format!("{GO_TEXT}\n{PETER_SIG}Unexpected line.\n"),
                CheckpointError::MalformedSignatureLine { line: 2 },
            ),
            (String::new(), CheckpointError::MissingSignatureBlock),
        ];
        for (note, want) in cases {
            assert_eq!(open_note(&note, &[peter()]), Err(want), "{note:?}");
        }
    }

    #[test]
    fn malformed_signature_lines() {
        let good = PETER_SIG.trim_end_matches('\n');
        let b64 = good.rsplit_once(' ').unwrap().1;
        let lines = [
            // Hyphen instead of em dash; em dash without space; two spaces.
            good.replacen('\u{2014}', "-", 1),
            good.replacen("\u{2014} ", "\u{2014}", 1),
            good.replacen(' ', "  ", 1),
            // No signature; empty name; '+' in name.
            "\u{2014} PeterNeumann".to_owned(),
            "\u{2014} PeterNeumann ".to_owned(),
            format!("\u{2014}  {b64}"),
            good.replacen("PeterNeumann", "Peter+Neumann", 1),
            // Unpadded or invalid base64; four bytes is only a key ID.
            good.trim_end_matches('=').to_owned(),
            format!("{good}!"),
            format!(
                "\u{2014} PeterNeumann {}",
                STANDARD.encode([0xc7, 0x4f, 0x20, 0xa3])
            ),
        ];
        for line in lines {
            let note = format!("{GO_TEXT}\n{line}\n");
            assert_eq!(
                open_note(&note, &[peter()]),
                Err(CheckpointError::MalformedSignatureLine { line: 1 }),
                "{line:?}"
            );
        }
        // A five-byte signature from a known key is well-formed but invalid.
        let short = format!(
            "{GO_TEXT}\n\u{2014} PeterNeumann {}\n",
            STANDARD.encode([0xc7, 0x4f, 0x20, 0xa3, 0])
        );
        assert!(matches!(
            open_note(&short, &[peter()]),
            Err(CheckpointError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn signature_base64_is_as_lenient_as_go() {
        // Go's base64.StdEncoding accepts non-zero trailing bits: "QQ=" and
        // "QR=" decode to the same bytes, so Enoch's altered line still verifies.
        let lenient = ENOCH_SIG.replacen("+QQ=", "+QR=", 1);
        assert_ne!(lenient, ENOCH_SIG);
        let note = format!("{GO_TEXT}\n{PETER_SIG}{lenient}");
        assert_eq!(open_note(&note, &[enoch()]), Ok(GO_TEXT));
        assert_eq!(open_note(&note, &[peter()]), Ok(GO_TEXT));
        // The root hash, by contrast, must be canonical base64.
        let body = "example.com/log\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=\n";
        assert!(matches!(
            Checkpoint::parse_body(body),
            Err(CheckpointError::InvalidRootHash(_))
        ));
    }

    #[test]
    fn go_verifier_key_manglings_rejected() {
        // Every proper substring and every single-byte increment must fail, as
        // in Go's TestNewVerifier.
        let b = PETER_VKEY.as_bytes();
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if i != 0 || j != b.len() {
                    let k = std::str::from_utf8(&b[i..j]).unwrap();
                    assert!(NoteVerifier::parse(k).is_err(), "{k:?}");
                }
            }
        }
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] += 1;
            let k = String::from_utf8(m).unwrap();
            assert!(NoteVerifier::parse(&k).is_err(), "{k:?}");
        }
        // Wrong key length and unknown algorithm, each with a matching key hash.
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
            )
            .unwrap_err(),
            CheckpointError::MalformedVerifierKey
        );
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            )
            .unwrap_err(),
            CheckpointError::UnsupportedAlgorithm {
                got: 0x65,
                expected: 0x01
            }
        );
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            )
            .unwrap_err(),
            CheckpointError::KeyIdMismatch {
                got: "c74f20a4".to_owned(),
                expected: "c74f20a3".to_owned(),
            }
        );
    }

    #[test]
    fn sumdb_checkpoint_signature_verifies() {
        // A real sum.golang.org checkpoint: the signature machinery accepts it,
        // and the strict body parser rejects its origin, which has spaces.
        let note = format!("{SUMDB_TEXT}\n{SUMDB_SIG}");
        let sumdb = NoteVerifier::parse(SUMDB_VKEY).unwrap();
        assert_eq!(
            open_note(&note, std::slice::from_ref(&sumdb)),
            Ok(SUMDB_TEXT)
        );
        assert_eq!(
            open(&note, &[sumdb]),
            Err(CheckpointError::InvalidOrigin(
                "go.sum database tree".to_owned()
            ))
        );
    }

    #[test]
    fn body_is_byte_exact() {
        // Root hashes: SHA-256 of the empty string (the RFC 6962 empty tree),
        // the C2SP tlog-checkpoint example, and Go's sumdb/tlog
        // TestFormatTree golden (RecordHash("hello world") = SHA-256(0x00 || "hello world")).
        let empty: [u8; 32] = Sha256::digest(b"").into();
        let hello: [u8; 32] = Sha256::digest(b"\x00hello world").into();
        let cases = [
            (
                Checkpoint {
                    origin: "example.com/log".to_owned(),
                    size: 0,
                    root: empty,
                },
                "example.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
            ),
            (
                example(),
                "example.com/log\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
            ),
            (
                Checkpoint {
                    origin: "go.sum database tree".to_owned(),
                    size: 123456789012,
                    root: hello,
                },
                "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
            ),
        ];
        for (cp, want) in cases {
            assert_eq!(cp.body(), want);
            if valid_origin(&cp.origin) {
                assert_eq!(Checkpoint::parse_body(want), Ok(cp));
            }
        }
    }

    #[test]
    fn sign_open_round_trip() {
        let (note, verifier) = signed_example();
        let cp = example();
        let (body, sigs) = note.split_once("\n\n").unwrap();
        assert_eq!(format!("{body}\n"), cp.body());
        assert!(sigs.starts_with("\u{2014} example.com/log "));
        assert_eq!(sigs.matches('\n').count(), 1);
        assert_eq!(open(&note, std::slice::from_ref(&verifier)), Ok(cp.clone()));

        let sig = sigs.trim_end().rsplit_once(' ').unwrap().1;
        let bytes = STANDARD.decode(sig).unwrap();
        assert_eq!(bytes.len(), 68);
        assert_eq!(bytes[..4], verifier.key_id());

        // Also through the verifier key string, and for edge sizes and origins.
        let key = test_key(1);
        let origin = "a".repeat(MAX_ORIGIN_LEN);
        for cp in [
            Checkpoint {
                origin: "x".to_owned(),
                size: 0,
                root: [0; 32],
            },
            Checkpoint {
                origin,
                size: u64::MAX,
                root: [0xff; 32],
            },
        ] {
            let vkey = verifier_key_string(&cp.origin, key.verifying_key().as_bytes());
            let verifier = NoteVerifier::parse(&vkey).unwrap();
            assert_eq!(open(&cp.sign(&key), &[verifier]), Ok(cp));
        }
    }

    #[test]
    fn witness_cosignature() {
        let (note, log) = signed_example();
        let witness_key = test_key(2);
        let body = example().body();
        let cosigned = format!(
            "{note}{}",
            signature_line(&body, "witness.example/w1", &witness_key)
        );
        let witness = verifier_for("witness.example/w1", &witness_key);
        let cp = example();
        // Unknown cosignature ignored while the log's verifies.
        assert_eq!(open(&cosigned, std::slice::from_ref(&log)), Ok(cp.clone()));
        // The witness alone, or both, also verify.
        assert_eq!(
            open(&cosigned, std::slice::from_ref(&witness)),
            Ok(cp.clone())
        );
        assert_eq!(open(&cosigned, &[witness, log]), Ok(cp));
    }

    #[test]
    fn rejections() {
        let (note, log) = signed_example();
        let (body, sigs) = note.split_once("\n\n").unwrap();
        let sig_b64 = sigs.trim_end().rsplit_once(' ').unwrap().1;
        let mut flipped = STANDARD.decode(sig_b64).unwrap();
        flipped[10] ^= 0x01;
        let flipped = STANDARD.encode(flipped);
        let invalid = CheckpointError::InvalidSignature {
            name: log.name().to_owned(),
            key_id: hex::encode(log.key_id()),
        };

        // Same name, different key: its key ID differs, so it is unknown.
        let other = verifier_for("example.com/log", &test_key(3));
        assert_ne!(other.key_id(), log.key_id());

        // The log's signature relabelled with another key ID.
        let mut wrong_id = STANDARD.decode(sig_b64).unwrap();
        wrong_id[..4].copy_from_slice(&other.key_id());
        let wrong_id = STANDARD.encode(wrong_id);

        // A signature from a key named like the log but with another key ID.
        let impostor = signature_line(&format!("{body}\n"), "example.com/log", &test_key(3));

        let cases: Vec<(&str, String, Vec<NoteVerifier>, CheckpointError)> = vec![
            (
                "no verifiers",
                note.clone(),
                vec![],
                CheckpointError::NoKnownSignature,
            ),
            (
                "only a different key with the same name",
                note.clone(),
                vec![other.clone()],
                CheckpointError::NoKnownSignature,
            ),
            (
                "log's line with another key id is from an unknown key",
                replace_once(&note, sig_b64, &wrong_id),
                vec![log.clone()],
                CheckpointError::NoKnownSignature,
            ),
            (
                "flipped bit in signature",
                replace_once(&note, sig_b64, &flipped),
                vec![log.clone()],
                invalid.clone(),
            ),
            (
                "modified size",
                replace_once(&note, "\n20852163\n", "\n20852164\n"),
                vec![log.clone()],
                invalid.clone(),
            ),
            (
                "modified root",
                replace_once(&note, "CsUY", "CsUZ"),
                vec![log.clone()],
                invalid.clone(),
            ),
            (
                "missing trailing newline",
                note.trim_end_matches('\n').to_owned(),
                vec![log.clone()],
                CheckpointError::MissingTrailingNewline,
            ),
            (
                "carriage return",
                note.replace('\n', "\r\n"),
                vec![log.clone()],
                CheckpointError::ControlCharacter(0x0d),
            ),
        ];
        for (what, note, known, want) in cases {
            assert_eq!(open(&note, &known), Err(want), "{what}");
        }

        // The impostor line is ignored by the log's verifier and verifies
        // under its own key.
        let with_impostor = format!("{note}{impostor}");
        assert_eq!(
            open(&with_impostor, std::slice::from_ref(&log)),
            Ok(example())
        );
        assert_eq!(open(&with_impostor, &[other]), Ok(example()));
    }

    #[test]
    fn bodies_signed_correctly_but_invalid_are_rejected() {
        // Each body is validly signed by the log key, so only the body parser can reject it.
        let key = test_key(1);
        let origin = "example.com/log";
        let log = verifier_for(origin, &key);
        let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
        let long = "a".repeat(MAX_ORIGIN_LEN + 1);
        let cases: Vec<(String, CheckpointError)> = vec![
            (
                format!("{origin}\n5\n{root}\nextension\n"),
                CheckpointError::ExtensionLines,
            ),
            (
                format!("{origin}\n5\n{root}\n\nx\n"),
                CheckpointError::ExtensionLines,
            ),
            (format!("{origin}\n5\n"), CheckpointError::TruncatedBody(2)),
            (
                format!("{origin}\n5\nnot base64!\n"),
                CheckpointError::InvalidRootHash("not base64!".to_owned()),
            ),
            (
                format!("{origin}\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n"),
                CheckpointError::InvalidRootHash(
                    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I".to_owned(),
                ),
            ),
            (
                format!("{origin}\n5\n{}\n", STANDARD.encode([0u8; 31])),
                CheckpointError::InvalidRootHash(STANDARD.encode([0u8; 31])),
            ),
            (
                format!("{origin}\n5\n{}\n", STANDARD.encode([0u8; 33])),
                CheckpointError::InvalidRootHash(STANDARD.encode([0u8; 33])),
            ),
            (
                format!("{origin}\n05\n{root}\n"),
                CheckpointError::InvalidSize("05".to_owned()),
            ),
            (
                format!("{origin}\n00\n{root}\n"),
                CheckpointError::InvalidSize("00".to_owned()),
            ),
            (
                format!("{origin}\n+5\n{root}\n"),
                CheckpointError::InvalidSize("+5".to_owned()),
            ),
            (
                format!("{origin}\n\n{root}\n"),
                CheckpointError::InvalidSize(String::new()),
            ),
            (
                format!("{origin}\n18446744073709551616\n{root}\n"),
                CheckpointError::InvalidSize("18446744073709551616".to_owned()),
            ),
            (
                format!("example.com/log two\n5\n{root}\n"),
                CheckpointError::InvalidOrigin("example.com/log two".to_owned()),
            ),
            (
                format!("\n5\n{root}\n"),
                CheckpointError::InvalidOrigin(String::new()),
            ),
            (
                format!("{long}\n5\n{root}\n"),
                CheckpointError::InvalidOrigin(format!("{}…", &long[..EXCERPT_LEN])),
            ),
        ];
        for (body, want) in cases {
            let note = format!("{body}\n{}", signature_line(&body, origin, &key));
            assert_eq!(
                open(&note, std::slice::from_ref(&log)),
                Err(want.clone()),
                "{body:?}"
            );
            assert_eq!(Checkpoint::parse_body(&body), Err(want), "{body:?}");
        }
        assert_eq!(
            Checkpoint::parse_body(&format!("{origin}\n5\n{root}")),
            Err(CheckpointError::BodyMissingNewline)
        );
    }

    #[test]
    fn origins() {
        let long = "a".repeat(MAX_ORIGIN_LEN);
        for ok in [
            "x",
            "example.com/log",
            "a-b_c.d/e:f/0-9",
            "A",
            long.as_str(),
        ] {
            assert!(valid_origin(ok), "{ok:?}");
        }
        let too_long = "a".repeat(MAX_ORIGIN_LEN + 1);
        for bad in [
            "",
            "a b",
            "a+b",
            "a\nb",
            "é",
            "a\u{2014}b",
            too_long.as_str(),
        ] {
            assert!(!valid_origin(bad), "{bad:?}");
        }
    }

    #[test]
    fn verifier_construction_errors() {
        let pk = test_key(1).verifying_key().to_bytes();
        for name in ["", "a b", "a+b", "a\u{a0}b", "a\tb"] {
            assert_eq!(
                NoteVerifier::new(name, &pk).unwrap_err(),
                CheckpointError::InvalidKeyName(name.to_owned())
            );
        }
        // y = 2 does not decode to a curve point.
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        assert_eq!(
            NoteVerifier::new("x", &not_a_point).unwrap_err(),
            CheckpointError::InvalidPublicKey
        );
        for vkey in [
            "",
            "x",
            "x+",
            "x+c74f20a3",
            "x+c74f20a+AQ==",
            "x+zzzzzzzz+AQ==",
        ] {
            assert!(NoteVerifier::parse(vkey).is_err(), "{vkey:?}");
        }
    }

    #[test]
    fn error_messages_are_lowercase() {
        let errors = [
            CheckpointError::NoKnownSignature,
            CheckpointError::ExtensionLines,
            CheckpointError::InvalidSize("05".to_owned()),
            CheckpointError::MalformedSignatureLine { line: 1 },
        ];
        for e in errors {
            let msg = e.to_string();
            assert!(msg.starts_with(|c: char| c.is_lowercase()), "{msg}");
        }
    }
}
