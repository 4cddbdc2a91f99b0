//! RFC 6962 / RFC 9162 §2.1 Merkle tree over SHA-256.
//!
//! * `leaf_hash = SHA-256(0x00 || leaf)`, `node_hash = SHA-256(0x01 || left || right)`,
//!   `MTH({}) = SHA-256("")`; a tree of `n > 1` leaves splits at the largest power of two
//!   strictly below `n`.
//! * Inclusion and consistency proofs follow RFC 9162 §2.1.3 / §2.1.4 and are checked with the
//!   verification algorithms of §2.1.3.2 / §2.1.4.2.
//!
//! Storage is made of *complete subtrees* ([`NodeId`]): once complete they never change, so the
//! root and proofs of any historic tree size can be served from them. Every subtree that RFC 6962
//! needs is either complete or a right-edge subtree, and a right-edge subtree is a suffix of the
//! size's [`frontier_ids`]; proof generation therefore reads `O(log n)` distinct stored nodes, each
//! at most once per call, and never rehashes leaves.
//!
//! The module does no I/O: node reads go through a caller-supplied closure.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// Length of a [`Hash`](type@Hash) in bytes.
pub const HASH_LEN: usize = 32;

const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(leaf);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// A complete subtree: covers leaves `[index << level, (index + 1) << level)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves (0 = a single leaf).
    pub level: u8,
    /// Position among the nodes of this level, left to right.
    pub index: u64,
}

impl NodeId {
    /// Index of the first leaf covered (saturates at `u64::MAX` for ids beyond the `u64` leaf
    /// space, which no tree can contain).
    pub fn first_leaf(&self) -> u64 {
        let level = u32::from(self.level);
        if self.index == 0 {
            0
        } else if level >= u64::BITS || self.index > (u64::MAX >> level) {
            u64::MAX
        } else {
            self.index << level
        }
    }

    /// Number of leaves covered, `2^level` (saturates at `u64::MAX` for `level >= 64`).
    pub fn leaf_count(&self) -> u64 {
        1u64.checked_shl(u32::from(self.level)).unwrap_or(u64::MAX)
    }
}

/// The complete subtrees whose concatenation is the tree of `size` leaves, left to right
/// (one per set bit of size, largest first).
pub fn frontier_ids(size: u64) -> Vec<NodeId> {
    let mut ids = Vec::with_capacity(size.count_ones() as usize);
    let mut start = 0u64;
    for level in (0..u64::BITS).rev() {
        let width = 1u64 << level;
        if size & width != 0 {
            ids.push(NodeId {
                level: level as u8,
                index: start >> level,
            });
            start += width;
        }
    }
    ids
}

/// Errors building a [`Frontier`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MerkleError {
    /// `from_parts` got a hash list that does not match `frontier_ids(size)`.
    #[error("a frontier for a tree of {size} leaves needs {expected} hashes, got {got}")]
    FrontierLength {
        size: u64,
        expected: usize,
        got: usize,
    },
}

/// In-memory right edge of the tree, used by the appender so that appending needs no reads.
///
/// Holds the tree size and the hashes of [`frontier_ids`]`(size)`, in that order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuild from stored nodes: `hashes` are the hashes of `frontier_ids(size)` in that order.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, MerkleError> {
        let expected = size.count_ones() as usize;
        if hashes.len() != expected {
            return Err(MerkleError::FrontierLength {
                size,
                expected,
                got: hashes.len(),
            });
        }
        Ok(Self { size, hashes })
    }

    /// Number of leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The hashes of `frontier_ids(size)`, in that order: what `from_parts` takes back.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// MTH of the whole tree ([`empty_root`] for the empty tree).
    pub fn root(&self) -> Hash {
        let mut iter = self.hashes.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |acc, left| node_hash(left, &acc))
    }

    /// Append one leaf hash.
    ///
    /// # Panics
    /// If the tree already holds `u64::MAX` leaves (unreachable in practice).
    pub fn push(&mut self, leaf_hash: Hash) {
        self.push_closing(leaf_hash, |_, _| {});
    }

    /// `push`, returning every subtree that became complete (level 0 for the leaf
    /// itself, then each higher level it closes): for tests that keep a store of them.
    #[cfg(test)]
    pub fn push_closed(&mut self, leaf_hash: Hash) -> Vec<(NodeId, Hash)> {
        let mut closed = Vec::new();
        self.push_closing(leaf_hash, |id, hash| closed.push((id, hash)));
        closed
    }

    /// `push`, telling `closed` of each subtree it completes, lowest first.
    fn push_closing(&mut self, leaf_hash: Hash, mut closed: impl FnMut(NodeId, Hash)) {
        assert!(
            self.size < u64::MAX,
            "merkle tree is full: it already holds u64::MAX leaves"
        );
        let mut index = self.size;
        let mut level = 0u8;
        let mut hash = leaf_hash;
        closed(NodeId { level, index }, hash);
        // Each trailing one bit of the old size is a frontier subtree of that level that the new
        // node completes; frontier hashes are stored largest first, so they pop off the end.
        while index & 1 == 1 {
            let Some(left) = self.hashes.pop() else {
                unreachable!("the frontier holds one hash per set bit of its size");
            };
            hash = node_hash(&left, &hash);
            index >>= 1;
            level += 1;
            closed(NodeId { level, index }, hash);
        }
        self.hashes.push(hash);
        self.size += 1;
    }
}

/// Errors generating a proof.
#[derive(Debug, thiserror::Error)]
pub enum ProofError<E> {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is outside a tree of {size} leaves")]
    IndexOutOfRange { index: u64, size: u64 },
    /// Consistency sizes must satisfy `1 <= old <= new`.
    #[error(
        "cannot prove consistency from {old} to {new} leaves: sizes must satisfy 1 <= old <= new"
    )]
    BadSizes { old: u64, new: u64 },
    /// Reading a stored node failed. The store error is embedded in the message rather than
    /// exposed as `source()`, so that `ProofError<E>` is a `std::error::Error` for any
    /// `E: Debug + Display` (including `anyhow::Error`).
    #[error("reading a stored merkle node failed: {0}")]
    Store(E),
}

/// Errors verifying a proof.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is outside a tree of {size} leaves")]
    IndexOutOfRange { index: u64, size: u64 },
    /// Consistency sizes must satisfy `1 <= old <= new`.
    #[error(
        "cannot check consistency from {old} to {new} leaves: sizes must satisfy 1 <= old <= new"
    )]
    BadSizes { old: u64, new: u64 },
    /// The proof has the wrong number of hashes for the given sizes / index.
    #[error("proof has {got} hashes but {expected} are needed")]
    ProofLength { expected: usize, got: usize },
    /// The inclusion proof does not lead to the given root.
    #[error(
        "inclusion proof for leaf {index} does not lead to the given root of the tree of {size} leaves"
    )]
    InclusionRootMismatch { index: u64, size: u64 },
    /// The consistency proof does not reproduce the old root.
    #[error("consistency proof does not reproduce the given root of the old tree of {old} leaves")]
    OldRootMismatch { old: u64 },
    /// The consistency proof does not reproduce the new root.
    #[error("consistency proof does not reproduce the given root of the new tree of {new} leaves")]
    NewRootMismatch { new: u64 },
    /// Two trees of the same size must have the same root.
    #[error("the two given roots of a tree of {size} leaves differ")]
    SameSizeRootMismatch { size: u64 },
}

/// Largest power of two strictly below `n` (requires `n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// Memoising reader of stored complete subtrees.
struct Nodes<'a, E> {
    get: &'a mut dyn FnMut(NodeId) -> Result<Hash, E>,
    cache: BTreeMap<NodeId, Hash>,
}

impl<'a, E> Nodes<'a, E> {
    fn new(get: &'a mut dyn FnMut(NodeId) -> Result<Hash, E>) -> Self {
        Self {
            get,
            cache: BTreeMap::new(),
        }
    }

    fn node(&mut self, id: NodeId) -> Result<Hash, E> {
        if let Some(h) = self.cache.get(&id) {
            return Ok(*h);
        }
        let h = (self.get)(id)?;
        self.cache.insert(id, h);
        Ok(h)
    }

    /// MTH of leaves `[start, start + len)`, `len >= 1`, for a range that is a subtree of an
    /// RFC 6962 tree: either complete (aligned power of two, read directly) or, recursively,
    /// a complete left part and a smaller right part (the right edge of a tree).
    fn subtree(&mut self, start: u64, len: u64) -> Result<Hash, E> {
        if len.is_power_of_two() {
            let level = len.trailing_zeros();
            debug_assert!(start.is_multiple_of(len), "unaligned subtree");
            return self.node(NodeId {
                level: level as u8,
                index: start >> level,
            });
        }
        let k = split_point(len);
        let left = self.subtree(start, k)?;
        let right = self.subtree(start + k, len - k)?;
        Ok(node_hash(&left, &right))
    }
}

/// Root of the tree of `size` leaves (any size up to what the store holds).
pub fn root_at<E>(size: u64, get: &mut dyn FnMut(NodeId) -> Result<Hash, E>) -> Result<Hash, E> {
    if size == 0 {
        return Ok(empty_root());
    }
    Nodes::new(get).subtree(0, size)
}

/// Number of hashes in the inclusion proof of leaf `index < size`.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let (mut m, mut n, mut len) = (index, size, 0);
    while n > 1 {
        let k = split_point(n);
        if m < k {
            n = k;
        } else {
            m -= k;
            n -= k;
        }
        len += 1;
    }
    len
}

/// Number of hashes in the consistency proof for `1 <= old <= new`.
fn consistency_proof_len(old: u64, new: u64) -> usize {
    let (mut m, mut n, mut whole, mut len) = (old, new, true, 0);
    while m != n {
        let k = split_point(n);
        if m <= k {
            n = k;
        } else {
            m -= k;
            n -= k;
            whole = false;
        }
        len += 1;
    }
    if whole { len } else { len + 1 }
}

/// RFC 9162 inclusion proof for leaf `index` in the tree of `size` leaves.
pub fn inclusion_proof<E>(
    index: u64,
    size: u64,
    get: &mut dyn FnMut(NodeId) -> Result<Hash, E>,
) -> Result<Vec<Hash>, ProofError<E>> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut nodes = Nodes::new(get);
    let mut proof = Vec::with_capacity(inclusion_proof_len(index, size));
    // PATH(m, D[start .. start + n]), unrolled from the root down; siblings are collected top
    // first and reversed at the end (the RFC lists them leaf first).
    let (mut m, mut start, mut n) = (index, 0u64, size);
    while n > 1 {
        let k = split_point(n);
        let sibling = if m < k {
            let s = nodes.subtree(start + k, n - k);
            n = k;
            s
        } else {
            let s = nodes.subtree(start, k);
            start += k;
            m -= k;
            n -= k;
            s
        };
        proof.push(sibling.map_err(ProofError::Store)?);
    }
    proof.reverse();
    Ok(proof)
}

/// RFC 9162 consistency proof from `old_size` to `new_size` (1 <= old <= new; old == new gives []).
pub fn consistency_proof<E>(
    old_size: u64,
    new_size: u64,
    get: &mut dyn FnMut(NodeId) -> Result<Hash, E>,
) -> Result<Vec<Hash>, ProofError<E>> {
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::BadSizes {
            old: old_size,
            new: new_size,
        });
    }
    let mut nodes = Nodes::new(get);
    let mut proof = Vec::with_capacity(consistency_proof_len(old_size, new_size));
    // SUBPROOF(m, D[start .. start + n], whole), unrolled from the root down; collected top
    // first and reversed at the end.
    let (mut m, mut start, mut n, mut whole) = (old_size, 0u64, new_size, true);
    while m != n {
        let k = split_point(n);
        let h = if m <= k {
            let h = nodes.subtree(start + k, n - k);
            n = k;
            h
        } else {
            let h = nodes.subtree(start, k);
            start += k;
            m -= k;
            n -= k;
            whole = false;
            h
        };
        proof.push(h.map_err(ProofError::Store)?);
    }
    if !whole {
        proof.push(nodes.subtree(start, n).map_err(ProofError::Store)?);
    }
    proof.reverse();
    Ok(proof)
}

/// Check an RFC 9162 inclusion proof (§2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf_hash: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(VerifyError::ProofLength {
            expected,
            got: proof.len(),
        });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if snode == 0 {
            return Err(VerifyError::ProofLength {
                expected,
                got: proof.len(),
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(VerifyError::ProofLength {
            expected,
            got: proof.len(),
        });
    }
    if r != *root {
        return Err(VerifyError::InclusionRootMismatch { index, size });
    }
    Ok(())
}

/// Check an RFC 9162 consistency proof (§2.1.4.2). `old_size == 0` is rejected; for
/// `old_size == new_size` the proof must be empty and the roots equal.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    if old_size == 0 || old_size > new_size {
        return Err(VerifyError::BadSizes {
            old: old_size,
            new: new_size,
        });
    }
    let expected = consistency_proof_len(old_size, new_size);
    if proof.len() != expected {
        return Err(VerifyError::ProofLength {
            expected,
            got: proof.len(),
        });
    }
    if old_size == new_size {
        if old_root != new_root {
            return Err(VerifyError::SameSizeRootMismatch { size: old_size });
        }
        return Ok(());
    }
    let length_error = || VerifyError::ProofLength {
        expected,
        got: proof.len(),
    };
    // Step 2: a power-of-two old tree is a complete subtree of the new one, so its root seeds
    // the computation instead of being sent.
    let (seed, rest) = if old_size.is_power_of_two() {
        (*old_root, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => return Err(length_error()),
        }
    };
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (seed, seed);
    for c in rest {
        if snode == 0 {
            return Err(length_error());
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(length_error());
    }
    if fr != *old_root {
        return Err(VerifyError::OldRootMismatch { old: old_size });
    }
    if sr != *new_root {
        return Err(VerifyError::NewRootMismatch { new: new_size });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, HashMap};
    use std::sync::OnceLock;

    // ---------------------------------------------------------------- helpers

    fn bytes(hex: &str) -> Vec<u8> {
        assert!(hex.len().is_multiple_of(2), "odd hex {hex}");
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    fn h(hex: &str) -> Hash {
        bytes(hex).try_into().unwrap()
    }

    type Store = HashMap<NodeId, Hash>;

    /// Store reader for the tree of `size` leaves that refuses nodes not complete in it.
    fn getter(store: &Store, size: u64) -> impl FnMut(NodeId) -> Result<Hash, String> + '_ {
        move |id| {
            if id.first_leaf() + id.leaf_count() > size {
                return Err(format!("{id:?} is not complete in a tree of {size} leaves"));
            }
            store
                .get(&id)
                .copied()
                .ok_or_else(|| format!("{id:?} missing"))
        }
    }

    fn build_store(leaf_hashes: &[Hash]) -> (Store, Frontier) {
        let mut store = Store::new();
        let mut frontier = Frontier::new();
        for lh in leaf_hashes {
            for (id, hash) in frontier.push_closed(*lh) {
                assert!(store.insert(id, hash).is_none(), "{id:?} stored twice");
            }
        }
        (store, frontier)
    }

    fn root_of(store: &Store, size: u64) -> Hash {
        root_at(size, &mut getter(store, size)).unwrap()
    }

    fn incl(store: &Store, index: u64, size: u64) -> Vec<Hash> {
        inclusion_proof(index, size, &mut getter(store, size)).unwrap()
    }

    fn cons(store: &Store, old: u64, new: u64) -> Vec<Hash> {
        consistency_proof(old, new, &mut getter(store, new)).unwrap()
    }

    fn flip(proof: &[Hash], i: usize, byte: usize, bit: u8) -> Vec<Hash> {
        let mut p = proof.to_vec();
        p[i][byte] ^= 1 << bit;
        p
    }

    // ---------------------------------------- naive RFC 6962 §2.1 reference

    fn naive_split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    /// MTH, PATH and SUBPROOF written straight from RFC 6962 §2.1 over `leaves[lo..hi]`
    /// (MTH results memoised by range only to keep the exhaustive tests fast).
    struct Naive {
        leaves: Vec<Hash>,
        memo: HashMap<(usize, usize), Hash>,
    }

    impl Naive {
        fn new(leaves: Vec<Hash>) -> Self {
            Self {
                leaves,
                memo: HashMap::new(),
            }
        }

        fn mth(&mut self, lo: usize, hi: usize) -> Hash {
            match hi - lo {
                0 => Sha256::digest(b"").into(),
                1 => self.leaves[lo],
                n => {
                    if let Some(h) = self.memo.get(&(lo, hi)) {
                        return *h;
                    }
                    let k = naive_split(n);
                    let left = self.mth(lo, lo + k);
                    let right = self.mth(lo + k, hi);
                    let mut d = Sha256::new();
                    d.update([1u8]);
                    d.update(left);
                    d.update(right);
                    let h: Hash = d.finalize().into();
                    self.memo.insert((lo, hi), h);
                    h
                }
            }
        }

        fn path(&mut self, m: usize, lo: usize, hi: usize) -> Vec<Hash> {
            let n = hi - lo;
            if n == 1 {
                return vec![];
            }
            let k = naive_split(n);
            if m < k {
                let mut p = self.path(m, lo, lo + k);
                p.push(self.mth(lo + k, hi));
                p
            } else {
                let mut p = self.path(m - k, lo + k, hi);
                p.push(self.mth(lo, lo + k));
                p
            }
        }

        fn subproof(&mut self, m: usize, lo: usize, hi: usize, b: bool) -> Vec<Hash> {
            let n = hi - lo;
            if m == n {
                return if b { vec![] } else { vec![self.mth(lo, hi)] };
            }
            let k = naive_split(n);
            if m <= k {
                let mut p = self.subproof(m, lo, lo + k, b);
                p.push(self.mth(lo + k, hi));
                p
            } else {
                let mut p = self.subproof(m - k, lo + k, hi, false);
                p.push(self.mth(lo, lo + k));
                p
            }
        }
    }

    /// Which side each PATH element sits on (true = left sibling), leaf first.
    fn naive_path_shape(m: usize, n: usize) -> Vec<bool> {
        if n == 1 {
            return vec![];
        }
        let k = naive_split(n);
        let (mut s, left) = if m < k {
            (naive_path_shape(m, k), false)
        } else {
            (naive_path_shape(m - k, n - k), true)
        };
        s.push(left);
        s
    }

    /// SUBPROOF structure: (old tree is a complete subtree, side of each element).
    fn naive_subproof_shape(m: usize, n: usize, b: bool) -> (bool, Vec<bool>) {
        if m == n {
            return (b, vec![]);
        }
        let k = naive_split(n);
        let (whole, mut s, left) = if m <= k {
            let (w, s) = naive_subproof_shape(m, k, b);
            (w, s, false)
        } else {
            let (w, s) = naive_subproof_shape(m - k, n - k, false);
            (w, s, true)
        };
        s.push(left);
        (whole, s)
    }

    // ------------------------------------------------------------- fixtures

    const BIG: usize = 300;

    struct Fixture {
        store: Store,
        leaf_hashes: Vec<Hash>,
        /// roots[n] = MTH of the first n leaves (naive).
        roots: Vec<Hash>,
    }

    fn fixture() -> &'static Fixture {
        static F: OnceLock<Fixture> = OnceLock::new();
        F.get_or_init(|| {
            let mut leaves: Vec<Vec<u8>> = rfc_leaves();
            leaves.extend((8..BIG as u64).map(|i| i.to_be_bytes().to_vec()));
            let leaf_hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
            let (store, _) = build_store(&leaf_hashes);
            let mut naive = Naive::new(leaf_hashes.clone());
            let roots = (0..=BIG).map(|n| naive.mth(0, n)).collect();
            Fixture {
                store,
                leaf_hashes,
                roots,
            }
        })
    }

    // ------------------------------------------- published RFC 6962 vectors
    //
    // From transparency-dev/merkle: testonly/constants.go (leaves, node hashes, roots, compact
    // trees) and proof/verify_test.go (inclusion and consistency proofs). The same vectors are
    // used by ct-merkle.

    fn rfc_leaves() -> Vec<Vec<u8>> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|s| bytes(s))
        .collect()
    }

    const RFC_ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    /// NodeHashes(): [level][index].
    const RFC_NODES: [&[&str]; 4] = [
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
        ],
        &[
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        ],
        &[
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
        &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
    ];

    /// CompactTrees(): frontier of each size as (level, index) into RFC_NODES.
    const RFC_COMPACT: [&[(usize, usize)]; 9] = [
        &[],
        &[(0, 0)],
        &[(1, 0)],
        &[(1, 0), (0, 2)],
        &[(2, 0)],
        &[(2, 0), (0, 4)],
        &[(2, 0), (1, 2)],
        &[(2, 0), (1, 2), (0, 6)],
        &[(3, 0)],
    ];

    /// verify_test.go inclusionProofs, converted from its 1-based leaf numbers to 0-based
    /// indices (`{1, 8, ...}` is leaf index 0); `{0, 0, nil}` is the invalid case below.
    const RFC_INCLUSION: [(u64, u64, &[&str]); 5] = [
        (0, 1, &[]),
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];

    /// verify_test.go consistencyProofs.
    const RFC_CONSISTENCY: [(u64, u64, &[&str]); 5] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            7,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];

    const SOME_HASH: &str = "abacaba000000000000000000000000000000000000000000060061e00123456";

    fn rfc_store() -> (Store, Vec<Hash>) {
        let leaf_hashes: Vec<Hash> = rfc_leaves().iter().map(|l| leaf_hash(l)).collect();
        let (store, _) = build_store(&leaf_hashes);
        (store, leaf_hashes)
    }

    #[test]
    fn rfc_empty_and_leaf_hashes() {
        assert_eq!(empty_root(), h(RFC_ROOTS[0]));
        assert_eq!(HASH_LEN, empty_root().len());
        for (i, leaf) in rfc_leaves().iter().enumerate() {
            assert_eq!(leaf_hash(leaf), h(RFC_NODES[0][i]));
        }
        assert_eq!(
            node_hash(&h(RFC_NODES[0][0]), &h(RFC_NODES[0][1])),
            h(RFC_NODES[1][0])
        );
    }

    #[test]
    fn rfc_roots_nodes_and_frontiers() {
        let mut frontier = Frontier::new();
        let mut store = Store::new();
        assert_eq!(frontier.root(), h(RFC_ROOTS[0]));
        assert_eq!(root_of(&store, 0), h(RFC_ROOTS[0]));
        for (i, leaf) in rfc_leaves().iter().enumerate() {
            store.extend(frontier.push_closed(leaf_hash(leaf)));
            let size = i + 1;
            assert_eq!(frontier.size(), size as u64);
            assert_eq!(frontier.root(), h(RFC_ROOTS[size]), "frontier root {size}");
            assert_eq!(
                root_of(&store, size as u64),
                h(RFC_ROOTS[size]),
                "root_at {size}"
            );
        }
        // Every stored node is exactly the published complete-subtree hash.
        let mut expected = Store::new();
        for (level, hashes) in RFC_NODES.iter().enumerate() {
            for (index, hex) in hashes.iter().enumerate() {
                let id = NodeId {
                    level: level as u8,
                    index: index as u64,
                };
                expected.insert(id, h(hex));
            }
        }
        assert_eq!(store, expected);
        // Historic roots from the final store, and published compact trees.
        for (size, compact) in RFC_COMPACT.iter().enumerate() {
            let size = size as u64;
            assert_eq!(root_of(&store, size), h(RFC_ROOTS[size as usize]));
            let ids: Vec<NodeId> = compact
                .iter()
                .map(|&(level, index)| NodeId {
                    level: level as u8,
                    index: index as u64,
                })
                .collect();
            assert_eq!(frontier_ids(size), ids);
            let hashes: Vec<Hash> = compact.iter().map(|&(l, i)| h(RFC_NODES[l][i])).collect();
            let f = Frontier::from_parts(size, hashes).unwrap();
            assert_eq!(f.root(), h(RFC_ROOTS[size as usize]));
        }
    }

    /// The corruptions of verify_test.go's corruptInclusionProof, plus every single-bit flip.
    fn inclusion_corruptions(
        index: u64,
        size: u64,
        leaf: Hash,
        proof: &[Hash],
        root: Hash,
    ) -> Vec<(String, u64, u64, Hash, Vec<Hash>, Hash)> {
        let some = h(SOME_HASH);
        let p = proof.to_vec();
        let with = |mut v: Vec<Hash>, front: Option<Hash>, back: Option<Hash>| {
            if let Some(f) = front {
                v.insert(0, f);
            }
            if let Some(b) = back {
                v.push(b);
            }
            v
        };
        let mut out = vec![
            (
                "index - 1".into(),
                index.wrapping_sub(1),
                size,
                leaf,
                p.clone(),
                root,
            ),
            ("index + 1".into(), index + 1, size, leaf, p.clone(), root),
            ("index ^ 2".into(), index ^ 2, size, leaf, p.clone(), root),
            ("size * 2".into(), index, size * 2, leaf, p.clone(), root),
            ("size / 2".into(), index, size / 2, leaf, p.clone(), root),
            (
                "wrong leaf".into(),
                index,
                size,
                leaf_hash(b"WrongLeaf"),
                p.clone(),
                root,
            ),
            (
                "empty root".into(),
                index,
                size,
                leaf,
                p.clone(),
                empty_root(),
            ),
            ("random root".into(), index, size, leaf, p.clone(), some),
            (
                "trailing garbage".into(),
                index,
                size,
                leaf,
                with(p.clone(), None, Some([0; 32])),
                root,
            ),
            (
                "trailing root".into(),
                index,
                size,
                leaf,
                with(p.clone(), None, Some(root)),
                root,
            ),
            (
                "preceding garbage".into(),
                index,
                size,
                leaf,
                with(p.clone(), Some([0; 32]), None),
                root,
            ),
            (
                "preceding root".into(),
                index,
                size,
                leaf,
                with(p.clone(), Some(root), None),
                root,
            ),
        ];
        if !p.is_empty() {
            out.push((
                "removed".into(),
                index,
                size,
                leaf,
                p[..p.len() - 1].to_vec(),
                root,
            ));
        }
        if p.len() > 1 {
            let mut ins = p.clone();
            ins.insert(1, some);
            out.push(("inserted".into(), index, size, leaf, ins, root));
        }
        for i in 0..p.len() {
            for byte in 0..HASH_LEN {
                for bit in 0..8 {
                    let desc = format!("proof[{i}] byte {byte} bit {bit}");
                    out.push((desc, index, size, leaf, flip(&p, i, byte, bit), root));
                }
            }
        }
        out
    }

    /// The corruptions of verify_test.go's corruptConsistencyProof, plus every single-bit flip.
    fn consistency_corruptions(
        old: u64,
        new: u64,
        r1: Hash,
        r2: Hash,
        proof: &[Hash],
    ) -> Vec<(String, u64, u64, Hash, Hash, Vec<Hash>)> {
        let p = proof.to_vec();
        let wrong = leaf_hash(b"WrongRoot");
        let pre = |x: Hash| {
            let mut v = p.clone();
            v.insert(0, x);
            v
        };
        let post = |x: Hash| {
            let mut v = p.clone();
            v.push(x);
            v
        };
        let mut out = vec![
            ("old - 1".into(), old - 1, new, r1, r2, p.clone()),
            ("old + 1".into(), old + 1, new, r1, r2, p.clone()),
            ("old ^ 2".into(), old ^ 2, new, r1, r2, p.clone()),
            ("new * 2".into(), old, new * 2, r1, r2, p.clone()),
            ("new / 2".into(), old, new / 2, r1, r2, p.clone()),
            ("wrong root1".into(), old, new, wrong, r2, p.clone()),
            ("wrong root2".into(), old, new, r1, wrong, p.clone()),
            ("swapped roots".into(), old, new, r2, r1, p.clone()),
            ("empty proof".into(), old, new, r1, r2, vec![]),
            ("trailing garbage".into(), old, new, r1, r2, post([0; 32])),
            ("trailing root1".into(), old, new, r1, r2, post(r1)),
            ("trailing root2".into(), old, new, r1, r2, post(r2)),
            ("preceding garbage".into(), old, new, r1, r2, pre([0; 32])),
            ("preceding root1".into(), old, new, r1, r2, pre(r1)),
            ("preceding root2".into(), old, new, r1, r2, pre(r2)),
            ("preceding proof[0]".into(), old, new, r1, r2, pre(p[0])),
            (
                "truncated".into(),
                old,
                new,
                r1,
                r2,
                p[..p.len() - 1].to_vec(),
            ),
        ];
        for i in 0..p.len() {
            for byte in 0..HASH_LEN {
                for bit in 0..8 {
                    let desc = format!("proof[{i}] byte {byte} bit {bit}");
                    out.push((desc, old, new, r1, r2, flip(&p, i, byte, bit)));
                }
            }
        }
        out
    }

    #[test]
    fn rfc_inclusion_vectors() {
        let (store, leaf_hashes) = rfc_store();
        for (index, size, expected) in RFC_INCLUSION {
            let expected: Vec<Hash> = expected.iter().map(|s| h(s)).collect();
            let proof = incl(&store, index, size);
            assert_eq!(proof, expected, "inclusion {index} in {size}");
            let leaf = leaf_hashes[index as usize];
            let root = h(RFC_ROOTS[size as usize]);
            verify_inclusion(index, size, &leaf, &proof, &root).unwrap();
            for (desc, i, s, l, p, r) in inclusion_corruptions(index, size, leaf, &proof, root) {
                assert!(
                    verify_inclusion(i, s, &l, &p, &r).is_err(),
                    "{index}/{size}: accepted {desc}"
                );
            }
        }
        // {0, 0, nil}: no leaf is in the empty tree.
        assert_eq!(
            verify_inclusion(0, 0, &leaf_hashes[0], &[], &empty_root()),
            Err(VerifyError::IndexOutOfRange { index: 0, size: 0 })
        );
    }

    #[test]
    fn rfc_consistency_vectors() {
        let (store, _) = rfc_store();
        for (old, new, expected) in RFC_CONSISTENCY {
            let expected: Vec<Hash> = expected.iter().map(|s| h(s)).collect();
            let proof = cons(&store, old, new);
            assert_eq!(proof, expected, "consistency {old} -> {new}");
            let (r1, r2) = (h(RFC_ROOTS[old as usize]), h(RFC_ROOTS[new as usize]));
            verify_consistency(old, new, &r1, &r2, &proof).unwrap();
            if proof.is_empty() {
                continue;
            }
            for (desc, o, n, a, b, p) in consistency_corruptions(old, new, r1, r2, &proof) {
                assert!(
                    verify_consistency(o, n, &a, &b, &p).is_err(),
                    "{old}->{new}: accepted {desc}"
                );
            }
        }
    }

    /// (old size, new size, old root, new root, proof, accepted)
    type Case<'a> = (u64, u64, Hash, Hash, &'a [Hash], bool);

    /// verify_test.go TestVerifyConsistency, except that old size 0 is always rejected here.
    #[test]
    fn consistency_edge_cases() {
        let r1 = leaf_hash(b"don't care 1");
        let r2 = leaf_hash(b"don't care 2");
        let e = empty_root();
        let cases: [Case; 13] = [
            (0, 0, r1, r2, &[], false),
            (1, 1, r1, r2, &[], false),
            (0, 0, r1, r1, &[], false), // Go accepts; old size 0 is refused here
            (0, 1, r1, r2, &[], false), // Go accepts; old size 0 is refused here
            (1, 1, r2, r2, &[], true),
            (1, 0, r1, r2, &[], false),
            (2, 1, r1, r2, &[], false),
            (1, 2, r1, r2, &[], false),
            (0, 0, e, r2, &[], false),
            (1, 1, e, r2, &[], false),
            (0, 0, e, e, &[e], false),
            (0, 1, e, e, &[e], false),
            (1, 1, e, e, &[e], false),
        ];
        for (old, new, a, b, proof, ok) in cases {
            let got = verify_consistency(old, new, &a, &b, proof);
            assert_eq!(got.is_ok(), ok, "{old}->{new}: {got:?}");
        }
        assert_eq!(
            verify_consistency(0, 3, &e, &e, &[]),
            Err(VerifyError::BadSizes { old: 0, new: 3 })
        );
        assert_eq!(
            verify_consistency(4, 4, &r1, &r2, &[]),
            Err(VerifyError::SameSizeRootMismatch { size: 4 })
        );
        assert_eq!(
            verify_consistency(4, 4, &r1, &r1, &[r1]),
            Err(VerifyError::ProofLength {
                expected: 0,
                got: 1
            })
        );
    }

    /// (index or old size, size, (level, index) of every node the proof needs)
    type ProofNodes = (u64, u64, &'static [(u8, u64)]);

    /// proof/proof_test.go (transparency-dev/merkle) lists the stored nodes each proof needs;
    /// the set of nodes fetched here must be exactly that set.
    #[test]
    fn fetched_nodes_match_published_node_lists() {
        let inclusion: &[ProofNodes] = &[
            (0, 1, &[]),
            (0, 2, &[(0, 1)]),
            (1, 2, &[(0, 0)]),
            (1, 3, &[(0, 0), (0, 2)]),
            (0, 7, &[(0, 1), (1, 1), (0, 6), (1, 2)]),
            (1, 7, &[(0, 0), (1, 1), (0, 6), (1, 2)]),
            (2, 7, &[(0, 3), (1, 0), (0, 6), (1, 2)]),
            (3, 7, &[(0, 2), (1, 0), (0, 6), (1, 2)]),
            (4, 7, &[(0, 5), (0, 6), (2, 0)]),
            (5, 7, &[(0, 4), (0, 6), (2, 0)]),
            (6, 7, &[(1, 2), (2, 0)]),
            (2, 4, &[(0, 3), (1, 0)]),
            (3, 5, &[(0, 2), (1, 0), (0, 4)]),
            (3, 6, &[(0, 2), (1, 0), (1, 2)]),
            (4, 6, &[(0, 5), (2, 0)]),
            (10, 15, &[(0, 11), (1, 4), (0, 14), (1, 6), (3, 0)]),
            (
                24,
                31,
                &[(0, 25), (1, 13), (0, 30), (1, 14), (3, 2), (4, 0)],
            ),
            (
                81,
                95,
                &[
                    (0, 80),
                    (1, 41),
                    (2, 21),
                    (0, 94),
                    (1, 46),
                    (2, 22),
                    (4, 4),
                    (6, 0),
                ],
            ),
        ];
        let consistency: &[ProofNodes] = &[
            (1, 2, &[(0, 1)]),
            (1, 4, &[(0, 1), (1, 1)]),
            (1, 6, &[(0, 1), (1, 1), (1, 2)]),
            (2, 3, &[(0, 2)]),
            (2, 8, &[(1, 1), (2, 1)]),
            (3, 7, &[(0, 2), (0, 3), (1, 0), (0, 6), (1, 2)]),
            (4, 7, &[(0, 6), (1, 2)]),
            (5, 7, &[(0, 4), (0, 5), (0, 6), (2, 0)]),
            (6, 7, &[(1, 2), (0, 6), (2, 0)]),
            (7, 8, &[(0, 6), (0, 7), (1, 2), (2, 0)]),
            (1, 1, &[]),
            (2, 2, &[]),
            (3, 3, &[]),
            (4, 4, &[]),
            (5, 5, &[]),
            (7, 7, &[]),
            (8, 8, &[]),
            (2, 4, &[(1, 1)]),
            (3, 5, &[(0, 2), (0, 3), (1, 0), (0, 4)]),
            (3, 6, &[(0, 2), (0, 3), (1, 0), (1, 2)]),
            (4, 6, &[(1, 2)]),
            (1, 7, &[(0, 1), (1, 1), (0, 6), (1, 2)]),
            (10, 15, &[(1, 4), (1, 5), (0, 14), (1, 6), (3, 0)]),
            (24, 31, &[(3, 2), (0, 30), (1, 14), (2, 6), (4, 0)]),
            (
                81,
                95,
                &[
                    (0, 80),
                    (0, 81),
                    (1, 41),
                    (2, 21),
                    (0, 94),
                    (1, 46),
                    (2, 22),
                    (4, 4),
                    (6, 0),
                ],
            ),
        ];
        let set = |ids: &[(u8, u64)]| -> BTreeSet<NodeId> {
            ids.iter()
                .map(|&(level, index)| NodeId { level, index })
                .collect()
        };
        for &(index, size, want) in inclusion {
            let mut seen = Vec::new();
            let mut get = |id: NodeId| -> Result<Hash, ()> {
                seen.push(id);
                Ok([0; 32])
            };
            inclusion_proof(index, size, &mut get).unwrap();
            let got: BTreeSet<NodeId> = seen.iter().copied().collect();
            assert_eq!(got.len(), seen.len(), "inclusion {index}/{size} refetched");
            assert_eq!(got, set(want), "inclusion {index}/{size}");
        }
        for &(old, new, want) in consistency {
            let mut seen = Vec::new();
            let mut get = |id: NodeId| -> Result<Hash, ()> {
                seen.push(id);
                Ok([0; 32])
            };
            consistency_proof(old, new, &mut get).unwrap();
            let got: BTreeSet<NodeId> = seen.iter().copied().collect();
            assert_eq!(got.len(), seen.len(), "consistency {old}->{new} refetched");
            assert_eq!(got, set(want), "consistency {old}->{new}");
        }
    }

    // ------------------------------------------------ exhaustive vs naive

    #[test]
    fn matches_naive_rfc6962_for_every_size_up_to_300() {
        let fx = fixture();
        let mut naive = Naive::new(fx.leaf_hashes.clone());
        let mut frontier = Frontier::new();
        let (mut inclusions, mut consistencies) = (0usize, 0usize);
        for n in 1..=BIG {
            frontier.push(fx.leaf_hashes[n - 1]);
            let size = n as u64;
            let root = fx.roots[n];
            assert_eq!(root_of(&fx.store, size), root, "root_at {n}");
            assert_eq!(frontier.root(), root, "frontier root {n}");
            for m in 0..n {
                let proof = incl(&fx.store, m as u64, size);
                assert_eq!(proof, naive.path(m, 0, n), "PATH({m}, D[{n}])");
                verify_inclusion(m as u64, size, &fx.leaf_hashes[m], &proof, &root).unwrap();
                inclusions += 1;
            }
            for m in 1..=n {
                let proof = cons(&fx.store, m as u64, size);
                assert_eq!(proof, naive.subproof(m, 0, n, true), "PROOF({m}, D[{n}])");
                verify_consistency(m as u64, size, &fx.roots[m], &root, &proof).unwrap();
                consistencies += 1;
            }
        }
        assert_eq!(inclusions, BIG * (BIG + 1) / 2);
        assert_eq!(consistencies, BIG * (BIG + 1) / 2);
    }

    // ---------------------------------------------------- corrupted proofs

    const SMALL: usize = 20;

    #[test]
    fn corrupted_inclusion_proofs_fail_exhaustively_for_small_trees() {
        let fx = fixture();
        for n in 1..=SMALL {
            let size = n as u64;
            for m in 0..n {
                let index = m as u64;
                let leaf = fx.leaf_hashes[m];
                let proof = incl(&fx.store, index, size);
                let root = fx.roots[n];
                // Every single-bit flip of every byte of every hash.
                for i in 0..proof.len() {
                    for byte in 0..HASH_LEN {
                        for bit in 0..8 {
                            let bad = flip(&proof, i, byte, bit);
                            assert!(verify_inclusion(index, size, &leaf, &bad, &root).is_err());
                        }
                    }
                }
                // Every wrong index, inside and outside the tree.
                for j in 0..2 * n + 2 {
                    if j != m {
                        let got = verify_inclusion(j as u64, size, &leaf, &proof, &root);
                        assert!(got.is_err(), "index {j} accepted for {m}/{n}");
                    }
                }
                // Every wrong size: always refused against that size's root. Against the
                // original root, RFC 9162 verification does not bind the size on its own (the
                // signed tree head does): it fails exactly when the proof shape differs.
                for n2 in 0..2 * n + 2 {
                    if n2 == n {
                        continue;
                    }
                    let s2 = n2 as u64;
                    if n2 <= BIG {
                        let got = verify_inclusion(index, s2, &leaf, &proof, &fx.roots[n2]);
                        assert!(got.is_err(), "size {n2} accepted for {m}/{n}");
                    }
                    let same_shape = m < n2 && naive_path_shape(m, n2) == naive_path_shape(m, n);
                    let got = verify_inclusion(index, s2, &leaf, &proof, &root);
                    assert_eq!(got.is_ok(), same_shape, "size {n2} for {m}/{n}: {got:?}");
                }
            }
        }
    }

    #[test]
    fn corrupted_consistency_proofs_fail_exhaustively_for_small_trees() {
        let fx = fixture();
        for n in 1..=SMALL {
            let new = n as u64;
            for m in 1..=n {
                let old = m as u64;
                let proof = cons(&fx.store, old, new);
                let (r1, r2) = (fx.roots[m], fx.roots[n]);
                for i in 0..proof.len() {
                    for byte in 0..HASH_LEN {
                        for bit in 0..8 {
                            let bad = flip(&proof, i, byte, bit);
                            assert!(verify_consistency(old, new, &r1, &r2, &bad).is_err());
                        }
                    }
                }
                let shape = naive_subproof_shape(m, n, true);
                for n2 in 0..2 * n + 2 {
                    if n2 == n {
                        continue;
                    }
                    let got = verify_consistency(old, n2 as u64, &r1, &fx.roots[n2], &proof);
                    assert!(got.is_err(), "new size {n2} accepted for {m}->{n}");
                    let same = m <= n2 && naive_subproof_shape(m, n2, true) == shape;
                    let got = verify_consistency(old, n2 as u64, &r1, &r2, &proof);
                    assert_eq!(got.is_ok(), same, "new size {n2} for {m}->{n}: {got:?}");
                }
                for m2 in 0..=n + 1 {
                    if m2 == m {
                        continue;
                    }
                    let got = verify_consistency(m2 as u64, new, &fx.roots[m2], &r2, &proof);
                    assert!(got.is_err(), "old size {m2} accepted for {m}->{n}");
                    let same = m2 >= 1 && m2 <= n && naive_subproof_shape(m2, n, true) == shape;
                    let got = verify_consistency(m2 as u64, new, &r1, &r2, &proof);
                    assert_eq!(got.is_ok(), same, "old size {m2} for {m}->{n}: {got:?}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn flipped_inclusion_proofs_fail(
            n in 2..=BIG, m_seed in any::<usize>(), i_seed in any::<usize>(),
            byte in 0..HASH_LEN, bit in 0u8..8,
        ) {
            let fx = fixture();
            let m = m_seed % n;
            let proof = incl(&fx.store, m as u64, n as u64);
            let i = i_seed % proof.len();
            let bad = flip(&proof, i, byte, bit);
            let got = verify_inclusion(m as u64, n as u64, &fx.leaf_hashes[m], &bad, &fx.roots[n]);
            prop_assert_eq!(got, Err(VerifyError::InclusionRootMismatch { index: m as u64, size: n as u64 }));
        }

        #[test]
        fn flipped_consistency_proofs_fail(
            n in 2..=BIG, m_seed in any::<usize>(), i_seed in any::<usize>(),
            byte in 0..HASH_LEN, bit in 0u8..8,
        ) {
            let fx = fixture();
            let m = 1 + m_seed % (n - 1);
            let proof = cons(&fx.store, m as u64, n as u64);
            let i = i_seed % proof.len();
            let bad = flip(&proof, i, byte, bit);
            let got = verify_consistency(m as u64, n as u64, &fx.roots[m], &fx.roots[n], &bad);
            prop_assert!(got.is_err());
        }

        #[test]
        fn wrong_index_or_size_fails(
            n in 1..=BIG, m_seed in any::<usize>(), other in 0..=BIG,
        ) {
            let fx = fixture();
            let m = m_seed % n;
            let proof = incl(&fx.store, m as u64, n as u64);
            let leaf = fx.leaf_hashes[m];
            if other != m {
                prop_assert!(verify_inclusion(other as u64, n as u64, &leaf, &proof, &fx.roots[n]).is_err());
            }
            if other != n {
                prop_assert!(verify_inclusion(m as u64, other as u64, &leaf, &proof, &fx.roots[other]).is_err());
            }
            let old = 1 + m;
            let proof = cons(&fx.store, old as u64, n as u64);
            if other != n {
                prop_assert!(verify_consistency(old as u64, other as u64, &fx.roots[old], &fx.roots[other], &proof).is_err());
            }
            if other != old {
                prop_assert!(verify_consistency(other as u64, n as u64, &fx.roots[other], &fx.roots[n], &proof).is_err());
            }
        }
    }

    // ------------------------------------------------------- fetch counts

    fn ceil_log2(n: u64) -> usize {
        (u64::BITS - n.saturating_sub(1).leading_zeros()) as usize
    }

    /// Fake store for a tree of `size` leaves: node hash = SHA-256(level || index); records
    /// every read and refuses nodes that are not complete in the tree.
    fn counting_get(
        size: u64,
        seen: &mut Vec<NodeId>,
    ) -> impl FnMut(NodeId) -> Result<Hash, String> + '_ {
        move |id| {
            if id.first_leaf() + id.leaf_count() > size {
                return Err(format!("{id:?} is not complete in a tree of {size} leaves"));
            }
            seen.push(id);
            let mut d = Sha256::new();
            d.update([id.level]);
            d.update(id.index.to_be_bytes());
            Ok(d.finalize().into())
        }
    }

    /// (distinct nodes fetched, total fetches)
    fn count<T>(
        size: u64,
        f: impl FnOnce(&mut dyn FnMut(NodeId) -> Result<Hash, String>) -> T,
    ) -> (usize, usize) {
        let mut seen = Vec::new();
        f(&mut counting_get(size, &mut seen));
        let distinct: BTreeSet<NodeId> = seen.iter().copied().collect();
        (distinct.len(), seen.len())
    }

    fn check_fetch_bounds(size: u64, index: u64, old: u64) {
        let bound = 2 * ceil_log2(size) + 2;
        let (d, total) = count(size, |g| {
            let p = inclusion_proof(index, size, g).unwrap();
            assert_eq!(p.len(), inclusion_proof_len(index, size));
        });
        assert_eq!(d, total, "inclusion {index}/{size} fetched a node twice");
        assert!(d <= bound, "inclusion {index}/{size}: {d} nodes > {bound}");
        let (d, total) = count(size, |g| {
            let p = consistency_proof(old, size, g).unwrap();
            assert_eq!(p.len(), consistency_proof_len(old, size));
        });
        assert_eq!(d, total, "consistency {old}->{size} fetched a node twice");
        assert!(d <= bound, "consistency {old}->{size}: {d} nodes > {bound}");
        let (d, total) = count(size, |g| root_at(size, g).unwrap());
        assert_eq!(
            (d, total),
            (size.count_ones() as usize, d),
            "root_at {size}"
        );
    }

    #[test]
    fn distinct_fetches_are_logarithmic() {
        let mut sizes: Vec<u64> = (1..=70).collect();
        for p in [10u32, 16, 20, 21, 22] {
            let b = 1u64 << p;
            sizes.extend([b - 1, b, b + 1, b + 3, b + b / 2 + 1]);
        }
        sizes.extend([999_999, 1_000_000, 3_141_593, 4_999_999, 5_000_000]);
        let mut lcg = 0x9e37_79b9_7f4a_7c15u64;
        for size in sizes {
            let mut picks = vec![0, 1, size / 2, size / 3, size.saturating_sub(2), size - 1];
            for _ in 0..8 {
                lcg = lcg.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                picks.push((lcg >> 11) % size);
            }
            for p in picks {
                let p = p.min(size - 1);
                check_fetch_bounds(size, p, (p + 1).min(size));
            }
        }
        // The worst case over every small tree.
        for size in 1..=256u64 {
            for x in 0..size {
                check_fetch_bounds(size, x, x + 1);
            }
        }
    }

    proptest! {
        #[test]
        fn distinct_fetches_are_logarithmic_for_random_trees(
            size in 1u64..=5_000_000, a in any::<u64>(), b in any::<u64>(),
        ) {
            check_fetch_bounds(size, a % size, 1 + b % size);
        }
    }

    // ------------------------------------------------- frontier and misc

    #[test]
    fn frontier_from_parts_round_trip() {
        let fx = fixture();
        let mut pushed = Frontier::new();
        for n in 0..=BIG as u64 {
            let hashes: Vec<Hash> = frontier_ids(n)
                .into_iter()
                .map(|id| fx.store[&id])
                .collect();
            let mut rebuilt = Frontier::from_parts(n, hashes.clone()).unwrap();
            assert_eq!(rebuilt, pushed, "size {n}");
            assert_eq!(rebuilt.size(), n);
            assert_eq!(rebuilt.root(), fx.roots[n as usize]);
            let mut short = hashes.clone();
            short.push([7; 32]);
            assert_eq!(
                Frontier::from_parts(n, short),
                Err(MerkleError::FrontierLength {
                    size: n,
                    expected: hashes.len(),
                    got: hashes.len() + 1
                })
            );
            if (n as usize) < BIG {
                let next = fx.leaf_hashes[n as usize];
                assert_eq!(rebuilt.push_closed(next), pushed.push_closed(next));
                assert_eq!(rebuilt, pushed);
            }
        }
        assert_eq!(Frontier::new(), Frontier::from_parts(0, vec![]).unwrap());
        assert_eq!(
            Frontier::from_parts(5, vec![[0; 32]])
                .unwrap_err()
                .to_string(),
            "a frontier for a tree of 5 leaves needs 2 hashes, got 1"
        );
    }

    #[test]
    fn push_reports_closed_subtrees() {
        let fx = fixture();
        let mut f = Frontier::new();
        for i in 0..7 {
            f.push(fx.leaf_hashes[i]);
        }
        let closed: Vec<NodeId> = f
            .push_closed(fx.leaf_hashes[7])
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let want: Vec<NodeId> = [(0, 7), (1, 3), (2, 1), (3, 0)]
            .iter()
            .map(|&(level, index)| NodeId { level, index })
            .collect();
        assert_eq!(closed, want);
        assert_eq!(f.push_closed(fx.leaf_hashes[8]).len(), 1);
    }

    #[test]
    fn node_ids_and_frontier_ids() {
        let id = NodeId { level: 3, index: 5 };
        assert_eq!((id.first_leaf(), id.leaf_count()), (40, 8));
        let top = NodeId {
            level: 63,
            index: 1,
        };
        assert_eq!((top.first_leaf(), top.leaf_count()), (1 << 63, 1 << 63));
        let huge = NodeId {
            level: 200,
            index: 1,
        };
        assert_eq!((huge.first_leaf(), huge.leaf_count()), (u64::MAX, u64::MAX));
        assert_eq!(
            NodeId {
                level: 2,
                index: u64::MAX
            }
            .first_leaf(),
            u64::MAX
        );
        assert!(frontier_ids(0).is_empty());
        let all = frontier_ids(u64::MAX);
        assert_eq!(all.len(), 64);
        assert_eq!(
            all[0],
            NodeId {
                level: 63,
                index: 0
            }
        );
        assert_eq!(
            all[63],
            NodeId {
                level: 0,
                index: u64::MAX - 1
            }
        );
        for size in 0..=600u64 {
            let ids = frontier_ids(size);
            assert_eq!(ids.len(), size.count_ones() as usize);
            let mut next = 0;
            for id in &ids {
                assert_eq!(id.first_leaf(), next, "size {size}");
                next += id.leaf_count();
            }
            assert_eq!(next, size);
            assert!(ids.windows(2).all(|w| w[0].level > w[1].level));
        }
    }

    #[test]
    fn proof_argument_and_store_errors() {
        let fx = fixture();
        let mut get = getter(&fx.store, 8);
        let err = inclusion_proof(9, 8, &mut get).unwrap_err();
        assert!(matches!(
            err,
            ProofError::IndexOutOfRange { index: 9, size: 8 }
        ));
        assert_eq!(
            err.to_string(),
            "leaf index 9 is outside a tree of 8 leaves"
        );
        assert!(matches!(
            inclusion_proof(0, 0, &mut get),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
        ));
        assert!(matches!(
            consistency_proof(0, 5, &mut get),
            Err(ProofError::BadSizes { old: 0, new: 5 })
        ));
        let err = consistency_proof(6, 5, &mut get).unwrap_err();
        assert!(matches!(err, ProofError::BadSizes { old: 6, new: 5 }));
        assert_eq!(
            err.to_string(),
            "cannot prove consistency from 6 to 5 leaves: sizes must satisfy 1 <= old <= new"
        );
        // old == new needs no reads at all.
        let mut never =
            |id: NodeId| -> Result<Hash, String> { panic!("unexpected read of {id:?}") };
        assert!(consistency_proof(5, 5, &mut never).unwrap().is_empty());
        assert!(
            inclusion_proof(0, 1, &mut |_| Err("no read expected".to_string()))
                .unwrap()
                .is_empty()
        );
        // Store failures propagate.
        let mut failing =
            |id: NodeId| -> Result<Hash, String> { Err(format!("disk on fire at {id:?}")) };
        let err = inclusion_proof(3, 8, &mut failing).unwrap_err();
        assert!(matches!(&err, ProofError::Store(e) if e.starts_with("disk on fire")));
        assert!(
            err.to_string()
                .starts_with("reading a stored merkle node failed: disk on fire")
        );
        assert!(matches!(
            consistency_proof(3, 8, &mut failing),
            Err(ProofError::Store(_))
        ));
        assert_eq!(root_at(0, &mut failing), Ok(empty_root()));
        assert!(root_at(3, &mut failing).is_err());
        // A store that lacks the requested size shows up as a store error, not a panic.
        let mut small = getter(&fx.store, 4);
        assert!(matches!(
            inclusion_proof(0, 5, &mut small),
            Err(ProofError::Store(_))
        ));

        assert_eq!(
            verify_inclusion(9, 8, &[0; 32], &[], &[0; 32])
                .unwrap_err()
                .to_string(),
            "leaf index 9 is outside a tree of 8 leaves"
        );
        assert_eq!(
            verify_inclusion(1, 8, &fx.leaf_hashes[1], &[], &fx.roots[8]),
            Err(VerifyError::ProofLength {
                expected: 3,
                got: 0
            })
        );
        let proof = incl(&fx.store, 1, 8);
        assert_eq!(
            verify_inclusion(1, 8, &fx.leaf_hashes[2], &proof, &fx.roots[8])
                .unwrap_err()
                .to_string(),
            "inclusion proof for leaf 1 does not lead to the given root of the tree of 8 leaves"
        );
        let proof = cons(&fx.store, 3, 8);
        assert_eq!(
            verify_consistency(3, 8, &fx.roots[4], &fx.roots[8], &proof),
            Err(VerifyError::OldRootMismatch { old: 3 })
        );
        assert_eq!(
            verify_consistency(3, 8, &fx.roots[3], &fx.roots[7], &proof),
            Err(VerifyError::NewRootMismatch { new: 8 })
        );
        assert_eq!(
            verify_consistency(3, 8, &fx.roots[3], &fx.roots[8], &proof[1..])
                .unwrap_err()
                .to_string(),
            "proof has 3 hashes but 4 are needed"
        );
    }
}
