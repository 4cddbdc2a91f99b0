//! Group commit: many threads submit batches; one writer thread drains whatever is
//! waiting, admits each batch on its own, and makes all admitted ones durable with a
//! single sync and a single checkpoint. Submitters block until their batch is durable.
//!
//! Each submitter prepares its own batch (schemas, field rules, strict signatures) on
//! its own thread before queueing it: the stateless ~60 µs per entry runs on every core
//! beside the writer, which is left only the checks against ledger state and the sync.
//!
//! After a storage failure the writer stops for good (fail-stop): a failed fsync leaves
//! the page cache in an unknown state, and only a restart, which recovers from the
//! segments, can say what is durable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use super::{AfterRefusal, Ledger, LedgerError, Reader, Receipt};
use crate::dates;
use crate::ingest::Prepared;
use crate::limits::MAX_BATCH_ENTRIES;
use crate::reject::{BatchRejection, Rejection};
use crate::submission::{self, BodyError};

/// Entries one group commit takes at most, so a flood of submissions still gets
/// acknowledgements at a steady rhythm instead of one giant sync.
pub const MAX_GROUP_ENTRIES: usize = 16 * MAX_BATCH_ENTRIES;

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Rejected(#[from] BatchRejection),
    #[error("the ledger is not accepting entries: {0}")]
    Stopped(String),
    #[error(transparent)]
    Body(#[from] BodyError),
}

/// Counters of the writer, for metrics and for tests that check syncs are shared.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Group commits that wrote something (one segment sync each).
    pub commits: AtomicU64,
    pub entries: AtomicU64,
    pub batches_accepted: AtomicU64,
    pub batches_rejected: AtomicU64,
}

struct Request {
    prepared: Vec<Result<Prepared, Rejection>>,
    reply: SyncSender<Result<Receipt, SubmitError>>,
}

/// Why the writer stopped taking entries, once it has (PROTOCOL §10 `/readyz`).
type StopReason = Arc<OnceLock<String>>;

/// A cloneable way to submit batches to the writer.
#[derive(Clone)]
pub struct CommitHandle {
    tx: Sender<Request>,
    stopped: StopReason,
    /// The ledger's origin, which every signature covers (PROTOCOL §3), once genesis has
    /// fixed it; until then the batch that holds the genesis entry names it.
    origin: Arc<OnceLock<Arc<str>>>,
    reader: Reader,
}

impl CommitHandle {
    /// `None` while the writer accepts entries; after a storage failure stopped it, why.
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.get().map(String::as_str)
    }

    /// The ledger's origin, learnt from the published genesis once there is one.
    fn origin(&self) -> Result<Option<Arc<str>>, SubmitError> {
        if let Some(origin) = self.origin.get() {
            return Ok(Some(origin.clone()));
        }
        let genesis = self
            .reader
            .genesis()
            .map_err(|e| SubmitError::Stopped(e.to_string()))?;
        Ok(genesis.map(|g| self.origin.get_or_init(|| Arc::from(g.origin)).clone()))
    }

    /// Submits one all-or-nothing batch, a body as `POST /v1/entries` takes it (one
    /// envelope or an array of them), and waits until it is durable or refused. The batch
    /// is read and prepared here, on the caller's thread (and more for a large batch).
    pub fn submit(&self, body: &[u8]) -> Result<Receipt, SubmitError> {
        let origin = self.origin()?;
        // The wall clock: the writer checks each entry again against its own clock,
        // which never runs behind it.
        let prepared = submission::prepare(body, origin.as_deref(), dates::now())?;
        let (reply, answer) = mpsc::sync_channel(1);
        self.tx
            .send(Request { prepared, reply })
            .map_err(|_| SubmitError::Stopped("the writer has shut down".into()))?;
        answer
            .recv()
            .map_err(|_| SubmitError::Stopped("the writer stopped before answering".into()))?
    }
}

/// Owns the ledger's writer thread.
pub struct Committer {
    handle: Option<CommitHandle>,
    thread: Option<JoinHandle<Result<(), LedgerError>>>,
    reader: Reader,
    stats: Arc<CommitStats>,
}

impl Committer {
    pub fn start(ledger: Ledger) -> Committer {
        let (tx, rx) = mpsc::channel();
        let reader = ledger.reader();
        let stats = Arc::new(CommitStats::default());
        let thread_stats = stats.clone();
        let stopped = StopReason::default();
        let thread_stopped = stopped.clone();
        let origin = Arc::new(
            ledger
                .origin()
                .map_or_else(OnceLock::new, |o| OnceLock::from(Arc::<str>::from(o))),
        );
        let thread = std::thread::Builder::new()
            .name("dcledger-writer".into())
            .spawn(move || run(ledger, rx, &thread_stats, &thread_stopped));
        let handle = Some(CommitHandle {
            tx,
            stopped: stopped.clone(),
            origin,
            reader: reader.clone(),
        });
        match thread {
            Ok(thread) => Committer {
                handle,
                thread: Some(thread),
                reader,
                stats,
            },
            // No writer thread: every submission is answered `Stopped` when the channel's
            // receiver (dropped with the failed closure) is gone.
            Err(e) => {
                let _ = stopped.set(format!("the writer thread could not start: {e}"));
                Committer {
                    handle,
                    thread: None,
                    reader,
                    stats,
                }
            }
        }
    }

    pub fn handle(&self) -> CommitHandle {
        match &self.handle {
            Some(h) => h.clone(),
            None => unreachable!("the handle lives until shutdown consumes the committer"),
        }
    }

    pub fn reader(&self) -> Reader {
        self.reader.clone()
    }

    pub fn stats(&self) -> Arc<CommitStats> {
        self.stats.clone()
    }

    /// Stops taking work once every outstanding handle is dropped, finishes the batch in
    /// flight, flushes derived state and returns.
    pub fn shutdown(mut self) -> Result<(), LedgerError> {
        self.handle = None;
        match self.thread.take() {
            // A panic in the writer is a defect: carried to the caller, not renamed.
            Some(t) => t
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => Err(LedgerError::Stopped),
        }
    }
}

fn run(
    mut ledger: Ledger,
    rx: Receiver<Request>,
    stats: &CommitStats,
    stopped: &OnceLock<String>,
) -> Result<(), LedgerError> {
    while let Ok(first) = rx.recv() {
        let mut requests = vec![first];
        let mut entries = requests[0].prepared.len();
        while entries < MAX_GROUP_ENTRIES {
            match rx.try_recv() {
                Ok(r) => {
                    entries += r.prepared.len();
                    requests.push(r);
                }
                Err(_) => break,
            }
        }
        let (groups, replies): (Vec<_>, Vec<_>) =
            requests.into_iter().map(|r| (r.prepared, r.reply)).unzip();
        match ledger.append_prepared(groups, AfterRefusal::JudgeTheRest) {
            Ok((outcomes, checkpoint)) => {
                let mut wrote = 0;
                for (outcome, reply) in outcomes.into_iter().zip(replies) {
                    let answer = match outcome {
                        Ok(entries) => {
                            wrote += entries.iter().filter(|e| !e.already_present).count() as u64;
                            stats.batches_accepted.fetch_add(1, Ordering::Relaxed);
                            Ok(Receipt {
                                entries,
                                checkpoint: checkpoint.clone(),
                            })
                        }
                        Err(rejection) => {
                            stats.batches_rejected.fetch_add(1, Ordering::Relaxed);
                            Err(SubmitError::Rejected(rejection))
                        }
                    };
                    // A submitter that gave up waiting is no reason to stop the writer.
                    let _ = reply.send(answer);
                }
                if wrote > 0 {
                    stats.commits.fetch_add(1, Ordering::Relaxed);
                    stats.entries.fetch_add(wrote, Ordering::Relaxed);
                }
            }
            Err(e) => {
                let reason = e.to_string();
                // Before the replies: a client told 503 finds `/readyz` saying why.
                let _ = stopped.set(reason.clone());
                for reply in replies {
                    let _ = reply.send(Err(SubmitError::Stopped(reason.clone())));
                }
                return Err(e);
            }
        }
    }
    ledger.close()
}
