//! RFC 9457 problem details: one stable `type` per rule broken, `urn:vledger:problem:<code>`.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use vledger_domain::Rejection;
use vledger_node::node::ReadError;
use vledger_node::writer::SubmitError;
use vledger_wire::envelope::EnvelopeError;
use vledger_wire::http::Problem as ProblemBody;
pub use vledger_wire::http::PROBLEM_TYPE_PREFIX;

/// An RFC 9457 problem, as the API returns it (`application/problem+json`): the body of
/// [`vledger_wire::http::Problem`], answered with its status and content type.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Problem(pub ProblemBody);

impl std::ops::Deref for Problem {
    type Target = ProblemBody;
    fn deref(&self) -> &ProblemBody {
        &self.0
    }
}

impl utoipa::PartialSchema for Problem {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        ProblemBody::schema()
    }
}

impl utoipa::ToSchema for Problem {
    fn name() -> std::borrow::Cow<'static, str> {
        "Problem".into()
    }
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self(ProblemBody {
            problem_type: format!("{PROBLEM_TYPE_PREFIX}{code}"),
            title: status.canonical_reason().unwrap_or("error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_string(),
        })
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry = status == StatusCode::SERVICE_UNAVAILABLE;
        let mut response = (status, axum::Json(self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// The content type of every error the node answers.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

use vledger_domain::limits::MAX_BARE_DETAIL_BYTES;

/// The code of an error answered by a layer around the handlers rather than by a handler (the
/// router's own 405, the request timeout's 408, ...): one per status, `http-<status>` for a
/// status without a name of its own.
pub fn bare_error_code(status: StatusCode) -> std::borrow::Cow<'static, str> {
    let code = match status {
        StatusCode::BAD_REQUEST => "bad-request",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::REQUEST_TIMEOUT => "request-timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "body-too-large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        StatusCode::INTERNAL_SERVER_ERROR => "internal-error",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        other => return format!("http-{}", other.as_u16()).into(),
    };
    code.into()
}

/// Middleware around the whole router: an error answer that is not already a problem document
/// (from axum's router or extractors, the timeout or any other layer) is replaced by one, with
/// the code [`bare_error_code`] gives its status and the original text, if short, as its
/// `detail`. The status and the other headers (`Allow`, `Retry-After`, the request id) stay.
pub async fn every_error_a_problem(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_error = status.is_client_error() || status.is_server_error();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_CONTENT_TYPE.as_bytes());
    if !is_error || is_problem {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_BARE_DETAIL_BYTES)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty());
    let detail = text.unwrap_or_else(|| {
        format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("error")
        )
    });
    let (problem_parts, problem_body) = Problem::new(status, &bare_error_code(status), detail)
        .into_response()
        .into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &problem_parts.headers {
        if name == header::CONTENT_TYPE || !parts.headers.contains_key(name) {
            parts.headers.insert(name, value.clone());
        }
    }
    Response::from_parts(parts, problem_body)
}

/// A state read that failed: the store, not the request, is at fault.
pub(crate) fn read_failure(e: vledger_domain::StateError) -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "storage-failure",
        e.to_string(),
    )
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

/// The HTTP status of each rejection, as docs/FORMAT.md §7 lists it: 403 for who may act, 404 for
/// a record the command names that does not exist, 409 for a conflict with a record's existence
/// or standing, 400 for a command that cannot be read, 422 for the other domain rules. No arm is
/// a default: a new rejection does not compile until it is given its status here.
fn rejection_status(rejection: &Rejection) -> StatusCode {
    use Rejection as R;
    match rejection {
        R::UnknownCommandType(_) | R::MalformedBody(_) => StatusCode::BAD_REQUEST,
        R::UnknownSigner
        | R::SignerRevoked { .. }
        | R::SignerSuspended
        | R::GenesisSignerNotNode
        | R::NotAuthorized(_)
        | R::NotVoucherHolder(_)
        | R::NotListingOwner(_)
        | R::NotDemandOwner(_)
        | R::ForeignAuthority { .. } => StatusCode::FORBIDDEN,
        R::PartyNotFound
        | R::ProgramNotFound(_)
        | R::VoucherNotFound(_)
        | R::OrderNotFound(_)
        | R::ListingNotFound(_)
        | R::DemandNotFound(_)
        | R::ClaimNotFound(_)
        | R::StatementNotFound(_) => StatusCode::NOT_FOUND,
        R::GenesisAlreadyDone
        | R::PartyExists
        | R::KeyAlreadyRevoked
        | R::ProgramExists(_)
        | R::VoucherExists(_)
        | R::AlreadyFrozen
        | R::NotFrozen
        | R::AlreadySuspended
        | R::NotSuspended
        | R::OrderExists(_)
        | R::ListingExists(_)
        | R::DemandExists(_)
        | R::InstallmentAlreadyPaid { .. }
        | R::ClaimExists(_)
        | R::ShareAlreadyReleased
        | R::StatementExists(_)
        | R::StatementAlreadySigned { .. } => StatusCode::CONFLICT,
        R::GenesisRequired
        | R::WeakKey(_)
        | R::CannotRevokeNodeKey
        | R::LastAdmin
        | R::HomeRegionMismatch { .. }
        | R::NodeRoleReserved
        | R::InvalidField { .. }
        | R::WrongPartyRole { .. }
        | R::PartyInactive
        | R::ProgramNotOpen { .. }
        | R::NotQualified
        | R::QualificationExpired
        | R::BudgetExhausted { .. }
        | R::CapExceeded { .. }
        | R::VoucherNotActive { .. }
        | R::NotYetExpired { .. }
        | R::PartySuspended
        | R::AgencyNotAccredited
        | R::OrderWrongState { .. }
        | R::VoucherFrozen
        | R::VoucherAlreadyUsed
        | R::ListingWithdrawn(_)
        | R::DemandClosed(_)
        | R::CategoryNotEligible { .. }
        | R::CurrencyMismatch { .. }
        | R::RegionNotAllowed { .. }
        | R::RelatedParties
        | R::NoSubsidyLeft { .. }
        | R::PaymentPlanMismatch { .. }
        | R::NotAnEscrowOrder
        | R::EscrowWrongState { .. }
        | R::EscrowAmountMismatch { .. }
        | R::InstallmentNotFound { .. }
        | R::NotYetDue { .. }
        | R::PaymentsRecorded
        | R::DeliveryNotConfirmed
        | R::EnterpriseShareUnpaid
        | R::ClaimDeadlinePassed { .. }
        | R::ClaimWrongState { .. }
        | R::WrongReviewLevel { .. }
        | R::SameReviewer
        | R::NoticePeriodRunning { .. }
        | R::InvalidValue { .. }
        | R::PriceAboveListing { .. }
        | R::RecoveryExceedsReceivable { .. }
        | R::InvalidAdoption(_)
        | R::EntryTooLarge { .. }
        | R::StatementWrongState { .. }
        | R::StatementMismatch(_) => StatusCode::UNPROCESSABLE_ENTITY,
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
            // A tree size or index the node has not published (yet): nothing is there.
            ReadError::OutOfRange(d) => Problem::new(StatusCode::NOT_FOUND, "out-of-range", d),
            ReadError::Storage(d) => {
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "storage-failure", d)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vledger_tlog::keys::KeyError;

    /// One row per rejection: its variant, an example of it, its code and its status. The rows
    /// make an exhaustive `match` (no default arm), so a new `Rejection` variant does not compile
    /// until it has a row here, with an example and the status it must get.
    macro_rules! pinned_rejections {
        ($($variant:ident = $example:expr => $code:literal, $status:literal;)*) => {
            /// The code and status pinned for `rejection`'s variant.
            fn pinned(rejection: &Rejection) -> (&'static str, u16) {
                match rejection {
                    $(Rejection::$variant { .. } => ($code, $status),)*
                }
            }

            /// Each row's example, with whether it is of the row's own variant.
            fn examples() -> Vec<(Rejection, bool)> {
                vec![$({
                    let example: Rejection = $example;
                    let own = matches!(example, Rejection::$variant { .. });
                    (example, own)
                },)*]
            }
        };
    }

    fn s() -> String {
        "x".to_string()
    }

    fn refusal() -> vledger_domain::Refusal {
        vledger_domain::Refusal {
            command: "order.confirm",
            required: "the order's enterprise".into(),
            signer: "an agency".into(),
        }
    }

    pinned_rejections! {
        UnknownCommandType = Rejection::UnknownCommandType(s()) => "unknown-command-type", 400;
        MalformedBody = Rejection::MalformedBody(s()) => "malformed-body", 400;
        UnknownSigner = Rejection::UnknownSigner => "unknown-signer", 403;
        SignerRevoked = Rejection::SignerRevoked { revoked_at: 1 } => "signer-revoked", 403;
        SignerSuspended = Rejection::SignerSuspended => "signer-suspended", 403;
        NotAuthorized = Rejection::NotAuthorized(refusal()) => "not-authorized", 403;
        GenesisRequired = Rejection::GenesisRequired => "genesis-required", 422;
        GenesisAlreadyDone = Rejection::GenesisAlreadyDone => "genesis-already-done", 409;
        GenesisSignerNotNode = Rejection::GenesisSignerNotNode => "genesis-signer-not-node", 403;
        WeakKey = Rejection::WeakKey(KeyError::NotOnCurve) => "weak-key", 422;
        PartyExists = Rejection::PartyExists => "party-exists", 409;
        PartyNotFound = Rejection::PartyNotFound => "party-not-found", 404;
        KeyAlreadyRevoked = Rejection::KeyAlreadyRevoked => "key-already-revoked", 409;
        CannotRevokeNodeKey = Rejection::CannotRevokeNodeKey => "cannot-revoke-node-key", 422;
        LastAdmin = Rejection::LastAdmin => "last-admin", 422;
        HomeRegionMismatch = Rejection::HomeRegionMismatch { record: "a party", node_region: s(), home_region: s() } => "home-region-mismatch", 422;
        NodeRoleReserved = Rejection::NodeRoleReserved => "node-role-reserved", 422;
        InvalidAdoption = Rejection::InvalidAdoption(s()) => "invalid-adoption", 422;
        ForeignAuthority = Rejection::ForeignAuthority { home_region: s(), role: s() } => "foreign-authority", 403;
        InvalidField = Rejection::InvalidField { field: "name", reason: s() } => "invalid-field", 422;
        WrongPartyRole = Rejection::WrongPartyRole { needed: "agency", actual: s() } => "wrong-party-role", 422;
        PartyInactive = Rejection::PartyInactive => "party-inactive", 422;
        ProgramExists = Rejection::ProgramExists(s()) => "program-exists", 409;
        ProgramNotFound = Rejection::ProgramNotFound(s()) => "program-not-found", 404;
        ProgramNotOpen = Rejection::ProgramNotOpen { program_id: s() } => "program-not-open", 422;
        NotQualified = Rejection::NotQualified => "not-qualified", 422;
        QualificationExpired = Rejection::QualificationExpired => "qualification-expired", 422;
        BudgetExhausted = Rejection::BudgetExhausted { available_minor: 1, requested_minor: 2 } => "budget-exhausted", 422;
        CapExceeded = Rejection::CapExceeded { cap: "per_voucher", limit_minor: 1, requested_minor: 2 } => "cap-exceeded", 422;
        VoucherExists = Rejection::VoucherExists(s()) => "voucher-exists", 409;
        VoucherNotFound = Rejection::VoucherNotFound(s()) => "voucher-not-found", 404;
        VoucherNotActive = Rejection::VoucherNotActive { voucher_id: s(), status: s() } => "voucher-not-active", 422;
        AlreadyFrozen = Rejection::AlreadyFrozen => "already-frozen", 409;
        NotFrozen = Rejection::NotFrozen => "not-frozen", 409;
        NotYetExpired = Rejection::NotYetExpired { expires_at_ms: 1 } => "not-yet-expired", 422;
        PartySuspended = Rejection::PartySuspended => "party-suspended", 422;
        AgencyNotAccredited = Rejection::AgencyNotAccredited => "agency-not-accredited", 422;
        OrderExists = Rejection::OrderExists(s()) => "order-exists", 409;
        OrderNotFound = Rejection::OrderNotFound(s()) => "order-not-found", 404;
        OrderWrongState = Rejection::OrderWrongState { order_id: s(), status: s() } => "order-wrong-state", 422;
        NotVoucherHolder = Rejection::NotVoucherHolder(refusal()) => "not-voucher-holder", 403;
        VoucherFrozen = Rejection::VoucherFrozen => "voucher-frozen", 422;
        VoucherAlreadyUsed = Rejection::VoucherAlreadyUsed => "voucher-already-used", 422;
        ListingNotFound = Rejection::ListingNotFound(s()) => "listing-not-found", 404;
        ListingWithdrawn = Rejection::ListingWithdrawn(s()) => "listing-withdrawn", 422;
        ListingExists = Rejection::ListingExists(s()) => "listing-exists", 409;
        NotListingOwner = Rejection::NotListingOwner(refusal()) => "not-listing-owner", 403;
        DemandExists = Rejection::DemandExists(s()) => "demand-exists", 409;
        DemandNotFound = Rejection::DemandNotFound(s()) => "demand-not-found", 404;
        DemandClosed = Rejection::DemandClosed(s()) => "demand-closed", 422;
        NotDemandOwner = Rejection::NotDemandOwner(refusal()) => "not-demand-owner", 403;
        CategoryNotEligible = Rejection::CategoryNotEligible { category: s() } => "category-not-eligible", 422;
        CurrencyMismatch = Rejection::CurrencyMismatch { expected: s(), got: s() } => "currency-mismatch", 422;
        RegionNotAllowed = Rejection::RegionNotAllowed { region: s() } => "region-not-allowed", 422;
        RelatedParties = Rejection::RelatedParties => "related-parties", 422;
        NoSubsidyLeft = Rejection::NoSubsidyLeft { limit: "per_voucher" } => "no-subsidy-left", 422;
        PaymentPlanMismatch = Rejection::PaymentPlanMismatch { planned_minor: 1, enterprise_share_minor: 2 } => "payment-plan-mismatch", 422;
        NotAnEscrowOrder = Rejection::NotAnEscrowOrder => "not-an-escrow-order", 422;
        EscrowWrongState = Rejection::EscrowWrongState { status: s() } => "escrow-wrong-state", 422;
        EscrowAmountMismatch = Rejection::EscrowAmountMismatch { expected_minor: 1, got_minor: 2 } => "escrow-amount-mismatch", 422;
        InstallmentNotFound = Rejection::InstallmentNotFound { installment: 1 } => "installment-not-found", 422;
        InstallmentAlreadyPaid = Rejection::InstallmentAlreadyPaid { installment: 1 } => "installment-already-paid", 409;
        NotYetDue = Rejection::NotYetDue { due_at_ms: 1 } => "not-yet-due", 422;
        PaymentsRecorded = Rejection::PaymentsRecorded => "payments-recorded", 422;
        ClaimExists = Rejection::ClaimExists(s()) => "claim-exists", 409;
        ClaimNotFound = Rejection::ClaimNotFound(s()) => "claim-not-found", 404;
        DeliveryNotConfirmed = Rejection::DeliveryNotConfirmed => "delivery-not-confirmed", 422;
        EnterpriseShareUnpaid = Rejection::EnterpriseShareUnpaid => "enterprise-share-unpaid", 422;
        ClaimDeadlinePassed = Rejection::ClaimDeadlinePassed { deadline_ms: 1 } => "claim-deadline-passed", 422;
        ClaimWrongState = Rejection::ClaimWrongState { status: s() } => "claim-wrong-state", 422;
        WrongReviewLevel = Rejection::WrongReviewLevel { expected: 1 } => "wrong-review-level", 422;
        SameReviewer = Rejection::SameReviewer => "same-reviewer", 422;
        NoticePeriodRunning = Rejection::NoticePeriodRunning { ends_at_ms: 1 } => "notice-period-running", 422;
        AlreadySuspended = Rejection::AlreadySuspended => "already-suspended", 409;
        NotSuspended = Rejection::NotSuspended => "not-suspended", 409;
        InvalidValue = Rejection::InvalidValue { field: s(), reason: s() } => "invalid-field", 422;
        PriceAboveListing = Rejection::PriceAboveListing { price_minor: 2, listing_price_minor: 1 } => "price-above-listing", 422;
        ShareAlreadyReleased = Rejection::ShareAlreadyReleased => "share-already-released", 409;
        RecoveryExceedsReceivable = Rejection::RecoveryExceedsReceivable { owed_minor: 1, requested_minor: 2 } => "recovery-exceeds-receivable", 422;
        EntryTooLarge = Rejection::EntryTooLarge { events_bytes: 2, max_events_bytes: 1 } => "entry-too-large", 422;
        StatementExists = Rejection::StatementExists(s()) => "statement-exists", 409;
        StatementNotFound = Rejection::StatementNotFound(s()) => "statement-not-found", 404;
        StatementWrongState = Rejection::StatementWrongState { status: s() } => "statement-wrong-state", 422;
        StatementAlreadySigned = Rejection::StatementAlreadySigned { region: s() } => "statement-already-signed", 409;
        StatementMismatch = Rejection::StatementMismatch(s()) => "statement-mismatch", 422;
    }

    /// The problem codes of docs/FORMAT.md §7 with their statuses: each row of its table names
    /// one or more codes and either one status for all or one status per code.
    fn documented_statuses() -> std::collections::BTreeMap<String, u16> {
        let doc = include_str!("../../docs/FORMAT.md");
        let section = doc
            .split("\n## 7. Problems")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("FORMAT.md has its section 7");
        let mut documented = std::collections::BTreeMap::new();
        for line in section.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let codes: Vec<&str> = cells[1]
                .split(',')
                .map(|c| c.trim().trim_matches('`'))
                .collect();
            let statuses: Vec<u16> = cells[2]
                .split(',')
                .map(|n| n.trim().parse().expect("a status is a number"))
                .collect();
            assert!(
                statuses.len() == 1 || statuses.len() == codes.len(),
                "FORMAT.md §7 row `{line}`: one status, or one per code"
            );
            for (i, code) in codes.iter().enumerate() {
                let status = statuses[if statuses.len() == 1 { 0 } else { i }];
                let earlier = documented.insert(code.to_string(), status);
                assert!(earlier.is_none(), "FORMAT.md §7 lists `{code}` twice");
            }
        }
        documented
    }

    #[test]
    fn every_rejection_answers_the_status_its_row_and_format_md_give_it() {
        let documented = documented_statuses();
        let mut codes = std::collections::BTreeMap::new();
        let mut variants = std::collections::HashSet::new();
        for (rejection, own) in examples() {
            let (code, status) = pinned(&rejection);
            assert!(
                own,
                "the example of row `{code}` is another variant: {rejection:?}"
            );
            assert!(
                variants.insert(std::mem::discriminant(&rejection)),
                "two rows for the variant of {rejection:?}"
            );
            // Two variants may share a code (`invalid-field`: a blank text, a number past its
            // bound) but then also its status.
            let earlier = codes.insert(code, status);
            assert!(
                earlier.is_none_or(|s| s == status),
                "two variants give the code `{code}` different statuses"
            );
            assert_eq!(rejection.code(), code, "{rejection:?}");
            assert_eq!(
                documented.get(code),
                Some(&status),
                "FORMAT.md §7 must give `{code}` status {status}"
            );
            let problem = Problem::from(SubmitError::Rejected(rejection.clone()));
            assert_eq!(problem.status, status, "{rejection:?}");
            assert_eq!(problem.problem_type, format!("urn:vledger:problem:{code}"));
            assert_eq!(problem.code, code);
            assert_eq!(problem.detail, rejection.to_string());
        }
    }
}
