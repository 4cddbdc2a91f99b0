//! Replaying leaves from the segments through ingest's `admit`: how derived state is
//! caught up after a crash, rebuilt by `reindex`, and independently re-derived by
//! `verify`. The same admission code that judged an entry at ingest judges it here, so
//! a ledger that replays cleanly is one whose every entry the rules accept.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::rc::Rc;
use std::sync::mpsc;

use super::LedgerError;
use super::layout::{self, Landed};
use super::reader::Reader;
use crate::dates::UnixSeconds;
use crate::domain::rules;
use crate::ingest::{self, Admissible, Signatures};
use crate::leaves;
use crate::limits::{HANDED_ON_HASHES_MAX_LEAVES, REINDEX_CHUNK_ENTRIES};
use crate::log::checkpoint::{self, NoteVerifier};
use crate::log::merkle::{self, Frontier, Hash};
use crate::log::segment::{self, Position, RecordLocation, SegmentLog};
use crate::registry::{AdmitError, GENESIS_KEY, GenesisRecord};
use crate::store::derived::{Decoded, Derived, DerivedError, Frozen, GivenFirstListings, Overlay};
use crate::store::first_seen::{FirstSeen, Listing};

/// What replay carries from one chunk to the next. Not the tree: a chunk's leaf hashes
/// go to `on_chunk`, which grows whichever tree it keeps (the tiles, in a catch-up).
#[derive(Clone)]
pub(crate) struct ReplayState {
    pub genesis: Option<GenesisRecord>,
    pub last_accepted: UnixSeconds,
}

impl ReplayState {
    /// Before leaf 0: no genesis, no acceptance yet.
    pub fn from_start() -> ReplayState {
        ReplayState {
            genesis: None,
            last_accepted: UnixSeconds::MIN,
        }
    }
}

fn refused(index: u64, reason: impl Into<String>) -> LedgerError {
    LedgerError::Replay {
        index,
        reason: reason.into(),
    }
}

/// A check of what a replay is about to trust (the segments against a signed
/// checkpoint), made while its first chunks are judged, before any leaf is admitted;
/// and the leaves it proves, which the replay reads without their checksums
/// (`SegmentLog::scan_proven`): a `check` that passes has shown every one of them sound,
/// refusing any damaged record itself. `check` is given where to hand each proven leaf's
/// hash, in order from leaf 0: a replay from there takes them (up to
/// `HANDED_ON_HASHES_MAX_LEAVES`) instead of hashing those leaves again.
pub(crate) struct BeforeAdmitting<F> {
    pub proven: u64,
    pub check: F,
}

/// What `BeforeAdmitting::check` is.
pub(crate) type Check = fn(&mut dyn FnMut(Hash)) -> Result<(), LedgerError>;

/// Nothing to check before admitting, and every checksum read.
pub(crate) const NOTHING_PROVEN: BeforeAdmitting<Check> = BeforeAdmitting {
    proven: 0,
    check: |_| Ok(()),
};

/// Told, after each chunk a replay applies, how many leaves are done of how many: for
/// progress bars on the long jobs (`verify`, `reindex`).
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// A `Progress` that shows nothing.
pub const QUIET: Progress<'static> = &|_, _| {};

/// Leaves read from the segments, with where each lies.
type Chunk = Vec<(u64, RecordLocation, Vec<u8>)>;

/// Chunks judged ahead of the one being applied: enough that judging (parsing, and for
/// `verify` the signatures, on every core) and applying (admission, the tree, the
/// store) overlap, and that the judging stage keeps working while a trusted rebuild
/// holds every leaf to the signed checkpoint before admitting any (at a million entries
/// a second, during which two chunks ahead left a core idle; eight made that rebuild
/// about 11% faster for 16 MB more at the peak, BENCHMARKS.md); few enough that memory
/// stays a few chunks of entries. A judged chunk keeps its entries, not its leaves'
/// bytes.
const JUDGED_AHEAD_CHUNKS: usize = 8;

/// Chunks judged and waiting for their first listings (`first_listings_stage`): one, so
/// that a chunk is judged while the one before has its first listings worked out. On
/// one thread the two took turns, and the early chunks, which list most of a world's
/// serials, left a core idle after the hold (BENCHMARKS.md, thirty-second pass).
const LISTED_BEHIND_JUDGED_CHUNKS: usize = 1;

/// Replays every leaf from `from` into `target`, in chunks. `on_chunk` is given the
/// replay's state after each chunk and the chunk's leaf hashes (for the tiles), and adds
/// its own writes (progress markers) to the chunk's atomic commit, or refuses it.
///
/// Three stages overlap: a thread reads and judges the next chunks (and hashes their
/// leaves; in a replay from the first leaf, another thread then works out the first
/// listings of the terms they list, `FirstListingsAhead`, while the next chunk is
/// judged); this one admits a chunk, in order; another,
/// meanwhile, finishes the chunk before: `on_chunk`, its leaves' indexes
/// (`layout::record`, which reads nothing admission writes) and its commit, whose
/// writes the admission reads through its overlay until they are in the store
/// (`Derived::freeze`). That thread takes the chunks one at a time, in order, so the
/// tiles and the store are written in the order of a replay made one chunk at a time,
/// and a crash leaves what that would.
///
/// `before_admitting` is checked on this thread once the judging stage has begun and
/// before any leaf is admitted. If it fails, the replay stops with its error, having
/// written nothing.
pub(crate) fn replay(
    log: &SegmentLog,
    target: &Derived,
    from: Position,
    state: &mut ReplayState,
    signatures: Signatures<'_>,
    before_admitting: BeforeAdmitting<impl FnOnce(&mut dyn FnMut(Hash)) -> Result<(), LedgerError>>,
    mut on_chunk: impl FnMut(
        &mut Overlay<'_>,
        &ReplayState,
        Position,
        &[Hash],
    ) -> Result<(), LedgerError>
    + Send,
) -> Result<(), LedgerError> {
    // Signatures are made for the ledger's origin: the one given, the one genesis fixed,
    // or, before genesis, the one the genesis entry opening the leaves names.
    let judging = match signatures {
        Signatures::Trust => Judging::Trust,
        Signatures::Verify { origin } => Judging::Verify {
            origin: origin
                .map(str::to_string)
                .or_else(|| state.genesis.as_ref().map(|g| g.origin.clone())),
        },
    };
    // From the first leaf, the stages ahead see every listing before admission needs
    // it; a catch-up begins with listings only the store holds.
    let first_listings_ahead = from.index == 0;
    if first_listings_ahead {
        target.forget_first_seen();
    }
    let BeforeAdmitting { proven, check } = before_admitting;
    // The proven leaves' hashes the check hands on, which are counted from leaf 0.
    let handed_on_below = if from.index == 0 {
        proven.min(HANDED_ON_HASHES_MAX_LEAVES)
    } else {
        0
    };
    let (hashes_tx, hashes_rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel(JUDGED_AHEAD_CHUNKS);
        // With first listings to work out, they have a stage of their own after judging,
        // so that the next chunk is read and parsed meanwhile.
        let to_list = if first_listings_ahead {
            let (to_list, judged) = mpsc::sync_channel(LISTED_BEHIND_JUDGED_CHUNKS);
            scope.spawn(move || {
                crate::parallel::run_behind(
                    crate::parallel::WORKING_AHEAD_NICENESS,
                    "the replay's first listings",
                );
                first_listings_stage(FirstListingsAhead::new(log.dir()), judged, tx)
            });
            to_list
        } else {
            tx
        };
        scope.spawn(move || {
            crate::parallel::run_behind(
                crate::parallel::WORKING_AHEAD_NICENESS,
                "the replay's judging",
            );
            let handed_on = HandedOn::new(hashes_rx, handed_on_below);
            judge_stage(log, from, proven, judging, handed_on, to_list)
        });
        let (to_apply, applying) = mpsc::sync_channel::<Finishing>(1);
        let (report, applied) = mpsc::sync_channel(1);
        let thread = scope.spawn(move || {
            for chunk in applying {
                if report
                    .send(finish_chunk(target, chunk, &mut on_chunk))
                    .is_err()
                {
                    break;
                }
            }
        });
        let mut committer = Committer {
            to_apply,
            applied,
            in_flight: None,
            thread: Some(thread),
        };
        hand_on_while(check, handed_on_below, &hashes_tx)?;
        drop(hashes_tx);
        // Records admission reads again and again, kept from one chunk to the next.
        let mut decoded = Decoded::default();
        // The loop ends when the judging stage has sent its last chunk; leaving it early
        // (an error) drops the receiver, which stops that stage, and the committer,
        // which stops its thread.
        for judged in rx {
            let (chunk, judged, given) = judged?;
            if given.is_none() && !target.first_seen_loaded() {
                // This chunk may load the first listings from the store, which must
                // hold the chunk before by then.
                committer.finish()?;
            }
            let mut overlay = Overlay::after(
                target,
                committer.in_flight.clone(),
                std::mem::take(&mut decoded),
            )
            .without_savepoints();
            let ahead = given.is_some();
            if let Some(given) = given {
                overlay.give_first_listings(given);
            }
            let Some(AdmittedChunk {
                end,
                hashes,
                landed,
            }) = admit_chunk(&mut overlay, &chunk, judged, state)?
            else {
                continue;
            };
            assert!(
                !ahead || overlay.given_first_listings_taken(),
                "every entry found listing terms ahead was admitted and took its first listings"
            );
            overlay.release_snapshot();
            committer.finish()?;
            let (writes, records) = overlay.into_parts();
            decoded = records;
            committer.start(Finishing {
                frozen: target.freeze(writes),
                state: state.clone(),
                end,
                hashes,
                landed,
            })?;
        }
        committer.finish()
    })
}

/// Runs `check`, handing the hashes it gives of the leaves below `end` on through `to`
/// a chunk's worth at a time.
fn hand_on_while(
    check: impl FnOnce(&mut dyn FnMut(Hash)) -> Result<(), LedgerError>,
    end: u64,
    to: &mpsc::Sender<Vec<Hash>>,
) -> Result<(), LedgerError> {
    let mut block = Vec::new();
    let mut given = 0u64;
    check(&mut |hash| {
        if given < end {
            block.push(hash);
            if block.len() == REINDEX_CHUNK_ENTRIES || given + 1 == end {
                // Unsent only when the judging stage has stopped: the replay stops too.
                let _ = to.send(std::mem::take(&mut block));
            }
        }
        given += 1;
    })?;
    assert!(
        given >= end,
        "a check that passed handed on every leaf hash it was to"
    );
    Ok(())
}

/// The leaf hashes `BeforeAdmitting::check` handed on, for the judging stage, which
/// takes them in order from leaf 0, each chunk's as it comes: the judging stage waits
/// for them, and the check, which only reads, never waits for it.
struct HandedOn {
    blocks: mpsc::Receiver<Vec<Hash>>,
    held: VecDeque<Hash>,
    /// The leaf whose hash is `held`'s first.
    next: u64,
    /// Hashes are handed on for the leaves below this.
    end: u64,
}

impl HandedOn {
    /// The hashes of the leaves below `end`, to come in `blocks`.
    fn new(blocks: mpsc::Receiver<Vec<Hash>>, end: u64) -> HandedOn {
        HandedOn {
            blocks,
            held: VecDeque::new(),
            next: 0,
            end,
        }
    }

    /// The hashes handed on for the leaves `first..first + n` that are below `end`;
    /// `first` is the leaf after the last one asked for.
    fn take(&mut self, first: u64, n: usize) -> Result<Vec<Hash>, LedgerError> {
        let wanted = self.end.saturating_sub(first).min(n as u64) as usize;
        if wanted == 0 {
            return Ok(Vec::new());
        }
        assert_eq!(first, self.next, "handed-on hashes are taken in order");
        while self.held.len() < wanted {
            match self.blocks.recv() {
                Ok(block) => self.held.extend(block),
                // The check failed (the replay stops with its error), or handed on less
                // than it proved.
                Err(mpsc::RecvError) => {
                    return Err(LedgerError::Verify(format!(
                        "the hold on the signed checkpoint handed on no hash for leaf {}",
                        self.next + self.held.len() as u64
                    )));
                }
            }
        }
        self.next += wanted as u64;
        Ok(self.held.drain(..wanted).collect())
    }
}

/// An admitted chunk, on its way to the thread that finishes it.
struct Finishing {
    /// The admission's writes.
    frozen: Frozen,
    /// The replay's state after the chunk.
    state: ReplayState,
    end: Position,
    hashes: Vec<Hash>,
    landed: Vec<Landed>,
}

/// Finishes an admitted chunk: `on_chunk`, then the chunk's leaves' indexes, recorded
/// over the store, which holds every chunk before it (this thread wrote them), and its
/// commit, the admission's writes and these in one atomic write.
fn finish_chunk(
    target: &Derived,
    chunk: Finishing,
    on_chunk: &mut impl FnMut(
        &mut Overlay<'_>,
        &ReplayState,
        Position,
        &[Hash],
    ) -> Result<(), LedgerError>,
) -> Result<(), LedgerError> {
    let mut more = Overlay::new(target).without_savepoints();
    on_chunk(&mut more, &chunk.state, chunk.end, &chunk.hashes)?;
    layout::record(&mut more, &chunk.landed)?;
    Ok(target.apply_frozen(&chunk.frozen, &more.into_writes())?)
}

/// The thread that finishes replayed chunks (`finish_chunk`), one at a time, while the
/// next is admitted. One thread for the whole replay rather than one a chunk: the
/// allocator gives threads arenas of their own, and a thread a chunk left a
/// million-entry rebuild holding about 150 MB more (BENCHMARKS.md).
struct Committer<'scope> {
    to_apply: mpsc::SyncSender<Finishing>,
    applied: mpsc::Receiver<Result<(), LedgerError>>,
    /// The chunk being written, which the next chunk's admission reads meanwhile.
    in_flight: Option<Frozen>,
    thread: Option<std::thread::ScopedJoinHandle<'scope, ()>>,
}

impl Committer<'_> {
    /// Begins finishing a chunk; the one before must be `finish`ed.
    fn start(&mut self, chunk: Finishing) -> Result<(), LedgerError> {
        assert!(self.in_flight.is_none(), "one chunk is written at a time");
        let frozen = chunk.frozen.clone();
        if self.to_apply.send(chunk).is_err() {
            return Err(self.gone());
        }
        self.in_flight = Some(frozen);
        Ok(())
    }

    /// Waits for the chunk being written, if any, and reports how its commit ended.
    fn finish(&mut self) -> Result<(), LedgerError> {
        if self.in_flight.take().is_none() {
            return Ok(());
        }
        match self.applied.recv() {
            Ok(applied) => Ok(applied?),
            Err(mpsc::RecvError) => Err(self.gone()),
        }
    }

    /// The thread stopped without a word: it panicked, and its panic is carried on here.
    fn gone(&mut self) -> LedgerError {
        match self.thread.take().map(|t| t.join()) {
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            _ => unreachable!("the committing thread ends only when the replay drops it"),
        }
    }
}

/// How the judging stage reads leaves.
enum Judging {
    /// Straight into typed values (`trusted`).
    Trust,
    /// With every check of acceptance (`verified`), for signatures made for `origin`
    /// (`None` until the genesis entry has named it).
    Verify { origin: Option<String> },
}

/// Why the judging stage stopped reading the segments early.
enum StageStop {
    Failed(LedgerError),
    /// The applying stage is gone (it failed): nothing more is wanted.
    Unwanted,
}

impl From<crate::log::segment::SegmentError> for StageStop {
    fn from(e: crate::log::segment::SegmentError) -> StageStop {
        StageStop::Failed(e.into())
    }
}

/// Reads the leaves from `from` in chunks, judges each, and sends them in order.
fn judge_stage(
    log: &SegmentLog,
    from: Position,
    proven: u64,
    mut judging: Judging,
    mut handed_on: HandedOn,
    tx: mpsc::SyncSender<Result<JudgedChunk, LedgerError>>,
) {
    let mut send = |chunk: Chunk| -> Result<(), StageStop> {
        let judged = match &mut judging {
            Judging::Trust => {
                let hashes = match chunk.first() {
                    Some(&(first, _, _)) => handed_on
                        .take(first, chunk.len())
                        .map_err(StageStop::Failed)?,
                    None => Vec::new(),
                };
                judge_each(&chunk, hashes, TRUSTED_LEAVES_PER_THREAD, |share| {
                    share
                        .iter()
                        .map(|&(index, leaf, _)| trusted(index, leaf))
                        .collect()
                })
            }
            Judging::Verify { origin } => verified(&chunk, origin),
        };
        let failed = judged.iter().any(Result::is_err);
        let placed = chunk.iter().map(|&(index, location, _)| (index, location));
        tx.send(Ok((placed.collect(), judged, None)))
            .map_err(|_| StageStop::Unwanted)?;
        // After a leaf that fails, nothing more is read: the applying stage stops at it.
        if failed {
            Err(StageStop::Unwanted)
        } else {
            Ok(())
        }
    };
    let mut chunk = Vec::with_capacity(REINDEX_CHUNK_ENTRIES);
    let scanned = log.scan_proven(
        from,
        proven,
        |index, location, leaf| -> Result<(), StageStop> {
            chunk.push((index, location, leaf.to_vec()));
            if chunk.len() >= REINDEX_CHUNK_ENTRIES {
                send(std::mem::replace(
                    &mut chunk,
                    Vec::with_capacity(REINDEX_CHUNK_ENTRIES),
                ))?;
            }
            Ok(())
        },
    );
    let outcome = scanned.and_then(|()| {
        if chunk.is_empty() {
            Ok(())
        } else {
            send(chunk)
        }
    });
    if let Err(StageStop::Failed(e)) = outcome {
        // If the applying stage is gone too, its own error is the one reported.
        let _ = tx.send(Err(e));
    }
}

/// Works out the first listings of each judged chunk (`FirstListingsAhead`) and sends
/// the chunk on with them, in order; stops after the first error, which it sends on.
fn first_listings_stage(
    mut ahead: FirstListingsAhead<'_>,
    judged: mpsc::Receiver<Result<JudgedChunk, LedgerError>>,
    tx: mpsc::SyncSender<Result<JudgedChunk, LedgerError>>,
) {
    for chunk in judged {
        let listed = chunk.and_then(|(placed, judged, given)| {
            assert!(
                given.is_none(),
                "the judging stage works out no first listings"
            );
            let given = ahead.chunk(&placed, &judged)?;
            Ok((placed, judged, Some(given)))
        });
        let failed = listed.is_err();
        // Unsent when the applying stage is gone (it failed): nothing more is wanted.
        if tx.send(listed).is_err() || failed {
            return;
        }
    }
}

/// A chunk as the stages ahead of admission send it: where its leaves lie, each leaf
/// judged, and the first listings of those that list terms when they were worked out
/// ahead (`first_listings_stage`).
type JudgedChunk = (Vec<Placed>, Vec<Judged>, Option<GivenFirstListings>);

/// A leaf's index and where it lies.
type Placed = (u64, RecordLocation);

/// The first listings of terms (`store::first_seen`) worked out after judging and ahead
/// of admission, in a replay from the first leaf. Every leaf is admitted or the
/// replay stops, so the entries that list terms claim them in ledger order whatever
/// else admission decides; the map the admitting thread would keep, a quarter to half
/// of its work in a trusted rebuild (BENCHMARKS.md), is kept here, beside it.
struct FirstListingsAhead<'a> {
    seen: FirstSeen,
    listings: ListingsRead<'a>,
}

/// The listings of the entries that listed terms so far, read back from their leaves.
struct ListingsRead<'a> {
    /// Where each entry that listed terms lies, to read its listing back when a later
    /// term's digest names it (a term listed again, or two terms with one digest).
    listed: HashMap<u64, RecordLocation>,
    /// The listing read back last: a lot that repeats serials repeats one lot's.
    last: RefCell<Option<(u64, Rc<Listing>)>>,
    segments: &'a Path,
}

impl<'a> FirstListingsAhead<'a> {
    fn new(segments: &'a Path) -> FirstListingsAhead<'a> {
        FirstListingsAhead {
            seen: FirstSeen::new(),
            listings: ListingsRead {
                listed: HashMap::new(),
                last: RefCell::new(None),
                segments,
            },
        }
    }

    /// The first listings of a chunk's entries that list terms, in order, up to its first
    /// leaf that failed judging (where admission stops too); each new term is recorded
    /// as first listed by its entry.
    fn chunk(
        &mut self,
        placed: &[Placed],
        judged: &[Judged],
    ) -> Result<GivenFirstListings, LedgerError> {
        let mut given = GivenFirstListings::new();
        for ((index, location), judged) in placed.iter().zip(judged) {
            let Ok((entry, _, _)) = judged else {
                break;
            };
            let Some((_, terms)) = rules::listed_terms(&entry.body) else {
                continue;
            };
            let found = self.seen.first_listings_or_claim_in_order(
                |i| self.listings.listing(i),
                &terms,
                *index,
            )?;
            self.listings.listed.insert(*index, *location);
            given.push_back((*index, found));
        }
        Ok(given)
    }
}

impl ListingsRead<'_> {
    /// The listing entry `index` made, read back from its leaf.
    fn listing(&self, index: u64) -> Result<Option<Rc<Listing>>, DerivedError> {
        if let Some((at, listing)) = &*self.last.borrow()
            && *at == index
        {
            return Ok(Some(listing.clone()));
        }
        let Some(&location) = self.listed.get(&index) else {
            return Ok(None);
        };
        let unreadable = |reason: String| DerivedError::Decode {
            key: format!("listing of entry {index}"),
            reason,
        };
        let leaf = segment::read_leaf(self.segments, index, location)
            .map_err(|e| unreadable(e.to_string()))?;
        let read = leaves::trusted(&leaf).map_err(|e| unreadable(e.to_string()))?;
        let (owner, terms) = rules::listed_terms(&read.entry.body)
            .ok_or_else(|| unreadable("its leaf lists no terms now".into()))?;
        let listing = Rc::new(Listing {
            owner: owner.to_string(),
            terms: terms.into_iter().map(str::to_string).collect(),
        });
        self.last.replace(Some((index, listing.clone())));
        Ok(Some(listing))
    }
}

/// A leaf to judge: its index, its bytes and, when it was handed on, its hash.
type ToJudge<'a> = (u64, &'a [u8], Option<Hash>);

/// Judges every leaf of a chunk with `judge` and hashes it for the tree (the first ones
/// have their hashes `handed` on), each core taking a share of the leaves wholly (so that
/// no part of the judging waits on one thread while the others idle), keeping their
/// order. `judge` gives one judgement a leaf of its share.
fn judge_each(
    chunk: &Chunk,
    handed: Vec<Hash>,
    min_per_thread: usize,
    judge: impl Fn(&[ToJudge<'_>]) -> Vec<Judgement> + Sync,
) -> Vec<Judged> {
    let mut handed = handed.into_iter();
    let leaves = chunk
        .iter()
        .map(|(i, _, leaf)| (*i, leaf.as_slice(), handed.next()))
        .collect();
    assert!(
        handed.next().is_none(),
        "no more hashes are handed on than the chunk has leaves"
    );
    crate::parallel::map_shares(leaves, min_per_thread, |share| {
        let judged = judge(&share);
        share
            .iter()
            .zip(judged)
            .map(|(&(_, leaf, hash), judgement)| {
                judgement.map(|(entry, accepted)| {
                    (
                        entry,
                        accepted,
                        hash.unwrap_or_else(|| merkle::leaf_hash(leaf)),
                    )
                })
            })
            .collect()
    })
}

/// A chunk admitted and in the tree.
struct AdmittedChunk {
    /// Where the chunk ends in the segments.
    end: Position,
    /// Its leaf hashes, for the tiles.
    hashes: Vec<Hash>,
    /// Its leaves as landed, for the indexes.
    landed: Vec<Landed>,
}

/// Admits a chunk's leaves into `overlay` and gives their hashes (`None` for an empty
/// chunk).
fn admit_chunk(
    overlay: &mut Overlay<'_>,
    chunk: &[Placed],
    judged: Vec<Judged>,
    state: &mut ReplayState,
) -> Result<Option<AdmittedChunk>, LedgerError> {
    let Some(&(last_index, last_location)) = chunk.last() else {
        return Ok(None);
    };
    let mut hashes = Vec::with_capacity(chunk.len());
    let mut landed = Vec::with_capacity(chunk.len());
    for ((index, location), judged) in chunk.iter().zip(judged) {
        let (e, accepted, hash) = judged?;
        if accepted < state.last_accepted {
            return Err(refused(
                *index,
                "`accepted` is earlier than the previous leaf's",
            ));
        }
        state.last_accepted = accepted;
        let touches = match ingest::admit(overlay, *index, accepted, &e) {
            Ok(a) => a.touches,
            Err(AdmitError::Rejected(r)) => return Err(refused(*index, r.to_string())),
            Err(AdmitError::Store(e)) => return Err(e.into()),
        };
        if *index == 0 {
            state.genesis = overlay.get_decoded(GENESIS_KEY)?;
        }
        hashes.push(hash);
        landed.push(Landed {
            index: *index,
            location: *location,
            kind: e.kind,
            signer: e.signer,
            seq: e.seq,
            touches,
        });
    }
    let end = Position {
        index: last_index + 1,
        segment: last_location.segment,
        offset: last_location.end(),
    };
    Ok(Some(AdmittedChunk {
        end,
        hashes,
        landed,
    }))
}

/// A leaf judged for admission, with its acceptance time and its hash in the tree, or
/// why it cannot be admitted.
type Judged = Result<(Admissible, UnixSeconds, Hash), LedgerError>;

/// What judging a leaf's bytes gives (`trusted`, `verified_leaf`): the entry and its
/// acceptance time, or why it cannot be admitted.
type Judgement = Result<(Admissible, UnixSeconds), LedgerError>;

/// Leaves per thread below which trusted leaves are read on one thread.
const TRUSTED_LEAVES_PER_THREAD: usize = 256;

/// A leaf of the ledger's own segments, trusted (`leaves::trusted`).
fn trusted(index: u64, leaf: &[u8]) -> Judgement {
    leaves::trusted(leaf)
        .map(|l| (l.entry, l.accepted))
        .map_err(|e| refused(index, e.to_string()))
}

/// Leaves judged as at acceptance (`leaves::all_judged`), with every signature made for the
/// ledger's origin. `origin` is that origin, once known; the chunk that opens with the
/// genesis entry sets it from that entry.
fn verified(chunk: &Chunk, origin: &mut Option<String>) -> Vec<Judged> {
    if origin.is_none() {
        *origin = chunk
            .first()
            .and_then(|(_, _, leaf)| leaves::genesis_origin(leaf));
    }
    let Some(origin) = origin.as_deref() else {
        return chunk
            .iter()
            .map(|(index, _, _)| {
                Err(refused(
                    *index,
                    "entry 0 must be ledger.genesis: without one no origin is known that \
                     signatures could be made for",
                ))
            })
            .collect();
    };
    judge_each(
        chunk,
        Vec::new(),
        ingest::MIN_PREPARED_PER_THREAD,
        |share| {
            let judged = leaves::all_judged(share.iter().map(|&(_, leaf, _)| leaf), origin);
            share
                .iter()
                .zip(judged)
                .map(|(&(index, _, _), judged)| {
                    judged
                        .map(|l| (l.entry, l.accepted))
                        .map_err(|e| refused(index, e.to_string()))
                })
                .collect()
        },
    )
}

/// What `verify` established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    pub entries: u64,
    pub root: Hash,
    pub checkpoint_size: u64,
}

/// Re-derives the whole ledger into a scratch store with every signature checked, then
/// compares it with the ledger's derived state and its latest signed checkpoint.
pub(crate) fn verify(
    log: &SegmentLog,
    reader: &Reader,
    progress: Progress<'_>,
) -> Result<VerifyReport, LedgerError> {
    let scratch = Derived::temporary();
    let mut state = ReplayState::from_start();
    let mut frontier = Frontier::new();
    replay(
        log,
        &scratch,
        Position::START,
        &mut state,
        Signatures::Verify { origin: None },
        NOTHING_PROVEN,
        |_, _, end, hashes| {
            // The tiles hold every leaf's hash: checked leaf by leaf here, and every
            // level above against the one below once the replay is done.
            let first = end.index - hashes.len() as u64;
            layout::grow(&mut frontier, first, hashes);
            progress(frontier.size(), log.size());
            for (index, hash) in (first..).zip(hashes) {
                if index < reader.size() && reader.leaf_hash(index)? != *hash {
                    return Err(LedgerError::Verify(format!(
                        "the level-0 tile holding leaf {index} has another hash for it; run \
                         `dcledger reindex`"
                    )));
                }
            }
            Ok(())
        },
    )?;
    let size = frontier.size();
    let root = frontier.root();
    let genesis = state
        .genesis
        .ok_or_else(|| LedgerError::Verify("the ledger has no genesis entry".into()))?;
    if reader.size() != size || reader.root() != root {
        return Err(LedgerError::Verify(format!(
            "derived state ({} entries) disagrees with the segments ({size} entries, root {}); \
             run `dcledger reindex`",
            reader.size(),
            hex::encode(root)
        )));
    }
    let verifier = NoteVerifier::new(&genesis.origin, &genesis.checkpoint_key)
        .map_err(|e| LedgerError::Verify(format!("genesis checkpoint key: {e}")))?;
    let note = reader.checkpoint();
    let cp = checkpoint::open(&note, &[verifier])
        .map_err(|e| LedgerError::Verify(format!("latest checkpoint: {e}")))?;
    if cp.origin != genesis.origin {
        return Err(LedgerError::Verify(format!(
            "latest checkpoint names origin {:?}, genesis fixed {:?}",
            cp.origin, genesis.origin
        )));
    }
    if cp.size > size {
        return Err(LedgerError::Verify(format!(
            "latest checkpoint claims {} entries but the segments hold {size}",
            cp.size
        )));
    }
    reader.check_tiles()?;
    // The tiles were just checked against every leaf.
    if reader.root_at(cp.size)? != cp.root {
        return Err(LedgerError::Verify(format!(
            "latest checkpoint's root for {} entries is not the root recomputed from the leaves",
            cp.size
        )));
    }
    Ok(VerifyReport {
        entries: size,
        root,
        checkpoint_size: cp.size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(i: u64) -> Hash {
        merkle::leaf_hash(&i.to_be_bytes())
    }

    /// Runs `check`, handing on the hashes of the leaves below `end`: its verdict, and
    /// what the judging stage then takes them from.
    fn handed_on_by(
        check: impl FnOnce(&mut dyn FnMut(Hash)) -> Result<(), LedgerError>,
        end: u64,
    ) -> (Result<(), LedgerError>, HandedOn) {
        let (tx, rx) = mpsc::channel();
        let checked = hand_on_while(check, end, &tx);
        (checked, HandedOn::new(rx, end))
    }

    /// The hashes a check hands on reach the judging stage chunk by chunk, in order:
    /// those below the bound only, a chunk cut by it partly, the ones after none; and a
    /// check that fails hands on nothing more, which the judging stage is told.
    #[test]
    fn handed_on_hashes_reach_the_judging_stage_below_their_bound_only() {
        let chunk = REINDEX_CHUNK_ENTRIES as u64;
        // Hashes for a chunk and a half of the two and a half chunks the check proves.
        let (proven, end) = (chunk * 5 / 2, chunk * 3 / 2);
        let check = |hand_on: &mut dyn FnMut(Hash)| {
            (0..proven).for_each(|i| hand_on(hash(i)));
            Ok(())
        };
        let (checked, mut handed_on) = handed_on_by(check, end);
        checked.expect("the check passes");
        let want = |range: std::ops::Range<u64>| range.map(hash).collect::<Vec<_>>();
        let n = REINDEX_CHUNK_ENTRIES;
        assert_eq!(handed_on.take(0, n).unwrap(), want(0..chunk));
        assert_eq!(handed_on.take(chunk, n).unwrap(), want(chunk..end));
        assert_eq!(handed_on.take(2 * chunk, n).unwrap(), Vec::<Hash>::new());

        let failing = |hand_on: &mut dyn FnMut(Hash)| {
            (0..10).for_each(|i| hand_on(hash(i)));
            Err(LedgerError::Verify("the root differs".into()))
        };
        let (checked, mut handed_on) = handed_on_by(failing, end);
        assert!(checked.is_err(), "the failing check fails");
        let e = handed_on
            .take(0, n)
            .expect_err("nothing whole was handed on");
        assert!(e.to_string().contains("no hash for leaf 0"), "{e}");
    }
}
