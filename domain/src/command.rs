//! The commands of the state machine, parsed from a payload's `type` and `body`.

use serde::{Deserialize, Serialize};

use super::catalog::{
    CloseDemandBody, DemandBody, ListingBody, UpdateListingBody, WithdrawListingBody,
};
use super::claims::{
    ClawbackBody, PayClaimBody, RecoverClaimBody, ReviewClaimBody, SubmitClaimBody,
};
use super::federation::AdoptBody;
use super::orders::{
    AcknowledgePaymentBody, DeliverBody, FundEscrowBody, OrderActionBody, PlaceOrderBody,
    ReleaseUnclaimedBody, ResolveDisputeBody,
};
use super::parties::Role;
use super::programs::{ProgramTerms, QualifyBody};
use super::settlement::{ProposeStatementBody, RecordStatementPaymentBody, SignStatementBody};
use super::standing::{AccreditBody, AffiliationBody, SuspendBody};
use super::vouchers::{ExpireVoucherBody, IssueVoucherBody, VoucherActionBody};
use super::Rejection;
use crate::types::RegionId;
use vledger_tlog::keys::PublicKey;

/// A command the state machine understands. The serde tag is the payload's `type`.
///
/// Who may sign each command is stated once, in [`crate::permissions`]; the comments here say
/// what a command does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", content = "body")]
pub enum Command {
    /// The region's first entry: founds the region and registers its first admin.
    #[serde(rename = "region.genesis")]
    Genesis(GenesisBody),
    /// Registers a party (key, role, home region).
    #[serde(rename = "party.register")]
    RegisterParty(RegisterPartyBody),
    /// Revokes a key: it can never sign again.
    #[serde(rename = "party.revoke_key")]
    RevokeKey(RevokeKeyBody),
    /// Creates a voucher program with its budget and rules.
    #[serde(rename = "program.create")]
    CreateProgram(ProgramTerms),
    /// Qualifies an enterprise for a program, until a date.
    #[serde(rename = "enterprise.qualify")]
    QualifyEnterprise(QualifyBody),
    /// Issues a voucher to a qualified enterprise against a program's budget.
    #[serde(rename = "voucher.issue")]
    IssueVoucher(IssueVoucherBody),
    /// Freezes a voucher: it cannot be spent, and no claim on its orders approved or paid, until
    /// unfrozen.
    #[serde(rename = "voucher.freeze")]
    FreezeVoucher(VoucherActionBody),
    /// Lifts a freeze.
    #[serde(rename = "voucher.unfreeze")]
    UnfreezeVoucher(VoucherActionBody),
    /// Revokes a voucher; its unspent value returns to the budget.
    #[serde(rename = "voucher.revoke")]
    RevokeVoucher(VoucherActionBody),
    /// Expires a voucher past its expiry (the node's clock issues it); its unspent value returns
    /// to the budget.
    #[serde(rename = "voucher.expire")]
    ExpireVoucher(ExpireVoucherBody),
    /// Accredits an agency to serve voucher orders, until a date.
    #[serde(rename = "agency.accredit")]
    AccreditAgency(AccreditBody),
    /// Suspends a party: it may not act or be ordered from.
    #[serde(rename = "party.suspend")]
    SuspendParty(SuspendBody),
    /// Lifts a suspension.
    #[serde(rename = "party.reinstate")]
    ReinstateParty(SuspendBody),
    /// Declares a party's controlling group and related parties.
    #[serde(rename = "party.declare_affiliation")]
    DeclareAffiliation(AffiliationBody),
    /// Lists a resource or service in a pool of the shared catalog.
    #[serde(rename = "catalog.list")]
    AddListing(ListingBody),
    /// Changes a listing's price, title, description, category or tags.
    #[serde(rename = "catalog.update")]
    UpdateListing(UpdateListingBody),
    /// Withdraws a listing from the catalog.
    #[serde(rename = "catalog.withdraw")]
    WithdrawListing(WithdrawListingBody),
    /// Posts what an enterprise needs, for the catalog to match.
    #[serde(rename = "demand.post")]
    PostDemand(DemandBody),
    /// Closes a demand.
    #[serde(rename = "demand.close")]
    CloseDemand(CloseDemandBody),
    /// Orders a listed service, paying with a voucher and a payment plan.
    #[serde(rename = "order.place")]
    PlaceOrder(PlaceOrderBody),
    /// Cancels an order before delivery.
    #[serde(rename = "order.cancel")]
    CancelOrder(OrderActionBody),
    /// Attests that the enterprise's share arrived in escrow and is held.
    #[serde(rename = "escrow.fund")]
    FundEscrow(FundEscrowBody),
    /// Acknowledges an installment paid directly.
    #[serde(rename = "payment.acknowledge")]
    AcknowledgePayment(AcknowledgePaymentBody),
    /// Records delivery with evidence hashes.
    #[serde(rename = "order.deliver")]
    DeliverOrder(DeliverBody),
    /// Confirms delivery (escrow is released).
    #[serde(rename = "order.confirm")]
    ConfirmOrder(OrderActionBody),
    /// Confirms a delivered order whose confirmation period passed (the node's clock issues it).
    #[serde(rename = "order.auto_confirm")]
    AutoConfirmOrder(OrderActionBody),
    /// Disputes a delivery (escrow is frozen).
    #[serde(rename = "order.dispute")]
    DisputeOrder(OrderActionBody),
    /// Settles a dispute: release or refund.
    #[serde(rename = "dispute.resolve")]
    ResolveDispute(ResolveDisputeBody),
    /// Claims a confirmed order's voucher share.
    #[serde(rename = "claim.submit")]
    SubmitClaim(SubmitClaimBody),
    /// Reviews a claim at one level; each level needs a different reviewer.
    #[serde(rename = "claim.review")]
    ReviewClaim(ReviewClaimBody),
    /// Records the payout of an approved claim after its notice period.
    #[serde(rename = "claim.pay")]
    PayClaim(PayClaimBody),
    /// Turns a paid claim found fraudulent into a clawback receivable.
    #[serde(rename = "claim.clawback")]
    ClawbackClaim(ClawbackBody),
    /// Releases the voucher share of an order left unclaimed past the program's claim deadline
    /// (the node's clock issues it): to the voucher, or to the program budget if the voucher
    /// has ended.
    #[serde(rename = "order.release_unclaimed")]
    ReleaseUnclaimed(ReleaseUnclaimedBody),
    /// Records money recovered from a clawed-back claim's receivable.
    #[serde(rename = "claim.recover")]
    RecoverClaim(RecoverClaimBody),
    /// Adopts a newer verified state of another region (the node's mirror issues it): later
    /// decisions read that region's records as of this checkpoint.
    #[serde(rename = "federation.adopt")]
    Adopt(AdoptBody),
    /// Proposes a settlement statement: the open payouts a creditor region advanced for this
    /// region's claims in a period, netted.
    #[serde(rename = "settlement.propose")]
    ProposeStatement(ProposeStatementBody),
    /// Signs a statement for the signer's region; it takes effect when both regions have.
    #[serde(rename = "settlement.sign")]
    SignStatement(SignStatementBody),
    /// Records the payment of a statement in effect: it closes, and its amounts leave the
    /// position.
    #[serde(rename = "settlement.record_payment")]
    RecordStatementPayment(RecordStatementPaymentBody),
}

/// The type of a command without its body, one for each [`Command`] variant, named by the
/// payload's `type`. [`CommandType::ALL`] lists them all; a test holds the list to the variants
/// serde knows, so none can be left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CommandType {
    Genesis,
    RegisterParty,
    RevokeKey,
    CreateProgram,
    QualifyEnterprise,
    IssueVoucher,
    FreezeVoucher,
    UnfreezeVoucher,
    RevokeVoucher,
    ExpireVoucher,
    AccreditAgency,
    SuspendParty,
    ReinstateParty,
    DeclareAffiliation,
    AddListing,
    UpdateListing,
    WithdrawListing,
    PostDemand,
    CloseDemand,
    PlaceOrder,
    CancelOrder,
    FundEscrow,
    AcknowledgePayment,
    DeliverOrder,
    ConfirmOrder,
    AutoConfirmOrder,
    DisputeOrder,
    ResolveDispute,
    SubmitClaim,
    ReviewClaim,
    PayClaim,
    ClawbackClaim,
    ReleaseUnclaimed,
    RecoverClaim,
    Adopt,
    ProposeStatement,
    SignStatement,
    RecordStatementPayment,
}

impl CommandType {
    /// Every command type, in the order of [`Command`]'s variants.
    pub const ALL: [CommandType; 38] = {
        use CommandType::*;
        [
            Genesis,
            RegisterParty,
            RevokeKey,
            CreateProgram,
            QualifyEnterprise,
            IssueVoucher,
            FreezeVoucher,
            UnfreezeVoucher,
            RevokeVoucher,
            ExpireVoucher,
            AccreditAgency,
            SuspendParty,
            ReinstateParty,
            DeclareAffiliation,
            AddListing,
            UpdateListing,
            WithdrawListing,
            PostDemand,
            CloseDemand,
            PlaceOrder,
            CancelOrder,
            FundEscrow,
            AcknowledgePayment,
            DeliverOrder,
            ConfirmOrder,
            AutoConfirmOrder,
            DisputeOrder,
            ResolveDispute,
            SubmitClaim,
            ReviewClaim,
            PayClaim,
            ClawbackClaim,
            ReleaseUnclaimed,
            RecoverClaim,
            Adopt,
            ProposeStatement,
            SignStatement,
            RecordStatementPayment,
        ]
    };

    /// The payload's `type` for this command, e.g. `order.confirm`.
    pub const fn name(self) -> &'static str {
        use CommandType::*;
        match self {
            Genesis => "region.genesis",
            RegisterParty => "party.register",
            RevokeKey => "party.revoke_key",
            CreateProgram => "program.create",
            QualifyEnterprise => "enterprise.qualify",
            IssueVoucher => "voucher.issue",
            FreezeVoucher => "voucher.freeze",
            UnfreezeVoucher => "voucher.unfreeze",
            RevokeVoucher => "voucher.revoke",
            ExpireVoucher => "voucher.expire",
            AccreditAgency => "agency.accredit",
            SuspendParty => "party.suspend",
            ReinstateParty => "party.reinstate",
            DeclareAffiliation => "party.declare_affiliation",
            AddListing => "catalog.list",
            UpdateListing => "catalog.update",
            WithdrawListing => "catalog.withdraw",
            PostDemand => "demand.post",
            CloseDemand => "demand.close",
            PlaceOrder => "order.place",
            CancelOrder => "order.cancel",
            FundEscrow => "escrow.fund",
            AcknowledgePayment => "payment.acknowledge",
            DeliverOrder => "order.deliver",
            ConfirmOrder => "order.confirm",
            AutoConfirmOrder => "order.auto_confirm",
            DisputeOrder => "order.dispute",
            ResolveDispute => "dispute.resolve",
            SubmitClaim => "claim.submit",
            ReviewClaim => "claim.review",
            PayClaim => "claim.pay",
            ClawbackClaim => "claim.clawback",
            ReleaseUnclaimed => "order.release_unclaimed",
            RecoverClaim => "claim.recover",
            Adopt => "federation.adopt",
            ProposeStatement => "settlement.propose",
            SignStatement => "settlement.sign",
            RecordStatementPayment => "settlement.record_payment",
        }
    }

    /// The command type a payload's `type` names, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl std::fmt::Display for CommandType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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
        serde_path_to_error::deserialize(serde::de::value::MapAccessDeserializer::new(tagged))
            .map_err(body_rejection)
    }

    /// Every command type this node accepts, by name, in the order of [`CommandType::ALL`].
    pub const TYPES: [&'static str; CommandType::ALL.len()] = {
        let mut names = [""; CommandType::ALL.len()];
        let mut i = 0;
        while i < names.len() {
            names[i] = CommandType::ALL[i].name();
            i += 1;
        }
        names
    };

    /// This command's type.
    pub const fn command_type(&self) -> CommandType {
        use CommandType as T;
        match self {
            Command::Genesis(_) => T::Genesis,
            Command::RegisterParty(_) => T::RegisterParty,
            Command::RevokeKey(_) => T::RevokeKey,
            Command::CreateProgram(_) => T::CreateProgram,
            Command::QualifyEnterprise(_) => T::QualifyEnterprise,
            Command::IssueVoucher(_) => T::IssueVoucher,
            Command::FreezeVoucher(_) => T::FreezeVoucher,
            Command::UnfreezeVoucher(_) => T::UnfreezeVoucher,
            Command::RevokeVoucher(_) => T::RevokeVoucher,
            Command::ExpireVoucher(_) => T::ExpireVoucher,
            Command::AccreditAgency(_) => T::AccreditAgency,
            Command::SuspendParty(_) => T::SuspendParty,
            Command::ReinstateParty(_) => T::ReinstateParty,
            Command::DeclareAffiliation(_) => T::DeclareAffiliation,
            Command::AddListing(_) => T::AddListing,
            Command::UpdateListing(_) => T::UpdateListing,
            Command::WithdrawListing(_) => T::WithdrawListing,
            Command::PostDemand(_) => T::PostDemand,
            Command::CloseDemand(_) => T::CloseDemand,
            Command::PlaceOrder(_) => T::PlaceOrder,
            Command::CancelOrder(_) => T::CancelOrder,
            Command::FundEscrow(_) => T::FundEscrow,
            Command::AcknowledgePayment(_) => T::AcknowledgePayment,
            Command::DeliverOrder(_) => T::DeliverOrder,
            Command::ConfirmOrder(_) => T::ConfirmOrder,
            Command::AutoConfirmOrder(_) => T::AutoConfirmOrder,
            Command::DisputeOrder(_) => T::DisputeOrder,
            Command::ResolveDispute(_) => T::ResolveDispute,
            Command::SubmitClaim(_) => T::SubmitClaim,
            Command::ReviewClaim(_) => T::ReviewClaim,
            Command::PayClaim(_) => T::PayClaim,
            Command::ClawbackClaim(_) => T::ClawbackClaim,
            Command::ReleaseUnclaimed(_) => T::ReleaseUnclaimed,
            Command::RecoverClaim(_) => T::RecoverClaim,
            Command::Adopt(_) => T::Adopt,
            Command::ProposeStatement(_) => T::ProposeStatement,
            Command::SignStatement(_) => T::SignStatement,
            Command::RecordStatementPayment(_) => T::RecordStatementPayment,
        }
    }
}

/// A value that has the right JSON type but lies outside its type's bounds (a time before 2000,
/// an amount over 2^53, an id of dots, a number too large for its field) is `invalid-field`,
/// naming the field by its path in the body; anything else that does not fit is
/// `malformed-body`.
fn body_rejection(error: serde_path_to_error::Error<serde_json::Error>) -> Rejection {
    let path = error.path().to_string();
    let field = path.strip_prefix("body.").unwrap_or(&path).to_string();
    let reason = error.into_inner().to_string();
    if reason.starts_with("invalid value: ") && field != path {
        Rejection::InvalidValue { field, reason }
    } else if field != path {
        Rejection::MalformedBody(format!("{field}: {reason}"))
    } else {
        Rejection::MalformedBody(reason)
    }
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
    use crate::limits::{MAX_DURATION_MS, MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS};
    use serde_json::{json, Value};

    const KEY: &str = "7UkoxijRwsbq6QM4kFmVYSlZJzpcY/k2NsFGFKyHN9E=";
    const NOW: u64 = 1_767_225_600_000;
    const DAY_MS: u64 = 86_400_000;

    fn program() -> Value {
        json!({
            "program_id": "p", "name": "Vouchers", "kind": "resource_sharing", "currency": "CNY",
            "budget_minor": 1_000_000, "subsidy_ratio_bps": 5000,
            "caps": { "per_voucher_minor": 1, "per_order_minor": 1,
                      "per_enterprise_year_minor": 1, "per_group_year_minor": 1 },
            "eligible_categories": ["testing"], "valid_from_ms": NOW,
            "valid_until_ms": NOW + DAY_MS, "claim_deadline_ms": NOW + 2 * DAY_MS,
            "spend_regions": ["cq"], "cross_region_payer": "agency_region", "use_mode": "multi",
            "review_levels": 1, "notice_period_ms": DAY_MS
        })
    }

    fn order() -> Value {
        json!({
            "order_id": "o", "listing_id": "l", "voucher_id": "v", "price_minor": 100,
            "payment": { "mode": "direct",
                         "installments": [{ "amount_minor": 50, "due_at_ms": NOW }] },
            "auto_confirm_after_ms": DAY_MS
        })
    }

    /// Every integer field of every body, with a valid body around it: (command type, body,
    /// JSON pointer of the field, the field's path in a refusal).
    fn integer_fields() -> Vec<(&'static str, Value, &'static str, &'static str, Bound)> {
        use Bound::*;
        let qualify = json!({ "program_id": "p", "enterprise": KEY, "expires_at_ms": NOW });
        let accredit = json!({ "agency": KEY, "expires_at_ms": NOW });
        let issue = json!({ "voucher_id": "v", "program_id": "p", "holder": KEY,
                            "face_value_minor": 1, "expires_at_ms": NOW });
        let listing = json!({ "listing_id": "l", "pool": "literature", "category": "testing",
                              "title": "T", "description": "D", "price_minor": 1,
                              "currency": "CNY" });
        let update = json!({ "listing_id": "l", "price_minor": 1 });
        let demand = json!({ "demand_id": "d", "pool": "literature", "category": "testing",
                             "title": "T", "description": "D", "budget_max_minor": 1,
                             "currency": "CNY" });
        let escrow = json!({ "order_id": "o", "amount_minor": 1, "reference": "r" });
        let acknowledge = json!({ "order_id": "o", "installment": 0, "reference": "r" });
        let review = json!({ "order_id": "o", "level": 1, "decision": "approve" });
        let escrow_order = json!({
            "order_id": "o", "listing_id": "l", "voucher_id": "v", "price_minor": 100,
            "payment": { "mode": "escrow", "escrow_provider": KEY, "fee_minor": 1 },
            "auto_confirm_after_ms": 0
        });
        vec![
            (
                "program.create",
                program(),
                "/valid_from_ms",
                "valid_from_ms",
                Instant,
            ),
            (
                "program.create",
                program(),
                "/valid_until_ms",
                "valid_until_ms",
                Instant,
            ),
            (
                "program.create",
                program(),
                "/claim_deadline_ms",
                "claim_deadline_ms",
                Instant,
            ),
            (
                "program.create",
                program(),
                "/notice_period_ms",
                "notice_period_ms",
                Duration,
            ),
            (
                "program.create",
                program(),
                "/budget_minor",
                "budget_minor",
                Amount,
            ),
            (
                "program.create",
                program(),
                "/caps/per_voucher_minor",
                "caps.per_voucher_minor",
                Amount,
            ),
            (
                "program.create",
                program(),
                "/caps/per_order_minor",
                "caps.per_order_minor",
                Amount,
            ),
            (
                "program.create",
                program(),
                "/caps/per_enterprise_year_minor",
                "caps.per_enterprise_year_minor",
                Amount,
            ),
            (
                "program.create",
                program(),
                "/caps/per_group_year_minor",
                "caps.per_group_year_minor",
                Amount,
            ),
            (
                "program.create",
                program(),
                "/subsidy_ratio_bps",
                "subsidy_ratio_bps",
                Max(10_000),
            ),
            (
                "program.create",
                program(),
                "/review_levels",
                "review_levels",
                Max(255),
            ),
            (
                "enterprise.qualify",
                qualify,
                "/expires_at_ms",
                "expires_at_ms",
                Instant,
            ),
            (
                "agency.accredit",
                accredit,
                "/expires_at_ms",
                "expires_at_ms",
                Instant,
            ),
            (
                "voucher.issue",
                issue.clone(),
                "/expires_at_ms",
                "expires_at_ms",
                Instant,
            ),
            (
                "voucher.issue",
                issue,
                "/face_value_minor",
                "face_value_minor",
                Amount,
            ),
            (
                "catalog.list",
                listing,
                "/price_minor",
                "price_minor",
                Amount,
            ),
            (
                "catalog.update",
                update,
                "/price_minor",
                "price_minor",
                Amount,
            ),
            (
                "demand.post",
                demand,
                "/budget_max_minor",
                "budget_max_minor",
                Amount,
            ),
            (
                "order.place",
                order(),
                "/price_minor",
                "price_minor",
                Amount,
            ),
            (
                "order.place",
                order(),
                "/auto_confirm_after_ms",
                "auto_confirm_after_ms",
                Duration,
            ),
            (
                "order.place",
                order(),
                "/payment/installments/0/due_at_ms",
                "payment",
                Instant,
            ),
            (
                "order.place",
                order(),
                "/payment/installments/0/amount_minor",
                "payment",
                Amount,
            ),
            (
                "order.place",
                escrow_order,
                "/payment/fee_minor",
                "payment",
                Amount,
            ),
            (
                "escrow.fund",
                escrow,
                "/amount_minor",
                "amount_minor",
                Amount,
            ),
            (
                "payment.acknowledge",
                acknowledge,
                "/installment",
                "installment",
                Max(u32::MAX.into()),
            ),
            ("claim.review", review, "/level", "level", Max(255)),
        ]
    }

    #[derive(Clone, Copy)]
    enum Bound {
        /// An instant: MIN_TIMESTAMP_MS to MAX_TIMESTAMP_MS.
        Instant,
        /// A duration: 0 to MAX_DURATION_MS.
        Duration,
        /// An amount: 0 to 2^53 - 1.
        Amount,
        /// 0 to this.
        Max(u64),
    }

    fn with(body: &Value, pointer: &str, value: Value) -> Value {
        let mut body = body.clone();
        *body.pointer_mut(pointer).expect("the field is in the body") = value;
        body
    }

    #[test]
    fn every_integer_field_is_accepted_at_its_bounds_and_refused_past_them() {
        for (command_type, body, pointer, field, bound) in integer_fields() {
            Command::parse(command_type, &body).unwrap_or_else(|e| panic!("{command_type}: {e}"));
            let (inside, outside): (Vec<u64>, Vec<u64>) = match bound {
                Bound::Instant => (
                    vec![MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS],
                    vec![0, MIN_TIMESTAMP_MS - 1, MAX_TIMESTAMP_MS + 1],
                ),
                Bound::Duration => (vec![0, MAX_DURATION_MS], vec![MAX_DURATION_MS + 1]),
                Bound::Amount => (vec![0, (1 << 53) - 1], vec![1 << 53]),
                Bound::Max(max) => (vec![0, max], vec![max + 1]),
            };
            for value in inside {
                let body = with(&body, pointer, json!(value));
                assert!(
                    Command::parse(command_type, &body).is_ok(),
                    "{command_type} {pointer} = {value} is within its bound"
                );
            }
            for value in outside.into_iter().chain([(1 << 53) + 1, u64::MAX]) {
                let body = with(&body, pointer, json!(value));
                match Command::parse(command_type, &body) {
                    Err(Rejection::InvalidValue { field: f, reason }) => {
                        assert_eq!(f, field, "{command_type} {pointer} = {value}");
                        assert!(reason.contains(&value.to_string()), "{reason}");
                    }
                    other => panic!("{command_type} {pointer} = {value}: {other:?}"),
                }
            }
            // A negative number is outside every bound too.
            let body = with(&body, pointer, json!(-1));
            assert!(matches!(
                Command::parse(command_type, &body),
                Err(Rejection::InvalidValue { .. })
            ));
        }
    }

    #[test]
    fn the_fields_the_issue_names_refuse_numbers_beyond_2_pow_53() {
        let cases = [
            (
                "program.create",
                program(),
                "/valid_until_ms",
                (1u64 << 53) + 1,
            ),
            ("program.create", program(), "/claim_deadline_ms", u64::MAX),
            ("program.create", program(), "/notice_period_ms", u64::MAX),
            (
                "agency.accredit",
                json!({ "agency": KEY, "expires_at_ms": NOW }),
                "/expires_at_ms",
                u64::MAX,
            ),
            ("order.place", order(), "/auto_confirm_after_ms", u64::MAX),
        ];
        for (command_type, body, pointer, value) in cases {
            let refused = Command::parse(command_type, &with(&body, pointer, json!(value)));
            let Err(rejection) = refused else {
                panic!("{command_type} {pointer} = {value} was accepted");
            };
            assert_eq!(rejection.code(), "invalid-field");
            // The detail names the field and the bound.
            let detail = rejection.to_string();
            assert!(detail.contains(&pointer[1..]), "{detail}");
            assert!(
                detail.contains("9999-12-31") || detail.contains("316224000000"),
                "{detail}"
            );
        }
    }

    #[test]
    fn ids_that_a_url_path_would_rewrite_are_refused() {
        let issue = |id: &str| json!({ "voucher_id": id, "program_id": "p", "holder": KEY, "face_value_minor": 1 });
        for id in ["v1", "V-1.2_3", "2026.Q1", "a..b", "x."] {
            assert!(Command::parse("voucher.issue", &issue(id)).is_ok(), "{id}");
        }
        for id in [
            "",
            ".",
            "..",
            "...",
            ".hidden",
            "-v",
            "_v",
            "a/b",
            "a\\b",
            "a%2e",
            "a?b",
            "a#b",
            "a b",
            "a\u{0}b",
            "a\tb",
            "凭证",
            &"v".repeat(65),
        ] {
            match Command::parse("voucher.issue", &issue(id)) {
                Err(Rejection::InvalidValue { field, .. }) => assert_eq!(field, "voucher_id"),
                other => panic!("{id:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_body_that_does_not_fit_is_still_malformed_and_names_where() {
        let body = with(&program(), "/valid_until_ms", json!("tomorrow"));
        match Command::parse("program.create", &body) {
            Err(Rejection::MalformedBody(detail)) => {
                assert!(detail.starts_with("valid_until_ms: "), "{detail}")
            }
            other => panic!("{other:?}"),
        }
    }

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

    #[test]
    fn the_list_of_types_holds_every_variant_in_order() {
        assert_eq!(examples::serde_variants_of_command(), Command::TYPES);
        let mut names: Vec<&str> = Command::TYPES.to_vec();
        names.dedup();
        assert_eq!(names.len(), CommandType::ALL.len());
    }

    #[test]
    fn each_type_is_the_type_of_its_command() {
        for command_type in CommandType::ALL {
            let command = examples::command(command_type);
            assert_eq!(command.command_type(), command_type);
            assert_eq!(
                CommandType::from_name(command_type.name()),
                Some(command_type)
            );
            let json = serde_json::to_value(&command).unwrap();
            assert_eq!(json["type"], command_type.name());
        }
    }
}

/// A well-formed command of each type, and the names serde gives an enum's variants, for the
/// tests that hold the lists of types and roles to the enums.
#[cfg(test)]
pub(crate) mod examples {
    use serde::Deserialize;
    use serde_json::{json, Value};

    use super::{Command, CommandType};

    const KEY: &str = "7UkoxijRwsbq6QM4kFmVYSlZJzpcY/k2NsFGFKyHN9E=";
    const NOW: u64 = 1_767_225_600_000;
    const DAY_MS: u64 = 86_400_000;

    /// A command of `command_type` whose body parses.
    pub(crate) fn command(command_type: CommandType) -> Command {
        let body = body(command_type);
        Command::parse(command_type.name(), &body).unwrap_or_else(|e| panic!("{command_type}: {e}"))
    }

    fn body(command_type: CommandType) -> Value {
        use CommandType as T;
        let order = json!({ "order_id": "o" });
        let reason = json!({ "order_id": "o", "reason": "r" });
        let voucher = json!({ "voucher_id": "v", "reason": "r" });
        let party = json!({ "key": KEY, "reason": "r" });
        match command_type {
            T::Genesis => json!({ "region_name": "R", "admin_key": KEY, "admin_name": "A" }),
            T::RegisterParty => {
                json!({ "key": KEY, "role": "agency", "home_region": "cq", "name": "P" })
            }
            T::RevokeKey | T::SuspendParty | T::ReinstateParty => party,
            T::CreateProgram => json!({
                "program_id": "p", "name": "Vouchers", "kind": "resource_sharing",
                "currency": "CNY", "budget_minor": 1_000_000, "subsidy_ratio_bps": 5000,
                "caps": { "per_voucher_minor": 1, "per_order_minor": 1,
                          "per_enterprise_year_minor": 1, "per_group_year_minor": 1 },
                "eligible_categories": ["testing"], "valid_from_ms": NOW,
                "valid_until_ms": NOW + DAY_MS, "claim_deadline_ms": NOW + 2 * DAY_MS,
                "spend_regions": ["cq"], "cross_region_payer": "agency_region",
                "use_mode": "multi", "review_levels": 1, "notice_period_ms": DAY_MS
            }),
            T::QualifyEnterprise => {
                json!({ "program_id": "p", "enterprise": KEY, "expires_at_ms": NOW })
            }
            T::IssueVoucher => json!({ "voucher_id": "v", "program_id": "p", "holder": KEY,
                                       "face_value_minor": 1 }),
            T::FreezeVoucher | T::UnfreezeVoucher | T::RevokeVoucher => voucher,
            T::ExpireVoucher => json!({ "voucher_id": "v" }),
            T::AccreditAgency => json!({ "agency": KEY, "expires_at_ms": NOW }),
            T::DeclareAffiliation => json!({ "party": KEY, "controlling_group": "G" }),
            T::AddListing => json!({ "listing_id": "l", "pool": "literature",
                                     "category": "testing", "title": "T", "description": "D",
                                     "price_minor": 1, "currency": "CNY" }),
            T::UpdateListing => json!({ "listing_id": "l", "price_minor": 1 }),
            T::WithdrawListing => json!({ "listing_id": "l", "reason": "r" }),
            T::PostDemand => json!({ "demand_id": "d", "category": "testing", "title": "T",
                                     "description": "D", "currency": "CNY" }),
            T::CloseDemand => json!({ "demand_id": "d" }),
            T::PlaceOrder => json!({
                "order_id": "o", "listing_id": "l", "voucher_id": "v", "price_minor": 100,
                "payment": { "mode": "direct" }, "auto_confirm_after_ms": DAY_MS
            }),
            T::CancelOrder | T::DisputeOrder => reason,
            T::FundEscrow => json!({ "order_id": "o", "amount_minor": 1, "reference": "r" }),
            T::AcknowledgePayment => {
                json!({ "order_id": "o", "installment": 0, "reference": "r" })
            }
            T::DeliverOrder => json!({ "order_id": "o",
                                       "evidence": [{ "kind": "invoice", "sha256": "a".repeat(64) }] }),
            T::ConfirmOrder | T::AutoConfirmOrder | T::SubmitClaim | T::ReleaseUnclaimed => order,
            T::ResolveDispute => json!({ "order_id": "o", "outcome": "refund", "reason": "r" }),
            T::ReviewClaim => json!({ "order_id": "o", "level": 1, "decision": "approve" }),
            T::PayClaim => json!({ "order_id": "o", "reference": "r" }),
            T::ClawbackClaim => reason,
            T::RecoverClaim => json!({ "order_id": "o", "amount_minor": 1, "reference": "r" }),
            T::Adopt => json!({ "region": "sc", "verifier_key": "sc+00000000+AQ==",
                                "checkpoint": "sc\n1\nAA==\n\n" }),
            T::ProposeStatement => json!({ "statement_id": "s", "creditor": "sc",
                "month": "2026-01", "lines": [{ "region": "cq", "log_index": 1,
                    "leaf_hash": "A".repeat(43) + "=", "order_id": "o", "amount_minor": 1,
                    "direction": "debtor_to_creditor" }],
                "gross_debtor_to_creditor_minor": 1, "gross_creditor_to_debtor_minor": 0,
                "net_minor": 1 }),
            T::SignStatement => json!({ "statement_id": "s" }),
            T::RecordStatementPayment => {
                json!({ "statement_id": "s", "amount_minor": 1, "reference": "r" })
            }
        }
    }

    /// The error of a deserializer that only records the variant names serde expected.
    #[derive(Debug)]
    struct Expected(Vec<&'static str>);

    impl std::fmt::Display for Expected {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "expected one of {:?}", self.0)
        }
    }

    impl std::error::Error for Expected {}

    impl serde::de::Error for Expected {
        fn custom<T: std::fmt::Display>(message: T) -> Self {
            panic!("not an unknown variant: {message}")
        }

        fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
            Expected(expected.to_vec())
        }
    }

    /// The variant names of [`Command`] as serde derives them: the `type` values it accepts.
    pub(crate) fn serde_variants_of_command() -> Vec<&'static str> {
        let tagged = serde::de::value::MapDeserializer::<_, Expected>::new(
            [("type", "no such type")].into_iter(),
        );
        Command::deserialize(tagged).unwrap_err().0
    }

    /// The variant names serde derives for a field-less enum.
    pub(crate) fn serde_variants_of<T: for<'de> Deserialize<'de> + std::fmt::Debug>(
    ) -> Vec<&'static str> {
        let name = serde::de::value::StrDeserializer::<Expected>::new("no such variant");
        T::deserialize(name).unwrap_err().0
    }
}
