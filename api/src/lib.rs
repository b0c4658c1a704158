//! vledger's HTTP service on axum: commands in, receipts, checkpoints, entries and proofs out.
//!
//! Handlers translate between HTTP and [`vledger_node::node::Node`]; they hold no rules.

pub mod catalog;
pub mod commands;
pub mod connections;
pub mod events;
pub mod federation;
pub mod log;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod problem;
pub mod records;
pub mod tiles;
pub mod witness_service;
pub mod witnessing;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, MatchedPath, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use vledger_node::node::Node;

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
    /// The other regions of the federation map and their mirrors (none for a node alone).
    pub federation: Arc<federation::Federation>,
    /// The catalog's search index, following the log.
    pub catalog: Arc<vledger_search::CatalogIndex>,
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
        NodeServices {
            cosigned,
            ..Default::default()
        },
        &ConnectionLimits::default(),
        REQUEST_TIMEOUT,
    )
    .0
}

/// The router of the public interface with another request timeout than [`REQUEST_TIMEOUT`].
pub fn router_with_request_timeout(node: Arc<Node>, request_timeout: Duration) -> Router {
    app(
        node,
        NodeServices::default(),
        &ConnectionLimits::default(),
        request_timeout,
    )
    .0
}

/// The router, and the metrics it records into (which the connection server adds to).
fn app(
    node: Arc<Node>,
    services: NodeServices,
    limits: &ConnectionLimits,
    request_timeout: Duration,
) -> (Router, Arc<Metrics>) {
    let NodeServices {
        cosigned,
        federation,
        catalog,
    } = services;
    let catalog = catalog.unwrap_or_else(|| {
        vledger_search::CatalogIndex::start(&node, None)
            .expect("an index in memory opens and its indexer starts")
    });
    let (commit_sender, commits) = tokio::sync::watch::channel(node.tree_size());
    node.published().on_commit(Box::new(move |size| {
        commit_sender.send_replace(size);
    }));
    let metrics = Arc::new(Metrics::new(
        node.clone(),
        federation.clone(),
        catalog.clone(),
    ));
    let state = AppState(Arc::new(SharedState {
        node,
        metrics: metrics.clone(),
        commits,
        cosigned,
        subscribers: Arc::new(tokio::sync::Semaphore::new(limits.max_event_subscribers)),
        max_event_subscribers: limits.max_event_subscribers,
        federation,
        catalog,
    }));
    let request_id = axum::http::HeaderName::from_static(REQUEST_ID_HEADER);
    let router = Router::new()
        .route("/v1/commands", post(commands::post_command))
        .route("/v1/node", get(log::get_node))
        .route("/v1/federation", get(federation::get_federation))
        .route("/v1/checkpoint", get(log::get_checkpoint))
        .route("/v1/checkpoint/cosigned", get(witnessing::get_cosigned))
        .route("/v1/checkpoints", get(log::get_checkpoints))
        .route("/v1/entries", get(log::get_entries))
        .route("/v1/entries/{index}", get(log::get_entry))
        .route("/v1/events", get(events::get_events))
        .route("/v1/programs", get(records::list_programs))
        .route("/v1/vouchers", get(records::list_vouchers))
        .route("/v1/orders", get(records::list_orders))
        .route("/v1/claims", get(records::list_claims))
        .route("/v1/parties/{key}", get(records::get_party))
        .route("/openapi.json", get(openapi::get_openapi))
        .route("/v1/proofs/inclusion", get(log::get_inclusion_proof))
        .route("/v1/proofs/consistency", get(log::get_consistency_proof))
        .route("/v1/programs/{program_id}", get(records::get_program))
        .route("/v1/vouchers/{voucher_id}", get(records::get_voucher))
        .route("/v1/catalog/search", get(catalog::get_search))
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
        .route("/v1/orders/{order_id}", get(records::get_order))
        .route("/v1/order-quote", get(records::get_order_quote))
        .route("/v1/claims/{order_id}", get(records::get_claim))
        .route("/v1/fraud-flags", get(records::get_fraud_flags))
        .route(
            "/v1/settlement/positions",
            get(records::get_settlement_positions),
        )
        .route(
            "/v1/settlement/statements",
            get(records::list_settlement_statements),
        )
        .route(
            "/v1/settlement/statements/{statement_id}",
            get(records::get_settlement_statement),
        )
        .route("/v1/settlement/draft", get(records::get_settlement_draft))
        .route("/checkpoint", get(tiles::get_checkpoint))
        .route("/tile/{*path}", get(tiles::get_tile))
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
    serve_app(listener, node, NodeServices::default(), limits, shutdown).await
}

/// What a served node runs beside its HTTP interface.
#[derive(Default)]
pub struct NodeServices {
    /// The latest checkpoint its witnesses cosigned (see [`witnessing`]).
    pub cosigned: Arc<witnessing::Cosigned>,
    /// The mirrors of the other regions of its federation (see [`federation`]).
    pub federation: Arc<federation::Federation>,
    /// The catalog's search index (in memory when none is given: built from the state at
    /// start; `vledger serve` keeps it on disk beside the store).
    pub catalog: Option<Arc<vledger_search::CatalogIndex>>,
}

/// Serves the router of `node` with its `services` within `limits`, then stops the mirrors and
/// shuts the node down.
pub async fn serve_app(
    listener: tokio::net::TcpListener,
    node: Arc<Node>,
    services: NodeServices,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    limits
        .check()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let federation = services.federation.clone();
    let (app, metrics) = app(node.clone(), services, &limits, REQUEST_TIMEOUT);
    connections::serve(listener, app, metrics, limits, shutdown).await?;
    tokio::task::spawn_blocking(move || federation.stop())
        .await
        .expect("mirror stop task");
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
