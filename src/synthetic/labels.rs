//! The ground truth: which PROTOCOL §8 rules fire for one facility as of the world's last
//! month, with default thresholds and reference prices, computed from the facility's own
//! records exactly as the rules define them. It reads only what the generator writes
//! (one facility's records in ledger order), independently of how they were planned, so
//! a planted scenario's labels are the rules it honestly triggers. Serial numbers, land
//! parcels and lot ids are namespaced by facility, so the cross-record rules
//! (duplicate-serial, double-pledge) can be judged per facility too.

use std::collections::{BTreeMap, BTreeSet};

use super::calendar::{Day, Month, add_months, day_at};
use super::model::{Body, Event, PermitKind, Purpose, Status};
use crate::audit::Rule;

const WINDOW_MONTHS: i32 = 6;

struct Lot {
    date: Day,
    quantity: u64,
    unit_price: u64,
    reference: Option<u64>,
}

#[derive(Default, Clone, Copy)]
struct Occupancy {
    installed: u64,
    available: u64,
    sold: u64,
    voucher: u64,
}

#[derive(Default, Clone, Copy)]
struct Power {
    consumed: u64,
    it: u64,
    resold: u64,
}

#[derive(Default, Clone, Copy)]
struct Meter {
    consumed: u64,
    resold: u64,
}

struct Grant {
    purpose: Purpose,
    amount: u64,
    condition: Option<(u64, Day)>,
}

#[derive(Default)]
struct Facts {
    facility: String,
    /// (effective, ledger position, status)
    statuses: Vec<(Day, usize, Status)>,
    /// permit id → (kind, from, until)
    permits: BTreeMap<String, (PermitKind, Day, Day)>,
    revocations: BTreeMap<String, Day>,
    lots: BTreeMap<String, Lot>,
    serials: Vec<(String, String)>,
    /// (date, lot, quantity)
    deployments: Vec<(Day, String, u64)>,
    /// (date, lot, quantity, from_facility); every transfer the generator writes goes to
    /// an organisation.
    transfers: Vec<(Day, String, u64, Option<String>)>,
    facility_transfers: Vec<Day>,
    /// (date, ledger position, state_backed, collateral)
    loans: Vec<(Day, usize, bool, Vec<String>)>,
    grants: BTreeMap<String, Grant>,
    disbursements: Vec<(String, Day)>,
    occupancy: BTreeMap<Month, Occupancy>,
    power: BTreeMap<Month, Power>,
    meter: BTreeMap<Month, Meter>,
    inspections: Vec<(Day, u64)>,
}

impl Facts {
    fn read(events: &[Event], facility: &str, last: Month) -> Facts {
        let as_of = last.last_day();
        let mut f = Facts {
            facility: facility.to_string(),
            ..Facts::default()
        };
        for (pos, e) in events.iter().enumerate() {
            match &e.body {
                Body::FacilityStatus {
                    status, effective, ..
                } if *effective <= as_of => f.statuses.push((*effective, pos, *status)),
                Body::PermitIssue {
                    permit_id,
                    kind,
                    valid_from,
                    valid_until,
                    ..
                } if day_at(e.ts) <= as_of => {
                    f.permits
                        .insert(permit_id.clone(), (*kind, *valid_from, *valid_until));
                }
                Body::PermitRevoke {
                    permit_id,
                    effective,
                    ..
                } if day_at(e.ts) <= as_of => {
                    let slot = f.revocations.entry(permit_id.clone()).or_insert(*effective);
                    *slot = (*slot).min(*effective);
                }
                Body::Procurement {
                    lot_id,
                    model,
                    quantity,
                    unit_price_minor,
                    date,
                    ..
                } if *date <= as_of => {
                    f.lots.insert(
                        lot_id.clone(),
                        Lot {
                            date: *date,
                            quantity: *quantity,
                            unit_price: *unit_price_minor,
                            reference: Some(model.reference_fen(Month::of(*date).year())),
                        },
                    );
                }
                Body::LotSerials { lot_id, serials } if day_at(e.ts) <= as_of => {
                    for s in serials.expand() {
                        f.serials.push((s, lot_id.clone()));
                    }
                }
                Body::Deployment {
                    lot_id,
                    facility_id,
                    quantity,
                    date,
                } if *date <= as_of && facility_id == facility => {
                    f.deployments.push((*date, lot_id.clone(), *quantity))
                }
                Body::LotTransfer {
                    lot_id,
                    quantity,
                    from_facility,
                    date,
                    ..
                } if *date <= as_of => {
                    f.transfers
                        .push((*date, lot_id.clone(), *quantity, from_facility.clone()))
                }
                Body::FacilityTransfer { date, .. } if *date <= as_of => {
                    f.facility_transfers.push(*date)
                }
                Body::LoanIssue {
                    state_backed,
                    date,
                    collateral,
                    ..
                } if *date <= as_of => {
                    f.loans
                        .push((*date, pos, *state_backed, collateral.clone()))
                }
                Body::SubsidyGrant {
                    subsidy_id,
                    purpose,
                    amount_minor,
                    date,
                    condition,
                    ..
                } if *date <= as_of => {
                    f.grants.insert(
                        subsidy_id.clone(),
                        Grant {
                            purpose: *purpose,
                            amount: *amount_minor,
                            condition: *condition,
                        },
                    );
                }
                Body::SubsidyDisburse {
                    subsidy_id, date, ..
                } if *date <= as_of => f.disbursements.push((subsidy_id.clone(), *date)),
                Body::OccupancyReport {
                    period,
                    gpus_installed,
                    gpu_hours_available,
                    gpu_hours_sold,
                    gpu_hours_voucher,
                    ..
                } if *period <= last => {
                    f.occupancy.insert(
                        *period,
                        Occupancy {
                            installed: *gpus_installed,
                            available: *gpu_hours_available,
                            sold: *gpu_hours_sold,
                            voucher: *gpu_hours_voucher,
                        },
                    );
                }
                Body::PowerReport {
                    period,
                    consumed_kwh,
                    it_kwh,
                    resold_kwh,
                    ..
                } if *period <= last => {
                    f.power.insert(
                        *period,
                        Power {
                            consumed: *consumed_kwh,
                            it: *it_kwh,
                            resold: *resold_kwh,
                        },
                    );
                }
                Body::MeterReading {
                    period,
                    consumed_kwh,
                    resold_kwh,
                    ..
                } if *period <= last => {
                    f.meter.insert(
                        *period,
                        Meter {
                            consumed: *consumed_kwh,
                            resold: *resold_kwh,
                        },
                    );
                }
                Body::InspectionReport {
                    date, gpus_counted, ..
                } if *date <= as_of => f.inspections.push((*date, *gpus_counted)),
                _ => {}
            }
        }
        f.statuses.sort_by_key(|(d, pos, _)| (*d, *pos));
        f
    }

    /// The latest status effective on or before `day` (announced before any).
    fn status_at(&self, day: Day) -> Status {
        self.statuses
            .iter()
            .rev()
            .find(|(d, _, _)| *d <= day)
            .map_or(Status::Announced, |(_, _, s)| *s)
    }

    fn operational_through(&self, m: Month) -> bool {
        self.status_at(m.first_day()) == Status::Operational
            && self.status_at(m.last_day()) == Status::Operational
    }

    /// Valid intervals of permits of one kind, revocations applied.
    fn valid_intervals(&self, kind: PermitKind) -> Vec<(Day, Day)> {
        let mut out: Vec<(Day, Day)> = self
            .permits
            .iter()
            .filter(|(_, (k, _, _))| *k == kind)
            .filter_map(|(id, (_, from, until))| {
                let until = match self.revocations.get(id) {
                    Some(eff) => (*until).min(eff - 1),
                    None => *until,
                };
                (until >= *from).then_some((*from, until))
            })
            .collect();
        out.sort();
        out
    }

    fn valid_on(&self, kind: PermitKind, day: Day) -> bool {
        self.valid_intervals(kind)
            .iter()
            .any(|(a, b)| *a <= day && day <= *b)
    }

    /// Every day of `m` lies in some valid permit of `kind`.
    fn covered(&self, kind: PermitKind, m: Month) -> bool {
        let mut need = m.first_day();
        for (a, b) in self.valid_intervals(kind) {
            if a <= need && b >= need {
                need = b + 1;
            }
            if need > m.last_day() {
                return true;
            }
        }
        need > m.last_day()
    }

    fn gpus_at(&self, day: Day) -> i64 {
        let deployed: u64 = self
            .deployments
            .iter()
            .filter(|(d, _, _)| *d <= day)
            .map(|(_, _, q)| q)
            .sum();
        let removed: u64 = self
            .transfers
            .iter()
            .filter(|(d, _, _, from)| *d <= day && from.as_deref() == Some(self.facility.as_str()))
            .map(|(_, _, q, _)| q)
            .sum();
        deployed as i64 - removed as i64
    }

    fn stock(&self, lot: &str, quantity: u64, day: Day) -> i64 {
        let deployed: u64 = self
            .deployments
            .iter()
            .filter(|(d, l, _)| *d <= day && l == lot)
            .map(|(_, _, q)| q)
            .sum();
        let moved: u64 = self
            .transfers
            .iter()
            .filter(|(d, l, _, from)| *d <= day && l == lot && from.is_none())
            .map(|(_, _, q, _)| q)
            .sum();
        quantity as i64 - deployed as i64 - moved as i64
    }

    fn disbursed(&self, subsidy: &str) -> bool {
        self.disbursements.iter().any(|(s, _)| s == subsidy)
    }

    /// Σ sold / Σ available over the occupancy reports of `months`.
    fn utilization(&self, months: impl Iterator<Item = Month>) -> Option<(u64, u64)> {
        let (mut sold, mut avail, mut any) = (0u64, 0u64, false);
        for m in months {
            if let Some(o) = self.occupancy.get(&m) {
                sold += o.sold;
                avail += o.available;
                any = true;
            }
        }
        (any && avail > 0).then_some((sold, avail))
    }
}

/// The rules that fire for the facility whose records (in ledger order) are `events`,
/// as of `last` (its last day for date comparisons).
pub(crate) fn evaluate(events: &[Event], facility: &str, last: Month) -> BTreeSet<Rule> {
    let f = Facts::read(events, facility, last);
    let as_of = last.last_day();
    let window: Vec<Month> = (0..WINDOW_MONTHS).rev().map(|i| last.plus(-i)).collect();
    let mut fired = BTreeSet::new();
    let mut fire = |rule: Rule, cond: bool| {
        if cond {
            fired.insert(rule);
        }
    };

    let any_disbursed = !f.disbursements.is_empty();
    let window_util = f.utilization(window.iter().copied());
    fire(
        Rule::IdleFunded,
        any_disbursed
            && f.status_at(as_of) == Status::Operational
            && window_util.is_some_and(|(s, a)| s * 100 < 30 * a),
    );

    let ever_operational = f
        .statuses
        .iter()
        .any(|(d, _, _)| f.status_at(*d) == Status::Operational);
    fire(
        Rule::StalledFunded,
        !ever_operational
            && f.disbursements
                .iter()
                .any(|(_, d)| add_months(*d, 12) <= as_of),
    );

    let (w_sold, w_voucher) = window
        .iter()
        .filter_map(|m| f.occupancy.get(m))
        .fold((0u64, 0u64), |(s, v), o| (s + o.sold, v + o.voucher));
    fire(
        Rule::VoucherDependence,
        w_sold > 0 && w_voucher * 2 > w_sold,
    );

    let (w_resold, w_total) = window
        .iter()
        .filter_map(|m| f.power.get(m))
        .fold((0u64, 0u64), |(r, t), p| {
            (r + p.resold, t + p.consumed + p.resold)
        });
    fire(Rule::PowerResale, w_resold * 10 > w_total * 3);

    fire(
        Rule::ResaleWithoutPermit,
        f.power
            .iter()
            .any(|(m, p)| p.resold > 0 && !f.covered(PermitKind::PowerSale, *m)),
    );

    let has_land_use = f
        .permits
        .values()
        .any(|(k, _, _)| *k == PermitKind::LandUse);
    fire(
        Rule::LandBanking,
        has_land_use
            && f.loans.iter().any(|(date, _, state, _)| {
                *state
                    && add_months(*date, 12) <= as_of
                    && (*date..=add_months(*date, 12)).all(|d| {
                        !f.valid_on(PermitKind::Construction, d)
                            && !matches!(
                                f.status_at(d),
                                Status::UnderConstruction | Status::Operational
                            )
                    })
            }),
    );

    fire(
        Rule::UndeployedGpus,
        f.lots
            .iter()
            .any(|(id, lot)| as_of - lot.date > 90 && f.stock(id, lot.quantity, as_of) > 0),
    );

    fire(
        Rule::PhantomCapacity,
        f.occupancy.iter().any(|(m, o)| {
            o.installed as i64 > f.gpus_at(m.last_day()) || o.available > o.installed * m.hours()
        }),
    );

    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    let mut duplicate = false;
    for (serial, lot) in &f.serials {
        match seen.get(serial.as_str()) {
            Some(other) if *other != lot.as_str() => duplicate = true,
            Some(_) => {}
            None => {
                seen.insert(serial, lot);
            }
        }
    }
    fire(Rule::DuplicateSerial, duplicate);

    let mut pledged: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, _, _, collateral) in &f.loans {
        for c in collateral {
            *pledged.entry(c.as_str()).or_default() += 1;
        }
    }
    fire(Rule::DoublePledge, pledged.values().any(|n| *n >= 2));

    fire(
        Rule::PriceAnomaly,
        f.lots.values().any(|lot| {
            lot.reference
                .is_some_and(|r| lot.unit_price * 100 > r * 150 || lot.unit_price * 100 < r * 50)
        }),
    );

    let equipment: u64 = f
        .grants
        .values()
        .filter(|g| g.purpose == Purpose::Equipment)
        .map(|g| g.amount)
        .sum();
    let value: u64 = f.lots.values().map(|l| l.quantity * l.unit_price).sum();
    fire(Rule::SubsidyStacking, equipment > value);

    let asset_disbursements: Vec<Day> = f
        .disbursements
        .iter()
        .filter(|(id, _)| {
            f.grants
                .get(id)
                .is_some_and(|g| matches!(g.purpose, Purpose::Equipment | Purpose::Construction))
        })
        .map(|(_, d)| *d)
        .collect();
    let sales: Vec<Day> = f
        .transfers
        .iter()
        .filter(|(_, lot, _, _)| f.lots.contains_key(lot))
        .map(|(d, _, _, _)| *d)
        .chain(f.facility_transfers.iter().copied())
        .collect();
    fire(
        Rule::SubsidisedAssetSold,
        sales.iter().any(|s| {
            asset_disbursements
                .iter()
                .any(|d| *d <= *s && *s <= add_months(*d, 60))
        }),
    );

    fire(
        Rule::ReportingGap,
        window.iter().any(|m| {
            f.operational_through(*m) && (!f.occupancy.contains_key(m) || !f.power.contains_key(m))
        }),
    );

    fire(
        Rule::PermitMissing,
        f.occupancy
            .iter()
            .any(|(m, o)| o.sold > 0 && !f.covered(PermitKind::Operation, *m)),
    );

    fire(
        Rule::PowerOccupancyMismatch,
        f.occupancy
            .iter()
            .any(|(m, o)| f.power.get(m).is_some_and(|p| p.it * 2 < o.sold)),
    );

    let off = |a: u64, b: u64| a.abs_diff(b) * 10 > a.max(b);
    fire(
        Rule::MeterMismatch,
        f.meter.iter().any(|(m, r)| {
            f.power
                .get(m)
                .is_some_and(|p| off(p.consumed, r.consumed) || off(p.resold, r.resold))
        }),
    );

    fire(
        Rule::InspectionShortfall,
        f.inspections
            .iter()
            .any(|(d, counted)| (*counted as i64) * 10 < 9 * f.gpus_at(*d)),
    );

    fire(
        Rule::SubsidyConditionBreach,
        f.grants.iter().any(|(id, g)| match g.condition {
            Some((min, by)) if by <= as_of && f.disbursed(id) => {
                let end = Month::of(by);
                let (sold, avail) = f
                    .utilization([end.plus(-2), end.plus(-1), end].into_iter())
                    .unwrap_or((0, 1));
                sold * 100 < min * avail
            }
            _ => false,
        }),
    );

    fire(
        Rule::PueImplausible,
        f.power.values().any(|p| {
            if p.it == 0 {
                p.consumed > 0
            } else {
                p.consumed * 100 < 105 * p.it || p.consumed > 2 * p.it
            }
        }),
    );

    fired
}
