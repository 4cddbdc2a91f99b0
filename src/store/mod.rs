//! Derived storage (rebuildable): the engine seam, and the redb file that keeps it.
//! Only this module touches files of the data directory's `index/`; the segments (the
//! truth) belong to the log layer (`log::segment`).

pub mod derived;
mod digests;
pub mod engine;
pub mod first_seen;
pub mod redb_file;
