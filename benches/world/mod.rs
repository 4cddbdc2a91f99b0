//! The benchmarks' world: a generated world of about a million entries (`FACILITIES`
//! facilities over 37 months), appended but for its last month of reports (`kept`), which
//! `after` holds. Generating and appending takes minutes; with `DCLEDGER_BENCH_DIR` set,
//! the world and `kept` stay there and later runs reuse them. Delete `kept` there after a
//! change to the derived format.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Instant;

use dcledger::bulk;
use dcledger::dates::{Month, parse_instant};
use dcledger::keys::load_signing_key;
use dcledger::ledger::Ledger;
use dcledger::synthetic::{GenConfig, ORIGIN, generate};

pub const DEFAULT_FACILITIES: usize = 8_000;
const MONTHS: u32 = 37;

pub struct World {
    /// Keeps a temporary directory alive when `DCLEDGER_BENCH_DIR` is not set.
    _tmp: tempfile::TempDir,
    /// Where copies of `kept` may go.
    #[allow(dead_code)] // The reports benchmark serves `kept` itself.
    pub dir: PathBuf,
    /// The ledger of every entry but the last month's reports.
    pub kept: PathBuf,
    /// The last month's entries, NDJSON.
    #[allow(dead_code)] // The reports benchmark serves `kept` itself.
    pub after: String,
    /// The key that signs the ledgers' checkpoints (kept outside them, PROTOCOL §11).
    #[allow(dead_code)] // The store benchmark only replays the ledger.
    pub log_key: ed25519_dalek::SigningKey,
}

#[allow(dead_code)] // Not every benchmark copies the ledger.
pub fn copy_dir(from: &Path, to: &Path) {
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

/// The world of `facilities` facilities (the first number among the arguments, else
/// `DEFAULT_FACILITIES`), generated and appended unless kept from an earlier run.
#[allow(dead_code)] // The log benchmark asks for worlds of several sizes.
pub fn world() -> World {
    let facilities: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(DEFAULT_FACILITIES);
    world_in(facilities, None)
}

/// The world of `facilities` facilities in `under` (else in `DCLEDGER_BENCH_DIR`, else
/// in a temporary directory), generated and appended unless kept from an earlier run.
pub fn world_in(facilities: usize, under: Option<PathBuf>) -> World {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = under.unwrap_or_else(|| {
        std::env::var_os("DCLEDGER_BENCH_DIR").map_or(tmp.path().to_path_buf(), PathBuf::from)
    });
    let (world, kept) = (dir.join("world"), dir.join("kept"));
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
            origin: ORIGIN.to_string(),
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

    let log = load_signing_key(&world.join("keys/log.pem")).expect("key");
    if !reuse {
        let authority = load_signing_key(&world.join("keys/authority.pem")).expect("key");
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
    World {
        _tmp: tmp,
        dir,
        kept,
        after: after.to_string(),
        log_key: log,
    }
}
