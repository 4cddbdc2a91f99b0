//! `dcledger append` given input made to exhaust it: whatever the input, the lines and
//! batches it holds are bounded by their bytes (`limits::MAX_LINE_BYTES`,
//! `limits::MAX_BATCH_LINE_BYTES`), not only by their count.

use std::io::Write;
use std::process::Stdio;

use dcledger::entry::Kind;
use dcledger::ledger::Ledger;
use dcledger::limits::{MAX_BATCH_LINE_BYTES, MAX_LINE_BYTES};
use serde_json::json;

use crate::http::close;
use crate::support::{TestLedger, bin, log_key_file, path_str, rss_bytes};

const MIB: usize = 1024 * 1024;

/// A line of 256 MiB with no end, streamed into `append` on its standard input: refused
/// as too long, naming its line and the limit, while the process stays within a few
/// megabytes of its size before (reading the line whole would hold all of it, and more).
#[test]
fn an_endless_line_is_refused_without_being_held() {
    let (_dir, data, _) = close(TestLedger::new());
    let before = Ledger::open_to_read(&data).expect("open").size();
    let mut child = bin()
        .args(["append", "--data", path_str(&data)])
        .args(["--log-key", path_str(&log_key_file(&data)), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dcledger append");
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("stdin");
    let chunk = vec![b'a'; MIB];
    let mut peak = 0;
    for written in 0..256 {
        stdin.write_all(&chunk).expect("append reads its input");
        if written % 8 == 0 {
            peak = peak.max(rss_bytes(pid));
        }
    }
    peak = peak.max(rss_bytes(pid));
    stdin.write_all(b"\n").expect("the line's end");
    drop(stdin);
    let out = child.wait_with_output().expect("append ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "refused: {stderr}");
    assert!(
        stderr.contains("line 1: refused")
            && stderr.contains(&format!("longer than {MAX_LINE_BYTES} bytes")),
        "{stderr}"
    );
    assert!(
        peak < 64 * MIB as u64,
        "append held {} MiB while reading one endless line",
        peak / MIB as u64
    );
    assert_eq!(Ledger::open_to_read(&data).expect("open").size(), before);
}

/// Envelopes of about 30 KB each (padded with the spaces JSON allows between tokens):
/// a batch ends once its lines reach `MAX_BATCH_LINE_BYTES`, long before 1,000 of them.
/// A line that is not JSON, after that point, refuses its own batch only: the batch
/// before it, cut by its bytes, is in the ledger.
#[test]
fn a_batch_ends_at_its_bytes_before_its_count() {
    let mut t = TestLedger::new();
    let lines: Vec<String> = (0..200)
        .map(|i| {
            let envelope = t.authority.sign(
                Kind::OrgRegister,
                json!({"org_id": format!("bulky-{i:03}"), "name": "Bulky Ltd", "roles": ["operator"]}),
            );
            let text = envelope.to_string();
            let padded = format!("{} {}}}", &text[..text.len() - 1], " ".repeat(30_000));
            assert_eq!(padded.len(), text.len() + 30_001);
            padded
        })
        .collect();
    // The first batch is the shortest run of lines whose bytes reach the limit.
    let mut bytes = 0;
    let first_batch = lines
        .iter()
        .position(|line| {
            bytes += line.len();
            bytes >= MAX_BATCH_LINE_BYTES
        })
        .expect("the lines reach the limit")
        + 1;
    let refused_line = first_batch + 20;
    assert!(refused_line < lines.len() && first_batch < 1_000);
    let mut input = lines;
    input[refused_line - 1] = "not an envelope".into();
    let (dir, data, _) = close(t);
    let before = Ledger::open_to_read(&data).expect("open").size();
    let file = dir.path().join("bulky.ndjson");
    std::fs::write(&file, input.join("\n") + "\n").expect("input");

    let out = bin()
        .args(["append", "--data", path_str(&data)])
        .args(["--log-key", path_str(&log_key_file(&data)), path_str(&file)])
        .output()
        .expect("dcledger append");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "refused: {stderr}");
    assert!(
        stderr.contains(&format!("line {refused_line}: refused")),
        "{stderr}"
    );
    assert_eq!(
        Ledger::open_to_read(&data).expect("open").size(),
        before + first_batch as u64,
        "the batch cut by its bytes is in the ledger, the one holding the bad line is not"
    );
}
