//! The audit as text: deterministic JSON, a terminal table, CSV.

use std::sync::Arc;

use super::{Finding, Severity};
use crate::dates::Month;
use crate::report::Basis;

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

/// The findings `GET /v1/findings` and the findings page select: exactly this rule,
/// severity, province and facility, where given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub rule: Option<super::Rule>,
    pub severity: Option<Severity>,
    pub province: Option<String>,
    pub facility: Option<String>,
}

impl Selection {
    pub fn keeps(&self, facilities: &super::Facilities, f: &Finding) -> bool {
        self.rule.is_none_or(|r| r.as_str() == f.rule)
            && self.severity.is_none_or(|s| s.as_str() == f.severity)
            && self.facility.as_ref().is_none_or(|id| *id == f.facility_id)
            && self.province.as_ref().is_none_or(|p| {
                facilities
                    .get(&f.facility_id)
                    .is_some_and(|x| x.records.facility.registered.province == *p)
            })
    }
}

/// A list of findings with what it was computed from (`GET /v1/findings`).
#[derive(serde::Serialize)]
pub struct FindingList<'a> {
    #[serde(flatten)]
    pub basis: &'a Basis,
    pub count: usize,
    pub findings: &'a [Arc<Finding>],
}

impl<'a> FindingList<'a> {
    pub fn new(basis: &'a Basis, findings: &'a [Arc<Finding>]) -> FindingList<'a> {
        FindingList {
            basis,
            count: findings.len(),
            findings,
        }
    }
}

/// The findings with what they were computed from; same ledger and config, same bytes.
pub fn json(basis: &Basis, findings: &[Arc<Finding>]) -> String {
    let doc = FindingList::new(basis, findings);
    // Plain structs and strings serialise without fail.
    let mut text = serde_json::to_string_pretty(&doc)
        .unwrap_or_else(|e| unreachable!("findings serialise: {e}"));
    text.push('\n');
    text
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
        let n = counts.entry(f.rule).or_default();
        *n = n.saturating_add(1);
    }
    if !counts.is_empty() {
        out.push('\n');
        for (rule, n) in counts {
            out.push_str(&format!("{n:>6}  {rule}\n"));
        }
    }
    out
}
