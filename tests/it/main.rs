//! Integration tests: one test binary, one module per concern.

mod cli;
mod crash;
mod group_commit;
mod recovery;
mod registry_rejections;
mod support;
