//! Which entry first listed a term (a GPU serial number, say), answered from memory, so
//! that admitting millions of terms costs no store read or write per term.
//!
//! The store keeps each listing whole, once, under the index of the entry that made it
//! (`family::LISTING`): one write per entry, never read on the hot path. In memory, the
//! writer keeps a map from a keyed 64-bit digest of each term to the entry that first
//! listed it, loaded from the listings on first use. The digest key is random per
//! process, so nobody can aim terms at a collision; a digest hit is confirmed against
//! the listing it names, and a term whose digest another term already holds is kept
//! whole, in `overflow`. So the answer is exact, whatever the digests do.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::rc::Rc;

use serde::Deserialize;

use super::derived::{Derived, DerivedError, decode, family, key};
use super::digests::{DigestMap, Digests};

/// A listing of terms by one entry: the owner they were listed for (a lot) and the
/// terms, as the entry gave them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Listing {
    pub owner: String,
    #[serde(deserialize_with = "front_coded::deserialize")]
    pub terms: Vec<String>,
}

/// A listing to store, borrowed from the entry that makes it: stored as a `Listing` is
/// (`encode_listing`).
pub struct ListingRef<'a> {
    pub owner: &'a str,
    pub terms: &'a [&'a str],
}

pub(crate) use front_coded::encode as encode_listing;

/// Terms stored front-coded: each as the length of the prefix it shares with the term
/// before it, then the rest. Serial numbers are listed in runs (`1653000960100000`,
/// `…001`, …), so a listing takes about a quarter of its text.
mod front_coded {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};

    use super::ListingRef;
    use crate::store::derived::FORMAT_VERSION;

    /// A listing's stored bytes, as `derived::encode` would write a `Listing` (the format
    /// byte, then postcard: the owner, the number of terms, and each term front-coded as
    /// the length it shares with the term before and the rest), written by hand: each
    /// term's shared prefix worked out once, then its bytes written into room made for the
    /// whole listing. Through serde, `encode` front-coded every term twice (once to size
    /// the bytes) and wrote it field by field; a rebuild stores millions of serials, and
    /// that was about a twelfth of its admitting thread (BENCHMARKS.md).
    pub(crate) fn encode(listing: &ListingRef<'_>) -> Vec<u8> {
        let mut shared = Vec::with_capacity(listing.terms.len());
        let mut previous = "";
        for term in listing.terms {
            shared.push(shared_chars(previous, term));
            previous = term;
        }
        let size = 1
            + str_size(listing.owner)
            + varint_size(listing.terms.len())
            + listing
                .terms
                .iter()
                .zip(&shared)
                .map(|(term, &shared)| varint_size(shared) + str_size(&term[shared..]))
                .sum::<usize>();
        let mut out = Vec::with_capacity(size);
        out.push(FORMAT_VERSION);
        put_str(&mut out, listing.owner);
        put_varint(&mut out, listing.terms.len());
        for (term, &shared) in listing.terms.iter().zip(&shared) {
            put_varint(&mut out, shared);
            put_str(&mut out, &term[shared..]);
        }
        debug_assert_eq!(
            out.len(),
            size,
            "a listing's bytes fill the room made for them"
        );
        out
    }

    /// Bytes of postcard's varint of `n`: seven bits a byte.
    fn varint_size(n: usize) -> usize {
        (usize::BITS - n.leading_zeros()).div_ceil(7).max(1) as usize
    }

    /// Bytes of a string in postcard: its length, then its bytes.
    fn str_size(s: &str) -> usize {
        varint_size(s.len()) + s.len()
    }

    fn put_varint(out: &mut Vec<u8>, mut n: usize) {
        while n >= 0x80 {
            // The low seven bits, with the bit that says more follow.
            out.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    fn put_str(out: &mut Vec<u8>, s: &str) {
        put_varint(out, s.len());
        out.extend_from_slice(s.as_bytes());
    }

    /// How many bytes `term` begins with alike with `previous`, up to a character: the
    /// rest starts on one, so it is a string of its own.
    fn shared_chars(previous: &str, term: &str) -> usize {
        let mut shared = shared_prefix(previous.as_bytes(), term.as_bytes());
        while !term.is_char_boundary(shared) {
            shared -= 1;
        }
        shared
    }

    /// How many bytes `a` and `b` begin with alike, compared eight at a time: a
    /// rebuild front-codes millions of serial numbers, which share most of their bytes
    /// with the one before.
    pub(super) fn shared_prefix(a: &[u8], b: &[u8]) -> usize {
        let mut shared = 0;
        let (a_words, b_words) = (a.as_chunks::<8>().0, b.as_chunks::<8>().0);
        for (x, y) in a_words.iter().zip(b_words) {
            let differ = u64::from_le_bytes(*x) ^ u64::from_le_bytes(*y);
            if differ != 0 {
                // The first byte is the word's lowest: its first differing bit says which.
                return shared + (differ.trailing_zeros() / 8) as usize;
            }
            shared += 8;
        }
        shared
            + a[shared..]
                .iter()
                .zip(&b[shared..])
                .take_while(|(x, y)| x == y)
                .count()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let coded: Vec<(usize, String)> = Vec::deserialize(d)?;
        let mut terms: Vec<String> = Vec::with_capacity(coded.len());
        for (shared, rest) in coded {
            let previous = terms.last().map_or("", String::as_str);
            let prefix = previous
                .get(..shared)
                .ok_or_else(|| D::Error::custom("a front-coded term shares more than it can"))?;
            terms.push(format!("{prefix}{rest}"));
        }
        Ok(terms)
    }
}

pub(crate) fn listing_key(index: u64) -> Vec<u8> {
    key(family::LISTING, &[&index.to_be_bytes()])
}

/// Terms to first listings, as the store holds them. `S` makes the digests (tests use
/// one under which every term collides).
pub(crate) struct FirstSeen<S = RandomState> {
    hasher: S,
    by_digest: Digests,
    /// Terms whose digest an earlier, different term holds.
    overflow: HashMap<String, u64>,
}

/// First listings a batch adds, undoable to a mark.
#[derive(Default)]
pub(crate) struct Pending {
    by_digest: DigestMap<u64>,
    overflow: HashMap<String, u64>,
    journal: Vec<Undo>,
}

/// What a claim added, in the order entries claimed: undone from the end by `rollback`,
/// merged from the start (ledger order) by `merge`.
enum Undo {
    Digest { digest: u64, index: u64 },
    Overflow(String),
}

impl FirstSeen {
    /// No listing yet: how a replay from the first leaf begins, working first listings
    /// out ahead of admission (`ledger::replay`).
    pub(crate) fn new() -> FirstSeen {
        FirstSeen::empty(RandomState::new())
    }

    /// Loads every listing of `derived`, in ledger order.
    pub(crate) fn load(derived: &Derived) -> Result<FirstSeen, DerivedError> {
        let mut seen = FirstSeen::empty(RandomState::new());
        for kv in derived.scan_prefix(&[family::LISTING]) {
            let (k, v) = kv?;
            let index = listing_index(&k)?;
            let listing: Listing = decode(&k, &v)?;
            seen.add_listing(index, &listing, |i| {
                Ok(derived.get_decoded(&listing_key(i))?.map(Rc::new))
            })?;
        }
        Ok(seen)
    }
}

impl<S: BuildHasher> FirstSeen<S> {
    fn empty(hasher: S) -> FirstSeen<S> {
        FirstSeen::with_digests(hasher, Digests::default())
    }

    fn with_digests(hasher: S, by_digest: Digests) -> FirstSeen<S> {
        FirstSeen {
            hasher,
            by_digest,
            overflow: HashMap::new(),
        }
    }

    /// Takes in a committed listing, the next in ledger order: the claims of a replay in
    /// order, each term once (an entry's repeats are recorded at its first mention).
    fn add_listing(
        &mut self,
        index: u64,
        listing: &Listing,
        get: impl Fn(u64) -> Result<Option<Rc<Listing>>, DerivedError>,
    ) -> Result<(), DerivedError> {
        let mut here = HashSet::new();
        let terms: Vec<&str> = listing
            .terms
            .iter()
            .map(String::as_str)
            .filter(|term| here.insert(*term))
            .collect();
        self.first_listings_or_claim_in_order(get, &terms, index)?;
        Ok(())
    }

    fn digest(&self, term: &str) -> u64 {
        self.hasher.hash_one(term)
    }

    /// Each term's digest, and the committed listing that holds it if any, all searched
    /// together so that the searches overlap their cache misses (`Digests::get_many`).
    fn searched(&self, terms: &[&str]) -> (Vec<u64>, Vec<Option<u64>>) {
        let digests: Vec<u64> = terms.iter().map(|term| self.digest(term)).collect();
        let committed = self.by_digest.get_many(&digests);
        (digests, committed)
    }

    /// Takes in a committed batch's first listings.
    pub(crate) fn merge(&mut self, pending: Pending) {
        self.by_digest.reserve(pending.by_digest.len());
        self.by_digest
            .extend(pending.journal.into_iter().filter_map(|undo| match undo {
                Undo::Digest { digest, index } => Some((digest, index)),
                Undo::Overflow(_) => None,
            }));
        self.overflow.extend(pending.overflow);
    }
}

fn listing_index(k: &[u8]) -> Result<u64, DerivedError> {
    k.get(1..)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| DerivedError::Decode {
            key: hex::encode(k),
            reason: "a listing's key holds no entry index".into(),
        })
}

/// `Some(index)` if the listing at `index` lists `term`.
fn confirmed(
    get: impl Fn(u64) -> Result<Option<Rc<Listing>>, DerivedError>,
    term: &str,
    index: u64,
) -> Result<Option<u64>, DerivedError> {
    let listing = get(index)?.ok_or_else(|| DerivedError::Decode {
        key: format!("listing of entry {index}"),
        reason: "a term's first listing is missing".into(),
    })?;
    Ok(listing.terms.iter().any(|t| t == term).then_some(index))
}

/// Looks terms up across the committed and the pending first listings of entries
/// before `index`, the entry asking (whose own listing is not stored yet); `get` reads
/// listings through the pending writes. Each term that no earlier entry listed is
/// recorded as first listed by `index`, in `pending`. The terms are the entry's, each
/// once: the entry tells its own repeats apart.
///
/// One call does both so that a new term, the common case, costs one digest and one
/// search of the committed digests; and it takes all of an entry's terms, so that those
/// searches overlap their cache misses (`Digests::get_many`). The committed digests do
/// not change before the batch is merged, so searching them first for every term gives
/// what searching them term by term would.
pub(crate) fn first_listings_or_claim<S: BuildHasher>(
    seen: &FirstSeen<S>,
    pending: &mut Pending,
    get: impl Fn(u64) -> Result<Option<Rc<Listing>>, DerivedError>,
    terms: &[&str],
    index: u64,
) -> Result<Vec<Option<u64>>, DerivedError> {
    let (digests, committed) = seen.searched(terms);
    terms
        .iter()
        .zip(digests)
        .zip(committed)
        .map(|((term, digest), committed)| {
            first_listing_or_claim(seen, pending, &get, term, digest, committed, index)
        })
        .collect()
}

/// What the committed first listings say of a term.
enum Known {
    /// An earlier entry listed it first.
    At(u64),
    /// No entry listed it, but another term holds its digest: it is to be kept whole.
    DigestHeld,
    /// No entry listed it, and no committed term holds its digest.
    Free,
}

/// What the committed first listings say of `term`, given the committed listing that
/// holds its digest, if any.
fn known<S: BuildHasher>(
    seen: &FirstSeen<S>,
    get: impl Fn(u64) -> Result<Option<Rc<Listing>>, DerivedError>,
    term: &str,
    committed: Option<u64>,
) -> Result<Known, DerivedError> {
    if let Some(&i) = seen.overflow.get(term) {
        return Ok(Known::At(i));
    }
    Ok(match committed {
        Some(i) => confirmed(get, term, i)?.map_or(Known::DigestHeld, Known::At),
        None => Known::Free,
    })
}

impl<S: BuildHasher> FirstSeen<S> {
    /// `first_listings_or_claim` where every entry asking is admitted, in ledger order,
    /// so that no claim is ever rolled back (a replay from the first leaf working first
    /// listings out ahead of admission, and `load`): each new term is claimed straight into the
    /// committed digests, with no `Pending` between, which would cost a second map
    /// insert a term. `get` reads the listings of the entries that asked before. On an
    /// error the claims made so far stay; the replay stops there.
    pub(crate) fn first_listings_or_claim_in_order(
        &mut self,
        get: impl Fn(u64) -> Result<Option<Rc<Listing>>, DerivedError>,
        terms: &[&str],
        index: u64,
    ) -> Result<Vec<Option<u64>>, DerivedError> {
        // Searched before any claim of this entry, as `Digests::claim` requires.
        let (digests, committed) = self.searched(terms);
        let mut found = Vec::with_capacity(terms.len());
        for ((term, digest), committed) in terms.iter().zip(digests).zip(committed) {
            let first = match known(self, &get, term, committed)? {
                Known::At(i) => Some(i),
                Known::DigestHeld => {
                    self.overflow.insert(term.to_string(), index);
                    None
                }
                Known::Free => {
                    // Not claimed when another term of this very entry claimed the
                    // digest just before: the entry's listing names this term too, so
                    // confirming the digest's holder finds it.
                    let _claimed = self.by_digest.claim(digest, index);
                    None
                }
            };
            found.push(first);
        }
        self.by_digest.settle();
        Ok(found)
    }
}

/// One term of `first_listings_or_claim`, with its digest and the committed listing
/// that holds the digest, if any.
fn first_listing_or_claim<S: BuildHasher>(
    seen: &FirstSeen<S>,
    pending: &mut Pending,
    get: impl Fn(u64) -> Result<Option<Rc<Listing>>, DerivedError>,
    term: &str,
    digest: u64,
    committed: Option<u64>,
    index: u64,
) -> Result<Option<u64>, DerivedError> {
    if let Some(&i) = pending.overflow.get(term) {
        return Ok(Some(i));
    }
    // Whether another term holds the digest, committed or pending: then this one, if
    // new, is kept whole.
    let committed_holds = match known(seen, &get, term, committed)? {
        Known::At(i) => return Ok(Some(i)),
        Known::DigestHeld => true,
        Known::Free => false,
    };
    let pending_holds = match pending.by_digest.get(&digest) {
        // Another term of this very entry holds the digest.
        Some(&i) if i == index => true,
        Some(&i) => match confirmed(&get, term, i)? {
            Some(i) => return Ok(Some(i)),
            None => true,
        },
        None => false,
    };
    if committed_holds || pending_holds {
        pending.overflow.insert(term.to_string(), index);
        pending.journal.push(Undo::Overflow(term.to_string()));
    } else {
        pending.by_digest.insert(digest, index);
        pending.journal.push(Undo::Digest { digest, index });
    }
    Ok(None)
}

impl Pending {
    /// Whether no first listing was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.journal.is_empty()
    }

    pub(crate) fn mark(&self) -> usize {
        self.journal.len()
    }

    pub(crate) fn rollback(&mut self, mark: usize) {
        while self.journal.len() > mark {
            match self.journal.pop() {
                Some(Undo::Digest { digest, .. }) => self.by_digest.remove(&digest),
                Some(Undo::Overflow(t)) => self.overflow.remove(&t),
                None => None,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::hash::{BuildHasherDefault, Hasher};

    use proptest::prelude::*;

    use super::*;

    /// Every term hashes to 0: every lookup after the first meets a collision.
    #[derive(Default)]
    struct Colliding;

    impl Hasher for Colliding {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, _: &[u8]) {}
    }

    /// Listings read from `store` (keys to stored bytes), as the store would read them.
    fn stored(
        store: &BTreeMap<Vec<u8>, Vec<u8>>,
    ) -> impl Fn(u64) -> Result<Option<Rc<Listing>>, DerivedError> + '_ {
        |i| {
            let k = listing_key(i);
            Ok(store
                .get(&k)
                .map(|v| Rc::new(decode::<Listing>(&k, v).unwrap())))
        }
    }

    /// An entry's terms: serial numbers made of small numbers.
    fn serials(numbers: &[u8]) -> Vec<String> {
        numbers.iter().map(|n| format!("SN{n}")).collect()
    }

    /// An entry's terms, each once: an entry's repeats of its own terms are its caller's
    /// to tell apart.
    fn each_once(terms: &[String]) -> Vec<&str> {
        let mut here = HashSet::new();
        terms
            .iter()
            .map(String::as_str)
            .filter(|t| here.insert(*t))
            .collect()
    }

    /// Listings entered one batch at a time, some batches rolled back in part; after
    /// each, every term's first listing must be what a plain map of whole terms says.
    fn check<S: BuildHasher>(hasher: S, batches: &[(Vec<Vec<u8>>, bool)]) {
        let mut seen = FirstSeen::with_digests(hasher, Digests::with_recent_min(4));
        let mut store: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut model: HashMap<String, u64> = HashMap::new();
        let mut index = 0u64;
        for (entries, roll_back_last) in batches {
            let mut pending = Pending::default();
            let mut staged = store.clone();
            let mut staged_model = model.clone();
            let mut mark = (pending.mark(), staged.clone(), staged_model.clone());
            for terms in entries {
                mark = (pending.mark(), staged.clone(), staged_model.clone());
                let terms = serials(terms);
                let fresh = each_once(&terms);
                let get = stored(&staged);
                let found =
                    first_listings_or_claim(&seen, &mut pending, get, &fresh, index).unwrap();
                for (term, found) in fresh.iter().zip(found) {
                    assert_eq!(found, staged_model.get(*term).copied(), "{term}");
                    if found.is_none() {
                        staged_model.insert(term.to_string(), index);
                    }
                }
                let listing = ListingRef {
                    owner: &format!("lot-{index}"),
                    terms: &terms.iter().map(String::as_str).collect::<Vec<_>>(),
                };
                staged.insert(listing_key(index), encode_listing(&listing));
                index += 1;
            }
            if *roll_back_last {
                pending.rollback(mark.0);
                staged = mark.1;
                staged_model = mark.2;
            }
            store = staged;
            model = staged_model;
            seen.merge(pending);
        }
        // Loading from the listings gives the same answers.
        let mut loaded = FirstSeen::with_digests(RandomState::new(), Digests::with_recent_min(4));
        for (k, v) in &store {
            let listing: Listing = decode(k, v).unwrap();
            let get = stored(&store);
            loaded
                .add_listing(listing_index(k).unwrap(), &listing, get)
                .unwrap();
        }
        for (term, first) in &model {
            let get = stored(&store);
            let mut pending = Pending::default();
            assert_eq!(
                first_listings_or_claim(&loaded, &mut pending, get, &[term], u64::MAX).unwrap(),
                vec![Some(*first)]
            );
        }
    }

    /// Entries claiming in order, straight into the committed digests: every term's
    /// first listing must be what a plain map of whole terms says.
    fn check_in_order<S: BuildHasher>(hasher: S, entries: &[Vec<u8>]) {
        let mut seen = FirstSeen::with_digests(hasher, Digests::with_recent_min(4));
        let mut store: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut model: HashMap<String, u64> = HashMap::new();
        for (index, terms) in (0u64..).zip(entries) {
            let terms = serials(terms);
            let fresh = each_once(&terms);
            let get = stored(&store);
            let found = seen
                .first_listings_or_claim_in_order(get, &fresh, index)
                .unwrap();
            for (term, found) in fresh.iter().zip(found) {
                assert_eq!(found, model.get(*term).copied(), "{term}");
                model.entry(term.to_string()).or_insert(index);
            }
            let listing = ListingRef {
                owner: &format!("lot-{index}"),
                terms: &terms.iter().map(String::as_str).collect::<Vec<_>>(),
            };
            store.insert(listing_key(index), encode_listing(&listing));
        }
    }

    proptest! {
        #[test]
        fn first_listings_claimed_in_order_are_exact_whatever_the_digests_do(
            entries in proptest::collection::vec(proptest::collection::vec(0u8..60, 0..8), 1..40)
        ) {
            check_in_order(RandomState::new(), &entries);
            check_in_order(BuildHasherDefault::<Colliding>::default(), &entries);
        }

        #[test]
        fn the_shared_prefix_is_the_bytes_alike_from_the_start(
            a in proptest::collection::vec(0u8..3, 0..40),
            b in proptest::collection::vec(0u8..3, 0..40),
            common in proptest::collection::vec(any::<u8>(), 0..30),
        ) {
            let a = [&common[..], &a].concat();
            let b = [&common[..], &b].concat();
            let alike = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            prop_assert_eq!(front_coded::shared_prefix(&a, &b), alike);
        }

        #[test]
        fn listings_read_back_as_written(
            owner in ".{0,8}",
            terms in proptest::collection::vec("(SN-20250101-é|SN|é|ab)?[0-9é]{0,12}", 0..20),
        ) {
            let strs: Vec<&str> = terms.iter().map(String::as_str).collect();
            let bytes = encode_listing(&ListingRef { owner: &owner, terms: &strs });
            prop_assert_eq!(decode::<Listing>(b"k", &bytes).unwrap(), Listing { owner, terms });
        }

        /// Lengths and counts past one varint byte: a long owner, many terms, long ones.
        #[test]
        fn long_listings_read_back_as_written(
            owner_len in 0usize..20_000,
            terms in proptest::collection::vec((0usize..300, "[0-9é]{0,3}"), 0..300),
        ) {
            let owner = "o".repeat(owner_len);
            let terms: Vec<String> = terms
                .into_iter()
                .map(|(shared, rest)| format!("{}{rest}", "x".repeat(shared)))
                .collect();
            let strs: Vec<&str> = terms.iter().map(String::as_str).collect();
            let bytes = encode_listing(&ListingRef { owner: &owner, terms: &strs });
            prop_assert_eq!(decode::<Listing>(b"k", &bytes).unwrap(), Listing { owner, terms });
        }

        #[test]
        fn first_listings_are_exact_whatever_the_digests_do(
            batches in proptest::collection::vec(
                (proptest::collection::vec(proptest::collection::vec(0u8..40, 0..6), 1..5),
                 any::<bool>()),
                1..8,
            )
        ) {
            check(RandomState::new(), &batches);
            check(BuildHasherDefault::<Colliding>::default(), &batches);
        }
    }
}
