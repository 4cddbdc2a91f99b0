//! An exclusive lock on a directory: `flock` on an open descriptor of the directory
//! itself, not on a file in it, so deleting files there cannot let a second holder in;
//! the lock lasts as long as the descriptor. The ledger's data directory
//! (`ledger::lock`), a witness's state and a monitor's state are each owned by one
//! process this way.

use std::fs::File;
use std::path::Path;

/// Held while it lives: the open directory whose `flock` excludes other processes.
#[derive(Debug)]
pub struct DirLock {
    _dir: File,
}

/// What trying a directory's lock found.
#[derive(Debug)]
pub enum Tried {
    Held(DirLock),
    /// Another process holds it; the directory's descriptor is kept so that the caller
    /// can ask the kernel who (`ledger::lock` names the holder).
    Busy(File),
}

/// Tries to take `dir`'s exclusive lock without waiting. `dir` must exist.
pub fn try_lock(dir: &Path) -> std::io::Result<Tried> {
    let handle = File::open(dir)?;
    match handle.try_lock() {
        Ok(()) => Ok(Tried::Held(DirLock { _dir: handle })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(Tried::Busy(handle)),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_busy_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = match try_lock(dir.path()).unwrap() {
            Tried::Held(lock) => lock,
            Tried::Busy(_) => panic!("a new directory is free"),
        };
        assert!(matches!(try_lock(dir.path()).unwrap(), Tried::Busy(_)));
        drop(first);
        assert!(matches!(try_lock(dir.path()).unwrap(), Tried::Held(_)));
    }
}
