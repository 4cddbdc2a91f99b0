//! Tests of the generator: determinism, the shape of what it writes (signatures, seq
//! chains, order, schemas), the ingest rules of PROTOCOL §6 replayed over the file, and the
//! labels' promise (planted rules fire, clean facilities stay clean).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use super::*;
use crate::entry::{Kind, Role, verify_entry_signature};
use crate::testing::files_under;
use crate::{dates, jcs, keys, schema};

fn small() -> GenConfig {
    GenConfig {
        facilities: 12,
        months: 18,
        seed: 7,
        ..GenConfig::default()
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn lines(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("entries.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn same_config_gives_byte_identical_output() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let sa = generate(&small(), a.path()).unwrap();
    let sb = generate(&small(), b.path()).unwrap();
    assert_eq!(sa, sb);
    let (fa, fb) = (files_under(a.path()), files_under(b.path()));
    assert!(fa.contains_key("keys/authority.pem") && fa.contains_key("keys/log.pem"));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        assert!(bytes == &fb[name], "{name} differs between runs");
    }
    let other = tempfile::tempdir().unwrap();
    generate(&GenConfig { seed: 8, ..small() }, other.path()).unwrap();
    assert_ne!(
        files_under(other.path())["entries.ndjson"],
        fa["entries.ndjson"]
    );
}

#[test]
fn signatures_name_the_configured_origin() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    generate(&small(), a.path()).unwrap();
    let other = GenConfig {
        origin: "dcledger.example/elsewhere".into(),
        ..small()
    };
    let summary = generate(&other, b.path()).unwrap();
    // Same entries, other signatures: check_shape verifies them for world.json's origin.
    assert_eq!(
        read_json(&b.path().join("world.json"))["origin"],
        "dcledger.example/elsewhere"
    );
    let (ea, eb) = (lines(a.path()), check_shape(b.path(), &summary));
    assert_eq!(ea.len(), eb.len());
    for (x, y) in ea.iter().zip(&eb) {
        assert_eq!(x["entry"], y["entry"]);
        assert_ne!(x["sig"], y["sig"]);
    }
}

#[test]
fn refuses_bad_configs_and_non_empty_output() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        GenConfig {
            facilities: 0,
            ..small()
        },
        GenConfig {
            months: 6,
            ..small()
        },
        GenConfig {
            start: (2023, 13),
            ..small()
        },
        GenConfig {
            anomaly_rate_pct: 101,
            ..small()
        },
        GenConfig {
            origin: "no spaces".into(),
            ..small()
        },
    ] {
        assert!(matches!(
            generate(&bad, dir.path()),
            Err(GenError::Config(_))
        ));
    }
    let future = GenConfig {
        start: (2090, 1),
        ..small()
    };
    assert!(matches!(
        generate(&future, &dir.path().join("f")),
        Err(GenError::Future { .. })
    ));
    std::fs::write(dir.path().join("x"), "x").unwrap();
    let err = generate(&small(), dir.path()).unwrap_err();
    assert!(matches!(err, GenError::OutputNotEmpty { .. }), "{err}");
}

/// What PROTOCOL §6 lets ingest accept, replayed over the generated file.
#[derive(Default)]
struct Replay {
    orgs: BTreeMap<String, Role>,
    keys: BTreeMap<String, String>,
    facilities: BTreeMap<String, String>,
    /// lot → (facility, undeployed stock)
    lots: BTreeMap<String, (String, u64)>,
    deployed: BTreeMap<(String, String), u64>,
    permits: BTreeSet<String>,
    subsidies: BTreeMap<String, String>,
    loans: BTreeSet<String>,
}

impl Replay {
    fn apply(&mut self, line: usize, kind: Kind, signer: &str, b: &Value) {
        let s = |k: &str| b[k].as_str().unwrap_or_default().to_string();
        let n = |k: &str| b[k].as_u64().unwrap();
        let org = self.keys.get(signer).cloned().unwrap_or_default();
        let role = *self
            .orgs
            .get(&org)
            .unwrap_or_else(|| panic!("line {line}: unknown signer"));
        assert!(
            kind.signing_roles().contains(&role),
            "line {line}: {kind} by {role:?}"
        );
        let operates = |r: &Replay, f: &str| {
            assert_eq!(
                r.facilities.get(f),
                Some(&org),
                "line {line}: {kind} on {f} by {org}"
            )
        };
        let fresh =
            |set_has: bool, what: &str| assert!(!set_has, "line {line}: {what} registered twice");
        match kind {
            Kind::OrgRegister => {
                fresh(self.orgs.contains_key(&s("org_id")), "org");
                let r = Role::parse(b["roles"][0].as_str().unwrap()).unwrap();
                self.orgs.insert(s("org_id"), r);
            }
            Kind::KeyGrant => {
                assert!(self.orgs.contains_key(&s("org_id")), "line {line}");
                fresh(self.keys.contains_key(&s("public_key")), "key");
                self.keys.insert(s("public_key"), s("org_id"));
            }
            Kind::FacilityRegister => {
                fresh(self.facilities.contains_key(&s("facility_id")), "facility");
                self.facilities.insert(s("facility_id"), org.clone());
            }
            Kind::FacilityStatus => operates(self, &s("facility_id")),
            Kind::FacilityTransfer => {
                operates(self, &s("facility_id"));
                assert!(self.orgs.contains_key(&s("to_org")));
                self.facilities.insert(s("facility_id"), s("to_org"));
            }
            Kind::PermitIssue => {
                assert!(
                    self.facilities.contains_key(&s("facility_id")),
                    "line {line}"
                );
                assert!(s("valid_from") <= s("valid_until"), "line {line}");
                fresh(!self.permits.insert(s("permit_id")), "permit");
            }
            Kind::PermitRevoke => assert!(self.permits.contains(&s("permit_id")), "line {line}"),
            Kind::LoanIssue => {
                assert!(
                    self.facilities.contains_key(&s("facility_id")),
                    "line {line}"
                );
                assert!(self.orgs.contains_key(&s("borrower_org")), "line {line}");
                fresh(!self.loans.insert(s("loan_id")), "loan");
            }
            Kind::Procurement => {
                operates(self, &s("facility_id"));
                fresh(self.lots.contains_key(&s("lot_id")), "lot");
                self.lots
                    .insert(s("lot_id"), (s("facility_id"), n("quantity")));
            }
            Kind::LotSerials => {
                let f = self.lots.get(&s("lot_id")).unwrap().0.clone();
                operates(self, &f);
            }
            Kind::Deployment => {
                let (f, stock) = self.lots.get(&s("lot_id")).cloned().unwrap();
                operates(self, &f);
                operates(self, &s("facility_id"));
                assert!(
                    n("quantity") <= stock,
                    "line {line}: deploys more than stock"
                );
                self.lots.get_mut(&s("lot_id")).unwrap().1 -= n("quantity");
                *self
                    .deployed
                    .entry((s("lot_id"), s("facility_id")))
                    .or_default() += n("quantity");
            }
            Kind::LotTransfer => {
                let f = self.lots.get(&s("lot_id")).unwrap().0.clone();
                operates(self, &f);
                assert!(self.orgs.contains_key(&s("to_org")), "line {line}");
                let q = n("quantity");
                let slot = match b.get("from_facility") {
                    Some(from) => self
                        .deployed
                        .get_mut(&(s("lot_id"), from.as_str().unwrap().to_string()))
                        .unwrap(),
                    None => &mut self.lots.get_mut(&s("lot_id")).unwrap().1,
                };
                assert!(q <= *slot, "line {line}: transfers more than there");
                *slot -= q;
            }
            Kind::SubsidyGrant => {
                assert!(
                    self.facilities.contains_key(&s("facility_id")),
                    "line {line}"
                );
                assert!(self.orgs.contains_key(&s("recipient_org")), "line {line}");
                fresh(self.subsidies.contains_key(&s("subsidy_id")), "subsidy");
                self.subsidies.insert(s("subsidy_id"), org.clone());
            }
            Kind::SubsidyDisburse => {
                assert_eq!(
                    self.subsidies.get(&s("subsidy_id")),
                    Some(&org),
                    "line {line}"
                )
            }
            Kind::PowerReport | Kind::OccupancyReport => operates(self, &s("facility_id")),
            Kind::MeterReading | Kind::InspectionReport => {
                assert!(
                    self.facilities.contains_key(&s("facility_id")),
                    "line {line}"
                )
            }
            other => panic!("line {line}: unexpected kind {other}"),
        }
    }
}

fn check_shape(dir: &Path, summary: &GenSummary) -> Vec<Value> {
    let entries = lines(dir);
    assert_eq!(entries.len() as u64, summary.entries);
    let world = read_json(&dir.join("world.json"));
    // Signed for the origin the world names, the one it is to be loaded under.
    let origin = world["origin"].as_str().unwrap();
    let authority = keys::load_signing_key(&dir.join("keys/authority.pem")).unwrap();
    let authority_hex = keys::public_hex(&authority.verifying_key());
    let mut replay = Replay::default();
    replay.orgs.insert("authority".into(), Role::Authority);
    replay
        .keys
        .insert(authority_hex.clone(), "authority".into());
    let mut next_seq: BTreeMap<String, u64> = BTreeMap::new();
    next_seq.insert(authority_hex.clone(), 2);
    let mut last_ts = 0i64;
    for (i, env) in entries.iter().enumerate() {
        let line = i + 1;
        let entry = &env["entry"];
        let sig: [u8; 64] = keys::parse_lower_hex(env["sig"].as_str().unwrap()).unwrap();
        let signer_hex = entry["signer"].as_str().unwrap();
        let signer = keys::parse_public_hex(signer_hex).unwrap();
        let canonical = jcs::canonical(entry).unwrap();
        assert!(
            verify_entry_signature(origin, &signer, &canonical, &sig),
            "line {line}: bad signature"
        );
        assert!(canonical.len() < 60_000, "line {line}: entry too large");

        let seq = entry["seq"].as_u64().unwrap();
        let want = next_seq.entry(signer_hex.to_string()).or_insert(1);
        assert_eq!(seq, *want, "line {line}: seq");
        *want += 1;

        let ts = dates::parse_instant(entry["ts"].as_str().unwrap()).unwrap();
        assert!(ts >= last_ts - 86_400, "line {line}: ts goes back in time");
        last_ts = last_ts.max(ts);
        assert!(ts <= dates::now());

        let kind = Kind::parse(entry["kind"].as_str().unwrap()).unwrap();
        let body = &entry["body"];
        let errors = schema::body_errors(kind, body);
        assert!(errors.is_empty(), "line {line}: {kind} {body}: {errors:?}");
        if let Some(period) = body.get("period").and_then(Value::as_str) {
            let begins = dates::parse_instant(&format!("{period}-01T00:00:00Z")).unwrap();
            assert!(ts >= begins, "line {line}: report signed before its period");
        }
        if kind == Kind::OccupancyReport {
            let n = |k: &str| body[k].as_u64().unwrap();
            assert!(n("gpu_hours_voucher") <= n("gpu_hours_sold"), "line {line}");
            assert!(
                n("gpu_hours_sold") <= n("gpu_hours_available"),
                "line {line}"
            );
        }
        if kind == Kind::PowerReport {
            assert!(
                body["it_kwh"].as_u64() <= body["consumed_kwh"].as_u64(),
                "line {line}"
            );
        }
        replay.apply(line, kind, signer_hex, body);
    }
    assert_eq!(entries[0]["entry"]["seq"], 2);
    assert_eq!(entries[0]["entry"]["kind"], "org.register");

    // Every party has a key file matching world.json.
    for p in world["parties"].as_array().unwrap() {
        let org = p["org_id"].as_str().unwrap();
        let key = keys::load_signing_key(&dir.join(format!("keys/{org}.pem"))).unwrap();
        assert_eq!(keys::public_hex(&key.verifying_key()), p["public_key"]);
    }
    let log = keys::load_signing_key(&dir.join("keys/log.pem")).unwrap();
    assert_eq!(keys::public_hex(&log.verifying_key()), world["log_key"]);

    // The default as_of (latest report period) is the last month.
    let latest = entries
        .iter()
        .filter_map(|e| e["entry"]["body"]["period"].as_str())
        .max()
        .unwrap();
    assert_eq!(latest, summary.last_month);
    entries
}

fn check_labels(dir: &Path) -> BTreeSet<String> {
    let world = read_json(&dir.join("world.json"));
    let labels = read_json(&dir.join("labels.json"));
    let facilities: BTreeMap<&str, &Value> = world["facilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["id"].as_str().unwrap(), f))
        .collect();
    let mut pairs = Vec::new();
    for l in labels.as_array().unwrap() {
        let rule = l["rule"].as_str().unwrap();
        let f = l["facility_id"].as_str().unwrap();
        assert!(Rule::parse(rule).is_some(), "unknown rule {rule}");
        assert!(facilities.contains_key(f), "unknown facility {f}");
        pairs.push((rule.to_string(), f.to_string()));
    }
    let mut sorted = pairs.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(pairs, sorted, "labels are sorted and unique");
    for (id, f) in &facilities {
        let mine: BTreeSet<&str> = pairs
            .iter()
            .filter(|(_, g)| g == id)
            .map(|(r, _)| r.as_str())
            .collect();
        match f["scenario"].as_str() {
            None => assert!(mine.is_empty(), "clean facility {id} fires {mine:?}"),
            Some(rule) => assert!(
                mine.contains(rule),
                "{id} planted {rule} but fires {mine:?}"
            ),
        }
    }
    pairs.into_iter().map(|(r, _)| r).collect()
}

#[test]
fn written_world_has_valid_shape_and_covers_every_rule() {
    let dir = tempfile::tempdir().unwrap();
    let config = GenConfig {
        facilities: 40,
        months: 24,
        seed: 3,
        ..GenConfig::default()
    };
    let summary = generate(&config, dir.path()).unwrap();
    assert_eq!(summary.last_month, "2024-12");
    check_shape(dir.path(), &summary);
    let rules = check_labels(dir.path());
    assert_eq!(rules.len(), 20, "rules covered: {rules:?}");
    assert!(summary.labels >= 20);
}

#[test]
fn demo_world_tells_its_story() {
    let dir = tempfile::tempdir().unwrap();
    let config = GenConfig {
        demo: true,
        ..GenConfig::default()
    };
    let summary = generate(&config, dir.path()).unwrap();
    assert_eq!(summary.last_month, "2025-03");
    let entries = check_shape(dir.path(), &summary);
    assert_eq!(check_labels(dir.path()).len(), 20);

    let world = read_json(&dir.path().join("world.json"));
    let planted = |rule: &str| -> Vec<(String, String, Vec<String>)> {
        world["facilities"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["scenario"] == rule)
            .map(|f| {
                (
                    f["id"].as_str().unwrap().to_string(),
                    f["province"].as_str().unwrap().to_string(),
                    f["labels"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|l| l.as_str().unwrap().to_string())
                        .collect(),
                )
            })
            .collect()
    };
    let voucher = planted("voucher-dependence");
    assert!(
        voucher
            .iter()
            .any(|(_, p, labels)| p == "Henan" && labels.contains(&"idle-funded".to_string()))
    );
    let resale = planted("power-resale");
    assert!(resale.len() >= 2);
    assert!(
        resale.iter().all(
            |(_, p, _)| ["Inner Mongolia", "Ningxia", "Gansu", "Qinghai"].contains(&p.as_str())
        )
    );
    assert_eq!(planted("land-banking").len(), 1);
    let pledge = &planted("double-pledge")[0].0;
    let lot_pledged_twice = entries
        .iter()
        .filter(|e| {
            e["entry"]["kind"] == "loan.issue" && e["entry"]["body"]["facility_id"] == *pledge
        })
        .filter(|e| {
            e["entry"]["body"]["collateral"][0]
                .as_str()
                .unwrap()
                .contains("-lot")
        })
        .count();
    assert_eq!(lot_pledged_twice, 2);

    // Rents: 180,000 CNY per 8xH100 server-month through 2024, 75,000 from 2025.
    let h100_rate = |year: &str| -> Vec<u64> {
        let h100_sites: BTreeSet<&str> = entries
            .iter()
            .filter(|e| {
                e["entry"]["kind"] == "procurement" && e["entry"]["body"]["gpu_model"] == "H100"
            })
            .filter(|e| {
                e["entry"]["body"]["lot_id"]
                    .as_str()
                    .unwrap()
                    .ends_with("-lot1")
            })
            .map(|e| e["entry"]["body"]["facility_id"].as_str().unwrap())
            .collect();
        entries
            .iter()
            .map(|e| &e["entry"]["body"])
            .filter(|b| b["gpu_hours_sold"].as_u64().is_some_and(|s| s > 1000))
            .filter(|b| h100_sites.contains(b["facility_id"].as_str().unwrap()))
            .filter(|b| b["period"].as_str().unwrap().starts_with(year))
            .map(|b| b["revenue_minor"].as_u64().unwrap() / b["gpu_hours_sold"].as_u64().unwrap())
            .collect()
    };
    for (year, fen) in [("2024", 3125u64), ("2025", 1302)] {
        let rates = h100_rate(year);
        assert!(!rates.is_empty());
        assert!(
            rates
                .iter()
                .all(|r| r * 10 >= fen * 9 - 10 && r * 10 <= fen * 11),
            "{year}: {rates:?}"
        );
    }

    // Most compute stands idle.
    let (sold, avail) = entries
        .iter()
        .map(|e| &e["entry"]["body"])
        .filter(|b| b.get("gpu_hours_available").is_some())
        .fold((0u64, 0u64), |(s, a), b| {
            (
                s + b["gpu_hours_sold"].as_u64().unwrap(),
                a + b["gpu_hours_available"].as_u64().unwrap(),
            )
        });
    assert!(sold * 2 < avail, "overall utilization {sold}/{avail}");
}

/// Across many seeds and sizes: planted rules fire, clean facilities fire nothing, and
/// with 40 facilities or more every rule is planted.
#[test]
fn planted_rules_fire_and_clean_facilities_stay_clean() {
    let (mut from_stock, mut from_facility, mut handovers) = (0, 0, 0);
    for seed in 0..12u64 {
        for (facilities, months) in [(45, 18), (60, 30), (40, 36)] {
            let config = GenConfig {
                facilities,
                months,
                seed,
                demo: seed % 3 == 0,
                ..GenConfig::default()
            };
            let w = world::plan(&config);
            let mut covered = BTreeSet::new();
            let mut last_report = false;
            for skel in &w.facilities {
                let out = facility::generate(&w, skel);
                match skel.scenario {
                    None => assert!(
                        out.labels.is_empty(),
                        "seed {seed} {facilities}x{months}: clean {} fires {:?}",
                        skel.id,
                        out.labels
                    ),
                    Some(rule) => {
                        assert!(
                            out.labels.contains(&rule),
                            "seed {seed} {facilities}x{months}: {} planted {rule}, fires {:?}",
                            skel.id,
                            out.labels
                        );
                        covered.insert(rule);
                    }
                }
                for e in &out.events {
                    match &e.body {
                        model::Body::LotTransfer {
                            from_facility: None,
                            ..
                        } => from_stock += 1,
                        model::Body::LotTransfer { .. } => from_facility += 1,
                        model::Body::FacilityTransfer { .. } => handovers += 1,
                        _ => {}
                    }
                }
                last_report |= out.events.iter().any(|e| {
                    matches!(&e.body, model::Body::OccupancyReport { period, .. } if *period == w.last)
                });
            }
            assert_eq!(covered.len(), 20, "seed {seed}");
            assert!(last_report);
        }
    }
    assert!(from_stock > 0 && from_facility > 0 && handovers > 0);
}

/// Tiny and long worlds work too, keep facility 0 clean, and report for the last month.
#[test]
fn edge_sizes_generate() {
    for (facilities, months, start, rate) in [
        (1, 18, (2023, 1), 30),
        (2, 18, (2023, 6), 100),
        (7, 60, (2015, 3), 50),
        (41, 19, (2022, 12), 0),
    ] {
        let config = GenConfig {
            facilities,
            months,
            start,
            anomaly_rate_pct: rate,
            ..GenConfig::default()
        };
        let w = world::plan(&config);
        assert!(w.facilities[0].scenario.is_none());
        let planted = w.facilities.iter().filter(|f| f.scenario.is_some()).count();
        assert_eq!(planted, world::anomaly_count(&config));
        let dir = tempfile::tempdir().unwrap();
        let summary = generate(&config, dir.path()).unwrap();
        assert_eq!(summary.last_month, w.last.label());
        check_shape(dir.path(), &summary);
        check_labels(dir.path());
    }
}
