//! The bodies of the HTTP interface's answers, as a client reads them (the node's `vledger-api`
//! writes them; `vledger-client` and other integrators read them without linking the server).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use vledger_domain::catalog::ListingRecord;
use vledger_domain::orders::FraudFlagRecord;
use vledger_domain::types::{RecordId, RegionId};
use vledger_domain::Event;

use crate::envelope::DsseEnvelope;
use crate::receipt::Receipt;

/// Prefix of every problem `type`.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:vledger:problem:";

/// An RFC 9457 problem, as the API returns it (`application/problem+json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct Problem {
    /// `urn:vledger:problem:<code>`: one stable type per rule broken (see `code`).
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The stable code (the last part of `type`), for clients that prefer a short string.
    pub code: String,
}

/// The answer to an accepted command.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CommandAccepted {
    pub receipt: Receipt,
    /// The signed checkpoint of the batch that committed the command.
    pub checkpoint: String,
    /// True when this repeats the receipt of an earlier identical submission.
    pub replayed: bool,
}

/// What `GET /v1/node` answers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeInfo {
    pub region: String,
    /// The checkpoint origin (the log's name).
    pub origin: String,
    /// The node's key as a C2SP verifier key, `name+hash+base64`.
    pub verifier_key: String,
    /// The node's ed25519 public key, standard base64.
    pub node_key: String,
    pub tree_size: u64,
}

/// One stored checkpoint: the tree size and the signed note.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StoredCheckpoint {
    pub size: u64,
    /// The C2SP signed note, as signed.
    pub note: String,
}

/// A page of the node's checkpoint history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckpointsPage {
    pub checkpoints: Vec<StoredCheckpoint>,
    /// The `from` of the next page, if there may be more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

/// One entry as `GET /v1/entries` answers it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntryView {
    pub index: u64,
    /// The exact entry bytes, standard base64: the leaf hash is SHA-256(0x00 ‖ these bytes).
    pub entry: String,
    pub leaf_hash: String,
    pub decoded: DecodedEntry,
}

/// The same entry, decoded for reading.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DecodedEntry {
    pub node_time_ms: u64,
    pub prev_leaf_hash: String,
    pub envelope: DsseEnvelope,
    /// The DSSE payload, decoded: `v`, `type`, `region`, `signer`, `nonce`, `body`.
    #[schema(value_type = Object)]
    pub command: serde_json::Value,
    #[schema(value_type = Vec<vledger_domain::Event>)]
    pub events: serde_json::Value,
}

/// A page of entries.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntriesPage {
    pub entries: Vec<EntryView>,
    pub tree_size: u64,
}

/// One entry with its inclusion proof in the tree of the latest checkpoint.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntryWithProof {
    pub entry: EntryView,
    /// The proof that the entry is in the tree of `checkpoint`.
    pub inclusion: InclusionProof,
    /// The signed checkpoint (C2SP note) whose root the proof leads to.
    pub checkpoint: String,
}

/// An RFC 9162 inclusion proof.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InclusionProof {
    pub index: u64,
    pub size: u64,
    pub leaf_hash: String,
    pub root_hash: String,
    /// Sibling hashes from the leaf up, standard base64.
    pub proof: Vec<String>,
}

/// An RFC 9162 consistency proof.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    pub proof: Vec<String>,
}

/// A page of fraud flags, oldest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FraudFlagsPage {
    pub flags: Vec<FraudFlagRecord>,
    /// Pass as `after_index` for the next page; absent at the end.
    pub next_after_index: Option<u64>,
}

/// What `/healthz` answers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok` (a node that cannot write answers 503 `storage-failure` instead).
    pub status: String,
    pub tree_size: u64,
}

/// The listings of every region that fit a demand, the best match first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DemandMatches {
    pub demand_id: RecordId,
    /// Ranked by how well their text matches the demand's title and description (BM25), then
    /// cheapest first.
    pub hits: Vec<SearchHit>,
    /// What the catalog's index reflected when it answered.
    pub indexed: CatalogFreshness,
}

/// How catalog search results are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    /// Best match first (BM25); without query text every listing scores the same, and the
    /// order among equals is fixed but arbitrary.
    #[default]
    Relevance,
    /// Cheapest first.
    PriceAsc,
    /// Dearest first.
    PriceDesc,
}

/// One listing a catalog search found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchHit {
    /// The region whose log holds the listing: this node's own, or a region of the federation
    /// as this node adopted it.
    pub log_region: RegionId,
    /// The listing's BM25 score, when ranked by relevance.
    pub score: Option<f32>,
    pub listing: ListingRecord,
}

/// How many matching listings have one value of a field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FacetCount {
    pub value: String,
    pub count: u64,
}

/// Per field, the values the matching listings have, with their counts: the most frequent
/// first (ties in value order), at most 50 values per field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Facets {
    pub pool: Vec<FacetCount>,
    pub industry: Vec<FacetCount>,
    /// The region whose log holds the listing.
    pub region: Vec<FacetCount>,
    pub category: Vec<FacetCount>,
}

/// What the catalog's search index reflects: every entry of this node's log below
/// `log_size`, and of each adopted region every entry below its size. A listing's record is
/// read as the node holds it when the page is made, so it may show a later change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CatalogFreshness {
    pub log_size: u64,
    /// Per adopted region, the size of its log the index reflects.
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    pub regions: std::collections::BTreeMap<RegionId, u64>,
}

/// One page of a catalog search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    /// How many listings match in all.
    pub total: u64,
    pub facets: Facets,
    /// Pass as `cursor`, with the same query, for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    pub indexed: CatalogFreshness,
}

/// The `data` of one streamed event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StreamedEvent {
    /// The entry that recorded the event.
    pub index: u64,
    /// The event's position among the entry's events, from 0.
    pub position: u32,
    pub node_time_ms: u64,
    /// The type of the command that caused the event.
    pub command_type: String,
    /// The key that signed that command, standard base64.
    pub signer: String,
    #[schema(value_type = Event)]
    pub event: Value,
}

/// One page of a list, in id order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecordsPage<T> {
    pub records: Vec<T>,
    /// Pass as `after` for the next page; null at the end.
    pub next_after: Option<RecordId>,
}

/// A party as `GET /v1/parties/{key}` answers it: the record, and where it comes from.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PartyView {
    #[serde(flatten)]
    pub party: vledger_domain::PartyRecord,
    /// The region whose log holds the party (its home region).
    pub log_region: String,
    /// For a party of another region: the size of that region's log this node adopted, as of
    /// which the record is; absent for a party of this node's own log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of_size: Option<u64>,
}

/// What `GET /v1/federation` answers: this node, and every other region of its federation map
/// with what this node adopted of it and how its mirror stands.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FederationView {
    pub region: String,
    pub origin: String,
    pub verifier_key: String,
    pub tree_size: u64,
    pub peers: Vec<PeerView>,
}

/// One other region of the federation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PeerView {
    pub region: String,
    /// Its node's base URL, as the federation map gives it.
    pub url: String,
    /// Its node's key, pinned by the map, as a C2SP verifier key.
    pub verifier_key: String,
    /// What this node adopted of it; absent before the first adoption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted: Option<AdoptedView>,
    /// How the mirror of it stands.
    pub mirror: MirrorView,
}

/// The latest adoption of a region: the checkpoint adopted, and the entry of this node's log
/// that adopted it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdoptedView {
    pub size: u64,
    /// Standard base64.
    pub root_hash: String,
    /// The index of the `federation.adopt` entry in this node's log.
    pub adopted_at: u64,
    /// Its node time, ms since the Unix epoch.
    pub adopted_time_ms: u64,
    /// The region's signed checkpoint adopted, as its node signed it.
    pub checkpoint: String,
}

/// The mirror of a region.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MirrorView {
    /// `following` (up to date or catching up), `failing` (the last step failed; it is retried)
    /// or `halted` (the region equivocated: nothing more is adopted from it).
    pub state: String,
    /// The largest size of a valid checkpoint the region served.
    pub latest_seen_size: u64,
    /// Entries the region has that are not adopted yet.
    pub lag_entries: u64,
    /// Seconds since the oldest entry not adopted yet was first seen (0 when up to date).
    pub lag_seconds: f64,
    /// When the region's node last answered, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contact_ms: Option<u64>,
    /// Why the last step failed, until one succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Entries whose decisions read a third region's records, folded from their recorded
    /// events rather than decided again (checked by `vledger verify` of the federation).
    pub folded_entries: u64,
    /// The equivocation evidence (the `vledger verify-evidence` format), when halted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub equivocation: Option<serde_json::Value>,
}
