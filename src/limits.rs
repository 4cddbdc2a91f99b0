//! Every explicit bound the ledger puts on something that grows, in one place, so that a
//! reader can see what the system will and will not accept without hunting for literals.

/// PROTOCOL §4: a stored leaf is at most this many bytes; larger submissions are refused (413).
pub const MAX_LEAF_BYTES: usize = 65_535;

/// PROTOCOL §10 / CLI: envelopes in one all-or-nothing batch.
pub const MAX_BATCH_ENTRIES: usize = 1_000;

/// `dcledger append`: the longest input line, without its line ending, that is read. A
/// line holds one envelope, which over HTTP would be a request body of its own
/// (`MAX_BODY_BYTES`); its leaf can be at most `MAX_LEAF_BYTES`, so only a line of
/// mostly padding comes near this. A longer line is read past, never held whole, and
/// refused: a file of one endless line cannot exhaust the reader's memory.
pub const MAX_LINE_BYTES: usize = MAX_BODY_BYTES;

/// `dcledger append`: a batch ends at `MAX_BATCH_ENTRIES` envelopes or once its lines
/// reach this many bytes, whichever comes first, so that the batches the append holds at
/// once (in preparation, waiting, in a group commit: about ten) stay tens of megabytes
/// whatever the entries' size. A generated world's batches of 1,000 are 0.5 MB at the
/// median and 4.1 MB at the most (BENCHMARKS.md): one in a thousand is cut.
pub const MAX_BATCH_LINE_BYTES: usize = 4 * 1024 * 1024;

/// PROTOCOL §3: an entry's `ts` may be at most this far after the ledger's clock.
pub const MAX_TS_AHEAD_S: i64 = 300;

/// PROTOCOL §2: every number in signed content lies in [-(2^53-1), 2^53-1].
pub const MAX_SAFE_INTEGER: i64 = 9_007_199_254_740_991;

/// Nesting depth of a submitted JSON value. The schemas need 4 levels below the envelope;
/// the bound keeps recursion in the canonicaliser from being driven by an attacker.
pub const MAX_JSON_DEPTH: usize = 16;

/// Bytes of a segment file a scan (replays, `verify`, the hold to the signed checkpoint,
/// tiles rebuilt from the segments) or opening a ledger (the check of its active
/// segment) reads into memory at once: the buffer is reused from window to window and
/// file to file. Only damage found on opening (a torn tail) reads the rest of the active
/// segment whole, to look for intact records after it.
pub const SCAN_WINDOW_BYTES: usize = 8 * 1024 * 1024;

/// A segment file is closed and a new one started once it reaches this size. Keeps single
/// files small enough to copy, checksum and back up piecewise.
pub const SEGMENT_TARGET_BYTES: u64 = 64 * 1024 * 1024;

/// The derived store's page cache (redb's; its default is 1 GiB). Derived state is
/// rebuildable and mostly written once, so a smaller cache only costs re-reads, which the
/// kernel's page cache answers: against 128 MiB, a million-entry append peaked 35 MB
/// lower in the same time, and the audit's load and the trusted rebuild took as long
/// (BENCHMARKS.md).
pub const DERIVED_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// The derived store's page cache while `reindex` rebuilds it from the first leaf. At a
/// million entries the store (400 MB) outgrows `DERIVED_CACHE_BYTES`, and the commits,
/// which bound the rebuild there, re-read its pages through the kernel: a trusted rebuild
/// of the million-entry world took 24.1–24.8 s with 64 MiB, 20.2 s with 128, 16.5–17.4 s
/// with 256 and 16.6 s with 512, peaking at 470–482, 556, 738 and 984 MB (BENCHMARKS.md,
/// twenty-sixth pass). Only a rebuild: `append` and `serve` keep to their memory lines.
pub const REBUILD_CACHE_BYTES: usize = 256 * 1024 * 1024;

/// How long a commit to the derived store may stay without fsync. Its commits are atomic
/// either way; a crash loses at most this much of derived state, which opening replays
/// again from the segments.
pub const DERIVED_DURABLE_INTERVAL_MS: u64 = 1_000;

/// Records an overlay keeps decoded for admission (`store::derived::Decoded`), counted by
/// the bytes they are stored in; decoded, they take about three and a half times that.
/// When full they are all dropped and read again. A report's facility is read for every
/// report, in no order within a month, so the cache helps only if every facility's record
/// fits: held to 16,384 records, a world of a hundred thousand facilities read nearly
/// every one from the store again, and its trusted rebuild took 209–216 s where holding
/// them all (42 MB stored, about 110 MB more at the peak) takes 173–187 s (BENCHMARKS.md).
pub const DECODED_RECORDS_BYTES: usize = 64 * 1024 * 1024;

/// Signers' keys kept decompressed for signature checks (about 200 bytes each); the
/// cache starts again when full, so a flood of new signers costs time, never memory.
pub const VERIFYING_KEY_CACHE_KEYS: usize = 65_536;

/// Signers' keys given a table of their multiples for signature checks
/// (`signer_points`), about 30 KiB each: 60 MiB at most. The generated million-entry
/// world has 1,769 signers.
pub const SIGNER_TABLES_MAX: usize = 2_048;

/// The check of a key at which its table is built. A table costs about as much as 40
/// checks and saves about a quarter of each check after it, so it is repaid after about
/// 160 more; a key that has signed this many entries in the process is likely to sign
/// that many more (each of the generated world's signers signs 63 to 4,834 entries,
/// median 366), and one that signs a few never pays for a table (BENCHMARKS.md).
pub const SIGNER_TABLE_AFTER_CHECKS: u32 = 32;

/// Leaf hashes a trusted rebuild's hold on the signed checkpoint hands on to the replay,
/// which then need not hash those leaves again (`ledger::replay::BeforeAdmitting`): 32 MiB
/// of hashes. The hold runs ahead of the replay, so nearly all of them wait in memory at
/// once; a larger ledger's later leaves are hashed by both.
pub const HANDED_ON_HASHES_MAX_LEAVES: u64 = 1 << 20;

/// Records read back in one `verify` or `reindex` pass before derived state is flushed:
/// one commit of the derived store each, which copies every page of its tree the commit
/// changes, so fewer, larger commits copy fewer. Twice 4,096 made both 4% faster; twice
/// that again, no faster at 156,000 entries but about 5% at a million, for about 50 MB
/// more at the peak there (BENCHMARKS.md, thirty-fourth pass).
pub const REINDEX_CHUNK_ENTRIES: usize = 16_384;

/// `export parquet` (PROTOCOL §12.4) writes a table's pending rows as a row group at this
/// many rows, or sooner at `PARQUET_ROW_GROUP_BYTES`: it writes every table at once, so
/// the bound on each is what bounds its memory.
pub const PARQUET_ROW_GROUP_ROWS: usize = 65_536;

/// Bytes of values (strings at their length) pending in one table before they are
/// written as a row group: a `lot.serials` entry holds up to 1,000 serials.
pub const PARQUET_ROW_GROUP_BYTES: usize = 16 * 1024 * 1024;

// ---------------------------------------------------------------------------------------
// The HTTP server (PROTOCOL §10). A server faces the open internet: each bound below keeps
// one kind of client from holding time, connections or memory without end. The defaults
// of the `[server]` config table are the `DEFAULT_*` ones; the others are fixed.

/// Witnesses a ledger may list (`[[witness]]`): each costs a thread and a request per
/// new checkpoint.
pub const MAX_WITNESSES: usize = 32;

/// How often a ledger's witnessing threads look for a new checkpoint to send.
pub const WITNESS_POLL_MS: u64 = 200;

/// A witness's whole answer must arrive within this; a hung witness delays only its own
/// next cosignature, never an acknowledgement.
pub const WITNESS_REQUEST_TIMEOUT_MS: u64 = 5_000;

/// After a witness failed, the wait before it is asked again.
pub const WITNESS_RETRY_MS: u64 = 1_000;

/// Largest answer read from a witness: a few cosignature lines.
pub const MAX_WITNESS_ANSWER_BYTES: u64 = 16 * 1024;

/// Largest `add-checkpoint` body a witness reads: 63 proof lines and a checkpoint with
/// its signatures (at most 100 lines) fit in a tenth of this.
pub const MAX_ADD_CHECKPOINT_BYTES: usize = 64 * 1024;

/// PROTOCOL §10: request bodies over this are refused (413).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A request's headers must arrive within this, counted from its first byte.
pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;

/// A request's body must arrive within this, counted from the end of its headers (408).
pub const DEFAULT_BODY_TIMEOUT_MS: u64 = 30_000;

/// A connection on which nothing moves for this long is closed: a keep-alive connection
/// waiting for its next request, or one whose client has stopped reading its answer.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;

/// A handler that takes longer is abandoned and the request answered 408.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;

/// Open connections; beyond this the server stops accepting and new ones wait in the
/// kernel's listen backlog until a connection closes.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4_096;

/// Requests handled at once; more are answered 503 at once rather than queued.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 512;

/// A request target (path and query) longer than this is refused (414).
pub const DEFAULT_MAX_URI_BYTES: usize = 8 * 1024;

/// Header fields (each name, value and the 4 bytes of ": " and CRLF) beyond this in
/// total are refused (431).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;

/// Answers produced but not yet handed to the kernel, for all clients together. An
/// answer that would go over is refused (503), so clients that pipeline requests and
/// never read cannot grow the server's memory without bound.
pub const DEFAULT_MAX_BUFFERED_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// A page of a list (`/v1/entries`, `/v1/facilities`, `/v1/findings`) stops before the
/// item that would take its JSON past this, whatever `limit` says (at least one item is
/// always sent). Keeps one answer a small share of the buffered-answer budget: a page of
/// 1,000 entries of 64 KiB leaves would otherwise be over 64 MiB.
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;

/// Items on one page of a list, at most (`limit`).
pub const MAX_PAGE_ITEMS: usize = 1_000;

/// Answers that may be large (pages, reports) built at once, each on a blocking thread,
/// at most; the server builds one fewer than it has cores (and at least one), so that a
/// core is left to the async workers that answer `/healthz` and small requests however
/// many large answers are asked for. Measured on 2 cores with 500 clients asking for
/// pages: with 4 at once `/healthz` took up to 1.6 s, with 1 at most 70 ms.
pub const MAX_CONCURRENT_LARGE_ANSWERS: usize = 8;

/// An answer this small is never refused for want of buffer room: the refusal would be
/// no smaller, and one connection holds at most one answer at a time.
pub const SMALL_ANSWER_BYTES: usize = 1024;

/// Bytes of a request head beyond `max_uri_bytes + max_header_bytes` that hyper still
/// reads before refusing it itself: the request line's method, version and spaces, and
/// the optional whitespace around header values that the header count leaves out.
pub const HEAD_SLACK_BYTES: usize = 1024;

/// After the server has finished with a connection it closes its sending side, then reads
/// and discards what the client still sends, for at most this long and this many bytes,
/// before closing: closing a socket with unread input makes the kernel reset the
/// connection, which can destroy the last answer (a 431, a 408) before the client reads it.
pub const LINGER_MS: u64 = 1_000;
pub const LINGER_MAX_BYTES: usize = 256 * 1024;

/// `Retry-After` of a 503 when the server is saturated (too many requests at once, or no
/// room left to buffer answers).
pub const RETRY_AFTER_SATURATED_S: u64 = 1;

/// `Retry-After` of a 503 when the writer stopped after a storage failure: only a restart
/// by an operator brings it back.
pub const RETRY_AFTER_STOPPED_S: u64 = 60;

/// Bounds on the `[server]` values a config file may give: long enough for any real use,
/// small enough that deadlines computed from them cannot overflow.
pub const MAX_CONFIG_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;
pub const MAX_CONFIG_CONNECTIONS: usize = 1 << 20;
pub const MAX_CONFIG_CONCURRENT_REQUESTS: usize = 1 << 16;
/// hyper refuses a request target longer than this itself (414).
pub const MAX_CONFIG_URI_BYTES: usize = 65_534;
pub const MIN_CONFIG_URI_BYTES: usize = 256;
pub const MAX_CONFIG_HEADER_BYTES: usize = 1024 * 1024;
pub const MIN_CONFIG_HEADER_BYTES: usize = 1024;
pub const MAX_CONFIG_BUFFERED_ANSWER_BYTES: usize = 1 << 40;

/// Memory for hash tiles expanded into their inner nodes (about 16 KiB a full tile),
/// kept between proofs: the level-1 and higher tiles of a ten-million-entry tree and
/// some thousands of level-0 tiles.
pub const TILE_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// How much of the tile cache a server fills when it starts (`Reader::warm_tiles`): the
/// tiles the newest entries' proofs read (every tile above level 0, and the level-0
/// tiles of about the newest half million entries). Half the cache, so that the tiles
/// later proofs read find room without at once dropping those.
pub const TILE_WARM_BYTES: usize = TILE_CACHE_BYTES / 2;

// ---------------------------------------------------------------------------------------
// `dcledger monitor` (PROTOCOL §12.2): a monitor reads a ledger it does not trust, so
// every answer it reads is bounded before it is read whole.

/// Each request of a monitor (the checkpoint, a tile, a bundle) must be answered whole
/// within this.
pub const MONITOR_REQUEST_TIMEOUT_MS: u64 = 30_000;

/// Largest checkpoint note a monitor reads: the note body and at most
/// `log::checkpoint::MAX_SIGNATURES` signature lines of a few hundred bytes each.
pub const MAX_MONITOR_CHECKPOINT_BYTES: u64 = 64 * 1024;

/// Largest hash tile a monitor reads: a full tile, 256 hashes of 32 bytes.
pub const MAX_MONITOR_TILE_BYTES: u64 = 256 * 32;

/// Largest entry bundle a monitor reads: 256 leaves of at most `MAX_LEAF_BYTES`, each
/// behind its two-byte length.
pub const MAX_MONITOR_BUNDLE_BYTES: u64 = 256 * (2 + MAX_LEAF_BYTES as u64);

/// Largest state file a monitor reads back: the last checkpoint, the tree's right edge
/// and, per signer key, the next seq it expects (about 90 bytes a signer, so some
/// 700,000 signers).
pub const MAX_MONITOR_STATE_BYTES: u64 = 64 * 1024 * 1024;

/// Hash tiles a monitor keeps between the nodes it reads in one run (8 KiB each): the
/// consistency proof and the root need a few dozen, the check of each level against the
/// one above one at a time per level.
pub const MONITOR_TILE_CACHE_TILES: usize = 1_024;
