//! Voucher programs and their budgets; qualification of enterprises for a program.

use serde::{Deserialize, Serialize};

use super::money::{AmountMinor, BasisPoints};
use super::parties::{load_party, RegionRecord, Role};
use super::state::{StateError, StateRead, StateWrite};
use super::{ApplyContext, ApplyError, Event, Rejection};
use crate::limits::{MAX_CATEGORIES, MAX_CATEGORY_BYTES, MAX_NAME_BYTES, MAX_SPEND_REGIONS};
use crate::types::{DurationMs, RecordId, RegionId, TimeMs, TimestampMs};
use vledger_tlog::keys::PublicKey;

/// Who pays the agency when a voucher is redeemed in another region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CrossRegionPayer {
    /// The voucher's funding region pays the agency directly.
    IssuingRegion,
    /// The agency's region advances the payment and recovers it through settlement.
    AgencyRegion,
}

/// Whether a voucher may pay for one order or several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UseMode {
    Single,
    Multi,
}

/// The caps a program sets, in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgramCaps {
    pub per_voucher_minor: AmountMinor,
    pub per_order_minor: AmountMinor,
    pub per_enterprise_year_minor: AmountMinor,
    pub per_group_year_minor: AmountMinor,
}

/// The terms of a program, fixed at creation (body of `program.create`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgramTerms {
    pub program_id: RecordId,
    pub name: String,
    /// e.g. `resource_sharing`, `dual_high_cultivation`, `listing_growth`, `sci_tech`.
    pub kind: String,
    /// ISO 4217 code, e.g. `CNY`.
    pub currency: String,
    pub budget_minor: AmountMinor,
    pub subsidy_ratio_bps: BasisPoints,
    pub caps: ProgramCaps,
    pub eligible_categories: Vec<String>,
    pub valid_from_ms: TimestampMs,
    pub valid_until_ms: TimestampMs,
    pub claim_deadline_ms: TimestampMs,
    pub spend_regions: Vec<RegionId>,
    pub cross_region_payer: CrossRegionPayer,
    pub use_mode: UseMode,
    /// 1 or 2 levels of claim review.
    #[schema(minimum = 1, maximum = 2)]
    pub review_levels: u8,
    pub notice_period_ms: DurationMs,
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
}

fn default_time_zone() -> String {
    "Asia/Shanghai".to_string()
}

impl ProgramTerms {
    /// The calendar year, in the program's time zone, that a moment falls in: "per year" caps
    /// count by it.
    pub fn calendar_year(&self, time_ms: TimeMs) -> i32 {
        use chrono::{Datelike, TimeZone};
        let tz: chrono_tz::Tz = self
            .time_zone
            .parse()
            .expect("time zones are checked at program.create");
        let millis = i64::try_from(time_ms).expect("node times fit in i64");
        tz.timestamp_millis_opt(millis)
            .single()
            .expect("a UTC instant maps to one local time")
            .year()
    }
}

/// Where a program's budget is: `budget = unissued + outstanding + spent + expired + revoked +
/// clawed_back + recovered`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BudgetBuckets {
    pub unissued_minor: u64,
    /// Issued and not yet spent or returned: voucher balances and shares committed to orders.
    pub outstanding_minor: u64,
    /// Paid out to agencies and kept by them.
    pub spent_minor: u64,
    pub expired_minor: u64,
    pub revoked_minor: u64,
    /// Paid out, then clawed back: a receivable the agencies still owe.
    pub clawed_back_minor: u64,
    /// Clawed back and paid back by the agency.
    pub recovered_minor: u64,
}

impl BudgetBuckets {
    /// The sum of all buckets; equals the budget when value is conserved.
    pub fn total(&self) -> Option<u64> {
        [
            self.outstanding_minor,
            self.spent_minor,
            self.expired_minor,
            self.revoked_minor,
            self.clawed_back_minor,
            self.recovered_minor,
        ]
        .iter()
        .try_fold(self.unissued_minor, |acc, v| acc.checked_add(*v))
    }
}

/// A program as the state holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProgramRecord {
    pub terms: ProgramTerms,
    pub region: RegionId,
    pub created_at_ms: TimeMs,
    pub buckets: BudgetBuckets,
}

/// An enterprise's qualification for a program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QualificationRecord {
    pub program_id: RecordId,
    pub enterprise: PublicKey,
    pub expires_at_ms: TimeMs,
}

/// Body of `enterprise.qualify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QualifyBody {
    pub program_id: RecordId,
    pub enterprise: PublicKey,
    pub expires_at_ms: TimestampMs,
}

/// Prefix of these records in the state, followed by the record's id.
pub const PROGRAM_PREFIX: &[u8] = b"program/";

fn program_key(id: &RecordId) -> Vec<u8> {
    [PROGRAM_PREFIX, id.as_str().as_bytes()].concat()
}

fn qualification_key(program: &RecordId, enterprise: &PublicKey) -> Vec<u8> {
    let mut key = format!("qual/{program}/").into_bytes();
    key.extend_from_slice(enterprise.as_bytes());
    key
}

/// Reads a program.
pub fn load_program<S: StateRead>(
    state: &S,
    id: &RecordId,
) -> Result<Option<ProgramRecord>, StateError> {
    state.get(&program_key(id))
}

/// Reads a program that must exist.
pub(super) fn require_program<S: StateRead>(
    state: &S,
    id: &RecordId,
) -> Result<ProgramRecord, ApplyError> {
    load_program(state, id)?.ok_or_else(|| Rejection::ProgramNotFound(id.to_string()).into())
}

pub(super) fn save_program<S: StateWrite>(state: &mut S, program: &ProgramRecord) {
    assert_eq!(
        program.buckets.total(),
        Some(program.terms.budget_minor.get()),
        "value conservation broken for program {}: {:?}",
        program.terms.program_id,
        program.buckets
    );
    state.put(program_key(&program.terms.program_id), program);
}

/// Reads an enterprise's qualification for a program.
pub fn load_qualification<S: StateRead>(
    state: &S,
    program: &RecordId,
    enterprise: &PublicKey,
) -> Result<Option<QualificationRecord>, StateError> {
    state.get(&qualification_key(program, enterprise))
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Rejection {
    Rejection::InvalidField {
        field,
        reason: reason.into(),
    }
}

fn check_terms(terms: &ProgramTerms) -> Result<(), Rejection> {
    super::parties::check_text("name", &terms.name, MAX_NAME_BYTES)?;
    super::parties::check_text("kind", &terms.kind, MAX_CATEGORY_BYTES)?;
    if terms.currency.len() != 3 || !terms.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid(
            "currency",
            "must be an ISO 4217 code of three capital letters",
        ));
    }
    if terms.budget_minor.is_zero() {
        return Err(invalid("budget_minor", "must be positive"));
    }
    let caps = &terms.caps;
    for (field, cap) in [
        ("caps.per_voucher_minor", caps.per_voucher_minor),
        ("caps.per_order_minor", caps.per_order_minor),
        (
            "caps.per_enterprise_year_minor",
            caps.per_enterprise_year_minor,
        ),
        ("caps.per_group_year_minor", caps.per_group_year_minor),
    ] {
        if cap.is_zero() {
            return Err(invalid(field, "must be positive"));
        }
    }
    if terms.subsidy_ratio_bps.get() == 0 {
        return Err(invalid("subsidy_ratio_bps", "must be positive"));
    }
    if terms.eligible_categories.is_empty() || terms.eligible_categories.len() > MAX_CATEGORIES {
        return Err(invalid(
            "eligible_categories",
            format!("must list 1 to {MAX_CATEGORIES} categories"),
        ));
    }
    for category in &terms.eligible_categories {
        super::parties::check_text("eligible_categories", category, MAX_CATEGORY_BYTES)?;
    }
    if terms.spend_regions.is_empty() || terms.spend_regions.len() > MAX_SPEND_REGIONS {
        return Err(invalid(
            "spend_regions",
            format!("must list 1 to {MAX_SPEND_REGIONS} regions"),
        ));
    }
    if terms.valid_from_ms >= terms.valid_until_ms {
        return Err(invalid("valid_until_ms", "must be after valid_from_ms"));
    }
    if terms.claim_deadline_ms < terms.valid_until_ms {
        return Err(invalid(
            "claim_deadline_ms",
            "must not be before valid_until_ms",
        ));
    }
    if !(1..=2).contains(&terms.review_levels) {
        return Err(invalid("review_levels", "must be 1 or 2"));
    }
    if terms.time_zone.parse::<chrono_tz::Tz>().is_err() {
        return Err(invalid(
            "time_zone",
            format!("`{}` is not an IANA time zone", terms.time_zone),
        ));
    }
    Ok(())
}

pub(super) fn decide_create<S: StateRead>(
    state: &S,
    region: &RegionRecord,
    terms: &ProgramTerms,
) -> Result<Vec<Event>, ApplyError> {
    check_terms(terms)?;
    if load_program(state, &terms.program_id)?.is_some() {
        return Err(Rejection::ProgramExists(terms.program_id.to_string()).into());
    }
    Ok(vec![Event::ProgramCreated {
        region: region.region.clone(),
        terms: terms.clone(),
    }])
}

pub(super) fn decide_qualify<S: StateRead>(
    state: &S,
    ctx: &ApplyContext,
    body: &QualifyBody,
) -> Result<Vec<Event>, ApplyError> {
    require_program(state, &body.program_id)?;
    let enterprise = load_party(state, &body.enterprise)?.ok_or(Rejection::PartyNotFound)?;
    if enterprise.role != Role::Enterprise {
        return Err(Rejection::WrongPartyRole {
            needed: "enterprise",
            actual: enterprise.role.as_str().into(),
        }
        .into());
    }
    if enterprise.revoked_at.is_some() {
        return Err(Rejection::PartyInactive.into());
    }
    if body.expires_at_ms.get() <= ctx.node_time_ms {
        return Err(invalid("expires_at_ms", "must be in the future").into());
    }
    Ok(vec![Event::EnterpriseQualified {
        program_id: body.program_id.clone(),
        enterprise: body.enterprise,
        expires_at_ms: body.expires_at_ms.get(),
    }])
}

pub(super) fn evolve<S: StateRead + StateWrite>(
    state: &mut S,
    ctx: &ApplyContext,
    event: &Event,
) -> Result<(), StateError> {
    match event {
        Event::ProgramCreated { region, terms } => {
            let record = ProgramRecord {
                terms: terms.clone(),
                region: region.clone(),
                created_at_ms: ctx.node_time_ms,
                buckets: BudgetBuckets {
                    unissued_minor: terms.budget_minor.get(),
                    ..BudgetBuckets::default()
                },
            };
            save_program(state, &record);
        }
        Event::EnterpriseQualified {
            program_id,
            enterprise,
            expires_at_ms,
        } => {
            let record = QualificationRecord {
                program_id: program_id.clone(),
                enterprise: *enterprise,
                expires_at_ms: *expires_at_ms,
            };
            state.put(qualification_key(program_id, enterprise), &record);
        }
        _ => unreachable!("programs::evolve is called only for program events"),
    }
    Ok(())
}
