//! The shape of the world before any record exists: operators and the provinces they
//! build in, facilities with ids and places, and which facilities carry which planted
//! scenario.

use super::GenConfig;
use super::calendar::{Day, Month};
use super::parties::{PROVINCES, Parties};
use super::rng::Rng;
use crate::audit::Rule;

/// One facility before its records are generated.
pub(crate) struct FacilitySkel {
    pub index: usize,
    pub id: String,
    pub name: String,
    pub province: usize,
    pub city: usize,
    /// Party index of the operator that registers it.
    pub operator: usize,
    /// Another operator that could buy it (party index), if the world has one.
    pub buyer: Option<usize>,
    pub scenario: Option<Rule>,
}

/// What every facility generator needs to know about the world.
pub(crate) struct World {
    pub config: GenConfig,
    pub parties: Parties,
    pub facilities: Vec<FacilitySkel>,
    pub first: Month,
    pub last: Month,
}

impl World {
    /// The last day of the last month: what the audit's as_of means for dates.
    pub(crate) fn as_of(&self) -> Day {
        self.last.last_day()
    }

    /// Index of the last month, counting the first as 0.
    pub(crate) fn months_index_last(&self) -> i32 {
        self.last.0 - self.first.0
    }
}

const FACILITY_STYLES: &[&str] = &[
    "Intelligent Computing Center",
    "AI Computing Hub",
    "Green Compute Base",
    "Big Data Industrial Park",
    "Cloud Computing Center",
    "Supercomputing Park",
];

/// Provinces named by the demo's story of subsidised green power resold.
const DEMO_WEST: &[&str] = &["Inner Mongolia", "Ningxia", "Gansu", "Qinghai"];

pub(crate) fn plan(config: &GenConfig) -> World {
    let mut rng = Rng::derive(config.seed, "world", 0);
    let n = config.facilities;

    // Operators own 5–10 facilities each, in one or two provinces.
    let mut sizes = Vec::new();
    let mut left = n;
    while left > 0 {
        let s = (rng.range(5, 10) as usize).min(left);
        sizes.push(s);
        left -= s;
    }
    let parties = Parties::build(config.seed, sizes.len());

    let mut facilities = Vec::with_capacity(n);
    for (op_pos, size) in sizes.iter().enumerate() {
        let home = op_pos % PROVINCES.len();
        let second = (config.demo || rng.chance(50))
            .then(|| (home + 1 + rng.below(PROVINCES.len() as u64 - 1) as usize) % PROVINCES.len());
        let operator = parties.operators[op_pos];
        let buyer = (parties.operators.len() > 1)
            .then(|| parties.operators[(op_pos + 1) % parties.operators.len()]);
        for j in 0..*size {
            let province = match second {
                Some(p) if j > 0 && rng.chance(50) => p,
                _ => home,
            };
            let index = facilities.len();
            let city = rng.below(PROVINCES[province].cities.len() as u64) as usize;
            let c = &PROVINCES[province].cities[city];
            facilities.push(FacilitySkel {
                index,
                id: format!("{}-{}-{:04}", PROVINCES[province].code, c.slug, index + 1),
                name: format!("{} {} {}", c.name, rng.pick(FACILITY_STYLES), index + 1),
                province,
                city,
                operator,
                buyer,
                scenario: None,
            });
        }
    }

    assign_scenarios(config, &mut facilities, &mut rng);

    let first = Month::new(config.start.0, u32::from(config.start.1));
    World {
        config: config.clone(),
        parties,
        facilities,
        first,
        last: first.plus(config.months as i32 - 1),
    }
}

/// How many facilities carry a planted scenario: `anomaly_rate_pct` of them, at least one
/// per rule when the world has 40 or more facilities, and never all of them (facility 0
/// stays clean and reports for the last month, which fixes the audit's default as_of).
pub(crate) fn anomaly_count(config: &GenConfig) -> usize {
    let n = config.facilities;
    let mut k = (n * usize::from(config.anomaly_rate_pct)).div_ceil(100);
    if config.anomaly_rate_pct > 0 && n >= 40 {
        k = k.max(Rule::ALL.len());
    }
    if config.demo && n >= 40 {
        k = k.max(Rule::ALL.len() + 1);
    }
    k.min(n.saturating_sub(1))
}

/// Provinces a scenario prefers (empty: anywhere).
fn preferred(rule: Rule, demo: bool) -> Vec<usize> {
    let by = |f: &dyn Fn(usize) -> bool| -> Vec<usize> {
        (0..PROVINCES.len()).filter(|i| f(*i)).collect()
    };
    match rule {
        Rule::VoucherDependence if demo => by(&|i| PROVINCES[i].name == "Henan"),
        Rule::VoucherDependence => by(&|i| !PROVINCES[i].west()),
        Rule::PowerResale | Rule::ResaleWithoutPermit if demo => {
            by(&|i| DEMO_WEST.contains(&PROVINCES[i].name))
        }
        Rule::PowerResale | Rule::ResaleWithoutPermit => by(&|i| PROVINCES[i].west()),
        _ => Vec::new(),
    }
}

fn assign_scenarios(config: &GenConfig, facilities: &mut [FacilitySkel], rng: &mut Rng) {
    let k = anomaly_count(config);
    if k == 0 {
        return;
    }
    let mut list: Vec<Rule> = Rule::ALL.to_vec();
    if k < list.len() {
        rng.shuffle(&mut list);
        if config.demo {
            // The demo's story first, whatever the draw.
            let story = [
                Rule::VoucherDependence,
                Rule::PowerResale,
                Rule::LandBanking,
                Rule::DoublePledge,
            ];
            list.sort_by_key(|r| !story.contains(r));
        }
        list.truncate(k);
    } else {
        if config.demo {
            list.push(Rule::PowerResale);
        }
        while list.len() < k {
            list.push(*rng.pick(Rule::ALL));
        }
    }
    // Scenarios with a province preference choose first.
    list.sort_by_key(|r| preferred(*r, config.demo).is_empty());

    let mut candidates: Vec<usize> = (1..facilities.len()).collect();
    rng.shuffle(&mut candidates);
    for rule in list {
        let pref = preferred(rule, config.demo);
        let pos = candidates
            .iter()
            .position(|i| pref.contains(&facilities[*i].province))
            .unwrap_or(0);
        if pos < candidates.len() {
            let chosen = candidates.remove(pos);
            facilities[chosen].scenario = Some(rule);
        }
    }
}
