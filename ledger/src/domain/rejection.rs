//! Every reason the state machine refuses a command, each with a stable code that the API turns
//! into an RFC 9457 problem `type` (`urn:vledger:problem:<code>`).

use crate::keys::KeyError;

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
    #[error("only a party with role {needed} may do this; the signer is {actual}")]
    NotAuthorized {
        needed: &'static str,
        actual: String,
    },
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
    #[error("parties are registered in their home region; this node serves `{node_region}`, not `{home_region}`")]
    HomeRegionMismatch {
        node_region: String,
        home_region: String,
    },
    #[error("role `node` is held only by the node's own key")]
    NodeRoleReserved,
    #[error("field `{field}` is not valid: {reason}")]
    InvalidField { field: &'static str, reason: String },
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
}

impl Rejection {
    /// The stable code, used as the last part of the problem `type`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownCommandType(_) => "unknown-command-type",
            Self::MalformedBody(_) => "malformed-body",
            Self::UnknownSigner => "unknown-signer",
            Self::SignerRevoked { .. } => "signer-revoked",
            Self::NotAuthorized { .. } => "not-authorized",
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
            Self::InvalidField { .. } => "invalid-field",
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
        }
    }
}
