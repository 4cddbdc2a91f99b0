//! Signers' keys as the signature check (`entry::signature_check`) needs them, kept for
//! the process: the key decompressed once (a field square root, about a tenth of a
//! check), and for a key that signs often, a table of its multiples.
//!
//! A check computes `[S]B − [k]A`. Without a table that is a double-base multiplication
//! sharing about 253 doublings between the two scalars, which are two thirds of its cost.
//! With a fixed-base table for `−A` (as `B` has one), each product is 64 additions of
//! precomputed points and 4 doublings: about a quarter less time a check. The table
//! costs about as much to build as 40 checks, so it is built for a key only once the key
//! has been seen `SIGNER_TABLE_AFTER_CHECKS` times (BENCHMARKS.md). Both ways give the
//! same point, exactly, so the verdict never depends on which was taken. (The table's
//! lookups are constant-time, which a check of public data does not need; a variable-time
//! comb of our own measured only 5% faster, not worth a scalar multiplication of our own.)

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsBasepointTable, EdwardsPoint};
use curve25519_dalek::traits::BasepointTable;

use crate::keys::PublicKey;
use crate::limits::{SIGNER_TABLE_AFTER_CHECKS, SIGNER_TABLES_MAX, VERIFYING_KEY_CACHE_KEYS};

/// A signer's key as the signature check needs it.
#[derive(Clone)]
pub(crate) struct SignerPoint {
    /// `−A`, the negated key.
    pub minus_a: EdwardsPoint,
    /// Whether `A` is of small order (such a key verifies nothing).
    pub small_order: bool,
    /// Multiples of `−A` for a fixed-base multiplication, once the key signs often.
    pub table: Option<Arc<EdwardsBasepointTable>>,
}

/// The process's signers' points (`SignerPoints::point`).
pub(crate) static SIGNER_POINTS: LazyLock<SignerPoints> = LazyLock::new(|| {
    SignerPoints::new(
        VERIFYING_KEY_CACHE_KEYS,
        SIGNER_TABLES_MAX,
        SIGNER_TABLE_AFTER_CHECKS,
    )
});

/// A bounded cache of signers' points, shared by the threads that check signatures.
pub(crate) struct SignerPoints {
    cached: Mutex<Cached>,
    /// Keys kept; the cache starts again when full, so a flood of new signers costs time,
    /// never memory.
    keys_max: usize,
    /// Tables kept at once (each about 30 KiB); once that many are built, other keys are
    /// checked without one until the cache starts again.
    tables_max: usize,
    /// The check of a key at which its table is built.
    table_after_checks: u32,
}

#[derive(Default)]
struct Cached {
    points: HashMap<PublicKey, Cell>,
    /// Tables built or being built for the keys in `points`.
    tables: usize,
    /// Counts the times the cache started again: a table built for a key cached before
    /// then is not given to the key cached after.
    generation: u64,
}

struct Cell {
    point: SignerPoint,
    /// Checks of the key so far, counted up to `table_after_checks`.
    checks: u32,
}

impl SignerPoints {
    pub(crate) fn new(keys_max: usize, tables_max: usize, table_after_checks: u32) -> Self {
        SignerPoints {
            cached: Mutex::new(Cached::default()),
            keys_max,
            tables_max,
            table_after_checks,
        }
    }

    /// The signer's point for one more check, `None` if its bytes are not a point. The
    /// check that reaches the key's `table_after_checks`-th builds its table, outside the
    /// lock, so the other threads' checks go on meanwhile (without it).
    pub(crate) fn point(&self, signer: &PublicKey) -> Option<SignerPoint> {
        let (mut point, build) = {
            let mut cached = self.lock();
            if !cached.points.contains_key(signer) {
                self.cache_new(&mut cached, signer)?;
            }
            let generation = cached.generation;
            let Some(cell) = cached.points.get_mut(signer) else {
                unreachable!("the key is cached by now")
            };
            let due = cell.checks < self.table_after_checks;
            cell.checks += u32::from(due);
            let build = due
                && cell.checks == self.table_after_checks
                && cell.point.table.is_none()
                && !cell.point.small_order;
            let point = cell.point.clone();
            let build = build && cached.tables < self.tables_max;
            if build {
                cached.tables += 1;
            }
            (point, build.then_some(generation))
        };
        if let Some(generation) = build {
            let table = Arc::new(EdwardsBasepointTable::create(&point.minus_a));
            let mut cached = self.lock();
            if cached.generation == generation
                && let Some(cell) = cached.points.get_mut(signer)
            {
                cell.point.table = Some(table.clone());
            }
            point.table = Some(table);
        }
        Some(point)
    }

    /// Caches a key not cached yet, decompressed; `None` if its bytes are not a point.
    fn cache_new(&self, cached: &mut Cached, signer: &PublicKey) -> Option<()> {
        // The bytes as given, as `VerifyingKey::from_bytes` takes them: any encoding that
        // decompresses (the hash covers the bytes themselves, so two encodings of one
        // point are two keys).
        let a = CompressedEdwardsY(*signer).decompress()?;
        let point = SignerPoint {
            minus_a: -a,
            small_order: a.is_small_order(),
            table: None,
        };
        if cached.points.len() >= self.keys_max {
            cached.points.clear();
            cached.tables = 0;
            cached.generation += 1;
        }
        cached.points.insert(*signer, Cell { point, checks: 0 });
        Some(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cached> {
        // A cache only: a panic elsewhere while the lock was held cannot leave a wrong
        // point in it (each change is one step), so a poisoned lock is used as it is.
        self.cached.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many keys hold a table now.
    #[cfg(test)]
    fn tables_held(&self) -> usize {
        let cached = self.lock();
        cached
            .points
            .values()
            .filter(|c| c.point.table.is_some())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use curve25519_dalek::constants::EIGHT_TORSION;
    use ed25519_dalek::SigningKey;

    use super::*;

    fn key(n: u8) -> PublicKey {
        SigningKey::from_bytes(&[n; 32]).verifying_key().to_bytes()
    }

    /// Whether a table is given on each check of one key, in turn.
    fn tables_given(points: &SignerPoints, signer: &PublicKey, checks: usize) -> Vec<bool> {
        (0..checks)
            .map(|_| points.point(signer).is_some_and(|p| p.table.is_some()))
            .collect()
    }

    #[test]
    fn a_key_gets_its_table_at_the_check_that_reaches_the_threshold() {
        let points = SignerPoints::new(16, 4, 3);
        let a = key(1);
        assert_eq!(
            tables_given(&points, &a, 5),
            [false, false, true, true, true]
        );
        let point = points.point(&a).expect("a key");
        let table = point.table.expect("a table");
        // The table's multiples are of −A.
        let k = curve25519_dalek::scalar::Scalar::from(77u64);
        assert_eq!(&*table * &k, point.minus_a * k);
        // At the threshold of one: the first check builds it.
        let once = SignerPoints::new(16, 4, 1);
        assert_eq!(tables_given(&once, &a, 2), [true, true]);
    }

    #[test]
    fn tables_stop_at_their_limit_and_start_again_with_the_cache() {
        let points = SignerPoints::new(3, 2, 1);
        for n in 1..=3 {
            points.point(&key(n));
        }
        assert_eq!(
            points.tables_held(),
            2,
            "a third key is checked without one"
        );
        assert!(points.point(&key(3)).is_some_and(|p| p.table.is_none()));
        // A fourth key starts the cache again: its own table is built.
        assert!(points.point(&key(4)).is_some_and(|p| p.table.is_some()));
        assert_eq!(points.tables_held(), 1);
        // No tables at all: every check takes the double-base way.
        let none = SignerPoints::new(16, 0, 1);
        assert_eq!(tables_given(&none, &key(1), 3), [false; 3]);
    }

    #[test]
    fn small_order_keys_get_no_table_and_bytes_off_the_curve_no_point() {
        let points = SignerPoints::new(16, 4, 1);
        let small = EIGHT_TORSION[2].compress().to_bytes();
        let point = points.point(&small).expect("a torsion point decompresses");
        assert!(point.small_order && point.table.is_none());
        let off_curve = (2u8..)
            .map(|y| {
                let mut bytes = [0u8; 32];
                bytes[0] = y;
                bytes
            })
            .find(|bytes| CompressedEdwardsY(*bytes).decompress().is_none())
            .expect("some small y is on no point of the curve");
        assert!(points.point(&off_curve).is_none());
        assert_eq!(points.tables_held(), 0);
    }
}
