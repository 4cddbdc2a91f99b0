//! The domain of PROTOCOL §7: facilities, GPUs, permits, money, power and occupancy. Field
//! rules judged with the body alone (`fields`), ledger rules judged against the
//! projections (`rules`), and the projections themselves (`records`), which derived
//! state holds and the audit and reports read. No I/O beyond the overlay it is handed.

// Money, energy and GPU-hours are exact here: no silent wrap, truncation or sign loss.
// An `allow` names the one expression it covers and why that expression cannot lose.
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::arithmetic_side_effects
)]

pub mod bodies;
pub(crate) mod checked;
pub mod fields;
pub mod figures;
pub mod records;
pub mod rules;
