//! `cargo bench --bench log`: what reading a ledger from its files costs, at about 10k,
//! 100k and 1M entries (generated worlds of 100, 1,300 and 13,000 facilities, kept
//! under `DCLEDGER_BENCH_DIR/log-<facilities>` between runs).
//!
//! - Opening: `dcledger checkpoint`, `proof inclusion` and `get` run as processes, each
//!   time and peak RSS beside the yardstick of `cat` reading the same checkpoint file
//!   (what starting any process costs here). They should not grow with the ledger.
//! - Starting: how long `dcledger serve` takes, at the largest size, from its start to
//!   its first inclusion proof and its first tile.
//! - Serving: inclusion proofs and tiles over HTTP with 16 clients, beside `/healthz`
//!   (the cheapest answer the server gives) in the same run.
//!
//! Prints figures; asserts nothing.

mod world;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dcledger::log::layout::TileId;

const SIZES: [usize; 3] = [100, 1_300, 13_000];
const RUNS: usize = 21;
const CLIENTS: usize = 16;
const SERVE_SECONDS: u64 = 3;
const BIN: &str = env!("CARGO_BIN_EXE_dcledger");

fn median(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

/// Median wall time of `RUNS` runs of `program args` in ms, and their peak RSS in MiB,
/// each run checked to succeed. Measured through GNU time (`/usr/bin/time -f %M`): the
/// peak RSS a parent could read for its child counts the pages it shared with the
/// parent between fork and exec, this benchmark's world among them.
fn time_runs(program: &str, args: &[&str]) -> (f64, f64) {
    let mut peak_kib = 0u64;
    let ms = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            let out = Command::new("/usr/bin/time")
                .args(["-f", "%M", program])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .expect("run /usr/bin/time (GNU time, Debian's `time` package)");
            let took = started.elapsed().as_secs_f64() * 1e3;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{program} {args:?}: {stderr}");
            let kib: u64 = stderr
                .lines()
                .last()
                .and_then(|l| l.trim().parse().ok())
                .unwrap_or_else(|| panic!("no peak RSS from GNU time: {stderr}"));
            peak_kib = peak_kib.max(kib);
            took
        })
        .collect();
    (median(ms), peak_kib as f64 / 1024.0)
}

fn tree_size(data: &Path) -> u64 {
    let note = std::fs::read_to_string(data.join("checkpoint")).expect("checkpoint file");
    note.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("a size line")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn get_ok(agent: &ureq::Agent, url: &str) -> bool {
    agent
        .get(url)
        .call()
        .is_ok_and(|mut r| r.status() == 200 && r.body_mut().read_to_vec().is_ok())
}

/// Requests per second that `CLIENTS` clients get for the URLs `url(i)` gives.
fn throughput(url: impl Fn(u64) -> String + Sync) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(SERVE_SECONDS);
    let done: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..CLIENTS as u64)
            .map(|c| {
                let url = &url;
                s.spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        let i = c.wrapping_mul(7919).wrapping_add(n.wrapping_mul(104_729));
                        assert!(get_ok(&agent, &url(i)), "{}", url(i));
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("client")).sum()
    });
    done as f64 / SERVE_SECONDS as f64
}

fn main() {
    let base = std::env::var_os("DCLEDGER_BENCH_DIR").map(std::path::PathBuf::from);
    println!("opening a ledger: median time of {RUNS} runs as processes, and their peak RSS");
    let mut largest = None;
    for facilities in SIZES {
        let under = base.as_ref().map(|b| b.join(format!("log-{facilities}")));
        let w = world::world_in(facilities, under);
        let data = w.kept.clone();
        let d = data.to_str().expect("utf-8 path");
        let size = tree_size(&data);
        let middle = (size / 2).to_string();
        let checkpoint_file = data.join("checkpoint");
        let cat = time_runs("cat", &[checkpoint_file.to_str().expect("path")]);
        let checkpoint = time_runs(BIN, &["checkpoint", "--data", d]);
        let proof = time_runs(BIN, &["proof", "inclusion", "--data", d, &middle]);
        let get = time_runs(BIN, &["get", "--data", d, &middle]);
        println!("  {size:>9} entries:");
        for (what, (ms, mib)) in [
            ("cat of the checkpoint file (yardstick)", cat),
            ("checkpoint", checkpoint),
            ("proof inclusion", proof),
            ("get", get),
        ] {
            println!("    {what:<40} {ms:7.1} ms  {mib:6.1} MiB");
        }
        largest = Some((w, size));
    }
    let (w, size) = largest.expect("a world");
    // Outside the data directory, as PROTOCOL §11 asks.
    let key = w.dir.join("log-key.pem");
    if !key.exists() {
        dcledger::keys::write_signing_key(&key, &w.log_key).expect("write the log key");
    }
    let port = free_port();
    let base_url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let mut server = Command::new(BIN)
        .args([
            "serve",
            "--data",
            w.kept.to_str().expect("path"),
            "--log-key",
        ])
        .arg(&key)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let first = |path: &str| {
        while !get_ok(&agent, &format!("{base_url}{path}")) {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "no answer to {path}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        started.elapsed().as_secs_f64() * 1e3
    };
    let proof_ms = first(&format!("/v1/proofs/inclusion/{}", size / 2));
    let tile_ms = first(&format!("/{}", TileId::hashes(0, 0, 256).path()));
    println!(
        "starting `serve` at {size} entries: first inclusion proof after {proof_ms:.0} ms, \
         first tile after {tile_ms:.0} ms"
    );
    let full_tiles = size / 256;
    let healthz = throughput(|_| format!("{base_url}/healthz"));
    let proofs = throughput(|i| format!("{base_url}/v1/proofs/inclusion/{}", i % size));
    let tiles = throughput(|i| {
        let tile = TileId::hashes(0, i % full_tiles, 256);
        format!("{base_url}/{}", tile.path())
    });
    println!(
        "{CLIENTS} clients at {size} entries: inclusion proofs {proofs:.0}/s, level-0 tiles \
         {tiles:.0}/s (yardstick: /healthz {healthz:.0}/s)"
    );
    let _ = server.kill();
    let _ = server.wait();
}
