//! A monthly report reduced to the figures the audit reads: how the change log carries
//! it and how the audit keeps it. A month of reports is tens of thousands of them, read
//! back and put in place at every refresh, so they hold no strings but the facility id
//! (the period is a `Month`, a currency three bytes), and a million of them kept in
//! memory stay contiguous and cost nothing to drop. A rule that needs another figure
//! adds it here, which changes the derived format (`dcledger reindex`).

use serde::{Deserialize, Serialize};

use super::bodies::{MeterReading, OccupancyReport, PowerReport};
use super::records::ReportBody;
use crate::dates::{Month, TimeError};

/// A report body whose figures cannot be what the schemas admit: the body was not
/// schema-checked, or derived state holding it is damaged. Names the body's field.
#[derive(Debug, thiserror::Error)]
pub enum FigureError {
    #[error("period: {0}")]
    Period(#[from] TimeError),
    #[error("currency: {0}")]
    Currency(#[from] NotACurrency),
}

impl FigureError {
    /// The body field at fault, as a JSON pointer below the body.
    pub fn field(&self) -> &'static str {
        match self {
            FigureError::Period(_) => "period",
            FigureError::Currency(_) => "currency",
        }
    }
}

/// A currency code that is not three capital letters.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a currency code (three capital letters, ISO 4217)")]
pub struct NotACurrency(pub String);

/// A report's facility, month and figures. The facility id is owned, or borrowed from
/// the bytes a reader decoded it from (`ledger::ChangeLog`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFigures<Id = String> {
    pub facility_id: Id,
    pub period: Month,
    pub figures: Figures,
}

impl ReportFigures {
    /// The figures of a schema-valid body; an error names the field of any other.
    pub fn of(body: &ReportBody<'_>) -> Result<ReportFigures, FigureError> {
        let figures = match *body {
            ReportBody::Power(b) => Figures::Power(b.try_into()?),
            ReportBody::Meter(b) => Figures::Meter(b.into()),
            ReportBody::Occupancy(b) => Figures::Occupancy(b.into()),
        };
        Ok(ReportFigures {
            facility_id: body.facility_id().to_string(),
            period: Month::checked(body.period())?,
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

impl TryFrom<&PowerReport> for PowerFigures {
    type Error = NotACurrency;

    fn try_from(r: &PowerReport) -> Result<Self, NotACurrency> {
        Ok(PowerFigures {
            consumed_kwh: r.consumed_kwh,
            it_kwh: r.it_kwh,
            resold_kwh: r.resold_kwh,
            resale_revenue_minor: r.resale_revenue_minor,
            currency: Currency::new(&r.currency)?,
        })
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

/// An ISO 4217 code, three capital letters (PROTOCOL §2), held inline. Decoding goes
/// through the same check, so a damaged store cannot make one of anything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "[u8; 3]", into = "[u8; 3]")]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn new(code: &str) -> Result<Currency, NotACurrency> {
        match code.as_bytes() {
            &[a, b, c] => Currency::try_from([a, b, c]),
            _ => Err(NotACurrency(code.to_string())),
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0)
            .unwrap_or_else(|_| unreachable!("a Currency holds three ASCII capitals"))
    }
}

impl TryFrom<[u8; 3]> for Currency {
    type Error = NotACurrency;

    fn try_from(code: [u8; 3]) -> Result<Currency, NotACurrency> {
        if code.iter().all(u8::is_ascii_uppercase) {
            Ok(Currency(code))
        } else {
            Err(NotACurrency(String::from_utf8_lossy(&code).into_owned()))
        }
    }
}

impl From<Currency> for [u8; 3] {
    fn from(c: Currency) -> [u8; 3] {
        c.0
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
        let body = ReportBody::Power(&PowerReport {
            facility_id: "F-1".into(),
            period: "2025-07".into(),
            consumed_kwh: 1_000,
            it_kwh: 800,
            green_kwh: 500,
            resold_kwh: 70,
            resale_revenue_minor: 9_900,
            currency: "CNY".into(),
        });
        let report = ReportFigures::of(&body).expect("valid figures");
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
        for (code, made) in [
            ("CNY", Some("CNY")),
            ("USD", Some("USD")),
            ("cny", None),
            ("CN", None),
            ("CNYX", None),
            ("", None),
            ("C\u{e9}Y", None),
        ] {
            let currency = Currency::new(code).ok();
            assert_eq!(currency.as_ref().map(Currency::as_str), made, "{code:?}");
        }
    }

    #[test]
    fn a_damaged_stored_currency_does_not_decode() {
        let stored = encode(b"cNY");
        assert!(decode::<Currency>(b"t", &stored).is_err());
        let good = encode(&Currency::new("CNY").expect("a currency"));
        assert_eq!(
            decode::<Currency>(b"t", &good).expect("decodes").as_str(),
            "CNY"
        );
    }

    #[test]
    fn figures_name_the_field_that_cannot_be_what_the_schema_admits() {
        for (period, currency, field) in
            [("2025-13", "CNY", "period"), ("2025-07", "cny", "currency")]
        {
            let body = ReportBody::Power(&PowerReport {
                facility_id: "F-1".into(),
                period: period.into(),
                consumed_kwh: 1,
                it_kwh: 1,
                green_kwh: 0,
                resold_kwh: 0,
                resale_revenue_minor: 0,
                currency: currency.into(),
            });
            let e = ReportFigures::of(&body).expect_err("refused");
            assert_eq!(e.field(), field, "{e}");
        }
    }
}
