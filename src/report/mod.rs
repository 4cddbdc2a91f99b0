//! Read models of PROTOCOL §9 built from the audit's snapshot of the projections: the
//! facility list and report, region reports and valuations, every figure with the
//! entries or facilities it came from, and what each was computed from (the checkpoint
//! and the configuration). No I/O of its own.

// Money, energy and GPU-hours are exact here: no silent wrap, truncation or sign loss.
// An `allow` names the one expression it covers and why that expression cannot lose.
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::arithmetic_side_effects
)]

pub mod assumptions;
pub mod facility;
pub mod region;
pub mod render;
pub mod valuation;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::audit::facts::day;
use crate::audit::{Facilities, FacilityFacts, Finding, Snapshot};
use crate::config::Config;
use crate::dates::Month;
use crate::exact::Int;
use crate::ledger::{LedgerError, Reader};
use assumptions::{Assumptions, Overrides};

/// Money by currency: only currencies that occur (`{}` when none).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Money(pub BTreeMap<String, Int>);

impl Money {
    pub fn add(&mut self, currency: &str, amount_minor: u64) {
        match self.0.get_mut(currency) {
            Some(sum) => *sum += amount_minor,
            None => {
                self.0.insert(currency.to_string(), Int::from(amount_minor));
            }
        }
    }
}

/// The audit window of PROTOCOL §8: `window_months` calendar months ending with as_of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub first: Month,
    pub last: Month,
}

impl Window {
    pub fn ending(as_of: Month, months: u32) -> Window {
        Window {
            first: as_of.window_start(months),
            last: as_of,
        }
    }

    /// The month before the window, for `Series::between`.
    pub fn before(self) -> Month {
        self.first.plus(-1)
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Months {
            first: String,
            last: String,
        }
        Months {
            first: self.first.to_string(),
            last: self.last.to_string(),
        }
        .serialize(s)
    }
}

/// The facilities in a report as of `as_of`: those announced by its last day (PROTOCOL §9).
pub fn included(facilities: &Facilities, as_of: Month) -> impl Iterator<Item = &FacilityFacts> {
    let end = as_of.last_day();
    facilities
        .iter()
        .filter(move |f| day(&f.records.facility.registered.announced) <= end)
}

/// The checkpoint a report was computed from (PROTOCOL §9 "Citable").
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cited {
    pub tree_size: u64,
    /// The tree's root hash, hex.
    pub root: String,
}

/// What every report, finding list and CSV names: its month, window, checkpoint and
/// configuration digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Basis {
    pub as_of: String,
    pub window: Window,
    pub checkpoint: Cited,
    pub config_b3: String,
}

impl Basis {
    /// The basis of an answer as of `as_of` computed from the first `size` entries.
    pub fn new(
        reader: &Reader,
        size: u64,
        as_of: Month,
        config: &Config,
        query: &Overrides,
    ) -> Result<Basis, LedgerError> {
        Ok(Basis {
            as_of: as_of.to_string(),
            window: Window::ending(as_of, config.audit.window_months),
            checkpoint: Cited {
                tree_size: size,
                root: hex::encode(reader.root_at(size)?),
            },
            config_b3: config.b3(query),
        })
    }

    /// The comment line that heads a CSV answer.
    pub fn csv_comment(&self) -> String {
        format!(
            "# as_of={} window={}..{} tree_size={} root={} config_b3={}\r\n",
            self.as_of,
            self.window.first,
            self.window.last,
            self.checkpoint.tree_size,
            self.checkpoint.root,
            self.config_b3
        )
    }
}

/// `GET /v1/reports/regions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegionsReport {
    #[serde(flatten)]
    pub basis: Basis,
    pub regions: Vec<region::Region>,
}

/// `GET /v1/reports/regions/{province}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegionReport {
    #[serde(flatten)]
    pub basis: Basis,
    #[serde(flatten)]
    pub region: region::Region,
}

/// `GET /v1/reports/valuation/{facility_id}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ValuationReport {
    #[serde(flatten)]
    pub basis: Basis,
    #[serde(flatten)]
    pub valuation: valuation::Valuation,
}

/// `dcledger report valuation --all --format json`: every valuation in full.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ValuationsReport {
    #[serde(flatten)]
    pub basis: Basis,
    pub valuations: Vec<valuation::Valuation>,
}

/// A page of the valuation screen.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScreenPage {
    #[serde(flatten)]
    pub basis: Basis,
    pub assumptions: valuation::InForce,
    pub rows: Vec<valuation::ScreenRow>,
    /// The value to pass as `after` for the next page; None on the last.
    pub next: Option<String>,
}

/// What a report is asked for: the month (default: PROTOCOL §8's), the configuration and a
/// request's valuation overrides.
pub struct Request<'a> {
    pub as_of: Option<Month>,
    pub config: &'a Config,
    pub query: &'a Overrides,
}

/// A snapshot's reports as of one month under one configuration: the basis every answer
/// names and the audit's findings the reports rest on, computed once.
pub struct Reports<'a> {
    pub snapshot: &'a Snapshot,
    pub basis: Basis,
    pub window: Window,
    pub config: &'a Config,
    pub query: &'a Overrides,
    pub findings: Vec<Arc<Finding>>,
}

impl<'a> Reports<'a> {
    pub fn new(
        reader: &Reader,
        snapshot: &'a Snapshot,
        request: &Request<'a>,
    ) -> Result<Reports<'a>, LedgerError> {
        let as_of = request
            .as_of
            .or_else(|| snapshot.default_as_of())
            .ok_or_else(|| {
                LedgerError::BadRequest("the ledger has nothing to report yet".into())
            })?;
        let basis = Basis::new(reader, snapshot.size, as_of, request.config, request.query)?;
        Ok(Reports {
            snapshot,
            findings: snapshot.audit(as_of, &request.config.audit),
            window: basis.window,
            basis,
            config: request.config,
            query: request.query,
        })
    }

    pub fn as_of(&self) -> Month {
        self.window.last
    }

    /// The findings about one facility, in the audit's order.
    pub fn findings_about(&self, facility_id: &str) -> Vec<Arc<Finding>> {
        self.findings
            .iter()
            .filter(|f| f.facility_id == facility_id)
            .cloned()
            .collect()
    }

    /// Every region, `national` first.
    pub fn regions(&self) -> RegionsReport {
        RegionsReport {
            basis: self.basis.clone(),
            regions: region::regions(
                &self.snapshot.facilities,
                self.window,
                &self.config.audit,
                &self.findings,
            ),
        }
    }

    /// One region, or None when no facility in the report is in it.
    pub fn region(&self, name: &str) -> Option<RegionReport> {
        let region = self
            .regions()
            .regions
            .into_iter()
            .find(|r| r.region == name && !r.facility_ids.is_empty())?;
        Some(RegionReport {
            basis: self.basis.clone(),
            region,
        })
    }

    fn assumptions(&self) -> Assumptions<'_> {
        Assumptions::new(
            self.as_of().year,
            &self.config.valuation,
            self.query,
            &self.config.audit,
        )
    }

    /// The valuation of a registered facility (announced by as_of or not), or None.
    pub fn valuation(&self, facility_id: &str) -> Option<ValuationReport> {
        let facts = self.snapshot.facilities.get(facility_id)?;
        let lots = valuation::LotIndex::new(
            &self.snapshot.facilities,
            &self.assumptions(),
            &self.config.audit,
        );
        let breaches = valuation::Breaches::of(&self.findings);
        Some(ValuationReport {
            basis: self.basis.clone(),
            valuation: valuation::value(facts, &lots, self.window, &self.assumptions(), &breaches),
        })
    }

    /// Valuations of every facility in the report, in the screen's order.
    pub fn valuations(&self, filter: &valuation::ScreenFilter) -> Vec<valuation::Valuation> {
        valuation::all(
            &self.snapshot.facilities,
            self.window,
            &self.config.audit,
            &self.assumptions(),
            &self.findings,
            filter,
        )
    }

    /// A page of the valuation screen: the rows after the cursor `after`, at most `limit`.
    pub fn screen(
        &self,
        filter: &valuation::ScreenFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScreenPage, LedgerError> {
        let after = after.map(valuation::Cursor::parse).transpose()?;
        let rows: Vec<valuation::ScreenRow> = self
            .valuations(filter)
            .iter()
            .map(valuation::ScreenRow::of)
            .filter(|r| after.as_ref().is_none_or(|c| c.before(r)))
            .collect();
        let more = rows.len() > limit;
        let rows: Vec<_> = rows.into_iter().take(limit).collect();
        let next = if more {
            rows.last().map(valuation::ScreenRow::cursor)
        } else {
            None
        };
        let models = self
            .config
            .audit
            .reference_prices
            .keys()
            .map(String::as_str);
        let (scalars, rent_gpu_month_minor) = self.assumptions().in_force(models);
        Ok(ScreenPage {
            basis: self.basis.clone(),
            assumptions: valuation::InForce {
                scalars,
                rent_gpu_month_minor,
            },
            rows,
            next,
        })
    }
}
