//! Derived state (PROTOCOL §12): leaf locations, signer and organisation state, the
//! projections, indexes. Everything here can be deleted and rebuilt from the segments;
//! it is never the only copy of an accepted entry.
//!
//! Values are postcard with a leading format version byte. One ordered key space holds
//! every key family, distinguished by a one-byte prefix, so that each committed batch of
//! the ledger lands as one atomic write of the engine (`store::redb_file`), together
//! with the `applied` marker that says how far derived state has caught up with the log.

use std::any::Any;
use std::cell::{OnceCell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::limits::{DECODED_RECORDS_BYTES, DERIVED_CACHE_BYTES, REBUILD_CACHE_BYTES};
use crate::log::segment::Position;
use crate::store::engine::{Batch, Engine, EngineError, Memory, ReadSnapshot, Scan};
use crate::store::first_seen::{self, FirstSeen, Listing, ListingRef, Pending};
use crate::store::redb_file::{self, RedbFile};

/// Version byte in front of every stored value. Bump when a stored type changes shape or
/// a family's keys are laid out anew; old stores are then rebuilt from the segments
/// (`reindex`) instead of misread. 8: monthly reports keyed by period first. 9: leaf
/// locations sixteen a key. 10: postings keyed by chunk first. 11: no record a report;
/// the change log alone keeps reports. 12: postings a bucket of terms a key
/// (`ledger::postings`).
pub const FORMAT_VERSION: u8 = 12;

#[derive(Debug, thiserror::Error)]
pub enum DerivedError {
    #[error(
        "the derived index at {path} cannot be used ({source}); it holds nothing that the \
         segments do not: run `dcledger reindex`"
    )]
    Engine { path: PathBuf, source: EngineError },
    #[error(
        "the derived index at {path} was written by an older version of dcledger (in sled); \
         it holds nothing that the segments do not: run `dcledger reindex` to rebuild it"
    )]
    Superseded { path: PathBuf },
    #[error("derived record {key} is unreadable ({reason}); run `dcledger reindex`")]
    Decode { key: String, reason: String },
}

/// Key families. The byte is the first byte of every key of that family.
pub mod family {
    pub const META: u8 = b'm';
    /// Leaves' locations in the segments, a run of them a key (the tree itself is in the
    /// tiles).
    pub const LOCATION: u8 = b'l';
    pub const SIGNER: u8 = b's';
    pub const ORG: u8 = b'o';
    pub const BY_KIND: u8 = b'k';
    pub const BY_SIGNER: u8 = b'S';
    pub const BY_FACILITY: u8 = b'B';
    /// Where every `SEQ_SPAN`-th entry of a signer is (`ledger::layout`), so the entry a
    /// signer made with any seq is found in a few reads: how a retry is recognised.
    pub const SEQ_ANCHOR: u8 = b'q';
    pub const FACILITY: u8 = b'f';
    pub const LOT: u8 = b'L';
    /// Uses of a serial listed more than once (`Vec<SerialUse>`); a serial listed once
    /// is only in its listing.
    pub const SERIAL: u8 = b'x';
    /// What an entry listed (serials for a lot), under its index (`store::first_seen`).
    pub const LISTING: u8 = b'D';
    pub const PERMIT: u8 = b'p';
    pub const SUBSIDY: u8 = b'g';
    pub const LOAN: u8 = b'b';
    pub const COLLATERAL: u8 = b'c';
    pub const FINDING_NOTE: u8 = b'F';
    /// Serials listed in more than one lot, and items pledged to more than one loan:
    /// the audit's cross-facility rules scan these instead of every serial and parcel.
    pub const SHARED_SERIAL: u8 = b'X';
    pub const SHARED_COLLATERAL: u8 = b'C';
    pub const CHANGE: u8 = b't';
}

pub fn key(family: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(family);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// How far derived state reflects the log. Written in the same sled batch as the state
/// it describes, so the two can never disagree after a crash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Applied {
    /// Where the next leaf goes: `end.index` leaves are applied.
    pub end: Position,
    /// The ledger clock of the last accepted batch; the next one is never earlier.
    pub last_accepted: i64,
    /// The latest signed checkpoint note, for `end.index` leaves.
    pub checkpoint: String,
}

pub const APPLIED_KEY: &[u8] = b"mapplied";

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    encode_onto(value, vec![FORMAT_VERSION])
}

/// `out` with `value`'s postcard bytes appended, sized first so that they are written
/// once into room that fits them: grown by doubling from one byte, a report's record was
/// reallocated and copied six times (2.5% of a trusted rebuild's time).
fn encode_onto<T: Serialize>(value: &T, mut out: Vec<u8>) -> Vec<u8> {
    // postcard fails only on types it cannot represent, which the derived record types
    // (plain structs of integers, strings and byte arrays) never are.
    let cannot =
        |e: postcard::Error| -> ! { unreachable!("postcard cannot encode a derived record: {e}") };
    let size = postcard::experimental::serialized_size(value).unwrap_or_else(|e| cannot(e));
    let expected = out.len() + size;
    out.reserve(size);
    let out = postcard::to_extend(value, out).unwrap_or_else(|e| cannot(e));
    debug_assert_eq!(out.len(), expected, "postcard wrote the size it measured");
    out
}

pub fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, DerivedError> {
    let rest = versioned(key, bytes)?;
    postcard::from_bytes(rest).map_err(|e| decode_error(key, e.to_string()))
}

/// Appends values to a stored sequence: the version byte, then postcard values back to
/// back. Growing a sequence copies its bytes but never decodes them, so a value that
/// every commit extends stays cheap to extend.
pub fn append_encoded<T: Serialize>(
    stored: Option<Vec<u8>>,
    values: impl IntoIterator<Item = T>,
) -> Vec<u8> {
    let mut out = stored.unwrap_or_else(|| vec![FORMAT_VERSION]);
    for value in values {
        out = encode_onto(&value, out);
    }
    out
}

/// Every value of a sequence written by `append_encoded`, in order.
pub fn decode_sequence<'a, T: serde::Deserialize<'a>>(
    key: &[u8],
    bytes: &'a [u8],
) -> Result<Vec<T>, DerivedError> {
    let mut rest = versioned(key, bytes)?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (value, tail) =
            postcard::take_from_bytes(rest).map_err(|e| decode_error(key, e.to_string()))?;
        out.push(value);
        rest = tail;
    }
    Ok(out)
}

/// The bytes after the version byte, if it is this build's.
fn versioned<'a>(key: &[u8], bytes: &'a [u8]) -> Result<&'a [u8], DerivedError> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, rest)) => Ok(rest),
        Some((v, _)) => Err(decode_error(
            key,
            format!("format version {v}, this build reads {FORMAT_VERSION}"),
        )),
        None => Err(decode_error(key, "empty value".into())),
    }
}

fn decode_error(key: &[u8], reason: String) -> DerivedError {
    DerivedError::Decode {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    }
}

/// The derived state of one ledger, over its engine.
pub struct Derived {
    path: PathBuf,
    engine: Box<dyn Engine>,
    /// Terms' first listings, in memory, loaded when the writer first asks.
    first_seen: Mutex<Option<FirstSeen>>,
}

impl Derived {
    /// The ledger's own derived state, in the directory `path`.
    pub fn open(path: &Path) -> Result<Derived, DerivedError> {
        Derived::open_caching(path, DERIVED_CACHE_BYTES)
    }

    /// `open`, for a rebuild from the first leaf (`reindex`), with the larger cache that
    /// keeps its commits from re-reading the store's pages (`REBUILD_CACHE_BYTES`).
    pub fn open_to_rebuild(path: &Path) -> Result<Derived, DerivedError> {
        Derived::open_caching(path, REBUILD_CACHE_BYTES)
    }

    fn open_caching(path: &Path, cache_bytes: usize) -> Result<Derived, DerivedError> {
        // Versions before the redb file kept derived state in sled, whose directory
        // holds a `conf` file.
        if path.join("conf").exists() && !path.join(redb_file::FILE_NAME).exists() {
            return Err(DerivedError::Superseded {
                path: path.to_path_buf(),
            });
        }
        let engine = RedbFile::open(path, cache_bytes).map_err(|source| DerivedError::Engine {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Derived::over(path, Box::new(engine)))
    }

    /// Derived state kept by `engine`; `path` names it in errors.
    pub fn over(path: &Path, engine: Box<dyn Engine>) -> Derived {
        Derived {
            path: path.to_path_buf(),
            engine,
            first_seen: Mutex::new(None),
        }
    }

    /// A throwaway store in memory, for replays whose result is not kept (`verify`,
    /// readers beside a writer).
    pub fn temporary() -> Derived {
        Derived::over(Path::new("<memory>"), Box::new(Memory::default()))
    }

    fn err(&self) -> impl FnOnce(EngineError) -> DerivedError + '_ {
        move |source| DerivedError::Engine {
            path: self.path.clone(),
            source,
        }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DerivedError> {
        self.engine.get(key).map_err(self.err())
    }

    pub fn get_decoded<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, DerivedError> {
        match self.get(key)? {
            Some(bytes) => decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    pub fn applied(&self) -> Result<Option<Applied>, DerivedError> {
        self.get_decoded(APPLIED_KEY)
    }

    /// Every key and value, in key order: for tools and tests that inspect it whole.
    pub fn pairs(&self) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), DerivedError>> + '_ {
        Scan::from(self.engine.as_ref(), &[]).map(|r| r.map_err(self.err()))
    }

    /// Keys with a given prefix, in key order.
    pub fn scan_prefix<'a>(
        &'a self,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), DerivedError>> + 'a {
        Scan::from(self.engine.as_ref(), prefix)
            .take_while(move |kv| kv.as_ref().map_or(true, |(k, _)| k.starts_with(prefix)))
            .map(|r| r.map_err(self.err()))
    }

    /// Keys from `start` (inclusive) to the end of `family`, in order.
    pub fn range_from(
        &self,
        start: &[u8],
        family: u8,
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), DerivedError>> + '_ {
        Scan::from(self.engine.as_ref(), start)
            .take_while(move |kv| {
                kv.as_ref()
                    .map_or(true, |(k, _)| k.first() == Some(&family))
            })
            .map(|r| r.map_err(self.err()))
    }

    /// Applies one ledger batch's writes atomically.
    pub fn commit(&self, writes: Writes) -> Result<(), DerivedError> {
        self.engine.apply(&[&writes.map]).map_err(self.err())?;
        self.merge_first_seen(writes.first_seen);
        Ok(())
    }

    /// The first half of a commit made in two, for a replay that admits its next chunk
    /// while this one is written: the batch's first listings join the map in memory now,
    /// and the writes returned go to the store by `apply_frozen`, on any thread. Until
    /// that has returned, overlays read them through `Overlay::after`.
    ///
    /// Loading the first listings reads the store, so while a frozen batch is not yet
    /// applied they must be loaded already (`first_seen_loaded`), or loaded only after.
    /// If `apply_frozen` fails, the map holds listings the store does not: the replay
    /// that froze the batch fails with it, and this `Derived` must be dropped.
    pub fn freeze(&self, writes: Writes) -> Frozen {
        self.merge_first_seen(writes.first_seen);
        Arc::new(writes.map)
    }

    /// The second half of `freeze`: the batch's writes, with `more` in the same atomic
    /// write. `more` holds writes made since the freeze that no overlay reads before
    /// they are applied (a replay's indexes of the batch's leaves); it lists no term.
    pub fn apply_frozen(&self, frozen: &Frozen, more: &Writes) -> Result<(), DerivedError> {
        assert!(
            more.first_seen.is_empty(),
            "writes added to a frozen batch list no term: the map in memory has them already"
        );
        self.engine.apply(&[frozen, &more.map]).map_err(self.err())
    }

    /// Whether the first listings are in memory (they load on first use).
    pub fn first_seen_loaded(&self) -> bool {
        self.first_seen_guard().is_some()
    }

    /// Drops the first listings from memory, to be loaded from the store on their next
    /// use: for a replay that works them out itself (`Overlay::give_first_listings`),
    /// whose claims never reach the map.
    pub fn forget_first_seen(&self) {
        self.first_seen_guard().take();
    }

    fn merge_first_seen(&self, pending: Pending) {
        // Not loaded: nothing in the batch looked a term up, so nothing is pending, and
        // the load will read the batch's listings from the store.
        if let Some(seen) = self.first_seen_guard().as_mut() {
            seen.merge(pending);
        }
    }

    fn first_seen_guard(&self) -> std::sync::MutexGuard<'_, Option<FirstSeen>> {
        // The map is only changed by `merge`, which cannot panic halfway in a way that
        // leaves a wrong answer (a lost insert only sends a lookup to the overflow).
        self.first_seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` over the terms' first listings, loading them on first use.
    fn with_first_seen<R>(
        &self,
        f: impl FnOnce(&FirstSeen) -> Result<R, DerivedError>,
    ) -> Result<R, DerivedError> {
        let mut guard = self.first_seen_guard();
        let seen = match guard.take() {
            Some(seen) => seen,
            None => FirstSeen::load(self)?,
        };
        let seen = guard.insert(seen);
        f(seen)
    }

    pub fn flush(&self) -> Result<(), DerivedError> {
        self.engine.flush().map_err(self.err())
    }
}

/// Each write of an overlay, in order: its key and the value it replaced, if any.
type Journal = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Pending writes over the committed state: what ingest reads while it judges a batch,
/// so each entry is judged against everything before it, including earlier entries of
/// the same batch. `mark`/`rollback` undo one refused submission without disturbing the
/// others that share its group commit.
pub struct Overlay<'a> {
    base: &'a Derived,
    writes: Writes,
    /// What each write replaced, for `rollback`: `None` in an overlay made
    /// `without_savepoints`, which then copies no key and keeps no replaced value.
    journal: Option<Journal>,
    /// The listing last decoded: the serials a lot repeats come from one earlier lot,
    /// so confirming them reads one listing many times over.
    last_listing: RefCell<Option<(u64, Rc<Listing>)>>,
    /// A batch frozen for the store but maybe not yet in it (`Derived::freeze`), read
    /// between this batch's writes and the store.
    frozen: Option<Frozen>,
    /// Records read shared (`get_shared`), each as it stands with this batch's writes.
    decoded: RefCell<Decoded>,
    /// One read of the committed state for the whole batch, begun at its first read.
    snapshot: OnceCell<Box<dyn ReadSnapshot + 'a>>,
    /// First listings worked out ahead of admission (`give_first_listings`), or `None`
    /// where they are looked up in the store's in-memory map.
    given: Option<GivenFirstListings>,
}

/// Each entry that lists terms, in ledger order, with the first listing of each of its
/// terms (`None`: listed first by the entry itself), as `first_listings_or_claim` would
/// answer: worked out ahead, by a replay from the first leaf (`ledger::replay`).
pub type GivenFirstListings = VecDeque<(u64, Vec<Option<u64>>)>;

/// A batch's writes on their way to the store (`Derived::freeze`), shared by the thread
/// that applies them and the overlay of the batch after, which reads them meanwhile.
pub type Frozen = Arc<Batch>;

/// A set of key/value writes, the unit `Derived::commit` applies.
#[derive(Default)]
pub struct Writes {
    map: Batch,
    /// Terms first listed by these writes, for the in-memory map.
    first_seen: Pending,
}

impl Writes {
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Option<Vec<u8>> {
        self.map.insert(key, value)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Records decoded once and shared, by key: admission reads a few records over and over
/// (each report's facility, each entry's signer and its organisation), and reading and
/// decoding them again for each entry was much of what admitting it cost. A record
/// stands for its key's value in the overlay it was read or written through: a write of
/// the key replaces or drops it, a rollback drops them all. A replay hands them from one
/// chunk's overlay to the next, and the writer from one group commit to the next
/// (`Overlay::into_parts`, `Overlay::after`), over which they still stand. They are
/// held to `DECODED_RECORDS_BYTES` of keys and stored values: when full, they are all
/// dropped.
pub struct Decoded {
    /// Each record, with the bytes of its key and stored value.
    records: HashMap<Vec<u8>, (Shared, usize)>,
    /// The bytes of every record's key and stored value.
    bytes: usize,
    bytes_max: usize,
    /// The key families (first bytes) any record was kept for, so that a write of any
    /// other key, most writes, is told apart without hashing it: a bit each.
    families: [u64; 4],
}

impl Default for Decoded {
    fn default() -> Decoded {
        Decoded::with_bytes_max(DECODED_RECORDS_BYTES)
    }
}

/// A record as `Decoded` keeps it: shareable with the writer's thread, which keeps them
/// from one group commit to the next.
type Shared = Arc<dyn Any + Send + Sync>;

impl Decoded {
    fn with_bytes_max(bytes_max: usize) -> Decoded {
        Decoded {
            records: HashMap::new(),
            bytes: 0,
            bytes_max,
            families: [0; 4],
        }
    }

    fn get(&self, key: &[u8]) -> Option<&Shared> {
        self.records.get(key).map(|(record, _)| record)
    }

    /// Keeps `record`, stored under `key` in `stored_bytes`.
    fn insert(&mut self, key: Vec<u8>, record: Shared, stored_bytes: usize) {
        self.written(&key);
        let bytes = key.len() + stored_bytes;
        if self.bytes + bytes > self.bytes_max {
            // The family bits stay: one left over costs a write a hash, never an answer.
            self.clear();
        }
        if let Some(&family) = key.first() {
            self.families[usize::from(family / 64)] |= 1 << (family % 64);
        }
        self.bytes += bytes;
        self.records.insert(key, (record, bytes));
    }

    /// Drops the record of `key`, written anew.
    fn written(&mut self, key: &[u8]) {
        if key
            .first()
            .is_some_and(|&f| self.families[usize::from(f / 64)] & (1 << (f % 64)) != 0)
            && let Some((_, bytes)) = self.records.remove(key)
        {
            self.bytes -= bytes;
        }
    }

    fn clear(&mut self) {
        self.records.clear();
        self.bytes = 0;
    }
}

/// A savepoint in an overlay.
#[derive(Clone, Copy, Debug)]
pub struct Mark(usize, usize);

impl<'a> Overlay<'a> {
    pub fn new(base: &'a Derived) -> Overlay<'a> {
        Overlay::after(base, None, Decoded::default())
    }

    /// An overlay over `base` as it will be once `frozen`, if any, is applied to it,
    /// keeping `decoded`, the records of the overlay before, whose writes are in `frozen`
    /// or in the store.
    pub fn after(base: &'a Derived, frozen: Option<Frozen>, decoded: Decoded) -> Overlay<'a> {
        Overlay {
            base,
            writes: Writes::default(),
            journal: Some(Vec::new()),
            last_listing: RefCell::new(None),
            frozen,
            decoded: RefCell::new(decoded),
            snapshot: OnceCell::new(),
            given: None,
        }
    }

    /// Hands this overlay the first listings of the entries it will admit, worked out
    /// ahead: `first_listings_or_claim` answers from them, in order, and never from the
    /// store's in-memory map (which the store may not hold whole yet, and which is not
    /// told of these entries' claims).
    pub fn give_first_listings(&mut self, given: GivenFirstListings) {
        self.given = Some(given);
    }

    /// Whether first listings were given and every one was taken by its entry.
    pub fn given_first_listings_taken(&self) -> bool {
        self.given.as_ref().is_some_and(VecDeque::is_empty)
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DerivedError> {
        if let Some(v) = self.writes.map.get(key) {
            return Ok(Some(v.clone()));
        }
        if let Some(v) = self.frozen.as_ref().and_then(|f| f.get(key)) {
            return Ok(Some(v.clone()));
        }
        self.base_get(key)
    }

    /// Ends the overlay's read of the store, so that a commit waiting for it (the
    /// in-memory engine's writes wait for its reads) can proceed; a later read begins
    /// another.
    pub fn release_snapshot(&mut self) {
        self.snapshot.take();
    }

    /// A read of the committed state, through the batch's snapshot.
    fn base_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DerivedError> {
        let snapshot = match self.snapshot.get() {
            Some(s) => s,
            None => {
                let s = self.base.engine.snapshot().map_err(self.base.err())?;
                self.snapshot.get_or_init(|| s)
            }
        };
        snapshot.get(key).map_err(self.base.err())
    }

    pub fn get_decoded<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, DerivedError> {
        match self.get(key)? {
            Some(bytes) => decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The record under `key`, decoded once and shared until the key is written again.
    /// A key's records are all of one type (each family has its own).
    pub fn get_shared<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        key: &[u8],
    ) -> Result<Option<Arc<T>>, DerivedError> {
        if let Some(record) = self.decoded.borrow().get(key) {
            let Ok(record) = Arc::clone(record).downcast::<T>() else {
                unreachable!("the record under {key:?} is read as two types")
            };
            return Ok(Some(record));
        }
        let Some(bytes) = self.get(key)? else {
            return Ok(None);
        };
        let record = Arc::new(decode::<T>(key, &bytes)?);
        self.decoded
            .borrow_mut()
            .insert(key.to_vec(), record.clone(), bytes.len());
        Ok(Some(record))
    }

    pub fn contains(&self, key: &[u8]) -> Result<bool, DerivedError> {
        Ok(self.writes.map.contains_key(key)
            || self.frozen.as_ref().is_some_and(|f| f.contains_key(key))
            || self.base_get(key)?.is_some())
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.decoded.get_mut().written(&key);
        match &mut self.journal {
            Some(journal) => {
                let previous = self.writes.put(key.clone(), value);
                journal.push((key, previous));
            }
            None => {
                self.writes.put(key, value);
            }
        }
    }

    pub fn put_encoded<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        self.put(key, encode(value));
    }

    /// Writes `record` under `key` and keeps it for `get_shared`.
    pub fn put_record<T: Serialize + Send + Sync + 'static>(&mut self, key: Vec<u8>, record: T) {
        let bytes = encode(&record);
        let stored_bytes = bytes.len();
        self.put(key.clone(), bytes);
        self.decoded
            .get_mut()
            .insert(key, Arc::new(record), stored_bytes);
    }

    /// This overlay, keeping no savepoints: for a replay, which never rolls back (it
    /// stops at the first entry it refuses). A copy of every key written, and every
    /// value a write replaced kept to the end of a chunk, took about 4% of a trusted
    /// rebuild's time (BENCHMARKS.md, thirty-second pass).
    pub fn without_savepoints(mut self) -> Overlay<'a> {
        assert!(
            self.journal.as_ref().is_some_and(Vec::is_empty),
            "savepoints are given up before the first write"
        );
        self.journal = None;
        self
    }

    pub fn mark(&self) -> Mark {
        let Some(journal) = &self.journal else {
            unreachable!("an overlay without savepoints is never marked");
        };
        Mark(journal.len(), self.writes.first_seen.mark())
    }

    /// Undoes every write since `mark`.
    pub fn rollback(&mut self, mark: Mark) {
        assert!(
            self.given.is_none(),
            "first listings are given only to a replay, which rolls nothing back"
        );
        self.writes.first_seen.rollback(mark.1);
        // Some may stand for writes undone here.
        self.decoded.get_mut().clear();
        // A listing rolled back may be listed again, differently, at the same index.
        self.last_listing.replace(None);
        let Some(journal) = &mut self.journal else {
            unreachable!("an overlay without savepoints is never rolled back");
        };
        while journal.len() > mark.0 {
            if let Some((key, previous)) = journal.pop() {
                match previous {
                    Some(v) => self.writes.map.insert(key, v),
                    None => self.writes.map.remove(&key),
                };
            }
        }
    }

    pub fn into_writes(self) -> Writes {
        self.writes
    }

    /// The writes, and the records read or written, for the overlay after
    /// (`after`).
    pub fn into_parts(self) -> (Writes, Decoded) {
        (self.writes, self.decoded.into_inner())
    }

    /// For each of `terms`, the entry before `index` that first listed it, if any,
    /// committed or pending (answered in memory); a term none did is recorded as first
    /// listed by entry `index`, whose `put_listing` holds the term itself. The terms are
    /// the entry's, each once: entry `index` tells its own repeats apart.
    pub fn first_listings_or_claim(
        &mut self,
        terms: &[&str],
        index: u64,
    ) -> Result<Vec<Option<u64>>, DerivedError> {
        if let Some(given) = self.given.as_mut() {
            let (at, found) = given.pop_front().unwrap_or_else(|| {
                panic!("entry {index} lists terms, but no first listings were given for it")
            });
            assert_eq!(at, index, "first listings are given in ledger order");
            assert_eq!(found.len(), terms.len(), "one first listing a term");
            return Ok(found);
        }
        let mut pending = std::mem::take(&mut self.writes.first_seen);
        let found = self.base.with_first_seen(|seen| {
            first_seen::first_listings_or_claim(
                seen,
                &mut pending,
                |i| self.listing(i),
                terms,
                index,
            )
        });
        self.writes.first_seen = pending;
        found
    }

    /// Stores the listing entry `index` makes, whole, once, after its terms were looked
    /// up.
    pub fn put_listing(&mut self, index: u64, listing: &ListingRef<'_>) {
        self.last_listing.replace(None);
        self.put(
            first_seen::listing_key(index),
            first_seen::encode_listing(listing),
        );
    }

    /// The listing entry `index` made.
    pub fn listing(&self, index: u64) -> Result<Option<Rc<Listing>>, DerivedError> {
        if let Some((at, listing)) = &*self.last_listing.borrow()
            && *at == index
        {
            return Ok(Some(listing.clone()));
        }
        let Some(listing) = self.get_decoded::<Listing>(&first_seen::listing_key(index))? else {
            return Ok(None);
        };
        let listing = Rc::new(listing);
        self.last_listing.replace(Some((index, listing.clone())));
        Ok(Some(listing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An overlay without savepoints reads its writes, replaced or not, as any does, and
    /// refuses a savepoint.
    #[test]
    fn an_overlay_without_savepoints_reads_its_writes_and_refuses_a_mark() {
        let d = Derived::temporary();
        let mut o = Overlay::new(&d).without_savepoints();
        o.put(b"ka".to_vec(), b"1".to_vec());
        o.put(b"ka".to_vec(), b"2".to_vec());
        o.put(b"kb".to_vec(), b"3".to_vec());
        assert_eq!(o.get(b"ka").unwrap(), Some(b"2".to_vec()));
        assert_eq!(o.get(b"kb").unwrap(), Some(b"3".to_vec()));
        let marked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| o.mark()));
        assert!(marked.is_err(), "a savepoint in an overlay that keeps none");
    }

    #[test]
    fn given_first_listings_are_answered_in_order_and_the_map_is_left_alone() {
        let d = Derived::temporary();
        let mut o = Overlay::new(&d);
        o.give_first_listings(VecDeque::from([
            (3, vec![None, Some(1)]),
            (5, vec![Some(3)]),
        ]));
        assert_eq!(
            o.first_listings_or_claim(&["a", "b"], 3).unwrap(),
            vec![None, Some(1)]
        );
        assert!(!o.given_first_listings_taken());
        assert_eq!(o.first_listings_or_claim(&["a"], 5).unwrap(), vec![Some(3)]);
        assert!(o.given_first_listings_taken());
        assert!(!d.first_seen_loaded(), "given answers never load the map");
        assert!(o.writes.first_seen.is_empty(), "nor claim anything in it");
    }

    #[test]
    #[should_panic(expected = "given in ledger order")]
    fn first_listings_given_for_another_entry_are_refused() {
        let d = Derived::temporary();
        let mut o = Overlay::new(&d);
        o.give_first_listings(VecDeque::from([(3, vec![None])]));
        let _ = o.first_listings_or_claim(&["a"], 4);
    }

    #[test]
    fn overlay_reads_its_writes_and_rolls_back() {
        let d = Derived::temporary();
        let mut base = Writes::default();
        base.put(b"a".to_vec(), b"1".to_vec());
        d.commit(base).unwrap();
        let mut o = Overlay::new(&d);
        assert_eq!(o.get(b"a").unwrap().unwrap(), b"1");
        o.put(b"b".to_vec(), b"2".to_vec());
        let m = o.mark();
        o.put(b"a".to_vec(), b"3".to_vec());
        o.put(b"c".to_vec(), b"4".to_vec());
        o.put(b"b".to_vec(), b"5".to_vec());
        o.rollback(m);
        assert_eq!(o.get(b"a").unwrap().unwrap(), b"1");
        assert_eq!(o.get(b"b").unwrap().unwrap(), b"2");
        assert_eq!(o.get(b"c").unwrap(), None);
        d.commit(o.into_writes()).unwrap();
        assert_eq!(d.get(b"b").unwrap().unwrap(), b"2");
    }

    #[test]
    fn an_overlay_after_a_frozen_batch_reads_it_before_it_is_applied() {
        let d = Derived::temporary();
        let mut base = Writes::default();
        base.put(b"a".to_vec(), b"1".to_vec());
        base.put(b"b".to_vec(), b"1".to_vec());
        d.commit(base).unwrap();
        let mut batch = Overlay::new(&d);
        batch.put(b"b".to_vec(), b"2".to_vec());
        batch.put(b"c".to_vec(), b"2".to_vec());
        let frozen = d.freeze(batch.into_writes());
        // Not applied yet: the store has the old state, the next overlay the new.
        assert_eq!(d.get(b"b").unwrap().unwrap(), b"1");
        assert_eq!(d.get(b"c").unwrap(), None);
        let mut next = Overlay::after(&d, Some(frozen.clone()), Decoded::default());
        assert_eq!(next.get(b"a").unwrap().unwrap(), b"1");
        assert_eq!(next.get(b"b").unwrap().unwrap(), b"2");
        assert!(next.contains(b"c").unwrap());
        assert!(!next.contains(b"d").unwrap());
        // Its own writes come before the frozen batch's.
        next.put(b"c".to_vec(), b"3".to_vec());
        assert_eq!(next.get(b"c").unwrap().unwrap(), b"3");
        // Applied meanwhile (the snapshot released first, as replay does): the same reads.
        next.release_snapshot();
        // Writes made after the freeze land in the same write.
        let mut more = Writes::default();
        more.put(b"d".to_vec(), b"2".to_vec());
        d.apply_frozen(&frozen, &more).unwrap();
        assert_eq!(d.get(b"d").unwrap().unwrap(), b"2");
        assert_eq!(next.get(b"b").unwrap().unwrap(), b"2");
        assert_eq!(next.get(b"c").unwrap().unwrap(), b"3");
        d.commit(next.into_writes()).unwrap();
        assert_eq!(d.get(b"c").unwrap().unwrap(), b"3");
    }

    /// A shared record always stands for its key's value in the overlay: read, written
    /// again as bytes or as a record, rolled back, and handed to the overlay after.
    #[test]
    fn shared_records_follow_every_write_of_their_key() {
        let d = Derived::temporary();
        let mut base = Writes::default();
        base.put(b"k".to_vec(), encode(&1u64));
        d.commit(base).unwrap();
        let mut o = Overlay::new(&d);
        let read = |o: &Overlay<'_>| o.get_shared::<u64>(b"k").unwrap().map(|r| *r);
        assert_eq!(read(&o), Some(1));
        o.put_encoded(b"k".to_vec(), &2u64);
        assert_eq!(read(&o), Some(2));
        let m = o.mark();
        o.put_record(b"k".to_vec(), 3u64);
        assert_eq!(read(&o), Some(3));
        assert_eq!(o.get_decoded::<u64>(b"k").unwrap(), Some(3));
        o.rollback(m);
        assert_eq!(read(&o), Some(2));
        assert_eq!(o.get_shared::<u64>(b"absent").unwrap(), None);
        // Handed on with the writes they stand for, frozen.
        o.put_record(b"k".to_vec(), 4u64);
        let (writes, decoded) = o.into_parts();
        let frozen = d.freeze(writes);
        let mut next = Overlay::after(&d, Some(frozen), decoded);
        assert_eq!(read(&next), Some(4));
        // Whatever family a key is of, writing it anew drops its record.
        for family in [0u8, 63, 64, 127, 128, 200, 255] {
            let key = vec![family, 1];
            next.put_record(key.clone(), 5u64);
            next.put_encoded(key.clone(), &6u64);
            assert_eq!(next.get_shared::<u64>(&key).unwrap().map(|r| *r), Some(6));
        }
    }

    /// Records are kept up to their bound in bytes, counted by key and stored value: the
    /// one that would pass it drops them all first; a record written anew gives its
    /// bytes back.
    #[test]
    fn decoded_records_are_held_to_their_stored_bytes() {
        let mut decoded = Decoded::with_bytes_max(100);
        let record = |n: u64| -> Shared { Arc::new(n) };
        decoded.insert(b"fa".to_vec(), record(1), 38);
        decoded.insert(b"fb".to_vec(), record(2), 38);
        assert_eq!(decoded.bytes, 80);
        decoded.insert(b"fa".to_vec(), record(3), 18);
        assert_eq!(decoded.bytes, 60, "a record replaced gives its bytes back");
        assert!(decoded.get(b"fa").is_some() && decoded.get(b"fb").is_some());
        decoded.insert(b"fc".to_vec(), record(4), 48);
        assert!(decoded.get(b"fa").is_none() && decoded.get(b"fb").is_none());
        assert!(decoded.get(b"fc").is_some());
        assert_eq!(decoded.bytes, 50);
        decoded.written(b"fc");
        assert_eq!(decoded.bytes, 0);
        // A hundred thousand facilities' records, a few hundred bytes each, are all kept:
        // a report reads its facility's, in no order within a month.
        let mut decoded = Decoded::default();
        for n in 0..100_000u64 {
            decoded.insert(facility_key_of(n), record(n), 400);
        }
        assert!((0..100_000).all(|n| decoded.get(&facility_key_of(n)).is_some()));
    }

    fn facility_key_of(n: u64) -> Vec<u8> {
        key(family::FACILITY, &[format!("F-{n:05}").as_bytes()])
    }

    #[test]
    fn sequences_grow_without_decoding_and_read_back_in_order() {
        let once = append_encoded(None, [(1u64, "a".to_string())]);
        let twice = append_encoded(Some(once), [(2u64, "b".to_string()), (3, "c".into())]);
        assert_eq!(twice[0], FORMAT_VERSION);
        let back: Vec<(u64, String)> = decode_sequence(b"k", &twice).unwrap();
        assert_eq!(back, [(1, "a".into()), (2, "b".into()), (3, "c".into())]);
        assert!(decode_sequence::<(u64, String)>(b"k", &twice[..twice.len() - 1]).is_err());
        // Strings read back borrowed from the stored bytes are the strings written.
        let borrowed: Vec<(u64, &str)> = decode_sequence(b"k", &twice).unwrap();
        assert_eq!(borrowed, [(1, "a"), (2, "b"), (3, "c")]);
    }

    #[test]
    fn a_sled_index_of_an_older_version_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("conf"), b"sled").unwrap();
        let refused = Derived::open(dir.path()).err().unwrap();
        assert!(
            matches!(refused, DerivedError::Superseded { .. }),
            "{refused:?}"
        );
        assert!(
            refused.to_string().contains("dcledger reindex"),
            "{refused}"
        );
        std::fs::remove_file(dir.path().join("conf")).unwrap();
        let opened = Derived::open(dir.path()).unwrap();
        opened.commit(Writes::default()).unwrap();
        assert_eq!(opened.get(b"k").unwrap(), None);
    }

    #[test]
    fn a_listing_rolled_back_or_replaced_is_not_read_from_the_cache() {
        let d = Derived::temporary();
        let mut o = Overlay::new(&d);
        let m = o.mark();
        o.put_listing(
            5,
            &ListingRef {
                owner: "lot-1",
                terms: &["a"],
            },
        );
        assert_eq!(o.listing(5).unwrap().unwrap().owner, "lot-1");
        o.rollback(m);
        assert!(o.listing(5).unwrap().is_none());
        o.put_listing(
            5,
            &ListingRef {
                owner: "lot-2",
                terms: &["b"],
            },
        );
        assert_eq!(o.listing(5).unwrap().unwrap().terms, ["b"]);
    }

    #[test]
    fn values_carry_a_version() {
        let bytes = encode(&(7u64, "x".to_string()));
        assert_eq!(bytes[0], FORMAT_VERSION);
        let back: (u64, String) = decode(b"k", &bytes).unwrap();
        assert_eq!(back, (7, "x".into()));
        let mut wrong = bytes.clone();
        wrong[0] = 99;
        assert!(decode::<(u64, String)>(b"k", &wrong).is_err());
    }
}
