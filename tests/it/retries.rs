//! Retries are safe (PROTOCOL §3): an envelope identical to one already in the ledger (the
//! same entry and signature) is answered with the index it has and written nowhere, 200
//! when a whole submission was there already; a submission mixing envelopes already
//! present with new ones is refused (409) naming the first present one. So a client that
//! lost an answer, or got a 503, resubmits and learns what was written: shown here by
//! killing a real server after its batch reached the segment file but before it
//! answered, by filling the disk under it, and by killing `dcledger append` mid-run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dcledger::entry::{self, Kind};
use dcledger::jcs;
use dcledger::ledger::{Appended, Ledger};
use dcledger::reject::RejectClass;
use serde_json::{Value, json};

use crate::http::{Answer, Server, answer, close, get, new_agent, problem};
use crate::support::{Party, TestLedger, bin, copy_dir, log_key, log_key_file, path_str, stdout};

const TS: &str = "2025-01-01T00:00:00Z";

fn org_body(org_id: &str) -> Value {
    json!({"org_id": org_id, "name": format!("{org_id} Ltd"), "roles": ["operator"]})
}

fn post(server: &Server, body: &Value) -> Answer {
    try_post(server, body).unwrap_or_else(|e| panic!("POST /v1/entries: {e}"))
}

fn try_post(server: &Server, body: &Value) -> Result<Answer, ureq::Error> {
    answer(
        new_agent()
            .post(server.url("/v1/entries"))
            .header("content-type", "application/json")
            .send(body.to_string().as_bytes()),
    )
}

/// The server's tree size, from its checkpoint.
fn size(server: &Server) -> u64 {
    let note = get(&new_agent(), &server.url("/v1/checkpoint")).text;
    note.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("no size in {note}"))
}

/// Bytes in the segment files: what "written nowhere" is measured by.
fn segment_bytes(data: &Path) -> u64 {
    std::fs::read_dir(data.join("segments"))
        .expect("segments")
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum()
}

/// The envelope stored at `index`, as the server serves it.
fn stored_envelope(server: &Server, index: u64) -> Value {
    let e = get(&new_agent(), &server.url(&format!("/v1/entries/{index}"))).expect(200);
    json!({"entry": e["leaf"]["entry"], "sig": e["leaf"]["sig"]})
}

#[test]
fn the_same_envelope_twice_is_answered_with_its_index_and_written_once() {
    let mut t = TestLedger::new();
    let registrar = Party::new(30);
    t.onboard("registrar", &["authority"], &registrar);
    let (dir, data, mut authority) = close(t);
    let server = Server::start(&data, &dir.path().join("server.log"));

    // One envelope: 201, then 200 with the same index, leaf hash and checkpoint.
    let e = authority.sign(Kind::OrgRegister, org_body("acme"));
    let first = post(&server, &e).expect(201);
    let (n, bytes) = (size(&server), segment_bytes(&data));
    let again = post(&server, &e);
    assert!(
        again.content_type.starts_with("application/json"),
        "{again:?}"
    );
    let again = again.expect(200);
    assert_eq!(again, first, "a retry is answered like the first time");
    assert_eq!((size(&server), segment_bytes(&data)), (n, bytes));
    assert_eq!(
        stored_envelope(&server, first["index"].as_u64().unwrap()),
        e
    );
    // Entry 0, the genesis, too.
    let genesis = stored_envelope(&server, 0);
    assert_eq!(post(&server, &genesis).expect(200)["index"], 0);
    // The same envelope in an array: the array shape.
    let as_array = post(&server, &json!([e])).expect(200);
    assert_eq!(
        as_array["entries"],
        json!([{"index": first["index"], "leaf_hash": first["leaf_hash"]}])
    );
    assert_eq!(as_array["checkpoint"], first["checkpoint"]);

    // A batch: 201, then 200 with the same entries.
    let f = authority.sign(Kind::OrgRegister, org_body("f-co"));
    let g = authority.sign(Kind::OrgRegister, org_body("g-co"));
    let batch = post(&server, &json!([f, g])).expect(201);
    let (n, bytes) = (size(&server), segment_bytes(&data));
    let again = post(&server, &json!([f, g])).expect(200);
    assert_eq!(again, batch);
    assert_eq!((size(&server), segment_bytes(&data)), (n, bytes));
    // Entries of different batches, in another order: still a retry.
    let mixed_order = post(&server, &json!([g, e])).expect(200);
    assert_eq!(mixed_order["entries"][0], batch["entries"][1]);
    assert_eq!(mixed_order["entries"][1]["index"], first["index"]);

    // Present and new in one submission: 409 naming the first present one (its
    // position and its index); nothing written, nothing consumed.
    let h = authority.sign(Kind::OrgRegister, org_body("h-co"));
    let g_index = batch["entries"][1]["index"].as_u64().unwrap();
    for (submission, position, index) in [
        (json!([g, h]), 0, g_index),
        (json!([h, g, f]), 1, g_index),
        (json!([h, e]), 1, first["index"].as_u64().unwrap()),
    ] {
        let p = problem(&post(&server, &submission), 409, "conflict");
        assert_eq!(p["errors"][0]["path"], format!("/{position}/entry"), "{p}");
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("already in the ledger, at index {index}")),
            "{p}"
        );
        assert_eq!((size(&server), segment_bytes(&data)), (n, bytes));
    }
    let h_answer = post(&server, &h).expect(201);
    assert_eq!(h_answer["index"], n);

    // A replay is not a retry: the same seq with another entry is refused (409 seq).
    let seq = e["entry"]["seq"].as_u64().unwrap();
    let replay = authority.sign_with(Kind::OrgRegister, seq, TS, org_body("not-acme"));
    let p = problem(&post(&server, &replay), 409, "conflict");
    assert_eq!(p["expected_seq"], authority.next_seq, "{p}");
    // Nor is the same entry with another valid signature of it: there is none (Ed25519
    // is deterministic), but a forged one is 403, whatever the entry.
    let mut forged = e.clone();
    forged["sig"] = json!("0".repeat(128));
    problem(&post(&server, &forged), 403, "forbidden");

    // A key revoked since its entry was accepted: the entry is still in the ledger, so
    // its retry is answered 200; a new entry of that key is refused as before.
    let by_registrar = registrar.sign_with(Kind::OrgRegister, 1, TS, org_body("r-co"));
    let accepted = post(&server, &by_registrar).expect(201);
    post(
        &server,
        &authority.sign(
            Kind::KeyRevoke,
            json!({"public_key": registrar.public_hex(), "reason": "left"}),
        ),
    )
    .expect(201);
    let retried = post(&server, &by_registrar).expect(200);
    assert_eq!(retried["index"], accepted["index"]);
    let after = registrar.sign_with(Kind::OrgRegister, 2, TS, org_body("r2-co"));
    problem(&post(&server, &after), 403, "forbidden");
}

/// Many clients sending one new envelope at once (as a client whose answer is late
/// might): it is written once, one answer is 201 and every other 200 with its index,
/// whether the copies met in one group commit or in several.
#[test]
fn concurrent_copies_of_one_envelope_are_written_once() {
    let (dir, data, mut authority) = close(TestLedger::new());
    let server = Server::start(&data, &dir.path().join("server.log"));
    for round in 0..5 {
        let e = authority.sign(Kind::OrgRegister, org_body(&format!("copy-{round}")));
        let before = size(&server);
        let answers: Vec<Answer> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| post(&server, &e))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "round {round}: {statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 201 || *s == 200),
            "{statuses:?}"
        );
        for a in &answers {
            assert_eq!(a.json()["index"], before, "round {round}: {}", a.text);
        }
        assert_eq!(size(&server), before + 1);
    }
}

/// The same through the library, where one group commit is certain: a batch repeating a
/// batch admitted earlier in the same group is a retry of it; an envelope twice in one
/// batch is a replay (the ledger did not hold it when the batch came).
#[test]
fn a_retry_in_the_same_group_commit_and_a_copy_in_the_same_batch() {
    let mut t = TestLedger::new();
    let e = t.authority.sign(Kind::OrgRegister, org_body("acme"));
    let f = t.authority.sign(Kind::OrgRegister, org_body("f-co"));
    let base = t.ledger.size();
    let (outcomes, _) = t
        .ledger
        .append_groups(vec![
            vec![e.clone(), f.clone()],
            vec![f.clone()],
            vec![e.clone()],
        ])
        .expect("storage");
    let new = outcomes[0].as_ref().expect("accepted");
    assert!(new.iter().all(|a| !a.already_present));
    assert_eq!(
        outcomes[1].as_ref().expect("a retry"),
        &vec![Appended {
            already_present: true,
            ..new[1].clone()
        }]
    );
    assert_eq!(outcomes[2].as_ref().expect("a retry")[0].index, base);
    assert_eq!(t.ledger.size(), base + 2);

    let g = t.authority.sign(Kind::OrgRegister, org_body("g-co"));
    let refused = t
        .ledger
        .append_batch(vec![g.clone(), g.clone()])
        .expect("storage")
        .expect_err("the same envelope twice in one batch");
    assert_eq!(refused.position, 1);
    assert_eq!(refused.rejection.class, RejectClass::Conflict);
    assert_eq!(refused.rejection.errors[0].path, "/entry/seq");
    assert_eq!(t.ledger.size(), base + 2);
}

/// Any seq of a long-lived signer is found, however its entries are spread over the
/// ledger (seq anchors every 64 entries, postings in chunks of 4,096 indexes), and after
/// a reindex as before it.
#[test]
fn retries_are_recognised_at_every_seq_of_a_long_signer() {
    let mut t = TestLedger::new();
    let mut other = Party::new(31);
    t.onboard("other", &["authority"], &other);
    // The authority's seqs interleaved with another signer's, in batches of 500.
    let mut mine = Vec::new();
    for batch in 0..10 {
        let mut envelopes = Vec::new();
        for i in 0..500 {
            let n = batch * 500 + i;
            let env = if n % 3 == 0 {
                other.sign(Kind::OrgRegister, org_body(&format!("o-{n}")))
            } else {
                let env = t
                    .authority
                    .sign(Kind::OrgRegister, org_body(&format!("a-{n}")));
                mine.push(env.clone());
                env
            };
            envelopes.push(env);
        }
        t.accept(envelopes);
    }
    assert!(
        t.ledger.size() > 4_096 + 64,
        "the ledger spans two postings chunks"
    );
    // `mine[k]` has seq k + 4 (genesis and the onboarding came first): seqs 4, 5, the
    // last of the first anchor's span (64) and the first of the next (65), …
    let picks: Vec<usize> = vec![0, 1, 60, 61, 62, 124, 125, 2_000, mine.len() - 1];
    let check = |ledger: &mut Ledger, what: &str| {
        let size = ledger.size();
        for &k in &picks {
            let env = &mine[k];
            let receipt = ledger
                .append_batch(vec![env.clone()])
                .expect("storage")
                .unwrap_or_else(|r| panic!("{what}: seq {}: refused: {r}", env["entry"]["seq"]));
            let found = &receipt.entries[0];
            assert!(found.already_present, "{what}: {found:?}");
            let leaf: Value =
                serde_json::from_slice(&ledger.reader().entry(found.index).unwrap().leaf).unwrap();
            assert_eq!(leaf["entry"], env["entry"], "{what}: index {}", found.index);
        }
        assert_eq!(ledger.size(), size, "{what}: a retry wrote something");
    };
    check(&mut t.ledger, "as appended");
    let data = t.data();
    let TestLedger { dir, ledger, .. } = t;
    ledger.close().unwrap();
    let mut rebuilt = Ledger::reindex(&data, log_key()).expect("reindex");
    check(&mut rebuilt, "after reindex");
    rebuilt.close().unwrap();
    drop(dir);
}

// ---------------------------------------------------------------------------------------
// After a failure: a lost answer, a full disk, a killed `append`.

/// Length, flags and index before each leaf in a segment, its BLAKE3 after it (PROTOCOL §12,
/// `log::segment`).
const RECORD_OVERHEAD: u64 = 4 + 1 + 8 + 32;

/// The bytes `envelopes` take in a segment file (`accepted` is always 20 characters).
fn record_bytes(envelopes: &[Value]) -> u64 {
    envelopes
        .iter()
        .map(|e| {
            let entry_jcs = jcs::canonical(&e["entry"]).expect("canonical");
            let sig = e["sig"].as_str().expect("sig");
            RECORD_OVERHEAD + entry::leaf_bytes(TS, &entry_jcs, sig).len() as u64
        })
        .sum()
}

fn segment_file(data: &Path) -> PathBuf {
    data.join("segments").join(format!("{:020}.seg", 0))
}

/// The server is killed (SIGKILL) once its batch is in the segment file, before its
/// answer arrives; restarted, it answers the resubmitted batch 200 with the indexes it
/// was written at, and a second resubmission the same. Rounds repeat until an answer was
/// lost in between at least once.
#[test]
fn a_batch_resubmitted_after_a_lost_answer_is_answered_with_its_indexes() {
    const BATCH: usize = 1_000;
    let (dir, data, mut authority) = close(TestLedger::new());
    let log = dir.path().join("server.log");
    let mut lost = 0;
    for round in 0..12 {
        if lost >= 2 {
            break;
        }
        let batch: Vec<Value> = (0..BATCH)
            .map(|i| authority.sign(Kind::OrgRegister, org_body(&format!("r{round}-{i}"))))
            .collect();
        let body = Value::Array(batch.clone());
        let server = Server::start(&data, &log);
        let base = size(&server);
        let file = segment_file(&data);
        let start_len = std::fs::metadata(&file).unwrap().len();
        let full = start_len + record_bytes(&batch);
        let answered = std::thread::scope(|s| {
            let client = s.spawn(|| try_post(&server, &body));
            let deadline = Instant::now() + Duration::from_secs(60);
            while std::fs::metadata(&file).unwrap().len() < full {
                assert!(
                    Instant::now() < deadline,
                    "round {round}: the batch never landed"
                );
                std::hint::spin_loop();
            }
            server.kill();
            client.join().unwrap()
        });
        let was_answered = matches!(&answered, Ok(a) if a.status == 201);
        if !was_answered {
            lost += 1;
        }
        let server = Server::start(&data, &log);
        assert_eq!(
            size(&server),
            base + BATCH as u64,
            "round {round}: the batch is on disk"
        );
        let retry = post(&server, &body).expect(200);
        let indexes: Vec<u64> = retry["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["index"].as_u64().unwrap())
            .collect();
        assert_eq!(
            indexes,
            (base..base + BATCH as u64).collect::<Vec<_>>(),
            "round {round}"
        );
        for i in [0, BATCH / 2, BATCH - 1] {
            assert_eq!(
                stored_envelope(&server, indexes[i]),
                batch[i],
                "round {round}"
            );
        }
        if let Ok(a) = &answered
            && a.status == 201
        {
            assert_eq!(a.json()["entries"], retry["entries"], "round {round}");
        }
        assert_eq!(
            post(&server, &body).expect(200)["entries"],
            retry["entries"]
        );
        assert_eq!(
            size(&server),
            base + BATCH as u64,
            "round {round}: written twice"
        );
        eprintln!(
            "round {round}: answer {}",
            if was_answered { "arrived" } else { "lost" }
        );
    }
    assert!(lost > 0, "no kill landed between the write and the answer");
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` where this process may not mount (CI runs as root and can).
    fn mount(at: &Path, bytes: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A disk that fills under the server: the batch that meets it is answered 503 and the
/// writer stops; restarted with room again, the ledger answers the resubmitted batch
/// with what happened to it (here: not written, so 201 now, and 200 after that).
#[test]
fn a_batch_resubmitted_after_a_full_disk_tells_what_was_written() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&tmp.path().join("disk"), 8 << 20) else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let data = disk.0.join("data");
    let mut t = TestLedger::new();
    // The ledger moves onto the small disk; its key stays outside it.
    let origin_data = t.data();
    let org = t.authority.sign(Kind::OrgRegister, org_body("acme"));
    t.accept(vec![org]);
    let (keep, _, mut authority) = close(t);
    copy_dir(&origin_data, &data);
    std::fs::copy(log_key_file(&origin_data), log_key_file(&data)).unwrap();
    let log = tmp.path().join("server.log");
    let server = Server::start(&data, &log);
    let base = size(&server);

    // Fill the disk but for a little room, less than the batch needs.
    let batch: Vec<Value> = (0..1_000)
        .map(|i| authority.sign(Kind::OrgRegister, org_body(&format!("full-{i}"))))
        .collect();
    let need = record_bytes(&batch);
    let filler = disk.0.join("filler");
    fill(&filler, &disk.0, need / 4);
    let body = Value::Array(batch.clone());
    let a = try_post(&server, &body);
    match &a {
        Ok(a) => assert_eq!(a.status, 503, "{}", a.text),
        Err(e) => panic!("the server must answer a storage failure: {e}"),
    }
    // Stopped: every later write is 503 too, until a restart.
    let one = authority.sign(Kind::OrgRegister, org_body("after-full"));
    assert_eq!(try_post(&server, &one).unwrap().status, 503);
    server.kill();

    std::fs::remove_file(&filler).unwrap();
    let server = Server::start(&data, &log);
    assert_eq!(size(&server), base, "the failed batch left nothing");
    let first = post(&server, &body).expect(201);
    let again = post(&server, &body).expect(200);
    assert_eq!(first["entries"], again["entries"]);
    assert_eq!(first["entries"][0]["index"], base);
    assert_eq!(size(&server), base + 1_000);
    drop(server);
    drop(keep);
}

/// Writes `path` until the file system holding `dir` has about `room` bytes left.
fn fill(path: &Path, dir: &Path, room: u64) {
    use std::io::Write;
    let free = || {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(dir)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse::<u64>().ok())
            .expect("df prints the free bytes")
    };
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    let mut left = free().saturating_sub(room);
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    file.sync_all().unwrap();
}

/// `dcledger append` killed after its first durable batch, then run again on the same
/// file: the batches already written are reported as present, the rest appended, and
/// the ledger holds every line once.
#[test]
fn an_append_killed_mid_run_is_finished_by_running_it_again() {
    let (dir, data, mut authority) = close(TestLedger::new());
    let lines: Vec<String> = (0..3_500)
        .map(|i| {
            authority
                .sign(Kind::OrgRegister, org_body(&format!("k-{i}")))
                .to_string()
        })
        .collect();
    let input = dir.path().join("input.ndjson");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let append = || {
        let mut c = bin();
        c.args(["append", "--data", path_str(&data)])
            .args(["--log-key", path_str(&log_key_file(&data))])
            .args(["--report-batches", path_str(&input)]);
        c
    };
    let mut child = append()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut acks = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = acks.next().expect("an acknowledgement").unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let first: Value = serde_json::from_str(&first).expect("JSON acknowledgement");
    assert!(first["accepted"].as_u64().unwrap() >= 1_000, "{first}");

    let rerun = append().output().unwrap();
    assert!(
        rerun.status.success(),
        "{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    let out = stdout(&rerun);
    let counts: Vec<u64> = out
        .lines()
        .next()
        .unwrap()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(counts.len(), 2, "{out}");
    assert_eq!(counts[0] + counts[1], 3_500, "{out}");
    // Whole batches of 1,000 were present, or everything (the last batch holds 500).
    assert!(
        counts[1] >= 1_000 && (counts[1].is_multiple_of(1_000) || counts[1] == 3_500),
        "{out}"
    );
    let ledger = Ledger::open_to_read(&data).unwrap();
    assert_eq!(
        ledger.size(),
        1 + 3_500,
        "genesis and every line once: {out}"
    );
    ledger.close().unwrap();
}
