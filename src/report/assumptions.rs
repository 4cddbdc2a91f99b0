//! The valuation's assumptions (PROTOCOL §9): their names, defaults and bounds, the overrides
//! a config file or a request sets, and each value in force with where it came from.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::audit::AuditConfig;
use crate::exact::times;
use crate::limits::MAX_SAFE_INTEGER;

macro_rules! assumptions {
    ($($variant:ident = $name:literal, default $default:expr, max $max:expr;)+) => {
        /// A scalar assumption of the valuation.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Assumption { $($variant),+ }

        impl Assumption {
            pub const ALL: &'static [Assumption] = &[$(Assumption::$variant),+];

            pub fn name(self) -> &'static str {
                match self { $(Assumption::$variant => $name),+ }
            }

            pub fn default_value(self) -> u64 {
                match self { $(Assumption::$variant => $default),+ }
            }

            /// The largest value allowed.
            pub fn max(self) -> u64 {
                match self { $(Assumption::$variant => $max),+ }
            }

            pub fn parse(name: &str) -> Option<Assumption> {
                match name { $($name => Some(Assumption::$variant),)+ _ => None }
            }
        }
    };
}

/// Basis points: 10,000 is 100%.
pub const BP_WHOLE: u64 = 10_000;
/// PROTOCOL §2: assumptions are integers from 0 to 2^53 − 1.
const MAX_VALUE: u64 = MAX_SAFE_INTEGER.unsigned_abs();

assumptions! {
    TariffMinorPerKwh = "tariff_minor_per_kwh", default 50, max MAX_VALUE;
    MaintenanceGpuMonthMinor = "maintenance_gpu_month_minor", default 20_000, max MAX_VALUE;
    LifeMonths = "life_months", default 60, max MAX_VALUE;
    DiscountRateBp = "discount_rate_bp", default 1_000, max BP_WHOLE;
    HaircutBp = "haircut_bp", default 4_000, max BP_WHOLE;
    DistressedUtilizationBp = "distressed_utilization_bp", default 2_000, max BP_WHOLE;
}

/// The prefix of a rent's name: `rent.H100`.
const RENT_PREFIX: &str = "rent.";

/// H100's default monthly rent per GPU through 2024 and from 2025 (PROTOCOL §9: an 8×H100
/// server at 180,000 and 75,000 CNY a month).
const H100_RENT_TO_2024_MINOR: u64 = 2_250_000;
const H100_RENT_FROM_2025_MINOR: u64 = 937_500;
/// The model other models' default rents scale from.
pub const RENT_REFERENCE_MODEL: &str = "H100";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct AssumptionError {
    /// The parameter, as the user spelled it.
    pub name: String,
    pub message: String,
}

impl AssumptionError {
    fn new(name: &str, message: impl Into<String>) -> AssumptionError {
        AssumptionError {
            name: name.to_string(),
            message: message.into(),
        }
    }
}

/// Assumptions set by one source (a config file's `[valuation]`, or a request).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Overrides {
    values: BTreeMap<&'static str, u64>,
    /// Monthly rent per GPU by model, for the valuation's as_of year.
    rent: BTreeMap<String, u64>,
}

impl Overrides {
    pub fn get(&self, a: Assumption) -> Option<u64> {
        self.values.get(a.name()).copied()
    }

    pub fn rent(&self, model: &str) -> Option<u64> {
        self.rent.get(model).copied()
    }

    /// The models whose rent this source sets.
    pub fn rent_models(&self) -> impl Iterator<Item = &str> {
        self.rent.keys().map(String::as_str)
    }

    /// Sets `name` (an assumption's name or `rent.MODEL`) to `value`, checking its range.
    pub fn set(&mut self, name: &str, value: u64) -> Result<(), AssumptionError> {
        if let Some(model) = name.strip_prefix(RENT_PREFIX) {
            if model.is_empty() || model.len() > 200 || model.chars().any(char::is_control) {
                return Err(AssumptionError::new(name, "a rent is named rent.MODEL"));
            }
            check_range(name, value, MAX_VALUE)?;
            self.rent.insert(model.to_string(), value);
            return Ok(());
        }
        let a = Assumption::parse(name).ok_or_else(|| {
            AssumptionError::new(
                name,
                format!(
                    "unknown assumption; the assumptions are {} and rent.MODEL",
                    names()
                ),
            )
        })?;
        check_range(name, value, a.max())?;
        self.values.insert(a.name(), value);
        Ok(())
    }

    /// Sets `name` from a decimal integer as written in a query or on the command line.
    pub fn set_text(&mut self, name: &str, text: &str) -> Result<(), AssumptionError> {
        let value =
            if !text.is_empty() && text.len() <= 16 && text.bytes().all(|b| b.is_ascii_digit()) {
                text.parse::<u64>().ok()
            } else {
                None
            };
        let value = value.ok_or_else(|| {
            AssumptionError::new(
                name,
                format!("{text:?} is not a decimal integer from 0 to {MAX_VALUE}"),
            )
        })?;
        self.set(name, value)
    }

    /// Sets `name` from a config file's value: an integer, or for `rent` a table of them.
    pub fn set_toml(&mut self, name: &str, value: &toml::Value) -> Result<(), AssumptionError> {
        match (name, value) {
            ("rent", toml::Value::Table(models)) => {
                for (model, v) in models {
                    self.set_toml(&format!("{RENT_PREFIX}{model}"), v)?;
                }
                Ok(())
            }
            (_, toml::Value::Integer(i)) => {
                let value = u64::try_from(*i)
                    .map_err(|_| AssumptionError::new(name, format!("{i} is below 0")))?;
                self.set(name, value)
            }
            _ => Err(AssumptionError::new(
                name,
                format!("expected an integer, found {}", value.type_str()),
            )),
        }
    }
}

fn check_range(name: &str, value: u64, max: u64) -> Result<(), AssumptionError> {
    if value > max {
        return Err(AssumptionError::new(
            name,
            format!("{value} is above the largest allowed value, {max}"),
        ));
    }
    Ok(())
}

fn names() -> String {
    let all: Vec<&str> = Assumption::ALL.iter().map(|a| a.name()).collect();
    all.join(", ")
}

/// Where a value in force came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Default,
    Config,
    Query,
}

/// A value in force and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Sourced {
    /// Wide enough for a scaled default rent, which a config's reference prices can
    /// take past 2^53.
    pub value: u128,
    pub source: Source,
}

/// The assumptions in force for a valuation as of a year: a request's overrides over a
/// config file's over the defaults.
#[derive(Clone, Debug)]
pub struct Assumptions<'a> {
    pub year: i32,
    config: &'a Overrides,
    query: &'a Overrides,
    prices: &'a AuditConfig,
}

impl<'a> Assumptions<'a> {
    pub fn new(
        year: i32,
        config: &'a Overrides,
        query: &'a Overrides,
        prices: &'a AuditConfig,
    ) -> Assumptions<'a> {
        Assumptions {
            year,
            config,
            query,
            prices,
        }
    }

    fn pick(query: Option<u64>, config: Option<u64>, default: u128) -> Sourced {
        match (query, config) {
            (Some(value), _) => Sourced {
                value: value.into(),
                source: Source::Query,
            },
            (None, Some(value)) => Sourced {
                value: value.into(),
                source: Source::Config,
            },
            (None, None) => Sourced {
                value: default,
                source: Source::Default,
            },
        }
    }

    pub fn get(&self, a: Assumption) -> Sourced {
        Self::pick(
            self.query.get(a),
            self.config.get(a),
            a.default_value().into(),
        )
    }

    /// The monthly rent of one GPU of `model` in the valuation's year.
    pub fn rent(&self, model: &str) -> Sourced {
        Self::pick(
            self.query.rent(model),
            self.config.rent(model),
            self.default_rent(model),
        )
    }

    /// PROTOCOL §9: H100's by year; another model with a reference price scales H100's
    /// default by its price ÷ H100's, rounded down; any other model has none (0).
    pub fn default_rent(&self, model: &str) -> u128 {
        let h100 = if self.year <= 2024 {
            H100_RENT_TO_2024_MINOR
        } else {
            H100_RENT_FROM_2025_MINOR
        };
        if model == RENT_REFERENCE_MODEL {
            return h100.into();
        }
        let price = self.prices.reference_price(model, self.year);
        let h100_price = self.prices.reference_price(RENT_REFERENCE_MODEL, self.year);
        match (price, h100_price) {
            // Both factors are below 2^64, so the product fits u128.
            (Some(p), Some(h)) if h > 0 => times(h100, p)
                .checked_div(u128::from(h))
                .unwrap_or_else(|| unreachable!("{h} > 0")),
            _ => 0,
        }
    }

    /// Every assumption in force, by name, for the answer: the scalars, then the rents
    /// of `models` (and of any model a config or query names).
    pub fn in_force<'m>(
        &self,
        models: impl IntoIterator<Item = &'m str>,
    ) -> (BTreeMap<&'static str, Sourced>, BTreeMap<String, Sourced>) {
        let scalars = Assumption::ALL
            .iter()
            .map(|a| (a.name(), self.get(*a)))
            .collect();
        let mut rents = BTreeMap::new();
        for m in models {
            rents.insert(m.to_string(), self.rent(m));
        }
        for m in self.config.rent_models().chain(self.query.rent_models()) {
            rents.insert(m.to_string(), self.rent(m));
        }
        (scalars, rents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rents_scale_from_h100_and_round_down() {
        let prices = AuditConfig::default();
        let none = Overrides::default();
        let at = |year| Assumptions::new(year, &none, &none, &prices);
        assert_eq!(at(2024).default_rent("H100"), 2_250_000);
        assert_eq!(at(2022).default_rent("H100"), 2_250_000);
        assert_eq!(at(2025).default_rent("H100"), 937_500);
        // 937,500 × 140,000 ÷ 160,000 = 820,312.5 → 820,312.
        assert_eq!(at(2025).default_rent("H800"), 820_312);
        // Before the table: the nearest year's prices (2023), H100's early rent.
        assert_eq!(at(2021).default_rent("A100"), 2_250_000 * 120_000 / 220_000);
        assert_eq!(at(2025).default_rent("B200"), 0);
    }

    #[test]
    fn a_query_overrides_the_config_which_overrides_the_default() {
        let prices = AuditConfig::default();
        let mut config = Overrides::default();
        config.set("haircut_bp", 5_000).unwrap();
        config.set("rent.H100", 1).unwrap();
        let mut query = Overrides::default();
        query.set_text("haircut_bp", "6000").unwrap();
        let a = Assumptions::new(2025, &config, &query, &prices);
        assert_eq!(
            a.get(Assumption::HaircutBp),
            Sourced {
                value: 6_000,
                source: Source::Query
            }
        );
        assert_eq!(
            a.rent("H100"),
            Sourced {
                value: 1,
                source: Source::Config
            }
        );
        // Overriding H100's rent does not move other models' defaults.
        assert_eq!(
            a.rent("H800"),
            Sourced {
                value: 820_312,
                source: Source::Default
            }
        );
        let none = Overrides::default();
        let d = Assumptions::new(2025, &none, &none, &prices);
        assert_eq!(
            d.get(Assumption::LifeMonths),
            Sourced {
                value: 60,
                source: Source::Default
            }
        );
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let mut o = Overrides::default();
        for (name, text) in [
            ("haircut_bp", "10001"),
            ("discount_rate_bp", "-1"),
            ("tariff_minor_per_kwh", "1.5"),
            ("tariff_minor_per_kwh", ""),
            ("life_months", "9007199254740992"),
            ("life_months", "+5"),
            ("tarif", "5"),
            ("rent.", "5"),
        ] {
            let err = o.set_text(name, text).unwrap_err();
            assert_eq!(err.name, name, "{name}={text}");
        }
        assert!(o.set_text("life_months", "9007199254740991").is_ok());
        assert!(o.set_text("haircut_bp", "10000").is_ok());
    }
}
