//! The ordered key-value engine under derived state. `Derived` needs little of it: point
//! reads, ordered pages of keys, and one atomic write of a batch. Keeping it that narrow
//! is what let the engine be chosen by measuring candidates on the ledger's own workload
//! (`benches/store.rs`, ARCHITECTURE.md "Derived state"), and lets scratch replays
//! (`verify`, readers beside a writer) run in memory.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::RwLock;

/// What an engine reports when it fails: its own error, carried whole.
pub type EngineError = Box<dyn std::error::Error + Send + Sync>;

/// Keys and values in key order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Writes to make together: each key once, with its new value. Hashed, not ordered:
/// an overlay reads its batch (and the batch before it) for nearly every key it reads,
/// and a search of an ordered map of tens of thousands of keys that share long prefixes
/// was a quarter of a replay's admitting thread, in key comparisons. An engine that
/// wants the keys in order sorts them once, as it writes them (`in_key_order`).
pub type Batch = HashMap<Vec<u8>, Vec<u8>>;

/// The pairs of `batches` in key order, batch after batch.
pub fn in_key_order<'a>(batches: &[&'a Batch]) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
    batches.iter().flat_map(|batch| {
        let mut pairs: Vec<(&[u8], &[u8])> = batch
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        pairs
    })
}

pub trait Engine: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError>;

    /// At most `limit` pairs after `from`, in key order.
    fn page(&self, from: Bound<&[u8]>, limit: usize) -> Result<Pairs, EngineError>;

    /// Writes every pair of every batch, atomically: after a crash all of them are there
    /// or none. A key in more than one batch takes the last one's value.
    fn apply(&self, batches: &[&Batch]) -> Result<(), EngineError>;

    /// Makes every applied batch durable.
    fn flush(&self) -> Result<(), EngineError>;

    /// A consistent view for a run of point reads: the writer's, while it judges a
    /// batch. Cheaper than `get`, which starts a read of its own every time.
    fn snapshot(&self) -> Result<Box<dyn ReadSnapshot + '_>, EngineError>;
}

/// Point reads of one consistent state of an engine.
pub trait ReadSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError>;
}

/// An engine in memory, for scratch replays that are thrown away when done.
#[derive(Default)]
pub struct Memory {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl Memory {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        // A writer that panicked mid-insert leaves a map whose every entry is whole
        // (BTreeMap inserts are not torn), so the data under a poisoned lock is usable.
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl Engine for Memory {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.read().get(key).cloned())
    }

    fn page(&self, from: Bound<&[u8]>, limit: usize) -> Result<Pairs, EngineError> {
        let map = self.read();
        Ok(map
            .range::<[u8], _>((from, Bound::Unbounded))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn apply(&self, batches: &[&Batch]) -> Result<(), EngineError> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        for (k, v) in batches.iter().copied().flatten() {
            map.insert(k.clone(), v.clone());
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), EngineError> {
        Ok(())
    }

    fn snapshot(&self) -> Result<Box<dyn ReadSnapshot + '_>, EngineError> {
        Ok(Box::new(MemorySnapshot(self.read())))
    }
}

struct MemorySnapshot<'a>(std::sync::RwLockReadGuard<'a, BTreeMap<Vec<u8>, Vec<u8>>>);

impl ReadSnapshot for MemorySnapshot<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.0.get(key).cloned())
    }
}

/// Every pair of an engine from `start` on, read a page at a time so that no read holds
/// the engine for long and no caller holds more than a page it has not asked for.
pub struct Scan<'a> {
    engine: &'a dyn Engine,
    /// Where the next page starts; `None` once the engine has no more.
    next: Option<Bound<Vec<u8>>>,
    page: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
    /// Pairs the next page fetches: few at first (most lookups stop after one or two),
    /// doubling up to `SCAN_PAGE_PAIRS_MAX` for scans that go on.
    page_pairs: usize,
}

const SCAN_PAGE_PAIRS_FIRST: usize = 8;
const SCAN_PAGE_PAIRS_MAX: usize = 512;

impl<'a> Scan<'a> {
    pub fn from(engine: &'a dyn Engine, start: &[u8]) -> Scan<'a> {
        Scan {
            engine,
            next: Some(Bound::Included(start.to_vec())),
            page: Vec::new().into_iter(),
            page_pairs: SCAN_PAGE_PAIRS_FIRST,
        }
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>), EngineError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(pair) = self.page.next() {
            return Some(Ok(pair));
        }
        let from = self.next.take()?;
        let asked = self.page_pairs;
        let page = match self.engine.page(from.as_ref().map(Vec::as_slice), asked) {
            Ok(page) => page,
            Err(e) => return Some(Err(e)),
        };
        if page.len() == asked
            && let Some((last, _)) = page.last()
        {
            self.next = Some(Bound::Excluded(last.clone()));
        }
        self.page_pairs = (asked * 2).min(SCAN_PAGE_PAIRS_MAX);
        self.page = page.into_iter();
        self.page.next().map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_reads_every_pair_from_its_start_across_pages() {
        let engine = Memory::default();
        let writes: Batch = (0u32..1_500)
            .map(|i| (i.to_be_bytes().to_vec(), vec![1]))
            .collect();
        engine.apply(&[&writes]).unwrap();
        let from = 700u32.to_be_bytes();
        let keys: Vec<Vec<u8>> = Scan::from(&engine, &from).map(|kv| kv.unwrap().0).collect();
        let want: Vec<Vec<u8>> = (700u32..1_500).map(|i| i.to_be_bytes().to_vec()).collect();
        assert_eq!(keys, want);
        assert_eq!(Scan::from(&engine, &[0xff; 5]).count(), 0);
    }

    #[test]
    fn batches_are_written_in_key_order_batch_after_batch() {
        let first: Batch = [
            (vec![2, 0], vec![1]),
            (vec![1], vec![2]),
            (vec![2], vec![3]),
        ]
        .into_iter()
        .collect();
        let second: Batch = [(vec![0], vec![4]), (vec![1], vec![5])]
            .into_iter()
            .collect();
        let written: Vec<(&[u8], &[u8])> = in_key_order(&[&first, &second]).collect();
        let want: [(&[u8], &[u8]); 5] = [
            (&[1], &[2]),
            (&[2], &[3]),
            (&[2, 0], &[1]),
            (&[0], &[4]),
            (&[1], &[5]),
        ];
        assert_eq!(written, want);
    }
}
