//! What a monitor keeps between runs (`STATE_FILE`, JSON): the last checkpoint it
//! checked, the right edge of that tree, the last acceptance time, and each signer key's
//! seq chain; written only after a run checked everything, read back checked whole.

use std::collections::BTreeMap;
use std::path::Path;

use super::MonitorError;
use crate::dates;
use crate::keys::{PublicKey, parse_public_hex};
use crate::limits::{MAX_MONITOR_STATE_BYTES, MAX_SAFE_INTEGER};
use crate::log::checkpoint::{self, Checkpoint, NoteVerifier};
use crate::log::merkle::{self, Frontier, HASH_LEN, Hash};
use crate::log::tiles::{self, Durable};

/// The file in the state directory that holds what the last good run established.
pub const STATE_FILE: &str = "monitor.json";

/// The state file's format; another is refused, never guessed at.
const STATE_VERSION: u32 = 1;

/// Each signer key's seq chain (PROTOCOL §3.1): its entries carry seq 1, 2, 3… in ledger
/// order. Holds, per key seen, the seq its next entry must carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeqChain {
    next: BTreeMap<PublicKey, u64>,
}

/// An entry whose seq is not the next of its signer's chain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "signer {signer} gives seq {got}, but its entries so far make {expected} the next one (each \
     key's seqs are 1, 2, 3… in ledger order)"
)]
pub struct SeqBreak {
    pub signer: String,
    pub expected: u64,
    pub got: u64,
}

impl SeqChain {
    /// The seq `signer`'s next entry must carry.
    pub fn expected(&self, signer: &PublicKey) -> u64 {
        self.next.get(signer).copied().unwrap_or(1)
    }

    /// Takes `signer`'s next entry, with `seq`: the chain moves on only if it is the
    /// expected one.
    pub fn take(&mut self, signer: &PublicKey, seq: u64) -> Result<(), SeqBreak> {
        let expected = self.expected(signer);
        // The schema bounds seq by 2^53 - 1, so the next one always fits.
        match expected.checked_add(1) {
            Some(next) if seq == expected => {
                self.next.insert(*signer, next);
                Ok(())
            }
            _ => Err(SeqBreak {
                signer: hex::encode(signer),
                expected,
                got: seq,
            }),
        }
    }

    /// Signer keys seen.
    pub fn signers(&self) -> usize {
        self.next.len()
    }
}

/// What a good run leaves for the next: the checkpoint it checked (as served, with its
/// cosignatures), the right edge of that tree, the last acceptance time, and the seq
/// chains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    pub note: String,
    pub checkpoint: Checkpoint,
    pub frontier: Frontier,
    /// The last leaf's `accepted`, as written; `None` for the empty tree.
    pub last_accepted: Option<String>,
    pub seqs: SeqChain,
}

/// The state file: JSON, hashes and keys in lowercase hex. Its size is one checkpoint, at
/// most 64 hashes, and a key and a number per signer.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    checkpoint: String,
    size: u64,
    root: String,
    frontier: Vec<String>,
    last_accepted: Option<String>,
    next_seq: BTreeMap<String, u64>,
}

impl State {
    /// Before leaf 0 of the ledger `origin`.
    pub(super) fn empty(origin: &str) -> State {
        State {
            note: String::new(),
            checkpoint: Checkpoint {
                origin: origin.to_string(),
                size: 0,
                root: merkle::empty_root(),
            },
            frontier: Frontier::new(),
            last_accepted: None,
            seqs: SeqChain::default(),
        }
    }

    /// The state file's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        let file = StateFile {
            version: STATE_VERSION,
            checkpoint: self.note.clone(),
            size: self.checkpoint.size,
            root: hex::encode(self.checkpoint.root),
            frontier: self.frontier.hashes().iter().map(hex::encode).collect(),
            last_accepted: self.last_accepted.clone(),
            next_seq: self
                .seqs
                .next
                .iter()
                .map(|(k, v)| (hex::encode(k), *v))
                .collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Reads a state file back, checking it whole: the checkpoint verifies with `log`'s
    /// key, and the size, root and right edge agree with it.
    pub fn decode(bytes: &[u8], log: &NoteVerifier) -> Result<State, String> {
        let file: StateFile =
            serde_json::from_slice(bytes).map_err(|e| format!("not a monitor state: {e}"))?;
        if file.version != STATE_VERSION {
            return Err(format!(
                "format version {} (this build reads {STATE_VERSION})",
                file.version
            ));
        }
        let checkpoint = checkpoint::open(&file.checkpoint, std::slice::from_ref(log))
            .map_err(|e| format!("its checkpoint does not verify with --vkey: {e}"))?;
        let root = hex_hash(&file.root).ok_or("its root is not 64 hex characters")?;
        if checkpoint.size != file.size || checkpoint.root != root {
            return Err("its size and root are not its checkpoint's".into());
        }
        let hashes = file
            .frontier
            .iter()
            .map(|h| hex_hash(h))
            .collect::<Option<Vec<_>>>()
            .ok_or("a frontier hash is not 64 hex characters")?;
        let frontier = Frontier::from_parts(file.size, hashes).map_err(|e| e.to_string())?;
        if frontier.root() != root {
            return Err("its frontier does not give its root".into());
        }
        if let Some(accepted) = &file.last_accepted
            && dates::parse_instant(accepted).is_none()
        {
            return Err(format!("last_accepted {accepted:?} is not an instant"));
        }
        if file.last_accepted.is_none() != (file.size == 0) {
            return Err("last_accepted must be given exactly when the tree has leaves".into());
        }
        let mut next = BTreeMap::new();
        for (key, seq) in file.next_seq {
            let key = parse_public_hex(&key)
                .ok_or_else(|| format!("next_seq key {key:?} is not 64 lowercase hex"))?;
            // A key in the chain has had an entry, whose seq was at most 2^53 - 1.
            if !(2..=MAX_SAFE_INTEGER as u64 + 1).contains(&seq) {
                return Err(format!("next_seq {seq} is out of range"));
            }
            next.insert(key, seq);
        }
        Ok(State {
            note: file.checkpoint,
            checkpoint,
            frontier,
            last_accepted: file.last_accepted,
            seqs: SeqChain { next },
        })
    }

    /// The state kept in `dir`, or `None` if there is none yet.
    pub fn load(dir: &Path, log: &NoteVerifier) -> Result<Option<State>, MonitorError> {
        let path = dir.join(STATE_FILE);
        let bad = |reason: String| MonitorError::State {
            path: path.clone(),
            reason,
        };
        let bytes = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(bad(e.to_string())),
            Ok(meta) if meta.len() > MAX_MONITOR_STATE_BYTES => {
                return Err(bad(format!(
                    "{} bytes, over the {MAX_MONITOR_STATE_BYTES}-byte limit",
                    meta.len()
                )));
            }
            Ok(_) => std::fs::read(&path).map_err(|e| bad(e.to_string()))?,
        };
        State::decode(&bytes, log).map(Some).map_err(bad)
    }

    /// Replaces the state in `dir` atomically and durably.
    pub fn save(&self, dir: &Path) -> Result<(), MonitorError> {
        let path = dir.join(STATE_FILE);
        let bytes = self.encode().map_err(|reason| MonitorError::State {
            path: path.clone(),
            reason,
        })?;
        tiles::write_atomically(&path, &bytes, Durable::ContentAndName)
            .map_err(MonitorError::Write)?;
        Ok(())
    }
}

fn hex_hash(text: &str) -> Option<Hash> {
    crate::keys::parse_lower_hex::<HASH_LEN>(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn key(seed: u8) -> PublicKey {
        SigningKey::from_bytes(&[seed; 32])
            .verifying_key()
            .to_bytes()
    }

    #[test]
    fn each_key_counts_from_one_in_ledger_order() {
        let (a, b) = (key(1), key(2));
        let mut chain = SeqChain::default();
        assert_eq!(chain.take(&a, 1), Ok(()));
        assert_eq!(chain.take(&b, 1), Ok(()));
        assert_eq!(chain.take(&a, 2), Ok(()));
        // A gap, a replay and a restart are each refused, naming what was expected,
        // and leave the chain where it was.
        for got in [4, 2, 1] {
            let e = chain.take(&a, got).unwrap_err();
            assert_eq!((e.expected, e.got), (3, got));
            assert_eq!(e.signer, hex::encode(a));
        }
        assert_eq!(chain.take(&b, 3).unwrap_err().expected, 2);
        // A key never seen must start at 1.
        assert_eq!(chain.take(&key(3), 2).unwrap_err().expected, 1);
        assert_eq!(chain.take(&a, 3), Ok(()));
        assert_eq!(chain.expected(&a), 4);
        assert_eq!(chain.signers(), 2);
    }

    fn log() -> (SigningKey, NoteVerifier) {
        let key = SigningKey::from_bytes(&[9; 32]);
        let verifier =
            NoteVerifier::new("monitor.test/log", &key.verifying_key().to_bytes()).unwrap();
        (key, verifier)
    }

    fn state_of(leaves: u64, key: &SigningKey) -> State {
        let mut frontier = Frontier::new();
        for i in 0..leaves {
            frontier.push(merkle::leaf_hash(&i.to_be_bytes()));
        }
        let checkpoint = Checkpoint {
            origin: "monitor.test/log".into(),
            size: leaves,
            root: frontier.root(),
        };
        let mut seqs = SeqChain::default();
        for seq in 1..=leaves {
            seqs.take(&[7; 32], seq).unwrap();
        }
        State {
            note: checkpoint.sign(key),
            checkpoint,
            frontier,
            last_accepted: Some("2025-01-01T00:00:00Z".into()),
            seqs,
        }
    }

    #[test]
    fn the_state_file_round_trips_and_is_checked_whole() {
        let (log_key, log) = log();
        let state = state_of(1000, &log_key);
        let bytes = state.encode().unwrap();
        assert_eq!(State::decode(&bytes, &log), Ok(state.clone()));

        let dir = tempfile::tempdir().unwrap();
        assert_eq!(State::load(dir.path(), &log).unwrap(), None);
        state.save(dir.path()).unwrap();
        assert_eq!(State::load(dir.path(), &log).unwrap(), Some(state.clone()));

        // Another log's key, a frontier hash changed, a size changed, a seq of 0, an
        // unknown field, another version: each refused.
        let other = NoteVerifier::new("monitor.test/log", &key(8)).unwrap();
        assert!(
            State::decode(&bytes, &other)
                .unwrap_err()
                .contains("--vkey")
        );
        let text = String::from_utf8(bytes).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        type Edit = fn(&mut serde_json::Value);
        let edits: [(&str, Edit); 6] = [
            ("frontier", |v| v["frontier"][0] = "00".repeat(32).into()),
            ("size", |v| v["size"] = 999.into()),
            ("next_seq", |v| {
                v["next_seq"][hex::encode([7u8; 32])] = 0.into();
            }),
            ("unknown", |v| v["extra"] = 1.into()),
            ("version", |v| v["version"] = 2.into()),
            ("accepted", |v| v["last_accepted"] = "yesterday".into()),
        ];
        for (what, edit) in edits {
            let mut v = value.clone();
            edit(&mut v);
            assert!(
                State::decode(v.to_string().as_bytes(), &log).is_err(),
                "{what} accepted"
            );
        }
    }
}
