//! `dcledger monitor` (PROTOCOL §12.2) on real processes and sockets: following a served
//! ledger run by run, and a static export behind `python3 -m http.server`; and refusing,
//! with a message naming it, each of a changed leaf in an entry bundle, a rewritten hash
//! tile, a forked history with the same log key and origin, and a witness quorum not met.
//! After a refusal the state is what it was: nothing unchecked is ever kept.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use dcledger::entry::Kind;
use dcledger::ledger::Ledger;
use dcledger::log::checkpoint;
use dcledger::log::cosignature::Cosigner;
use dcledger::log::merkle;
use serde_json::{Value, json};

use crate::http::{Server, close, new_agent, org_body, post_json};
use crate::support::{ORIGIN, TestLedger, bin, copy_dir, key, log_key, output_within, path_str};
use crate::tiles::{StaticServer, export};

/// A run over a few hundred leaves takes well under a second; this only keeps a hung
/// monitor from hanging the tests.
const RUN_LIMIT: Duration = Duration::from_secs(120);

fn vkey() -> String {
    checkpoint::verifier_key_string(ORIGIN, &log_key().verifying_key().to_bytes())
}

fn monitor(url: &str, vkey: &str, state: &Path, extra: &[&str]) -> Output {
    let mut command = bin();
    command
        .args(["monitor", url, "--vkey", vkey, "--state", path_str(state)])
        .args(extra);
    output_within(command, RUN_LIMIT)
}

/// A run that must succeed: its standard output.
fn ok(out: Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "monitor failed: {}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// A run that must fail, saying each of `needles`: its standard error.
fn refused(out: Output, needles: &[&str]) -> String {
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "monitor succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} not in: {text}");
    }
    text
}

fn state_file(state: &Path) -> PathBuf {
    state.join(dcledger::monitor::STATE_FILE)
}

/// Appends `orgs` organisations, signed by the authority, in batches of at most 1,000.
fn register(t: &mut TestLedger, tag: &str, from: u64, orgs: u64) {
    let mut next = from;
    while next < from + orgs {
        let n = (from + orgs - next).min(1000);
        let batch = (next..next + n)
            .map(|k| {
                t.authority
                    .sign(Kind::OrgRegister, org_body(&format!("{tag}-{k}")))
            })
            .collect();
        t.accept(batch);
        next += n;
    }
}

/// A closed ledger of genesis and `orgs` organisations (`tag-0`, `tag-1`…), with the
/// test ledgers' keys and origin.
fn ledger(tag: &str, orgs: u64) -> (tempfile::TempDir, PathBuf) {
    let mut t = TestLedger::new();
    register(&mut t, tag, 0, orgs);
    let (dir, data, _) = close(t);
    (dir, data)
}

#[test]
fn a_served_ledger_is_followed_run_by_run() {
    let mut t = TestLedger::new();
    register(&mut t, "served", 0, 2);
    let (dir, data, mut authority) = close(t);
    let server = Server::start(&data, &dir.path().join("server.log"));
    let url = server.url("");
    let state = dir.path().join("monitor");

    let first = ok(monitor(&url, server.vkey(), &state, &[]));
    assert!(
        first.contains("at size 3 ")
            && first.contains("checked 3 new leaves since size 0 (first run"),
        "{first}"
    );

    // Past a full tile and into level 1, in one batch: only the new leaves are read.
    let agent = new_agent();
    let batch: Vec<Value> = (0..300)
        .map(|i| authority.sign(Kind::OrgRegister, org_body(&format!("served-more-{i}"))))
        .collect();
    post_json(&agent, &server, &json!(batch)).expect(201);
    let second = ok(monitor(&url, server.vkey(), &state, &[]));
    assert!(
        second.contains("at size 303 ") && second.contains("checked 300 new leaves since size 3;"),
        "{second}"
    );
    // One more leaf, then none.
    let one = authority.sign(Kind::OrgRegister, org_body("served-last"));
    post_json(&agent, &server, &json!([one])).expect(201);
    let third = ok(monitor(&url, server.vkey(), &state, &[]));
    assert!(
        third.contains("checked 1 new leaf since size 303;"),
        "{third}"
    );
    let fourth = ok(monitor(&url, server.vkey(), &state, &[]));
    assert!(
        fourth.contains("checked 0 new leaves since size 304;"),
        "{fourth}"
    );

    // One process owns a state directory: while another holds it, a run is refused and
    // changes nothing; once it is free, runs go on from the state kept.
    let before = std::fs::read(state_file(&state)).expect("state");
    let held = match dcledger::dirlock::try_lock(&state).expect("lock") {
        dcledger::dirlock::Tried::Held(lock) => lock,
        dcledger::dirlock::Tried::Busy(_) => panic!("no monitor is running"),
    };
    refused(
        monitor(&url, server.vkey(), &state, &[]),
        &["in use by another monitor process", path_str(&state)],
    );
    assert_eq!(std::fs::read(state_file(&state)).expect("state"), before);
    drop(held);
    ok(monitor(&url, server.vkey(), &state, &[]));

    // The state holds the authority's next seq: it signed genesis (seq 1) and all 303
    // organisations.
    let kept: Value =
        serde_json::from_slice(&std::fs::read(state_file(&state)).expect("state")).expect("JSON");
    assert_eq!(kept["size"], 304);
    assert_eq!(kept["next_seq"][authority.public_hex()], 305);
}

#[test]
fn an_export_behind_a_static_server_is_followed() {
    let mut t = TestLedger::new();
    register(&mut t, "static", 0, 20);
    let (dir, data, authority) = close(t);
    let out = dir.path().join("export");
    export(&data, &out);
    let web = StaticServer::start(&out);
    let state = dir.path().join("monitor");
    let first = ok(monitor(&web.base, &vkey(), &state, &[]));
    assert!(
        first.contains("checked 21 new leaves since size 0"),
        "{first}"
    );

    // The ledger grows past a tile; the export is run again; the monitor reads the rest.
    let ledger = Ledger::open(&data, log_key()).expect("open");
    let mut t = TestLedger {
        dir,
        ledger,
        authority,
    };
    register(&mut t, "static", 20, 280);
    let (dir, data, _) = close(t);
    export(&data, &out);
    let second = ok(monitor(&web.base, &vkey(), &state, &[]));
    assert!(
        second.contains("at size 301 ") && second.contains("checked 280 new leaves since size 21;"),
        "{second}"
    );
    drop(dir);
}

/// An export of a ledger of 300 leaves (a full tile, a partial one, level 1), copied for
/// each tampering.
struct Tampered {
    _dir: tempfile::TempDir,
    out: PathBuf,
}

impl Tampered {
    fn new() -> Tampered {
        let (dir, data) = ledger("tamper", 299);
        let out = dir.path().join("export");
        export(&data, &out);
        Tampered { _dir: dir, out }
    }

    /// A copy of the export changed by `change`, monitored from an empty state: the
    /// run's output, and whether it left a state file.
    fn run(&self, change: impl FnOnce(&Path)) -> (Output, bool) {
        let copy = tempfile::tempdir().expect("tempdir");
        let site = copy.path().join("site");
        copy_dir(&self.out, &site);
        change(&site);
        let web = StaticServer::start(&site);
        let state = copy.path().join("monitor");
        let out = monitor(&web.base, &vkey(), &state, &[]);
        (out, state_file(&state).exists())
    }
}

fn split_bundle(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut leaves = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        leaves.push(rest[2..2 + len].to_vec());
        rest = &rest[2 + len..];
    }
    leaves
}

fn join_bundle(leaves: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for leaf in leaves {
        out.extend_from_slice(&(leaf.len() as u16).to_be_bytes());
        out.extend_from_slice(leaf);
    }
    out
}

/// Changes leaf `index` of bundle 0 (same length: `Ltd` becomes `LTD`); returns its new
/// bytes.
fn change_leaf(site: &Path, index: usize) -> Vec<u8> {
    let path = site.join("tile/entries/000");
    let mut leaves = split_bundle(&std::fs::read(&path).expect("bundle"));
    let text = String::from_utf8(leaves[index].clone()).expect("UTF-8 leaf");
    assert!(text.contains(" Ltd\""), "{text}");
    leaves[index] = text.replace(" Ltd\"", " LTD\"").into_bytes();
    std::fs::write(&path, join_bundle(&leaves)).expect("write bundle");
    leaves[index].clone()
}

/// Replaces hash `at` of the hash tile at `path` (relative to the site).
fn rewrite_hash(site: &Path, path: &str, at: usize, hash: [u8; 32]) {
    let path = site.join(path);
    let mut bytes = std::fs::read(&path).expect("tile");
    bytes[at * 32..(at + 1) * 32].copy_from_slice(&hash);
    std::fs::write(&path, bytes).expect("write tile");
}

#[test]
fn tampered_exports_are_each_reported_by_name() {
    let tampered = Tampered::new();

    // The untouched copy passes: what follows fails for the change alone.
    let (out, kept) = tampered.run(|_| {});
    assert!(ok(out).contains("checked 300 new leaves since size 0"));
    assert!(kept);

    // A leaf changed in its bundle: its hash is not the level-0 tile's.
    let (out, kept) = tampered.run(|site| {
        change_leaf(site, 7);
    });
    refused(
        out,
        &["leaf 7:", "entry bundle tile/entries/000", "tile/0/000"],
    );
    assert!(!kept, "a failed run kept a state");

    // The same change with the level-0 tile made to match: the signature fails.
    let (out, kept) = tampered.run(|site| {
        let leaf = change_leaf(site, 7);
        rewrite_hash(site, "tile/0/000", 7, merkle::leaf_hash(&leaf));
    });
    refused(
        out,
        &["leaf 7 (entry bundle tile/entries/000)", "bad signature"],
    );
    assert!(!kept);

    // A rewritten level-1 hash tile: the full level-0 tile no longer hashes to it.
    let (out, kept) = tampered.run(|site| rewrite_hash(site, "tile/1/000.p/1", 0, [7; 32]));
    refused(
        out,
        &["tile/0/000 does not hash to its hash", "of tile/1/000.p/1"],
    );
    assert!(!kept);

    // A rewritten hash in the partial level-0 tile: that leaf's hash disagrees.
    let (out, kept) = tampered.run(|site| rewrite_hash(site, "tile/0/001.p/44", 3, [7; 32]));
    refused(out, &["leaf 259:", "tile/0/001.p/44"]);
    assert!(!kept);
}

#[test]
fn a_forked_history_under_the_same_key_and_origin_is_reported() {
    let (dir_a, data_a) = ledger("fork-a", 20);
    let (dir_b, data_b) = ledger("fork-b", 40);
    let site = dir_a.path().join("site");
    export(&data_a, &site);
    let web = StaticServer::start(&site);
    let state = dir_a.path().join("monitor");
    ok(monitor(&web.base, &vkey(), &state, &[]));
    let before = std::fs::read(state_file(&state)).expect("state");

    // The same URL now serves another history, signed by the same log key for the same
    // origin, and longer, as a log showing another reader another view would.
    std::fs::remove_dir_all(&site).expect("remove site");
    export(&data_b, &site);
    refused(
        monitor(&web.base, &vkey(), &state, &[]),
        &[
            "the checkpoint of 41 entries",
            "is not consistent with the checkpoint of 21 entries",
        ],
    );
    assert_eq!(
        std::fs::read(state_file(&state)).expect("state"),
        before,
        "the state moved past a fork"
    );

    // Shown the shorter history it saw before once the longer one was seen: a rollback.
    let state_b = dir_b.path().join("monitor");
    ok(monitor(&web.base, &vkey(), &state_b, &[]));
    std::fs::remove_dir_all(&site).expect("remove site");
    export(&data_a, &site);
    refused(
        monitor(&web.base, &vkey(), &state_b, &[]),
        &[
            "its checkpoint has 21 entries",
            "a checkpoint of 41 entries before",
        ],
    );
}

#[test]
fn a_witness_quorum_not_met_is_reported() {
    let (dir, data) = ledger("witnessless", 3);
    let site = dir.path().join("site");
    export(&data, &site);
    let web = StaticServer::start(&site);
    let witness = Cosigner::new("witness.example/monitor", key(77))
        .expect("cosigner")
        .verifier_key();
    let state = dir.path().join("monitor");
    refused(
        monitor(&web.base, &vkey(), &state, &["--witness", &witness]),
        &["0 of the required 1 witness cosignatures verify"],
    );
    assert!(!state_file(&state).exists());
    // --quorum 0 asks for no cosignature: the same run passes.
    ok(monitor(
        &web.base,
        &vkey(),
        &state,
        &["--witness", &witness, "--quorum", "0"],
    ));
}
