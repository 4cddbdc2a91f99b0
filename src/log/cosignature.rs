//! Witness cosignatures of checkpoints: C2SP tlog-cosignature's Ed25519 `cosignature/v1`,
//! and C2SP tlog-witness's `add-checkpoint` request body (PROTOCOL §12.2).
//!
//! A cosignature is one more signature line on a checkpoint note,
//! `— <witness name> base64(key id || u64 BE timestamp || Ed25519 signature)`, over
//!
//! ```text
//! cosignature/v1\n
//! time <timestamp>\n
//! <the checkpoint's note text: origin, size, root, each ending in \n>
//! ```
//!
//! with the key ID `SHA-256(name || "\n" || 0x04 || public key)[:4]`. A witness's
//! verifier key is `<name>+<hex key id>+<base64(0x04 || public key)>`. The signed message
//! does not name the witness, so one key serves one witness name only.
//!
//! This module does no I/O.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use super::checkpoint::{self, Checkpoint, CheckpointError, KEY_ID_LEN, NoteVerifier, SIG_PREFIX};
use super::merkle::Hash;

/// Signature type byte of Ed25519 `cosignature/v1` keys (C2SP tlog-cosignature).
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// Most consistency proof lines an `add-checkpoint` request may carry (C2SP
/// tlog-witness): enough for any proof between two sizes below 2^64.
pub const MAX_PROOF_LINES: usize = 63;

/// The header line of the signed message: domain separation from every other signature.
const HEADER: &str = "cosignature/v1\n";

/// Timestamps above this are refused: C2SP caps them at 2^63 − 1.
const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// Why a cosignature, a witness key or a witnessed checkpoint was refused.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum CosignatureError {
    #[error(transparent)]
    Note(#[from] CheckpointError),
    /// A signature line named a known witness, with its key ID, but did not verify.
    #[error(
        "the cosignature of witness {name} does not verify: the checkpoint was altered, or the line was not made by this witness's key"
    )]
    Invalid { name: String },
    /// Fewer known witnesses cosigned than the quorum needs.
    #[error(
        "{got} of the required {quorum} witness cosignatures verify (cosigned by: {names}); the checkpoint is not witnessed enough to rule out a split view"
    )]
    Quorum {
        got: usize,
        quorum: usize,
        names: String,
    },
    /// The same witness key was given twice.
    #[error("witness key {0} is given twice: each counts once towards a quorum")]
    DuplicateWitness(String),
}

/// The key ID of a witness's Ed25519 `cosignature/v1` key.
fn cosigner_key_id(name: &str, public_key: &[u8; 32]) -> [u8; KEY_ID_LEN] {
    checkpoint::key_id_of_encoded(name, &encoded_key(public_key))
}

/// The verifier key string of a witness: `<name>+<hex key id>+<base64(0x04 || key)>`.
pub fn cosigner_verifier_key(name: &str, public_key: &[u8; 32]) -> String {
    format!(
        "{name}+{}+{}",
        hex::encode(cosigner_key_id(name, public_key)),
        STANDARD.encode(encoded_key(public_key))
    )
}

fn encoded_key(public_key: &[u8; 32]) -> [u8; 33] {
    let mut encoded = [0u8; 33];
    encoded[0] = ALG_COSIGNATURE_V1;
    encoded[1..].copy_from_slice(public_key);
    encoded
}

/// The message a cosignature signs: the header, the time line and the note text.
fn signed_message(note_text: &str, timestamp: u64) -> String {
    format!("{HEADER}time {timestamp}\n{note_text}")
}

/// A witness's signing half: its name and Ed25519 key.
pub struct Cosigner {
    name: String,
    key: SigningKey,
}

impl Cosigner {
    /// A cosigner named `name` (a key name: no spaces, no '+').
    pub fn new(name: &str, key: SigningKey) -> Result<Cosigner, CosignatureError> {
        // A NoteVerifier checks the name as every key name is checked.
        NoteVerifier::new(name, key.verifying_key().as_bytes())?;
        Ok(Cosigner {
            name: name.to_owned(),
            key,
        })
    }

    /// This witness's verifier key string, for the logs and clients that trust it.
    pub fn verifier_key(&self) -> String {
        cosigner_verifier_key(&self.name, self.key.verifying_key().as_bytes())
    }

    /// The cosignature line (ending in `\n`) of the checkpoint `body` at `timestamp`
    /// (POSIX seconds).
    pub fn cosign(&self, body: &Checkpoint, timestamp: u64) -> String {
        assert!(timestamp <= MAX_TIMESTAMP, "a timestamp beyond 2^63 - 1");
        let public_key = self.key.verifying_key().to_bytes();
        let signature = self
            .key
            .sign(signed_message(&body.body(), timestamp).as_bytes())
            .to_bytes();
        let mut bytes = Vec::with_capacity(KEY_ID_LEN + 8 + signature.len());
        bytes.extend_from_slice(&cosigner_key_id(&self.name, &public_key));
        bytes.extend_from_slice(&timestamp.to_be_bytes());
        bytes.extend_from_slice(&signature);
        format!("{SIG_PREFIX}{} {}\n", self.name, STANDARD.encode(bytes))
    }
}

/// A witness trusted by a verifier: its name and `cosignature/v1` key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    key_id: [u8; KEY_ID_LEN],
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// Parses a witness verifier key string (signature type 0x04).
    pub fn parse(vkey: &str) -> Result<CosignatureVerifier, CosignatureError> {
        let (name, key) = checkpoint::decode_vkey(vkey, ALG_COSIGNATURE_V1)?;
        Ok(CosignatureVerifier {
            name: name.to_owned(),
            key_id: cosigner_key_id(name, &key),
            key: VerifyingKey::from_bytes(&key).map_err(|_| CheckpointError::InvalidPublicKey)?,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier key string.
    pub fn key_string(&self) -> String {
        cosigner_verifier_key(&self.name, self.key.as_bytes())
    }

    /// The timestamp of this witness's cosignature of `note_text` in `line`: `None` if
    /// the line is not this witness's (another name or key ID, or not a signature line
    /// at all), an error if it is but does not verify.
    pub fn check_line(&self, note_text: &str, line: &str) -> Result<Option<u64>, CosignatureError> {
        let Some((name, id, sig)) = checkpoint::parse_signature_line(line) else {
            return Ok(None);
        };
        if name != self.name || id != self.key_id {
            return Ok(None);
        }
        let invalid = || CosignatureError::Invalid {
            name: self.name.clone(),
        };
        let Ok::<[u8; 72], _>(bytes) = sig.try_into() else {
            return Err(invalid());
        };
        let (time, signature) = bytes.split_at(8);
        let timestamp = u64::from_be_bytes(time.try_into().map_err(|_| invalid())?);
        let signature: [u8; 64] = signature.try_into().map_err(|_| invalid())?;
        if timestamp > MAX_TIMESTAMP {
            return Err(invalid());
        }
        self.key
            .verify_strict(
                signed_message(note_text, timestamp).as_bytes(),
                &Signature::from_bytes(&signature),
            )
            .map_err(|_| invalid())?;
        Ok(Some(timestamp))
    }
}

/// What a witnessed checkpoint established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witnessed {
    pub checkpoint: Checkpoint,
    /// The names of the trusted witnesses whose cosignatures verified, in order.
    pub cosigned_by: Vec<String>,
}

/// Checks a checkpoint note: the log's signature, then the cosignatures of the trusted
/// `witnesses`, at least `quorum` of them. Lines of unknown keys are ignored; a line of a
/// trusted witness that does not verify refuses the note.
pub fn verify_witnessed(
    note: &str,
    log: &NoteVerifier,
    witnesses: &[CosignatureVerifier],
    quorum: usize,
) -> Result<Witnessed, CosignatureError> {
    let mut keys = BTreeSet::new();
    for w in witnesses {
        if !keys.insert(w.key_string()) {
            return Err(CosignatureError::DuplicateWitness(w.key_string()));
        }
    }
    let checkpoint = checkpoint::open(note, std::slice::from_ref(log))?;
    let (text, lines) = checkpoint::split_note(note)?;
    let mut cosigned_by = Vec::new();
    for w in witnesses {
        for line in lines.split('\n') {
            if w.check_line(text, line)?.is_some() {
                cosigned_by.push(w.name().to_owned());
                break;
            }
        }
    }
    if cosigned_by.len() < quorum {
        return Err(CosignatureError::Quorum {
            got: cosigned_by.len(),
            quorum,
            names: if cosigned_by.is_empty() {
                "none".into()
            } else {
                cosigned_by.join(", ")
            },
        });
    }
    Ok(Witnessed {
        checkpoint,
        cosigned_by,
    })
}

/// The body of a C2SP tlog-witness `add-checkpoint` request: the size the client
/// believes the witness last cosigned, a consistency proof from it, and the note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old_size: u64,
    pub proof: Vec<Hash>,
    /// The checkpoint note with its signatures.
    pub note: String,
}

/// Why an `add-checkpoint` body could not be read (a 400).
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("the request body is not UTF-8 text")]
    NotText,
    #[error(
        "the first line must be \"old <size>\", a decimal size without leading zeros, ending in a newline"
    )]
    OldSize,
    #[error("consistency proof line {0} is not the base64 of a 32-byte hash")]
    ProofLine(usize),
    #[error("more than {MAX_PROOF_LINES} consistency proof lines")]
    TooManyProofLines,
    #[error("no blank line between the consistency proof and the checkpoint")]
    NoBlankLine,
}

impl AddCheckpoint {
    /// Reads a request body.
    pub fn parse(body: &[u8]) -> Result<AddCheckpoint, RequestError> {
        let text = std::str::from_utf8(body).map_err(|_| RequestError::NotText)?;
        let (first, mut rest) = text.split_once('\n').ok_or(RequestError::OldSize)?;
        let old_size = first
            .strip_prefix("old ")
            .and_then(checkpoint::parse_size)
            .ok_or(RequestError::OldSize)?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest.split_once('\n').ok_or(RequestError::NoBlankLine)?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(RequestError::TooManyProofLines);
            }
            let hash = STANDARD
                .decode(line)
                .ok()
                .and_then(|b| Hash::try_from(b).ok())
                .ok_or(RequestError::ProofLine(proof.len() + 1))?;
            proof.push(hash);
        }
        Ok(AddCheckpoint {
            old_size,
            proof,
            note: rest.to_owned(),
        })
    }

    /// The request body.
    pub fn encode(&self) -> String {
        let mut out = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            out.push_str(&STANDARD.encode(hash));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.note);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn log_note(size: u64) -> (NoteVerifier, String, Checkpoint) {
        let log = key(1);
        let body = Checkpoint {
            origin: "example.com/log".into(),
            size,
            root: [7; 32],
        };
        let verifier =
            NoteVerifier::new("example.com/log", log.verifying_key().as_bytes()).unwrap();
        (verifier, body.sign(&log), body)
    }

    /// The example of C2SP tlog-cosignature's text: the signed message's exact bytes.
    #[test]
    fn the_signed_message_is_header_time_and_note_text() {
        assert_eq!(
            signed_message(
                "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
                1679315147
            ),
            "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
    }

    #[test]
    fn a_cosignature_verifies_under_the_witness_key_and_nothing_else() {
        let (log, note, body) = log_note(10);
        let w1 = Cosigner::new("witness.example/w1", key(2)).unwrap();
        let w2 = Cosigner::new("witness.example/w2", key(3)).unwrap();
        let v1 = CosignatureVerifier::parse(&w1.verifier_key()).unwrap();
        let v2 = CosignatureVerifier::parse(&w2.verifier_key()).unwrap();
        assert_eq!(v1.key_string(), w1.verifier_key());
        let witnessed = format!("{note}{}", w1.cosign(&body, 1_700_000_000));
        let got = verify_witnessed(&witnessed, &log, &[v1.clone(), v2.clone()], 1).unwrap();
        assert_eq!(got.cosigned_by, ["witness.example/w1"]);
        assert_eq!(got.checkpoint, body);
        assert!(matches!(
            verify_witnessed(&witnessed, &log, &[v1.clone(), v2.clone()], 2),
            Err(CosignatureError::Quorum {
                got: 1,
                quorum: 2,
                ..
            })
        ));
        // A cosignature of another checkpoint does not count for this one: it is refused.
        let other = Checkpoint {
            size: 11,
            ..body.clone()
        };
        let moved = format!("{note}{}", w1.cosign(&other, 1_700_000_000));
        assert_eq!(
            verify_witnessed(&moved, &log, std::slice::from_ref(&v1), 1),
            Err(CosignatureError::Invalid {
                name: "witness.example/w1".into()
            })
        );
        // A log key is not a witness key: the signature types differ.
        assert!(matches!(
            CosignatureVerifier::parse(&log.key_string()),
            Err(CosignatureError::Note(
                CheckpointError::UnsupportedAlgorithm {
                    got: 0x01,
                    expected: 0x04
                }
            ))
        ));
        assert!(matches!(
            verify_witnessed(&witnessed, &log, &[v1.clone(), v1], 1),
            Err(CosignatureError::DuplicateWitness(_))
        ));
    }

    #[test]
    fn add_checkpoint_bodies_read_back_and_refuse_what_the_protocol_refuses() {
        let (_, note, _) = log_note(5);
        let request = AddCheckpoint {
            old_size: 3,
            proof: vec![[1; 32], [2; 32]],
            note: note.clone(),
        };
        let text = request.encode();
        assert!(text.starts_with("old 3\nAQEB"), "{text}");
        assert_eq!(AddCheckpoint::parse(text.as_bytes()).unwrap(), request);
        let cases: &[(&str, RequestError)] = &[
            ("old 03\n\nx", RequestError::OldSize),
            ("old -1\n\nx", RequestError::OldSize),
            ("older 3\n\nx", RequestError::OldSize),
            ("old 3\nAAAA\n\nx", RequestError::ProofLine(1)),
            ("old 3\nAQEB", RequestError::NoBlankLine),
        ];
        for (body, want) in cases {
            assert_eq!(
                AddCheckpoint::parse(body.as_bytes()).as_ref(),
                Err(want),
                "{body:?}"
            );
        }
        let too_many = format!(
            "old 1\n{}\n{note}",
            format!("{}\n", STANDARD.encode([0u8; 32])).repeat(MAX_PROOF_LINES + 1)
        );
        assert_eq!(
            AddCheckpoint::parse(too_many.as_bytes()),
            Err(RequestError::TooManyProofLines)
        );
    }
}
