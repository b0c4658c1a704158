//! `POST /v1/commands`: a signed command in, its receipt out once it is durable.

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::Json;
use vledger_domain::limits::MAX_ENVELOPE_BYTES;
use vledger_wire::envelope::{DsseEnvelope, VerifiedEnvelope};
use vledger_wire::http::CommandAccepted;

use crate::{AppState, Problem};

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
pub(crate) async fn post_command(
    State(state): State<AppState>,
    body: Body,
) -> Result<Response, Problem> {
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
