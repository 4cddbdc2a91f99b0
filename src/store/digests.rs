//! The digests of first listings, compact: a sorted array of 64-bit digests beside the
//! ordinal of the listing that first listed each (12 bytes a term, where a hash map
//! took about 32 once its power-of-two capacity is counted), found through a directory
//! of their top bits, with the digests added since the arrays were last rebuilt in a
//! small map. The digests are keyed hashes, so they spread evenly over the directory.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasherDefault, Hasher};

/// Digests to entry indices, using each digest as its own hash.
pub(crate) type DigestMap<V> = HashMap<u64, V, BuildHasherDefault<AsIs>>;

/// The hasher of `DigestMap`: a digest is already a keyed hash, uniformly spread.
#[derive(Default)]
pub(crate) struct AsIs(u64);

impl Hasher for AsIs {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 digests are hashed as they are")
    }

    fn write_u64(&mut self, digest: u64) {
        self.0 = digest;
    }
}

/// Digests in `recent` below which the arrays are not rebuilt.
const RECENT_MIN: usize = 1 << 16;

/// `recent` is folded once it holds this fraction of `sorted`. A hash map keeps every
/// bucket it grew to, so `recent` at its largest is most of what this structure adds to
/// the peak: at a million entries (17.6 million serials) an eighth held about 68 MB;
/// a sixteenth halves that for twice as many folds, each a merge of the arrays from their
/// ends (BENCHMARKS.md).
const RECENT_SHARE: usize = 16;

/// Digests per directory slot the directory is sized for.
const PER_SLOT: usize = 4;

pub(crate) struct Digests {
    /// Ascending, each once.
    sorted: Vec<u64>,
    /// The listing ordinal of `sorted[i]`.
    ordinals: Vec<u32>,
    /// `directory[b]` is the first position in `sorted` whose top `bits` bits are `b` or
    /// more; it has `2^bits + 1` slots.
    directory: Vec<u32>,
    bits: u32,
    /// Digests added since `sorted` was rebuilt.
    recent: DigestMap<u32>,
    /// The entry index of each listing ordinal, ascending.
    listings: Vec<u64>,
    /// `recent` is folded into `sorted` when it holds more than this many digests or
    /// `sorted.len() / RECENT_SHARE`, whichever is more.
    recent_min: usize,
}

impl Default for Digests {
    fn default() -> Digests {
        Digests::with_recent_min(RECENT_MIN)
    }
}

impl Digests {
    pub(crate) fn with_recent_min(recent_min: usize) -> Digests {
        Digests {
            sorted: Vec::new(),
            ordinals: Vec::new(),
            directory: vec![0, 0],
            bits: 0,
            recent: DigestMap::default(),
            listings: Vec::new(),
            recent_min,
        }
    }

    /// The entries that first listed a term with each of these digests, looked up
    /// together: the directory slots of all of them first, then
    /// the sorted runs, each a pass of loads independent of one another, so that the
    /// processor overlaps their cache misses where one digest at a time waits for each
    /// in turn. The arrays are far larger than a core's cache, so those misses are most
    /// of a lookup's time.
    pub(crate) fn get_many(&self, digests: &[u64]) -> Vec<Option<u64>> {
        let runs: Vec<(u32, u32)> = digests.iter().map(|&d| self.run(d)).collect();
        digests
            .iter()
            .zip(runs)
            .map(|(&digest, run)| self.find(digest, run))
            .collect()
    }

    /// Where in `sorted` a digest can be: the run of its directory slot.
    fn run(&self, digest: u64) -> (u32, u32) {
        let slot = self.slot(digest);
        (self.directory[slot], self.directory[slot + 1])
    }

    /// The entry that first listed a term with this digest, given the digest's run.
    fn find(&self, digest: u64, run: (u32, u32)) -> Option<u64> {
        let ordinal = match self.recent.get(&digest) {
            Some(&o) => o,
            None => self.sorted_ordinal(digest, run)?,
        };
        Some(self.listings[ordinal as usize])
    }

    fn sorted_ordinal(&self, digest: u64, (lo, hi): (u32, u32)) -> Option<u32> {
        let (lo, hi) = (lo as usize, hi as usize);
        let at = self.sorted[lo..hi].binary_search(&digest).ok()?;
        Some(self.ordinals[lo + at])
    }

    fn slot(&self, digest: u64) -> usize {
        top_bits(digest, self.bits)
    }

    /// Makes room for `more` digests added without another allocation.
    pub(crate) fn reserve(&mut self, more: usize) {
        self.recent.reserve(more);
    }

    /// Adds `digest` as first listed by entry `index`, unless `recent` holds it already:
    /// whether it was added. The caller found the digest absent from `sorted` (`get_many`
    /// gave `None`) since the last `settle`, which alone changes `sorted`; entries claim
    /// in ledger order, as for `extend`. One probe of `recent` both asks and adds.
    pub(crate) fn claim(&mut self, digest: u64, index: u64) -> bool {
        debug_assert!(
            self.sorted_ordinal(digest, self.run(digest)).is_none(),
            "a claimed digest was searched for in the sorted digests first"
        );
        match self.recent.entry(digest) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                slot.insert(listing_ordinal(&mut self.listings, index));
                true
            }
        }
    }

    /// Folds `recent` into the sorted arrays when it has grown enough: after an entry's
    /// claims, never between them.
    pub(crate) fn settle(&mut self) {
        if self.recent.len() > self.recent_min.max(self.sorted.len() / RECENT_SHARE) {
            self.fold_recent();
        }
    }

    /// Adds digests, none of them here already, each with the index of the entry that
    /// first listed it, in ledger order (the order entries claim them); those entries
    /// come after every entry added before.
    pub(crate) fn extend(&mut self, added: impl IntoIterator<Item = (u64, u64)>) {
        for (digest, index) in added {
            let ordinal = listing_ordinal(&mut self.listings, index);
            let before = self.recent.insert(digest, ordinal);
            debug_assert!(before.is_none(), "a digest is added once");
        }
        self.settle();
    }

    /// Merges `recent` into the sorted arrays, in place from their ends, and brings the
    /// directory up to date.
    fn fold_recent(&mut self) {
        let recent = by_digest(&self.recent);
        self.recent.clear();
        let old = self.sorted.len();
        let total = old + recent.len();
        assert!(u32::try_from(total).is_ok(), "more than 2^32 digests");
        self.sorted.resize(total, 0);
        self.ordinals.resize(total, 0);
        // From the largest recent digest down, the sorted digests above it move up by
        // the recent ones still to place, one block at a time, and it lands below them.
        // Recent digests are a sixteenth of the sorted ones, so the blocks are long and
        // moved at the speed of copying memory, where a merge digest by digest waited on
        // each comparison in turn. Each is found through the directory as it was before
        // the fold, which stays right below `unmoved` (the digests at and above it have
        // moved, and are all larger).
        let mut unmoved = old;
        // A fold that takes the digests past the slots the directory was sized for builds
        // it again; otherwise each slot begins as many places later as recent digests
        // land below it, counted as they land, slot by slot from the top.
        let resized = Digests::directory_bits(total) != self.bits;
        let mut shifted_from = self.directory.len();
        for (j, &(digest, ordinal)) in recent.iter().enumerate().rev() {
            let (lo, hi) = self.run(digest);
            let (lo, hi) = (lo as usize, (hi as usize).min(unmoved));
            let at = lo + self.sorted[lo..hi].partition_point(|&d| d < digest);
            self.sorted.copy_within(at..unmoved, at + j + 1);
            self.ordinals.copy_within(at..unmoved, at + j + 1);
            self.sorted[at + j] = digest;
            self.ordinals[at + j] = ordinal;
            unmoved = at;
            if !resized {
                let above = self.slot(digest) + 1;
                // `total` fits a u32 (asserted above), so `j + 1` does.
                for start in &mut self.directory[above..shifted_from] {
                    *start += (j + 1) as u32;
                }
                shifted_from = above;
            }
        }
        if resized {
            self.rebuild_directory();
        }
        debug_assert!(
            self.directory_is_right(),
            "the directory points at each slot's first digest"
        );
    }

    /// How many top bits of a digest choose its directory slot, for `total` digests.
    fn directory_bits(total: usize) -> u32 {
        (total / PER_SLOT)
            .max(1)
            .next_power_of_two()
            .trailing_zeros()
            .min(32)
    }

    /// Whether the directory is sized for the digests and each slot points at the first
    /// digest whose slot is it or later: the digest before that one is in an earlier
    /// slot, and that one is not.
    fn directory_is_right(&self) -> bool {
        let total = self.sorted.len();
        self.bits == Digests::directory_bits(total)
            && self.directory.len() == (1 << self.bits) + 1
            && self.directory.first() == Some(&0)
            && self.directory.last() == Some(&(total as u32))
            && self.directory.iter().enumerate().all(|(slot, &first)| {
                let first = first as usize;
                first <= total
                    && (first == 0 || self.slot(self.sorted[first - 1]) < slot)
                    && (first == total || self.slot(self.sorted[first]) >= slot)
            })
    }

    /// Sizes the directory for `sorted` and points each slot at its first digest: every
    /// digest marks where the slot after its own begins (the last mark of a slot is the
    /// one left), and a slot no digest falls in begins where the one before it does.
    fn rebuild_directory(&mut self) {
        self.bits = Digests::directory_bits(self.sorted.len());
        let slots = 1usize << self.bits;
        let mut directory = vec![0u32; slots + 1];
        for (at, &digest) in self.sorted.iter().enumerate() {
            // `total` fits a u32 (asserted by the fold).
            directory[self.slot(digest) + 1] = (at + 1) as u32;
        }
        for slot in 1..=slots {
            directory[slot] = directory[slot].max(directory[slot - 1]);
        }
        self.directory = directory;
    }
}

/// The top `bits` bits of `digest`, `bits` at most 32: a position in a table of
/// `2^bits` slots, which fits a usize on the targets we build for.
fn top_bits(digest: u64, bits: u32) -> usize {
    debug_assert!(bits <= 32, "at most 2^32 slots");
    match bits {
        0 => 0,
        bits => (digest >> (64 - bits)) as usize,
    }
}

/// Digests of a fold, each once, with their ordinals, sorted by digest. The digests are
/// keyed hashes, spread evenly, so they are dealt out by their top bits into about one
/// bucket for every two (a count, then a placing pass), and each bucket, a few digests,
/// is sorted on its own, in place of a comparison sort of them all, which was a third of
/// the folds' time (BENCHMARKS.md, thirty-third pass). Digests that were not spread would
/// make it slower, never wrong.
fn by_digest(digests: &DigestMap<u32>) -> Vec<(u64, u32)> {
    let total = digests.len();
    let bits = total
        .div_ceil(2)
        .max(1)
        .next_power_of_two()
        .trailing_zeros()
        .min(32);
    let mut starts = vec![0usize; (1 << bits) + 1];
    for &digest in digests.keys() {
        starts[top_bits(digest, bits) + 1] += 1;
    }
    for bucket in 1..starts.len() {
        starts[bucket] += starts[bucket - 1];
    }
    let mut sorted = vec![(0, 0); total];
    let mut next = starts.clone();
    for (&digest, &ordinal) in digests {
        let at = &mut next[top_bits(digest, bits)];
        sorted[*at] = (digest, ordinal);
        *at += 1;
    }
    for bucket in starts.windows(2) {
        sorted[bucket[0]..bucket[1]].sort_unstable_by_key(|&(digest, _)| digest);
    }
    sorted
}

/// The listing ordinal of entry `index` in `listings` (entry indices, ascending), which
/// it ends or which it is added to the end of.
fn listing_ordinal(listings: &mut Vec<u64>, index: u64) -> u32 {
    if listings.last() != Some(&index) {
        assert!(
            listings.last().is_none_or(|&last| last < index),
            "listings are added in ledger order"
        );
        listings.push(index);
    }
    u32::try_from(listings.len() - 1)
        .unwrap_or_else(|_| unreachable!("more than 2^32 listings of terms"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn get(digests: &Digests, digest: u64) -> Option<u64> {
        digests.get_many(&[digest])[0]
    }

    proptest! {
        /// Dealt out by their top bits or not (small numbers share a bucket), digests come
        /// out sorted, each with its ordinal.
        #[test]
        fn a_fold_sorts_its_digests_however_they_spread(
            spread in proptest::collection::hash_map(any::<u64>(), any::<u32>(), 0..300),
            bunched in proptest::collection::hash_map(0u64..1000, any::<u32>(), 0..300),
        ) {
            for digests in [spread, bunched] {
                let map: DigestMap<u32> = digests.into_iter().collect();
                let mut expected: Vec<(u64, u32)> = map.iter().map(|(&d, &o)| (d, o)).collect();
                expected.sort_unstable();
                prop_assert_eq!(by_digest(&map), expected);
            }
        }

        #[test]
        fn digests_are_found_across_folds(
            batches in proptest::collection::vec(
                proptest::collection::hash_set(any::<u64>(), 0..40), 1..12),
            probes in proptest::collection::vec(any::<u64>(), 0..20),
        ) {
            let mut digests = Digests::with_recent_min(8);
            let mut model: std::collections::HashMap<u64, u64> = Default::default();
            for (batch, added) in batches.into_iter().enumerate() {
                // Several digests an entry, entries in ledger order.
                let fresh: Vec<(u64, u64)> = added
                    .into_iter()
                    .filter(|d| !model.contains_key(d))
                    .enumerate()
                    .map(|(i, d)| (d, 100 * batch as u64 + (i / 3) as u64))
                    .collect();
                model.extend(fresh.iter().copied());
                digests.extend(fresh);
                for (&d, &index) in &model {
                    prop_assert_eq!(get(&digests, d), Some(index));
                }
                let all: Vec<u64> = model.keys().copied().collect();
                let expected: Vec<Option<u64>> = all.iter().map(|d| model.get(d).copied()).collect();
                prop_assert_eq!(digests.get_many(&all), expected);
            }
            for &probe in &probes {
                prop_assert_eq!(get(&digests, probe), model.get(&probe).copied());
            }
            let expected: Vec<Option<u64>> = probes.iter().map(|p| model.get(p).copied()).collect();
            prop_assert_eq!(digests.get_many(&probes), expected);
        }

        /// Entries claim their digests as a replay does: each searched for before any of
        /// the entry's claims, claimed when not found, folded in between entries only.
        /// A digest is first listed by the first entry to claim it, and an entry's own
        /// repeat of a digest it just claimed is refused.
        #[test]
        fn the_first_entry_to_claim_a_digest_keeps_it(
            entries in proptest::collection::vec(
                proptest::collection::vec(0u64..300, 0..30), 1..60),
        ) {
            let mut digests = Digests::with_recent_min(8);
            let mut model: std::collections::HashMap<u64, u64> = Default::default();
            for (index, claimed) in entries.into_iter().enumerate() {
                let index = index as u64;
                let searched = digests.get_many(&claimed);
                let before: Vec<Option<u64>> = claimed.iter().map(|d| model.get(d).copied()).collect();
                prop_assert_eq!(&searched, &before);
                for (d, found) in claimed.into_iter().zip(searched) {
                    if found.is_none() {
                        let new = !model.contains_key(&d);
                        prop_assert_eq!(digests.claim(d, index), new);
                        if new {
                            model.insert(d, index);
                        }
                    }
                }
                digests.settle();
                for (&d, &first) in &model {
                    prop_assert_eq!(get(&digests, d), Some(first));
                }
            }
        }
    }
}
