//! Reading a ledger without its lock (PROTOCOL §11): beside the process that serves it, and
//! on a read-only copy (a backup, a mounted snapshot). Everything read here is in files
//! that are immutable once written or replaced atomically, written before the
//! `checkpoint` file names the size that needs them: the segments (append-only), the
//! tiles (full ones written once, partial ones replaced whole) and the `checkpoint`
//! file. So the checkpoint file's size is a tree whose every leaf and tile is on disk,
//! whatever the writer does next, and nothing here opens derived state, takes a lock or
//! writes a byte into the data directory.
//!
//! The log's questions (the checkpoint, an entry, a proof, `verify`) are answered from
//! those files at once. The projections (for the audit and the reports) live in the
//! writer's derived state, which a reader does not open; `with_projections` derives
//! them again from the segments into a scratch store, the way `reindex` does, which
//! costs time in proportion to the ledger.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::layout;
use super::reader::{Leaves, Reader};
use super::replay::{self, Progress, ReplayState, VerifyReport};
use super::{LedgerError, View, require_ledger};
use crate::ingest::Signatures;
use crate::log::checkpoint::{self, Checkpoint, NoteVerifier};
use crate::log::export::read_checkpoint;
use crate::log::merkle::{self, Frontier, Hash};
use crate::log::segment::{Position, SegmentLog};
use crate::log::tiles::TileStore;
use crate::registry::GenesisRecord;
use crate::store::derived::{APPLIED_KEY, Applied, Derived, Overlay};

/// A ledger's log, read from its files as of its `checkpoint` file.
pub struct Unlocked {
    dir: PathBuf,
    log: SegmentLog,
    tiles: Arc<TileStore>,
    view: View,
}

impl Unlocked {
    /// Reads the `checkpoint` file of the ledger in `dir`; the tree it names is what
    /// every later question is answered about.
    pub fn open(dir: &Path) -> Result<Unlocked, LedgerError> {
        require_ledger(dir)?;
        let (note, cp) = read_checkpoint(dir)?;
        Unlocked::at(dir, note, cp)
    }

    /// `open`, given the `checkpoint` file's note and what it says, read already.
    pub(crate) fn at(dir: &Path, note: String, cp: Checkpoint) -> Result<Unlocked, LedgerError> {
        Ok(Unlocked {
            dir: dir.to_path_buf(),
            log: SegmentLog::open_read_only(dir, cp.size)?,
            tiles: Arc::new(TileStore::new(dir)),
            view: View {
                size: cp.size,
                root: cp.root,
                checkpoint: Arc::from(note),
            },
        })
    }

    /// The checkpoint note, byte for byte as the file holds it.
    pub fn checkpoint(&self) -> &str {
        &self.view.checkpoint
    }

    /// A reader of the log (entries, proofs, tiles, the checkpoint). It holds no
    /// projections: their questions (a facility, a signer, the audit) find nothing,
    /// so ask `with_projections` for those.
    pub fn reader(&self) -> Result<Reader, LedgerError> {
        self.reader_over(Arc::new(Derived::temporary()), Leaves::Scanned)
    }

    fn reader_over(&self, derived: Arc<Derived>, leaves: Leaves) -> Result<Reader, LedgerError> {
        Reader::new(
            &self.dir,
            self.log.dir().to_path_buf(),
            derived,
            self.tiles.clone(),
            Arc::new(RwLock::new(self.view.clone())),
            leaves,
        )
    }

    /// The log's verifier key string (PROTOCOL §5), from the genesis entry (leaf 0).
    pub fn verifier_key(&self) -> Result<String, LedgerError> {
        let genesis = self.genesis()?;
        Ok(checkpoint::verifier_key_string(
            &genesis.origin,
            &genesis.checkpoint_key,
        ))
    }

    fn genesis(&self) -> Result<GenesisRecord, LedgerError> {
        let first = SegmentLog::open_read_only(&self.dir, 1)?;
        let (state, _) = replay_trusted(&first, &Derived::temporary(), |_, _, _| {})?;
        state
            .genesis
            .ok_or_else(|| LedgerError::Verify("leaf 0 is not a genesis entry".into()))
    }

    /// Holds the segments to the last signed checkpoint: the `checkpoint` file's note is
    /// signed by the key genesis names, and the segments' first leaves give its root.
    /// What a rebuild that trusts the segments checks before it trusts them. Each leaf's
    /// hash is handed to `leaf_hashes` as it is worked out, in order from leaf 0; they
    /// are the segments' only if the hold passes.
    pub fn check_segments_against_checkpoint(
        &self,
        mut leaf_hashes: impl FnMut(Hash),
    ) -> Result<(), LedgerError> {
        let genesis = self.genesis()?;
        let verifier = NoteVerifier::new(&genesis.origin, &genesis.checkpoint_key)
            .map_err(|e| LedgerError::Verify(format!("genesis checkpoint key: {e}")))?;
        checkpoint::open(&self.view.checkpoint, &[verifier]).map_err(|e| {
            LedgerError::Verify(format!(
                "the checkpoint file is not a checkpoint this ledger's key signed ({e})"
            ))
        })?;
        // The leaves' hashes prove their bytes: read first without their checksums
        // (most of a scan's work), which are read only to name a damaged record.
        let gives_root =
            |tree: &Frontier| tree.size() == self.view.size && tree.root() == self.view.root;
        if self
            .tree(self.view.size, &mut leaf_hashes)
            .is_ok_and(|tree| gives_root(&tree))
        {
            return Ok(());
        }
        self.tree(0, &mut |_| {})?;
        Err(LedgerError::Verify(format!(
            "the segments' first {} leaves do not give the root of the last signed \
             checkpoint; run `dcledger verify` to find the leaf that differs",
            self.view.size
        )))
    }

    /// The tree of the segments' leaves up to the checkpoint's size (the log is open up
    /// to it), their checksums checked from leaf `proven` on (`SegmentLog::scan_proven`),
    /// each leaf's hash handed to `leaf_hashes` too.
    fn tree(
        &self,
        proven: u64,
        leaf_hashes: &mut impl FnMut(Hash),
    ) -> Result<Frontier, LedgerError> {
        let mut tree = Frontier::new();
        self.log
            .scan_proven(Position::START, proven, |_, _, leaf| {
                let hash = merkle::leaf_hash(leaf);
                tree.push(hash);
                leaf_hashes(hash);
                Ok::<(), LedgerError>(())
            })
            .map(|()| tree)
    }

    /// How many leaves the checkpoint file's note counts.
    pub(crate) fn size(&self) -> u64 {
        self.view.size
    }

    /// Re-checks the log as `Ledger::verify` does: every record, signature and rule
    /// from the segments, every leaf against the tiles, the root and the checkpoint.
    pub fn verify(&self) -> Result<VerifyReport, LedgerError> {
        self.verify_reporting(replay::QUIET)
    }

    /// `verify`, telling `progress` how far it is.
    pub fn verify_reporting(&self, progress: Progress<'_>) -> Result<VerifyReport, LedgerError> {
        replay::verify(&self.log, &self.reader()?, progress)
    }

    /// A reader with the projections, derived again from the segments up to the
    /// checkpoint's size into a scratch store (signatures are not checked again: the
    /// writer checked them, `verify` re-checks them). The replayed tree must give the
    /// checkpoint's root.
    pub fn with_projections(&self) -> Result<Reader, LedgerError> {
        self.with_projections_in(Arc::new(Derived::temporary()))
    }

    /// `with_projections` into a given, empty store: how `benches/store.rs` measures
    /// engines on the ledger's own workload.
    pub fn with_projections_in(&self, scratch: Arc<Derived>) -> Result<Reader, LedgerError> {
        let (_, frontier) = replay_trusted(&self.log, &scratch, |overlay, state, end| {
            overlay.put_encoded(
                APPLIED_KEY.to_vec(),
                &Applied {
                    end,
                    last_accepted: state.last_accepted,
                    checkpoint: self.view.checkpoint.to_string(),
                },
            );
        })?;
        if frontier.size() != self.view.size || frontier.root() != self.view.root {
            return Err(LedgerError::Verify(format!(
                "the segments' first {} leaves do not give the root the checkpoint file names; \
                 run `dcledger verify`",
                self.view.size
            )));
        }
        self.reader_over(scratch, Leaves::Located)
    }
}

/// Replays `log` from leaf 0 into `target` without checking signatures again (the
/// writer checked them; `verify` re-checks them), `on_chunk` adding its writes to each
/// chunk; returns the state where the replay ended and the tree of its leaves.
fn replay_trusted(
    log: &SegmentLog,
    target: &Derived,
    mut on_chunk: impl FnMut(&mut Overlay<'_>, &ReplayState, Position) + Send,
) -> Result<(ReplayState, Frontier), LedgerError> {
    let mut state = ReplayState::from_start();
    let mut frontier = Frontier::new();
    replay::replay(
        log,
        target,
        Position::START,
        &mut state,
        Signatures::Trust,
        replay::NOTHING_PROVEN,
        |overlay, state, end, hashes| {
            layout::grow(&mut frontier, end.index - hashes.len() as u64, hashes);
            on_chunk(overlay, state, end);
            Ok(())
        },
    )?;
    Ok((state, frontier))
}
