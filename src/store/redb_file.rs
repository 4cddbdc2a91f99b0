//! Derived state in one redb file: a copy-on-write B-tree, chosen over sled and fjall by
//! measuring them on the ledger's own workload (`benches/store.rs`, BENCHMARKS.md): it
//! rebuilt a world as fast as a map in memory, in the least memory, and opens in a
//! millisecond. Commits are atomic but not synced; one every
//! `DERIVED_DURABLE_INTERVAL_MS`, and `flush`, sync. A crash rolls the file back to the
//! last synced commit, whose `applied` marker says where opening resumes the replay.

use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::limits::DERIVED_DURABLE_INTERVAL_MS;
use crate::store::engine::{Batch, Engine, EngineError, Pairs, ReadSnapshot, in_key_order};

/// The file in the derived state's directory.
pub const FILE_NAME: &str = "derived.redb";

/// Every key family in one table, so a ledger batch is one transaction.
const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("derived");

pub struct RedbFile {
    db: redb::Database,
    /// When the last synced commit was made.
    synced: Mutex<Instant>,
}

impl RedbFile {
    /// The store in `dir`, keeping up to `cache_bytes` of its pages in memory.
    pub fn open(dir: &Path, cache_bytes: usize) -> Result<RedbFile, EngineError> {
        std::fs::create_dir_all(dir)?;
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(dir.join(FILE_NAME))?;
        let file = RedbFile {
            db,
            synced: Mutex::new(Instant::now()),
        };
        // The table exists from the start, so reads never meet its absence.
        file.commit(&[], true)?;
        Ok(file)
    }

    fn commit(&self, batches: &[&Batch], sync: bool) -> Result<(), EngineError> {
        let mut tx = self.db.begin_write()?;
        if sync {
            // A crash after this commit is repaired from saved allocator state, not by
            // walking the whole file.
            tx.set_quick_repair(true);
        } else {
            tx.set_durability(redb::Durability::None)?;
        }
        {
            let mut table = tx.open_table(TABLE)?;
            // In key order, each page of the tree is reached once in a row.
            for (k, v) in in_key_order(batches) {
                table.insert(k, v)?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

impl Engine for RedbFile {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(TABLE)?;
        Ok(table.get(key)?.map(|v| v.value().to_vec()))
    }

    fn page(&self, from: Bound<&[u8]>, limit: usize) -> Result<Pairs, EngineError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(TABLE)?;
        let mut out = Vec::new();
        for kv in table.range((from, Bound::<&[u8]>::Unbounded))?.take(limit) {
            let (k, v) = kv?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn apply(&self, batches: &[&Batch]) -> Result<(), EngineError> {
        // One writer commits at a time (the ledger's); the lock only guards the clock.
        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        let sync = synced.elapsed() >= Duration::from_millis(DERIVED_DURABLE_INTERVAL_MS);
        self.commit(batches, sync)?;
        if sync {
            *synced = Instant::now();
        }
        Ok(())
    }

    fn snapshot(&self) -> Result<Box<dyn ReadSnapshot + '_>, EngineError> {
        let tx = self.db.begin_read()?;
        Ok(Box::new(RedbSnapshot(tx.open_table(TABLE)?)))
    }

    fn flush(&self) -> Result<(), EngineError> {
        self.commit(&[], true)?;
        *self.synced.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        Ok(())
    }
}

/// One read transaction's table, for a batch's point reads.
struct RedbSnapshot(redb::ReadOnlyTable<&'static [u8], &'static [u8]>);

impl ReadSnapshot for RedbSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.0.get(key)?.map(|v| v.value().to_vec()))
    }
}
