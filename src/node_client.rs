//! A blocking client of a node's read endpoints, for `export`, `verify` and the witness tools.

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use vledger_api::{ConsistencyProof, EntriesPage, NodeInfo};
use vledger_ledger::merkle::Hash;

/// Longest time one request to a node may take.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A node's base URL and an HTTP client.
pub struct NodeClient {
    base: String,
    http: reqwest::blocking::Client,
}

impl NodeClient {
    pub fn new(url: &str) -> Result<Self> {
        let http = reqwest::blocking::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("cannot make an HTTP client")?;
        Ok(Self {
            base: url.trim_end_matches('/').to_string(),
            http,
        })
    }

    fn get(&self, path: &str) -> Result<reqwest::blocking::Response> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .with_context(|| format!("cannot reach {url} (is the node running?)"))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().unwrap_or_default();
            bail!("{url} answered {status}: {body}");
        }
        Ok(response)
    }

    /// `GET /v1/node`.
    pub fn node(&self) -> Result<NodeInfo> {
        self.get("/v1/node")?
            .json()
            .context("the node's /v1/node answer is not the expected JSON")
    }

    /// `GET /v1/checkpoint`: the latest signed checkpoint note.
    pub fn checkpoint(&self) -> Result<String> {
        Ok(self.get("/v1/checkpoint")?.text()?)
    }

    /// `GET /v1/entries?start=&end=`: (index, canonical bytes) of each entry of the page.
    pub fn entries(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        let page: EntriesPage = self
            .get(&format!("/v1/entries?start={start}&end={end}"))?
            .json()
            .context("the node's /v1/entries answer is not the expected JSON")?;
        if page.entries.is_empty() {
            bail!("the node sent no entries for [{start}, {end})");
        }
        page.entries
            .into_iter()
            .map(|e| Ok((e.index, crate::cli_export::entry_bytes(&e.entry, e.index)?)))
            .collect()
    }

    /// `GET /v1/proofs/consistency?from=&to=`.
    pub fn consistency(&self, from: u64, to: u64) -> Result<Vec<Hash>> {
        let proof: ConsistencyProof = self
            .get(&format!("/v1/proofs/consistency?from={from}&to={to}"))?
            .json()
            .context("the node's consistency proof is not the expected JSON")?;
        proof
            .proof
            .iter()
            .map(|h| {
                B64.decode(h)
                    .ok()
                    .and_then(|v| v.try_into().ok())
                    .context("the node sent a proof hash that is not 32 bytes of base64")
            })
            .collect()
    }
}
