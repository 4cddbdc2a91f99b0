//! Every explicit bound the ledger puts on something that grows, in one place, so that a
//! reader can see what the system will and will not accept without hunting for literals.

/// SPEC §4: a stored leaf is at most this many bytes; larger submissions are refused (413).
pub const MAX_LEAF_BYTES: usize = 65_535;

/// SPEC §10 / CLI: envelopes in one all-or-nothing batch.
pub const MAX_BATCH_ENTRIES: usize = 1_000;

/// SPEC §3: an entry's `ts` may be at most this far after the ledger's clock.
pub const MAX_TS_AHEAD_S: i64 = 300;

/// SPEC §2: every number in signed content lies in [-(2^53-1), 2^53-1].
pub const MAX_SAFE_INTEGER: i64 = 9_007_199_254_740_991;

/// Nesting depth of a submitted JSON value. The schemas need 4 levels below the envelope;
/// the bound keeps recursion in the canonicaliser from being driven by an attacker.
pub const MAX_JSON_DEPTH: usize = 16;

/// A segment file is closed and a new one started once it reaches this size. Keeps single
/// files small enough to copy, checksum and back up piecewise.
pub const SEGMENT_TARGET_BYTES: u64 = 64 * 1024 * 1024;

/// sled's page cache. Its default (1 GiB) is a target sled overshoots under sustained
/// writes; derived state is rebuildable, so a smaller cache only costs re-reads.
pub const DERIVED_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// Records read back in one `verify` or `reindex` pass before derived state is flushed.
pub const REINDEX_CHUNK_ENTRIES: usize = 4_096;
