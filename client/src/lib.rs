//! A client for vledger's HTTP API, with the same types the server uses: sign and submit
//! commands, read records, entries, proofs and checkpoints, and follow the event stream.
//!
//! ```no_run
//! use vledger_client::Client;
//! # fn main() -> Result<(), vledger_client::ClientError> {
//! let client = Client::new("http://127.0.0.1:8080");
//! let node = client.node()?;
//! println!("region {} holds {} entries", node.region, node.tree_size);
//! # Ok(()) }
//! ```

mod events;
mod routing;

use std::sync::OnceLock;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use vledger_domain::types::RegionId;
use vledger_tlog::keys::{PublicKey, SigningKey};
use vledger_wire::envelope::{seal, CommandPayload, COMMAND_FORMAT_VERSION};

pub use events::{EventStream, EventsRequest, ReceivedEvent};
pub use routing::{Federation, RouteError};
pub use vledger_domain::catalog::{CatalogPage, DemandRecord, ListingRecord};
pub use vledger_domain::claims::{ClaimRecord, SettlementPosition};
pub use vledger_domain::orders::OrderRecord;
pub use vledger_domain::programs::ProgramRecord;
pub use vledger_domain::vouchers::VoucherRecord;
pub use vledger_domain::PartyRecord;
pub use vledger_wire::http::{
    CheckpointsPage, CommandAccepted, ConsistencyProof, DemandMatches, EntriesPage, EntryView,
    EntryWithProof, FraudFlagsPage, InclusionProof, NodeInfo, Problem, RecordsPage,
    StoredCheckpoint, StreamedEvent,
};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node could not be reached, or the connection broke.
    #[error("cannot reach the node at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The node answered with an RFC 9457 problem.
    #[error("the node answered {}: {} ({})", .0.status, .0.detail, .0.code)]
    Problem(Problem),
    /// The node's answer was not what the API promises.
    #[error("unexpected answer from {url}: {reason}")]
    Unexpected { url: String, reason: String },
}

impl ClientError {
    /// The problem's stable code, when the node refused the request.
    pub fn problem_code(&self) -> Option<&str> {
        match self {
            ClientError::Problem(p) => Some(&p.code),
            _ => None,
        }
    }
}

/// A connection to one node.
pub struct Client {
    base: String,
    http: reqwest::blocking::Client,
    region: OnceLock<RegionId>,
}

/// How long a request may take (the node itself answers within 30 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(35);

impl Client {
    /// A client of the node at `base_url`, e.g. `http://127.0.0.1:8080`.
    pub fn new(base_url: &str) -> Self {
        Self {
            base: base_url.trim_end_matches('/').to_string(),
            http: reqwest::blocking::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .expect("an HTTP client with default TLS settings builds"),
            region: OnceLock::new(),
        }
    }

    /// The node's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn unreachable(&self, url: &str) -> impl FnOnce(reqwest::Error) -> ClientError {
        let url = url.to_string();
        move |source| ClientError::Unreachable { url, source }
    }

    /// GETs `path` with `query` and decodes the JSON answer.
    pub fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let response = self
            .http
            .get(&url)
            .query(query)
            .send()
            .map_err(self.unreachable(&url))?;
        decode(&url, response)
    }

    /// GETs `path` and returns the body as text.
    pub fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let url = self.url(path);
        let response = self.http.get(&url).send().map_err(self.unreachable(&url))?;
        let status = response.status();
        let text = response.text().map_err(self.unreachable(&url))?;
        if !status.is_success() {
            return Err(problem_of(&url, status.as_u16(), &text));
        }
        Ok(text)
    }

    /// The node's region, origin, keys and tree size.
    pub fn node(&self) -> Result<NodeInfo, ClientError> {
        self.get_json("/v1/node", &[])
    }

    /// The region commands are signed for: asked of the node once, then remembered.
    pub fn region(&self) -> Result<RegionId, ClientError> {
        if let Some(region) = self.region.get() {
            return Ok(region.clone());
        }
        let info = self.node()?;
        let region =
            RegionId::try_from(info.region.clone()).map_err(|e| ClientError::Unexpected {
                url: self.url("/v1/node"),
                reason: e.to_string(),
            })?;
        Ok(self.region.get_or_init(|| region).clone())
    }

    /// Signs `body` as a command of `command_type` with `key` and a fresh random nonce, submits
    /// it and waits until it is durable.
    pub fn submit(
        &self,
        key: &SigningKey,
        command_type: &str,
        body: &impl Serialize,
    ) -> Result<CommandAccepted, ClientError> {
        self.submit_with_nonce(key, command_type, body, &fresh_nonce())
    }

    /// Like [`Client::submit`] with a chosen nonce: submitting the same command with the same
    /// nonce again returns a receipt of the original entry (`replayed: true`), so a retry after
    /// a lost answer is safe.
    pub fn submit_with_nonce(
        &self,
        key: &SigningKey,
        command_type: &str,
        body: &impl Serialize,
        nonce: &str,
    ) -> Result<CommandAccepted, ClientError> {
        let body = serde_json::to_value(body).map_err(|e| ClientError::Unexpected {
            url: self.url("/v1/commands"),
            reason: format!("the body does not serialize: {e}"),
        })?;
        let payload = CommandPayload {
            v: u64::from(COMMAND_FORMAT_VERSION),
            command_type: command_type.to_string(),
            region: self.region()?,
            signer: key.public_key(),
            nonce: nonce.to_string(),
            body,
        };
        self.submit_envelope(seal(&payload, key))
    }

    /// Submits an envelope signed elsewhere.
    pub fn submit_envelope(&self, envelope: Vec<u8>) -> Result<CommandAccepted, ClientError> {
        let url = self.url("/v1/commands");
        let response = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(envelope)
            .send()
            .map_err(self.unreachable(&url))?;
        decode(&url, response)
    }

    /// The latest signed checkpoint (a C2SP note).
    pub fn checkpoint(&self) -> Result<String, ClientError> {
        self.get_text("/v1/checkpoint")
    }

    /// The node's stored checkpoints of tree size `from` and up, in size order (a page of at
    /// most `limit`, at most 1,000).
    pub fn checkpoints(&self, from: u64, limit: usize) -> Result<CheckpointsPage, ClientError> {
        self.get_json(
            "/v1/checkpoints",
            &[("from", from.to_string()), ("limit", limit.to_string())],
        )
    }

    /// Entries `start..end` (at most 1,000 per call).
    pub fn entries(&self, start: u64, end: u64) -> Result<EntriesPage, ClientError> {
        self.get_json(
            "/v1/entries",
            &[("start", start.to_string()), ("end", end.to_string())],
        )
    }

    /// One entry with its inclusion proof in the latest checkpoint's tree.
    pub fn entry(&self, index: u64) -> Result<EntryWithProof, ClientError> {
        self.get_json(&format!("/v1/entries/{index}"), &[])
    }

    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<InclusionProof, ClientError> {
        self.get_json(
            "/v1/proofs/inclusion",
            &[("index", index.to_string()), ("size", size.to_string())],
        )
    }

    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<ConsistencyProof, ClientError> {
        self.get_json(
            "/v1/proofs/consistency",
            &[("from", from.to_string()), ("to", to.to_string())],
        )
    }

    pub fn program(&self, id: &str) -> Result<ProgramRecord, ClientError> {
        self.get_json(&format!("/v1/programs/{}", path_segment(id)), &[])
    }
    pub fn voucher(&self, id: &str) -> Result<VoucherRecord, ClientError> {
        self.get_json(&format!("/v1/vouchers/{}", path_segment(id)), &[])
    }
    pub fn order(&self, id: &str) -> Result<OrderRecord, ClientError> {
        self.get_json(&format!("/v1/orders/{}", path_segment(id)), &[])
    }
    pub fn claim(&self, order_id: &str) -> Result<ClaimRecord, ClientError> {
        self.get_json(&format!("/v1/claims/{}", path_segment(order_id)), &[])
    }
    pub fn party(&self, key: &PublicKey) -> Result<PartyRecord, ClientError> {
        self.get_json(
            &format!("/v1/parties/{}", path_segment(&key.to_base64())),
            &[],
        )
    }

    /// Subscribes to the event stream; the returned iterator reconnects by itself, resuming
    /// after the last event it delivered.
    pub fn events(&self, request: EventsRequest) -> EventStream {
        EventStream::new(self.base.clone(), request)
    }
}

/// A random 128-bit nonce in hex.
pub fn fresh_nonce() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Percent-encodes one path segment (record ids are plain; keys carry `/` and `+`).
pub fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn problem_of(url: &str, status: u16, text: &str) -> ClientError {
    match serde_json::from_str::<Problem>(text) {
        Ok(problem) => ClientError::Problem(problem),
        Err(_) => ClientError::Unexpected {
            url: url.to_string(),
            reason: format!("HTTP {status} without a problem document: {text}"),
        },
    }
}

fn decode<T: DeserializeOwned>(
    url: &str,
    response: reqwest::blocking::Response,
) -> Result<T, ClientError> {
    let status = response.status();
    let text = response.text().map_err(|source| ClientError::Unreachable {
        url: url.to_string(),
        source,
    })?;
    if !status.is_success() {
        return Err(problem_of(url, status.as_u16(), &text));
    }
    serde_json::from_str(&text).map_err(|e| ClientError::Unexpected {
        url: url.to_string(),
        reason: format!("the answer does not decode: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_escape_key_characters() {
        assert_eq!(path_segment("order-1.a_b~"), "order-1.a_b~");
        assert_eq!(path_segment("ab/c+d="), "ab%2Fc%2Bd%3D");
    }

    #[test]
    fn nonces_are_fresh() {
        assert_ne!(fresh_nonce(), fresh_nonce());
        assert_eq!(fresh_nonce().len(), 32);
    }

    #[test]
    fn a_problem_document_becomes_a_problem_error() {
        let text = r#"{"type":"urn:vledger:problem:voucher-frozen","title":"Unprocessable Entity","status":422,"detail":"the voucher is frozen","code":"voucher-frozen"}"#;
        let error = problem_of("http://x/v1/commands", 422, text);
        assert_eq!(error.problem_code(), Some("voucher-frozen"));
        let error = problem_of("http://x/v1/commands", 502, "bad gateway");
        assert_eq!(error.problem_code(), None);
        assert!(error.to_string().contains("HTTP 502"));
    }
}
