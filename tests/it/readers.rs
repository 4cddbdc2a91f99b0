//! Readers that need no lock (PROTOCOL §11): every reading command answers, and answers the
//! same, while `serve` runs on the same directory, and as an unprivileged user on a copy
//! of the data directory without write bits.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use crate::http::Server;
use crate::support::{bin, copy_dir, path_str};
use crate::worlds::generated_ledger;

/// Every reading command, on the ledger in `data`.
fn reading_commands(data: &str) -> Vec<Vec<String>> {
    let commands: Vec<Vec<&str>> = vec![
        vec!["checkpoint", "--data", data],
        vec!["get", "--data", data, "7"],
        vec!["verifier-key", "--data", data],
        vec!["proof", "inclusion", "--data", data, "5"],
        vec![
            "proof",
            "consistency",
            "--data",
            data,
            "--from",
            "3",
            "--to",
            "40",
        ],
        vec!["verify", "--data", data],
        vec!["audit", "--data", data, "--format", "json"],
        vec!["report", "regions", "--data", data, "--format", "json"],
        vec![
            "report",
            "valuation",
            "--data",
            data,
            "--all",
            "--format",
            "json",
        ],
    ];
    commands
        .into_iter()
        .map(|c| c.into_iter().map(String::from).collect())
        .collect()
}

fn stdout_of(out: &Output, what: &[String]) -> String {
    assert!(
        out.status.success(),
        "dcledger {what:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The answers of every reading command, each run by `run`.
fn answers(data: &Path, run: impl Fn(&[String]) -> Output) -> Vec<String> {
    reading_commands(path_str(data))
        .iter()
        .map(|c| stdout_of(&run(c), c))
        .collect()
}

/// Makes every file and directory under `dir` read-only (r-x for directories).
fn strip_write_bits(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            strip_write_bits(&path);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o555)).unwrap();
        } else {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
}

/// Every file under `dir` with its length and modification time.
fn listing(dir: &Path) -> Vec<(std::path::PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        let meta = std::fs::metadata(&path).expect("metadata");
        if meta.is_dir() {
            out.extend(listing(&path));
        }
        out.push((path, meta.len(), meta.modified().expect("mtime")));
    }
    out.sort();
    out
}

#[test]
fn reading_commands_work_beside_a_server_and_on_a_read_only_copy() {
    let tmp = tempfile::tempdir().unwrap();
    // Traversable by the unprivileged user the copy is read as.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = generated_ledger(tmp.path(), 8, 18, 9);

    // Alone: the reference answers.
    let alone = answers(&data, |c| bin().args(c).output().expect("run"));

    // Beside `serve` on the same directory: the same answers, none refused for the lock.
    let server = Server::start(&data, &tmp.path().join("server.log"));
    let beside = answers(&data, |c| bin().args(c).output().expect("run"));
    for ((command, a), b) in reading_commands(path_str(&data))
        .iter()
        .zip(&alone)
        .zip(&beside)
    {
        assert_eq!(a, b, "dcledger {command:?} beside a server");
    }
    // The projections were derived again, and the command said why.
    let audit = bin()
        .args(["audit", "--data", path_str(&data)])
        .output()
        .expect("run");
    let said = String::from_utf8_lossy(&audit.stderr);
    assert!(
        said.contains("not opened under its lock") && said.contains("being written by process"),
        "{said}"
    );
    // A copy taken while it serves is a backup like any other.
    let copy = tmp.path().join("copy");
    copy_dir(&data, &copy);
    drop(server);

    // On the copy without write bits, as a user who owns nothing there (root ignores
    // the bits, so as root the commands run as `nobody`).
    let root = rustix::process::geteuid().is_root();
    if root {
        let status = std::process::Command::new("chown")
            .args(["-R", "65534:65534", path_str(&copy)])
            .status()
            .expect("chown");
        assert!(status.success());
    }
    strip_write_bits(&copy);
    let before = listing(&copy);
    if root {
        // The copy is out of reach of the unprivileged user's writes.
        let touch = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
                "touch",
            ])
            .arg(copy.join("probe"))
            .status()
            .expect("touch");
        assert!(!touch.success(), "nobody can write into the copy");
    }
    let read_only = answers(&copy, |c| {
        if root {
            std::process::Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(env!("CARGO_BIN_EXE_dcledger"))
                .args(c)
                .env("TMPDIR", "/tmp")
                .output()
                .expect("run through setpriv")
        } else {
            bin().args(c).output().expect("run")
        }
    });
    let on_copy = reading_commands(path_str(&copy));
    for ((command, a), b) in on_copy.iter().zip(&alone).zip(&read_only) {
        // The answers name no path, so the copy's are the original's.
        assert_eq!(a, b, "dcledger {command:?} on a read-only copy");
    }
    // Nothing in the copy changed.
    assert_eq!(listing(&copy), before, "the read-only copy changed");
}
