//! Asking witnesses to cosign the ledger's checkpoints (PROTOCOL §12.2, C2SP
//! tlog-witness from the log's side).
//!
//! One thread per `[[witness]]` watches the latest checkpoint and sends each new one with
//! a consistency proof from the size that witness last cosigned, which it learns from
//! the witness's 200 answers and, when it does not know it (at start), from a 409. No
//! acknowledgement waits for a witness: a witness that is down or hung only delays its
//! own next cosignature.
//!
//! Cosignatures cannot be rebuilt from the segments, so they are kept beside them:
//! `DIR/witnessed` holds the latest checkpoint note with every cosignature gathered for
//! it (replaced atomically; what `GET /checkpoint` and `GET /v1/checkpoint` serve once it
//! matches the latest checkpoint), and `DIR/cosignatures` keeps every cosignature ever
//! returned, one line each, `<tree size> <signature line>` (the tree gives the root of
//! any size, so each line can be checked again later). Losing them loses evidence,
//! never an entry.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::{LedgerError, Reader};
use crate::config::WitnessConfig;
use crate::limits::{
    MAX_WITNESS_ANSWER_BYTES, WITNESS_POLL_MS, WITNESS_REQUEST_TIMEOUT_MS, WITNESS_RETRY_MS,
};
use crate::log::checkpoint::{self, Checkpoint};
use crate::log::cosignature::AddCheckpoint;
use crate::log::tiles::{Durable, write_atomically};

/// The latest checkpoint witnesses cosigned, with the cosignatures.
pub const WITNESSED_FILE: &str = "witnessed";

/// Every cosignature returned, one `<size> <line>` per line.
pub const COSIGNATURES_FILE: &str = "cosignatures";

/// Why a witness gave no cosignature this time.
#[derive(Debug, thiserror::Error)]
pub enum WitnessingError {
    #[error("{url}: {reason}")]
    Request { url: String, reason: String },
    #[error("{url} answered {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
    #[error(
        "{url} has cosigned a tree of size {witnessed}, larger than this ledger's {size}: the ledger was rolled back (restored from an old copy?) or forked"
    )]
    Ahead {
        url: String,
        witnessed: u64,
        size: u64,
    },
    #[error(
        "{url} cosigned another tree of size {size}: this ledger's history differs from one it showed before"
    )]
    Forked { url: String, size: u64 },
    #[error("{url} answered no valid cosignature by {name}")]
    NoCosignature { url: String, name: String },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The witnessing threads of one ledger; they stop when this is dropped.
pub struct Witnessing {
    stop: Arc<AtomicBool>,
}

impl Drop for Witnessing {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What the threads share: where cosignatures are kept, one writer at a time.
struct Keeper {
    dir: PathBuf,
    turn: Mutex<()>,
}

/// Starts one thread per witness over `reader`'s checkpoints. The threads are not joined:
/// one may be inside a request to a hung witness, and nothing waits for them.
pub fn start(reader: Reader, dir: PathBuf, witnesses: Vec<WitnessConfig>) -> Witnessing {
    let stop = Arc::new(AtomicBool::new(false));
    let keeper = Arc::new(Keeper {
        dir,
        turn: Mutex::new(()),
    });
    for witness in witnesses {
        let url = witness.url.clone();
        let (reader, keeper, stop) = (reader.clone(), keeper.clone(), stop.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("witness {}", witness.verifier.name()))
            .spawn(move || follow(&reader, &keeper, &witness, &stop));
        if let Err(e) = spawned {
            tracing::error!("no thread to ask the witness at {url}: {e}");
        }
    }
    Witnessing { stop }
}

/// Asks every witness once, all at the same time, to cosign `reader`'s latest checkpoint,
/// and keeps each cosignature returned, as `start`'s threads do for a server: how a writer
/// that ends (`dcledger append`) has its last checkpoint witnessed. Each witness is given
/// at most two requests (a second after a 409 names the size it holds), each bounded by
/// `WITNESS_REQUEST_TIMEOUT_MS`. Returns, witness by witness in the order given, the tree
/// size cosigned or why there is no cosignature: the caller's entries are durable
/// whatever the witnesses answer.
pub fn ask_once(
    reader: &Reader,
    dir: PathBuf,
    witnesses: &[WitnessConfig],
) -> Vec<Result<u64, WitnessingError>> {
    let keeper = Keeper {
        dir,
        turn: Mutex::new(()),
    };
    let note = reader.checkpoint();
    std::thread::scope(|scope| {
        let asking: Vec<_> = witnesses
            .iter()
            .map(|witness| {
                let (keeper, note) = (&keeper, &note);
                scope.spawn(move || {
                    let (size, line) = ask(&agent(), reader, witness, note, &mut None)?;
                    keeper.keep(reader, note, size, witness, &line)?;
                    Ok(size)
                })
            })
            .collect();
        asking
            .into_iter()
            .map(|asked| {
                asked
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
            .collect()
    })
}

/// A witness's thread: sends each new checkpoint until told to stop.
fn follow(reader: &Reader, keeper: &Keeper, witness: &WitnessConfig, stop: &AtomicBool) {
    let agent = agent();
    // The size this witness last cosigned, once known.
    let mut known: Option<u64> = None;
    let mut sent: Option<Arc<str>> = None;
    while !stop.load(Ordering::Relaxed) {
        let note = reader.checkpoint();
        if note.is_empty() || sent.as_ref() == Some(&note) {
            std::thread::sleep(Duration::from_millis(WITNESS_POLL_MS));
            continue;
        }
        match ask(&agent, reader, witness, &note, &mut known) {
            Ok((size, line)) => {
                if let Err(e) = keeper.keep(reader, &note, size, witness, &line) {
                    tracing::error!("keeping a cosignature of {}: {e}", witness.url);
                }
                sent = Some(note);
            }
            Err(e) => {
                tracing::warn!("witness: {e}");
                std::thread::sleep(Duration::from_millis(WITNESS_RETRY_MS));
            }
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_millis(WITNESS_REQUEST_TIMEOUT_MS)))
        .build()
        .into()
}

/// Asks one witness to cosign `note`: the size and the cosignature line.
fn ask(
    agent: &ureq::Agent,
    reader: &Reader,
    witness: &WitnessConfig,
    note: &str,
    known: &mut Option<u64>,
) -> Result<(u64, String), WitnessingError> {
    let body: Checkpoint = checkpoint::own_note_body(note).map_err(|e| {
        LedgerError::Verify(format!("the ledger's own checkpoint is unreadable: {e}"))
    })?;
    let url = format!("{}/add-checkpoint", witness.url);
    // At most twice: once from what is known, once more from the size a 409 gave.
    for _ in 0..2 {
        let old = known.unwrap_or(0);
        if old > body.size {
            return Err(WitnessingError::Ahead {
                url,
                witnessed: old,
                size: body.size,
            });
        }
        let proof = if old == 0 || old == body.size {
            Vec::new()
        } else {
            reader.consistency(old, body.size)?.hashes
        };
        let request = AddCheckpoint {
            old_size: old,
            proof,
            note: note.to_string(),
        };
        let (status, answer) = post(agent, &url, request.encode())?;
        match status {
            200 => {
                let text = body.body();
                let line = answer
                    .lines()
                    .find(|line| matches!(witness.verifier.check_line(&text, line), Ok(Some(_))))
                    .ok_or_else(|| WitnessingError::NoCosignature {
                        url: url.clone(),
                        name: witness.verifier.name().to_string(),
                    })?;
                *known = Some(body.size);
                return Ok((body.size, line.to_string()));
            }
            409 => {
                let Some(size) = answer.strip_suffix('\n').and_then(checkpoint::parse_size) else {
                    return Err(refused(url, status, &answer));
                };
                if size == old {
                    // Same size as sent, so the roots differ: the witness saw another tree.
                    return Err(WitnessingError::Forked { url, size });
                }
                *known = Some(size);
            }
            _ => return Err(refused(url, status, &answer)),
        }
    }
    Err(WitnessingError::Request {
        url,
        reason: "it answered 409 twice with different sizes".into(),
    })
}

fn refused(url: String, status: u16, body: &str) -> WitnessingError {
    WitnessingError::Refused {
        url,
        status,
        body: checkpoint::excerpt(body.trim_end()),
    }
}

/// POSTs `body` to `url`: the status and the answer's text.
fn post(agent: &ureq::Agent, url: &str, body: String) -> Result<(u16, String), WitnessingError> {
    let failed = |reason: String| WitnessingError::Request {
        url: url.to_string(),
        reason,
    };
    let mut response = agent
        .post(url)
        .content_type("text/plain; charset=utf-8")
        .send(body)
        .map_err(|e| failed(e.to_string()))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_WITNESS_ANSWER_BYTES)
        .read_to_string()
        .map_err(|e| failed(format!("reading its answer: {e}")))?;
    Ok((status, text))
}

impl Keeper {
    /// Records `line`, the cosignature by `witness` of `note` (of tree size `size`): in
    /// the log of every cosignature, and in `witnessed` beside the others of `note`.
    fn keep(
        &self,
        reader: &Reader,
        note: &str,
        size: u64,
        witness: &WitnessConfig,
        line: &str,
    ) -> Result<(), LedgerError> {
        let io = |path: PathBuf| move |source| LedgerError::Io { path, source };
        let _turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
        let log_path = self.dir.join(COSIGNATURES_FILE);
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(log_path.clone()))?;
        writeln!(log, "{size} {line}").map_err(io(log_path))?;

        // What the file holds (this process is its one writer while the ledger is open),
        // or nothing before the first cosignature.
        let held = reader.witnessed();
        let held = held.as_deref().unwrap_or("");
        // The cosignatures `witnessed` keeps beside this one: those of the same note. A
        // note of a larger tree there stays (this cosignature is then only in the log);
        // an older one, or none, is replaced.
        let others = if let Some(lines) = held.strip_prefix(note) {
            lines
        } else if checkpoint::own_note_body(held).is_ok_and(|c| c.size > size) {
            return Ok(());
        } else {
            ""
        };
        let own = format!("{}{} ", checkpoint::SIG_PREFIX, witness.verifier.name());
        let mut text = note.to_string();
        for l in others.lines().filter(|l| !l.starts_with(&own)) {
            text.push_str(l);
            text.push('\n');
        }
        text.push_str(line);
        text.push('\n');
        write_atomically(
            &self.dir.join(WITNESSED_FILE),
            text.as_bytes(),
            Durable::Content,
        )?;
        reader.set_witnessed(Arc::from(text));
        Ok(())
    }
}
