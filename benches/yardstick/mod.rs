//! The signature yardstick the ingest benchmarks print their figures beside: strict
//! Ed25519 verifications per second of this machine, measured in the same run.

use std::time::Instant;

use dcledger::entry;
use ed25519_dalek::{Signer, SigningKey};

/// Strict verifications per second on `threads` threads at once, each checking
/// `messages` signatures over signing messages of about `entry_bytes` bytes of entry
/// made for `origin` (what a strict check of a ledger entry hashes), with
/// `ed25519_dalek`'s `verify_strict`: the yardstick.
pub fn verify_strict_rate(threads: usize, messages: u32, entry_bytes: usize, origin: &str) -> f64 {
    let public = SigningKey::from_bytes(&[1; 32]).verifying_key();
    let signed: Vec<_> = signed_entries(messages, entry_bytes, origin)
        .into_iter()
        .map(|(entry, sig)| (entry::signing_message(origin, &entry), sig))
        .collect();
    rate(threads, &signed, &|message, sig| {
        public.verify_strict(message, sig).is_ok()
    })
}

/// The same signatures checked with the ledger's own check
/// (`entry::verify_entry_signature`: the same verdict, one point decompression fewer),
/// printed beside the yardstick so a reader sees how much of a figure's ratio to it is
/// the cheaper check.
pub fn entry_check_rate(threads: usize, messages: u32, entry_bytes: usize, origin: &str) -> f64 {
    let public = SigningKey::from_bytes(&[1; 32]).verifying_key().to_bytes();
    let signed = signed_entries(messages, entry_bytes, origin);
    rate(threads, &signed, &|entry, sig| {
        entry::verify_entry_signature(origin, &public, entry, &sig.to_bytes())
    })
}

/// `messages` entries of about `entry_bytes` bytes, each with its signature made for
/// `origin`.
fn signed_entries(
    messages: u32,
    entry_bytes: usize,
    origin: &str,
) -> Vec<(Vec<u8>, ed25519_dalek::Signature)> {
    let key = SigningKey::from_bytes(&[1; 32]);
    (0..messages)
        .map(|i| {
            let entry = format!(
                "{{\"body\":{{\"n\":{i}}},\"pad\":\"{}\"}}",
                "x".repeat(entry_bytes)
            )
            .into_bytes();
            let sig = key.sign(&entry::signing_message(origin, &entry));
            (entry, sig)
        })
        .collect()
}

/// Checks per second of `check` on `threads` threads at once, each thread checking every
/// one of `signed`.
fn rate(
    threads: usize,
    signed: &[(Vec<u8>, ed25519_dalek::Signature)],
    check: &(dyn Fn(&[u8], &ed25519_dalek::Signature) -> bool + Sync),
) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for (bytes, sig) in signed {
                    assert!(check(bytes, sig), "a valid signature");
                }
            });
        }
    });
    signed.len() as f64 * threads as f64 / start.elapsed().as_secs_f64()
}
