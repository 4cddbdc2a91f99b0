//! Bulk append of NDJSON envelopes (`dcledger append`): one envelope per line, committed
//! in all-or-nothing batches of up to `MAX_BATCH_ENTRIES`. A refused batch stops the run;
//! batches before it stay committed, and the refusal names the input line. A batch whose
//! envelopes are all in the ledger already is a retry (SPEC §3): counted, not written, so
//! a run cut short (a crash, a kill) is finished by running it again on the same input.
//!
//! Two stages overlap: a reader thread parses and prepares (schema, signatures, on every
//! core) the next batch while the caller's thread admits and syncs the previous one, so
//! the signature checks and the fsyncs do not wait for each other.

use std::io::BufRead;
use std::sync::Arc;
use std::sync::mpsc;

use serde_json::Value;

use crate::dates;
use crate::ingest::{self, Prepared, Signatures};
use crate::json;
use crate::ledger::{Ledger, LedgerError};
use crate::limits::MAX_BATCH_ENTRIES;
use crate::reject::Rejection;

/// Prepared batches waiting for the writer; bounded so a fast reader cannot run ahead
/// of the disk with unbounded memory.
const PIPELINE_DEPTH: usize = 2;

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
    /// Entries written by this run.
    pub accepted: u64,
    /// Entries of the input that the ledger held already (nothing written for them).
    pub present: u64,
    pub checkpoint: Arc<str>,
    pub refused: Option<LineRejection>,
}

/// Where a bulk append stands after a durable batch.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub bytes_read: u64,
    pub accepted: u64,
    pub present: u64,
    /// The checkpoint that covers every entry accepted so far.
    pub checkpoint: &'a str,
}

/// What the reader stage hands the writer.
enum Chunk {
    Batch {
        prepared: Vec<Result<Prepared, Rejection>>,
        lines: Vec<u64>,
        bytes_read: u64,
    },
    /// A line that is not JSON, or repeats a key in an object: its batch is refused whole.
    Malformed(LineRejection),
    Failed(std::io::Error),
}

/// Reads, parses and prepares batches, sending each to the writer stage. `origin` is the
/// ledger's (`None` before its genesis entry, which the input must then open with).
fn read_stage(
    input: impl BufRead,
    now: dates::UnixSeconds,
    mut origin: Option<String>,
    tx: mpsc::SyncSender<Chunk>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH_ENTRIES);
    let mut lines = Vec::with_capacity(MAX_BATCH_ENTRIES);
    let mut bytes_read = 0u64;
    let mut send_batch =
        |batch: &mut Vec<(Value, dates::UnixSeconds)>, lines: &mut Vec<u64>, bytes_read| {
            // Batches are prepared ahead of the writer, so the origin a genesis entry
            // opening the input names is taken from the input, not from the ledger.
            origin = ingest::submission_origin(
                origin.as_deref(),
                batch.first().map(|(envelope, _)| envelope),
            );
            let signatures = Signatures::Verify {
                origin: origin.as_deref(),
            };
            let prepared = ingest::prepare_all(std::mem::take(batch), signatures);
            tx.send(Chunk::Batch {
                prepared,
                lines: std::mem::take(lines),
                bytes_read,
            })
            .is_ok()
        };
    for (i, line) in input.lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                let _ = tx.send(Chunk::Failed(e));
                return;
            }
        };
        bytes_read += line.len() as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        match json::from_str(&line) {
            Ok(v) => {
                // Prepare judges `ts` against this clock reading; admission re-checks it
                // against the batch's own `accepted`, which is never earlier.
                batch.push((v, now.max(dates::now())));
                lines.push(line_no);
            }
            Err(e) => {
                let rejection = e
                    .duplicate_key()
                    .unwrap_or_else(|| Rejection::invalid("/", e.to_string()));
                let _ = tx.send(Chunk::Malformed(LineRejection {
                    line: line_no,
                    rejection,
                }));
                return;
            }
        }
        if batch.len() == MAX_BATCH_ENTRIES && !send_batch(&mut batch, &mut lines, bytes_read) {
            return; // the writer stopped
        }
    }
    if !batch.is_empty() {
        send_batch(&mut batch, &mut lines, bytes_read);
    }
}

/// Appends every envelope of `input`. `progress` is called after each durable batch.
pub fn append_ndjson(
    ledger: &mut Ledger,
    input: impl BufRead + Send,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<BulkSummary, BulkError> {
    let now = ledger.clock();
    let origin = ledger.origin().map(str::to_string);
    let mut accepted = 0u64;
    let mut present = 0u64;
    let mut refused = None;
    std::thread::scope(|scope| -> Result<(), BulkError> {
        let (tx, rx) = mpsc::sync_channel(PIPELINE_DEPTH);
        scope.spawn(move || read_stage(input, now, origin, tx));
        for chunk in rx {
            match chunk {
                Chunk::Batch {
                    prepared,
                    lines,
                    bytes_read,
                } => {
                    let (mut outcomes, _) = ledger.append_prepared(vec![prepared])?;
                    match outcomes.pop() {
                        Some(Ok(entries)) => {
                            let n = entries.len() as u64;
                            match entries.first() {
                                Some(e) if e.already_present => present += n,
                                _ => accepted += n,
                            }
                        }
                        Some(Err(refusal)) => {
                            refused = Some(LineRejection {
                                line: lines.get(refusal.position).copied().unwrap_or_else(|| {
                                    unreachable!(
                                        "refusal at {} of a batch of {}",
                                        refusal.position,
                                        lines.len()
                                    )
                                }),
                                rejection: refusal.rejection,
                            });
                            break;
                        }
                        None => {}
                    }
                    progress(Progress {
                        bytes_read,
                        accepted,
                        present,
                        checkpoint: ledger.checkpoint(),
                    });
                }
                Chunk::Malformed(rejection) => {
                    refused = Some(rejection);
                    break;
                }
                Chunk::Failed(e) => return Err(BulkError::Read(e)),
            }
        }
        // Dropping the receiver (leaving the loop) stops the reader stage.
        Ok(())
    })?;
    Ok(BulkSummary {
        accepted,
        present,
        checkpoint: ledger.reader().checkpoint(),
        refused,
    })
}
