//! A monthly report reduced to the figures the audit reads: how the change log carries
//! it and how the audit keeps it. A month of reports is tens of thousands of them, read
//! back and put in place at every refresh, so they hold no strings but the facility id
//! (the period is a `Month`, a currency three bytes), and a million of them kept in
//! memory stay contiguous and cost nothing to drop. A rule that needs another figure
//! adds it here, which changes the derived format (`dcledger reindex`).

use serde::{Deserialize, Serialize};

use super::bodies::{MeterReading, OccupancyReport, PowerReport};
use super::records::ReportBody;
use crate::dates::Month;

/// A report's facility, month and figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFigures {
    pub facility_id: String,
    pub period: Month,
    pub figures: Figures,
}

impl ReportFigures {
    /// None if the period is not `YYYY-MM`, which the body's schema rules out.
    pub fn of(body: &ReportBody) -> Option<ReportFigures> {
        let figures = match body {
            ReportBody::Power(b) => Figures::Power(b.into()),
            ReportBody::Meter(b) => Figures::Meter(b.into()),
            ReportBody::Occupancy(b) => Figures::Occupancy(b.into()),
        };
        Some(ReportFigures {
            facility_id: body.facility_id().to_string(),
            period: Month::parse(body.period())?,
            figures,
        })
    }
}

/// The figures of one series' report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Figures {
    Power(PowerFigures),
    Meter(MeterFigures),
    Occupancy(OccupancyFigures),
}

/// The figures of a `power.report` the audit reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerFigures {
    pub consumed_kwh: u64,
    pub it_kwh: u64,
    pub resold_kwh: u64,
    pub resale_revenue_minor: u64,
    pub currency: Currency,
}

/// The figures of a `meter.reading` the audit reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterFigures {
    pub consumed_kwh: u64,
    pub resold_kwh: u64,
}

/// The figures of an `occupancy.report` the audit reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OccupancyFigures {
    pub gpus_installed: u64,
    pub gpu_hours_available: u64,
    pub gpu_hours_sold: u64,
    pub gpu_hours_voucher: u64,
}

impl From<&PowerReport> for PowerFigures {
    fn from(r: &PowerReport) -> Self {
        PowerFigures {
            consumed_kwh: r.consumed_kwh,
            it_kwh: r.it_kwh,
            resold_kwh: r.resold_kwh,
            resale_revenue_minor: r.resale_revenue_minor,
            currency: Currency::new(&r.currency),
        }
    }
}

impl From<&MeterReading> for MeterFigures {
    fn from(r: &MeterReading) -> Self {
        MeterFigures {
            consumed_kwh: r.consumed_kwh,
            resold_kwh: r.resold_kwh,
        }
    }
}

impl From<&OccupancyReport> for OccupancyFigures {
    fn from(r: &OccupancyReport) -> Self {
        OccupancyFigures {
            gpus_installed: r.gpus_installed,
            gpu_hours_available: r.gpu_hours_available,
            gpu_hours_sold: r.gpu_hours_sold,
            gpu_hours_voucher: r.gpu_hours_voucher,
        }
    }
}

/// An ISO 4217 code, three capital letters (SPEC §2), held inline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Bodies hold only validated codes, so anything else is a defect; it shows as
    /// `???` rather than as a plausible currency.
    pub fn new(code: &str) -> Currency {
        match code.as_bytes() {
            &[a, b, c] if code.bytes().all(|x| x.is_ascii_uppercase()) => Currency([a, b, c]),
            _ => Currency(*b"???"),
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII capitals or `?` are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::derived::{decode, encode};

    #[test]
    fn a_report_reduces_to_its_figures_and_they_survive_the_change_log_encoding() {
        let body = ReportBody::Power(PowerReport {
            facility_id: "F-1".into(),
            period: "2025-07".into(),
            consumed_kwh: 1_000,
            it_kwh: 800,
            green_kwh: 500,
            resold_kwh: 70,
            resale_revenue_minor: 9_900,
            currency: "CNY".into(),
        });
        let report = ReportFigures::of(&body).expect("a month");
        assert_eq!(report.facility_id, "F-1");
        assert_eq!(
            report.period,
            Month {
                year: 2025,
                month: 7
            }
        );
        let Figures::Power(p) = report.figures else {
            panic!("power figures");
        };
        assert_eq!(
            (
                p.consumed_kwh,
                p.it_kwh,
                p.resold_kwh,
                p.resale_revenue_minor
            ),
            (1_000, 800, 70, 9_900)
        );
        assert_eq!(p.currency.as_str(), "CNY");
        let stored = encode(&report);
        assert_eq!(
            decode::<ReportFigures>(b"t", &stored).expect("decodes"),
            report
        );
    }

    #[test]
    fn only_three_capitals_make_a_currency() {
        for (code, shown) in [
            ("CNY", "CNY"),
            ("USD", "USD"),
            ("cny", "???"),
            ("CN", "???"),
            ("CNYX", "???"),
            ("", "???"),
        ] {
            assert_eq!(Currency::new(code).as_str(), shown, "{code:?}");
        }
    }
}
