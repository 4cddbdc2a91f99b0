//! The README walkthrough, run for real: keys from openssl, an entry signed with only
//! openssl and Python, appended with the CLI, proven, and checked by a third party.

use std::path::Path;
use std::process::Command;

use crate::support::{bin, path_str, run_ok, stdout};

fn openssl_key(path: &Path) {
    let status = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out", path_str(path)])
        .status()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(status.success());
}

fn openssl_public_hex(path: &Path) -> String {
    let out = Command::new("openssl")
        .args(["pkey", "-in", path_str(path), "-pubout", "-outform", "DER"])
        .output()
        .expect("openssl");
    hex::encode(&out.stdout[out.stdout.len() - 32..])
}

#[test]
fn walkthrough_openssl_keys_python_signature_proof() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let data = p("data");
    openssl_key(&p("authority.pem"));
    openssl_key(&p("log.pem"));
    openssl_key(&p("operator.pem"));

    let init = run_ok(&[
        "init",
        "--data",
        path_str(&data),
        "--origin",
        "dcledger.example/cn-henan",
        "--authority-key",
        path_str(&p("authority.pem")),
        "--log-key",
        path_str(&p("log.pem")),
    ]);
    let init_out = stdout(&init);
    let vkey = init_out
        .lines()
        .find_map(|l| l.strip_prefix("verifier key: "))
        .expect("init prints the verifier key")
        .to_string();
    assert_eq!(
        stdout(&run_ok(&["verifier-key", "--data", path_str(&data)])).trim(),
        vkey
    );

    // The authority registers the operator with `dcledger sign` …
    std::fs::write(
        p("org.json"),
        r#"{"org_id":"zhongyuan-compute","name":"Zhongyuan Compute","roles":["operator"],"province":"Henan"}"#,
    )
    .unwrap();
    let org = run_ok(&[
        "sign",
        "--key",
        path_str(&p("authority.pem")),
        "--origin",
        "dcledger.example/cn-henan",
        "--kind",
        "org.register",
        "--seq",
        "2",
        "--ts",
        "2025-01-01T00:00:00Z",
        path_str(&p("org.json")),
    ]);
    // … and grants the operator's openssl key with a signature made by openssl and Python.
    std::fs::write(
        p("grant.json"),
        format!(
            r#"{{"org_id":"zhongyuan-compute","public_key":"{}","label":"ops laptop"}}"#,
            openssl_public_hex(&p("operator.pem"))
        ),
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sign_with_openssl.py");
    let grant = Command::new("python3")
        .arg(&script)
        .args([
            path_str(&p("authority.pem")),
            "dcledger.example/cn-henan",
            "key.grant",
            "3",
            "2025-01-01T00:00:05Z",
        ])
        .arg(p("grant.json"))
        .output()
        .expect("python3");
    assert!(
        grant.status.success(),
        "{}",
        String::from_utf8_lossy(&grant.stderr)
    );
    std::fs::write(p("batch.ndjson"), [org.stdout, grant.stdout].concat()).unwrap();

    // The log key stays where it was: init copies nothing into the data directory, and
    // every writer is given the key.
    assert!(!data.join("log-key.pem").exists());
    let append = |file: &str| {
        bin()
            .args(["append", "--data", path_str(&data)])
            .args(["--log-key", path_str(&p("log.pem")), path_str(&p(file))])
            .output()
            .unwrap()
    };
    let appended = append("batch.ndjson");
    assert!(appended.status.success(), "{appended:?}");
    let appended = stdout(&appended);
    assert!(appended.starts_with("accepted 2 entries\n"), "{appended}");
    let cp_after_append = run_ok(&["checkpoint", "--data", path_str(&data)]).stdout;

    // Appending the same file again is a retry (PROTOCOL §3): reported, nothing written.
    let again = append("batch.ndjson");
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let again = stdout(&again);
    assert!(
        again.starts_with(
            "accepted 0 entries; 2 were already in the ledger (nothing written for them)\n"
        ),
        "{again}"
    );
    assert_eq!(
        run_ok(&["checkpoint", "--data", path_str(&data)]).stdout,
        cp_after_append,
        "a retry changed the ledger"
    );

    // A batch that mixes an entry already there (line 1, the grant at index 2) with a new
    // one is refused whole, naming the line and the index it has.
    std::fs::write(
        p("org2.json"),
        r#"{"org_id":"henan-grid","name":"Henan Grid","roles":["utility"]}"#,
    )
    .unwrap();
    let org2 = run_ok(&[
        "sign",
        "--key",
        path_str(&p("authority.pem")),
        "--origin",
        "dcledger.example/cn-henan",
        "--kind",
        "org.register",
        "--seq",
        "4",
        "--ts",
        "2025-01-01T00:00:09Z",
        path_str(&p("org2.json")),
    ]);
    let grant_line = std::fs::read_to_string(p("batch.ndjson"))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    std::fs::write(
        p("mixed.ndjson"),
        [format!("{grant_line}\n").into_bytes(), org2.stdout].concat(),
    )
    .unwrap();
    let mixed = append("mixed.ndjson");
    assert!(!mixed.status.success());
    let err = String::from_utf8_lossy(&mixed.stderr);
    assert!(
        err.contains("line 1") && err.contains("already in the ledger, at index 2"),
        "{err}"
    );
    assert_eq!(
        run_ok(&["checkpoint", "--data", path_str(&data)]).stdout,
        cp_after_append,
        "a refused mixed batch changed the ledger"
    );

    std::fs::write(
        p("entry.json"),
        run_ok(&["get", "--data", path_str(&data), "2"]).stdout,
    )
    .unwrap();
    std::fs::write(
        p("proof.json"),
        run_ok(&["proof", "inclusion", "--data", path_str(&data), "2"]).stdout,
    )
    .unwrap();
    std::fs::write(
        p("cp.txt"),
        run_ok(&["checkpoint", "--data", path_str(&data)]).stdout,
    )
    .unwrap();
    let ok = stdout(&run_ok(&[
        "verify-proof",
        "--checkpoint",
        path_str(&p("cp.txt")),
        "--key",
        &vkey,
        "--entry",
        path_str(&p("entry.json")),
        "--proof",
        path_str(&p("proof.json")),
    ]));
    assert!(ok.contains("entry 2 is included"), "{ok}");

    // A tampered leaf fails the same check.
    let tampered = std::fs::read_to_string(p("entry.json"))
        .unwrap()
        .replace("ops laptop", "ops desktop");
    std::fs::write(p("tampered.json"), tampered).unwrap();
    let bad = bin()
        .args([
            "verify-proof",
            "--checkpoint",
            path_str(&p("cp.txt")),
            "--key",
            &vkey,
        ])
        .args([
            "--entry",
            path_str(&p("tampered.json")),
            "--proof",
            path_str(&p("proof.json")),
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());

    // Consistency from the genesis checkpoint (init's output) to now.
    let genesis_cp: String = init_out.lines().skip(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(p("cp1.txt"), genesis_cp).unwrap();
    std::fs::write(
        p("cons.json"),
        run_ok(&[
            "proof",
            "consistency",
            "--data",
            path_str(&data),
            "--from",
            "1",
            "--to",
            "3",
        ])
        .stdout,
    )
    .unwrap();
    let ok = stdout(&run_ok(&[
        "verify-proof",
        "--checkpoint",
        path_str(&p("cp.txt")),
        "--key",
        &vkey,
        "--old-checkpoint",
        path_str(&p("cp1.txt")),
        "--proof",
        path_str(&p("cons.json")),
    ]));
    assert!(ok.contains("consistent with size 1"), "{ok}");

    let verified = stdout(&run_ok(&["verify", "--data", path_str(&data)]));
    assert!(verified.starts_with("ok: 3 entries"), "{verified}");
}

/// `dcledger … | head -1`: the reader goes away; the command ends as Unix tools do,
/// killed by SIGPIPE, without a panic or a message.
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("demo");
    crate::support::init_demo_ledger(&data);
    let entries = crate::support::demo_dir().join("entries.ndjson");
    let log_key = crate::support::log_key_file(&data);
    run_ok(&[
        "append",
        "--data",
        path_str(&data),
        "--log-key",
        path_str(&log_key),
        path_str(&entries),
    ]);
    // The reader is gone before the command has audited the ledger and writes.
    let mut child = bin()
        .args(["audit", "--data", path_str(&data), "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn keygen_writes_a_private_pem_openssl_reads() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let public = stdout(&run_ok(&["keygen", "--out", path_str(&key)]));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(public.trim(), openssl_public_hex(&key));
    // Never overwrites a key.
    assert!(
        !bin()
            .args(["keygen", "--out", path_str(&key)])
            .output()
            .unwrap()
            .status
            .success()
    );
}

#[test]
fn errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = bin()
        .args(["get", "--data", path_str(dir.path()), "0"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("dcledger init"));
}

/// `sign` and `submit` read JSON a person wrote; an object that repeats a key has no one
/// meaning (PROTOCOL §2), so both refuse it, naming the key, the object and the line, and
/// sign or send nothing.
#[test]
fn sign_and_submit_refuse_input_that_repeats_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    run_ok(&["keygen", "--out", path_str(&p("k.pem"))]);
    std::fs::write(
        p("body.json"),
        r#"{"org_id": "a", "name": "Acme", "roles": ["operator"], "name": "Other"}"#,
    )
    .unwrap();
    let signed = bin()
        .args([
            "sign",
            "--key",
            path_str(&p("k.pem")),
            "--origin",
            "dcledger.example/x",
        ])
        .args([
            "--kind",
            "org.register",
            "--seq",
            "2",
            path_str(&p("body.json")),
        ])
        .output()
        .unwrap();
    assert!(!signed.status.success());
    assert!(signed.stdout.is_empty(), "something was signed");
    let err = String::from_utf8_lossy(&signed.stderr);
    assert!(err.contains(r#""name" appears twice"#), "{err}");

    // A server nobody listens on: the input is refused before any request is made.
    std::fs::write(
        p("envelopes.ndjson"),
        concat!(
            r#"{"entry": {}, "sig": ""}"#,
            "\n",
            r#"{"entry": {"body": {"k": 1, "k": 2}}, "sig": ""}"#,
            "\n"
        ),
    )
    .unwrap();
    let submitted = bin()
        .args(["submit", "--server", "http://127.0.0.1:9"])
        .arg(p("envelopes.ndjson"))
        .output()
        .unwrap();
    assert!(!submitted.status.success());
    let err = String::from_utf8_lossy(&submitted.stderr);
    assert!(
        err.contains("line 2")
            && err.contains("/entry/body")
            && err.contains(r#""k" appears twice"#),
        "{err}"
    );
}

/// `demo` finds its port taken before any work: it fails at once, naming the address, and
/// leaves no temporary directory behind.
#[test]
fn demo_with_its_port_taken_fails_at_once_naming_it_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let temp_root = tmp.path().join("tmp");
    std::fs::create_dir(&temp_root).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let started = std::time::Instant::now();
    let mut child = bin()
        .args(["demo", "--listen", &addr])
        .env("TMPDIR", &temp_root)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a demo that did not fail would serve until killed.
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("demo kept running with its port taken");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let took = started.elapsed();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&addr) && err.contains("--listen"), "{err}");
    assert!(
        took < std::time::Duration::from_secs(1),
        "took {took:?}: {err}"
    );
    let left: Vec<_> = std::fs::read_dir(&temp_root).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    drop(taken);
}

/// `completions` prints a script each shell loads, naming the commands.
#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout(&run_ok(&["completions", shell]));
        assert!(
            script.contains("dcledger") && script.contains("reindex"),
            "{shell}: {script}"
        );
    }
    let out = bin().args(["completions", "tcsh"]).output().unwrap();
    assert!(!out.status.success());
}

/// Long jobs draw progress bars only on a terminal: with standard error redirected (a
/// file, a pipe, CI), nothing but their messages reach it, no carriage returns, no escape
/// codes.
#[test]
fn long_jobs_draw_no_progress_bar_when_not_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    crate::support::init_demo_ledger(&data);
    let log_key = crate::support::log_key_file(&data);
    let (tiles, parquet) = (dir.path().join("tiles"), dir.path().join("parquet"));
    for args in [
        vec!["verify", "--data", path_str(&data)],
        vec![
            "reindex",
            "--data",
            path_str(&data),
            "--log-key",
            path_str(&log_key),
        ],
        vec![
            "reindex",
            "--trust",
            "--data",
            path_str(&data),
            "--log-key",
            path_str(&log_key),
        ],
        vec![
            "export",
            "tiles",
            "--data",
            path_str(&data),
            "--out",
            path_str(&tiles),
        ],
        vec![
            "export",
            "parquet",
            "--data",
            path_str(&data),
            "--out",
            path_str(&parquet),
        ],
    ] {
        let out = run_ok(&args);
        assert!(
            !out.stderr.contains(&b'\r') && !out.stderr.contains(&0x1b),
            "{args:?} wrote a bar to a pipe: {:?}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `init` reads the log key where the writers do: `--log-key`, else `[log] key` of
/// `--config` (relative to the file); with neither it says so and creates nothing.
#[test]
fn init_takes_the_log_key_from_the_configuration_as_the_writers_do() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(conf.join("keys")).unwrap();
    let authority = dir.path().join("authority.pem");
    openssl_key(&authority);
    openssl_key(&conf.join("keys/log.pem"));
    let config = conf.join("dcledger.toml");
    std::fs::write(&config, "[log]\nkey = \"keys/log.pem\"\n").unwrap();
    let data = dir.path().join("data");
    let init = |more: &[&str]| {
        let mut args = vec![
            "init",
            "--data",
            path_str(&data),
            "--origin",
            "dcledger.example/configured",
            "--authority-key",
            path_str(&authority),
        ];
        args.extend_from_slice(more);
        bin().args(&args).output().expect("run dcledger")
    };

    let refused = init(&[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--log-key FILE") && stderr.contains("[log] key"),
        "{stderr}"
    );
    assert!(!data.exists(), "a refused init creates nothing");

    let made = init(&["--config", path_str(&config)]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    // The writers find the same key there: a ledger refuses a key genesis did not fix.
    run_ok(&[
        "reindex",
        "--data",
        path_str(&data),
        "--config",
        path_str(&config),
    ]);
}
