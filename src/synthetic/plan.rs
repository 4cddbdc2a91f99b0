//! A facility's plan: every date, quantity and behaviour of its life, decided before any
//! record is written. `clean` draws a realistic lifecycle that triggers no audit rule;
//! scenarios (`scenarios.rs`) then bend one part of it.

use super::calendar::{Day, Month, add_months};
use super::model::{Model, Purpose};
use super::parties::{Lender, PROVINCES};
use super::rng::Rng;
use super::world::{FacilitySkel, World};

pub(crate) struct LotPlan {
    pub day: Day,
    pub model: Model,
    pub quantity: u64,
    /// Unit price as permille of the reference price for the model and year.
    pub price_permille: u64,
    /// (date, quantity) deployed to the facility.
    pub deployments: Vec<(Day, u64)>,
    /// Serials of the first lot listed again in this one.
    pub duplicates: u64,
    /// Part of the stock sold to a broker before deployment: (date, quantity, broker).
    pub stock_sale: Option<(Day, u64, usize)>,
}

pub(crate) enum OperationPermit {
    /// Valid from opening, renewed before it lapses.
    Renewed,
    Missing,
    /// Valid from opening until the given day, never renewed.
    Until(Day),
    /// Valid for years, revoked from the given day.
    Revoked(Day),
}

pub(crate) enum Amount {
    Fixed(u64),
    /// Permille of the value of the lots procured by the grant date.
    LotValue(u64),
}

pub(crate) struct SubsidyPlan {
    pub purpose: Purpose,
    pub grantor: usize,
    pub program: String,
    pub amount: Amount,
    pub grant: Day,
    /// (date, permille of the amount)
    pub disburse: Vec<(Day, u64)>,
    pub condition: Option<(u64, Day)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Collateral {
    Parcel,
    FirstLot,
}

pub(crate) struct LoanPlan {
    pub lender: Lender,
    pub date: Day,
    pub amount: u64,
    pub collateral: Vec<Collateral>,
}

/// A change to the monthly reports from a month on.
#[derive(Clone, Copy)]
pub(crate) enum Tweak {
    /// Occupancy claims the planned GPU count although fewer are deployed.
    PhantomInstalled,
    /// Occupancy claims more GPU-hours than the GPUs have (permille of the real hours).
    PhantomHours(u64),
    /// High sold hours while IT energy covers only this permille of them.
    ItShare(u64),
    /// The utility meters this permille of the reported consumption.
    MeterConsumed(u64),
    /// The utility meters resold power (permille of consumption) the operator omits.
    MeterHiddenResale(u64),
    /// Consumption over IT energy (milli) drawn from this band.
    Pue(u64, u64),
}

pub(crate) enum Sale {
    /// GPUs of the first lot sold out of the fleet from the facility.
    Lot {
        day: Day,
        permille: u64,
        broker: usize,
    },
    /// The facility handed to another operator.
    Facility { day: Day, to: usize },
}

pub(crate) struct Plan {
    pub announce: Day,
    pub land_use: Day,
    pub energy_review: Option<Day>,
    pub construction: Option<Day>,
    pub operational: Option<Month>,
    pub planned_gpus: u64,
    pub planned_it_kw: u64,
    pub lot1: Option<LotPlan>,
    pub expansion: Option<LotPlan>,
    /// Band of monthly utilization, permille of available hours.
    pub util: (u64, u64),
    /// Band of voucher hours, permille of sold hours.
    pub voucher: (u64, u64),
    /// Band of resold power, permille of consumption.
    pub resale: (u64, u64),
    /// Band of PUE, milli.
    pub pue: (u64, u64),
    /// Power-sale permit validity, if any.
    pub power_sale: Option<(Day, Day)>,
    pub operation: OperationPermit,
    pub subsidies: Vec<SubsidyPlan>,
    pub loans: Vec<LoanPlan>,
    /// (date, permille of the GPUs there that the inspector counts)
    pub inspections: Vec<(Day, u64)>,
    pub tweak: Option<(Month, Tweak)>,
    /// A month with the occupancy report and/or the power report missing.
    pub skip: Option<(Month, bool, bool)>,
    pub sale: Option<Sale>,
}

/// When a facility's life starts and whether it opens.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timeline {
    /// Opens at least two months before the end.
    Early,
    /// Announced in the last year; may still be under construction at the end.
    Late,
    /// Opens at least eight months before the end (the audit window is all operational).
    Seasoned,
    /// Announced at least 17 months before the end; opening decided by the scenario.
    PreOperational,
}

pub(crate) fn round8(x: u64) -> u64 {
    (x / 8).max(1) * 8
}

const SIZES: &[u64] = &[
    256, 384, 512, 512, 768, 1024, 1024, 1536, 2048, 2048, 3072, 4096,
];

/// A GPU model on sale in the year.
pub(crate) fn model_for(year: i32, rng: &mut Rng) -> Model {
    let choice: &[Model] = match year {
        ..=2023 => &[Model::H100, Model::H800, Model::A100, Model::Ascend910B],
        2024 => &[Model::H100, Model::H20, Model::Ascend910B, Model::H800],
        _ => &[Model::H20, Model::Ascend910B, Model::H100],
    };
    *rng.pick(choice)
}

/// A lot bought on `day` at a price near the reference.
pub(crate) fn lot(day: Day, quantity: u64, rng: &mut Rng) -> LotPlan {
    LotPlan {
        day,
        model: model_for(Month::of(day).year(), rng),
        quantity,
        price_permille: rng.range_u64(880, 1080),
        deployments: Vec::new(),
        duplicates: 0,
        stock_sale: None,
    }
}

impl Plan {
    pub(crate) fn op_day(&self) -> Option<Day> {
        self.operational.map(Month::first_day)
    }
}

/// Draws a clean life for `skel`: it triggers no rule of PROTOCOL §8.
pub(crate) fn clean(
    world: &World,
    skel: &FacilitySkel,
    timeline: Timeline,
    subsidised: bool,
    rng: &mut Rng,
) -> Plan {
    let last = world.months_index_last();
    let as_of = world.as_of();
    let parties = &world.parties;
    let month = |i: i32| world.first.plus(i);
    let (a, cm, op) = match timeline {
        Timeline::Early => {
            // Most sites were announced in the first months of the boom.
            let span = (last - 12).max(0);
            let a = if rng.chance(70) {
                rng.range_i32(0, span.min(5))
            } else {
                rng.range_i32(0, span)
            };
            let cm = a + rng.range_i32(1, 2);
            (
                a,
                cm,
                Some((cm + rng.range_i32(4, 8)).min(last - 2).max(cm + 1)),
            )
        }
        Timeline::Seasoned => {
            let span = (last - 16).max(0);
            let a = if rng.chance(70) {
                rng.range_i32(0, span.min(5))
            } else {
                rng.range_i32(0, span)
            };
            let cm = a + rng.range_i32(1, 2);
            (a, cm, Some(cm + rng.range_i32(4, 6)))
        }
        Timeline::Late => {
            let a = rng.range_i32((last - 10).max(0), (last - 4).max(0));
            let cm = a + rng.range_i32(1, 2);
            let op = cm + rng.range_i32(4, 8);
            (a, cm, (op <= last).then_some(op))
        }
        Timeline::PreOperational => {
            let a = rng.range_i32(0, (last - 17).max(0));
            (a, a + 1, None)
        }
    };
    let announce = month(a).first_day() + rng.range_i32(1, 20);
    let land_use = announce + rng.range_i32(3, 20);
    let construction = (month(cm).first_day() + rng.range_i32(0, 10)).max(land_use + 10);
    let energy_review = land_use + rng.range_i32(1, construction - land_use - 1);
    let operational = op.map(month);
    let planned_gpus = *rng.pick(SIZES);
    let planned_it_kw = planned_gpus * rng.range_u64(1100, 1500) / 1000;
    let west = PROVINCES[skel.province].west();

    let mut plan = Plan {
        announce,
        land_use,
        energy_review: Some(energy_review),
        construction: Some(construction),
        operational,
        planned_gpus,
        planned_it_kw,
        lot1: None,
        expansion: None,
        util: if subsidised {
            (450, 780)
        } else if rng.chance(70) {
            (30, 280)
        } else {
            (300, 600)
        },
        voucher: (0, 0),
        resale: (0, 0),
        pue: if west { (1120, 1300) } else { (1250, 1480) },
        power_sale: None,
        operation: OperationPermit::Renewed,
        subsidies: Vec::new(),
        loans: Vec::new(),
        inspections: Vec::new(),
        tweak: None,
        skip: None,
        sale: None,
    };

    if let Some(op) = operational {
        let op_day = op.first_day();
        let day = op_day - rng.range_i32(45, 75);
        let quantity = round8(planned_gpus * rng.range_u64(600, 1000) / 1000);
        let mut l1 = lot(day, quantity, rng);
        l1.deployments = if quantity >= 512 {
            let half = round8(quantity / 2);
            vec![
                (day + rng.range_i32(10, 25), half),
                (op_day - rng.range_i32(3, 10), quantity - half),
            ]
        } else {
            vec![(op_day - rng.range_i32(3, 15), quantity)]
        };
        plan.lot1 = Some(l1);
        if timeline == Timeline::Early && op.plus(3) <= month(last - 1) && rng.chance(25) {
            let e = op.plus(rng.range_i32(3, (month(last - 1).0 - op.0).max(3)));
            let q = round8(planned_gpus * rng.range_u64(200, 500) / 1000);
            let mut exp = lot(e.first_day() + rng.range_i32(3, 18), q, rng);
            // An unsubsidised operator may sell part of a new lot on before deploying it.
            let sold = if !subsidised && q >= 64 && rng.chance(30) {
                let sold = round8(q * rng.range_u64(200, 400) / 1000);
                let day = exp.day + rng.range_i32(5, 15);
                exp.stock_sale = Some((day, sold, *rng.pick(&parties.brokers)));
                sold
            } else {
                0
            };
            exp.deployments = vec![(e.plus(1).first_day(), q - sold)];
            plan.expansion = Some(exp);
        }
        if west && rng.chance(30) {
            plan.resale = (30, 100);
            let from = op_day - rng.range_i32(0, 10);
            plan.power_sale = Some((from, add_months(from, 60) - 1));
        }
        if rng.chance(30) {
            let lo = op_day + 30;
            if lo < as_of {
                plan.inspections
                    .push((rng.range_i32(lo, as_of), rng.range_u64(990, 1000)));
            }
        }
        if !subsidised && timeline == Timeline::Early && rng.chance(8) {
            let room = month(last - 1).0 - op.0;
            if room >= 3 {
                plan.sale = Some(Sale::Lot {
                    day: op.plus(rng.range_i32(3, room)).last_day(),
                    permille: rng.range_u64(100, 300),
                    broker: *rng.pick(&parties.brokers),
                });
            }
        }
    }

    if subsidised {
        let national = parties.grantor_national;
        let regional = parties.regional_grantor(skel.province);
        let grant = construction + rng.range_i32(20, 50);
        let mut disburse = vec![(grant + rng.range_i32(20, 45), 500)];
        if let Some(op_day) = plan.op_day() {
            disburse.push((op_day + rng.range_i32(10, 40), 500));
        }
        plan.subsidies.push(SubsidyPlan {
            purpose: Purpose::Construction,
            grantor: national,
            program: "National compute hub construction programme".into(),
            amount: Amount::Fixed(planned_it_kw * rng.range_u64(1500, 4000) * 100),
            grant,
            disburse,
            condition: None,
        });
        if let (Some(op), Some(l1)) = (operational, plan.lot1.as_ref()) {
            let op_day = op.first_day();
            if rng.chance(70) {
                let grant = l1.day + rng.range_i32(20, 60);
                plan.subsidies.push(SubsidyPlan {
                    purpose: Purpose::Equipment,
                    grantor: if rng.chance(50) { national } else { regional },
                    program: format!("{} AI hardware co-funding", PROVINCES[skel.province].name),
                    amount: Amount::LotValue(rng.range_u64(150, 300)),
                    grant,
                    disburse: vec![(grant + rng.range_i32(30, 90), 1000)],
                    condition: rng.chance(50).then(|| {
                        (
                            rng.range_u64(25, 35),
                            op.plus(rng.range_i32(6, 9)).last_day(),
                        )
                    }),
                });
            }
            if !west && rng.chance(40) {
                let grant = op_day + rng.range_i32(5, 25);
                plan.subsidies
                    .push(voucher_subsidy(regional, skel, planned_gpus, grant, rng));
                plan.voucher = (50, 200);
            }
            if west && rng.chance(60) {
                let grant = op_day + rng.range_i32(5, 25);
                plan.subsidies
                    .push(electricity_subsidy(regional, planned_it_kw, grant, rng));
            }
        }
    }

    if rng.chance(50) {
        let date = construction + rng.range_i32(10, 90);
        if date < as_of {
            plan.loans.push(LoanPlan {
                lender: *rng.pick(&parties.lenders),
                date,
                amount: planned_gpus * rng.range_u64(80_000, 200_000) * 100,
                collateral: vec![Collateral::Parcel],
            });
        }
        if let Some(l1) = plan.lot1.as_ref().filter(|_| rng.chance(50)) {
            let date = l1.day + rng.range_i32(30, 120);
            if date < as_of {
                plan.loans.push(LoanPlan {
                    lender: *rng.pick(&parties.lenders),
                    date,
                    amount: l1.quantity * rng.range_u64(50_000, 100_000) * 100,
                    collateral: vec![Collateral::FirstLot],
                });
            }
        }
    }
    plan
}

pub(crate) fn voucher_subsidy(
    grantor: usize,
    skel: &FacilitySkel,
    planned_gpus: u64,
    grant: Day,
    rng: &mut Rng,
) -> SubsidyPlan {
    SubsidyPlan {
        purpose: Purpose::ComputeVoucher,
        grantor,
        program: format!(
            "{} compute voucher programme",
            PROVINCES[skel.province].name
        ),
        amount: Amount::Fixed(planned_gpus * rng.range_u64(2000, 6000) * 100),
        grant,
        disburse: (0..4).map(|q| (grant + 30 + 91 * q, 250)).collect(),
        condition: None,
    }
}

pub(crate) fn electricity_subsidy(
    grantor: usize,
    planned_it_kw: u64,
    grant: Day,
    rng: &mut Rng,
) -> SubsidyPlan {
    SubsidyPlan {
        purpose: Purpose::Electricity,
        grantor,
        program: "Western green power for compute programme".into(),
        amount: Amount::Fixed(planned_it_kw * rng.range_u64(300, 800) * 100),
        grant,
        disburse: vec![(grant + 30, 500), (grant + 395, 500)],
        condition: None,
    }
}
