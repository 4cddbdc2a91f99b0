//! A witness (PROTOCOL §12.2, C2SP tlog-witness): it remembers the latest checkpoint it
//! cosigned for each log it trusts, and cosigns a new one only if a consistency proof
//! shows it extends that one. A log that showed two histories to two readers would need
//! a witness to cosign both, which it never does: so a quorum of witnesses' cosignatures
//! makes a split view detectable.
//!
//! State is one file per origin under `DIR/logs/`, the text of the latest cosigned
//! checkpoint, replaced atomically and synced (file and directory) before a cosignature
//! is returned. Checking a request against it and replacing it is one step under a lock,
//! so two requests cannot both pass against the same old state (C2SP tlog-witness's
//! rollback race). One process owns a state directory: it holds a lock on the directory
//! for its life.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use sha2::{Digest as _, Sha256};

use crate::dirlock::{self, DirLock, Tried};
use crate::log::checkpoint::{self, Checkpoint, CheckpointError, NoteVerifier};
use crate::log::cosignature::{AddCheckpoint, Cosigner};
use crate::log::merkle;
use crate::log::tiles::{Durable, TileError, write_atomically};

/// Why a witness could not run or answer (its own trouble, never the client's).
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("witness state {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "witness state {0} is in use by another witness process: one process owns a state directory"
    )]
    Locked(PathBuf),
    #[error(
        "witness state {path} is damaged ({reason}); it holds what this witness promised, so it is never guessed: restore it from a backup"
    )]
    Damaged { path: PathBuf, reason: String },
    #[error("writing witness state: {0}")]
    Write(#[from] TileError),
    #[error("the witness trusts no log: give at least one --log VKEY")]
    NoLogs,
}

/// What a witness refuses, and why; each is one HTTP status of C2SP tlog-witness.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 400: the body cannot be read, or the old size is beyond the checkpoint's.
    #[error("{0}")]
    BadRequest(String),
    /// 403: no signature of a trusted key for the origin verifies.
    #[error("{0}")]
    Forbidden(String),
    /// 404: the origin is not a log this witness trusts.
    #[error("this witness does not witness the log {0:?}")]
    UnknownLog(String),
    /// 409: the old size is not the size last cosigned (given), or a checkpoint of the
    /// same size has another root.
    #[error("{reason}")]
    Conflict { size: u64, reason: String },
    /// 422: the consistency proof does not prove the checkpoint extends the last one.
    #[error("{0}")]
    Unprocessable(String),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::Forbidden(_) => 403,
            Refusal::UnknownLog(_) => 404,
            Refusal::Conflict { .. } => 409,
            Refusal::Unprocessable(_) => 422,
        }
    }
}

pub struct Witness {
    cosigner: Cosigner,
    logs: Vec<NoteVerifier>,
    dir: PathBuf,
    /// Checks and replacements of state, one at a time.
    state: Mutex<()>,
    _lock: DirLock,
}

impl Witness {
    /// The witness `cosigner` over the state in `dir` (created if missing), for the logs
    /// whose verifier keys are `logs` (a log's key name is its origin).
    pub fn open(
        dir: &Path,
        cosigner: Cosigner,
        logs: Vec<NoteVerifier>,
    ) -> Result<Witness, WitnessError> {
        if logs.is_empty() {
            return Err(WitnessError::NoLogs);
        }
        let io = |source| WitnessError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir.join("logs")).map_err(io)?;
        let lock = match dirlock::try_lock(dir).map_err(io)? {
            Tried::Held(lock) => lock,
            Tried::Busy(_) => return Err(WitnessError::Locked(dir.to_path_buf())),
        };
        Ok(Witness {
            cosigner,
            logs,
            dir: dir.to_path_buf(),
            state: Mutex::new(()),
            _lock: lock,
        })
    }

    pub fn cosigner(&self) -> &Cosigner {
        &self.cosigner
    }

    /// Judges an `add-checkpoint` request at time `now` (POSIX seconds): the cosignature
    /// line to answer with, after the new state is durable, or the refusal.
    pub fn add_checkpoint(
        &self,
        request: &AddCheckpoint,
        now: u64,
    ) -> Result<Result<String, Refusal>, WitnessError> {
        let origin = request.note.split('\n').next().unwrap_or_default();
        let trusted: Vec<NoteVerifier> = self
            .logs
            .iter()
            .filter(|v| v.name() == origin)
            .cloned()
            .collect();
        if trusted.is_empty() {
            return Ok(Err(Refusal::UnknownLog(checkpoint::excerpt(origin))));
        }
        let new = match checkpoint::open(&request.note, &trusted) {
            Ok(c) => c,
            Err(
                e @ (CheckpointError::NoKnownSignature | CheckpointError::InvalidSignature { .. }),
            ) => {
                return Ok(Err(Refusal::Forbidden(e.to_string())));
            }
            Err(e) => return Ok(Err(Refusal::BadRequest(e.to_string()))),
        };
        if request.old_size > new.size {
            return Ok(Err(Refusal::BadRequest(format!(
                "old size {} is beyond the checkpoint's size {}",
                request.old_size, new.size
            ))));
        }
        // The lock guards no data of its own: a panic while held leaves the files as
        // they were (replaced atomically or not at all).
        let _turn = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let last = self.latest(origin)?;
        let last_size = last.as_ref().map_or(0, |c| c.size);
        if request.old_size != last_size {
            return Ok(Err(Refusal::Conflict {
                size: last_size,
                reason: format!(
                    "the last checkpoint this witness cosigned for {origin} has size {last_size}, not {}",
                    request.old_size
                ),
            }));
        }
        match &last {
            None if !request.proof.is_empty() => {
                return Ok(Err(Refusal::Unprocessable(
                    "a consistency proof from size 0 must be empty".into(),
                )));
            }
            None => {}
            Some(last) if last.size == new.size => {
                if last.root != new.root {
                    return Ok(Err(Refusal::Conflict {
                        size: last.size,
                        reason: format!(
                            "this witness cosigned another tree of size {} for {origin}: the log has forked",
                            last.size
                        ),
                    }));
                }
                if !request.proof.is_empty() {
                    return Ok(Err(Refusal::Unprocessable(
                        "a consistency proof between equal sizes must be empty".into(),
                    )));
                }
            }
            Some(last) => {
                if let Err(e) = merkle::verify_consistency(
                    last.size,
                    new.size,
                    &last.root,
                    &new.root,
                    &request.proof,
                ) {
                    tracing::warn!(
                        origin,
                        from = last.size,
                        to = new.size,
                        "refused an inconsistent checkpoint (evidence of a misbehaving log?): {e}"
                    );
                    return Ok(Err(Refusal::Unprocessable(format!(
                        "the consistency proof from size {} to {} does not verify: {e}",
                        last.size, new.size
                    ))));
                }
            }
        }
        if last.as_ref() != Some(&new) {
            write_atomically(
                &self.state_path(origin),
                new.body().as_bytes(),
                Durable::ContentAndName,
            )?;
        }
        Ok(Ok(self.cosigner.cosign(&new, now)))
    }

    /// The last checkpoint this witness cosigned for `origin`, if any.
    pub fn latest(&self, origin: &str) -> Result<Option<Checkpoint>, WitnessError> {
        let path = self.state_path(origin);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(WitnessError::Io { path, source }),
        };
        let damaged = |reason: String| WitnessError::Damaged {
            path: path.clone(),
            reason,
        };
        let held = Checkpoint::parse_body(&text).map_err(|e| damaged(e.to_string()))?;
        if held.origin != origin {
            return Err(damaged(format!("it names the log {:?}", held.origin)));
        }
        Ok(Some(held))
    }

    /// An origin's state file: named by a hash, since an origin may hold '/' and ':'.
    fn state_path(&self, origin: &str) -> PathBuf {
        let digest = Sha256::digest(origin.as_bytes());
        self.dir.join("logs").join(hex::encode(&digest[..16]))
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::log::cosignature::CosignatureVerifier;
    use crate::log::merkle::Hash;

    const ORIGIN: &str = "example.com/log";

    /// The hashes of `n` leaves, and a node of their tree: a complete subtree, hashed
    /// from its leaves.
    fn leaves(n: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| merkle::leaf_hash(&i.to_be_bytes()))
            .collect()
    }

    fn subtree(hashes: &[Hash]) -> Hash {
        match hashes {
            [one] => *one,
            _ => {
                let (left, right) = hashes.split_at(hashes.len() / 2);
                merkle::node_hash(&subtree(left), &subtree(right))
            }
        }
    }

    fn node(hashes: &[Hash]) -> impl FnMut(merkle::NodeId) -> Result<Hash, ()> + '_ {
        |id| {
            let first = usize::try_from(id.first_leaf()).unwrap();
            let count = usize::try_from(id.leaf_count()).unwrap();
            Ok(subtree(&hashes[first..first + count]))
        }
    }

    fn tree_root(n: u64) -> Hash {
        merkle::root_at(n, &mut node(&leaves(n))).unwrap()
    }

    fn proof(from: u64, to: u64) -> Vec<Hash> {
        merkle::consistency_proof(from, to, &mut node(&leaves(to))).unwrap()
    }

    fn note(size: u64, root: Hash) -> String {
        Checkpoint {
            origin: ORIGIN.into(),
            size,
            root,
        }
        .sign(&SigningKey::from_bytes(&[1; 32]))
    }

    fn witness(dir: &Path) -> Witness {
        let log = NoteVerifier::new(
            ORIGIN,
            SigningKey::from_bytes(&[1; 32]).verifying_key().as_bytes(),
        )
        .unwrap();
        let cosigner =
            Cosigner::new("witness.example/w", SigningKey::from_bytes(&[9; 32])).unwrap();
        Witness::open(dir, cosigner, vec![log]).unwrap()
    }

    fn add(w: &Witness, old: u64, proof: Vec<Hash>, note: String) -> Result<String, Refusal> {
        w.add_checkpoint(
            &AddCheckpoint {
                old_size: old,
                proof,
                note,
            },
            1_700_000_000,
        )
        .unwrap()
    }

    /// Every answer of C2SP tlog-witness's `add-checkpoint`, in the order a log meets them.
    #[test]
    fn cosigns_only_consistent_growth_and_says_why_not() {
        let dir = tempfile::tempdir().unwrap();
        let w = witness(dir.path());
        let vkey = CosignatureVerifier::parse(&w.cosigner().verifier_key()).unwrap();
        // First sight: from 0, with an empty proof.
        let line = add(&w, 0, vec![], note(5, tree_root(5))).unwrap();
        let text = Checkpoint {
            origin: ORIGIN.into(),
            size: 5,
            root: tree_root(5),
        }
        .body();
        assert_eq!(
            vkey.check_line(&text, line.trim_end()).unwrap(),
            Some(1_700_000_000)
        );
        // Stale: the client thinks the witness is at 0; the 409 names 5.
        assert!(matches!(
            add(&w, 0, vec![], note(8, tree_root(8))),
            Err(Refusal::Conflict { size: 5, .. })
        ));
        // Growth with a good proof.
        add(&w, 5, proof(5, 8), note(8, tree_root(8))).unwrap();
        // A proof that does not prove: 422, and the state stays at 8.
        let mut bad = proof(8, 12);
        bad[0][0] ^= 1;
        assert_eq!(
            add(&w, 8, bad, note(12, tree_root(12)))
                .unwrap_err()
                .status(),
            422
        );
        assert_eq!(w.latest(ORIGIN).unwrap().unwrap().size, 8);
        // Another tree of the same size: a fork, 409.
        assert!(matches!(
            add(&w, 8, vec![], note(8, [0xee; 32])),
            Err(Refusal::Conflict { size: 8, .. })
        ));
        // The same tree again is cosigned again.
        add(&w, 8, vec![], note(8, tree_root(8))).unwrap();
        // Old size beyond the checkpoint: 400.
        assert_eq!(
            add(&w, 9, vec![], note(8, tree_root(8)))
                .unwrap_err()
                .status(),
            400
        );
        // An unknown origin: 404; a known origin signed by another key: 403.
        let stranger = Checkpoint {
            origin: "other.example/log".into(),
            size: 1,
            root: [1; 32],
        }
        .sign(&SigningKey::from_bytes(&[1; 32]));
        assert_eq!(add(&w, 0, vec![], stranger).unwrap_err().status(), 404);
        let forged = Checkpoint {
            origin: ORIGIN.into(),
            size: 9,
            root: [1; 32],
        }
        .sign(&SigningKey::from_bytes(&[2; 32]));
        assert_eq!(add(&w, 8, vec![], forged).unwrap_err().status(), 403);
        // The state survives the process: a new witness over the same directory.
        drop(w);
        let again = witness(dir.path());
        assert_eq!(again.latest(ORIGIN).unwrap().unwrap().size, 8);
        // And one process at a time owns it.
        let log = NoteVerifier::new(
            ORIGIN,
            SigningKey::from_bytes(&[1; 32]).verifying_key().as_bytes(),
        )
        .unwrap();
        let cosigner = Cosigner::new("w2", SigningKey::from_bytes(&[3; 32])).unwrap();
        assert!(matches!(
            Witness::open(dir.path(), cosigner, vec![log]),
            Err(WitnessError::Locked(_))
        ));
    }
}
