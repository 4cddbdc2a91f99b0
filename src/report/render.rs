//! Reports as CSV (RFC 4180, a leading comment line naming what they were computed
//! from, columns in a fixed order) and as tables for a terminal. One row per region,
//! facility or finding.

use std::fmt::Write as _;
use std::sync::Arc;

use super::valuation::{ScreenRow, Valuation};
use super::{Basis, Money, RegionsReport};
use crate::audit::Finding;
use crate::exact::Int;

/// CSV text: the basis as a comment line, a header row, then the rows (each as long as
/// the header).
pub fn csv<R: AsRef<[String]>>(basis: &Basis, header: &[&str], rows: &[R]) -> String {
    // RFC 4180 ends every line with CRLF.
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let written: Result<(), csv::Error> = (|| {
        w.write_record(header)?;
        for row in rows {
            debug_assert_eq!(row.as_ref().len(), header.len(), "a row per column");
            w.write_record(row.as_ref())?;
        }
        w.flush()?;
        Ok(())
    })();
    // A writer into memory has no I/O to fail and every field is UTF-8.
    written.unwrap_or_else(|e| unreachable!("CSV into memory: {e}"));
    let body = w
        .into_inner()
        .unwrap_or_else(|e| unreachable!("CSV into memory: {e}"));
    let mut out = basis.csv_comment();
    out.push_str(&String::from_utf8_lossy(&body));
    out
}

fn opt(x: &Option<Int>) -> String {
    x.as_ref().map(Int::to_string).unwrap_or_default()
}

/// A money map in one cell: `CNY=123 USD=4`.
fn money_cell(m: &Money) -> String {
    let parts: Vec<String> = m.0.iter().map(|(c, a)| format!("{c}={a}")).collect();
    parts.join(" ")
}

pub const REGION_COLUMNS: [&str; 21] = [
    "region",
    "facilities_announced",
    "facilities_under_construction",
    "facilities_operational",
    "facilities_suspended",
    "facilities_decommissioned",
    "facility_count",
    "gpus_deployed",
    "gpu_hours_sold",
    "gpu_hours_voucher",
    "gpu_hours_available",
    "utilization_bp",
    "idle_gpus",
    "idle_share_bp",
    "subsidies_disbursed",
    "disbursed_at_flagged",
    "consumed_kwh",
    "resold_kwh",
    "resold_share_bp",
    "top_findings",
    "facility_ids",
];

pub fn regions_csv(report: &RegionsReport) -> String {
    let rows: Vec<[String; 21]> = report
        .regions
        .iter()
        .map(|r| {
            let [a, u, o, s, d] = r.facilities.iter().map(|(_, n)| n.to_string());
            let top: Vec<String> = r
                .top_findings
                .0
                .iter()
                .map(|(rule, n)| format!("{rule}={n}"))
                .collect();
            [
                r.region.clone(),
                a,
                u,
                o,
                s,
                d,
                r.facility_ids.len().to_string(),
                r.gpus_deployed.to_string(),
                r.gpu_hours_sold.to_string(),
                r.gpu_hours_voucher.to_string(),
                r.gpu_hours_available.to_string(),
                opt(&r.utilization_bp),
                r.idle_gpus.to_string(),
                opt(&r.idle_share_bp),
                money_cell(&r.subsidies_disbursed),
                money_cell(&r.disbursed_at_flagged),
                r.consumed_kwh.to_string(),
                r.resold_kwh.to_string(),
                opt(&r.resold_share_bp),
                top.join(" "),
                r.facility_ids.join(" "),
            ]
        })
        .collect();
    csv(&report.basis, &REGION_COLUMNS, &rows)
}

pub const SCREEN_COLUMNS: [&str; 8] = [
    "facility_id",
    "province",
    "gpus",
    "paid_utilization_bp",
    "noi_month",
    "asset_value",
    "equity_value",
    "distressed",
];

fn screen_row(r: &ScreenRow) -> [String; 8] {
    [
        r.facility_id.clone(),
        r.province.clone(),
        r.gpus.to_string(),
        opt(&r.paid_utilization_bp),
        r.noi_month.to_string(),
        r.asset_value.to_string(),
        r.equity_value.to_string(),
        r.distressed.to_string(),
    ]
}

pub fn screen_csv(basis: &Basis, rows: &[ScreenRow]) -> String {
    let rows: Vec<_> = rows.iter().map(screen_row).collect();
    csv(basis, &SCREEN_COLUMNS, &rows)
}

/// A valuation's columns after the screen's.
pub const VALUATION_DETAIL_COLUMNS: [&str; 8] = [
    "revenue_month",
    "energy_month",
    "maintenance_month",
    "income_value",
    "liquidation_value",
    "clawback_exposure",
    "loans_outstanding",
    "unpriced_models",
];

fn valuation_row(v: &Valuation) -> Vec<String> {
    let mut row = screen_row(&ScreenRow::of(v)).to_vec();
    row.extend([
        v.revenue_month.to_string(),
        v.energy_month.to_string(),
        v.maintenance_month.to_string(),
        v.income_value.to_string(),
        v.liquidation_value.to_string(),
        v.clawback_exposure.to_string(),
        v.loans_outstanding.to_string(),
        v.unpriced_models.join(" "),
    ]);
    row
}

/// Valuations in full: the screen's columns, then `VALUATION_DETAIL_COLUMNS`.
pub fn valuations_csv(basis: &Basis, valuations: &[Valuation]) -> String {
    let header: Vec<&str> = SCREEN_COLUMNS
        .iter()
        .chain(&VALUATION_DETAIL_COLUMNS)
        .copied()
        .collect();
    let rows: Vec<_> = valuations.iter().map(valuation_row).collect();
    csv(basis, &header, &rows)
}

pub const FINDING_COLUMNS: [&str; 9] = [
    "id",
    "rule",
    "severity",
    "facility_id",
    "key",
    "amount_at_risk_minor",
    "currency",
    "evidence",
    "summary",
];

pub fn findings_csv(basis: &Basis, findings: &[Arc<Finding>]) -> String {
    let rows: Vec<[String; 9]> = findings
        .iter()
        .map(|f| {
            let evidence: Vec<String> = f.evidence.iter().map(u64::to_string).collect();
            [
                f.id.clone(),
                f.rule.to_string(),
                f.severity.to_string(),
                f.facility_id.clone(),
                f.key.clone(),
                f.amount_at_risk_minor
                    .as_ref()
                    .map(Int::to_string)
                    .unwrap_or_default(),
                f.currency.clone().unwrap_or_default(),
                evidence.join(" "),
                f.summary.clone(),
            ]
        })
        .collect();
    csv(basis, &FINDING_COLUMNS, &rows)
}

/// A table's first line: what, as of when, and from what it was computed.
fn heading(what: &str, b: &Basis, note: &str) -> String {
    format!(
        "{what} as of {} (window {}..{}), tree size {}, config {}{note}\n\n",
        b.as_of,
        b.window.first,
        b.window.last,
        b.checkpoint.tree_size,
        b.config_b3.get(..12).unwrap_or(&b.config_b3)
    )
}

/// The width of a column: its widest cell or its title.
fn width<'a>(cells: impl Iterator<Item = &'a str>, title: &str) -> usize {
    cells.map(str::len).max().unwrap_or(0).max(title.len())
}

/// Regions for a terminal: one line per region.
pub fn regions_table(report: &RegionsReport) -> String {
    let mut out = heading("regions", &report.basis, "");
    let w = width(report.regions.iter().map(|r| r.region.as_str()), "REGION");
    let _ = writeln!(
        out,
        "{:<w$} {:>10} {:>12} {:>8} {:>10} {:>8}  SUBSIDIES DISBURSED",
        "REGION", "FACILITIES", "GPUS", "UTIL%", "IDLE GPUS", "RESOLD%"
    );
    for r in &report.regions {
        let _ = writeln!(
            out,
            "{:<w$} {:>10} {:>12} {:>8} {:>10} {:>8}  {}",
            r.region,
            r.facility_ids.len(),
            r.gpus_deployed,
            percent(&r.utilization_bp),
            r.idle_gpus,
            percent(&r.resold_share_bp),
            money_cell(&r.subsidies_disbursed)
        );
    }
    out
}

/// Basis points as a percentage with two decimals, `-` when undefined.
pub fn percent(bp: &Option<Int>) -> String {
    match bp {
        None => "-".into(),
        Some(bp) => {
            let text = bp.to_string();
            if bp.is_negative() {
                // Only a contradictory ledger (GPUs moved out before they arrived) gives
                // a negative share; show it as it is.
                return format!("{text}bp");
            }
            let padded = format!("{text:0>3}");
            let (whole, frac) = padded.split_at(padded.len().saturating_sub(2));
            format!("{whole}.{frac}")
        }
    }
}

/// Valuations for a terminal: one line per facility.
pub fn valuations_table(basis: &Basis, valuations: &[Valuation]) -> String {
    let mut out = heading("valuation", basis, "; money in CNY minor units");
    let w = width(
        valuations.iter().map(|v| v.facility_id.as_str()),
        "FACILITY",
    );
    let _ = writeln!(
        out,
        "{:<w$} {:>8} {:>8} {:>16} {:>18} {:>18}  DISTRESSED",
        "FACILITY", "GPUS", "PAID%", "NOI/MONTH", "ASSET", "EQUITY"
    );
    for v in valuations {
        let _ = writeln!(
            out,
            "{:<w$} {:>8} {:>8} {:>16} {:>18} {:>18}  {}",
            v.facility_id,
            v.gpus,
            percent(&v.paid_utilization_bp),
            v.noi_month,
            v.asset_value,
            v.equity_value,
            if v.distressed { "yes" } else { "no" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basis_points_read_as_percentages() {
        for (bp, shown) in [
            (None, "-"),
            (Some(0u64), "0.00"),
            (Some(7), "0.07"),
            (Some(3333), "33.33"),
            (Some(10_000), "100.00"),
        ] {
            assert_eq!(percent(&bp.map(Int::from)), shown);
        }
    }
}
