//! The log's reads: the node's identity, checkpoints, entries and Merkle proofs.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::Json;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;
use utoipa::IntoParams;
use vledger_domain::limits::{MAX_CHECKPOINTS_PAGE, MAX_ENTRIES_PAGE};
use vledger_tlog::merkle::leaf_hash;
use vledger_wire::entry::Entry;
use vledger_wire::envelope::DsseEnvelope;
use vledger_wire::http::{
    CheckpointsPage, ConsistencyProof, DecodedEntry, EntriesPage, EntryView, EntryWithProof,
    InclusionProof, NodeInfo, StoredCheckpoint,
};

use crate::params;
use crate::{AppState, Problem, ProblemPath, ProblemQuery};

/// The node's region, log origin and keys, and its tree size.
#[utoipa::path(get, path = "/v1/node", tag = "log",
    responses((status = 200, description = "The node", body = NodeInfo)))]
pub(crate) async fn get_node(State(state): State<AppState>) -> Json<NodeInfo> {
    let node = &state.node;
    Json(NodeInfo {
        region: node.region().to_string(),
        origin: node.origin().to_string(),
        verifier_key: node.verifier_key(),
        node_key: node.node_key().to_base64(),
        tree_size: node.tree_size(),
    })
}

/// The latest signed checkpoint, a C2SP signed note.
#[utoipa::path(get, path = "/v1/checkpoint", tag = "log",
    responses((status = 200, description = "The checkpoint note", body = String, content_type = "text/plain")))]
pub(crate) async fn get_checkpoint(State(state): State<AppState>) -> Response {
    let note = state.node.checkpoint();
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        note.to_string(),
    )
        .into_response()
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CheckpointsQuery {
    /// The smallest tree size wanted (default 0).
    #[serde(default, deserialize_with = "params::int64")]
    from: u64,
    /// 1 to 1,000 (the default).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// Every checkpoint the node signed (one per committed batch), in size order: a regulator's
/// archive (`vledger export --url`) holds them all, so successive checkpoints can be checked
/// against one another offline.
#[utoipa::path(get, path = "/v1/checkpoints", tag = "log", params(CheckpointsQuery),
    responses((status = 200, description = "A page of checkpoints", body = CheckpointsPage),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get_checkpoints(
    State(state): State<AppState>,
    ProblemQuery(q): ProblemQuery<CheckpointsQuery>,
) -> Result<Json<CheckpointsPage>, Problem> {
    let limit = q.limit.unwrap_or(MAX_CHECKPOINTS_PAGE);
    if limit == 0 || limit > MAX_CHECKPOINTS_PAGE {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            format!("limit must be between 1 and {MAX_CHECKPOINTS_PAGE}"),
        ));
    }
    let node = state.node.clone();
    let rows = tokio::task::spawn_blocking(move || node.checkpoints_from(q.from, limit))
        .await
        .expect("read task")?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|(size, _)| size + 1))
        .flatten();
    Ok(Json(CheckpointsPage {
        checkpoints: rows
            .into_iter()
            .map(|(size, note)| StoredCheckpoint { size, note })
            .collect(),
        next,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EntriesQuery {
    /// The first index.
    #[serde(deserialize_with = "params::int64")]
    start: u64,
    /// One past the last index; a page holds at most 1,000 entries, and none when `end` is not
    /// above `start` or `start` is not below the tree size.
    #[serde(deserialize_with = "params::int64")]
    end: u64,
}

fn entry_view(index: u64, bytes: &[u8]) -> Result<EntryView, Problem> {
    let corrupt = |what: String| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage-failure",
            format!("entry {index}: {what}"),
        )
    };
    let entry = Entry::decode(bytes).map_err(|e| corrupt(e.to_string()))?;
    let envelope: DsseEnvelope =
        serde_json::from_slice(&entry.envelope).map_err(|e| corrupt(e.to_string()))?;
    let payload = B64
        .decode(&envelope.payload)
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(EntryView {
        index,
        entry: B64.encode(bytes),
        leaf_hash: B64.encode(leaf_hash(bytes)),
        decoded: DecodedEntry {
            node_time_ms: entry.node_time_ms,
            prev_leaf_hash: B64.encode(entry.prev_leaf_hash),
            command: serde_json::from_slice(&payload).map_err(|e| corrupt(e.to_string()))?,
            events: serde_json::from_slice(&entry.events).map_err(|e| corrupt(e.to_string()))?,
            envelope,
        },
    })
}

/// Entries `start` to `end` (exclusive), as stored and decoded.
#[utoipa::path(get, path = "/v1/entries", tag = "log", params(EntriesQuery),
    responses(
        (status = 200, description = "The entries that exist in the range (at most 1,000; none for an empty range or one past the tree)", body = EntriesPage),
        (status = 400, description = "start or end is not an integer of the documented range", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_entries(
    State(state): State<AppState>,
    ProblemQuery(q): ProblemQuery<EntriesQuery>,
) -> Result<Json<EntriesPage>, Problem> {
    // The entries that exist in the range: none when it is empty or starts past the tree.
    let tree_size = state.node.tree_size();
    let end = q
        .end
        .min(q.start.saturating_add(MAX_ENTRIES_PAGE))
        .min(tree_size);
    let rows = if q.start < end {
        let node = state.node.clone();
        tokio::task::spawn_blocking(move || node.entries(q.start, end))
            .await
            .expect("read task")?
    } else {
        Vec::new()
    };
    let entries = rows
        .iter()
        .map(|(i, b)| entry_view(*i, b))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(EntriesPage { entries, tree_size }))
}

/// Entry `index` with its inclusion proof in the tree of the latest checkpoint: everything a
/// client needs to check, offline, that the entry is in the log the node signed.
#[utoipa::path(get, path = "/v1/entries/{index}", tag = "log",
    params(("index" = u64, Path, description = "The entry's index, from 0")),
    responses(
        (status = 200, description = "The entry, its proof and the checkpoint", body = EntryWithProof),
        (status = 400, description = "The index is not a number", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The log has no entry at this index yet", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_entry(
    State(state): State<AppState>,
    ProblemPath(index): ProblemPath<String>,
) -> Result<Json<EntryWithProof>, Problem> {
    let index: u64 = index.parse().map_err(|_| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-path",
            format!("entry index `{index}` is not a non-negative integer"),
        )
    })?;
    let checkpoint = state.node.checkpoint();
    let size: u64 = checkpoint
        .lines()
        .nth(1)
        .and_then(|line| line.parse().ok())
        .ok_or_else(|| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage-failure",
                "the latest checkpoint has no tree size",
            )
        })?;
    if index >= size {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "entry-not-found",
            format!("the log holds {size} entries; there is no entry {index} yet"),
        ));
    }
    let node = state.node.clone();
    let (rows, proof, root) = tokio::task::spawn_blocking(move || {
        let rows = node.entries(index, index + 1)?;
        let proof = node.inclusion_proof(index, size)?;
        let root = node.root(size)?;
        Ok::<_, vledger_node::node::ReadError>((rows, proof, root))
    })
    .await
    .expect("read task")?;
    let (_, bytes) = rows.first().ok_or_else(|| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage-failure",
            format!("entry {index} is missing below the tree size {size}"),
        )
    })?;
    let entry = entry_view(index, bytes)?;
    Ok(Json(EntryWithProof {
        inclusion: InclusionProof {
            index,
            size,
            leaf_hash: entry.leaf_hash.clone(),
            root_hash: B64.encode(root),
            proof: proof.iter().map(|h| B64.encode(h)).collect(),
        },
        entry,
        checkpoint: checkpoint.to_string(),
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct InclusionQuery {
    /// The entry's index, below `size`.
    #[serde(deserialize_with = "params::int64")]
    index: u64,
    /// The tree size the proof is for (a checkpoint's size), at most the latest one.
    #[serde(deserialize_with = "params::int64")]
    size: u64,
}

/// The inclusion proof of entry `index` in the tree of size `size`.
#[utoipa::path(get, path = "/v1/proofs/inclusion", tag = "log", params(InclusionQuery),
    responses(
        (status = 200, description = "The proof", body = InclusionProof),
        (status = 400, description = "index or size is not an integer of the documented range", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "size is beyond the latest tree size, or index is not below size (`out-of-range`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_inclusion_proof(
    State(state): State<AppState>,
    ProblemQuery(q): ProblemQuery<InclusionQuery>,
) -> Result<Json<InclusionProof>, Problem> {
    if q.index >= q.size {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "out-of-range",
            format!(
                "a tree of size {} has no entry {}; index must be below size",
                q.size, q.index
            ),
        ));
    }
    let node = state.node.clone();
    let (proof, root, leaf) = tokio::task::spawn_blocking(move || {
        let proof = node.inclusion_proof(q.index, q.size)?;
        let root = node.root(q.size)?;
        let leaf = node.inclusion_leaf(q.index)?;
        Ok::<_, vledger_node::node::ReadError>((proof, root, leaf))
    })
    .await
    .expect("read task")?;
    Ok(Json(InclusionProof {
        index: q.index,
        size: q.size,
        leaf_hash: B64.encode(leaf),
        root_hash: B64.encode(root),
        proof: proof.iter().map(|h| B64.encode(h)).collect(),
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ConsistencyQuery {
    /// The older tree size, at most `to`.
    #[serde(deserialize_with = "params::int64")]
    from: u64,
    /// The newer tree size, at most the latest one.
    #[serde(deserialize_with = "params::int64")]
    to: u64,
}

/// The consistency proof between tree sizes `from` and `to`.
#[utoipa::path(get, path = "/v1/proofs/consistency", tag = "log", params(ConsistencyQuery),
    responses(
        (status = 200, description = "The proof (empty when from is 0 or equals to)", body = ConsistencyProof),
        (status = 400, description = "from or to is not an integer of the documented range", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "to is beyond the latest tree size, or from is above to (`out-of-range`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_consistency_proof(
    State(state): State<AppState>,
    ProblemQuery(q): ProblemQuery<ConsistencyQuery>,
) -> Result<Json<ConsistencyProof>, Problem> {
    if q.from > q.to {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "out-of-range",
            format!(
                "there is no consistency proof from size {} to the smaller size {}",
                q.from, q.to
            ),
        ));
    }
    let node = state.node.clone();
    let proof = tokio::task::spawn_blocking(move || node.consistency_proof(q.from, q.to))
        .await
        .expect("read task")?;
    Ok(Json(ConsistencyProof {
        from: q.from,
        to: q.to,
        proof: proof.iter().map(|h| B64.encode(h)).collect(),
    }))
}
