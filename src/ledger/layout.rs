//! How the tree and the per-entry indexes are laid out in derived state, and the one
//! routine that records leaves there, shared by commit and replay so that incremental
//! and rebuilt state are the same bytes.
//!
//! - Leaf locations: key `l | first index of a run of LOCATION_SPAN leaves (u64 BE)`,
//!   value where each leaf of the run is in the segments, in order (a sequence, extended
//!   by the commit that lands in the run). The tree itself is not here: it is in the
//!   tiles (`log::tiles`).
//! - Postings (which entries have a given kind, signer or facility): `ledger::postings`.
//! - Seq anchors: key `q | signer | (seq - 1) / SEQ_SPAN (u64 BE)`, value the index of
//!   the signer's entry with seq `1 + k * SEQ_SPAN`: every `SEQ_SPAN`-th entry of a
//!   signer. The entry with any other seq is the anchor's followed by that many more of
//!   the signer's postings (each signer's seqs run 1, 2, 3 … in ledger order, PROTOCOL §3),
//!   so finding it reads one anchor and at most `SEQ_SPAN` postings, from the anchor's
//!   chunk on.
//! - Change log: key `t | first index of a chunk of CHANGE_SPAN entries (u64 BE)`, value
//!   what the entries of that chunk changed, in ledger order: a facility's records (by
//!   id), or a monthly report reduced to its figures (`domain::figures`). Readers that
//!   keep a model in memory (the audit) load every report from it in one sequential
//!   pass and refresh from its tail.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::rules::{Touch, Touched};
use crate::entry::Kind;
use crate::keys::PublicKey;
use crate::log::merkle::{Frontier, Hash};
use crate::log::segment::RecordLocation;
use crate::store::derived::{
    Derived, DerivedError, Overlay, append_encoded, decode_sequence, family, key,
};

use super::postings::{Gathered, POSTING_SPAN, chunk_offsets, kind_term};

/// Leaves whose locations share one key. A key for every leaf was a third of all the
/// keys a rebuild inserted (156,000 of 430,000 for a world of 156,000 entries); a key
/// for 16 is written once by a rebuild (its chunks are multiples of 16) and extended by
/// a commit that ends inside it, about 130 bytes at most. Every leaf keeps its own
/// location, so a damaged record never hides its neighbours from a reader.
pub const LOCATION_SPAN: u64 = 16;

/// The key of the run of leaves holding `index`.
pub(crate) fn location_key(index: u64) -> Vec<u8> {
    let first = index - index % LOCATION_SPAN;
    key(family::LOCATION, &[&first.to_be_bytes()])
}

/// Entries per change-log chunk. Every commit rewrites the chunk it lands in; at about
/// 50 bytes a change, the span keeps that rewrite near 12 KiB however small commits are.
pub const CHANGE_SPAN: u64 = 256;

/// One thing an entry changed in the projections, with the entry's index. Written with
/// owned ids; read back with ids borrowed from the stored bytes (`reader::ChangeLog`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change<Id = String> {
    pub index: u64,
    pub touch: Touch<Id>,
}

/// The change-log key of the chunk holding `index`.
pub(crate) fn change_key(index: u64) -> Vec<u8> {
    let first = index - index % CHANGE_SPAN;
    key(family::CHANGE, &[&first.to_be_bytes()])
}

/// A signer's entries per seq anchor. Anchors cost one key per this many entries; a
/// lookup reads at most this many postings past its anchor.
pub const SEQ_SPAN: u64 = 64;

fn seq_anchor_key(signer: &PublicKey, block: u64) -> Vec<u8> {
    key(family::SEQ_ANCHOR, &[signer, &block.to_be_bytes()])
}

/// The index of `signer`'s entry with `seq` among the first `size` leaves, which derived
/// state holds, or `None` if they hold no such entry.
pub(crate) fn signer_entry(
    derived: &Derived,
    signer: &PublicKey,
    seq: u64,
    size: u64,
) -> Result<Option<u64>, DerivedError> {
    let Some(before) = seq.checked_sub(1) else {
        return Ok(None); // seqs start at 1
    };
    let anchor_key = seq_anchor_key(signer, before / SEQ_SPAN);
    let Some(anchor) = derived.get_decoded::<u64>(&anchor_key)? else {
        return Ok(None);
    };
    // The signer's entries from the anchor on are its postings at or after the anchor's
    // index, in order; the one wanted is `before % SEQ_SPAN` past the anchor.
    let mut skip = before % SEQ_SPAN;
    for chunk in anchor / POSTING_SPAN..size.div_ceil(POSTING_SPAN) {
        for offset in chunk_offsets(derived, family::BY_SIGNER, signer, chunk)? {
            let index = chunk * POSTING_SPAN + u64::from(offset);
            if index < anchor {
                continue;
            }
            if skip == 0 {
                return Ok(Some(index));
            }
            skip -= 1;
        }
    }
    Ok(None)
}

/// A leaf that has just been written to the segments, with what it changed.
pub(crate) struct Landed {
    pub index: u64,
    pub location: RecordLocation,
    pub kind: Kind,
    pub signer: PublicKey,
    pub seq: u64,
    /// What the entry changed in the projections.
    pub touches: Touched,
}

/// Grows the in-memory tree by the hashes of consecutive leaves, the first of them
/// leaf `first`.
pub(crate) fn grow(frontier: &mut Frontier, first: u64, hashes: &[Hash]) {
    assert_eq!(
        frontier.size(),
        first,
        "leaves join the tree in ledger order"
    );
    for hash in hashes {
        frontier.push(*hash);
    }
}

/// Records consecutive landed leaves in the indexes: each leaf's location, the
/// postings, the seq anchors and the change log. It reads only keys that it alone
/// writes (postings and change-log chunks), never what admission reads, so a replay
/// records a chunk on the thread that commits it, once the chunk is admitted
/// (`ledger::replay`), and admits the next one meanwhile.
pub(crate) fn record(overlay: &mut Overlay<'_>, landed: &[Landed]) -> Result<(), DerivedError> {
    let Some(first) = landed.first().map(|l| l.index) else {
        return Ok(());
    };
    let mut postings = Gathered::default();
    for run in landed.chunk_by(|a, b| a.index / LOCATION_SPAN == b.index / LOCATION_SPAN) {
        let key = location_key(run[0].index);
        // A run that starts inside its key's span extends what earlier commits stored,
        // which must be the locations of every leaf before it in the span: a location
        // out of place would send a reader to another leaf's record.
        let before = run[0].index % LOCATION_SPAN;
        let stored = match before {
            0 => None,
            _ => {
                let stored = overlay.get(&key)?;
                let held = match &stored {
                    Some(bytes) => decode_sequence::<RecordLocation>(&key, bytes)?.len(),
                    None => 0,
                };
                if held as u64 != before {
                    return Err(DerivedError::Decode {
                        key: format!("locations of leaves from {}", run[0].index - before),
                        reason: format!("{held} stored where {before} leaves come first"),
                    });
                }
                stored
            }
        };
        overlay.put(key, append_encoded(stored, run.iter().map(|l| l.location)));
    }
    for l in landed {
        let mut names: Vec<&str> = l.touches.iter().map(Touch::facility).collect();
        names.sort_unstable();
        names.dedup();
        let facilities = names
            .into_iter()
            .map(|f| (family::BY_FACILITY, f.as_bytes()));
        for (family, term) in [
            (family::BY_KIND, kind_term(l.kind)),
            (family::BY_SIGNER, &l.signer[..]),
        ]
        .into_iter()
        .chain(facilities)
        {
            postings.add(family, term, l.index);
        }
        if let Some(before) = l.seq.checked_sub(1)
            && before % SEQ_SPAN == 0
        {
            overlay.put_encoded(seq_anchor_key(&l.signer, before / SEQ_SPAN), &l.index);
        }
    }
    // The change log, keyed by chunk rather than by commit so that replay and
    // incremental commits write the same bytes.
    let mut changed: BTreeMap<u64, Vec<Change>> = BTreeMap::new();
    for l in landed {
        changed
            .entry(l.index / CHANGE_SPAN)
            .or_default()
            .extend(l.touches.iter().map(|t| Change {
                index: l.index,
                touch: t.clone(),
            }));
    }
    for (chunk, changes) in changed {
        if changes.is_empty() {
            continue;
        }
        let key = change_key(chunk * CHANGE_SPAN);
        let stored = stored_before(overlay, &key, chunk * CHANGE_SPAN, first)?;
        overlay.put(key, append_encoded(stored, changes));
    }
    postings.write(overlay, first)
}

/// What earlier commits stored under `key`, a key of leaves from `span_first` on, for a
/// commit whose first leaf is `first`. Leaves are recorded in ledger order, once each,
/// so a span that begins at or after `first` holds none of an earlier commit's leaves:
/// its key is new, and not read. A rebuild's chunks begin on span boundaries, so it
/// reads none of these keys (each read found nothing and cost a walk of the store's
/// tree: 60,000 walks for a world of 156,000 entries).
pub(super) fn stored_before(
    overlay: &Overlay<'_>,
    key: &[u8],
    span_first: u64,
    first: u64,
) -> Result<Option<Vec<u8>>, DerivedError> {
    if span_first >= first {
        debug_assert_eq!(
            overlay.get(key)?,
            None,
            "a key of leaves from {span_first} on, before leaf {first} is recorded"
        );
        return Ok(None);
    }
    overlay.get(key)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::dates::Month;
    use crate::domain::figures::{Figures, MeterFigures, ReportFigures};

    /// A run of sixteen leaves' locations is one key, which a commit that starts inside
    /// the run extends; a commit that does not start where the stored run ends is
    /// refused rather than filed under other leaves' places.
    /// Leaf `index` as landed: the `index + 1`th entry of `signer`, changing `touches`.
    fn landed_leaf(index: u64, signer: PublicKey, touches: Touched) -> Landed {
        Landed {
            index,
            location: RecordLocation {
                segment: 0,
                offset: 100 * index,
                leaf_len: 10,
            },
            kind: Kind::OrgRegister,
            signer,
            seq: index + 1,
            touches,
        }
    }

    #[test]
    fn locations_are_extended_only_where_their_run_ends() {
        let derived = Derived::temporary();
        let mut overlay = Overlay::new(&derived);
        let landed = |index: u64| landed_leaf(index, [7; 32], Vec::new());
        let commits: [&[u64]; 3] = [&[0, 1, 2], &[3, 4], &(5..20).collect::<Vec<_>>()];
        for commit in commits {
            let leaves: Vec<Landed> = commit.iter().map(|&i| landed(i)).collect();
            record(&mut overlay, &leaves).unwrap();
        }
        for (first, count) in [(0, 16), (16, 4)] {
            let key = location_key(first);
            let held: Vec<RecordLocation> =
                decode_sequence(&key, &overlay.get(&key).unwrap().unwrap()).unwrap();
            let expected: Vec<RecordLocation> =
                (first..first + count).map(|i| landed(i).location).collect();
            assert_eq!(held, expected, "the run from leaf {first}");
        }
        let err = record(&mut overlay, &[landed(22)]).unwrap_err();
        assert!(matches!(err, DerivedError::Decode { .. }), "{err}");
    }

    /// Postings and change-log chunks gathered over commits that start before, on and
    /// just past the boundaries of their spans hold every leaf once, in order: a commit
    /// that starts where a span begins writes the span's key without reading it, and one
    /// that starts a leaf later extends what is stored.
    #[test]
    fn postings_and_changes_extend_across_commits_that_start_anywhere() {
        let derived = Derived::temporary();
        let signer = [9; 32];
        let landed = |index: u64| {
            landed_leaf(
                index,
                signer,
                vec![Touch::Facility(format!("F-{}", index % 3))],
            )
        };
        let span = POSTING_SPAN;
        let ends = [
            3,
            CHANGE_SPAN,
            CHANGE_SPAN + 1,
            span - 1,
            span,
            span + 1,
            2 * span + 5,
        ];
        let mut first = 0;
        for end in ends {
            let leaves: Vec<Landed> = (first..end).map(landed).collect();
            let mut overlay = Overlay::new(&derived);
            record(&mut overlay, &leaves).unwrap();
            derived.commit(overlay.into_writes()).unwrap();
            first = end;
        }
        for chunk in 0..=first / span {
            let held = chunk_offsets(&derived, family::BY_SIGNER, &signer, chunk).unwrap();
            let expected: Vec<u16> = (chunk * span..first.min((chunk + 1) * span))
                .map(|i| (i % span) as u16)
                .collect();
            assert_eq!(held, expected, "the signer's postings of chunk {chunk}");
            let held = chunk_offsets(&derived, family::BY_FACILITY, b"F-1", chunk).unwrap();
            let expected: Vec<u16> = expected
                .into_iter()
                .filter(|o| (chunk * span + u64::from(*o)) % 3 == 1)
                .collect();
            assert_eq!(held, expected, "F-1's postings of chunk {chunk}");
        }
        for chunk in 0..=first / CHANGE_SPAN {
            let key = change_key(chunk * CHANGE_SPAN);
            let bytes = derived.get(&key).unwrap().unwrap();
            let held: Vec<Change<&str>> = decode_sequence(&key, &bytes).unwrap();
            let indices: Vec<u64> = held.iter().map(|c| c.index).collect();
            let expected: Vec<u64> =
                (chunk * CHANGE_SPAN..first.min((chunk + 1) * CHANGE_SPAN)).collect();
            assert_eq!(indices, expected, "the change log's chunk {chunk}");
        }
    }

    /// A signer's entries spread thinly over many chunks are found by their seqs, from
    /// the anchors, chunk by chunk; a seq past the signer's last is not.
    #[test]
    fn a_sparse_signers_entries_are_found_by_seq_across_chunks() {
        let derived = Derived::temporary();
        let (sparse, busy) = ([5; 32], [6; 32]);
        let size = 4 * POSTING_SPAN + 7;
        let mut seqs: HashMap<PublicKey, u64> = HashMap::new();
        let leaves: Vec<Landed> = (0..size)
            .map(|index| {
                let signer = if index % 97 == 0 { sparse } else { busy };
                let seq = seqs.entry(signer).or_default();
                *seq += 1;
                Landed {
                    seq: *seq,
                    ..landed_leaf(index, signer, Vec::new())
                }
            })
            .collect();
        let mut overlay = Overlay::new(&derived);
        record(&mut overlay, &leaves).unwrap();
        derived.commit(overlay.into_writes()).unwrap();
        let sparse_indices: Vec<u64> = (0..size).step_by(97).collect();
        assert!(
            sparse_indices.len() as u64 > 2 * SEQ_SPAN,
            "past two anchors"
        );
        for (seq, &index) in (1..).zip(&sparse_indices) {
            assert_eq!(
                signer_entry(&derived, &sparse, seq, size).unwrap(),
                Some(index),
                "seq {seq}"
            );
        }
        let past = sparse_indices.len() as u64 + 1;
        assert_eq!(signer_entry(&derived, &sparse, past, size).unwrap(), None);
        assert_eq!(signer_entry(&derived, &sparse, 0, size).unwrap(), None);
        for seq in [1, SEQ_SPAN, SEQ_SPAN + 1, 500, seqs[&busy]] {
            let index = leaves
                .iter()
                .find(|l| l.signer == busy && l.seq == seq)
                .map(|l| l.index);
            assert!(index.is_some(), "the busy signer has an entry {seq}");
            assert_eq!(signer_entry(&derived, &busy, seq, size).unwrap(), index);
        }
    }

    /// The change log is written with owned ids and read with borrowed ones: one type,
    /// so one layout, and the two readings agree change for change.
    #[test]
    fn changes_written_owned_read_back_borrowed() {
        let period = Month::parse("2025-03").unwrap();
        let figures = Figures::Meter(MeterFigures {
            consumed_kwh: 7,
            resold_kwh: 1,
        });
        let written = [
            Change {
                index: 4,
                touch: Touch::Facility("F-1".to_string()),
            },
            Change {
                index: 5,
                touch: Touch::Report(ReportFigures {
                    facility_id: "F-2".to_string(),
                    period,
                    figures,
                }),
            },
        ];
        let bytes = append_encoded(None, written.clone());
        let read: Vec<Change<&str>> = decode_sequence(b"t", &bytes).unwrap();
        let expected = [
            Change {
                index: 4,
                touch: Touch::Facility("F-1"),
            },
            Change {
                index: 5,
                touch: Touch::Report(ReportFigures {
                    facility_id: "F-2",
                    period,
                    figures,
                }),
            },
        ];
        assert_eq!(read, expected);
        assert_eq!(read[1].touch.facility(), written[1].touch.facility());
    }
}
