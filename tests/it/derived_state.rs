//! Derived state is a pure function of the segments: rebuilt from scratch, caught up
//! after losing the derived store, or built incrementally, it is the same bytes.

use dcledger::entry::Kind;
use dcledger::ledger::{Ledger, LedgerError};
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

    // Losing the index entirely rebuilds it on open, too.
    std::fs::remove_dir_all(data.join("index")).unwrap();
    let reopened = Ledger::open(&data, log_key()).expect("open rebuilds");
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

/// A generated world (serials, some listed by two lots, GPU moves, superseded reports):
/// its derived state rebuilt from the segments, checking every signature again or
/// trusting them, is the state its appends left, value for value.
#[test]
fn a_generated_worlds_derived_state_is_rebuilt_value_for_value() {
    let dir = tempfile::tempdir().unwrap();
    let data = crate::worlds::generated_ledger(dir.path(), 160, 36, 5);
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
