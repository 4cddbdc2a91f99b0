//! Shared fixtures: keys, a fresh ledger, signed envelopes, the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dcledger::entry::{self, EntryDraft, Kind};
use dcledger::ledger::Ledger;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

pub const ORIGIN: &str = "dcledger.test/it";

/// A deterministic key from a one-byte seed, so failures are reproducible.
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The key that signs the checkpoints of every `TestLedger`.
pub fn log_key() -> SigningKey {
    key(2)
}

/// Where a test ledger's log key file lies: beside its data directory, never in it
/// (PROTOCOL §11). `TestLedger` and `init_demo_ledger` put it there.
pub fn log_key_file(data: &Path) -> PathBuf {
    data.with_file_name("log.pem")
}

pub fn public_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().as_bytes())
}

/// A signer with its own seq counter, signing for one ledger (`origin`).
pub struct Party {
    pub key: SigningKey,
    pub next_seq: u64,
    pub origin: &'static str,
}

impl Party {
    /// A party of the test ledger (`ORIGIN`).
    pub fn new(seed: u8) -> Party {
        Party::of(ORIGIN, seed)
    }

    /// A party signing for the ledger named `origin`.
    pub fn of(origin: &'static str, seed: u8) -> Party {
        Party {
            key: key(seed),
            next_seq: 1,
            origin,
        }
    }

    /// Signs `body` with the next seq (and advances it).
    pub fn sign(&mut self, kind: Kind, body: Value) -> Value {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.sign_with(kind, seq, "2025-01-01T00:00:00Z", body)
    }

    /// Signs for the party's ledger.
    pub fn sign_with(&self, kind: Kind, seq: u64, ts: &str, body: Value) -> Value {
        self.sign_for(self.origin, kind, seq, ts, body)
    }

    /// Signs for the ledger named `origin`.
    pub fn sign_for(&self, origin: &str, kind: Kind, seq: u64, ts: &str, body: Value) -> Value {
        entry::sign_envelope(
            &self.key,
            origin,
            EntryDraft {
                kind,
                seq,
                ts,
                body,
            },
        )
        .expect("canonical body")
    }

    pub fn public_hex(&self) -> String {
        public_hex(&self.key)
    }
}

/// A ledger in a temporary directory; the authority has signed genesis (seq 1).
pub struct TestLedger {
    pub dir: tempfile::TempDir,
    pub ledger: Ledger,
    pub authority: Party,
}

impl TestLedger {
    pub fn new() -> TestLedger {
        TestLedger::with_origin(ORIGIN)
    }

    /// A ledger named `origin`, with the same authority and log keys as every other.
    pub fn with_origin(origin: &'static str) -> TestLedger {
        let dir = tempfile::tempdir().expect("tempdir");
        let authority = Party {
            next_seq: 2,
            ..Party::of(origin, 1)
        };
        let data = dir.path().join("data");
        dcledger::keys::write_signing_key(&log_key_file(&data), &log_key()).expect("log key");
        let ledger =
            Ledger::init(&data, origin, "test ledger", &authority.key, &log_key()).expect("init");
        TestLedger {
            dir,
            ledger,
            authority,
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Appends a batch that must be accepted.
    pub fn accept(&mut self, envelopes: Vec<Value>) {
        match self.ledger.append_batch(envelopes).expect("storage") {
            Ok(_) => {}
            Err(r) => panic!("batch refused: {r}"),
        }
    }

    /// Registers an organisation and grants `party`'s key to it.
    pub fn onboard(&mut self, org_id: &str, roles: &[&str], party: &Party) {
        let reg = self.authority.sign(
            Kind::OrgRegister,
            json!({"org_id": org_id, "name": format!("{org_id} Ltd"), "roles": roles}),
        );
        let grant = self.authority.sign(
            Kind::KeyGrant,
            json!({"org_id": org_id, "public_key": party.public_hex()}),
        );
        self.accept(vec![reg, grant]);
    }
}

/// A process's resident memory, in bytes (`VmRSS` of /proc/PID/status).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dcledger"))
}

/// Runs the binary and returns its output; panics with stderr if it failed.
pub fn run_ok(args: &[&str]) -> Output {
    let out = bin().args(args).output().expect("run dcledger");
    assert!(
        out.status.success(),
        "dcledger {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Every key and value of a closed ledger's derived state.
pub fn dump_derived(data: &Path) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    let derived =
        dcledger::store::derived::Derived::open(&data.join("index")).expect("derived state opens");
    derived
        .pairs()
        .map(|kv| {
            let (k, v) = kv.expect("read");
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

/// Copies a directory tree (a closed ledger's data directory, say).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Runs `command` to its end, which must come within `limit` (a command that should be
/// refused at once must not hang the test if it is not).
pub fn output_within(mut command: Command, limit: std::time::Duration) -> Output {
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().expect("try_wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} was still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// The committed demo world.
pub fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo")
}

/// `dcledger init` of a ledger for the demo world (its authority and log keys); the log
/// key is copied to `log_key_file(data)`.
pub fn init_demo_ledger(data: &Path) {
    let keys = demo_dir().join("keys");
    std::fs::copy(keys.join("log.pem"), log_key_file(data)).expect("copy the demo log key");
    run_ok(&[
        "init",
        "--data",
        path_str(data),
        "--origin",
        dcledger::synthetic::ORIGIN,
        "--authority-key",
        path_str(&keys.join("authority.pem")),
        "--log-key",
        path_str(&keys.join("log.pem")),
    ]);
}

/// The log key in `log_key_file(data)`.
pub fn log_key_of(data: &Path) -> SigningKey {
    dcledger::keys::load_signing_key(&log_key_file(data)).expect("the ledger's log key file")
}

/// Rebuilds a closed ledger's derived state from its segments (`reindex`) and asserts it
/// is byte-identical to the state incremental appends left (`what` names the ledger).
pub fn assert_rebuild_equals_incremental(data: &Path, what: &str) {
    let incremental = dump_derived(data);
    Ledger::reindex(data, log_key_of(data))
        .expect("reindex")
        .close()
        .expect("close");
    assert!(
        dump_derived(data) == incremental,
        "{what}: projections rebuilt from the segments differ from incremental ones"
    );
}
