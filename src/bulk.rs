//! Bulk append of NDJSON envelopes (`dcledger append`): one envelope per line, committed
//! in all-or-nothing batches of up to `MAX_BATCH_ENTRIES`. A refused batch stops the run;
//! batches before it stay committed, and the refusal names the input line.

use std::io::BufRead;
use std::sync::Arc;

use serde_json::Value;

use crate::ledger::{Ledger, LedgerError};
use crate::limits::MAX_BATCH_ENTRIES;
use crate::reject::Rejection;

#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error("reading input: {0}")]
    Read(std::io::Error),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The refusal of one line (1-based), after which nothing more was appended.
#[derive(Debug, Clone)]
pub struct LineRejection {
    pub line: u64,
    pub rejection: Rejection,
}

#[derive(Debug, Clone)]
pub struct BulkSummary {
    pub accepted: u64,
    pub checkpoint: Arc<str>,
    pub refused: Option<LineRejection>,
}

/// Where a bulk append stands after a durable batch.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub bytes_read: u64,
    pub accepted: u64,
    /// The checkpoint that covers every entry accepted so far.
    pub checkpoint: &'a str,
}

/// Appends every envelope of `input`. `progress` is called after each durable batch.
pub fn append_ndjson(
    ledger: &mut Ledger,
    input: impl BufRead,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<BulkSummary, BulkError> {
    let mut run = Run {
        accepted: 0,
        batch: Vec::with_capacity(MAX_BATCH_ENTRIES),
        lines: Vec::with_capacity(MAX_BATCH_ENTRIES),
    };
    let mut bytes = 0u64;
    let mut refused = None;
    for (i, line) in input.lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = line.map_err(BulkError::Read)?;
        bytes += line.len() as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(v) => {
                run.batch.push(v);
                run.lines.push(line_no);
            }
            Err(e) => {
                refused = Some(LineRejection {
                    line: line_no,
                    rejection: Rejection::invalid("/", format!("malformed JSON: {e}")),
                });
                break;
            }
        }
        if run.batch.len() == MAX_BATCH_ENTRIES {
            refused = run.flush(ledger)?;
            if refused.is_some() {
                break;
            }
            progress(run.progress(ledger, bytes));
        }
    }
    if refused.is_none() {
        refused = run.flush(ledger)?;
        progress(run.progress(ledger, bytes));
    }
    Ok(BulkSummary {
        accepted: run.accepted,
        checkpoint: ledger.reader().checkpoint(),
        refused,
    })
}

/// The batch being gathered and the input line of each of its envelopes.
struct Run {
    accepted: u64,
    batch: Vec<Value>,
    lines: Vec<u64>,
}

impl Run {
    fn progress<'a>(&self, ledger: &'a Ledger, bytes_read: u64) -> Progress<'a> {
        Progress {
            bytes_read,
            accepted: self.accepted,
            checkpoint: ledger.checkpoint(),
        }
    }

    fn flush(&mut self, ledger: &mut Ledger) -> Result<Option<LineRejection>, BulkError> {
        if self.batch.is_empty() {
            return Ok(None);
        }
        let outcome = ledger.append_batch(std::mem::take(&mut self.batch))?;
        let lines = std::mem::take(&mut self.lines);
        match outcome {
            Ok(receipt) => {
                self.accepted += receipt.entries.len() as u64;
                Ok(None)
            }
            Err(refusal) => Ok(Some(LineRejection {
                line: lines.get(refusal.position).copied().unwrap_or_default(),
                rejection: refusal.rejection,
            })),
        }
    }
}
