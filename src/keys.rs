//! Ed25519 keys as files and as hex (SPEC §3). Private keys are PKCS#8 PEM, the format
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

/// Parses exactly `2 * N` lowercase hex characters (the spelling SPEC §2 fixes).
pub fn parse_lower_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn hex_is_lowercase_only() {
        assert!(parse_public_hex(&"ab".repeat(32)).is_some());
        assert!(parse_public_hex(&"AB".repeat(32)).is_none());
        assert!(parse_public_hex(&"ab".repeat(31)).is_none());
    }
}
