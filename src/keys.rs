//! Ed25519 keys as files and as hex (PROTOCOL §3). Private keys are PKCS#8 PEM, the format
//! `openssl genpkey -algorithm ed25519` writes, so an operator never needs this binary to
//! make or hold a key.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes};
use ed25519_dalek::{SigningKey, VerifyingKey};

/// A public key, as it appears in entries.
pub type PublicKey = [u8; 32];

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not an Ed25519 PKCS#8 PEM private key ({reason}); make one with \
         `openssl genpkey -algorithm ed25519 -out KEY.pem` or `dcledger keygen`"
    )]
    Parse { path: PathBuf, reason: String },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the system random number generator failed: {0}")]
    Random(String),
}

/// Reads a PKCS#8 PEM Ed25519 private key.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_signing_key(&pem, path)
}

/// Parses PKCS#8 PEM text; `origin` names where it came from in errors.
pub fn parse_signing_key(pem: &str, origin: &Path) -> Result<SigningKey, KeyError> {
    SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError::Parse {
        path: origin.to_path_buf(),
        reason: e.to_string(),
    })
}

/// A fresh key from the operating system's random source.
pub fn generate() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes `key` as PKCS#8 PEM with mode 0600, refusing to overwrite an existing file: a
/// silently replaced key would orphan every entry signed with the old one. The encoding
/// is PKCS#8 v1 (seed only), byte for byte what `openssl genpkey` writes: OpenSSL 3.0
/// cannot read the v2 form that also embeds the public key.
pub fn write_signing_key(path: &Path, key: &SigningKey) -> Result<(), KeyError> {
    let err = |source| KeyError::Write {
        path: path.to_path_buf(),
        source,
    };
    let v1 = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    let pem = v1
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| err(std::io::Error::other(e.to_string())))?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    file.write_all(pem.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)
}

pub fn public_hex(key: &VerifyingKey) -> String {
    hex::encode(key.as_bytes())
}

/// Parses 64 lowercase hex characters.
pub fn parse_public_hex(s: &str) -> Option<PublicKey> {
    parse_lower_hex::<32>(s)
}

/// Parses exactly `2 * N` lowercase hex characters (the spelling PROTOCOL §2 fixes).
///
/// One pass through a table, without a branch a character: every entry's signature and
/// signer are read this way, where checking the characters and then decoding them
/// (`hex::decode_to_slice`, which checks them again) cost about 1% of a bulk append.
pub fn parse_lower_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    // Every digit's value is below 16; `NOT_LOWER_HEX` is not, and survives the `|`.
    let mut seen = 0u8;
    for (byte, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (high, low) = (
            LOWER_HEX_VALUES[usize::from(pair[0])],
            LOWER_HEX_VALUES[usize::from(pair[1])],
        );
        seen |= high | low;
        *byte = (high << 4) | low;
    }
    (seen < 16).then_some(out)
}

/// What `LOWER_HEX_VALUES` holds for a byte that is not a lowercase hex digit.
const NOT_LOWER_HEX: u8 = 0xff;

/// Each byte's value as a lowercase hex digit, or `NOT_LOWER_HEX`.
const LOWER_HEX_VALUES: [u8; 256] = {
    let mut values = [NOT_LOWER_HEX; 256];
    let mut digit = 0;
    while digit < 16 {
        let spelled = b"0123456789abcdef"[digit];
        values[spelled as usize] = digit as u8;
        digit += 1;
    }
    values
};

/// Why 32 bytes can never be a key that signs (PROTOCOL §6). Each word says what the bytes
/// are and what to give instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnusableKey {
    #[error(
        "is not an Ed25519 public key: the bytes are not the encoding of a point of the \
         curve; give the 32-byte public key of an Ed25519 key pair (e.g. `dcledger keygen`)"
    )]
    NotAPoint,
    #[error(
        "is not the canonical encoding of its point (its y coordinate is 2^255-19 or more, \
         or it gives x = 0 a sign); give the public key as its key pair encodes it"
    )]
    NotCanonical,
    #[error(
        "is a point of small order (the identity among them): a strict verifier refuses \
         every signature by it; give the public key of a real Ed25519 key pair"
    )]
    SmallOrder,
}

/// Whether `pk` could ever sign an entry that strict verification (PROTOCOL §3) accepts: a
/// point of the curve, canonically encoded, not of small order.
pub fn check_signing_key(pk: &PublicKey) -> Result<(), UnusableKey> {
    let key = VerifyingKey::from_bytes(pk).map_err(|_| UnusableKey::NotAPoint)?;
    // Decompression reduces y modulo p and accepts a sign on x = 0; the canonical
    // encoding of the point it found is the one re-compression gives.
    if key.to_edwards().compress().to_bytes() != *pk {
        return Err(UnusableKey::NotCanonical);
    }
    if key.is_weak() {
        return Err(UnusableKey::SmallOrder);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 8410 §10.3 example private key; its public key is given there too.
    const RFC8410_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
        -----END PRIVATE KEY-----\n";

    #[test]
    fn reads_openssl_style_pem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        std::fs::write(&path, RFC8410_PEM).unwrap();
        let key = load_signing_key(&path).unwrap();
        assert_eq!(
            public_hex(&key.verifying_key()),
            "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1"
        );
    }

    #[test]
    fn written_keys_are_private_and_reload() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let key = generate().unwrap();
        write_signing_key(&path, &key).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_signing_key(&path).unwrap().to_bytes(), key.to_bytes());
        assert!(
            write_signing_key(&path, &key).is_err(),
            "must not overwrite"
        );
    }

    #[test]
    fn garbage_key_file_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        std::fs::write(&path, "hello").unwrap();
        let msg = load_signing_key(&path).unwrap_err().to_string();
        assert!(msg.contains("openssl genpkey"), "{msg}");
    }

    fn bytes(hex_text: &str) -> PublicKey {
        parse_public_hex(hex_text).unwrap()
    }

    /// The eight points of small order, canonically encoded (the identity, the point of
    /// order 2, two of order 4 and four of order 8).
    const SMALL_ORDER: [&str; 8] = [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    ];

    #[test]
    fn keys_that_could_never_sign_are_told_apart() {
        let real = SigningKey::from_bytes(&[7u8; 32])
            .verifying_key()
            .to_bytes();
        assert_eq!(check_signing_key(&real), Ok(()));
        for small in SMALL_ORDER {
            assert_eq!(
                check_signing_key(&bytes(small)),
                Err(UnusableKey::SmallOrder),
                "{small}"
            );
            assert!(!reference::can_sign(&bytes(small)), "{small}");
        }
        let cases = [
            // y = 2 is no point's y coordinate.
            (
                "0200000000000000000000000000000000000000000000000000000000000000",
                UnusableKey::NotAPoint,
            ),
            // y = p + 3 spells the point whose y is 3.
            (
                "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
                UnusableKey::NotCanonical,
            ),
            // y = p spells y = 0 (a point of order 4).
            (
                "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
                UnusableKey::NotCanonical,
            ),
            // The identity with a sign on x = 0.
            (
                "0100000000000000000000000000000000000000000000000000000000000080",
                UnusableKey::NotCanonical,
            ),
        ];
        for (hex_text, why) in cases {
            assert_eq!(check_signing_key(&bytes(hex_text)), Err(why), "{hex_text}");
            assert!(!reference::can_sign(&bytes(hex_text)), "{hex_text}");
        }
    }

    /// An independent check of PROTOCOL §6's rule with big integers, from the curve's
    /// definition (RFC 8032 §5.1.3 decoding, then [8]P = identity for small order).
    mod reference {
        use num_bigint::BigUint;

        pub fn p() -> BigUint {
            (BigUint::from(1u8) << 255u32) - 19u8
        }

        fn inv(a: &BigUint) -> BigUint {
            a.modpow(&(p() - 2u8), &p())
        }

        /// -121665/121666 mod p.
        fn d() -> BigUint {
            (p() - 121_665u32) * inv(&BigUint::from(121_666u32)) % p()
        }

        /// Twisted Edwards addition (a = -1), complete on this curve.
        fn add(a: &(BigUint, BigUint), b: &(BigUint, BigUint)) -> (BigUint, BigUint) {
            let p = p();
            let t = d() * &a.0 * &b.0 * &a.1 * &b.1 % &p;
            let x = (&a.0 * &b.1 + &a.1 * &b.0) * inv(&((1u8 + &t) % &p)) % &p;
            let y = (&a.1 * &b.1 + &a.0 * &b.0) * inv(&((&p + 1u8 - &t) % &p)) % &p;
            (x, y)
        }

        pub fn can_sign(bytes: &[u8; 32]) -> bool {
            let p = p();
            let x_sign = bytes[31] >> 7;
            let mut y_bytes = *bytes;
            y_bytes[31] &= 0x7f;
            let y = BigUint::from_bytes_le(&y_bytes);
            if y >= p {
                return false; // not canonical
            }
            let yy = &y * &y % &p;
            let u = (&yy + &p - 1u8) % &p;
            let v = (d() * &yy + 1u8) % &p;
            let xx = u * inv(&v) % &p;
            let x = if xx == BigUint::ZERO {
                if x_sign == 1 {
                    return false; // a sign on x = 0: not canonical
                }
                BigUint::ZERO
            } else {
                if xx.modpow(&((&p - 1u8) >> 1u32), &p) != BigUint::from(1u8) {
                    return false; // x² has no root: not a point
                }
                let x = xx.modpow(&((&p + 3u8) >> 3u32), &p);
                if &x * &x % &p == xx {
                    x
                } else {
                    let sqrt_minus_one = BigUint::from(2u8).modpow(&((&p - 1u8) >> 2u32), &p);
                    x * sqrt_minus_one % &p
                }
            };
            // Small order: [8]P is the identity (0, 1). The sign of x does not matter.
            let mut q = (x, y);
            for _ in 0..3 {
                q = add(&q, &q);
            }
            !(q.0 == BigUint::ZERO && q.1 == BigUint::from(1u8))
        }
    }

    fn encode(y: num_bigint::BigUint, x_sign: bool) -> PublicKey {
        let mut out = [0u8; 32];
        let digits = y.to_bytes_le();
        out[..digits.len()].copy_from_slice(&digits);
        out[31] |= u8::from(x_sign) << 7;
        out
    }

    /// Bytes near the edges (y near 0, 1 and p - 1, y of p or more, with either sign of
    /// x), the small-order points, real keys, and plain random bytes.
    fn key_bytes() -> impl Strategy<Value = PublicKey> {
        use num_bigint::BigUint;
        prop_oneof![
            any::<[u8; 32]>(),
            any::<[u8; 32]>()
                .prop_map(|seed| SigningKey::from_bytes(&seed).verifying_key().to_bytes()),
            (0u32..64, any::<bool>()).prop_map(|(k, s)| encode(BigUint::from(k), s)),
            (1u32..64, any::<bool>()).prop_map(|(k, s)| encode(reference::p() - k, s)),
            // p + k stays below 2^255 for k < 19.
            (0u32..19, any::<bool>()).prop_map(|(k, s)| encode(reference::p() + k, s)),
            prop::sample::select(SMALL_ORDER.to_vec()).prop_map(bytes),
        ]
    }

    proptest! {
        /// The same as checking every character and then decoding with the `hex` crate,
        /// for lowercase hex, uppercase, other bytes and every length around the right one.
        #[test]
        fn lower_hex_parses_as_the_hex_crate_decodes_lowercase(
            s in "([0-9a-f]{62,66})|([0-9a-fA-F]{64})|([0-9a-f]{0,63}[^0-9a-f][0-9a-f]{0,63})|(.{0,70})"
        ) {
            let expected = (s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                .then(|| {
                    let mut out = [0u8; 32];
                    hex::decode_to_slice(&s, &mut out).unwrap();
                    out
                });
            prop_assert_eq!(parse_lower_hex::<32>(&s), expected);
        }

        /// Accepted exactly when the independent check says the bytes can sign.
        #[test]
        fn signing_keys_are_the_points_that_can_sign(pk in key_bytes()) {
            prop_assert_eq!(check_signing_key(&pk).is_ok(), reference::can_sign(&pk));
        }
    }

    #[test]
    fn hex_is_lowercase_only() {
        assert!(parse_public_hex(&"ab".repeat(32)).is_some());
        assert!(parse_public_hex(&"AB".repeat(32)).is_none());
        assert!(parse_public_hex(&"ab".repeat(31)).is_none());
    }
}
