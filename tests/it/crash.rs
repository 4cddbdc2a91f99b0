//! SIGKILL during `dcledger append --report-batches` (PROTOCOL §11): a crash at any instant
//! loses no acknowledged entry, and after restart the tree is consistent with every
//! checkpoint already issued.
//!
//! Each round appends a fresh NDJSON file of authority-signed `org.register` envelopes that
//! continues the seq chain (entry `i` is signed with seq `i + 1`), kills the child at a
//! random moment, and then checks the ledger with the library. The kill moment is drawn
//! from a seeded xorshift; set `DCLEDGER_CRASH_SEED` to replay a failing run.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dcledger::entry::Kind;
use dcledger::ledger::Ledger;
use dcledger::log::checkpoint::{self, Checkpoint, NoteVerifier};
use dcledger::log::merkle;
use serde_json::{Value, json};

use crate::support::{self, ORIGIN, Party, TestLedger, bin, path_str};

const ROUNDS: usize = 20;
/// Envelopes per round's input: two full batches of 1,000 and usually a partial third.
/// (The whole ledger is re-verified every round, so the total must stay modest.)
const MIN_INPUT: u64 = 2_000;
const MAX_INPUT: u64 = 2_400;
const TS: &str = "2025-01-01T00:00:00Z";
const BATCH: u64 = 1_000;
const SIGKILL: i32 = 9;

/// A tiny seeded xorshift64*, so a failing schedule can be replayed.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn seed() -> u64 {
    match std::env::var("DCLEDGER_CRASH_SEED") {
        Ok(s) => s.trim().parse().expect("DCLEDGER_CRASH_SEED must be a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15),
    }
}

fn org_id(seq: u64) -> String {
    format!("org-{seq}")
}

/// The envelope the authority signs with `seq`: the same in every round, so the lines are
/// signed once and kept.
fn org_register(authority: &Party, seq: u64) -> Value {
    authority.sign_with(
        Kind::OrgRegister,
        seq,
        TS,
        json!({"org_id": org_id(seq), "name": format!("Org {seq} Ltd"), "roles": ["operator"]}),
    )
}

/// NDJSON lines of authority envelopes; `lines[k]` carries seq `k + 2` (seq 1 is genesis).
struct Envelopes {
    authority: Party,
    lines: Vec<String>,
}

impl Envelopes {
    fn ensure(&mut self, last_seq: u64) {
        let first = self.lines.len() as u64 + 2;
        if last_seq < first {
            return;
        }
        let seqs: Vec<u64> = (first..=last_seq).collect();
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let chunk = seqs.len().div_ceil(threads).max(1);
        let authority = &self.authority;
        let signed: Vec<Vec<String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = seqs
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|&seq| org_register(authority, seq).to_string())
                            .collect::<Vec<String>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("signing thread"))
                .collect()
        });
        for part in signed {
            self.lines.extend(part);
        }
    }

    /// Writes `count` envelopes starting at `first_seq` to `path`.
    fn write(&mut self, path: &Path, first_seq: u64, count: u64) {
        assert!(first_seq >= 2, "seq 1 is the genesis entry");
        self.ensure(first_seq + count - 1);
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("input file"));
        for line in &self.lines[(first_seq - 2) as usize..(first_seq - 2 + count) as usize] {
            out.write_all(line.as_bytes()).expect("write input");
            out.write_all(b"\n").expect("write input");
        }
        out.flush().expect("flush input");
    }
}

/// What the stderr reader saw.
enum Line {
    /// A complete acknowledgement line, and when it arrived.
    Ack {
        at: Duration,
        accepted: u64,
        checkpoint: String,
    },
    /// Anything else (an error message, a line cut short by the kill).
    Other(String),
}

/// Reads the child's stderr line by line. Only a newline-terminated JSON object with both
/// fields counts as an acknowledgement; a line cut short by the kill does not.
fn read_stderr(
    child: &mut Child,
    t0: Instant,
) -> (mpsc::Receiver<Line>, std::thread::JoinHandle<()>) {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut reader = BufReader::new(stderr);
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let at = t0.elapsed();
            let msg = match line.strip_suffix('\n').map(serde_json::from_str::<Value>) {
                Some(Ok(v)) => match (v["accepted"].as_u64(), v["checkpoint"].as_str()) {
                    (Some(accepted), Some(cp)) => Line::Ack {
                        at,
                        accepted,
                        checkpoint: cp.to_string(),
                    },
                    _ => Line::Other(line),
                },
                _ => Line::Other(line),
            };
            if tx.send(msg).is_err() {
                break;
            }
        }
    });
    (rx, handle)
}

/// One child run, killed as `kill_at` says.
struct Run {
    status: std::process::ExitStatus,
    /// (arrival, accepted, checkpoint note) of each acknowledgement line.
    acks: Vec<(Duration, u64, String)>,
    other: Vec<String>,
    /// When stderr closed, if that happened before the kill.
    exited_at: Option<Duration>,
}

fn run_and_kill(data: &Path, input: &Path, kill_at: KillAt) -> Run {
    let t0 = Instant::now();
    let mut child = bin()
        .args([
            "append",
            "--data",
            path_str(data),
            "--log-key",
            path_str(&support::log_key_file(data)),
            path_str(input),
            "--report-batches",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dcledger append");
    let (rx, reader) = read_stderr(&mut child, t0);
    let mut acks = Vec::new();
    let mut other = Vec::new();
    let mut exited_at = None;
    let mut take = |msg: Line, acks: &mut Vec<(Duration, u64, String)>| match msg {
        Line::Ack {
            at,
            accepted,
            checkpoint,
        } => acks.push((at, accepted, checkpoint)),
        Line::Other(line) => other.push(line),
    };
    let mut deadline = match kill_at {
        KillAt::Delay(d) => Some(t0 + d),
        KillAt::AfterAck { .. } => None,
    };
    loop {
        if let (None, KillAt::AfterAck { k, then }) = (deadline, kill_at)
            && acks.len() >= k
        {
            deadline = Some(Instant::now() + then);
        }
        let wait = match deadline {
            Some(at) => match at.checked_duration_since(Instant::now()) {
                Some(left) => left,
                None => break,
            },
            None => Duration::from_secs(60),
        };
        match rx.recv_timeout(wait) {
            Ok(msg) => take(msg, &mut acks),
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                exited_at = Some(t0.elapsed());
                break;
            }
        }
    }
    // SIGKILL; on a child that already exited this hits a zombie and is harmless.
    let _ = child.kill();
    let status = child.wait().expect("wait for dcledger append");
    reader.join().expect("stderr reader");
    // Lines printed before the kill but read after it are acknowledgements too.
    for msg in rx.try_iter() {
        take(msg, &mut acks);
    }
    Run {
        status,
        acks,
        other,
        exited_at,
    }
}

/// When to kill the child.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// After this long from spawning: lands anywhere, mid-batch, between batches, or
    /// after the child already exited.
    Delay(Duration),
    /// This long after the k-th acknowledgement is read: at once lands between batches;
    /// later lands inside the next batch (judging, writing, syncing, indexing, printing
    /// its acknowledgement).
    AfterAck { k: usize, then: Duration },
}

/// A checkpoint the ledger issued, and where it came from.
struct Issued {
    source: String,
    cp: Checkpoint,
}

#[derive(Default)]
struct Stats {
    mid_run: usize,
    after_exit: usize,
    before_first_ack: usize,
    durable_unacknowledged: usize,
}

#[test]
fn sigkill_during_append_loses_no_acknowledged_entry() {
    let seed = seed();
    eprintln!("crash test seed: {seed} (replay with DCLEDGER_CRASH_SEED={seed})");
    let started = Instant::now();
    let mut rng = XorShift::new(seed);

    let TestLedger {
        dir,
        ledger,
        authority: _,
    } = TestLedger::new();
    let data = dir.path().join("data");
    let log_public = support::key(2).verifying_key().to_bytes();
    let verifier = NoteVerifier::new(ORIGIN, &log_public).expect("verifier");
    let open_note = |note: &str, what: &str| -> Checkpoint {
        let cp = checkpoint::open(note, std::slice::from_ref(&verifier)).unwrap_or_else(|e| {
            panic!("seed {seed}: {what}: checkpoint does not verify: {e}\n{note}")
        });
        assert_eq!(cp.origin, ORIGIN, "seed {seed}: {what}: origin");
        cp
    };

    let mut size = ledger.size();
    assert_eq!(size, 1, "a fresh test ledger holds only genesis");
    let mut issued = vec![Issued {
        source: "genesis checkpoint".into(),
        cp: open_note(ledger.checkpoint(), "genesis checkpoint"),
    }];
    ledger.close().expect("close");

    let mut envelopes = Envelopes {
        authority: Party {
            next_seq: 2,
            ..Party::new(1)
        },
        lines: Vec::new(),
    };
    let mut stats = Stats::default();
    // Estimated duration of an unkilled run, and time between two acknowledgements,
    // refined from what the runs show.
    let mut run_estimate = Duration::from_millis(450);
    let mut ack_gap = Duration::from_millis(150);

    for round in 0..ROUNDS {
        let ctx = format!("seed {seed}, round {round}");
        let round_started = Instant::now();
        let n = MIN_INPUT + rng.below(MAX_INPUT - MIN_INPUT + 1);
        let input = dir.path().join(format!("round-{round}.ndjson"));
        envelopes.write(&input, size + 1, n);

        // One round in six kills right after the first acknowledgement, one in six
        // somewhere in the batch after it; the rest at a delay spread over the whole run
        // and a little beyond, denser early on (u²). Every batch that lands is re-verified
        // in all later rounds, so the ledger must not grow fast.
        let kill_at = match rng.below(6) {
            0 => KillAt::AfterAck {
                k: 1,
                then: Duration::ZERO,
            },
            1 => KillAt::AfterAck {
                k: 1,
                then: ack_gap.mul_f64(rng.unit()),
            },
            _ => {
                let u = rng.unit();
                KillAt::Delay(run_estimate.mul_f64(1.2 * u * u))
            }
        };

        // --- the run and the kill ---
        let Run {
            status,
            acks,
            other,
            exited_at,
        } = run_and_kill(&data, &input, kill_at);
        let killed = status.signal() == Some(SIGKILL);
        if killed {
            stats.mid_run += 1;
            if acks.is_empty() {
                stats.before_first_ack += 1;
            }
        } else {
            stats.after_exit += 1;
            assert!(
                status.success(),
                "{ctx}: dcledger append failed on its own ({status}): {other:?}"
            );
            assert_eq!(
                acks.last().map(|a| a.1),
                Some(n),
                "{ctx}: a finished run acknowledges everything"
            );
        }

        // Refine the run-time estimate.
        let observed = match (exited_at, acks.last()) {
            (Some(t), _) if !killed => Some(t),
            (_, Some(&(at, accepted, _))) if accepted > 0 => {
                Some(at.mul_f64(n as f64 / accepted as f64))
            }
            _ => None,
        };
        if let Some(t) = observed {
            run_estimate = (run_estimate + t.min(Duration::from_secs(5))) / 2;
        }
        if let [first, .., last] = acks.as_slice() {
            let gap = (last.0 - first.0) / (acks.len() as u32 - 1);
            ack_gap = (ack_gap + gap.min(Duration::from_secs(2))) / 2;
        }

        // Every acknowledgement: a checkpoint signed by the log covering exactly what was
        // accepted so far, counted from the size at the start of the round.
        let mut acknowledged = size;
        for (i, (_, accepted, note)) in acks.iter().enumerate() {
            let what = format!("{ctx}, acknowledgement {i}");
            let cp = open_note(note, &what);
            assert_eq!(
                cp.size,
                size + accepted,
                "{what}: checkpoint size vs accepted"
            );
            assert!(
                size + accepted >= acknowledged,
                "{what}: accepted went backwards"
            );
            acknowledged = size + accepted;
            issued.push(Issued { source: what, cp });
        }

        // --- recovery, checked with the library ---
        let ledger = match Ledger::open(&data, support::log_key()) {
            Ok(l) => l,
            Err(e) => panic!("{ctx}: reopening after SIGKILL failed: {e} (kill {kill_at:?})"),
        };
        let reader = ledger.reader();
        let new_size = ledger.size();
        assert_eq!(
            reader.size(),
            new_size,
            "{ctx}: reader and log disagree on size"
        );
        assert!(
            new_size >= acknowledged,
            "{ctx}: lost acknowledged entries: size {new_size} < {acknowledged} acknowledged \
             (kill {kill_at:?})"
        );
        assert!(
            new_size <= size + n,
            "{ctx}: size {new_size} exceeds everything submitted ({} + {n})",
            size
        );
        let added = new_size - size;
        assert!(
            added % BATCH == 0 || added == n,
            "{ctx}: {added} entries were added, not a whole number of batches: an \
             unacknowledged batch is partly present"
        );
        if new_size > acknowledged {
            stats.durable_unacknowledged += 1;
        }
        if acknowledged > 1 {
            let last = acknowledged - 1;
            let entry = reader
                .entry(last)
                .unwrap_or_else(|e| panic!("{ctx}: last acknowledged entry {last}: {e}"));
            let leaf: Value = serde_json::from_slice(&entry.leaf).expect("leaf is JSON");
            assert_eq!(
                leaf["entry"]["body"]["org_id"],
                json!(org_id(last + 1)),
                "{ctx}: last acknowledged entry {last} is not the one submitted"
            );
        }
        // Contiguity of what this round added: entry i is the authority's seq i + 1.
        let authority_hex = envelopes.authority.public_hex();
        for i in size..new_size {
            let entry = reader
                .entry(i)
                .unwrap_or_else(|e| panic!("{ctx}: entry {i}: {e}"));
            let leaf: Value = serde_json::from_slice(&entry.leaf).expect("leaf is JSON");
            let e = &leaf["entry"];
            assert_eq!(e["seq"], json!(i + 1), "{ctx}: entry {i} has a seq gap");
            assert_eq!(e["kind"], json!("org.register"), "{ctx}: entry {i} kind");
            assert_eq!(e["signer"], json!(authority_hex), "{ctx}: entry {i} signer");
            assert_eq!(
                e["body"]["org_id"],
                json!(org_id(i + 1)),
                "{ctx}: entry {i} org"
            );
        }

        let report = ledger
            .verify()
            .unwrap_or_else(|e| panic!("{ctx}: verify after SIGKILL failed: {e}"));
        assert_eq!(report.entries, new_size, "{ctx}: verify entry count");
        let root = reader.root();
        assert_eq!(report.root, root, "{ctx}: verify root");

        // The reopened ledger's own checkpoint covers its whole tree.
        let own = open_note(ledger.checkpoint(), &format!("{ctx}, reopened ledger"));
        assert_eq!(
            (own.size, own.root),
            (new_size, root),
            "{ctx}: reopened checkpoint"
        );
        issued.push(Issued {
            source: format!("{ctx}, reopened ledger"),
            cp: own,
        });

        // Every checkpoint ever issued is consistent with the current tree.
        for item in &issued {
            let Issued { source, cp } = item;
            assert!(
                cp.size <= new_size,
                "{ctx}: {source}: checkpoint ahead of the tree"
            );
            let at = reader
                .root_at(cp.size)
                .unwrap_or_else(|e| panic!("{ctx}: {source}: root_at({}): {e}", cp.size));
            assert_eq!(
                at, cp.root,
                "{ctx}: {source}: root at size {} differs",
                cp.size
            );
            let proof = reader
                .consistency(cp.size, new_size)
                .unwrap_or_else(|e| panic!("{ctx}: {source}: consistency proof: {e}"));
            merkle::verify_consistency(cp.size, new_size, &cp.root, &root, &proof.hashes)
                .unwrap_or_else(|e| {
                    panic!(
                        "{ctx}: {source}: checkpoint at size {} is not consistent with size \
                         {new_size}: {e}",
                        cp.size
                    )
                });
        }

        eprintln!(
            "round {round}: {n} submitted, kill {kill_at:?} ({}), {} acknowledged, size {size} -> \
             {new_size}, run estimate {run_estimate:.0?}, ack gap {ack_gap:.0?}, round took {:.1?}",
            if killed { "mid-run" } else { "after exit" },
            acknowledged - size,
            round_started.elapsed(),
        );
        size = new_size;
        // The reader shares the derived store: drop it too, so the next child can open it.
        drop(reader);
        ledger.close().expect("close before the next round");
        let _ = std::fs::remove_file(&input);
    }

    eprintln!(
        "crash test (seed {seed}): {ROUNDS} rounds in {:.1?}; {} kills landed mid-run ({} before \
         the first acknowledgement, {} left a durable but unacknowledged batch), {} after the \
         child exited; final size {size}; {} checkpoints checked",
        started.elapsed(),
        stats.mid_run,
        stats.before_first_ack,
        stats.durable_unacknowledged,
        stats.after_exit,
        issued.len(),
    );
    assert!(
        stats.mid_run > 0,
        "seed {seed}: no kill landed mid-run; the test proved nothing"
    );
}
