//! Bulk append of NDJSON envelopes (`dcledger append`): one envelope per line, committed
//! in all-or-nothing batches of up to `MAX_BATCH_ENTRIES` (or `MAX_BATCH_LINE_BYTES` of
//! lines, if that comes first); a line over `MAX_LINE_BYTES` is refused without being
//! held. A refused batch stops the run;
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
use std::io::{BufRead, Read};
use std::sync::Arc;
use std::sync::mpsc;

use serde_json::Value;

use crate::dates;
use crate::ingest::{self, Prepared, Signatures};
use crate::json;
use crate::leaves;
use crate::ledger::{AfterRefusal, Ledger, LedgerError};
use crate::limits::{MAX_BATCH_ENTRIES, MAX_BATCH_LINE_BYTES, MAX_LINE_BYTES};
use crate::reject::{RejectClass, Rejection};

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

/// One line of the input, as the reader stage takes it: its text, without the line
/// ending, or why it was refused as it was read (its batch is refused at it, as at any
/// envelope that fails a check).
type Line = Result<String, BadLine>;

/// A line refused as it was read, before anything parses it.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum BadLine {
    #[error(
        "the line is longer than {MAX_LINE_BYTES} bytes, the most one envelope may take; \
         it was read past, not parsed"
    )]
    TooLong,
    #[error("the line is not UTF-8 text: {0}")]
    NotUtf8(std::str::Utf8Error),
}

impl BadLine {
    /// The refusal of the batch the line is in.
    fn rejection(&self) -> Rejection {
        match self {
            BadLine::TooLong => Rejection::new(RejectClass::TooLarge, "/", self.to_string()),
            BadLine::NotUtf8(_) => Rejection::invalid("/", self.to_string()),
        }
    }
}

/// Reads the next line of `input` and how many bytes it took from it, line ending
/// included; `None` at the end. At most `MAX_LINE_BYTES` of a line are held: a longer one
/// is read past to its end and refused. As `BufRead::lines`, a line ends at `\n` or
/// `\r\n`, and the last may end at the end of the input. Every reader of NDJSON
/// envelopes reads with it (`append`, `submit`).
pub fn read_line(
    input: &mut impl BufRead,
) -> std::io::Result<Option<(Result<String, BadLine>, u64)>> {
    let mut bytes = Vec::new();
    // The longest line, a `\r` and its `\n`: a read that ends without a `\n` is of a
    // line longer than that, or the last line of the input.
    let within = (MAX_LINE_BYTES as u64).saturating_add(2);
    let read = input.by_ref().take(within).read_until(b'\n', &mut bytes)? as u64;
    if read == 0 {
        return Ok(None);
    }
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    } else if read == within {
        let skipped = input.skip_until(b'\n')? as u64;
        return Ok(Some((Err(BadLine::TooLong), read.saturating_add(skipped))));
    }
    if bytes.len() > MAX_LINE_BYTES {
        return Ok(Some((Err(BadLine::TooLong), read)));
    }
    let line = String::from_utf8(bytes).map_err(|e| BadLine::NotUtf8(e.utf8_error()));
    Ok(Some((line, read)))
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
fn input_origin(origin: Option<String>, first_line: Option<&str>) -> Option<String> {
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
    lines: Vec<Line>,
    now: dates::UnixSeconds,
    origin: Option<&str>,
) -> Vec<Result<Prepared, Rejection>> {
    let signatures = Signatures::Verify { origin };
    // Prepare judges `ts` against this clock reading; admission re-checks it against the
    // batch's own `accepted`, which is never earlier.
    let now = now.max(dates::now());
    // A refused line is read as no bytes, which nothing takes for a canonical envelope;
    // its own refusal is given below.
    let typed = leaves::all_prepared(
        lines
            .iter()
            .map(|line| line.as_deref().map_or(&[][..], str::as_bytes)),
        now,
        signatures,
    );
    lines
        .into_iter()
        .zip(typed)
        .map(|(line, typed)| match (line, typed) {
            (Err(bad), _) => Err(bad.rejection()),
            (Ok(_), Some(prepared)) => Ok(prepared),
            (Ok(text), None) => ingest::prepare(parse_line(&text)?, now, signatures),
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
    mut input: impl BufRead,
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
        let mut start = |batch: Vec<Line>, lines, bytes_read, bytes| -> InFlight<'_> {
            let known = input_origin(
                origin.take(),
                batch.first().and_then(|line| line.as_deref().ok()),
            );
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
        for i in 0u64.. {
            let line = match read_line(&mut input) {
                Ok(line) => line,
                Err(e) => {
                    // The batches before it are sent; the lines of this one are not.
                    failed = Some(e);
                    break;
                }
            };
            // `None` after the last line: the batch it leaves, if any, is prepared too.
            let end = line.is_none();
            if let Some((line, read)) = line {
                bytes_read += read;
                let blank = line.as_deref().is_ok_and(|text| text.trim().is_empty());
                if !blank {
                    batch_bytes = batch_bytes.saturating_add(line.as_deref().map_or(0, str::len));
                    batch.push(line);
                    lines.push(i + 1);
                }
            }
            let full = batch.len() == MAX_BATCH_ENTRIES || batch_bytes >= MAX_BATCH_LINE_BYTES;
            if full || (end && !batch.is_empty()) {
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
            if end {
                break;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A line as `read_line` read it: its text or its refusal's class, and the bytes it
    /// took.
    type ReadLine = (Result<String, RejectClass>, u64);

    /// What `read_line` reads from `input`, line by line.
    fn read_all(input: &[u8]) -> Vec<ReadLine> {
        let mut input = input;
        let mut read = Vec::new();
        while let Some((line, bytes)) = read_line(&mut input).expect("a slice reads") {
            read.push((line.map_err(|bad| bad.rejection().class), bytes));
        }
        read
    }

    #[test]
    fn lines_are_read_to_their_end_and_refused_past_the_limit() {
        let at_limit = "a".repeat(MAX_LINE_BYTES);
        let over = "b".repeat(MAX_LINE_BYTES + 1);
        let max = MAX_LINE_BYTES as u64;
        let text = |s: &str| Ok(s.to_string());
        let cases: Vec<(&str, Vec<u8>, Vec<ReadLine>)> = vec![
            ("nothing", b"".to_vec(), vec![]),
            (
                "each ending, and none at the end",
                b"a\nb\r\n\nc".to_vec(),
                vec![
                    (text("a"), 2),
                    (text("b"), 3),
                    (text(""), 1),
                    (text("c"), 1),
                ],
            ),
            (
                "a line of the limit exactly",
                format!("{at_limit}\nnext\n").into_bytes(),
                vec![(text(&at_limit), max + 1), (text("next"), 5)],
            ),
            (
                "a line of the limit exactly, ended by \\r\\n",
                format!("{at_limit}\r\nnext").into_bytes(),
                vec![(text(&at_limit), max + 2), (text("next"), 4)],
            ),
            (
                "one byte over, then a line",
                format!("{over}\nnext\n").into_bytes(),
                vec![(Err(RejectClass::TooLarge), max + 2), (text("next"), 5)],
            ),
            (
                "two bytes over: read past to its end",
                format!("{over}c\r\nnext\n").into_bytes(),
                vec![(Err(RejectClass::TooLarge), max + 4), (text("next"), 5)],
            ),
            (
                "over, at the end of the input",
                over.clone().into_bytes(),
                vec![(Err(RejectClass::TooLarge), max + 1)],
            ),
            (
                "not UTF-8, then a line",
                b"\xff{}\n{}\n".to_vec(),
                vec![(Err(RejectClass::Invalid), 4), (text("{}"), 3)],
            ),
        ];
        for (what, input, expected) in cases {
            assert_eq!(read_all(&input), expected, "{what}");
        }
    }
}
