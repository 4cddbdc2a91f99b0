//! Where tiles live (C2SP tlog-tiles): the only code that knows tile paths, both to build
//! them (for files and URLs alike: the data directory's `tiles/`, the HTTP routes and an
//! export all use the same relative path) and to parse request paths, refusing any
//! spelling the document does not allow, so one tile has exactly one path.
//!
//! `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`: `L` in 0..=63 and `W` in
//! 1..=255, decimal without leading zeroes; `N` in zero-padded three-digit groups, all
//! but the last prefixed with `x` (`1234067` is `x001/x234/067`).

use std::fmt::Write as _;

/// Hashes in a full tile (tiles are 8 levels high).
pub const TILE_WIDTH: u64 = 256;
/// Levels of the tree one tile spans.
pub const TILE_HEIGHT: u32 = 8;
/// The highest hash-tile level the document allows.
pub const MAX_TILE_LEVEL: u8 = 63;
/// The first element of every tile path.
pub const TILE_PREFIX: &str = "tile";
/// The level element of entry bundles' paths.
pub const ENTRIES: &str = "entries";

/// Which family a tile belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TileKind {
    /// Hashes at tree level `8 * level`.
    Hashes { level: u8 },
    /// Entry bundles: the leaves under level-0 tile of the same index.
    Entries,
}

/// One tile or entry bundle: its family, its index within the level and its width
/// (`TILE_WIDTH` for a full tile, 1..=255 for a partial one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    pub kind: TileKind,
    pub index: u64,
    pub width: u16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{path:?} is not a tile path (tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]): {reason}")]
pub struct PathError {
    pub path: String,
    pub reason: &'static str,
}

impl TileId {
    /// A hash tile; `width` 256 is full.
    pub fn hashes(level: u8, index: u64, width: u16) -> TileId {
        TileId::checked(TileKind::Hashes { level }, index, width)
    }

    /// An entry bundle; `width` 256 is full.
    pub fn entries(index: u64, width: u16) -> TileId {
        TileId::checked(TileKind::Entries, index, width)
    }

    fn checked(kind: TileKind, index: u64, width: u16) -> TileId {
        assert!(
            (1..=TILE_WIDTH as u16).contains(&width),
            "a tile holds 1 to 256 hashes, not {width}"
        );
        if let TileKind::Hashes { level } = kind {
            assert!(level <= MAX_TILE_LEVEL, "tile level {level} is above 63");
        }
        TileId { kind, index, width }
    }

    pub fn is_full(&self) -> bool {
        u64::from(self.width) == TILE_WIDTH
    }

    /// The full tile this one is a prefix of (itself when full).
    pub fn full(&self) -> TileId {
        TileId {
            width: TILE_WIDTH as u16,
            ..*self
        }
    }

    /// `tile/<L>/<N>` or `tile/entries/<N>`, the part every width of this tile shares.
    fn stem(&self) -> String {
        let mut out = String::from(TILE_PREFIX);
        match self.kind {
            TileKind::Hashes { level } => {
                let _ = write!(out, "/{level}");
            }
            TileKind::Entries => {
                out.push('/');
                out.push_str(ENTRIES);
            }
        }
        out.push('/');
        push_index(&mut out, self.index);
        out
    }

    /// The relative path (no leading slash), e.g. `tile/0/x001/234.p/5`.
    pub fn path(&self) -> String {
        let mut out = self.stem();
        if !self.is_full() {
            let _ = write!(out, ".p/{}", self.width);
        }
        out
    }

    /// The directory holding every partial width of this tile (`tile/0/x001/234.p`):
    /// what is removed once the full tile exists.
    pub fn partials_dir(&self) -> String {
        let mut out = self.stem();
        out.push_str(".p");
        out
    }

    /// The width a file in `partials_dir()` stands for, if it is a partial tile's (not,
    /// say, a temporary file).
    pub fn width_in_partials_dir(name: &str) -> Option<u16> {
        decimal(name, 1, TILE_WIDTH - 1).map(|w| w as u16)
    }

    /// The directory of every hash tile of one level (`tile/<L>`).
    pub fn level_dir(level: u8) -> String {
        format!("{TILE_PREFIX}/{level}")
    }

    /// Parses a relative path (no leading slash), refusing every non-canonical spelling.
    pub fn parse(path: &str) -> Result<TileId, PathError> {
        let bad = |reason| PathError {
            path: path.to_string(),
            reason,
        };
        let mut parts = path.split('/');
        if parts.next() != Some(TILE_PREFIX) {
            return Err(bad("it does not start with tile/"));
        }
        let kind = match parts.next() {
            Some(ENTRIES) => TileKind::Entries,
            Some(level) => TileKind::Hashes {
                level: decimal(level, 0, u64::from(MAX_TILE_LEVEL))
                    .and_then(|l| u8::try_from(l).ok())
                    .ok_or_else(|| bad("the level is not 0-63 without leading zeroes"))?,
            },
            None => return Err(bad("it has no level")),
        };
        let rest: Vec<&str> = parts.collect();
        // The index's groups, then possibly `.p` on the last group and a width.
        let (groups, width) = match rest.as_slice() {
            [groups @ .., last, w] if last.ends_with(".p") => {
                let width = decimal(w, 1, TILE_WIDTH - 1)
                    .ok_or_else(|| bad("the width is not 1-255 without leading zeroes"))?;
                let mut groups = groups.to_vec();
                groups.push(&last[..last.len() - 2]);
                (groups, width as u16)
            }
            groups => (groups.to_vec(), TILE_WIDTH as u16),
        };
        let index = parse_index(&groups).ok_or_else(|| {
            bad("the index is not 3-digit groups, all but the last x-prefixed, no leading x000")
        })?;
        Ok(TileId { kind, index, width })
    }
}

/// `N` as tlog-tiles writes it.
fn push_index(out: &mut String, index: u64) {
    let mut groups = Vec::new();
    let mut n = index;
    loop {
        groups.push(n % 1000);
        n /= 1000;
        if n == 0 {
            break;
        }
    }
    for (i, g) in groups.iter().rev().enumerate() {
        if i + 1 < groups.len() {
            let _ = write!(out, "x{g:03}/");
        } else {
            let _ = write!(out, "{g:03}");
        }
    }
}

fn parse_index(groups: &[&str]) -> Option<u64> {
    let (last, leading) = groups.split_last()?;
    let mut index: u64 = 0;
    for (i, g) in leading.iter().enumerate() {
        let digits = g.strip_prefix('x')?;
        let value = three_digits(digits)?;
        if i == 0 && value == 0 {
            return None; // `x000/` never starts a canonical index
        }
        index = index.checked_mul(1000)?.checked_add(value)?;
    }
    index.checked_mul(1000)?.checked_add(three_digits(last)?)
}

fn three_digits(s: &str) -> Option<u64> {
    (s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// A decimal in `min..=max` with no sign and no leading zero.
fn decimal(s: &str, min: u64, max: u64) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok().filter(|v| (min..=max).contains(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn paths_follow_the_document() {
        assert_eq!(
            TileId::hashes(0, 1_234_067, 256).path(),
            "tile/0/x001/x234/067"
        );
        assert_eq!(TileId::hashes(0, 0, 256).path(), "tile/0/000");
        assert_eq!(TileId::hashes(2, 1000, 1).path(), "tile/2/x001/000.p/1");
        assert_eq!(TileId::entries(273, 112).path(), "tile/entries/273.p/112");
        assert_eq!(TileId::entries(5, 17).partials_dir(), "tile/entries/005.p");
        assert_eq!(
            TileId::hashes(63, u64::MAX, 255).path(),
            "tile/63/x018/x446/x744/x073/x709/x551/615.p/255"
        );
    }

    #[test]
    fn malformed_paths_are_refused() {
        for bad in [
            "",
            "tile",
            "tile/0",
            "tiles/0/000",
            "tile/00/000",
            "tile/64/000",
            "tile/-1/000",
            "tile/0/0",
            "tile/0/0000",
            "tile/0/x000/001",
            "tile/0/001/002",
            "tile/0/x001",
            "tile/0/001.p/0",
            "tile/0/001.p/256",
            "tile/0/001.p/01",
            "tile/0/001.p",
            "tile/0/001.p/5/6",
            "tile/entries/001.p/",
            "tile/0/x1a2/000",
            "tile/0/x018/x446/x744/x073/x709/x551/616",
            "tile/0/../000",
            "/tile/0/000",
        ] {
            assert!(TileId::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    proptest! {
        #[test]
        fn every_tile_round_trips(level in 0u8..=63, index in any::<u64>(), width in 1u16..=256, entries in any::<bool>()) {
            let id = if entries { TileId::entries(index, width) } else { TileId::hashes(level, index, width) };
            prop_assert_eq!(TileId::parse(&id.path()), Ok(id));
        }

        #[test]
        fn parse_accepts_only_what_path_writes(path in "tile/(entries|[0-9]{1,2})(/x[0-9]{3}){0,2}/[0-9]{3}(\\.p/[0-9]{1,3})?") {
            if let Ok(id) = TileId::parse(&path) {
                prop_assert_eq!(id.path(), path);
            }
        }
    }
}
