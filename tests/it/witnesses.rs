//! Witnesses (PROTOCOL §12.2) on real processes and sockets: a ledger and its witness
//! against each other, each against an independent implementation written from the C2SP
//! documents alone (`tests/c2sp_witness.py`), every refusal of tlog-witness, a witness
//! killed with SIGKILL and restarted, a ledger restarted (which learns what its witness
//! cosigned from a 409), and a hung witness that delays no acknowledgement.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dcledger::entry::Kind;
use dcledger::limits::WITNESS_REQUEST_TIMEOUT_MS;
use dcledger::log::checkpoint::NoteVerifier;
use dcledger::log::cosignature::{self, AddCheckpoint, CosignatureVerifier};
use serde_json::json;

use crate::http::{Server, close, get, new_agent, org_body, post_json, tree_size};
use crate::support::{Party, TestLedger, key, log_key_file, path_str, run_ok, stdout};

/// How long a cosignature may take to appear (the ledger looks every 200 ms).
const GATHER: Duration = Duration::from_secs(30);

const PYTHON_WITNESS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/c2sp_witness.py");

/// A port free a moment ago: a witness's address must be in the ledger's configuration
/// before the witness starts, and must stay the same across its restart.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A ledger's configuration file in `dir`, listing `witnesses` as `(url, vkey)`.
fn witness_config(dir: &Path, witnesses: &[(String, &str)]) -> PathBuf {
    let config = dir.join("ledger.toml");
    let tables: String = witnesses
        .iter()
        .map(|(url, vkey)| format!("[[witness]]\nurl = \"{url}\"\nvkey = \"{vkey}\"\n\n"))
        .collect();
    std::fs::write(&config, tables).expect("write the configuration");
    config
}

/// The verifier key of a witness that nobody runs as it should (hung, or not there).
fn unanswering_witness_vkey(name: &str, seed: u8) -> String {
    cosignature::cosigner_verifier_key(name, key(seed).verifying_key().as_bytes())
}

/// A closed test ledger with one operator onboarded: its directory, data directory,
/// authority and verifier key.
fn witnessed_ledger(operator: &str, seed: u8) -> (tempfile::TempDir, PathBuf, Party, String) {
    let mut t = TestLedger::new();
    t.onboard(operator, &["operator"], &Party::new(seed));
    let vkey = t
        .ledger
        .verifier_key()
        .expect("a ledger with genesis has a key");
    let (dir, data, authority) = close(t);
    (dir, data, authority, vkey)
}

/// `dcledger witness serve` for the ledger whose verifier key is `log_vkey`.
fn rust_witness(dir: &Path, state: &Path, port: u16, log_vkey: &str) -> Server {
    let key_file = dir.join("witness.pem");
    if !key_file.exists() {
        dcledger::keys::write_signing_key(&key_file, &key(77)).expect("witness key");
    }
    Server::start_with(
        &[
            "witness",
            "serve",
            "--key",
            path_str(&key_file),
            "--name",
            "witness.example/rust",
            "--state",
            path_str(state),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log",
            log_vkey,
        ],
        &dir.join("witness.log"),
    )
}

/// The independent witness, killed when dropped.
struct PythonWitness {
    child: Child,
    url: String,
    vkey: String,
}

impl Drop for PythonWitness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python_witness(log_vkey: &str) -> PythonWitness {
    let mut child = Command::new("python3")
        .args([
            PYTHON_WITNESS,
            "serve",
            "witness.example/python",
            &"5a".repeat(32),
            log_vkey,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs (.ci/run installs it with the cryptography package)");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = || lines.next().and_then(Result::ok).unwrap_or_default();
    let url = next().trim_start_matches("listening on ").to_string();
    let vkey = next().trim_start_matches("verifier key: ").to_string();
    assert!(
        url.starts_with("http://") && !vkey.is_empty(),
        "{url} {vkey}"
    );
    PythonWitness { child, url, vkey }
}

/// Waits until `GET /checkpoint` carries a cosignature by `witness` of a tree of at
/// least `size`; returns the note.
fn cosigned(server: &Server, log_vkey: &str, witness: &str, size: u64) -> String {
    let log = NoteVerifier::parse(log_vkey).expect("log vkey");
    let witness = CosignatureVerifier::parse(witness).expect("witness vkey");
    let agent = new_agent();
    let deadline = Instant::now() + GATHER;
    loop {
        let note = get(&agent, &server.url("/checkpoint")).text;
        if let Ok(w) = cosignature::verify_witnessed(&note, &log, std::slice::from_ref(&witness), 1)
            && w.checkpoint.size >= size
        {
            return note;
        }
        assert!(
            Instant::now() < deadline,
            "no cosignature by {} of size {size} in {note}; log: {}",
            witness.name(),
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Submits one new organisation; returns the tree size after it.
fn grow(server: &Server, authority: &mut Party, n: u32) -> u64 {
    let agent = new_agent();
    let envelope = authority.sign(Kind::OrgRegister, org_body(&format!("grown-{n}")));
    post_json(&agent, server, &json!([envelope])).expect(201);
    tree_size(&agent, server)
}

#[test]
fn a_ledger_and_its_witness_agree_through_a_witness_killed_and_a_ledger_restarted() {
    let port = free_port();
    let (dir, data, mut authority, vkey) = witnessed_ledger("witnessed-op", 40);
    let state = dir.path().join("witness-state");
    let witness = rust_witness(dir.path(), &state, port, &vkey);
    let config = witness_config(
        dir.path(),
        &[(format!("http://127.0.0.1:{port}"), witness.vkey())],
    );
    let mut server = Server::serve_with_config(dir.path(), &data, &config);
    let agent = new_agent();
    let size = tree_size(&agent, &server);
    let note = cosigned(&server, &vkey, witness.vkey(), size);
    // `GET /v1/checkpoint` serves the same cosignatures, and `verify-checkpoint` checks them.
    assert_eq!(get(&agent, &server.url("/v1/checkpoint")).text, note);
    let file = dir.path().join("witnessed.txt");
    std::fs::write(&file, &note).unwrap();
    let verified = stdout(&run_ok(&[
        "verify-checkpoint",
        path_str(&file),
        "--vkey",
        &vkey,
        "--witness",
        witness.vkey(),
        "--quorum",
        "1",
    ]));
    assert!(verified.contains("witness.example/rust"), "{verified}");

    // SIGKILL: the witness is gone; a submission is acknowledged all the same.
    let witness_vkey = witness.vkey().to_string();
    witness.kill();
    drop(witness);
    let grown = grow(&server, &mut authority, 1);
    // Restarted over the same state, it cosigns the growth from where it was.
    let witness = rust_witness(dir.path(), &state, port, &vkey);
    assert_eq!(witness.vkey(), witness_vkey);
    cosigned(&server, &vkey, &witness_vkey, grown);

    // A restarted ledger knows nothing of what its witness cosigned: it sends from size 0,
    // is told the size by a 409, and proves consistency from there.
    assert!(server.terminate().success());
    let server = Server::serve_with_config(dir.path(), &data, &config);
    let grown = grow(&server, &mut authority, 2);
    cosigned(&server, &vkey, &witness_vkey, grown);
    let log = std::fs::read_to_string(data.join("cosignatures")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.starts_with(&format!("{grown} \u{2014} witness.example/rust "))),
        "{log}"
    );
    drop(witness);
}

#[test]
fn the_independent_witness_cosigns_for_the_ledger_and_checks_the_rust_witness() {
    let (dir, data, mut authority, vkey) = witnessed_ledger("witnessed-op", 40);
    let python = python_witness(&vkey);
    let port = free_port();
    let rust = rust_witness(dir.path(), &dir.path().join("state"), port, &vkey);
    let config = witness_config(
        dir.path(),
        &[
            (python.url.clone(), &python.vkey),
            (format!("http://127.0.0.1:{port}"), rust.vkey()),
        ],
    );
    let server = Server::serve_with_config(dir.path(), &data, &config);
    // The Python witness checks the ledger's signature and, after growth, its consistency
    // proof; dcledger checks the Python witness's cosignature.
    let first = tree_size(&new_agent(), &server);
    cosigned(&server, &vkey, &python.vkey, first);
    let grown = grow(&server, &mut authority, 1);
    let grown = grow(&server, &mut authority, 2).max(grown);
    cosigned(&server, &vkey, &python.vkey, grown);
    let note = cosigned(&server, &vkey, rust.vkey(), grown);
    // The Python checker verifies the Rust witness's cosignature from the C2SP text.
    let file = dir.path().join("note.txt");
    std::fs::write(&file, &note).unwrap();
    let out = Command::new("python3")
        .args([PYTHON_WITNESS, "check", path_str(&file), &vkey, rust.vkey()])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Both at once make a quorum of two.
    let both = stdout(&run_ok(&[
        "verify-checkpoint",
        path_str(&file),
        "--vkey",
        &vkey,
        "--witness",
        &python.vkey,
        "--witness",
        rust.vkey(),
    ]));
    assert!(both.contains("cosigned by 2 of 2"), "{both}");
}

/// Every answer of tlog-witness's `add-checkpoint`, from the real witness over HTTP.
#[test]
fn the_witness_answers_each_case_of_add_checkpoint_with_its_status() {
    let mut t = TestLedger::new();
    let first = t.ledger.reader().checkpoint().to_string();
    let first_size = t.ledger.size();
    t.onboard("w-op", &["operator"], &Party::new(41));
    let second = t.ledger.reader().checkpoint().to_string();
    let second_size = t.ledger.size();
    let proof = t
        .ledger
        .reader()
        .consistency(first_size, second_size)
        .expect("proof")
        .hashes;
    let vkey = t.ledger.verifier_key().expect("key");
    let (dir, _data, _) = close(t);
    let witness = rust_witness(dir.path(), &dir.path().join("state"), free_port(), &vkey);
    let url = witness.url("/add-checkpoint");
    let agent = new_agent();
    let send = |old: u64, proof: Vec<[u8; 32]>, note: &str| {
        let body = AddCheckpoint {
            old_size: old,
            proof,
            note: note.to_string(),
        }
        .encode();
        crate::http::answer(agent.post(&url).send(body.as_bytes())).expect("an answer")
    };
    let first_answer = send(0, vec![], &first);
    assert_eq!(first_answer.status, 200, "{}", first_answer.text);
    assert!(
        first_answer
            .text
            .starts_with("\u{2014} witness.example/rust ")
    );
    // Stale: 409 with the size, as text/x.tlog.size.
    let stale = send(0, vec![], &second);
    assert_eq!(
        (stale.status, stale.text.as_str()),
        (409, &*format!("{first_size}\n"))
    );
    assert_eq!(stale.content_type, "text/x.tlog.size");
    // An inconsistent proof: 422.
    let mut bad = proof.clone();
    bad[0][0] ^= 1;
    assert_eq!(send(first_size, bad, &second).status, 422);
    // The old size beyond the checkpoint: 400; a body that is not one: 400.
    assert_eq!(send(second_size + 1, vec![], &second).status, 400);
    let garbage =
        crate::http::answer(agent.post(&url).send("hello".as_bytes())).expect("an answer");
    assert_eq!(garbage.status, 400);
    // A log it does not witness: 404. Its log's origin signed by another key: 403.
    let other = TestLedger::with_origin("other.example/ledger");
    let stranger = other.ledger.reader().checkpoint().to_string();
    assert_eq!(send(0, vec![], &stranger).status, 404);
    let body = dcledger::log::checkpoint::own_note_body(&second).unwrap();
    let forged = body.sign(&key(99));
    assert_eq!(send(first_size, proof.clone(), &forged).status, 403);
    // And the growth, proven: 200, then the same tree again: 200.
    assert_eq!(send(first_size, proof, &second).status, 200);
    assert_eq!(send(second_size, vec![], &second).status, 200);
}

/// A witness that accepts connections and never answers holds back nothing but its own
/// cosignature: submissions are acknowledged, and the other witness cosigns.
#[test]
fn a_hung_witness_delays_no_acknowledgement() {
    let hung = TcpListener::bind("127.0.0.1:0").unwrap();
    let hung_addr = hung.local_addr().unwrap();
    // Accepts and keeps every connection, reading nothing, answering nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in hung.incoming() {
            held.push(stream);
        }
    });
    let (dir, data, mut authority, vkey) = witnessed_ledger("hung-op", 43);
    let port = free_port();
    let good = rust_witness(dir.path(), &dir.path().join("state"), port, &vkey);
    let hung_vkey = unanswering_witness_vkey("hung.example/w", 0x3b);
    let config = witness_config(
        dir.path(),
        &[
            (format!("http://{hung_addr}"), &hung_vkey),
            (format!("http://127.0.0.1:{port}"), good.vkey()),
        ],
    );
    let server = Server::serve_with_config(dir.path(), &data, &config);
    for n in 0..3 {
        let started = Instant::now();
        let size = grow(&server, &mut authority, n);
        // Well within the time a request to the hung witness is given.
        assert!(
            started.elapsed() < Duration::from_millis(WITNESS_REQUEST_TIMEOUT_MS),
            "a submission waited {:?}",
            started.elapsed()
        );
        cosigned(&server, &vkey, good.vkey(), size);
    }
}

/// `dcledger append`, a writer that ends, sends its new checkpoint to every witness too
/// (PROTOCOL §12), once its entries are acknowledged; a new process learns what a witness
/// holds from a 409 and proves consistency from there; a witness that is down costs no
/// entry and no failure.
#[test]
fn the_command_line_append_has_its_checkpoint_cosigned() {
    let (dir, data, mut authority, vkey) = witnessed_ledger("appending-op", 44);
    let port = free_port();
    let witness = rust_witness(dir.path(), &dir.path().join("state"), port, &vkey);
    // A port nothing listens on.
    let down = free_port();
    let down_vkey = unanswering_witness_vkey("down.example/w", 0x3c);
    let config = witness_config(
        dir.path(),
        &[
            (format!("http://127.0.0.1:{down}"), &down_vkey),
            (format!("http://127.0.0.1:{port}"), witness.vkey()),
        ],
    );
    let log = NoteVerifier::parse(&vkey).expect("log vkey");
    let cosigner = CosignatureVerifier::parse(witness.vkey()).expect("witness vkey");
    let input = dir.path().join("entries.ndjson");
    let log_key = log_key_file(&data);
    for round in 0..2 {
        let lines: String = (0..2)
            .map(|n| {
                let body = org_body(&format!("appended-{round}-{n}"));
                format!("{}\n", authority.sign(Kind::OrgRegister, body))
            })
            .collect();
        std::fs::write(&input, lines).unwrap();
        let out = run_ok(&[
            "append",
            "--data",
            path_str(&data),
            "--log-key",
            path_str(&log_key),
            "--config",
            path_str(&config),
            path_str(&input),
        ]);
        let printed = stdout(&out);
        let (said, note) = printed.split_once('\n').expect("two parts");
        assert_eq!(said, "accepted 2 entries");
        let size = dcledger::log::checkpoint::own_note_body(note)
            .expect("the checkpoint printed")
            .size;
        let errors = String::from_utf8_lossy(&out.stderr);
        assert!(
            errors.contains(&format!(
                "witness http://127.0.0.1:{port}: cosigned the checkpoint of size {size}"
            )),
            "{errors}"
        );
        assert!(
            errors.contains(&format!("http://127.0.0.1:{down}/add-checkpoint")),
            "{errors}"
        );
        // What `serve` will hand out: the note printed, with the witness's cosignature.
        let witnessed = std::fs::read_to_string(data.join("witnessed")).expect("witnessed");
        assert!(witnessed.starts_with(note), "{witnessed}");
        let checked =
            cosignature::verify_witnessed(&witnessed, &log, std::slice::from_ref(&cosigner), 1)
                .unwrap_or_else(|e| panic!("round {round}: {e}: {witnessed}"));
        assert_eq!(checked.checkpoint.size, size);
    }
}
