//! Derived state is a pure function of the segments: rebuilt from scratch, caught up
//! after losing the derived store, or built incrementally, it is the same bytes.

use dcledger::entry::Kind;
use dcledger::ledger::{Ledger, LedgerError, REMOVING_DIR};
use ed25519_dalek::SigningKey;
use serde_json::json;

use crate::support::{Party, TestLedger, dump_derived as dump, log_key};

/// A ledger with a few hundred entries over several batches and signers.
fn populated() -> TestLedger {
    let mut t = TestLedger::new();
    let mut registrar = Party::new(7);
    t.onboard("registrar", &["authority"], &registrar);
    for batch in 0..30 {
        let mut envs = Vec::new();
        for i in 0..10 {
            envs.push(t.authority.sign(
                Kind::OrgRegister,
                json!({"org_id": format!("a-{batch}-{i}"), "name": "A", "roles": ["operator"]}),
            ));
            envs.push(registrar.sign(
                Kind::OrgRegister,
                json!({"org_id": format!("r-{batch}-{i}"), "name": "R", "roles": ["lender"], "parent_org": "registrar"}),
            ));
        }
        t.accept(envs);
    }
    t
}

#[test]
fn reindex_rebuilds_identical_derived_state() {
    let t = populated();
    let data = t.data();
    let size = t.ledger.size();
    let TestLedger { dir, ledger, .. } = t;
    ledger.close().unwrap();
    let incremental = dump(&data);

    let rebuilt = Ledger::reindex(&data, log_key()).expect("reindex");
    assert_eq!(rebuilt.size(), size);
    rebuilt.close().unwrap();
    assert_eq!(
        dump(&data),
        incremental,
        "reindex differs from incremental state"
    );
    // The derived state it replaced was removed beside it, and none is left.
    let removing = data.join(REMOVING_DIR);
    assert!(!removing.exists(), "reindex left {}", removing.display());

    // Losing the index entirely rebuilds it on open, too; and a writer's open removes
    // what a rebuild stopped before its removal was done left behind.
    std::fs::remove_dir_all(data.join("index")).unwrap();
    std::fs::create_dir_all(removing.join("index")).unwrap();
    std::fs::write(removing.join("index").join("derived.redb"), b"replaced").unwrap();
    let reopened = Ledger::open(&data, log_key()).expect("open rebuilds");
    assert!(!removing.exists(), "open left {}", removing.display());
    reopened.verify().expect("verify");
    reopened.close().unwrap();
    assert_eq!(dump(&data), incremental, "rebuild on open differs");
    drop(dir);
}

/// Leaf locations are kept sixteen a key (`LOCATION_SPAN`), the key's run extended by
/// commits that end inside it: every run of leaves, from any leaf, reads what a scan of
/// the segments from the start reads. The ledger was built by thirty commits of twenty
/// entries, so most commits end inside a key's run.
#[test]
fn every_run_of_leaves_reads_what_the_segments_hold() {
    let t = populated();
    let segments = t.data().join("segments");
    let size = t.ledger.size();
    let mut scanned = Vec::new();
    dcledger::log::segment::read_leaves(&segments, 0, size, |i, leaf| {
        scanned.push((i, leaf.to_vec()));
        Ok::<(), dcledger::log::segment::SegmentError>(())
    })
    .unwrap();
    assert_eq!(scanned.len() as u64, size);
    let reader = t.ledger.reader();
    for first in 0..size {
        for count in [1, 2, 17, 40] {
            let count = count.min(size - first);
            let mut read = Vec::new();
            reader
                .leaves(first, count, |i, leaf| {
                    read.push((i, leaf.to_vec()));
                    Ok::<(), LedgerError>(())
                })
                .unwrap();
            assert!(
                read[..] == scanned[first as usize..(first + count) as usize],
                "leaves {first}..{} differ from the segments'",
                first + count
            );
        }
        assert_eq!(reader.entry(first).unwrap().leaf, scanned[first as usize].1);
    }
}

#[test]
fn proofs_for_every_historic_size_verify() {
    use dcledger::log::merkle;
    let t = populated();
    let reader = t.ledger.reader();
    let size = reader.size();
    let roots: Vec<_> = (0..=size).map(|n| reader.root_at(n).unwrap()).collect();
    for n in (1..=size).step_by(37) {
        for i in (0..n).step_by(11) {
            let p = reader.inclusion(i, Some(n)).unwrap();
            merkle::verify_inclusion(i, n, &p.leaf_hash, &p.hashes, &roots[n as usize]).unwrap();
        }
        let c = reader.consistency(n, size).unwrap();
        merkle::verify_consistency(
            n,
            size,
            &roots[n as usize],
            &roots[size as usize],
            &c.hashes,
        )
        .unwrap();
    }
    assert!(reader.inclusion(size, None).is_err());
    assert!(reader.inclusion(0, Some(size + 1)).is_err());
    assert!(reader.consistency(0, size).is_err());
    assert!(reader.consistency(2, 1).is_err());
}

/// A proof answered from the tiles in memory (as the server answers on its async workers)
/// is the proof read from disk, or no answer at all when a tile it needs is not in memory
/// yet; its refusals are the disk's.
#[test]
fn proofs_from_memory_are_the_proofs_from_disk_or_none() {
    let t = populated();
    // A reader of its own: nothing in its tile cache yet.
    let reader = dcledger::ledger::Unlocked::open(&t.data())
        .unwrap()
        .reader()
        .unwrap();
    let size = reader.size();
    assert!(
        size > 2 * 256,
        "tiles enough for a proof to miss one: {size}"
    );
    assert_eq!(reader.inclusion_in_memory(0, None).unwrap(), None);
    assert_eq!(reader.consistency_in_memory(1, size).unwrap(), None);
    let (mut answered, mut unanswered) = (0, 0);
    for n in (1..=size).step_by(37) {
        for i in (0..n).step_by(53) {
            match reader.inclusion_in_memory(i, Some(n)).unwrap() {
                Some(p) => {
                    assert_eq!(p, reader.inclusion(i, Some(n)).unwrap());
                    answered += 1;
                }
                None => {
                    let from_disk = reader.inclusion(i, Some(n)).unwrap();
                    // Read once, the tiles are in memory.
                    assert_eq!(
                        reader.inclusion_in_memory(i, Some(n)).unwrap(),
                        Some(from_disk)
                    );
                    unanswered += 1;
                }
            }
        }
        let c = reader.consistency_in_memory(n, size).unwrap();
        let from_disk = reader.consistency(n, size).unwrap();
        assert!(c.is_none_or(|c| c == from_disk));
        assert_eq!(
            reader.consistency_in_memory(n, size).unwrap(),
            Some(from_disk)
        );
    }
    assert!(
        answered > 0 && unanswered > 0,
        "{answered} answered, {unanswered} not"
    );
    fn refusal<T: std::fmt::Debug>(r: Result<T, LedgerError>) -> String {
        r.unwrap_err().to_string()
    }
    assert_eq!(
        refusal(reader.inclusion_in_memory(size, None)),
        refusal(reader.inclusion(size, None))
    );
    assert_eq!(
        refusal(reader.inclusion_in_memory(0, Some(size + 1))),
        refusal(reader.inclusion(0, Some(size + 1)))
    );
    assert_eq!(
        refusal(reader.consistency_in_memory(2, 1)),
        refusal(reader.consistency(2, 1))
    );
}

/// Warming reads the tiles of the newest entries' proofs into memory, the highest level
/// first, and stops at its budget.
#[test]
fn warming_reads_the_newest_proofs_tiles_into_memory_within_its_budget() {
    let t = populated();
    let fresh = || {
        dcledger::ledger::Unlocked::open(&t.data())
            .unwrap()
            .reader()
            .unwrap()
    };
    let reader = fresh();
    let size = reader.size();
    // Two full level-0 tiles and a partial one, and a partial level-1 tile.
    assert!((2 * 256..3 * 256).contains(&size), "{size}");
    assert_eq!(reader.warm_tiles(0).unwrap(), 0);
    assert_eq!(reader.inclusion_in_memory(size - 1, None).unwrap(), None);
    // Every tile, and the budget left unfilled.
    assert_eq!(reader.warm_tiles(usize::MAX).unwrap(), 4);
    for i in 0..size {
        assert_eq!(
            reader.inclusion_in_memory(i, None).unwrap(),
            Some(reader.inclusion(i, None).unwrap())
        );
    }
    // A budget of one byte: the level-1 tile alone, which no proof answers by itself.
    let reader = fresh();
    assert_eq!(reader.warm_tiles(1).unwrap(), 1);
    assert_eq!(reader.inclusion_in_memory(size - 1, None).unwrap(), None);
    // A byte more than the level-1 tile holds expanded (two hashes and their parent):
    // the newest leaves' tile too, so their proofs are answered, the oldest not.
    let reader = fresh();
    assert_eq!(reader.warm_tiles(3 * 32 + 1).unwrap(), 2);
    assert!(
        reader
            .inclusion_in_memory(size - 1, None)
            .unwrap()
            .is_some()
    );
    assert_eq!(reader.inclusion_in_memory(0, None).unwrap(), None);
}

/// A generated world (serials, some listed by two lots, GPU moves, superseded reports):
/// its derived state rebuilt from the segments, checking every signature again or
/// trusting them, is the state its appends left, value for value.
#[test]
fn a_generated_worlds_derived_state_is_rebuilt_value_for_value() {
    let dir = tempfile::tempdir().unwrap();
    let data = crate::worlds::generated_ledger(dir.path(), 480, 36, 5);
    let key = || dcledger::keys::load_signing_key(&dir.path().join("world/keys/log.pem")).unwrap();
    let appended = dump(&data);
    let family = |f: u8| appended.keys().filter(|k| k.first() == Some(&f)).count();
    // Replay admits a chunk while the chunk before is written to the store, reading it
    // through the overlay meanwhile: the world spans chunks so that this is exercised.
    let entries = dcledger::ledger::Unlocked::open(&data)
        .and_then(|l| l.reader())
        .unwrap()
        .size();
    assert!(
        entries > 2 * dcledger::limits::REINDEX_CHUNK_ENTRIES as u64,
        "the world spans several replay chunks: {entries} entries"
    );
    assert!(family(b'D') > 0, "the world lists serials");
    assert!(
        family(b'X') > 0,
        "the world has a serial listed by two lots"
    );
    type Rebuild = fn(&std::path::Path, SigningKey) -> Result<Ledger, LedgerError>;
    let rebuilds: [(&str, Rebuild); 2] = [
        ("reindex", Ledger::reindex),
        ("reindex --trust", Ledger::reindex_trusting),
    ];
    for (how, rebuild) in rebuilds {
        rebuild(&data, key()).expect(how).close().unwrap();
        assert_eq!(
            dump(&data),
            appended,
            "{how} differs from the appended state"
        );
    }
}

/// A reindex killed at any point (SIGKILL to a real process; replay writes a chunk to the
/// store while it admits the next) leaves a ledger whose next open finishes the rebuild:
/// the derived state is the appends' to the byte, and `verify` agrees.
#[test]
fn a_reindex_killed_midway_is_finished_by_the_next_open() {
    use std::time::Instant;

    use crate::support::{bin, log_key_file, path_str};

    let dir = tempfile::tempdir().unwrap();
    let data = crate::worlds::generated_ledger(dir.path(), 160, 36, 5);
    let key_file = log_key_file(&data);
    let key = || dcledger::keys::load_signing_key(&key_file).unwrap();
    let appended = dump(&data);
    let reindex = |how: &[&str]| {
        let mut args = vec![
            "reindex",
            "--data",
            path_str(&data),
            "--log-key",
            path_str(&key_file),
        ];
        args.extend_from_slice(how);
        let mut command = bin();
        command
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command
    };
    for how in [&["--trust"][..], &[]] {
        // A whole run, to spread the kills over its length.
        let start = Instant::now();
        let status = reindex(how).status().unwrap();
        assert!(status.success(), "reindex {how:?}: {status}");
        let whole = start.elapsed();
        assert_eq!(dump(&data), appended, "reindex {how:?} differs");
        let mut killed_running = 0;
        for eighths in [1u32, 3, 5, 7] {
            let mut child = reindex(how).spawn().unwrap();
            std::thread::sleep(whole * eighths / 8);
            if child.try_wait().unwrap().is_none() {
                killed_running += 1;
            }
            // SIGKILL on Unix; a run that already ended is reaped all the same.
            let _ = child.kill();
            child.wait().unwrap();
            let ledger = Ledger::open(&data, key()).unwrap_or_else(|e| {
                panic!("open after reindex {how:?} killed at {eighths}/8 of {whole:?}: {e}")
            });
            ledger.close().unwrap();
            assert_eq!(
                dump(&data),
                appended,
                "reindex {how:?} killed at {eighths}/8 of {whole:?}, then open"
            );
        }
        assert!(
            killed_running > 0,
            "reindex {how:?}: no kill landed while it ran ({whole:?} a run)"
        );
    }
    let ledger = Ledger::open(&data, key()).unwrap();
    ledger.verify().expect("verify after the killed reindexes");
    ledger.close().unwrap();
}
