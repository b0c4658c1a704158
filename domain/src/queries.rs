//! The reads the HTTP interface and the CLI make of the projections, as pure functions over
//! [`StateRead`]: record lists in id order with filters and cursors, fraud flags by entry, and
//! settlement positions, and the commands the node owes when a time passes. Record keys and
//! their prefixes stay inside the domain; a caller names the record type and gets records and a
//! cursor back.

use serde::de::DeserializeOwned;

use crate::claims::{ClaimRecord, SettlementPosition, SETTLEMENT_PREFIX};
use crate::limits::{
    LIST_SCAN_CHUNK, MAX_AUTO_CONFIRMS_PER_SWEEP, MAX_EXPIRIES_PER_SWEEP, MAX_FLAGS_PAGE,
    MAX_LIST_SCAN, MAX_UNCLAIMED_RELEASES_PER_SWEEP, MIN_FLAGS_PAGE,
};
use crate::orders::{FraudFlagRecord, OrderRecord, FRAUD_FLAG_PREFIX};
use crate::programs::ProgramRecord;
use crate::state::{decode_record, StateError, StateRead};
use crate::types::{LogIndex, RecordId, TimeMs};
use crate::vouchers::VoucherRecord;
use crate::{claims, orders, programs, vouchers};

/// A record type kept in id order under one key prefix, so that it can be listed.
pub trait Listed: DeserializeOwned {
    /// The prefix of its keys; the record's id follows it.
    const PREFIX: &'static [u8];
}

impl Listed for ProgramRecord {
    const PREFIX: &'static [u8] = programs::PROGRAM_PREFIX;
}
impl Listed for VoucherRecord {
    const PREFIX: &'static [u8] = vouchers::VOUCHER_PREFIX;
}
impl Listed for OrderRecord {
    const PREFIX: &'static [u8] = orders::ORDER_PREFIX;
}
impl Listed for ClaimRecord {
    const PREFIX: &'static [u8] = claims::CLAIM_PREFIX;
}
impl Listed for crate::settlement::StatementRecord {
    const PREFIX: &'static [u8] = crate::settlement::STATEMENT_PREFIX;
}

/// One page of a list: the records kept, and the id to resume after when there may be more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage<T> {
    pub records: Vec<T>,
    pub next_after: Option<RecordId>,
}

/// Records of type `T` with ids after `after`, in id order, that `keep` accepts: at most `limit`
/// of them, and at most [`MAX_LIST_SCAN`] examined. A page that stops early (full, or the scan
/// bound reached) names the last id examined as its cursor, so the next page resumes there.
pub fn list<T: Listed>(
    state: &impl StateRead,
    after: Option<&RecordId>,
    limit: usize,
    keep: impl Fn(&T) -> bool,
) -> Result<ListPage<T>, StateError> {
    let prefix = T::PREFIX;
    let mut start = prefix.to_vec();
    if let Some(after) = after {
        start.extend_from_slice(after.as_str().as_bytes());
        // The smallest key after `after`'s own.
        start.push(0);
    }
    let mut records = Vec::new();
    let mut examined = 0usize;
    loop {
        let rows = state.scan_prefix_from(prefix, &start, LIST_SCAN_CHUNK)?;
        let exhausted = rows.len() < LIST_SCAN_CHUNK;
        for (key, value) in rows {
            examined += 1;
            let record: T = decode_record(&key, &value)?;
            if keep(&record) {
                records.push(record);
            }
            if records.len() == limit || examined == MAX_LIST_SCAN {
                return Ok(ListPage {
                    records,
                    next_after: Some(record_id_of(prefix, &key)?),
                });
            }
            start = key;
            start.push(0);
        }
        if exhausted {
            return Ok(ListPage {
                records,
                next_after: None,
            });
        }
    }
}

fn record_id_of(prefix: &[u8], key: &[u8]) -> Result<RecordId, StateError> {
    let corrupt = |reason: String| StateError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    };
    let id = String::from_utf8(key[prefix.len()..].to_vec()).map_err(|e| corrupt(e.to_string()))?;
    RecordId::try_from(id).map_err(|e| corrupt(e.to_string()))
}

/// One page of fraud flags, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagsPage {
    pub flags: Vec<FraudFlagRecord>,
    /// The `after_index` of the next page, if there may be more.
    pub next_after_index: Option<LogIndex>,
}

/// Fraud flags raised by entries after `after_index`, oldest first. `limit` (at most
/// [`MAX_FLAGS_PAGE`]) is raised to [`MIN_FLAGS_PAGE`], the most one entry raises, so that a
/// page ends on an entry boundary and paging by entry index never skips a flag.
pub fn fraud_flags(
    state: &impl StateRead,
    after_index: Option<LogIndex>,
    limit: usize,
) -> Result<FlagsPage, StateError> {
    let limit = limit.clamp(MIN_FLAGS_PAGE, MAX_FLAGS_PAGE);
    let mut start = FRAUD_FLAG_PREFIX.to_vec();
    start.extend_from_slice(&after_index.map_or(0, |i| i.saturating_add(1)).to_be_bytes());
    let rows = state.scan_prefix_from(FRAUD_FLAG_PREFIX, &start, limit + 1)?;
    let mut flags = rows
        .iter()
        .map(|(k, v)| decode_record::<FraudFlagRecord>(k, v))
        .collect::<Result<Vec<_>, _>>()?;
    let next_after_index = if flags.len() > limit {
        flags.truncate(limit);
        let last = flags
            .last()
            .map(|f| f.index)
            .expect("a full page is not empty");
        flags.retain(|f| f.index < last);
        flags.last().map(|f| f.index)
    } else {
        None
    };
    Ok(FlagsPage {
        flags,
        next_after_index,
    })
}

/// Every open settlement position (debtor, creditor, amount), in (debtor, creditor) order, at
/// most `limit` of them.
pub fn settlement_positions(
    state: &impl StateRead,
    limit: usize,
) -> Result<Vec<SettlementPosition>, StateError> {
    state
        .scan_prefix(SETTLEMENT_PREFIX, limit)?
        .iter()
        .map(|(k, v)| decode_record(k, v))
        .collect()
}

/// What a statement for `creditor` would net: its period and the open payouts of it, in the
/// order they were paid, at most one more than a statement's lines
/// ([`MAX_STATEMENT_LINES`](crate::limits::MAX_STATEMENT_LINES)) so that a period with too many
/// shows it. The period is read as `settlement.propose` reads it at `now` (`month`, or
/// `from_ms` and `until_ms`, or the month before), and refused as it would be.
pub fn statement_draft(
    state: &impl StateRead,
    now: TimeMs,
    creditor: &crate::types::RegionId,
    period: &crate::settlement::ProposeStatementBody,
) -> Result<StatementDraft, crate::ApplyError> {
    let region = crate::parties::load_region(state)?.ok_or(crate::Rejection::GenesisRequired)?;
    let (from_ms, until_ms) = crate::settlement::statement_period(&region, now, period)?;
    let payouts = crate::settlement::open_payouts(
        state,
        creditor,
        from_ms,
        until_ms,
        crate::limits::MAX_STATEMENT_LINES + 1,
    )?;
    Ok(StatementDraft {
        debtor: region.region,
        creditor: creditor.clone(),
        from_ms,
        until_ms,
        payouts,
    })
}

/// The period and open payouts a statement would net ([`statement_draft`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct StatementDraft {
    pub debtor: crate::types::RegionId,
    pub creditor: crate::types::RegionId,
    pub from_ms: TimeMs,
    pub until_ms: TimeMs,
    pub payouts: Vec<crate::settlement::AdvancedPayout>,
}

/// A command the node signs itself because a time has passed (a voucher's expiry, an order's
/// confirmation period, a program's claim deadline). The nonce is derived from the record, so
/// a command found due twice is recorded once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueCommand {
    pub command_type: &'static str,
    pub nonce: String,
    pub body: serde_json::Value,
    /// The record it acts on, for the node's log lines.
    pub record: String,
}

/// The records of a time index (`prefix`, then the time as a big-endian u64, then the record
/// id) whose time `is_due` at `now`, earliest first, at most `limit`.
fn due_in_index(
    state: &impl StateRead,
    prefix: &[u8],
    limit: usize,
    is_due: impl Fn(TimeMs) -> bool,
) -> Result<Vec<String>, StateError> {
    let mut due = Vec::new();
    for (key, _) in state.scan_prefix(prefix, limit)? {
        let rest = &key[prefix.len()..];
        let corrupt = || StateError::Corrupt {
            key: String::from_utf8_lossy(&key).into_owned(),
            reason: "a time index key holds a time and an id".into(),
        };
        let time = rest.get(..8).ok_or_else(corrupt)?;
        if !is_due(u64::from_be_bytes(time.try_into().expect("8 bytes"))) {
            break;
        }
        due.push(String::from_utf8(rest[8..].to_vec()).map_err(|_| corrupt())?);
    }
    Ok(due)
}

/// `voucher.expire` for every voucher whose expiry has passed at `now`.
pub fn due_voucher_expiries(
    state: &impl StateRead,
    now: TimeMs,
) -> Result<Vec<DueCommand>, StateError> {
    let due = due_in_index(
        state,
        vouchers::EXPIRY_INDEX_PREFIX,
        MAX_EXPIRIES_PER_SWEEP,
        |t| t <= now,
    )?;
    Ok(due
        .into_iter()
        .map(|voucher_id| DueCommand {
            command_type: "voucher.expire",
            nonce: format!("expire/{voucher_id}"),
            body: serde_json::json!({ "voucher_id": voucher_id }),
            record: voucher_id,
        })
        .collect())
}

/// `order.auto_confirm` for every delivered order whose confirmation period has passed.
pub fn due_auto_confirms(
    state: &impl StateRead,
    now: TimeMs,
) -> Result<Vec<DueCommand>, StateError> {
    let due = due_in_index(
        state,
        orders::AUTO_CONFIRM_INDEX_PREFIX,
        MAX_AUTO_CONFIRMS_PER_SWEEP,
        |t| t <= now,
    )?;
    Ok(due
        .into_iter()
        .map(|order_id| DueCommand {
            command_type: "order.auto_confirm",
            nonce: format!("auto-confirm/{order_id}"),
            body: serde_json::json!({ "order_id": order_id, "reason": "confirmation period passed" }),
            record: order_id,
        })
        .collect())
}

/// `order.release_unclaimed` for every order whose program's claim deadline has passed with no
/// claim on it. Claims are taken until the deadline itself; the share is released after it.
pub fn due_unclaimed_releases(
    state: &impl StateRead,
    now: TimeMs,
) -> Result<Vec<DueCommand>, StateError> {
    let due = due_in_index(
        state,
        orders::CLAIM_DEADLINE_INDEX_PREFIX,
        MAX_UNCLAIMED_RELEASES_PER_SWEEP,
        |t| t < now,
    )?;
    Ok(due
        .into_iter()
        .map(|order_id| DueCommand {
            command_type: "order.release_unclaimed",
            nonce: format!("release-unclaimed/{order_id}"),
            body: serde_json::json!({ "order_id": order_id }),
            record: order_id,
        })
        .collect())
}
