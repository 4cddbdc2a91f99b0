//! `dcledger`: an append-only signed ledger of AI data-center procurement, permits,
//! subsidies, loans, power and occupancy, with RFC 6962 proofs and signed checkpoints.
//! See ARCHITECTURE.md for the map of modules.

/// The allocator of every program built on this library: the binary, and so the tests and
/// benchmarks, which run and measure what users run. mimalloc, built without transparent
/// huge pages (`no_thp`): glibc's malloc took a fifth of the threads that admit and commit
/// entries (many small allocations freed on another thread), and huge pages made mimalloc
/// return and refault memory (BENCHMARKS.md, twelfth pass).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod audit;
pub mod bulk;
pub mod client;
pub mod config;
pub mod dates;
pub mod demo;
pub mod dirlock;
pub mod domain;
pub mod entry;
pub mod exact;
pub mod export;
pub mod ingest;
pub mod jcs;
pub mod json;
pub mod keys;
pub mod leaves;
pub mod ledger;
pub mod limits;
pub mod log;
pub mod monitor;
pub mod owner_only;
pub mod pages;
pub mod parallel;
pub mod prefetch;
pub mod proofcheck;
pub mod registry;
pub mod reject;
pub mod report;
pub mod schema;
pub mod server;
mod signer_points;
pub mod store;
pub mod submission;
pub mod synthetic;
#[cfg(test)]
mod testing;
pub mod views;
pub mod witness;
