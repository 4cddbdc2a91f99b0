//! The HTTP API end to end (PROTOCOL §10, §11): the real `dcledger serve` on a loopback port,
//! driven with ureq. The demo world goes in over HTTP and every proof the server hands out
//! verifies against its signed checkpoints; every refusal has its status and problem JSON
//! and writes nothing; concurrent writers lose nothing and see consistent checkpoints;
//! SIGTERM under load exits cleanly and keeps every acknowledged entry; the OpenAPI file
//! names exactly the routes served; `dcledger submit` works against a live server.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::time::{Duration, Instant};

use dcledger::entry::Kind;
use dcledger::log::checkpoint::{self, Checkpoint, NoteVerifier};
use dcledger::log::merkle;
use dcledger::server::{MAX_BODY_BYTES, ROUTES};
use serde_json::{Value, json};

use crate::support::{
    Party, TestLedger, bin, demo_dir, init_demo_ledger, key, log_key_file, path_str, public_hex,
    run_ok, stdout,
};

/// How long a server may take to print its address.
const STARTUP: Duration = Duration::from_secs(30);
/// No single request may take longer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const TS: &str = "2025-01-01T00:00:00Z";

// ---------------------------------------------------------------------------------------
// A server process, killed and reaped when dropped.

pub(crate) struct Server {
    child: Child,
    base: String,
    vkey: String,
    log: PathBuf,
    /// Standard output after the startup lines (drained to EOF by a thread, so the
    /// server never writes into a closed pipe).
    stdout: Mutex<mpsc::Receiver<String>>,
}

impl Server {
    /// Starts `dcledger serve` on `data`; retries a few times, as a ledger just closed by
    /// another process may still be locked for a moment.
    pub(crate) fn start(data: &Path, log: &Path) -> Server {
        Server::start_with(
            &["serve", "--data", path_str(data), "--listen", "127.0.0.1:0"],
            log,
        )
    }

    /// Starts `dcledger` with `args` (a command that ends up serving). A `serve` given no
    /// `--log-key` is given the test ledger's (`support::log_key_file`).
    pub(crate) fn start_with(args: &[&str], log: &Path) -> Server {
        Server::start_with_env(args, log, &[])
    }

    /// `start_with`, with these environment variables set for the process.
    pub(crate) fn start_with_env(args: &[&str], log: &Path, env: &[(&str, &Path)]) -> Server {
        let key_file = match args {
            ["serve", rest @ ..] if !rest.contains(&"--log-key") => rest
                .iter()
                .position(|a| *a == "--data")
                .and_then(|i| rest.get(i + 1))
                .map(|data| log_key_file(Path::new(data))),
            _ => None,
        };
        let mut args = args.to_vec();
        if let Some(file) = &key_file {
            args.extend(["--log-key", path_str(file)]);
        }
        let args = args.as_slice();
        let mut last = String::new();
        let started = Instant::now();
        for _ in 0..20 {
            if started.elapsed() > STARTUP {
                break;
            }
            match Server::try_start(args, log, env) {
                Ok(server) => return server,
                Err(e) => {
                    last = e;
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        }
        panic!("the server did not start: {last}");
    }

    fn try_start(args: &[&str], log: &Path, env: &[(&str, &Path)]) -> Result<Server, String> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| e.to_string())?;
        let child = bin()
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("spawn: {e}"))?;
        // From here on the guard owns the child: any early return kills it.
        let (tx, rx) = mpsc::channel();
        let mut server = Server {
            child,
            base: String::new(),
            vkey: String::new(),
            log: log.to_path_buf(),
            stdout: Mutex::new(rx),
        };
        let out = server.child.stdout.take().ok_or("no stdout")?;
        // Reads to EOF, i.e. until the server exits, even once no one listens.
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + STARTUP;
        while server.base.is_empty() || server.vkey.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let received = server
                .stdout
                .lock()
                .map_err(|e| e.to_string())?
                .recv_timeout(left);
            match received {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        server.base = url.trim().to_string();
                    } else if let Some(k) = line.strip_prefix("verifier key: ") {
                        server.vkey = k.trim().to_string();
                    }
                }
                Err(e) => return Err(format!("{e:?}; log: {}", server.log_text())),
            }
        }
        assert!(
            server.base.starts_with("http://127.0.0.1:"),
            "{}",
            server.base
        );
        Ok(server)
    }

    /// What the server printed after starting, up to its exit (bounded wait).
    fn remaining_stdout(&self) -> Vec<String> {
        self.remaining_stdout_for(Duration::from_secs(10))
    }

    /// What the server printed after starting, within `wait`.
    fn remaining_stdout_for(&self, wait: Duration) -> Vec<String> {
        let rx = self.stdout.lock().expect("stdout lock");
        let deadline = Instant::now() + wait;
        let mut lines = Vec::new();
        while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            lines.push(line);
        }
        lines
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `dcledger serve` on `data` with the configuration file `config`, logging to
    /// `dir/server.log`.
    pub(crate) fn serve_with_config(dir: &Path, data: &Path, config: &Path) -> Server {
        Server::start_with(
            &[
                "serve",
                "--data",
                path_str(data),
                "--listen",
                "127.0.0.1:0",
                "--config",
                path_str(config),
            ],
            &dir.join("server.log"),
        )
    }

    /// The verifier key it printed: a ledger's, or a witness's.
    pub(crate) fn vkey(&self) -> &str {
        &self.vkey
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's `host:port`.
    pub(crate) fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    fn verifier(&self) -> NoteVerifier {
        NoteVerifier::parse(&self.vkey).expect("the server's verifier key parses")
    }

    /// Sends SIGKILL at once, without waiting (the guard reaps the process when dropped).
    pub(crate) fn kill(&self) {
        let pid = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .expect("a child's pid");
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("SIGKILL");
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit after SIGTERM; log: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Closes a test ledger (only one process may open it) and returns its directory.
pub(crate) fn close(t: TestLedger) -> (tempfile::TempDir, PathBuf, Party) {
    let data = t.data();
    let TestLedger {
        dir,
        ledger,
        authority,
    } = t;
    ledger.close().expect("close the ledger");
    (dir, data, authority)
}

// ---------------------------------------------------------------------------------------
// HTTP helpers.

pub(crate) fn new_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(REQUEST_TIMEOUT))
        .build()
        .into()
}

#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    allow: String,
    /// The `Link` header (a paged CSV answer's next page), or empty.
    pub(crate) link: String,
    pub(crate) text: String,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }

    /// Asserts `status` and returns the JSON body.
    pub(crate) fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        self.json()
    }
}

pub(crate) fn answer(
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Answer, ureq::Error> {
    let mut response = response?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let content_type = header("content-type");
    let allow = header("allow");
    let link = header("link");
    let text = response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_string()?;
    Ok(Answer {
        status,
        content_type,
        allow,
        link,
        text,
    })
}

pub(crate) fn get(agent: &ureq::Agent, url: &str) -> Answer {
    answer(agent.get(url).call()).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

fn try_post(agent: &ureq::Agent, url: &str, body: &[u8]) -> Result<Answer, ureq::Error> {
    answer(
        agent
            .post(url)
            .header("content-type", "application/json")
            .send(body),
    )
}

fn post(agent: &ureq::Agent, url: &str, body: &[u8]) -> Answer {
    try_post(agent, url, body).unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

pub(crate) fn post_json(agent: &ureq::Agent, server: &Server, value: &Value) -> Answer {
    post(
        agent,
        &server.url("/v1/entries"),
        value.to_string().as_bytes(),
    )
}

pub(crate) fn tree_size(agent: &ureq::Agent, server: &Server) -> u64 {
    let health = get(agent, &server.url("/healthz")).expect(200);
    assert_eq!(health["status"], "ok");
    health["tree_size"].as_u64().expect("tree_size")
}

/// Asserts a problem answer: status, content type, `type` ending in `slug`, and fields.
pub(crate) fn problem(a: &Answer, status: u16, slug: &str) -> Value {
    assert_eq!(a.status, status, "{}", a.text);
    assert!(
        a.content_type.starts_with("application/problem+json"),
        "content type {:?} for {}",
        a.content_type,
        a.text
    );
    let p = a.json();
    assert!(
        p["type"].as_str().is_some_and(|t| t.ends_with(slug)),
        "type is not …{slug}: {p}"
    );
    assert_eq!(p["status"], status, "{p}");
    assert!(p["title"].is_string() && p["detail"].is_string(), "{p}");
    p
}

fn error_paths(p: &Value) -> Vec<String> {
    p["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    assert!(e["message"].is_string(), "{e}");
                    e["path"].as_str().expect("path").to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Proof helpers.

fn hash(hex_text: &str) -> [u8; 32] {
    dcledger::keys::parse_lower_hex::<32>(hex_text)
        .unwrap_or_else(|| panic!("not a 32-byte lowercase hex hash: {hex_text:?}"))
}

fn hashes(v: &Value) -> Vec<[u8; 32]> {
    v.as_array()
        .expect("hashes array")
        .iter()
        .map(|h| hash(h.as_str().expect("hex string")))
        .collect()
}

fn open(note: &str, verifier: &NoteVerifier) -> Checkpoint {
    checkpoint::open(note, std::slice::from_ref(verifier))
        .unwrap_or_else(|e| panic!("checkpoint does not verify ({e}): {note}"))
}

/// The leaf hash recomputed from `GET /v1/entries/{i}`'s parsed leaf (JCS of it is the
/// leaf's bytes), checked against the `leaf_hash` the same answer gives.
fn entry_leaf_hash(entry: &Value) -> [u8; 32] {
    let bytes = dcledger::jcs::canonical(&entry["leaf"]).expect("leaf is canonical JSON");
    let recomputed = merkle::leaf_hash(&bytes);
    assert_eq!(
        hex::encode(recomputed),
        entry["leaf_hash"].as_str().expect("leaf_hash"),
        "leaf_hash is not the hash of the leaf"
    );
    recomputed
}

/// Fetches and verifies an inclusion proof of `index` (with leaf hash `leaf`) in `cp`.
fn check_inclusion(
    agent: &ureq::Agent,
    server: &Server,
    index: u64,
    leaf: &[u8; 32],
    cp: &Checkpoint,
) {
    let proof = get(
        agent,
        &server.url(&format!("/v1/proofs/inclusion/{index}?size={}", cp.size)),
    )
    .expect(200);
    assert_eq!(proof["index"], index);
    assert_eq!(proof["tree_size"], cp.size);
    assert_eq!(hash(proof["leaf_hash"].as_str().expect("leaf_hash")), *leaf);
    merkle::verify_inclusion(index, cp.size, leaf, &hashes(&proof["hashes"]), &cp.root)
        .unwrap_or_else(|e| panic!("inclusion of {index} in size {}: {e}", cp.size));
}

/// Fetches and verifies a consistency proof from `old` to `new`.
fn check_consistency(agent: &ureq::Agent, server: &Server, old: &Checkpoint, new: &Checkpoint) {
    let proof = get(
        agent,
        &server.url(&format!(
            "/v1/proofs/consistency?from={}&to={}",
            old.size, new.size
        )),
    )
    .expect(200);
    assert_eq!(
        (proof["from"].as_u64(), proof["to"].as_u64()),
        (Some(old.size), Some(new.size))
    );
    merkle::verify_consistency(
        old.size,
        new.size,
        &old.root,
        &new.root,
        &hashes(&proof["hashes"]),
    )
    .unwrap_or_else(|e| panic!("consistency {} -> {}: {e}", old.size, new.size));
}

fn current_checkpoint(agent: &ureq::Agent, server: &Server) -> Checkpoint {
    let a = get(agent, &server.url("/v1/checkpoint"));
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        a.content_type.starts_with("text/plain"),
        "{}",
        a.content_type
    );
    open(&a.text, &server.verifier())
}

pub(crate) fn org_body(org_id: &str) -> Value {
    json!({"org_id": org_id, "name": format!("{org_id} Ltd"), "roles": ["operator"]})
}

/// Breaks an envelope's signature (still 128 lowercase hex).
fn corrupt_sig(envelope: &mut Value) {
    let sig = envelope["sig"].as_str().expect("sig").to_string();
    let first = if sig.starts_with('0') { "1" } else { "0" };
    envelope["sig"] = json!(format!("{first}{}", &sig[1..]));
}

// ---------------------------------------------------------------------------------------
// 1. The demo world over HTTP; every proof verifies.

#[test]
fn demo_world_submitted_over_http_and_every_proof_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let demo = demo_dir();
    init_demo_ledger(&data);
    let server = Server::start(&data, &tmp.path().join("server.log"));
    let verifier = server.verifier();
    let agent = new_agent();
    assert_eq!(tree_size(&agent, &server), 1, "genesis only");

    // Batches of at most 1,000 envelopes and at most 1 MiB of body.
    let text = std::fs::read_to_string(demo.join("entries.ndjson")).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut batches: Vec<Vec<&str>> = vec![Vec::new()];
    let mut bytes = 2;
    for line in &lines {
        let current = batches.last_mut().unwrap();
        if current.len() == 1000 || bytes + line.len() + 1 > MAX_BODY_BYTES {
            batches.push(Vec::new());
            bytes = 2;
        }
        batches.last_mut().unwrap().push(line);
        bytes += line.len() + 1;
    }
    assert!(batches.len() >= 3, "{} batches", batches.len());

    let started = Instant::now();
    let mut next = 1u64;
    let mut leaf_hashes: BTreeMap<u64, [u8; 32]> = BTreeMap::new();
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    for batch in &batches {
        let body = format!("[{}]", batch.join(","));
        let a = post(&agent, &server.url("/v1/entries"), body.as_bytes());
        assert!(a.content_type.starts_with("application/json"), "{a:?}");
        let receipt = a.expect(201);
        let entries = receipt["entries"].as_array().expect("entries");
        assert_eq!(entries.len(), batch.len());
        for e in entries {
            assert_eq!(e["index"], next, "indices are contiguous");
            leaf_hashes.insert(next, hash(e["leaf_hash"].as_str().unwrap()));
            next += 1;
        }
        let cp = open(
            receipt["checkpoint"].as_str().expect("checkpoint"),
            &verifier,
        );
        assert_eq!(cp.origin, "dcledger.example/synthetic");
        assert_eq!(cp.size, next, "the checkpoint covers the batch");
        checkpoints.push(cp);
    }
    println!(
        "{} entries in {} batches over HTTP in {:?}",
        lines.len(),
        batches.len(),
        started.elapsed()
    );
    let size = 1 + lines.len() as u64;
    assert_eq!(next, size);
    assert_eq!(tree_size(&agent, &server), size);
    let latest = current_checkpoint(&agent, &server);
    assert_eq!(latest.size, size);
    assert_eq!(&latest, checkpoints.last().unwrap());

    // Consistency: each batch's checkpoint with the next and with the latest.
    for pair in checkpoints.windows(2) {
        check_consistency(&agent, &server, &pair[0], &pair[1]);
    }
    for cp in &checkpoints {
        check_consistency(&agent, &server, cp, &latest);
    }

    // Inclusion: a sample of entries, in the latest tree and in the first one holding it.
    let mut sample: BTreeSet<u64> = (0..size).step_by(97).collect();
    sample.extend([1, size - 1, checkpoints[0].size - 1, checkpoints[0].size]);
    for &i in &sample {
        let entry = get(&agent, &server.url(&format!("/v1/entries/{i}"))).expect(200);
        assert_eq!(entry["index"], i);
        let leaf = entry_leaf_hash(&entry);
        if let Some(acked) = leaf_hashes.get(&i) {
            assert_eq!(&leaf, acked, "entry {i} is what was acknowledged");
        }
        check_inclusion(&agent, &server, i, &leaf, &latest);
        let first = checkpoints.iter().find(|c| c.size > i).unwrap();
        check_inclusion(&agent, &server, i, &leaf, first);
    }

    // Findings, and one finding's evidence proven against the checkpoint it comes with.
    let findings = get(&agent, &server.url("/v1/findings")).expect(200);
    assert_eq!(findings["as_of"], "2025-03", "{}", findings["as_of"]);
    let count = findings["count"].as_u64().expect("count");
    assert!(count > 0, "the demo world has findings");
    let list = findings["findings"].as_array().expect("findings");
    assert_eq!(list.len() as u64, count);
    let explicit = get(&agent, &server.url("/v1/findings?as_of=2025-03")).expect(200);
    assert_eq!(explicit["count"], count);
    // Each filter keeps exactly the findings of the whole list that it names, in order.
    let ids =
        |found: &[Value]| -> Vec<String> { found.iter().map(|f| f["id"].to_string()).collect() };
    for field in ["rule", "facility_id", "severity"] {
        let value = list[0][field].as_str().expect("a string field");
        let param = if field == "facility_id" {
            "facility"
        } else {
            field
        };
        let filtered = get(
            &agent,
            &server.url(&format!("/v1/findings?{param}={value}")),
        )
        .expect(200);
        let want: Vec<Value> = list.iter().filter(|f| f[field] == value).cloned().collect();
        let got = filtered["findings"].as_array().expect("findings");
        assert_eq!(ids(got), ids(&want), "{param}={value}");
        assert_eq!(filtered["count"], want.len(), "{param}={value}");
    }
    let chosen = list
        .iter()
        .find(|f| f["evidence"].as_array().is_some_and(|e| e.len() > 1))
        .unwrap_or(&list[0]);
    let id = chosen["id"].as_str().expect("finding id");
    let one = get(&agent, &server.url(&format!("/v1/findings/{id}"))).expect(200);
    assert_eq!(one["finding"]["id"], id);
    let cp = open(one["checkpoint"].as_str().expect("checkpoint"), &verifier);
    assert_eq!(cp.size, size);
    let evidence = one["evidence"].as_array().expect("evidence");
    assert!(!evidence.is_empty(), "{one}");
    for e in evidence {
        let index = e["index"].as_u64().expect("index");
        let leaf = entry_leaf_hash(e);
        assert_eq!(e["proof"]["tree_size"], cp.size);
        merkle::verify_inclusion(
            index,
            cp.size,
            &leaf,
            &hashes(&e["proof"]["hashes"]),
            &cp.root,
        )
        .unwrap_or_else(|err| panic!("evidence {index} of finding {id}: {err}"));
    }
    problem(
        &get(
            &agent,
            &server.url(&format!("/v1/findings/{}", "0".repeat(32))),
        ),
        404,
        "not-found",
    );

    // Facilities: the list and one report.
    let facilities = get(&agent, &server.url("/v1/facilities")).expect(200);
    let facilities = facilities["facilities"].as_array().expect("facilities");
    assert!(!facilities.is_empty());
    for f in [
        facilities[0]["facility_id"].as_str().expect("facility_id"),
        one["finding"]["facility_id"].as_str().expect("facility_id"),
    ] {
        let report = get(&agent, &server.url(&format!("/v1/facilities/{f}"))).expect(200);
        assert!(report.is_object(), "{report}");
    }
}

// ---------------------------------------------------------------------------------------
// 2. Every refusal: its status, problem JSON, and nothing written.

#[test]
fn every_refusal_has_its_status_and_writes_nothing() {
    let mut t = TestLedger::new();
    let operator = Party::new(30);
    t.onboard("acme", &["operator"], &operator);
    let (dir, data, authority) = close(t);
    let server = Server::start(&data, &dir.path().join("server.log"));
    let agent = new_agent();
    let size = tree_size(&agent, &server);
    let seq = authority.next_seq;
    let entries_url = server.url("/v1/entries");

    let unchanged = |what: &str| {
        assert_eq!(
            tree_size(&agent, &server),
            size,
            "{what}: the refusal wrote something"
        );
    };

    // 400: malformed JSON.
    problem(
        &post(&agent, &entries_url, b"{\"entry\": "),
        400,
        "malformed",
    );
    unchanged("malformed JSON");

    // 400: a schema violation names the field.
    let p = problem(
        &post_json(
            &agent,
            &server,
            &authority.sign_with(Kind::OrgRegister, seq, TS, org_body("Not Valid!")),
        ),
        400,
        "invalid",
    );
    assert!(
        error_paths(&p)
            .iter()
            .any(|path| path == "/entry/body/org_id"),
        "{p}"
    );
    unchanged("schema violation");

    // 400: a ts too far ahead.
    let p = problem(
        &post_json(
            &agent,
            &server,
            &authority.sign_with(
                Kind::OrgRegister,
                seq,
                "2099-01-01T00:00:00Z",
                org_body("future"),
            ),
        ),
        400,
        "invalid",
    );
    assert!(
        error_paths(&p).iter().any(|path| path == "/entry/ts"),
        "{p}"
    );
    unchanged("ts ahead");

    // 400: an empty batch.
    problem(&post(&agent, &entries_url, b"[]"), 400, "bad-request");
    unchanged("empty batch");

    // 400: an object that holds a key twice, anywhere in the submission (PROTOCOL §2). The
    // bodies are text, so the repeated key reaches the server as sent; the error is at
    // the object holding it and names the key. Otherwise valid and correctly signed.
    let signed = authority
        .sign_with(Kind::OrgRegister, seq, TS, org_body("twice"))
        .to_string();
    let other = authority
        .sign_with(Kind::OrgRegister, seq, TS, org_body("other"))
        .to_string();
    let repeat = |text: &str, what: &str| {
        let twice = text.replacen(what, &format!("{what},{what}"), 1);
        assert_ne!(twice, text, "{what} is not in {text}");
        twice
    };
    for (body, path, key) in [
        (
            repeat(&signed, r#""org_id":"twice""#),
            "/entry/body",
            "org_id",
        ),
        (repeat(&signed, r#""v":1"#), "/entry", "v"),
        (
            signed.replacen(
                r#""sig":"#,
                &format!(r#""sig":"{}","sig":"#, "0".repeat(128)),
                1,
            ),
            "/",
            "sig",
        ),
        (
            format!("[{other}, {}]", repeat(&signed, r#""roles":["operator"]"#)),
            "/1/entry/body",
            "roles",
        ),
    ] {
        let p = problem(&post(&agent, &entries_url, body.as_bytes()), 400, "invalid");
        assert_eq!(error_paths(&p), [path], "{p}");
        assert!(
            p["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("{key:?} appears twice"))),
            "{p}"
        );
        unchanged(&format!("{key} twice at {path}"));
    }

    // 400: a date before 1970 (year 0000), a control or bidirectional character in free
    // text, a key.grant of a key that can never sign, a facility in province `national`.
    let mut facility = json!({
        "facility_id": "dc-national", "name": "Central DC", "province": "national",
        "city": "Beijing", "lat_e6": 39_900_000, "lon_e6": 116_400_000,
        "planned_it_kw": 1000, "planned_gpus": 100, "land_parcel": "BJ-1",
        "announced": "2024-01-01"
    });
    for (envelope, path) in [
        (
            authority.sign_with(
                Kind::OrgRegister,
                seq,
                "0000-01-01T00:00:00Z",
                org_body("old"),
            ),
            "/entry/ts",
        ),
        (
            authority.sign_with(
                Kind::OrgRegister,
                seq,
                TS,
                json!({"org_id": "bidi", "name": "Acme \u{202e}dtL", "roles": ["operator"]}),
            ),
            "/entry/body/name",
        ),
        (
            authority.sign_with(
                Kind::KeyGrant,
                seq,
                TS,
                json!({"org_id": "acme", "public_key": format!("01{}", "00".repeat(31))}),
            ),
            "/entry/body/public_key",
        ),
        (
            operator.sign_with(Kind::FacilityRegister, 1, TS, facility.clone()),
            "/entry/body/province",
        ),
        (
            {
                facility["province"] = json!("Beijing");
                facility["announced"] = json!("1969-12-31");
                operator.sign_with(Kind::FacilityRegister, 1, TS, facility.clone())
            },
            "/entry/body/announced",
        ),
    ] {
        let p = problem(&post_json(&agent, &server, &envelope), 400, "invalid");
        assert!(error_paths(&p).iter().any(|e| e == path), "{p}");
        unchanged(path);
    }

    // 403: a bad signature.
    let mut forged = authority.sign_with(Kind::OrgRegister, seq, TS, org_body("forged"));
    corrupt_sig(&mut forged);
    problem(&post_json(&agent, &server, &forged), 403, "forbidden");
    unchanged("bad signature");

    // 403: an unknown signer.
    let stranger = Party::new(77);
    problem(
        &post_json(
            &agent,
            &server,
            &stranger.sign_with(Kind::OrgRegister, 1, TS, org_body("stranger")),
        ),
        403,
        "forbidden",
    );
    unchanged("unknown signer");

    // 403: a kind outside the signer's roles.
    problem(
        &post_json(
            &agent,
            &server,
            &operator.sign_with(Kind::OrgRegister, 1, TS, org_body("usurper")),
        ),
        403,
        "forbidden",
    );
    unchanged("kind outside roles");

    // 409: a wrong seq, with the expected one.
    let p = problem(
        &post_json(
            &agent,
            &server,
            &authority.sign_with(Kind::OrgRegister, seq + 5, TS, org_body("skipper")),
        ),
        409,
        "conflict",
    );
    assert_eq!(p["expected_seq"], seq, "{p}");
    unchanged("wrong seq");

    // 409: an id registered twice.
    let p = problem(
        &post_json(
            &agent,
            &server,
            &authority.sign_with(Kind::OrgRegister, seq, TS, org_body("acme")),
        ),
        409,
        "conflict",
    );
    assert!(p.get("expected_seq").is_none(), "{p}");
    unchanged("duplicate id");

    // 409: a key.grant of the ledger's own checkpoint key (the test ledger's log key).
    let p = problem(
        &post_json(
            &agent,
            &server,
            &authority.sign_with(
                Kind::KeyGrant,
                seq,
                TS,
                json!({"org_id": "acme", "public_key": public_hex(&key(2))}),
            ),
        ),
        409,
        "conflict",
    );
    assert!(
        error_paths(&p)
            .iter()
            .any(|path| path == "/entry/body/public_key"),
        "{p}"
    );
    unchanged("the checkpoint key granted");

    // 422: a reference to an unknown organisation.
    problem(
        &post_json(
            &agent,
            &server,
            &authority.sign_with(
                Kind::KeyGrant,
                seq,
                TS,
                json!({"org_id": "nobody", "public_key": stranger.public_hex()}),
            ),
        ),
        422,
        "unknown-reference",
    );
    unchanged("unknown reference");

    // 413: a body over 1 MiB (valid JSON, so only its size is wrong).
    let padding = "x".repeat(MAX_BODY_BYTES + 1024);
    let big = json!({"entry": {}, "sig": "", "padding": padding}).to_string();
    problem(
        &post(&agent, &entries_url, big.as_bytes()),
        413,
        "too-large",
    );
    unchanged("body over 1 MiB");

    // 413: a leaf over 65,535 bytes in a body well under 1 MiB.
    let long_name = json!({"org_id": "verbose", "name": "x".repeat(70_000), "roles": ["operator"]});
    let p = problem(
        &post_json(
            &agent,
            &server,
            &authority.sign_with(Kind::OrgRegister, seq, TS, long_name),
        ),
        413,
        "too-large",
    );
    assert!(error_paths(&p).iter().any(|path| path == "/entry"), "{p}");
    unchanged("leaf over 65,535 bytes");

    // A batch: the error path starts with the refused envelope's position, and the valid
    // envelopes before it are not written either.
    let batch = json!([
        authority.sign_with(Kind::OrgRegister, seq, TS, org_body("batch-a")),
        authority.sign_with(Kind::OrgRegister, seq + 1, TS, org_body("batch-b")),
        authority.sign_with(Kind::OrgRegister, seq + 2, TS, org_body("Batch C")),
    ]);
    let p = problem(&post_json(&agent, &server, &batch), 400, "invalid");
    let paths = error_paths(&p);
    assert!(
        !paths.is_empty() && paths.iter().all(|path| path.starts_with("/2/")),
        "{p}"
    );
    assert!(
        paths.iter().any(|path| path == "/2/entry/body/org_id"),
        "{p}"
    );
    unchanged("batch");
    let mut forged = authority.sign_with(Kind::OrgRegister, seq + 1, TS, org_body("batch-b"));
    corrupt_sig(&mut forged);
    let batch = json!([
        authority.sign_with(Kind::OrgRegister, seq, TS, org_body("batch-a")),
        forged,
    ]);
    let p = problem(&post_json(&agent, &server, &batch), 403, "forbidden");
    assert!(
        error_paths(&p).iter().all(|path| path.starts_with("/1")),
        "{p}"
    );
    unchanged("batch with a bad signature");

    // 404: an index, a size, a key the ledger does not have; a path that is no endpoint.
    problem(
        &get(&agent, &server.url("/v1/entries/999999")),
        404,
        "not-found",
    );
    problem(
        &get(&agent, &server.url(&format!("/v1/entries/{size}"))),
        404,
        "not-found",
    );
    problem(
        &get(&agent, &server.url("/v1/proofs/inclusion/999999")),
        404,
        "not-found",
    );
    problem(
        &get(
            &agent,
            &server.url("/v1/proofs/consistency?from=1&to=999999"),
        ),
        404,
        "not-found",
    );
    problem(
        &get(
            &agent,
            &server.url(&format!("/v1/signers/{}", stranger.public_hex())),
        ),
        404,
        "not-found",
    );
    problem(
        &get(&agent, &server.url("/v1/facilities/no-such-facility")),
        404,
        "not-found",
    );
    let p = problem(
        &get(&agent, &server.url("/v1/nothing/here")),
        404,
        "no-route",
    );
    assert!(
        p["detail"].as_str().unwrap().contains("/v1/nothing/here"),
        "{p}"
    );
    problem(
        &post(&agent, &server.url("/v2/entries"), b"{}"),
        404,
        "no-route",
    );
    // 400: a path parameter that is not UTF-8 once decoded.
    for path in ["/v1/entries/%ff", "/v1/facilities/%ff", "/v1/signers/%ff"] {
        problem(&get(&agent, &server.url(path)), 400, "bad-request");
    }
    // 405: a route asked with a method it does not serve.
    for (method, path) in [("DELETE", "/v1/entries"), ("POST", "/v1/checkpoint")] {
        let url = server.url(path);
        let request = if method == "DELETE" {
            agent.delete(&url).call()
        } else {
            agent.post(&url).send(&b"{}"[..])
        };
        let a = answer(request).expect("answer");
        let p = problem(&a, 405, "method-not-allowed");
        assert!(a.allow.contains("GET"), "allow {:?}: {p}", a.allow);
    }
    unchanged("reads");

    // The authority's chain is undisturbed: its next seq is still accepted.
    let ok = post_json(
        &agent,
        &server,
        &authority.sign_with(Kind::OrgRegister, seq, TS, org_body("after-refusals")),
    )
    .expect(201);
    assert_eq!(ok["index"], size, "{ok}");
    assert!(
        ok["leaf_hash"].is_string() && ok["checkpoint"].is_string(),
        "{ok}"
    );
    assert_eq!(tree_size(&agent, &server), size + 1);

    // Made-up methods and paths fold into one label each: a client cannot grow the
    // label sets.
    let lax: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .allow_non_standard_methods(true)
        .build()
        .into();
    for method in ["BREW", "PROPFIND"] {
        let made_up = ureq::http::Method::from_bytes(method.as_bytes()).expect("a method");
        let request = ureq::http::Request::builder()
            .method(made_up)
            .uri(server.url("/v1/made-up-path-4711"))
            .body(())
            .expect("request");
        let answered = lax.run(request).expect("an answer");
        assert_eq!(answered.status(), 404, "{method}");
    }

    // /metrics counts what just happened, in OpenMetrics text.
    let metrics = get(&agent, &format!("{}/metrics", server.base));
    for unbounded in ["BREW", "PROPFIND", "made-up-path-4711"] {
        assert!(
            !metrics.text.contains(unbounded),
            "{unbounded} became a label:\n{}",
            metrics.text
        );
    }
    assert!(
        metrics.text.contains("method=\"OTHER\",route=\"other\""),
        "{}",
        metrics.text
    );
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .content_type
            .starts_with("application/openmetrics-text"),
        "{}",
        metrics.content_type
    );
    for wanted in [
        "dcledger_entries_accepted_total ",
        "dcledger_rejections_total{reason=\"conflict\"}",
        "dcledger_rejections_total{reason=\"forbidden\"}",
        "dcledger_rejections_total{reason=\"malformed\"}",
        &format!("dcledger_tree_size {}", size + 1),
        "dcledger_batch_entries_bucket{le=\"1.0\"}",
        "dcledger_http_request_duration_seconds_bucket{le=\"0.1\",method=\"POST\",route=\"/v1/entries\"}",
        "dcledger_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\"}",
        "# EOF",
    ] {
        assert!(
            metrics.text.contains(wanted),
            "metrics lack {wanted:?}:\n{}",
            metrics.text
        );
    }
}

// ---------------------------------------------------------------------------------------
// 3. Concurrent writers over HTTP.

const WRITERS: usize = 16;
const ENTRIES_PER_WRITER: usize = 500;

/// One acknowledged entry.
struct Ack {
    index: u64,
    leaf_hash: String,
    writer: usize,
    org_id: String,
}

struct WriterResult {
    acks: Vec<Ack>,
    checkpoints: Vec<String>,
    refused: Vec<String>,
}

fn write_concurrently(
    server: &Server,
    i: usize,
    mut party: Party,
    barrier: &Barrier,
    deadline: Instant,
) -> WriterResult {
    let agent = new_agent();
    let url = server.url("/v1/entries");
    let mut out = WriterResult {
        acks: Vec::new(),
        checkpoints: Vec::new(),
        refused: Vec::new(),
    };
    let mut sent = 0;
    barrier.wait();
    // Bounded: at most one refused submission per 50, each accepted one writes ≥ 1 entry.
    for submission in 1..=2 * ENTRIES_PER_WRITER {
        if sent == ENTRIES_PER_WRITER {
            break;
        }
        assert!(Instant::now() < deadline, "writer {i}: out of time");
        if submission % 50 == 0 {
            if submission % 100 == 50 {
                // A replayed seq, alone: 409 naming the seq this writer is at.
                let id = format!("refused-{i}-{submission}");
                // 49 accepted submissions came before: the writer is past seq 1.
                let stale = party.next_seq - 1;
                let env = party.sign_with(Kind::OrgRegister, stale, TS, org_body(&id));
                let a = post(&agent, &url, env.to_string().as_bytes());
                let p = problem(&a, 409, "conflict");
                assert_eq!(p["expected_seq"], party.next_seq, "{p}");
                out.refused.push(id);
            } else {
                // A good envelope followed by a forged one: the whole batch is refused.
                let a_id = format!("refused-{i}-{submission}-a");
                let b_id = format!("refused-{i}-{submission}-b");
                let good = party.sign_with(Kind::OrgRegister, party.next_seq, TS, org_body(&a_id));
                let mut bad =
                    party.sign_with(Kind::OrgRegister, party.next_seq + 1, TS, org_body(&b_id));
                corrupt_sig(&mut bad);
                let a = post(&agent, &url, json!([good, bad]).to_string().as_bytes());
                let p = problem(&a, 403, "forbidden");
                assert!(
                    error_paths(&p).iter().all(|path| path.starts_with("/1")),
                    "{p}"
                );
                out.refused.extend([a_id, b_id]);
            }
            continue;
        }
        let n = (1 + (submission * 7 + i) % 5).min(ENTRIES_PER_WRITER - sent);
        let ids: Vec<String> = (sent..sent + n).map(|k| format!("w{i}-{k}")).collect();
        let envelopes: Vec<Value> = ids
            .iter()
            .map(|id| party.sign(Kind::OrgRegister, org_body(id)))
            .collect();
        // Single envelopes go both bare and as one-element arrays.
        let single = n == 1 && submission % 2 == 0;
        let body = if single {
            envelopes[0].to_string()
        } else {
            Value::Array(envelopes).to_string()
        };
        let receipt = post(&agent, &url, body.as_bytes()).expect(201);
        let entries = if single {
            vec![receipt.clone()]
        } else {
            receipt["entries"].as_array().expect("entries").clone()
        };
        assert_eq!(entries.len(), n, "{receipt}");
        for (e, id) in entries.iter().zip(ids) {
            out.acks.push(Ack {
                index: e["index"].as_u64().expect("index"),
                leaf_hash: e["leaf_hash"].as_str().expect("leaf_hash").to_string(),
                writer: i,
                org_id: id,
            });
        }
        out.checkpoints.push(
            receipt["checkpoint"]
                .as_str()
                .expect("checkpoint")
                .to_string(),
        );
        sent += n;
    }
    assert_eq!(sent, ENTRIES_PER_WRITER, "writer {i} did not finish");
    out
}

#[test]
fn concurrent_writers_lose_nothing_and_see_consistent_checkpoints() {
    let mut t = TestLedger::new();
    // Each writer signs as its own authority-role organisation: independent seq chains.
    let parties: Vec<Party> = (0..WRITERS).map(|i| Party::new(150 + i as u8)).collect();
    for (i, p) in parties.iter().enumerate() {
        t.onboard(&format!("http-registrar-{i}"), &["authority"], p);
    }
    let (dir, data, _) = close(t);
    let server = Server::start(&data, &dir.path().join("server.log"));
    let verifier = server.verifier();
    let agent = new_agent();
    let base = tree_size(&agent, &server);
    let signers: Vec<String> = parties.iter().map(Party::public_hex).collect();

    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    let barrier = Barrier::new(WRITERS);
    let results: Vec<WriterResult> = std::thread::scope(|s| {
        let handles: Vec<_> = parties
            .into_iter()
            .enumerate()
            .map(|(i, party)| {
                let (server, barrier) = (&server, &barrier);
                s.spawn(move || write_concurrently(server, i, party, barrier, deadline))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect()
    });
    let submit_time = started.elapsed();

    let mut acks: Vec<Ack> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut refused: BTreeSet<String> = BTreeSet::new();
    for r in results {
        acks.extend(r.acks);
        notes.extend(r.checkpoints);
        refused.extend(r.refused);
    }
    assert_eq!(acks.len(), WRITERS * ENTRIES_PER_WRITER);
    assert!(refused.len() >= WRITERS, "{} refused", refused.len());

    // Indices: contiguous from the starting size to the final size, each acknowledged once.
    let size = tree_size(&agent, &server);
    acks.sort_by_key(|a| a.index);
    let indices: Vec<u64> = acks.iter().map(|a| a.index).collect();
    assert_eq!(indices, (base..size).collect::<Vec<u64>>());

    // Each acknowledged entry is the one its writer sent.
    for a in &acks {
        let e = get(&agent, &server.url(&format!("/v1/entries/{}", a.index))).expect(200);
        assert_eq!(e["leaf_hash"], a.leaf_hash.as_str(), "entry {}", a.index);
        assert_eq!(
            e["leaf"]["entry"]["signer"],
            signers[a.writer].as_str(),
            "entry {}",
            a.index
        );
        assert_eq!(
            e["leaf"]["entry"]["body"]["org_id"],
            a.org_id.as_str(),
            "entry {}",
            a.index
        );
    }

    // Per signer: exactly that writer's entries, in seq order, none refused.
    for (i, signer) in signers.iter().enumerate() {
        let page = get(
            &agent,
            &server.url(&format!("/v1/entries?signer={signer}&limit=1000")),
        )
        .expect(200);
        assert!(page["next"].is_null(), "one page holds them");
        let listed: Vec<(u64, String)> = page["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| {
                (
                    e["leaf"]["entry"]["seq"].as_u64().expect("seq"),
                    e["leaf"]["entry"]["body"]["org_id"]
                        .as_str()
                        .expect("org_id")
                        .to_string(),
                )
            })
            .collect();
        let seqs: Vec<u64> = listed.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            seqs,
            (1..=ENTRIES_PER_WRITER as u64).collect::<Vec<_>>(),
            "writer {i}"
        );
        let ids: BTreeSet<String> = listed.into_iter().map(|(_, id)| id).collect();
        let expected: BTreeSet<String> = (0..ENTRIES_PER_WRITER)
            .map(|k| format!("w{i}-{k}"))
            .collect();
        assert_eq!(ids, expected, "writer {i}");
    }

    // All entries, page by page: each index once, no refused org id anywhere.
    let mut after: Option<u64> = None;
    let mut seen: Vec<u64> = Vec::new();
    for _ in 0..=(size / 1000 + 1) {
        let query = after.map_or(String::new(), |a| format!("&after={a}"));
        let page = get(
            &agent,
            &server.url(&format!("/v1/entries?limit=1000{query}")),
        )
        .expect(200);
        for e in page["entries"].as_array().expect("entries") {
            seen.push(e["index"].as_u64().expect("index"));
            if let Some(id) = e["leaf"]["entry"]["body"]["org_id"].as_str() {
                assert!(!refused.contains(id), "refused {id} is in the ledger");
            }
        }
        after = page["next"].as_u64();
        if after.is_none() {
            break;
        }
    }
    assert!(after.is_none(), "paging did not end");
    assert_eq!(seen, (0..size).collect::<Vec<u64>>());

    // Every checkpoint a writer saw is signed and consistent with the final one.
    let latest = current_checkpoint(&agent, &server);
    assert_eq!(latest.size, size);
    let by_size: BTreeMap<u64, Checkpoint> = notes
        .iter()
        .map(|n| {
            let cp = open(n, &verifier);
            (cp.size, cp)
        })
        .collect();
    for cp in by_size.values() {
        check_consistency(&agent, &server, cp, &latest);
    }
    println!(
        "{WRITERS} writers: {} entries acknowledged in {submit_time:?}, {} refused envelopes, {} distinct checkpoints; checked in {:?}",
        acks.len(),
        refused.len(),
        by_size.len(),
        started.elapsed() - submit_time
    );
}

// ---------------------------------------------------------------------------------------
// 4. SIGTERM under load.

const LOADERS: usize = 4;

#[test]
fn sigterm_under_load_exits_cleanly_and_keeps_every_acknowledged_entry() {
    let mut t = TestLedger::new();
    let parties: Vec<Party> = (0..LOADERS).map(|i| Party::new(170 + i as u8)).collect();
    for (i, p) in parties.iter().enumerate() {
        t.onboard(&format!("loader-{i}"), &["authority"], p);
    }
    let (dir, data, _) = close(t);
    let log = dir.path().join("server.log");
    let mut server = Server::start(&data, &log);
    let agent = new_agent();
    let base = tree_size(&agent, &server);
    let signers: Vec<String> = parties.iter().map(Party::public_hex).collect();

    let acked_count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let url = server.url("/v1/entries");
    let deadline = Instant::now() + Duration::from_secs(60);
    let handles: Vec<_> = parties
        .into_iter()
        .enumerate()
        .map(|(i, mut party)| {
            let (url, acked_count, stop) = (url.clone(), acked_count.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent = new_agent();
                let mut acks: Vec<(u64, String, String)> = Vec::new();
                for n in 0..100_000 {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        break;
                    }
                    let env = party.sign_with(
                        Kind::OrgRegister,
                        party.next_seq,
                        TS,
                        org_body(&format!("load-{i}-{n}")),
                    );
                    match try_post(&agent, &url, env.to_string().as_bytes()) {
                        Ok(a) if a.status == 201 => {
                            let r = a.json();
                            acks.push((
                                r["index"].as_u64().expect("index"),
                                r["leaf_hash"].as_str().expect("leaf_hash").to_string(),
                                r["checkpoint"].as_str().expect("checkpoint").to_string(),
                            ));
                            party.next_seq += 1;
                            acked_count.fetch_add(1, Ordering::Relaxed);
                        }
                        // Shutting down: not acknowledged, and this writer stops.
                        Ok(a) if a.status == 503 => break,
                        Ok(a) => panic!("loader {i}: unexpected {} {}", a.status, a.text),
                        Err(_) => break,
                    }
                }
                acks
            })
        })
        .collect();

    // Let the load run for about a second (and at least until something is acknowledged).
    let load_start = Instant::now();
    while load_start.elapsed() < Duration::from_secs(1) || acked_count.load(Ordering::Relaxed) < 10
    {
        assert!(
            load_start.elapsed() < Duration::from_secs(30),
            "no entries acknowledged under load"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = server.terminate();
    stop.store(true, Ordering::Relaxed);
    assert!(
        status.success(),
        "SIGTERM: exit status {status:?}; log: {}",
        server.log_text()
    );
    let printed = server.remaining_stdout();
    assert!(
        printed.iter().any(|l| l == "stopped cleanly"),
        "{printed:?}"
    );
    let acks: Vec<Vec<(u64, String, String)>> = handles
        .into_iter()
        .map(|h| h.join().expect("loader thread"))
        .collect();
    drop(server);
    let total: usize = acks.iter().map(Vec::len).sum();
    assert!(total >= 10, "{total} acknowledged");

    // Restarted on the same data: every acknowledged entry is there, as acknowledged.
    let server = Server::start(&data, &log);
    let verifier = server.verifier();
    let size = tree_size(&agent, &server);
    assert!(
        size >= base + total as u64,
        "size {size} < {base} + {total}"
    );
    let mut indices = BTreeSet::new();
    let mut largest: Option<Checkpoint> = None;
    for (i, loader) in acks.iter().enumerate() {
        for (index, leaf_hash, note) in loader {
            assert!(indices.insert(*index), "index {index} acknowledged twice");
            let e = get(&agent, &server.url(&format!("/v1/entries/{index}"))).expect(200);
            assert_eq!(e["leaf_hash"], leaf_hash.as_str(), "entry {index}");
            assert_eq!(e["leaf"]["entry"]["signer"], signers[i].as_str());
            let cp = open(note, &verifier);
            if largest.as_ref().is_none_or(|l| l.size < cp.size) {
                largest = Some(cp);
            }
        }
    }
    let latest = current_checkpoint(&agent, &server);
    check_consistency(&agent, &server, &largest.expect("a checkpoint"), &latest);
    println!(
        "{total} entries acknowledged before SIGTERM, all present after restart (size {size})"
    );
}

// ---------------------------------------------------------------------------------------
// 5. The OpenAPI description and the router agree.

/// Top-level keys under `paths:`: two spaces of indentation, starting with `/`, ending `:`.
fn openapi_paths(yaml: &str) -> Vec<String> {
    let mut in_paths = false;
    let mut paths = Vec::new();
    for line in yaml.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            in_paths = line.trim_end() == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(rest) = line.strip_prefix("  ")
            && rest.starts_with('/')
            && let Some(path) = rest.trim_end().strip_suffix(':')
        {
            paths.push(path.to_string());
        }
    }
    paths
}

#[test]
fn openapi_paths_are_the_routes_served() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/openapi.yaml");
    let yaml = std::fs::read(&file).unwrap();
    let paths = openapi_paths(std::str::from_utf8(&yaml).unwrap());
    let documented: BTreeSet<&str> = paths.iter().map(String::as_str).collect();
    assert_eq!(documented.len(), paths.len(), "a path is documented twice");
    let routes: BTreeSet<&str> = ROUTES.iter().copied().collect();
    assert_eq!(routes.len(), ROUTES.len(), "a route is listed twice");
    assert_eq!(documented, routes);

    let mut t = TestLedger::new();
    let operator = Party::new(31);
    t.onboard("probe-org", &["operator"], &operator);
    let (dir, data, authority) = close(t);
    let server = Server::start(&data, &dir.path().join("server.log"));
    let agent = new_agent();

    let served = get(&agent, &server.url("/v1/openapi.yaml"));
    assert_eq!(served.status, 200);
    assert!(
        served.text.as_bytes() == yaml.as_slice(),
        "/v1/openapi.yaml differs from the file"
    );

    // Every route answers (a 4xx for a sample parameter is fine), none as an unknown path.
    for route in ROUTES {
        let path = route
            .replace("{index}", "1")
            .replace("{public_key}", &authority.public_hex())
            .replace("{id}", "sample-id");
        let path = if *route == "/v1/proofs/consistency" {
            format!("{path}?from=1&to=2")
        } else {
            path
        };
        let a = get(&agent, &server.url(&path));
        assert!(a.status < 500, "GET {path}: {} {}", a.status, a.text);
        if a.content_type.starts_with("application/problem+json") {
            let p = a.json();
            assert!(
                !p["type"].as_str().unwrap_or_default().ends_with("no-route"),
                "GET {path} is not routed: {p}"
            );
        }
    }
    // The probe can tell: an unknown path is reported as one.
    problem(
        &get(&agent, &server.url("/v1/routes-that-are-not")),
        404,
        "no-route",
    );
}

// ---------------------------------------------------------------------------------------
// 6. `dcledger submit` against a live server.

/// Splits `submit`'s output into `index leaf_hash` lines and the checkpoint after them.
fn submit_output(out: &str) -> (Vec<(u64, String)>, String) {
    let mut acks = Vec::new();
    let mut rest = out;
    while let Some((line, tail)) = rest.split_once('\n') {
        let parsed = line.split_once(' ').and_then(|(i, h)| {
            let i = i.parse::<u64>().ok()?;
            (h.len() == 64 && dcledger::keys::parse_lower_hex::<32>(h).is_some())
                .then(|| (i, h.to_string()))
        });
        let Some(ack) = parsed else { break };
        acks.push(ack);
        rest = tail;
    }
    (acks, rest.to_string())
}

/// The arguments of `dcledger submit` signing the `org.register` bodies of a file.
fn org_bodies_submission<'a>(server: &'a Server, key: &'a Path, bodies: &'a Path) -> [&'a str; 8] {
    let (key, bodies) = (path_str(key), path_str(bodies));
    [
        "submit",
        "--server",
        &server.base,
        "--key",
        key,
        "--kind",
        "org.register",
        bodies,
    ]
}

#[test]
fn submit_command_sends_envelopes_and_signs_bodies() {
    let mut t = TestLedger::new();
    let registrar = Party::new(40);
    t.onboard("cli-registrar", &["authority"], &registrar);
    let (dir, data, mut authority) = close(t);
    let server = Server::start(&data, &dir.path().join("server.log"));
    let verifier = server.verifier();
    let agent = new_agent();
    let base = tree_size(&agent, &server);

    // Envelopes, signed beforehand.
    let envelopes: Vec<Value> = (0..3)
        .map(|k| authority.sign(Kind::OrgRegister, org_body(&format!("cli-env-{k}"))))
        .collect();
    let file = dir.path().join("envelopes.ndjson");
    let text: String = envelopes.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&file, text).unwrap();
    let out = stdout(&run_ok(&[
        "submit",
        "--server",
        &server.base,
        path_str(&file),
    ]));
    let (acks, note) = submit_output(&out);
    assert_eq!(
        acks.iter().map(|a| a.0).collect::<Vec<_>>(),
        (base..base + 3).collect::<Vec<_>>(),
        "{out}"
    );
    let cp = open(&note, &verifier);
    assert_eq!(cp.size, base + 3, "{out}");
    for (index, leaf_hash) in &acks {
        let e = get(&agent, &server.url(&format!("/v1/entries/{index}"))).expect(200);
        assert_eq!(e["leaf_hash"], leaf_hash.as_str());
        check_inclusion(&agent, &server, *index, &hash(leaf_hash), &cp);
    }

    // The same envelopes again: a retry (PROTOCOL §3), answered with the indexes they have;
    // nothing written.
    let again = bin()
        .args(["submit", "--server", &server.base, path_str(&file)])
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(submit_output(&stdout(&again)).0, acks);
    assert_eq!(tree_size(&agent, &server), base + 3);

    // Bodies, signed by the command with a key file; seq comes from /v1/signers.
    let key = dir.path().join("registrar.pem");
    dcledger::keys::write_signing_key(&key, &registrar.key).unwrap();
    let signer_url = server.url(&format!("/v1/signers/{}", registrar.public_hex()));
    assert_eq!(get(&agent, &signer_url).expect(200)["next_seq"], 1);
    let mut next_index = base + 3;
    let mut next_seq = 1;
    for round in 0..2 {
        let n = 3 - round;
        let bodies = dir.path().join(format!("bodies-{round}.ndjson"));
        let text: String = (0..n)
            .map(|k| format!("{}\n", org_body(&format!("cli-body-{round}-{k}"))))
            .collect();
        std::fs::write(&bodies, text).unwrap();
        let out = stdout(&run_ok(&org_bodies_submission(&server, &key, &bodies)));
        let (acks, note) = submit_output(&out);
        assert_eq!(acks.len(), n, "{out}");
        let cp = open(&note, &verifier);
        assert_eq!(cp.size, next_index + n as u64);
        for (k, (index, leaf_hash)) in acks.iter().enumerate() {
            assert_eq!(*index, next_index);
            let e = get(&agent, &server.url(&format!("/v1/entries/{index}"))).expect(200);
            assert_eq!(e["leaf_hash"], leaf_hash.as_str());
            let entry = &e["leaf"]["entry"];
            assert_eq!(entry["signer"], registrar.public_hex().as_str());
            assert_eq!(entry["kind"], "org.register");
            assert_eq!(entry["seq"], next_seq);
            assert_eq!(
                entry["body"]["org_id"],
                format!("cli-body-{round}-{k}").as_str()
            );
            next_index += 1;
            next_seq += 1;
        }
        assert_eq!(get(&agent, &signer_url).expect(200)["next_seq"], next_seq);
    }
    assert_eq!(tree_size(&agent, &server), next_index);
}

/// `dcledger submit` sends batches the server takes whole: cut at the request body limit
/// as well as at 1,000 envelopes. A thousand bodies of CJK names (about 1.6 KB an
/// envelope) once made one body of 1.6 MB, refused whole (413). When a later batch is
/// refused, the entries of the batches before it, and their checkpoint, are printed, and
/// the error names the lines that were not taken.
#[test]
fn submit_cuts_batches_at_the_body_limit_and_prints_what_landed_before_a_refusal() {
    let mut t = TestLedger::new();
    let registrar = Party::new(41);
    t.onboard("big-registrar", &["authority"], &registrar);
    let (dir, data, _) = close(t);
    let server = Server::start(&data, &dir.path().join("server.log"));
    let verifier = server.verifier();
    let agent = new_agent();
    let base = tree_size(&agent, &server);
    let key = dir.path().join("registrar.pem");
    dcledger::keys::write_signing_key(&key, &registrar.key).unwrap();
    let big_body = |org_id: &str| json!({"org_id": org_id, "name": "中".repeat(200), "province": "省".repeat(200), "roles": ["operator"]});
    let write_bodies = |name: &str, org_ids: &[String]| {
        let path = dir.path().join(name);
        let text: String = org_ids
            .iter()
            .map(|id| format!("{}\n", big_body(id)))
            .collect();
        std::fs::write(&path, text).unwrap();
        path
    };
    let entry_at =
        |index: u64| get(&agent, &server.url(&format!("/v1/entries/{index}"))).expect(200);

    const BODIES: u64 = 1_500;
    let ids: Vec<String> = (0..BODIES).map(|k| format!("big-{k}")).collect();
    let bodies = write_bodies("bodies.ndjson", &ids);
    let out = stdout(&run_ok(&org_bodies_submission(&server, &key, &bodies)));
    let (acks, note) = submit_output(&out);
    assert_eq!(
        acks.iter().map(|a| a.0).collect::<Vec<_>>(),
        (base..base + BODIES).collect::<Vec<_>>(),
        "every body landed, in order"
    );
    assert_eq!(open(&note, &verifier).size, base + BODIES);
    let last = entry_at(base + BODIES - 1);
    assert_eq!(last["leaf"]["entry"]["body"]["org_id"], "big-1499");
    assert_eq!(last["leaf"]["entry"]["seq"], BODIES);

    // Line 1,200 registers an organisation again: its batch is refused, the one before
    // it landed and is printed with its checkpoint.
    let mut ids: Vec<String> = (0..1_300).map(|k| format!("more-{k}")).collect();
    ids[1_199] = "big-0".to_string();
    let bodies = write_bodies("again.ndjson", &ids);
    let refused = bin()
        .args(org_bodies_submission(&server, &key, &bodies))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let (acks, note) = submit_output(&stdout(&refused));
    let landed = acks.len() as u64;
    assert!(
        (1..1_199).contains(&landed),
        "the batches before the refused one landed: {landed}"
    );
    assert_eq!(
        acks.iter().map(|a| a.0).collect::<Vec<_>>(),
        (base + BODIES..base + BODIES + landed).collect::<Vec<_>>()
    );
    assert_eq!(open(&note, &verifier).size, base + BODIES + landed);
    assert_eq!(tree_size(&agent, &server), base + BODIES + landed);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains(&format!("the batch of lines {} to ", landed + 1))
            && err.contains("not taken"),
        "{err}"
    );
}

/// `dcledger demo` without `--data`: its ledger lives in one temporary directory while it
/// serves, which is gone once SIGTERM has stopped it; it prints the pages', the API's and
/// the tiles' addresses; and its log, written to a file, is plain text.
#[test]
fn demo_without_data_cleans_up_prints_its_addresses_and_logs_plain_text() {
    let tmp = tempfile::tempdir().unwrap();
    let temp_root = tmp.path().join("tmp");
    std::fs::create_dir(&temp_root).unwrap();
    let log = tmp.path().join("demo.log");
    let mut server = Server::start_with_env(
        &["demo", "--listen", "127.0.0.1:0"],
        &log,
        &[("TMPDIR", &temp_root)],
    );
    let made: Vec<String> = std::fs::read_dir(&temp_root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        made.len() == 1 && made[0].starts_with("dcledger-demo-"),
        "{made:?}"
    );
    let printed = server
        .remaining_stdout_for(Duration::from_secs(1))
        .join("\n");
    let base = &server.base;
    for wanted in [
        format!("  {base}/\n"),
        format!("curl {base}/v1/checkpoint"),
        format!("curl {base}/checkpoint"),
        format!("{base}/tile/"),
    ] {
        assert!(printed.contains(&wanted), "{wanted:?} not in {printed}");
    }
    let agent = new_agent();
    assert_eq!(get(&agent, &format!("{base}/checkpoint")).status, 200);
    assert!(server.terminate().success(), "{}", server.log_text());
    let left: Vec<_> = std::fs::read_dir(&temp_root).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let log_bytes = std::fs::read(&log).unwrap();
    let text = String::from_utf8_lossy(&log_bytes);
    assert!(text.contains("shutting down"), "{text}");
    assert!(
        !log_bytes.contains(&0x1b),
        "escape bytes in a log written to a file: {text:?}"
    );
}

/// `dcledger demo`: the demo world in a fresh ledger, audited and served; SIGTERM stops it
/// cleanly.
#[test]
fn demo_command_serves_the_audited_demo_world() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("demo");
    let log = tmp.path().join("demo.log");
    let mut server = Server::start_with(
        &["demo", "--data", path_str(&data), "--listen", "127.0.0.1:0"],
        &log,
    );
    let agent = new_agent();
    let lines = std::fs::read_to_string(demo_dir().join("entries.ndjson"))
        .unwrap()
        .lines()
        .count() as u64;
    assert_eq!(
        tree_size(&agent, &server),
        lines + 1,
        "genesis and the demo world"
    );
    let findings = get(
        &agent,
        &format!("{}/v1/findings?severity=critical", server.base),
    );
    assert_eq!(findings.status, 200);
    let body: Value = serde_json::from_str(&findings.text).unwrap();
    assert!(body["count"].as_u64().unwrap_or(0) > 0, "{body}");
    // The accepted-entries counter counts the demo's bulk load too.
    let metrics = get(&agent, &format!("{}/metrics", server.base)).text;
    let accepted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("dcledger_entries_accepted_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no accepted-entries counter in {metrics}"));
    assert_eq!(
        accepted,
        lines + 1,
        "every entry the demo loaded, genesis too"
    );
    // It names the pages to open, and each is there.
    let printed = server.remaining_stdout_for(Duration::from_secs(1));
    for path in ["/", "/regions", "/findings", "/valuation"] {
        let url = format!("{}{path}", server.base);
        assert!(
            printed.iter().any(|l| l.trim() == url),
            "{url} not in {printed:?}"
        );
        assert_eq!(get(&agent, &url).status, 200, "{url}");
    }
    let pid = server.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(code) = server.child.try_wait().unwrap() {
            assert!(
                code.success(),
                "demo exited with {code}: {}",
                server.log_text()
            );
            break;
        }
        assert!(Instant::now() < deadline, "demo did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
