//! The events commands produce, and their canonical encoding in entries.

use serde::{Deserialize, Serialize};

use super::catalog::{DemandBody, ListingBody, UpdateListingBody};
use super::orders::{Evidence, FraudRule, PaymentPlan};
use super::parties::Role;
use super::programs::ProgramTerms;
use super::settlement::StatementLine;
use crate::limits::MAX_EVENTS_BYTES;
use crate::types::{RecordId, RegionId, TimeMs};
use vledger_tlog::keys::PublicKey;

/// Something that happened, recorded in the entry of the command that caused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type")]
pub enum Event {
    #[serde(rename = "region.founded")]
    RegionFounded {
        region: RegionId,
        region_name: String,
        node_key: PublicKey,
        time_zone: String,
    },
    #[serde(rename = "federation.adopted")]
    RegionAdopted {
        region: RegionId,
        origin: String,
        verifier_key: String,
        size: u64,
        root_hash: String,
    },
    #[serde(rename = "party.registered")]
    PartyRegistered {
        key: PublicKey,
        role: Role,
        home_region: RegionId,
        name: String,
    },
    #[serde(rename = "party.key_revoked")]
    KeyRevoked { key: PublicKey, reason: String },
    #[serde(rename = "program.created")]
    ProgramCreated {
        region: RegionId,
        terms: ProgramTerms,
    },
    #[serde(rename = "enterprise.qualified")]
    EnterpriseQualified {
        program_id: RecordId,
        enterprise: PublicKey,
        expires_at_ms: TimeMs,
    },
    #[serde(rename = "voucher.issued")]
    VoucherIssued {
        voucher_id: RecordId,
        program_id: RecordId,
        holder: PublicKey,
        funding_region: RegionId,
        face_value_minor: u64,
        expires_at_ms: TimeMs,
    },
    #[serde(rename = "voucher.frozen")]
    VoucherFrozen {
        voucher_id: RecordId,
        by: PublicKey,
        reason: String,
    },
    #[serde(rename = "voucher.unfrozen")]
    VoucherUnfrozen {
        voucher_id: RecordId,
        by: PublicKey,
        reason: String,
    },
    #[serde(rename = "voucher.revoked")]
    VoucherRevoked {
        voucher_id: RecordId,
        returned_minor: u64,
        reason: String,
    },
    #[serde(rename = "voucher.expired")]
    VoucherExpired {
        voucher_id: RecordId,
        returned_minor: u64,
    },
    #[serde(rename = "agency.accredited")]
    AgencyAccredited {
        agency: PublicKey,
        expires_at_ms: TimeMs,
    },
    #[serde(rename = "party.suspended")]
    PartySuspended {
        key: PublicKey,
        by: PublicKey,
        reason: String,
    },
    #[serde(rename = "party.reinstated")]
    PartyReinstated {
        key: PublicKey,
        by: PublicKey,
        reason: String,
    },
    /// An agency listed a resource or service in the catalog; `region` is the agency's.
    #[serde(rename = "catalog.listed")]
    ListingAdded {
        agency: PublicKey,
        region: RegionId,
        listing: ListingBody,
    },
    /// The fields named in `update` changed; the others kept their value.
    #[serde(rename = "catalog.updated")]
    ListingUpdated { update: UpdateListingBody },
    #[serde(rename = "catalog.withdrawn")]
    ListingWithdrawn {
        listing_id: RecordId,
        by: PublicKey,
        reason: String,
    },
    /// An enterprise posted a demand; `region` is the enterprise's.
    #[serde(rename = "demand.posted")]
    DemandPosted {
        enterprise: PublicKey,
        region: RegionId,
        demand: DemandBody,
    },
    #[serde(rename = "demand.closed")]
    DemandClosed { demand_id: RecordId },
    #[serde(rename = "order.placed")]
    OrderPlaced {
        order_id: RecordId,
        listing_id: RecordId,
        /// The region whose log holds the listing, when it is another region's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        listing_region: Option<RegionId>,
        voucher_id: RecordId,
        program_id: RecordId,
        enterprise: PublicKey,
        agency: PublicKey,
        agency_region: RegionId,
        category: String,
        price_minor: u64,
        voucher_share_minor: u64,
        enterprise_share_minor: u64,
        year: i32,
        payment: PaymentPlan,
        auto_confirm_after_ms: u64,
    },
    #[serde(rename = "escrow.funded")]
    EscrowFunded {
        order_id: RecordId,
        amount_minor: u64,
        reference: String,
    },
    #[serde(rename = "payment.installment_paid")]
    InstallmentPaid {
        order_id: RecordId,
        installment: u32,
        amount_minor: u64,
        reference: String,
    },
    #[serde(rename = "order.delivered")]
    OrderDelivered {
        order_id: RecordId,
        evidence: Vec<Evidence>,
    },
    #[serde(rename = "order.disputed")]
    OrderDisputed { order_id: RecordId, reason: String },
    /// Delivery confirmed (by the enterprise, by an admin's dispute decision, or automatically);
    /// an escrow's held funds are released to the agency.
    #[serde(rename = "order.confirmed")]
    OrderConfirmed { order_id: RecordId, automatic: bool },
    /// The order ends unfulfilled; an escrow's held funds are refunded, the voucher share returns.
    #[serde(rename = "order.cancelled")]
    OrderCancelled { order_id: RecordId, reason: String },
    #[serde(rename = "claim.submitted")]
    ClaimSubmitted {
        order_id: RecordId,
        amount_minor: u64,
    },
    /// Approved at a level below the last.
    #[serde(rename = "claim.reviewed")]
    ClaimReviewed {
        order_id: RecordId,
        level: u8,
        reviewer: PublicKey,
        note: String,
    },
    /// Approved at the last level; the public notice period starts.
    #[serde(rename = "claim.approved")]
    ClaimApproved {
        order_id: RecordId,
        level: u8,
        reviewer: PublicKey,
        note: String,
        notice_ends_at_ms: TimeMs,
    },
    /// Rejected at a level; the voucher share returns.
    #[serde(rename = "claim.rejected")]
    ClaimRejected {
        order_id: RecordId,
        level: u8,
        reviewer: PublicKey,
        note: String,
    },
    /// Paid; `advanced_by` names the agency's region when it advanced a cross-region payout.
    #[serde(rename = "claim.paid")]
    ClaimPaid {
        order_id: RecordId,
        amount_minor: u64,
        reference: String,
        advanced_by: Option<RegionId>,
    },
    #[serde(rename = "claim.clawed_back")]
    ClaimClawedBack {
        order_id: RecordId,
        receivable_minor: u64,
        reason: String,
    },
    /// A confirmed payment of `amount_minor` against a clawback receivable; `owed_minor` is what
    /// is still owed after it.
    #[serde(rename = "claim.recovered")]
    ClaimRecovered {
        order_id: RecordId,
        amount_minor: u64,
        reference: String,
        owed_minor: u64,
    },
    /// The program's claim deadline passed with no claim on the order: its voucher share goes
    /// back to the voucher, or to the program budget if the voucher has ended.
    #[serde(rename = "order.unclaimed_released")]
    UnclaimedShareReleased {
        order_id: RecordId,
        voucher_id: RecordId,
        amount_minor: u64,
    },
    #[serde(rename = "fraud.flagged")]
    FraudFlagged {
        rule: FraudRule,
        order_id: RecordId,
        program_id: RecordId,
        detail: String,
    },
    /// A settlement statement proposed by the debtor's admin: every open payout of the period
    /// owed to the creditor, with the gross amounts and the net.
    #[serde(rename = "settlement.proposed")]
    StatementProposed {
        statement_id: RecordId,
        debtor: RegionId,
        creditor: RegionId,
        from_ms: TimeMs,
        until_ms: TimeMs,
        lines: Vec<StatementLine>,
        gross_debtor_to_creditor_minor: u64,
        gross_creditor_to_debtor_minor: u64,
        net_minor: u64,
        proposed_by: PublicKey,
    },
    /// A region's admin signed a statement; `in_effect` when both regions have.
    #[serde(rename = "settlement.signed")]
    StatementSigned {
        statement_id: RecordId,
        region: RegionId,
        signer: PublicKey,
        in_effect: bool,
    },
    /// The statement's net was paid: it is closed and its amounts leave the position.
    #[serde(rename = "settlement.paid")]
    StatementPaid {
        statement_id: RecordId,
        amount_minor: u64,
        reference: String,
        by: PublicKey,
    },
    #[serde(rename = "party.affiliation_declared")]
    AffiliationDeclared {
        party: PublicKey,
        controlling_group: Option<String>,
        related_parties: Vec<PublicKey>,
    },
}

/// The canonical bytes of an entry's events: a JSON array in RFC 8785 (JCS) form. Object keys
/// are sorted and no whitespace is written; every number is an integer below 2^53, where JCS
/// and plain integer formatting agree. Written by [`vledger_tlog::canonical_json`] without an
/// intermediate JSON value; debug and self-check builds check every encoding against serde_json's sorted
/// `Value`, the encoding's first definition.
///
/// # Panics
///
/// If the bytes are longer than [`MAX_EVENTS_BYTES`]: [`crate::apply`] refuses a command whose
/// events are (`entry-too-large`), so no accepted command's are.
pub fn encode_events(events: &[Event]) -> Vec<u8> {
    let bytes = encode_events_unbounded(events);
    assert!(
        bytes.len() <= MAX_EVENTS_BYTES,
        "events of one command over their limit"
    );
    bytes
}

/// [`encode_events`] whatever the length, for [`crate::apply`] to measure before it decides.
pub(crate) fn encode_events_unbounded(events: &[Event]) -> Vec<u8> {
    let bytes =
        vledger_tlog::canonical_json::to_vec(events).expect("events have a canonical encoding");
    vledger_tlog::self_check_eq!(
        bytes,
        serde_json::to_vec(&serde_json::to_value(events).expect("events serialize"))
            .expect("values serialize"),
        "the canonical encoding of events differs from their sorted JSON value's"
    );
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_jcs_with_sorted_keys() {
        let key = vledger_tlog::keys::SigningKey::generate(&mut rand::rngs::OsRng).public_key();
        let bytes = encode_events(&[Event::KeyRevoked {
            key,
            reason: "lost \"laptop\"".into(),
        }]);
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(
            text,
            format!(
                r#"[{{"key":"{}","reason":"lost \"laptop\"","type":"party.key_revoked"}}]"#,
                key.to_base64()
            )
        );
    }
}
