//! Generated worlds end to end: the committed demo fixture is what `gen` produces, every
//! world appends and verifies, projections rebuilt from the segments equal incremental
//! ones, and the audit finds exactly the planted anomalies (recall and precision 100%).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dcledger::audit::{self, AuditRequest};
use dcledger::keys::load_signing_key;
use dcledger::ledger::Ledger;
use dcledger::synthetic::{GenConfig, ORIGIN, generate};

use crate::support::{
    assert_rebuild_equals_incremental, demo_dir, init_demo_ledger, log_key_file, path_str, run_ok,
    stdout,
};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn demo_fixture_equals_gen_output() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    generate(
        &GenConfig {
            demo: true,
            ..GenConfig::default()
        },
        &out,
    )
    .expect("generate");
    let fixture = demo_dir();
    let generated: Vec<PathBuf> = files(&out)
        .iter()
        .map(|p| p.strip_prefix(&out).unwrap().to_path_buf())
        .collect();
    let committed: Vec<PathBuf> = files(&fixture)
        .iter()
        .map(|p| p.strip_prefix(&fixture).unwrap().to_path_buf())
        .filter(|p| p != Path::new("README.md"))
        .collect();
    assert_eq!(
        generated, committed,
        "the fixture's files differ from gen's"
    );
    for rel in generated {
        assert!(
            std::fs::read(out.join(&rel)).unwrap() == std::fs::read(fixture.join(&rel)).unwrap(),
            "fixtures/demo/{} differs from `dcledger gen --demo`: regenerate the fixture",
            rel.display()
        );
    }
}

/// A generated world (`facilities`, `months`, `seed`) appended to a closed ledger at
/// `dir/data`, which is returned (the world is at `dir/world`).
pub(crate) fn generated_ledger(dir: &Path, facilities: usize, months: u32, seed: u64) -> PathBuf {
    let world = dir.join("world");
    let config = GenConfig {
        facilities,
        months,
        seed,
        ..GenConfig::default()
    };
    generate(&config, &world).unwrap();
    let data = dir.join("data");
    load(&world, &data).close().unwrap();
    data
}

/// Loads a generated world into a fresh ledger through the library.
pub(crate) fn load(world: &Path, data: &Path) -> Ledger {
    let authority = load_signing_key(&world.join("keys/authority.pem")).unwrap();
    let log = load_signing_key(&world.join("keys/log.pem")).unwrap();
    std::fs::copy(world.join("keys/log.pem"), log_key_file(data)).unwrap();
    let mut ledger = Ledger::init(data, ORIGIN, "synthetic", &authority, &log).unwrap();
    let input = std::io::BufReader::new(std::fs::File::open(world.join("entries.ndjson")).unwrap());
    let summary = dcledger::bulk::append_ndjson(&mut ledger, input, |_| {}).unwrap();
    if let Some(r) = summary.refused {
        panic!(
            "{}: line {} refused: {}",
            world.display(),
            r.line,
            r.rejection
        );
    }
    ledger
}

fn labels(world: &Path) -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(world.join("labels.json")).unwrap();
    let pairs: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    pairs
        .iter()
        .map(|p| {
            (
                p["rule"].as_str().unwrap().to_string(),
                p["facility_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Recall and precision of the audit against a world's labels, as (rule, facility).
fn assert_audit_matches_labels(world: &Path, ledger: &Ledger) {
    let (_, findings) = audit::run(&ledger.reader(), &AuditRequest::default()).unwrap();
    let found: BTreeSet<(String, String)> = findings
        .iter()
        .map(|f| (f.rule.to_string(), f.facility_id.clone()))
        .collect();
    let expected = labels(world);
    let missed: Vec<_> = expected.difference(&found).collect();
    let spurious: Vec<_> = found.difference(&expected).collect();
    assert!(
        missed.is_empty() && spurious.is_empty(),
        "{}: missed (recall) {missed:?}; spurious (precision) {spurious:?}",
        world.display()
    );
}

#[test]
fn demo_world_appends_verifies_and_audits_to_its_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let demo = demo_dir();
    init_demo_ledger(&data);
    let appended = stdout(&run_ok(&[
        "append",
        "--data",
        path_str(&data),
        "--log-key",
        path_str(&log_key_file(&data)),
        path_str(&demo.join("entries.ndjson")),
    ]));
    let lines = std::fs::read_to_string(demo.join("entries.ndjson"))
        .unwrap()
        .lines()
        .count();
    assert!(
        appended.starts_with(&format!("accepted {lines} entries")),
        "{appended}"
    );
    assert!(stdout(&run_ok(&["verify", "--data", path_str(&data)])).starts_with("ok:"));

    let ledger = Ledger::open_to_read(&data).unwrap();
    assert_audit_matches_labels(&demo, &ledger);
    ledger.close().unwrap();

    assert_rebuild_equals_incremental(&data, "demo world");
}

#[test]
fn generated_worlds_audit_to_their_labels() {
    for (seed, facilities, months) in [(2, 60, 30), (3, 45, 24), (11, 40, 36)] {
        let tmp = tempfile::tempdir().unwrap();
        let data = generated_ledger(tmp.path(), facilities, months, seed);
        let ledger = Ledger::open_to_read(&data).unwrap();
        assert_audit_matches_labels(&tmp.path().join("world"), &ledger);
        if seed == 2 {
            ledger.verify().unwrap();
            ledger.close().unwrap();
            assert_rebuild_equals_incremental(&data, &format!("seed {seed}"));
        }
    }
}

/// A snapshot refreshed after more entries audits exactly like one loaded afresh: the
/// incremental path (change log, report-only refresh) misses nothing.
#[test]
fn refreshed_audit_equals_a_fresh_one() {
    let tmp = tempfile::tempdir().unwrap();
    let world = tmp.path().join("world");
    generate(
        &GenConfig {
            facilities: 40,
            months: 24,
            seed: 5,
            ..GenConfig::default()
        },
        &world,
    )
    .unwrap();
    let text = std::fs::read_to_string(world.join("entries.ndjson")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let authority = load_signing_key(&world.join("keys/authority.pem")).unwrap();
    let log = load_signing_key(&world.join("keys/log.pem")).unwrap();
    let mut ledger = Ledger::init(&tmp.path().join("data"), ORIGIN, "w", &authority, &log).unwrap();
    let reader = ledger.reader();
    let config = audit::AuditConfig::default();
    let published = audit::Published::default();
    let mut older: Option<(
        std::sync::Arc<audit::Snapshot>,
        dcledger::dates::Month,
        Vec<std::sync::Arc<audit::Finding>>,
    )> = None;
    // Append in slices, refreshing after each, and compare with a fresh load each time.
    for (round, part) in lines.chunks(lines.len() / 5 + 1).enumerate() {
        let before = reader.size();
        let input = std::io::Cursor::new(part.join("\n"));
        let summary = dcledger::bulk::append_ndjson(&mut ledger, input, |_| {}).unwrap();
        assert!(summary.refused.is_none(), "{:?}", summary.refused);
        let (all, since) = (
            reader.change_log_since(0).unwrap(),
            reader.change_log_since(before).unwrap(),
        );
        let (all, since) = (all.changes().unwrap(), since.changes().unwrap());
        assert!(
            all.is_sorted_by_key(|c| c.index),
            "the change log is in ledger order"
        );
        assert_eq!(
            since,
            all.iter()
                .filter(|c| c.index >= before)
                .cloned()
                .collect::<Vec<_>>()
        );
        // The server refreshes the snapshot it published: in place when no request
        // holds it, and a copy beside a request that still reads it, which must see
        // the older one as it was. Here every other round holds it.
        let (held, unheld) = match older.take() {
            Some(o) if round % 2 == 1 => (Some(o), None),
            // Dropped: the published reference is the only one left.
            o => (None, o.map(|(s, _, _)| std::sync::Arc::as_ptr(&s))),
        };
        let snap = published.current(&reader).unwrap();
        assert_eq!(snap.size, reader.size(), "current");
        if let Some(ptr) = unheld {
            assert_eq!(std::sync::Arc::as_ptr(&snap), ptr, "refreshed in place");
        }
        if let Some((older, as_of, findings)) = &held {
            assert!(!std::sync::Arc::ptr_eq(older, &snap), "a copy");
            assert_eq!(older.size, before, "the older snapshot keeps its size");
            assert_eq!(&older.audit(*as_of, &config), findings, "and its findings");
        }
        let fresh = audit::Snapshot::load(&reader).unwrap();
        // The reports a load takes from the change log are the ones that count: the
        // latest in ledger order of each series and period (PROTOCOL §6.5), worked out
        // here from every entry of the ledger, read back from the segments.
        let mut latest = latest_reports(&reader);
        for facts in fresh.facilities.iter() {
            let id = facts.id();
            let mut counted: Vec<u64> = latest
                .remove(id)
                .unwrap_or_default()
                .into_values()
                .collect();
            let mut loaded: Vec<u64> = Vec::new();
            for m in facts.power.keys() {
                loaded.extend(facts.power.get(m).map(|r| r.index));
            }
            for m in facts.meter.keys() {
                loaded.extend(facts.meter.get(m).map(|r| r.index));
            }
            for m in facts.occupancy.keys() {
                loaded.extend(facts.occupancy.get(m).map(|r| r.index));
            }
            counted.sort_unstable();
            loaded.sort_unstable();
            assert_eq!(loaded, counted, "reports of {id}");
        }
        assert!(latest.is_empty(), "reports of no facility: {latest:?}");
        let as_of = fresh.default_as_of().unwrap();
        assert_eq!(snap.default_as_of(), Some(as_of));
        let findings = snap.audit(as_of, &config);
        assert_eq!(
            findings,
            fresh.audit(as_of, &config),
            "after {} entries",
            reader.size()
        );
        for f in &findings {
            assert_eq!(snap.finding(as_of, &config, &f.id).as_ref(), Some(f));
        }
        assert_eq!(snap.finding(as_of, &config, "no-such-finding"), None);
        older = Some((snap, as_of, findings));
    }
}

/// For each facility that reported, the index of the report that counts for each
/// (kind, period): the latest of the ledger's entries of a report kind, every entry read
/// back from the segments.
fn latest_reports(
    reader: &dcledger::ledger::Reader,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<(String, String), u64>> {
    let mut latest: std::collections::BTreeMap<_, std::collections::BTreeMap<_, _>> =
        Default::default();
    for index in 1..reader.size() {
        let leaf: serde_json::Value =
            serde_json::from_slice(&reader.entry(index).unwrap().leaf).unwrap();
        let kind = leaf["entry"]["kind"].as_str().unwrap();
        if ["power.report", "occupancy.report", "meter.reading"].contains(&kind) {
            let body = &leaf["entry"]["body"];
            let facility = body["facility_id"].as_str().unwrap().to_string();
            let period = body["period"].as_str().unwrap().to_string();
            // In ledger order, so a later report replaces an earlier one.
            latest
                .entry(facility)
                .or_default()
                .insert((kind.to_string(), period), index);
        }
    }
    latest
}
