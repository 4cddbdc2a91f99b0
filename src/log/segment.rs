//! The source of truth: leaves in append-only segment files (PROTOCOL §11–12).
//!
//! A segment is `segments/<first index, 20 digits>.seg`: a 16-byte header (magic with
//! format version, then the first leaf index) followed by records
//!
//! ```text
//! u32 LE  leaf length
//! u8      flags            (bit 0: last record of a batch)
//! u64 LE  leaf index
//! [len]   leaf bytes
//! [32]    BLAKE3 of everything above
//! ```
//!
//! The checksum covers the record's index, so a record copied to the wrong place is as
//! detectable as a flipped bit; the index in the header also lets recovery find intact
//! records after damage, which is how damage in the middle is told from a torn tail. A batch is written with one `write` and made durable with
//! one `fdatasync` before anyone is told it was accepted; only its last record carries the
//! batch flag, so recovery can drop an incomplete batch whole and an unacknowledged entry
//! is either wholly present or wholly absent.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::limits::{MAX_LEAF_BYTES, SCAN_WINDOW_BYTES, SEGMENT_TARGET_BYTES};
use crate::owner_only;

/// The directory of a data directory that holds the segments.
pub const SEGMENTS_DIR: &str = "segments";

const MAGIC: &[u8; 8] = b"DCLSEG\x00\x01";
const HEADER_BYTES: u64 = 16;
const RECORD_HEADER: usize = 4 + 1 + 8;
const RECORD_OVERHEAD: u64 = RECORD_HEADER as u64 + 32;
const FLAG_BATCH_END: u8 = 1;

/// Where one leaf lives. Kept in derived state so reads need no scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordLocation {
    /// The first leaf index of the segment, which names its file.
    pub segment: u64,
    /// Byte offset of the record header within the segment file.
    pub offset: u64,
    pub leaf_len: u32,
}

impl RecordLocation {
    /// Offset just past this record.
    pub fn end(&self) -> u64 {
        self.offset + RECORD_OVERHEAD + u64::from(self.leaf_len)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("segment storage I/O failed on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "leaf {index} is corrupt in {path} at byte {offset}: {reason}; the segment was changed \
         or damaged outside dcledger. Restore it from a backup; nothing after it is served"
    )]
    Corrupt {
        index: u64,
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// Leaves counted acknowledged are not in the segments at all (where `Corrupt` is a
    /// record that is there, damaged).
    #[error(
        "{acknowledged} leaves were acknowledged (derived state or the last signed \
         checkpoint counts them), but the segments in {dir} hold none from leaf {end} on: \
         {why}. Restore the segments from a backup; a tree without leaves it signed is \
         never signed"
    )]
    Missing {
        /// The first leaf missing.
        end: u64,
        acknowledged: u64,
        dir: PathBuf,
        why: String,
    },
    #[error("segment {path} is not a dcledger segment: {reason}")]
    BadSegment { path: PathBuf, reason: String },
    #[error("the segments at {path} were opened to read; a reader never appends")]
    ReadOnly { path: PathBuf },
}

/// What opening the log found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes of an incomplete final batch that were cut off the last segment.
    pub trimmed_bytes: u64,
    /// Records of that batch that were complete but unacknowledged, dropped with it.
    pub trimmed_records: u64,
}

struct Segment {
    first_index: u64,
    path: PathBuf,
}

/// The append-only log of leaves. One writer; reads use positional I/O.
pub struct SegmentLog {
    dir: PathBuf,
    segments: Vec<Segment>,
    active: File,
    active_len: u64,
    size: u64,
    /// Opened by `open_read_only`: its first `size` leaves are read, nothing is written.
    read_only: bool,
}

/// A place in the log: where leaf `index` starts (or would start), as a byte `offset` in
/// the segment whose first leaf is `segment`. Derived state keeps the log's end position
/// so that `open` scans only what follows it instead of every byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub index: u64,
    pub segment: u64,
    pub offset: u64,
}

impl Position {
    /// Where leaf 0 starts.
    pub const START: Position = Position {
        index: 0,
        segment: 0,
        offset: HEADER_BYTES,
    };
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SegmentError + '_ {
    move |source| SegmentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Why leaves are missing from segments whose last file, `path`, ends whole at byte `end`.
fn cut_short_or_later_deleted(path: &Path, end: u64) -> String {
    format!(
        "the last segment file, {}, ends there (at byte {end}), so a segment file after it \
         was deleted, or it was cut short, outside dcledger",
        path.display()
    )
}

fn segment_name(first_index: u64) -> String {
    format!("{first_index:020}.seg")
}

fn record_header(index: u64, len: u32, flags: u8) -> [u8; RECORD_HEADER] {
    let mut h = [0u8; RECORD_HEADER];
    h[..4].copy_from_slice(&len.to_le_bytes());
    h[4] = flags;
    h[5..].copy_from_slice(&index.to_le_bytes());
    h
}

fn checksum(header: &[u8], leaf: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(header);
    h.update(leaf);
    *h.finalize().as_bytes()
}

/// Appends one encoded record for `leaf` at `index` to `out`.
fn encode_record(out: &mut Vec<u8>, index: u64, leaf: &[u8], flags: u8) {
    debug_assert!(leaf.len() <= MAX_LEAF_BYTES);
    let header = record_header(index, leaf.len() as u32, flags);
    out.extend_from_slice(&header);
    out.extend_from_slice(leaf);
    out.extend_from_slice(&checksum(&header, leaf));
}

/// Syncs a directory so that a file created or renamed in it survives power loss.
fn sync_dir(dir: &Path) -> Result<(), SegmentError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Result of decoding the record at one position of a segment's bytes.
enum Decoded {
    Ok {
        leaf_len: u32,
        flags: u8,
    },
    /// Not enough bytes left for the record its header announces.
    Short,
    Bad(String),
}

fn decode_at(bytes: &[u8], pos: usize, index: u64) -> Decoded {
    match frame_at(bytes, pos, index) {
        Decoded::Ok { leaf_len, .. } if !checksum_holds(bytes, pos, leaf_len) => {
            Decoded::Bad(CHECKSUM_MISMATCH.into())
        }
        framed => framed,
    }
}

const CHECKSUM_MISMATCH: &str = "checksum mismatch";

/// `decode_at` but for the checksum: the record's header is whole and sound, and its
/// leaf and checksum are within `bytes`.
fn frame_at(bytes: &[u8], pos: usize, index: u64) -> Decoded {
    let Some(header) = bytes.get(pos..pos + RECORD_HEADER) else {
        return Decoded::Short;
    };
    let leaf_len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let flags = header[4];
    let mut stored_index = [0u8; 8];
    stored_index.copy_from_slice(&header[5..]);
    let stored_index = u64::from_le_bytes(stored_index);
    if leaf_len as usize > MAX_LEAF_BYTES {
        return Decoded::Bad(format!("length field {leaf_len} exceeds the leaf limit"));
    }
    if flags & !FLAG_BATCH_END != 0 {
        return Decoded::Bad(format!("unknown flag bits {flags:#04x}"));
    }
    if stored_index != index {
        return Decoded::Bad(format!("record says it is leaf {stored_index}"));
    }
    let leaf_end = pos + RECORD_HEADER + leaf_len as usize;
    if bytes.len() < leaf_end + 32 {
        return Decoded::Short;
    }
    Decoded::Ok { leaf_len, flags }
}

/// Whether the checksum of the record `frame_at` accepted at `pos` holds.
fn checksum_holds(bytes: &[u8], pos: usize, leaf_len: u32) -> bool {
    let leaf_end = pos + RECORD_HEADER + leaf_len as usize;
    checksum(
        &bytes[pos..pos + RECORD_HEADER],
        &bytes[pos + RECORD_HEADER..leaf_end],
    ) == bytes[leaf_end..leaf_end + 32]
}

/// A record whose header `frame_at` accepted.
struct Framed {
    pos: usize,
    leaf_len: u32,
    flags: u8,
}

impl Framed {
    /// Where the record after it starts.
    fn end(&self) -> usize {
        self.pos + RECORD_OVERHEAD as usize + self.leaf_len as usize
    }
}

/// Records framed per thread below which their checksums are checked on one thread.
const CHECKSUMS_PER_THREAD: usize = 1024;

/// Records a scan checks before visiting them (`SegmentLog::scan`).
const SCAN_WINDOW_RECORDS: u64 = 4096;

const _: () = assert!(
    SCAN_WINDOW_BYTES as u64 >= RECORD_OVERHEAD + MAX_LEAF_BYTES as u64,
    "a scan's window holds the largest record whole"
);

/// The records of `bytes` from `pos` (leaf `index`) to byte `end` or leaf `until`,
/// whichever comes first, as `decode_at` judges them one after another: those before
/// the first that fails, and that one's index, position and failure. The headers are
/// walked in order (each says where the next record starts); the checksums, almost all
/// of the cost, are then checked on every core: opening a ledger checks its whole
/// active segment, and every replay every segment it reads. Records of leaves below
/// `proven` are framed only: their checksums are not checked (`SegmentLog::scan_proven`).
fn checked_records(
    bytes: &[u8],
    mut pos: usize,
    mut index: u64,
    end: usize,
    until: u64,
    proven: u64,
) -> (Vec<Framed>, Option<(u64, usize, Decoded)>) {
    let first = index;
    let mut framed = Vec::new();
    let mut failed = None;
    while pos < end && index < until {
        match frame_at(bytes, pos, index) {
            Decoded::Ok { leaf_len, flags } => {
                let record = Framed {
                    pos,
                    leaf_len,
                    flags,
                };
                pos = record.end();
                framed.push(record);
                index += 1;
            }
            failure => {
                failed = Some((index, pos, failure));
                break;
            }
        }
    }
    // The framed records of proven leaves come first.
    let unchecked =
        usize::try_from(proven.saturating_sub(first)).map_or(framed.len(), |n| n.min(framed.len()));
    let holds = crate::parallel::map(
        framed[unchecked..].iter().collect(),
        CHECKSUMS_PER_THREAD,
        |r| checksum_holds(bytes, r.pos, r.leaf_len),
    );
    // A record whose checksum fails comes before any whose header does.
    if let Some(bad) = holds.iter().position(|holds| !holds).map(|b| unchecked + b) {
        failed = Some((
            first + bad as u64,
            framed[bad].pos,
            Decoded::Bad(CHECKSUM_MISMATCH.into()),
        ));
        framed.truncate(bad);
    }
    (framed, failed)
}

/// Why a record `decode_at` did not accept is damaged.
fn failure_reason(failure: Decoded) -> String {
    match failure {
        Decoded::Short => "record is cut short".into(),
        Decoded::Bad(reason) => reason,
        Decoded::Ok { .. } => unreachable!("a record accepted is no failure"),
    }
}

/// The leaf of a record that `decode_at` accepted at `pos`.
fn leaf_at(bytes: &[u8], pos: usize, leaf_len: u32) -> &[u8] {
    &bytes[pos + RECORD_HEADER..pos + RECORD_HEADER + leaf_len as usize]
}

/// Is there any intact record, for a leaf after `bad_index`, anywhere after `bad_pos`?
/// A torn tail is a prefix of one batch, possibly with unwritten holes: nothing intact
/// can follow the damage. Anything intact after it means the middle of the log changed.
/// Checks every byte offset, because the damage may have destroyed the length field
/// that would say where the next record starts; the header's index keeps this cheap.
fn intact_record_after(bytes: &[u8], bad_pos: usize, bad_index: u64) -> bool {
    let max_index = bad_index + (bytes.len() / RECORD_OVERHEAD as usize) as u64 + 1;
    (bad_pos + 1..bytes.len().saturating_sub(RECORD_OVERHEAD as usize - 1)).any(|pos| {
        let mut index = [0u8; 8];
        index.copy_from_slice(&bytes[pos + 5..pos + RECORD_HEADER]);
        let index = u64::from_le_bytes(index);
        index > bad_index
            && index <= max_index
            && matches!(decode_at(bytes, pos, index), Decoded::Ok { .. })
    })
}

/// A segment file read from `offset` up to `limit` a window of `SCAN_WINDOW_BYTES` at a
/// time into one buffer, reused from window to window (and by a scan from file to file);
/// the record a window's edge cuts is carried into the next. A segment read whole into a
/// buffer of its own was 64 MiB of memory fresh from the kernel for every segment a
/// replay read and every open. Scans and the check of the active segment on opening
/// (`check_active`) both read through it.
struct Windows<'a> {
    file: &'a mut File,
    path: &'a Path,
    /// Where in the file the window's first byte lies.
    offset: u64,
    limit: u64,
    window: &'a mut Vec<u8>,
}

/// How far a window filled by `Windows::fill` reaches.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Not to `limit`: the file goes on past it.
    Inner,
    /// To `limit`.
    Limit,
    /// The file ends before `limit`: what is missing is cut short, as a torn tail is.
    ShortFile,
}

impl<'a> Windows<'a> {
    fn new(
        file: &'a mut File,
        path: &'a Path,
        offset: u64,
        limit: u64,
        window: &'a mut Vec<u8>,
    ) -> Result<Windows<'a>, SegmentError> {
        file.seek(SeekFrom::Start(offset)).map_err(io_err(path))?;
        window.clear();
        Ok(Windows {
            file,
            path,
            offset,
            limit,
            window,
        })
    }

    /// Whether bytes before `limit` are still to be read.
    fn more(&self) -> bool {
        self.offset < self.limit
    }

    /// Reads on until the window holds `SCAN_WINDOW_BYTES` or reaches `limit`.
    fn fill(&mut self) -> Result<Reach, SegmentError> {
        let wanted = (self.limit - self.offset).min(SCAN_WINDOW_BYTES as u64) as usize;
        if self.window.len() < wanted {
            (&mut *self.file)
                .take((wanted - self.window.len()) as u64)
                .read_to_end(self.window)
                .map_err(io_err(self.path))?;
        }
        Ok(if self.window.len() < wanted {
            Reach::ShortFile
        } else if self.offset + self.window.len() as u64 >= self.limit {
            Reach::Limit
        } else {
            Reach::Inner
        })
    }

    fn bytes(&self) -> &[u8] {
        self.window
    }

    /// Moves past the window's first `judged` bytes, whole records the caller is done
    /// with.
    fn advance(&mut self, judged: usize) {
        // A window holds the largest record whole, so one that does not reach `limit`
        // holds at least one whole record before any record its edge cuts.
        assert!(
            judged > 0,
            "every window moves the read on by a record or more"
        );
        self.window.drain(..judged);
        self.offset += judged as u64;
    }
}

/// What opening a log finds in its active segment (`check_active`).
struct ActiveChecked {
    /// Leaves up to the end of the last whole batch, and the file offset where it ends.
    committed: (u64, u64),
    /// Leaves up to the first record that fails, or all of them.
    framed: u64,
    /// The first record that fails, if any: its index, file offset and what is wrong.
    damaged: Option<(u64, u64, String)>,
}

/// Checks every record of the active segment `file` (its header checked, `file_len`
/// bytes long, its first leaf `first_index`) in order, a window at a time (`Windows`);
/// those of leaves below `proven` are framed only, their checksums not checked
/// (`checked_records`).
fn check_active(
    file: &mut File,
    path: &Path,
    first_index: u64,
    file_len: u64,
    proven: u64,
) -> Result<ActiveChecked, SegmentError> {
    let mut checked = ActiveChecked {
        committed: (first_index, HEADER_BYTES),
        framed: first_index,
        damaged: None,
    };
    let mut window = Vec::with_capacity(SCAN_WINDOW_BYTES);
    let mut windows = Windows::new(file, path, HEADER_BYTES, file_len, &mut window)?;
    while windows.more() {
        let reach = windows.fill()?;
        let bytes = windows.bytes();
        let (records, failed) =
            checked_records(bytes, 0, checked.framed, bytes.len(), u64::MAX, proven);
        let mut pos = 0;
        for r in records {
            checked.framed += 1;
            pos = r.end();
            if r.flags & FLAG_BATCH_END != 0 {
                checked.committed = (checked.framed, windows.offset + pos as u64);
            }
        }
        match failed {
            // The window ends inside this record; the next one holds it whole.
            Some((_, _, Decoded::Short)) if reach == Reach::Inner => {}
            Some((index, at, failure)) => {
                let offset = windows.offset + at as u64;
                checked.damaged = Some((index, offset, failure_reason(failure)));
                break;
            }
            None if reach != Reach::Inner => break,
            // The window ends where a record does; the file goes on.
            None => {}
        }
        windows.advance(pos);
    }
    Ok(checked)
}

/// The segment files under `dir`, by first leaf index (no check of their order).
fn list_segments(dir: &Path) -> Result<Vec<Segment>, SegmentError> {
    let mut segments = Vec::new();
    for item in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let item = item.map_err(io_err(dir))?;
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".seg") else {
            continue;
        };
        let first_index = stem.parse::<u64>().map_err(|_| SegmentError::BadSegment {
            path: item.path(),
            reason: "file name is not a leaf index".into(),
        })?;
        segments.push(Segment {
            first_index,
            path: item.path(),
        });
    }
    segments.sort_by_key(|s| s.first_index);
    Ok(segments)
}

/// The segments must start at leaf 0 and never overlap.
fn check_order(segments: &[Segment]) -> Result<(), SegmentError> {
    if let Some(first) = segments.first()
        && first.first_index != 0
    {
        return Err(SegmentError::BadSegment {
            path: first.path.clone(),
            reason: "the first segment must start at leaf 0; earlier segments are missing".into(),
        });
    }
    for pair in segments.windows(2) {
        if pair[1].first_index <= pair[0].first_index {
            return Err(SegmentError::BadSegment {
                path: pair[1].path.clone(),
                reason: "segments overlap".into(),
            });
        }
    }
    Ok(())
}

impl SegmentLog {
    /// Opens the log under `dir/segments` to read its first `size` leaves only: no file
    /// is created, trimmed or written, so it serves a reader beside the writer (which
    /// only appends past them) and a read-only copy. Appending to it is refused.
    pub fn open_read_only(dir: &Path, size: u64) -> Result<SegmentLog, SegmentError> {
        let dir = dir.join(SEGMENTS_DIR);
        let segments = list_segments(&dir)?;
        check_order(&segments)?;
        let last = segments.last().ok_or_else(|| SegmentError::Missing {
            end: 0,
            acknowledged: size,
            dir: dir.clone(),
            why: "no segment file is left".into(),
        })?;
        let mut file = File::open(&last.path).map_err(io_err(&last.path))?;
        check_header(&mut file, &last.path, last.first_index)?;
        let active_len = file.metadata().map_err(io_err(&last.path))?.len();
        Ok(SegmentLog {
            dir,
            segments,
            active: file,
            active_len,
            size,
            read_only: true,
        })
    }

    /// Opens (creating if needed) the log under `dir/segments`, trimming an incomplete
    /// final batch. `durable_floor` is the number of leaves known to be acknowledged
    /// (derived state applied them, or the last signed checkpoint counts them): damage to
    /// them is corruption, never a torn tail, and so is their absence.
    pub fn open(dir: &Path, durable_floor: u64) -> Result<(SegmentLog, Recovery), SegmentError> {
        SegmentLog::open_proven(dir, durable_floor, 0)
    }

    /// `open`, but the active segment's records of leaves below `proven` (at most
    /// `durable_floor`) are framed only, their checksums not checked: for a caller that
    /// holds those leaves to a signed root before it uses any (a trusted replay,
    /// `SegmentLog::scan_proven`), which refuses a damaged one. Those checksums were
    /// about 3% of a trusted rebuild's time, on one core at its start.
    pub fn open_proven(
        dir: &Path,
        durable_floor: u64,
        proven: u64,
    ) -> Result<(SegmentLog, Recovery), SegmentError> {
        assert!(
            proven <= durable_floor,
            "leaves proven by a signed root were acknowledged"
        );
        let dir = dir.join(SEGMENTS_DIR);
        // The owner's only, whatever the umask (PROTOCOL §11).
        owner_only::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut segments = list_segments(&dir)?;
        if segments.is_empty() {
            let path = dir.join(segment_name(0));
            // A new log; one whose acknowledged leaves are all gone is not begun anew.
            if durable_floor > 0 {
                return Err(SegmentError::Missing {
                    end: 0,
                    acknowledged: durable_floor,
                    dir,
                    why: "no segment file is left".into(),
                });
            }
            create_segment(&path, 0)?;
            sync_dir(&dir)?;
            segments.push(Segment {
                first_index: 0,
                path,
            });
        }
        check_order(&segments)?;

        // The whole active segment is checked on every open (at most
        // SEGMENT_TARGET_BYTES): that is where a torn tail can be, and damage to recent,
        // acknowledged records is found now rather than on some later read (or by the
        // root the caller holds the proven ones to).
        let last = segments.len() - 1;
        let start_index = segments[last].first_index;
        let path = segments[last].path.clone();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        check_header(&mut file, &path, start_index)?;
        let file_len = file.metadata().map_err(io_err(&path))?.len();
        let checked = check_active(&mut file, &path, start_index, file_len, proven)?;
        // End of the last complete batch seen, as (leaves, file offset).
        let committed = checked.committed;

        if let Some((bad_index, bad_offset, reason)) = checked.damaged {
            let corrupt = || SegmentError::Corrupt {
                index: bad_index,
                path: path.clone(),
                offset: bad_offset,
                reason: reason.clone(),
            };
            // An acknowledged leaf can never be a torn write.
            if bad_index < durable_floor {
                return Err(corrupt());
            }
            // Intact records after the damage mean the middle of the log was changed.
            // Read only when there is damage (after a crash, a torn tail): the rest of
            // the segment, at most SEGMENT_TARGET_BYTES.
            let mut rest = Vec::new();
            file.seek(SeekFrom::Start(bad_offset))
                .map_err(io_err(&path))?;
            file.read_to_end(&mut rest).map_err(io_err(&path))?;
            if intact_record_after(&rest, 0, bad_index) {
                return Err(corrupt());
            }
        }
        if committed.0 < durable_floor {
            return Err(SegmentError::Missing {
                end: committed.0,
                acknowledged: durable_floor,
                dir,
                why: cut_short_or_later_deleted(&path, committed.1),
            });
        }

        let keep = committed.1;
        let mut recovery = Recovery::default();
        if keep < file_len {
            recovery.trimmed_bytes = file_len - keep;
            recovery.trimmed_records = checked.framed - committed.0;
            file.set_len(keep).map_err(io_err(&path))?;
            file.sync_all().map_err(io_err(&path))?;
        }
        file.seek(SeekFrom::Start(keep)).map_err(io_err(&path))?;
        Ok((
            SegmentLog {
                dir,
                segments,
                active: file,
                active_len: keep,
                size: committed.0,
                read_only: false,
            },
            recovery,
        ))
    }

    /// Number of leaves in the log.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Writes `leaves` as one batch and syncs it. Returns where each leaf went. On error
    /// nothing is acknowledged and the log must be reopened (recovery trims the batch).
    pub fn append_batch(
        &mut self,
        leaves: &[Vec<u8>],
    ) -> Result<Vec<RecordLocation>, SegmentError> {
        if self.read_only {
            return Err(SegmentError::ReadOnly {
                path: self.dir.clone(),
            });
        }
        if leaves.is_empty() {
            return Ok(Vec::new());
        }
        if self.active_len >= SEGMENT_TARGET_BYTES {
            self.roll()?;
        }
        let segment = self.active_first();
        let mut buf = Vec::with_capacity(
            leaves
                .iter()
                .map(|l| l.len() + RECORD_OVERHEAD as usize)
                .sum(),
        );
        let mut locations = Vec::with_capacity(leaves.len());
        let mut offset = self.active_len;
        for (i, leaf) in leaves.iter().enumerate() {
            assert!(
                leaf.len() <= MAX_LEAF_BYTES,
                "ingest admitted an oversized leaf"
            );
            let index = self.size + i as u64;
            let flags = if i + 1 == leaves.len() {
                FLAG_BATCH_END
            } else {
                0
            };
            encode_record(&mut buf, index, leaf, flags);
            let loc = RecordLocation {
                segment,
                offset,
                leaf_len: leaf.len() as u32,
            };
            offset = loc.end();
            locations.push(loc);
        }
        let path = self.active_path().to_path_buf();
        self.active.write_all(&buf).map_err(io_err(&path))?;
        // fdatasync: the data and the file length; the name was synced when created.
        self.active.sync_data().map_err(io_err(&path))?;
        self.active_len = offset;
        self.size += leaves.len() as u64;
        Ok(locations)
    }

    /// The directory holding the segment files, for readers (`read_leaf`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Visits every leaf from `from` to the end, in order, checking every checksum. Used
    /// by catch-up, `reindex` and `verify`, which must see every byte they rely on.
    pub fn scan<E: From<SegmentError>>(
        &self,
        from: Position,
        visit: impl FnMut(u64, RecordLocation, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.scan_proven(from, 0, visit)
    }

    /// `scan`, but the records of leaves below `proven` are framed (each header sound,
    /// naming its leaf, its length within the file) and their checksums not checked:
    /// for leaves whose bytes something stronger proves, such as the root of a signed
    /// checkpoint they are held to (`ledger::CheckpointHold`). Those checksums are most
    /// of a scan's work.
    pub fn scan_proven<E: From<SegmentError>>(
        &self,
        from: Position,
        proven: u64,
        mut visit: impl FnMut(u64, RecordLocation, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let seg_pos = self
            .segments
            .iter()
            .position(|s| s.first_index == from.segment)
            .ok_or_else(|| SegmentError::BadSegment {
                path: self.dir.join(segment_name(from.segment)),
                reason: "segment named by derived state is missing; run `dcledger reindex`".into(),
            })?;
        let (mut index, mut start) = (from.index, from.offset);
        let mut window = Vec::with_capacity(SCAN_WINDOW_BYTES);
        for (i, seg) in self.segments.iter().enumerate().skip(seg_pos) {
            // A log opened read-only at a checkpoint's size may end in an earlier segment
            // than the last: the segments after it hold leaves the scan was not asked for.
            if i > seg_pos && index == self.size {
                break;
            }
            if i > seg_pos && seg.first_index != index {
                return Err(SegmentError::BadSegment {
                    path: seg.path.clone(),
                    reason: format!(
                        "starts at leaf {} but the previous segment ends at leaf {index}",
                        seg.first_index
                    ),
                }
                .into());
            }
            let mut file = File::open(&seg.path).map_err(io_err(&seg.path))?;
            check_header(&mut file, &seg.path, seg.first_index)?;
            let limit = if i + 1 == self.segments.len() {
                self.active_len
            } else {
                file.metadata().map_err(io_err(&seg.path))?.len()
            };
            let mut windows = Windows::new(&mut file, &seg.path, start, limit, &mut window)?;
            while windows.more() && index < self.size {
                let reach = windows.fill()?;
                let (offset, bytes) = (windows.offset, windows.bytes());
                let mut pos = 0;
                // A batch of records at a time, so that the first leaves are visited while
                // the window's later checksums are not yet checked.
                loop {
                    let until = self.size.min(index + SCAN_WINDOW_RECORDS);
                    let (records, failed) =
                        checked_records(bytes, pos, index, bytes.len(), until, proven);
                    for r in records {
                        let loc = RecordLocation {
                            segment: seg.first_index,
                            offset: offset + r.pos as u64,
                            leaf_len: r.leaf_len,
                        };
                        visit(index, loc, leaf_at(bytes, r.pos, r.leaf_len))?;
                        pos = r.end();
                        index += 1;
                    }
                    let corrupt = |index: u64, at: usize, failure: Decoded| SegmentError::Corrupt {
                        index,
                        path: seg.path.clone(),
                        offset: offset + at as u64,
                        reason: failure_reason(failure),
                    };
                    match failed {
                        // The window ends inside this record; the next one holds it whole.
                        Some((_, _, Decoded::Short)) if reach == Reach::Inner => break,
                        Some((index, at, failure)) => {
                            return Err(corrupt(index, at, failure).into());
                        }
                        None if index == self.size => break,
                        // The batch ended at `until`; the window holds more.
                        None if pos < bytes.len() => {}
                        // The file ends before `limit`, at a record's edge: the records still
                        // to come are missing, as a torn tail's are.
                        None if reach == Reach::ShortFile => {
                            return Err(corrupt(index, pos, Decoded::Short).into());
                        }
                        None => break,
                    }
                }
                windows.advance(pos);
            }
            start = HEADER_BYTES;
        }
        if index != self.size {
            return Err(SegmentError::Missing {
                end: index,
                acknowledged: self.size,
                dir: self.dir.clone(),
                why: cut_short_or_later_deleted(self.active_path(), self.active_len),
            }
            .into());
        }
        Ok(())
    }

    /// Where the next leaf will be written.
    pub fn end_position(&self) -> Position {
        Position {
            index: self.size,
            segment: self.active_first(),
            offset: self.active_len,
        }
    }

    fn active_first(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.first_index)
    }

    fn active_path(&self) -> &Path {
        self.segments
            .last()
            .map_or(self.dir.as_path(), |s| s.path.as_path())
    }

    /// Seals the active segment and starts a new one at the next index.
    fn roll(&mut self) -> Result<(), SegmentError> {
        let path = self.dir.join(segment_name(self.size));
        let file = create_segment(&path, self.size)?;
        sync_dir(&self.dir)?;
        self.segments.push(Segment {
            first_index: self.size,
            path,
        });
        self.active = file;
        self.active_len = HEADER_BYTES;
        Ok(())
    }
}

/// Reads and checks leaf `index` at `loc` under the segments directory `dir`. Needs no
/// `SegmentLog`, so readers never contend with the writer.
pub fn read_leaf(dir: &Path, index: u64, loc: RecordLocation) -> Result<Vec<u8>, SegmentError> {
    let path = dir.join(segment_name(loc.segment));
    let file = File::open(&path).map_err(io_err(&path))?;
    let mut buf = vec![0u8; RECORD_OVERHEAD as usize + loc.leaf_len as usize];
    file.read_exact_at(&mut buf, loc.offset)
        .map_err(io_err(&path))?;
    let corrupt = |reason: &str| SegmentError::Corrupt {
        index,
        path: path.clone(),
        offset: loc.offset,
        reason: reason.into(),
    };
    match decode_at(&buf, 0, index) {
        Decoded::Ok { leaf_len, .. } if leaf_len == loc.leaf_len => {
            Ok(leaf_at(&buf, 0, leaf_len).to_vec())
        }
        Decoded::Ok { .. } => Err(corrupt(
            "length differs from the derived index; run `dcledger reindex`",
        )),
        Decoded::Short => Err(corrupt("record is cut short")),
        Decoded::Bad(reason) => Err(corrupt(&reason)),
    }
}

fn create_segment(path: &Path, first_index: u64) -> Result<File, SegmentError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    let mut header = [0u8; HEADER_BYTES as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8..].copy_from_slice(&first_index.to_le_bytes());
    file.write_all(&header).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))?;
    Ok(file)
}

fn check_header(file: &mut File, path: &Path, first_index: u64) -> Result<(), SegmentError> {
    let mut header = [0u8; HEADER_BYTES as usize];
    file.seek(SeekFrom::Start(0)).map_err(io_err(path))?;
    file.read_exact(&mut header)
        .map_err(|_| SegmentError::BadSegment {
            path: path.to_path_buf(),
            reason: "header is missing or short".into(),
        })?;
    if &header[..8] != MAGIC {
        return Err(SegmentError::BadSegment {
            path: path.to_path_buf(),
            reason: "wrong magic or unsupported format version".into(),
        });
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&header[8..]);
    if u64::from_le_bytes(first) != first_index {
        return Err(SegmentError::BadSegment {
            path: path.to_path_buf(),
            reason: "header's first index disagrees with the file name".into(),
        });
    }
    Ok(())
}

/// Reads `count` consecutive leaves from leaf `index`, which lives at `at` (a record
/// location, or the start of a segment with `leaf_len` 0), under the segments directory
/// `dir`, checking every record, and hands each to `visit`. Moves on to the next
/// segment at the end of one. Needs no `SegmentLog` and takes no lock: the records read
/// were written before the size that names them was published, and never change.
pub fn read_run<E: From<SegmentError>>(
    dir: &Path,
    index: u64,
    segment: u64,
    offset: u64,
    count: u64,
    mut visit: impl FnMut(u64, &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    use std::io::BufReader;
    let open =
        |segment: u64, offset: u64| -> Result<(PathBuf, BufReader<File>, u64), SegmentError> {
            let path = dir.join(segment_name(segment));
            let mut file = File::open(&path).map_err(io_err(&path))?;
            let len = file.metadata().map_err(io_err(&path))?.len();
            file.seek(SeekFrom::Start(offset)).map_err(io_err(&path))?;
            Ok((path, BufReader::with_capacity(1 << 16, file), len))
        };
    let (mut path, mut reader, mut len) = open(segment, offset)?;
    let mut pos = offset;
    let mut record = Vec::new();
    for i in index..index + count {
        if pos >= len {
            // The segment ends where the next one, named by this leaf, begins.
            (path, reader, len) = open(i, HEADER_BYTES)?;
            pos = HEADER_BYTES;
        }
        let corrupt = |pos: u64, reason: String| SegmentError::Corrupt {
            index: i,
            path: path.clone(),
            offset: pos,
            reason,
        };
        record.resize(RECORD_HEADER, 0);
        reader
            .read_exact(&mut record)
            .map_err(|e| corrupt(pos, format!("record header unreadable: {e}")))?;
        let leaf_len = u32::from_le_bytes([record[0], record[1], record[2], record[3]]) as usize;
        if leaf_len > MAX_LEAF_BYTES {
            return Err(corrupt(
                pos,
                format!("length field {leaf_len} exceeds the leaf limit"),
            )
            .into());
        }
        record.resize(RECORD_HEADER + leaf_len + 32, 0);
        reader
            .read_exact(&mut record[RECORD_HEADER..])
            .map_err(|e| corrupt(pos, format!("record unreadable: {e}")))?;
        match decode_at(&record, 0, i) {
            Decoded::Ok { leaf_len, .. } => visit(i, leaf_at(&record, 0, leaf_len))?,
            Decoded::Short => return Err(corrupt(pos, "record is cut short".into()).into()),
            Decoded::Bad(reason) => return Err(corrupt(pos, reason).into()),
        }
        pos += record.len() as u64;
    }
    Ok(())
}

/// Reads leaves `from..to` under the segments directory `dir` without a location from
/// derived state: starts at the segment whose name is the greatest first index not
/// above `from` and skips to `from`. For readers that hold no derived state (an export).
pub fn read_leaves<E: From<SegmentError>>(
    dir: &Path,
    from: u64,
    to: u64,
    mut visit: impl FnMut(u64, &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    if from >= to {
        return Ok(());
    }
    let mut start = None;
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let first = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(first) = first
            && first <= from
            && start.is_none_or(|s| first > s)
        {
            start = Some(first);
        }
    }
    let start = start.ok_or_else(|| SegmentError::BadSegment {
        path: dir.to_path_buf(),
        reason: format!("no segment holds leaf {from}"),
    })?;
    read_run(dir, start, start, HEADER_BYTES, to - start, |i, leaf| {
        if i >= from { visit(i, leaf) } else { Ok(()) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `decode_at` makes of the records from `pos` on, one after another (`frame_at`
    /// of those below `proven`): each record's position, length and flags, then the
    /// first failure.
    #[allow(clippy::type_complexity)]
    fn decoded_one_by_one(
        bytes: &[u8],
        mut pos: usize,
        mut index: u64,
        end: usize,
        until: u64,
        proven: u64,
    ) -> (Vec<(usize, u32, u8)>, Option<(u64, usize, String)>) {
        let mut records = Vec::new();
        while pos < end && index < until {
            let decoded = if index < proven {
                frame_at(bytes, pos, index)
            } else {
                decode_at(bytes, pos, index)
            };
            match decoded {
                Decoded::Ok { leaf_len, flags } => {
                    records.push((pos, leaf_len, flags));
                    pos += RECORD_OVERHEAD as usize + leaf_len as usize;
                    index += 1;
                }
                failure => return (records, Some((index, pos, failure_reason(failure)))),
            }
        }
        (records, None)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Checking the checksums on every core after walking the headers judges every
        /// record as checking each in turn does, whatever was damaged: a byte changed in
        /// a header, a leaf or a checksum, or the bytes cut short (enough records that
        /// both cores take part); and records of proven leaves are framed, every one,
        /// their checksums not checked, wherever `proven` falls.
        #[test]
        fn records_checked_together_are_judged_as_one_by_one(
            leaf_lens in prop::collection::vec(0usize..24, 2_500..3_000),
            damage in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..3),
            cut in prop::option::of(any::<prop::sample::Index>()),
            until_share in 1u64..=4,
            proven_share in 0u64..=5,
        ) {
            let mut bytes = Vec::new();
            for (i, len) in leaf_lens.iter().enumerate() {
                let flags = if i % 7 == 6 { FLAG_BATCH_END } else { 0 };
                encode_record(&mut bytes, 100 + i as u64, &vec![i as u8; *len], flags);
            }
            for (at, xor) in &damage {
                let at = at.index(bytes.len());
                bytes[at] ^= xor;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len()));
            }
            let until = 100 + leaf_lens.len() as u64 * until_share / 4;
            // From no leaf to past the last.
            let proven = 100 + leaf_lens.len() as u64 * proven_share / 4;
            let (records, failed) = checked_records(&bytes, 0, 100, bytes.len(), until, proven);
            let together = (
                records.iter().map(|r| (r.pos, r.leaf_len, r.flags)).collect::<Vec<_>>(),
                failed.map(|(index, pos, failure)| (index, pos, failure_reason(failure))),
            );
            prop_assert_eq!(
                together,
                decoded_one_by_one(&bytes, 0, 100, bytes.len(), until, proven)
            );
        }
    }

    /// Leaf `i` of the logs of `log_of_three_windows`: of uneven sizes, so that the
    /// windows' edges fall inside records, and each naming its index.
    fn uneven_leaf(i: u64) -> Vec<u8> {
        let mut l = vec![(i % 251) as u8; 30_000 + (i * 7_919 % 30_000) as usize];
        l[..8].copy_from_slice(&i.to_be_bytes());
        l
    }

    /// Leaves a batch in `log_of_three_windows`.
    const WINDOWS_BATCH: u64 = 50;

    /// `log_of_three_windows`, closed: its size, its segment's path and bytes, and where
    /// each leaf lies.
    fn closed_log_of_three_windows(dir: &Path) -> (u64, PathBuf, Vec<u8>, Vec<RecordLocation>) {
        let (log, locations) = log_of_three_windows(dir);
        let size = log.size();
        let path = log.active_path().to_path_buf();
        drop(log);
        let clean = std::fs::read(&path).unwrap();
        (size, path, clean, locations)
    }

    /// A log in `dir` whose one segment spans three scan windows, of `uneven_leaf`s in
    /// batches of `WINDOWS_BATCH`: the log and where each leaf lies.
    fn log_of_three_windows(dir: &Path) -> (SegmentLog, Vec<RecordLocation>) {
        let (mut log, _) = SegmentLog::open(dir, 0).unwrap();
        let mut locations = Vec::new();
        while log.active_len < 3 * SCAN_WINDOW_BYTES as u64 {
            let batch: Vec<Vec<u8>> = (log.size()..log.size() + WINDOWS_BATCH)
                .map(uneven_leaf)
                .collect();
            locations.extend(log.append_batch(&batch).unwrap());
        }
        assert_eq!(
            log.segments.len(),
            1,
            "one segment, read in several windows"
        );
        (log, locations)
    }

    /// Writes `clean` to `path` with a byte of the first leaf past the first window
    /// changed: that leaf's index.
    fn damage_past_the_first_window(
        path: &Path,
        clean: &[u8],
        locations: &[RecordLocation],
    ) -> usize {
        let damaged = locations
            .iter()
            .position(|l| l.offset > SCAN_WINDOW_BYTES as u64 + 1_000)
            .unwrap();
        let mut bytes = clean.to_vec();
        bytes[locations[damaged].offset as usize + RECORD_HEADER + 100] ^= 1;
        std::fs::write(path, &bytes).unwrap();
        damaged
    }

    /// A scan reads a segment a window at a time: the records its windows' edges cut are
    /// read whole with the next window, from the first leaf or from one in the middle,
    /// and a damaged record or a file cut short beyond the first window is named by its
    /// index and offset, as it was when a scan read the whole file at once.
    #[test]
    fn scans_read_records_cut_by_their_windows_edges() {
        let dir = tempfile::tempdir().unwrap();
        let (log, locations) = log_of_three_windows(dir.path());
        let leaf = uneven_leaf;
        let scanned =
            |from: Position| -> Result<Vec<(u64, RecordLocation, Vec<u8>)>, SegmentError> {
                let mut read = Vec::new();
                log.scan(from, |i, location, l| -> Result<(), SegmentError> {
                    read.push((i, location, l.to_vec()));
                    Ok(())
                })?;
                Ok(read)
            };
        let expected = |from: u64| -> Vec<(u64, RecordLocation, Vec<u8>)> {
            (from..log.size())
                .map(|i| (i, locations[i as usize], leaf(i)))
                .collect()
        };
        assert_eq!(scanned(Position::START).unwrap(), expected(0));
        let middle = log.size() / 2;
        let at = locations[middle as usize];
        let from = Position {
            index: middle,
            segment: at.segment,
            offset: at.offset,
        };
        assert_eq!(scanned(from).unwrap(), expected(middle));

        // A record past the first window, its leaf changed on disk.
        let path = log.active_path().to_path_buf();
        let clean = std::fs::read(&path).unwrap();
        let damaged = damage_past_the_first_window(&path, &clean, &locations);
        match scanned(Position::START) {
            Err(SegmentError::Corrupt { index, offset, .. }) => {
                assert_eq!((index, offset), (damaged as u64, locations[damaged].offset));
            }
            other => panic!("a damaged record is refused, not {other:?}"),
        }
        // The file cut short below the size the log was opened at, inside a later record
        // or at its edge.
        let cut = locations
            .iter()
            .position(|l| l.offset > 2 * SCAN_WINDOW_BYTES as u64 + 1_000)
            .unwrap();
        for inside in [50, 0] {
            let end = locations[cut].offset as usize + inside;
            std::fs::write(&path, &clean[..end]).unwrap();
            match scanned(Position::START) {
                Err(SegmentError::Corrupt { index, offset, .. }) => {
                    assert_eq!((index, offset), (cut as u64, locations[cut].offset));
                }
                other => panic!("a record cut short {inside} bytes in is refused, not {other:?}"),
            }
        }
    }

    /// Opening a log checks its active segment a window at a time: records cut by the
    /// windows' edges are read whole, a torn final batch past the first window is
    /// trimmed to the last whole batch, and a damaged record past the first window is
    /// refused when intact records follow it or it was acknowledged.
    #[test]
    fn opening_checks_the_active_segment_across_windows() {
        let dir = tempfile::tempdir().unwrap();
        let (size, path, clean, locations) = closed_log_of_three_windows(dir.path());

        let (log, recovery) = SegmentLog::open(dir.path(), size).unwrap();
        assert_eq!((log.size(), log.active_len), (size, clean.len() as u64));
        assert_eq!(recovery.trimmed_records, 0);
        drop(log);

        // The last batch torn 50 bytes into its fifth record: the batch goes.
        let last_batch = size - WINDOWS_BATCH;
        let torn = (last_batch + 4) as usize;
        std::fs::write(&path, &clean[..locations[torn].offset as usize + 50]).unwrap();
        let (log, recovery) = SegmentLog::open(dir.path(), last_batch).unwrap();
        assert_eq!(log.size(), last_batch);
        assert_eq!(log.active_len, locations[last_batch as usize].offset);
        assert_eq!(recovery.trimmed_records, 4);
        drop(log);

        // A record in the second window changed on disk, whole records after it.
        let damaged = damage_past_the_first_window(&path, &clean, &locations);
        for floor in [0, size] {
            match SegmentLog::open(dir.path(), floor) {
                Err(SegmentError::Corrupt { index, offset, .. }) => {
                    assert_eq!((index, offset), (damaged as u64, locations[damaged].offset));
                }
                other => panic!("a damaged record is refused, not {:?}", other.err()),
            }
        }
    }

    /// Opened for a caller that proves the first leaves by a signed root, a log frames
    /// their records without reading their checksums: a damaged leaf among them is left
    /// to that root, while one past them is refused as any open refuses it.
    #[test]
    fn opening_leaves_the_checksums_of_proven_leaves_unread() {
        let dir = tempfile::tempdir().unwrap();
        let (size, path, clean, locations) = closed_log_of_three_windows(dir.path());
        let damaged = damage_past_the_first_window(&path, &clean, &locations) as u64;

        let (log, recovery) = SegmentLog::open_proven(dir.path(), size, damaged + 1).unwrap();
        assert_eq!((log.size(), recovery.trimmed_records), (size, 0));
        drop(log);
        for proven in [0, damaged] {
            match SegmentLog::open_proven(dir.path(), size, proven) {
                Err(SegmentError::Corrupt { index, .. }) => assert_eq!(index, damaged),
                other => panic!(
                    "proven below it, a damaged record is refused, not {:?}",
                    other.err()
                ),
            }
        }
    }

    /// A window that ends exactly where a record does is not the file's end: opening
    /// reads on into the next window and keeps every record, and so does a scan.
    #[test]
    fn opening_reads_on_past_a_window_that_ends_on_a_records_edge() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(dir.path(), 0).unwrap();
        // Records of 32 KiB each: 256 of them fill the first window to its last byte.
        let leaf_len = (1 << 15) - RECORD_OVERHEAD as usize;
        let per_window = SCAN_WINDOW_BYTES / (1 << 15);
        while log.size() < per_window as u64 + WINDOWS_BATCH {
            let batch: Vec<Vec<u8>> = (0..WINDOWS_BATCH)
                .map(|i| vec![i as u8; leaf_len])
                .collect();
            log.append_batch(&batch).unwrap();
        }
        let (records, active_len) = (log.size(), log.active_len);
        drop(log);
        let (log, recovery) = SegmentLog::open(dir.path(), records).unwrap();
        assert_eq!((log.size(), log.active_len), (records, active_len));
        assert_eq!(recovery.trimmed_records, 0);
        let mut scanned = 0;
        log.scan(Position::START, |_, _, _| -> Result<(), SegmentError> {
            scanned += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(scanned, records);
    }

    /// A log opened read-only at a size that ends in an earlier segment than the last (a
    /// checkpoint's, or genesis alone) scans its leaves and stops: the later segments
    /// hold leaves it was not asked for, not a gap.
    #[test]
    fn a_read_only_scan_ends_at_its_size_before_the_last_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(dir.path(), 0).unwrap();
        while log.segments.len() < 3 {
            let batch: Vec<Vec<u8>> = (0..100).map(|i| vec![i as u8; 60_000]).collect();
            log.append_batch(&batch).unwrap();
        }
        let (second, third) = (log.segments[1].first_index, log.segments[2].first_index);
        for size in [0, 1, second - 1, second, second + 1, third, log.size()] {
            let read_only = SegmentLog::open_read_only(dir.path(), size).unwrap();
            let mut scanned = 0;
            read_only
                .scan(Position::START, |i, _, _| -> Result<(), SegmentError> {
                    assert_eq!(i, scanned, "leaves in order");
                    scanned += 1;
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("a scan of {size} leaves: {e}"));
            assert_eq!(scanned, size, "a scan of {size} leaves");
        }
    }

    /// Bundles and exports read runs of leaves that may start in one segment and end in
    /// the next: `read_run` and `read_leaves` cross the boundary, checking every record.
    #[test]
    fn runs_of_leaves_cross_segment_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(dir.path(), 0).unwrap();
        let leaf = |i: u64| -> Vec<u8> {
            let mut l = vec![(i % 251) as u8; 60_000];
            l[..8].copy_from_slice(&i.to_be_bytes());
            l
        };
        let mut locations = Vec::new();
        while log.segments.len() < 2 {
            let batch: Vec<Vec<u8>> = (log.size()..log.size() + 100).map(leaf).collect();
            locations.extend(log.append_batch(&batch).unwrap());
        }
        let second = log.segments[1].first_index;
        let from = second - 3;
        let at = locations[from as usize];
        let mut read = Vec::new();
        read_run(
            &log.dir,
            from,
            at.segment,
            at.offset,
            10,
            |i, l| -> Result<(), SegmentError> {
                read.push((i, l.to_vec()));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(
            read,
            (from..from + 10).map(|i| (i, leaf(i))).collect::<Vec<_>>()
        );
        let mut again = Vec::new();
        read_leaves(
            &log.dir,
            from,
            from + 10,
            |i, l| -> Result<(), SegmentError> {
                again.push((i, l.to_vec()));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(again, read);
        // A record changed on disk is refused, naming its index.
        let path = log.dir.join(segment_name(second));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER_BYTES as usize + 20] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let err = read_leaves(
            &log.dir,
            from,
            from + 10,
            |_, _| -> Result<(), SegmentError> { Ok(()) },
        )
        .unwrap_err();
        assert!(
            matches!(err, SegmentError::Corrupt { index, .. } if index == second),
            "{err}"
        );
    }
}
