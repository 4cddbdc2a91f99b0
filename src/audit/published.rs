//! The audit snapshot a server publishes: an immutable `Snapshot` behind an atomic
//! pointer. Readers take the pointer and never wait; one refresher at a time builds the
//! next snapshot beside them (sharing every facility the new entries did not touch)
//! and swaps it in. An audit of a snapshot runs on that snapshot alone, so neither a
//! long audit nor a refresh stands in front of any other request.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use super::Snapshot;
use crate::ledger::{LedgerError, Reader};

#[derive(Default)]
pub struct Published {
    current: ArcSwapOption<Snapshot>,
    /// Held while a next snapshot is built, so that concurrent askers build it once.
    refreshing: Mutex<()>,
}

impl Published {
    /// The snapshot at the ledger's size as this call began (or later), built first if
    /// the published one is behind.
    pub fn current(&self, reader: &Reader) -> Result<Arc<Snapshot>, LedgerError> {
        let size = reader.size();
        if let Some(s) = self.fresh(size) {
            return Ok(s);
        }
        let _turn = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        // Another asker may have built it while this one waited for its turn.
        if let Some(s) = self.fresh(size) {
            return Ok(s);
        }
        let next = match self.current.load_full() {
            Some(old) => match old.refreshed(reader)? {
                Some(next) => Arc::new(next),
                None => old,
            },
            None => Arc::new(Snapshot::load(reader)?),
        };
        self.current.store(Some(next.clone()));
        Ok(next)
    }

    fn fresh(&self, size: u64) -> Option<Arc<Snapshot>> {
        self.current.load_full().filter(|s| s.size >= size)
    }
}
