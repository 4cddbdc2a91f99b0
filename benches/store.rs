//! `cargo bench --bench store [-- FACILITIES] [CANDIDATE...]`: the derived store's engine candidates on
//! the ledger's own workload, side by side in one run. Each candidate rebuilds the
//! derived state of the same generated world from its segments (the admission code and
//! batches of a real append, without the signature checks and segment writes), in a
//! child process of its own so its peak RSS is its own. Printed per candidate: rebuild
//! time and rate, bytes on disk beside the leaves' bytes, peak RSS, time to reopen, and
//! a warm audit load through it. redb is the library's own engine (`Derived::open`);
//! sled and fjall are adapted here. The in-memory engine is the yardstick: the same
//! replay with no storage engine at all. Prints figures; asserts nothing.

mod world;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::time::Instant;

use dcledger::audit::Snapshot;
use dcledger::ledger::Unlocked;
use dcledger::store::derived::Derived;
use dcledger::store::engine::{Batch, Engine, EngineError, Memory, Pairs, ReadSnapshot};

const DEFAULT_FACILITIES: usize = 2_000;

/// sled, the engine derived state was kept in until redb replaced it.
struct Sled {
    db: sled::Db,
}

impl Sled {
    fn open(path: &Path) -> Result<Sled, EngineError> {
        // sled releases its file lock from background threads shortly after the last
        // handle is dropped, so reopening in the same process can briefly fail with an
        // I/O error. The ledger's own lock already excludes other processes; wait a
        // bounded while for our own previous handle to go away.
        const LOCK_RETRY_MS: u64 = 20;
        const LOCK_WAIT_MAX_MS: u64 = 2_000;
        let mut waited_ms = 0;
        loop {
            let opened = sled::Config::new()
                .path(path)
                .cache_capacity(256 << 20)
                // Derived state is rebuilt from the segments after a crash, so sled's own
                // periodic flush is enough; the ledger flushes explicitly on clean shutdown.
                .flush_every_ms(Some(1000))
                .open();
            match opened {
                Ok(db) => return Ok(Sled { db }),
                Err(sled::Error::Io(_)) if waited_ms < LOCK_WAIT_MAX_MS => {
                    std::thread::sleep(std::time::Duration::from_millis(LOCK_RETRY_MS));
                    waited_ms += LOCK_RETRY_MS;
                }
                Err(e) => return Err(Box::new(e)),
            }
        }
    }
}

impl Engine for Sled {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.db.get(key)?.map(|v| v.to_vec()))
    }

    fn page(&self, from: Bound<&[u8]>, limit: usize) -> Result<Pairs, EngineError> {
        let from = from.map(<[u8]>::to_vec);
        let mut out = Vec::new();
        for kv in self
            .db
            .range::<Vec<u8>, _>((from, Bound::Unbounded))
            .take(limit)
        {
            let (k, v) = kv?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn apply(&self, batches: &[&Batch]) -> Result<(), EngineError> {
        let mut batch = sled::Batch::default();
        for (k, v) in batches.iter().copied().flatten() {
            batch.insert(k.as_slice(), v.as_slice());
        }
        Ok(self.db.apply_batch(batch)?)
    }

    fn flush(&self) -> Result<(), EngineError> {
        self.db.flush()?;
        Ok(())
    }

    fn snapshot(&self) -> Result<Box<dyn ReadSnapshot + '_>, EngineError> {
        // sled reads need no transaction: its snapshot is its reads.
        Ok(Box::new(Reads(self)))
    }
}

/// An engine whose point reads need no transaction, read directly.
struct Reads<'a, E: Engine>(&'a E);

impl<E: Engine> ReadSnapshot for Reads<'_, E> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        self.0.get(key)
    }
}

/// fjall: a log-structured merge tree; batches go to its journal without fsync, made
/// durable by `flush`.
struct Fjall {
    db: fjall::Database,
    keyspace: fjall::Keyspace,
}

impl Fjall {
    fn open(dir: &Path) -> Result<Fjall, EngineError> {
        let db = fjall::Database::builder(dir)
            .cache_size(256 << 20)
            .manual_journal_persist(true)
            .open()?;
        let keyspace = db.keyspace("derived", fjall::KeyspaceCreateOptions::default)?;
        Ok(Fjall { db, keyspace })
    }
}

impl Engine for Fjall {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.keyspace.get(key)?.map(|v| v.to_vec()))
    }

    fn page(&self, from: Bound<&[u8]>, limit: usize) -> Result<Pairs, EngineError> {
        let mut out = Vec::new();
        for guard in self
            .keyspace
            .range::<&[u8], _>((from, Bound::Unbounded))
            .take(limit)
        {
            let (k, v) = guard.into_inner()?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn apply(&self, batches: &[&Batch]) -> Result<(), EngineError> {
        let mut batch = self.db.batch();
        for (k, v) in batches.iter().copied().flatten() {
            batch.insert(&self.keyspace, k.as_slice(), v.as_slice());
        }
        Ok(batch.commit()?)
    }

    fn flush(&self) -> Result<(), EngineError> {
        Ok(self.db.persist(fjall::PersistMode::SyncAll)?)
    }

    fn snapshot(&self) -> Result<Box<dyn ReadSnapshot + '_>, EngineError> {
        Ok(Box::new(Reads(self)))
    }
}

const CANDIDATES: [&str; 4] = ["memory", "sled", "redb", "fjall"];

fn open_candidate(name: &str, dir: &Path) -> Derived {
    match name {
        "memory" => Derived::over(dir, Box::new(Memory::default())),
        "sled" => Derived::over(dir, Box::new(Sled::open(dir).expect("sled opens"))),
        "redb" => Derived::open(dir).expect("redb opens"),
        "fjall" => Derived::over(dir, Box::new(Fjall::open(dir).expect("fjall opens"))),
        other => panic!("unknown candidate {other}"),
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| {
            let e = e.expect("dir entry");
            let meta = e.metadata().expect("metadata");
            if meta.is_dir() {
                dir_bytes(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("proc status");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kb / 1024.0
}

/// One candidate, in this (child) process: rebuild, flush, measure, reopen, audit.
fn run_candidate(name: &str, ledger: &Path, scratch: &Path) {
    let store = scratch.join(name);
    let _ = std::fs::remove_dir_all(&store);
    let unlocked = Unlocked::open(ledger).expect("ledger opens");
    let entries: u64 = unlocked
        .checkpoint()
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("checkpoint size");
    let start = Instant::now();
    let derived = std::sync::Arc::new(open_candidate(name, &store));
    let reader = unlocked
        .with_projections_in(derived.clone())
        .expect("rebuild");
    derived.flush().expect("flush");
    let rebuild_s = start.elapsed().as_secs_f64();
    if name == "memory" {
        // What derived state holds, by key family (the same in every engine).
        let mut families: BTreeMap<u8, (u64, u64)> = BTreeMap::new();
        for kv in derived.pairs() {
            let (k, v) = kv.expect("read");
            let f = families.entry(k[0]).or_default();
            f.0 += 1;
            f.1 += (k.len() + v.len()) as u64;
        }
        let line: Vec<String> = families
            .iter()
            .map(|(f, (n, b))| format!("{}: {n} keys {:.1} MB", *f as char, *b as f64 / 1e6))
            .collect();
        println!("derived state by key family: {}", line.join(", "));
    }
    let start = Instant::now();
    let snapshot = Snapshot::load(&reader).expect("audit load");
    let audit_s = start.elapsed().as_secs_f64();
    drop(snapshot);
    drop(reader);
    drop(derived);
    let bytes = dir_bytes(&store);
    let rss = peak_rss_mb();
    let start = Instant::now();
    let reopened = open_candidate(name, &store);
    let reopen_ms = start.elapsed().as_secs_f64() * 1e3;
    drop(reopened);
    println!(
        "{name:<7} rebuild {rebuild_s:>7.2} s {:>9.0} entries/s | disk {:>8.1} MB | peak RSS {rss:>7.0} MB | reopen {reopen_ms:>7.1} ms | audit load {audit_s:>5.2} s",
        entries as f64 / rebuild_s,
        bytes as f64 / 1e6,
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    if let Some("--candidate") = args.next().as_deref() {
        let name = args.next().expect("candidate name");
        let ledger = PathBuf::from(args.next().expect("ledger dir"));
        let scratch = PathBuf::from(args.next().expect("scratch dir"));
        run_candidate(&name, &ledger, &scratch);
        return;
    }
    let facilities: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(DEFAULT_FACILITIES);
    let base = std::env::var_os("DCLEDGER_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("store-{facilities}"));
    let world = world::world_in(facilities, Some(dir.clone()));
    let ledger = world.kept;
    let leaves = dir_bytes(&ledger.join("segments"));
    println!(
        "derived store candidates on a world of {facilities} facilities ({:.1} MB of segments)",
        leaves as f64 / 1e6
    );
    let scratch = dir.join("candidates");
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let me = std::env::current_exe().expect("own path");
    // Candidates named among the arguments, else all of them.
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| CANDIDATES.contains(&a.as_str()))
        .collect();
    for name in CANDIDATES {
        if !named.is_empty() && !named.iter().any(|n| n == name) {
            continue;
        }
        let status = std::process::Command::new(&me)
            .arg("--candidate")
            .arg(name)
            .arg(&ledger)
            .arg(&scratch)
            .status()
            .expect("run candidate");
        assert!(status.success(), "candidate {name} failed");
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
