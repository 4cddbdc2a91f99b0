//! A lock that holds (PROTOCOL §11), on the real binary: the data directory itself is locked,
//! so deleting files in it (the lock-like ones, the pid file, the index) under a running
//! server admits no second writer, and the refusal names the holder's process id; what a
//! ledger creates is its owner's only whatever the umask; the log key lives outside the
//! data directory, so a copy of the directory cannot sign.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dcledger::entry::Kind;
use serde_json::{Value, json};

use crate::http::{Server, answer, close, get, new_agent};
use crate::support::{
    TestLedger, bin, copy_dir, key, log_key_file, output_within, path_str, run_ok, stdout,
};

/// How long a refusal may take.
const AT_ONCE: Duration = Duration::from_secs(30);

fn org_body(org_id: &str) -> Value {
    json!({"org_id": org_id, "name": format!("{org_id} Ltd"), "roles": ["operator"]})
}

fn post(base: &str, body: &Value) -> (u16, Value) {
    let a = answer(
        new_agent()
            .post(format!("{base}/v1/entries"))
            .header("content-type", "application/json")
            .send(body.to_string().as_bytes()),
    )
    .unwrap_or_else(|e| panic!("POST {base}/v1/entries: {e}"));
    (a.status, a.json())
}

/// Every file and directory under `dir`, `dir` included.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write_ndjson(path: &Path, envelopes: &[Value]) {
    let text: String = envelopes.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn deleting_lock_files_and_the_index_under_a_running_server_admits_no_second_writer() {
    let (dir, data, mut authority) = close(TestLedger::new());
    let log = dir.path().join("server.log");
    let mut first = Server::start(&data, &log);
    let pid = first.pid();
    let base = first.url("");
    let (status, one) = post(&base, &authority.sign(Kind::OrgRegister, org_body("one")));
    assert_eq!(status, 201, "{one}");

    // What an operator cleaning up a "stale lock" might delete, and more.
    let mut deleted = Vec::new();
    for path in walk(&data) {
        let name = path.file_name().unwrap().to_string_lossy().to_lowercase();
        if path.is_file() && (name.contains("lock") || name.contains("pid")) {
            std::fs::remove_file(&path).unwrap();
            deleted.push(path);
        }
    }
    assert!(
        deleted.iter().any(|p| p.ends_with("writer.pid")),
        "{deleted:?}"
    );
    std::fs::remove_dir_all(data.join("index")).unwrap();

    // A second server, an append and an init on the same directory: each refused,
    // naming the first server's process id, and writing nothing.
    let holder = format!("process {pid}");
    let mut second = bin();
    second
        .args([
            "serve",
            "--data",
            path_str(&data),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--log-key", path_str(&log_key_file(&data))]);
    let second = output_within(second, AT_ONCE);
    assert!(!second.status.success());
    assert!(stderr(&second).contains(&holder), "{}", stderr(&second));
    let input = dir.path().join("more.ndjson");
    write_ndjson(
        &input,
        &[authority.sign_with(
            Kind::OrgRegister,
            authority.next_seq,
            "2025-01-01T00:00:00Z",
            org_body("forked"),
        )],
    );
    let append = bin()
        .args(["append", "--data", path_str(&data)])
        .args([
            "--log-key",
            path_str(&log_key_file(&data)),
            path_str(&input),
        ])
        .output()
        .unwrap();
    assert!(!append.status.success());
    assert!(stderr(&append).contains(&holder), "{}", stderr(&append));
    let keys = dir.path().join("authority.pem");
    dcledger::keys::write_signing_key(&keys, &key(1)).unwrap();
    let init = bin()
        .args([
            "init",
            "--data",
            path_str(&data),
            "--origin",
            "dcledger.test/forked",
        ])
        .args(["--authority-key", path_str(&keys)])
        .args(["--log-key", path_str(&log_key_file(&data))])
        .output()
        .unwrap();
    assert!(!init.status.success());
    assert!(stderr(&init).contains(&holder), "{}", stderr(&init));

    // The first server still acknowledges, and after a restart nothing it acknowledged
    // is lost (the index it lost is rebuilt from the segments).
    let (status, two) = post(&base, &authority.sign(Kind::OrgRegister, org_body("two")));
    assert_eq!(status, 201, "{two}");
    first.terminate();
    let restarted = Server::start(&data, &log);
    let agent = new_agent();
    for (answer, org_id) in [(&one, "one"), (&two, "two")] {
        let index = answer["index"].as_u64().unwrap();
        let e = get(&agent, &restarted.url(&format!("/v1/entries/{index}"))).expect(200);
        assert_eq!(e["leaf_hash"], answer["leaf_hash"]);
        assert_eq!(e["leaf"]["entry"]["body"]["org_id"], org_id);
    }
    let size = two["index"].as_u64().unwrap() + 1;
    let note = get(&agent, &restarted.url("/v1/checkpoint")).text;
    assert_eq!(
        note.lines().nth(1),
        Some(size.to_string().as_str()),
        "{note}"
    );
}

/// `sh -c 'umask 000; exec dcledger ARGS'`.
fn with_umask_000(args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.args([
        "-c",
        "umask 000; exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_dcledger"),
    ])
    .args(args);
    c
}

/// Starts `dcledger serve` under umask 000; returns the child and its base URL.
fn serve_with_umask_000(data: &Path, key_file: &Path) -> (Child, String) {
    let mut child = with_umask_000(&[
        "serve",
        "--data",
        path_str(data),
        "--listen",
        "127.0.0.1:0",
        "--log-key",
        path_str(key_file),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("the server prints its address")
            .unwrap();
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.trim().to_string();
        }
    };
    // Keep reading, so the server never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, base)
}

fn terminate(mut child: Child) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(40);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn files_and_directories_are_the_owners_only_whatever_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str| tmp.path().join(name);
    let data = p("data");
    // The umask really is 000 for what the shell starts.
    let probe = p("probe");
    let made = Command::new("sh")
        .args(["-c", "umask 000; : > \"$0\"", path_str(&probe)])
        .status()
        .unwrap();
    assert!(made.success());
    assert_eq!(
        std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777,
        0o666
    );

    dcledger::keys::write_signing_key(&p("authority.pem"), &key(1)).unwrap();
    dcledger::keys::write_signing_key(&p("log.pem"), &key(2)).unwrap();
    let run = |args: &[&str]| {
        let out = with_umask_000(args).output().unwrap();
        assert!(out.status.success(), "dcledger {args:?}: {}", stderr(&out));
    };
    run(&[
        "init",
        "--data",
        path_str(&data),
        "--origin",
        crate::support::ORIGIN,
        "--authority-key",
        path_str(&p("authority.pem")),
        "--log-key",
        path_str(&p("log.pem")),
    ]);
    let mut authority = crate::support::Party {
        next_seq: 2,
        ..crate::support::Party::new(1)
    };
    let envelopes: Vec<Value> = (0..1_500)
        .map(|i| authority.sign(Kind::OrgRegister, org_body(&format!("u-{i}"))))
        .collect();
    write_ndjson(&p("in.ndjson"), &envelopes);
    let with_key = |command: &str| {
        vec![
            command.to_string(),
            "--data".into(),
            path_str(&data).to_string(),
            "--log-key".into(),
            path_str(&p("log.pem")).to_string(),
        ]
    };
    let mut append = with_key("append");
    append.push(path_str(&p("in.ndjson")).to_string());
    run(&append.iter().map(String::as_str).collect::<Vec<_>>());
    // The server writes, and the derived store syncs (at most every second) on its own.
    let (server, base) = serve_with_umask_000(&data, &p("log.pem"));
    for i in 0..3 {
        let (status, a) = post(
            &base,
            &authority.sign(Kind::OrgRegister, org_body(&format!("s-{i}"))),
        );
        assert_eq!(status, 201, "{a}");
        std::thread::sleep(Duration::from_millis(700));
    }
    terminate(server);
    // reindex makes the index anew.
    run(&with_key("reindex")
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());

    let paths = walk(&data);
    assert!(paths.len() > 5, "{paths:?}");
    let loose: Vec<String> = paths
        .iter()
        .filter_map(|path| {
            let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            (mode & 0o077 != 0).then(|| format!("{} {mode:o}", path.display()))
        })
        .collect();
    assert!(loose.is_empty(), "group or other may use: {loose:#?}");
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn a_copy_of_the_data_directory_cannot_sign_without_the_key() {
    let (dir, data, mut authority) = close(TestLedger::new());
    let backup = dir.path().join("backup");
    copy_dir(&data, &backup);
    assert!(
        walk(&backup)
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".pem")),
        "no key file in a data directory"
    );
    let checkpoint = || run_ok(&["checkpoint", "--data", path_str(&backup)]).stdout;
    let before = checkpoint();
    let input = dir.path().join("in.ndjson");
    write_ndjson(
        &input,
        &[authority.sign(Kind::OrgRegister, org_body("copied"))],
    );

    // Writers refuse without the key, saying how to give it, and write nothing.
    for args in [
        vec!["append", "--data", path_str(&backup), path_str(&input)],
        vec![
            "serve",
            "--data",
            path_str(&backup),
            "--listen",
            "127.0.0.1:0",
        ],
        vec!["reindex", "--data", path_str(&backup)],
    ] {
        let mut command = bin();
        command.args(&args);
        let out = output_within(command, AT_ONCE);
        assert!(
            !out.status.success(),
            "{args:?} succeeded without the log key"
        );
        let err = stderr(&out);
        assert!(
            err.contains("--log-key FILE") && err.contains("[log] key"),
            "{err}"
        );
        assert_eq!(checkpoint(), before, "{args:?} wrote something");
    }
    // Another key is refused too.
    let other = dir.path().join("other.pem");
    dcledger::keys::write_signing_key(&other, &key(77)).unwrap();
    let out = bin()
        .args([
            "append",
            "--data",
            path_str(&backup),
            "--log-key",
            path_str(&other),
        ])
        .arg(&input)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not the checkpoint key fixed at genesis"),
        "{}",
        stderr(&out)
    );
    assert_eq!(checkpoint(), before);

    // Reading needs no key.
    assert!(stdout(&run_ok(&["verify", "--data", path_str(&backup)])).starts_with("ok:"));
    run_ok(&["get", "--data", path_str(&backup), "0"]);
    run_ok(&["verifier-key", "--data", path_str(&backup)]);

    // With its key (here through the configuration, relative to the file), it writes.
    let config_dir = dir.path().join("etc");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::copy(log_key_file(&data), config_dir.join("log.pem")).unwrap();
    std::fs::write(
        config_dir.join("dcledger.toml"),
        "[log]\nkey = \"log.pem\"\n",
    )
    .unwrap();
    let out = run_ok(&[
        "append",
        "--data",
        path_str(&backup),
        "--config",
        path_str(&config_dir.join("dcledger.toml")),
        path_str(&input),
    ]);
    assert!(
        stdout(&out).starts_with("accepted 1 entries"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    // Without derived state, the log's readers still answer from the files; a reader
    // of the projections opening the ledger under its lock cannot catch derived state up
    // (that signs a checkpoint): it says so, and a writer with the key recovers it.
    std::fs::remove_dir_all(backup.join("index")).unwrap();
    assert!(stdout(&run_ok(&["verify", "--data", path_str(&backup)])).starts_with("ok:"));
    let out = bin()
        .args(["audit", "--data", path_str(&backup)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("open it once with its log key"),
        "{}",
        stderr(&out)
    );
    run_ok(&[
        "reindex",
        "--data",
        path_str(&backup),
        "--log-key",
        path_str(&config_dir.join("log.pem")),
    ]);
    assert!(stdout(&run_ok(&["verify", "--data", path_str(&backup)])).starts_with("ok:"));
}

#[test]
fn an_older_ledger_with_its_key_inside_is_still_read_with_a_warning() {
    let (dir, data, mut authority) = close(TestLedger::new());
    std::fs::rename(log_key_file(&data), data.join("log-key.pem")).unwrap();
    let input = dir.path().join("in.ndjson");
    write_ndjson(
        &input,
        &[authority.sign(Kind::OrgRegister, org_body("old"))],
    );
    let out = run_ok(&["append", "--data", path_str(&data), path_str(&input)]);
    assert!(
        stdout(&out).starts_with("accepted 1 entries"),
        "{}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("warning")
            && err.contains("log-key.pem")
            && err.contains("inside the data directory"),
        "{err}"
    );
}
