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
        super::commands::post_command,
        super::log::get_node,
        super::federation::get_federation,
        super::log::get_checkpoint,
        super::witnessing::get_cosigned,
        super::log::get_checkpoints,
        super::log::get_entries,
        super::log::get_entry,
        super::log::get_inclusion_proof,
        super::log::get_consistency_proof,
        super::events::get_events,
        super::records::list_programs,
        super::records::get_program,
        super::records::list_vouchers,
        super::records::get_voucher,
        super::records::list_orders,
        super::records::get_order,
        super::records::get_order_quote,
        super::records::list_claims,
        super::records::get_claim,
        super::records::get_party,
        super::records::get_fraud_flags,
        super::records::get_settlement_positions,
        super::records::list_settlement_statements,
        super::records::get_settlement_statement,
        super::records::get_settlement_draft,
        super::catalog::get_search,
        super::catalog::get_listings,
        super::catalog::get_listing,
        super::catalog::get_demand,
        super::catalog::get_demand_matches,
        super::tiles::get_checkpoint,
        super::tiles::operations::hash_tile,
        super::tiles::operations::partial_hash_tile,
        super::tiles::operations::entry_bundle,
        super::tiles::operations::partial_entry_bundle,
        super::healthz,
        super::get_metrics,
        get_openapi,
    ),
    components(schemas(
        vledger_domain::Command,
        vledger_domain::Event,
        super::events::StreamedEvent,
        super::Problem,
    )),
    tags(
        (name = "commands", description = "Signed commands in"),
        (name = "log", description = "The log: entries, checkpoints, proofs, events"),
        (name = "records", description = "The projections: programs, vouchers, orders, claims, parties, flags, settlement"),
        (name = "catalog", description = "The shared resource catalog and demand matching"),
        (name = "federation", description = "The federation map, this node's adoptions and its mirrors"),
        (name = "tiles", description = "The log as C2SP tlog-tiles: the checkpoint, hash tiles and entry bundles, at the node's root"),
        (name = "operation", description = "Health, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// The document as served: [`ApiDoc`] with what its annotations cannot state, the form of each
/// message of the event stream (Open API 3.1 describes each event of a `text/event-stream` with
/// its `schema`; `data` is a `StreamedEvent` in JSON, which only `contentSchema` can say).
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes");
    let stream =
        &mut doc["paths"]["/v1/events"]["get"]["responses"]["200"]["content"]["text/event-stream"];
    stream["schema"] = serde_json::json!({
        "type": "object",
        "description": "One message of the stream; comment lines that keep the connection open are not messages.",
        "required": ["id", "event", "data"],
        "properties": {
            "id": {
                "type": "string",
                "description": "`<entry index>.<position of the event in the entry>`",
                "pattern": crate::events::LAST_EVENT_ID_PATTERN,
            },
            "event": {
                "type": "string",
                "description": "The event's type, e.g. `order.placed`",
                "pattern": "^[a-z][a-z0-9_]*(\\.[a-z0-9_]+)+$",
            },
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": { "$ref": "#/components/schemas/StreamedEvent" },
            },
        },
        "additionalProperties": false,
    });
    doc
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operation",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub(crate) async fn get_openapi() -> Response {
    // The document never changes while the node runs: rendered once.
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let json = DOCUMENT.get_or_init(|| document().to_string());
    ([(header::CONTENT_TYPE, "application/json")], json.as_str()).into_response()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::document;
    use crate::events::{LAST_EVENT_ID_PATTERN, MAX_TYPE_FILTER_BYTES};
    use crate::records::MAX_LIST_PAGE;
    use vledger_domain::limits::{
        MAX_CATALOG_PAGE, MAX_CATALOG_QUERY_TEXT_CHARS, MAX_CATEGORY_FILTER_CHARS,
    };
    use vledger_domain::limits::{MAX_CHECKPOINTS_PAGE, MAX_FLAGS_PAGE};
    use vledger_search::query::MAX_QUERY_TEXT_CHARS;
    use vledger_search::MAX_SEARCH_PAGE;

    fn parameter<'a>(doc: &'a Value, path: &str, name: &str) -> &'a Value {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{path} has parameters"))
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path} has a parameter {name}"))
    }

    #[test]
    fn the_documents_bounds_are_the_servers() {
        let doc = document();
        let limits = [
            ("/v1/programs", MAX_LIST_PAGE),
            ("/v1/vouchers", MAX_LIST_PAGE),
            ("/v1/orders", MAX_LIST_PAGE),
            ("/v1/claims", MAX_LIST_PAGE),
            ("/v1/settlement/statements", MAX_LIST_PAGE),
            ("/v1/checkpoints", MAX_CHECKPOINTS_PAGE),
            ("/v1/fraud-flags", MAX_FLAGS_PAGE),
            ("/v1/catalog/listings", MAX_CATALOG_PAGE),
            ("/v1/catalog/demands/{demand_id}/matches", MAX_SEARCH_PAGE),
            ("/v1/catalog/search", MAX_SEARCH_PAGE),
        ];
        for (path, max) in limits {
            let schema = &parameter(&doc, path, "limit")["schema"];
            assert_eq!(schema["minimum"].as_f64(), Some(1.0), "{path}");
            assert_eq!(schema["maximum"].as_f64(), Some(max as f64), "{path}");
        }
        let lengths = [
            (
                "/v1/catalog/listings",
                "category",
                MAX_CATEGORY_FILTER_CHARS,
            ),
            ("/v1/catalog/listings", "q", MAX_CATALOG_QUERY_TEXT_CHARS),
            ("/v1/catalog/search", "q", MAX_QUERY_TEXT_CHARS),
            ("/v1/catalog/search", "category", MAX_CATEGORY_FILTER_CHARS),
            ("/v1/catalog/search", "unit", MAX_CATEGORY_FILTER_CHARS),
            (
                "/v1/catalog/search",
                "cursor",
                crate::catalog::MAX_CURSOR_CHARS,
            ),
            ("/v1/events", "type", MAX_TYPE_FILTER_BYTES),
        ];
        for (path, name, max) in lengths {
            let schema = &parameter(&doc, path, name)["schema"];
            assert_eq!(
                schema["maxLength"].as_u64(),
                Some(max as u64),
                "{path} {name}"
            );
        }
        let payload = &doc["components"]["schemas"]["DsseEnvelope"]["properties"]["payload"];
        assert_eq!(
            payload["maxLength"].as_u64(),
            Some(vledger_domain::limits::MAX_ENVELOPE_BYTES as u64)
        );
        let last_event_id = &parameter(&doc, "/v1/events", "Last-Event-ID")["schema"];
        assert_eq!(
            last_event_id["pattern"],
            format!(
                "^({})?$",
                &LAST_EVENT_ID_PATTERN[1..LAST_EVENT_ID_PATTERN.len() - 1]
            )
        );
    }

    #[test]
    fn each_message_of_the_event_stream_has_a_schema_whose_data_is_a_streamed_event() {
        let doc = document();
        let schema = &doc["paths"]["/v1/events"]["get"]["responses"]["200"]["content"]
            ["text/event-stream"]["schema"];
        assert_eq!(schema["type"], "object");
        let data = &schema["properties"]["data"];
        assert_eq!(data["contentMediaType"], "application/json");
        let target = data["contentSchema"]["$ref"].as_str().unwrap();
        let name = target.strip_prefix("#/components/schemas/").unwrap();
        assert!(doc["components"]["schemas"][name].is_object(), "{target}");
    }

    #[test]
    fn the_tile_operations_take_what_the_tile_layout_parses() {
        use vledger_tlog::tiles::TilePath;
        let doc = document();
        let hashes = "/tile/{level}/{index}.p/{width}";
        let level = &parameter(&doc, hashes, "level")["schema"];
        let width = &parameter(&doc, hashes, "width")["schema"];
        let index = &parameter(&doc, hashes, "index")["schema"];
        assert_eq!(level["minimum"].as_f64(), Some(0.0));
        assert_eq!(level["maximum"].as_f64(), Some(63.0));
        assert_eq!(width["minimum"].as_f64(), Some(1.0));
        assert_eq!(width["maximum"].as_f64(), Some(255.0));
        assert_eq!(index["pattern"], "^[0-9]{3}$");
        // Every value the document admits is a tile path, and the bounds' neighbours are not.
        for (level, width) in [(0, 1), (63, 255), (7, 128)] {
            assert!(TilePath::parse(&format!("tile/{level}/042.p/{width}")).is_ok());
            assert!(TilePath::parse(&format!("tile/{level}/042")).is_ok());
            assert!(TilePath::parse(&format!("tile/entries/042.p/{width}")).is_ok());
        }
        for bad in ["tile/64/042", "tile/0/042.p/0", "tile/0/042.p/256"] {
            assert!(TilePath::parse(bad).is_err(), "{bad}");
        }
        let bytes = &doc["paths"]["/tile/{level}/{index}"]["get"]["responses"]["200"]["content"]
            ["application/octet-stream"]["schema"];
        assert_eq!(bytes["type"], "string");
        assert_eq!(bytes["contentMediaType"], "application/octet-stream");
        for path in [
            "/checkpoint",
            "/tile/{level}/{index}",
            "/tile/entries/{index}",
            "/tile/entries/{index}.p/{width}",
        ] {
            assert!(doc["paths"][path]["get"].is_object(), "{path}");
        }
    }
}
