//! Writing a generated world: keys, the merged and signed entries, labels and the world
//! description. Entries are merged chronologically, numbered per signer, then signed on
//! two threads block by block and streamed through one buffered writer, so the output
//! does not depend on thread timing.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::GenError;
use super::calendar::Instant;
use super::facility::FacilityOut;
use super::model::Event;
use super::parties::{PROVINCES, log_key};
use super::world::World;
use crate::audit::Rule;
use crate::entry::{self, EntryDraft};
use crate::{dates, keys};

/// One entry, ready to sign.
pub(crate) struct Numbered {
    pub event: Event,
    pub seq: u64,
}

/// Entries signed per block; each of the two threads signs half a block.
const SIGN_BLOCK: usize = 8192;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> GenError + '_ {
    move |source| GenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// All records in ledger order with their seqs: the authority's registrations first, then
/// every facility's records by instant (ties by facility, then the facility's own
/// order). The authority's seq starts at 2 (genesis, written by `dcledger init`, is 1).
pub(crate) fn merge(
    world: &World,
    registrations: Vec<Event>,
    facilities: Vec<Vec<Event>>,
) -> Vec<Numbered> {
    let total = registrations.len() + facilities.iter().map(Vec::len).sum::<usize>();
    let mut keyed: Vec<(Instant, usize, usize, Event)> = Vec::with_capacity(total);
    for (local, e) in registrations.into_iter().enumerate() {
        keyed.push((e.ts, 0, local, e));
    }
    for (i, events) in facilities.into_iter().enumerate() {
        for (local, e) in events.into_iter().enumerate() {
            keyed.push((e.ts, i + 1, local, e));
        }
    }
    keyed.sort_unstable_by_key(|(ts, group, local, _)| (*ts, *group, *local));
    let mut next: Vec<u64> = vec![1; world.parties.list.len()];
    next[world.parties.authority] = 2;
    keyed
        .into_iter()
        .map(|(_, _, _, event)| {
            let seq = next[event.signer];
            next[event.signer] += 1;
            Numbered { event, seq }
        })
        .collect()
}

fn sign_block(world: &World, entries: &[Numbered], first_index: usize) -> Result<String, GenError> {
    let mut out = String::with_capacity(entries.len() * 512);
    for (i, n) in entries.iter().enumerate() {
        let kind = n.event.body.kind();
        let ts = dates::format_instant(n.event.ts).ok_or_else(|| {
            GenError::Config(format!("instant {} is outside years 0000-9999", n.event.ts))
        })?;
        let envelope = entry::sign_envelope(
            &world.parties.list[n.event.signer].key,
            &world.config.origin,
            EntryDraft {
                kind,
                seq: n.seq,
                ts: &ts,
                body: n.event.body.to_json(),
            },
        )
        .map_err(|source| GenError::Sign {
            line: first_index + i + 1,
            kind: kind.as_str(),
            source,
        })?;
        out.push_str(&envelope.to_string());
        out.push('\n');
    }
    Ok(out)
}

/// Signs and writes `entries.ndjson`; returns the number of lines.
pub(crate) fn write_entries(
    world: &World,
    entries: &[Numbered],
    path: &Path,
) -> Result<u64, GenError> {
    let file = File::create(path).map_err(io_err(path))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    for (b, block) in entries.chunks(SIGN_BLOCK).enumerate() {
        let base = b * SIGN_BLOCK;
        let mid = block.len() / 2;
        let (left, right) = block.split_at(mid);
        let (a, c) = std::thread::scope(|s| {
            let h = s.spawn(|| sign_block(world, left, base));
            let c = sign_block(world, right, base + mid);
            (h.join(), c)
        });
        let a = a.map_err(|_| GenError::Thread)??;
        let c = c?;
        w.write_all(a.as_bytes()).map_err(io_err(path))?;
        w.write_all(c.as_bytes()).map_err(io_err(path))?;
    }
    let file = w.into_inner().map_err(|e| GenError::Io {
        path: path.to_path_buf(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_err(path))?;
    Ok(entries.len() as u64)
}

pub(crate) fn write_keys(world: &World, dir: &Path) -> Result<(), GenError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    for p in &world.parties.list {
        keys::write_signing_key(&dir.join(format!("{}.pem", p.org_id)), &p.key)?;
    }
    keys::write_signing_key(&dir.join("log.pem"), &log_key(world.config.seed))?;
    Ok(())
}

fn write_json(path: &Path, value: &Value) -> Result<(), GenError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| GenError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    text.push('\n');
    std::fs::write(path, text).map_err(io_err(path))
}

/// `labels.json`: sorted `{"rule", "facility_id"}` pairs.
pub(crate) fn labels(world: &World, outs: &[FacilityOut]) -> Vec<(Rule, String)> {
    let mut pairs: Vec<(Rule, String)> = world
        .facilities
        .iter()
        .zip(outs)
        .flat_map(|(f, o)| o.labels.iter().map(|r| (*r, f.id.clone())))
        .collect();
    pairs.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
    pairs
}

pub(crate) fn write_labels(path: &Path, labels: &[(Rule, String)]) -> Result<(), GenError> {
    let items: Vec<Value> = labels
        .iter()
        .map(|(r, f)| json!({"rule": r.as_str(), "facility_id": f}))
        .collect();
    write_json(path, &Value::Array(items))
}

pub(crate) fn write_world(
    path: &Path,
    world: &World,
    outs: &[FacilityOut],
) -> Result<(), GenError> {
    let c = &world.config;
    let parties: Vec<Value> = world
        .parties
        .list
        .iter()
        .map(|p| {
            json!({"org_id": p.org_id, "name": p.name, "role": p.role.as_str(),
                   "public_key": p.public_hex})
        })
        .collect();
    let facilities: Vec<Value> = world
        .facilities
        .iter()
        .zip(outs)
        .map(|(f, o)| {
            let rules: BTreeSet<&str> = o.labels.iter().map(|r| r.as_str()).collect();
            json!({"id": f.id, "name": f.name,
                   "province": PROVINCES[f.province].name,
                   "city": PROVINCES[f.province].cities[f.city].name,
                   "operator": world.parties.list[o.operator].org_id,
                   "scenario": f.scenario.map(Rule::as_str),
                   "labels": rules})
        })
        .collect();
    let doc = json!({
        "origin": c.origin,
        "first_month": world.first.label(),
        "last_month": world.last.label(),
        "log_key": crate::keys::public_hex(&log_key(c.seed).verifying_key()),
        "config": {
            "facilities": c.facilities, "months": c.months, "seed": c.seed,
            "start": format!("{:04}-{:02}", c.start.0, c.start.1),
            "anomaly_rate_pct": c.anomaly_rate_pct, "demo": c.demo,
        },
        "parties": parties,
        "facilities": facilities,
    });
    write_json(path, &doc)
}

/// The output directory must be new or empty: keys are never overwritten.
pub(crate) fn check_empty(out: &Path) -> Result<(), GenError> {
    match std::fs::read_dir(out) {
        Ok(mut it) => {
            if it.next().is_some() {
                return Err(GenError::OutputNotEmpty {
                    path: out.to_path_buf(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(GenError::Io {
            path: out.to_path_buf(),
            source,
        }),
    }
}

pub(crate) fn path(out: &Path, name: &str) -> PathBuf {
    out.join(name)
}
