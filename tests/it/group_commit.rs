//! Concurrent submitters share syncs (group commit), and a refused batch disturbs no one.

use std::sync::atomic::Ordering;

use dcledger::entry::Kind;
use dcledger::ledger::{Committer, Ledger, SubmitError};
use dcledger::log::checkpoint::{self, NoteVerifier};
use dcledger::log::merkle;
use serde_json::json;

use crate::support::{ORIGIN, Party, TestLedger, key};

const THREADS: u8 = 8;
const BATCHES_PER_THREAD: u64 = 40;

#[test]
fn concurrent_appends_share_syncs_and_lose_nothing() {
    let mut t = TestLedger::new();
    // Each thread signs as its own authority-role organisation, so seq chains are
    // independent and entries of different threads never conflict.
    let mut parties: Vec<Party> = (0..THREADS).map(|i| Party::new(100 + i)).collect();
    for (i, p) in parties.iter().enumerate() {
        t.onboard(&format!("registrar-{i}"), &["authority"], p);
    }
    let base = t.ledger.size();
    let data = t.data();
    let TestLedger { dir, ledger, .. } = t;
    let committer = Committer::start(ledger);
    let stats = committer.stats();

    let handles: Vec<_> = parties
        .drain(..)
        .enumerate()
        .map(|(i, mut party)| {
            let handle = committer.handle();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut checkpoints = Vec::new();
                for b in 0..BATCHES_PER_THREAD {
                    let size = 1 + (b % 3) as usize;
                    let batch: Vec<_> = (0..size)
                        .map(|k| {
                            party.sign(
                                Kind::OrgRegister,
                                json!({"org_id": format!("t{i}-{b}-{k}"), "name": "N", "roles": ["operator"]}),
                            )
                        })
                        .collect();
                    if b % 10 == 5 {
                        // A replayed seq: refused, and the thread's chain is unaffected.
                        let stale = party.sign_with(
                            Kind::OrgRegister,
                            1,
                            "2025-01-01T00:00:00Z",
                            json!({"org_id": format!("stale-{i}-{b}"), "name": "N", "roles": ["operator"]}),
                        );
                        match handle.submit(json!([stale]).to_string().as_bytes()) {
                            Err(SubmitError::Rejected(r)) => assert_eq!(r.position, 0),
                            other => panic!("stale seq not refused: {other:?}"),
                        }
                    }
                    let receipt = handle
                        .submit(json!(batch).to_string().as_bytes())
                        .expect("accepted");
                    assert_eq!(receipt.entries.len(), size);
                    acked.extend(receipt.entries.iter().map(|e| e.index));
                    checkpoints.push(receipt.checkpoint.to_string());
                }
                (acked, checkpoints)
            })
        })
        .collect();
    let mut acked = Vec::new();
    let mut checkpoints = Vec::new();
    for h in handles {
        let (a, c) = h.join().expect("thread");
        acked.extend(a);
        checkpoints.extend(c);
    }
    let served_size = committer.reader().size();
    committer.shutdown().expect("clean shutdown");

    acked.sort_unstable();
    let expected: Vec<u64> = (base..base + acked.len() as u64).collect();
    assert_eq!(
        acked, expected,
        "indices are contiguous and each acknowledged once"
    );
    let batches = stats.batches_accepted.load(Ordering::Relaxed);
    let commits = stats.commits.load(Ordering::Relaxed);
    assert_eq!(batches, u64::from(THREADS) * BATCHES_PER_THREAD);
    assert!(
        commits < batches,
        "{commits} syncs for {batches} batches: no sync was shared"
    );
    println!("{batches} batches durable in {commits} group commits");

    let ledger = Ledger::open(&data, crate::support::log_key()).expect("reopen");
    assert_eq!(ledger.size(), base + acked.len() as u64);
    ledger.verify().expect("verify");
    let reader_after = ledger.reader();
    assert_eq!(served_size, reader_after.size());
    let verifier = NoteVerifier::new(ORIGIN, key(2).verifying_key().as_bytes()).unwrap();
    let final_root = reader_after.root();
    for note in checkpoints {
        let cp =
            checkpoint::open(&note, std::slice::from_ref(&verifier)).expect("signed checkpoint");
        let proof = reader_after
            .consistency(cp.size, reader_after.size())
            .expect("proof");
        merkle::verify_consistency(
            cp.size,
            reader_after.size(),
            &cp.root,
            &final_root,
            &proof.hashes,
        )
        .expect("every checkpoint a client saw is consistent with the final tree");
    }
    drop(dir);
}
