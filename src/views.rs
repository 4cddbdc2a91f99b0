//! The JSON documents the ledger answers with (PROTOCOL §10), built in one place so that the
//! CLI's `get` and `proof` commands print exactly what the HTTP endpoints return.

use serde_json::{Value, json};

use crate::ledger::{ConsistencyProof, InclusionProof, LedgerError, SignerView, StoredEntry};

fn hexes(hashes: &[[u8; 32]]) -> Vec<String> {
    hashes.iter().map(hex::encode).collect()
}

/// `GET /v1/entries/{index}`: `{"index", "leaf_hash", "leaf"}` with the parsed leaf.
pub fn entry(e: &StoredEntry) -> Result<Value, LedgerError> {
    let leaf: Value = serde_json::from_slice(&e.leaf).map_err(|err| LedgerError::Replay {
        index: e.index,
        reason: format!("stored leaf is not JSON: {err}"),
    })?;
    Ok(json!({"index": e.index, "leaf_hash": hex::encode(e.leaf_hash), "leaf": leaf}))
}

/// `GET /v1/proofs/inclusion/{index}?size=N`.
pub fn inclusion(p: &InclusionProof) -> Value {
    json!({
        "index": p.index,
        "tree_size": p.tree_size,
        "leaf_hash": hex::encode(p.leaf_hash),
        "hashes": hexes(&p.hashes),
    })
}

/// `GET /v1/proofs/consistency?from=M&to=N`.
pub fn consistency(p: &ConsistencyProof) -> Value {
    json!({"from": p.from, "to": p.to, "hashes": hexes(&p.hashes)})
}

/// `GET /v1/signers/{public_key}`.
pub fn signer(s: &SignerView) -> Value {
    json!({
        "public_key": hex::encode(s.public_key),
        "org_id": s.record.org_id,
        "roles": s.org.as_ref().map(|o| o.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>()).unwrap_or_default(),
        "status": if s.record.revoked_at.is_some() { "revoked" } else { "active" },
        "granted_at": s.record.granted_at,
        "revoked_at": s.record.revoked_at,
        "next_seq": s.record.next_seq,
    })
}

/// The text form every JSON answer is sent and printed in: compact, one line.
pub fn to_text(value: &Value) -> String {
    value.to_string()
}
