//! Audit thresholds (PROTOCOL §8): every one a default that a TOML file may override.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::in_range;
use crate::limits::MAX_SAFE_INTEGER;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Calendar months in the window ending with as_of.
    pub window_months: u32,
    /// idle-funded: window utilization below this share of available GPU-hours.
    pub idle_utilization_pct: u64,
    /// stalled-funded: months since the first disbursement without ever operating.
    pub stalled_months: u32,
    /// voucher-dependence: voucher hours above this share of sold hours.
    pub voucher_share_pct: u64,
    /// power-resale: resold kWh above this share of consumed + resold.
    pub resale_share_pct: u64,
    /// land-banking: months after a state-backed loan without construction.
    pub land_banking_months: u32,
    /// undeployed-gpus: days since procurement with stock still undeployed.
    pub undeployed_days: u32,
    /// price-anomaly: unit price above / below these shares of the reference.
    pub price_high_pct: u64,
    pub price_low_pct: u64,
    /// subsidised-asset-sold: years after an equipment or construction disbursement.
    pub subsidised_sale_years: u32,
    /// power-occupancy-mismatch: it_kwh below this share of what sold hours need …
    pub min_it_share_pct: u64,
    /// … at this many thousandths of a kWh per GPU-hour.
    pub kwh_per_gpu_hour_milli: u64,
    /// meter-mismatch: difference above this share of the larger figure.
    pub meter_tolerance_pct: u64,
    /// inspection-shortfall: GPUs counted below this share of GPUs recorded there.
    pub inspection_min_pct: u64,
    /// subsidy-condition-breach: months (ending with the `by` month) averaged.
    pub condition_months: u32,
    /// pue-implausible: consumed / IT energy outside [min, max], in hundredths.
    pub pue_min_centi: u64,
    pub pue_max_centi: u64,
    /// price-anomaly and valuation: CNY per GPU by model and year (PROTOCOL §8.1).
    pub reference_prices: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        let prices = [
            ("H100", [220_000, 200_000, 160_000, 130_000]),
            ("H800", [200_000, 180_000, 140_000, 110_000]),
            ("A100", [120_000, 100_000, 80_000, 60_000]),
            ("H20", [110_000, 100_000, 90_000, 80_000]),
            ("Ascend-910B", [120_000, 110_000, 100_000, 90_000]),
        ];
        AuditConfig {
            window_months: 6,
            idle_utilization_pct: 30,
            stalled_months: 12,
            voucher_share_pct: 50,
            resale_share_pct: 30,
            land_banking_months: 12,
            undeployed_days: 90,
            price_high_pct: 150,
            price_low_pct: 50,
            subsidised_sale_years: 5,
            min_it_share_pct: 50,
            kwh_per_gpu_hour_milli: 1_000,
            meter_tolerance_pct: 10,
            inspection_min_pct: 90,
            condition_months: 3,
            pue_min_centi: 105,
            pue_max_centi: 200,
            reference_prices: prices
                .into_iter()
                .map(|(model, by_year)| {
                    let years = (2023..).map(|y: i32| y.to_string()).zip(by_year).collect();
                    (model.to_string(), years)
                })
                .collect(),
        }
    }
}

/// The longest window, condition period or lag in months: a century of reports.
pub const MAX_WINDOW_MONTHS: u32 = 1_200;
/// The largest percentage threshold: 100 times the whole (prices are compared at up to
/// several times their reference).
pub const MAX_PCT: u64 = 10_000;
/// The longest lag in days (a century).
pub const MAX_LAG_DAYS: u32 = 36_500;
/// The longest lag in years.
pub const MAX_LAG_YEARS: u32 = 100;
/// The largest energy per GPU-hour, in thousandths of a kWh (10 MWh).
pub const MAX_KWH_PER_GPU_HOUR_MILLI: u64 = 10_000_000;
/// The largest PUE bound, in hundredths.
pub const MAX_PUE_CENTI: u64 = 100_000;

impl AuditConfig {
    /// Checks every threshold against its bounds (so the rules' arithmetic and dates
    /// stay in range); the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (model, years) in &self.reference_prices {
            for (year, price) in years {
                if year.parse::<i32>().is_err() {
                    return Err(format!("reference_prices.{model}: {year:?} is not a year"));
                }
                in_range(
                    &format!("reference_prices.{model}.{year}"),
                    *price,
                    0,
                    MAX_SAFE_INTEGER.unsigned_abs(),
                )?;
            }
        }
        in_range("window_months", self.window_months, 1, MAX_WINDOW_MONTHS)?;
        in_range(
            "condition_months",
            self.condition_months,
            1,
            MAX_WINDOW_MONTHS,
        )?;
        in_range("stalled_months", self.stalled_months, 0, MAX_WINDOW_MONTHS)?;
        in_range(
            "land_banking_months",
            self.land_banking_months,
            0,
            MAX_WINDOW_MONTHS,
        )?;
        in_range(
            "subsidised_sale_years",
            self.subsidised_sale_years,
            0,
            MAX_LAG_YEARS,
        )?;
        in_range("undeployed_days", self.undeployed_days, 0, MAX_LAG_DAYS)?;
        for (name, pct) in [
            ("idle_utilization_pct", self.idle_utilization_pct),
            ("voucher_share_pct", self.voucher_share_pct),
            ("resale_share_pct", self.resale_share_pct),
            ("price_high_pct", self.price_high_pct),
            ("price_low_pct", self.price_low_pct),
            ("min_it_share_pct", self.min_it_share_pct),
            ("meter_tolerance_pct", self.meter_tolerance_pct),
            ("inspection_min_pct", self.inspection_min_pct),
        ] {
            in_range(name, pct, 0, MAX_PCT)?;
        }
        in_range(
            "kwh_per_gpu_hour_milli",
            self.kwh_per_gpu_hour_milli,
            0,
            MAX_KWH_PER_GPU_HOUR_MILLI,
        )?;
        in_range("pue_min_centi", self.pue_min_centi, 0, MAX_PUE_CENTI)?;
        in_range("pue_max_centi", self.pue_max_centi, 0, MAX_PUE_CENTI)?;
        Ok(())
    }

    /// A validated count of months or years as the calendar arithmetic takes it.
    pub fn months(&self, n: u32) -> i32 {
        i32::try_from(n).unwrap_or_else(|_| unreachable!("{n} is within the validated bounds"))
    }

    /// Is `key` the name of a threshold (to recognise a file of the old flat format)?
    pub fn is_field(key: &str) -> bool {
        match serde_json::to_value(AuditConfig::default()) {
            Ok(serde_json::Value::Object(fields)) => fields.contains_key(key),
            _ => unreachable!("a struct serialises to an object"),
        }
    }

    /// The reference price in CNY for `model` in `year`, or the nearest year's.
    pub fn reference_price(&self, model: &str, year: i32) -> Option<u64> {
        let years = self.reference_prices.get(model)?;
        years
            .iter()
            .filter_map(|(y, p)| y.parse::<i32>().ok().map(|y| (y, *p)))
            .min_by_key(|(y, _)| (y.abs_diff(year), *y))
            .map(|(_, p)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_year() {
        let c = AuditConfig::default();
        assert_eq!(c.reference_price("H100", 2022), Some(220_000));
        assert_eq!(c.reference_price("H100", 2024), Some(200_000));
        assert_eq!(c.reference_price("H100", 2031), Some(130_000));
        assert_eq!(c.reference_price("B200", 2024), None);
    }

    #[test]
    fn thresholds_are_fields_and_other_names_are_not() {
        assert!(AuditConfig::is_field("window_months"));
        assert!(AuditConfig::is_field("reference_prices"));
        assert!(!AuditConfig::is_field("audit"));
    }
}
