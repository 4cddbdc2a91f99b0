//! The ledger's side of the tiles: bringing them to the size derived state holds when a
//! ledger opens (resumed from the right edge, or rebuilt from the segments), and the
//! `checkpoint` file beside them.

use std::path::Path;

use super::LedgerError;
use crate::limits::REINDEX_CHUNK_ENTRIES;
use crate::log::checkpoint;
use crate::log::export::CHECKPOINT_FILE;
use crate::log::merkle::{self, Frontier, Hash};
use crate::log::segment::{Position, SegmentLog};
use crate::log::tiles::{Durable, Syncs, TileError, TileStore, TileWriter, write_atomically};

impl From<TileError> for LedgerError {
    fn from(e: TileError) -> Self {
        LedgerError::Tiles(e)
    }
}

/// The root the ledger's own latest checkpoint names, or the empty tree's root for a
/// ledger that has signed none (no leaves yet).
fn checkpoint_root(note: &str, size: u64) -> Result<Hash, LedgerError> {
    if note.is_empty() && size == 0 {
        return Ok(merkle::empty_root());
    }
    let cp = checkpoint::own_note_body(note)
        .map_err(|e| LedgerError::Verify(format!("the recorded checkpoint is unreadable: {e}")))?;
    if cp.size != size {
        return Err(LedgerError::Verify(format!(
            "derived state records {size} leaves but its checkpoint names {}; run `dcledger \
             reindex`",
            cp.size
        )));
    }
    Ok(cp.root)
}

/// The tile writer and the in-memory tree of the ledger whose derived state holds
/// `size` leaves and signed `note` for them. The tiles on disk are resumed if their
/// right edge is whole and gives the checkpoint's root; otherwise (deleted, damaged,
/// lost to a power cut) they are rebuilt from the segments, hashing every leaf.
pub(crate) fn open_tiles(
    store: &TileStore,
    log: &SegmentLog,
    size: u64,
    note: &str,
) -> Result<(TileWriter, Frontier), LedgerError> {
    let root = checkpoint_root(note, size)?;
    match TileWriter::resume(store, size) {
        Ok(writer) => {
            let frontier = writer.frontier();
            if frontier.root() == root {
                return Ok((writer, frontier));
            }
            tracing::warn!("the tiles do not give the checkpoint's root: rebuilding them");
        }
        Err(e) => tracing::warn!("the tiles cannot be resumed ({e}): rebuilding them"),
    }
    rebuild(store, log, size, root)
}

/// Writes the tiles again from the leaves `0..size` of the segments, over those on disk
/// (`TileWriter::over_earlier`: the right ones kept, the rest replaced or removed).
fn rebuild(
    store: &TileStore,
    log: &SegmentLog,
    size: u64,
    root: Hash,
) -> Result<(TileWriter, Frontier), LedgerError> {
    let mut writer = TileWriter::over_earlier(store);
    let mut hashes = Vec::with_capacity(REINDEX_CHUNK_ENTRIES);
    log.scan(
        Position::START,
        |index, _, leaf| -> Result<(), LedgerError> {
            if index < size {
                hashes.push(merkle::leaf_hash(leaf));
            }
            if hashes.len() >= REINDEX_CHUNK_ENTRIES {
                writer.push(&hashes)?;
                hashes.clear();
            }
            Ok(())
        },
    )?;
    writer.push(&hashes)?;
    // Every full tile durable before the right edge that `resume` starts from.
    writer.set_syncs(Syncs::EachTile)?;
    writer.write_partials()?;
    writer.prune()?;
    writer.finish_over_earlier()?;
    // What the failed resume read from tiles now replaced must not be served from memory.
    store.clear_cache();
    let frontier = writer.frontier();
    if frontier.size() != size || frontier.root() != root {
        return Err(LedgerError::Verify(format!(
            "the segments' first {size} leaves do not give the root of the recorded \
             checkpoint; run `dcledger verify`"
        )));
    }
    Ok((writer, frontier))
}

/// Replaces the data directory's `checkpoint` file with `note` (atomically: readers see
/// the old note or the new one), unless it holds it already.
pub(crate) fn write_checkpoint_file(dir: &Path, note: &str) -> Result<(), LedgerError> {
    if note.is_empty() {
        return Ok(());
    }
    let path = dir.join(CHECKPOINT_FILE);
    if std::fs::read(&path).is_ok_and(|held| held == note.as_bytes()) {
        return Ok(());
    }
    // Its bytes are synced (a torn note is never served); the rename need not be: the
    // file is rewritten from derived state on open.
    Ok(write_atomically(&path, note.as_bytes(), Durable::Content)?)
}
