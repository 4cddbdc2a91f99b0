//! The tree as C2SP tlog-tiles (PROTOCOL §12), read by a tile client written here from the
//! C2SP text alone (paths, widths, hashes, bundles: nothing from `dcledger::log`), and by
//! an independent implementation (the `tlog_tiles` and `signed_note` crates), against
//! the real `dcledger serve` and against `dcledger export tiles` behind
//! `python3 -m http.server`. Also: a kill -9 of a big `append` in the middle of writing
//! tiles, after which opening the ledger recovers and every tile verifies; deleted or
//! damaged tiles rebuilt on open.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use dcledger::entry::Kind;
use dcledger::ledger::{Ledger, Unlocked};
use dcledger::log::checkpoint;
use dcledger::log::layout::TileId;
use dcledger::log::tiles::TileStore;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::http::{Server, close, new_agent};
use crate::support::{ORIGIN, Party, TestLedger, bin, log_key, log_key_file, path_str, run_ok};

type H = [u8; 32];

// ---------------------------------------------------------------------------------------
// A tile client, from c2sp.org/tlog-tiles and c2sp.org/tlog-checkpoint.

/// `<prefix>/tile/<L>/<N>[.p/<W>]` (or `tile/entries/...` when `level` is `None`): N in
/// zero-padded 3-digit groups, all but the last prefixed with `x`.
fn tile_path(level: Option<u64>, n: u64, width: u64) -> String {
    let mut groups = Vec::new();
    let mut x = n;
    loop {
        groups.push(x % 1000);
        x /= 1000;
        if x == 0 {
            break;
        }
    }
    let count = groups.len();
    let index: Vec<String> = groups
        .iter()
        .rev()
        .enumerate()
        .map(|(i, g)| {
            if i + 1 < count {
                format!("x{g:03}")
            } else {
                format!("{g:03}")
            }
        })
        .collect();
    let level = level.map_or("entries".to_string(), |l| l.to_string());
    let partial = if width == 256 {
        String::new()
    } else {
        format!(".p/{width}")
    };
    format!("tile/{level}/{}{partial}", index.join("/"))
}

fn leaf_hash(leaf: &[u8]) -> H {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

fn node_hash(left: &H, right: &H) -> H {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// RFC 6962 MTH of a list of leaf (or subtree) hashes.
fn mth(hashes: &[H]) -> H {
    match hashes.len() {
        0 => Sha256::digest([]).into(),
        1 => hashes[0],
        n => {
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            node_hash(&mth(&hashes[..k]), &mth(&hashes[k..]))
        }
    }
}

struct Fetched {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Fetched {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// Reads a tiled log over HTTP at `base` (a `dcledger serve`, or a static server).
struct TileClient {
    agent: ureq::Agent,
    base: String,
}

/// The checkpoint's body lines (signature checked separately).
struct Head {
    note: String,
    size: u64,
    root: H,
}

impl TileClient {
    fn new(base: &str) -> TileClient {
        TileClient {
            agent: new_agent(),
            base: base.trim_end_matches('/').to_string(),
        }
    }

    fn fetch(&self, path: &str, gzip: bool) -> Fetched {
        let url = format!("{}/{path}", self.base);
        let mut request = self.agent.get(&url);
        if gzip {
            request = request.header("accept-encoding", "gzip, identity");
        }
        let mut response = request.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .unwrap_or_else(|e| panic!("GET {url}: body: {e}"));
        Fetched {
            status,
            headers,
            body,
        }
    }

    fn must(&self, path: &str) -> Vec<u8> {
        let f = self.fetch(path, false);
        assert_eq!(
            f.status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&f.body)
        );
        f.body
    }

    fn head(&self) -> Head {
        let note = String::from_utf8(self.must("checkpoint")).expect("the checkpoint is UTF-8");
        let mut lines = note.split('\n');
        let origin = lines.next().unwrap_or_default();
        assert_eq!(origin, ORIGIN);
        let size = lines.next().unwrap_or_default().parse().expect("a size");
        let root = base64_decode(lines.next().unwrap_or_default());
        Head { note, size, root }
    }

    fn hashes(&self, level: u64, n: u64, width: u64) -> Vec<H> {
        let bytes = self.must(&tile_path(Some(level), n, width));
        assert_eq!(
            bytes.len() as u64,
            width * 32,
            "tile {level}/{n} width {width}"
        );
        bytes
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect()
    }

    /// Every hash tile of the tree of `size` leaves, level by level, each level's hashes
    /// checked against the level below (`MTH` of 256 of them), the level-0 hashes
    /// against `root`, and every leaf of every entry bundle against level 0. Returns the
    /// leaves.
    fn check_tree(&self, size: u64, root: &H) -> Vec<Vec<u8>> {
        let mut below: Vec<H> = Vec::new();
        let mut level0 = Vec::new();
        for level in 0u64.. {
            let count = size.checked_shr(8 * level as u32).unwrap_or(0);
            if count == 0 {
                break;
            }
            let (full, width) = (count / 256, count % 256);
            let mut hashes = Vec::new();
            for n in 0..full {
                hashes.extend(self.hashes(level, n, 256));
            }
            if width > 0 {
                hashes.extend(self.hashes(level, full, width));
            }
            assert_eq!(hashes.len() as u64, count);
            if level == 0 {
                level0 = hashes.clone();
            } else {
                for (i, h) in hashes.iter().enumerate() {
                    assert_eq!(
                        *h,
                        mth(&below[i * 256..(i + 1) * 256]),
                        "level {level} hash {i} is not the MTH of its 256 below"
                    );
                }
            }
            below = hashes;
        }
        assert_eq!(
            mth(&level0),
            *root,
            "the tiles do not give the root at {size}"
        );
        let mut leaves = Vec::new();
        let (full, width) = (size / 256, size % 256);
        let bundles = (0..full)
            .map(|n| (n, 256))
            .chain((width > 0).then_some((full, width)));
        for (n, width) in bundles {
            let bundle = self.must(&tile_path(None, n, width));
            let entries = split_bundle(&bundle);
            assert_eq!(entries.len() as u64, width, "bundle {n} width {width}");
            for (i, leaf) in entries.into_iter().enumerate() {
                let index = n * 256 + i as u64;
                assert_eq!(leaf_hash(&leaf), level0[index as usize], "leaf {index}");
                leaves.push(leaf);
            }
        }
        leaves
    }
}

/// An entry bundle: big-endian uint16 length-prefixed entries.
fn split_bundle(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 2, "a bundle ends inside a length");
        let len = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
        assert!(bytes.len() >= 2 + len, "a bundle ends inside an entry");
        out.push(bytes[2..2 + len].to_vec());
        bytes = &bytes[2 + len..];
    }
    out
}

fn base64_decode(text: &str) -> H {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .expect("a base64 root hash")
}

// ---------------------------------------------------------------------------------------
// The independent implementation: Cloudflare's `tlog_tiles` and `signed_note`.

/// Reads tiles for `tlog_tiles` (whose paths, Go's, carry the tile height) through the
/// C2SP paths of a client.
struct AzulReader<'a>(&'a TileClient);

impl tlog_tiles::TileReader for AzulReader<'_> {
    fn height(&self) -> u8 {
        8
    }

    fn read_tiles(&self, tiles: &[tlog_tiles::Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        Ok(tiles
            .iter()
            .map(|t| {
                self.0.must(&tile_path(
                    Some(u64::from(t.level())),
                    t.level_index(),
                    u64::from(t.width()),
                ))
            })
            .collect())
    }

    fn save_tiles(&self, _: &[tlog_tiles::Tile], _: &[Vec<u8>]) {}
}

fn vkey() -> String {
    checkpoint::verifier_key_string(ORIGIN, &log_key().verifying_key().to_bytes())
}

/// The note verifies with `signed_note`; `tlog_tiles` parses it, recomputes its root from
/// the tiles, and proves (and checks) a few leaves and the consistency with `previous`.
fn check_with_azul(client: &TileClient, head: &Head, previous: Option<&Head>) {
    let note = signed_note::Note::from_bytes(head.note.as_bytes()).expect("signed_note parses");
    let verifier = signed_note::StandardVerifier::new(&vkey()).expect("the verifier key parses");
    let known = signed_note::VerifierList::new(vec![Box::new(verifier)]);
    note.verify(&known)
        .expect("the checkpoint's signature verifies");
    let cp = tlog_tiles::Checkpoint::from_bytes(note.text()).expect("tlog_tiles parses it");
    assert_eq!((cp.size(), cp.hash().0), (head.size, head.root));
    let reader = AzulReader(client);
    let hashes = tlog_tiles::TileHashReader::new(cp.size(), *cp.hash(), &reader);
    let root = tlog_tiles::tree_hash(cp.size(), &hashes).expect("tree_hash from tiles");
    assert_eq!(root.0, head.root);
    for index in [0, cp.size() / 2, cp.size() - 1] {
        let proof = tlog_tiles::prove_record(cp.size(), index, &hashes).expect("prove_record");
        let leaf = tlog_tiles::Hash(leaf_of(client, index));
        tlog_tiles::check_record(&proof, cp.size(), *cp.hash(), index, leaf)
            .expect("tlog_tiles checks the inclusion proof");
    }
    if let Some(old) = previous {
        let proof = tlog_tiles::prove_tree(cp.size(), old.size, &hashes).expect("prove_tree");
        tlog_tiles::check_tree(
            &proof,
            cp.size(),
            *cp.hash(),
            old.size,
            tlog_tiles::Hash(old.root),
        )
        .expect("tlog_tiles checks the consistency proof");
    }
}

/// Leaf `index`'s hash, from its level-0 tile (full or the partial of the checkpoint).
fn leaf_of(client: &TileClient, index: u64) -> H {
    let size = client.head().size;
    let n = index / 256;
    let width = if n < size / 256 { 256 } else { size % 256 };
    client.hashes(0, n, width)[(index % 256) as usize]
}

// ---------------------------------------------------------------------------------------
// Growing a ledger over HTTP.

fn org_register(authority: &mut Party, tag: u64) -> Value {
    let org_id = format!("tile-org-{tag}");
    authority.sign(
        Kind::OrgRegister,
        json!({"org_id": org_id, "name": format!("{org_id} Ltd"), "roles": ["operator"]}),
    )
}

/// Appends authority-signed entries over HTTP until the tree holds `to` entries, the
/// last batch ending exactly there (so a checkpoint is signed for `to`).
fn grow(server: &Server, authority: &mut Party, from: u64, to: u64) {
    let agent = new_agent();
    let mut size = from;
    while size < to {
        let n = (to - size).min(1000);
        let batch: Vec<Value> = (size..size + n)
            .map(|i| org_register(authority, i))
            .collect();
        let body = serde_json::to_vec(&batch).expect("JSON");
        let mut response = agent
            .post(&server.url("/v1/entries"))
            .header("content-type", "application/json")
            .send(&body[..])
            .expect("POST /v1/entries");
        let text = response.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(response.status().as_u16(), 201, "{text}");
        size += n;
    }
}

// ---------------------------------------------------------------------------------------
// A static file server over an export.

pub(crate) struct StaticServer {
    child: Child,
    pub(crate) base: String,
}

impl StaticServer {
    pub(crate) fn start(dir: &Path) -> StaticServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "http.server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        StaticServer {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn export(data: &Path, out: &Path) {
    run_ok(&[
        "export",
        "tiles",
        "--data",
        path_str(data),
        "--out",
        path_str(out),
    ]);
}

/// Every full tile and bundle of an export, with its bytes and modification time.
fn full_files(out: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    let mut files = BTreeMap::new();
    let mut stack = vec![out.join("tile")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if path.is_dir() {
                if !name.ends_with(".p") {
                    stack.push(path);
                }
            } else {
                let meta = std::fs::metadata(&path).expect("metadata");
                let bytes = std::fs::read(&path).expect("read");
                files.insert(path, (bytes, meta.modified().expect("mtime")));
            }
        }
    }
    files
}

// ---------------------------------------------------------------------------------------
// The tests.

/// Roots recomputed from served and exported tiles equal the checkpoint inside one
/// tile, at exactly 256, at 256·k + 1 and past a level-1 boundary; each export is
/// consistent with the previous one and leaves its full files alone; partial tiles of
/// earlier checkpoints stay readable; tiles past the tree are 404; headers; gzip.
#[test]
fn tiles_served_and_exported_give_every_checkpoints_root() {
    let t = TestLedger::new();
    let (dir, data, mut authority) = close(t);
    let server = Server::start(&data, &dir.path().join("server.log"));
    let served = TileClient::new(&server.url(""));
    let out = dir.path().join("export");
    let mut statics: Option<StaticServer> = None;
    let mut previous: Option<Head> = None;
    let mut previous_partials: Vec<(String, Vec<u8>)> = Vec::new();
    let mut previous_files: BTreeMap<PathBuf, (Vec<u8>, SystemTime)> = BTreeMap::new();
    let mut size = 1; // genesis
    for target in [5u64, 256, 513, 65_536 + 300] {
        grow(&server, &mut authority, size, target);
        size = target;

        let head = served.head();
        assert_eq!(head.size, size);
        // `dcledger checkpoint` beside the running server: the same bytes, exactly.
        let printed = run_ok(&["checkpoint", "--data", path_str(&data)]).stdout;
        assert_eq!(printed, head.note.as_bytes());
        served.check_tree(size, &head.root);
        check_with_azul(&served, &head, previous.as_ref());

        // The partial tiles of the earlier checkpoint still read, the same bytes.
        for (path, bytes) in &previous_partials {
            assert_eq!(&served.must(path), bytes, "{path} changed or went away");
        }
        previous_partials = partial_tiles_of(&served, size);

        // Beyond the tree: 404 with problem JSON.
        let (full, width) = (size / 256, size % 256);
        for path in [
            tile_path(Some(0), full + 1, 256),
            tile_path(Some(0), full, width + 1),
            tile_path(None, full + 1, 256),
            tile_path(None, full, width + 1),
            tile_path(Some(3), 0, 1),
            "tile/0/x000/001".to_string(),
        ] {
            let f = served.fetch(&path, false);
            assert_eq!(f.status, 404, "{path}");
            assert!(
                f.header("content-type")
                    .starts_with("application/problem+json")
            );
        }
        // The headers of PROTOCOL §12; bundles gzip when asked, and only then.
        let tile = served.fetch(&tile_path(Some(0), 0, 256.min(size)), false);
        assert_eq!(
            tile.header("cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(tile.header("content-type"), "application/octet-stream");
        let bundle = if width == 0 {
            tile_path(None, full - 1, 256)
        } else {
            tile_path(None, full, width)
        };
        let plain = served.fetch(&bundle, false);
        assert_eq!(plain.header("content-encoding"), "");
        assert_eq!(
            plain.header("cache-control"),
            "public, max-age=31536000, immutable"
        );
        let gzipped = served.fetch(&bundle, true);
        assert_eq!(gzipped.header("content-encoding"), "gzip");
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&gzipped.body[..])
            .read_to_end(&mut unzipped)
            .expect("gunzip");
        assert_eq!(unzipped, plain.body);
        let note = served.fetch("checkpoint", false);
        assert_eq!(note.header("content-type"), "text/plain; charset=utf-8");
        assert_eq!(note.header("cache-control"), "no-cache");

        // The export, served by a plain static server, reads the same; it is consistent
        // with the previous export, whose full files it left alone.
        export(&data, &out);
        let statics = statics.get_or_insert_with(|| StaticServer::start(&out));
        let exported = TileClient::new(&statics.base);
        let exported_head = exported.head();
        assert_eq!(exported_head.note, head.note);
        let leaves = exported.check_tree(size, &head.root);
        check_with_azul(&exported, &exported_head, previous.as_ref());
        if let Some(old) = &previous {
            let level0: Vec<H> = leaves[..old.size as usize]
                .iter()
                .map(|l| leaf_hash(l))
                .collect();
            assert_eq!(
                mth(&level0),
                old.root,
                "the export is not consistent with the last"
            );
        }
        let files = full_files(&out);
        for (path, old) in &previous_files {
            assert_eq!(
                files.get(path),
                Some(old),
                "{} was rewritten",
                path.display()
            );
        }
        previous_files = files;
        previous = Some(head);
    }
}

/// Every partial tile (and bundle) a tree of `size` is served with, and its bytes.
fn partial_tiles_of(client: &TileClient, size: u64) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for level in 0u64.. {
        let count = size.checked_shr(8 * level as u32).unwrap_or(0);
        if count == 0 {
            break;
        }
        if !count.is_multiple_of(256) {
            let path = tile_path(Some(level), count / 256, count % 256);
            out.push((path.clone(), client.must(&path)));
        }
    }
    if !size.is_multiple_of(256) {
        let path = tile_path(None, size / 256, size % 256);
        out.push((path.clone(), client.must(&path)));
    }
    out
}

/// `dcledger append` of a big input, SIGKILLed while it writes (after its first batch
/// was acknowledged, at a moment that moves on each round), then opened: the ledger
/// recovers, every tile verifies against the leaves, and the served tiles give the
/// checkpoint's root.
#[test]
fn kill_9_while_writing_tiles_then_open_recovers() {
    const PER_ROUND: u64 = 6_000;
    let t = TestLedger::new();
    let (dir, data, mut authority) = close(t);
    // Entry `i` (from 1; genesis is 0) is the authority's envelope with seq `i + 1`.
    let lines: Vec<String> = (1..=3 * PER_ROUND)
        .map(|i| serde_json::to_string(&org_register(&mut authority, i)).expect("JSON"))
        .collect();
    let mut size = 1;
    for round in 0..3u64 {
        let input = dir.path().join(format!("input-{round}.ndjson"));
        let from = (size - 1) as usize;
        let to = (from + PER_ROUND as usize).min(lines.len());
        std::fs::write(&input, lines[from..to].join("\n") + "\n").expect("write the input");
        let mut child = bin()
            .args(["append", "--data", path_str(&data), "--log-key"])
            .arg(log_key_file(&data))
            .arg(&input)
            .arg("--report-batches")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn append");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines_out = BufReader::new(stderr).lines();
        // The first acknowledged batch: tiles are being written from here on.
        assert!(lines_out.next().is_some(), "append acknowledged nothing");
        std::thread::sleep(Duration::from_millis(10 + 50 * round));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        drop(lines_out);

        // Opening recovers (catch-up, tiles resumed or rebuilt), and everything verifies:
        // every leaf against level 0, every level against the one above, the root.
        let ledger = Ledger::open(&data, log_key()).expect("open after kill -9");
        let report = ledger.verify().expect("verify after kill -9");
        assert!(ledger.size() > size, "round {round} wrote nothing");
        size = ledger.size();
        assert_eq!(report.entries, size);
        ledger.close().expect("close");
    }
    // The tiles of the recovered ledger, served, give the checkpoint's root.
    let server = Server::start(&data, &dir.path().join("server.log"));
    let client = TileClient::new(&server.url(""));
    let head = client.head();
    assert_eq!(head.size, size);
    client.check_tree(head.size, &head.root);
    check_with_azul(&client, &head, None);
}

/// Tiles are derived state: deleted, or with their right edge damaged, they are rebuilt
/// from the segments when the ledger opens, byte for byte the same.
#[test]
fn deleted_or_damaged_tiles_are_rebuilt_on_open() {
    let mut t = TestLedger::new();
    for batch in 0..3u64 {
        let envelopes: Vec<Value> = (0..400)
            .map(|i| org_register(&mut t.authority, batch * 400 + i))
            .collect();
        t.accept(envelopes);
    }
    let (dir, data, _) = close(t);
    let tiles = data.join("tiles");
    let before = tree_files(&tiles);
    assert!(before.keys().any(|p| p.ends_with("tile/0/003")));
    let checkpoint_file = std::fs::read(data.join("checkpoint")).expect("the checkpoint file");

    std::fs::remove_dir_all(&tiles).expect("delete the tiles");
    Ledger::open(&data, log_key())
        .expect("open")
        .close()
        .expect("close");
    same_tiles(&tiles, &before);

    // The partial tile of the right edge changed (a hash flipped): rebuilt.
    let edge = tiles.join("tile/0/004.p/177");
    let mut bytes = std::fs::read(&edge).expect("the right edge's partial tile");
    bytes[0] ^= 1;
    std::fs::write(&edge, bytes).expect("damage it");
    let ledger = Ledger::open(&data, log_key()).expect("open");
    ledger.verify().expect("verify");
    ledger.close().expect("close");
    same_tiles(&tiles, &before);

    // `dcledger checkpoint` prints the note's bytes exactly, as the file holds them.
    let out = run_ok(&["checkpoint", "--data", path_str(&data)]);
    assert_eq!(out.stdout, checkpoint_file);
    assert!(!out.stdout.ends_with(b"\n\n"));
    drop(dir);
}

/// A ledger that registered `orgs` organisations in one batch after its genesis, closed:
/// its directory, its data directory and its size.
fn closed_after_registering(orgs: u64) -> (tempfile::TempDir, PathBuf, u64) {
    let mut t = TestLedger::new();
    let envelopes: Vec<Value> = (0..orgs)
        .map(|i| org_register(&mut t.authority, i))
        .collect();
    t.accept(envelopes);
    let size = t.ledger.size();
    let (dir, data, _) = close(t);
    (dir, data, size)
}

/// `reindex` writes its tiles over those on disk, whichever way it rebuilds: a full tile
/// that is right stays the same file, a damaged one is replaced, a directory where a tile
/// goes is cleared away, and tiles past the tree are removed; the tiles are then those the
/// appends left, file for file.
#[test]
fn reindex_keeps_the_tiles_that_are_right_and_replaces_the_rest() {
    use std::os::unix::fs::MetadataExt as _;
    let (dir, data, size) = closed_after_registering(900);
    let tiles = data.join("tiles");
    let before = tree_files(&tiles);
    let (full, width) = (size / 256, size % 256);
    assert!(full >= 3 && width > 0 && width < 255, "size {size}");
    let path =
        |level: u8, n: u64, width: u64| tiles.join(TileId::hashes(level, n, width as u16).path());
    let inode = |path: &Path| std::fs::metadata(path).expect("a tile").ino();
    for trust in [true, false] {
        let right = path(0, 0, 256);
        let right_inode = inode(&right);
        let damaged = path(0, 1, 256);
        let mut bytes = std::fs::read(&damaged).expect("the second full tile");
        bytes[0] ^= 1;
        std::fs::write(&damaged, bytes).expect("damage it");
        // Where a tile and a partial tile go, directories no build writes.
        let in_the_way = [path(0, full - 1, 256), path(0, full, width)];
        for tile in &in_the_way {
            std::fs::remove_file(tile).expect("a tile");
            std::fs::create_dir_all(tile.join("in-the-way")).expect("a directory in its place");
        }
        let past = [
            path(0, full + 1, 256),
            path(0, full, width + 1),
            path(1, 1, 3),
        ];
        for tile in &past {
            std::fs::create_dir_all(tile.parent().expect("a directory")).expect("mkdir");
            std::fs::write(tile, [7u8; 96]).expect("a tile past the tree");
        }
        let rebuilt = if trust {
            Ledger::reindex_trusting(&data, log_key())
        } else {
            Ledger::reindex(&data, log_key())
        };
        rebuilt.expect("reindex").close().expect("close");
        assert_eq!(
            inode(&right),
            right_inode,
            "trust {trust}: a right tile was written again"
        );
        for tile in &past {
            assert!(!tile.exists(), "trust {trust}: {} is left", tile.display());
        }
        assert_eq!(tree_files(&tiles), before, "trust {trust}");
    }
    let ledger = Ledger::open(&data, log_key()).expect("open");
    ledger.verify().expect("verify");
    drop(dir);
}

#[test]
fn verify_names_the_leaf_whose_level_0_tile_disagrees_with_the_segments() {
    let (dir, data, _) = closed_after_registering(600);
    // Leaf 261's hash, the sixth of the second full level-0 tile, flipped.
    let tile = data.join("tiles/tile/0/001");
    let mut bytes = std::fs::read(&tile).expect("the second level-0 tile");
    bytes[5 * 32] ^= 1;
    std::fs::write(&tile, bytes).expect("damage it");
    let failed = Unlocked::open(&data)
        .expect("open the files")
        .verify()
        .expect_err("verify passed over a damaged tile");
    let said = failed.to_string();
    assert!(
        said.contains("level-0 tile holding leaf 261 has another hash"),
        "{said}"
    );
    drop(dir);
}

/// The tiles under `root` are those of `before`: every full tile the same file, and every
/// partial tile of an earlier checkpoint the same bytes (a rebuild writes the partial
/// tiles of the current size; those of earlier sizes are read from wider ones).
fn same_tiles(root: &Path, before: &BTreeMap<PathBuf, Vec<u8>>) {
    let store = TileStore::at(root.to_path_buf());
    for (path, bytes) in before {
        let id = TileId::parse(path.to_str().expect("UTF-8")).expect("a tile path");
        if id.is_full() {
            assert_eq!(
                std::fs::read(root.join(path)).ok().as_ref(),
                Some(bytes),
                "{}",
                path.display()
            );
        }
        assert_eq!(
            store.read_hashes(id).expect("read").as_ref(),
            Some(bytes),
            "{}",
            path.display()
        );
    }
}

fn tree_files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root).expect("under root").to_path_buf();
                files.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    files
}
