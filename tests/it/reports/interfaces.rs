//! The reports over the real interfaces (PROTOCOL §9, §10): `dcledger serve` on a loopback
//! port and `dcledger report`. Assumptions come from a query parameter, the config file
//! or the default, and say which; a bad one is refused naming it. Every answer names
//! the checkpoint it was computed from (equal to the ledger's own) and the digest of the
//! configuration; the valuation screen pages in a total order, in JSON and in CSV; CSV is
//! RFC 4180 with a leading comment line and a fixed header.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use num_bigint::BigInt;
use serde_json::{Value, json};

use super::{Doc, big, installed};
use crate::audit_rules::{FAC, OTHER, World};
use crate::http::{Answer, Server, answer, close, get, new_agent, problem};
use crate::support::{bin, path_str, run_ok, stdout};

/// A province whose name needs CSV quoting.
const QUOTED: &str = "Inner Mongolia, \"West\"";

/// Facilities for the screen (as of June 2025, its latest report period): dc-a earns,
/// dc-b, dc-c and dc-d own nothing (equity 0: a tie broken by id), dc-e owes a loan,
/// dc-f in a province needing CSV quoting holds A100s, dc-late is announced after as_of.
fn world() -> World {
    let mut w = World::new();
    installed(&mut w, "lot-a", FAC, "H100", 10, "2025-01-01");
    w.occupancy("2025-06", 10, 7_200, 3_600, 0);
    w.power("2025-06", 1_000, 800, 0, 0);
    for id in ["dc-c", "dc-d", "dc-e"] {
        w.register(id, "Henan", "2024-01-01");
    }
    w.loan(
        "loan-e",
        "dc-e",
        50_000_000,
        false,
        "2024-06-01",
        &["parcel-dc-e"],
    );
    w.register("dc-f", QUOTED, "2024-01-01");
    installed(&mut w, "lot-f", "dc-f", "A100", 2, "2025-02-01");
    w.register("dc-late", "Henan", "2025-07-01");
    w.status("op", OTHER, "operational", "2024-01-01");
    w
}

/// The ledger of `w`, closed (one process opens a ledger at a time), in its temporary
/// directory.
fn closed(mut w: World) -> (tempfile::TempDir, PathBuf) {
    w.flush();
    let (dir, data, _) = close(w.t);
    (dir, data)
}

fn serve(data: &Path, config: Option<&Path>, log: &Path) -> Server {
    let mut args = vec!["serve", "--data", path_str(data), "--listen", "127.0.0.1:0"];
    if let Some(c) = config {
        args.extend(["--config", path_str(c)]);
    }
    Server::start_with(&args, log)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

/// A JSON answer, 200, read exactly.
fn doc(agent: &ureq::Agent, server: &Server, path: &str) -> Doc {
    let a = get(agent, &server.url(path));
    assert_eq!(a.status, 200, "GET {path}: {}", a.text);
    assert!(
        a.content_type.starts_with("application/json"),
        "{path}: {}",
        a.content_type
    );
    Doc::new(a.text)
}

/// An assumption's value and source in a valuation or screen page.
fn sourced(d: &Doc, name: &str) -> (BigInt, String) {
    (
        d.int(&format!("/assumptions/{name}/value")),
        d.str(&format!("/assumptions/{name}/source")),
    )
}

fn rent(d: &Doc, model: &str) -> (BigInt, String) {
    sourced(d, &format!("rent_gpu_month_minor/{model}"))
}

#[test]
fn assumptions_come_from_the_query_the_config_file_or_the_default() {
    let (dir, data) = closed(world());
    let config = write(
        dir.path(),
        "dcledger.toml",
        "[valuation]\ntariff_minor_per_kwh = 60\nrent.H100 = 1000000\n",
    );
    let agent = new_agent();
    let v = "/v1/reports/valuation/dc-a";
    {
        let server = serve(&data, None, &dir.path().join("plain.log"));
        let plain = doc(&agent, &server, v);
        assert_eq!(
            sourced(&plain, "tariff_minor_per_kwh"),
            (big(50), "default".into())
        );
        assert_eq!(rent(&plain, "H100"), (big(937_500), "default".into()));
        // 1,000 kWh × 50 in one report; 10 × 937,500 × 3,600 ÷ 7,200.
        assert_eq!(plain.int("/energy_month"), big(50_000));
        assert_eq!(plain.int("/revenue_month"), big(4_687_500));

        let tariff = doc(&agent, &server, &format!("{v}?tariff_minor_per_kwh=60"));
        assert_eq!(
            sourced(&tariff, "tariff_minor_per_kwh"),
            (big(60), "query".into())
        );
        assert_eq!(tariff.int("/energy_month"), big(60_000));
        assert_ne!(tariff.str("/config_b3"), plain.str("/config_b3"));

        let rented = doc(&agent, &server, &format!("{v}?rent.H100=1000000"));
        assert_eq!(rent(&rented, "H100"), (big(1_000_000), "query".into()));
        assert_eq!(rented.int("/revenue_month"), big(5_000_000));
        assert_ne!(rented.str("/config_b3"), plain.str("/config_b3"));

        let screen = doc(
            &agent,
            &server,
            "/v1/reports/valuation?tariff_minor_per_kwh=60",
        );
        assert_eq!(
            sourced(&screen, "tariff_minor_per_kwh"),
            (big(60), "query".into())
        );
        assert_eq!(screen.str("/config_b3"), tariff.str("/config_b3"));
    }
    let server = serve(&data, Some(&config), &dir.path().join("config.log"));
    let configured = doc(&agent, &server, v);
    assert_eq!(
        sourced(&configured, "tariff_minor_per_kwh"),
        (big(60), "config".into())
    );
    assert_eq!(
        sourced(&configured, "haircut_bp"),
        (big(4_000), "default".into())
    );
    assert_eq!(rent(&configured, "H100"), (big(1_000_000), "config".into()));
    assert_eq!(configured.int("/energy_month"), big(60_000));
    assert_eq!(configured.int("/revenue_month"), big(5_000_000));
    // The query overrides the file.
    let both = doc(&agent, &server, &format!("{v}?tariff_minor_per_kwh=70"));
    assert_eq!(
        sourced(&both, "tariff_minor_per_kwh"),
        (big(70), "query".into())
    );
    assert_eq!(rent(&both, "H100"), (big(1_000_000), "config".into()));
    assert_eq!(both.int("/energy_month"), big(70_000));
    let screen = doc(&agent, &server, "/v1/reports/valuation");
    assert_eq!(
        sourced(&screen, "tariff_minor_per_kwh"),
        (big(60), "config".into())
    );
    drop(server);

    // The CLI says the same.
    let cli = |args: &[&str]| {
        let mut all = vec![
            "report",
            "valuation",
            FAC,
            "--data",
            path_str(&data),
            "--format",
            "json",
        ];
        all.extend(args);
        Doc::new(stdout(&run_ok(&all)))
    };
    assert_eq!(
        sourced(&cli(&[]), "tariff_minor_per_kwh"),
        (big(50), "default".into())
    );
    let set = cli(&["--set", "tariff_minor_per_kwh=60", "--rent", "H100=1000000"]);
    assert_eq!(
        sourced(&set, "tariff_minor_per_kwh"),
        (big(60), "query".into())
    );
    assert_eq!(rent(&set, "H100"), (big(1_000_000), "query".into()));
    assert_eq!(set.int("/energy_month"), big(60_000));
    let file = cli(&["--config", path_str(&config)]);
    assert_eq!(
        sourced(&file, "tariff_minor_per_kwh"),
        (big(60), "config".into())
    );
    assert_eq!(rent(&file, "H100"), (big(1_000_000), "config".into()));
    assert_eq!(file.str("/config_b3"), configured.str("/config_b3"));
    let over = cli(&[
        "--config",
        path_str(&config),
        "--set",
        "tariff_minor_per_kwh=70",
    ]);
    assert_eq!(
        sourced(&over, "tariff_minor_per_kwh"),
        (big(70), "query".into())
    );
    assert_eq!(over.str("/config_b3"), both.str("/config_b3"));
}

/// (parameter, value) pairs each refused with 400 naming the parameter.
const BAD: &[(&str, &str)] = &[
    ("tarif", "5"),
    ("haircut_bp", "10001"),
    ("discount_rate_bp", "-1"),
    ("tariff_minor_per_kwh", "1.5"),
    ("life_months", "sixty"),
    ("maintenance_gpu_month_minor", "9007199254740992"),
    ("distressed_utilization_bp", ""),
    ("rent.H100", "1e6"),
    ("rent.H100", "-5"),
];

#[test]
fn bad_assumptions_are_400_naming_the_parameter() {
    let (dir, data) = closed(world());
    let server = serve(&data, None, &dir.path().join("server.log"));
    let agent = new_agent();
    for path in ["/v1/reports/valuation/dc-a", "/v1/reports/valuation"] {
        for (name, value) in BAD {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair(name, value)
                .finish();
            let a = get(&agent, &server.url(&format!("{path}?{query}")));
            let p = problem(&a, 400, "bad-parameter");
            assert_eq!(p["errors"][0]["parameter"], *name, "{path}?{query}: {p}");
            assert!(
                p["detail"].as_str().is_some_and(|d| d.contains(name)),
                "{path}?{query}: {p}"
            );
        }
    }
    // A month that is not one, or one outside 1970..9999, on every report and the audit:
    // the error names the parameter and says which rule the month broke.
    for path in [
        "/v1/reports/regions",
        "/v1/reports/regions/Henan",
        "/v1/reports/valuation/dc-a",
        "/v1/reports/valuation",
        "/v1/findings",
        "/v1/facilities/dc-a",
    ] {
        for (month, says) in [
            ("2025-13", "is not a month"),
            ("1969-12", "outside 1970-01-01"),
        ] {
            let a = get(&agent, &server.url(&format!("{path}?as_of={month}")));
            let error = &problem(&a, 400, "bad-parameter")["errors"][0];
            assert_eq!(error["parameter"], "as_of", "{path}");
            let message = error["message"].as_str().expect("a message");
            assert!(message.contains(says), "{path} {month}: {message}");
        }
    }
    // What is not there is 404.
    for path in [
        "/v1/reports/valuation/dc-nowhere",
        "/v1/reports/regions/Atlantis",
    ] {
        problem(&get(&agent, &server.url(path)), 404, "not-found");
    }
    // Region reports take no assumptions.
    let a = get(&agent, &server.url("/v1/reports/regions?haircut_bp=1"));
    assert_eq!(
        problem(&a, 400, "bad-parameter")["errors"][0]["parameter"],
        "haircut_bp"
    );
    // A valid value at the bound is taken.
    assert_eq!(
        get(
            &agent,
            &server.url("/v1/reports/valuation/dc-a?haircut_bp=10000&rent.H100=9007199254740991")
        )
        .status,
        200
    );
}

#[test]
fn the_cli_refuses_bad_assumptions_naming_them() {
    let (dir, data) = closed(world());
    let bad_config = write(dir.path(), "bad.toml", "[valuation]\nhaircut_bp = 10001\n");
    let mut cases: Vec<(Vec<String>, &str)> = BAD
        .iter()
        .map(|(name, value)| match name.strip_prefix("rent.") {
            Some(model) => (vec!["--rent".into(), format!("{model}={value}")], *name),
            None => (vec!["--set".into(), format!("{name}={value}")], *name),
        })
        .collect();
    cases.push((vec!["--set".into(), "haircut_bp".into()], "haircut_bp"));
    cases.push((
        vec!["--config".into(), path_str(&bad_config).into()],
        "haircut_bp",
    ));
    for (args, name) in cases {
        let out = bin()
            .args(["report", "valuation", FAC, "--data", path_str(&data)])
            .args(&args)
            .output()
            .expect("run dcledger");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was taken");
        // `--rent MODEL=…` names the model as given.
        let model = name.strip_prefix("rent.").unwrap_or(name);
        assert!(stderr.contains(model), "{args:?}: {stderr}");
    }
}

// ---------------------------------------------------------------------------------------
// Citable answers.

/// (tree size, root hex) of a checkpoint note.
fn checkpoint_of(note: &str) -> (u64, String) {
    let lines: Vec<&str> = note.lines().collect();
    let size = lines[1].parse().expect("tree size");
    let root = base64::engine::general_purpose::STANDARD
        .decode(lines[2])
        .expect("base64 root");
    (size, hex::encode(root))
}

/// The `key=value` words of a CSV answer's leading comment line, and the rest.
fn csv_parts(text: &str) -> (BTreeMap<String, String>, String) {
    let (first, rest) = text.split_once("\r\n").expect("CRLF lines (RFC 4180)");
    let comment = first
        .strip_prefix("# ")
        .unwrap_or_else(|| panic!("no comment line: {first}"));
    let words = comment
        .split(' ')
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (words, rest.to_string())
}

/// A CSV answer's header and records, parsed by the csv crate (RFC 4180).
fn csv_rows(body: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body.as_bytes());
    let header = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.expect("record").iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn csv_get(agent: &ureq::Agent, server: &Server, path: &str) -> Answer {
    let a = get(agent, &server.url(path));
    assert_eq!(a.status, 200, "GET {path}: {}", a.text);
    assert!(
        a.content_type.starts_with("text/csv"),
        "{path}: {}",
        a.content_type
    );
    a
}

#[test]
fn every_report_names_its_checkpoint_and_configuration() {
    let (dir, data) = closed(world());
    let (size, root) = checkpoint_of(&stdout(&run_ok(&["checkpoint", "--data", path_str(&data)])));
    // The CLI's reports.
    for args in [
        vec!["report", "regions", "--format", "json"],
        vec!["report", "valuation", FAC, "--format", "json"],
        vec!["report", "valuation", "--all", "--format", "json"],
        vec!["audit", "--format", "json"],
    ] {
        let mut all = args.clone();
        all.extend(["--data", path_str(&data)]);
        let d = Doc::new(stdout(&run_ok(&all)));
        assert_eq!(d.int("/checkpoint/tree_size"), big(size), "{args:?}");
        assert_eq!(d.str("/checkpoint/root"), root, "{args:?}");
        assert!(is_hex64(&d.str("/config_b3")), "{args:?}");
    }
    for args in [
        vec!["report", "regions", "--format", "csv"],
        vec!["report", "valuation", "--all", "--format", "csv"],
        vec!["audit", "--format", "csv"],
    ] {
        let mut all = args.clone();
        all.extend(["--data", path_str(&data)]);
        let (words, _) = csv_parts(&stdout(&run_ok(&all)));
        assert_eq!(words["tree_size"], size.to_string(), "{args:?}");
        assert_eq!(words["root"], root, "{args:?}");
        assert!(is_hex64(&words["config_b3"]), "{args:?}");
    }

    let server = serve(&data, None, &dir.path().join("server.log"));
    let agent = new_agent();
    let note = get(&agent, &server.url("/v1/checkpoint")).text;
    assert_eq!(checkpoint_of(&note), (size, root.clone()));
    let reports = [
        "/v1/reports/regions",
        "/v1/reports/regions/Henan",
        "/v1/reports/valuation/dc-a",
        "/v1/reports/valuation",
        "/v1/findings",
    ];
    let mut digests = BTreeSet::new();
    for path in reports {
        let d = doc(&agent, &server, path);
        assert_eq!(d.int("/checkpoint/tree_size"), big(size), "{path}");
        assert_eq!(d.str("/checkpoint/root"), root, "{path}");
        assert!(is_hex64(&d.str("/config_b3")), "{path}");
        digests.insert(d.str("/config_b3"));
        let a = csv_get(&agent, &server, &format!("{path}?format=csv"));
        let (words, _) = csv_parts(&a.text);
        assert_eq!(words["tree_size"], size.to_string(), "{path} CSV");
        assert_eq!(words["root"], root, "{path} CSV");
        assert_eq!(words["config_b3"], d.str("/config_b3"), "{path} CSV");
    }
    // One configuration in force, one digest; another assumption, another digest.
    assert_eq!(digests.len(), 1, "{digests:?}");
    let tuned = doc(
        &agent,
        &server,
        "/v1/reports/valuation/dc-a?haircut_bp=5000",
    );
    assert!(!digests.contains(&tuned.str("/config_b3")));
    // `Accept: text/csv` asks for CSV too.
    let a = answer(
        agent
            .get(&server.url("/v1/reports/regions"))
            .header("accept", "text/csv")
            .call(),
    )
    .expect("GET");
    assert!(a.content_type.starts_with("text/csv"), "{}", a.content_type);
    assert!(a.text.starts_with("# "), "{}", a.text);
    drop(server);

    // A configuration file moves the digest of every answer, findings included.
    let config = write(dir.path(), "c.toml", "[audit]\nidle_utilization_pct = 40\n");
    let server = serve(&data, Some(&config), &dir.path().join("config.log"));
    for path in reports {
        let d = doc(&agent, &server, path);
        assert!(!digests.contains(&d.str("/config_b3")), "{path}");
    }
}

/// Follows a JSON screen's `next` with `limit=1` to its end.
fn page_json(agent: &ureq::Agent, server: &Server, query: &str) -> Vec<(String, BigInt)> {
    let mut rows = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut q = form_urlencoded::Serializer::new(query.to_string());
        q.append_pair("limit", "1");
        if let Some(a) = &after {
            q.append_pair("after", a);
        }
        let page = doc(
            agent,
            server,
            &format!("/v1/reports/valuation?{}", q.finish()),
        );
        let items = page.at("/rows").items();
        assert!(items.len() <= 1, "limit=1 gave {}", items.len());
        for r in items {
            rows.push((r.str("/facility_id"), r.int("/equity_value")));
        }
        match page.at("/next").value() {
            Value::Null => return rows,
            Value::String(next) => after = Some(next),
            other => panic!("next is {other}"),
        }
        assert!(rows.len() < 100, "paging does not end");
    }
}

/// Follows a CSV screen's `Link: <…>; rel="next"` headers to the end.
fn page_csv(agent: &ureq::Agent, server: &Server, first: &str) -> Vec<(String, BigInt)> {
    let mut rows = Vec::new();
    let mut path = first.to_string();
    loop {
        let a = csv_get(agent, server, &path);
        let (_, body) = csv_parts(&a.text);
        let (header, records) = csv_rows(&body);
        let id = header
            .iter()
            .position(|h| h == "facility_id")
            .expect("facility_id");
        let equity = header
            .iter()
            .position(|h| h == "equity_value")
            .expect("equity_value");
        assert!(records.len() <= 1, "limit=1 gave {}", records.len());
        for r in records {
            rows.push((r[id].clone(), r[equity].parse().expect("an integer")));
        }
        if a.link.is_empty() {
            return rows;
        }
        let next = a
            .link
            .strip_prefix('<')
            .and_then(|l| l.strip_suffix(">; rel=\"next\""))
            .unwrap_or_else(|| panic!("Link header {:?}", a.link));
        path = next.to_string();
        assert!(rows.len() < 100, "paging does not end");
    }
}

#[test]
fn the_screen_pages_every_facility_once_in_equity_order() {
    let (dir, data) = closed(world());
    let server = serve(&data, None, &dir.path().join("server.log"));
    let agent = new_agent();
    let full = doc(&agent, &server, "/v1/reports/valuation?limit=1000");
    assert_eq!(full.at("/next").value(), Value::Null);
    let whole: Vec<(String, BigInt)> = full
        .at("/rows")
        .items()
        .iter()
        .map(|r| (r.str("/facility_id"), r.int("/equity_value")))
        .collect();
    // Every facility announced by June 2025, once; dc-late not.
    let ids: BTreeSet<&str> = whole.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        BTreeSet::from([FAC, OTHER, "dc-c", "dc-d", "dc-e", "dc-f"])
    );
    assert_eq!(ids.len(), whole.len());
    // Ascending equity value, ties by facility id: the loan first, the three empty
    // facilities (equity 0) by id, then the rest.
    let mut sorted = whole.clone();
    sorted.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
    assert_eq!(whole, sorted);
    assert_eq!(whole[0], ("dc-e".to_string(), big(-50_000_000)));
    let zero: Vec<&str> = whole
        .iter()
        .filter(|(_, e)| *e == big(0))
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(zero, [OTHER, "dc-c", "dc-d"]);

    assert_eq!(page_json(&agent, &server, ""), whole);
    assert_eq!(
        page_csv(&agent, &server, "/v1/reports/valuation?format=csv&limit=1"),
        whole
    );
    // Filters page the same way, with their assumptions carried along.
    let henan: Vec<(String, BigInt)> = whole
        .iter()
        .filter(|(id, _)| id != "dc-f")
        .cloned()
        .collect();
    assert_eq!(page_json(&agent, &server, "province=Henan"), henan);
    let tuned = page_csv(
        &agent,
        &server,
        "/v1/reports/valuation?format=csv&limit=1&province=Henan&haircut_bp=10000",
    );
    let ids: Vec<&str> = tuned.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), henan.len());
    assert_eq!(
        tuned.iter().find(|(id, _)| id == FAC).map(|r| r.1.clone()),
        {
            // With no liquidation value, dc-a's asset value is its income value.
            let d = doc(
                &agent,
                &server,
                "/v1/reports/valuation/dc-a?haircut_bp=10000",
            );
            Some(d.int("/equity_value"))
        }
    );
    let distressed = page_json(&agent, &server, "distressed=true");
    let expected: Vec<(String, BigInt)> = full
        .at("/rows")
        .items()
        .iter()
        .filter(|r| r.at("/distressed").value() == json!(true))
        .map(|r| (r.str("/facility_id"), r.int("/equity_value")))
        .collect();
    assert_eq!(distressed, expected);
    // A cursor that is not one is refused naming `after`.
    let a = get(&agent, &server.url("/v1/reports/valuation?after=nonsense"));
    assert_eq!(
        problem(&a, 400, "bad-parameter")["errors"][0]["parameter"],
        "after"
    );
}

#[test]
fn csv_is_rfc4180_with_a_fixed_header() {
    let (dir, data) = closed(world());
    let server = serve(&data, None, &dir.path().join("server.log"));
    let agent = new_agent();
    let regions = csv_get(&agent, &server, "/v1/reports/regions?format=csv");
    let (_, body) = csv_parts(&regions.text);
    // The quoted province is written as RFC 4180 says.
    assert!(body.contains("\"Inner Mongolia, \"\"West\"\"\""), "{body}");
    let (header, rows) = csv_rows(&body);
    assert_eq!(
        header,
        [
            "region",
            "facilities_announced",
            "facilities_under_construction",
            "facilities_operational",
            "facilities_suspended",
            "facilities_decommissioned",
            "facility_count",
            "gpus_deployed",
            "gpu_hours_sold",
            "gpu_hours_voucher",
            "gpu_hours_available",
            "utilization_bp",
            "idle_gpus",
            "idle_share_bp",
            "subsidies_disbursed",
            "disbursed_at_flagged",
            "consumed_kwh",
            "resold_kwh",
            "resold_share_bp",
            "top_findings",
            "facility_ids",
        ]
    );
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["national", "Henan", QUOTED]);
    // The CSV says what the JSON says.
    let json = doc(&agent, &server, "/v1/reports/regions");
    for (i, row) in rows.iter().enumerate() {
        let r = json.at(&format!("/regions/{i}"));
        assert_eq!(row[0], r.str("/region"));
        assert_eq!(row[7], r.int("/gpus_deployed").to_string());
        assert_eq!(row[10], r.int("/gpu_hours_available").to_string());
        let util = r
            .opt_int("/utilization_bp")
            .map(|x| x.to_string())
            .unwrap_or_default();
        assert_eq!(row[11], util);
    }
    let one = csv_get(
        &agent,
        &server,
        &format!(
            "/v1/reports/regions/{}?format=csv",
            QUOTED
                .replace(' ', "%20")
                .replace(',', "%2C")
                .replace('"', "%22")
        ),
    );
    let (_, rows) = csv_rows(&csv_parts(&one.text).1);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], QUOTED);
    assert_eq!(rows[0][7], "2");

    for (path, columns) in [
        (
            "/v1/reports/valuation?format=csv",
            &[
                "facility_id",
                "province",
                "gpus",
                "paid_utilization_bp",
                "noi_month",
                "asset_value",
                "equity_value",
                "distressed",
            ][..],
        ),
        (
            "/v1/reports/valuation/dc-f?format=csv",
            &[
                "facility_id",
                "province",
                "gpus",
                "paid_utilization_bp",
                "noi_month",
                "asset_value",
                "equity_value",
                "distressed",
                "revenue_month",
                "energy_month",
                "maintenance_month",
                "income_value",
                "liquidation_value",
                "clawback_exposure",
                "loans_outstanding",
                "unpriced_models",
            ][..],
        ),
        (
            "/v1/findings?format=csv",
            &[
                "id",
                "rule",
                "severity",
                "facility_id",
                "key",
                "amount_at_risk_minor",
                "currency",
                "evidence",
                "summary",
            ][..],
        ),
    ] {
        let a = csv_get(&agent, &server, path);
        let (header, rows) = csv_rows(&csv_parts(&a.text).1);
        assert_eq!(header, columns, "{path}");
        assert!(rows.iter().all(|r| r.len() == columns.len()), "{path}");
        // The same bytes again: a stable answer.
        assert_eq!(get(&agent, &server.url(path)).text, a.text, "{path}");
    }
    let screen = csv_get(
        &agent,
        &server,
        "/v1/reports/valuation?format=csv&province=Inner%20Mongolia%2C%20%22West%22",
    );
    let (_, rows) = csv_rows(&csv_parts(&screen.text).1);
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0][0].as_str(), rows[0][1].as_str()), ("dc-f", QUOTED));
}
