//! The data directory's writer lock and file modes (PROTOCOL §11).
//!
//! One process writes a ledger. The lock is the data directory itself (`flock` on an
//! open descriptor of it), not a file in it: deleting files in the directory, a lock or
//! pid file among them, cannot let a second writer in, because the lock belongs to the
//! directory's inode and lasts as long as the holder's descriptor. The holder writes its
//! process id beside it (`writer.pid`) for the refusal message only; the refusal reads
//! the holder from the kernel's lock table first (`/proc/locks`), which no deletion in the
//! directory changes, and falls back on that file.
//!
//! What a ledger creates is its owner's only (files 0600, directories 0700), whatever
//! the umask: the ledger's own files are created with those modes, and the process umask
//! is set to 0o077 before a ledger is opened, since the derived store (redb) creates its
//! file itself, with the umask's modes.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::LedgerError;
use crate::dirlock::{self, DirLock, Tried};
use crate::owner_only;

/// Beside the lock: the process id of the process holding it, for messages only.
pub const PID_FILE: &str = "writer.pid";

/// Who holds a data directory's lock, as far as can be told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    Process(u32),
    Unknown,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holder::Process(pid) => write!(f, "process {pid}"),
            Holder::Unknown => f.write_str("another process (its process id could not be found)"),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LedgerError + '_ {
    move |source| LedgerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Makes every file and directory this process creates from now on its owner's only:
/// the umask becomes 0o077, so the derived store's file comes out 0600 and its
/// directory 0700.
pub(crate) fn private_files() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Creates `dir` and any missing parents, mode 0700.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), LedgerError> {
    owner_only::create_dir_all(dir).map_err(io(dir))
}

/// Takes the exclusive lock of the data directory `dir`, refusing, with the holder's
/// process id, if another process holds it. `record_holder` then writes this process's
/// id beside it.
pub(crate) fn lock(dir: &Path) -> Result<DirLock, LedgerError> {
    match dirlock::try_lock(dir).map_err(io(dir))? {
        Tried::Held(lock) => Ok(lock),
        Tried::Busy(handle) => Err(LedgerError::Locked {
            path: dir.to_path_buf(),
            holder: holder(dir, &handle),
        }),
    }
}

/// Writes this process's id to `dir/writer.pid`, for the refusal messages of others.
pub(crate) fn record_holder(dir: &Path) -> Result<(), LedgerError> {
    let pid_path = dir.join(PID_FILE);
    let mut pid_file = owner_only::create_file(&pid_path).map_err(io(&pid_path))?;
    writeln!(pid_file, "{}", std::process::id()).map_err(io(&pid_path))
}

/// The process holding `dir`'s lock: from the kernel's lock table, else from the pid file.
fn holder(dir: &Path, handle: &File) -> Holder {
    let from_kernel = handle.metadata().ok().and_then(|meta| {
        let table = std::fs::read_to_string("/proc/locks").ok()?;
        flock_holder(
            &table,
            rustix::fs::major(meta.dev()),
            rustix::fs::minor(meta.dev()),
            meta.ino(),
        )
    });
    let from_file = || {
        std::fs::read_to_string(dir.join(PID_FILE))
            .ok()?
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|pid| *pid > 0)
    };
    from_kernel
        .or_else(from_file)
        .map_or(Holder::Unknown, Holder::Process)
}

/// The process id of the `flock` holder of inode `ino` on device `major:minor` in the
/// text of `/proc/locks`: lines like `3: FLOCK  ADVISORY  WRITE 1234 00:2f:5678 0 EOF`
/// (device numbers in hex); `->` lines are waiters, not holders.
fn flock_holder(table: &str, major: u32, minor: u32, ino: u64) -> Option<u32> {
    table.lines().find_map(|line| {
        let mut fields = line.split_whitespace().skip(1);
        if fields.next()? != "FLOCK" {
            return None;
        }
        let mut fields = fields.skip(2);
        let pid: u32 = fields.next()?.parse().ok()?;
        let mut id = fields.next()?.split(':');
        let (maj, min, inode) = (id.next()?, id.next()?, id.next()?);
        let matches = u32::from_str_radix(maj, 16).ok()? == major
            && u32::from_str_radix(min, 16).ok()? == minor
            && inode.parse::<u64>().ok()? == ino;
        // A pid from another pid namespace reads as 0: no use in a message.
        (matches && pid > 0).then_some(pid)
    })
}

/// Whether `path` lies inside the directory `dir` (both exist).
pub(crate) fn is_inside(path: &Path, dir: &Path) -> bool {
    let canonical = |p: &Path| -> Option<PathBuf> { p.canonicalize().ok() };
    match (canonical(path), canonical(dir)) {
        (Some(path), Some(dir)) => path.starts_with(dir),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_read_from_the_lock_table() {
        let table = "1: POSIX  ADVISORY  WRITE 77 00:2f:99 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4321 fd:01:123456 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 999 fd:01:123456 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 0 00:30:7 0 EOF\n";
        assert_eq!(flock_holder(table, 0xfd, 1, 123_456), Some(4321));
        assert_eq!(flock_holder(table, 0xfd, 1, 123_457), None);
        assert_eq!(flock_holder(table, 0, 0x2f, 99), None, "a POSIX lock");
        assert_eq!(flock_holder(table, 0, 0x30, 7), None, "pid 0");
        assert_eq!(flock_holder("", 0, 0, 0), None);
    }

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_even_after_its_files_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).expect("first lock");
        record_holder(dir.path()).expect("pid file");
        assert!(dir.path().join(PID_FILE).exists());
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        match lock(dir.path()) {
            Err(LedgerError::Locked { holder, .. }) => {
                assert_eq!(holder, Holder::Process(std::process::id()));
            }
            other => panic!("a second lock was not refused: {other:?}"),
        }
        drop(held);
        lock(dir.path()).expect("free again once dropped");
    }
}
