//! The signature yardstick the ingest benchmarks print their figures beside: strict
//! Ed25519 verifications per second of this machine, measured in the same run.

use std::time::Instant;

use dcledger::entry;
use ed25519_dalek::{Signer, SigningKey};

/// Strict verifications per second on `threads` threads at once, each checking
/// `messages` signatures over signing messages of about `entry_bytes` bytes of entry
/// made for `origin` (what a strict check of a ledger entry hashes).
pub fn verify_strict_rate(threads: usize, messages: u32, entry_bytes: usize, origin: &str) -> f64 {
    let key = SigningKey::from_bytes(&[1; 32]);
    let public = key.verifying_key();
    let msgs: Vec<Vec<u8>> = (0..messages)
        .map(|i| {
            let entry = format!(
                "{{\"body\":{{\"n\":{i}}},\"pad\":\"{}\"}}",
                "x".repeat(entry_bytes)
            );
            entry::signing_message(origin, entry.as_bytes())
        })
        .collect();
    let sigs: Vec<_> = msgs.iter().map(|m| key.sign(m)).collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for (m, sig) in msgs.iter().zip(&sigs) {
                    public.verify_strict(m, sig).expect("valid");
                }
            });
        }
    });
    f64::from(messages) * threads as f64 / start.elapsed().as_secs_f64()
}
