//! The commands of the state machine, parsed from a payload's `type` and `body`.

use serde::{Deserialize, Serialize};

use super::catalog::{
    CloseDemandBody, DemandBody, ListingBody, UpdateListingBody, WithdrawListingBody,
};
use super::claims::{
    ClawbackBody, PayClaimBody, RecoverClaimBody, ReviewClaimBody, SubmitClaimBody,
};
use super::orders::{
    AcknowledgePaymentBody, DeliverBody, FundEscrowBody, OrderActionBody, PlaceOrderBody,
    ReleaseUnclaimedBody, ResolveDisputeBody,
};
use super::parties::Role;
use super::programs::{ProgramTerms, QualifyBody};
use super::standing::{AccreditBody, AffiliationBody, SuspendBody};
use super::vouchers::{ExpireVoucherBody, IssueVoucherBody, VoucherActionBody};
use super::Rejection;
use crate::keys::PublicKey;
use crate::types::RegionId;

/// A command the state machine understands. The serde tag is the payload's `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// An admin or regulator freezes a voucher: it cannot be spent, and no claim on its orders
    /// approved or paid, until unfrozen.
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
    /// A region admin accredits an agency to serve voucher orders, until a date.
    #[serde(rename = "agency.accredit")]
    AccreditAgency(AccreditBody),
    /// A regulator or admin suspends a party: it may not act or be ordered from.
    #[serde(rename = "party.suspend")]
    SuspendParty(SuspendBody),
    /// A regulator or admin lifts a suspension.
    #[serde(rename = "party.reinstate")]
    ReinstateParty(SuspendBody),
    /// An admin, or the party itself, declares its controlling group and related parties.
    #[serde(rename = "party.declare_affiliation")]
    DeclareAffiliation(AffiliationBody),
    /// An agency lists a resource or service in a pool of the shared catalog.
    #[serde(rename = "catalog.list")]
    AddListing(ListingBody),
    /// The listing's agency changes its price, title, description, category or tags.
    #[serde(rename = "catalog.update")]
    UpdateListing(UpdateListingBody),
    /// The listing's agency, or an admin of its region, withdraws it from the catalog.
    #[serde(rename = "catalog.withdraw")]
    WithdrawListing(WithdrawListingBody),
    /// An enterprise posts what it needs, for the catalog to match.
    #[serde(rename = "demand.post")]
    PostDemand(DemandBody),
    /// The enterprise closes its demand.
    #[serde(rename = "demand.close")]
    CloseDemand(CloseDemandBody),
    /// An enterprise orders a listed service, paying with a voucher and a payment plan.
    #[serde(rename = "order.place")]
    PlaceOrder(PlaceOrderBody),
    /// The enterprise or agency cancels an order before delivery.
    #[serde(rename = "order.cancel")]
    CancelOrder(OrderActionBody),
    /// The escrow provider attests that the enterprise's share arrived and is held.
    #[serde(rename = "escrow.fund")]
    FundEscrow(FundEscrowBody),
    /// The agency acknowledges an installment paid directly.
    #[serde(rename = "payment.acknowledge")]
    AcknowledgePayment(AcknowledgePaymentBody),
    /// The agency records delivery with evidence hashes.
    #[serde(rename = "order.deliver")]
    DeliverOrder(DeliverBody),
    /// The enterprise confirms delivery (escrow is released).
    #[serde(rename = "order.confirm")]
    ConfirmOrder(OrderActionBody),
    /// The node confirms a delivered order whose confirmation period passed.
    #[serde(rename = "order.auto_confirm")]
    AutoConfirmOrder(OrderActionBody),
    /// The enterprise disputes a delivery (escrow is frozen).
    #[serde(rename = "order.dispute")]
    DisputeOrder(OrderActionBody),
    /// A region admin settles a dispute: release or refund.
    #[serde(rename = "dispute.resolve")]
    ResolveDispute(ResolveDisputeBody),
    /// The agency claims a confirmed order's voucher share.
    #[serde(rename = "claim.submit")]
    SubmitClaim(SubmitClaimBody),
    /// A region admin reviews a claim at one level.
    #[serde(rename = "claim.review")]
    ReviewClaim(ReviewClaimBody),
    /// A region admin records the payout of an approved claim after its notice period.
    #[serde(rename = "claim.pay")]
    PayClaim(PayClaimBody),
    /// An admin or regulator turns a paid claim found fraudulent into a clawback receivable.
    #[serde(rename = "claim.clawback")]
    ClawbackClaim(ClawbackBody),
    /// The node releases the voucher share of an order left unclaimed past the program's claim
    /// deadline: to the voucher, or to the program budget if the voucher has ended.
    #[serde(rename = "order.release_unclaimed")]
    ReleaseUnclaimed(ReleaseUnclaimedBody),
    /// A region admin records money recovered from a clawed-back claim's receivable.
    #[serde(rename = "claim.recover")]
    RecoverClaim(RecoverClaimBody),
}

/// Body of `region.genesis`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
        // The tag is handed over first and the body borrowed: serde then decodes the body
        // straight into its type, without copying it or buffering it until the tag is seen.
        let tagged = TypeThenBody {
            command_type,
            body,
            given: 0,
        };
        Command::deserialize(serde::de::value::MapAccessDeserializer::new(tagged))
            .map_err(|e| Rejection::MalformedBody(e.to_string()))
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
        "agency.accredit",
        "party.suspend",
        "party.reinstate",
        "party.declare_affiliation",
        "catalog.list",
        "catalog.update",
        "catalog.withdraw",
        "demand.post",
        "demand.close",
        "order.place",
        "order.cancel",
        "escrow.fund",
        "payment.acknowledge",
        "order.deliver",
        "order.confirm",
        "order.auto_confirm",
        "order.dispute",
        "dispute.resolve",
        "claim.submit",
        "claim.review",
        "claim.pay",
        "claim.clawback",
        "order.release_unclaimed",
        "claim.recover",
    ];
}

/// A command's `type` and `body` as the map `{"type": …, "body": …}`, tag first.
struct TypeThenBody<'a> {
    command_type: &'a str,
    body: &'a serde_json::Value,
    /// Entries handed over so far.
    given: u8,
}

impl<'a> serde::de::MapAccess<'a> for TypeThenBody<'a> {
    type Error = serde_json::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let key = match self.given {
            0 => "type",
            1 => "body",
            _ => return Ok(None),
        };
        seed.deserialize(serde::de::value::BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'a>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        self.given += 1;
        if self.given == 1 {
            seed.deserialize(serde::de::value::BorrowedStrDeserializer::new(
                self.command_type,
            ))
        } else {
            seed.deserialize(self.body)
        }
    }
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
