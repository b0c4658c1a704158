//! Orders for catalog services, paid partly by a voucher and partly by the enterprise, either
//! directly (in full or in installments acknowledged by the agency) or through a third-party
//! escrow (funded → held → released on confirmation or auto-confirm timeout, refunded on
//! cancellation, frozen while disputed): TigerBeetle's pending / post / void / timeout.
//! Delivery with evidence hashes, confirmation, disputes, and the anti-fraud rules and flags
//! that orders trigger.

use serde::{Deserialize, Serialize};

use super::catalog::{ListingRecord, ListingStatus};

use super::money::AmountMinor;
use super::parties::{load_party, PartyRecord, Role};
use super::programs::{load_program, require_program, ProgramRecord, UseMode};
use super::rejection::state_word;
use super::state::{StateError, StateRead, StateWrite};
use super::vouchers::{
    corrupt, require_voucher, return_to_budget, voucher_key, VoucherRecord, VoucherStatus,
};
use super::{ApplyContext, ApplyError, Event, Rejection};
use crate::limits::{
    MAX_EVIDENCE_ITEMS, MAX_INSTALLMENTS, MAX_REASON_BYTES, MAX_RECENT_PAIR_ORDERS,
    MAX_REFERENCE_BYTES, SPLIT_ORDER_WINDOW_MS,
};
use crate::types::{DurationMs, LogIndex, RecordId, RegionId, TimeMs, TimestampMs};
use vledger_tlog::keys::PublicKey;

/// One planned installment of a direct payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallmentPlan {
    pub amount_minor: AmountMinor,
    pub due_at_ms: TimestampMs,
}

/// How the enterprise pays its own share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum PaymentPlan {
    /// Paid to the agency offline, in one or more installments the agency acknowledges.
    Direct { installments: Vec<InstallmentPlan> },
    /// Paid into a licensed third-party escrow that holds it until delivery is confirmed.
    Escrow {
        escrow_provider: PublicKey,
        fee_minor: AmountMinor,
    },
}

/// How the enterprise will pay its own share, as `order.place` asks for it. A direct plan
/// without `installments` is one installment of the whole enterprise share, due at placement,
/// which the node derives (the share depends on caps the client may not see).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum PaymentRequest {
    /// Paid to the agency offline; `installments` omitted means a single installment.
    Direct {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        installments: Option<Vec<InstallmentPlan>>,
    },
    /// Paid into a licensed third-party escrow that holds it until delivery is confirmed.
    Escrow {
        escrow_provider: PublicKey,
        fee_minor: AmountMinor,
    },
}

impl PaymentRequest {
    /// The plan the order records: a direct plan without installments becomes one installment
    /// of `enterprise_share`, due at `now` (none when the share is zero).
    fn resolve(&self, enterprise_share: u64, now: TimeMs) -> PaymentPlan {
        match self {
            Self::Direct {
                installments: Some(installments),
            } => PaymentPlan::Direct {
                installments: installments.clone(),
            },
            Self::Direct { installments: None } => PaymentPlan::Direct {
                // Node time is always within the instants a body may name; were it not, the
                // plan would hold no installment and placement would refuse it as mismatched.
                installments: AmountMinor::new(enterprise_share)
                    .ok()
                    .filter(|a| !a.is_zero())
                    .zip(TimestampMs::new(now).ok())
                    .map(|(amount_minor, due_at_ms)| InstallmentPlan {
                        amount_minor,
                        due_at_ms,
                    })
                    .into_iter()
                    .collect(),
            },
            Self::Escrow {
                escrow_provider,
                fee_minor,
            } => PaymentPlan::Escrow {
                escrow_provider: *escrow_provider,
                fee_minor: *fee_minor,
            },
        }
    }
}

/// Body of `order.place`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderBody {
    pub order_id: RecordId,
    pub listing_id: RecordId,
    /// The region whose log holds the listing, when it is another region of the federation:
    /// the listing, its agency's accreditation and standing are read as of the size this
    /// region last adopted of it. Omitted for a listing of this region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing_region: Option<RegionId>,
    pub voucher_id: RecordId,
    /// The agreed price of the whole order: at most the listing's price.
    pub price_minor: AmountMinor,
    pub payment: PaymentRequest,
    /// After delivery, the order confirms itself if the enterprise neither confirms nor disputes.
    pub auto_confirm_after_ms: DurationMs,
}

/// Body of commands that name only an order and why: cancel, confirm, dispute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderActionBody {
    pub order_id: RecordId,
    #[serde(default)]
    pub reason: String,
}

/// Body of `order.release_unclaimed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseUnclaimedBody {
    pub order_id: RecordId,
}

/// Body of `escrow.fund`: the enterprise's share was received and is held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FundEscrowBody {
    pub order_id: RecordId,
    pub amount_minor: AmountMinor,
    /// The provider's own transaction reference.
    pub reference: String,
}

/// Body of `payment.acknowledge`: the agency acknowledges an installment paid offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgePaymentBody {
    pub order_id: RecordId,
    /// Position of the installment in the plan, from 0 (a plan has at most 24).
    #[schema(maximum = 23)]
    pub installment: u32,
    pub reference: String,
}

/// A document proving delivery, by its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// `contract`, `invoice` (fapiao) or `report`.
    pub kind: EvidenceKind,
    /// Lowercase hex SHA-256 of the document.
    pub sha256: String,
}

/// What a piece of evidence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    Contract,
    Invoice,
    Report,
}

/// Body of `order.deliver`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliverBody {
    pub order_id: RecordId,
    pub evidence: Vec<Evidence>,
}

/// Body of `dispute.resolve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveDisputeBody {
    pub order_id: RecordId,
    pub outcome: DisputeOutcome,
    pub reason: String,
}

/// An admin's decision on a dispute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DisputeOutcome {
    /// Delivery stands: the order is confirmed and escrow released to the agency.
    Release,
    /// Delivery fails: the order is cancelled, escrow refunded, the voucher share returned.
    Refund,
}

/// Where an order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Placed,
    Delivered,
    Disputed,
    Confirmed,
    Cancelled,
}

/// Where the escrow of an order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EscrowStatus {
    AwaitingFunds,
    Held,
    Frozen,
    Released,
    Refunded,
    /// Cancelled before any funds arrived.
    Void,
}

/// The escrow of an order: `funded = held + released + refunded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EscrowRecord {
    pub provider: PublicKey,
    pub fee_minor: u64,
    pub status: EscrowStatus,
    pub funded_minor: u64,
    pub held_minor: u64,
    pub released_minor: u64,
    pub refunded_minor: u64,
    pub reference: Option<String>,
}

/// A planned installment and whether the agency acknowledged it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InstallmentRecord {
    pub amount_minor: u64,
    pub due_at_ms: TimeMs,
    pub paid_at_ms: Option<TimeMs>,
    pub reference: Option<String>,
}

/// An order as the state holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderRecord {
    pub order_id: RecordId,
    pub listing_id: RecordId,
    /// The region whose log holds the listing, when it is not this one (`null` for a listing
    /// of this region).
    pub listing_region: Option<RegionId>,
    pub voucher_id: RecordId,
    pub program_id: RecordId,
    pub enterprise: PublicKey,
    pub agency: PublicKey,
    pub agency_region: RegionId,
    pub funding_region: RegionId,
    pub category: String,
    pub price_minor: u64,
    pub voucher_share_minor: u64,
    pub enterprise_share_minor: u64,
    /// Calendar year of placement in the program's time zone (for the per-year caps).
    pub year: i32,
    pub controlling_group: Option<String>,
    pub status: OrderStatus,
    pub installments: Vec<InstallmentRecord>,
    pub escrow: Option<EscrowRecord>,
    pub auto_confirm_after_ms: u64,
    pub placed_at_ms: TimeMs,
    pub delivered_at_ms: Option<TimeMs>,
    pub confirmed_at_ms: Option<TimeMs>,
    pub evidence: Vec<Evidence>,
    /// When the node released the voucher share because the claim deadline passed unclaimed.
    pub unclaimed_released_at_ms: Option<TimeMs>,
}

impl OrderRecord {
    /// Whether the enterprise's own share is fully paid (all installments acknowledged, or the
    /// escrow released to the agency).
    pub fn enterprise_share_paid(&self) -> bool {
        match &self.escrow {
            Some(escrow) => escrow.status == EscrowStatus::Released,
            None => self.installments.iter().all(|i| i.paid_at_ms.is_some()),
        }
    }
}

/// The anti-fraud rules that flag (rather than refuse) an order for regulators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FraudRule {
    /// The price equals the voucher's face value exactly.
    PriceAtFaceValue,
    /// Orders between the same enterprise and agency in a short window add up past the per-order
    /// cap while each stays under it.
    SplitOrder,
    /// A delivery document's hash was already used by another order.
    DuplicateEvidence,
}

/// A fraud flag, as the state keeps it for regulators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FraudFlagRecord {
    pub index: LogIndex,
    pub rule: FraudRule,
    pub order_id: RecordId,
    pub program_id: RecordId,
    pub detail: String,
    pub flagged_at_ms: TimeMs,
}

/// Recent orders between one enterprise and one agency in one program (for the split rule).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RecentPairOrders {
    orders: Vec<(TimeMs, u64)>,
}

/// Prefix of these records in the state, followed by the record's id.
pub const ORDER_PREFIX: &[u8] = b"order/";

fn order_key(id: &RecordId) -> Vec<u8> {
    [ORDER_PREFIX, id.as_str().as_bytes()].concat()
}

/// Prefix of the auto-confirm index: `oauto/` ‖ deadline (u64 BE) ‖ order id.
pub const AUTO_CONFIRM_INDEX_PREFIX: &[u8] = b"oauto/";

fn auto_confirm_key(deadline_ms: TimeMs, id: &RecordId) -> Vec<u8> {
    let mut key = AUTO_CONFIRM_INDEX_PREFIX.to_vec();
    key.extend_from_slice(&deadline_ms.to_be_bytes());
    key.extend_from_slice(id.as_str().as_bytes());
    key
}

/// Prefix of the claim-deadline index: `cdead/` ‖ the program's claim deadline (u64 BE) ‖ order
/// id, for every order whose voucher share no claim has taken yet. The node scans it to issue
/// `order.release_unclaimed`; it is not part of any rule.
pub const CLAIM_DEADLINE_INDEX_PREFIX: &[u8] = b"cdead/";

fn claim_deadline_key(deadline_ms: TimeMs, id: &RecordId) -> Vec<u8> {
    let mut key = CLAIM_DEADLINE_INDEX_PREFIX.to_vec();
    key.extend_from_slice(&deadline_ms.to_be_bytes());
    key.extend_from_slice(id.as_str().as_bytes());
    key
}

/// Drops an order from the claim-deadline index (a claim took its share, or it was returned).
pub(super) fn clear_claim_deadline<S: StateRead + StateWrite>(
    state: &mut S,
    order: &OrderRecord,
) -> Result<(), StateError> {
    let program = load_program(state, &order.program_id)?
        .ok_or_else(|| corrupt(format!("program/{}", order.program_id)))?;
    state.delete(claim_deadline_key(
        program.terms.claim_deadline_ms.get(),
        &order.order_id,
    ));
    Ok(())
}

/// Prefix of fraud flag records: `fraud/` ‖ entry index (u64 BE) ‖ position in the entry (u8).
pub const FRAUD_FLAG_PREFIX: &[u8] = b"fraud/";

fn fraud_key(index: LogIndex, position: u8) -> Vec<u8> {
    let mut key = FRAUD_FLAG_PREFIX.to_vec();
    key.extend_from_slice(&index.to_be_bytes());
    key.push(position);
    key
}

fn evidence_key(sha256: &str) -> Vec<u8> {
    format!("evidence/{sha256}").into_bytes()
}

fn pair_key(program: &RecordId, enterprise: &PublicKey, agency: &PublicKey) -> Vec<u8> {
    let mut key = format!("pair/{program}/").into_bytes();
    key.extend_from_slice(enterprise.as_bytes());
    key.extend_from_slice(agency.as_bytes());
    key
}

fn year_spend_key(program: &RecordId, scope: &str, who: &[u8], year: i32) -> Vec<u8> {
    let mut key = format!("yspend/{program}/{scope}/{year}/").into_bytes();
    key.extend_from_slice(who);
    key
}

fn enterprise_spend_key(order: &OrderRecord) -> Vec<u8> {
    year_spend_key(
        &order.program_id,
        "e",
        order.enterprise.as_bytes(),
        order.year,
    )
}

fn group_spend_key(program: &RecordId, group: &str, year: i32) -> Vec<u8> {
    year_spend_key(program, "g", group.as_bytes(), year)
}

fn read_u64<S: StateRead>(state: &S, key: &[u8]) -> Result<u64, StateError> {
    Ok(state.get::<u64>(key)?.unwrap_or(0))
}

/// Reads an order.
pub fn load_order<S: StateRead>(
    state: &S,
    id: &RecordId,
) -> Result<Option<OrderRecord>, StateError> {
    state.get(&order_key(id))
}

pub(super) fn require_order<S: StateRead>(
    state: &S,
    id: &RecordId,
) -> Result<OrderRecord, ApplyError> {
    load_order(state, id)?.ok_or_else(|| Rejection::OrderNotFound(id.to_string()).into())
}

pub(super) fn save_order<S: StateWrite>(state: &mut S, order: &OrderRecord) {
    if let Some(e) = &order.escrow {
        assert_eq!(
            Some(e.funded_minor),
            e.held_minor
                .checked_add(e.released_minor)
                .and_then(|v| v.checked_add(e.refunded_minor)),
            "escrow balance broken for order {}",
            order.order_id
        );
    }
    state.put(order_key(&order.order_id), order);
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Rejection {
    Rejection::InvalidField {
        field,
        reason: reason.into(),
    }
}

fn require_status(order: &OrderRecord, allowed: &[OrderStatus]) -> Result<(), Rejection> {
    if allowed.contains(&order.status) {
        Ok(())
    } else {
        Err(Rejection::OrderWrongState {
            order_id: order.order_id.to_string(),
            status: state_word(&order.status),
        })
    }
}

/// The agency an order may be placed with: registered, not revoked or suspended, accredited now.
fn require_serving_agency<S: StateRead>(
    state: &S,
    now: TimeMs,
    agency: &PublicKey,
) -> Result<PartyRecord, ApplyError> {
    // An agency of another region is read as its region's log gives it, as of the size adopted:
    // its accreditation and standing are its home region's.
    let party = super::federation::find_party(state, agency)?
        .map(|known| known.party)
        .ok_or(Rejection::PartyNotFound)?;
    if party.role != Role::Agency {
        return Err(Rejection::WrongPartyRole {
            needed: "agency",
            actual: party.role.as_str().into(),
        }
        .into());
    }
    if party.revoked_at.is_some() {
        return Err(Rejection::PartyInactive.into());
    }
    if party.suspended {
        return Err(Rejection::PartySuspended.into());
    }
    match party.accredited_until_ms {
        Some(until) if until > now => Ok(party),
        _ => Err(Rejection::AgencyNotAccredited.into()),
    }
}

/// The voucher's share of a price: the subsidy ratio of the price, rounded down, then held
/// within every cap and the voucher's balance. Returns the share and the binding limit's name.
fn voucher_share<S: StateRead>(
    state: &S,
    program: &ProgramRecord,
    voucher: &VoucherRecord,
    enterprise: &PartyRecord,
    year: i32,
    price: AmountMinor,
) -> Result<(u64, &'static str), StateError> {
    let terms = &program.terms;
    let program_id = &terms.program_id;
    let mut share = terms.subsidy_ratio_bps.share_of(price).get();
    let mut binding = "subsidy_ratio";
    let mut limit = |name: &'static str, value: u64| {
        if value < share {
            share = value;
            binding = name;
        }
    };
    limit("per_order", terms.caps.per_order_minor.get());
    limit("voucher_balance", voucher.balance_minor);
    let enterprise_spent = read_u64(
        state,
        &year_spend_key(program_id, "e", enterprise.key.as_bytes(), year),
    )?;
    limit(
        "per_enterprise_year",
        terms
            .caps
            .per_enterprise_year_minor
            .get()
            .saturating_sub(enterprise_spent),
    );
    if let Some(group) = &enterprise.controlling_group {
        let group_spent = read_u64(state, &group_spend_key(program_id, group, year))?;
        limit(
            "per_group_year",
            terms
                .caps
                .per_group_year_minor
                .get()
                .saturating_sub(group_spent),
        );
    }
    Ok((share, binding))
}

/// What an order at a price would get from a voucher: the voucher's share, the enterprise's
/// part, and the limit that sets the share. `order.place` and the quote both read it from
/// [`quote_order`]'s checks, so a quote is the share placement would give at that moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderQuote {
    pub voucher_id: RecordId,
    pub listing_id: RecordId,
    pub program_id: RecordId,
    pub price_minor: u64,
    pub listing_price_minor: u64,
    pub voucher_share_minor: u64,
    pub enterprise_share_minor: u64,
    /// The limit that sets the share: `subsidy_ratio`, `per_order`, `voucher_balance`,
    /// `per_enterprise_year` or `per_group_year`.
    pub binding_limit: String,
    /// The calendar year, in the program's time zone, that the per-year caps count.
    pub year: i32,
}

/// The listing an order names: its id, and the region whose log holds it when that is another
/// region's (read from the view adopted of that region).
#[derive(Debug, Clone, Copy)]
pub struct ListingRef<'a> {
    pub id: &'a RecordId,
    pub region: Option<&'a RegionId>,
}

impl ListingRef<'_> {
    /// The listing, from this log (`here`) or from the view of the region adopted.
    fn load<S: StateRead>(self, state: &S, here: &RegionId) -> Result<ListingRecord, ApplyError> {
        let region = self.region.unwrap_or(here);
        let listing = super::catalog::load_listing_of(state, here, region, self.id)?;
        listing.ok_or_else(|| {
            let name = match self.region {
                Some(region) if region != here => format!("{} of region `{region}`", self.id),
                _ => self.id.to_string(),
            };
            Rejection::ListingNotFound(name).into()
        })
    }
}

/// An order priced against its voucher, listing and program, every placement rule checked.
struct Pricing {
    program: ProgramRecord,
    voucher: VoucherRecord,
    listing: ListingRecord,
    agency: PartyRecord,
    year: i32,
    share: u64,
    binding: &'static str,
}

/// Checks everything placing an order of `price` on `listing_id` with `voucher` by `enterprise`
/// depends on, except the order's own id and payment plan, and computes the voucher's share.
fn price_order<S: StateRead>(
    state: &S,
    now: TimeMs,
    enterprise: &PartyRecord,
    voucher: VoucherRecord,
    listing: ListingRef<'_>,
    price: AmountMinor,
) -> Result<Pricing, ApplyError> {
    let listing_id = listing.id;
    if voucher.status != VoucherStatus::Active || now >= voucher.expires_at_ms {
        return Err(Rejection::VoucherNotActive {
            voucher_id: voucher.voucher_id.to_string(),
            status: if voucher.status == VoucherStatus::Active {
                "past its expiry".into()
            } else {
                state_word(&voucher.status)
            },
        }
        .into());
    }
    if voucher.frozen {
        return Err(Rejection::VoucherFrozen.into());
    }
    let program = require_program(state, &voucher.program_id)?;
    let terms = &program.terms;
    if now < terms.valid_from_ms.get() || now >= terms.valid_until_ms.get() {
        return Err(Rejection::ProgramNotOpen {
            program_id: terms.program_id.to_string(),
        }
        .into());
    }
    if terms.use_mode == UseMode::Single && voucher.uses > 0 {
        return Err(Rejection::VoucherAlreadyUsed.into());
    }
    let listing = listing.load(state, &voucher.funding_region)?;
    if listing.status != ListingStatus::Active {
        return Err(Rejection::ListingWithdrawn(listing_id.to_string()).into());
    }
    if !terms.eligible_categories.contains(&listing.category) {
        return Err(Rejection::CategoryNotEligible {
            category: listing.category.clone(),
        }
        .into());
    }
    if listing.currency != terms.currency {
        return Err(Rejection::CurrencyMismatch {
            expected: terms.currency.clone(),
            got: listing.currency.clone(),
        }
        .into());
    }
    let agency = require_serving_agency(state, now, &listing.agency)?;
    if !terms.spend_regions.contains(&agency.home_region) {
        return Err(Rejection::RegionNotAllowed {
            region: agency.home_region.to_string(),
        }
        .into());
    }
    if enterprise.is_related_to(&agency) {
        return Err(Rejection::RelatedParties.into());
    }
    if price.is_zero() {
        return Err(invalid("price_minor", "must be positive").into());
    }
    if price.get() > listing.price_minor {
        return Err(Rejection::PriceAboveListing {
            price_minor: price.get(),
            listing_price_minor: listing.price_minor,
        }
        .into());
    }
    let year = terms.calendar_year(now);
    let (share, binding) = voucher_share(state, &program, &voucher, enterprise, year, price)?;
    if share == 0 {
        return Err(Rejection::NoSubsidyLeft { limit: binding }.into());
    }
    Ok(Pricing {
        program,
        voucher,
        listing,
        agency,
        year,
        share,
        binding,
    })
}

/// The share an order of `price` on `listing_id` would get from `voucher_id` at `now`, for its
/// holder, and the limit that binds; refused as `order.place` would refuse it.
pub fn quote_order<S: StateRead>(
    state: &S,
    now: TimeMs,
    voucher_id: &RecordId,
    listing: ListingRef<'_>,
    price: AmountMinor,
) -> Result<OrderQuote, ApplyError> {
    let voucher = require_voucher(state, voucher_id)?;
    let holder = load_party(state, &voucher.holder)?.ok_or(Rejection::PartyNotFound)?;
    let pricing = price_order(state, now, &holder, voucher, listing, price)?;
    Ok(OrderQuote {
        voucher_id: voucher_id.clone(),
        listing_id: listing.id.clone(),
        program_id: pricing.program.terms.program_id.clone(),
        price_minor: price.get(),
        listing_price_minor: pricing.listing.price_minor,
        voucher_share_minor: pricing.share,
        enterprise_share_minor: price.get() - pricing.share,
        binding_limit: pricing.binding.into(),
        year: pricing.year,
    })
}

pub(super) fn decide_place<S: StateRead>(
    state: &S,
    ctx: &ApplyContext,
    actor: &PartyRecord,
    body: &PlaceOrderBody,
) -> Result<Vec<Event>, ApplyError> {
    if load_order(state, &body.order_id)?.is_some() {
        return Err(Rejection::OrderExists(body.order_id.to_string()).into());
    }
    // The permission table has checked that the signer holds the voucher.
    let voucher = require_voucher(state, &body.voucher_id)?;
    let price = body.price_minor;
    let Pricing {
        program,
        voucher,
        listing,
        agency,
        year,
        share,
        ..
    } = price_order(
        state,
        ctx.node_time_ms,
        actor,
        voucher,
        ListingRef {
            id: &body.listing_id,
            region: body.listing_region.as_ref(),
        },
        price,
    )?;
    // The listing's region as the order records it: named only when it is another region's.
    let listing_region = body.listing_region.clone().filter(|r| *r != ctx.region);
    let terms = &program.terms;
    let enterprise_share = price.get() - share;
    let payment = body.payment.resolve(enterprise_share, ctx.node_time_ms);
    check_payment_plan(state, ctx, &payment, enterprise_share)?;

    let mut events = vec![Event::OrderPlaced {
        order_id: body.order_id.clone(),
        listing_id: body.listing_id.clone(),
        listing_region,
        voucher_id: body.voucher_id.clone(),
        program_id: terms.program_id.clone(),
        enterprise: actor.key,
        agency: agency.key,
        agency_region: agency.home_region.clone(),
        category: listing.category.clone(),
        price_minor: price.get(),
        voucher_share_minor: share,
        enterprise_share_minor: enterprise_share,
        year,
        payment,
        auto_confirm_after_ms: body.auto_confirm_after_ms.get(),
    }];
    if price.get() == voucher.face_value_minor {
        events.push(Event::FraudFlagged {
            rule: FraudRule::PriceAtFaceValue,
            order_id: body.order_id.clone(),
            program_id: terms.program_id.clone(),
            detail: format!("price {} equals the voucher's face value", price.get()),
        });
    }
    let cap = terms.caps.per_order_minor.get();
    let recent: RecentPairOrders = state
        .get(&pair_key(&terms.program_id, &actor.key, &agency.key))?
        .unwrap_or_default();
    let window_start = ctx.node_time_ms.saturating_sub(SPLIT_ORDER_WINDOW_MS);
    let recent_total: u64 = recent
        .orders
        .iter()
        .filter(|(t, _)| *t >= window_start)
        .map(|(_, p)| *p)
        .sum();
    let this_share_alone = terms.subsidy_ratio_bps.share_of(price).get();
    if recent_total > 0 && this_share_alone <= cap {
        let combined = terms
            .subsidy_ratio_bps
            .share_of(AmountMinor::new(recent_total.saturating_add(price.get())).unwrap_or(price))
            .get();
        if combined > cap {
            events.push(Event::FraudFlagged {
                rule: FraudRule::SplitOrder,
                order_id: body.order_id.clone(),
                program_id: terms.program_id.clone(),
                detail: format!(
                    "with the same agency's orders of the last {} days, the subsidy would be {combined}, over the per-order cap {cap}",
                    SPLIT_ORDER_WINDOW_MS / 86_400_000
                ),
            });
        }
    }
    Ok(events)
}

fn check_payment_plan<S: StateRead>(
    state: &S,
    ctx: &ApplyContext,
    plan: &PaymentPlan,
    enterprise_share: u64,
) -> Result<(), ApplyError> {
    match plan {
        PaymentPlan::Direct { installments } => {
            if installments.len() > MAX_INSTALLMENTS {
                return Err(invalid(
                    "payment.installments",
                    format!("at most {MAX_INSTALLMENTS}"),
                )
                .into());
            }
            if enterprise_share > 0 && installments.is_empty() {
                return Err(invalid(
                    "payment.installments",
                    "the enterprise's share needs at least one installment",
                )
                .into());
            }
            let mut total: u64 = 0;
            let mut previous_due = ctx.node_time_ms;
            for installment in installments {
                if installment.amount_minor.is_zero() {
                    return Err(invalid(
                        "payment.installments",
                        "every installment must be positive",
                    )
                    .into());
                }
                if installment.due_at_ms.get() < previous_due {
                    return Err(invalid(
                        "payment.installments",
                        "due dates must not be in the past and must not go backwards",
                    )
                    .into());
                }
                previous_due = installment.due_at_ms.get();
                total = total.saturating_add(installment.amount_minor.get());
            }
            if total != enterprise_share {
                return Err(Rejection::PaymentPlanMismatch {
                    planned_minor: total,
                    enterprise_share_minor: enterprise_share,
                }
                .into());
            }
        }
        PaymentPlan::Escrow {
            escrow_provider, ..
        } => {
            if enterprise_share == 0 {
                return Err(invalid(
                    "payment",
                    "escrow needs an enterprise share to hold; pay directly",
                )
                .into());
            }
            // A provider of another region is read as of the size adopted of its region.
            let provider = super::federation::find_party(state, escrow_provider)?
                .map(|known| known.party)
                .ok_or(Rejection::PartyNotFound)?;
            if provider.role != Role::Escrow {
                return Err(Rejection::WrongPartyRole {
                    needed: "escrow",
                    actual: provider.role.as_str().into(),
                }
                .into());
            }
            if provider.revoked_at.is_some() || provider.suspended {
                return Err(Rejection::PartyInactive.into());
            }
        }
    }
    Ok(())
}

pub(super) fn decide_fund_escrow<S: StateRead>(
    state: &S,
    body: &FundEscrowBody,
) -> Result<Vec<Event>, ApplyError> {
    super::parties::check_text("reference", &body.reference, MAX_REFERENCE_BYTES)?;
    let order = require_order(state, &body.order_id)?;
    let escrow = order.escrow.as_ref().ok_or(Rejection::NotAnEscrowOrder)?;
    require_status(&order, &[OrderStatus::Placed])?;
    if escrow.status != EscrowStatus::AwaitingFunds {
        return Err(Rejection::EscrowWrongState {
            status: state_word(&escrow.status),
        }
        .into());
    }
    if body.amount_minor.get() != order.enterprise_share_minor {
        return Err(Rejection::EscrowAmountMismatch {
            expected_minor: order.enterprise_share_minor,
            got_minor: body.amount_minor.get(),
        }
        .into());
    }
    Ok(vec![Event::EscrowFunded {
        order_id: order.order_id,
        amount_minor: body.amount_minor.get(),
        reference: body.reference.clone(),
    }])
}

pub(super) fn decide_acknowledge<S: StateRead>(
    state: &S,
    body: &AcknowledgePaymentBody,
) -> Result<Vec<Event>, ApplyError> {
    super::parties::check_text("reference", &body.reference, MAX_REFERENCE_BYTES)?;
    let order = require_order(state, &body.order_id)?;
    require_status(
        &order,
        &[
            OrderStatus::Placed,
            OrderStatus::Delivered,
            OrderStatus::Disputed,
            OrderStatus::Confirmed,
        ],
    )?;
    let installment = order.installments.get(body.installment as usize).ok_or(
        Rejection::InstallmentNotFound {
            installment: body.installment,
        },
    )?;
    if installment.paid_at_ms.is_some() {
        return Err(Rejection::InstallmentAlreadyPaid {
            installment: body.installment,
        }
        .into());
    }
    Ok(vec![Event::InstallmentPaid {
        order_id: order.order_id,
        installment: body.installment,
        amount_minor: installment.amount_minor,
        reference: body.reference.clone(),
    }])
}

pub(super) fn decide_deliver<S: StateRead>(
    state: &S,
    body: &DeliverBody,
) -> Result<Vec<Event>, ApplyError> {
    if body.evidence.is_empty() || body.evidence.len() > MAX_EVIDENCE_ITEMS {
        return Err(invalid("evidence", format!("1 to {MAX_EVIDENCE_ITEMS} documents")).into());
    }
    for item in &body.evidence {
        if item.sha256.len() != 64
            || !item
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid("evidence.sha256", "must be 64 lowercase hex digits").into());
        }
    }
    let order = require_order(state, &body.order_id)?;
    require_status(&order, &[OrderStatus::Placed])?;
    if let Some(escrow) = &order.escrow {
        if escrow.status != EscrowStatus::Held {
            return Err(Rejection::EscrowWrongState {
                status: state_word(&escrow.status),
            }
            .into());
        }
    }
    let mut events = vec![Event::OrderDelivered {
        order_id: order.order_id.clone(),
        evidence: body.evidence.clone(),
    }];
    let mut seen_here = std::collections::BTreeSet::new();
    for item in &body.evidence {
        let earlier: Option<RecordId> = state.get(&evidence_key(&item.sha256))?;
        let duplicate = match earlier {
            Some(other) => Some(format!(
                "{} {} was already used by order {other}",
                item.sha256,
                kind_name(item.kind)
            )),
            None if !seen_here.insert(item.sha256.clone()) => {
                Some(format!("{} appears twice in this delivery", item.sha256))
            }
            None => None,
        };
        if let Some(detail) = duplicate {
            events.push(Event::FraudFlagged {
                rule: FraudRule::DuplicateEvidence,
                order_id: order.order_id.clone(),
                program_id: order.program_id.clone(),
                detail,
            });
        }
    }
    Ok(events)
}

fn kind_name(kind: EvidenceKind) -> &'static str {
    match kind {
        EvidenceKind::Contract => "contract",
        EvidenceKind::Invoice => "invoice",
        EvidenceKind::Report => "report",
    }
}

pub(super) fn decide_confirm<S: StateRead>(
    state: &S,
    body: &OrderActionBody,
) -> Result<Vec<Event>, ApplyError> {
    let order = require_order(state, &body.order_id)?;
    require_status(&order, &[OrderStatus::Delivered])?;
    Ok(vec![Event::OrderConfirmed {
        order_id: order.order_id,
        automatic: false,
    }])
}

pub(super) fn decide_auto_confirm<S: StateRead>(
    state: &S,
    ctx: &ApplyContext,
    body: &OrderActionBody,
) -> Result<Vec<Event>, ApplyError> {
    let order = require_order(state, &body.order_id)?;
    require_status(&order, &[OrderStatus::Delivered])?;
    let deadline = order
        .delivered_at_ms
        .unwrap_or(u64::MAX)
        .saturating_add(order.auto_confirm_after_ms);
    if ctx.node_time_ms < deadline {
        return Err(Rejection::NotYetDue {
            due_at_ms: deadline,
        }
        .into());
    }
    Ok(vec![Event::OrderConfirmed {
        order_id: order.order_id,
        automatic: true,
    }])
}

pub(super) fn decide_release_unclaimed<S: StateRead>(
    state: &S,
    ctx: &ApplyContext,
    body: &ReleaseUnclaimedBody,
) -> Result<Vec<Event>, ApplyError> {
    let order = require_order(state, &body.order_id)?;
    require_status(
        &order,
        &[
            OrderStatus::Placed,
            OrderStatus::Delivered,
            OrderStatus::Disputed,
            OrderStatus::Confirmed,
        ],
    )?;
    if order.unclaimed_released_at_ms.is_some() {
        return Err(Rejection::ShareAlreadyReleased.into());
    }
    if super::claims::load_claim(state, &order.order_id)?.is_some() {
        return Err(Rejection::ClaimExists(order.order_id.to_string()).into());
    }
    let program = require_program(state, &order.program_id)?;
    let deadline = program.terms.claim_deadline_ms.get();
    if ctx.node_time_ms <= deadline {
        return Err(Rejection::NotYetDue {
            due_at_ms: deadline.saturating_add(1),
        }
        .into());
    }
    Ok(vec![Event::UnclaimedShareReleased {
        order_id: order.order_id,
        voucher_id: order.voucher_id,
        amount_minor: order.voucher_share_minor,
    }])
}

pub(super) fn decide_dispute<S: StateRead>(
    state: &S,
    body: &OrderActionBody,
) -> Result<Vec<Event>, ApplyError> {
    super::parties::check_text("reason", &body.reason, MAX_REASON_BYTES)?;
    let order = require_order(state, &body.order_id)?;
    require_status(&order, &[OrderStatus::Delivered])?;
    Ok(vec![Event::OrderDisputed {
        order_id: order.order_id,
        reason: body.reason.clone(),
    }])
}

pub(super) fn decide_resolve<S: StateRead>(
    state: &S,
    body: &ResolveDisputeBody,
) -> Result<Vec<Event>, ApplyError> {
    super::parties::check_text("reason", &body.reason, MAX_REASON_BYTES)?;
    let order = require_order(state, &body.order_id)?;
    require_status(&order, &[OrderStatus::Disputed])?;
    let event = match body.outcome {
        DisputeOutcome::Release => Event::OrderConfirmed {
            order_id: order.order_id,
            automatic: false,
        },
        DisputeOutcome::Refund => Event::OrderCancelled {
            order_id: order.order_id,
            reason: body.reason.clone(),
        },
    };
    Ok(vec![event])
}

pub(super) fn decide_cancel<S: StateRead>(
    state: &S,
    body: &OrderActionBody,
) -> Result<Vec<Event>, ApplyError> {
    super::parties::check_text("reason", &body.reason, MAX_REASON_BYTES)?;
    let order = require_order(state, &body.order_id)?;
    require_status(&order, &[OrderStatus::Placed])?;
    if order.installments.iter().any(|i| i.paid_at_ms.is_some()) {
        return Err(Rejection::PaymentsRecorded.into());
    }
    Ok(vec![Event::OrderCancelled {
        order_id: order.order_id,
        reason: body.reason.clone(),
    }])
}

fn update_order<S: StateRead + StateWrite>(
    state: &mut S,
    id: &RecordId,
    change: impl FnOnce(&mut OrderRecord) -> Result<(), StateError>,
) -> Result<OrderRecord, StateError> {
    let mut order = load_order(state, id)?.ok_or_else(|| corrupt(format!("order/{id}")))?;
    change(&mut order)?;
    save_order(state, &order);
    Ok(order)
}

fn add_u64<S: StateRead + StateWrite>(
    state: &mut S,
    key: Vec<u8>,
    delta: i128,
) -> Result<(), StateError> {
    let value = i128::from(read_u64(state, &key)?) + delta;
    let value =
        u64::try_from(value).map_err(|_| corrupt(String::from_utf8_lossy(&key).into_owned()))?;
    if value == 0 {
        state.delete(key);
    } else {
        state.put(key, &value);
    }
    Ok(())
}

pub(super) fn evolve<S: StateRead + StateWrite>(
    state: &mut S,
    ctx: &ApplyContext,
    event: &Event,
) -> Result<(), StateError> {
    match event {
        Event::OrderPlaced {
            order_id,
            listing_id,
            listing_region,
            voucher_id,
            program_id,
            enterprise,
            agency,
            agency_region,
            category,
            price_minor,
            voucher_share_minor,
            enterprise_share_minor,
            year,
            payment,
            auto_confirm_after_ms,
        } => {
            let mut voucher = super::vouchers::load_voucher(state, voucher_id)?
                .ok_or_else(|| corrupt(format!("voucher/{voucher_id}")))?;
            voucher.balance_minor = voucher
                .balance_minor
                .checked_sub(*voucher_share_minor)
                .ok_or_else(|| corrupt(format!("voucher/{voucher_id}")))?;
            voucher.committed_minor += voucher_share_minor;
            voucher.uses += 1;
            state.put(voucher_key(voucher_id), &voucher);
            let enterprise_party = load_party(state, enterprise)?
                .ok_or_else(|| corrupt(format!("party/{enterprise}")))?;
            let (installments, escrow) = match payment {
                PaymentPlan::Direct { installments } => (
                    installments
                        .iter()
                        .map(|i| InstallmentRecord {
                            amount_minor: i.amount_minor.get(),
                            due_at_ms: i.due_at_ms.get(),
                            paid_at_ms: None,
                            reference: None,
                        })
                        .collect(),
                    None,
                ),
                PaymentPlan::Escrow {
                    escrow_provider,
                    fee_minor,
                } => (
                    Vec::new(),
                    Some(EscrowRecord {
                        provider: *escrow_provider,
                        fee_minor: fee_minor.get(),
                        status: EscrowStatus::AwaitingFunds,
                        funded_minor: 0,
                        held_minor: 0,
                        released_minor: 0,
                        refunded_minor: 0,
                        reference: None,
                    }),
                ),
            };
            let order = OrderRecord {
                order_id: order_id.clone(),
                listing_id: listing_id.clone(),
                listing_region: listing_region.clone(),
                voucher_id: voucher_id.clone(),
                program_id: program_id.clone(),
                enterprise: *enterprise,
                agency: *agency,
                agency_region: agency_region.clone(),
                funding_region: voucher.funding_region.clone(),
                category: category.clone(),
                price_minor: *price_minor,
                voucher_share_minor: *voucher_share_minor,
                enterprise_share_minor: *enterprise_share_minor,
                year: *year,
                controlling_group: enterprise_party.controlling_group.clone(),
                status: OrderStatus::Placed,
                installments,
                escrow,
                auto_confirm_after_ms: *auto_confirm_after_ms,
                placed_at_ms: ctx.node_time_ms,
                delivered_at_ms: None,
                confirmed_at_ms: None,
                evidence: Vec::new(),
                unclaimed_released_at_ms: None,
            };
            let program = load_program(state, program_id)?
                .ok_or_else(|| corrupt(format!("program/{program_id}")))?;
            state.put_raw(
                claim_deadline_key(program.terms.claim_deadline_ms.get(), order_id),
                Vec::new(),
            );
            add_u64(
                state,
                enterprise_spend_key(&order),
                i128::from(*voucher_share_minor),
            )?;
            if let Some(group) = &order.controlling_group {
                add_u64(
                    state,
                    group_spend_key(program_id, group, *year),
                    i128::from(*voucher_share_minor),
                )?;
            }
            let key = pair_key(program_id, enterprise, agency);
            let mut recent: RecentPairOrders = state.get(&key)?.unwrap_or_default();
            let window_start = ctx.node_time_ms.saturating_sub(SPLIT_ORDER_WINDOW_MS);
            recent.orders.retain(|(t, _)| *t >= window_start);
            recent.orders.push((ctx.node_time_ms, *price_minor));
            if recent.orders.len() > MAX_RECENT_PAIR_ORDERS {
                recent.orders.remove(0);
            }
            state.put(key, &recent);
            save_order(state, &order);
        }
        Event::EscrowFunded {
            order_id,
            amount_minor,
            reference,
        } => {
            update_order(state, order_id, |o| {
                let e = o
                    .escrow
                    .as_mut()
                    .ok_or_else(|| corrupt(format!("order/{order_id}")))?;
                e.funded_minor += amount_minor;
                e.held_minor += amount_minor;
                e.status = EscrowStatus::Held;
                e.reference = Some(reference.clone());
                Ok(())
            })?;
        }
        Event::InstallmentPaid {
            order_id,
            installment,
            reference,
            ..
        } => {
            update_order(state, order_id, |o| {
                let i = o
                    .installments
                    .get_mut(*installment as usize)
                    .ok_or_else(|| corrupt(format!("order/{order_id}")))?;
                i.paid_at_ms = Some(ctx.node_time_ms);
                i.reference = Some(reference.clone());
                Ok(())
            })?;
        }
        Event::OrderDelivered { order_id, evidence } => {
            let order = update_order(state, order_id, |o| {
                o.status = OrderStatus::Delivered;
                o.delivered_at_ms = Some(ctx.node_time_ms);
                o.evidence = evidence.clone();
                Ok(())
            })?;
            for item in evidence {
                let key = evidence_key(&item.sha256);
                if state.get_raw(&key)?.is_none() {
                    state.put(key, order_id);
                }
            }
            let deadline = ctx.node_time_ms.saturating_add(order.auto_confirm_after_ms);
            state.put_raw(auto_confirm_key(deadline, order_id), Vec::new());
        }
        Event::OrderDisputed { order_id, .. } => {
            let order = update_order(state, order_id, |o| {
                o.status = OrderStatus::Disputed;
                if let Some(e) = o.escrow.as_mut() {
                    e.status = EscrowStatus::Frozen;
                }
                Ok(())
            })?;
            clear_auto_confirm(state, &order);
        }
        Event::OrderConfirmed { order_id, .. } => {
            let order = update_order(state, order_id, |o| {
                o.status = OrderStatus::Confirmed;
                o.confirmed_at_ms = Some(ctx.node_time_ms);
                if let Some(e) = o.escrow.as_mut() {
                    e.released_minor += e.held_minor;
                    e.held_minor = 0;
                    e.status = EscrowStatus::Released;
                }
                Ok(())
            })?;
            clear_auto_confirm(state, &order);
        }
        Event::OrderCancelled { order_id, .. } => {
            let order = update_order(state, order_id, |o| {
                o.status = OrderStatus::Cancelled;
                if let Some(e) = o.escrow.as_mut() {
                    e.refunded_minor += e.held_minor;
                    e.status = if e.funded_minor > 0 {
                        EscrowStatus::Refunded
                    } else {
                        EscrowStatus::Void
                    };
                    e.held_minor = 0;
                }
                Ok(())
            })?;
            clear_auto_confirm(state, &order);
            clear_claim_deadline(state, &order)?;
            release_voucher_share(state, &order)?;
        }
        Event::UnclaimedShareReleased { order_id, .. } => {
            let order =
                load_order(state, order_id)?.ok_or_else(|| corrupt(format!("order/{order_id}")))?;
            release_voucher_share(state, &order)?;
            clear_claim_deadline(state, &order)?;
            update_order(state, order_id, |o| {
                o.unclaimed_released_at_ms = Some(ctx.node_time_ms);
                Ok(())
            })?;
        }
        Event::FraudFlagged {
            rule,
            order_id,
            program_id,
            detail,
        } => {
            let position = next_flag_position(state, ctx.index)?;
            let record = FraudFlagRecord {
                index: ctx.index,
                rule: *rule,
                order_id: order_id.clone(),
                program_id: program_id.clone(),
                detail: detail.clone(),
                flagged_at_ms: ctx.node_time_ms,
            };
            state.put(fraud_key(ctx.index, position), &record);
        }
        _ => unreachable!("orders::evolve is called only for order events"),
    }
    Ok(())
}

fn next_flag_position<S: StateRead>(state: &S, index: LogIndex) -> Result<u8, StateError> {
    for position in 0..=u8::MAX {
        if state.get_raw(&fraud_key(index, position))?.is_none() {
            return Ok(position);
        }
    }
    Err(corrupt(format!("fraud flags of entry {index}")))
}

fn clear_auto_confirm<S: StateWrite>(state: &mut S, order: &OrderRecord) {
    if let Some(delivered) = order.delivered_at_ms {
        state.delete(auto_confirm_key(
            delivered.saturating_add(order.auto_confirm_after_ms),
            &order.order_id,
        ));
    }
}

/// Gives an order's voucher share back: to the voucher if it is still active, else to the
/// program bucket that says why the voucher ended; and undoes its count against the caps. A
/// share already released at the claim deadline is not released again.
pub(super) fn release_voucher_share<S: StateRead + StateWrite>(
    state: &mut S,
    order: &OrderRecord,
) -> Result<(), StateError> {
    if order.unclaimed_released_at_ms.is_some() {
        return Ok(());
    }
    let share = order.voucher_share_minor;
    let id = &order.voucher_id;
    let mut voucher = super::vouchers::load_voucher(state, id)?
        .ok_or_else(|| corrupt(format!("voucher/{id}")))?;
    voucher.committed_minor = voucher
        .committed_minor
        .checked_sub(share)
        .ok_or_else(|| corrupt(format!("voucher/{id}")))?;
    voucher.uses = voucher.uses.saturating_sub(1);
    match voucher.status {
        VoucherStatus::Active => voucher.balance_minor += share,
        VoucherStatus::Expired => return_to_budget(state, &order.program_id, share, true)?,
        VoucherStatus::Revoked => return_to_budget(state, &order.program_id, share, false)?,
    }
    state.put(voucher_key(id), &voucher);
    add_u64(state, enterprise_spend_key(order), -i128::from(share))?;
    if let Some(group) = &order.controlling_group {
        add_u64(
            state,
            group_spend_key(&order.program_id, group, order.year),
            -i128::from(share),
        )?;
    }
    vledger_tlog::self_check!(load_program(state, &order.program_id)?.is_some());
    Ok(())
}
