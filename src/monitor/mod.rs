//! `dcledger monitor` (PROTOCOL §12.2): follows a ledger from the outside, over what it
//! publishes for everyone (C2SP tlog-tiles: `/checkpoint`, hash tiles, entry bundles),
//! with no access to its data directory, one run at a time.
//!
//! Each run verifies the served checkpoint (the log's signature, and a witness quorum
//! when asked), proves it consistent with the checkpoint the previous run kept, and
//! judges every leaf added since as the ledger judged it on acceptance: the leaf's hash
//! against the level-0 tile, each full tile against the level above, a strict signature
//! for the ledger's origin, the schemas and field rules (`ingest::prepare`), the canonical
//! form, acceptance times that never decrease, and each signer key's seq chain. The new
//! leaves, pushed onto the right edge of the tree the previous run kept, must give the
//! checkpoint's root, and so must the tiles.
//!
//! Only once all of that held is the state replaced (`STATE_FILE`, atomically), so a
//! failed run leaves the last good state for the next one: a monitor never moves past
//! something it could not check.

mod remote;
mod state;

use std::path::{Path, PathBuf};

use crate::dates;
use crate::dirlock::{self, DirLock, Tried};
use crate::domain::bodies::Body;
use crate::ingest;
use crate::keys::{PublicKey, parse_public_hex};
use crate::leaves::{self, Leaf};
use crate::limits::MAX_MONITOR_CHECKPOINT_BYTES;
use crate::log::checkpoint::{Checkpoint, NoteVerifier};
use crate::log::cosignature::{self, CosignatureError, CosignatureVerifier};
use crate::log::layout::{TILE_WIDTH, TileId};
use crate::log::merkle::{self, Frontier, Hash, ProofError};
use crate::log::tiles;
use crate::owner_only;
use remote::{Http, Tiles};
pub use state::{STATE_FILE, SeqBreak, SeqChain, State};

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(
        "{url:?} is not an http:// URL (this version reads ledgers over plain HTTP; one \
         reached over TLS is monitored through a proxy)"
    )]
    Url { url: String },
    #[error("--quorum {quorum} is more than the {witnesses} witnesses given")]
    Quorum { quorum: usize, witnesses: usize },
    #[error(
        "monitor state {path} is in use by another monitor process: one process owns a state \
         directory; wait for it, or give this one its own --state"
    )]
    Locked { path: PathBuf },
    #[error("monitor state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("GET {url} failed: {reason}")]
    Fetch { url: String, reason: String },
    #[error("GET {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    // The cause is part of the message, not a `source`: printed as an error chain it
    // would otherwise be said twice.
    #[error("the checkpoint served at {url} does not verify: {cause}")]
    Checkpoint {
        url: String,
        cause: CosignatureError,
    },
    #[error("the checkpoint names the ledger {got:?}, but --vkey is the key of {expected:?}")]
    Origin { got: String, expected: String },
    #[error(
        "the ledger went back: its checkpoint has {new} entries, but this monitor checked a \
         checkpoint of {old} entries before (state in {state})"
    )]
    Rollback { old: u64, new: u64, state: PathBuf },
    #[error(
        "the checkpoint of {new} entries (root {new_root}) is not consistent with the \
         checkpoint of {old} entries (root {old_root}) this monitor checked before: the \
         consistency proof computed from the tiles fails ({reason}); the ledger's history \
         was rewritten, or it shows different histories to different readers"
    )]
    Inconsistent {
        old: u64,
        new: u64,
        old_root: String,
        new_root: String,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Tile { path: String, reason: String },
    #[error(
        "{path} does not hash to its hash in the level above (position {position} of \
         {above}) at tree size {size}"
    )]
    Level {
        path: String,
        above: String,
        position: u64,
        size: u64,
    },
    #[error(
        "leaf {index}: the hash of its bytes in entry bundle {bundle} is not the hash at its \
         place in {tile}"
    )]
    LeafHash {
        index: u64,
        bundle: String,
        tile: String,
    },
    #[error("leaf {index} (entry bundle {bundle}): {reason}")]
    Leaf {
        index: u64,
        bundle: String,
        reason: String,
    },
    #[error(
        "the hash tiles of the tree of {size} entries give root {got}, but the checkpoint's \
         root is {expected}"
    )]
    TilesRoot {
        size: u64,
        got: String,
        expected: String,
    },
    #[error(
        "the leaves of the tree of {size} entries give root {got}, but the checkpoint's root \
         is {expected}"
    )]
    LeavesRoot {
        size: u64,
        got: String,
        expected: String,
    },
    #[error("state file {path}: {reason}; move it away to check the ledger again from leaf 0")]
    State { path: PathBuf, reason: String },
    #[error("writing the state file: {0}")]
    Write(tiles::TileError),
}

/// What one run checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub origin: String,
    /// No state was kept: everything was checked from leaf 0.
    pub first_run: bool,
    /// The size of the checkpoint the previous run kept (0 on a first run).
    pub old_size: u64,
    /// The size of the checkpoint checked now.
    pub new_size: u64,
    pub root: Hash,
    /// Leaves checked in this run (`new_size - old_size`).
    pub new_leaves: u64,
    /// Names of the witnesses whose cosignatures verified.
    pub cosigned_by: Vec<String>,
    /// Signer keys whose seq chain the state follows.
    pub signers: usize,
    /// Hash tiles and entry bundles fetched.
    pub fetched: u64,
}

/// A monitor of one ledger.
pub struct Monitor {
    http: Http,
    log: NoteVerifier,
    witnesses: Vec<CosignatureVerifier>,
    quorum: usize,
    state_dir: PathBuf,
    /// One monitor owns a state directory: two sharing one could each replace a newer
    /// checked state with an older one.
    _lock: DirLock,
}

impl Monitor {
    /// A monitor of the ledger at `url` (its tiles' prefix), whose checkpoints `log`
    /// signs, requiring cosignatures from `quorum` of `witnesses`, keeping its state in
    /// `state_dir`.
    pub fn new(
        url: &str,
        log: NoteVerifier,
        witnesses: Vec<CosignatureVerifier>,
        quorum: usize,
        state_dir: &Path,
    ) -> Result<Monitor, MonitorError> {
        if !url.starts_with("http://") {
            return Err(MonitorError::Url {
                url: url.to_string(),
            });
        }
        if quorum > witnesses.len() {
            return Err(MonitorError::Quorum {
                quorum,
                witnesses: witnesses.len(),
            });
        }
        let io = |source| MonitorError::StateDir {
            path: state_dir.to_path_buf(),
            source,
        };
        owner_only::create_dir_all(state_dir).map_err(io)?;
        let lock = match dirlock::try_lock(state_dir).map_err(io)? {
            Tried::Held(lock) => lock,
            Tried::Busy(_) => {
                return Err(MonitorError::Locked {
                    path: state_dir.to_path_buf(),
                });
            }
        };
        Ok(Monitor {
            http: Http::new(url),
            log,
            witnesses,
            quorum,
            state_dir: state_dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// One run: everything the ledger published since the last good run, checked; the
    /// state replaced only if all of it held.
    pub fn run(&self) -> Result<Checked, MonitorError> {
        let origin = self.log.name().to_string();
        // No state yet: a first run, which checks everything from leaf 0.
        let loaded = State::load(&self.state_dir, &self.log)?;
        let first_run = loaded.is_none();
        let old = loaded.unwrap_or_else(|| State::empty(&origin));

        let url = self.http.url("checkpoint");
        let note_bytes = self
            .http
            .get("checkpoint", MAX_MONITOR_CHECKPOINT_BYTES)?
            .ok_or_else(|| MonitorError::Status {
                url: url.clone(),
                status: 404,
            })?;
        let note = String::from_utf8(note_bytes).map_err(|_| MonitorError::Fetch {
            url: url.clone(),
            reason: "the checkpoint is not UTF-8".into(),
        })?;
        let witnessed =
            cosignature::verify_witnessed(&note, &self.log, &self.witnesses, self.quorum)
                .map_err(|cause| MonitorError::Checkpoint { url, cause })?;
        let cp = witnessed.checkpoint;
        if cp.origin != origin {
            return Err(MonitorError::Origin {
                got: cp.origin,
                expected: origin,
            });
        }
        let old_size = old.checkpoint.size;
        if cp.size < old_size {
            return Err(MonitorError::Rollback {
                old: old_size,
                new: cp.size,
                state: self.state_dir.join(STATE_FILE),
            });
        }

        let mut tiles = Tiles::new(&self.http);
        if old_size > 0 {
            consistent(&mut tiles, &old.checkpoint, &cp)?;
        }
        let mut leaves = Leaves {
            origin: &origin,
            log_key: self.log.public_key(),
            frontier: old.frontier,
            last_accepted: old.last_accepted,
            seqs: old.seqs,
        };
        leaves.check(&mut tiles, old_size, cp.size)?;
        check_levels(&mut tiles, old_size, cp.size)?;
        let from_tiles = merkle::root_at(cp.size, &mut |id| tiles.node(cp.size, id))?;
        if from_tiles != cp.root {
            return Err(MonitorError::TilesRoot {
                size: cp.size,
                got: hex::encode(from_tiles),
                expected: hex::encode(cp.root),
            });
        }
        let from_leaves = leaves.frontier.root();
        if from_leaves != cp.root {
            return Err(MonitorError::LeavesRoot {
                size: cp.size,
                got: hex::encode(from_leaves),
                expected: hex::encode(cp.root),
            });
        }

        let checked = Checked {
            origin: origin.clone(),
            first_run,
            old_size,
            new_size: cp.size,
            root: cp.root,
            new_leaves: cp.size - old_size,
            cosigned_by: witnessed.cosigned_by,
            signers: leaves.seqs.signers(),
            fetched: tiles.fetched,
        };
        State {
            note,
            checkpoint: cp,
            frontier: leaves.frontier,
            last_accepted: leaves.last_accepted,
            seqs: leaves.seqs,
        }
        .save(&self.state_dir)?;
        Ok(checked)
    }
}

/// Proves `new` consistent with `old` from the tiles of `new`'s tree.
fn consistent(
    tiles: &mut Tiles<'_>,
    old: &Checkpoint,
    new: &Checkpoint,
) -> Result<(), MonitorError> {
    let inconsistent = |reason: String| MonitorError::Inconsistent {
        old: old.size,
        new: new.size,
        old_root: hex::encode(old.root),
        new_root: hex::encode(new.root),
        reason,
    };
    let proof = merkle::consistency_proof(old.size, new.size, &mut |id| tiles.node(new.size, id))
        .map_err(|e| match e {
        ProofError::Store(e) => e,
        other => inconsistent(other.to_string()),
    })?;
    merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &proof)
        .map_err(|e| inconsistent(e.to_string()))
}

/// Checks every full tile of levels 1 and up that the tree grew since `old_size` against
/// the level above (level 0's are checked with their leaves): with the leaves checked
/// against level 0, every tile of the new part of the tree is then proven.
fn check_levels(tiles: &mut Tiles<'_>, old_size: u64, size: u64) -> Result<(), MonitorError> {
    for level in 1..tiles::levels(size) {
        for n in tiles::full_tiles(old_size, level)..tiles::full_tiles(size, level) {
            let id = TileId::hashes(level, n, TILE_WIDTH as u16);
            let hashes = tiles.fetch(id)?;
            tiles.check_full_tile(size, id, &hashes)?;
        }
    }
    Ok(())
}

/// What the leaves carry from one to the next.
struct Leaves<'a> {
    origin: &'a str,
    /// The log's key, which the genesis entry must name as its checkpoint key.
    log_key: PublicKey,
    frontier: Frontier,
    last_accepted: Option<String>,
    seqs: SeqChain,
}

impl Leaves<'_> {
    /// Checks leaves `from..size`, one level-0 tile and entry bundle at a time.
    fn check(&mut self, tiles: &mut Tiles<'_>, from: u64, size: u64) -> Result<(), MonitorError> {
        let mut n = from / TILE_WIDTH;
        while n * TILE_WIDTH < size {
            let width = if n < tiles::full_tiles(size, 0) {
                TILE_WIDTH as u16
            } else {
                tiles::partial_width(size, 0)
            };
            let tile = TileId::hashes(0, n, width);
            let bundle = TileId::entries(n, width);
            let hashes = tiles.fetch(tile)?;
            let bundle_leaves = tiles.fetch_bundle(bundle)?;
            let start = n * TILE_WIDTH;
            let first = from.max(start);
            let end = start + u64::from(width);
            let mut new = Vec::new();
            for index in first..end {
                let at = (index - start) as usize;
                let (Some(leaf), Some(hash)) = (bundle_leaves.get(at), hashes.get(at)) else {
                    // Unreachable: both were checked to hold `width` items.
                    return Err(MonitorError::Tile {
                        path: bundle.path(),
                        reason: format!("it has no leaf {index}"),
                    });
                };
                if merkle::leaf_hash(leaf) != *hash {
                    return Err(MonitorError::LeafHash {
                        index,
                        bundle: bundle.path(),
                        tile: tile.path(),
                    });
                }
                new.push((index, leaf.as_slice()));
            }
            let origin = self.origin;
            let judged =
                crate::parallel::map_shares(new, ingest::MIN_PREPARED_PER_THREAD, |share| {
                    let judged = leaves::all_judged(share.iter().map(|&(_, leaf)| leaf), origin);
                    share.iter().map(|&(i, _)| i).zip(judged).collect()
                });
            for (index, alone) in judged {
                let leaf_error = |reason: String| MonitorError::Leaf {
                    index,
                    bundle: bundle.path(),
                    reason,
                };
                let alone = alone.map_err(|e| leaf_error(e.to_string()))?;
                self.take(index, alone).map_err(leaf_error)?;
                let at = (index - start) as usize;
                if let Some(hash) = hashes.get(at) {
                    self.frontier.push(*hash);
                }
            }
            if tile.is_full() {
                tiles.check_full_tile(size, tile, &hashes)?;
            }
            n += 1;
        }
        Ok(())
    }

    /// The checks of a leaf that depend on the leaves before it.
    fn take(&mut self, index: u64, leaf: Leaf<'_>) -> Result<(), String> {
        let entry = &leaf.entry;
        match (&entry.body, index) {
            (Body::LedgerGenesis(g), 0) => {
                if g.origin != self.origin {
                    return Err(format!(
                        "the genesis entry names the ledger {:?}, not {:?}",
                        g.origin, self.origin
                    ));
                }
                if parse_public_hex(&g.checkpoint_key) != Some(self.log_key) {
                    return Err(
                        "the genesis entry's checkpoint_key is not the key of --vkey".to_string(),
                    );
                }
            }
            (_, 0) => return Err("leaf 0 must be the ledger.genesis entry".into()),
            (Body::LedgerGenesis(_), _) => {
                return Err("a second ledger.genesis entry".into());
            }
            _ => {}
        }
        if let Some(previous) = &self.last_accepted
            && dates::parse_instant(previous).is_some_and(|p| leaf.accepted < p)
        {
            return Err(format!(
                "accepted {} is earlier than the previous leaf's {previous}",
                leaf.accepted_text
            ));
        }
        self.seqs
            .take(&entry.signer, entry.seq)
            .map_err(|e| format!("{} entry: {e}", entry.kind.as_str()))?;
        self.last_accepted = Some(leaf.accepted_text.into_owned());
        Ok(())
    }
}
