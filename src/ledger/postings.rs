//! Postings: which entries have a given kind, signer or facility. The ledger is cut into
//! chunks of `POSTING_SPAN` entries, and a chunk's terms of one family are spread over
//! `POSTING_BUCKETS` keys by a hash of the term:
//!
//! - key `family | chunk (u64 BE) | bucket (u8)`;
//! - value the version byte, then the bucket's terms in byte order, each as its length
//!   (u8), its bytes, how many entries of the chunk have it (u16 LE) and their offsets
//!   within the chunk, ascending (u16 LE each).
//!
//! Why buckets: keyed by term (`family | chunk | term`, derived formats 10 and 11), a
//! ledger of ten million entries with a hundred thousand facilities and thirteen thousand
//! signers had about one postings key an entry in each of those two families, 15.3
//! million keys, each a B-tree insert on the thread that commits a rebuild, which bounded
//! it (BENCHMARKS.md, thirty-fourth pass). Buckets hold a family's keys to
//! `POSTING_BUCKETS` a chunk however many terms there are, and a reader of one term still
//! reads one key a chunk.
//!
//! A bucket's bytes depend only on the leaves it holds, never on how commits split them,
//! so a rebuild writes the bytes that incremental commits left (`tests/it/derived_state`).

use std::collections::HashMap;

use crate::entry::Kind;
use crate::store::derived::{Derived, DerivedError, FORMAT_VERSION, Overlay, key};

use super::layout::stored_before;

/// Entries a postings chunk; offsets within it fit in a `u16`.
pub const POSTING_SPAN: u64 = 4096;

/// Keys a chunk and family. At ten million entries a chunk holds about 4,000 facilities,
/// so a bucket about 60 of them, near 1.5 KiB: what a reader of one facility reads a
/// chunk, and what a commit of one entry rewrites.
pub const POSTING_BUCKETS: u32 = 64;

/// Terms are ids (at most 64 bytes), public keys and kind numbers: their length is one
/// byte in a bucket.
const TERM_BYTES_MAX: usize = u8::MAX as usize;

/// The bucket of a term: FNV-1a (32 bits) of its bytes. It is part of the stored layout,
/// so it never changes without a bump of the derived format.
fn bucket_of(term: &[u8]) -> u8 {
    let mut hash: u32 = 0x811c_9dc5;
    for &byte in term {
        hash ^= u32::from(byte);
        // The hash is defined modulo 2^32.
        hash = hash.wrapping_mul(0x0100_0193);
    }
    u8::try_from(hash % POSTING_BUCKETS)
        .unwrap_or_else(|_| unreachable!("{POSTING_BUCKETS} buckets fit in a byte"))
}

/// The key of the bucket of `chunk` that holds `term`'s postings in `family`.
pub(crate) fn bucket_key(family: u8, term: &[u8], chunk: u64) -> Vec<u8> {
    key(family, &[&chunk.to_be_bytes(), &[bucket_of(term)]])
}

/// Every byte in order, for one-byte kind terms (`kind_term`) borrowed as slices.
const KIND_TERMS: [u8; 256] = {
    let mut bytes = [0; 256];
    let mut b = 0;
    while b < 256 {
        bytes[b] = b as u8;
        b += 1;
    }
    bytes
};

/// Index of `kind` in `Kind::ALL`: its postings term.
pub(crate) fn kind_term(kind: Kind) -> &'static [u8] {
    let position = Kind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or_else(|| unreachable!("Kind::ALL lists {kind}"));
    assert!(position < KIND_TERMS.len(), "fewer than 256 kinds");
    &KIND_TERMS[position..=position]
}

/// One term of a bucket as stored: its bytes and its offsets' bytes (u16 LE each).
struct StoredTerm<'a> {
    term: &'a [u8],
    offsets: &'a [u8],
}

impl StoredTerm<'_> {
    fn offsets(&self) -> impl Iterator<Item = u16> + '_ {
        self.offsets
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
    }
}

/// The terms of a stored bucket, in stored order, checked to be in byte order.
fn stored_terms<'a>(key: &[u8], bytes: &'a [u8]) -> Result<Vec<StoredTerm<'a>>, DerivedError> {
    let malformed = |reason: String| DerivedError::Decode {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    };
    let mut rest = match bytes.split_first() {
        Some((&FORMAT_VERSION, rest)) => rest,
        Some((v, _)) => {
            return Err(malformed(format!(
                "format version {v}, this build reads {FORMAT_VERSION}"
            )));
        }
        None => return Err(malformed("empty value".into())),
    };
    let mut terms: Vec<StoredTerm<'a>> = Vec::new();
    while let Some((&len, after)) = rest.split_first() {
        let len = usize::from(len);
        let (term, after) = after
            .split_at_checked(len)
            .ok_or_else(|| malformed(format!("a term of {len} bytes is cut short")))?;
        let (count, after) = after
            .split_at_checked(2)
            .ok_or_else(|| malformed("a term's count is cut short".into()))?;
        let count = usize::from(u16::from_le_bytes([count[0], count[1]]));
        let (offsets, after) = after
            .split_at_checked(2 * count)
            .ok_or_else(|| malformed(format!("{count} offsets are cut short")))?;
        if terms.last().is_some_and(|previous| previous.term >= term) {
            return Err(malformed("terms out of order".into()));
        }
        terms.push(StoredTerm { term, offsets });
        rest = after;
    }
    Ok(terms)
}

/// The offsets within `chunk` of the entries having `term` in `family`, ascending.
pub(crate) fn chunk_offsets(
    derived: &Derived,
    family: u8,
    term: &[u8],
    chunk: u64,
) -> Result<Vec<u16>, DerivedError> {
    let key = bucket_key(family, term, chunk);
    let Some(bytes) = derived.get(&key)? else {
        return Ok(Vec::new());
    };
    let terms = stored_terms(&key, &bytes)?;
    Ok(match terms.binary_search_by(|t| t.term.cmp(term)) {
        Ok(found) => terms[found].offsets().collect(),
        Err(_) => Vec::new(),
    })
}

/// A bucket of one family and chunk: (family, chunk, bucket).
type BucketId = (u8, u64, u8);

/// A term and an offset within its chunk.
type Posting<'a> = (&'a [u8], u16);

/// The postings a commit adds, gathered leaf by leaf in ledger order, then written a
/// bucket at a time (`write`).
#[derive(Default)]
pub(crate) struct Gathered<'a> {
    /// Per bucket, each term and offset, in ledger order.
    buckets: HashMap<BucketId, Vec<Posting<'a>>>,
}

impl<'a> Gathered<'a> {
    /// Entry `index` has `term` in `family`.
    pub(crate) fn add(&mut self, family: u8, term: &'a [u8], index: u64) {
        // A longer term would not fit its length byte: a defect, never a cap.
        assert!(
            term.len() <= TERM_BYTES_MAX,
            "a term of {} bytes",
            term.len()
        );
        let chunk = index / POSTING_SPAN;
        let offset = u16::try_from(index % POSTING_SPAN)
            .unwrap_or_else(|_| unreachable!("{POSTING_SPAN} offsets fit in a u16"));
        self.buckets
            .entry((family, chunk, bucket_of(term)))
            .or_default()
            .push((term, offset));
    }

    /// Writes every bucket gathered, merged with what earlier commits stored there;
    /// `first` is the commit's first leaf.
    pub(crate) fn write(self, overlay: &mut Overlay<'_>, first: u64) -> Result<(), DerivedError> {
        for ((family, chunk, bucket), added) in self.buckets {
            let key = key(family, &[&chunk.to_be_bytes(), &[bucket]]);
            let stored = stored_before(overlay, &key, chunk * POSTING_SPAN, first)?;
            let mut postings: Vec<Posting<'_>> = Vec::new();
            if let Some(bytes) = &stored {
                for stored in stored_terms(&key, bytes)? {
                    postings.extend(stored.offsets().map(|offset| (stored.term, offset)));
                }
            }
            // Earlier commits hold earlier leaves: stored offsets come first, and a
            // stable sort by term keeps each term's offsets in ledger order.
            postings.extend(added);
            postings.sort_by(|a, b| a.0.cmp(b.0));
            overlay.put(key, encode(&postings));
        }
        Ok(())
    }
}

/// A bucket's bytes from its postings, sorted by term and each term's offsets ascending.
fn encode(postings: &[Posting<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 4 * postings.len());
    out.push(FORMAT_VERSION);
    for run in postings.chunk_by(|a, b| a.0 == b.0) {
        let term = run[0].0;
        let len = u8::try_from(term.len())
            .unwrap_or_else(|_| unreachable!("terms are checked as they are gathered"));
        let count = u16::try_from(run.len())
            .unwrap_or_else(|_| unreachable!("a term has at most {POSTING_SPAN} offsets"));
        out.push(len);
        out.extend_from_slice(term);
        out.extend_from_slice(&count.to_le_bytes());
        for pair in run.windows(2) {
            assert!(pair[0].1 < pair[1].1, "a term's offsets ascend");
        }
        for (_, offset) in run {
            out.extend_from_slice(&offset.to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::derived::family;

    fn gathered_and_committed(derived: &Derived, postings: &[(&[u8], u64)]) {
        let mut gathered = Gathered::default();
        for &(term, index) in postings {
            gathered.add(family::BY_FACILITY, term, index);
        }
        let mut overlay = Overlay::new(derived);
        gathered.write(&mut overlay, postings[0].1).unwrap();
        derived.commit(overlay.into_writes()).unwrap();
    }

    /// Terms that share a bucket are kept apart, each with only its own offsets, and a
    /// term absent from its bucket or chunk has none.
    #[test]
    fn terms_sharing_a_bucket_keep_their_own_offsets() {
        let terms: Vec<String> = (0..1000).map(|i| format!("F-{i}")).collect();
        let target = bucket_of(terms[0].as_bytes());
        let sharing: Vec<&[u8]> = terms
            .iter()
            .map(String::as_bytes)
            .filter(|t| bucket_of(t) == target)
            .take(3)
            .collect();
        assert_eq!(sharing.len(), 3, "three of a thousand terms share a bucket");
        let derived = Derived::temporary();
        let postings: Vec<(&[u8], u64)> = (0..30).map(|i| (sharing[i % 3], i as u64)).collect();
        gathered_and_committed(&derived, &postings);
        for (n, term) in sharing.iter().enumerate() {
            let expected: Vec<u16> = (0..30).filter(|i| i % 3 == n).map(|i| i as u16).collect();
            let held = chunk_offsets(&derived, family::BY_FACILITY, term, 0).unwrap();
            assert_eq!(held, expected, "term {n}");
        }
        let absent = terms
            .iter()
            .map(String::as_bytes)
            .find(|t| bucket_of(t) == target && !sharing.contains(t))
            .unwrap();
        assert_eq!(
            chunk_offsets(&derived, family::BY_FACILITY, absent, 0).unwrap(),
            Vec::<u16>::new()
        );
        assert_eq!(
            chunk_offsets(&derived, family::BY_FACILITY, sharing[0], 1).unwrap(),
            Vec::<u16>::new()
        );
    }

    /// A bucket's bytes are the same whether its leaves came in one commit or one at a
    /// time: rebuilt and incremental state agree byte for byte.
    #[test]
    fn a_buckets_bytes_do_not_depend_on_how_commits_split_its_leaves() {
        let terms: [&[u8]; 4] = [b"F-9", b"F-10", b"F-1", b"\x00"];
        let postings: Vec<(&[u8], u64)> = (0..200).map(|i| (terms[i % 4], i as u64)).collect();
        let whole = Derived::temporary();
        gathered_and_committed(&whole, &postings);
        let piecemeal = Derived::temporary();
        for posting in &postings {
            gathered_and_committed(&piecemeal, std::slice::from_ref(posting));
        }
        let pairs = |d: &Derived| d.pairs().collect::<Result<Vec<_>, _>>().unwrap();
        assert_eq!(pairs(&whole), pairs(&piecemeal));
        assert!(pairs(&whole).len() <= terms.len() + 1, "a key a bucket");
    }

    /// Stored buckets that are cut short, out of order or of another format are refused
    /// as undecodable, never read as fewer postings.
    #[test]
    fn damaged_buckets_are_refused() {
        let good = encode(&[(b"a", 1), (b"a", 5), (b"b", 2)]);
        assert_eq!(stored_terms(b"k", &good).unwrap().len(), 2);
        let mut out_of_order = vec![FORMAT_VERSION];
        out_of_order.extend_from_slice(&good[1 + 1 + 1 + 2 + 4..]);
        out_of_order.extend_from_slice(&good[1..1 + 1 + 1 + 2 + 4]);
        let mut other_version = good.clone();
        other_version[0] = FORMAT_VERSION - 1;
        for (what, bytes) in [
            ("cut short", &good[..good.len() - 1]),
            ("out of order", &out_of_order[..]),
            ("another format", &other_version[..]),
            ("empty", &[][..]),
        ] {
            let err = stored_terms(b"k", bytes).err();
            assert!(
                matches!(err, Some(DerivedError::Decode { .. })),
                "{what}: {err:?}"
            );
        }
    }

    /// The postings a commit writes are neighbours in the store: every bucket of a
    /// chunk, whatever its terms, sorts before every bucket of the next chunk.
    #[test]
    fn buckets_sort_by_chunk_first() {
        for family in [family::BY_KIND, family::BY_SIGNER, family::BY_FACILITY] {
            let of_chunk = |chunk| -> Vec<Vec<u8>> {
                (0..1000)
                    .map(|i| bucket_key(family, format!("F-{i}").as_bytes(), chunk))
                    .collect()
            };
            let last_of_chunk = of_chunk(7).into_iter().max().unwrap();
            let first_of_next = of_chunk(8).into_iter().min().unwrap();
            assert!(last_of_chunk < first_of_next, "family {family}");
            assert_eq!(
                of_chunk(7)
                    .into_iter()
                    .collect::<std::collections::HashSet<_>>()
                    .len(),
                POSTING_BUCKETS as usize,
                "a thousand terms fill every bucket"
            );
        }
    }

    /// The bucket hash is part of the stored format: these values must not change
    /// without a bump of the derived format.
    #[test]
    fn the_bucket_hash_is_fnv1a() {
        assert_eq!(bucket_of(b""), (0x811c_9dc5_u32 % POSTING_BUCKETS) as u8);
        assert_eq!(bucket_of(b"a"), (0xe40c_292c_u32 % POSTING_BUCKETS) as u8);
        assert_eq!(
            bucket_of(b"foobar"),
            (0xbf9c_f968_u32 % POSTING_BUCKETS) as u8
        );
    }
}
