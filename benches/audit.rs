//! `cargo bench --bench audit [-- FACILITIES]`: the audit over a generated world of about
//! a million entries. Prints the full audit time (loading the projections and running
//! every rule) and the time to re-audit after one more month of reports (refreshing only
//! the facilities the new entries touched). Prints figures; asserts nothing.
//!
//! Generating and appending a million entries takes minutes; with `DCLEDGER_BENCH_DIR`
//! set, the world and the ledger without its last month (`kept`) stay there and later
//! runs measure only the audits. Delete `kept` there after a change to the derived
//! format.

mod world;

use std::io::Cursor;
use std::time::Instant;

use dcledger::audit::{AuditConfig, Published, Snapshot};
use dcledger::bulk;
use dcledger::dates::Month;
use dcledger::ledger::Ledger;

fn main() {
    let world = world::world();
    let (kept, data, after) = (&world.kept, world.dir.join("data"), world.after.as_str());
    let audit_config = AuditConfig::default();

    // The full audit as `dcledger audit` runs it: open the ledger, load the
    // projections, run every rule. The kept ledger is audited where it lies.
    let as_of = {
        let ledger = Ledger::open_to_read(kept).expect("open");
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

    // The re-audit as the server runs it: the published snapshot audited, one more
    // month of reports appended, the snapshot refreshed and audited again. On a copy,
    // so the kept ledger stays without the last month. Twice, each with nothing of the
    // other left in memory: with no request holding the snapshot (refreshed in place),
    // and with one still reading it (refreshed as a copy that shares the facilities'
    // records and settled reports).
    for held in [false, true] {
        let _ = std::fs::remove_dir_all(&data);
        world::copy_dir(kept, &data);
        let mut ledger = Ledger::open(&data, world.log_key.clone()).expect("open");
        let reader = ledger.reader();
        let published = Published::default();
        let older = published.current(&reader).expect("load");
        older.audit(as_of, &audit_config);
        // Held to the end of the round, or dropped here.
        let _older = held.then_some(older);
        let more = bulk::append_ndjson(&mut ledger, Cursor::new(after), |_| {}).expect("append");
        assert!(more.refused.is_none(), "{:?}", more.refused);
        let start = Instant::now();
        let newer = published.current(&reader).expect("refresh");
        let refreshed = start.elapsed();
        let as_of = newer.default_as_of().expect("as_of");
        let findings = newer.audit(as_of, &audit_config);
        let again = start.elapsed();
        println!(
            "re-audit as of {as_of} after {} more entries, {}: {:.3} s ({:.3} s refreshing), {} findings",
            more.accepted,
            if held {
                "a request still reading the snapshot"
            } else {
                "no request holding the snapshot"
            },
            again.as_secs_f64(),
            refreshed.as_secs_f64(),
            findings.len()
        );
        if !held {
            audit_alone(&newer, as_of, &audit_config);
        }
    }
}

/// The audit alone, again and again: one run of the re-audit varies with the machine by
/// more than a change to the rules moves it. Three months in turn, so that no answer is
/// the one kept; each month's period findings are kept from the first.
fn audit_alone(snapshot: &Snapshot, as_of: Month, audit_config: &AuditConfig) {
    let months = [as_of, as_of.plus(-1), as_of.plus(-2)];
    const AUDITS: u32 = 60;
    let start = Instant::now();
    for i in 0..AUDITS {
        snapshot.audit(months[(i % 3) as usize], audit_config);
    }
    println!(
        "the audit alone, months {} to {as_of} in turn: {:.1} ms each ({AUDITS} audits)",
        months[2],
        start.elapsed().as_secs_f64() * 1000.0 / f64::from(AUDITS)
    );
}
