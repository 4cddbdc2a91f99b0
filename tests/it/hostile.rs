//! A server that faces the open internet (PROTOCOL §10), tried as a hostile client would:
//! the real `dcledger serve` on a loopback port, driven with raw sockets where the bytes
//! on the wire matter. One test per bound, each against the bound it enforces; most run
//! with small bounds from a `[server]` config to stay fast, and the first runs the
//! defaults. Every loop is bounded in count and time; traffic goes only to 127.0.0.1.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dcledger::entry::Kind;
use dcledger::ledger::Ledger;
use serde_json::{Value, json};

use crate::http::{Server, close, get, new_agent, problem, tree_size};
use crate::support::{ORIGIN, Party, TestLedger, demo_dir, key, log_key_file, rss_bytes};

const MIB: u64 = 1024 * 1024;

/// How long any single exchange may take before a test gives up on it.
const EXCHANGE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// Servers and ledgers.

/// `dcledger serve` on `data` with `[server]` bounds `server_toml` (empty: the defaults).
fn serve(dir: &Path, data: &Path, server_toml: &str) -> Server {
    let config = dir.join("config.toml");
    std::fs::write(&config, format!("[server]\n{server_toml}")).expect("write config");
    Server::serve_with_config(dir, data, &config)
}

/// A small ledger: genesis and one operator.
fn small_ledger() -> (tempfile::TempDir, PathBuf, Party) {
    let mut t = TestLedger::new();
    let operator = Party::new(40);
    t.onboard("hostile-op", &["operator"], &operator);
    let (dir, data, authority) = close(t);
    (dir, data, authority)
}

/// A ledger of operator responses of about 4 KiB each: a page of `limit=1000` is cut
/// by bytes at 1 MiB (some 230 entries), and costs little to build, so that clients that
/// do not read pin megabytes within seconds.
fn wordy_ledger() -> (tempfile::TempDir, PathBuf, Party) {
    let mut t = TestLedger::new();
    let mut operator = Party::new(41);
    t.onboard("wordy-op", &["operator"], &operator);
    for batch in 0..6 {
        let responses = (0..100)
            .map(|i| {
                operator.sign(
                    Kind::FindingResponse,
                    json!({
                        "finding_id": format!("{:032x}", batch * 100 + i),
                        "text": "We have read the finding and will answer it in full. ".repeat(72),
                    }),
                )
            })
            .collect();
        t.accept(responses);
    }
    close(t)
}

/// The demo world's ledger: 2,515 entries, facilities and findings.
fn demo_ledger() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    dcledger::demo::prepare(&data).expect("demo ledger");
    std::fs::copy(demo_dir().join("keys/log.pem"), log_key_file(&data))
        .expect("the demo's log key beside the ledger");
    (dir, data)
}

// ---------------------------------------------------------------------------------------
// Raw HTTP/1.1.

#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts a problem answer (status, `application/problem+json`, `type` ending in
    /// `slug`) and returns it.
    fn problem(&self, status: u16, slug: &str) -> Value {
        let text = String::from_utf8_lossy(&self.body[..self.body.len().min(500)]);
        assert_eq!(self.status, status, "{text}");
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{text}"
        );
        let p: Value =
            serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        assert!(
            p["type"].as_str().is_some_and(|t| t.ends_with(slug)),
            "type is not …{slug}: {p}"
        );
        assert_eq!(p["status"], status, "{p}");
        assert!(p["title"].is_string() && p["detail"].is_string(), "{p}");
        p
    }
}

/// A client as one across a real network looks to the server: a receive window of a few
/// KiB and Ethernet's segment size. Over loopback's 64 KiB segments the kernel grows the
/// server's send buffer to megabytes, and several whole answers vanish into it before
/// a client that does not read holds anything in the server's memory.
fn connect_small_window(server: &Server) -> TcpStream {
    let addr: std::net::SocketAddr = server.addr().parse().expect("server address");
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.set_tcp_mss(1460).expect("TCP_MAXSEG");
    socket.connect(&addr.into()).expect("connect");
    socket.into()
}

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.addr()).expect("connect");
    stream
        .set_read_timeout(Some(EXCHANGE))
        .expect("read timeout");
    stream
}

/// Reads one answer (the server always sends `content-length`), or `None` on EOF, a
/// reset or the read timeout. What follows it stays in `stream`'s buffer.
fn read_answer(stream: &mut impl BufRead) -> Option<Raw> {
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        match stream.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&line).trim_end().to_string();
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    let mut lines = lines.into_iter();
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some(Raw {
        status,
        headers,
        body,
    })
}

/// Whether the server has answered or closed `stream` yet (without waiting or reading).
fn answered(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).expect("nonblocking");
    let mut byte = [0u8; 1];
    let sent = match stream.peek(&mut byte) {
        Ok(_) => true, // a byte, or the end of the stream
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("peeking at a connection: {e}"),
    };
    stream.set_nonblocking(false).expect("blocking");
    sent
}

/// Sends `request` on a new connection and reads the answer.
fn exchange(server: &Server, request: &[u8]) -> Raw {
    let mut stream = connect(server);
    stream.write_all(request).expect("send");
    read_answer(&mut BufReader::new(stream)).unwrap_or_else(|| {
        panic!(
            "no answer to {:?}; log: {}",
            String::from_utf8_lossy(&request[..request.len().min(200)]),
            server.log_text()
        )
    })
}

fn get_request(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes()
}

/// Waits (at most `limit`) for the server to close `stream`, sending `trickle` every
/// `every` meanwhile if given; returns how long it took and what was read.
fn time_until_closed(
    stream: &mut TcpStream,
    trickle: Option<(&[u8], Duration)>,
    limit: Duration,
) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    let tick = trickle.map_or(Duration::from_millis(50), |(_, every)| every);
    stream.set_read_timeout(Some(tick)).expect("read timeout");
    let mut read = Vec::new();
    let mut chunk = [0u8; 4096];
    while start.elapsed() < limit {
        if let Some((bytes, _)) = trickle
            && stream.write_all(bytes).is_err()
        {
            return (start.elapsed(), read);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return (start.elapsed(), read),
            Ok(n) => read.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return (start.elapsed(), read),
        }
    }
    panic!(
        "still open after {limit:?}; read {:?}",
        String::from_utf8_lossy(&read)
    );
}

/// Asserts `took` is the bound `bound` give or take scheduling: not before it, and not
/// more than `slack` after.
fn assert_at(what: &str, took: Duration, bound: Duration, slack: Duration) {
    assert!(
        took >= bound.saturating_sub(Duration::from_millis(100)) && took <= bound + slack,
        "{what}: closed after {took:?}, the bound is {bound:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 1. Clients that pipeline requests and never read (the defaults).

/// Connections of the first test, and requests each pipelines.
const NON_READERS: usize = 500;
const PIPELINED: usize = 8;

#[test]
fn non_reading_pipeliners_leave_memory_bounded_and_healthz_answering() {
    let (dir, data, mut authority) = wordy_ledger();
    let server = serve(dir.path(), &data, "");
    let pid = server.pid();
    let agent = new_agent();
    // Warm up: caches filled, one full page served and read.
    for _ in 0..3 {
        let page = get(&agent, &server.url("/v1/entries?limit=1000")).expect(200);
        assert!(page["next"].is_u64(), "a page is cut by bytes");
    }
    let before = rss_bytes(pid);

    let pipeline = get_request("/v1/entries?limit=1000").repeat(PIPELINED);
    let mut non_readers = Vec::with_capacity(NON_READERS);
    for _ in 0..NON_READERS {
        let mut c = connect_small_window(&server);
        c.write_all(&pipeline).expect("pipeline requests");
        non_readers.push(c);
    }

    // Until the answers held for them fill the budget (the front then refuses any
    // request but the probes), and a few seconds more: the server's memory, and how
    // long /healthz takes on a new connection.
    let mut peak = before;
    let mut slowest = Duration::ZERO;
    let mut probes = 0;
    let mut saturated: Option<Instant> = None;
    let watch = Instant::now();
    while saturated.is_none_or(|at| at.elapsed() < Duration::from_secs(3)) {
        assert!(
            watch.elapsed() < Duration::from_secs(90),
            "the answer budget was never full; RSS {} MiB → {} MiB",
            before / MIB,
            peak / MIB
        );
        peak = peak.max(rss_bytes(pid));
        assert!(
            peak.saturating_sub(before) < 256 * MIB,
            "RSS grew by {} MiB with {NON_READERS} non-reading clients",
            peak.saturating_sub(before) / MIB
        );
        let asked = Instant::now();
        let health = exchange(&server, &get_request("/healthz"));
        slowest = slowest.max(asked.elapsed());
        probes += 1;
        assert_eq!(
            health.status,
            200,
            "{:?}",
            String::from_utf8_lossy(&health.body)
        );
        if saturated.is_none() {
            let small = exchange(&server, &get_request("/v1/checkpoint"));
            if small.status == 503 {
                small.problem(503, "saturated");
                assert_eq!(small.header("retry-after"), Some("1"));
                saturated = Some(Instant::now());
            } else {
                assert_eq!(small.status, 200);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // A submission still goes through, and its answer (what was written) goes out.
    let envelope = authority.sign(
        Kind::OrgRegister,
        json!({"org_id": "while-saturated", "name": "Saturated Ltd", "roles": ["operator"]}),
    );
    let response = agent
        .post(&server.url("/v1/entries"))
        .header("content-type", "application/json")
        .send(envelope.to_string().as_bytes())
        .expect("answer");
    assert_eq!(response.status().as_u16(), 201);

    let growth = peak.saturating_sub(before);
    eprintln!(
        "{NON_READERS} non-reading connections × {PIPELINED} pipelined pages: answer budget full after {:?}; RSS {} MiB → peak {} MiB (growth {} MiB); slowest of {probes} /healthz {:?}",
        saturated
            .map(|at| at.duration_since(watch))
            .unwrap_or_default(),
        before / MIB,
        peak / MIB,
        growth / MIB,
        slowest
    );
    assert!(
        growth < 256 * MIB,
        "RSS grew by {} MiB with {NON_READERS} non-reading clients",
        growth / MIB
    );
    assert!(
        slowest < Duration::from_secs(1),
        "/healthz took {slowest:?}"
    );
    drop(non_readers);
    assert!(
        !server.log_text().contains("panicked"),
        "{}",
        server.log_text()
    );
}

// ---------------------------------------------------------------------------------------
// 2. Timeouts: headers, body, idle.

#[test]
fn headers_trickled_slowly_are_cut_at_the_header_timeout() {
    let (dir, data, _) = small_ledger();
    let server = serve(
        dir.path(),
        &data,
        "header_timeout_ms = 1000\nidle_timeout_ms = 6000\n",
    );
    let mut slowloris = connect(&server);
    slowloris
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .expect("send");
    let (took, read) = time_until_closed(
        &mut slowloris,
        Some((b"X", Duration::from_millis(100))),
        Duration::from_secs(8),
    );
    eprintln!("slowloris closed after {took:?}");
    assert!(read.is_empty(), "{:?}", String::from_utf8_lossy(&read));
    assert_at(
        "header timeout",
        took,
        Duration::from_millis(1000),
        Duration::from_millis(1000),
    );
    // The server is unharmed.
    assert_eq!(exchange(&server, &get_request("/healthz")).status, 200);
}

#[test]
fn a_body_trickled_byte_by_byte_is_cut_at_the_body_timeout() {
    let (dir, data, _) = small_ledger();
    let server = serve(
        dir.path(),
        &data,
        "body_timeout_ms = 1500\nidle_timeout_ms = 6000\n",
    );
    let agent = new_agent();
    let size = tree_size(&agent, &server);
    let mut slow = connect(&server);
    slow.write_all(
        b"POST /v1/entries HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n[",
    )
    .expect("send head");
    let (took, read) = time_until_closed(
        &mut slow,
        Some((b" ", Duration::from_millis(100))),
        Duration::from_secs(8),
    );
    eprintln!("trickled body closed after {took:?}");
    assert_at(
        "body timeout",
        took,
        Duration::from_millis(1500),
        Duration::from_millis(1500),
    );
    let answer = read_answer(&mut std::io::Cursor::new(read)).expect("a 408 before the close");
    answer.problem(408, "body-timeout");
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(tree_size(&agent, &server), size, "nothing was written");
}

#[test]
fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout() {
    let (dir, data, _) = small_ledger();
    let server = serve(
        dir.path(),
        &data,
        "header_timeout_ms = 1000\nidle_timeout_ms = 2500\n",
    );
    // After an answer, the connection may stay quiet for the idle timeout, which is
    // longer than the header timeout: idleness is not a slow request head.
    let mut keep_alive = connect(&server);
    keep_alive
        .write_all(&get_request("/healthz"))
        .expect("send");
    let answer = read_answer(&mut BufReader::new(&mut keep_alive)).expect("answer");
    assert_eq!(answer.status, 200);
    let (took, read) = time_until_closed(&mut keep_alive, None, Duration::from_secs(8));
    eprintln!("idle keep-alive connection closed after {took:?}");
    assert!(read.is_empty(), "{:?}", String::from_utf8_lossy(&read));
    assert_at(
        "idle timeout",
        took,
        Duration::from_millis(2500),
        Duration::from_millis(1000),
    );
    // A connection that never sends a byte: the same.
    let mut silent = connect(&server);
    let (took, _) = time_until_closed(&mut silent, None, Duration::from_secs(8));
    assert_at(
        "idle timeout (silent)",
        took,
        Duration::from_millis(2500),
        Duration::from_millis(1000),
    );
}

// ---------------------------------------------------------------------------------------
// 3. The connection cap.

#[test]
fn at_the_connection_cap_new_connections_wait_and_are_served_once_slots_free() {
    const CAP: usize = 100;
    let (dir, data, _) = wordy_ledger();
    // A budget of 4 MiB: the cap full of clients that do not read holds no more.
    let server = serve(
        dir.path(),
        &data,
        &format!(
            "max_connections = {CAP}\nmax_buffered_answer_bytes = {}\nidle_timeout_ms = 30000\n",
            4 * MIB
        ),
    );
    let pid = server.pid();
    let agent = new_agent();
    get(&agent, &server.url("/v1/entries?limit=1000")).expect(200);
    drop(agent);
    let before = rss_bytes(pid);

    let pipeline = get_request("/v1/entries?limit=1000").repeat(4);
    let mut held: Vec<TcpStream> = (0..CAP)
        .map(|_| {
            let mut c = connect_small_window(&server);
            c.write_all(&pipeline).expect("pipeline");
            c
        })
        .collect();
    // One more: the kernel completes its handshake, but the server does not take it.
    let mut waiting = connect(&server);
    waiting
        .write_all(&get_request("/healthz"))
        .expect("send to the backlog");
    waiting
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("read timeout");
    let mut byte = [0u8; 1];
    match waiting.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("a connection over the cap was served: {other:?}"),
    }
    let mut peak = before;
    for _ in 0..15 {
        peak = peak.max(rss_bytes(pid));
        std::thread::sleep(Duration::from_millis(200));
    }
    let growth = peak.saturating_sub(before);
    eprintln!(
        "{CAP} non-reading connections at the cap, answers capped at 4 MiB: RSS growth {} MiB",
        growth / MIB
    );
    // Each of them holding its page (about 1 MiB) would be 100 MiB.
    assert!(growth < 48 * MIB, "RSS grew by {} MiB", growth / MIB);

    // Free a few slots: the waiting connection is accepted and answered.
    let freed = Instant::now();
    held.truncate(CAP - 4);
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let answer = read_answer(&mut BufReader::new(&mut waiting)).expect("served once slots freed");
    assert_eq!(answer.status, 200);
    eprintln!(
        "the connection over the cap was served {:?} after slots freed",
        freed.elapsed()
    );
    drop(held);
}

#[test]
fn beyond_the_requests_at_once_the_answer_is_503_with_retry_after_and_probes_still_answer() {
    let (dir, data, _) = small_ledger();
    let server = serve(dir.path(), &data, "max_concurrent_requests = 1\n");
    // One request takes the only turn: a submission whose body is still coming.
    let start_slow = || {
        let mut slow = connect(&server);
        slow.write_all(
            b"POST /v1/entries HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[",
        )
        .expect("send head");
        slow
    };
    let mut slow = start_slow();
    let mut refused = None;
    for _ in 0..100 {
        let answer = exchange(&server, &get_request("/v1/checkpoint"));
        if answer.status == 503 {
            refused = Some(answer);
            break;
        }
        assert_eq!(answer.status, 200);
        // The server may take the probe's connection before the slow one's: then the
        // probe held the turn and the slow submission was refused. Start it again.
        if answered(&slow) {
            slow = start_slow();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused = refused.expect("a second request at once is refused");
    refused.problem(503, "saturated");
    assert_eq!(refused.header("retry-after"), Some("1"));
    // Liveness and readiness are not counted.
    assert_eq!(exchange(&server, &get_request("/healthz")).status, 200);
    assert_eq!(exchange(&server, &get_request("/readyz")).status, 200);
    // Once the slow one is over (an empty batch, refused), the turn is free again.
    slow.write_all(b"]").expect("end of body");
    read_answer(&mut BufReader::new(&mut slow))
        .expect("an answer to the slow submission")
        .problem(400, "bad-request");
    assert_eq!(
        exchange(&server, &get_request("/v1/checkpoint")).status,
        200
    );
}

// ---------------------------------------------------------------------------------------
// 4. Request heads: URI and header sizes, and what hyper refuses itself.

#[test]
fn long_uris_and_large_headers_are_refused_as_problems() {
    let (dir, data, _) = small_ledger();
    // The defaults: a URI of 8 KiB, headers of 16 KiB.
    let server = serve(dir.path(), &data, "");
    let path = |len: usize| format!("/v1/{}", "a".repeat(len - "/v1/".len()));
    // Up to the bound, a URI is routed (an unknown path: 404); a 9 KiB one is refused.
    exchange(&server, &get_request(&path(8 * 1024))).problem(404, "no-route");
    let p = exchange(&server, &get_request(&path(9 * 1024))).problem(414, "uri-too-long");
    assert!(
        p["detail"].as_str().unwrap_or_default().contains("8192"),
        "{p}"
    );

    // Headers: 15 KiB pass, 17 KiB are refused.
    let with_headers = |kib: usize| {
        let mut r = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_vec();
        for i in 0..kib {
            // 1,024 bytes as the server counts them: name, value and 4.
            let name = format!("x-pad-{i:04}");
            let value = "v".repeat(1024 - name.len() - 4);
            r.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        r.extend_from_slice(b"\r\n");
        r
    };
    assert_eq!(exchange(&server, &with_headers(15)).status, 200);
    exchange(&server, &with_headers(17)).problem(431, "headers-too-large");

    // Heads hyper refuses before any handler runs are problems too: a URI beyond what it
    // reads, a control byte in the path, a header beyond what it reads, too many fields.
    exchange(&server, &get_request(&path(70_000))).problem(414, "uri-too-long");
    exchange(
        &server,
        b"GET /v1/\x01entries HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    )
    .problem(400, "bad-request");
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nx-huge: {}\r\n\r\n",
        "v".repeat(100 * 1024)
    );
    exchange(&server, huge.as_bytes()).problem(431, "headers-too-large");
    let mut many = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_vec();
    for i in 0..200 {
        many.extend_from_slice(format!("x-{i}: 1\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    exchange(&server, &many).problem(431, "headers-too-large");
    // After a good request on the same connection, too.
    let mut both = get_request("/healthz");
    both.extend_from_slice(b"GET /\x7f HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let mut stream = connect(&server);
    stream.write_all(&both).expect("send");
    let mut stream = BufReader::new(stream);
    assert_eq!(read_answer(&mut stream).expect("first").status, 200);
    read_answer(&mut stream)
        .expect("second")
        .problem(400, "bad-request");
}

// ---------------------------------------------------------------------------------------
// 5. Submissions say they are JSON.

#[test]
fn a_submission_without_a_json_content_type_is_415_and_writes_nothing() {
    let (dir, data, authority) = small_ledger();
    let server = serve(dir.path(), &data, "");
    let agent = new_agent();
    let size = tree_size(&agent, &server);
    let envelope = authority
        .sign_with(
            Kind::OrgRegister,
            authority.next_seq,
            "2025-01-01T00:00:00Z",
            json!({"org_id": "typed-org", "name": "Typed Ltd", "roles": ["operator"]}),
        )
        .to_string();
    let post = |content_type: Option<&str>| {
        let mut r = format!(
            "POST /v1/entries HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
            envelope.len()
        );
        if let Some(t) = content_type {
            r.push_str(&format!("Content-Type: {t}\r\n"));
        }
        r.push_str("\r\n");
        r.push_str(&envelope);
        exchange(&server, r.as_bytes())
    };
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonl"),
    ] {
        post(content_type).problem(415, "unsupported-media-type");
    }
    assert_eq!(tree_size(&agent, &server), size, "a 415 wrote something");
    // JSON with a parameter is JSON.
    let ok = post(Some("Application/JSON; charset=utf-8"));
    assert_eq!(ok.status, 201, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(tree_size(&agent, &server), size + 1);
}

// ---------------------------------------------------------------------------------------
// 6. Lists that grow with the ledger come in pages.

/// Follows `next` from `first` (a path without `after`) until it is null; returns every
/// item in `field`, by page.
fn page_through(agent: &ureq::Agent, server: &Server, first: &str, field: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10_000 {
        let url = match &after {
            None => server.url(first),
            Some(a) => server.url(&format!(
                "{first}&after={}",
                percent_encoding::utf8_percent_encode(a, percent_encoding::NON_ALPHANUMERIC)
            )),
        };
        let page = get(agent, &url).expect(200);
        let got = page[field].as_array().expect("items");
        assert!(
            !got.is_empty() || page["next"].is_null(),
            "an empty page with a next"
        );
        items.extend(got.iter().cloned());
        after = match &page["next"] {
            Value::Null => return items,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            other => panic!("next is {other}"),
        };
    }
    panic!("more than 10,000 pages");
}

/// Asserts the pages held exactly the items of the whole list, in its order.
fn assert_same_items(what: &str, paged: &[Value], whole: &[Value]) {
    let short = |v: &Value| v.to_string().chars().take(200).collect::<String>();
    for (i, (p, w)) in paged.iter().zip(whole).enumerate() {
        assert!(
            p == w,
            "{what} #{i}: paged {} but the list has {}",
            short(p),
            short(w)
        );
    }
    assert_eq!(paged.len(), whole.len(), "{what}: as many paged as listed");
}

#[test]
fn facilities_findings_and_entries_page_through_every_item_exactly_once() {
    let (dir, data) = demo_ledger();
    let server = serve(dir.path(), &data, "");
    let agent = new_agent();

    // Facilities: one at a time, every one once, in id order, as the whole list has them.
    let all = get(&agent, &server.url("/v1/facilities")).expect(200);
    assert!(all["next"].is_null(), "{}", all["next"]);
    let all = all["facilities"].as_array().expect("facilities").clone();
    assert!(all.len() > 10, "the demo has facilities");
    let paged = page_through(&agent, &server, "/v1/facilities?limit=1", "facilities");
    assert_same_items("facilities", &paged, &all);
    let ids: Vec<&str> = paged
        .iter()
        .filter_map(|f| f["facility_id"].as_str())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids in order, none twice"
    );

    // Findings: the same, of one audit (as_of fixed).
    let whole = get(&agent, &server.url("/v1/findings?as_of=2025-03")).expect(200);
    assert!(whole["next"].is_null());
    let whole = whole["findings"].as_array().expect("findings").clone();
    assert!(whole.len() > 10, "the demo has findings");
    let paged = page_through(
        &agent,
        &server,
        "/v1/findings?as_of=2025-03&limit=1",
        "findings",
    );
    assert_same_items("findings", &paged, &whole);
    // A filter pages the same way.
    let critical = get(
        &agent,
        &server.url("/v1/findings?as_of=2025-03&severity=critical"),
    )
    .expect(200)["findings"]
        .clone();
    let paged = page_through(
        &agent,
        &server,
        "/v1/findings?as_of=2025-03&severity=critical&limit=2",
        "findings",
    );
    assert_same_items(
        "critical findings",
        &paged,
        critical.as_array().expect("findings"),
    );
    // CSV pages name the next in a Link header; following them gives every row once.
    let mut ids: Vec<String> = Vec::new();
    let mut next = Some(server.url("/v1/findings?as_of=2025-03&format=csv&limit=7"));
    for _ in 0..1_000 {
        let Some(url) = next.take() else { break };
        let mut response = agent.get(&url).call().expect("csv page");
        assert_eq!(response.status().as_u16(), 200);
        next = response
            .headers()
            .get("link")
            .and_then(|l| l.to_str().ok())
            .map(|l| {
                let target = l
                    .strip_prefix('<')
                    .and_then(|l| l.split_once(">; rel=\"next\""))
                    .map(|(t, _)| t.to_string())
                    .unwrap_or_else(|| panic!("Link {l:?}"));
                server.url(&target)
            });
        let text = response.body_mut().read_to_string().expect("csv");
        // A comment line with the basis, the header, then one row per finding, its id
        // first (summaries are quoted and hold no line break).
        let rows = text.lines().filter(|l| !l.starts_with('#')).skip(1);
        ids.extend(rows.filter_map(|r| r.split(',').next()).map(str::to_string));
    }
    assert!(next.is_none(), "more than 1,000 CSV pages");
    let whole_ids: Vec<String> = whole
        .iter()
        .filter_map(|f| f["id"].as_str())
        .map(str::to_string)
        .collect();
    assert_eq!(
        ids, whole_ids,
        "CSV pages hold every finding once, in order"
    );
    // A cursor that is not one is refused, naming the parameter.
    problem(
        &crate::http::get(&agent, &server.url("/v1/findings?after=nonsense")),
        400,
        "bad-parameter",
    );

    // Entries: a page of 1,000 demo entries is over 1 MiB of JSON, so it is cut short
    // by bytes, and the pages still hold every entry once.
    let mut response = agent
        .get(&server.url("/v1/entries?limit=1000"))
        .call()
        .expect("page");
    let body = response
        .body_mut()
        .with_config()
        .limit(64 * MIB)
        .read_to_vec()
        .expect("body");
    assert!(
        body.len() as u64 <= MIB + 1024,
        "a page of {} bytes",
        body.len()
    );
    let page: Value = serde_json::from_slice(&body).expect("JSON");
    let on_page = page["entries"].as_array().expect("entries").len();
    assert!(
        on_page < 1000 && page["next"].is_u64(),
        "{on_page} entries, next {}",
        page["next"]
    );
    let size = tree_size(&agent, &server);
    let entries = page_through(&agent, &server, "/v1/entries?limit=1000", "entries");
    let indexes: Vec<u64> = entries.iter().filter_map(|e| e["index"].as_u64()).collect();
    assert_eq!(indexes, (0..size).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------
// 7. A full disk stops the writer: 503 with Retry-After, /readyz says why, /healthz 200.

/// A tmpfs of `size` at `at`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn a_full_disk_stops_the_writer_and_readiness_says_why() {
    if !is_root() {
        // CI runs as root; a developer's machine may not mount.
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = Tmpfs::mount(&dir.path().join("mnt"), "16m").expect("mount a tmpfs as root");
    let data = mnt.0.join("data");
    let mut authority = Party {
        key: key(1),
        next_seq: 2,
        origin: ORIGIN,
    };
    dcledger::keys::write_signing_key(&log_key_file(&data), &key(2)).expect("log key");
    Ledger::init(&data, ORIGIN, "full disk", &authority.key, &key(2))
        .expect("init")
        .close()
        .expect("close");
    let server = serve(dir.path(), &data, "");
    let agent = new_agent();
    get(&agent, &server.url("/readyz")).expect(200);

    // Fill the disk.
    let mut filler = std::fs::File::create(mnt.0.join("filler")).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    for _ in 0..1024 {
        if filler.write_all(&chunk).is_err() {
            break;
        }
    }
    drop(filler);

    // Submissions until one meets the full disk (a few at most: nothing is free).
    let url = server.url("/v1/entries");
    let mut stopped = None;
    for n in 0..200 {
        let envelope = authority.sign(
            Kind::OrgRegister,
            json!({"org_id": format!("full-{n}"), "name": "x".repeat(190), "roles": ["operator"]}),
        );
        let mut response = agent
            .post(&url)
            .header("content-type", "application/json")
            .send(envelope.to_string().as_bytes())
            .expect("answer");
        let status = response.status().as_u16();
        if status == 503 {
            let retry = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let text = response.body_mut().read_to_string().expect("body");
            stopped = Some((retry, text));
            break;
        }
        assert_eq!(
            status,
            201,
            "{}",
            response.body_mut().read_to_string().unwrap_or_default()
        );
    }
    let (retry, text) = stopped.expect("the full disk was met");
    assert!(
        retry.is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s > 0)),
        "{text}"
    );
    let p: Value = serde_json::from_str(&text).expect("problem JSON");
    assert!(
        p["type"].as_str().is_some_and(|t| t.ends_with("stopped")),
        "{p}"
    );

    // Readiness says why; liveness stays; reads go on; every submission is 503.
    let ready = crate::http::get(&agent, &server.url("/readyz"));
    let p = problem(&ready, 503, "stopped");
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("storage failure")),
        "{p}"
    );
    get(&agent, &server.url("/healthz")).expect(200);
    get(&agent, &server.url("/v1/entries?limit=1")).expect(200);
    let again = authority.sign(
        Kind::OrgRegister,
        json!({"org_id": "after", "name": "A", "roles": ["operator"]}),
    );
    let response = agent
        .post(&url)
        .header("content-type", "application/json")
        .send(again.to_string().as_bytes())
        .expect("answer");
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    drop(server);
}
