//! Replaying leaves from the segments through ingest's `admit`: how derived state is
//! caught up after a crash, rebuilt by `reindex`, and independently re-derived by
//! `verify`. The same admission code that judged an entry at ingest judges it here, so
//! a ledger that replays cleanly is one whose every entry the rules accept.

use serde_json::{Map, Value};

use super::LedgerError;
use super::layout::{self, Landed};
use super::reader::Reader;
use crate::dates::{self, UnixSeconds};
use crate::entry;
use crate::ingest::{self, Signatures};
use crate::limits::REINDEX_CHUNK_ENTRIES;
use crate::log::checkpoint::{self, NoteVerifier};
use crate::log::merkle::{Frontier, Hash};
use crate::log::segment::{Position, RecordLocation, SegmentLog};
use crate::registry::{AdmitError, GENESIS_KEY, GenesisRecord};
use crate::store::derived::{Derived, Overlay};

/// What replay carries from one chunk to the next.
pub(crate) struct ReplayState {
    pub frontier: Frontier,
    pub genesis: Option<GenesisRecord>,
    pub last_accepted: UnixSeconds,
}

impl ReplayState {
    /// Before leaf 0: the empty tree, no genesis, no acceptance yet.
    pub fn from_start() -> ReplayState {
        ReplayState {
            frontier: Frontier::new(),
            genesis: None,
            last_accepted: UnixSeconds::MIN,
        }
    }
}

struct Stored {
    index: u64,
    location: RecordLocation,
    leaf: Vec<u8>,
    accepted_text: String,
}

fn refused(index: u64, reason: impl Into<String>) -> LedgerError {
    LedgerError::Replay {
        index,
        reason: reason.into(),
    }
}

/// Splits a stored leaf into its envelope and acceptance time, checking its shape.
fn split_leaf(index: u64, leaf: &[u8]) -> Result<(Value, String), LedgerError> {
    let value: Value = serde_json::from_slice(leaf)
        .map_err(|e| refused(index, format!("leaf is not JSON: {e}")))?;
    let Value::Object(mut map) = value else {
        return Err(refused(index, "leaf is not a JSON object"));
    };
    let accepted = match map.remove("accepted") {
        Some(Value::String(s)) => s,
        _ => return Err(refused(index, "leaf has no `accepted` instant")),
    };
    let entry = map
        .remove("entry")
        .ok_or_else(|| refused(index, "leaf has no `entry`"))?;
    let sig = map
        .remove("sig")
        .ok_or_else(|| refused(index, "leaf has no `sig`"))?;
    if let Some(extra) = map.keys().next() {
        return Err(refused(
            index,
            format!("leaf has an unexpected field {extra:?}"),
        ));
    }
    let mut envelope = Map::new();
    envelope.insert("entry".into(), entry);
    envelope.insert("sig".into(), sig);
    Ok((Value::Object(envelope), accepted))
}

/// Replays every leaf from `from` into `target`, in chunks. `on_chunk` is given the
/// chunk's leaf hashes (for the tiles) and adds its own writes (progress markers) to
/// each chunk's atomic commit, or refuses it.
pub(crate) fn replay(
    log: &SegmentLog,
    target: &Derived,
    from: Position,
    state: &mut ReplayState,
    signatures: Signatures<'_>,
    mut on_chunk: impl FnMut(
        &mut Overlay<'_>,
        &ReplayState,
        Position,
        &[Hash],
    ) -> Result<(), LedgerError>,
) -> Result<(), LedgerError> {
    let mut chunk = Vec::with_capacity(REINDEX_CHUNK_ENTRIES);
    log.scan(from, |index, location, leaf| -> Result<(), LedgerError> {
        chunk.push((index, location, leaf.to_vec()));
        if chunk.len() >= REINDEX_CHUNK_ENTRIES {
            apply_chunk(
                target,
                std::mem::take(&mut chunk),
                state,
                signatures,
                &mut on_chunk,
            )?;
        }
        Ok(())
    })?;
    apply_chunk(target, chunk, state, signatures, &mut on_chunk)
}

fn apply_chunk(
    target: &Derived,
    chunk: Vec<(u64, RecordLocation, Vec<u8>)>,
    state: &mut ReplayState,
    signatures: Signatures<'_>,
    on_chunk: &mut impl FnMut(
        &mut Overlay<'_>,
        &ReplayState,
        Position,
        &[Hash],
    ) -> Result<(), LedgerError>,
) -> Result<(), LedgerError> {
    let Some(&(last_index, last_location, _)) = chunk.last() else {
        return Ok(());
    };
    let mut stored = Vec::with_capacity(chunk.len());
    let mut items = Vec::with_capacity(chunk.len());
    for (index, location, leaf) in chunk {
        let (envelope, accepted_text) = split_leaf(index, &leaf)?;
        let accepted = dates::parse_instant(&accepted_text)
            .ok_or_else(|| refused(index, "`accepted` is not a UTC instant"))?;
        if accepted < state.last_accepted {
            return Err(refused(
                index,
                "`accepted` is earlier than the previous leaf's",
            ));
        }
        state.last_accepted = accepted;
        items.push((envelope, accepted));
        stored.push(Stored {
            index,
            location,
            leaf,
            accepted_text,
        });
    }
    // Signatures are made for the ledger's origin: the one genesis fixed, or, in the
    // chunk that opens with genesis, the one that entry names.
    let origin = match signatures {
        Signatures::Verify { origin } => ingest::submission_origin(
            origin.or(state.genesis.as_ref().map(|g| g.origin.as_str())),
            items.first().map(|(envelope, _)| envelope),
        ),
        Signatures::Trust => None,
    };
    let signatures = match signatures {
        Signatures::Verify { .. } => Signatures::Verify {
            origin: origin.as_deref(),
        },
        Signatures::Trust => Signatures::Trust,
    };
    let prepared = ingest::prepare_all(items, signatures);
    let mut overlay = Overlay::new(target);
    let mut landed = Vec::with_capacity(stored.len());
    let mut facilities = Vec::with_capacity(stored.len());
    let mut admitted = Vec::with_capacity(stored.len());
    for (s, p) in stored.iter().zip(prepared) {
        let p = p.map_err(|r| refused(s.index, r.to_string()))?;
        if entry::leaf_bytes(&s.accepted_text, &p.entry_jcs, &p.sig_hex) != s.leaf {
            return Err(refused(
                s.index,
                "leaf bytes are not the canonical (JCS) form",
            ));
        }
        let accepted = dates::instant(&s.accepted_text)
            .map_err(|e| refused(s.index, format!("its acceptance time: {e}")))?;
        match ingest::admit(&mut overlay, s.index, accepted, &p) {
            Ok(a) => facilities.push(a.touches),
            Err(AdmitError::Rejected(r)) => return Err(refused(s.index, r.to_string())),
            Err(AdmitError::Store(e)) => return Err(e.into()),
        }
        if s.index == 0 {
            state.genesis = overlay.get_decoded(GENESIS_KEY)?;
        }
        admitted.push((p.kind, p.signer, p.seq));
    }
    for ((s, (kind, signer, seq)), touched) in stored.iter().zip(admitted).zip(&facilities) {
        landed.push(Landed {
            index: s.index,
            leaf: &s.leaf,
            location: s.location,
            kind,
            signer,
            seq,
            touches: touched,
        });
    }
    let hashes = layout::record(&mut overlay, &mut state.frontier, &landed)?;
    let end = Position {
        index: last_index + 1,
        segment: last_location.segment,
        offset: last_location.end(),
    };
    on_chunk(&mut overlay, state, end, &hashes)?;
    target.commit(overlay.into_writes())?;
    Ok(())
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
pub(crate) fn verify(log: &SegmentLog, reader: &Reader) -> Result<VerifyReport, LedgerError> {
    let scratch = Derived::temporary();
    let mut state = ReplayState::from_start();
    replay(
        log,
        &scratch,
        Position::START,
        &mut state,
        Signatures::Verify { origin: None },
        |_, state, _, hashes| {
            // The tiles hold every leaf's hash: checked leaf by leaf here, and every
            // level above against the one below once the replay is done.
            let first = state.frontier.size() - hashes.len() as u64;
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
    let size = state.frontier.size();
    let root = state.frontier.root();
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
