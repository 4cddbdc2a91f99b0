//! `cargo bench --bench audit [-- FACILITIES]`: the audit over a generated world of about
//! a million entries. Prints the full audit time (loading the projections and running
//! every rule) and the time to re-audit after one more month of reports (refreshing only
//! the facilities the new entries touched). Prints figures; asserts nothing.
//!
//! Generating and appending a million entries takes minutes; with `DCLEDGER_BENCH_DIR`
//! set, the world and the ledger without its last month (`kept`) stay there and later
//! runs measure only the audits. Delete `kept` there after a change to the derived
//! format.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Instant;

use dcledger::audit::{AuditConfig, Snapshot};
use dcledger::bulk;
use dcledger::dates::{Month, parse_instant};
use dcledger::keys::load_signing_key;
use dcledger::ledger::Ledger;
use dcledger::synthetic::{GenConfig, ORIGIN, generate};

const DEFAULT_FACILITIES: usize = 8_000;
const MONTHS: u32 = 37;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
            // Written back now rather than during the measurement.
            std::fs::File::open(&target)
                .and_then(|f| f.sync_all())
                .expect("sync");
        }
    }
}

fn main() {
    let facilities: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(DEFAULT_FACILITIES);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir =
        std::env::var_os("DCLEDGER_BENCH_DIR").map_or(tmp.path().to_path_buf(), PathBuf::from);
    let (world, data, kept) = (dir.join("world"), dir.join("data"), dir.join("kept"));
    // A kept ledger is reused as it is; a kept world (say after a change to the derived
    // format made the kept ledger unreadable) is appended again.
    let reuse = kept.join("segments").exists();
    if !dir.join("last_month").exists() {
        let config = GenConfig {
            facilities,
            months: MONTHS,
            seed: 7,
            start: (2023, 1),
            anomaly_rate_pct: 30,
            demo: false,
        };
        let start = Instant::now();
        let summary = generate(&config, &world).expect("generate");
        println!(
            "generated {} entries for {facilities} facilities over {MONTHS} months in {:.1} s",
            summary.entries,
            start.elapsed().as_secs_f64()
        );
        std::fs::write(dir.join("last_month"), &summary.last_month).expect("write");
    }
    let last_month = std::fs::read_to_string(dir.join("last_month")).expect("last month");

    // Hold back the last month of reports (signed after the last month ends).
    let text = std::fs::read_to_string(world.join("entries.ndjson")).expect("entries");
    let last = Month::parse(last_month.trim()).expect("last month");
    let cut = parse_instant(&format!("{}T00:00:00Z", last.plus(1).first_day())).expect("instant");
    let mut split = text.len();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let ts = line
            .find("\"ts\":\"")
            .and_then(|i| parse_instant(&line[i + 6..i + 26]));
        if ts.is_some_and(|t| t >= cut) {
            split = offset;
            break;
        }
        offset += line.len();
    }
    let (before, after) = text.split_at(split);

    if !reuse {
        let authority = load_signing_key(&world.join("keys/authority.pem")).expect("key");
        let log = load_signing_key(&world.join("keys/log.pem")).expect("key");
        let mut ledger = Ledger::init(&kept, ORIGIN, "bench", &authority, &log).expect("init");
        let start = Instant::now();
        let appended =
            bulk::append_ndjson(&mut ledger, Cursor::new(before), |_| {}).expect("append");
        assert!(appended.refused.is_none(), "{:?}", appended.refused);
        println!(
            "appended {} entries in {:.1} s",
            appended.accepted,
            start.elapsed().as_secs_f64()
        );
        ledger.close().expect("close");
    }
    let audit_config = AuditConfig::default();

    // The full audit as `dcledger audit` runs it: open the ledger, load the
    // projections, run every rule. The kept ledger is audited where it lies.
    let as_of = {
        let ledger = Ledger::open(&kept).expect("open");
        let reader = ledger.reader();
        let start = Instant::now();
        let snapshot = Snapshot::load(&reader).expect("load");
        let loaded = start.elapsed();
        let as_of = snapshot.default_as_of().expect("as_of");
        let findings = snapshot.audit(as_of, &audit_config);
        let full = start.elapsed();
        println!(
            "full audit as of {as_of} over {} entries: {:.3} s ({:.3} s loading projections), {} findings",
            reader.size(),
            full.as_secs_f64(),
            loaded.as_secs_f64(),
            findings.len()
        );
        as_of
    };

    // The re-audit as the server runs it: a snapshot kept and audited, one more month
    // of reports appended, the snapshot refreshed and audited again. On a copy, so the
    // kept ledger stays without the last month.
    let _ = std::fs::remove_dir_all(&data);
    copy_dir(&kept, &data);
    let mut ledger = Ledger::open(&data).expect("open");
    let reader = ledger.reader();
    let mut snapshot = Snapshot::load(&reader).expect("load");
    snapshot.audit(as_of, &audit_config);
    let more = bulk::append_ndjson(&mut ledger, Cursor::new(after), |_| {}).expect("append");
    assert!(more.refused.is_none(), "{:?}", more.refused);
    let start = Instant::now();
    snapshot.refresh(&reader).expect("refresh");
    let refreshed = start.elapsed();
    let as_of = snapshot.default_as_of().expect("as_of");
    let findings = snapshot.audit(as_of, &audit_config);
    let again = start.elapsed();
    println!(
        "re-audit as of {as_of} after {} more entries: {:.3} s ({:.3} s refreshing), {} findings",
        more.accepted,
        again.as_secs_f64(),
        refreshed.as_secs_f64(),
        findings.len()
    );
}
