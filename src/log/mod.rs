//! The log layer: the segments (the leaves, the only truth), the Merkle tree, its
//! checkpoints, its proofs and its tiles, over opaque leaf bytes. It knows nothing of
//! what a leaf means: nothing here may name the domain, the registry, ingest, the
//! audit, reports, pages, the server or entries (a test in this module scans every line
//! for such paths).

pub mod checkpoint;
pub mod cosignature;
pub mod export;
pub mod layout;
pub mod merkle;
pub mod segment;
pub mod tiles;

#[cfg(test)]
mod tests {
    /// The log layer imports nothing from the modules above it: every line of every file
    /// of `src/log/`, not only `use` lines, is searched for a path into them.
    #[test]
    fn the_log_knows_nothing_of_the_domain() {
        let forbidden = [
            "domain",
            "registry",
            "ingest",
            "audit",
            "report",
            "pages",
            "server",
            "entry",
            "ledger",
            "views",
            "synthetic",
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/log");
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                for module in forbidden {
                    for spelling in [
                        format!("crate::{module}"),
                        format!("dcledger::{module}"),
                        format!("super::super::{module}"),
                    ] {
                        assert!(
                            !line.contains(&spelling),
                            "{}:{}: the log layer names `{spelling}`",
                            path.display(),
                            n + 1
                        );
                    }
                }
            }
        }
    }
}
