//! `cargo bench --bench signatures -- ENTRY_BYTES`: the signature yardsticks of
//! `benches/world_append.sh`, measured in its run. Prints two lines: every core's strict
//! Ed25519 checks per second over the signing messages of entries of about `ENTRY_BYTES`
//! bytes, with `ed25519_dalek`'s `verify_strict` and with the ledger's own check
//! (`entry::verify_entry_signature`, the same verdict). Asserts nothing.

mod yardstick;

use dcledger::synthetic::ORIGIN;

/// Signatures each core checks, per yardstick: about half a second's work.
const MESSAGES: u32 = 20_000;

fn main() {
    let entry_bytes: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(600);
    let cores = std::thread::available_parallelism().map_or(1, |t| t.get());
    let strict = yardstick::verify_strict_rate(cores, MESSAGES, entry_bytes, ORIGIN);
    let own = yardstick::entry_check_rate(cores, MESSAGES, entry_bytes, ORIGIN);
    println!("verify_strict {strict:.0}");
    println!("own {own:.0}");
}
