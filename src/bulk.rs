//! Bulk append of NDJSON envelopes (`dcledger append`): one envelope per line, committed
//! in all-or-nothing batches of up to `MAX_BATCH_ENTRIES`. A refused batch stops the run;
//! batches before it stay committed, and the refusal names the input line. A batch whose
//! envelopes are all in the ledger already is a retry (PROTOCOL §3): counted, not written, so
//! a run cut short (a crash, a kill) is finished by running it again on the same input.
//!
//! Two stages overlap: a reader thread parses and prepares (schemas, signatures) the next
//! batches, a batch a core at once, while the caller's thread admits and syncs the ones
//! before, so the signature checks and the fsyncs do not wait for each other. The writer takes every
//! batch that is ready as one group commit (one sync, one checkpoint), which stops at the
//! first refused batch.

use std::collections::VecDeque;
use std::io::BufRead;
use std::sync::Arc;
use std::sync::mpsc;

use serde_json::Value;

use crate::dates;
use crate::ingest::{self, Prepared, Signatures};
use crate::json;
use crate::leaves;
use crate::ledger::{AfterRefusal, Ledger, LedgerError};
use crate::limits::MAX_BATCH_ENTRIES;
use crate::reject::Rejection;

/// Prepared batches waiting for the writer, beside the batches being prepared (one a
/// core); bounded so a fast reader cannot run ahead of the disk with unbounded memory.
/// One: with two, and a batch a core in preparation, a million-entry append peaked at
/// 499 MB against 471 MB (BENCHMARKS.md), and no faster.
const PIPELINE_DEPTH: usize = 1;

/// Bytes of input lines that the batches in preparation may hold for the reader to start
/// one batch more than there are cores. A batch a core keeps every core busy while the
/// writer admits; while it syncs, the reader waits to hand it the oldest batch and one
/// core would idle, unless one more batch is under way. That is worth 3-4% where batches
/// are small and the signatures nearly all the work (the registry's, about 440 kB a
/// batch); a world's large batches (about 1 MB) keep the writer busy anyway, and there
/// one more batch cost 25 MB of peak RSS and no time (BENCHMARKS.md).
const LOOKAHEAD_LINE_BYTES: usize = 1536 * 1024;

/// Batches taken into one group commit at most: those the reader has ready. Measured on
/// a million entries (BENCHMARKS.md), a deeper queue and groups of up to 16 batches
/// appended no faster and raised the peak RSS from 476 MB to 596 MB.
const GROUP_BATCHES: usize = 4;

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
    Failed(std::io::Error),
}

/// One input line as an envelope: a line that is not JSON, or repeats a key in an
/// object, is refused like any envelope that fails a check, so its batch is refused whole.
fn parse_line(line: &str) -> Result<Value, Rejection> {
    json::from_str(line).map_err(|e| {
        e.duplicate_key()
            .unwrap_or_else(|| Rejection::invalid("/", e.to_string()))
    })
}

/// The origin signatures are made for: the ledger's, or for a ledger without a genesis
/// entry, the one the genesis entry that must open the input names. Batches are
/// prepared ahead of the writer, so it is taken from the input, not from the ledger.
fn input_origin(origin: Option<String>, first_line: Option<&String>) -> Option<String> {
    origin.or_else(|| {
        let first = first_line.and_then(|line| parse_line(line).ok());
        ingest::submission_origin(None, first.as_ref())
    })
}

/// Parses and prepares one batch of lines on this thread, keeping their order. A line
/// whose entry is already canonical, as signers write it, is read straight into typed
/// values (`leaves::all_prepared`: the batch's signature checks end together); any other,
/// and any that read refuses, goes through the JSON tree and `ingest::prepare`, whose
/// verdict and errors are the same.
fn prepare_lines(
    lines: Vec<String>,
    now: dates::UnixSeconds,
    origin: Option<&str>,
) -> Vec<Result<Prepared, Rejection>> {
    let signatures = Signatures::Verify { origin };
    // Prepare judges `ts` against this clock reading; admission re-checks it against the
    // batch's own `accepted`, which is never earlier.
    let now = now.max(dates::now());
    let typed = leaves::all_prepared(lines.iter().map(|line| line.as_bytes()), now, signatures);
    lines
        .iter()
        .zip(typed)
        .map(|(line, typed)| match typed {
            Some(prepared) => Ok(prepared),
            None => ingest::prepare(parse_line(line)?, now, signatures),
        })
        .collect()
}

/// A batch being prepared, with its input lines' numbers, the input read through it and
/// the bytes of its lines.
type InFlight<'scope> = (
    std::thread::ScopedJoinHandle<'scope, Vec<Result<Prepared, Rejection>>>,
    Vec<u64>,
    u64,
    usize,
);

/// Reads batches of lines and prepares them, sending each to the writer stage in input
/// order. A batch is prepared on a thread of its own, with a batch a core at once (one
/// more within `LOOKAHEAD_LINE_BYTES`): a core that finishes its batch starts the next
/// one while the others finish theirs, where a batch split over every core left the
/// cores idle at its end while its slowest share finished (the writer's thread takes
/// turns on one of them).
/// `origin` is the ledger's (`None` before its genesis entry, which the input must then
/// open with).
fn read_stage(
    input: impl BufRead,
    now: dates::UnixSeconds,
    mut origin: Option<String>,
    tx: mpsc::SyncSender<Chunk>,
) {
    // One thread a core.
    let cores = crate::parallel::threads_for(usize::MAX, 1);
    std::thread::scope(|scope| {
        let mut in_flight: VecDeque<InFlight<'_>> = VecDeque::with_capacity(cores + 1);
        // Sends a batch once it is prepared; false once the writer has stopped.
        let send = |(prepared, lines, bytes_read, _): InFlight<'_>| {
            tx.send(Chunk::Batch {
                prepared: crate::parallel::joined(prepared),
                lines,
                bytes_read,
            })
            .is_ok()
        };
        let mut start = |batch: Vec<String>, lines, bytes_read, bytes| -> InFlight<'_> {
            let known = input_origin(origin.take(), batch.first());
            origin.clone_from(&known);
            let prepared = scope.spawn(move || {
                crate::parallel::run_behind(
                    crate::parallel::WORKING_AHEAD_NICENESS,
                    "a batch's preparation",
                );
                prepare_lines(batch, now, known.as_deref())
            });
            (prepared, lines, bytes_read, bytes)
        };
        let mut batch = Vec::with_capacity(MAX_BATCH_ENTRIES);
        let mut lines = Vec::with_capacity(MAX_BATCH_ENTRIES);
        let mut bytes_read = 0u64;
        let mut batch_bytes = 0usize;
        let mut failed = None;
        // `None` after the last line: the batch it leaves, if any, is prepared too.
        let input = input.lines().map(Some).chain(std::iter::once(None));
        for (i, line) in input.enumerate() {
            let end = line.is_none();
            if let Some(line) = line {
                let line = match line {
                    Ok(l) => l,
                    Err(e) => {
                        // The batches before it are sent; the lines of this one are not.
                        failed = Some(e);
                        break;
                    }
                };
                bytes_read += line.len() as u64 + 1;
                if !line.trim().is_empty() {
                    batch_bytes = batch_bytes.saturating_add(line.len());
                    batch.push(line);
                    lines.push(i as u64 + 1);
                }
            }
            if batch.len() == MAX_BATCH_ENTRIES || (end && !batch.is_empty()) {
                let bytes = |f: &VecDeque<InFlight<'_>>| f.iter().map(|b| b.3).sum::<usize>();
                let within = |f: &VecDeque<InFlight<'_>>| {
                    f.len() < cores
                        || (f.len() == cores
                            && bytes(f).saturating_add(batch_bytes) <= LOOKAHEAD_LINE_BYTES)
                };
                while !within(&in_flight) {
                    let Some(done) = in_flight.pop_front() else {
                        unreachable!("a batch a core is within the lookahead");
                    };
                    if !send(done) {
                        return; // the writer stopped
                    }
                }
                in_flight.push_back(start(
                    std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH_ENTRIES)),
                    std::mem::replace(&mut lines, Vec::with_capacity(MAX_BATCH_ENTRIES)),
                    bytes_read,
                    std::mem::take(&mut batch_bytes),
                ));
            }
        }
        while let Some(done) = in_flight.pop_front() {
            if !send(done) {
                return;
            }
        }
        if let Some(e) = failed {
            let _ = tx.send(Chunk::Failed(e));
        }
    });
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
        // A chunk taken while gathering a group that must wait until the group is done.
        let mut held: Option<Chunk> = None;
        loop {
            let chunk = match held.take() {
                Some(chunk) => chunk,
                None => match rx.recv() {
                    Ok(chunk) => chunk,
                    Err(mpsc::RecvError) => break, // the reader stage is done
                },
            };
            let (first, first_lines, first_read) = match chunk {
                Chunk::Batch {
                    prepared,
                    lines,
                    bytes_read,
                } => (prepared, lines, bytes_read),
                Chunk::Failed(e) => return Err(BulkError::Read(e)),
            };
            // The batches the reader has ready join one group commit (up to
            // `GROUP_BATCHES`): one sync, one checkpoint and one derived commit for them
            // all, while the batches stay all-or-nothing each.
            let mut batches = vec![first];
            let mut read = vec![(first_lines, first_read)];
            while batches.len() < GROUP_BATCHES {
                match rx.try_recv() {
                    Ok(Chunk::Batch {
                        prepared,
                        lines,
                        bytes_read,
                    }) => {
                        batches.push(prepared);
                        read.push((lines, bytes_read));
                    }
                    Ok(other) => {
                        held = Some(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
            let (outcomes, _) = ledger.append_prepared(batches, AfterRefusal::Stop)?;
            let mut durable_read = None;
            for (outcome, (lines, bytes_read)) in outcomes.into_iter().zip(read) {
                match outcome {
                    Ok(entries) => {
                        let n = entries.len() as u64;
                        match entries.first() {
                            Some(e) if e.already_present => present += n,
                            _ => accepted += n,
                        }
                        durable_read = Some(bytes_read);
                    }
                    Err(refusal) => {
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
                    }
                }
            }
            if let Some(bytes_read) = durable_read {
                progress(Progress {
                    bytes_read,
                    accepted,
                    present,
                    checkpoint: ledger.checkpoint(),
                });
            }
            if refused.is_some() {
                break;
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
