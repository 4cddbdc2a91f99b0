//! The domain of SPEC §7: facilities, GPUs, permits, money, power and occupancy. Field
//! rules judged with the body alone (`fields`), ledger rules judged against the
//! projections (`rules`), and the projections themselves (`records`), which derived
//! state holds and the audit and reports read. No I/O beyond the overlay it is handed.

pub mod bodies;
pub mod fields;
pub mod figures;
pub mod records;
pub mod rules;
