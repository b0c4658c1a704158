//! The witness's HTTP interface (C2SP tlog-witness): `POST /add-checkpoint` mapped to
//! [`Witness::add_checkpoint`], each outcome to the status the spec names.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use vledger_offline::witness::{AddOutcome, Witness, MAX_ADD_CHECKPOINT_BYTES};

/// The witness's router.
pub fn witness_router(witness: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::extract::DefaultBodyLimit::max(
            MAX_ADD_CHECKPOINT_BYTES,
        ))
        .with_state(witness)
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: String) -> Response {
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let outcome = tokio::task::spawn_blocking(move || witness.add_checkpoint(&body, now_s))
        .await
        .expect("witness task");
    let text = |status: StatusCode, body: String| {
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response()
    };
    match outcome {
        AddOutcome::Cosigned(lines) => text(StatusCode::OK, lines),
        AddOutcome::StaleOldSize(size) => (
            StatusCode::CONFLICT,
            [(header::CONTENT_TYPE, "text/x.tlog.size")],
            format!("{size}\n"),
        )
            .into_response(),
        AddOutcome::Fork { reason, evidence } => text(
            StatusCode::CONFLICT,
            format!("fork: {reason}; evidence saved as {}\n", evidence.display()),
        ),
        AddOutcome::BadProof { reason, evidence } => text(
            StatusCode::UNPROCESSABLE_ENTITY,
            match evidence {
                Some(path) => format!(
                    "{reason}; it shows a fork, evidence saved as {}\n",
                    path.display()
                ),
                None => format!("{reason}\n"),
            },
        ),
        AddOutcome::UnknownOrigin(origin) => text(
            StatusCode::NOT_FOUND,
            format!("this witness does not follow log `{origin}`\n"),
        ),
        AddOutcome::Forbidden(reason) => text(StatusCode::FORBIDDEN, format!("{reason}\n")),
        AddOutcome::Malformed(reason) => text(StatusCode::BAD_REQUEST, format!("{reason}\n")),
    }
}
