//! Entry bundles, and `dcledger export tiles`: the ledger as a static tlog-tiles tree
//! (checkpoint, hash tiles, entry bundles) that any web server, object store or CDN can
//! serve.
//!
//! An export reads only files that are immutable or replaced atomically (the
//! `checkpoint` file, `tiles/`, the segments), so it takes no lock and can run beside a
//! server. It exports the tree the `checkpoint` file names: the tiles for that size
//! were written before the file was. Run again later into the same directory, it
//! writes only what is new (full tiles and bundles present already are left alone: they
//! never change), syncs the file system, and replaces the checkpoint last, so a reader
//! of the export never sees a checkpoint whose tiles are not there.

use std::path::{Path, PathBuf};

use super::checkpoint::{self, CheckpointError};
use super::layout::{TILE_WIDTH, TileId};
use super::merkle::{self, NodeId};
use super::tiles::{self, Durable, TileError, TileStore, write_atomically};
use crate::log::segment::{self, SEGMENTS_DIR, SegmentError};

/// The data directory's copy of the latest checkpoint note, replaced atomically after
/// each commit; also the name of the checkpoint in an export (`<prefix>/checkpoint`).
pub const CHECKPOINT_FILE: &str = "checkpoint";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Tile(#[from] TileError),
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} does not exist: this is not a ledger's data directory, or one not opened to \
         write since checkpoint files came in (serve, append or reindex writes it)"
    )]
    NoCheckpoint { path: PathBuf },
    #[error("the checkpoint file {path} is unreadable: {source}")]
    BadCheckpoint {
        path: PathBuf,
        source: CheckpointError,
    },
    #[error("leaf {index} does not hash to the level-0 tile's hash for it; run `dcledger verify`")]
    LeafMismatch { index: u64 },
}

/// What an export did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    /// The size of the tree exported (the checkpoint's).
    pub size: u64,
    /// Tiles and bundles written by this run.
    pub written: u64,
    /// Tiles and bundles already present, left as they were.
    pub kept: u64,
}

/// Appends one leaf to an entry bundle: big-endian u16 length, then the bytes (a leaf
/// is at most 65,535 bytes, PROTOCOL §4).
pub fn push_bundle_entry(bundle: &mut Vec<u8>, leaf: &[u8]) {
    let len = u16::try_from(leaf.len()).unwrap_or_else(|_| {
        unreachable!(
            "a leaf of {} bytes was stored: the limit is 65,535",
            leaf.len()
        )
    });
    bundle.extend_from_slice(&len.to_be_bytes());
    bundle.extend_from_slice(leaf);
}

/// The latest checkpoint note of the data directory `dir` and the tree it names.
pub fn read_checkpoint(dir: &Path) -> Result<(String, checkpoint::Checkpoint), ExportError> {
    let path = dir.join(CHECKPOINT_FILE);
    let note = match std::fs::read_to_string(&path) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ExportError::NoCheckpoint { path });
        }
        Err(source) => return Err(ExportError::Io { path, source }),
    };
    let tree = checkpoint::own_note_body(&note).map_err(|source| ExportError::BadCheckpoint {
        path: path.clone(),
        source,
    })?;
    Ok((note, tree))
}

/// Writes (or brings up to date) the static tree of the ledger in `data` under `out`.
/// `progress` is told, as bundles are written, how many leaves are done of how many.
pub fn export_tiles(
    data: &Path,
    out: &Path,
    progress: &dyn Fn(u64, u64),
) -> Result<Exported, ExportError> {
    let (note, tree) = read_checkpoint(data)?;
    let size = tree.size;
    std::fs::create_dir_all(out).map_err(|source| ExportError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let store = TileStore::new(data);
    let mut done = Exported {
        size,
        written: 0,
        kept: 0,
    };
    for id in tiles::tiles_of(size) {
        let dest = out.join(id.path());
        if dest.exists() {
            done.kept += 1;
            continue;
        }
        let bytes = store
            .read_hashes(id)?
            .ok_or_else(|| TileError::Missing { path: id.path() })?;
        write_atomically(&dest, &bytes, Durable::Later)?;
        done.written += 1;
    }
    let wanted: Vec<TileId> = tiles::bundles_of(size)
        .filter(|id| !out.join(id.path()).exists())
        .collect();
    done.kept += tiles::bundles_of(size).count() as u64 - wanted.len() as u64;
    if let Some(first) = wanted.first() {
        let from = first.index * TILE_WIDTH;
        let mut bundle = Vec::new();
        segment::read_leaves(&data.join(SEGMENTS_DIR), from, size, |index, leaf| {
            // The export is checked against the tiles it sits beside.
            if merkle::leaf_hash(leaf) != store.node(size, NodeId { level: 0, index })? {
                return Err(ExportError::LeafMismatch { index });
            }
            push_bundle_entry(&mut bundle, leaf);
            let width = index % TILE_WIDTH + 1;
            if width == TILE_WIDTH || index + 1 == size {
                progress(index + 1, size);
                let id = TileId::entries(index / TILE_WIDTH, width as u16);
                if wanted.binary_search(&id).is_ok() {
                    write_atomically(&out.join(id.path()), &bundle, Durable::Later)?;
                    done.written += 1;
                }
                bundle.clear();
            }
            Ok(())
        })?;
    }
    // Every tile and bundle durable before the checkpoint that names them.
    tiles::sync_file_system(out).map_err(|source| ExportError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    write_atomically(
        &out.join(CHECKPOINT_FILE),
        note.as_bytes(),
        Durable::ContentAndName,
    )?;
    Ok(done)
}
