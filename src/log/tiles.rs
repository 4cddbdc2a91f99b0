//! The tree stored as C2SP tlog-tiles hash tiles (height 8), in `DIR/tiles/` under the
//! same relative paths as their URLs (`log::layout`), so an export is a copy.
//!
//! Tiles are derived state: every hash in them comes from the leaves in the segments,
//! and `DIR/tiles` can be deleted at any time (opening the ledger rebuilds it).
//!
//! **What is written when.** The writer (`TileWriter`) is fed the leaf hashes of each
//! commit after the segments were synced and before derived state records the new size:
//! - a *full* tile is written once, when its 256th hash is known: to a temporary file,
//!   fsynced, renamed into place, and its directory fsynced, so a full tile that exists
//!   is whole and never changes; one that exists already is compared, never rewritten;
//! - a *partial* tile is written for every size at which a checkpoint is issued (once
//!   per commit, and only for levels whose width changed): temporary file, fsync,
//!   rename. Its directory is not fsynced: a partial lost to a power cut is noticed and
//!   rewritten by `resume`;
//! - partial tiles are removed (`prune`) once the full tile that replaces them exists,
//!   after the new size is published; a reader that still holds an older size and
//!   finds its partial gone reads the prefix of that full tile instead.
//!
//! A replay (catch-up, `reindex`, the tiles rebuilt from the segments) writes hundreds of
//! tiles a chunk, and a bulk append's group commit several, and a sync each, two with the
//! directory's, cost a device flush each: they are written unsynced instead
//! (`Syncs::Together`) and the file system synced once (`TileWriter::sync`) before
//! derived state records the chunk or the commit. A crash before that sync
//! leaves unsynced tiles only beyond the size derived state holds, which `resume` removes.
//!
//! **Recovery.** `resume(size)` rebuilds the writer's state for the size derived state
//! holds from the right edge of the tiles on disk: the hashes of each level's partial
//! tile (from that partial, a wider one, or the full tile), checks that each level's
//! last full tile hashes into the level above, and removes any tile beyond that size
//! (written by a commit that crashed before derived state recorded it; catch-up writes
//! them again from the same leaves). Whatever it cannot rebuild it reports, and the
//! caller rebuilds the tiles from the segments.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::layout::{MAX_TILE_LEVEL, TILE_HEIGHT, TILE_WIDTH, TileId};
use super::merkle::{self, HASH_LEN, Hash, NodeId};
use crate::limits::TILE_CACHE_BYTES;
use crate::owner_only;

/// The directory of a data directory that holds the tiles.
pub const TILES_DIR: &str = "tiles";

/// Bytes of a full tile.
pub const FULL_TILE_BYTES: usize = TILE_WIDTH as usize * HASH_LEN;

#[derive(Debug, thiserror::Error)]
pub enum TileError {
    #[error("tile storage I/O failed on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "tile {path} is missing; tiles are derived from the segments and are rebuilt when the \
         ledger is opened to write, or by `dcledger reindex`"
    )]
    Missing { path: String },
    #[error("tile {path} holds {len} bytes, not the {expected} of its width")]
    Malformed {
        path: String,
        len: usize,
        expected: usize,
    },
    #[error("the tree of {size} leaves has no complete node at level {level}, index {index}")]
    NotInTree { size: u64, level: u8, index: u64 },
    #[error(
        "tile {path} on disk differs from the one computed from the leaves; run `dcledger \
         reindex`"
    )]
    Conflict { path: String },
    #[error("full tile {path} does not hash to the level above it; run `dcledger reindex`")]
    Broken { path: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TileError + '_ {
    move |source| TileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Hashes at tile level `level` in the tree of `size` leaves: one per complete subtree
/// of `256^level` leaves.
pub fn hashes_at(size: u64, level: u8) -> u64 {
    let shift = TILE_HEIGHT * u32::from(level);
    size.checked_shr(shift).unwrap_or(0)
}

/// Full tiles at `level` in the tree of `size` leaves.
pub fn full_tiles(size: u64, level: u8) -> u64 {
    hashes_at(size, level) / TILE_WIDTH
}

/// Width of the partial tile at `level` for `size` (0: none).
pub fn partial_width(size: u64, level: u8) -> u16 {
    (hashes_at(size, level) % TILE_WIDTH) as u16
}

/// The tile levels of the tree of `size` leaves: those holding at least one hash.
pub fn levels(size: u64) -> u8 {
    (0..=MAX_TILE_LEVEL)
        .take_while(|l| hashes_at(size, *l) > 0)
        .count() as u8
}

/// Every hash tile a tree of `size` leaves is served as: the full tiles of each level,
/// then its partial one (backwards: newest first, the highest level first).
pub fn tiles_of(size: u64) -> impl DoubleEndedIterator<Item = TileId> {
    (0..levels(size)).flat_map(move |level| {
        let full = (0..full_tiles(size, level)).map(move |n| TileId::hashes(level, n, 256));
        let width = partial_width(size, level);
        let partial = (width > 0).then(|| TileId::hashes(level, full_tiles(size, level), width));
        full.chain(partial)
    })
}

/// The entry bundles of a tree of `size` leaves: the full ones, then the partial one.
pub fn bundles_of(size: u64) -> impl Iterator<Item = TileId> {
    let full = (0..full_tiles(size, 0)).map(|n| TileId::entries(n, 256));
    let width = partial_width(size, 0);
    let partial = (width > 0).then(|| TileId::entries(full_tiles(size, 0), width));
    full.chain(partial)
}

/// Whether tile `id` belongs to the tree of `size` leaves (a partial one only at the
/// width it has at that size or any smaller one: its content is fixed by the leaves).
pub fn in_tree(id: TileId, size: u64) -> bool {
    let level = match id.kind {
        super::layout::TileKind::Hashes { level } => level,
        super::layout::TileKind::Entries => 0,
    };
    let hashes = u128::from(hashes_at(size, level));
    u128::from(id.index) * u128::from(TILE_WIDTH) + u128::from(id.width) <= hashes
}

/// Splits tile bytes into hashes; `None` unless a whole number of them.
pub fn split_hashes(bytes: &[u8]) -> Option<Vec<Hash>> {
    if !bytes.len().is_multiple_of(HASH_LEN) {
        return None;
    }
    bytes
        .chunks_exact(HASH_LEN)
        .map(|c| <Hash>::try_from(c).ok())
        .collect()
}

fn join_hashes(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flatten().copied().collect()
}

/// The Merkle tree hash of a full tile: the hash at its position one level up.
pub fn full_tile_root(hashes: &[Hash]) -> Hash {
    assert_eq!(
        hashes.len() as u64,
        TILE_WIDTH,
        "a full tile has 256 hashes"
    );
    perfect_root(hashes).unwrap_or_else(merkle::empty_root)
}

/// The hash of the complete subtree whose lowest hashes are `hashes` (a power of two of
/// them, at most a tile's): `None` for any other count.
pub fn perfect_root(hashes: &[Hash]) -> Option<Hash> {
    if !hashes.len().is_power_of_two() || hashes.len() as u64 > TILE_WIDTH {
        return None;
    }
    let mut level = hashes.to_vec();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|p| merkle::node_hash(&p[0], &p[1]))
            .collect();
    }
    level.first().copied()
}

/// Where complete subtree `node` of the tree of `size` leaves is read from: a node at
/// tree level `8L + r` is `r` levels above tile level `L`'s hashes, so it is the hash of
/// `2^r` consecutive hashes of one tile. Returns that tile (at its width at `size`),
/// `r`, and the node's position `j` among the tile's nodes `r` levels up (its hashes are
/// `j·2^r .. (j+1)·2^r`); `None` if the node is not in the tree.
pub fn node_in_tile(size: u64, node: NodeId) -> Option<(TileId, u32, u64)> {
    if node.level >= 64 || (u128::from(node.index) + 1) << node.level > u128::from(size) {
        return None;
    }
    let level = node.level / TILE_HEIGHT as u8;
    let height = u32::from(node.level) % TILE_HEIGHT;
    // The node's first hash at tile level `level`, its tile, and its place there.
    let first = node.index << height;
    let n = first / TILE_WIDTH;
    let j = node.index & ((1u64 << (TILE_HEIGHT - height)) - 1);
    let width = if n < full_tiles(size, level) {
        TILE_WIDTH as u16
    } else {
        partial_width(size, level)
    };
    (width > 0).then(|| (TileId::hashes(level, n, width), height, j))
}

/// A tile's hashes and every complete node above them inside the tile: `nodes[r][j]`
/// is the node `r` levels above the tile's hashes, `j`-th from the left.
struct Expanded {
    nodes: Vec<Vec<Hash>>,
}

impl Expanded {
    fn new(hashes: Vec<Hash>) -> Expanded {
        let mut nodes = vec![hashes];
        while let Some(below) = nodes.last()
            && below.len() > 1
        {
            let above = below
                .chunks_exact(2)
                .map(|p| merkle::node_hash(&p[0], &p[1]))
                .collect();
            nodes.push(above);
        }
        Expanded { nodes }
    }

    fn bytes(&self) -> usize {
        self.nodes.iter().map(|n| n.len() * HASH_LEN).sum()
    }

    fn node(&self, height: u32, j: u64) -> Option<Hash> {
        self.nodes
            .get(height as usize)
            .and_then(|n| n.get(usize::try_from(j).ok()?))
            .copied()
    }
}

/// Expanded tiles kept in memory, oldest dropped first, at most `TILE_CACHE_BYTES`.
#[derive(Default)]
struct Cache {
    tiles: HashMap<TileId, Arc<Expanded>>,
    order: VecDeque<TileId>,
    bytes: usize,
}

impl Cache {
    fn insert(&mut self, id: TileId, tile: Arc<Expanded>) {
        if self.tiles.contains_key(&id) {
            return;
        }
        self.bytes += tile.bytes();
        self.tiles.insert(id, tile);
        self.order.push_back(id);
        while self.bytes > TILE_CACHE_BYTES
            && let Some(old) = self.order.pop_front()
        {
            if let Some(t) = self.tiles.remove(&old) {
                self.bytes -= t.bytes();
            }
        }
    }
}

/// Reads tiles and the tree nodes they hold. Shared by every reader; never writes.
pub struct TileStore {
    root: PathBuf,
    cache: Mutex<Cache>,
}

impl TileStore {
    /// The tiles of the data directory `dir` (`dir/tiles`).
    pub fn new(dir: &Path) -> TileStore {
        TileStore::at(dir.join(TILES_DIR))
    }

    /// Tiles laid out under `root` (a data directory's `tiles/`, or an export).
    pub fn at(root: PathBuf) -> TileStore {
        TileStore {
            root,
            cache: Mutex::new(Cache::default()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn file(&self, id: TileId) -> PathBuf {
        self.root.join(id.path())
    }

    /// Forgets every cached tile: after the tiles on disk were removed and rebuilt.
    pub fn clear_cache(&self) {
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Cache::default();
    }

    /// The bytes of hash tile `id` exactly as stored, or `None` if there is no such file.
    pub fn read_file(&self, id: TileId) -> Result<Option<Vec<u8>>, TileError> {
        let path = self.file(id);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The content of hash tile `id`: its file, or for a partial tile without one (its
    /// full tile replaced it, or the tiles were rebuilt at a later size), the prefix of
    /// the full tile or of a wider partial one: the same hashes, which never change.
    /// Checked to be exactly `width` hashes; `None` if no such file exists.
    pub fn read_hashes(&self, id: TileId) -> Result<Option<Vec<u8>>, TileError> {
        let want = usize::from(id.width) * HASH_LEN;
        let found = match self.read_file(id)? {
            Some(b) => Some((id, b)),
            None if !id.is_full() => match self.read_file(id.full())? {
                Some(b) => Some((id.full(), b)),
                None => self.wider_partial(id)?,
            },
            None => None,
        };
        let Some((found, bytes)) = found else {
            return Ok(None);
        };
        let expected = usize::from(found.width) * HASH_LEN;
        if bytes.len() != expected {
            return Err(TileError::Malformed {
                path: found.path(),
                len: bytes.len(),
                expected,
            });
        }
        Ok(Some(bytes[..want].to_vec()))
    }

    /// A partial tile of the same index wider than `id`, and its bytes.
    fn wider_partial(&self, id: TileId) -> Result<Option<(TileId, Vec<u8>)>, TileError> {
        let dir = self.root.join(id.partials_dir());
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&dir))?;
            let Some(width) = entry
                .file_name()
                .to_str()
                .and_then(TileId::width_in_partials_dir)
                .filter(|w| *w > id.width)
            else {
                continue; // narrower, or a temporary file
            };
            let wider = TileId { width, ..id };
            if let Some(bytes) = self.read_file(wider)? {
                return Ok(Some((wider, bytes)));
            }
        }
        Ok(None)
    }

    fn expanded(&self, id: TileId) -> Result<Arc<Expanded>, TileError> {
        if let Some(t) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tiles
            .get(&id)
        {
            return Ok(t.clone());
        }
        let bytes = self
            .read_hashes(id)?
            .ok_or_else(|| TileError::Missing { path: id.path() })?;
        let hashes = split_hashes(&bytes).ok_or_else(|| TileError::Malformed {
            path: id.path(),
            len: bytes.len(),
            expected: usize::from(id.width) * HASH_LEN,
        })?;
        let tile = Arc::new(Expanded::new(hashes));
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tile.clone());
        Ok(tile)
    }

    /// The hash of complete subtree `node` of the tree of `size` leaves, from the tile
    /// that holds it at that size (`node_in_tile`).
    pub fn node(&self, size: u64, node: NodeId) -> Result<Hash, TileError> {
        let not_in_tree = TileError::NotInTree {
            size,
            level: node.level,
            index: node.index,
        };
        let Some((tile, height, j)) = node_in_tile(size, node) else {
            return Err(not_in_tree);
        };
        self.expanded(tile)?.node(height, j).ok_or(not_in_tree)
    }

    /// `node`, if the tile that holds it is in memory; `None` if it would be read from
    /// disk (or is not in the tree: `node` says so).
    pub fn node_in_memory(&self, size: u64, node: NodeId) -> Option<Hash> {
        let (tile, height, j) = node_in_tile(size, node)?;
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.tiles.get(&tile)?.node(height, j)
    }

    /// Reads into memory the tiles that proofs of the newest leaves of the tree of `size`
    /// leaves read, until they fill `budget_bytes`: the tiles of the highest level first
    /// (every proof reads one there), then each level's below, newest first. Returns how
    /// many were read.
    pub fn warm(&self, size: u64, budget_bytes: usize) -> Result<usize, TileError> {
        let mut read = 0;
        for id in tiles_of(size).rev() {
            let held = self.cache.lock().unwrap_or_else(|p| p.into_inner()).bytes;
            if held >= budget_bytes {
                break;
            }
            self.expanded(id)?;
            read += 1;
        }
        Ok(read)
    }

    /// The right edge of the tree of `size` leaves, read from its tiles on disk: how the
    /// tests check what a writer left there. A ledger takes its edge from its writer
    /// (`TileWriter::frontier`), which holds it.
    #[cfg(test)]
    fn frontier(&self, size: u64) -> Result<merkle::Frontier, TileError> {
        let hashes = merkle::frontier_ids(size)
            .into_iter()
            .map(|id| self.node(size, id))
            .collect::<Result<Vec<_>, _>>()?;
        // One hash per frontier id, by construction.
        merkle::Frontier::from_parts(size, hashes).map_err(|_| TileError::NotInTree {
            size,
            level: 0,
            index: size,
        })
    }

    /// Checks every full tile of the tree of `size` leaves against the level above (its
    /// tree hash is the hash there): with the leaf hashes checked against level 0, this
    /// proves every tile of the tree.
    pub fn check_levels(&self, size: u64) -> Result<(), TileError> {
        for level in 0..levels(size) {
            for n in 0..full_tiles(size, level) {
                let id = TileId::hashes(level, n, 256);
                let above = self.node(
                    size,
                    NodeId {
                        level: (u32::from(level + 1) * TILE_HEIGHT) as u8,
                        index: n,
                    },
                )?;
                if self.tile_root(id)? != above {
                    return Err(TileError::Broken { path: id.path() });
                }
            }
        }
        Ok(())
    }

    fn tile_root(&self, id: TileId) -> Result<Hash, TileError> {
        self.expanded(id)?
            .node(TILE_HEIGHT, 0)
            .ok_or(TileError::Missing { path: id.path() })
    }
}

/// Creates the directories up to `path`'s parent, the owner's only (PROTOCOL §11).
fn make_parent(path: &Path) -> Result<&Path, TileError> {
    let parent = path.parent().unwrap_or(path);
    owner_only::create_dir_all(parent).map_err(io(parent))?;
    Ok(parent)
}

/// What `write_atomically` makes durable before it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durable {
    /// Nothing: the caller syncs the whole file system later (an export, before its
    /// checkpoint).
    Later,
    /// The file's bytes before the rename, so the name never holds a torn file.
    Content,
    /// The bytes and the rename (the directory is synced too).
    ContentAndName,
}

/// Writes `bytes` to `path` so that a reader sees the old file or the whole new one:
/// a temporary file beside it, renamed over it, synced as `durable` says. Files are
/// the owner's only.
pub fn write_atomically(path: &Path, bytes: &[u8], durable: Durable) -> Result<(), TileError> {
    let parent = make_parent(path)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = parent.join(tmp_name);
    let mut file = owner_only::create_file(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    if durable != Durable::Later {
        file.sync_data().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if durable == Durable::ContentAndName {
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io(parent))?;
    }
    Ok(())
}

fn remove_dir_if_present(path: &Path) -> Result<(), TileError> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path)(e)),
        _ => Ok(()),
    }
}

/// Removes whatever stands at `path` that a tile written there could not replace: a
/// directory with all it holds, or anything else but a file (a file, readable or not,
/// the tile's atomic write renames over).
fn clear_unless_file(path: &Path) -> Result<(), TileError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => remove_dir_if_present(path),
        Ok(m) if !m.is_file() => remove_file_if_present(path).map(drop),
        _ => Ok(()),
    }
}

fn remove_file_if_present(path: &Path) -> Result<bool, TileError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(path)(e)),
    }
}

/// When the tiles a `TileWriter` writes are made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syncs {
    /// Each as it is written (see the module doc): a commit of a few entries writes few.
    EachTile,
    /// All together, by `TileWriter::sync`, which must come before anything records the
    /// size they are written for.
    Together,
}

/// Makes everything written to the file system that holds `path` durable: one flush of
/// the device for any number of files written with `Durable::Later`.
pub fn sync_file_system(path: &Path) -> std::io::Result<()> {
    let dir = File::open(path)?;
    rustix::fs::syncfs(&dir)?;
    Ok(())
}

/// What a full tile already on disk where the writer writes one is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FoundOnDisk {
    /// This tree's, written once: the tile being written, or a conflict.
    Ours,
    /// An earlier build's, which a rebuild from the first leaf replaces: kept if it is
    /// the tile being written, replaced if not.
    Earlier,
}

/// Grows the tiles with the tree. One per ledger, owned by its writer.
pub struct TileWriter {
    root: PathBuf,
    found: FoundOnDisk,
    size: u64,
    /// Per level, the hashes past its full tiles (fewer than 256).
    tails: Vec<Vec<Hash>>,
    /// Per level, the width of the partial tile on disk for the current tail (0: none).
    on_disk: Vec<u16>,
    /// Full tiles written since the last `prune`, whose partials may go.
    replaced: Vec<TileId>,
    syncs: Syncs,
    /// Whether a tile was written and not yet synced (`Syncs::Together`).
    unsynced: bool,
}

impl TileWriter {
    /// The writer of an empty tree in `store`.
    pub fn empty(store: &TileStore) -> TileWriter {
        TileWriter {
            root: store.root().to_path_buf(),
            found: FoundOnDisk::Ours,
            size: 0,
            tails: Vec::new(),
            on_disk: Vec::new(),
            replaced: Vec::new(),
            syncs: Syncs::EachTile,
            unsynced: false,
        }
    }

    /// The writer of a tree rebuilt from its first leaf over the tiles an earlier build
    /// left in `store` (`reindex`, or tiles an open cannot resume), synced together
    /// (`sync`): a full tile on disk that is the one rebuilt stays as it is, one that
    /// differs is replaced, anything else at a tile's path (a directory, a file that
    /// cannot be read) is removed or written over, and `finish_over_earlier` removes
    /// what lies past the rebuilt tree. Nothing is removed first: a tile written costs a
    /// new file where one read does not (on ext4 without a journal, a file created soon
    /// after many were removed costs a scan of the inode table: a sixth of a trusted
    /// rebuild's committing thread, when the tiles were removed first), and at ten
    /// million leaves the tiles are 320 MB.
    pub fn over_earlier(store: &TileStore) -> TileWriter {
        TileWriter {
            found: FoundOnDisk::Earlier,
            syncs: Syncs::Together,
            ..TileWriter::empty(store)
        }
    }

    /// Ends a rebuild begun by `over_earlier`: removes the earlier build's tiles past
    /// the rebuilt tree, and from now on a full tile found on disk is this tree's.
    pub fn finish_over_earlier(&mut self) -> Result<(), TileError> {
        self.remove_beyond()?;
        self.found = FoundOnDisk::Ours;
        Ok(())
    }

    /// Sets when tiles written from now on are made durable; any written unsynced
    /// before are synced first.
    pub fn set_syncs(&mut self, syncs: Syncs) -> Result<(), TileError> {
        self.sync()?;
        self.syncs = syncs;
        Ok(())
    }

    /// Makes the tiles written unsynced (`Syncs::Together`) durable, names and all.
    pub fn sync(&mut self) -> Result<(), TileError> {
        if self.unsynced {
            sync_file_system(&self.root).map_err(io(&self.root))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// How to write a tile that, synced each, would be `each`.
    fn durable(&mut self, each: Durable) -> Durable {
        match self.syncs {
            Syncs::EachTile => each,
            Syncs::Together => {
                self.unsynced = true;
                Durable::Later
            }
        }
    }

    /// The writer of the tree of `size` leaves whose tiles are in `store` (see the
    /// module doc): removes tiles beyond `size`, and refuses a right edge it cannot read
    /// or whose last full tiles do not hash into the level above.
    pub fn resume(store: &TileStore, size: u64) -> Result<TileWriter, TileError> {
        let mut writer = TileWriter::empty(store);
        writer.size = size;
        for level in 0..levels(size) {
            let width = partial_width(size, level);
            let id = (width > 0).then(|| TileId::hashes(level, full_tiles(size, level), width));
            let tail = match id {
                None => Vec::new(),
                Some(id) => {
                    let bytes = store
                        .read_hashes(id)?
                        .ok_or_else(|| TileError::Missing { path: id.path() })?;
                    split_hashes(&bytes).ok_or_else(|| TileError::Missing { path: id.path() })?
                }
            };
            writer.tails.push(tail);
            writer.on_disk.push(0);
        }
        writer.remove_beyond()?;
        // What was read from tiles now removed must not be served from memory.
        store.clear_cache();
        // The partial tiles of this size, which a checkpoint names, exist again (one may
        // have been removed when a full tile beyond this size was written).
        for level in 0..levels(size) {
            let l = usize::from(level);
            let width = writer.tails[l].len() as u16;
            if width > 0 {
                let id = TileId::hashes(level, full_tiles(size, level), width);
                if store.file(id).exists() {
                    writer.on_disk[l] = width;
                }
            }
        }
        writer.write_partials()?;
        for level in 0..levels(size) {
            let full = full_tiles(size, level);
            if full == 0 {
                continue;
            }
            let last = TileId::hashes(level, full - 1, 256);
            let above = store.node(
                size,
                NodeId {
                    level: (u32::from(level + 1) * TILE_HEIGHT) as u8,
                    index: full - 1,
                },
            )?;
            if store.tile_root(last)? != above {
                return Err(TileError::Broken { path: last.path() });
            }
        }
        Ok(writer)
    }

    /// Removes every tile past the tree of `self.size` leaves. Tiles are written in
    /// order, so those beyond it start at the right edge of each level and are
    /// contiguous.
    fn remove_beyond(&self) -> Result<(), TileError> {
        for level in 0..=MAX_TILE_LEVEL {
            if !self.root.join(TileId::level_dir(level)).exists() {
                break;
            }
            let width = partial_width(self.size, level);
            let mut n = full_tiles(self.size, level);
            loop {
                let full = TileId::hashes(level, n, 256);
                let removed_full = remove_file_if_present(&self.root.join(full.path()))?;
                let partials = self.root.join(full.partials_dir());
                let had_partials = partials.exists();
                if n == full_tiles(self.size, level) && width > 0 && had_partials {
                    self.remove_partials_wider_than(&partials, width)?;
                } else {
                    remove_dir_if_present(&partials)?;
                }
                if !removed_full && !had_partials {
                    break;
                }
                n += 1;
            }
        }
        Ok(())
    }

    fn remove_partials_wider_than(&self, dir: &Path, width: u16) -> Result<(), TileError> {
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let keep = entry
                .file_name()
                .to_str()
                .and_then(TileId::width_in_partials_dir)
                .is_some_and(|w| w <= width);
            if !keep {
                remove_file_if_present(&entry.path())?;
            }
        }
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The right edge of the tree, from the hashes past each level's full tiles: each a
    /// complete subtree of `256^level` leaves, so the edge is the highest level's first,
    /// taken a power of two of them at a time, largest first, as the bits of their count
    /// say. At most 255 node hashes a level, where a `Frontier` grown beside the tiles
    /// hashed every node of the tree a second time (a fortieth of a rebuild's work,
    /// BENCHMARKS.md).
    pub fn frontier(&self) -> merkle::Frontier {
        let mut hashes = Vec::with_capacity(self.size.count_ones() as usize);
        for tail in self.tails.iter().rev() {
            let mut rest = tail.as_slice();
            for bit in (0..TILE_HEIGHT).rev() {
                let width = 1usize << bit;
                if tail.len() & width != 0 {
                    let (subtree, after) = rest.split_at(width);
                    hashes.push(perfect_root(subtree).unwrap_or_else(|| {
                        unreachable!("{width} hashes, a power of two below a tile's width")
                    }));
                    rest = after;
                }
            }
        }
        merkle::Frontier::from_parts(self.size, hashes)
            .unwrap_or_else(|e| unreachable!("the tails hold a complete subtree a bit: {e}"))
    }

    /// Adds leaf hashes, writing each full tile as it completes.
    pub fn push(&mut self, leaf_hashes: &[Hash]) -> Result<(), TileError> {
        for hash in leaf_hashes {
            self.size += 1;
            self.add(0, *hash)?;
        }
        Ok(())
    }

    fn add(&mut self, level: u8, hash: Hash) -> Result<(), TileError> {
        let l = usize::from(level);
        if self.tails.len() <= l {
            self.tails.push(Vec::new());
            self.on_disk.push(0);
        }
        self.tails[l].push(hash);
        if self.tails[l].len() as u64 == TILE_WIDTH {
            let hashes = std::mem::take(&mut self.tails[l]);
            self.on_disk[l] = 0;
            let id = TileId::hashes(level, full_tiles(self.size, level) - 1, 256);
            self.write_full(id, &hashes)?;
            self.add(level + 1, full_tile_root(&hashes))?;
        }
        Ok(())
    }

    fn write_full(&mut self, id: TileId, hashes: &[Hash]) -> Result<(), TileError> {
        let path = self.root.join(id.path());
        let bytes = join_hashes(hashes);
        let write = match std::fs::read(&path) {
            // Written once: an existing full tile is the same or something is wrong.
            Ok(existing) if existing == bytes => {
                if self.found == FoundOnDisk::Earlier {
                    // An earlier build's tile may not be durable (its writer may have
                    // stopped before syncing it): the next `sync` makes it so.
                    self.unsynced = true;
                }
                false
            }
            Ok(_) if self.found == FoundOnDisk::Ours => {
                return Err(TileError::Conflict { path: id.path() });
            }
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(_) if self.found == FoundOnDisk::Earlier => {
                // Something no build writes stands where the tile goes (a directory, a
                // file that cannot be read): a rebuild writes over it, as removing the
                // tiles first would have.
                clear_unless_file(&path)?;
                true
            }
            Err(e) => return Err(io(&path)(e)),
        };
        if write {
            let durable = self.durable(Durable::ContentAndName);
            write_atomically(&path, &bytes, durable)?;
        }
        self.replaced.push(id);
        Ok(())
    }

    /// Writes the partial tiles of the current size (a checkpoint is about to name it):
    /// those of levels whose width changed since they were last written.
    pub fn write_partials(&mut self) -> Result<(), TileError> {
        for level in 0..levels(self.size) {
            let l = usize::from(level);
            let width = self.tails[l].len() as u16;
            if width == 0 || self.on_disk[l] == width {
                continue;
            }
            let id = TileId::hashes(level, full_tiles(self.size, level), width);
            let path = self.root.join(id.path());
            if self.found == FoundOnDisk::Earlier {
                clear_unless_file(&path)?;
            }
            let durable = self.durable(Durable::Content);
            write_atomically(&path, &join_hashes(&self.tails[l]), durable)?;
            self.on_disk[l] = width;
        }
        Ok(())
    }

    /// Removes the partial tiles of full tiles written since the last call.
    pub fn prune(&mut self) -> Result<(), TileError> {
        for id in std::mem::take(&mut self.replaced) {
            remove_dir_if_present(&self.root.join(id.partials_dir()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::files_under;

    fn leaf(i: u64) -> Hash {
        merkle::leaf_hash(&i.to_be_bytes())
    }

    fn grown(dir: &Path, commits: &[u64]) -> (TileStore, TileWriter, merkle::Frontier) {
        grown_syncing(dir, commits, Syncs::EachTile)
    }

    /// `grown`, the tiles synced as `syncs` says (together: once a commit).
    fn grown_syncing(
        dir: &Path,
        commits: &[u64],
        syncs: Syncs,
    ) -> (TileStore, TileWriter, merkle::Frontier) {
        let store = TileStore::new(dir);
        let mut writer = TileWriter::empty(&store);
        writer.set_syncs(syncs).unwrap();
        let mut frontier = merkle::Frontier::new();
        for &to in commits {
            let hashes: Vec<Hash> = (writer.size()..to).map(leaf).collect();
            for h in &hashes {
                frontier.push(*h);
            }
            writer.push(&hashes).unwrap();
            writer.write_partials().unwrap();
            // Together, whatever this commit wrote waits for the sync.
            assert_eq!(
                writer.unsynced,
                syncs == Syncs::Together && !hashes.is_empty()
            );
            writer.sync().unwrap();
            assert!(!writer.unsynced);
            writer.prune().unwrap();
        }
        (store, writer, frontier)
    }

    #[test]
    fn the_writers_frontier_is_the_tree_grown_leaf_by_leaf() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = [
            0, 1, 2, 3, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, 70_001,
        ];
        let (store, mut writer, mut frontier) = grown(dir.path(), &[]);
        for to in sizes {
            let hashes: Vec<Hash> = (writer.size()..to).map(leaf).collect();
            for h in &hashes {
                frontier.push(*h);
            }
            writer.push(&hashes).unwrap();
            assert_eq!(writer.frontier(), frontier, "at {to} leaves");
            // A writer resumed from the tiles on disk holds the same edge.
            writer.write_partials().unwrap();
            writer.sync().unwrap();
            assert_eq!(TileWriter::resume(&store, to).unwrap().frontier(), frontier);
        }
    }

    #[test]
    fn tiles_synced_together_are_the_tiles_synced_each() {
        let commits = [1, 255, 256, 300, 70_000, 70_001, 131_072];
        let each = tempfile::tempdir().unwrap();
        let together = tempfile::tempdir().unwrap();
        let (_, _, frontier) = grown_syncing(each.path(), &commits, Syncs::EachTile);
        let (store, mut writer, _) = grown_syncing(together.path(), &commits, Syncs::Together);
        assert_eq!(files_under(each.path()), files_under(together.path()));
        assert_eq!(store.frontier(131_072).unwrap().root(), frontier.root());
        // Going back to a tile at a time syncs what was left unsynced first.
        writer.push(&[leaf(131_072)]).unwrap();
        writer.write_partials().unwrap();
        assert!(writer.unsynced);
        writer.set_syncs(Syncs::EachTile).unwrap();
        assert!(!writer.unsynced);
    }

    #[test]
    fn a_writer_over_earlier_tiles_keeps_the_right_ones_and_replaces_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _, frontier) = grown(dir.path(), &[300, 70_000]);
        let before = files_under(dir.path());
        let damaged = store.root().join(TileId::hashes(0, 1, 256).path());
        let mut bytes = std::fs::read(&damaged).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&damaged, bytes).unwrap();
        let past = store.root().join(TileId::hashes(0, 274, 256).path());
        std::fs::write(&past, [0; 32]).unwrap();
        let hashes: Vec<Hash> = (0..70_000).map(leaf).collect();
        // A writer of this tree's tiles refuses one that differs ...
        let mut ours = TileWriter::empty(&store);
        ours.set_syncs(Syncs::Together).unwrap();
        assert!(matches!(
            ours.push(&hashes),
            Err(TileError::Conflict { path }) if path == "tile/0/001"
        ));
        // ... where a rebuild over an earlier build's replaces it, and then what lies
        // past the tree, and leaves the tiles a tree grown from nothing has.
        let mut writer = TileWriter::over_earlier(&store);
        writer.push(&hashes).unwrap();
        writer.write_partials().unwrap();
        assert!(
            writer.unsynced,
            "the tiles kept are synced before the size is recorded"
        );
        writer.sync().unwrap();
        writer.prune().unwrap();
        writer.finish_over_earlier().unwrap();
        assert_eq!(files_under(dir.path()), before);
        assert_eq!(store.frontier(70_000).unwrap().root(), frontier.root());
        assert_eq!(writer.found, FoundOnDisk::Ours);
    }

    #[test]
    fn geometry_follows_the_document() {
        // "a tree of size 70,000 will be represented by 273 full level 0 tiles, one
        // partial level 0 tile of width 112, one full level 1 tile, one partial level 1
        // tile of width 17, and one partial level 2 tile of width 1."
        assert_eq!(
            (full_tiles(70_000, 0), partial_width(70_000, 0)),
            (273, 112)
        );
        assert_eq!((full_tiles(70_000, 1), partial_width(70_000, 1)), (1, 17));
        assert_eq!((full_tiles(70_000, 2), partial_width(70_000, 2)), (0, 1));
        assert_eq!(levels(70_000), 3);
        assert_eq!(tiles_of(70_000).count(), 273 + 1 + 1 + 1 + 1);
        // "a tree of size 256 will be represented by a full level 0 tile and a partial
        // level 1 tile of width 1."
        assert_eq!(
            tiles_of(256).collect::<Vec<_>>(),
            vec![TileId::hashes(0, 0, 256), TileId::hashes(1, 0, 1)]
        );
        assert_eq!(levels(0), 0);
        assert!(in_tree(TileId::hashes(1, 0, 1), 256));
        assert!(!in_tree(TileId::hashes(1, 0, 2), 256));
        assert!(!in_tree(TileId::hashes(0, 1, 1), 256));
        assert!(in_tree(TileId::entries(0, 5), 6));
    }

    #[test]
    fn nodes_and_roots_come_from_the_tiles() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = [1, 7, 255, 256, 257, 300, 513, 65_536, 65_537, 66_000];
        let (store, _, frontier) = grown(dir.path(), &sizes);
        for size in sizes {
            let root = merkle::root_at(size, &mut |id| store.node(66_000, id)).unwrap();
            let at_size = store.frontier(size).unwrap().root();
            assert_eq!(root, at_size, "size {size}");
        }
        assert_eq!(store.frontier(66_000).unwrap(), frontier);
        // Every full level-0 tile holds the leaf hashes, in order.
        let tile = store
            .read_hashes(TileId::hashes(0, 3, 256))
            .unwrap()
            .unwrap();
        assert_eq!(split_hashes(&tile).unwrap()[5], leaf(3 * 256 + 5));
        store.check_levels(66_000).unwrap();
        let proof =
            merkle::inclusion_proof(4321, 66_000, &mut |id| store.node(66_000, id)).unwrap();
        merkle::verify_inclusion(4321, 66_000, &leaf(4321), &proof, &frontier.root()).unwrap();
    }

    #[test]
    fn partials_stay_until_their_full_tile_exists() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut writer, _) = grown(dir.path(), &[10, 20]);
        assert!(store.read_file(TileId::hashes(0, 0, 10)).unwrap().is_some());
        assert!(store.read_file(TileId::hashes(0, 0, 20)).unwrap().is_some());
        let more: Vec<Hash> = (20..256).map(leaf).collect();
        writer.push(&more).unwrap();
        writer.write_partials().unwrap();
        // Before pruning both exist; after it the partial is gone but still readable.
        assert!(store.read_file(TileId::hashes(0, 0, 10)).unwrap().is_some());
        writer.prune().unwrap();
        assert!(store.read_file(TileId::hashes(0, 0, 10)).unwrap().is_none());
        let prefix = store
            .read_hashes(TileId::hashes(0, 0, 10))
            .unwrap()
            .unwrap();
        assert_eq!(
            split_hashes(&prefix).unwrap(),
            (0..10).map(leaf).collect::<Vec<_>>()
        );
    }

    #[test]
    fn resume_removes_tiles_beyond_and_carries_on() {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, _) = grown(dir.path(), &[300, 70_000]);
        // Derived state only recorded 300 leaves: the rest were written by a commit that
        // crashed. Resume at 300, then grow again to another size than before.
        let store = TileStore::new(dir.path());
        let mut writer = TileWriter::resume(&store, 300).unwrap();
        assert!(
            store
                .read_file(TileId::hashes(0, 2, 256))
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .read_file(TileId::hashes(1, 0, 256))
                .unwrap()
                .is_none()
        );
        let hashes: Vec<Hash> = (300..1000).map(leaf).collect();
        writer.push(&hashes).unwrap();
        writer.write_partials().unwrap();
        let fresh_dir = tempfile::tempdir().unwrap();
        let (fresh_store, _, frontier) = grown(fresh_dir.path(), &[1000]);
        assert_eq!(store.frontier(1000).unwrap(), frontier);
        for id in tiles_of(1000) {
            assert_eq!(
                store.read_hashes(id).unwrap(),
                fresh_store.read_hashes(id).unwrap(),
                "{}",
                id.path()
            );
        }
    }

    #[test]
    fn resume_refuses_a_missing_right_edge_and_a_changed_tile() {
        let dir = tempfile::tempdir().unwrap();
        grown(dir.path(), &[600]);
        let store = TileStore::new(dir.path());
        std::fs::remove_file(store.root().join("tile/0/002.p/88")).unwrap();
        assert!(matches!(
            TileWriter::resume(&store, 600),
            Err(TileError::Missing { .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        grown(dir.path(), &[600]);
        let store = TileStore::new(dir.path());
        let path = store.root().join("tile/0/001");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(
            TileWriter::resume(&store, 600),
            Err(TileError::Broken { .. })
        ));
    }
}
