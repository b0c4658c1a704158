//! Vouchers: issuance against a program's budget, freeze and unfreeze, revocation, and expiry
//! (a time-driven command the node issues itself). Value that leaves a voucher unspent goes back
//! to its program's budget, into the bucket that says why.

use serde::{Deserialize, Serialize};

use super::money::AmountMinor;
use super::parties::{load_party, PartyRecord, Role};
use super::programs::{load_qualification, require_program, save_program};
use super::rejection::state_word;
use super::state::{StateError, StateRead, StateWrite};
use super::{ApplyContext, ApplyError, Event, Rejection};
use crate::limits::MAX_REASON_BYTES;
use crate::types::{RecordId, RegionId, TimeMs, TimestampMs};
use vledger_tlog::keys::PublicKey;

/// Where a voucher is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VoucherStatus {
    Active,
    Revoked,
    Expired,
}

/// A voucher as the state holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VoucherRecord {
    pub voucher_id: RecordId,
    pub program_id: RecordId,
    pub holder: PublicKey,
    /// The region whose budget funds it (separate from where it is spent).
    pub funding_region: RegionId,
    pub face_value_minor: u64,
    /// Value not yet spent or returned.
    pub balance_minor: u64,
    pub status: VoucherStatus,
    pub frozen: bool,
    pub issued_at_ms: TimeMs,
    pub expires_at_ms: TimeMs,
    /// Value committed to open orders (taken from `balance_minor` when an order is placed).
    #[serde(default)]
    pub committed_minor: u64,
    /// Orders placed with this voucher and not cancelled.
    #[serde(default)]
    pub uses: u32,
}

/// Body of `voucher.issue`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueVoucherBody {
    pub voucher_id: RecordId,
    pub program_id: RecordId,
    pub holder: PublicKey,
    pub face_value_minor: AmountMinor,
    /// Defaults to the end of the program's validity window; may not be later.
    #[serde(default)]
    pub expires_at_ms: Option<TimestampMs>,
}

/// Body of `voucher.freeze`, `voucher.unfreeze` and `voucher.revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoucherActionBody {
    pub voucher_id: RecordId,
    pub reason: String,
}

/// Body of `voucher.expire`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpireVoucherBody {
    pub voucher_id: RecordId,
}

/// Prefix of these records in the state, followed by the record's id.
pub const VOUCHER_PREFIX: &[u8] = b"voucher/";

pub(super) fn voucher_key(id: &RecordId) -> Vec<u8> {
    [VOUCHER_PREFIX, id.as_str().as_bytes()].concat()
}

/// Prefix of the expiry index: `vexp/` ‖ expiry time (u64 BE) ‖ voucher id. The node scans it
/// to issue `voucher.expire` commands; it is not part of any rule.
pub const EXPIRY_INDEX_PREFIX: &[u8] = b"vexp/";

/// The expiry index key of a voucher.
pub fn expiry_index_key(expires_at_ms: TimeMs, id: &RecordId) -> Vec<u8> {
    let mut key = EXPIRY_INDEX_PREFIX.to_vec();
    key.extend_from_slice(&expires_at_ms.to_be_bytes());
    key.extend_from_slice(id.as_str().as_bytes());
    key
}

/// Reads a voucher.
pub fn load_voucher<S: StateRead>(
    state: &S,
    id: &RecordId,
) -> Result<Option<VoucherRecord>, StateError> {
    state.get(&voucher_key(id))
}

pub(super) fn require_voucher<S: StateRead>(
    state: &S,
    id: &RecordId,
) -> Result<VoucherRecord, ApplyError> {
    load_voucher(state, id)?.ok_or_else(|| Rejection::VoucherNotFound(id.to_string()).into())
}

fn require_active(voucher: &VoucherRecord) -> Result<(), Rejection> {
    match voucher.status {
        VoucherStatus::Active => Ok(()),
        status => Err(Rejection::VoucherNotActive {
            voucher_id: voucher.voucher_id.to_string(),
            status: state_word(&status),
        }),
    }
}

fn check_reason(reason: &str) -> Result<(), Rejection> {
    super::parties::check_text("reason", reason, MAX_REASON_BYTES)
}

pub(super) fn decide_issue<S: StateRead>(
    state: &S,
    ctx: &ApplyContext,
    body: &IssueVoucherBody,
) -> Result<Vec<Event>, ApplyError> {
    let program = require_program(state, &body.program_id)?;
    let terms = &program.terms;
    if ctx.node_time_ms < terms.valid_from_ms.get()
        || ctx.node_time_ms >= terms.valid_until_ms.get()
    {
        return Err(Rejection::ProgramNotOpen {
            program_id: terms.program_id.to_string(),
        }
        .into());
    }
    if load_voucher(state, &body.voucher_id)?.is_some() {
        return Err(Rejection::VoucherExists(body.voucher_id.to_string()).into());
    }
    let holder = load_party(state, &body.holder)?.ok_or(Rejection::PartyNotFound)?;
    if holder.role != Role::Enterprise {
        return Err(Rejection::WrongPartyRole {
            needed: "enterprise",
            actual: holder.role.as_str().into(),
        }
        .into());
    }
    if holder.revoked_at.is_some() {
        return Err(Rejection::PartyInactive.into());
    }
    match load_qualification(state, &body.program_id, &body.holder)? {
        Some(q) if q.expires_at_ms > ctx.node_time_ms => {}
        Some(_) => return Err(Rejection::QualificationExpired.into()),
        None => return Err(Rejection::NotQualified.into()),
    }
    let face = body.face_value_minor;
    if face.is_zero() {
        return Err(Rejection::InvalidField {
            field: "face_value_minor",
            reason: "must be positive".into(),
        }
        .into());
    }
    if face > terms.caps.per_voucher_minor {
        return Err(Rejection::CapExceeded {
            cap: "per_voucher",
            limit_minor: terms.caps.per_voucher_minor.get(),
            requested_minor: face.get(),
        }
        .into());
    }
    if face.get() > program.buckets.unissued_minor {
        return Err(Rejection::BudgetExhausted {
            available_minor: program.buckets.unissued_minor,
            requested_minor: face.get(),
        }
        .into());
    }
    let expires_at_ms = body.expires_at_ms.unwrap_or(terms.valid_until_ms).get();
    if expires_at_ms > terms.valid_until_ms.get() || expires_at_ms <= ctx.node_time_ms {
        return Err(Rejection::InvalidField {
            field: "expires_at_ms",
            reason: "must be in the future and not after the program's valid_until_ms".into(),
        }
        .into());
    }
    Ok(vec![Event::VoucherIssued {
        voucher_id: body.voucher_id.clone(),
        program_id: body.program_id.clone(),
        holder: body.holder,
        funding_region: program.region.clone(),
        face_value_minor: face.get(),
        expires_at_ms,
    }])
}

pub(super) fn decide_freeze<S: StateRead>(
    state: &S,
    actor: &PartyRecord,
    body: &VoucherActionBody,
    freeze: bool,
) -> Result<Vec<Event>, ApplyError> {
    check_reason(&body.reason)?;
    let voucher = require_voucher(state, &body.voucher_id)?;
    // A voucher that ended (expired or revoked) may still be frozen while value is committed
    // to its orders: the freeze holds their claims' payouts. A freeze is always liftable.
    if freeze && voucher.committed_minor == 0 {
        require_active(&voucher)?;
    }
    let event = match (freeze, voucher.frozen) {
        (true, true) => return Err(Rejection::AlreadyFrozen.into()),
        (false, false) => return Err(Rejection::NotFrozen.into()),
        (true, false) => Event::VoucherFrozen {
            voucher_id: body.voucher_id.clone(),
            by: actor.key,
            reason: body.reason.clone(),
        },
        (false, true) => Event::VoucherUnfrozen {
            voucher_id: body.voucher_id.clone(),
            by: actor.key,
            reason: body.reason.clone(),
        },
    };
    Ok(vec![event])
}

pub(super) fn decide_revoke<S: StateRead>(
    state: &S,
    body: &VoucherActionBody,
) -> Result<Vec<Event>, ApplyError> {
    check_reason(&body.reason)?;
    let voucher = require_voucher(state, &body.voucher_id)?;
    require_active(&voucher)?;
    Ok(vec![Event::VoucherRevoked {
        voucher_id: body.voucher_id.clone(),
        returned_minor: voucher.balance_minor,
        reason: body.reason.clone(),
    }])
}

pub(super) fn decide_expire<S: StateRead>(
    state: &S,
    ctx: &ApplyContext,
    body: &ExpireVoucherBody,
) -> Result<Vec<Event>, ApplyError> {
    let voucher = require_voucher(state, &body.voucher_id)?;
    require_active(&voucher)?;
    if ctx.node_time_ms < voucher.expires_at_ms {
        return Err(Rejection::NotYetExpired {
            expires_at_ms: voucher.expires_at_ms,
        }
        .into());
    }
    Ok(vec![Event::VoucherExpired {
        voucher_id: body.voucher_id.clone(),
        returned_minor: voucher.balance_minor,
    }])
}

pub(super) fn corrupt(what: String) -> StateError {
    StateError::Corrupt {
        key: what,
        reason: "a value invariant would break".into(),
    }
}

/// Moves `amount` out of a program's outstanding bucket into another one.
pub(super) fn return_to_budget<S: StateRead + StateWrite>(
    state: &mut S,
    program_id: &RecordId,
    amount: u64,
    into_expired: bool,
) -> Result<(), StateError> {
    let mut program = super::programs::load_program(state, program_id)?
        .ok_or_else(|| corrupt(format!("program/{program_id}")))?;
    let b = &mut program.buckets;
    b.outstanding_minor = b
        .outstanding_minor
        .checked_sub(amount)
        .ok_or_else(|| corrupt(format!("program/{program_id}")))?;
    let target = if into_expired {
        &mut b.expired_minor
    } else {
        &mut b.revoked_minor
    };
    *target = target
        .checked_add(amount)
        .ok_or_else(|| corrupt(format!("program/{program_id}")))?;
    save_program(state, &program);
    Ok(())
}

pub(super) fn evolve<S: StateRead + StateWrite>(
    state: &mut S,
    ctx: &ApplyContext,
    event: &Event,
) -> Result<(), StateError> {
    match event {
        Event::VoucherIssued {
            voucher_id,
            program_id,
            holder,
            funding_region,
            face_value_minor,
            expires_at_ms,
        } => {
            let mut program = super::programs::load_program(state, program_id)?
                .ok_or_else(|| corrupt(format!("program/{program_id}")))?;
            let b = &mut program.buckets;
            b.unissued_minor = b
                .unissued_minor
                .checked_sub(*face_value_minor)
                .ok_or_else(|| corrupt(format!("program/{program_id}")))?;
            b.outstanding_minor = b
                .outstanding_minor
                .checked_add(*face_value_minor)
                .ok_or_else(|| corrupt(format!("program/{program_id}")))?;
            save_program(state, &program);
            let voucher = VoucherRecord {
                voucher_id: voucher_id.clone(),
                program_id: program_id.clone(),
                holder: *holder,
                funding_region: funding_region.clone(),
                face_value_minor: *face_value_minor,
                balance_minor: *face_value_minor,
                status: VoucherStatus::Active,
                frozen: false,
                issued_at_ms: ctx.node_time_ms,
                expires_at_ms: *expires_at_ms,
                committed_minor: 0,
                uses: 0,
            };
            state.put(voucher_key(voucher_id), &voucher);
            state.put_raw(expiry_index_key(*expires_at_ms, voucher_id), Vec::new());
        }
        Event::VoucherFrozen { voucher_id, .. } | Event::VoucherUnfrozen { voucher_id, .. } => {
            let mut voucher = load_voucher(state, voucher_id)?
                .ok_or_else(|| corrupt(format!("voucher/{voucher_id}")))?;
            voucher.frozen = matches!(event, Event::VoucherFrozen { .. });
            state.put(voucher_key(voucher_id), &voucher);
        }
        Event::VoucherRevoked {
            voucher_id,
            returned_minor,
            ..
        }
        | Event::VoucherExpired {
            voucher_id,
            returned_minor,
        } => {
            let mut voucher = load_voucher(state, voucher_id)?
                .ok_or_else(|| corrupt(format!("voucher/{voucher_id}")))?;
            let expired = matches!(event, Event::VoucherExpired { .. });
            return_to_budget(state, &voucher.program_id, *returned_minor, expired)?;
            voucher.balance_minor = voucher
                .balance_minor
                .checked_sub(*returned_minor)
                .ok_or_else(|| corrupt(format!("voucher/{voucher_id}")))?;
            voucher.status = if expired {
                VoucherStatus::Expired
            } else {
                VoucherStatus::Revoked
            };
            state.delete(expiry_index_key(voucher.expires_at_ms, voucher_id));
            state.put(voucher_key(voucher_id), &voucher);
        }
        _ => unreachable!("vouchers::evolve is called only for voucher events"),
    }
    Ok(())
}
