//! Turns one facility's plan into its signed-to-be records, in the order its parties
//! would sign them, and labels them. Facilities are independent of each other: each
//! draws from its own random stream, so they can be generated in any order or in
//! parallel with the same result.

use std::collections::BTreeSet;

use super::calendar::{Day, Instant, Month, add_months, day_at, instant};
use super::labels;
use super::model::{Body, Event, Model, PermitKind, Serials, Status, document_digest};
use super::parties::PROVINCES;
use super::plan::{
    self, Amount, Collateral, LotPlan, OperationPermit, Plan, Sale, Timeline, Tweak, round8,
};
use super::rng::Rng;
use super::scenarios;
use super::world::{FacilitySkel, World};
use crate::audit::Rule;

/// Watt-hours per idle GPU-hour (fans, memory, host share).
const IDLE_WH: u64 = 180;

const SUPPLIERS: &[&str] = &[
    "Shenzhen Huaxin Systems Integration Co.",
    "Beijing Zhisuan Technology Trading Co.",
    "Apex Compute Supply (Hong Kong) Ltd.",
    "Shanghai Lingang Server Solutions Co.",
    "Hangzhou Xinghe Hardware Co.",
];

const ASCEND_SUPPLIER: &str = "Kunpeng-Ascend Ecosystem Partner Co.";

pub(crate) struct FacilityOut {
    pub events: Vec<Event>,
    pub labels: BTreeSet<Rule>,
    /// Party index of the operator at the end of the world.
    pub operator: usize,
}

/// The records and labels of one facility.
pub(crate) fn generate(world: &World, skel: &FacilitySkel) -> FacilityOut {
    let mut rng = Rng::derive(world.config.seed, "facility", skel.index as u64);
    let plan = match skel.scenario {
        Some(rule) => scenarios::plant(world, skel, rule, &mut rng),
        None => {
            let timeline = if skel.index == 0 || rng.chance(85) {
                Timeline::Early
            } else {
                Timeline::Late
            };
            let subsidised = rng.chance(40);
            plan::clean(world, skel, timeline, subsidised, &mut rng)
        }
    };
    let mut b = Builder::new(world, skel, &plan, rng);
    b.run();
    let operator = b.handover.map_or(skel.operator, |(_, to)| to);
    let mut events = b.events;
    // Stable: records of one instant keep the order they were planned in.
    events.sort_by_key(|e| e.ts);
    let labels = labels::evaluate(&events, &skel.id, world.last);
    FacilityOut {
        events,
        labels,
        operator,
    }
}

struct LotRec {
    id: String,
    day: Day,
    quantity: u64,
    unit_price: u64,
    model: Model,
    serial_prefix: String,
}

struct Builder<'a> {
    world: &'a World,
    skel: &'a FacilitySkel,
    plan: &'a Plan,
    rng: Rng,
    events: Vec<Event>,
    /// The facility.transfer instant and the operator from then on.
    handover: Option<(Instant, usize)>,
    /// GPUs arriving at (positive) or leaving (negative) the facility, by date.
    deltas: Vec<(Day, i64)>,
    lots: Vec<LotRec>,
    as_of: Day,
}

impl<'a> Builder<'a> {
    fn new(world: &'a World, skel: &'a FacilitySkel, plan: &'a Plan, rng: Rng) -> Self {
        let handover = match plan.sale {
            Some(Sale::Facility { day, to }) if day <= world.as_of() => {
                Some((instant(day, 86_399), to))
            }
            _ => None,
        };
        Builder {
            world,
            skel,
            plan,
            rng,
            events: Vec::new(),
            handover,
            deltas: Vec::new(),
            lots: Vec::new(),
            as_of: world.as_of(),
        }
    }

    /// An instant during office hours of `day`.
    fn time(&mut self, day: Day) -> Instant {
        instant(day, 8 * 3600 + self.rng.below(10 * 3600) as u32)
    }

    fn operator_at(&self, ts: Instant) -> usize {
        match self.handover {
            Some((t, to)) if ts > t => to,
            _ => self.skel.operator,
        }
    }

    fn org(&self, party: usize) -> String {
        self.world.parties.list[party].org_id.clone()
    }

    fn fid(&self) -> String {
        self.skel.id.clone()
    }

    /// Records a fact dated on or before as_of (later ones are not part of the world).
    fn emit(&mut self, ts: Instant, signer: usize, body: Body) {
        if day_at(ts) <= self.as_of {
            self.events.push(Event { ts, signer, body });
        }
    }

    /// Records a monthly report, signed after its month.
    fn emit_report(&mut self, ts: Instant, signer: usize, body: Body) {
        self.events.push(Event { ts, signer, body });
    }

    fn by_operator(&mut self, ts: Instant, body: Body) {
        let signer = self.operator_at(ts);
        self.emit(ts, signer, body);
    }

    fn gpus_at(&self, day: Day) -> u64 {
        let n: i64 = self
            .deltas
            .iter()
            .filter(|(d, _)| *d <= day)
            .map(|(_, q)| q)
            .sum();
        n.max(0) as u64
    }

    /// GPU-hours the GPUs present during `m` could deliver.
    fn hours_present(&self, m: Month) -> u64 {
        let (first, last) = (m.first_day(), m.last_day());
        let h: i64 = self
            .deltas
            .iter()
            .filter(|(d, _)| *d <= last)
            .map(|(d, q)| q * 24 * i64::from(last - (*d).max(first) + 1))
            .sum();
        h.max(0) as u64
    }

    fn value_at(&self, day: Day) -> u64 {
        self.lots
            .iter()
            .filter(|l| l.day <= day)
            .map(|l| l.quantity * l.unit_price)
            .sum()
    }

    fn permit(
        &mut self,
        issued: Day,
        kind: PermitKind,
        id: &str,
        window: (Day, Day),
        limit_kw: Option<u64>,
    ) {
        let permit_id = format!("{}-{id}", self.skel.id);
        let ts = instant(issued, 9 * 3600 + self.rng.below(3600) as u32);
        let signer = self.world.parties.permitters[self.skel.province];
        let body = Body::PermitIssue {
            document_b3: document_digest(&["permit", &permit_id]),
            permit_id,
            facility_id: self.fid(),
            kind,
            valid_from: window.0,
            valid_until: window.1,
            limit_kw,
        };
        self.emit(ts, signer, body);
    }

    fn status(&mut self, day: Day, status: Status) {
        let ts = instant(day, 11 * 3600);
        let body = Body::FacilityStatus {
            facility_id: self.fid(),
            status,
            effective: day,
        };
        self.by_operator(ts, body);
    }

    fn run(&mut self) {
        let plan = self.plan;
        let province = &PROVINCES[self.skel.province];
        let city = &province.cities[self.skel.city];
        let parcel = format!(
            "{}-{}/{:05}",
            province.parcel,
            Month::of(plan.announce).year(),
            self.skel.index + 1
        );
        let jitter_lat = self.rng.range(-150_000, 150_000);
        let jitter_lon = self.rng.range(-150_000, 150_000);
        let body = Body::FacilityRegister {
            facility_id: self.fid(),
            name: self.skel.name.clone(),
            province: province.name,
            city: city.name,
            lat_e6: city.lat_e6 + jitter_lat,
            lon_e6: city.lon_e6 + jitter_lon,
            planned_it_kw: plan.planned_it_kw,
            planned_gpus: plan.planned_gpus,
            land_parcel: parcel.clone(),
            announced: plan.announce,
        };
        self.by_operator(instant(plan.announce, 9 * 3600), body);

        let lu = plan.land_use;
        self.permit(
            lu,
            PermitKind::LandUse,
            "lu1",
            (lu, add_months(lu, 600) - 1),
            None,
        );
        if let Some(d) = plan.energy_review {
            let limit = Some(plan.planned_it_kw * 13 / 10);
            self.permit(
                d,
                PermitKind::EnergyReview,
                "er1",
                (d, add_months(d, 60) - 1),
                limit,
            );
        }
        if let Some(c) = plan.construction {
            self.permit(
                c,
                PermitKind::Construction,
                "cn1",
                (c, add_months(c, 36) - 1),
                None,
            );
            self.status(c, Status::UnderConstruction);
        }

        if let (Some(op), Some(l1)) = (plan.operational, plan.lot1.as_ref()) {
            self.operate(op, l1);
        }
        self.subsidies();
        self.loans(&parcel);
    }

    fn operate(&mut self, op: Month, l1: &LotPlan) {
        let plan = self.plan;
        let op_day = op.first_day();
        self.lot(1, l1);

        let d = op_day - self.rng.range_i32(20, 40);
        let limit = Some(plan.planned_it_kw * 12 / 10);
        self.permit(
            d,
            PermitKind::GridConnection,
            "gc1",
            (d, add_months(d, 120) - 1),
            limit,
        );
        if plan.resale.1 > 0 || plan.power_sale.is_some() {
            let d = op_day - self.rng.range_i32(20, 40);
            let limit = Some(plan.planned_it_kw / 2);
            self.permit(
                d,
                PermitKind::PowerGeneration,
                "pg1",
                (d, add_months(d, 240) - 1),
                limit,
            );
        }
        if let Some((from, until)) = plan.power_sale {
            self.permit(
                from,
                PermitKind::PowerSale,
                "ps1",
                (from, until),
                Some(plan.planned_it_kw / 2),
            );
        }
        self.operation_permits(op_day);
        self.status(op_day, Status::Operational);

        if let Some(exp) = plan.expansion.as_ref() {
            self.lot(2, exp);
        }
        self.sale();
        self.reports(op);
        self.inspections();
    }

    fn operation_permits(&mut self, op_day: Day) {
        let limit = Some(self.plan.planned_it_kw);
        let from = op_day - self.rng.range_i32(0, 10);
        match self.plan.operation {
            OperationPermit::Missing => {}
            OperationPermit::Until(until) => {
                self.permit(from, PermitKind::Operation, "op1", (from, until), limit)
            }
            OperationPermit::Revoked(day) => {
                let until = add_months(from, 60) - 1;
                self.permit(from, PermitKind::Operation, "op1", (from, until), limit);
                let ts = instant(day, 10 * 3600);
                let signer = self.world.parties.permitters[self.skel.province];
                let body = Body::PermitRevoke {
                    permit_id: format!("{}-op1", self.skel.id),
                    effective: day,
                    reason: "fire-safety acceptance withdrawn after on-site check",
                };
                self.emit(ts, signer, body);
            }
            OperationPermit::Renewed => {
                let mut until = add_months(from, 24) - 1;
                self.permit(from, PermitKind::Operation, "op1", (from, until), limit);
                let mut k = 2;
                while until < self.as_of {
                    let next = until + 1;
                    let issued = until - self.rng.range_i32(20, 40);
                    let next_until = add_months(next, 36) - 1;
                    self.permit(
                        issued,
                        PermitKind::Operation,
                        &format!("op{k}"),
                        (next, next_until),
                        limit,
                    );
                    until = next_until;
                    k += 1;
                }
            }
        }
    }

    fn lot(&mut self, n: u32, lp: &LotPlan) {
        if lp.day > self.as_of {
            return;
        }
        let lot_id = format!("{}-lot{n}", self.skel.id);
        let year = Month::of(lp.day).year();
        let unit_price = lp.model.reference_fen(year) * lp.price_permille / 1000;
        let supplier = if lp.model == Model::Ascend910B {
            ASCEND_SUPPLIER
        } else {
            *self.rng.pick(SUPPLIERS)
        };
        let serial_prefix = format!(
            "{}{:05}{:02}",
            lp.model.serial_prefix(),
            self.skel.index + 1,
            n
        );
        let t0 = instant(lp.day, 10 * 3600);
        let body = Body::Procurement {
            invoice_b3: document_digest(&["invoice", &lot_id]),
            lot_id: lot_id.clone(),
            facility_id: self.fid(),
            model: lp.model,
            quantity: lp.quantity,
            unit_price_minor: unit_price,
            supplier,
            date: lp.day,
        };
        self.by_operator(t0, body);

        // Serials, at most 1,000 an entry; a duplicate-serial lot repeats some of lot 1's.
        let fresh = lp.quantity - lp.duplicates;
        let mut second = 1;
        let mut start = 0u32;
        while u64::from(start) < fresh {
            let count = (fresh - u64::from(start)).min(1000) as u32;
            let body = Body::LotSerials {
                lot_id: lot_id.clone(),
                serials: Serials::Range {
                    prefix: serial_prefix.clone(),
                    start,
                    count,
                },
            };
            self.by_operator(t0 + second, body);
            second += 1;
            start += count;
        }
        if lp.duplicates > 0
            && let Some(first) = self.lots.first()
        {
            let offset = self.rng.below(first.quantity - lp.duplicates + 1) as u32;
            let copied = Serials::Range {
                prefix: first.serial_prefix.clone(),
                start: offset,
                count: lp.duplicates as u32,
            };
            let body = Body::LotSerials {
                lot_id: lot_id.clone(),
                serials: Serials::List(copied.expand()),
            };
            self.by_operator(t0 + second, body);
        }

        if let Some((day, quantity, broker)) = lp.stock_sale
            && day <= self.as_of
        {
            let body = Body::LotTransfer {
                lot_id: lot_id.clone(),
                quantity,
                from_facility: None,
                to_org: self.org(broker),
                price_minor: quantity * unit_price * self.rng.range_u64(900, 1100) / 1000,
                date: day,
            };
            self.by_operator(instant(day, 16 * 3600), body);
        }
        for (day, quantity) in &lp.deployments {
            if *day > self.as_of {
                continue;
            }
            let ts = instant(*day, 14 * 3600 + self.rng.below(3600) as u32);
            let body = Body::Deployment {
                lot_id: lot_id.clone(),
                facility_id: self.fid(),
                quantity: *quantity,
                date: *day,
            };
            self.by_operator(ts, body);
            self.deltas.push((*day, *quantity as i64));
        }
        self.lots.push(LotRec {
            id: lot_id,
            day: lp.day,
            quantity: lp.quantity,
            unit_price,
            model: lp.model,
            serial_prefix,
        });
    }

    fn sale(&mut self) {
        match self.plan.sale {
            Some(Sale::Lot {
                day,
                permille,
                broker,
            }) if day <= self.as_of => {
                let Some(first) = self.lots.first() else {
                    return;
                };
                let deployed = first.quantity.min(self.gpus_at(day));
                let quantity = round8(first.quantity * permille / 1000).min(deployed);
                if quantity == 0 {
                    return;
                }
                let price = quantity * first.unit_price * self.rng.range_u64(400, 700) / 1000;
                let body = Body::LotTransfer {
                    lot_id: first.id.clone(),
                    quantity,
                    from_facility: Some(self.fid()),
                    to_org: self.org(broker),
                    price_minor: price,
                    date: day,
                };
                self.by_operator(instant(day, 15 * 3600), body);
                self.deltas.push((day, -(quantity as i64)));
            }
            Some(Sale::Facility { day, to }) if day <= self.as_of => {
                let price = self.value_at(day) * self.rng.range_u64(300, 600) / 1000;
                let body = Body::FacilityTransfer {
                    facility_id: self.fid(),
                    to_org: self.org(to),
                    price_minor: price,
                    date: day,
                };
                self.by_operator(instant(day, 86_399), body);
            }
            _ => {}
        }
    }

    fn reports(&mut self, op: Month) {
        let plan = self.plan;
        let west = PROVINCES[self.skel.province].west();
        let model = self.lots.first().map_or(Model::H100, |l| l.model);
        let utility = self.world.parties.utilities[self.skel.province];
        let (lo, hi) = plan.util;
        let mut util = self.rng.range_u64(lo, hi);
        let mut m = op;
        while m <= self.world.last {
            let hours = m.hours();
            let installed = self.gpus_at(m.last_day());
            let available = self.hours_present(m).min(installed * hours);
            util = util
                .saturating_add_signed(self.rng.range(-40, 40))
                .clamp(lo, hi);
            let mut sold = available * util / 1000;
            let tweak = plan.tweak.filter(|(from, _)| m >= *from).map(|(_, t)| t);
            let (mut installed_rep, mut available_rep) = (installed, available);
            match tweak {
                Some(Tweak::PhantomInstalled) => {
                    installed_rep = plan.planned_gpus.max(installed + 8);
                    available_rep = installed_rep * hours;
                }
                Some(Tweak::PhantomHours(pm)) => available_rep = installed * hours * pm / 1000,
                Some(Tweak::ItShare(_)) => sold = available * self.rng.range_u64(650, 850) / 1000,
                _ => {}
            }
            let voucher = sold * self.rng.range_u64(plan.voucher.0, plan.voucher.1) / 1000;
            let tenants = if sold == 0 {
                0
            } else {
                1 + sold / self.rng.range_u64(8_000, 20_000)
            };
            let revenue =
                sold * model.rent_fen_per_hour(m.year()) * self.rng.range_u64(900, 1100) / 1000;

            let mut it = (sold * model.busy_wh() + (available - sold) * IDLE_WH) / 1000;
            if let Some(Tweak::ItShare(pm)) = tweak {
                it = sold * pm / 1000;
            }
            let pue = match tweak {
                Some(Tweak::Pue(a, b)) => self.rng.range_u64(a, b),
                _ => self.rng.range_u64(plan.pue.0, plan.pue.1),
            };
            let consumed = it * pue / 1000;
            let green = consumed
                * if west {
                    self.rng.range_u64(400, 800)
                } else {
                    self.rng.range_u64(50, 250)
                }
                / 1000;
            let resold = if plan.resale.1 > 0 {
                consumed * self.rng.range_u64(plan.resale.0, plan.resale.1) / 1000
            } else {
                0
            };
            let resale_revenue = resold * self.rng.range_u64(25, 35);
            let mut meter_consumed = consumed * self.rng.range_u64(980, 1020) / 1000;
            let mut meter_resold = resold * self.rng.range_u64(980, 1020) / 1000;
            match tweak {
                Some(Tweak::MeterConsumed(pm)) => meter_consumed = consumed * pm / 1000,
                Some(Tweak::MeterHiddenResale(pm)) => meter_resold = consumed * pm / 1000,
                _ => {}
            }

            let next = m.plus(1).first_day();
            let (skip_occ, skip_pow) = match plan.skip {
                Some((s, occ, pow)) if s == m => (occ, pow),
                _ => (false, false),
            };
            if !skip_occ {
                let day = next + self.rng.range_i32(1, 6);
                let ts = self.time(day);
                let signer = self.operator_at(ts);
                let body = Body::OccupancyReport {
                    facility_id: self.fid(),
                    period: m,
                    gpus_installed: installed_rep,
                    gpu_hours_available: available_rep,
                    gpu_hours_sold: sold,
                    gpu_hours_voucher: voucher,
                    tenants,
                    revenue_minor: revenue,
                };
                self.emit_report(ts, signer, body);
            }
            if !skip_pow {
                let day = next + self.rng.range_i32(1, 6);
                let ts = self.time(day);
                let signer = self.operator_at(ts);
                let body = Body::PowerReport {
                    facility_id: self.fid(),
                    period: m,
                    consumed_kwh: consumed,
                    it_kwh: it,
                    green_kwh: green,
                    resold_kwh: resold,
                    resale_revenue_minor: resale_revenue,
                };
                self.emit_report(ts, signer, body);
            }
            let day = next + self.rng.range_i32(0, 4);
            let ts = self.time(day);
            let body = Body::MeterReading {
                facility_id: self.fid(),
                period: m,
                consumed_kwh: meter_consumed,
                resold_kwh: meter_resold,
            };
            self.emit_report(ts, utility, body);
            m = m.plus(1);
        }
    }

    fn inspections(&mut self) {
        for (k, (day, permille)) in self.plan.inspections.iter().enumerate() {
            if *day > self.as_of {
                continue;
            }
            let there = self.gpus_at(*day);
            let counted = there * permille / 1000;
            let powered = counted * self.rng.range_u64(300, 900) / 1000;
            let signer = *self.rng.pick(&self.world.parties.regulators);
            let ts = self.time(*day);
            let body = Body::InspectionReport {
                facility_id: self.fid(),
                date: *day,
                gpus_counted: counted,
                gpus_powered: powered,
                observed_status: Status::Operational,
                document_b3: document_digest(&["inspection", &self.skel.id, &k.to_string()]),
            };
            self.emit(ts, signer, body);
        }
    }

    fn subsidies(&mut self) {
        for (k, s) in self.plan.subsidies.iter().enumerate() {
            if s.grant > self.as_of {
                continue;
            }
            let amount = match s.amount {
                Amount::Fixed(a) => a,
                Amount::LotValue(pm) => self.value_at(s.grant) * pm / 1000,
            };
            if amount == 0 {
                continue;
            }
            let subsidy_id = format!("{}-sub{}", self.skel.id, k + 1);
            let ts = self.time(s.grant);
            let recipient = self.operator_at(ts);
            let body = Body::SubsidyGrant {
                subsidy_id: subsidy_id.clone(),
                facility_id: self.fid(),
                recipient_org: self.org(recipient),
                program: s.program.clone(),
                purpose: s.purpose,
                amount_minor: amount,
                date: s.grant,
                condition: s.condition,
            };
            self.emit(ts, s.grantor, body);
            for (day, pm) in &s.disburse {
                if *day <= s.grant || *day > self.as_of {
                    continue;
                }
                let ts = self.time(*day);
                let body = Body::SubsidyDisburse {
                    subsidy_id: subsidy_id.clone(),
                    amount_minor: (amount * pm / 1000).max(1),
                    date: *day,
                };
                self.emit(ts, s.grantor, body);
            }
        }
    }

    fn loans(&mut self, parcel: &str) {
        for (k, l) in self.plan.loans.iter().enumerate() {
            if l.date > self.as_of {
                continue;
            }
            let collateral = l
                .collateral
                .iter()
                .map(|c| match (c, self.lots.first()) {
                    (Collateral::FirstLot, Some(first)) if first.day < l.date => first.id.clone(),
                    _ => parcel.to_string(),
                })
                .collect();
            let ts = self.time(l.date);
            let borrower = self.operator_at(ts);
            let body = Body::LoanIssue {
                loan_id: format!("{}-loan{}", self.skel.id, k + 1),
                facility_id: self.fid(),
                borrower_org: self.org(borrower),
                amount_minor: l.amount,
                state_backed: l.lender.state_backed,
                date: l.date,
                collateral,
            };
            self.emit(ts, l.lender.party, body);
        }
    }
}
