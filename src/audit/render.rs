//! The audit as text: deterministic JSON, a terminal table, CSV.

use std::sync::Arc;

use serde_json::json;

use super::{Finding, Severity};
use crate::dates::Month;

/// Which findings to keep.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub rule: Option<super::Rule>,
    pub facility: Option<String>,
    pub min_severity: Option<Severity>,
}

impl Filter {
    pub fn keeps(&self, f: &Finding) -> bool {
        self.rule.is_none_or(|r| r.as_str() == f.rule)
            && self.facility.as_ref().is_none_or(|id| *id == f.facility_id)
            && self
                .min_severity
                .is_none_or(|min| Severity::parse(f.severity).is_some_and(|s| s >= min))
    }
}

/// `{"as_of", "findings"}`; same ledger and config, same bytes.
pub fn json(as_of: Month, findings: &[Arc<Finding>]) -> String {
    let doc = json!({"as_of": as_of.to_string(), "count": findings.len(), "findings": findings});
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn csv(findings: &[Arc<Finding>]) -> String {
    let mut out = String::from(
        "id,rule,severity,facility_id,key,amount_at_risk_minor,currency,evidence,summary\n",
    );
    for f in findings {
        let evidence: Vec<String> = f.evidence.iter().map(u64::to_string).collect();
        let row = [
            f.id.clone(),
            f.rule.to_string(),
            f.severity.to_string(),
            f.facility_id.clone(),
            f.key.clone(),
            f.amount_at_risk_minor
                .map(|a| a.to_string())
                .unwrap_or_default(),
            f.currency.clone().unwrap_or_default(),
            evidence.join(" "),
            f.summary.clone(),
        ];
        let row: Vec<String> = row.iter().map(|s| csv_field(s)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// A table for a terminal: one line per finding, then a count per rule.
pub fn table(as_of: Month, findings: &[Arc<Finding>]) -> String {
    let width = |get: fn(&Finding) -> &str, title: &str| {
        findings
            .iter()
            .map(|f| get(f).len())
            .max()
            .unwrap_or(0)
            .max(title.len())
    };
    let (w_rule, w_fac, w_key) = (
        width(|f| f.rule, "RULE"),
        width(|f| &f.facility_id, "FACILITY"),
        width(|f| &f.key, "KEY"),
    );
    let mut out = format!(
        "audit as of {as_of}: {} findings (alerts to weigh, not verdicts)\n\n{:<8} {:<w_rule$} {:<w_fac$} {:<w_key$} SUMMARY\n",
        findings.len(),
        "SEVERITY",
        "RULE",
        "FACILITY",
        "KEY"
    );
    for f in findings {
        out.push_str(&format!(
            "{:<8} {:<w_rule$} {:<w_fac$} {:<w_key$} {}\n",
            f.severity, f.rule, f.facility_id, f.key, f.summary
        ));
    }
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for f in findings {
        *counts.entry(f.rule).or_default() += 1;
    }
    if !counts.is_empty() {
        out.push('\n');
        for (rule, n) in counts {
            out.push_str(&format!("{n:>6}  {rule}\n"));
        }
    }
    out
}
