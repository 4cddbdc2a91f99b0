//! `cargo bench --bench http`: the HTTP API on a loopback socket. Prints accepted entries
//! per second with concurrent clients (single envelopes and small batches: group commit
//! shares the syncs) and larger batches beside the yardstick of strict signature checks on
//! every core in the same run, and read requests per second for the checkpoint and for
//! inclusion proofs. Prints figures; asserts nothing. Traffic stays on 127.0.0.1.

mod serving;
mod yardstick;

use std::time::{Duration, Instant};

use dcledger::entry::{self, EntryDraft, Kind};
use dcledger::ledger::Ledger;
use dcledger::server::ServeConfig;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

const CLIENTS: u8 = 16;
const PER_CLIENT: u64 = 400;
const READ_THREADS: usize = 8;
const READ_SECONDS: u64 = 3;

/// The benchmark ledger's origin, which every entry is signed for.
const ORIGIN: &str = "bench.example/http";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn sign(key: &SigningKey, seq: u64, body: Value) -> Value {
    entry::sign_envelope(
        key,
        ORIGIN,
        EntryDraft {
            kind: Kind::OrgRegister,
            seq,
            ts: "2025-01-01T00:00:00Z",
            body,
        },
    )
    .expect("canonical")
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn post(agent: &ureq::Agent, url: &str, body: &str) -> u16 {
    agent
        .post(url)
        .header("content-type", "application/json")
        .send(body.as_bytes())
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Submits `PER_CLIENT` entries from each client in requests of `batch` envelopes, every
/// body signed and written before the clock starts: the figure is the server's.
fn write_load(base: &str, first_seq: u64, batch: u64, tag: &str) -> f64 {
    let bodies: Vec<Vec<String>> = (0..CLIENTS)
        .map(|c| {
            let k = key(100 + c);
            (0..PER_CLIENT / batch)
                .map(|r| {
                    let seq = first_seq + r * batch;
                    let envs: Vec<Value> = (seq..seq + batch)
                        .map(|s| {
                            let body = json!({"org_id": format!("{tag}-{c}-{s}"), "name": "N", "roles": ["operator"]});
                            sign(&k, s, body)
                        })
                        .collect();
                    if batch == 1 {
                        envs[0].to_string()
                    } else {
                        Value::Array(envs).to_string()
                    }
                })
                .collect()
        })
        .collect();
    let url = format!("{base}/v1/entries");
    let start = Instant::now();
    std::thread::scope(|s| {
        for requests in &bodies {
            let url = &url;
            s.spawn(move || {
                let agent = agent();
                for body in requests {
                    assert_eq!(post(&agent, url, body), 201);
                }
            });
        }
    });
    f64::from(u32::from(CLIENTS)) * PER_CLIENT as f64 / start.elapsed().as_secs_f64()
}

fn read_load(base: &str, path: impl Fn(u64) -> String + Sync) -> f64 {
    let stop = Instant::now() + Duration::from_secs(READ_SECONDS);
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..READ_THREADS)
            .map(|t| {
                let path = &path;
                s.spawn(move || {
                    let agent = agent();
                    let mut n = 0u64;
                    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ t as u64;
                    while Instant::now() < stop {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let ok = agent
                            .get(&format!("{base}{}", path(x)))
                            .call()
                            .map(|r| r.status().as_u16() == 200);
                        assert!(ok.unwrap_or(false));
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("reader")).sum()
    });
    total as f64 / READ_SECONDS as f64
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let authority = key(1);
    let mut ledger = Ledger::init(&data, ORIGIN, "bench", &authority, &key(2)).expect("init");
    let mut seq = 2;
    for c in 0..CLIENTS {
        let org = format!("registrar-{c}");
        let reg = sign(
            &authority,
            seq,
            json!({"org_id": org, "name": org, "roles": ["authority"]}),
        );
        let grant = entry::sign_envelope(
            &authority,
            ORIGIN,
            EntryDraft {
                kind: Kind::KeyGrant,
                seq: seq + 1,
                ts: "2025-01-01T00:00:00Z",
                body: json!({"org_id": org, "public_key": hex::encode(key(100 + c).verifying_key().as_bytes())}),
            },
        )
        .expect("canonical");
        ledger
            .append_batch(vec![reg, grant])
            .expect("storage")
            .expect("accepted");
        seq += 2;
    }
    ledger.close().expect("close");

    let addr = serving::start(ServeConfig {
        data,
        config: dcledger::config::Config::default(),
        log_key: key(2),
    });
    let base = format!("http://{addr}");
    println!("dcledger HTTP benchmark on {base}: {CLIENTS} clients × {PER_CLIENT} entries");

    let singles = write_load(&base, 1, 1, "single");
    println!("accepted, one envelope per request:   {singles:>8.0} entries/s");
    let batched = write_load(&base, 1 + PER_CLIENT, 10, "batch");
    println!("accepted, 10 envelopes per request:   {batched:>8.0} entries/s");
    let large = write_load(&base, 1 + 2 * PER_CLIENT, 100, "large");
    println!("accepted, 100 envelopes per request:  {large:>8.0} entries/s");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let yardstick = yardstick::verify_strict_rate(cores, 10_000, 120, ORIGIN);
    let own = yardstick::entry_check_rate(cores, 10_000, 120, ORIGIN);
    println!(
        "yardstick: verify_strict on {cores} cores: {yardstick:>8.0} signatures/s \
         (100 a request: {:.0}% of it; the ledger's own check: {own:.0}/s)",
        100.0 * large / yardstick
    );

    let size = agent()
        .get(&format!("{base}/healthz"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["tree_size"].as_u64())
        .unwrap_or(1);
    let checkpoints = read_load(&base, |_| "/v1/checkpoint".into());
    println!("GET /v1/checkpoint ({READ_THREADS} readers):   {checkpoints:>8.0} requests/s");
    let proofs = read_load(&base, |x| format!("/v1/proofs/inclusion/{}", x % size));
    println!("GET inclusion proof at size {size}: {proofs:>8.0} requests/s");
    std::process::exit(0);
}
