//! `cargo bench --bench reports [-- FACILITIES]`: the reports and pages over HTTP on the
//! benchmarks' world of about a million entries (`benches/world`), with the server's
//! snapshot warm: `GET /v1/reports/regions`, the valuation screen of every facility,
//! one facility's valuation, and a facility's page, each beside two yardsticks measured
//! in the same run: `GET /v1/checkpoint` (the cost of a request at all) and the audit
//! behind every report when the snapshot was not yet asked about that month
//! (`GET /v1/findings?facility=…&as_of=…`, a month earlier each time). Prints figures;
//! asserts nothing. Traffic stays on 127.0.0.1.

mod serving;
mod world;

use std::time::{Duration, Instant};

use dcledger::server::ServeConfig;
use serde_json::Value;

/// Requests timed per figure, after one untimed request.
const ROUNDS: usize = 10;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into()
}

/// GETs `path` once; the status and body.
fn fetch(agent: &ureq::Agent, base: &str, path: &str) -> (u16, String) {
    let mut response = agent
        .get(&format!("{base}{path}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(256 * 1024 * 1024)
        .read_to_string()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    (status, body)
}

/// Times `ROUNDS` GETs of `path` after one untimed; prints min / median / max.
fn time(agent: &ureq::Agent, base: &str, what: &str, path: &str) {
    let (status, body) = fetch(agent, base, path);
    assert_eq!(status, 200, "{path}: {body}");
    time_each(agent, base, what, body.len(), |_| path.to_string());
}

/// Times `ROUNDS` GETs, the k-th of `path(k)`; prints min / median / max.
fn time_each(
    agent: &ureq::Agent,
    base: &str,
    what: &str,
    bytes: usize,
    path: impl Fn(usize) -> String,
) {
    let mut ms: Vec<f64> = (0..ROUNDS)
        .map(|k| {
            let path = path(k);
            let start = Instant::now();
            let (status, _) = fetch(agent, base, &path);
            assert_eq!(status, 200, "{path}");
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "{what:<46} {:>8.1} {:>8.1} {:>8.1} ms  ({} bytes)",
        ms[0],
        ms[ROUNDS / 2],
        ms[ROUNDS - 1],
        bytes
    );
}

fn main() {
    let world = world::world();
    let base = format!(
        "http://{}",
        serving::start(ServeConfig {
            data: world.kept.clone(),
            config: dcledger::config::Config::default(),
            log_key: world.log_key.clone(),
        })
    );
    let agent = agent();
    let start = Instant::now();
    let (_, screen) = fetch(&agent, &base, "/v1/reports/valuation?limit=1");
    println!(
        "snapshot loaded and first report answered in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    let screen: Value = serde_json::from_str(&screen).expect("JSON");
    let facility = screen["rows"][0]["facility_id"]
        .as_str()
        .expect("a facility")
        .to_string();
    let (_, healthz) = fetch(&agent, &base, "/healthz");
    println!("{healthz}");
    println!(
        "{:<46} {:>8} {:>8} {:>8}",
        "request (warm snapshot)", "min", "median", "max"
    );
    time(
        &agent,
        &base,
        "yardstick: GET /v1/checkpoint",
        "/v1/checkpoint",
    );
    // The audit behind every report, as of months the snapshot was not yet asked
    // about: what a report costs without the snapshot's memo of its latest audit.
    let as_of =
        dcledger::dates::Month::parse(screen["as_of"].as_str().expect("as_of")).expect("a month");
    time_each(
        &agent,
        &base,
        "yardstick: an audit as of another month",
        0,
        |k| {
            let month = as_of.plus(-1 - i32::try_from(k).expect("a few rounds"));
            format!("/v1/findings?facility={facility}&as_of={month}")
        },
    );
    time(
        &agent,
        &base,
        "GET /v1/reports/regions",
        "/v1/reports/regions",
    );
    time(
        &agent,
        &base,
        "GET /v1/reports/valuation (all, 1,000 a page)",
        "/v1/reports/valuation?limit=1000",
    );
    time(
        &agent,
        &base,
        "GET /v1/reports/valuation/{id}",
        &format!("/v1/reports/valuation/{facility}"),
    );
    time(
        &agent,
        &base,
        "GET /facilities/{id} (page)",
        &format!("/facilities/{facility}"),
    );
    time(&agent, &base, "GET / (page)", "/");
    std::process::exit(0);
}
