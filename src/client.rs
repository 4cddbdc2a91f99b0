//! A small blocking client of the HTTP API, for `dcledger submit`.

use std::io::BufRead;

use serde_json::Value;

use crate::bulk;
use crate::dates;
use crate::entry::{self, EntryDraft, Kind};
use crate::json;
use crate::keys::PublicKey;
use crate::limits::{MAX_BATCH_ENTRIES, MAX_BODY_BYTES};
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
    #[error("cannot read the input: {0}")]
    Read(std::io::Error),
    /// A line that cannot be sent; the batch it would have joined was not sent either.
    #[error("line {line}: {reason}; nothing from line {unsent} on was sent")]
    Line {
        line: u64,
        unsent: u64,
        reason: String,
    },
    /// A batch the server did not take; the batches before it are in the ledger.
    #[error("the batch of lines {first} to {last} was not taken, nor anything after it: {source}")]
    Batch {
        first: u64,
        last: u64,
        source: Box<ClientError>,
    },
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

    /// Submits envelopes, each serialized, as one all-or-nothing batch: at most
    /// `MAX_BATCH_ENTRIES` of them, in a body of at most `MAX_BODY_BYTES` (`Batch`).
    fn submit(&self, envelopes: &[String]) -> Result<Submitted, ClientError> {
        let url = format!("{}/v1/entries", self.base);
        let body = format!("[{}]", envelopes.join(","));
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

/// Signs each body of the input as the next entry of one signer, for `submit --key`.
pub struct BodySigner<'k> {
    key: &'k ed25519_dalek::SigningKey,
    origin: String,
    kind: Kind,
    next_seq: u64,
    /// One time for every entry of the run.
    ts: String,
}

impl<'k> BodySigner<'k> {
    /// Signs for the ledger `origin` as entries of `kind` from `first_seq` on, dated now.
    pub fn new(
        key: &'k ed25519_dalek::SigningKey,
        origin: String,
        kind: Kind,
        first_seq: u64,
    ) -> Result<BodySigner<'k>, ClientError> {
        let ts = dates::format_instant(dates::now())
            .ok_or_else(|| ClientError::Sign("clock out of range".into()))?;
        Ok(BodySigner {
            key,
            origin,
            kind,
            next_seq: first_seq,
            ts,
        })
    }

    fn sign(&mut self, body: Value) -> Result<Value, String> {
        let envelope = entry::sign_envelope(
            self.key,
            &self.origin,
            EntryDraft {
                kind: self.kind,
                seq: self.next_seq,
                ts: &self.ts,
                body,
            },
        )
        .map_err(|e| format!("cannot sign the body: {e}"))?;
        self.next_seq = self
            .next_seq
            .checked_add(1)
            .ok_or("the signer's seq would pass 2^64")?;
        Ok(envelope)
    }
}

/// The envelopes of a batch being gathered, serialized, and the lines they came from.
#[derive(Default)]
struct Batch {
    envelopes: Vec<String>,
    /// The array's bytes: its brackets, the envelopes and the commas between them.
    body_bytes: usize,
    first_line: u64,
    last_line: u64,
}

impl Batch {
    /// The body's bytes with one more envelope of `bytes`.
    fn bytes_with(&self, bytes: usize) -> usize {
        // Its brackets with the first envelope, a comma with each after it.
        let around = if self.envelopes.is_empty() { 2 } else { 1 };
        self.body_bytes.saturating_add(around).saturating_add(bytes)
    }

    fn push(&mut self, line: u64, envelope: String) {
        if self.envelopes.is_empty() {
            self.first_line = line;
        }
        self.body_bytes = self.bytes_with(envelope.len());
        self.last_line = line;
        self.envelopes.push(envelope);
    }
}

/// Submits the NDJSON envelopes of `input` (bodies, signed on the way, with `signer`), in
/// order, in batches the server takes whole: at most `MAX_BATCH_ENTRIES` envelopes in a
/// body of at most `MAX_BODY_BYTES`. Lines are read one at a time (`bulk::read_line`),
/// so memory holds one batch whatever the input's size; blank lines are skipped. `landed`
/// is told each batch as the server acknowledges it. Stops at the first line that
/// cannot be sent or batch that is refused: the batches `landed` was told of are in the
/// ledger, nothing after them was sent.
pub fn submit_ndjson(
    client: &Client,
    mut input: impl BufRead,
    mut signer: Option<BodySigner<'_>>,
    mut landed: impl FnMut(&Submitted),
) -> Result<(), ClientError> {
    let mut batch = Batch::default();
    let mut send = |batch: &mut Batch| -> Result<(), ClientError> {
        let sent = std::mem::take(batch);
        let done = client
            .submit(&sent.envelopes)
            .map_err(|e| ClientError::Batch {
                first: sent.first_line,
                last: sent.last_line,
                source: Box::new(e),
            })?;
        landed(&done);
        Ok(())
    };
    let mut line = 0u64;
    while let Some((text, _)) = bulk::read_line(&mut input).map_err(ClientError::Read)? {
        line = line.saturating_add(1);
        let unsent = if batch.envelopes.is_empty() {
            line
        } else {
            batch.first_line
        };
        let refuse = |reason: String| ClientError::Line {
            line,
            unsent,
            reason,
        };
        let text = text.map_err(|bad| refuse(bad.to_string()))?;
        if text.trim().is_empty() {
            continue;
        }
        let value: Value = json::from_str(&text).map_err(|e| refuse(e.to_string()))?;
        let envelope = match signer.as_mut() {
            Some(signer) => signer.sign(value).map_err(refuse)?,
            None => value,
        };
        let envelope = envelope.to_string();
        if Batch::default().bytes_with(envelope.len()) > MAX_BODY_BYTES {
            return Err(refuse(format!(
                "the envelope is {} bytes, more than a request body may hold ({MAX_BODY_BYTES})",
                envelope.len()
            )));
        }
        let full = batch.envelopes.len() == MAX_BATCH_ENTRIES
            || batch.bytes_with(envelope.len()) > MAX_BODY_BYTES;
        if full {
            send(&mut batch)?;
        }
        batch.push(line, envelope);
    }
    if !batch.envelopes.is_empty() {
        send(&mut batch)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_counts_the_bytes_of_the_body_it_sends() {
        let mut batch = Batch::default();
        for (line, envelope) in ["{}", r#"{"a":1}"#, "", r#"{"b":"中"}"#].iter().enumerate() {
            let expected = batch.bytes_with(envelope.len());
            batch.push(line as u64 + 1, envelope.to_string());
            let body = format!("[{}]", batch.envelopes.join(","));
            assert_eq!(expected, body.len(), "{body}");
            assert_eq!(batch.body_bytes, body.len());
        }
        assert_eq!((batch.first_line, batch.last_line), (1, 4));
    }
}
