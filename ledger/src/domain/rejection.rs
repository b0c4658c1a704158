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
        }
    }
}
