//! Recovery of the segment log (PROTOCOL §11–12): an unacknowledged tail is trimmed on open
//! (a torn record, an incomplete batch), while damage to an acknowledged record, or in the
//! middle of the log, is refused and named by its leaf index, by `open`, `verify`,
//! `reindex`, reads and `dcledger verify`.
//!
//! Every test starts from the same small ledger, closed cleanly:
//!
//! ```text
//! batch      [0]       [1 2 3]   [4 5 6]   [7 8]
//! leaf i     genesis | org.register signed by the authority with seq i + 1
//! ```
//!
//! and edits `segments/00000000000000000000.seg` by hand. Table-driven tests run every
//! row and then fail listing the rows that failed, so one broken case hides no other.

use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use dcledger::entry::Kind;
use dcledger::ledger::{Ledger, LedgerError};
use dcledger::log::segment::SegmentError;
use dcledger::store::derived::Derived;
use serde_json::{Value, json};

use crate::support::{Party, TestLedger, bin, log_key, path_str, run_ok};

const HEADER: usize = 16;
const MAGIC: &[u8; 8] = b"DCLSEG\x00\x01";
/// Record header: u32 length, u8 flags, u64 index.
const REC_HEADER: usize = 4 + 1 + 8;
const OVERHEAD: usize = REC_HEADER + 32;
const BATCH_END: u8 = 1;

/// Batch sizes after genesis in the fixture.
const BATCHES: [usize; 3] = [3, 3, 2];
/// Leaves in the fixture.
const SIZE: u64 = 9;
/// Where the batch before the last one ends.
const PREV_BATCH_END: u64 = 7;

// ---------------------------------------------------------------------------------------
// Segment records, per the format in PROTOCOL §12 / `log::segment`.

#[derive(Clone, Copy, Debug)]
struct Rec {
    index: u64,
    offset: usize,
    leaf_len: usize,
    flags: u8,
}

impl Rec {
    fn flags_at(&self) -> usize {
        self.offset + 4
    }

    fn leaf(&self) -> Range<usize> {
        self.offset + REC_HEADER..self.offset + REC_HEADER + self.leaf_len
    }

    fn checksum(&self) -> Range<usize> {
        let start = self.leaf().end;
        start..start + 32
    }

    fn end(&self) -> usize {
        self.offset + OVERHEAD + self.leaf_len
    }
}

fn rec_header(index: u64, leaf: &[u8], flags: u8) -> Vec<u8> {
    let mut h = Vec::with_capacity(REC_HEADER);
    h.extend_from_slice(&(leaf.len() as u32).to_le_bytes());
    h.push(flags);
    h.extend_from_slice(&index.to_le_bytes());
    h
}

/// BLAKE3 over the record header and the leaf.
fn checksum(index: u64, leaf: &[u8], flags: u8) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&rec_header(index, leaf, flags));
    h.update(leaf);
    *h.finalize().as_bytes()
}

/// One record as the log writes it.
fn frame(index: u64, leaf: &[u8], flags: u8) -> Vec<u8> {
    let mut out = rec_header(index, leaf, flags);
    out.extend_from_slice(leaf);
    out.extend_from_slice(&checksum(index, leaf, flags));
    out
}

/// Parses an intact segment starting at leaf 0, checking every checksum.
fn parse_records(bytes: &[u8]) -> Vec<Rec> {
    assert!(bytes.len() >= HEADER, "segment header missing");
    assert_eq!(&bytes[..8], MAGIC, "segment magic");
    assert_eq!(
        &bytes[8..16],
        &0u64.to_le_bytes(),
        "first segment starts at leaf 0"
    );
    let mut records = Vec::new();
    let mut pos = HEADER;
    while pos < bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let rec = Rec {
            index: records.len() as u64,
            offset: pos,
            leaf_len: len,
            flags: bytes[pos + 4],
        };
        assert!(rec.end() <= bytes.len(), "record {} cut short", rec.index);
        assert_eq!(
            bytes[rec.checksum()],
            checksum(rec.index, &bytes[rec.leaf()], rec.flags),
            "record {} checksum",
            rec.index
        );
        pos = rec.end();
        records.push(rec);
    }
    records
}

// ---------------------------------------------------------------------------------------
// The fixture.

struct Fixture {
    _dir: tempfile::TempDir,
    data: PathBuf,
    /// The segment file as the ledger left it.
    original: Vec<u8>,
    records: Vec<Rec>,
}

impl Fixture {
    fn seg(&self) -> PathBuf {
        segment_path(&self.data)
    }

    fn leaf(&self, index: u64) -> &[u8] {
        &self.original[self.records[index as usize].leaf()]
    }

    fn rec(&self, index: u64) -> Rec {
        self.records[index as usize]
    }

    fn write(&self, bytes: &[u8]) {
        std::fs::write(self.seg(), bytes).expect("write segment");
    }

    fn read(&self) -> Vec<u8> {
        std::fs::read(self.seg()).expect("read segment")
    }

    fn delete_index(&self) {
        std::fs::remove_dir_all(self.data.join("index")).expect("delete index");
    }
}

fn segment_path(data: &Path) -> PathBuf {
    data.join("segments").join(format!("{:020}.seg", 0))
}

fn org_body(seq: u64) -> Value {
    json!({"org_id": format!("org-{seq}"), "name": format!("Org {seq} Ltd"), "roles": ["operator"]})
}

/// The fixture ledger with `batches` of authority org.register entries after genesis.
fn fixture_with(batches: &[usize]) -> Fixture {
    let mut t = TestLedger::new();
    for &n in batches {
        let envelopes = (0..n)
            .map(|_| {
                let seq = t.authority.next_seq;
                t.authority.sign(Kind::OrgRegister, org_body(seq))
            })
            .collect();
        t.accept(envelopes);
    }
    let TestLedger { dir, ledger, .. } = t;
    let expected = 1 + batches.iter().sum::<usize>() as u64;
    assert_eq!(ledger.size(), expected, "fixture size");
    ledger.close().expect("close");
    let data = dir.path().join("data");
    let original = std::fs::read(segment_path(&data)).expect("read segment");
    let records = parse_records(&original);
    assert_eq!(records.len() as u64, expected, "fixture records");
    // The batch-end flag is on the last record of every batch and nowhere else.
    let mut ends = vec![0u64];
    let mut at = 0u64;
    for &n in batches {
        at += n as u64;
        ends.push(at);
    }
    let flagged: Vec<u64> = records
        .iter()
        .filter(|r| r.flags & BATCH_END != 0)
        .map(|r| r.index)
        .collect();
    assert_eq!(flagged, ends, "batch-end flags in the fixture");
    Fixture {
        _dir: dir,
        data,
        original,
        records,
    }
}

fn fixture() -> Fixture {
    fixture_with(&BATCHES)
}

// ---------------------------------------------------------------------------------------
// Checks.

fn open_ok(data: &Path, ctx: &str) -> Ledger {
    Ledger::open(data, log_key()).unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"))
}

fn open_err(data: &Path, ctx: &str) -> LedgerError {
    match Ledger::open(data, log_key()) {
        Ok(l) => panic!(
            "{ctx}: open succeeded (size {}) but must refuse the damaged log",
            l.size()
        ),
        Err(e) => e,
    }
}

/// The leaf index an error names, from its variant.
fn named_index(e: &LedgerError) -> Option<u64> {
    match e {
        LedgerError::Replay { index, .. } => Some(*index),
        LedgerError::Segment(SegmentError::Corrupt { index, .. }) => Some(*index),
        LedgerError::Segment(SegmentError::Missing { end, .. }) => Some(*end),
        _ => None,
    }
}

/// `e` names leaf `index`, both in its variant and in its message.
fn assert_names(e: &LedgerError, index: u64, ctx: &str) {
    assert_eq!(
        named_index(e),
        Some(index),
        "{ctx}: the error must name leaf {index}: {e} ({e:?})"
    );
    assert!(
        e.to_string().contains(&format!("leaf {index} ")),
        "{ctx}: the message must name leaf {index}: {e}"
    );
}

/// `dcledger verify` fails and its stderr names leaf `index`.
fn assert_cli_verify_names(data: &Path, index: u64, ctx: &str) {
    let out = bin()
        .args(["verify", "--data", path_str(data)])
        .output()
        .expect("run dcledger verify");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{ctx}: dcledger verify succeeded on a damaged ledger: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(&format!("leaf {index} ")),
        "{ctx}: dcledger verify must name leaf {index}; stderr: {stderr}"
    );
}

fn seq_of(ledger: &Ledger, index: u64, ctx: &str) -> u64 {
    let entry = ledger
        .reader()
        .entry(index)
        .unwrap_or_else(|e| panic!("{ctx}: entry {index}: {e}"));
    let leaf: Value = serde_json::from_slice(&entry.leaf).expect("leaf is JSON");
    leaf["entry"]["seq"].as_u64().expect("seq")
}

/// The ledger holds exactly `size` leaves and verifies.
fn assert_healthy(ledger: &Ledger, size: u64, ctx: &str) {
    assert_eq!(ledger.size(), size, "{ctx}: log size");
    let reader = ledger.reader();
    assert_eq!(reader.size(), size, "{ctx}: reader size");
    let report = ledger
        .verify()
        .unwrap_or_else(|e| panic!("{ctx}: verify failed: {e}"));
    assert_eq!(report.entries, size, "{ctx}: verified entries");
    assert_eq!(
        report.checkpoint_size, size,
        "{ctx}: latest checkpoint size"
    );
    assert!(
        reader.entry(size).is_err(),
        "{ctx}: entry {size} must not exist"
    );
    assert_eq!(
        seq_of(ledger, size - 1, ctx),
        size,
        "{ctx}: last entry's seq"
    );
}

/// Appending after recovery continues the seq chain: the next entry is seq size + 1.
fn assert_append_continues(mut ledger: Ledger, ctx: &str) {
    let size = ledger.size();
    let mut authority = Party {
        next_seq: size + 1,
        ..Party::new(1)
    };
    let envelopes = (0..2)
        .map(|_| {
            let seq = authority.next_seq;
            authority.sign(Kind::OrgRegister, org_body(seq))
        })
        .collect();
    match ledger.append_batch(envelopes) {
        Ok(Ok(receipt)) => {
            let indexes: Vec<u64> = receipt.entries.iter().map(|a| a.index).collect();
            assert_eq!(indexes, vec![size, size + 1], "{ctx}: appended indexes");
        }
        Ok(Err(r)) => panic!("{ctx}: append after recovery refused: {r}"),
        Err(e) => panic!("{ctx}: append after recovery failed: {e}"),
    }
    assert_healthy(&ledger, size + 2, &format!("{ctx}, after appending"));
    assert_eq!(
        seq_of(&ledger, size, ctx),
        size + 1,
        "{ctx}: seq of the first new entry"
    );
    ledger.close().expect("close");
}

/// Runs every row, then fails naming the rows that failed (their panics are printed).
fn run_rows<R>(test: &str, rows: Vec<(String, R)>, run: impl Fn(&str, R)) {
    let mut failed = Vec::new();
    for (name, row) in rows {
        let ctx = format!("{test} [{name}]");
        if catch_unwind(AssertUnwindSafe(|| run(&ctx, row))).is_err() {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "{test}: rows failed: {failed:#?}");
}

fn index_states() -> [(&'static str, bool); 2] {
    [("derived state intact", true), ("index deleted", false)]
}

// ---------------------------------------------------------------------------------------
// Tests.

type Tail = fn(&Fixture) -> Vec<u8>;

/// A partial record after the last batch is an unacknowledged tail: trimmed on open, with
/// or without derived state, leaving exactly the acknowledged bytes.
#[test]
fn torn_tail_after_the_last_batch_is_trimmed() {
    let tails: [(&str, Tail); 5] = [
        ("three bytes of a record header", |_| vec![0x2a, 0x01, 0x00]),
        ("a header and the start of its leaf", |f| {
            let leaf = f.leaf(SIZE - 1);
            let mut t = (leaf.len() as u32).to_le_bytes().to_vec();
            t.push(BATCH_END);
            t.extend_from_slice(&leaf[..40]);
            t
        }),
        ("a whole record but its last checksum byte", |f| {
            let mut t = frame(SIZE, f.leaf(SIZE - 1), BATCH_END);
            t.pop();
            t
        }),
        ("a header announcing more than the leaf limit", |_| {
            let mut t = vec![0xff, 0xff, 0xff, 0x7f, BATCH_END];
            t.extend_from_slice(&[b'x'; 20]);
            t
        }),
        ("a run of zero bytes", |_| vec![0u8; 100]),
    ];
    let mut rows = Vec::new();
    for (tail_name, tail) in tails {
        for (state, keep_index) in index_states() {
            rows.push((format!("{tail_name}, {state}"), (tail, keep_index)));
        }
    }
    run_rows(
        "torn tail",
        rows,
        |ctx, (tail, keep_index): (Tail, bool)| {
            let f = fixture();
            let mut bytes = f.original.clone();
            bytes.extend_from_slice(&tail(&f));
            f.write(&bytes);
            if !keep_index {
                f.delete_index();
            }
            let ledger = open_ok(&f.data, ctx);
            assert_eq!(
                f.read(),
                f.original,
                "{ctx}: the file must be back to its acknowledged bytes"
            );
            assert_healthy(&ledger, SIZE, ctx);
            assert_append_continues(ledger, ctx);
        },
    );
}

type Damage = fn(&mut Vec<u8>, Rec);

/// With derived state lost, the last signed checkpoint still counts the last batch
/// acknowledged (its note is written after the batch is synced): damage to it is
/// corruption, never a torn tail. Open refuses, trims nothing and signs nothing, as it
/// does with derived state intact (`garbled_last_acknowledged_record_fails_open`). It
/// once dropped the batch as torn and signed a smaller tree over the checkpoint's.
#[test]
fn lost_index_and_damaged_last_record_fail_open() {
    let damages: [(&str, Damage); 6] = [
        ("last record cut halfway", |b, r| {
            b.truncate(r.offset + (r.end() - r.offset) / 2)
        }),
        ("last record cut inside its header", |b, r| {
            b.truncate(r.offset + 3)
        }),
        ("last record cut before its final byte", |b, r| {
            b.truncate(r.end() - 1)
        }),
        ("a leaf byte of the last record garbled", |b, r| {
            b[r.leaf().start + r.leaf_len / 2] ^= 0x01
        }),
        ("a checksum byte of the last record garbled", |b, r| {
            b[r.checksum().start + 7] ^= 0x80
        }),
        ("the batch-end flag of the last record cleared", |b, r| {
            b[r.flags_at()] = 0
        }),
    ];
    let rows = damages.map(|(n, d)| (n.to_string(), d)).to_vec();
    run_rows(
        "lost index, damaged last batch",
        rows,
        |ctx, damage: Damage| {
            let f = fixture();
            let mut bytes = f.original.clone();
            damage(&mut bytes, f.rec(SIZE - 1));
            f.write(&bytes);
            f.delete_index();
            let held = std::fs::read(f.data.join("checkpoint")).expect("checkpoint file");
            for attempt in ["open", "second open"] {
                let e = open_err(&f.data, &format!("{ctx}, {attempt}"));
                let named = named_index(&e);
                assert!(
                    matches!(named, Some(i) if (PREV_BATCH_END..SIZE).contains(&i)),
                    "{ctx}, {attempt}: names a leaf of the last batch, not {named:?}: {e}"
                );
                assert_eq!(f.read(), bytes, "{ctx}, {attempt}: nothing trimmed");
                assert_nothing_signed(&f.data, &held, &format!("{ctx}, {attempt}"));
            }
        },
    );
}

/// A leaf's `accepted` instant, which comes first in its canonical JSON.
fn accepted_of(leaf: &[u8]) -> String {
    let v: Value = serde_json::from_slice(leaf).expect("leaf is JSON");
    v["accepted"].as_str().expect("accepted").to_string()
}

/// The same leaf accepted at `accepted` instead (the instant is not signed).
fn with_accepted(leaf: &[u8], accepted: &str) -> Vec<u8> {
    let prefix = format!("{{\"accepted\":\"{}\"", accepted_of(leaf));
    assert!(
        leaf.starts_with(prefix.as_bytes()),
        "leaf starts with its acceptance time"
    );
    let mut out = format!("{{\"accepted\":\"{accepted}\"").into_bytes();
    out.extend_from_slice(&leaf[prefix.len()..]);
    out
}

type BatchTail = fn(&[Vec<u8>]) -> Vec<u8>;

/// Records of a batch that never got its batch-end flag were never acknowledged: the
/// batch is dropped whole, however many of its records are intact. The control rows
/// show the same records are kept once the batch is complete.
#[test]
fn incomplete_batch_is_dropped_whole() {
    // Leaves 9, 10 and 11 of a ledger with one more batch: valid continuations (seq 10,
    // 11, 12), given an acceptance time no earlier than the fixture's.
    let donor = fixture_with(&[3, 3, 2, 3]);
    let donor_leaves: Vec<Vec<u8>> = (SIZE..SIZE + 3).map(|i| donor.leaf(i).to_vec()).collect();
    let tails: [(&str, BatchTail, u64); 4] = [
        (
            "two intact records without the batch end",
            |d| [frame(9, &d[0], 0), frame(10, &d[1], 0)].concat(),
            SIZE,
        ),
        (
            "two intact records and a torn batch end",
            |d| {
                let end = frame(11, &d[2], BATCH_END);
                [
                    frame(9, &d[0], 0),
                    frame(10, &d[1], 0),
                    end[..end.len() / 2].to_vec(),
                ]
                .concat()
            },
            SIZE,
        ),
        (
            "two intact records and a batch end with a bad checksum",
            |d| {
                let mut end = frame(11, &d[2], BATCH_END);
                let last = end.len() - 1;
                end[last] ^= 0x01;
                [frame(9, &d[0], 0), frame(10, &d[1], 0), end].concat()
            },
            SIZE,
        ),
        (
            "control: the same two records as a complete batch",
            |d| [frame(9, &d[0], 0), frame(10, &d[1], BATCH_END)].concat(),
            SIZE + 2,
        ),
    ];
    let mut rows = Vec::new();
    for (tail_name, tail, expected) in tails {
        for (state, keep_index) in index_states() {
            rows.push((
                format!("{tail_name}, {state}"),
                (tail, expected, keep_index),
            ));
        }
    }
    run_rows(
        "incomplete batch",
        rows,
        |ctx, (tail, expected, keep_index): (BatchTail, u64, bool)| {
            let f = fixture();
            let accepted = accepted_of(f.leaf(SIZE - 1));
            let leaves: Vec<Vec<u8>> = donor_leaves
                .iter()
                .map(|l| with_accepted(l, &accepted))
                .collect();
            let mut bytes = f.original.clone();
            bytes.extend_from_slice(&tail(&leaves));
            f.write(&bytes);
            if !keep_index {
                f.delete_index();
            }
            let ledger = open_ok(&f.data, ctx);
            if expected == SIZE {
                assert_eq!(
                    f.read(),
                    f.original,
                    "{ctx}: the incomplete batch must be cut off"
                );
            } else {
                assert_eq!(f.read(), bytes, "{ctx}: the complete batch must be kept");
            }
            assert_healthy(&ledger, expected, ctx);
            assert_append_continues(ledger, ctx);
        },
    );
}

#[derive(Clone, Copy, Debug)]
enum Part {
    LeafByte,
    ChecksumByte,
    LengthField,
    UnknownFlag,
}

fn garble(bytes: &mut [u8], r: Rec, part: Part) {
    match part {
        Part::LeafByte => bytes[r.leaf().start + r.leaf_len / 2] ^= 0x01,
        Part::ChecksumByte => bytes[r.checksum().start + 3] ^= 0x10,
        Part::LengthField => bytes[r.offset] ^= 0x01,
        Part::UnknownFlag => bytes[r.flags_at()] |= 0x02,
    }
}

/// A damaged record in the middle of the log is corruption, named by its index
/// everywhere: `verify` and reads of a running ledger, `open`, `dcledger verify` and
/// `reindex`. Nothing is trimmed: the acknowledged records after it stay on disk.
#[test]
fn garbled_middle_record_is_named_everywhere() {
    let cases = [
        (5, Part::LeafByte),
        (5, Part::ChecksumByte),
        (5, Part::LengthField),
        (5, Part::UnknownFlag),
        (4, Part::LeafByte),
        (6, Part::LeafByte),
        (1, Part::ChecksumByte),
    ];
    let rows = cases
        .iter()
        .map(|&(i, p)| (format!("leaf {i}, {p:?}"), (i, p)))
        .collect();
    run_rows(
        "garbled middle record",
        rows,
        |ctx, (index, part): (u64, Part)| {
            let f = fixture();
            let mut bytes = f.original.clone();
            garble(&mut bytes, f.rec(index), part);
            // Damage while the ledger is open (bit rot under a running server): reads and
            // verify find it.
            let ledger = open_ok(&f.data, ctx);
            f.write(&bytes);
            assert_eq!(ledger.size(), SIZE, "{ctx}: size after open");
            let reader = ledger.reader();
            match ledger.verify() {
                Ok(r) => panic!(
                    "{ctx}: verify passed ({} entries) over a garbled record",
                    r.entries
                ),
                Err(e) => assert_names(&e, index, &format!("{ctx}, verify")),
            }
            match reader.entry(index) {
                Ok(_) => panic!("{ctx}: reading the garbled entry {index} succeeded"),
                Err(e) => assert_names(&e, index, &format!("{ctx}, entry({index})")),
            }
            for neighbour in [index - 1, index + 1] {
                reader
                    .entry(neighbour)
                    .unwrap_or_else(|e| panic!("{ctx}: intact entry {neighbour}: {e}"));
            }
            assert_eq!(ledger.size(), SIZE, "{ctx}: size after the failed checks");
            drop(reader);
            ledger.close().expect("close");

            // Every open checks the active segment: it refuses, naming the leaf.
            let e = open_err(&f.data, &format!("{ctx}, open"));
            assert_names(&e, index, &format!("{ctx}, open"));
            assert_cli_verify_names(&f.data, index, ctx);
            assert_eq!(
                f.read(),
                bytes,
                "{ctx}: dcledger verify must not change the segment"
            );

            match Ledger::reindex(&f.data, log_key()) {
                Ok(l) => panic!(
                    "{ctx}: reindex succeeded over a garbled middle record (size {} of {SIZE}; \
                 segment now {} of {} bytes)",
                    l.size(),
                    f.read().len(),
                    bytes.len()
                ),
                Err(e) => assert_names(&e, index, &format!("{ctx}, reindex")),
            }
            assert_eq!(
                f.read(),
                bytes,
                "{ctx}: a failed reindex must not trim acknowledged records"
            );
            let e = open_err(&f.data, &format!("{ctx}, open after the failed reindex"));
            assert_names(&e, index, &format!("{ctx}, open after the failed reindex"));
            assert_eq!(
                f.read(),
                bytes,
                "{ctx}: a failed open must not trim acknowledged records"
            );
        },
    );
}

/// A trusted rebuild reads no checksum of a leaf the signed root proves, in the active
/// segment either (its open frames those records only): a record whose leaf is intact
/// and whose checksum alone is damaged is rebuilt into the same tree, and named by the
/// next open, which reads every checksum of the active segment, and by plain `reindex`.
#[test]
fn a_trusted_rebuild_leaves_a_proven_leafs_damaged_checksum_to_the_next_open() {
    let f = fixture();
    let mut bytes = f.original.clone();
    garble(&mut bytes, f.rec(5), Part::ChecksumByte);
    f.write(&bytes);
    f.delete_index();
    let rebuilt = Ledger::reindex_trusting(&f.data, log_key()).expect("reindex --trust");
    assert_eq!(rebuilt.size(), SIZE, "the trusted rebuild's size");
    rebuilt.close().expect("close");
    let e = open_err(&f.data, "open after the trusted rebuild");
    assert_names(&e, 5, "open after the trusted rebuild");
    match Ledger::reindex(&f.data, log_key()) {
        Ok(l) => panic!(
            "reindex rebuilt {} entries over a damaged checksum",
            l.size()
        ),
        Err(e) => assert_names(&e, 5, "reindex"),
    }
    assert_eq!(f.read(), bytes, "no acknowledged record was trimmed");
}

/// The last record is acknowledged once derived state has applied it: damage to it is
/// corruption, never a torn tail. Open refuses and names it, and trims nothing.
#[test]
fn garbled_last_acknowledged_record_fails_open() {
    let cases = [
        Part::LeafByte,
        Part::ChecksumByte,
        Part::UnknownFlag,
        Part::LengthField,
    ];
    let rows = cases.iter().map(|&p| (format!("{p:?}"), p)).collect();
    run_rows(
        "garbled last acknowledged record",
        rows,
        |ctx, part: Part| {
            let f = fixture();
            let last = SIZE - 1;
            let mut bytes = f.original.clone();
            garble(&mut bytes, f.rec(last), part);
            f.write(&bytes);

            let e = open_err(&f.data, ctx);
            assert_names(&e, last, ctx);
            assert_eq!(
                f.read(),
                bytes,
                "{ctx}: open must not trim an acknowledged record"
            );
            // Still refused on a second attempt: nothing was silently repaired.
            let e = open_err(&f.data, &format!("{ctx}, second open"));
            assert_names(&e, last, &format!("{ctx}, second open"));
            assert_cli_verify_names(&f.data, last, ctx);
            assert_eq!(f.read(), bytes, "{ctx}: size and bytes unchanged");
        },
    );
}

/// After a replay refused by the hold on the last signed checkpoint: the checkpoint file
/// is still `held`, and derived state records no leaf applied, so no checkpoint was
/// signed over the edited leaves and the next open is held to the same note again.
fn assert_nothing_signed(data: &Path, held: &[u8], ctx: &str) {
    let now = std::fs::read(data.join("checkpoint")).expect("checkpoint file");
    assert!(now == held, "{ctx}: the checkpoint file was rewritten");
    let derived = Derived::open(&data.join("index")).expect("derived state opens");
    let applied = derived.applied().expect("derived state reads");
    assert!(
        applied.is_none(),
        "{ctx}: derived state recorded progress over the edited leaves: {applied:?}"
    );
}

/// Both rebuilds (`reindex`, then `reindex --trust`) refuse the ledger at `data` with an
/// error saying `refusal`, and sign nothing (`assert_nothing_signed`).
fn assert_rebuilds_refused(data: &Path, held: &[u8], refusal: &str, what: &str) {
    for trust in [false, true] {
        let ctx = format!("{what}, reindex (trusting: {trust})");
        let rebuilt = if trust {
            Ledger::reindex_trusting(data, log_key())
        } else {
            Ledger::reindex(data, log_key())
        };
        match rebuilt {
            Ok(l) => panic!("{ctx}: rebuilt and signed {} entries", l.size()),
            Err(e) => assert!(e.to_string().contains(refusal), "{ctx}: {e}"),
        }
        assert_nothing_signed(data, held, &ctx);
    }
}

/// A hand edit that also fixes the record checksum passes the storage layer but not the
/// signature: `verify` and `dcledger verify` name the edited leaf.
#[test]
fn hand_edit_with_recomputed_checksum_fails_signature() {
    let mut rows = Vec::new();
    for index in [5u64, SIZE - 1] {
        for (state, keep_index) in index_states() {
            rows.push((format!("leaf {index}, {state}"), (index, keep_index)));
        }
    }
    run_rows(
        "hand edit",
        rows,
        |ctx, (index, keep_index): (u64, bool)| {
            let f = fixture();
            let r = f.rec(index);
            let mut bytes = f.original.clone();
            let leaf = &mut bytes[r.leaf()];
            let needle = format!("\"name\":\"Org {} Ltd\"", index + 1);
            let at = leaf
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .unwrap_or_else(|| panic!("{ctx}: org name not found in leaf {index}"));
            // "Org" -> "Orh": same length, still canonical JSON.
            leaf[at + "\"name\":\"Or".len()] = b'h';
            let sum = checksum(index, &bytes[r.leaf()], r.flags);
            bytes[r.checksum()].copy_from_slice(&sum);
            assert_eq!(bytes.len(), f.original.len());
            f.write(&bytes);
            if !keep_index {
                f.delete_index();
            }

            if keep_index {
                // The storage layer cannot tell: the record is well formed, and derived
                // state has applied it, so open replays nothing.
                let ledger = open_ok(&f.data, ctx);
                assert_eq!(ledger.size(), SIZE, "{ctx}: size after open");
                match ledger.verify() {
                    Ok(r) => panic!(
                        "{ctx}: verify passed ({} entries) over an edited entry",
                        r.entries
                    ),
                    Err(e) => {
                        assert!(
                            matches!(e, LedgerError::Replay { .. }),
                            "{ctx}: expected a replay (signature) refusal, got {e:?}"
                        );
                        assert_names(&e, index, &format!("{ctx}, verify"));
                    }
                }
                assert_eq!(ledger.size(), SIZE, "{ctx}: size after verify");
                ledger.close().expect("close");
            } else {
                // Open would replay the edited leaf trusting the segments: it first holds
                // them to the last signed checkpoint, and refuses to sign the edit anew.
                let held = std::fs::read(f.data.join("checkpoint")).expect("checkpoint file");
                let e = open_err(&f.data, ctx);
                assert!(
                    e.to_string().contains("root of the last signed checkpoint"),
                    "{ctx}: open: {e}"
                );
                assert_nothing_signed(&f.data, &held, &format!("{ctx}, open"));
            }

            assert_cli_verify_names(&f.data, index, ctx);
            // reindex re-checks signatures, and is first held to the last signed
            // checkpoint: the forged entry never reaches derived state.
            match Ledger::reindex(&f.data, log_key()) {
                Ok(_) => panic!("{ctx}: reindex accepted an edited entry"),
                Err(e) => assert!(
                    e.to_string().contains("root of the last signed checkpoint"),
                    "{ctx}: reindex: {e}"
                ),
            }
            assert_eq!(f.read(), bytes, "{ctx}: size and bytes unchanged");
            // A rebuild that trusts the segments first holds them to the last signed
            // checkpoint, whose root the edit changed.
            let held = std::fs::read(f.data.join("checkpoint")).expect("checkpoint file");
            match Ledger::reindex_trusting(&f.data, log_key()) {
                Ok(_) => panic!("{ctx}: reindex --trust accepted an edited entry"),
                Err(e) => assert!(
                    e.to_string().contains("root of the last signed checkpoint"),
                    "{ctx}: reindex --trust: {e}"
                ),
            }
            assert_nothing_signed(&f.data, &held, &format!("{ctx}, reindex --trust"));
            assert_eq!(f.read(), bytes, "{ctx}: size and bytes unchanged");
        },
    );
}

/// A ledger of more than one segment file (past `SEGMENT_TARGET_BYTES` of leaves, as
/// every ledger in use soon is): its readers read it at its checkpoint, and opening it
/// after a lost index and both rebuilds hold every segment to the last signed checkpoint,
/// refusing one taken away or edited. Readers and the hold once stopped at the second
/// segment, and the hold took that for a damaged tail and let an edited first segment
/// through, signed anew.
#[test]
fn a_ledger_of_several_segments_is_held_whole_to_its_checkpoint() {
    let mut w = crate::audit_rules::World::new();
    w.procure(
        "lot-big",
        crate::audit_rules::FAC,
        "H100",
        2_000_000,
        1,
        "2025-01-01",
    );
    w.flush();
    // Lists of 900 serials of 64 characters, about 60 KB a leaf: the first segment fills
    // in about 1,100 of them, a hundred to a batch.
    let data = w.t.data();
    let segments = || std::fs::read_dir(data.join("segments")).unwrap().count();
    let mut listed = 0u64;
    while segments() < 2 {
        for _ in 0..100 {
            let serials: Vec<String> = (listed..listed + 900).map(|s| format!("{s:064}")).collect();
            listed += 900;
            w.add(
                "op",
                Kind::LotSerials,
                json!({"lot_id": "lot-big", "serials": serials}),
            );
        }
        w.flush();
    }
    let crate::support::TestLedger {
        dir: _dir, ledger, ..
    } = w.t;
    ledger.close().expect("close");

    run_ok(&["verifier-key", "--data", path_str(&data)]);

    // The second segment gone, the index too: neither rebuild signs the smaller tree the
    // first segment alone gives (the checkpoint counts the second's leaves acknowledged).
    let second = std::fs::read_dir(data.join("segments"))
        .expect("segments")
        .map(|e| e.expect("segment").path())
        .max()
        .expect("two segments");
    let aside = data.join("second.seg");
    std::fs::rename(&second, &aside).expect("move the second segment aside");
    std::fs::remove_dir_all(data.join("index")).expect("delete index");
    let held = std::fs::read(data.join("checkpoint")).expect("checkpoint file");
    // Named as missing, from the second segment's first leaf on, not as damage.
    let first_missing: u64 = second
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("a segment file is named by its first leaf");
    let e = open_err(&data, "second segment gone, open");
    assert_names(&e, first_missing, "second segment gone, open");
    assert!(
        e.to_string()
            .contains("so a segment file after it was deleted, or it was cut short"),
        "open: {e}"
    );
    assert_rebuilds_refused(
        &data,
        &held,
        &format!("hold none from leaf {first_missing} on"),
        "second segment gone",
    );
    std::fs::rename(&aside, &second).expect("put the second segment back");

    // Leaf 1, op-a's registration, in the first segment.
    let first = segment_path(&data);
    let original = std::fs::read(&first).expect("read segment");
    let r = parse_records(&original)[1];
    let damaged = |damage: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = original.clone();
        damage(&mut bytes);
        std::fs::write(&first, &bytes).expect("write segment");
        std::fs::remove_dir_all(data.join("index")).expect("delete index");
    };
    let size = Ledger::open(&data, log_key()).expect("open").size();
    // "op-a" -> "oq-a"; the checksum is left alone, or made right, so that only the
    // checkpoint's root tells.
    let edit = |bytes: &mut Vec<u8>| {
        let leaf = &mut bytes[r.leaf()];
        let needle = b"\"name\":\"op-a\"";
        let at = leaf
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("op-a's name in leaf 1");
        leaf[at + "\"name\":\"o".len()] = b'q';
    };

    // Its checksum damaged, its leaf not: the trusted rebuild reads the leaves the
    // checkpoint's root proves without their checksums, and rebuilds the same tree; the
    // plain one reads every checksum and refuses, naming the leaf; so does `verify`.
    damaged(&|bytes| bytes[r.checksum().start + 3] ^= 0x10);
    let held = std::fs::read(data.join("checkpoint")).expect("checkpoint file");
    match Ledger::reindex(&data, log_key()) {
        Ok(l) => panic!(
            "reindex rebuilt {} entries over a damaged checksum",
            l.size()
        ),
        Err(e) => assert_names(&e, 1, "a damaged checksum, reindex"),
    }
    assert_nothing_signed(&data, &held, "a damaged checksum, reindex");
    let rebuilt = Ledger::reindex_trusting(&data, log_key()).expect("reindex --trust");
    assert_eq!(rebuilt.size(), size, "the trusted rebuild's size");
    match rebuilt.verify() {
        Ok(r) => panic!(
            "verify passed {} entries over a damaged checksum",
            r.entries
        ),
        Err(e) => assert_names(&e, 1, "a damaged checksum, verify"),
    }
    rebuilt.close().expect("close");

    // The leaf edited, its checksum left: both rebuilds refuse, naming the damaged record
    // (the hold, finding the root differs, reads the checksums to say where).
    damaged(&edit);
    let held = std::fs::read(data.join("checkpoint")).expect("checkpoint file");
    assert_rebuilds_refused(
        &data,
        &held,
        "leaf 1 ",
        "a damaged leaf in the first of two segments",
    );

    // The leaf edited, its checksum made right: refused by the root alone.
    damaged(&|bytes| {
        edit(bytes);
        let sum = checksum(1, &bytes[r.leaf()], r.flags);
        bytes[r.checksum()].copy_from_slice(&sum);
    });

    let held = std::fs::read(data.join("checkpoint")).expect("checkpoint file");
    // Opened to write, the lost index is caught up trusting the segments: held too.
    let e = open_err(&data, "two segments, open");
    assert!(
        e.to_string().contains("root of the last signed checkpoint"),
        "open: {e}"
    );
    assert_nothing_signed(&data, &held, "two segments, open");
    assert_rebuilds_refused(
        &data,
        &held,
        "root of the last signed checkpoint",
        "an edit in the first of two segments",
    );
}

/// A ledger whose segment files are all gone is refused, its index kept or lost: the
/// checkpoint file names leaves that no recovery can give back, and no segment is begun
/// anew in their place. With the index lost it was once rebuilt empty ("reindexed 0
/// entries"), a fresh segment left for a new genesis to fork the signed tree from.
#[test]
fn a_ledger_without_the_segments_the_checkpoint_names_is_refused() {
    let f = fixture();
    for seg in std::fs::read_dir(f.data.join("segments")).expect("segments") {
        std::fs::remove_file(seg.expect("segment").path()).expect("delete segment");
    }
    let held = std::fs::read(f.data.join("checkpoint")).expect("checkpoint file");
    let e = open_err(&f.data, "no segments, index kept");
    assert_names(&e, 0, "no segments, index kept");
    assert!(
        e.to_string().contains("no segment file is left"),
        "open: {e}"
    );
    f.delete_index();
    assert_rebuilds_refused(
        &f.data,
        &held,
        "hold none from leaf 0 on: no segment file is left",
        "no segments, index lost",
    );
    let left = std::fs::read_dir(f.data.join("segments"))
        .expect("segments")
        .count();
    assert_eq!(left, 0, "no segment was made in the place of the lost ones");
}

/// A rebuild that re-checks every signature is held to the last signed checkpoint too:
/// another history in the segments' place, every entry of it validly signed (a backup of
/// another ledger of the same origin and keys restored by mistake), is refused rather
/// than signed into a checkpoint that forks the published one.
#[test]
fn a_rebuild_of_another_validly_signed_history_is_refused() {
    let f = fixture();
    let mut other = TestLedger::new();
    for batch in BATCHES {
        let envelopes = (0..batch)
            .map(|_| {
                let seq = other.authority.next_seq;
                other.authority.sign(
                    Kind::OrgRegister,
                    json!({"org_id": format!("other-{seq}"), "name": "Other Ltd", "roles": ["operator"]}),
                )
            })
            .collect();
        other.accept(envelopes);
    }
    assert_eq!(other.ledger.size(), SIZE, "the other history's size");
    let other_segment = std::fs::read(segment_path(&other.data())).expect("other segment");
    f.write(&other_segment);
    f.delete_index();
    let held = std::fs::read(f.data.join("checkpoint")).expect("checkpoint file");
    assert_rebuilds_refused(
        &f.data,
        &held,
        "root of the last signed checkpoint",
        "another history",
    );
}
