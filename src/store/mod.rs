//! Storage: the segment log (truth) and sled (derived, rebuildable). Only this module
//! touches files of the data directory's `segments/` and `index/`.

pub mod derived;
pub mod segment;
