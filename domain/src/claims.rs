//! Redemption (兑付): the agency claims an order's voucher share after confirmed delivery; the
//! claim is reviewed at one or two levels, publicly noticed, then paid; a paid claim found
//! fraudulent becomes a clawback receivable. Cross-region payouts that the agency's region
//! advances create settlement positions between regions.

use serde::{Deserialize, Serialize};

use super::money::AmountMinor;
use super::orders::{clear_claim_deadline, release_voucher_share, require_order, OrderStatus};
use super::parties::PartyRecord;
use super::programs::{
    load_program, require_program, save_program, CrossRegionPayer, ProgramRecord,
};
use super::rejection::state_word;
use super::state::{StateError, StateRead, StateWrite};
use super::vouchers::{corrupt, load_voucher, voucher_key};
use super::{ApplyContext, ApplyError, Event, Rejection};
use crate::limits::{MAX_REASON_BYTES, MAX_REFERENCE_BYTES};
use crate::types::{RecordId, RegionId, TimeMs};
use vledger_tlog::keys::PublicKey;

/// Body of `claim.submit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitClaimBody {
    pub order_id: RecordId,
}

/// A reviewer's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    Approve,
    Reject,
}

/// Body of `claim.review`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewClaimBody {
    pub order_id: RecordId,
    /// 1 or 2; level 2 exists only when the program says so.
    #[schema(minimum = 1, maximum = 2)]
    pub level: u8,
    pub decision: ReviewDecision,
    #[serde(default)]
    pub note: String,
}

/// Body of `claim.pay`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayClaimBody {
    pub order_id: RecordId,
    /// The payment's bank or treasury reference.
    pub reference: String,
}

/// Body of `claim.recover`: money paid back by the agency against a clawback receivable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverClaimBody {
    pub order_id: RecordId,
    /// At most what is still owed; recoveries may come in several parts.
    pub amount_minor: AmountMinor,
    /// The repayment's bank or treasury reference.
    pub reference: String,
}

/// Body of `claim.clawback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClawbackBody {
    pub order_id: RecordId,
    pub reason: String,
}

/// Where a claim is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    /// Waiting for the review at `next_level`.
    InReview,
    /// Approved at every level; payable once the public notice period ends.
    InNotice,
    Paid,
    Rejected,
    /// Paid, then found fraudulent: the amount is a receivable from the agency.
    ClawedBack,
    /// Clawed back and paid back in full.
    Recovered,
}

/// One review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReviewRecord {
    pub level: u8,
    pub reviewer: PublicKey,
    pub decision: ReviewDecision,
    pub note: String,
    pub at_ms: TimeMs,
}

/// A claim (one per order, keyed by the order id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClaimRecord {
    pub order_id: RecordId,
    pub program_id: RecordId,
    pub agency: PublicKey,
    pub amount_minor: u64,
    pub funding_region: RegionId,
    pub agency_region: RegionId,
    pub status: ClaimStatus,
    pub next_level: u8,
    pub reviews: Vec<ReviewRecord>,
    pub submitted_at_ms: TimeMs,
    pub notice_ends_at_ms: Option<TimeMs>,
    pub paid_at_ms: Option<TimeMs>,
    pub payout_reference: Option<String>,
    pub clawback_reason: Option<String>,
    /// Paid back so far against the clawback receivable (`amount_minor` in all when recovered).
    pub recovered_minor: u64,
}

/// What one region owes another from advanced cross-region payouts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SettlementPosition {
    pub debtor: RegionId,
    pub creditor: RegionId,
    pub amount_minor: u64,
}

/// Prefix of these records in the state, followed by the record's id.
pub const CLAIM_PREFIX: &[u8] = b"claim/";

fn claim_key(order: &RecordId) -> Vec<u8> {
    [CLAIM_PREFIX, order.as_str().as_bytes()].concat()
}

/// Prefix of settlement positions: `settle/<debtor>/<creditor>`.
pub const SETTLEMENT_PREFIX: &[u8] = b"settle/";

fn settlement_key(debtor: &RegionId, creditor: &RegionId) -> Vec<u8> {
    format!("settle/{debtor}/{creditor}").into_bytes()
}

/// Reads the position of what `debtor` owes `creditor`.
pub fn load_position<S: StateRead>(
    state: &S,
    debtor: &RegionId,
    creditor: &RegionId,
) -> Result<Option<SettlementPosition>, StateError> {
    state.get(&settlement_key(debtor, creditor))
}

/// Writes a position. A position is what advanced payouts added less what paid statements took
/// off, and a statement takes off only payouts it holds: the amount never goes below zero
/// ([`crate::settlement`] asserts it before it calls this), and its two regions differ.
pub(super) fn save_position<S: StateWrite>(state: &mut S, position: &SettlementPosition) {
    assert_ne!(
        position.debtor, position.creditor,
        "a settlement position between a region and itself"
    );
    state.put(
        settlement_key(&position.debtor, &position.creditor),
        position,
    );
}

/// Reads a claim.
pub fn load_claim<S: StateRead>(
    state: &S,
    order: &RecordId,
) -> Result<Option<ClaimRecord>, StateError> {
    state.get(&claim_key(order))
}

/// A payout is held while the claim's voucher is frozen: no approval, no payment.
fn require_voucher_not_frozen<S: StateRead>(
    state: &S,
    claim: &ClaimRecord,
) -> Result<(), ApplyError> {
    let order = require_order(state, &claim.order_id)?;
    let voucher = load_voucher(state, &order.voucher_id)?
        .ok_or_else(|| corrupt(format!("voucher/{}", order.voucher_id)))?;
    if voucher.frozen {
        return Err(Rejection::VoucherFrozen.into());
    }
    Ok(())
}

fn require_claim<S: StateRead>(state: &S, order: &RecordId) -> Result<ClaimRecord, ApplyError> {
    load_claim(state, order)?.ok_or_else(|| Rejection::ClaimNotFound(order.to_string()).into())
}

fn require_claim_status(claim: &ClaimRecord, status: ClaimStatus) -> Result<(), Rejection> {
    if claim.status == status {
        Ok(())
    } else {
        Err(Rejection::ClaimWrongState {
            status: state_word(&claim.status),
        })
    }
}

pub(super) fn decide_submit<S: StateRead>(
    state: &S,
    ctx: &ApplyContext,
    body: &SubmitClaimBody,
) -> Result<Vec<Event>, ApplyError> {
    let order = require_order(state, &body.order_id)?;
    if load_claim(state, &body.order_id)?.is_some() {
        return Err(Rejection::ClaimExists(body.order_id.to_string()).into());
    }
    if order.status != OrderStatus::Confirmed {
        return Err(Rejection::DeliveryNotConfirmed.into());
    }
    if !order.enterprise_share_paid() {
        return Err(Rejection::EnterpriseShareUnpaid.into());
    }
    let program = require_program(state, &order.program_id)?;
    if ctx.node_time_ms > program.terms.claim_deadline_ms.get()
        || order.unclaimed_released_at_ms.is_some()
    {
        return Err(Rejection::ClaimDeadlinePassed {
            deadline_ms: program.terms.claim_deadline_ms.get(),
        }
        .into());
    }
    Ok(vec![Event::ClaimSubmitted {
        order_id: order.order_id,
        amount_minor: order.voucher_share_minor,
    }])
}

pub(super) fn decide_review<S: StateRead>(
    state: &S,
    ctx: &ApplyContext,
    actor: &PartyRecord,
    body: &ReviewClaimBody,
) -> Result<Vec<Event>, ApplyError> {
    // The note is optional; a note given is a readable text like any other.
    if !body.note.is_empty() {
        super::parties::check_text("note", &body.note, MAX_REASON_BYTES)?;
    }
    let claim = require_claim(state, &body.order_id)?;
    require_claim_status(&claim, ClaimStatus::InReview)?;
    if body.level != claim.next_level {
        return Err(Rejection::WrongReviewLevel {
            expected: claim.next_level,
        }
        .into());
    }
    if claim.reviews.iter().any(|r| r.reviewer == actor.key) {
        return Err(Rejection::SameReviewer.into());
    }
    if body.decision == ReviewDecision::Approve {
        require_voucher_not_frozen(state, &claim)?;
    }
    let program = require_program(state, &claim.program_id)?;
    let event = match body.decision {
        ReviewDecision::Reject => Event::ClaimRejected {
            order_id: body.order_id.clone(),
            level: body.level,
            reviewer: actor.key,
            note: body.note.clone(),
        },
        ReviewDecision::Approve if body.level < program.terms.review_levels => {
            Event::ClaimReviewed {
                order_id: body.order_id.clone(),
                level: body.level,
                reviewer: actor.key,
                note: body.note.clone(),
            }
        }
        ReviewDecision::Approve => Event::ClaimApproved {
            order_id: body.order_id.clone(),
            level: body.level,
            reviewer: actor.key,
            note: body.note.clone(),
            notice_ends_at_ms: ctx
                .node_time_ms
                .saturating_add(program.terms.notice_period_ms.get()),
        },
    };
    Ok(vec![event])
}

/// The region that advances the payout of a claim of an agency of `agency_region` on a voucher
/// of `funding_region`: the agency's, when it is another region and the program says so
/// (`cross_region_payer: agency_region`); `None` when the funding region pays directly.
pub fn advancing_region(
    agency_region: &RegionId,
    funding_region: &RegionId,
    program: &ProgramRecord,
) -> Option<RegionId> {
    (agency_region != funding_region
        && program.terms.cross_region_payer == CrossRegionPayer::AgencyRegion)
        .then(|| agency_region.clone())
}

pub(super) fn decide_pay<S: StateRead>(
    state: &S,
    ctx: &ApplyContext,
    body: &PayClaimBody,
) -> Result<Vec<Event>, ApplyError> {
    super::parties::check_text("reference", &body.reference, MAX_REFERENCE_BYTES)?;
    let claim = require_claim(state, &body.order_id)?;
    require_claim_status(&claim, ClaimStatus::InNotice)?;
    let ends = claim.notice_ends_at_ms.unwrap_or(0);
    if ctx.node_time_ms < ends {
        return Err(Rejection::NoticePeriodRunning { ends_at_ms: ends }.into());
    }
    require_voucher_not_frozen(state, &claim)?;
    let program = require_program(state, &claim.program_id)?;
    let advanced_by = advancing_region(&claim.agency_region, &claim.funding_region, &program);
    Ok(vec![Event::ClaimPaid {
        order_id: body.order_id.clone(),
        amount_minor: claim.amount_minor,
        reference: body.reference.clone(),
        advanced_by,
    }])
}

pub(super) fn decide_clawback<S: StateRead>(
    state: &S,
    body: &ClawbackBody,
) -> Result<Vec<Event>, ApplyError> {
    super::parties::check_text("reason", &body.reason, MAX_REASON_BYTES)?;
    let claim = require_claim(state, &body.order_id)?;
    require_claim_status(&claim, ClaimStatus::Paid)?;
    Ok(vec![Event::ClaimClawedBack {
        order_id: body.order_id.clone(),
        receivable_minor: claim.amount_minor,
        reason: body.reason.clone(),
    }])
}

pub(super) fn decide_recover<S: StateRead>(
    state: &S,
    body: &RecoverClaimBody,
) -> Result<Vec<Event>, ApplyError> {
    super::parties::check_text("reference", &body.reference, MAX_REFERENCE_BYTES)?;
    let claim = require_claim(state, &body.order_id)?;
    require_claim_status(&claim, ClaimStatus::ClawedBack)?;
    let owed = claim.amount_minor.saturating_sub(claim.recovered_minor);
    let amount = body.amount_minor.get();
    if amount == 0 {
        return Err(Rejection::InvalidField {
            field: "amount_minor",
            reason: "must be positive".into(),
        }
        .into());
    }
    if amount > owed {
        return Err(Rejection::RecoveryExceedsReceivable {
            owed_minor: owed,
            requested_minor: amount,
        }
        .into());
    }
    Ok(vec![Event::ClaimRecovered {
        order_id: body.order_id.clone(),
        amount_minor: amount,
        reference: body.reference.clone(),
        owed_minor: owed - amount,
    }])
}

/// Moves `amount` of a program's budget from one bucket to another.
fn move_between_buckets<S: StateRead + StateWrite>(
    state: &mut S,
    program_id: &RecordId,
    amount: u64,
    from: fn(&mut super::programs::BudgetBuckets) -> &mut u64,
    to: fn(&mut super::programs::BudgetBuckets) -> &mut u64,
) -> Result<(), StateError> {
    let mut program =
        load_program(state, program_id)?.ok_or_else(|| corrupt(format!("program/{program_id}")))?;
    let source = from(&mut program.buckets);
    *source = source
        .checked_sub(amount)
        .ok_or_else(|| corrupt(format!("program/{program_id}")))?;
    let target = to(&mut program.buckets);
    *target = target
        .checked_add(amount)
        .ok_or_else(|| corrupt(format!("program/{program_id}")))?;
    save_program(state, &program);
    Ok(())
}

fn update_claim<S: StateRead + StateWrite>(
    state: &mut S,
    id: &RecordId,
    change: impl FnOnce(&mut ClaimRecord),
) -> Result<ClaimRecord, StateError> {
    let mut claim = load_claim(state, id)?.ok_or_else(|| corrupt(format!("claim/{id}")))?;
    change(&mut claim);
    state.put(claim_key(id), &claim);
    Ok(claim)
}

pub(super) fn evolve<S: StateRead + StateWrite>(
    state: &mut S,
    ctx: &ApplyContext,
    event: &Event,
) -> Result<(), StateError> {
    match event {
        Event::ClaimSubmitted {
            order_id,
            amount_minor,
        } => {
            let order = super::orders::load_order(state, order_id)?
                .ok_or_else(|| corrupt(format!("order/{order_id}")))?;
            let claim = ClaimRecord {
                order_id: order_id.clone(),
                program_id: order.program_id.clone(),
                agency: order.agency,
                amount_minor: *amount_minor,
                funding_region: order.funding_region.clone(),
                agency_region: order.agency_region.clone(),
                status: ClaimStatus::InReview,
                next_level: 1,
                reviews: Vec::new(),
                submitted_at_ms: ctx.node_time_ms,
                notice_ends_at_ms: None,
                paid_at_ms: None,
                payout_reference: None,
                clawback_reason: None,
                recovered_minor: 0,
            };
            state.put(claim_key(order_id), &claim);
            clear_claim_deadline(state, &order)?;
        }
        Event::ClaimReviewed {
            order_id,
            level,
            reviewer,
            note,
        }
        | Event::ClaimApproved {
            order_id,
            level,
            reviewer,
            note,
            ..
        }
        | Event::ClaimRejected {
            order_id,
            level,
            reviewer,
            note,
        } => {
            let decision = if matches!(event, Event::ClaimRejected { .. }) {
                ReviewDecision::Reject
            } else {
                ReviewDecision::Approve
            };
            let claim = update_claim(state, order_id, |c| {
                c.reviews.push(ReviewRecord {
                    level: *level,
                    reviewer: *reviewer,
                    decision,
                    note: note.clone(),
                    at_ms: ctx.node_time_ms,
                });
                c.next_level = level + 1;
                match event {
                    Event::ClaimApproved {
                        notice_ends_at_ms, ..
                    } => {
                        c.status = ClaimStatus::InNotice;
                        c.notice_ends_at_ms = Some(*notice_ends_at_ms);
                    }
                    Event::ClaimRejected { .. } => c.status = ClaimStatus::Rejected,
                    _ => {}
                }
            })?;
            if claim.status == ClaimStatus::Rejected {
                let order = super::orders::load_order(state, order_id)?
                    .ok_or_else(|| corrupt(format!("order/{order_id}")))?;
                release_voucher_share(state, &order)?;
            }
        }
        Event::ClaimPaid {
            order_id,
            amount_minor,
            reference,
            advanced_by,
        } => {
            let claim = update_claim(state, order_id, |c| {
                c.status = ClaimStatus::Paid;
                c.paid_at_ms = Some(ctx.node_time_ms);
                c.payout_reference = Some(reference.clone());
            })?;
            let order = super::orders::load_order(state, order_id)?
                .ok_or_else(|| corrupt(format!("order/{order_id}")))?;
            let mut voucher = super::vouchers::load_voucher(state, &order.voucher_id)?
                .ok_or_else(|| corrupt(format!("voucher/{}", order.voucher_id)))?;
            voucher.committed_minor = voucher
                .committed_minor
                .checked_sub(*amount_minor)
                .ok_or_else(|| corrupt(format!("voucher/{}", order.voucher_id)))?;
            state.put(voucher_key(&order.voucher_id), &voucher);
            let mut program = load_program(state, &claim.program_id)?
                .ok_or_else(|| corrupt(format!("program/{}", claim.program_id)))?;
            let b = &mut program.buckets;
            b.outstanding_minor = b
                .outstanding_minor
                .checked_sub(*amount_minor)
                .ok_or_else(|| corrupt(format!("program/{}", claim.program_id)))?;
            b.spent_minor += amount_minor;
            save_program(state, &program);
            if let Some(creditor) = advanced_by {
                let key = settlement_key(&claim.funding_region, creditor);
                let mut position: SettlementPosition =
                    state.get(&key)?.unwrap_or(SettlementPosition {
                        debtor: claim.funding_region.clone(),
                        creditor: creditor.clone(),
                        amount_minor: 0,
                    });
                position.amount_minor = position
                    .amount_minor
                    .checked_add(*amount_minor)
                    .ok_or_else(|| corrupt(String::from_utf8_lossy(&key).into_owned()))?;
                save_position(state, &position);
                super::settlement::record_payout(
                    state,
                    &super::settlement::AdvancedPayout {
                        order_id: order_id.clone(),
                        debtor: claim.funding_region.clone(),
                        creditor: creditor.clone(),
                        amount_minor: *amount_minor,
                        log_index: ctx.index,
                        paid_at_ms: ctx.node_time_ms,
                        statement_id: None,
                    },
                );
            }
        }
        Event::ClaimClawedBack {
            order_id,
            receivable_minor,
            reason,
        } => {
            let claim = update_claim(state, order_id, |c| {
                c.status = ClaimStatus::ClawedBack;
                c.clawback_reason = Some(reason.clone());
            })?;
            move_between_buckets(
                state,
                &claim.program_id,
                *receivable_minor,
                |b| &mut b.spent_minor,
                |b| &mut b.clawed_back_minor,
            )?;
        }
        Event::ClaimRecovered {
            order_id,
            amount_minor,
            owed_minor,
            ..
        } => {
            let claim = update_claim(state, order_id, |c| {
                c.recovered_minor += amount_minor;
                if *owed_minor == 0 {
                    c.status = ClaimStatus::Recovered;
                }
            })?;
            move_between_buckets(
                state,
                &claim.program_id,
                *amount_minor,
                |b| &mut b.clawed_back_minor,
                |b| &mut b.recovered_minor,
            )?;
        }
        _ => unreachable!("claims::evolve is called only for claim events"),
    }
    Ok(())
}
