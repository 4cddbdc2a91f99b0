//! `dcledger export parquet` and `sql/audit.sql` (PROTOCOL §12.4): generated worlds and
//! the demo world are exported, the twenty rules are run in DuckDB (the `duckdb` Python
//! package, which `.ci/run` installs) over the export, and they must find exactly the
//! (rule, facility, key) set `dcledger audit --format json` finds for the same month;
//! every file must have the rows and BLAKE3 its manifest says.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{demo_dir, init_demo_ledger, log_key_file, path_str, run_ok, stdout};

/// What one finding is about: (rule, facility, key).
type About = BTreeSet<(String, String, String)>;

/// Runs sql/audit.sql in the export directory as of `as_of`; prints the final
/// statement's (rule, facility_id, key) rows, then every file's row count as DuckDB
/// reads it, as one JSON object.
const DUCKDB_DRIVER: &str = r#"
import json, os, sys
import duckdb
export, as_of, script = sys.argv[1:4]
os.chdir(export)
con = duckdb.connect()
con.execute("SET VARIABLE as_of = ?", [as_of])
result = con.execute(open(script, encoding="utf-8").read())
names = [d[0] for d in result.description]
rows = [dict(zip(names, r)) for r in result.fetchall()]
found = [[r["rule"], r["facility_id"], r["key"]] for r in rows]
counts = {}
for name in sorted(os.listdir(".")):
    if name.endswith(".parquet"):
        counts[name] = con.execute("SELECT count(*) FROM read_parquet(?)", [name]).fetchone()[0]
print(json.dumps({"found": found, "rows": counts}))
"#;

fn about(findings: &[Value], key: impl Fn(&Value) -> (String, String, String)) -> About {
    findings.iter().map(key).collect()
}

fn text(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("{v} is not a string"))
        .to_string()
}

/// Exports the ledger in `data` as of `as_of` into `out`, runs the SQL over it and
/// compares with the audit; returns what both found.
fn assert_sql_equals_audit(data: &Path, out: &Path, as_of: &str) -> About {
    run_ok(&[
        "export",
        "parquet",
        "--data",
        path_str(data),
        "--out",
        path_str(out),
        "--as-of",
        as_of,
    ]);
    let audit: Value = serde_json::from_str(&stdout(&run_ok(&[
        "audit",
        "--data",
        path_str(data),
        "--as-of",
        as_of,
        "--format",
        "json",
    ])))
    .expect("audit JSON");
    let expected = about(audit["findings"].as_array().expect("findings"), |f| {
        (text(&f["rule"]), text(&f["facility_id"]), text(&f["key"]))
    });

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/audit.sql");
    let ran = Command::new("python3")
        .args(["-c", DUCKDB_DRIVER, path_str(out), as_of, path_str(&script)])
        .output()
        .expect("python3 runs (.ci/run installs it, with the duckdb package)");
    assert!(
        ran.status.success(),
        "sql/audit.sql in DuckDB failed: {}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let answer: Value = serde_json::from_slice(&ran.stdout).expect("the driver's JSON");
    let found = about(answer["found"].as_array().expect("found"), |r| {
        (text(&r[0]), text(&r[1]), text(&r[2]))
    });
    let missed: Vec<_> = expected.difference(&found).collect();
    let spurious: Vec<_> = found.difference(&expected).collect();
    assert!(
        missed.is_empty() && spurious.is_empty(),
        "{} as of {as_of}: the SQL missed {missed:?} and found besides {spurious:?}",
        data.display()
    );
    assert_eq!(
        found.len(),
        answer["found"].as_array().map_or(0, Vec::len),
        "the SQL yields one row per finding"
    );

    assert_manifest_holds(out, &answer["rows"], &audit, expected.len());
    expected
}

/// The manifest names every file, with the rows DuckDB reads and the BLAKE3 of its
/// bytes, and the basis the audit gives.
fn assert_manifest_holds(out: &Path, rows: &Value, audit: &Value, findings: usize) {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap())
            .expect("manifest JSON");
    let files = manifest["files"].as_object().expect("files");
    let on_disk: BTreeSet<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "manifest.json")
        .collect();
    let named: BTreeSet<String> = files.keys().cloned().collect();
    assert_eq!(
        on_disk, named,
        "the manifest names every file and only those"
    );
    // entries, findings and one table per record kind, even an empty one.
    assert_eq!(named.len(), 2 + dcledger::entry::Kind::ALL.len());
    for (name, summary) in files {
        let bytes = std::fs::read(out.join(name)).unwrap();
        assert_eq!(
            mode_of(&out.join(name)),
            0o600,
            "{name}: owner-only, like every file the ledger writes"
        );
        assert_eq!(
            summary["blake3"].as_str(),
            Some(blake3::hash(&bytes).to_hex().as_str()),
            "{name}: BLAKE3"
        );
        assert_eq!(summary["rows"], rows[name], "{name}: rows");
    }
    assert_eq!(
        files["entries.parquet"]["rows"], manifest["tree_size"],
        "a row per entry"
    );
    assert_eq!(files["findings.parquet"]["rows"], findings);
    assert_eq!(mode_of(&out.join("manifest.json")), 0o600);
    assert_eq!(manifest["tree_size"], audit["checkpoint"]["tree_size"]);
    assert_eq!(manifest["root"], audit["checkpoint"]["root"]);
    assert_eq!(manifest["as_of"], audit["as_of"]);
    assert_eq!(manifest["config_b3"], audit["config_b3"]);
    let checkpoint = manifest["checkpoint"].as_str().expect("checkpoint text");
    let size = manifest["tree_size"].to_string();
    assert_eq!(
        checkpoint.lines().nth(1),
        Some(size.as_str()),
        "the checkpoint note signs the exported size"
    );
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The demo world appended to a new ledger in `dir/data`.
fn demo_ledger(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    init_demo_ledger(&data);
    run_ok(&[
        "append",
        "--data",
        path_str(&data),
        "--log-key",
        path_str(&log_key_file(&data)),
        path_str(&demo_dir().join("entries.ndjson")),
    ]);
    data
}

#[test]
fn the_sql_rules_find_what_the_audit_finds_in_the_demo_world() {
    let tmp = tempfile::tempdir().unwrap();
    let data = demo_ledger(tmp.path());
    // The demo's month, and earlier ones where less has happened (exported again into
    // the same directory, which replaces the files).
    let out = tmp.path().join("export");
    for as_of in ["2025-03", "2024-06", "2023-09"] {
        assert_sql_equals_audit(&data, &out, as_of);
    }
}

#[test]
fn the_sql_rules_find_what_the_audit_finds_in_generated_worlds() {
    // (seed, facilities, months, anomaly rate %): every rule fires in these worlds.
    for (seed, facilities, months, rate) in [(7, 60, 30, "100"), (11, 40, 36, "30")] {
        let tmp = tempfile::tempdir().unwrap();
        let world = tmp.path().join("world");
        run_ok(&[
            "gen",
            "--facilities",
            &facilities.to_string(),
            "--months",
            &months.to_string(),
            "--seed",
            &seed.to_string(),
            "--anomaly-rate",
            rate,
            "--out",
            path_str(&world),
        ]);
        let data = tmp.path().join("data");
        let log_key = world.join("keys/log.pem");
        run_ok(&[
            "init",
            "--data",
            path_str(&data),
            "--origin",
            dcledger::synthetic::ORIGIN,
            "--authority-key",
            path_str(&world.join("keys/authority.pem")),
            "--log-key",
            path_str(&log_key),
        ]);
        run_ok(&[
            "append",
            "--data",
            path_str(&data),
            "--log-key",
            path_str(&log_key),
            path_str(&world.join("entries.ndjson")),
        ]);
        let audit: Value = serde_json::from_str(&stdout(&run_ok(&[
            "audit",
            "--data",
            path_str(&data),
            "--format",
            "json",
        ])))
        .unwrap();
        let latest = text(&audit["as_of"]);
        let out = tmp.path().join("export");
        let mut rules = BTreeSet::new();
        for as_of in [latest.as_str(), "2024-01", "2024-12"] {
            let found = assert_sql_equals_audit(&data, &out, as_of);
            assert!(
                !found.is_empty(),
                "seed {seed} as of {as_of}: nothing to compare"
            );
            rules.extend(found.into_iter().map(|(rule, ..)| rule));
        }
        if rate == "100" {
            assert_eq!(
                rules.len(),
                dcledger::audit::Rule::ALL.len(),
                "seed {seed}: every rule is compared ({rules:?})"
            );
        }
    }
}

/// The export of a kind's table as DuckDB reads it: typed columns (dates as DATE,
/// months as text, lists, structs) and the findings' exact figures.
#[test]
fn duckdb_reads_the_exported_types() {
    let tmp = tempfile::tempdir().unwrap();
    let data = demo_ledger(tmp.path());
    let out = tmp.path().join("export");
    run_ok(&[
        "export",
        "parquet",
        "--data",
        path_str(&data),
        "--out",
        path_str(&out),
    ]);
    let describe = r#"
import json, os, sys
import duckdb
os.chdir(sys.argv[1])
con = duckdb.connect()
types = {}
for name in ["entries", "loan.issue", "subsidy.grant", "power.report", "findings"]:
    rows = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{name}.parquet')").fetchall()
    types[name] = {r[0]: r[1] for r in rows}
print(json.dumps(types))
"#;
    let ran = Command::new("python3")
        .args(["-c", describe, path_str(&out)])
        .output()
        .expect("python3 runs");
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let types: Value = serde_json::from_slice(&ran.stdout).unwrap();
    let expect = [
        ("entries", "index", "BIGINT"),
        ("entries", "accepted", "TIMESTAMP WITH TIME ZONE"),
        ("entries", "ts", "TIMESTAMP WITH TIME ZONE"),
        ("entries", "facility_id", "VARCHAR"),
        ("loan.issue", "collateral", "VARCHAR[]"),
        ("loan.issue", "date", "DATE"),
        ("loan.issue", "state_backed", "BOOLEAN"),
        ("loan.issue", "amount_minor", "BIGINT"),
        (
            "subsidy.grant",
            "condition",
            "STRUCT(\"by\" DATE, min_utilization_pct BIGINT)",
        ),
        ("power.report", "period", "VARCHAR"),
        ("findings", "amount_at_risk_minor", "DECIMAL(38,0)"),
        ("findings", "evidence", "BIGINT[]"),
    ];
    for (table, column, want) in expect {
        assert_eq!(
            types[table][column].as_str(),
            Some(want),
            "{table}.{column} in {}",
            types[table]
        );
    }
}
