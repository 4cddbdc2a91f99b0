//! A ledger's tiles over HTTP (C2SP tlog-tiles), as a monitor reads them: each request
//! bounded in time and size, each tile and bundle checked for the length its width
//! gives, and tree nodes computed from the tiles that hold them.

use std::collections::HashMap;
use std::time::Duration;

use super::MonitorError;
use crate::limits::{
    MAX_MONITOR_BUNDLE_BYTES, MAX_MONITOR_TILE_BYTES, MONITOR_REQUEST_TIMEOUT_MS,
    MONITOR_TILE_CACHE_TILES,
};
use crate::log::layout::{TILE_HEIGHT, TILE_WIDTH, TileId, TileKind};
use crate::log::merkle::{HASH_LEN, Hash, NodeId};
use crate::log::tiles;

/// Hash tiles and entry bundles read over HTTP, for one run.
pub(super) struct Tiles<'a> {
    http: &'a Http,
    /// Tiles read for tree nodes, dropped all at once when full.
    cache: HashMap<TileId, Vec<Hash>>,
    pub(super) fetched: u64,
}

impl<'a> Tiles<'a> {
    pub(super) fn new(http: &'a Http) -> Tiles<'a> {
        Tiles {
            http,
            cache: HashMap::new(),
            fetched: 0,
        }
    }

    /// The bytes of tile `id`: at its path, or, if a partial one is gone (the ledger
    /// grew and replaced it with the full tile), the prefix of the full tile.
    fn fetch_bytes(&mut self, id: TileId, limit: u64) -> Result<(TileId, Vec<u8>), MonitorError> {
        self.fetched += 1;
        if let Some(bytes) = self.http.get(&id.path(), limit)? {
            return Ok((id, bytes));
        }
        if !id.is_full() {
            self.fetched += 1;
            if let Some(bytes) = self.http.get(&id.full().path(), limit)? {
                return Ok((id.full(), bytes));
            }
        }
        Err(MonitorError::Tile {
            path: id.path(),
            reason: "it is not served (404)".into(),
        })
    }

    /// Hash tile `id`'s hashes, exactly `id.width` of them.
    pub(super) fn fetch(&mut self, id: TileId) -> Result<Vec<Hash>, MonitorError> {
        let (got, bytes) = self.fetch_bytes(id, MAX_MONITOR_TILE_BYTES)?;
        let expected = usize::from(got.width) * HASH_LEN;
        if bytes.len() != expected {
            return Err(MonitorError::Tile {
                path: got.path(),
                reason: format!("{} bytes, not the {expected} of its width", bytes.len()),
            });
        }
        let mut hashes = tiles::split_hashes(&bytes).ok_or_else(|| MonitorError::Tile {
            path: got.path(),
            reason: "not a whole number of hashes".into(),
        })?;
        hashes.truncate(usize::from(id.width));
        Ok(hashes)
    }

    /// Entry bundle `id`'s leaves, exactly `id.width` of them.
    pub(super) fn fetch_bundle(&mut self, id: TileId) -> Result<Vec<Vec<u8>>, MonitorError> {
        let (got, bytes) = self.fetch_bytes(id, MAX_MONITOR_BUNDLE_BYTES)?;
        let bad = |reason: String| MonitorError::Tile {
            path: got.path(),
            reason,
        };
        let mut leaves = Vec::with_capacity(usize::from(got.width));
        let mut rest = bytes.as_slice();
        while let Some((len, tail)) = rest.split_first_chunk::<2>() {
            let len = usize::from(u16::from_be_bytes(*len));
            let leaf = tail.get(..len).ok_or_else(|| {
                bad(format!(
                    "leaf {} of the bundle is cut short",
                    got.index * TILE_WIDTH + leaves.len() as u64
                ))
            })?;
            leaves.push(leaf.to_vec());
            rest = &tail[len..];
        }
        if !rest.is_empty() {
            return Err(bad("it ends inside a leaf's length".into()));
        }
        if leaves.len() != usize::from(got.width) {
            return Err(bad(format!(
                "it holds {} leaves, not the {} of its width",
                leaves.len(),
                got.width
            )));
        }
        leaves.truncate(usize::from(id.width));
        Ok(leaves)
    }

    /// The hash of complete subtree `node` of the tree of `size` leaves, from the tile
    /// that holds it at that size.
    pub(super) fn node(&mut self, size: u64, node: NodeId) -> Result<Hash, MonitorError> {
        let not_in_tree = || MonitorError::Tile {
            path: format!(
                "the tree node at level {}, index {}",
                node.level, node.index
            ),
            reason: format!("the tree of {size} leaves has no such node"),
        };
        let (id, height, j) = tiles::node_in_tile(size, node).ok_or_else(not_in_tree)?;
        if !self.cache.contains_key(&id) {
            if self.cache.len() >= MONITOR_TILE_CACHE_TILES {
                self.cache.clear();
            }
            let hashes = self.fetch(id)?;
            self.cache.insert(id, hashes);
        }
        let hashes = self.cache.get(&id).ok_or_else(not_in_tree)?;
        let span = 1usize << height;
        let first = usize::try_from(j).map_err(|_| not_in_tree())? * span;
        hashes
            .get(first..first + span)
            .and_then(tiles::perfect_root)
            .ok_or_else(not_in_tree)
    }

    /// Full tile `id` of the tree of `size` leaves hashes to its hash one level up.
    pub(super) fn check_full_tile(
        &mut self,
        size: u64,
        id: TileId,
        hashes: &[Hash],
    ) -> Result<(), MonitorError> {
        let TileKind::Hashes { level } = id.kind else {
            return Ok(());
        };
        let above_level = u32::from(level + 1) * TILE_HEIGHT;
        let node = NodeId {
            level: above_level as u8,
            index: id.index,
        };
        let above = self.node(size, node)?;
        if tiles::full_tile_root(hashes) != above {
            let (above_id, _, _) = tiles::node_in_tile(size, node).unwrap_or((id, 0, 0));
            return Err(MonitorError::Level {
                path: id.path(),
                above: above_id.path(),
                position: id.index % TILE_WIDTH,
                size,
            });
        }
        Ok(())
    }
}

/// Plain GETs under the ledger's URL, each bounded in time and size.
pub(super) struct Http {
    base: String,
    agent: ureq::Agent,
}

impl Http {
    pub(super) fn new(base: &str) -> Http {
        // No Accept-Encoding is sent (ureq is built without compression), so bundles
        // come as they are stored and their limit is on their real size.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_millis(MONITOR_REQUEST_TIMEOUT_MS)))
            .build()
            .into();
        Http {
            base: base.trim_end_matches('/').to_string(),
            agent,
        }
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// The body at `path`, at most `limit` bytes; `None` if it is 404.
    pub(super) fn get(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, MonitorError> {
        let url = self.url(path);
        let failed = |reason: String| MonitorError::Fetch {
            url: url.clone(),
            reason,
        };
        let mut response = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| failed(e.to_string()))?;
        match response.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            status => {
                return Err(MonitorError::Status {
                    url: url.clone(),
                    status,
                });
            }
        }
        response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map(Some)
            .map_err(|e| failed(format!("reading the answer (at most {limit} bytes): {e}")))
    }
}
