//! The ledger: one writer that admits batches, makes them durable and signs checkpoints,
//! and any number of `Reader`s. Ties together ingest (judging), the segment log (truth),
//! derived state (`store`, a redb file) and the tree (its tiles, `log::tiles`).
//!
//! Order of a commit, which is what makes a crash at any instant safe: judge every entry
//! in an overlay; write all admitted leaves to the segment log and fdatasync; write the
//! tiles the new leaves complete and the partial tiles of the new size; apply the
//! overlay, leaf locations and the `Applied` marker to derived state in one atomic
//! write; publish the new view to readers; replace the `checkpoint` file; remove the
//! partial tiles that full ones replaced; only then acknowledge. Derived state may lag
//! the log after a crash; `open` replays the difference. It can never lead it. Tiles may
//! lead derived state (`open` removes
//! what lies beyond and catch-up writes it again) or be lost (`open` rebuilds them).

mod group;
mod layout;
mod lock;
mod postings;
mod reader;
mod replay;
mod tiling;
mod unlocked;
pub mod witnessing;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

pub use group::{CommitHandle, CommitStats, Committer, SubmitError};
pub use layout::Change;
pub use lock::{Holder, PID_FILE};
pub use reader::{
    ChangeLog, ConsistencyProof, EntryFilter, InclusionProof, Reader, SignerView, StoredEntry,
};
pub use replay::{Progress, QUIET, VerifyReport};
pub use unlocked::Unlocked;

use crate::dates;
use crate::dirlock::DirLock;
use crate::domain::rules::Touch;
use crate::entry::{self, EntryDraft, Kind};
use crate::ingest::{self, Signatures};
use crate::keys::{self, KeyError, PublicKey};
use crate::log::checkpoint::{self, Checkpoint};
use crate::log::export::{ExportError, read_checkpoint};
use crate::log::layout::TILE_WIDTH;
use crate::log::merkle::{self, Frontier, Hash};
use crate::log::segment::{Position, SEGMENTS_DIR, SegmentError, SegmentLog};
use crate::log::tiles::{Syncs, TileError, TileStore, TileWriter};
use crate::registry::{AdmitError, GENESIS_KEY, GenesisRecord};
use crate::reject::BatchRejection;
use crate::store::derived::{APPLIED_KEY, Applied, Decoded, Derived, DerivedError, Overlay};
use layout::Landed;

/// Where ledgers made before the log key moved out of the data directory kept it
/// (PROTOCOL §11): still read, with a warning, when no key is given.
pub const LOG_KEY_FILE: &str = "log-key.pem";
pub const INDEX_DIR: &str = "index";
/// Where a rebuild moves the derived store it replaces (`index`), to remove it beside the
/// rebuild rather than before: unlinking a file of hundreds of MB waits on the disk. A
/// writer that finds it (left by a rebuild that was stopped) removes it. The tiles are
/// not moved: the rebuild writes over them (`TileWriter::over_earlier`).
pub const REMOVING_DIR: &str = "removing";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error(transparent)]
    Derived(#[from] DerivedError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Tiles(TileError),
    #[error(transparent)]
    Rejected(#[from] BatchRejection),
    #[error("{path} already holds files; `init` needs a new or empty directory")]
    AlreadyInitialised { path: PathBuf },
    #[error("{path} holds no ledger (no {SEGMENTS_DIR}/); create one with `dcledger init`")]
    NotInitialised { path: PathBuf },
    #[error("origin {0:?} is invalid: use 1-255 characters of [A-Za-z0-9._/:-]")]
    BadOrigin(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("leaf {index} is refused when replayed from the segments: {reason}")]
    Replay { index: u64, reason: String },
    #[error(
        "the log key given ({found}) is not the checkpoint key fixed at genesis ({expected}); \
         give this ledger's own key (--log-key FILE, or [log] key in the configuration file)"
    )]
    WrongLogKey { expected: String, found: String },
    #[error(
        "the ledger at {path} is being written by {holder}: one process writes a ledger; stop \
         that one, or read through its HTTP API"
    )]
    Locked { path: PathBuf, holder: Holder },
    #[error(
        "the ledger at {path} needs its log key, which signs its checkpoints and lives outside \
         the data directory: give it with --log-key FILE, or as [log] key in the configuration \
         file"
    )]
    NoLogKey { path: PathBuf },
    #[error(
        "the ledger at {path} holds {behind} entries that its derived state has not applied (its \
         writer stopped without closing it): open it once with its log key (`dcledger serve`, \
         `append` or `reindex` with --log-key FILE), which recovers it, then read it"
    )]
    NeedsRecovery { path: PathBuf, behind: u64 },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Verify(String),
    #[error("the ledger stopped accepting entries after a storage failure; restart it")]
    Stopped,
    #[error(transparent)]
    LogFiles(#[from] crate::log::export::ExportError),
    #[error("the system clock reads {0}: set the clock right, then try again")]
    Clock(String),
}

/// Entries this process has made durable in any ledger, by any path (HTTP, bulk, the
/// demo's load): what `/metrics` reports as accepted.
static ENTRIES_APPENDED: AtomicU64 = AtomicU64::new(0);

/// See `ENTRIES_APPENDED`.
pub fn entries_appended_by_this_process() -> u64 {
    ENTRIES_APPENDED.load(Ordering::Relaxed)
}

/// One entry of an acknowledged batch: admitted and written by it, or found in the
/// ledger already (a retry, PROTOCOL §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    pub index: u64,
    pub leaf_hash: Hash,
    /// The ledger held this very envelope (the same entry and signature) before the
    /// batch came: nothing was written for it. A batch is wholly new or wholly present.
    pub already_present: bool,
}

/// A durable batch: its entries and the checkpoint that first included them.
#[derive(Clone, Debug)]
pub struct Receipt {
    pub entries: Vec<Appended>,
    pub checkpoint: Arc<str>,
}

/// The outcome of one all-or-nothing batch of a group commit.
pub type BatchOutcome = Result<Vec<Appended>, BatchRejection>;

/// What a group commit does with the batches after one it refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterRefusal {
    /// Judges them as if the refused one had not come: independent submitters (PROTOCOL §10).
    JudgeTheRest,
    /// Judges none of them and leaves them out of the outcomes: one input read in order
    /// (`append`) stops at its first refusal.
    Stop,
}

/// Where the leaves admitted so far in a group commit go, by signer and seq.
type Pending = std::collections::HashMap<(PublicKey, u64), u64>;

/// What an accepted batch of a group commit amounts to.
enum Span {
    /// Written now, at these indexes.
    New(std::ops::Range<u64>),
    /// Every envelope already in the ledger: nothing written.
    Present(Vec<Appended>),
}

impl Span {
    /// The batch's entries; `hashes` are the leaf hashes of the group's new leaves,
    /// from index `base`.
    fn entries(self, base: u64, hashes: &[Hash]) -> Vec<Appended> {
        match self {
            Span::New(range) => range
                .map(|index| Appended {
                    index,
                    leaf_hash: hashes[(index - base) as usize],
                    already_present: false,
                })
                .collect(),
            Span::Present(found) => found,
        }
    }
}

/// The refusal of a batch that mixes envelopes already in the ledger with new ones
/// (PROTOCOL §3), naming the first present one.
fn mixed_batch(position: usize, index: u64) -> BatchRejection {
    BatchRejection {
        position,
        rejection: crate::reject::Rejection::conflict(
            "/entry",
            format!(
                "this entry and signature are already in the ledger, at index {index}, but the \
                 batch also holds new entries; a batch is written whole or not at all: submit \
                 the new entries without the ones already present"
            ),
        ),
    }
}

/// What readers see: replaced whole after each commit, so a reader never observes a
/// size whose nodes, locations or checkpoint are not yet in derived state.
#[derive(Clone, Debug)]
pub(crate) struct View {
    pub size: u64,
    pub root: Hash,
    pub checkpoint: Arc<str>,
}

pub struct Ledger {
    /// The data directory.
    dir: PathBuf,
    log: SegmentLog,
    derived: Arc<Derived>,
    frontier: Frontier,
    /// The tree as tiles on disk, grown with the log.
    tiles: TileWriter,
    /// `None` when opened to read: such a ledger signs nothing, so it cannot append.
    log_key: Option<SigningKey>,
    genesis: Option<GenesisRecord>,
    applied: Applied,
    view: Arc<RwLock<View>>,
    reader: Reader,
    stopped: bool,
    /// The records admission read or wrote in the last group commit, as they stand in
    /// derived state, which only this ledger writes (`Decoded`).
    decoded: Decoded,
    /// Held for the ledger's life: one process writes a ledger at a time.
    _lock: DirLock,
}

/// The key that signs a ledger's checkpoints, and where it came from.
pub struct LogKey {
    pub key: SigningKey,
    pub path: PathBuf,
    /// The file lies inside the data directory, so any copy or backup of the directory
    /// can sign checkpoints (PROTOCOL §11): the caller should warn.
    pub inside_data: bool,
}

/// Finds the key that signs the checkpoints of the ledger in `dir` (PROTOCOL §11): the file
/// `given` (`--log-key`, or the configuration's `[log] key`), or else, for a ledger made
/// before the key moved out of the data directory, the `log-key.pem` it still holds.
pub fn find_log_key(dir: &Path, given: Option<&Path>) -> Result<LogKey, LedgerError> {
    let path = match given {
        Some(path) => path.to_path_buf(),
        None => {
            let legacy = dir.join(LOG_KEY_FILE);
            if !legacy.exists() {
                return Err(LedgerError::NoLogKey {
                    path: dir.to_path_buf(),
                });
            }
            legacy
        }
    };
    let key = keys::load_signing_key(&path)?;
    let inside_data = lock::is_inside(&path, dir);
    Ok(LogKey {
        key,
        path,
        inside_data,
    })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LedgerError + '_ {
    move |source| LedgerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Refuses a log key other than the checkpoint key genesis fixed.
fn check_log_key(genesis: &GenesisRecord, log_key: &SigningKey) -> Result<(), LedgerError> {
    let found = log_key.verifying_key().to_bytes();
    if genesis.checkpoint_key != found {
        return Err(LedgerError::WrongLogKey {
            expected: hex::encode(genesis.checkpoint_key),
            found: hex::encode(found),
        });
    }
    Ok(())
}

/// Leaves derived state has not applied are replayed from the segments, trusting them or
/// (plain `reindex`) re-checking every signature. Those the last signed checkpoint covers
/// (the `checkpoint` file leads derived state after a crash, or when the index is lost)
/// are first held to it: an edit to them, or another history in their place however
/// validly signed (a wrong backup restored), is refused, never signed into a new
/// checkpoint. The hold reads the note when the ledger opens,
/// before anything rewrites the file; a rebuild (derived state holds no leaves, so
/// nothing rewrites the file before its replay ends) scans the segments beside the
/// replay's judging, which only reads (`replay::replay`'s `before_admitting`).
struct CheckpointHold(Unlocked);

impl CheckpointHold {
    /// The hold on a replay from leaf `applied`, if the checkpoint file (`signed`, as
    /// `read_signed` read it) names more. Segments that cannot be opened at all (none
    /// left, out of order, a header that is not ours) are refused: no recovery makes them
    /// the checkpoint's.
    fn of(
        dir: &Path,
        signed: Option<(String, Checkpoint)>,
        applied: u64,
    ) -> Result<Option<CheckpointHold>, LedgerError> {
        match signed {
            Some((note, cp)) if cp.size > applied => {
                Unlocked::at(dir, note, cp).map(|u| Some(CheckpointHold(u)))
            }
            _ => Ok(None),
        }
    }

    /// The leaves the hold covers: the checkpoint's size.
    fn size(&self) -> u64 {
        self.0.size()
    }

    /// The leaves a replay under `hold` reads without their checksums: those the hold
    /// proves by the signed root before any is admitted, in a trusted replay
    /// (`prove`); none otherwise.
    fn proven(hold: Option<&CheckpointHold>, signatures: &Signatures<'_>) -> u64 {
        match (hold, signatures) {
            (Some(hold), Signatures::Trust) => hold.size(),
            _ => 0,
        }
    }

    /// Whether the segments give the held checkpoint's root, refusing a damaged record
    /// too: for a trusted replay, which reads the leaves the hold covers without their
    /// checksums (`SegmentLog::scan_proven`) and so would not find the damage itself.
    /// Each leaf's hash is handed to `leaf_hashes`, in order from leaf 0.
    fn prove(&self, leaf_hashes: impl FnMut(Hash)) -> Result<(), LedgerError> {
        self.0.check_segments_against_checkpoint(leaf_hashes)
    }

    /// Whether the segments give the held checkpoint's root.
    fn check(&self) -> Result<(), LedgerError> {
        match self.prove(|_| {}) {
            // Segments that cannot give the checkpoint's leaves at all (a record cut
            // short, damaged or missing) are refused by the segment log's open, which
            // counts those leaves acknowledged (`read_signed`), or by the replay's scan,
            // either naming the leaf: left to them. Nothing else is: a hold that passed on
            // any error of the segments once passed every ledger of more than one segment
            // file unread.
            Err(LedgerError::Segment(
                SegmentError::Corrupt { .. } | SegmentError::Missing { .. },
            )) => Ok(()),
            other => other,
        }
    }
}

/// The `checkpoint` file's note and what it says; `None` for a ledger made before there
/// were checkpoint files. Each leaf it counts was synced to its segment before the note
/// was written, so each was acknowledged: the segments must still hold them, whatever
/// derived state says, and a ledger that lost some is refused rather than signed anew
/// without them.
fn read_signed(dir: &Path) -> Result<Option<(String, Checkpoint)>, LedgerError> {
    match read_checkpoint(dir) {
        Ok(signed) => Ok(Some(signed)),
        Err(ExportError::NoCheckpoint { .. }) => Ok(None),
        Err(e) => Err(LedgerError::LogFiles(e)),
    }
}

fn require_ledger(dir: &Path) -> Result<(), LedgerError> {
    if dir.join(SEGMENTS_DIR).is_dir() {
        Ok(())
    } else {
        Err(LedgerError::NotInitialised {
            path: dir.to_path_buf(),
        })
    }
}

/// How `Ledger::open_locked` comes to derived state that holds every leaf.
#[derive(Clone, Copy)]
enum Derivation {
    /// From what derived state holds, caught up with the segments (after a crash).
    CaughtUp,
    /// Rebuilt from the first leaf (`reindex`): the store is a new one, and the tiles
    /// are written over the earlier build's (`TileWriter::over_earlier`).
    Rebuilt,
}

/// Removes the derived state a rebuild replaced (`REMOVING_DIR`), if any is left.
fn remove_replaced(dir: &Path) -> Result<(), LedgerError> {
    let removing = dir.join(REMOVING_DIR);
    match std::fs::remove_dir_all(&removing) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&removing)(e)),
        _ => Ok(()),
    }
}

/// Takes the lock of the ledger in `dir`, whose files are its owner's only from then on.
fn lock_ledger(dir: &Path) -> Result<DirLock, LedgerError> {
    require_ledger(dir)?;
    lock::private_files();
    let lock = lock::lock(dir)?;
    lock::record_holder(dir)?;
    Ok(lock)
}

/// The projections a reading command (the audit, the reports) reads, and what keeps
/// them open.
pub struct ReadProjections {
    reader: Reader,
    /// The ledger opened under its lock, when it was; held so that no writer starts on
    /// its derived state while it is read.
    _ledger: Option<Ledger>,
}

impl ReadProjections {
    pub fn reader(&self) -> Reader {
        self.reader.clone()
    }
}

/// Opens the projections of the ledger in `dir` for a reading command (PROTOCOL §11). A
/// ledger no other process writes, in a directory this process may write, is read
/// from its own derived state under its lock (at once, whatever its size). One that
/// another process serves, or a read-only copy, is read without the lock: its
/// projections are derived again from the segments (`Unlocked::with_projections`),
/// which takes time in proportion to the ledger, and `replaying` is told why first.
pub fn read_projections(
    dir: &Path,
    replaying: impl FnOnce(&str),
) -> Result<ReadProjections, LedgerError> {
    require_ledger(dir)?;
    let why = if rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).is_err() {
        "it is read-only here".to_string()
    } else {
        match lock::lock(dir) {
            Ok(lock) => {
                let ledger = Ledger::open_locked(
                    dir,
                    lock,
                    None,
                    Signatures::Trust,
                    replay::QUIET,
                    Derivation::CaughtUp,
                )?;
                return Ok(ReadProjections {
                    reader: ledger.reader(),
                    _ledger: Some(ledger),
                });
            }
            Err(LedgerError::Locked { holder, .. }) => format!("it is being written by {holder}"),
            Err(e) => return Err(e),
        }
    };
    let unlocked = Unlocked::open(dir)?;
    replaying(&format!(
        "{} is not opened under its lock ({why}): deriving its projections again from the \
         segments, as of its checkpoint file",
        dir.display()
    ));
    Ok(ReadProjections {
        reader: unlocked.with_projections()?,
        _ledger: None,
    })
}

impl Ledger {
    /// Creates a ledger in `dir` (new or empty) and writes entry 0, `ledger.genesis`,
    /// signed by the authority key, and the first checkpoint, signed by `log_key`. The
    /// log key is not stored: it stays where the caller keeps it, outside the data
    /// directory (PROTOCOL §11), and every later writer is given it.
    pub fn init(
        dir: &Path,
        origin: &str,
        name: &str,
        authority_key: &SigningKey,
        log_key: &SigningKey,
    ) -> Result<Ledger, LedgerError> {
        if !checkpoint::valid_origin(origin) {
            return Err(LedgerError::BadOrigin(origin.to_string()));
        }
        lock::private_files();
        lock::create_private_dir(dir)?;
        // Locked before it is judged empty: a directory a writer holds is refused, even
        // one whose files were all deleted under it.
        let lock = lock::lock(dir)?;
        if std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
            return Err(LedgerError::AlreadyInitialised {
                path: dir.to_path_buf(),
            });
        }
        lock::record_holder(dir)?;
        let mut ledger = Ledger::open_locked(
            dir,
            lock,
            Some(log_key.clone()),
            Signatures::Trust,
            replay::QUIET,
            Derivation::CaughtUp,
        )?;
        let ts =
            dates::spell_instant(dates::now()).map_err(|e| LedgerError::Clock(e.to_string()))?;
        let genesis = entry::sign_envelope(
            authority_key,
            origin,
            EntryDraft {
                kind: Kind::LedgerGenesis,
                seq: 1,
                ts: &ts,
                body: json!({
                    "origin": origin,
                    "name": name,
                    "checkpoint_key": keys::public_hex(&log_key.verifying_key()),
                }),
            },
        )
        .map_err(|e| LedgerError::BadRequest(e.to_string()))?;
        ledger.append_batch(vec![genesis])??;
        Ok(ledger)
    }

    /// Opens the ledger in `dir` to write: recovers the segment log (trimming an
    /// unacknowledged tail), rebuilds or catches up derived state from it, and checks
    /// that `log_key` is the checkpoint key genesis fixed.
    pub fn open(dir: &Path, log_key: SigningKey) -> Result<Ledger, LedgerError> {
        let lock = lock_ledger(dir)?;
        remove_replaced(dir)?;
        // Catching up after a crash replays leaves this ledger itself checked moments
        // before; their checksums guard them since.
        Ledger::open_locked(
            dir,
            lock,
            Some(log_key),
            Signatures::Trust,
            replay::QUIET,
            Derivation::CaughtUp,
        )
    }

    /// Opens the ledger in `dir` to read, without its log key: it cannot append, and a
    /// ledger whose derived state must first catch up with the segments (after a crash)
    /// is refused, since catching up signs a checkpoint.
    /// Taking the lock, it writes no pid file: it is no writer.
    pub fn open_to_read(dir: &Path) -> Result<Ledger, LedgerError> {
        require_ledger(dir)?;
        Ledger::open_locked(
            dir,
            lock::lock(dir)?,
            None,
            Signatures::Trust,
            replay::QUIET,
            Derivation::CaughtUp,
        )
    }

    /// Opens the ledger in `dir` under `lock`, its derived state caught up as
    /// `derivation` says.
    fn open_locked(
        dir: &Path,
        lock: DirLock,
        log_key: Option<SigningKey>,
        catch_up_signatures: Signatures<'_>,
        progress: Progress<'_>,
        derivation: Derivation,
    ) -> Result<Ledger, LedgerError> {
        let index = dir.join(INDEX_DIR);
        let derived = Arc::new(match derivation {
            Derivation::CaughtUp => Derived::open(&index)?,
            Derivation::Rebuilt => Derived::open_to_rebuild(&index)?,
        });
        let applied = derived.applied()?;
        // Leaves derived state has applied were acknowledged: never a torn tail. So were
        // those the last signed checkpoint counts, which a lost index no longer does.
        let floor = applied.as_ref().map_or(0, |a| a.end.index);
        let signed = read_signed(dir)?;
        let signed_size = signed.as_ref().map_or(0, |(_, cp)| cp.size);
        let mut hold = if log_key.is_some() {
            CheckpointHold::of(dir, signed, floor)?
        } else {
            None
        };
        if applied.is_some()
            && let Some(hold) = hold.take()
        {
            // Derived state holds leaves: its own note replaces the checkpoint file's
            // below, as soon as opening the tiles has removed those beyond it (an
            // unlocked reader reads the tiles of the size the file names), so the
            // segments are held to the file's note first. A rebuild holds none and
            // leaves the file alone until its replay is done: it is held beside its
            // judging.
            hold.check()?;
        }
        // A trusted rebuild holds the leaves the hold covers to its root before admitting
        // any (`catch_up`): their checksums need not be read here either. Opening to
        // write reads them all, and refuses a damaged one there and then.
        let proven = match derivation {
            Derivation::Rebuilt => CheckpointHold::proven(hold.as_ref(), &catch_up_signatures),
            Derivation::CaughtUp => 0,
        };
        let (log, _recovery) = SegmentLog::open_proven(dir, floor.max(signed_size), proven)?;
        let applied = applied.unwrap_or(Applied {
            end: Position::START,
            last_accepted: i64::MIN,
            checkpoint: String::new(),
        });
        if log_key.is_none() && log.size() > applied.end.index {
            // A reader leaves the tiles alone (resuming them at a size derived state has
            // not caught up with would remove the tiles beyond it).
            return Err(LedgerError::NeedsRecovery {
                path: dir.to_path_buf(),
                behind: log.size() - applied.end.index,
            });
        }
        let tile_store = Arc::new(TileStore::new(dir));
        let (tiles, frontier) = match derivation {
            Derivation::CaughtUp => {
                tiling::open_tiles(&tile_store, &log, applied.end.index, &applied.checkpoint)?
            }
            Derivation::Rebuilt => {
                assert_eq!(
                    applied.end.index, 0,
                    "a rebuild begins with a store of its own, which holds no leaf"
                );
                (TileWriter::over_earlier(&tile_store), Frontier::new())
            }
        };
        tiling::write_checkpoint_file(dir, &applied.checkpoint)?;
        let genesis = derived.get_decoded::<GenesisRecord>(GENESIS_KEY)?;
        let view = Arc::new(RwLock::new(View {
            size: applied.end.index,
            root: frontier.root(),
            checkpoint: Arc::from(applied.checkpoint.as_str()),
        }));
        let reader = Reader::new(
            dir,
            log.dir().to_path_buf(),
            derived.clone(),
            tile_store,
            view.clone(),
            reader::Leaves::Located,
        )?;
        let mut ledger = Ledger {
            dir: dir.to_path_buf(),
            log,
            derived,
            frontier,
            tiles,
            log_key,
            genesis,
            applied,
            view,
            reader,
            stopped: false,
            decoded: Decoded::default(),
            _lock: lock,
        };
        if let (Some(g), Some(log_key)) = (&ledger.genesis, &ledger.log_key) {
            check_log_key(g, log_key)?;
        }
        if ledger.log.size() > ledger.applied.end.index {
            ledger.catch_up(catch_up_signatures, hold.as_ref(), progress)?;
        } else if let Some(hold) = &hold {
            hold.check()?;
        }
        Ok(ledger)
    }

    /// Deletes derived state and rebuilds it from the segments, checking every
    /// signature again: nothing reaches derived state that the rules would refuse now.
    pub fn reindex(dir: &Path, log_key: SigningKey) -> Result<Ledger, LedgerError> {
        Ledger::reindex_reporting(dir, log_key, false, replay::QUIET)
    }

    /// `reindex` (`trust`: `reindex_trusting`), telling `progress` how far it is.
    pub fn reindex_reporting(
        dir: &Path,
        log_key: SigningKey,
        trust: bool,
        progress: Progress<'_>,
    ) -> Result<Ledger, LedgerError> {
        let lock = lock_ledger(dir)?;
        let signatures = if trust {
            Signatures::Trust
        } else {
            // The origin is learnt from the genesis entry as the replay reaches it.
            Signatures::Verify { origin: None }
        };
        Ledger::rebuild(dir, lock, log_key, signatures, progress)
    }

    /// Deletes derived state and rebuilds it from the segments at the speed of the
    /// rules alone: the segments' checksums and the checks every leaf passed when it was
    /// accepted are trusted, once the segments are shown to give the root of the last
    /// signed checkpoint (`CheckpointHold`). `verify` and `reindex` re-check
    /// every signature.
    pub fn reindex_trusting(dir: &Path, log_key: SigningKey) -> Result<Ledger, LedgerError> {
        Ledger::reindex_reporting(dir, log_key, true, replay::QUIET)
    }

    fn rebuild(
        dir: &Path,
        lock: DirLock,
        log_key: SigningKey,
        signatures: Signatures<'_>,
        progress: Progress<'_>,
    ) -> Result<Ledger, LedgerError> {
        remove_replaced(dir)?;
        // The derived store is replaced whole; the tiles are rewritten over the earlier
        // build's (`TileWriter::over_earlier`), which keeps those that are right.
        let removing = dir.join(REMOVING_DIR);
        let index = dir.join(INDEX_DIR);
        if index.exists() {
            lock::create_private_dir(&removing)?;
            std::fs::rename(&index, removing.join(INDEX_DIR)).map_err(io(&index))?;
        }
        std::thread::scope(|scope| {
            let removal = scope.spawn(|| remove_replaced(dir));
            let rebuilt = Ledger::open_locked(
                dir,
                lock,
                Some(log_key),
                signatures,
                progress,
                Derivation::Rebuilt,
            );
            let removed = removal
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            let mut ledger = rebuilt?;
            removed?;
            ledger.tiles.finish_over_earlier()?;
            Ok(ledger)
        })
    }

    pub fn reader(&self) -> Reader {
        self.reader.clone()
    }

    pub fn size(&self) -> u64 {
        self.log.size()
    }

    /// The latest signed checkpoint note.
    pub fn checkpoint(&self) -> &str {
        &self.applied.checkpoint
    }

    /// Appends one all-or-nothing batch. The outer error is a storage failure (nothing
    /// acknowledged); the inner one a refusal.
    pub fn append_batch(
        &mut self,
        envelopes: Vec<Value>,
    ) -> Result<Result<Receipt, BatchRejection>, LedgerError> {
        let (mut outcomes, checkpoint) = self.append_groups(vec![envelopes])?;
        Ok(match outcomes.pop() {
            Some(Ok(entries)) => Ok(Receipt {
                entries,
                checkpoint,
            }),
            Some(Err(rejection)) => Err(rejection),
            None => Ok(Receipt {
                entries: Vec::new(),
                checkpoint,
            }),
        })
    }

    /// Group commit: judges each batch in order (a refused batch leaves no trace and
    /// does not disturb the others), then makes every admitted leaf durable with one
    /// sync and signs one checkpoint. Returns each batch's outcome and the checkpoint.
    pub fn append_groups(
        &mut self,
        groups: Vec<Vec<Value>>,
    ) -> Result<(Vec<BatchOutcome>, Arc<str>), LedgerError> {
        let now = self.clock();
        let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
        let origin = ingest::submission_origin(self.origin(), groups.iter().flatten().next());
        let mut prepared = ingest::prepare_all(
            groups.into_iter().flatten().map(|e| (e, now)).collect(),
            Signatures::Verify {
                origin: origin.as_deref(),
            },
        )
        .into_iter();
        let groups = sizes
            .into_iter()
            .map(|n| prepared.by_ref().take(n).collect())
            .collect();
        self.append_prepared(groups, AfterRefusal::JudgeTheRest)
    }

    /// The ledger's origin (PROTOCOL §5), once its genesis entry has fixed it: what every
    /// entry signature must be made for (PROTOCOL §3).
    pub fn origin(&self) -> Option<&str> {
        self.genesis.as_ref().map(|g| g.origin.as_str())
    }

    /// The ledger clock: the wall clock, but never earlier than the last batch's, so
    /// `accepted` never runs backwards whatever the wall clock does.
    pub fn clock(&self) -> dates::UnixSeconds {
        dates::now().max(self.applied.last_accepted)
    }

    /// The second half of `append_groups`, for callers that prepared envelopes
    /// themselves (`ingest::prepare_all`), e.g. on other threads while the previous
    /// batch was being synced.
    pub fn append_prepared(
        &mut self,
        groups: Vec<Vec<Result<ingest::Prepared, crate::reject::Rejection>>>,
        after_refusal: AfterRefusal,
    ) -> Result<(Vec<BatchOutcome>, Arc<str>), LedgerError> {
        if self.stopped {
            return Err(LedgerError::Stopped);
        }
        if self.log_key.is_none() {
            return Err(self.no_log_key());
        }
        let accepted = self.clock();
        let accepted_text =
            dates::spell_instant(accepted).map_err(|e| LedgerError::Clock(e.to_string()))?;
        let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
        let mut prepared = groups.into_iter().flatten();

        let derived = self.derived.clone();
        let mut overlay = Overlay::after(&derived, None, std::mem::take(&mut self.decoded));
        let base = self.log.size();
        let mut next = base;
        let mut leaves: Vec<Vec<u8>> = Vec::new();
        // The kind, signer, seq and facilities of each admitted leaf, for its postings.
        let mut leaf_terms: Vec<(Kind, PublicKey, u64, Vec<Touch>)> = Vec::new();
        // Where the entries admitted by earlier batches of this group will be, by signer
        // and seq: a retry may come in the same group as the batch it repeats.
        let mut pending = Pending::default();
        let mut spans: Vec<Result<Span, BatchRejection>> = Vec::new();
        let mut stopped = false;
        for size in sizes {
            if stopped {
                prepared.by_ref().take(size).for_each(drop);
                continue;
            }
            let mark = overlay.mark();
            let start = next;
            let mut refused = None;
            let mut batch_leaves = Vec::with_capacity(size);
            let mut present: Vec<(usize, Appended)> = Vec::new();
            for (position, p) in prepared.by_ref().take(size).enumerate() {
                if refused.is_some() {
                    continue; // drain the rest of this batch
                }
                let p = match p {
                    Ok(p) => p,
                    Err(rejection) => {
                        refused = Some(BatchRejection {
                            position,
                            rejection,
                        });
                        continue;
                    }
                };
                if let Some(found) = self.find_present(&overlay, &pending, &leaves, base, &p)? {
                    present.push((position, found));
                    continue;
                }
                match ingest::admit(&mut overlay, next, accepted, &p.entry) {
                    Ok(admitted) => {
                        let leaf = entry::leaf_bytes(&accepted_text, &p.entry_jcs, &p.sig_hex);
                        let e = &p.entry;
                        batch_leaves.push((leaf, (e.kind, e.signer, e.seq, admitted.touches)));
                        next += 1;
                    }
                    Err(AdmitError::Rejected(rejection)) => {
                        refused = Some(BatchRejection {
                            position,
                            rejection,
                        })
                    }
                    Err(AdmitError::Store(e)) => return Err(e.into()),
                }
            }
            // PROTOCOL §3: a batch is wholly new or wholly present; one that mixes them is
            // refused, naming the first envelope already present.
            if refused.is_none()
                && !batch_leaves.is_empty()
                && let Some((position, found)) = present.first()
            {
                refused = Some(mixed_batch(*position, found.index));
            }
            match refused {
                Some(r) => {
                    overlay.rollback(mark);
                    next = start;
                    spans.push(Err(r));
                    stopped = after_refusal == AfterRefusal::Stop;
                }
                None if batch_leaves.is_empty() => {
                    spans.push(Ok(Span::Present(
                        present.into_iter().map(|(_, found)| found).collect(),
                    )));
                }
                None => {
                    for (leaf, terms) in batch_leaves {
                        pending.insert((terms.1, terms.2), base + leaves.len() as u64);
                        leaves.push(leaf);
                        leaf_terms.push(terms);
                    }
                    spans.push(Ok(Span::New(start..next)));
                }
            }
        }
        if leaves.is_empty() {
            let checkpoint = self.reader.checkpoint();
            return Ok((
                spans
                    .into_iter()
                    .map(|s| s.map(|span| span.entries(base, &[])))
                    .collect(),
                checkpoint,
            ));
        }
        if self.genesis.is_none() {
            self.genesis = overlay.get_decoded(GENESIS_KEY)?;
        }

        let locations = match self.log.append_batch(&leaves) {
            Ok(l) => l,
            Err(e) => {
                // After a failed write or fsync the page cache cannot be trusted: stop.
                self.stopped = true;
                return Err(e.into());
            }
        };
        let mut frontier = self.frontier.clone();
        let hashes: Vec<Hash> = leaves.iter().map(|leaf| merkle::leaf_hash(leaf)).collect();
        layout::grow(&mut frontier, base, &hashes);
        let landed: Vec<Landed> = locations
            .iter()
            .zip(leaf_terms)
            .enumerate()
            .map(|(i, (location, (kind, signer, seq, touches)))| Landed {
                index: base + i as u64,
                location: *location,
                kind,
                signer,
                seq,
                touches,
            })
            .collect();
        layout::record(&mut overlay, &landed)?;
        assert_eq!(
            frontier.size(),
            self.log.size(),
            "tree and log grew together"
        );
        // A commit that completes full tiles by the handful (a bulk append's group: about
        // six and their directories' syncs) writes them unsynced and flushes the device
        // once, as a replay's chunk does, before derived state records the size; a commit
        // of a few entries syncs its one or two tiles each, flushing no more than it must.
        let syncs = if hashes.len() as u64 >= 2 * TILE_WIDTH {
            Syncs::Together
        } else {
            Syncs::EachTile
        };
        let tiles = &mut self.tiles;
        let written = tiles
            .set_syncs(syncs)
            .and_then(|()| tiles.push(&hashes))
            .and_then(|()| tiles.write_partials())
            .and_then(|()| tiles.set_syncs(Syncs::EachTile));
        if let Err(e) = written {
            self.stopped = true;
            return Err(e.into());
        }
        let applied = self.applied_after(&frontier, accepted)?;
        overlay.put_encoded(APPLIED_KEY.to_vec(), &applied);
        let (writes, decoded) = overlay.into_parts();
        if let Err(e) = self.derived.commit(writes) {
            self.stopped = true;
            return Err(e.into());
        }
        self.decoded = decoded;
        let note = applied.checkpoint.clone();
        self.publish(frontier, applied);
        // After publishing: the file never names a size readers do not serve yet.
        if let Err(e) = tiling::write_checkpoint_file(&self.dir, &note) {
            self.stopped = true;
            return Err(e);
        }
        if let Err(e) = self.tiles.prune() {
            self.stopped = true;
            return Err(e.into());
        }
        ENTRIES_APPENDED.fetch_add(self.log.size().saturating_sub(base), Ordering::Relaxed);

        let outcomes = spans
            .into_iter()
            .map(|span| span.map(|span| span.entries(base, &hashes)))
            .collect();
        Ok((outcomes, self.reader.checkpoint()))
    }

    /// The entry this very envelope already is (PROTOCOL §3: a retry), if the ledger holds
    /// it: the signer's entry with the envelope's seq, when it has the same entry and
    /// signature bytes. Looks among the leaves earlier batches of this group admitted
    /// (`pending`, `leaves` from index `base`) and then in the committed ledger.
    fn find_present(
        &self,
        overlay: &Overlay<'_>,
        pending: &Pending,
        leaves: &[Vec<u8>],
        base: u64,
        p: &ingest::Prepared,
    ) -> Result<Option<Appended>, LedgerError> {
        let e = &p.entry;
        if !ingest::seq_taken(overlay, e)? {
            return Ok(None);
        }
        // The leaves derived state holds: those of earlier group commits.
        let committed = self.applied.end.index;
        let (index, leaf): (u64, Cow<'_, [u8]>) = match pending.get(&(e.signer, e.seq)) {
            Some(&at) => match usize::try_from(at - base).ok().and_then(|i| leaves.get(i)) {
                Some(leaf) => (at, Cow::Borrowed(leaf)),
                None => unreachable!("a pending entry's leaf is among the group's leaves"),
            },
            None => match layout::signer_entry(&self.derived, &e.signer, e.seq, committed)? {
                Some(at) => (at, Cow::Owned(self.reader.entry(at)?.leaf)),
                // The seq was taken by an earlier entry of this same batch: a replay.
                None => return Ok(None),
            },
        };
        Ok(
            entry::leaf_holds(&leaf, &p.entry_jcs, &p.sig_hex).then(|| Appended {
                index,
                leaf_hash: merkle::leaf_hash(&leaf),
                already_present: true,
            }),
        )
    }

    fn no_log_key(&self) -> LedgerError {
        LedgerError::NoLogKey {
            path: self.dir.clone(),
        }
    }

    /// The `Applied` marker for the log's current end, with a freshly signed checkpoint.
    fn applied_after(&self, frontier: &Frontier, accepted: i64) -> Result<Applied, LedgerError> {
        let log_key = self.log_key.as_ref().ok_or_else(|| self.no_log_key())?;
        let origin = self
            .genesis
            .as_ref()
            .map(|g| g.origin.clone())
            .ok_or_else(|| LedgerError::Verify("the ledger has no genesis entry".into()))?;
        let cp = Checkpoint {
            origin,
            size: frontier.size(),
            root: frontier.root(),
        };
        Ok(Applied {
            end: self.log.end_position(),
            last_accepted: accepted,
            checkpoint: cp.sign(log_key),
        })
    }

    fn publish(&mut self, frontier: Frontier, applied: Applied) {
        let view = View {
            size: frontier.size(),
            root: frontier.root(),
            checkpoint: Arc::from(applied.checkpoint.as_str()),
        };
        self.frontier = frontier;
        self.applied = applied;
        match self.view.write() {
            Ok(mut v) => *v = view,
            Err(poisoned) => *poisoned.into_inner() = view,
        }
    }

    /// Replays leaves that the log holds but derived state has not applied yet, held to
    /// the signed checkpoint by `hold` where it covers them.
    fn catch_up(
        &mut self,
        signatures: Signatures<'_>,
        hold: Option<&CheckpointHold>,
        progress: Progress<'_>,
    ) -> Result<(), LedgerError> {
        let Some(log_key) = &self.log_key else {
            return Err(LedgerError::NeedsRecovery {
                path: self.dir.clone(),
                behind: self.log.size() - self.applied.end.index,
            });
        };
        let mut state = replay::ReplayState {
            genesis: self.genesis.clone(),
            last_accepted: self.applied.last_accepted,
        };
        // A chunk's tiles are synced together, before its derived state is committed.
        self.tiles.set_syncs(Syncs::Together)?;
        // A trusted replay reads the leaves the hold covers without their checksums: they
        // give the signed root, which proves them, and the hold refuses a damaged one. It
        // hands on the hashes it works out, which the replay then need not work out again.
        let trusted = matches!(signatures, Signatures::Trust);
        let before_admitting = replay::BeforeAdmitting {
            proven: CheckpointHold::proven(hold, &signatures),
            check: |leaf_hashes: &mut dyn FnMut(Hash)| match hold {
                Some(hold) if trusted => hold.prove(leaf_hashes),
                Some(hold) => hold.check(),
                None => Ok(()),
            },
        };
        let tiles = &mut self.tiles;
        let total = self.log.size();
        let replayed = replay::replay(
            &self.log,
            &self.derived,
            self.applied.end,
            &mut state,
            signatures,
            before_admitting,
            |overlay, state, end, hashes| {
                progress(end.index, total);
                // The tiles are the tree: its right edge, and so the chunk's checkpoint,
                // comes from them.
                tiles.push(hashes)?;
                assert_eq!(
                    tiles.size(),
                    end.index,
                    "the tiles hold every replayed leaf"
                );
                tiles.write_partials()?;
                tiles.sync()?;
                // Replay admits only a genesis entry at index 0, so every chunk knows it;
                // a key genesis did not fix signs nothing, not even derived state.
                let genesis = state.genesis.as_ref().ok_or_else(|| {
                    LedgerError::Verify("replay passed leaf 0 without a genesis entry".into())
                })?;
                check_log_key(genesis, log_key)?;
                let cp = Checkpoint {
                    origin: genesis.origin.clone(),
                    size: end.index,
                    root: tiles.frontier().root(),
                };
                overlay.put_encoded(
                    APPLIED_KEY.to_vec(),
                    &Applied {
                        end,
                        last_accepted: state.last_accepted,
                        checkpoint: cp.sign(log_key),
                    },
                );
                Ok(())
            },
        );
        self.tiles.set_syncs(Syncs::EachTile)?;
        replayed?;
        self.genesis = state.genesis;
        let applied = self.derived.applied()?.ok_or_else(|| {
            LedgerError::Verify("catch-up finished without recording its progress".into())
        })?;
        let note = applied.checkpoint.clone();
        self.publish(self.tiles.frontier(), applied);
        tiling::write_checkpoint_file(&self.dir, &note)?;
        self.tiles.prune()?;
        Ok(())
    }

    /// Re-checks the whole ledger independently of derived state: every record checksum,
    /// signature, seq chain and authorization, the root, and the latest checkpoint.
    pub fn verify(&self) -> Result<VerifyReport, LedgerError> {
        replay::verify(&self.log, &self.reader, replay::QUIET)
    }

    /// Flushes derived state; called on clean shutdown so the next open need not replay.
    pub fn close(self) -> Result<(), LedgerError> {
        self.derived.flush()?;
        Ok(())
    }

    /// The verifier key string of the log (PROTOCOL §5), once genesis has fixed the origin.
    pub fn verifier_key(&self) -> Option<String> {
        self.reader.verifier_key()
    }
}
