//! Third-party verification: what someone holding only a checkpoint, the log's verifier
//! key string, a leaf and a proof can check, with no access to the ledger (PROTOCOL §4–5).

use serde_json::Value;

use crate::jcs;
use crate::keys::parse_lower_hex;
use crate::log::checkpoint::{self, Checkpoint, NoteVerifier};
use crate::log::merkle::{self, Hash};

#[derive(Debug, thiserror::Error)]
pub enum ProofCheckError {
    #[error("verifier key: {0}")]
    Key(checkpoint::CheckpointError),
    #[error("{which} checkpoint: {source}")]
    Checkpoint {
        which: &'static str,
        source: checkpoint::CheckpointError,
    },
    #[error("{which}: {message}")]
    Document {
        which: &'static str,
        message: String,
    },
    #[error(
        "the proof is for a tree of {proof_size} entries but the checkpoint is for {checkpoint_size}; \
         fetch the proof with ?size={checkpoint_size}"
    )]
    SizeMismatch {
        proof_size: u64,
        checkpoint_size: u64,
    },
    #[error("the leaf's hash {computed} differs from the proof's leaf_hash {claimed}")]
    LeafHashMismatch { computed: String, claimed: String },
    #[error("proof does not verify: {0}")]
    Proof(merkle::VerifyError),
}

fn doc_err(which: &'static str, message: impl Into<String>) -> ProofCheckError {
    ProofCheckError::Document {
        which,
        message: message.into(),
    }
}

fn field_u64(doc: &Value, which: &'static str, field: &str) -> Result<u64, ProofCheckError> {
    doc.get(field)
        .and_then(Value::as_u64)
        .ok_or_else(|| doc_err(which, format!("`{field}` must be a non-negative integer")))
}

fn hashes(doc: &Value, which: &'static str) -> Result<Vec<Hash>, ProofCheckError> {
    doc.get("hashes")
        .and_then(Value::as_array)
        .ok_or_else(|| doc_err(which, "`hashes` must be an array"))?
        .iter()
        .enumerate()
        .map(|(i, h)| {
            h.as_str()
                .and_then(parse_lower_hex::<32>)
                .ok_or_else(|| doc_err(which, format!("`hashes[{i}]` must be 64 lowercase hex")))
        })
        .collect()
}

fn open_checkpoint(
    note: &str,
    verifier: &NoteVerifier,
    which: &'static str,
) -> Result<Checkpoint, ProofCheckError> {
    let cp = checkpoint::open(note, std::slice::from_ref(verifier))
        .map_err(|source| ProofCheckError::Checkpoint { which, source })?;
    if cp.origin != verifier.name() {
        return Err(doc_err(
            which,
            format!(
                "checkpoint origin {:?} is not the key's name {:?}",
                cp.origin,
                verifier.name()
            ),
        ));
    }
    Ok(cp)
}

/// Checks that `leaf_doc` (a leaf object, or the `GET /v1/entries/{i}` answer holding one
/// under `leaf`) is included in the log at the checkpoint's size. Returns the index.
pub fn check_inclusion(
    checkpoint_note: &str,
    verifier_key: &str,
    leaf_doc: &Value,
    proof_doc: &Value,
) -> Result<(Checkpoint, u64), ProofCheckError> {
    let verifier = NoteVerifier::parse(verifier_key).map_err(ProofCheckError::Key)?;
    let cp = open_checkpoint(checkpoint_note, &verifier, "checkpoint")?;
    let leaf = leaf_doc.get("leaf").unwrap_or(leaf_doc);
    let leaf_bytes = jcs::canonical(leaf).map_err(|e| doc_err("leaf", e.to_string()))?;
    let leaf_hash = merkle::leaf_hash(&leaf_bytes);
    let index = field_u64(proof_doc, "proof", "index")?;
    let size = field_u64(proof_doc, "proof", "tree_size")?;
    if let Some(entry_index) = leaf_doc.get("index").and_then(Value::as_u64)
        && entry_index != index
    {
        return Err(doc_err(
            "leaf",
            format!("entry is index {entry_index} but the proof is for index {index}"),
        ));
    }
    if let Some(claimed) = proof_doc.get("leaf_hash").and_then(Value::as_str)
        && claimed != hex::encode(leaf_hash)
    {
        return Err(ProofCheckError::LeafHashMismatch {
            computed: hex::encode(leaf_hash),
            claimed: claimed.to_string(),
        });
    }
    if size != cp.size {
        return Err(ProofCheckError::SizeMismatch {
            proof_size: size,
            checkpoint_size: cp.size,
        });
    }
    merkle::verify_inclusion(
        index,
        size,
        &leaf_hash,
        &hashes(proof_doc, "proof")?,
        &cp.root,
    )
    .map_err(ProofCheckError::Proof)?;
    Ok((cp, index))
}

/// Checks that the log at `new_note` is an append-only extension of the log at `old_note`.
pub fn check_consistency(
    old_note: &str,
    new_note: &str,
    verifier_key: &str,
    proof_doc: &Value,
) -> Result<(Checkpoint, Checkpoint), ProofCheckError> {
    let verifier = NoteVerifier::parse(verifier_key).map_err(ProofCheckError::Key)?;
    let old = open_checkpoint(old_note, &verifier, "old")?;
    let new = open_checkpoint(new_note, &verifier, "new")?;
    let from = field_u64(proof_doc, "proof", "from")?;
    let to = field_u64(proof_doc, "proof", "to")?;
    if from != old.size || to != new.size {
        return Err(doc_err(
            "proof",
            format!(
                "proof is from {from} to {to} but the checkpoints are for {} and {}",
                old.size, new.size
            ),
        ));
    }
    merkle::verify_consistency(
        old.size,
        new.size,
        &old.root,
        &new.root,
        &hashes(proof_doc, "proof")?,
    )
    .map_err(ProofCheckError::Proof)?;
    Ok((old, new))
}
