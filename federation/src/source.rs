//! Where a mirror reads another region's log from: the region's node, over the C2SP tlog-tiles
//! read API for the checkpoint and the entries, and vledger's own API for older checkpoints and
//! consistency proofs. Behind a trait so that the simulation can put a lossy, reordering,
//! forking network in between.

use std::io::Read;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use vledger_tlog::merkle::{hash_from_slice, Hash};
use vledger_tlog::tiles::{TilePath, MAX_BUNDLED_ENTRY_BYTES, TILE_WIDTH};
use vledger_wire::http::{CheckpointsPage, ConsistencyProof};

/// Why a read from a peer failed. Nothing the peer says is trusted, so every failure is only a
/// reason to try again later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The peer does not have it (HTTP 404): a partial tile of a tree grown past it, say.
    #[error("not found: {0}")]
    NotFound(String),
    /// The peer could not be reached, timed out, or answered something unreadable.
    #[error("{0}")]
    Unavailable(String),
}

/// The reads a mirror makes of one peer.
pub trait PeerSource {
    /// The peer's latest signed checkpoint.
    fn checkpoint(&mut self) -> Result<String, SourceError>;
    /// The signed checkpoints the peer committed at sizes `from` and up, in size order, at most
    /// `limit`.
    fn checkpoints_from(&mut self, from: u64, limit: usize) -> Result<Vec<String>, SourceError>;
    /// A consistency proof between two sizes of the peer's tree.
    fn consistency_proof(&mut self, from: u64, to: u64) -> Result<Vec<Hash>, SourceError>;
    /// An entry bundle's bytes.
    fn entry_bundle(&mut self, tile: TilePath) -> Result<Vec<u8>, SourceError>;
}

/// Longest a peer may take to answer one read.
pub const PEER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A peer's node over HTTP.
pub struct HttpSource {
    base: String,
    client: reqwest::blocking::Client,
}

impl HttpSource {
    /// A source reading the node at `base` (e.g. `http://127.0.0.1:8081`).
    pub fn new(base: &str) -> Result<Self, SourceError> {
        let client = reqwest::blocking::Client::builder()
            .timeout(PEER_READ_TIMEOUT)
            .connect_timeout(PEER_READ_TIMEOUT)
            .build()
            .map_err(|e| SourceError::Unavailable(e.to_string()))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            client,
        })
    }

    /// GETs `path` and reads at most `max` bytes of its body.
    fn get(&self, path: &str, max: usize) -> Result<Vec<u8>, SourceError> {
        let url = format!("{}/{path}", self.base);
        let unavailable = |e: String| SourceError::Unavailable(format!("GET {url}: {e}"));
        let response = self
            .client
            .get(&url)
            .send()
            .map_err(|e| unavailable(e.to_string()))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(SourceError::NotFound(url));
        }
        if !response.status().is_success() {
            return Err(unavailable(format!("status {}", response.status())));
        }
        let mut body = Vec::new();
        response
            .take(max as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| unavailable(e.to_string()))?;
        if body.len() > max {
            return Err(unavailable(format!("answer longer than {max} bytes")));
        }
        Ok(body)
    }

    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        max: usize,
    ) -> Result<T, SourceError> {
        let body = self.get(path, max)?;
        serde_json::from_slice(&body)
            .map_err(|e| SourceError::Unavailable(format!("GET {path}: {e}")))
    }
}

/// The largest answer read for a checkpoint or a page of them.
const MAX_NOTES_ANSWER: usize = 4 << 20;

impl PeerSource for HttpSource {
    fn checkpoint(&mut self) -> Result<String, SourceError> {
        let body = self.get("checkpoint", vledger_tlog::limits::MAX_NOTE_BYTES)?;
        String::from_utf8(body)
            .map_err(|_| SourceError::Unavailable("checkpoint: not UTF-8".into()))
    }

    fn checkpoints_from(&mut self, from: u64, limit: usize) -> Result<Vec<String>, SourceError> {
        let page: CheckpointsPage = self.get_json(
            &format!("v1/checkpoints?from={from}&limit={limit}"),
            MAX_NOTES_ANSWER,
        )?;
        Ok(page.checkpoints.into_iter().map(|c| c.note).collect())
    }

    fn consistency_proof(&mut self, from: u64, to: u64) -> Result<Vec<Hash>, SourceError> {
        let proof: ConsistencyProof = self.get_json(
            &format!("v1/proofs/consistency?from={from}&to={to}"),
            64 * 1024,
        )?;
        decode_hashes(&proof.proof)
    }

    fn entry_bundle(&mut self, tile: TilePath) -> Result<Vec<u8>, SourceError> {
        let max = TILE_WIDTH as usize * (2 + MAX_BUNDLED_ENTRY_BYTES);
        self.get(&tile.to_path(), max)
    }
}

/// Standard base64 hashes, as the proofs of vledger's API carry them.
pub fn decode_hashes(hashes: &[String]) -> Result<Vec<Hash>, SourceError> {
    hashes
        .iter()
        .map(|h| {
            B64.decode(h)
                .ok()
                .and_then(|bytes| hash_from_slice(&bytes).ok())
                .ok_or_else(|| SourceError::Unavailable(format!("`{h}` is not a base64 hash")))
        })
        .collect()
}

/// A node of this process read directly: what the simulation and the catch-up benchmark put
/// behind their networks. It serves what the node's HTTP interface serves, from the same reads.
pub struct LocalSource {
    pub node: std::sync::Arc<vledger_node::node::Node>,
}

impl PeerSource for LocalSource {
    fn checkpoint(&mut self) -> Result<String, SourceError> {
        Ok(self.node.checkpoint().to_string())
    }

    fn checkpoints_from(&mut self, from: u64, limit: usize) -> Result<Vec<String>, SourceError> {
        let rows = self
            .node
            .checkpoints_from(from, limit)
            .map_err(|e| SourceError::Unavailable(e.to_string()))?;
        Ok(rows.into_iter().map(|(_, note)| note).collect())
    }

    fn consistency_proof(&mut self, from: u64, to: u64) -> Result<Vec<Hash>, SourceError> {
        self.node
            .consistency_proof(from, to)
            .map_err(|e| SourceError::Unavailable(e.to_string()))
    }

    fn entry_bundle(&mut self, tile: TilePath) -> Result<Vec<u8>, SourceError> {
        let TilePath::Entries { index, width } = tile else {
            return Err(SourceError::NotFound(tile.to_path()));
        };
        let start = index * TILE_WIDTH;
        let end = start + u64::from(width);
        let size = self.node.tree_size();
        let partial_of_grown_tree = !tile.is_full() && size >= start + TILE_WIDTH;
        if end > size || partial_of_grown_tree {
            return Err(SourceError::NotFound(tile.to_path()));
        }
        let entries = self
            .node
            .entries(start, end)
            .map_err(|e| SourceError::Unavailable(e.to_string()))?;
        vledger_tlog::tiles::encode_entry_bundle(entries.iter().map(|(_, bytes)| bytes.as_slice()))
            .map_err(|e| SourceError::Unavailable(e.to_string()))
    }
}
