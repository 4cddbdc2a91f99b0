//! Audit thresholds (SPEC §8): every one a default that a TOML file may override.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
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
    /// price-anomaly and valuation: CNY per GPU by model and year (SPEC §8.1).
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

#[derive(Debug, thiserror::Error)]
#[error("audit config: {0}")]
pub struct ConfigError(String);

impl AuditConfig {
    /// Parses a TOML config; absent keys keep their defaults, unknown keys are errors.
    pub fn from_toml(text: &str) -> Result<AuditConfig, ConfigError> {
        let config: AuditConfig = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        for (model, years) in &config.reference_prices {
            for year in years.keys() {
                if year.parse::<i32>().is_err() {
                    return Err(ConfigError(format!(
                        "reference_prices.{model}: {year:?} is not a year"
                    )));
                }
            }
        }
        if config.window_months == 0 || config.condition_months == 0 {
            return Err(ConfigError(
                "window_months and condition_months must be >= 1".into(),
            ));
        }
        Ok(config)
    }

    /// The reference price in CNY for `model` in `year`, or the nearest year's.
    pub fn reference_price(&self, model: &str, year: i32) -> Option<u64> {
        let years = self.reference_prices.get(model)?;
        years
            .iter()
            .filter_map(|(y, p)| y.parse::<i32>().ok().map(|y| (y, *p)))
            .min_by_key(|(y, _)| ((y - year).abs(), *y))
            .map(|(_, p)| p)
    }
}

/// The defaults as a commented TOML file ready to edit (`dcledger audit --print-config`).
pub const DEFAULT_TOML: &str = r#"# dcledger audit thresholds (SPEC section 8). Every value below is the default;
# delete a line to keep the default, change it to override.

# Calendar months in the window ending with the as_of month.
window_months = 6

# idle-funded: a funded, operational site whose window utilization
# (sold / available GPU-hours) is below this percentage.
idle_utilization_pct = 30

# stalled-funded: months after a subsidy disbursement with the site never operational.
stalled_months = 12

# voucher-dependence: window voucher hours above this percentage of sold hours.
voucher_share_pct = 50

# power-resale: window resold kWh above this percentage of (consumed + resold).
resale_share_pct = 30

# land-banking: months after a state-backed loan with no construction permit and no
# construction or operation.
land_banking_months = 12

# undeployed-gpus: days after procurement with GPUs still in stock.
undeployed_days = 90

# price-anomaly: CNY unit price above / below these percentages of the reference price.
price_high_pct = 150
price_low_pct = 50

# subsidised-asset-sold: years after an equipment or construction disbursement.
subsidised_sale_years = 5

# power-occupancy-mismatch: it_kwh below min_it_share_pct of the energy the sold
# GPU-hours need at kwh_per_gpu_hour_milli thousandths of a kWh each.
min_it_share_pct = 50
kwh_per_gpu_hour_milli = 1000

# meter-mismatch: utility and operator figures differ by more than this percentage of
# the larger one.
meter_tolerance_pct = 10

# inspection-shortfall: GPUs counted below this percentage of the GPUs recorded there.
inspection_min_pct = 90

# subsidy-condition-breach: months, ending with the condition's `by` month, over which
# utilization is measured.
condition_months = 3

# pue-implausible: consumed / IT energy outside [min, max], in hundredths.
pue_min_centi = 105
pue_max_centi = 200

# Reference GPU prices in CNY by model and year (SPEC 8.1). Years outside a model's
# table use the nearest year; a model not listed is never a price anomaly.
[reference_prices.H100]
2023 = 220000
2024 = 200000
2025 = 160000
2026 = 130000

[reference_prices.H800]
2023 = 200000
2024 = 180000
2025 = 140000
2026 = 110000

[reference_prices.A100]
2023 = 120000
2024 = 100000
2025 = 80000
2026 = 60000

[reference_prices.H20]
2023 = 110000
2024 = 100000
2025 = 90000
2026 = 80000

[reference_prices.Ascend-910B]
2023 = 120000
2024 = 110000
2025 = 100000
2026 = 90000
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_defaults_parse_to_the_defaults() {
        assert_eq!(
            AuditConfig::from_toml(DEFAULT_TOML).unwrap(),
            AuditConfig::default()
        );
    }

    #[test]
    fn overrides_and_errors() {
        let c = AuditConfig::from_toml("idle_utilization_pct = 40\n").unwrap();
        assert_eq!(c.idle_utilization_pct, 40);
        assert_eq!(c.window_months, 6);
        assert!(AuditConfig::from_toml("idle_utilisation = 40\n").is_err());
        assert!(AuditConfig::from_toml("window_months = 0\n").is_err());
    }

    #[test]
    fn nearest_year() {
        let c = AuditConfig::default();
        assert_eq!(c.reference_price("H100", 2022), Some(220_000));
        assert_eq!(c.reference_price("H100", 2024), Some(200_000));
        assert_eq!(c.reference_price("H100", 2031), Some(130_000));
        assert_eq!(c.reference_price("B200", 2024), None);
    }
}
