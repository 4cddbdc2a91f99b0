//! Deterministic synthetic worlds: a ledger's worth of signed entries about AI data
//! centers, with the audit findings (PROTOCOL §8) they must produce as ground truth.
//!
//! `generate(config, out)` writes into `out` (which must be new or empty):
//!
//! ```text
//! out/keys/<org_id>.pem   PKCS#8 PEM private key (mode 0600) of every organisation,
//!                         including keys/authority.pem (the ledger authority)
//! out/keys/log.pem        the checkpoint key, for `dcledger init --log-key`
//! out/entries.ndjson      signed envelopes {"entry","sig"}, one a line, in ledger order
//! out/labels.json         sorted [{"rule", "facility_id"}]: every pair the audit must
//!                         report as of the last month (default thresholds and prices)
//! out/world.json          origin, first and last month, log key (public hex), config,
//!                         parties (org_id, name, role, public_key) and facilities (id,
//!                         name, province, city, operator at the end, planted scenario
//!                         name or null, the rules it fires)
//! ```
//!
//! Every entry is signed for one ledger origin (`GenConfig::origin`, by default
//! `dcledger.example/synthetic`; PROTOCOL §3), so load it with
//! `dcledger init --data D --origin dcledger.example/synthetic --authority-key
//! out/keys/authority.pem --log-key out/keys/log.pem` (entry 0, the genesis, is the
//! authority's seq 1) and `dcledger append --data D --log-key out/keys/log.pem
//! out/entries.ndjson`. The file starts
//! with the authority's seq 2: `org.register` and `key.grant` for every organisation, on
//! the first day of the first month; then every record in chronological order of its
//! `ts`, which is when the fact happened (monthly reports are signed one to seven days
//! after their month). Every signer's seq rises by exactly 1 down the file.
//!
//! The same config always gives byte-identical files: keys are BLAKE3(seed || org_id),
//! every facility draws from its own stream seeded by (seed, facility index), merging
//! sorts by (instant, facility, record), and nothing reads the clock except a guard
//! refusing worlds that would end in the future.
//!
//! Module map: `parties` (organisations and keys), `world` (operators, facilities,
//! which facility carries which scenario), `plan` (a clean life, drawn), `scenarios`
//! (one planted anomaly per rule), `facility` (plan → records), `labels` (the rules of
//! PROTOCOL §8 evaluated on one facility's records), `output` (merge, seqs, signing,
//! files), `model` (typed records and their JSON bodies), `calendar`, `rng`.

mod calendar;
mod facility;
mod labels;
mod model;
mod output;
mod parties;
mod plan;
mod rng;
mod scenarios;
mod world;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use crate::audit::Rule;

/// Origin the generated world is meant to be loaded under (`dcledger init --origin`).
pub const ORIGIN: &str = "dcledger.example/synthetic";

/// Smallest world: stalled and land-banking scenarios need 17 months of history before
/// the audit window.
pub const MIN_MONTHS: u32 = 18;
pub const MAX_MONTHS: u32 = 240;
/// Facility numbers are five digits inside serial numbers.
pub const MAX_FACILITIES: usize = 99_999;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenConfig {
    pub facilities: usize,
    pub months: u32,
    pub seed: u64,
    /// First month `(year, month)`.
    pub start: (i32, u8),
    /// Share of facilities with a planted anomaly (raised to one facility per rule when
    /// there are 40 facilities or more and the rate is not 0).
    pub anomaly_rate_pct: u8,
    /// The demo's story: a Henan voucher site, western power resellers, land banking and
    /// a lot pledged twice are planted whatever the draws.
    pub demo: bool,
    /// The origin of the ledger the entries are signed for (PROTOCOL §3): the world loads
    /// into a ledger `init`ed with this origin, and into no other.
    pub origin: String,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            facilities: 40,
            months: 27,
            seed: 1,
            start: (2023, 1),
            anomaly_rate_pct: 30,
            demo: false,
            origin: ORIGIN.to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenSummary {
    /// Lines of `entries.ndjson`.
    pub entries: u64,
    /// Organisations, the authority included.
    pub parties: usize,
    /// Pairs in `labels.json`.
    pub labels: usize,
    /// The last month (`YYYY-MM`), the audit's default as_of.
    pub last_month: String,
}

#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("invalid generator configuration: {0}")]
    Config(String),
    #[error("output directory {path} is not empty; give a new or empty directory")]
    OutputNotEmpty { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    #[error("cannot sign entry on line {line} ({kind}): {source}")]
    Sign {
        line: usize,
        kind: &'static str,
        source: crate::jcs::CanonicalError,
    },
    #[error(
        "the world would end in the future (its last entry is signed {last_ts}); choose an \
         earlier start or fewer months"
    )]
    Future { last_ts: String },
    #[error("a signing thread panicked")]
    Thread,
}

fn validate(c: &GenConfig) -> Result<(), GenError> {
    let bad = |m: String| Err(GenError::Config(m));
    if c.facilities == 0 || c.facilities > MAX_FACILITIES {
        return bad(format!(
            "facilities must be 1..={MAX_FACILITIES}, got {}",
            c.facilities
        ));
    }
    if !(MIN_MONTHS..=MAX_MONTHS).contains(&c.months) {
        return bad(format!(
            "months must be {MIN_MONTHS}..={MAX_MONTHS}, got {}",
            c.months
        ));
    }
    if !(1..=12).contains(&c.start.1) || !(2000..=2100).contains(&c.start.0) {
        return bad(format!(
            "start must be a month of 2000..=2100, got {:04}-{:02}",
            c.start.0, c.start.1
        ));
    }
    if !crate::log::checkpoint::valid_origin(&c.origin) {
        return bad(format!(
            "origin must be 1-255 characters of [A-Za-z0-9._/:-], got {:?}",
            c.origin
        ));
    }
    if c.anomaly_rate_pct > 100 {
        return bad(format!(
            "anomaly_rate_pct must be 0..=100, got {}",
            c.anomaly_rate_pct
        ));
    }
    Ok(())
}

/// Generates the world `config` describes into `out` (see the module documentation).
pub fn generate(config: &GenConfig, out: &Path) -> Result<GenSummary, GenError> {
    validate(config)?;
    output::check_empty(out)?;
    let world = world::plan(config);

    let outs = generate_facilities(&world);
    let labels = output::labels(&world, &outs);
    let registrations = world.parties.registrations(world.first);
    let mut facility_events = Vec::with_capacity(outs.len());
    let mut described = Vec::with_capacity(outs.len());
    for o in outs {
        facility_events.push(o.events);
        described.push(facility::FacilityOut {
            events: Vec::new(),
            labels: o.labels,
            operator: o.operator,
        });
    }
    let entries = output::merge(&world, registrations, facility_events);

    if let Some(last) = entries.last()
        && last.event.ts > crate::dates::now()
    {
        return Err(GenError::Future {
            last_ts: crate::dates::format_instant(last.event.ts)
                .unwrap_or_else(|| format!("{} s", last.event.ts)),
        });
    }

    std::fs::create_dir_all(out).map_err(|source| GenError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    output::write_keys(&world, &output::path(out, "keys"))?;
    let count = output::write_entries(&world, &entries, &output::path(out, "entries.ndjson"))?;
    output::write_labels(&output::path(out, "labels.json"), &labels)?;
    output::write_world(&output::path(out, "world.json"), &world, &described)?;

    Ok(GenSummary {
        entries: count,
        parties: world.parties.list.len(),
        labels: labels.len(),
        last_month: world.last.label(),
    })
}

/// Every facility's records and labels, on two threads (contiguous halves, so the result
/// is the same as one thread's).
fn generate_facilities(world: &world::World) -> Vec<facility::FacilityOut> {
    let skels = &world.facilities;
    let mid = skels.len() / 2;
    let (left, right) = skels.split_at(mid);
    let run = |part: &[world::FacilitySkel]| -> Vec<facility::FacilityOut> {
        part.iter().map(|s| facility::generate(world, s)).collect()
    };
    std::thread::scope(|s| {
        let h = s.spawn(|| run(left));
        let mut second = run(right);
        let mut first = crate::parallel::joined(h);
        first.append(&mut second);
        first
    })
}
