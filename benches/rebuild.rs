//! `cargo bench --bench rebuild [-- FACILITIES]`: rebuilding a ledger's derived state
//! from its segments, each way, beside yardsticks measured in the same run (issue 15).
//! The ledger is the benchmarks' world (default 2,000 facilities: about 150,000
//! entries), copied so every rebuild starts from the same files.
//!
//! - `reindex --trust` (`Ledger::reindex_trusting`) beside reading the segments alone
//!   (every record read and its checksum checked, nothing parsed): the floor of any
//!   rebuild from the segments. Aim: 150,000 entries/s.
//! - `reindex` and `verify`, which re-check every signature, beside two cores' raw
//!   `verify_strict` rate over entry-sized messages. Aim for `verify`: 70% of it.
//!
//! Prints figures; asserts nothing.

mod world;
mod yardstick;

use std::path::Path;
use std::time::Instant;

use dcledger::ledger::{Ledger, Unlocked};
use dcledger::log::segment::{Position, SegmentError, SegmentLog};
use dcledger::synthetic::ORIGIN;

const DEFAULT_FACILITIES: usize = 2_000;

/// Entries per second read from the segments with every checksum checked.
fn segments_read_rate(data: &Path, entries: u64) -> f64 {
    let start = Instant::now();
    let log = SegmentLog::open_read_only(data, entries).expect("segments");
    // The scan reads every record and checks its checksum before handing it over.
    let mut read = 0u64;
    log.scan(Position::START, |_, _, _| -> Result<(), SegmentError> {
        read += 1;
        Ok(())
    })
    .expect("scan");
    assert_eq!(read, entries, "the segments hold every entry");
    entries as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let facilities: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(DEFAULT_FACILITIES);
    let cores = std::thread::available_parallelism().map_or(1, |t| t.get());
    let world = world::world_in(facilities, None);
    let copy = tempfile::tempdir().expect("tempdir");
    let data = copy.path().join("data");
    world::copy_dir(&world.kept, &data);
    let entries = Unlocked::open(&data)
        .and_then(|u| u.reader())
        .expect("open")
        .size();
    println!("rebuild benchmark: {entries} entries ({facilities} facilities), {cores} cores");

    let read = segments_read_rate(&data, entries);
    println!("reading the segments (yardstick):    {read:>10.0} entries/s");
    let timed = |what: &str, rebuild: &dyn Fn()| -> f64 {
        let start = Instant::now();
        rebuild();
        let secs = start.elapsed().as_secs_f64();
        let rate = entries as f64 / secs;
        println!("{what:<37}{rate:>10.0} entries/s ({secs:.2} s)");
        rate
    };
    let trusted = timed("reindex --trust:", &|| {
        let ledger = Ledger::reindex_trusting(&data, world.log_key.clone()).expect("reindex");
        ledger.close().expect("close");
    });
    println!(
        "reindex --trust / reading:           {:>10.0} % (aim: 150,000 entries/s)",
        100.0 * trusted / read
    );

    let strict = yardstick::verify_strict_rate(cores, 10_000, 600, ORIGIN);
    println!("raw verify_strict, {cores} cores (yardstick):{strict:>8.0} signatures/s");
    let own = yardstick::entry_check_rate(cores, 10_000, 600, ORIGIN);
    println!("the ledger's own strict check, {cores} cores:{own:>7.0} signatures/s");
    let reindexed = timed("reindex (every signature):", &|| {
        let ledger = Ledger::reindex(&data, world.log_key.clone()).expect("reindex");
        ledger.close().expect("close");
    });
    let verified = timed("verify (every signature):", &|| {
        Unlocked::open(&data)
            .expect("open")
            .verify()
            .expect("verify");
    });
    println!(
        "reindex / verify_strict:             {:>10.0} %",
        100.0 * reindexed / strict
    );
    println!(
        "verify / verify_strict:              {:>10.0} % (aim: 70%)",
        100.0 * verified / strict
    );
    println!(
        "verify / the ledger's own check:     {:>10.0} %",
        100.0 * verified / own
    );
}
