//! `dcledger demo`: a fresh ledger holding the demo world of `fixtures/demo/`, audited,
//! ready to serve. The fixture is compiled into the binary so the demo runs anywhere.

use std::io::Cursor;
use std::path::Path;

use ed25519_dalek::SigningKey;

use crate::audit::{self, AuditRequest};
use crate::bulk::{self, BulkError};
use crate::keys::{self, KeyError};
use crate::ledger::{Ledger, LedgerError};
use crate::synthetic::ORIGIN;

const ENTRIES: &str = include_str!("../fixtures/demo/entries.ndjson");
const AUTHORITY_PEM: &str = include_str!("../fixtures/demo/keys/authority.pem");
const LOG_PEM: &str = include_str!("../fixtures/demo/keys/log.pem");

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Bulk(#[from] BulkError),
    #[error("the demo world was refused at line {line}: {reason}")]
    Refused { line: u64, reason: String },
}

/// What the demo loaded.
pub struct DemoSummary {
    pub entries: u64,
    pub verifier_key: String,
    pub as_of: String,
    /// (rule, findings) pairs, most frequent first.
    pub findings_by_rule: Vec<(String, usize)>,
    pub findings: usize,
}

/// The demo ledger's checkpoint key: a demo-only key, compiled in, so the demo needs no
/// key file (a real ledger's lives outside its data directory, PROTOCOL §11).
pub fn log_key() -> Result<SigningKey, KeyError> {
    keys::parse_signing_key(LOG_PEM, Path::new("fixtures/demo/keys/log.pem"))
}

/// Creates the demo ledger in `dir` (new or empty) and audits it.
pub fn prepare(dir: &Path) -> Result<DemoSummary, DemoError> {
    let authority =
        keys::parse_signing_key(AUTHORITY_PEM, Path::new("fixtures/demo/keys/authority.pem"))?;
    let log = log_key()?;
    let mut ledger = Ledger::init(dir, ORIGIN, "dcledger demo world", &authority, &log)?;
    let summary = bulk::append_ndjson(&mut ledger, Cursor::new(ENTRIES), |_| {})?;
    if let Some(r) = summary.refused {
        return Err(DemoError::Refused {
            line: r.line,
            reason: r.rejection.to_string(),
        });
    }
    let (as_of, findings) = audit::run(&ledger.reader(), &AuditRequest::default())?;
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for f in &findings {
        *counts.entry(f.rule.to_string()).or_default() += 1;
    }
    let mut findings_by_rule: Vec<(String, usize)> = counts.into_iter().collect();
    findings_by_rule.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let verifier_key = ledger.verifier_key().ok_or_else(|| {
        LedgerError::Verify("the demo ledger holds no genesis entry after loading".into())
    })?;
    let entries = ledger.size();
    ledger.close()?;
    Ok(DemoSummary {
        entries,
        verifier_key,
        as_of: as_of.to_string(),
        findings_by_rule,
        findings: findings.len(),
    })
}
