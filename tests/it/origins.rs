//! Origin-bound signatures (PROTOCOL §3): an entry's signature covers the ledger's origin, so an
//! envelope accepted by one ledger is refused by every other (403, bad signature), even
//! where the same key is registered in both, and the refusal writes nothing. Checked in
//! process, over HTTP on the real binary, and through the CLI signers (`sign`, the
//! Python/openssl signer, `submit --key`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dcledger::entry::Kind;
use dcledger::ledger::{Ledger, LedgerError};
use dcledger::reject::RejectClass;
use serde_json::{Value, json};

use crate::http::{Server, get, new_agent};
use crate::support::{Party, TestLedger, bin, path_str, run_ok, stdout};

const A: &str = "dcledger.test/ledger-a";
const B: &str = "dcledger.test/ledger-b";
const TS: &str = "2025-01-01T00:00:00Z";

fn org_body(org_id: &str) -> Value {
    json!({"org_id": org_id, "name": format!("{org_id} Ltd"), "roles": ["operator"]})
}

/// Two ledgers, A and B, with the same authority key and the same registrar key granted
/// in both; the registrar's next seq is 1 in each.
fn twin_ledgers() -> (TestLedger, TestLedger) {
    let mut a = TestLedger::with_origin(A);
    let mut b = TestLedger::with_origin(B);
    a.onboard("registrar", &["authority"], &Party::of(A, 40));
    b.onboard("registrar", &["authority"], &Party::of(B, 40));
    (a, b)
}

/// Closes a test ledger (one process opens a ledger at a time): its directory guard and
/// data directory.
fn close(t: TestLedger) -> (tempfile::TempDir, PathBuf) {
    let data = t.data();
    let TestLedger { dir, ledger, .. } = t;
    ledger.close().expect("close the ledger");
    (dir, data)
}

/// `Ledger::reindex`, waiting out the lock for a moment: a child process that another test
/// is spawning holds a copy of every descriptor, the lock's included, until it execs.
fn reindex(data: &Path) {
    for _ in 0..100 {
        match Ledger::reindex(data, crate::support::log_key()) {
            Err(LedgerError::Locked { .. }) => std::thread::sleep(Duration::from_millis(50)),
            other => return other.expect("reindex").close().expect("close"),
        }
    }
    panic!("{} stayed locked", data.display());
}

fn size_and_checkpoint(ledger: &Ledger) -> (u64, String) {
    (ledger.size(), ledger.checkpoint().to_string())
}

#[test]
fn an_envelope_accepted_by_one_ledger_is_refused_by_another() {
    let (mut a, mut b) = twin_ledgers();
    let registrar_a = Party::of(A, 40);
    let envelope = registrar_a.sign_with(Kind::OrgRegister, 1, TS, org_body("acme"));
    a.accept(vec![envelope.clone()]);

    // Ledger B knows the key and expects exactly this seq: only the origin differs.
    let before = size_and_checkpoint(&b.ledger);
    let refusal = b
        .ledger
        .append_batch(vec![envelope.clone()])
        .expect("storage")
        .expect_err("ledger B must refuse ledger A's envelope");
    assert_eq!(refusal.position, 0);
    let r = &refusal.rejection;
    assert_eq!(r.class, RejectClass::Forbidden, "{r}");
    assert_eq!(r.errors.len(), 1, "{r}");
    assert_eq!(r.errors[0].path, "/sig", "{r}");
    // The message says what was verified, so an integrator can fix their signer.
    let message = &r.errors[0].message;
    for part in [
        r#""dcledger/entry/v1\n""#,
        &format!("origin {B:?}"),
        "JCS(entry)",
        "SHA-256",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
    assert_eq!(
        size_and_checkpoint(&b.ledger),
        before,
        "the refusal wrote something"
    );

    // Nothing was consumed: the same entry signed for B is accepted at the same seq.
    let for_b = Party::of(B, 40).sign_with(Kind::OrgRegister, 1, TS, org_body("acme"));
    assert_eq!(for_b["entry"], envelope["entry"]);
    b.accept(vec![for_b]);
    assert_eq!(b.ledger.size(), before.0 + 1);

    // And B's `verify` and `reindex`, which check every signature again, accept B as it is.
    assert_eq!(b.ledger.verify().expect("verify").entries, before.0 + 1);
    let (_dir, data) = close(b);
    reindex(&data);
}

/// A genesis entry is signed for the origin its own body names; the entries after it, in
/// the same submission to a ledger without genesis, for that same origin. Replay
/// (`verify`, `reindex`) learns the origin from leaf 0 the same way.
#[test]
fn genesis_is_signed_for_the_origin_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // What `init` leaves if it stops before entry 0: a segments directory, nothing more.
    std::fs::create_dir_all(data.join("segments")).unwrap();
    let log = crate::support::log_key();
    let mut ledger = Ledger::open(&data, log.clone()).expect("open a ledger without genesis");
    assert_eq!(ledger.origin(), None);
    let genesis = |signed_for: &'static str, named: &str| {
        Party::of(signed_for, 1).sign_with(
            Kind::LedgerGenesis,
            1,
            TS,
            json!({"origin": named, "name": "twin",
                   "checkpoint_key": hex::encode(log.verifying_key().as_bytes())}),
        )
    };
    let org = |signed_for: &'static str| {
        Party::of(signed_for, 1).sign_with(Kind::OrgRegister, 2, TS, org_body("acme"))
    };
    let refused = |ledger: &mut Ledger, batch: Vec<Value>| {
        let r = ledger
            .append_batch(batch)
            .expect("storage")
            .expect_err("refused");
        assert_eq!(ledger.size(), 0, "a refusal wrote something");
        (
            r.position,
            r.rejection.class,
            r.rejection.errors[0].path.clone(),
        )
    };
    let forbidden_sig = (RejectClass::Forbidden, "/sig".to_string());

    // A genesis naming A but signed for B.
    let (at, class, path) = refused(&mut ledger, vec![genesis(B, A)]);
    assert_eq!((at, (class, path)), (0, forbidden_sig.clone()));
    // A genesis for A followed by an entry signed for B.
    let (at, class, path) = refused(&mut ledger, vec![genesis(A, A), org(B)]);
    assert_eq!((at, (class, path)), (1, forbidden_sig));
    // No genesis first: no origin to check anything against.
    let (at, class, path) = refused(&mut ledger, vec![org(A)]);
    assert_eq!(
        (at, class, path.as_str()),
        (0, RejectClass::Invalid, "/entry/kind")
    );

    ledger
        .append_batch(vec![genesis(A, A), org(A)])
        .expect("storage")
        .expect("genesis and an entry, both signed for A");
    assert_eq!(ledger.origin(), Some(A));
    assert_eq!(ledger.verify().expect("verify").entries, 2);
    ledger.close().expect("close");
    reindex(&data);
}

#[test]
fn over_http_the_other_ledger_answers_403_and_writes_nothing() {
    let (mut a, b) = twin_ledgers();
    let envelope = Party::of(A, 40).sign_with(Kind::OrgRegister, 1, TS, org_body("acme"));
    a.accept(vec![envelope.clone()]);
    let (a_dir, a_data) = close(a);
    let (b_dir, b_data) = close(b);
    let server_a = Server::start(&a_data, &a_dir.path().join("server.log"));
    let server_b = Server::start(&b_data, &b_dir.path().join("server.log"));
    let agent = new_agent();
    let checkpoint = |server: &Server| -> String {
        let answer = get(&agent, &server.url("/v1/checkpoint"));
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.text
    };
    assert!(checkpoint(&server_a).starts_with(&format!("{A}\n")));
    let before = checkpoint(&server_b);
    assert!(before.starts_with(&format!("{B}\n")), "{before}");

    let post = |server: &Server| {
        let mut response = agent
            .post(&server.url("/v1/entries"))
            .header("content-type", "application/json")
            .send(envelope.to_string().as_bytes())
            .expect("POST /v1/entries");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = response.body_mut().read_to_string().expect("body");
        (status, content_type, text)
    };

    let (status, content_type, text) = post(&server_b);
    assert_eq!(status, 403, "{text}");
    assert!(
        content_type.starts_with("application/problem+json"),
        "{content_type}: {text}"
    );
    let problem: Value = serde_json::from_str(&text).expect("problem JSON");
    assert_eq!(problem["status"], 403, "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("forbidden")),
        "{problem}"
    );
    let errors = problem["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{problem}");
    assert_eq!(errors[0]["path"], "/sig", "{problem}");
    let message = errors[0]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("origin {B:?}")), "{problem}");
    assert_eq!(checkpoint(&server_b), before, "the refusal wrote something");

    // Ledger A, which it was signed for, already holds it: there it is a retry (PROTOCOL §3),
    // answered 200, not refused as forged.
    let (status, _, text) = post(&server_a);
    assert_eq!(status, 200, "{text}");
}

fn ledger_size(data: &Path) -> u64 {
    let note = stdout(&run_ok(&["checkpoint", "--data", path_str(data)]));
    note.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("no tree size in {note}"))
}

/// `dcledger sign --origin` and the Python/openssl signer sign for the origin given: the
/// ledger of that origin accepts, another refuses with the bad-signature message, and a
/// `sign` without an origin, or with one that is no origin, is refused before signing.
#[test]
fn cli_signers_sign_for_the_origin_they_are_given() {
    let (a, b) = twin_ledgers();
    let (_a_dir, a_data) = close(a);
    let (_b_dir, b_data) = close(b);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("registrar.pem");
    dcledger::keys::write_signing_key(&key, &Party::new(40).key).unwrap();
    let body = dir.path().join("org.json");
    std::fs::write(&body, org_body("acme").to_string()).unwrap();

    let sign = |origin: &str| {
        let out = run_ok(&[
            "sign",
            "--key",
            path_str(&key),
            "--origin",
            origin,
            "--kind",
            "org.register",
            "--seq",
            "1",
            "--ts",
            TS,
            path_str(&body),
        ]);
        out.stdout
    };
    let python = |origin: &str| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sign_with_openssl.py");
        let out = Command::new("python3")
            .arg(&script)
            .args([
                path_str(&key),
                origin,
                "org.register",
                "1",
                TS,
                path_str(&body),
            ])
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    // Ed25519 is deterministic: both signers make the same envelope for the same origin.
    let parsed = |bytes: Vec<u8>| -> Value { serde_json::from_slice(&bytes).expect("JSON") };
    assert_eq!(parsed(sign(A)), parsed(python(A)));
    assert_ne!(parsed(sign(A))["sig"], parsed(sign(B))["sig"]);

    let append = |data: &Path, envelope: &[u8]| {
        let file = dir.path().join("batch.ndjson");
        std::fs::write(&file, envelope).unwrap();
        bin()
            .args(["append", "--data", path_str(data), path_str(&file)])
            .args(["--log-key", path_str(&crate::support::log_key_file(data))])
            .output()
            .unwrap()
    };
    let size_b = ledger_size(&b_data);
    for envelope in [sign(A), python(A)] {
        let refused = append(&b_data, &envelope);
        assert!(!refused.status.success());
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(
            err.contains("forbidden") && err.contains("/sig") && err.contains(&format!("{B:?}")),
            "{err}"
        );
        assert_eq!(ledger_size(&b_data), size_b, "the refusal wrote something");
    }
    let accepted = append(&a_data, &python(A));
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    let accepted = append(&b_data, &python(B));
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );

    for args in [
        &[
            "sign",
            "--key",
            path_str(&key),
            "--kind",
            "org.register",
            "--seq",
            "1",
        ][..],
        &[
            "sign",
            "--key",
            path_str(&key),
            "--origin",
            "not an origin",
            "--kind",
            "org.register",
            "--seq",
            "1",
        ][..],
    ] {
        let out = bin().args(args).arg(path_str(&body)).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?} printed an envelope");
    }
}

/// `submit --key --kind` signs for the origin the server's checkpoint names; `--origin`
/// pins it, and a server of another ledger gets nothing signed.
#[test]
fn submit_signs_for_the_servers_origin_and_honours_a_pin() {
    let (a, _b) = twin_ledgers();
    let (dir, data) = close(a);
    let server = Server::start(&data, &dir.path().join("server.log"));
    let key = dir.path().join("registrar.pem");
    dcledger::keys::write_signing_key(&key, &Party::new(40).key).unwrap();
    let bodies = dir.path().join("bodies.ndjson");
    std::fs::write(&bodies, format!("{}\n", org_body("acme"))).unwrap();
    let agent = new_agent();
    let size = || -> u64 {
        let health = get(&agent, &server.url("/healthz"));
        serde_json::from_str::<Value>(&health.text).expect("JSON")["tree_size"]
            .as_u64()
            .expect("tree_size")
    };
    let before = size();

    let submit = |pin: Option<&str>| {
        let mut cmd = bin();
        cmd.args([
            "submit",
            "--server",
            &server.url(""),
            "--key",
            path_str(&key),
        ]);
        cmd.args(["--kind", "org.register"]);
        if let Some(origin) = pin {
            cmd.args(["--origin", origin]);
        }
        cmd.arg(path_str(&bodies)).output().unwrap()
    };
    let refused = submit(Some(B));
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains(A) && err.contains(B) && err.contains("nothing was signed"),
        "{err}"
    );
    assert_eq!(size(), before);

    // Learnt from the server, then pinned to the same origin: both accepted.
    for (k, pin) in [None, Some(A)].into_iter().enumerate() {
        std::fs::write(&bodies, format!("{}\n", org_body(&format!("acme-{k}")))).unwrap();
        let done = submit(pin);
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
        let index = before + k as u64;
        assert_eq!(size(), index + 1);
        let entry = get(&agent, &server.url(&format!("/v1/entries/{index}")));
        let leaf: Value = serde_json::from_str(&entry.text).expect("JSON");
        assert_eq!(
            leaf["leaf"]["entry"]["body"]["org_id"],
            format!("acme-{k}"),
            "{leaf}"
        );
        assert_eq!(leaf["leaf"]["entry"]["seq"], k + 1, "{leaf}");
    }
}
