//! Reads: leaves, tree nodes, proofs, tiles, signers. A `Reader` is cheap to clone and
//! never waits for the writer: it sees the last published view, whose data derived
//! state and the tiles already hold.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use super::layout::{self, Change};
use super::postings;
use super::{LedgerError, View};
use crate::keys::PublicKey;
use crate::log::checkpoint;
use crate::log::export::{CHECKPOINT_FILE, push_bundle_entry};
use crate::log::layout::{TILE_WIDTH, TileId, TileKind};
use crate::log::merkle::{self, Hash, NodeId, ProofError};
use crate::log::tiles::{self, TileError, TileStore};
use crate::registry::{self, GENESIS_KEY, GenesisRecord, OrgRecord, SignerRecord};
use serde::de::DeserializeOwned;

use crate::domain::records::{
    self, FacilityRecord, FindingNote, LoanRecord, LotRecord, PermitRecord, Pledge, SerialUse,
    SubsidyRecord,
};
use crate::log::segment::{self, RecordLocation};
use crate::store::derived::{Derived, DerivedError, decode, decode_sequence, family};

/// A leaf as stored, with its index and hash.
#[derive(Clone, Debug)]
pub struct StoredEntry {
    pub index: u64,
    pub leaf_hash: Hash,
    pub leaf: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    pub index: u64,
    pub tree_size: u64,
    pub leaf_hash: Hash,
    pub hashes: Vec<Hash>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    pub hashes: Vec<Hash>,
}

/// Filters of `GET /v1/entries`; all given ones must match.
#[derive(Clone, Debug, Default)]
pub struct EntryFilter {
    pub kind: Option<crate::entry::Kind>,
    pub facility: Option<String>,
    pub signer: Option<PublicKey>,
}

/// A signer's standing, for `GET /v1/signers/{key}` and `dcledger submit`.
#[derive(Clone, Debug)]
pub struct SignerView {
    pub public_key: PublicKey,
    pub record: SignerRecord,
    pub org: Option<OrgRecord>,
}

/// How a reader finds a leaf in the segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Leaves {
    /// By the location derived state records for it: the writer's reader, and a reader
    /// of projections replayed into a scratch store.
    Located,
    /// By reading its segment from the start: a reader that holds no derived state
    /// (`ledger::unlocked`), for the few leaves a reading command asks for.
    Scanned,
}

#[derive(Clone)]
pub struct Reader {
    /// The data directory's `checkpoint` file.
    checkpoint_file: PathBuf,
    /// The latest checkpoint witnesses cosigned, with their cosignatures
    /// (`witnessing`): the `witnessed` file's text, read when the reader is made and
    /// replaced by the witnessing thread with the file, so answers never read the disk.
    witnessed: Arc<RwLock<Option<Arc<str>>>>,
    segments_dir: PathBuf,
    leaves: Leaves,
    derived: Arc<Derived>,
    tiles: Arc<TileStore>,
    view: Arc<RwLock<View>>,
}

impl Reader {
    pub(crate) fn new(
        dir: &std::path::Path,
        segments_dir: PathBuf,
        derived: Arc<Derived>,
        tiles: Arc<TileStore>,
        view: Arc<RwLock<View>>,
        leaves: Leaves,
    ) -> Result<Reader, LedgerError> {
        let witnessed_file = dir.join(super::witnessing::WITNESSED_FILE);
        let witnessed = match std::fs::read_to_string(&witnessed_file) {
            Ok(text) => Some(Arc::from(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(LedgerError::Io {
                    path: witnessed_file,
                    source,
                });
            }
        };
        Ok(Reader {
            checkpoint_file: dir.join(CHECKPOINT_FILE),
            witnessed: Arc::new(RwLock::new(witnessed)),
            segments_dir,
            leaves,
            derived,
            tiles,
            view,
        })
    }

    fn view(&self) -> View {
        match self.view.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn size(&self) -> u64 {
        self.view().size
    }

    /// The size and the checkpoint that signs it, read together.
    pub fn current(&self) -> (u64, Arc<str>) {
        let v = self.view();
        (v.size, v.checkpoint)
    }

    pub fn root(&self) -> Hash {
        self.view().root
    }

    /// The latest signed checkpoint note.
    pub fn checkpoint(&self) -> Arc<str> {
        self.view().checkpoint
    }

    /// The latest checkpoint note as the `checkpoint` file holds it: what static
    /// readers and `GET /checkpoint` see, its tiles written before it.
    pub fn checkpoint_file(&self) -> Result<String, LedgerError> {
        std::fs::read_to_string(&self.checkpoint_file).map_err(|source| LedgerError::Io {
            path: self.checkpoint_file.clone(),
            source,
        })
    }

    /// `note` with the cosignatures witnesses have returned for it (PROTOCOL §12.2), or
    /// `note` alone while there are none.
    pub fn with_cosignatures(&self, note: &str) -> String {
        match self.witnessed() {
            // The witnessed note is this note, signature line included, and more lines.
            Some(witnessed) if witnessed.starts_with(note) => witnessed.to_string(),
            _ => note.to_string(),
        }
    }

    /// The latest cosigned checkpoint note, as the `witnessed` file holds it.
    pub(crate) fn witnessed(&self) -> Option<Arc<str>> {
        match self.witnessed.read() {
            Ok(w) => w.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Records the text just written to the `witnessed` file (by `witnessing`, the one
    /// writer of that file while the ledger is open).
    pub(crate) fn set_witnessed(&self, text: Arc<str>) {
        let mut w = match self.witnessed.write() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        *w = Some(text);
    }

    /// The ledger clock of the last accepted batch.
    pub fn latest_accepted(&self) -> Result<Option<i64>, LedgerError> {
        Ok(self.derived.applied()?.map(|a| a.last_accepted))
    }

    pub fn genesis(&self) -> Result<Option<GenesisRecord>, LedgerError> {
        Ok(self.derived.get_decoded(GENESIS_KEY)?)
    }

    /// The log's verifier key string (PROTOCOL §5): its origin and the checkpoint key that
    /// genesis fixed (a writer is opened only with that key).
    pub fn verifier_key(&self) -> Option<String> {
        let genesis = self.genesis().ok().flatten()?;
        Some(checkpoint::verifier_key_string(
            &genesis.origin,
            &genesis.checkpoint_key,
        ))
    }

    fn check_index(&self, index: u64, size: u64) -> Result<(), LedgerError> {
        if index >= size {
            return Err(LedgerError::NotFound(format!(
                "entry {index} does not exist: the ledger holds {size} entries"
            )));
        }
        Ok(())
    }

    /// Where leaf `index` is in the segments.
    fn location(&self, index: u64) -> Result<RecordLocation, LedgerError> {
        let key = layout::location_key(index);
        let run: Vec<RecordLocation> = match self.derived.get(&key)? {
            Some(bytes) => decode_sequence(&key, &bytes)?,
            None => Vec::new(),
        };
        usize::try_from(index % layout::LOCATION_SPAN)
            .ok()
            .and_then(|at| run.get(at).copied())
            .ok_or_else(|| LedgerError::NotFound(format!("entry {index} has no stored location")))
    }

    pub fn entry(&self, index: u64) -> Result<StoredEntry, LedgerError> {
        self.check_index(index, self.size())?;
        let mut leaf = Vec::new();
        self.visit_leaves::<LedgerError>(index, 1, |_, found| {
            leaf = found.to_vec();
            Ok(())
        })?;
        Ok(StoredEntry {
            index,
            leaf_hash: merkle::leaf_hash(&leaf),
            leaf,
        })
    }

    /// Node `id` of the tree as the tiles of the published `size` hold it (any node
    /// complete at an earlier size is complete, and the same, at this one).
    fn node(&self, size: u64, id: NodeId) -> Result<Hash, LedgerError> {
        Ok(self.tiles.node(size, id)?)
    }

    /// The hash of leaf `index`, from the level-0 tiles.
    pub fn leaf_hash(&self, index: u64) -> Result<Hash, LedgerError> {
        let size = self.size();
        self.check_index(index, size)?;
        self.node(size, NodeId { level: 0, index })
    }

    /// Hash tile `id` (C2SP tlog-tiles) if the published tree has it: its file, or a
    /// partial one's hashes from the full tile that replaced it (the same bytes).
    pub fn hash_tile(&self, id: TileId) -> Result<Option<Vec<u8>>, LedgerError> {
        if !matches!(id.kind, TileKind::Hashes { .. }) || !tiles::in_tree(id, self.size()) {
            return Ok(None);
        }
        // A tile of the published tree is on disk: tiles are written before the size
        // that needs them is published.
        match self.tiles.read_hashes(id)? {
            Some(bytes) => Ok(Some(bytes)),
            None => Err(TileError::Missing { path: id.path() }.into()),
        }
    }

    /// Entry bundle `id` (C2SP tlog-tiles) if the published tree has it, read from the
    /// segments: each leaf as a big-endian u16 length and its bytes.
    pub fn entry_bundle(&self, id: TileId) -> Result<Option<Vec<u8>>, LedgerError> {
        if id.kind != TileKind::Entries || !tiles::in_tree(id, self.size()) {
            return Ok(None);
        }
        let mut bundle = Vec::new();
        self.visit_leaves::<LedgerError>(id.index * TILE_WIDTH, u64::from(id.width), |_, leaf| {
            push_bundle_entry(&mut bundle, leaf);
            Ok(())
        })?;
        Ok(Some(bundle))
    }

    /// Hands the leaves `first..first + count` of the published tree, checked, to
    /// `visit` in ledger order: one sequential pass for whoever reads the log whole
    /// (the Parquet export), with no lookup per leaf.
    pub fn leaves<E: From<LedgerError> + From<segment::SegmentError>>(
        &self,
        first: u64,
        count: u64,
        visit: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        if count == 0 {
            return Ok(());
        }
        let size = self.size();
        let last = first.saturating_add(count - 1);
        self.check_index(last, size)?;
        self.visit_leaves(first, count, visit)
    }

    /// Hands leaves `first..first + count` of the segments, checked, to `visit`.
    fn visit_leaves<E: From<LedgerError> + From<segment::SegmentError>>(
        &self,
        first: u64,
        count: u64,
        visit: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        match self.leaves {
            Leaves::Located => {
                let at = self.location(first)?;
                segment::read_run(
                    &self.segments_dir,
                    first,
                    at.segment,
                    at.offset,
                    count,
                    visit,
                )
            }
            Leaves::Scanned => {
                segment::read_leaves(&self.segments_dir, first, first + count, visit)
            }
        }
    }

    /// Checks every full tile of the published tree against the level above it.
    pub fn check_tiles(&self) -> Result<(), LedgerError> {
        Ok(self.tiles.check_levels(self.size())?)
    }

    /// Root of the tree at any size the ledger has had.
    pub fn root_at(&self, size: u64) -> Result<Hash, LedgerError> {
        let current = self.size();
        if size > current {
            return Err(LedgerError::NotFound(format!(
                "tree size {size} does not exist: the ledger holds {current} entries"
            )));
        }
        merkle::root_at(size, &mut |id| self.node(current, id))
    }

    /// Inclusion proof of `index` in the tree of `size` (default: current) leaves.
    pub fn inclusion(&self, index: u64, size: Option<u64>) -> Result<InclusionProof, LedgerError> {
        self.inclusion_from(index, size, &mut |current, id| self.node(current, id))
    }

    /// `inclusion`, if the tiles in memory hold every hash it needs; `Ok(None)` if one
    /// must be read from disk first. A caller that must not wait on the disk (an async
    /// worker) answers from memory at once and hands the rest on.
    pub fn inclusion_in_memory(
        &self,
        index: u64,
        size: Option<u64>,
    ) -> Result<Option<InclusionProof>, LedgerError> {
        in_memory(self.inclusion_from(index, size, &mut |current, id| {
            self.node_in_memory(current, id)
        }))
    }

    fn inclusion_from<E: From<LedgerError> + std::fmt::Display>(
        &self,
        index: u64,
        size: Option<u64>,
        node: &mut dyn FnMut(u64, NodeId) -> Result<Hash, E>,
    ) -> Result<InclusionProof, E> {
        let current = self.size();
        let tree_size = size.unwrap_or(current);
        if tree_size > current {
            return Err(LedgerError::NotFound(format!(
                "tree size {tree_size} does not exist: the ledger holds {current} entries"
            ))
            .into());
        }
        self.check_index(index, tree_size)?;
        let hashes = merkle::inclusion_proof(index, tree_size, &mut |id| node(current, id))
            .map_err(proof_error)?;
        Ok(InclusionProof {
            index,
            tree_size,
            leaf_hash: node(current, NodeId { level: 0, index })?,
            hashes,
        })
    }

    /// Consistency proof between two sizes, `1 <= from <= to <= size`.
    pub fn consistency(&self, from: u64, to: u64) -> Result<ConsistencyProof, LedgerError> {
        self.consistency_from(from, to, &mut |current, id| self.node(current, id))
    }

    /// `consistency`, if the tiles in memory hold every hash it needs; `Ok(None)` if one
    /// must be read from disk first (as `inclusion_in_memory`).
    pub fn consistency_in_memory(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Option<ConsistencyProof>, LedgerError> {
        in_memory(self.consistency_from(from, to, &mut |current, id| {
            self.node_in_memory(current, id)
        }))
    }

    fn consistency_from<E: From<LedgerError> + std::fmt::Display>(
        &self,
        from: u64,
        to: u64,
        node: &mut dyn FnMut(u64, NodeId) -> Result<Hash, E>,
    ) -> Result<ConsistencyProof, E> {
        let current = self.size();
        if from == 0 || from > to {
            return Err(LedgerError::BadRequest(format!(
                "consistency needs 1 <= from <= to, got from={from} to={to}"
            ))
            .into());
        }
        if to > current {
            return Err(LedgerError::NotFound(format!(
                "tree size {to} does not exist: the ledger holds {current} entries"
            ))
            .into());
        }
        let hashes = merkle::consistency_proof(from, to, &mut |id| node(current, id))
            .map_err(proof_error)?;
        Ok(ConsistencyProof { from, to, hashes })
    }

    /// Reads into memory, up to `budget_bytes`, the tiles that proofs of the newest
    /// entries read (`TileStore::warm`), so that they are answered without the disk.
    /// Returns how many tiles were read.
    pub fn warm_tiles(&self, budget_bytes: usize) -> Result<usize, LedgerError> {
        Ok(self.tiles.warm(self.size(), budget_bytes)?)
    }

    /// Node `id` as `node` reads it, if its tile is in memory.
    fn node_in_memory(&self, size: u64, id: NodeId) -> Result<Hash, Unanswered> {
        self.tiles
            .node_in_memory(size, id)
            .ok_or(Unanswered::NotInMemory)
    }

    pub fn signer(&self, public_key: &PublicKey) -> Result<Option<SignerView>, LedgerError> {
        let Some(record) = self
            .derived
            .get_decoded::<SignerRecord>(&registry::signer_key(public_key))?
        else {
            return Ok(None);
        };
        let org = self
            .derived
            .get_decoded(&registry::org_key(&record.org_id))?;
        Ok(Some(SignerView {
            public_key: *public_key,
            record,
            org,
        }))
    }
}

/// The projections (PROTOCOL §7), as the audit and the reports read them.
impl Reader {
    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, LedgerError> {
        Ok(self.derived.get_decoded(key)?)
    }

    fn scan<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<T>, LedgerError> {
        self.derived
            .scan_prefix(prefix)
            .map(|kv| {
                let (k, v) = kv?;
                Ok(decode(&k, &v)?)
            })
            .collect()
    }

    /// Ids of every key in a family of id-keyed markers.
    fn scan_ids(&self, family: u8) -> Result<Vec<String>, LedgerError> {
        self.derived
            .scan_prefix(&[family])
            .map(|kv| {
                let (k, _) = kv?;
                let id = records::id_from_key(&k).ok_or_else(|| DerivedError::Decode {
                    key: hex::encode(&k),
                    reason: "the key holds no id".into(),
                })?;
                Ok(id.to_string())
            })
            .collect()
    }

    pub fn facility(&self, id: &str) -> Result<Option<FacilityRecord>, LedgerError> {
        self.get(&records::facility_key(id))
    }

    /// Every facility, in key order.
    pub fn facilities(&self) -> Result<Vec<FacilityRecord>, LedgerError> {
        self.scan(&[family::FACILITY])
    }

    /// Every lot, permit, subsidy and loan, each in key order: one sequential pass per
    /// family, for readers that load them all (the audit) rather than by id.
    pub fn lots(&self) -> Result<Vec<LotRecord>, LedgerError> {
        self.scan(&[family::LOT])
    }

    pub fn permits(&self) -> Result<Vec<PermitRecord>, LedgerError> {
        self.scan(&[family::PERMIT])
    }

    pub fn subsidies(&self) -> Result<Vec<SubsidyRecord>, LedgerError> {
        self.scan(&[family::SUBSIDY])
    }

    pub fn loans(&self) -> Result<Vec<LoanRecord>, LedgerError> {
        self.scan(&[family::LOAN])
    }

    pub fn lot(&self, id: &str) -> Result<Option<LotRecord>, LedgerError> {
        self.get(&records::lot_key(id))
    }

    pub fn permit(&self, id: &str) -> Result<Option<PermitRecord>, LedgerError> {
        self.get(&records::permit_key(id))
    }

    pub fn subsidy(&self, id: &str) -> Result<Option<SubsidyRecord>, LedgerError> {
        self.get(&records::subsidy_key(id))
    }

    pub fn loan(&self, id: &str) -> Result<Option<LoanRecord>, LedgerError> {
        self.get(&records::loan_key(id))
    }

    pub fn serial_uses(&self, serial: &str) -> Result<Vec<SerialUse>, LedgerError> {
        Ok(self.get(&records::serial_key(serial))?.unwrap_or_default())
    }

    /// Serials listed in more than one lot.
    pub fn shared_serials(&self) -> Result<Vec<String>, LedgerError> {
        self.scan_ids(family::SHARED_SERIAL)
    }

    pub fn pledges(&self, item: &str) -> Result<Vec<Pledge>, LedgerError> {
        Ok(self
            .get(&records::collateral_key(item))?
            .unwrap_or_default())
    }

    /// Collateral items pledged to more than one loan.
    pub fn shared_collateral(&self) -> Result<Vec<String>, LedgerError> {
        self.scan_ids(family::SHARED_COLLATERAL)
    }

    /// Indices after `after` (ascending, at most `limit`) of the entries matching every
    /// given filter, from the postings; the last `bool` says whether more may follow.
    pub fn find_entries(
        &self,
        filter: &EntryFilter,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<u64>, bool), LedgerError> {
        let size = self.size();
        let start = after.map_or(0, |a| a + 1);
        let mut terms: Vec<(u8, &[u8])> = Vec::new();
        if let Some(f) = &filter.facility {
            terms.push((family::BY_FACILITY, f.as_bytes()));
        }
        if let Some(s) = &filter.signer {
            terms.push((family::BY_SIGNER, &s[..]));
        }
        if let Some(k) = filter.kind {
            terms.push((family::BY_KIND, postings::kind_term(k)));
        }
        let mut found = Vec::new();
        let first_chunk = start / postings::POSTING_SPAN;
        let last_chunk = size / postings::POSTING_SPAN;
        for chunk in first_chunk..=last_chunk {
            let base = chunk * postings::POSTING_SPAN;
            let mut candidates: Option<Vec<u64>> = None;
            for &(family, term) in &terms {
                let offsets = postings::chunk_offsets(&self.derived, family, term, chunk)?;
                let set: Vec<u64> = offsets.into_iter().map(|o| base + u64::from(o)).collect();
                candidates = Some(match candidates {
                    None => set,
                    Some(prev) => prev
                        .into_iter()
                        .filter(|i| set.binary_search(i).is_ok())
                        .collect(),
                });
            }
            let indices =
                candidates.unwrap_or_else(|| (base..base + postings::POSTING_SPAN).collect());
            for i in indices.into_iter().filter(|i| *i >= start && *i < size) {
                if found.len() == limit {
                    return Ok((found, true));
                }
                found.push(i);
            }
        }
        Ok((found, false))
    }

    /// The change log from entry `from` on, read in one pass; `ChangeLog::changes`
    /// decodes it.
    pub fn change_log_since(&self, from: u64) -> Result<ChangeLog, LedgerError> {
        let start = layout::change_key(from);
        let chunks = self
            .derived
            .range_from(&start, family::CHANGE)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ChangeLog { from, chunks })
    }

    pub fn finding_notes(&self, finding_id: &str) -> Result<Vec<FindingNote>, LedgerError> {
        Ok(self
            .get(&records::finding_key(finding_id))?
            .unwrap_or_default())
    }
}

/// The change log's chunks from an entry on, as stored (`Reader::change_log_since`).
pub struct ChangeLog {
    from: u64,
    chunks: Vec<(Vec<u8>, Vec<u8>)>,
}

impl ChangeLog {
    /// What the entries at index `from` or later changed, in ledger order, decoded on
    /// every core. Each change borrows its facility id from the log's bytes: loading
    /// the audit reads every report of the ledger through here, and a string allocated
    /// for each (then freed on another thread) was most of the decoding's time.
    pub fn changes(&self) -> Result<Vec<Change<&str>>, LedgerError> {
        let decoded =
            crate::parallel::map(self.chunks.iter().collect(), CHUNKS_PER_THREAD, |(k, v)| {
                decode_sequence::<Change<&str>>(k, v)
            });
        let mut changes =
            Vec::with_capacity(decoded.iter().map(|c| c.as_ref().map_or(0, Vec::len)).sum());
        for chunk in decoded {
            changes.extend(chunk?.into_iter().filter(|c| c.index >= self.from));
        }
        Ok(changes)
    }
}

/// Change-log chunks per thread below which decoding stays on one thread.
const CHUNKS_PER_THREAD: usize = 16;

fn proof_error<E: From<LedgerError> + std::fmt::Display>(e: ProofError<E>) -> E {
    match e {
        ProofError::Store(inner) => inner,
        other => LedgerError::BadRequest(other.to_string()).into(),
    }
}

/// Why a proof read from memory alone has no answer.
#[derive(Debug, thiserror::Error)]
enum Unanswered {
    #[error("a tile the proof needs is not in memory")]
    NotInMemory,
    #[error(transparent)]
    Failed(#[from] LedgerError),
}

/// A proof read from memory alone: `None` if it needs a tile memory does not hold.
fn in_memory<T>(read: Result<T, Unanswered>) -> Result<Option<T>, LedgerError> {
    match read {
        Ok(proof) => Ok(Some(proof)),
        Err(Unanswered::NotInMemory) => Ok(None),
        Err(Unanswered::Failed(e)) => Err(e),
    }
}
