//! Every reason the state machine refuses a command, each with a stable code that the API turns
//! into an RFC 9457 problem `type` (`urn:vledger:problem:<code>`).

use vledger_tlog::keys::KeyError;

/// The word the JSON uses for a state (a status enum's serde name, such as `awaiting_funds`), for
/// messages that name the state a record is in: a client reads the same word in the record.
pub(crate) fn state_word<T: serde::Serialize + std::fmt::Debug>(state: &T) -> String {
    match serde_json::to_value(state) {
        Ok(serde_json::Value::String(word)) => word,
        _ => format!("{state:?}"),
    }
}

/// Who a command must be signed by and who signed it: what a refusal of the permission table
/// says, e.g. "`order.confirm` must be signed by the order's enterprise; the signer is an
/// enterprise that is not the order's enterprise".
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("`{command}` must be signed by {required}; the signer is {signer}")]
pub struct Refusal {
    /// The command type, e.g. `order.confirm`.
    pub command: &'static str,
    /// Who may sign it, in words: "an admin or a regulator", "the order's enterprise".
    pub required: String,
    /// Who signed it, in words: "an agency", "an enterprise that is not the voucher's holder".
    pub signer: String,
}

/// A refused command. The code of each variant is stable: clients match on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("command type `{0}` is unknown")]
    UnknownCommandType(String),
    #[error("command body is not valid: {0}")]
    MalformedBody(String),
    #[error("the signer's key is not registered in this region")]
    UnknownSigner,
    #[error("the signer's key was revoked at entry {revoked_at}")]
    SignerRevoked { revoked_at: u64 },
    #[error("the signer's party is suspended")]
    SignerSuspended,
    /// The signer is not one that [`crate::permissions`] admits for the command.
    #[error("{0}")]
    NotAuthorized(Refusal),
    #[error("the region has no genesis entry yet; the first command must be `region.genesis`")]
    GenesisRequired,
    #[error("the region already has its genesis entry")]
    GenesisAlreadyDone,
    #[error("genesis must be signed by the node's own key")]
    GenesisSignerNotNode,
    #[error("key is not acceptable: {0}")]
    WeakKey(KeyError),
    #[error("a party with this key is already registered")]
    PartyExists,
    #[error("no party with this key is registered")]
    PartyNotFound,
    #[error("this key is already revoked")]
    KeyAlreadyRevoked,
    #[error("the node's own key cannot be revoked by a command")]
    CannotRevokeNodeKey,
    #[error("this is the region's last active admin; register another admin first")]
    LastAdmin,
    /// A record that lives in its party's home log (a party, a listing, a demand) sent to the
    /// node of another region.
    #[error("{record} lives in the log of its home region `{home_region}`; this node serves `{node_region}`: send the command to `{home_region}`'s node")]
    HomeRegionMismatch {
        record: &'static str,
        node_region: String,
        home_region: String,
    },
    #[error("federation.adopt: {0}")]
    InvalidAdoption(String),
    #[error("the signer is {role} of region `{home_region}`; a party of another region may act here only as an agency, an enterprise or an escrow provider, as an admin of a statement's creditor region signing it, or as an admin of the region advancing a claim's payout paying it")]
    ForeignAuthority { home_region: String, role: String },
    #[error("role `node` is held only by the node's own key")]
    NodeRoleReserved,
    #[error("field `{field}` is not valid: {reason}")]
    InvalidField { field: &'static str, reason: String },
    /// A value of the right JSON type outside its documented bounds, found while parsing the
    /// body: `field` is its path in the body, e.g. `payment.installments[0].due_at_ms`.
    #[error("field `{field}` is not valid: {reason}")]
    InvalidValue { field: String, reason: String },
    #[error("the party must have role {needed}; it is {actual}")]
    WrongPartyRole {
        needed: &'static str,
        actual: String,
    },
    #[error("the party's key is revoked")]
    PartyInactive,
    #[error("program `{0}` already exists")]
    ProgramExists(String),
    #[error("program `{0}` does not exist")]
    ProgramNotFound(String),
    #[error("program `{program_id}` is outside its validity window")]
    ProgramNotOpen { program_id: String },
    #[error("the enterprise is not qualified for this program")]
    NotQualified,
    #[error("the enterprise's qualification for this program has expired")]
    QualificationExpired,
    #[error("the program's unissued budget is {available_minor}; {requested_minor} was asked for")]
    BudgetExhausted {
        available_minor: u64,
        requested_minor: u64,
    },
    #[error("the {cap} cap is {limit_minor}; this needs {requested_minor}")]
    CapExceeded {
        cap: &'static str,
        limit_minor: u64,
        requested_minor: u64,
    },
    #[error("voucher `{0}` already exists")]
    VoucherExists(String),
    #[error("voucher `{0}` does not exist")]
    VoucherNotFound(String),
    #[error("voucher `{voucher_id}` is {status}")]
    VoucherNotActive { voucher_id: String, status: String },
    #[error("the voucher is already frozen")]
    AlreadyFrozen,
    #[error("the voucher is not frozen")]
    NotFrozen,
    #[error("the voucher expires at {expires_at_ms}, which the node's time has not reached")]
    NotYetExpired { expires_at_ms: u64 },
    #[error("the party is suspended")]
    PartySuspended,
    #[error("the agency is not accredited (or its accreditation has expired)")]
    AgencyNotAccredited,
    #[error("order `{0}` already exists")]
    OrderExists(String),
    #[error("order `{0}` does not exist")]
    OrderNotFound(String),
    #[error("order `{order_id}` is {status}; this command does not apply")]
    OrderWrongState { order_id: String, status: String },
    /// `order.place` signed by an enterprise that does not hold the voucher.
    #[error("{0}")]
    NotVoucherHolder(Refusal),
    #[error("the voucher is frozen")]
    VoucherFrozen,
    #[error("the program allows a single use per voucher and this voucher is in use")]
    VoucherAlreadyUsed,
    #[error("listing `{0}` does not exist")]
    ListingNotFound(String),
    #[error("listing `{0}` is withdrawn")]
    ListingWithdrawn(String),
    #[error("listing `{0}` already exists")]
    ListingExists(String),
    /// A listing changed or withdrawn by a party the permission table does not admit.
    #[error("{0}")]
    NotListingOwner(Refusal),
    #[error("demand `{0}` already exists")]
    DemandExists(String),
    #[error("demand `{0}` does not exist")]
    DemandNotFound(String),
    #[error("demand `{0}` is closed")]
    DemandClosed(String),
    /// A demand closed by another party than the enterprise that posted it.
    #[error("{0}")]
    NotDemandOwner(Refusal),
    #[error("category `{category}` is not eligible under the program")]
    CategoryNotEligible { category: String },
    #[error("currency {got} does not match the program's {expected}")]
    CurrencyMismatch { expected: String, got: String },
    #[error("the program may not be spent in region `{region}`")]
    RegionNotAllowed { region: String },
    #[error("the enterprise and the agency are related parties")]
    RelatedParties,
    #[error("no subsidy is left: the {limit} limit is used up")]
    NoSubsidyLeft { limit: &'static str },
    #[error("the payment plan adds up to {planned_minor}; the enterprise's share is {enterprise_share_minor}")]
    PaymentPlanMismatch {
        planned_minor: u64,
        enterprise_share_minor: u64,
    },
    #[error("the order is not paid through escrow")]
    NotAnEscrowOrder,
    #[error("the escrow is {status}; this command does not apply")]
    EscrowWrongState { status: String },
    #[error("the escrow must be funded with exactly {expected_minor}, not {got_minor}")]
    EscrowAmountMismatch { expected_minor: u64, got_minor: u64 },
    #[error("installment {installment} does not exist")]
    InstallmentNotFound { installment: u32 },
    #[error("installment {installment} is already acknowledged")]
    InstallmentAlreadyPaid { installment: u32 },
    #[error("not due until {due_at_ms}")]
    NotYetDue { due_at_ms: u64 },
    #[error("payments were already acknowledged; resolve through a dispute instead")]
    PaymentsRecorded,
    #[error("order `{0}` already has a claim")]
    ClaimExists(String),
    #[error("order `{0}` has no claim")]
    ClaimNotFound(String),
    #[error("delivery of the order is not confirmed")]
    DeliveryNotConfirmed,
    #[error("the enterprise's own share is not fully paid")]
    EnterpriseShareUnpaid,
    #[error("the program's claim deadline ({deadline_ms}) has passed")]
    ClaimDeadlinePassed { deadline_ms: u64 },
    #[error("the claim is {status}; this command does not apply")]
    ClaimWrongState { status: String },
    #[error("the claim waits for review level {expected}")]
    WrongReviewLevel { expected: u8 },
    #[error("each review level needs a different reviewer")]
    SameReviewer,
    #[error("the public notice period runs until {ends_at_ms}")]
    NoticePeriodRunning { ends_at_ms: u64 },
    #[error("the party is already suspended")]
    AlreadySuspended,
    #[error("the party is not suspended")]
    NotSuspended,
    #[error("the price {price_minor} is above the listing's price {listing_price_minor}")]
    PriceAboveListing {
        price_minor: u64,
        listing_price_minor: u64,
    },
    #[error("the order's voucher share was already released")]
    ShareAlreadyReleased,
    #[error("the receivable still owed is {owed_minor}; {requested_minor} cannot be recovered")]
    RecoveryExceedsReceivable {
        owed_minor: u64,
        requested_minor: u64,
    },
    #[error("statement `{0}` already exists")]
    StatementExists(String),
    #[error("no statement `{0}`")]
    StatementNotFound(String),
    #[error("the statement is {status}; this command does not apply")]
    StatementWrongState { status: String },
    #[error("region `{region}` has already signed this statement")]
    StatementAlreadySigned { region: String },
    /// A statement that does not net the positions it claims to net.
    #[error("the statement does not match the positions: {0}")]
    StatementMismatch(String),
    /// The command's events would make an entry too long for an entry bundle (docs/FORMAT.md
    /// §3): nothing of it is recorded.
    #[error(
        "the command's events take {events_bytes} bytes; an entry records at most \
         {max_events_bytes} bytes of events (entries are at most {max_entry_bytes} bytes)",
        max_entry_bytes = crate::limits::MAX_ENTRY_BYTES
    )]
    EntryTooLarge {
        events_bytes: usize,
        max_events_bytes: usize,
    },
}

impl Rejection {
    /// The stable code, used as the last part of the problem `type`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownCommandType(_) => "unknown-command-type",
            Self::MalformedBody(_) => "malformed-body",
            Self::UnknownSigner => "unknown-signer",
            Self::SignerRevoked { .. } => "signer-revoked",
            Self::SignerSuspended => "signer-suspended",
            Self::NotAuthorized(_) => "not-authorized",
            Self::GenesisRequired => "genesis-required",
            Self::GenesisAlreadyDone => "genesis-already-done",
            Self::GenesisSignerNotNode => "genesis-signer-not-node",
            Self::WeakKey(_) => "weak-key",
            Self::PartyExists => "party-exists",
            Self::PartyNotFound => "party-not-found",
            Self::KeyAlreadyRevoked => "key-already-revoked",
            Self::CannotRevokeNodeKey => "cannot-revoke-node-key",
            Self::LastAdmin => "last-admin",
            Self::HomeRegionMismatch { .. } => "home-region-mismatch",
            Self::NodeRoleReserved => "node-role-reserved",
            Self::InvalidAdoption(_) => "invalid-adoption",
            Self::ForeignAuthority { .. } => "foreign-authority",
            Self::InvalidField { .. } | Self::InvalidValue { .. } => "invalid-field",
            Self::WrongPartyRole { .. } => "wrong-party-role",
            Self::PartyInactive => "party-inactive",
            Self::ProgramExists(_) => "program-exists",
            Self::ProgramNotFound(_) => "program-not-found",
            Self::ProgramNotOpen { .. } => "program-not-open",
            Self::NotQualified => "not-qualified",
            Self::QualificationExpired => "qualification-expired",
            Self::BudgetExhausted { .. } => "budget-exhausted",
            Self::CapExceeded { .. } => "cap-exceeded",
            Self::VoucherExists(_) => "voucher-exists",
            Self::VoucherNotFound(_) => "voucher-not-found",
            Self::VoucherNotActive { .. } => "voucher-not-active",
            Self::AlreadyFrozen => "already-frozen",
            Self::NotFrozen => "not-frozen",
            Self::NotYetExpired { .. } => "not-yet-expired",
            Self::PartySuspended => "party-suspended",
            Self::AgencyNotAccredited => "agency-not-accredited",
            Self::OrderExists(_) => "order-exists",
            Self::OrderNotFound(_) => "order-not-found",
            Self::OrderWrongState { .. } => "order-wrong-state",
            Self::NotVoucherHolder(_) => "not-voucher-holder",
            Self::VoucherFrozen => "voucher-frozen",
            Self::VoucherAlreadyUsed => "voucher-already-used",
            Self::ListingNotFound(_) => "listing-not-found",
            Self::ListingWithdrawn(_) => "listing-withdrawn",
            Self::ListingExists(_) => "listing-exists",
            Self::NotListingOwner(_) => "not-listing-owner",
            Self::DemandExists(_) => "demand-exists",
            Self::DemandNotFound(_) => "demand-not-found",
            Self::DemandClosed(_) => "demand-closed",
            Self::NotDemandOwner(_) => "not-demand-owner",
            Self::CategoryNotEligible { .. } => "category-not-eligible",
            Self::CurrencyMismatch { .. } => "currency-mismatch",
            Self::RegionNotAllowed { .. } => "region-not-allowed",
            Self::RelatedParties => "related-parties",
            Self::NoSubsidyLeft { .. } => "no-subsidy-left",
            Self::PaymentPlanMismatch { .. } => "payment-plan-mismatch",
            Self::NotAnEscrowOrder => "not-an-escrow-order",
            Self::EscrowWrongState { .. } => "escrow-wrong-state",
            Self::EscrowAmountMismatch { .. } => "escrow-amount-mismatch",
            Self::InstallmentNotFound { .. } => "installment-not-found",
            Self::InstallmentAlreadyPaid { .. } => "installment-already-paid",
            Self::NotYetDue { .. } => "not-yet-due",
            Self::PaymentsRecorded => "payments-recorded",
            Self::ClaimExists(_) => "claim-exists",
            Self::ClaimNotFound(_) => "claim-not-found",
            Self::DeliveryNotConfirmed => "delivery-not-confirmed",
            Self::EnterpriseShareUnpaid => "enterprise-share-unpaid",
            Self::ClaimDeadlinePassed { .. } => "claim-deadline-passed",
            Self::ClaimWrongState { .. } => "claim-wrong-state",
            Self::WrongReviewLevel { .. } => "wrong-review-level",
            Self::SameReviewer => "same-reviewer",
            Self::NoticePeriodRunning { .. } => "notice-period-running",
            Self::AlreadySuspended => "already-suspended",
            Self::NotSuspended => "not-suspended",
            Self::PriceAboveListing { .. } => "price-above-listing",
            Self::ShareAlreadyReleased => "share-already-released",
            Self::RecoveryExceedsReceivable { .. } => "recovery-exceeds-receivable",
            Self::EntryTooLarge { .. } => "entry-too-large",
            Self::StatementExists(_) => "statement-exists",
            Self::StatementNotFound(_) => "statement-not-found",
            Self::StatementWrongState { .. } => "statement-wrong-state",
            Self::StatementAlreadySigned { .. } => "statement-already-signed",
            Self::StatementMismatch(_) => "statement-mismatch",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::state_word;
    use crate::claims::ClaimStatus;
    use crate::orders::EscrowStatus;
    use crate::vouchers::VoucherStatus;

    #[test]
    fn a_state_is_named_by_its_json_word() {
        assert_eq!(state_word(&EscrowStatus::AwaitingFunds), "awaiting_funds");
        assert_eq!(state_word(&ClaimStatus::InReview), "in_review");
        assert_eq!(state_word(&ClaimStatus::InNotice), "in_notice");
        assert_eq!(state_word(&ClaimStatus::ClawedBack), "clawed_back");
        assert_eq!(state_word(&VoucherStatus::Revoked), "revoked");
    }
}
