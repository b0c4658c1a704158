//! Settlement statements between two regions: the payouts one region advanced for another's
//! claims, netted per period into a statement that both regions' admins sign and that closes
//! when its payment is recorded.
//!
//! A claim lives in the log of its voucher's funding region. When the agency's region advances
//! the payout (`cross_region_payer: agency_region`), the funding region owes it the amount: the
//! payout adds to the position `settle/<debtor>/<creditor>` ([`crate::claims`]) and is kept here
//! as an [`AdvancedPayout`], open until a statement nets it. A statement lives in the debtor's
//! log: its debtor's admin proposes it for one creditor and one period, naming every open
//! payout of that period as a line (the entry that paid it: region, index, leaf hash; the
//! order and the amount) with the gross amounts and the net; the state machine recomputes the
//! lines from the open payouts and refuses (`statement-mismatch`) a statement that differs in
//! any of them. It takes effect when an admin of each region has signed it (the creditor's
//! admin, a party of another region, signs on the debtor's node) and closes when the debtor's
//! admin records its payment, which takes the netted amount off the position.
//!
//! Only the lines of the debtor's own log are netted here: payouts the debtor region advanced
//! for the creditor's claims live in the creditor's log and are settled by a statement there,
//! so every statement's `gross_creditor_to_debtor_minor` is 0 and a line in that direction is
//! refused.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::claims::{load_position, save_position};
use super::money::AmountMinor;
use super::parties::{check_text, PartyRecord, RegionRecord};
use super::rejection::state_word;
use super::state::{StateError, StateRead, StateWrite};
use super::vouchers::corrupt;
use super::{ApplyContext, ApplyError, Event, Rejection};
use crate::limits::{MAX_REFERENCE_BYTES, MAX_STATEMENT_LINES};
use crate::types::{LogIndex, RecordId, RegionId, TimeMs, TimestampMs};
use vledger_tlog::keys::PublicKey;

/// Which way a line's money goes between the statement's two regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// A payout the creditor advanced for a claim of the debtor's log: the debtor owes it.
    DebtorToCreditor,
    /// A payout the debtor advanced for a claim of the creditor's log (not netted yet: such
    /// payouts are settled by a statement in the creditor's log).
    CreditorToDebtor,
}

/// One line of a statement: one advanced payout, named by the entry that paid it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatementLine {
    /// The region whose log holds the payout entry.
    pub region: RegionId,
    /// The index of the `claim.pay` entry in that log.
    pub log_index: LogIndex,
    /// That entry's leaf hash (RFC 6962), standard base64 of 32 bytes.
    #[schema(min_length = 44, max_length = 44)]
    pub leaf_hash: String,
    /// The order whose claim was paid (a claim's id is its order's).
    pub order_id: RecordId,
    pub amount_minor: AmountMinor,
    pub direction: Direction,
}

/// Body of `settlement.propose`. The period is `month` (a calendar month `YYYY-MM` in the
/// region's time zone), or `from_ms` and `until_ms` (`[from_ms, until_ms)`), or, with neither,
/// the calendar month before the entry's; it must have ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeStatementBody {
    pub statement_id: RecordId,
    /// The region owed: the one that advanced the payouts.
    pub creditor: RegionId,
    /// A calendar month, `YYYY-MM`, in the region's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9]{4}-[0-9]{2}$", min_length = 7, max_length = 7)]
    pub month: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_ms: Option<TimestampMs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<TimestampMs>,
    /// Every open payout of the period, in the order they were paid (at most 64).
    #[schema(max_items = 64)]
    pub lines: Vec<StatementLine>,
    pub gross_debtor_to_creditor_minor: AmountMinor,
    pub gross_creditor_to_debtor_minor: AmountMinor,
    /// What the debtor pays: the gross owed to the creditor less the gross owed to the debtor.
    pub net_minor: AmountMinor,
}

/// Body of `settlement.sign`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignStatementBody {
    pub statement_id: RecordId,
}

/// Body of `settlement.record_payment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordStatementPaymentBody {
    pub statement_id: RecordId,
    /// The statement's net, paid.
    pub amount_minor: AmountMinor,
    /// The payment's bank or treasury reference.
    pub reference: String,
}

/// Where a statement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatementStatus {
    /// Proposed; waiting for both regions' signatures.
    Proposed,
    /// Signed by both regions: in effect, waiting for its payment.
    Signed,
    /// Paid: closed, its amounts taken off the position.
    Paid,
}

/// A region's signature of a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatementSignature {
    pub region: RegionId,
    pub signer: PublicKey,
    pub at_ms: TimeMs,
}

/// The payment that closed a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatementPayment {
    pub amount_minor: u64,
    pub reference: String,
    pub by: PublicKey,
    pub paid_at_ms: TimeMs,
}

/// A settlement statement, in its debtor's log (keyed by its id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatementRecord {
    pub statement_id: RecordId,
    pub debtor: RegionId,
    pub creditor: RegionId,
    /// The period, `[from_ms, until_ms)`.
    pub from_ms: TimeMs,
    pub until_ms: TimeMs,
    pub lines: Vec<StatementLine>,
    pub gross_debtor_to_creditor_minor: u64,
    pub gross_creditor_to_debtor_minor: u64,
    pub net_minor: u64,
    pub status: StatementStatus,
    pub proposed_by: PublicKey,
    pub proposed_at_ms: TimeMs,
    /// At most one per region, in the order they were given.
    pub signatures: Vec<StatementSignature>,
    pub payment: Option<StatementPayment>,
}

/// A payout the agency's region advanced for a claim of this log: what a statement line names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdvancedPayout {
    pub order_id: RecordId,
    pub debtor: RegionId,
    pub creditor: RegionId,
    pub amount_minor: u64,
    /// The `claim.pay` entry.
    pub log_index: LogIndex,
    pub paid_at_ms: TimeMs,
    /// The statement that nets it, once one does.
    pub statement_id: Option<RecordId>,
}

/// Prefix of statements, followed by the statement's id.
pub const STATEMENT_PREFIX: &[u8] = b"stmt/";
/// Prefix of advanced payouts, followed by the order's id.
const PAYOUT_PREFIX: &[u8] = b"spayout/";
/// Prefix of the open payouts by creditor and time: `sopen/<creditor>/` then the payout time
/// and the entry index (big-endian u64 each); the value is the order's id.
const OPEN_PREFIX: &[u8] = b"sopen/";

fn statement_key(id: &RecordId) -> Vec<u8> {
    [STATEMENT_PREFIX, id.as_str().as_bytes()].concat()
}

fn payout_key(order: &RecordId) -> Vec<u8> {
    [PAYOUT_PREFIX, order.as_str().as_bytes()].concat()
}

fn open_prefix(creditor: &RegionId) -> Vec<u8> {
    [OPEN_PREFIX, creditor.as_str().as_bytes(), b"/"].concat()
}

fn open_key(payout: &AdvancedPayout) -> Vec<u8> {
    let mut key = open_prefix(&payout.creditor);
    key.extend_from_slice(&payout.paid_at_ms.to_be_bytes());
    key.extend_from_slice(&payout.log_index.to_be_bytes());
    key
}

/// Reads a statement.
pub fn load_statement<S: StateRead>(
    state: &S,
    id: &RecordId,
) -> Result<Option<StatementRecord>, StateError> {
    state.get(&statement_key(id))
}

/// Reads the advanced payout of an order's claim, if its payout was advanced.
pub fn load_payout<S: StateRead>(
    state: &S,
    order: &RecordId,
) -> Result<Option<AdvancedPayout>, StateError> {
    state.get(&payout_key(order))
}

/// Records an advanced payout, open until a statement nets it ([`crate::claims`] calls it when
/// it folds a `claim.paid` whose payout the agency's region advanced).
pub(super) fn record_payout<S: StateWrite>(state: &mut S, payout: &AdvancedPayout) {
    state.put(open_key(payout), &payout.order_id);
    state.put(payout_key(&payout.order_id), payout);
}

/// The open payouts owed to `creditor` that were paid in `[from_ms, until_ms)`, in the order
/// they were paid: at most `limit`.
pub fn open_payouts<S: StateRead>(
    state: &S,
    creditor: &RegionId,
    from_ms: TimeMs,
    until_ms: TimeMs,
    limit: usize,
) -> Result<Vec<AdvancedPayout>, StateError> {
    let prefix = open_prefix(creditor);
    let mut start = prefix.clone();
    start.extend_from_slice(&from_ms.to_be_bytes());
    let mut payouts = Vec::new();
    for (key, value) in state.scan_prefix_from(&prefix, &start, limit)? {
        let time = key
            .get(prefix.len()..prefix.len() + 8)
            .ok_or_else(|| corrupt(String::from_utf8_lossy(&key).into_owned()))?;
        if u64::from_be_bytes(time.try_into().expect("8 bytes")) >= until_ms {
            break;
        }
        let order: RecordId = super::decode_record(&key, &value)?;
        let payout =
            load_payout(state, &order)?.ok_or_else(|| corrupt(format!("spayout/{order}")))?;
        payouts.push(payout);
    }
    Ok(payouts)
}

/// The period a proposal names, `[from_ms, until_ms)`.
pub fn statement_period(
    region: &RegionRecord,
    node_time_ms: TimeMs,
    body: &ProposeStatementBody,
) -> Result<(TimeMs, TimeMs), Rejection> {
    let invalid = |field: &'static str, reason: &str| Rejection::InvalidField {
        field,
        reason: reason.into(),
    };
    let tz: chrono_tz::Tz = region
        .time_zone
        .parse()
        .map_err(|_| invalid("month", "the region's time zone is not known"))?;
    let (from, until) = match (&body.month, body.from_ms, body.until_ms) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(invalid(
                "month",
                "give a month, or from_ms and until_ms, not both",
            ))
        }
        (Some(month), None, None) => {
            let (year, month) = parse_month(month)
                .ok_or_else(|| invalid("month", "a calendar month is written YYYY-MM"))?;
            month_bounds(tz, year, month).ok_or_else(|| invalid("month", "no such month"))?
        }
        (None, Some(from), Some(until)) => (from.get(), until.get()),
        (None, Some(_), None) => return Err(invalid("until_ms", "from_ms needs until_ms")),
        (None, None, Some(_)) => return Err(invalid("from_ms", "until_ms needs from_ms")),
        (None, None, None) => {
            use chrono::{Datelike, TimeZone};
            let now = tz
                .timestamp_millis_opt(i64::try_from(node_time_ms).unwrap_or(i64::MAX))
                .single()
                .ok_or_else(|| invalid("month", "the entry's time has no calendar date"))?;
            let (year, month) = match now.month() {
                1 => (now.year() - 1, 12),
                m => (now.year(), m - 1),
            };
            month_bounds(tz, year, month).ok_or_else(|| invalid("month", "no such month"))?
        }
    };
    if from >= until {
        return Err(invalid("until_ms", "the period must end after it starts"));
    }
    if until > node_time_ms {
        return Err(invalid(
            "until_ms",
            "the period has not ended: a statement nets a period that is over",
        ));
    }
    Ok((from, until))
}

fn parse_month(text: &str) -> Option<(i32, u32)> {
    let (year, month) = text.split_once('-')?;
    if year.len() != 4
        || month.len() != 2
        || !(year.bytes().chain(month.bytes())).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let month: u32 = month.parse().ok()?;
    (1..=12)
        .contains(&month)
        .then_some((year.parse().ok()?, month))
}

/// The first instant of a calendar month and of the next one, in `tz`.
fn month_bounds(tz: chrono_tz::Tz, year: i32, month: u32) -> Option<(TimeMs, TimeMs)> {
    use chrono::TimeZone;
    let start = |y: i32, m: u32| -> Option<TimeMs> {
        let t = tz.with_ymd_and_hms(y, m, 1, 0, 0, 0).earliest()?;
        u64::try_from(t.timestamp_millis()).ok()
    };
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    Some((start(year, month)?, start(next_year, next_month)?))
}

fn mismatch(detail: String) -> ApplyError {
    Rejection::StatementMismatch(detail).into()
}

fn require_statement<S: StateRead>(
    state: &S,
    id: &RecordId,
) -> Result<StatementRecord, ApplyError> {
    load_statement(state, id)?.ok_or_else(|| Rejection::StatementNotFound(id.to_string()).into())
}

pub(super) fn decide_propose<S: StateRead>(
    state: &S,
    ctx: &ApplyContext,
    region: &RegionRecord,
    actor: &PartyRecord,
    body: &ProposeStatementBody,
) -> Result<Vec<Event>, ApplyError> {
    if load_statement(state, &body.statement_id)?.is_some() {
        return Err(Rejection::StatementExists(body.statement_id.to_string()).into());
    }
    if body.creditor == ctx.region {
        return Err(Rejection::InvalidField {
            field: "creditor",
            reason: "a region does not settle with itself".into(),
        }
        .into());
    }
    if body.lines.len() > MAX_STATEMENT_LINES {
        return Err(Rejection::InvalidField {
            field: "lines",
            reason: format!(
                "a statement has at most {MAX_STATEMENT_LINES} lines; propose a shorter period"
            ),
        }
        .into());
    }
    let (from_ms, until_ms) = statement_period(region, ctx.node_time_ms, body)?;
    // Each line is checked on its own first, so that a refusal names what is wrong with it.
    let mut named: Vec<&RecordId> = Vec::with_capacity(body.lines.len());
    for (i, line) in body.lines.iter().enumerate() {
        let n = i + 1;
        if B64
            .decode(&line.leaf_hash)
            .map_or(true, |bytes| bytes.len() != 32)
        {
            return Err(Rejection::InvalidField {
                field: "lines",
                reason: format!("line {n}: leaf_hash is standard base64 of 32 bytes"),
            }
            .into());
        }
        if line.direction == Direction::CreditorToDebtor || line.region != ctx.region {
            return Err(mismatch(format!(
                "line {n}: only payouts of this log (`{}`), owed by it to `{}`, are netted here; \
                 payouts owed to `{}` are settled by a statement in the other region's log",
                ctx.region, body.creditor, ctx.region
            )));
        }
        if named.contains(&&line.order_id) {
            return Err(mismatch(format!(
                "line {n} names the payout of order `{}` again",
                line.order_id
            )));
        }
        named.push(&line.order_id);
        let Some(payout) = load_payout(state, &line.order_id)? else {
            return Err(mismatch(format!(
                "line {n}: order `{}` has no payout advanced by another region",
                line.order_id
            )));
        };
        if let Some(other) = &payout.statement_id {
            return Err(mismatch(format!(
                "line {n}: the payout of order `{}` is already settled by statement `{other}`",
                line.order_id
            )));
        }
        if payout.creditor != body.creditor {
            return Err(mismatch(format!(
                "line {n}: the payout of order `{}` was advanced by `{}`, not `{}`",
                line.order_id, payout.creditor, body.creditor
            )));
        }
        if payout.log_index != line.log_index {
            return Err(mismatch(format!(
                "line {n}: the payout of order `{}` is entry {}, not {}",
                line.order_id, payout.log_index, line.log_index
            )));
        }
        if payout.amount_minor != line.amount_minor.get() {
            return Err(mismatch(format!(
                "line {n}: the payout of order `{}` is {}, not {}",
                line.order_id,
                payout.amount_minor,
                line.amount_minor.get()
            )));
        }
        if !(from_ms..until_ms).contains(&payout.paid_at_ms) {
            return Err(mismatch(format!(
                "line {n}: the payout of order `{}` was made at {}, outside the period [{from_ms}, {until_ms})",
                line.order_id, payout.paid_at_ms
            )));
        }
    }
    // Then the whole: exactly the open payouts of the period, in the order they were paid.
    let open = open_payouts(
        state,
        &body.creditor,
        from_ms,
        until_ms,
        MAX_STATEMENT_LINES + 1,
    )?;
    if open.len() > MAX_STATEMENT_LINES {
        return Err(mismatch(format!(
            "the period holds more than {MAX_STATEMENT_LINES} open payouts; propose a shorter period"
        )));
    }
    if let Some(missing) = open.iter().find(|p| !named.contains(&&p.order_id)) {
        return Err(mismatch(format!(
            "the period holds {} open payouts owed to `{}`; the statement leaves out order `{}` (entry {})",
            open.len(),
            body.creditor,
            missing.order_id,
            missing.log_index
        )));
    }
    let in_order = open.iter().map(|p| &p.order_id).eq(named.iter().copied());
    if !in_order {
        return Err(mismatch(
            "the lines are not in the order the payouts were made".into(),
        ));
    }
    let gross_owed: u64 = open.iter().map(|p| p.amount_minor).sum();
    if body.gross_debtor_to_creditor_minor.get() != gross_owed {
        return Err(mismatch(format!(
            "the lines owed to `{}` add up to {gross_owed}, not {}",
            body.creditor,
            body.gross_debtor_to_creditor_minor.get()
        )));
    }
    if body.gross_creditor_to_debtor_minor.get() != 0 {
        return Err(mismatch(format!(
            "no line is owed to `{}`: the gross owed to it is 0, not {}",
            ctx.region,
            body.gross_creditor_to_debtor_minor.get()
        )));
    }
    if body.net_minor.get() != gross_owed {
        return Err(mismatch(format!(
            "the statement nets to {gross_owed}, not {}",
            body.net_minor.get()
        )));
    }
    if open.is_empty() {
        return Err(mismatch(format!(
            "no open payout owed to `{}` was made in the period [{from_ms}, {until_ms})",
            body.creditor
        )));
    }
    Ok(vec![Event::StatementProposed {
        statement_id: body.statement_id.clone(),
        debtor: ctx.region.clone(),
        creditor: body.creditor.clone(),
        from_ms,
        until_ms,
        lines: body.lines.clone(),
        gross_debtor_to_creditor_minor: gross_owed,
        gross_creditor_to_debtor_minor: 0,
        net_minor: gross_owed,
        proposed_by: actor.key,
    }])
}

pub(super) fn decide_sign<S: StateRead>(
    state: &S,
    actor: &PartyRecord,
    body: &SignStatementBody,
) -> Result<Vec<Event>, ApplyError> {
    let statement = require_statement(state, &body.statement_id)?;
    // The permission table admits an admin of the debtor's region or of the creditor's only.
    let region = actor.home_region.clone();
    if statement.signatures.iter().any(|s| s.region == region) {
        return Err(Rejection::StatementAlreadySigned {
            region: region.to_string(),
        }
        .into());
    }
    if statement.status != StatementStatus::Proposed {
        return Err(Rejection::StatementWrongState {
            status: state_word(&statement.status),
        }
        .into());
    }
    let in_effect = statement.signatures.len() + 1 == 2;
    Ok(vec![Event::StatementSigned {
        statement_id: body.statement_id.clone(),
        region,
        signer: actor.key,
        in_effect,
    }])
}

pub(super) fn decide_record_payment<S: StateRead>(
    state: &S,
    actor: &PartyRecord,
    body: &RecordStatementPaymentBody,
) -> Result<Vec<Event>, ApplyError> {
    check_text("reference", &body.reference, MAX_REFERENCE_BYTES)?;
    let statement = require_statement(state, &body.statement_id)?;
    if statement.status != StatementStatus::Signed {
        return Err(Rejection::StatementWrongState {
            status: state_word(&statement.status),
        }
        .into());
    }
    if body.amount_minor.get() != statement.net_minor {
        return Err(mismatch(format!(
            "the statement nets to {}; the payment records {}",
            statement.net_minor,
            body.amount_minor.get()
        )));
    }
    Ok(vec![Event::StatementPaid {
        statement_id: body.statement_id.clone(),
        amount_minor: statement.net_minor,
        reference: body.reference.clone(),
        by: actor.key,
    }])
}

fn update_statement<S: StateRead + StateWrite>(
    state: &mut S,
    id: &RecordId,
    change: impl FnOnce(&mut StatementRecord),
) -> Result<StatementRecord, StateError> {
    let mut statement = load_statement(state, id)?.ok_or_else(|| corrupt(format!("stmt/{id}")))?;
    change(&mut statement);
    state.put(statement_key(id), &statement);
    Ok(statement)
}

pub(super) fn evolve<S: StateRead + StateWrite>(
    state: &mut S,
    ctx: &ApplyContext,
    event: &Event,
) -> Result<(), StateError> {
    match event {
        Event::StatementProposed {
            statement_id,
            debtor,
            creditor,
            from_ms,
            until_ms,
            lines,
            gross_debtor_to_creditor_minor,
            gross_creditor_to_debtor_minor,
            net_minor,
            proposed_by,
        } => {
            for line in lines {
                let mut payout = load_payout(state, &line.order_id)?
                    .ok_or_else(|| corrupt(format!("spayout/{}", line.order_id)))?;
                if payout.statement_id.is_some() {
                    return Err(corrupt(format!("spayout/{}", line.order_id)));
                }
                state.delete(open_key(&payout));
                payout.statement_id = Some(statement_id.clone());
                state.put(payout_key(&line.order_id), &payout);
            }
            let statement = StatementRecord {
                statement_id: statement_id.clone(),
                debtor: debtor.clone(),
                creditor: creditor.clone(),
                from_ms: *from_ms,
                until_ms: *until_ms,
                lines: lines.clone(),
                gross_debtor_to_creditor_minor: *gross_debtor_to_creditor_minor,
                gross_creditor_to_debtor_minor: *gross_creditor_to_debtor_minor,
                net_minor: *net_minor,
                status: StatementStatus::Proposed,
                proposed_by: *proposed_by,
                proposed_at_ms: ctx.node_time_ms,
                signatures: Vec::new(),
                payment: None,
            };
            state.put(statement_key(statement_id), &statement);
        }
        Event::StatementSigned {
            statement_id,
            region,
            signer,
            in_effect,
        } => {
            update_statement(state, statement_id, |s| {
                s.signatures.push(StatementSignature {
                    region: region.clone(),
                    signer: *signer,
                    at_ms: ctx.node_time_ms,
                });
                if *in_effect {
                    s.status = StatementStatus::Signed;
                }
            })?;
        }
        Event::StatementPaid {
            statement_id,
            amount_minor,
            reference,
            by,
        } => {
            let statement = update_statement(state, statement_id, |s| {
                s.status = StatementStatus::Paid;
                s.payment = Some(StatementPayment {
                    amount_minor: *amount_minor,
                    reference: reference.clone(),
                    by: *by,
                    paid_at_ms: ctx.node_time_ms,
                });
            })?;
            let mut position = load_position(state, &statement.debtor, &statement.creditor)?
                .ok_or_else(|| {
                    corrupt(format!(
                        "settle/{}/{}",
                        statement.debtor, statement.creditor
                    ))
                })?;
            // A position only ever nets payouts it holds: it never goes below zero.
            position.amount_minor = position
                .amount_minor
                .checked_sub(statement.gross_debtor_to_creditor_minor)
                .unwrap_or_else(|| {
                    panic!(
                        "settlement position {}/{} would go below zero: {} less statement `{}`'s {}",
                        statement.debtor,
                        statement.creditor,
                        position.amount_minor,
                        statement.statement_id,
                        statement.gross_debtor_to_creditor_minor
                    )
                });
            save_position(state, &position);
        }
        _ => unreachable!("settlement::evolve is called only for settlement events"),
    }
    Ok(())
}
