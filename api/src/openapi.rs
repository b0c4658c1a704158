//! The OpenAPI 3.1 document of the public interface, generated from the handlers' annotations
//! and the types they exchange, served at `/openapi.json`.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

/// The OpenAPI document: every path, parameter, body, response and problem.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "vledger",
        description = "An append-only, signed ledger for innovation vouchers shared across regions. \
            Commands are DSSE envelopes signed with ed25519; every accepted command is an entry of \
            an RFC 6962 Merkle tree whose C2SP checkpoints the node signs. Errors are RFC 9457 \
            problems whose `type` is `urn:vledger:problem:<code>`.",
        license(name = "Apache-2.0")
    ),
    paths(
        super::post_command,
        super::get_node,
        super::get_checkpoint,
        super::witnessing::get_cosigned,
        super::get_checkpoints,
        super::get_entries,
        super::get_entry,
        super::get_inclusion_proof,
        super::get_consistency_proof,
        super::events::get_events,
        super::records::list_programs,
        super::get_program,
        super::records::list_vouchers,
        super::get_voucher,
        super::records::list_orders,
        super::get_order,
        super::get_order_quote,
        super::records::list_claims,
        super::get_claim,
        super::records::get_party,
        super::get_fraud_flags,
        super::get_settlement_positions,
        super::catalog::get_listings,
        super::catalog::get_listing,
        super::catalog::get_demand,
        super::catalog::get_demand_matches,
        super::healthz,
        super::get_metrics,
        get_openapi,
    ),
    components(schemas(
        vledger_ledger::domain::Command,
        vledger_ledger::domain::Event,
        super::events::StreamedEvent,
        super::Problem,
    )),
    tags(
        (name = "commands", description = "Signed commands in"),
        (name = "log", description = "The log: entries, checkpoints, proofs, events"),
        (name = "records", description = "The projections: programs, vouchers, orders, claims, parties, flags, settlement"),
        (name = "catalog", description = "The shared resource catalog and demand matching"),
        (name = "operation", description = "Health, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operation",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub(crate) async fn get_openapi() -> Response {
    // The document never changes while the node runs: rendered once.
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let json = DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .expect("the OpenAPI document serializes")
    });
    ([(header::CONTENT_TYPE, "application/json")], json.as_str()).into_response()
}
