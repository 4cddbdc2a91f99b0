//! Files and directories readable by their owner only (PROTOCOL §11): every file the
//! ledger, a witness, a monitor or an export writes is 0600 and every directory 0700,
//! whatever the process umask. The one place those modes are set.

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Creates `dir` and any missing parents, mode 0700.
pub fn create_dir_all(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates `path` for writing, or truncates it, mode 0600 (an existing file keeps its
/// mode).
pub fn create_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}
