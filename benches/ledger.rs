//! `cargo bench --bench ledger [-- ENTRIES]`: durable bulk append throughput of signed
//! entries through the real path (NDJSON → parse → schema → strict signature check on
//! every core → admission → segment write + fdatasync per 1,000 → derived store), printed beside
//! this machine's raw `verify_strict` rate on one core and on every core, measured in the same run, and the
//! time per inclusion and consistency proof at that size (read from the tiles). Then the
//! log layer alone at 10 million leaves (`DCLEDGER_BENCH_TILE_LEAVES`): tiles built from
//! leaf hashes, and inclusion proofs from them, random and repeated, beside this
//! machine's raw SHA-256 node-hash time. Prints figures; asserts nothing.

mod yardstick;

use std::io::Cursor;
use std::time::Instant;

use dcledger::bulk;
use dcledger::entry::{self, EntryDraft, Kind};
use dcledger::ledger::Ledger;
use dcledger::limits::REINDEX_CHUNK_ENTRIES;
use dcledger::log::merkle;
use dcledger::log::tiles::{Syncs, TileStore, TileWriter};
use dcledger::store::derived::{Derived, family};
use ed25519_dalek::SigningKey;
use serde_json::json;

const DEFAULT_ENTRIES: u64 = 200_000;

/// The benchmark ledger's origin, which every entry is signed for.
const ORIGIN: &str = "bench.example/log";

fn authority() -> SigningKey {
    SigningKey::from_bytes(&[1; 32])
}

/// NDJSON of `n` authority-signed org.register envelopes continuing after genesis,
/// signed on every core (setup, not measured).
fn envelopes(n: u64) -> Vec<u8> {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()) as u64;
    let per = n.div_ceil(threads);
    let parts: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let key = authority();
                    let mut out = Vec::new();
                    for i in (t * per)..((t + 1) * per).min(n) {
                        let body = json!({
                            "org_id": format!("org-{i:08}"),
                            "name": format!("Example Compute Co. {i}"),
                            "roles": ["operator"],
                            "province": "Henan",
                            "registration_no": format!("91410100MA{i:08}"),
                        });
                        let env = entry::sign_envelope(
                            &key,
                            ORIGIN,
                            EntryDraft {
                                kind: Kind::OrgRegister,
                                seq: i + 2,
                                ts: "2025-01-01T00:00:00Z",
                                body,
                            },
                        )
                        .expect("canonical");
                        out.extend_from_slice(env.to_string().as_bytes());
                        out.push(b'\n');
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("signer thread"))
            .collect()
    });
    parts.concat()
}

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(DEFAULT_ENTRIES);
    let cores = std::thread::available_parallelism().map_or(1, |t| t.get());
    println!("dcledger bulk append benchmark: {n} signed entries, {cores} cores");

    let verify_rate = yardstick::verify_strict_rate(1, 20_000, 300, ORIGIN);
    println!("raw verify_strict, one core:        {verify_rate:>10.0} signatures/s");
    let all_cores_rate = yardstick::verify_strict_rate(cores, 10_000, 300, ORIGIN);
    println!("raw verify_strict, {cores} cores:        {all_cores_rate:>10.0} signatures/s");
    let own_rate = yardstick::entry_check_rate(cores, 10_000, 300, ORIGIN);
    println!("the ledger's own check, {cores} cores:   {own_rate:>10.0} signatures/s");

    let input = envelopes(n);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut ledger = Ledger::init(
        &data,
        ORIGIN,
        "bench",
        &authority(),
        &SigningKey::from_bytes(&[2; 32]),
    )
    .expect("init");
    let start = Instant::now();
    let summary = bulk::append_ndjson(&mut ledger, Cursor::new(&input), |_| {}).expect("append");
    let secs = start.elapsed().as_secs_f64();
    assert!(summary.refused.is_none(), "refused: {:?}", summary.refused);
    let rate = summary.accepted as f64 / secs;
    println!(
        "durable bulk append:                {rate:>10.0} entries/s ({} entries, {:.1} MB of NDJSON, {secs:.2} s)",
        summary.accepted,
        input.len() as f64 / 1e6
    );
    println!(
        "append / raw single-core verify:    {:>10.0} %",
        100.0 * rate / verify_rate
    );
    println!(
        "append / raw {cores}-core verify:       {:>10.0} % (aim: 70%)",
        100.0 * rate / all_cores_rate
    );
    println!(
        "append / own {cores}-core check:        {:>10.0} %",
        100.0 * rate / own_rate
    );

    // Retries (PROTOCOL §3): envelopes submitted again are found by their signer's seq and
    // compared, never written. Every 20th entry, spread over the whole ledger, through
    // the same path (parse, schema, signature, then the lookup instead of admission).
    let again: Vec<u8> = input
        .split_inclusive(|b| *b == b'\n')
        .step_by(20)
        .flatten()
        .copied()
        .collect();
    let count = again.iter().filter(|b| **b == b'\n').count() as u64;
    let start = Instant::now();
    let retried = bulk::append_ndjson(&mut ledger, Cursor::new(&again), |_| {}).expect("retry");
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(
        (retried.accepted, retried.present),
        (0, count),
        "{retried:?}"
    );
    println!(
        "retries recognised:                 {:>10.0} entries/s ({count} entries already in the ledger, {secs:.2} s)",
        count as f64 / secs
    );

    let reader = ledger.reader();
    let size = reader.size();
    let proofs = 20_000u64;
    let start = Instant::now();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..proofs {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        reader.inclusion(x % size, None).expect("proof");
    }
    let per = start.elapsed().as_secs_f64() / proofs as f64;
    println!(
        "inclusion proof at size {size}: {:>10.1} µs each",
        per * 1e6
    );
    let start = Instant::now();
    for _ in 0..proofs {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        reader.consistency(1 + x % size, size).expect("proof");
    }
    let per = start.elapsed().as_secs_f64() / proofs as f64;
    println!(
        "consistency proof to size {size}: {:>8.1} µs each",
        per * 1e6
    );
    let start = Instant::now();
    let report = ledger.verify().expect("verify");
    println!(
        "offline verify of {} entries:      {:>10.2} s",
        report.entries,
        start.elapsed().as_secs_f64()
    );

    // What the seq anchors (family `q`: one key per 64 entries of a signer) add to
    // derived state, in bytes of keys and values.
    drop(reader);
    ledger.close().expect("close");
    let derived = Derived::open(&data.join("index")).expect("derived state");
    let (mut all, mut anchors, mut anchor_keys) = (0u64, 0u64, 0u64);
    for kv in derived.pairs() {
        let (k, v) = kv.expect("read");
        let bytes = (k.len() + v.len()) as u64;
        all += bytes;
        if k.first() == Some(&family::SEQ_ANCHOR) {
            anchors += bytes;
            anchor_keys += 1;
        }
    }
    println!(
        "derived state: {:.1} MB of keys and values; seq anchors {anchor_keys} keys, {:.1} kB ({:.2} %)",
        all as f64 / 1e6,
        anchors as f64 / 1e3,
        100.0 * anchors as f64 / all as f64
    );
    drop(derived);
    tile_proofs();
}

/// Leaves of the log-layer benchmark: the 10 million unless the environment
/// says otherwise.
const DEFAULT_TILE_LEAVES: u64 = 10_000_000;

/// Nanoseconds per RFC 6962 node hash on one core: the unit a proof from tiles costs
/// when its level-0 tile is not in memory (about 255 of them to expand a tile).
fn node_hash_ns() -> f64 {
    let mut h = merkle::leaf_hash(b"yardstick");
    let rounds = 1_000_000u32;
    let start = Instant::now();
    for _ in 0..rounds {
        h = merkle::node_hash(&h, &h);
    }
    std::hint::black_box(h);
    start.elapsed().as_secs_f64() * 1e9 / f64::from(rounds)
}

/// Seconds to write the tiles of `n` leaves into `dir` in commits of `per_commit` leaves
/// (the partial tiles of each, and the sync `syncs` asks for), hashing the leaves.
fn write_tiles(dir: &std::path::Path, n: u64, per_commit: usize, syncs: Syncs) -> f64 {
    let mut writer = TileWriter::empty(&TileStore::new(dir));
    writer.set_syncs(syncs).expect("tiles");
    let start = Instant::now();
    let mut chunk = Vec::with_capacity(per_commit);
    for i in 0..n {
        chunk.push(merkle::leaf_hash(&i.to_be_bytes()));
        if chunk.len() == per_commit || i + 1 == n {
            writer.push(&chunk).expect("tiles");
            writer.write_partials().expect("tiles");
            writer.sync().expect("tiles");
            writer.prune().expect("tiles");
            chunk.clear();
        }
    }
    start.elapsed().as_secs_f64()
}

/// The log layer alone: a tree of many leaves as tiles, and inclusion proofs from them.
fn tile_proofs() {
    let n: u64 = std::env::var("DCLEDGER_BENCH_TILE_LEAVES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_TILE_LEAVES);
    // As a replay writes them: a chunk at a time, its tiles synced together.
    let replayed = tempfile::tempdir().expect("tempdir");
    let together = write_tiles(replayed.path(), n, REINDEX_CHUNK_ENTRIES, Syncs::Together);
    drop(replayed);
    // As commits write them: each full tile synced, with its directory.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = TileStore::new(dir.path());
    let each = write_tiles(dir.path(), n, 65_536, Syncs::EachTile);
    println!("tiles for {n} leaf hashes:    {each:>10.2} s (hashing the leaves included)");
    println!(
        "  the same, synced a chunk at a time as a replay does: {together:.2} s ({:.0}%)",
        together / each * 100.0
    );
    let node_ns = node_hash_ns();
    println!("raw node hash, one core:            {node_ns:>10.0} ns");
    if n == 0 {
        return; // no leaf to prove
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let proof =
        |index: u64| merkle::inclusion_proof(index, n, &mut |id| store.node(n, id)).expect("proof");
    // Proofs of leaves below `spread`, which a small tree (a short run's
    // `DCLEDGER_BENCH_TILE_LEAVES`) bounds.
    for (what, spread) in [
        ("random leaves", n),
        ("leaves of 64 tiles", (64 * 256).min(n)),
    ] {
        let proofs = 20_000u64;
        // One pass to warm what fits in the cache, then the measured one.
        for pass in 0..2 {
            let start = Instant::now();
            for _ in 0..proofs {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                std::hint::black_box(proof(x % spread));
            }
            if pass == 1 {
                let per = start.elapsed().as_secs_f64() / proofs as f64;
                println!(
                    "inclusion proof at {n}, {what}: {:>8.1} µs each ({:.0} node hashes' time)",
                    per * 1e6,
                    per * 1e9 / node_ns
                );
            }
        }
    }
}
