//! Derived storage: sled (derived, rebuildable). Only this module touches files of the
//! data directory's `index/`; the segments (the truth) belong to the log layer
//! (`log::segment`).

pub mod derived;
