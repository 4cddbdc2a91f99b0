//! The audit snapshot a server publishes: an immutable `Snapshot` behind an atomic
//! pointer. Readers take the pointer and never wait for a snapshot that is current;
//! one refresher at a time brings it up to date and swaps it in, while a reader that
//! asked for the newer one waits. A snapshot that no request still holds is refreshed
//! in place; one that a request still reads is copied first, and the copy shares every
//! facility's records and settled reports with it. An audit of a snapshot runs on that
//! snapshot alone, so neither a long audit nor a refresh stands in front of any other
//! request.

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
        // Taken out, so that the published reference is not one more holder. Askers
        // meanwhile find none and wait for their turn, which comes after this one.
        let next = match self.current.swap(None) {
            Some(mut snapshot) => {
                // Copies only if a request still reads it. If the refresh fails, the
                // snapshot may be half refreshed; none is published, and the next
                // asker loads one afresh.
                Arc::make_mut(&mut snapshot).refresh(reader)?;
                snapshot
            }
            None => Arc::new(Snapshot::load(reader)?),
        };
        self.current.store(Some(next.clone()));
        Ok(next)
    }

    fn fresh(&self, size: u64) -> Option<Arc<Snapshot>> {
        self.current.load_full().filter(|s| s.size >= size)
    }
}
