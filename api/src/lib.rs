//! vledger's HTTP service on axum: commands in, receipts, checkpoints, entries and proofs out.
//!
//! Handlers translate between HTTP and [`vledger_node::node::Node`]; they hold no rules.

pub mod catalog;
pub mod connections;
pub mod events;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod problem;
pub mod records;
pub mod witness_service;
pub mod witnessing;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa::IntoParams;
use vledger_domain::claims::{load_claim, ClaimRecord, SettlementPosition};
use vledger_domain::limits::{MAX_ENTRIES_PAGE, MAX_ENVELOPE_BYTES};
use vledger_domain::money::AmountMinor;
use vledger_domain::orders::{load_order, OrderQuote, OrderRecord};
use vledger_domain::programs::{load_program, ProgramRecord};
use vledger_domain::queries;
use vledger_domain::types::RecordId;
use vledger_domain::vouchers::{load_voucher, VoucherRecord};
use vledger_node::node::{CommittedState, Node};
use vledger_tlog::merkle::leaf_hash;
use vledger_wire::entry::Entry;
use vledger_wire::envelope::{DsseEnvelope, VerifiedEnvelope};

pub use connections::ConnectionLimits;
pub use metrics::Metrics;
pub use problem::Problem;
pub use vledger_wire::http::{
    CheckpointsPage, CommandAccepted, ConsistencyProof, DecodedEntry, EntriesPage, EntryView,
    EntryWithProof, FraudFlagsPage, Health, InclusionProof, NodeInfo, StoredCheckpoint,
};

/// Longest time one request may take before it is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Shared state of every handler.
///
/// Every request clones it (axum hands each handler and middleware its own copy), so it is one
/// shared allocation: a clone is one reference count, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl std::ops::Deref for AppState {
    type Target = SharedState;
    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct SharedState {
    pub node: Arc<Node>,
    pub metrics: Arc<Metrics>,
    /// The tree size after each committed batch: wakes event subscribers.
    pub commits: tokio::sync::watch::Receiver<u64>,
    /// The latest checkpoint cosigned by the node's witnesses (empty without witnesses).
    pub cosigned: Arc<witnessing::Cosigned>,
    /// One permit per open event stream (see [`ConnectionLimits::max_event_subscribers`]).
    pub subscribers: Arc<tokio::sync::Semaphore>,
    pub max_event_subscribers: usize,
}

/// The header that carries a request's id (taken from the client or made by the node).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The router of the public interface.
pub fn router(node: Arc<Node>) -> Router {
    router_with_witnesses(node, Arc::default())
}

/// The router of a node whose checkpoints its witnesses cosign into `cosigned`.
pub fn router_with_witnesses(node: Arc<Node>, cosigned: Arc<witnessing::Cosigned>) -> Router {
    app(
        node,
        cosigned,
        &ConnectionLimits::default(),
        REQUEST_TIMEOUT,
    )
    .0
}

/// The router of the public interface with another request timeout than [`REQUEST_TIMEOUT`].
pub fn router_with_request_timeout(node: Arc<Node>, request_timeout: Duration) -> Router {
    app(
        node,
        Arc::default(),
        &ConnectionLimits::default(),
        request_timeout,
    )
    .0
}

/// The router, and the metrics it records into (which the connection server adds to).
fn app(
    node: Arc<Node>,
    cosigned: Arc<witnessing::Cosigned>,
    limits: &ConnectionLimits,
    request_timeout: Duration,
) -> (Router, Arc<Metrics>) {
    let (commit_sender, commits) = tokio::sync::watch::channel(node.tree_size());
    node.published().on_commit(Box::new(move |size| {
        commit_sender.send_replace(size);
    }));
    let metrics = Arc::new(Metrics::new(node.clone()));
    let state = AppState(Arc::new(SharedState {
        node,
        metrics: metrics.clone(),
        commits,
        cosigned,
        subscribers: Arc::new(tokio::sync::Semaphore::new(limits.max_event_subscribers)),
        max_event_subscribers: limits.max_event_subscribers,
    }));
    let request_id = axum::http::HeaderName::from_static(REQUEST_ID_HEADER);
    let router = Router::new()
        .route("/v1/commands", post(post_command))
        .route("/v1/node", get(get_node))
        .route("/v1/checkpoint", get(get_checkpoint))
        .route("/v1/checkpoint/cosigned", get(witnessing::get_cosigned))
        .route("/v1/checkpoints", get(get_checkpoints))
        .route("/v1/entries", get(get_entries))
        .route("/v1/entries/{index}", get(get_entry))
        .route("/v1/events", get(events::get_events))
        .route("/v1/programs", get(records::list_programs))
        .route("/v1/vouchers", get(records::list_vouchers))
        .route("/v1/orders", get(records::list_orders))
        .route("/v1/claims", get(records::list_claims))
        .route("/v1/parties/{key}", get(records::get_party))
        .route("/openapi.json", get(openapi::get_openapi))
        .route("/v1/proofs/inclusion", get(get_inclusion_proof))
        .route("/v1/proofs/consistency", get(get_consistency_proof))
        .route("/v1/programs/{program_id}", get(get_program))
        .route("/v1/vouchers/{voucher_id}", get(get_voucher))
        .route("/v1/catalog/listings", get(catalog::get_listings))
        .route(
            "/v1/catalog/listings/{listing_id}",
            get(catalog::get_listing),
        )
        .route("/v1/catalog/demands/{demand_id}", get(catalog::get_demand))
        .route(
            "/v1/catalog/demands/{demand_id}/matches",
            get(catalog::get_demand_matches),
        )
        .route("/v1/orders/{order_id}", get(get_order))
        .route("/v1/order-quote", get(get_order_quote))
        .route("/v1/claims/{order_id}", get(get_claim))
        .route("/v1/fraud-flags", get(get_fraud_flags))
        .route("/v1/settlement/positions", get(get_settlement_positions))
        .route("/healthz", get(healthz))
        .route("/metrics", get(get_metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_metrics,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        // Outside every layer that can answer on its own (the timeout, the router's fallbacks),
        // so that whatever answers, an error is a problem document.
        .layer(middleware::from_fn(problem::every_error_a_problem))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let id = request
                    .headers()
                    .get(REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!(
                    "request",
                    request_id = %id,
                    method = %request.method(),
                    path = %request.uri().path(),
                )
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state);
    (router, metrics)
}

/// Serves the router on `listener` until `shutdown` resolves, then lets the writer finish the
/// commands it already accepted. Connections are held within the default
/// [`ConnectionLimits`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    node: Arc<Node>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, node, ConnectionLimits::default(), shutdown).await
}

/// Like [`serve`], within `limits`.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    node: Arc<Node>,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_app(listener, node, Arc::default(), limits, shutdown).await
}

/// Serves the router of `node` (with the cosigned checkpoints of its witnesses in `cosigned`)
/// within `limits`, then shuts the node down.
pub(crate) async fn serve_app(
    listener: tokio::net::TcpListener,
    node: Arc<Node>,
    cosigned: Arc<witnessing::Cosigned>,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    limits
        .check()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let (app, metrics) = app(node.clone(), cosigned, &limits, REQUEST_TIMEOUT);
    connections::serve(listener, app, metrics, limits, shutdown).await?;
    tokio::task::spawn_blocking(move || node.shutdown())
        .await
        .expect("shutdown task");
    Ok(())
}

/// Connections the kernel holds for the node before it accepts them (capped by the kernel's
/// `net.core.somaxconn`). The standard library's and tokio's 128 overflow when a few hundred
/// clients connect at once: the overflowing connections' SYNs are dropped and retried a second
/// later.
pub const LISTEN_BACKLOG: u32 = 1024;

/// Listens on `address` (`host:port`; the first of its addresses that can be bound) with a
/// backlog of [`LISTEN_BACKLOG`] connections.
pub async fn listen(address: &str) -> std::io::Result<tokio::net::TcpListener> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host(address).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket
            .bind(addr)
            .and_then(|()| socket.listen(LISTEN_BACKLOG))
        {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{address}` names no address to listen on"),
        )
    }))
}

/// A listener whose connections send each answer as soon as it is written (`TCP_NODELAY`):
/// axum's `serve` leaves Nagle's algorithm on, which can hold a small write back until the
/// client acknowledges the one before.
pub fn without_delay(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    fn no_delay(stream: &mut tokio::net::TcpStream) {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
    }
    axum::serve::ListenerExt::tap_io(listener, no_delay as fn(&mut tokio::net::TcpStream))
}

async fn record_metrics(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .record(&route, response.status().as_u16(), started.elapsed());
    response
}

async fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "no such endpoint; see /openapi.json",
    )
}

async fn method_not_allowed(request: Request) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!(
            "{} is not an operation of {}; see the `Allow` header and /openapi.json",
            request.method(),
            request.uri().path()
        ),
    )
}

/// Path parameters, whose rejection (a segment that is not UTF-8 once percent-decoded, or not
/// of the parameter's type) is a problem document rather than axum's plain text.
pub struct ProblemPath<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ProblemPath<T> {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ProblemPath(p.0))
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid-path", e.body_text()))
    }
}

/// Query parameters, whose rejection is a problem document rather than axum's plain text.
pub struct ProblemQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ProblemQuery<T> {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ProblemQuery(q.0))
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid-query", e.body_text()))
    }
}

/// Submit a signed command.
///
/// The body is a DSSE envelope (`payloadType` `application/vnd.vledger.command+json`) whose
/// payload is `{"v":1,"type":...,"region":...,"signer":...,"nonce":...,"body":...}`, signed by
/// `signer`; `type` and `body` are one of the `Command` schemas. The answer comes once the
/// command is durable: 201 with a signed receipt, or 200 with a receipt of the original entry
/// (the same index, leaf hash, time and command hash) when the same command was already
/// accepted under the same (signer, nonce).
#[utoipa::path(post, path = "/v1/commands", tag = "commands",
    request_body(content = DsseEnvelope, content_type = "application/json"),
    responses(
        (status = 201, description = "Accepted and durable", body = CommandAccepted),
        (status = 200, description = "A repeat of an accepted command: a receipt of its original entry", body = CommandAccepted),
        (status = 400, description = "Malformed envelope, payload or body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "The signature does not verify", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The signer is unknown, revoked, suspended or not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The command names a record that does not exist", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A conflict: the record exists, or the nonce was used for another command", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the envelope limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Wrong payloadType", body = Problem, content_type = "application/problem+json"),
        (status = 421, description = "The command is for another region", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A domain rule refused the command", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The writer is busy or stopping; retry", body = Problem, content_type = "application/problem+json"),
    ))]
async fn post_command(State(state): State<AppState>, body: Body) -> Result<Response, Problem> {
    // Read one byte past the limit so that "too large" is told apart from "exactly at the limit".
    let bytes =
        axum::body::to_bytes(body, MAX_ENVELOPE_BYTES + 1)
            .await
            .map_err(|_| {
                Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!("the request body is over the {MAX_ENVELOPE_BYTES}-byte limit of one envelope"),
        )
            })?;
    let envelope = VerifiedEnvelope::parse_and_verify(&bytes)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    state
        .node
        .submit(envelope, Box::new(move |answer| drop(tx.send(answer))));
    let accepted = rx.await.map_err(|_| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            "the writer stopped",
        )
    })??;
    let receipt = state.node.receipt(&accepted);
    let status = if accepted.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let body = CommandAccepted {
        receipt,
        checkpoint: accepted.checkpoint.to_string(),
        replayed: accepted.replayed,
    };
    Ok((status, Json(body)).into_response())
}

/// The node's region, log origin and keys, and its tree size.
#[utoipa::path(get, path = "/v1/node", tag = "log",
    responses((status = 200, description = "The node", body = NodeInfo)))]
async fn get_node(State(state): State<AppState>) -> Json<NodeInfo> {
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
async fn get_checkpoint(State(state): State<AppState>) -> Response {
    let note = state.node.checkpoint();
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        note.to_string(),
    )
        .into_response()
}

pub use vledger_domain::limits::MAX_CHECKPOINTS_PAGE;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct CheckpointsQuery {
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
async fn get_checkpoints(
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
struct EntriesQuery {
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
async fn get_entries(
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
async fn get_entry(
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
struct InclusionQuery {
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
async fn get_inclusion_proof(
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
struct ConsistencyQuery {
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
async fn get_consistency_proof(
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

fn record_id(text: String, what: &str) -> Result<RecordId, Problem> {
    RecordId::try_from(text).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-path",
            format!("{what}: {e}"),
        )
    })
}

fn read_failure(e: vledger_domain::StateError) -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "storage-failure",
        e.to_string(),
    )
}

/// Reads one record named by a path id: 400 `invalid-path` for a malformed id, 404 with
/// `missing_code` when there is no such record.
fn read_record<'s, T>(
    state: &'s AppState,
    raw_id: String,
    what: &str,
    missing_code: &str,
    load: impl FnOnce(&CommittedState<'s>, &RecordId) -> Result<Option<T>, vledger_domain::StateError>,
) -> Result<Json<T>, Problem> {
    let id = record_id(raw_id, what)?;
    load(&state.node.state(), &id)
        .map_err(read_failure)?
        .map(Json)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                missing_code,
                format!("{what} `{id}` does not exist"),
            )
        })
}

/// The program with its terms and budget buckets.
#[utoipa::path(get, path = "/v1/programs/{program_id}", tag = "records",
    params(("program_id" = RecordId, Path, description = "The program's id")),
    responses(
        (status = 200, description = "The program with its terms and budget buckets", body = ProgramRecord),
        (status = 400, description = "The id is not a valid record id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such record", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_program(
    State(state): State<AppState>,
    ProblemPath(id): ProblemPath<String>,
) -> Result<Json<ProgramRecord>, Problem> {
    read_record(&state, id, "program", "program-not-found", load_program)
}

/// The voucher with its balance.
#[utoipa::path(get, path = "/v1/vouchers/{voucher_id}", tag = "records",
    params(("voucher_id" = RecordId, Path, description = "The voucher's id")),
    responses(
        (status = 200, description = "The voucher with its balance", body = VoucherRecord),
        (status = 400, description = "The id is not a valid record id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such record", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_voucher(
    State(state): State<AppState>,
    ProblemPath(id): ProblemPath<String>,
) -> Result<Json<VoucherRecord>, Problem> {
    read_record(&state, id, "voucher", "voucher-not-found", load_voucher)
}

/// The order with its installments, escrow and evidence.
#[utoipa::path(get, path = "/v1/orders/{order_id}", tag = "records",
    params(("order_id" = RecordId, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The order with its installments, escrow and evidence", body = OrderRecord),
        (status = 400, description = "The id is not a valid record id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such record", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_order(
    State(state): State<AppState>,
    ProblemPath(id): ProblemPath<String>,
) -> Result<Json<OrderRecord>, Problem> {
    read_record(&state, id, "order", "order-not-found", load_order)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct QuoteQuery {
    /// The voucher that would pay the subsidised share.
    voucher: RecordId,
    /// The listing ordered.
    listing: RecordId,
    /// The order's price in minor units (at most the listing's price).
    price: AmountMinor,
}

/// The voucher share an order would get now, and the limit that binds.
///
/// Computed by the same rules as `order.place`, for the voucher's holder, on the node's clock
/// and its latest state: an order placed next with the same voucher, listing and price gets
/// this share unless something changes in between. A refusal is the problem `order.place`
/// would answer.
#[utoipa::path(get, path = "/v1/order-quote", tag = "records", params(QuoteQuery),
    responses(
        (status = 200, description = "The share, the enterprise's part and the binding limit", body = OrderQuote),
        (status = 400, description = "A parameter is not valid", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such voucher or listing", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An order at this price would be refused (the problem names the rule)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_order_quote(
    State(state): State<AppState>,
    ProblemQuery(q): ProblemQuery<QuoteQuery>,
) -> Result<Json<OrderQuote>, Problem> {
    state
        .node
        .quote_order(&q.voucher, &q.listing, q.price)
        .map(Json)
        .map_err(|e| match e {
            vledger_domain::ApplyError::Rejected(r) => {
                Problem::from(vledger_node::writer::SubmitError::Rejected(r))
            }
            vledger_domain::ApplyError::State(e) => read_failure(e),
        })
}

/// The claim of the order with its reviews.
#[utoipa::path(get, path = "/v1/claims/{order_id}", tag = "records",
    params(("order_id" = RecordId, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The claim of the order with its reviews", body = ClaimRecord),
        (status = 400, description = "The id is not a valid record id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such record", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_claim(
    State(state): State<AppState>,
    ProblemPath(id): ProblemPath<String>,
) -> Result<Json<ClaimRecord>, Problem> {
    read_record(&state, id, "claim of order", "claim-not-found", load_claim)
}

use vledger_domain::limits::{MAX_FLAGS_PAGE, MAX_SETTLEMENT_POSITIONS};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct FlagsQuery {
    /// Only flags raised by entries after this index.
    #[serde(default, deserialize_with = "params::opt_int64")]
    after_index: Option<u64>,
    /// 1 to 500 (the default); values below 256 are raised to 256.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// Fraud flags raised for regulators, oldest first.
#[utoipa::path(get, path = "/v1/fraud-flags", tag = "records", params(FlagsQuery),
    responses(
        (status = 200, description = "A page of flags", body = FraudFlagsPage),
        (status = 400, description = "A parameter is not valid", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_fraud_flags(
    State(state): State<AppState>,
    ProblemQuery(q): ProblemQuery<FlagsQuery>,
) -> Result<Json<FraudFlagsPage>, Problem> {
    let limit = match q.limit {
        None => MAX_FLAGS_PAGE,
        Some(n) if (1..=MAX_FLAGS_PAGE).contains(&n) => n,
        Some(n) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-query",
                format!("limit {n} must be between 1 and {MAX_FLAGS_PAGE}"),
            ))
        }
    };
    let page =
        queries::fraud_flags(&state.node.state(), q.after_index, limit).map_err(read_failure)?;
    Ok(Json(FraudFlagsPage {
        flags: page.flags,
        next_after_index: page.next_after_index,
    }))
}

/// What each region owes another from cross-region payouts it advanced.
#[utoipa::path(get, path = "/v1/settlement/positions", tag = "records",
    responses((status = 200, description = "Every open position", body = Vec<SettlementPosition>)))]
async fn get_settlement_positions(
    State(state): State<AppState>,
) -> Result<Json<Vec<SettlementPosition>>, Problem> {
    queries::settlement_positions(&state.node.state(), MAX_SETTLEMENT_POSITIONS)
        .map(Json)
        .map_err(read_failure)
}

/// Whether the node is up and can write, with its tree size.
///
/// While its store cannot write (a full disk, say), the node answers 503 `storage-failure`
/// here, and refuses commands with `storage-failure`; it keeps trying the store and answers
/// 200 again once a write succeeds, without a restart.
#[utoipa::path(get, path = "/healthz", tag = "operation",
    responses(
        (status = 200, description = "The node is up and its store writes", body = Health),
        (status = 503, description = "The store cannot write: commands are refused until it can", body = Problem, content_type = "application/problem+json"),
    ))]
async fn healthz(State(state): State<AppState>) -> Result<Json<Health>, Problem> {
    if let Some(reason) = state.node.storage_failure() {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage-failure",
            format!("the store cannot write, so commands are refused: {reason}"),
        ));
    }
    Ok(Json(Health {
        status: "ok".into(),
        tree_size: state.node.tree_size(),
    }))
}

/// Prometheus metrics: requests, latency, writer queue depth, batches, commit time, tree size.
#[utoipa::path(get, path = "/metrics", tag = "operation",
    responses((status = 200, description = "Prometheus text format (version 0.0.4)", body = String, content_type = "text/plain")))]
async fn get_metrics(State(state): State<AppState>) -> Response {
    let text = state.metrics.render();
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}
