//! RFC 9457 problem details: one stable `type` per rule broken, `urn:vledger:problem:<code>`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use vledger_ledger::domain::Rejection;
use vledger_ledger::envelope::EnvelopeError;
use vledger_ledger::node::ReadError;
use vledger_ledger::writer::SubmitError;

/// Prefix of every problem `type`.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:vledger:problem:";

/// An RFC 9457 problem, as the API returns it (`application/problem+json`).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
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

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            problem_type: format!("{PROBLEM_TYPE_PREFIX}{code}"),
            title: status.canonical_reason().unwrap_or("error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_string(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry = status == StatusCode::SERVICE_UNAVAILABLE;
        let mut response = (status, axum::Json(self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<EnvelopeError> for Problem {
    fn from(e: EnvelopeError) -> Self {
        let (status, code) = match &e {
            EnvelopeError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body-too-large"),
            EnvelopeError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed-json"),
            EnvelopeError::BadBase64 { .. } => (StatusCode::BAD_REQUEST, "bad-base64"),
            EnvelopeError::WrongPayloadType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "wrong-payload-type")
            }
            EnvelopeError::SignatureCount(_) => (StatusCode::BAD_REQUEST, "signature-count"),
            EnvelopeError::MalformedCommand(_) => (StatusCode::BAD_REQUEST, "malformed-command"),
            EnvelopeError::UnsupportedVersion(_) => {
                (StatusCode::BAD_REQUEST, "unsupported-version")
            }
            EnvelopeError::BadSignerKey(_) => (StatusCode::BAD_REQUEST, "bad-signer-key"),
            EnvelopeError::BadSignature(_) => (StatusCode::UNAUTHORIZED, "bad-signature"),
            EnvelopeError::DuplicateKey { .. } => (StatusCode::BAD_REQUEST, "duplicate-key"),
        };
        Problem::new(status, code, e.to_string())
    }
}

fn rejection_status(rejection: &Rejection) -> StatusCode {
    match rejection {
        Rejection::UnknownSigner
        | Rejection::SignerRevoked { .. }
        | Rejection::NotAuthorized { .. } => StatusCode::FORBIDDEN,
        Rejection::UnknownCommandType(_) | Rejection::MalformedBody(_) => StatusCode::BAD_REQUEST,
        Rejection::PartyExists | Rejection::GenesisAlreadyDone | Rejection::KeyAlreadyRevoked => {
            StatusCode::CONFLICT
        }
        Rejection::PartyNotFound
        | Rejection::ProgramNotFound(_)
        | Rejection::VoucherNotFound(_) => StatusCode::NOT_FOUND,
        Rejection::ProgramExists(_)
        | Rejection::VoucherExists(_)
        | Rejection::AlreadyFrozen
        | Rejection::NotFrozen => StatusCode::CONFLICT,
        Rejection::NotListingOwner | Rejection::NotDemandOwner => StatusCode::FORBIDDEN,
        Rejection::ListingNotFound(_) | Rejection::DemandNotFound(_) => StatusCode::NOT_FOUND,
        Rejection::ListingExists(_) | Rejection::DemandExists(_) => StatusCode::CONFLICT,
        Rejection::ShareAlreadyReleased => StatusCode::CONFLICT,
        Rejection::PriceAboveListing { .. } | Rejection::RecoveryExceedsReceivable { .. } => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

impl From<SubmitError> for Problem {
    fn from(e: SubmitError) -> Self {
        let detail = e.to_string();
        match e {
            SubmitError::Rejected(rejection) => {
                Problem::new(rejection_status(&rejection), rejection.code(), detail)
            }
            SubmitError::NonceReused { .. } => {
                Problem::new(StatusCode::CONFLICT, "nonce-reused", detail)
            }
            SubmitError::WrongRegion { .. } => {
                Problem::new(StatusCode::MISDIRECTED_REQUEST, "wrong-region", detail)
            }
            SubmitError::QueueFull => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "queue-full", detail)
            }
            SubmitError::ShuttingDown => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "shutting-down", detail)
            }
            SubmitError::Storage(_) => {
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "storage-failure", detail)
            }
        }
    }
}

impl From<ReadError> for Problem {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::OutOfRange(d) => Problem::new(StatusCode::BAD_REQUEST, "out-of-range", d),
            ReadError::Storage(d) => {
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "storage-failure", d)
            }
        }
    }
}
