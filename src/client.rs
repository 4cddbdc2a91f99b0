//! A small blocking client of the HTTP API, for `dcledger submit`.

use serde_json::Value;

use crate::dates;
use crate::entry::{self, EntryDraft, Kind};
use crate::keys::PublicKey;
use crate::limits::MAX_BATCH_ENTRIES;
use crate::log::checkpoint;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("request to {url} failed: {reason}")]
    Transport { url: String, reason: String },
    #[error("the server refused it ({status}): {detail}")]
    Refused {
        status: u16,
        detail: String,
        problem: Value,
    },
    #[error("the server's answer is not JSON: {0}")]
    BadAnswer(String),
    #[error("signing: {0}")]
    Sign(String),
}

pub struct Client {
    base: String,
    agent: ureq::Agent,
}

/// Durable entries and the checkpoint that covers them.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub entries: Vec<(u64, String)>,
    pub checkpoint: String,
}

impl Client {
    pub fn new(base: &str) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build();
        Client {
            base: base.trim_end_matches('/').to_string(),
            agent: config.into(),
        }
    }

    fn answer(
        url: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, ClientError> {
        let mut response = response.map_err(|e| ClientError::Transport {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        if status >= 400 {
            return Err(ClientError::Refused {
                status,
                detail: value["detail"].as_str().unwrap_or(&text).to_string(),
                problem: value,
            });
        }
        Ok(value)
    }

    /// Submits up to 1,000 envelopes as one all-or-nothing batch.
    pub fn submit(&self, envelopes: &[Value]) -> Result<Submitted, ClientError> {
        let url = format!("{}/v1/entries", self.base);
        let body = Value::Array(envelopes.to_vec()).to_string();
        let response = self
            .agent
            .post(&url)
            .header("content-type", "application/json")
            .send(body.as_bytes());
        let value = Self::answer(&url, response)?;
        // A batch's answer (PROTOCOL §10), read whole or refused: never a default index.
        #[derive(serde::Deserialize)]
        struct Batch {
            entries: Vec<Entry>,
            checkpoint: String,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            index: u64,
            leaf_hash: String,
        }
        let batch: Batch = serde_json::from_value(value)
            .map_err(|e| ClientError::BadAnswer(format!("{url} answered a batch without {e}")))?;
        if batch.entries.len() != envelopes.len() {
            return Err(ClientError::BadAnswer(format!(
                "{url} answered {} entries for {} envelopes",
                batch.entries.len(),
                envelopes.len()
            )));
        }
        Ok(Submitted {
            entries: batch
                .entries
                .into_iter()
                .map(|e| (e.index, e.leaf_hash))
                .collect(),
            checkpoint: batch.checkpoint,
        })
    }

    /// The ledger's origin (PROTOCOL §5): the first line of its checkpoint, which is what an
    /// entry signature for this ledger must be made for (PROTOCOL §3).
    pub fn origin(&self) -> Result<String, ClientError> {
        let url = format!("{}/v1/checkpoint", self.base);
        let mut response = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| ClientError::Transport {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let status = response.status().as_u16();
        if status >= 400 {
            // An error is problem JSON, read like every other answer's.
            let refusal = Self::answer(&url, Ok(response));
            return Err(refusal.err().unwrap_or_else(|| {
                ClientError::BadAnswer(format!("{url} answered status {status}"))
            }));
        }
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        let origin = text.lines().next().unwrap_or_default();
        if !checkpoint::valid_origin(origin) {
            return Err(ClientError::BadAnswer(format!(
                "the checkpoint at {url} does not begin with a ledger origin"
            )));
        }
        Ok(origin.to_string())
    }

    /// The `seq` the ledger expects next from `key`.
    pub fn next_seq(&self, key: &PublicKey) -> Result<u64, ClientError> {
        let url = format!("{}/v1/signers/{}", self.base, hex::encode(key));
        let value = Self::answer(&url, self.agent.get(&url).call())?;
        value["next_seq"]
            .as_u64()
            .ok_or_else(|| ClientError::BadAnswer("no next_seq in the signer's record".into()))
    }
}

/// Signs `bodies` for the ledger `origin` as consecutive entries of `kind`, starting at
/// `first_seq`, dated now.
pub fn sign_bodies(
    key: &ed25519_dalek::SigningKey,
    origin: &str,
    kind: Kind,
    first_seq: u64,
    bodies: Vec<Value>,
) -> Result<Vec<Value>, ClientError> {
    let ts = dates::format_instant(dates::now())
        .ok_or_else(|| ClientError::Sign("clock out of range".into()))?;
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            entry::sign_envelope(
                key,
                origin,
                EntryDraft {
                    kind,
                    seq: first_seq + i as u64,
                    ts: &ts,
                    body,
                },
            )
            .map_err(|e| ClientError::Sign(e.to_string()))
        })
        .collect()
}

/// Submits `envelopes` in batches of at most 1,000; stops at the first refusal.
pub fn submit_all(client: &Client, envelopes: &[Value]) -> Result<Submitted, ClientError> {
    let mut all = Submitted {
        entries: Vec::new(),
        checkpoint: String::new(),
    };
    for batch in envelopes.chunks(MAX_BATCH_ENTRIES) {
        let done = client.submit(batch)?;
        all.entries.extend(done.entries);
        all.checkpoint = done.checkpoint;
    }
    Ok(all)
}
