//! The commands of the state machine, parsed from a payload's `type` and `body`.

use serde::{Deserialize, Serialize};

use super::parties::Role;
use super::programs::{ProgramTerms, QualifyBody};
use super::vouchers::{ExpireVoucherBody, IssueVoucherBody, VoucherActionBody};
use super::Rejection;
use crate::keys::PublicKey;
use crate::types::RegionId;

/// A command the state machine understands. The serde tag is the payload's `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "body")]
pub enum Command {
    /// The region's first entry: founds the region and registers its first admin.
    #[serde(rename = "region.genesis")]
    Genesis(GenesisBody),
    /// A region admin registers a party (key, role, home region).
    #[serde(rename = "party.register")]
    RegisterParty(RegisterPartyBody),
    /// A region admin, or the key's own holder, revokes a key: it can never sign again.
    #[serde(rename = "party.revoke_key")]
    RevokeKey(RevokeKeyBody),
    /// A region admin creates a voucher program with its budget and rules.
    #[serde(rename = "program.create")]
    CreateProgram(ProgramTerms),
    /// A region admin qualifies an enterprise for a program, until a date.
    #[serde(rename = "enterprise.qualify")]
    QualifyEnterprise(QualifyBody),
    /// A region admin issues a voucher to a qualified enterprise against a program's budget.
    #[serde(rename = "voucher.issue")]
    IssueVoucher(IssueVoucherBody),
    /// An admin or regulator freezes a voucher: it cannot be spent until unfrozen.
    #[serde(rename = "voucher.freeze")]
    FreezeVoucher(VoucherActionBody),
    /// An admin or regulator lifts a freeze.
    #[serde(rename = "voucher.unfreeze")]
    UnfreezeVoucher(VoucherActionBody),
    /// A region admin revokes a voucher; its unspent value returns to the budget.
    #[serde(rename = "voucher.revoke")]
    RevokeVoucher(VoucherActionBody),
    /// The node expires a voucher past its expiry; its unspent value returns to the budget.
    #[serde(rename = "voucher.expire")]
    ExpireVoucher(ExpireVoucherBody),
}

/// Body of `region.genesis`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisBody {
    /// The region's display name, e.g. "重庆市科学技术局".
    pub region_name: String,
    /// The first admin's key.
    pub admin_key: PublicKey,
    /// The first admin's display name.
    pub admin_name: String,
    /// IANA time zone of the region, for calendar-year caps; defaults to Asia/Shanghai.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
}

fn default_time_zone() -> String {
    "Asia/Shanghai".to_string()
}

/// Body of `party.register`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterPartyBody {
    /// The party's key, standard base64 of the 32-byte ed25519 public key. Kept as text here so
    /// that a weak key is refused with its own reason, not as a malformed body.
    pub key: String,
    pub role: Role,
    pub home_region: RegionId,
    pub name: String,
}

/// Body of `party.revoke_key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeKeyBody {
    pub key: PublicKey,
    pub reason: String,
}

impl Command {
    /// Parses a command from a payload's `type` and `body`.
    pub fn parse(command_type: &str, body: &serde_json::Value) -> Result<Self, Rejection> {
        if !Self::TYPES.contains(&command_type) {
            return Err(Rejection::UnknownCommandType(command_type.to_string()));
        }
        let tagged = serde_json::json!({ "type": command_type, "body": body });
        serde_json::from_value(tagged).map_err(|e| Rejection::MalformedBody(e.to_string()))
    }

    /// Every command type this node accepts.
    pub const TYPES: &'static [&'static str] = &[
        "region.genesis",
        "party.register",
        "party.revoke_key",
        "program.create",
        "enterprise.qualify",
        "voucher.issue",
        "voucher.freeze",
        "voucher.unfreeze",
        "voucher.revoke",
        "voucher.expire",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_type_is_a_command() {
        for command_type in Command::TYPES {
            let result = Command::parse(command_type, &serde_json::json!({}));
            assert!(
                matches!(result, Err(Rejection::MalformedBody(_))),
                "{command_type}: {result:?}"
            );
        }
    }
}
