//! The log as C2SP tlog-tiles over HTTP, against a real node: `/checkpoint`, hash tiles of every
//! level and entry bundles for trees of 1, 255, 256, 257 and 70,000 entries, their widths and
//! cache headers, the problems of bad paths and of tiles beyond the tree, and the largest
//! envelope's entry in a bundle.
//!
//! The tiles are also read by a third party: Cloudflare's `tlog_tiles` crate (a port of Go's
//! `golang.org/x/mod/sumdb/tlog`), which shares no code with vledger. Through its `TileReader`
//! it fetches the tiles it chooses, authenticates them against the checkpoint's root, and
//! computes the tree hash and inclusion and consistency proofs from them; each must be the
//! checkpoint's root or the proof the node serves.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use vledger_domain::limits::{MAX_ENTRY_BYTES, MAX_ENVELOPE_BYTES};
use vledger_node::node::Node;
use vledger_tlog::keys::{PublicKey, SigningKey};
use vledger_tlog::tiles::TilePath;
use vledger_wire::envelope::{seal, CommandPayload, VerifiedEnvelope};

use common::fresh_key;

const FULL: &str = "public, max-age=31536000, immutable";
const PARTIAL: &str = "public, max-age=60";

/// A node served over HTTP, with its handle, to grow its log quickly in process.
struct Log {
    base: String,
    node: Arc<Node>,
    admin: SigningKey,
    /// The admin's public key (derived once: deriving it costs a scalar multiplication).
    admin_key: PublicKey,
    /// The agency the log is grown with.
    agency: SigningKey,
    http: reqwest::Client,
    nonce: AtomicU64,
    _dir: tempfile::TempDir,
}

/// An answer: status, `Content-Type`, `Cache-Control`, body.
struct Answer {
    status: u16,
    content_type: String,
    cache_control: String,
    body: Vec<u8>,
}

impl Answer {
    fn problem(&self) -> Value {
        assert_eq!(self.content_type, "application/problem+json");
        serde_json::from_slice(&self.body).unwrap()
    }
}

impl Log {
    async fn start() -> Self {
        let admin = fresh_key();
        let (node, dir) = common::open_node(&admin);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(vledger_api::serve(
            listener,
            Arc::clone(&node),
            std::future::pending(),
        ));
        Self {
            base,
            node,
            admin_key: admin.public_key(),
            admin,
            agency: fresh_key(),
            http: reqwest::Client::new(),
            nonce: AtomicU64::new(0),
            _dir: dir,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let (content_type, cache_control) = (
            header(reqwest::header::CONTENT_TYPE),
            header(reqwest::header::CACHE_CONTROL),
        );
        Answer {
            status: response.status().as_u16(),
            content_type,
            cache_control,
            body: response.bytes().await.unwrap().to_vec(),
        }
    }

    async fn json(&self, path: &str) -> Value {
        let answer = self.get(path).await;
        assert_eq!(answer.status, 200, "{path}");
        serde_json::from_slice(&answer.body).unwrap()
    }

    fn payload(&self, command_type: &str, body: Value) -> CommandPayload {
        CommandPayload {
            v: 1,
            command_type: command_type.into(),
            region: "cq".try_into().unwrap(),
            signer: self.admin_key,
            nonce: format!("t{}", self.nonce.fetch_add(1, Ordering::Relaxed)),
            body,
        }
    }

    /// Grows the log to `size` entries, many commands to a batch: an agency is registered,
    /// then suspended and reinstated in turn (commands that bring no new key to check).
    async fn grow_to(&self, size: u64) {
        let node = Arc::clone(&self.node);
        let key = self.agency.public_key().to_base64();
        let payloads: Vec<CommandPayload> = (node.tree_size()..size)
            .map(|i| {
                let key = key.as_str();
                match i {
                    1 => self.payload(
                        "party.register",
                        json!({ "key": key, "role": "agency", "home_region": "cq", "name": "Lab" }),
                    ),
                    _ if i % 2 == 0 => {
                        self.payload("party.suspend", json!({ "key": key, "reason": "audit" }))
                    }
                    _ => self.payload(
                        "party.reinstate",
                        json!({ "key": key, "reason": "cleared" }),
                    ),
                }
            })
            .collect();
        let admin = self.admin.clone();
        tokio::task::spawn_blocking(move || {
            for chunk in payloads.chunks(4096) {
                // Signed and checked on two threads, submitted in order.
                let envelopes: Vec<VerifiedEnvelope> = std::thread::scope(|scope| {
                    let halves: Vec<_> = chunk
                        .chunks(chunk.len().div_ceil(2))
                        .map(|half| {
                            let admin = &admin;
                            scope.spawn(move || {
                                half.iter()
                                    .map(|p| {
                                        VerifiedEnvelope::parse_and_verify(&seal(p, admin)).unwrap()
                                    })
                                    .collect::<Vec<_>>()
                            })
                        })
                        .collect();
                    halves.into_iter().flat_map(|h| h.join().unwrap()).collect()
                });
                let (sent, answers) = std::sync::mpsc::channel();
                for envelope in envelopes {
                    let sent = sent.clone();
                    node.submit(
                        envelope,
                        Box::new(move |answer| {
                            let _ = sent.send(answer.map(|_| ()).map_err(|e| e.to_string()));
                        }),
                    );
                }
                drop(sent);
                for answer in answers {
                    answer.unwrap();
                }
            }
            assert_eq!(node.tree_size(), size);
        })
        .await
        .unwrap();
    }

    /// The latest checkpoint from `/checkpoint`, read by the third party: size and root.
    async fn checkpoint(&self) -> (u64, tlog_tiles::Hash) {
        let answer = self.get("/checkpoint").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.content_type, "text/plain; charset=utf-8");
        assert_eq!(answer.cache_control, "no-cache");
        let served = self.get("/v1/checkpoint").await;
        assert_eq!(answer.body, served.body, "the checkpoint of /v1/checkpoint");
        let checkpoint = tlog_tiles::Checkpoint::from_reader(&mut answer.body.as_slice(), false)
            .expect("a C2SP checkpoint");
        assert_eq!(checkpoint.origin(), "vledger.test/cq");
        (checkpoint.size(), *checkpoint.hash())
    }
}

/// Every tile of a tree of `size` entries as the spec lists them: per level, the full tiles,
/// then the partial one if any; then the entry bundles the same way.
fn tiles_of(size: u64) -> Vec<TilePath> {
    let mut tiles = Vec::new();
    let mut push = |count: u64, make: &dyn Fn(u64, u16) -> TilePath| {
        for index in 0..count / 256 {
            tiles.push(make(index, 256));
        }
        let partial = (count % 256) as u16;
        if partial > 0 {
            tiles.push(make(count / 256, partial));
        }
    };
    for level in 0..=63u8 {
        let nodes = size.checked_shr(8 * u32::from(level)).unwrap_or(0);
        if nodes == 0 {
            break;
        }
        push(nodes, &|index, width| TilePath::Hashes {
            level,
            index,
            width,
        });
    }
    push(size, &|index, width| TilePath::Entries { index, width });
    tiles
}

/// The entries of a bundle, read from its length prefixes alone.
fn split_bundle(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut entries = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        entries.push(rest[2..2 + len].to_vec());
        rest = &rest[2 + len..];
    }
    entries
}

/// The third party's tile reader: fetches each tile it asks for from the node, at the C2SP
/// path of the crate's own (Go sumdb) tile path `tile/8/<L>/<N>[.p/<W>]`.
struct HttpTiles {
    base: String,
    http: reqwest::blocking::Client,
}

impl tlog_tiles::TileReader for HttpTiles {
    fn height(&self) -> u8 {
        8
    }

    fn read_tiles(&self, tiles: &[tlog_tiles::Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        tiles
            .iter()
            .map(|tile| {
                let sumdb = tile.path();
                let path = sumdb.strip_prefix("tile/8/").expect("tiles of height 8");
                let response = self
                    .http
                    .get(format!("{}/tile/{path}", self.base))
                    .send()
                    .map_err(|e| tlog_tiles::Error::InvalidInput(e.to_string()))?;
                if response.status() != 200 {
                    return Err(tlog_tiles::Error::InvalidInput(format!(
                        "{path}: {}",
                        response.status()
                    )));
                }
                Ok(response.bytes().unwrap().to_vec())
            })
            .collect()
    }

    fn save_tiles(&self, _tiles: &[tlog_tiles::Tile], _data: &[Vec<u8>]) {}
}

/// What the third party computes from the node's tiles for the tree of `size` with `root`: the
/// tree hash, the inclusion proofs of `entries` (index and bytes), the consistency proofs from
/// each of `older` (size and root). Each proof is also checked with the crate's verifier.
struct ThirdParty {
    tree_hash: tlog_tiles::Hash,
    inclusion: Vec<Vec<tlog_tiles::Hash>>,
    consistency: Vec<Vec<tlog_tiles::Hash>>,
}

async fn third_party(
    base: &str,
    size: u64,
    root: tlog_tiles::Hash,
    entries: Vec<(u64, Vec<u8>)>,
    older: Vec<(u64, tlog_tiles::Hash)>,
) -> ThirdParty {
    let base = base.to_string();
    tokio::task::spawn_blocking(move || {
        let reader = HttpTiles {
            base,
            http: reqwest::blocking::Client::new(),
        };
        let hashes = tlog_tiles::TileHashReader::new(size, root, &reader);
        let tree_hash = tlog_tiles::tree_hash(size, &hashes).expect("the tiles give a tree hash");
        let inclusion = entries
            .iter()
            .map(|(index, entry)| {
                let proof = tlog_tiles::prove_record(size, *index, &hashes).unwrap();
                tlog_tiles::check_record(
                    &proof,
                    size,
                    root,
                    *index,
                    tlog_tiles::record_hash(entry),
                )
                .unwrap_or_else(|e| panic!("entry {index} in the tree of {size}: {e}"));
                proof
            })
            .collect();
        let consistency = older
            .iter()
            .map(|(old_size, old_root)| {
                let proof = tlog_tiles::prove_tree(size, *old_size, &hashes).unwrap();
                tlog_tiles::check_tree(&proof, size, root, *old_size, *old_root)
                    .unwrap_or_else(|e| panic!("tree of {old_size} in the tree of {size}: {e}"));
                proof
            })
            .collect();
        ThirdParty {
            tree_hash,
            inclusion,
            consistency,
        }
    })
    .await
    .unwrap()
}

fn hashes_of(value: &Value) -> Vec<tlog_tiles::Hash> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|h| tlog_tiles::Hash(B64.decode(h.as_str().unwrap()).unwrap().try_into().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_of_every_level_fold_to_the_checkpoint_and_a_third_party_reads_them() {
    let log = Log::start().await;
    let mut older: Vec<(u64, tlog_tiles::Hash)> = Vec::new();
    // The partial tiles seen at each size, to fetch again once the tree has grown past them.
    let mut partials: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for size in [1, 255, 256, 257, 70_000] {
        log.grow_to(size).await;
        let (checkpoint_size, root) = log.checkpoint().await;
        assert_eq!(checkpoint_size, size);

        // Every tile and bundle of the tree, with its exact width and cache policy.
        let mut fetched: BTreeMap<TilePath, Vec<u8>> = BTreeMap::new();
        for tile in tiles_of(size) {
            let path = format!("/{}", tile.to_path());
            let answer = log.get(&path).await;
            assert_eq!(answer.status, 200, "{path}");
            assert_eq!(answer.content_type, "application/octet-stream", "{path}");
            let cache = if tile.is_full() { FULL } else { PARTIAL };
            assert_eq!(answer.cache_control, cache, "{path}");
            if let TilePath::Hashes { width, .. } = tile {
                assert_eq!(answer.body.len(), 32 * usize::from(width), "{path}");
            }
            if !tile.is_full() {
                partials.insert(path, answer.body.clone());
            }
            fetched.insert(tile, answer.body);
        }
        // A level-0 hash is the leaf hash of its entry in the bundle; a hash of level L + 1 is
        // the tree hash of the full tile of level L below it (the third party's hashing).
        for (tile, bytes) in &fetched {
            match *tile {
                TilePath::Entries { index, width } => {
                    let entries = split_bundle(bytes);
                    assert_eq!(entries.len(), usize::from(width), "{}", tile.to_path());
                    let level0 = fetched
                        .iter()
                        .find(|(t, _)| {
                            matches!(t, TilePath::Hashes { level: 0, index: i, .. } if *i == index)
                        })
                        .unwrap()
                        .1;
                    for (i, entry) in entries.iter().enumerate() {
                        assert!(entry.len() <= MAX_ENTRY_BYTES);
                        assert_eq!(
                            tlog_tiles::record_hash(entry).0,
                            level0[32 * i..32 * i + 32],
                            "entry {}",
                            256 * index + i as u64
                        );
                    }
                }
                TilePath::Hashes {
                    level,
                    index,
                    width: 256,
                } => {
                    let above = fetched
                        .iter()
                        .find(|(t, _)| {
                            matches!(t, TilePath::Hashes { level: l, index: i, .. }
                                if *l == level + 1 && *i == index / 256)
                        })
                        .unwrap_or_else(|| panic!("the tile above {}", tile.to_path()))
                        .1;
                    let at = 32 * (index % 256) as usize;
                    assert_eq!(
                        tlog_tiles::Tile::subtree_hash(bytes).0,
                        above[at..at + 32],
                        "{}",
                        tile.to_path()
                    );
                }
                TilePath::Hashes { .. } => {}
            }
        }

        // Bundles hold the bytes /v1/entries serves (all of them while the tree is small, the
        // first, a middle and the last bundle of the large tree).
        let bundles: Vec<(u64, u16)> = fetched
            .keys()
            .filter_map(|t| match *t {
                TilePath::Entries { index, width } => Some((index, width)),
                TilePath::Hashes { .. } => None,
            })
            .collect();
        let sample: Vec<(u64, u16)> = if bundles.len() > 3 {
            vec![
                bundles[0],
                bundles[bundles.len() / 2],
                bundles[bundles.len() - 1],
            ]
        } else {
            bundles
        };
        for (index, width) in sample {
            let start = 256 * index;
            let page = log
                .json(&format!(
                    "/v1/entries?start={start}&end={}",
                    start + u64::from(width)
                ))
                .await;
            let served: Vec<Vec<u8>> = page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| B64.decode(e["entry"].as_str().unwrap()).unwrap())
                .collect();
            let tile = TilePath::Entries { index, width };
            assert_eq!(split_bundle(&fetched[&tile]), served, "{}", tile.to_path());
        }

        // The third party: the tree hash from the tiles it fetched is the checkpoint's root,
        // and its proofs are those the node serves.
        let indexes: Vec<u64> = [0, size / 2, size - 1].into_iter().collect();
        let mut entries = Vec::new();
        for &i in &indexes {
            let bundle = &fetched[&TilePath::Entries {
                index: i / 256,
                width: (size - i / 256 * 256).min(256) as u16,
            }];
            entries.push((i, split_bundle(bundle)[(i % 256) as usize].clone()));
        }
        let read = third_party(&log.base, size, root, entries, older.clone()).await;
        assert_eq!(read.tree_hash, root, "the tree hash of {size} entries");
        for (index, proof) in indexes.iter().zip(&read.inclusion) {
            let served = log
                .json(&format!("/v1/proofs/inclusion?index={index}&size={size}"))
                .await;
            assert_eq!(*proof, hashes_of(&served["proof"]), "entry {index}");
        }
        for ((old_size, _), proof) in older.iter().zip(&read.consistency) {
            let served = log
                .json(&format!("/v1/proofs/consistency?from={old_size}&to={size}"))
                .await;
            assert_eq!(*proof, hashes_of(&served["proof"]), "{old_size} to {size}");
        }

        // Nothing beyond the tree: one hash or entry more than a partial tile has, the next
        // tile of each level, a level above the top.
        let mut beyond: Vec<TilePath> = fetched
            .keys()
            .filter(|t| !t.is_full())
            .map(|t| match *t {
                TilePath::Hashes {
                    level,
                    index,
                    width,
                } => TilePath::Hashes {
                    level,
                    index,
                    width: width + 1,
                },
                TilePath::Entries { index, width } => TilePath::Entries {
                    index,
                    width: width + 1,
                },
            })
            .collect();
        let top = fetched
            .keys()
            .filter_map(|t| match t {
                TilePath::Hashes { level, .. } => Some(*level),
                TilePath::Entries { .. } => None,
            })
            .max()
            .unwrap();
        beyond.push(TilePath::Hashes {
            level: top + 1,
            index: 0,
            width: 1,
        });
        beyond.push(TilePath::Entries {
            index: size / 256 + 1,
            width: 1,
        });
        for tile in beyond {
            let path = format!("/{}", tile.to_path());
            let answer = log.get(&path).await;
            assert_eq!(answer.status, 404, "{path}");
            assert_eq!(answer.cache_control, "no-store", "{path}");
            assert_eq!(answer.problem()["code"], "tile-not-found", "{path}");
        }
        older.push((size, root));
    }

    // The partial tiles of the smaller trees are still served, unchanged, and each is the
    // prefix of what the grown tree holds there.
    assert!(partials.contains_key("/tile/0/000.p/255"));
    assert!(partials.contains_key("/tile/1/000.p/1"));
    for (path, bytes) in &partials {
        let answer = log.get(path).await;
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(answer.cache_control, PARTIAL, "{path}");
        assert_eq!(&answer.body, bytes, "{path}");
    }
    let full = log.get("/tile/0/000").await;
    assert_eq!(full.cache_control, FULL);
    assert_eq!(full.body[..255 * 32], partials["/tile/0/000.p/255"][..]);
    let bundle = log.get("/tile/entries/000").await;
    assert_eq!(
        split_bundle(&bundle.body)[..255],
        split_bundle(&partials["/tile/entries/000.p/255"])[..]
    );
}

#[tokio::test]
async fn bad_tile_paths_and_tiles_beyond_the_tree_are_problems_no_cache_keeps() {
    let log = Log::start().await;
    assert_eq!(log.checkpoint().await.0, 1);
    let answer = log.get("/tile/entries/000.p/1").await;
    assert_eq!(
        (answer.status, answer.cache_control.as_str()),
        (200, PARTIAL)
    );

    for path in [
        "/tile/0/0",
        "/tile/0/00",
        "/tile/0/0000",
        "/tile/00/000",
        "/tile/64/000",
        "/tile/-1/000",
        "/tile/0/x000/001",
        "/tile/0/x001",
        "/tile/0/001/002",
        "/tile/0/000.p/0",
        "/tile/0/000.p/256",
        "/tile/0/000.p/01",
        "/tile/0/000.p/",
        "/tile/0/000/",
        "/tile//000",
        "/tile/0/%30%30%30",
        "/tile/0/x001%2F000",
        "/tile/entries/1",
        "/tile/entries/000.p/0",
        "/tile/entries/x018/x446/x744/x073/x709/x551/616",
        "/tile/data/000",
        "/tile/8/0/000",
    ] {
        let answer = log.get(path).await;
        assert_eq!(answer.status, 400, "{path}");
        assert_eq!(answer.cache_control, "no-store", "{path}");
        let problem = answer.problem();
        assert_eq!(problem["code"], "invalid-path", "{path}");
        assert_eq!(problem["type"], "urn:vledger:problem:invalid-path");
        assert_eq!(problem["status"], 400);
    }
    for path in [
        "/tile/0/001",
        "/tile/0/000",
        "/tile/0/000.p/2",
        "/tile/1/000.p/1",
        "/tile/63/000.p/1",
        "/tile/0/x001/000",
        "/tile/entries/000",
        "/tile/entries/000.p/2",
        "/tile/entries/x018/x446/x744/x073/x709/x551/615",
    ] {
        let answer = log.get(path).await;
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(answer.cache_control, "no-store", "{path}");
        let problem = answer.problem();
        assert_eq!(problem["code"], "tile-not-found", "{path}");
        assert_eq!(problem["status"], 404);
    }
    // Not under a tile route at all: the node's plain 404.
    let answer = log.get("/tile").await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.problem()["code"], "not-found");
}

#[tokio::test]
async fn the_largest_envelope_makes_an_entry_that_fits_its_bundle() {
    let log = Log::start().await;
    let payload = log.payload(
        "party.register",
        json!({
            "key": fresh_key().public_key().to_base64(),
            "role": "agency",
            "home_region": "cq",
            "name": "最大的信封",
        }),
    );
    // The envelope as sealed, padded with white space to exactly the limit.
    let sealed = seal(&payload, &log.admin);
    let mut largest = sealed[..sealed.len() - 1].to_vec();
    largest.resize(MAX_ENVELOPE_BYTES - 1, b' ');
    largest.push(b'}');
    let mut over = largest.clone();
    over.insert(over.len() - 1, b' ');
    let post = |body: Vec<u8>| {
        log.http
            .post(format!("{}/v1/commands", log.base))
            .body(body)
            .send()
    };
    assert_eq!(post(over).await.unwrap().status(), 413);
    assert_eq!(post(largest.clone()).await.unwrap().status(), 201);

    let bundle = log.get("/tile/entries/000.p/2").await;
    assert_eq!(bundle.status, 200);
    let entries = split_bundle(&bundle.body);
    let entry = vledger_wire::entry::Entry::decode(&entries[1]).unwrap();
    assert_eq!(entry.envelope, largest);
    assert!(entries[1].len() <= MAX_ENTRY_BYTES);
    let leaves = log.get("/tile/0/000.p/2").await;
    assert_eq!(
        tlog_tiles::record_hash(&entries[1]).0,
        leaves.body[32..64],
        "the leaf hash of the largest entry"
    );
}
