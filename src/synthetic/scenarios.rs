//! Planted anomalies: each scenario bends one part of a clean plan so that the rule it
//! is named after fires (and, honestly, whatever else that implies; `labels.rs` decides).

use super::calendar::{Month, add_months};
use super::model::Purpose;
use super::parties::{Lender, PROVINCES};
use super::plan::{
    self, Amount, Collateral, LoanPlan, OperationPermit, Plan, Sale, SubsidyPlan, Timeline, Tweak,
    round8,
};
use super::rng::Rng;
use super::world::{FacilitySkel, World};
use crate::audit::Rule;

/// The timeline a scenario needs and whether its base plan carries the usual subsidies.
fn base(rule: Rule, rng: &mut Rng) -> (Timeline, bool) {
    match rule {
        Rule::StalledFunded | Rule::LandBanking => (Timeline::PreOperational, false),
        Rule::SubsidisedAssetSold | Rule::SubsidyStacking => (Timeline::Seasoned, true),
        Rule::IdleFunded
        | Rule::VoucherDependence
        | Rule::PowerResale
        | Rule::PhantomCapacity
        | Rule::SubsidyConditionBreach => (Timeline::Seasoned, false),
        _ => (Timeline::Seasoned, rng.chance(40)),
    }
}

fn state_lender(world: &World, rng: &mut Rng) -> Lender {
    let state: Vec<Lender> = world
        .parties
        .lenders
        .iter()
        .copied()
        .filter(|l| l.state_backed)
        .collect();
    *rng.pick(&state)
}

fn other_lender(world: &World, not: Lender, rng: &mut Rng) -> Lender {
    let rest: Vec<Lender> = world
        .parties
        .lenders
        .iter()
        .copied()
        .filter(|l| l.party != not.party)
        .collect();
    *rng.pick(&rest)
}

/// The plan of a facility carrying `rule`.
pub(crate) fn plant(world: &World, skel: &FacilitySkel, rule: Rule, rng: &mut Rng) -> Plan {
    let (timeline, subsidised) = base(rule, rng);
    let mut p = plan::clean(world, skel, timeline, subsidised, rng);
    let last = world.last;
    let as_of = world.as_of();
    let demo = world.config.demo;
    let parties = &world.parties;
    let regional = parties.regional_grantor(skel.province);
    // Seasoned plans open at least eight months before the end.
    let op = p.operational.unwrap_or(last.plus(-8));
    let op_day = op.first_day();
    let lot1_day = p.lot1.as_ref().map_or(op_day - 60, |l| l.day);
    let lot1_qty = p.lot1.as_ref().map_or(8, |l| l.quantity);
    let back = |n: i32| last.plus(-n);

    match rule {
        Rule::IdleFunded => {
            p.util = (40, 220);
            let c = p.construction.unwrap_or(p.land_use + 30);
            let grant = c + rng.range_i32(20, 50);
            p.subsidies.push(SubsidyPlan {
                purpose: Purpose::Construction,
                grantor: parties.grantor_national,
                program: "National compute hub construction programme".into(),
                amount: Amount::Fixed(p.planned_it_kw * rng.range_u64(2000, 4000) * 100),
                grant,
                disburse: vec![(grant + 30, 500), (op_day + rng.range_i32(10, 40), 500)],
                condition: None,
            });
            let grant = lot1_day + rng.range_i32(20, 60);
            p.subsidies.push(SubsidyPlan {
                purpose: Purpose::Equipment,
                grantor: regional,
                program: format!("{} AI hardware co-funding", PROVINCES[skel.province].name),
                amount: Amount::LotValue(rng.range_u64(200, 300)),
                grant,
                disburse: vec![(grant + rng.range_i32(30, 60), 1000)],
                condition: rng
                    .chance(50)
                    .then(|| (rng.range_u64(35, 45), op.plus(6).last_day())),
            });
        }
        Rule::StalledFunded => {
            let c = p.construction.unwrap_or(p.land_use + 30);
            let grant = c + rng.range_i32(20, 40);
            p.subsidies.push(SubsidyPlan {
                purpose: Purpose::Construction,
                grantor: parties.grantor_national,
                program: "National compute hub construction programme".into(),
                amount: Amount::Fixed(p.planned_it_kw * rng.range_u64(2000, 5000) * 100),
                grant,
                disburse: vec![(grant + rng.range_i32(20, 40), 600)],
                condition: None,
            });
        }
        Rule::VoucherDependence => {
            let grant = op_day + rng.range_i32(5, 25);
            p.subsidies.push(plan::voucher_subsidy(
                regional,
                skel,
                p.planned_gpus,
                grant,
                rng,
            ));
            p.voucher = (600, 850);
            p.util = if demo || rng.chance(50) {
                (100, 250)
            } else {
                (420, 600)
            };
        }
        Rule::PowerResale => {
            p.resale = (620, 1400);
            let from = op_day - rng.range_i32(0, 10);
            p.power_sale = Some((from, add_months(from, 60) - 1));
            p.util = (380, 600);
            let grant = op_day + rng.range_i32(5, 25);
            p.subsidies.push(plan::electricity_subsidy(
                regional,
                p.planned_it_kw,
                grant,
                rng,
            ));
        }
        Rule::ResaleWithoutPermit => {
            p.resale = if rng.chance(60) {
                (90, 250)
            } else {
                (670, 1220)
            };
            p.power_sale = if rng.chance(50) {
                None
            } else {
                Some((op_day - rng.range_i32(0, 10), back(3).last_day()))
            };
        }
        Rule::LandBanking => {
            p.construction = None;
            p.operational = None;
            p.lot1 = None;
            p.expansion = None;
            p.inspections.clear();
            p.energy_review = p.energy_review.filter(|_| rng.chance(50));
            let lender = state_lender(world, rng);
            let date = p.land_use + rng.range_i32(15, 60);
            p.loans = vec![LoanPlan {
                lender,
                date,
                amount: p.planned_gpus * rng.range_u64(150_000, 300_000) * 100,
                collateral: vec![Collateral::Parcel],
            }];
            if rng.chance(35) {
                let grant = p.land_use + rng.range_i32(20, 40);
                p.subsidies.push(SubsidyPlan {
                    purpose: Purpose::Construction,
                    grantor: parties.grantor_national,
                    program: "National compute hub site preparation programme".into(),
                    amount: Amount::Fixed(p.planned_it_kw * rng.range_u64(1000, 2000) * 100),
                    grant,
                    disburse: vec![(grant + rng.range_i32(20, 40), 400)],
                    condition: None,
                });
            }
            // Sometimes building starts at last, long after the loan.
            let late = add_months(date, 12) + rng.range_i32(30, 90);
            if rng.chance(40) && late + 30 < as_of {
                p.construction = Some(late);
                p.energy_review = Some(late - rng.range_i32(5, 20));
            }
        }
        Rule::UndeployedGpus => {
            let lo = op.plus(1).max(back(8));
            let e = Month(rng.range_i32(lo.0, back(4).0.max(lo.0)));
            let q = round8(p.planned_gpus * rng.range_u64(250, 600) / 1000);
            let mut lot = plan::lot(e.first_day() + rng.range_i32(3, 18), q, rng);
            if rng.chance(40) && q >= 16 {
                let part = round8(q * rng.range_u64(200, 600) / 1000).min(q - 8);
                lot.deployments = vec![(lot.day + rng.range_i32(20, 40), part)];
            }
            p.expansion = Some(lot);
        }
        Rule::PhantomCapacity => {
            let from = back(rng.range_i32(1, 4));
            if rng.chance(60) {
                if let Some(l1) = p.lot1.as_mut() {
                    let q = round8(p.planned_gpus * rng.range_u64(450, 650) / 1000);
                    let half = round8(q / 2);
                    l1.quantity = q;
                    if l1.deployments.len() == 2 {
                        l1.deployments[0].1 = half;
                        l1.deployments[1].1 = q - half;
                    } else {
                        l1.deployments[0].1 = q;
                    }
                }
                p.expansion = None;
                p.sale = None;
                p.tweak = Some((from, Tweak::PhantomInstalled));
            } else {
                p.tweak = Some((from, Tweak::PhantomHours(rng.range_u64(1300, 1600))));
            }
        }
        Rule::DuplicateSerial => {
            let e = Month(rng.range_i32(op.plus(2).0, back(2).0.max(op.plus(2).0)));
            let q = round8(p.planned_gpus * rng.range_u64(250, 500) / 1000);
            let mut lot = plan::lot(e.first_day() + rng.range_i32(3, 18), q, rng);
            lot.deployments = vec![(e.plus(1).first_day(), q)];
            lot.duplicates = rng.range_u64(20, 120).min(lot1_qty).min(q);
            p.expansion = Some(lot);
        }
        Rule::DoublePledge => {
            let first = state_lender(world, rng);
            let second = other_lender(world, first, rng);
            let (date, item) = if demo || rng.chance(60) {
                (lot1_day + rng.range_i32(10, 60), Collateral::FirstLot)
            } else {
                (
                    p.construction.unwrap_or(p.land_use + 30) + rng.range_i32(10, 60),
                    Collateral::Parcel,
                )
            };
            let later = (date + rng.range_i32(90, 270)).min(as_of - rng.range_i32(5, 30));
            p.loans = vec![
                LoanPlan {
                    lender: first,
                    date,
                    amount: p.planned_gpus * rng.range_u64(80_000, 150_000) * 100,
                    collateral: vec![item],
                },
                LoanPlan {
                    lender: second,
                    date: later.max(date + 1),
                    amount: p.planned_gpus * rng.range_u64(50_000, 120_000) * 100,
                    collateral: vec![item],
                },
            ];
        }
        Rule::PriceAnomaly => {
            if let Some(l1) = p.lot1.as_mut() {
                l1.price_permille = if rng.chance(70) {
                    rng.range_u64(1650, 2600)
                } else {
                    rng.range_u64(250, 440)
                };
            }
        }
        Rule::SubsidyStacking => {
            p.expansion = None;
            p.subsidies.retain(|s| s.purpose != Purpose::Equipment);
            for (grantor, share, delay) in [
                (
                    parties.grantor_national,
                    rng.range_u64(600, 800),
                    rng.range_i32(20, 60),
                ),
                (regional, rng.range_u64(500, 700), rng.range_i32(61, 120)),
            ] {
                let grant = lot1_day + delay;
                p.subsidies.push(SubsidyPlan {
                    purpose: Purpose::Equipment,
                    grantor,
                    program: if grantor == parties.grantor_national {
                        "National AI hardware localisation fund".into()
                    } else {
                        format!("{} AI hardware co-funding", PROVINCES[skel.province].name)
                    },
                    amount: Amount::LotValue(share),
                    grant,
                    disburse: vec![(grant + rng.range_i32(30, 60), 1000)],
                    condition: None,
                });
            }
        }
        Rule::SubsidisedAssetSold => {
            p.expansion = None;
            p.subsidies.retain(|s| s.purpose != Purpose::Equipment);
            let grant = lot1_day + rng.range_i32(20, 60);
            let paid = grant + rng.range_i32(30, 60);
            p.subsidies.push(SubsidyPlan {
                purpose: Purpose::Equipment,
                grantor: parties.grantor_national,
                program: "National AI hardware localisation fund".into(),
                amount: Amount::LotValue(rng.range_u64(200, 300)),
                grant,
                disburse: vec![(paid, 1000)],
                condition: None,
            });
            let lo = Month::of(paid).plus(2);
            let s = Month(rng.range_i32(lo.0, back(1).0.max(lo.0)));
            p.sale = match skel.buyer {
                Some(to) if rng.chance(40) => Some(Sale::Facility {
                    day: s.first_day() + rng.range_i32(10, 20),
                    to,
                }),
                _ => Some(Sale::Lot {
                    day: s.last_day(),
                    permille: rng.range_u64(250, 600),
                    broker: *rng.pick(&parties.brokers),
                }),
            };
        }
        Rule::ReportingGap => {
            let m = back(rng.range_i32(1, 5));
            p.skip = Some(match rng.below(5) {
                0 | 1 => (m, true, false),
                2 | 3 => (m, false, true),
                _ => (m, true, true),
            });
        }
        Rule::PermitMissing => {
            p.operation = match rng.below(100) {
                0..30 => OperationPermit::Missing,
                30..65 => OperationPermit::Until(back(rng.range_i32(2, 4)).last_day()),
                _ => OperationPermit::Revoked(
                    back(rng.range_i32(1, 4)).first_day() + rng.range_i32(4, 20),
                ),
            };
        }
        Rule::PowerOccupancyMismatch => {
            p.tweak = Some((
                back(rng.range_i32(1, 5)),
                Tweak::ItShare(rng.range_u64(200, 420)),
            ));
        }
        Rule::MeterMismatch => {
            let t = if rng.chance(60) {
                Tweak::MeterConsumed(rng.range_u64(1250, 1600))
            } else {
                Tweak::MeterHiddenResale(rng.range_u64(150, 300))
            };
            p.tweak = Some((back(rng.range_i32(0, 4)), t));
        }
        Rule::InspectionShortfall => {
            let lo = op.plus(2).max(back(8)).first_day();
            p.inspections = vec![(rng.range_i32(lo, as_of), rng.range_u64(400, 800))];
        }
        Rule::SubsidyConditionBreach => {
            p.util = (360, 460);
            if rng.chance(70) {
                let grant = op_day + rng.range_i32(10, 30);
                let by = op.plus(rng.range_i32(3, (last.0 - 1 - op.0).clamp(3, 9)));
                p.subsidies.push(SubsidyPlan {
                    purpose: Purpose::Operations,
                    grantor: regional,
                    program: format!(
                        "{} compute operations support",
                        PROVINCES[skel.province].name
                    ),
                    amount: Amount::Fixed(p.planned_gpus * rng.range_u64(1000, 3000) * 100),
                    grant,
                    disburse: vec![(grant + rng.range_i32(20, 40), 1000)],
                    condition: Some((60, by.last_day())),
                });
            } else {
                let c = p.construction.unwrap_or(p.land_use + 30);
                let grant = c + rng.range_i32(20, 50);
                p.subsidies.push(SubsidyPlan {
                    purpose: Purpose::Construction,
                    grantor: parties.grantor_national,
                    program: "National compute hub construction programme".into(),
                    amount: Amount::Fixed(p.planned_it_kw * rng.range_u64(1500, 3000) * 100),
                    grant,
                    disburse: vec![(grant + rng.range_i32(20, 40), 1000)],
                    condition: Some((50, op.plus(-1).last_day())),
                });
            }
        }
        Rule::PueImplausible => {
            let t = if rng.chance(50) {
                Tweak::Pue(1000, 1030)
            } else {
                Tweak::Pue(2200, 2900)
            };
            p.tweak = Some((back(rng.range_i32(0, 4)), t));
        }
    }
    p
}
