//! Lists of the projections' records with filters and cursor paging: programs, vouchers (by
//! holder), orders (with their installments and escrow), claims; and one party by key.
//!
//! Records are kept in id order under one prefix each, so a page is a range scan from just after
//! the cursor. Filters are applied while scanning; a page stops after examining
//! [`MAX_LIST_SCAN`](vledger_domain::limits::MAX_LIST_SCAN) records so that a selective filter cannot make one request read the
//! whole state; `next_after` then lets the client continue.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use vledger_domain::claims::{ClaimRecord, ClaimStatus};
use vledger_domain::orders::{OrderRecord, OrderStatus};
use vledger_domain::programs::ProgramRecord;
use vledger_domain::queries::{self, Listed};
use vledger_domain::vouchers::{VoucherRecord, VoucherStatus};
use vledger_domain::{load_party, PartyRecord};
use vledger_tlog::keys::PublicKey;

use crate::params::KeyFilter;
use vledger_domain::types::{RecordId, RegionId};

use super::{read_failure, AppState, Problem, ProblemPath, ProblemQuery};
pub use vledger_wire::http::RecordsPage;

pub use vledger_domain::limits::MAX_LIST_PAGE;

fn page_limit(limit: Option<usize>) -> Result<usize, Problem> {
    match limit {
        None => Ok(MAX_LIST_PAGE),
        Some(n) if (1..=MAX_LIST_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            format!("limit {n} must be between 1 and {MAX_LIST_PAGE}"),
        )),
    }
}

/// One page of records of type `T` after the cursor, keeping those `keep` accepts.
fn list<T: Listed>(
    state: &AppState,
    after: Option<&RecordId>,
    limit: usize,
    keep: impl Fn(&T) -> bool,
) -> Result<Json<RecordsPage<T>>, Problem> {
    let found = queries::list(&state.node.state(), after, limit, keep).map_err(read_failure)?;
    Ok(Json(RecordsPage {
        records: found.records,
        next_after: found.next_after,
    }))
}

/// `GET /v1/programs` filters.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ProgramsQuery {
    /// Only programs of this region.
    region: Option<RegionId>,
    /// The `next_after` of the previous page.
    after: Option<RecordId>,
    /// 1 to 200 (the default).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<usize>,
}

/// Programs with their budgets, in program id order.
#[utoipa::path(get, path = "/v1/programs", tag = "records", params(ProgramsQuery),
    responses(
        (status = 200, description = "A page of programs", body = RecordsPage<ProgramRecord>),
        (status = 400, description = "A filter is not valid", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_programs(
    State(state): State<AppState>,
    ProblemQuery(q): ProblemQuery<ProgramsQuery>,
) -> Result<Json<RecordsPage<ProgramRecord>>, Problem> {
    let limit = page_limit(q.limit)?;
    list(&state, q.after.as_ref(), limit, |p: &ProgramRecord| {
        q.region.as_ref().is_none_or(|r| &p.region == r)
    })
}

/// `GET /v1/vouchers` filters.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct VouchersQuery {
    /// Only vouchers held by this enterprise key (standard base64).
    #[param(value_type = Option<PublicKey>)]
    holder: Option<KeyFilter>,
    /// Only vouchers of this program.
    program: Option<RecordId>,
    /// Only vouchers in this status.
    #[param(inline)]
    status: Option<VoucherStatus>,
    /// The `next_after` of the previous page.
    after: Option<RecordId>,
    /// 1 to 200 (the default).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<usize>,
}

/// Vouchers, in voucher id order: an enterprise's vouchers with `holder`.
#[utoipa::path(get, path = "/v1/vouchers", tag = "records", params(VouchersQuery),
    responses(
        (status = 200, description = "A page of vouchers", body = RecordsPage<VoucherRecord>),
        (status = 400, description = "A filter is not valid", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_vouchers(
    State(state): State<AppState>,
    ProblemQuery(q): ProblemQuery<VouchersQuery>,
) -> Result<Json<RecordsPage<VoucherRecord>>, Problem> {
    let limit = page_limit(q.limit)?;
    list(&state, q.after.as_ref(), limit, |v: &VoucherRecord| {
        q.holder.as_ref().is_none_or(|h| h.matches(&v.holder))
            && q.program.as_ref().is_none_or(|p| &v.program_id == p)
            && q.status.is_none_or(|s| v.status == s)
    })
}

/// `GET /v1/orders` filters.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct OrdersQuery {
    /// Only orders of this enterprise key (standard base64).
    #[param(value_type = Option<PublicKey>)]
    enterprise: Option<KeyFilter>,
    /// Only orders served by this agency key (standard base64).
    #[param(value_type = Option<PublicKey>)]
    agency: Option<KeyFilter>,
    /// Only orders of this program.
    program: Option<RecordId>,
    /// Only orders paid with this voucher.
    voucher: Option<RecordId>,
    /// Only orders in this status.
    #[param(inline)]
    status: Option<OrderStatus>,
    /// The `next_after` of the previous page.
    after: Option<RecordId>,
    /// 1 to 200 (the default).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<usize>,
}

/// Orders with their installments and escrow, in order id order.
#[utoipa::path(get, path = "/v1/orders", tag = "records", params(OrdersQuery),
    responses(
        (status = 200, description = "A page of orders", body = RecordsPage<OrderRecord>),
        (status = 400, description = "A filter is not valid", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_orders(
    State(state): State<AppState>,
    ProblemQuery(q): ProblemQuery<OrdersQuery>,
) -> Result<Json<RecordsPage<OrderRecord>>, Problem> {
    let limit = page_limit(q.limit)?;
    list(&state, q.after.as_ref(), limit, |o: &OrderRecord| {
        q.enterprise
            .as_ref()
            .is_none_or(|k| k.matches(&o.enterprise))
            && q.agency.as_ref().is_none_or(|k| k.matches(&o.agency))
            && q.program.as_ref().is_none_or(|p| &o.program_id == p)
            && q.voucher.as_ref().is_none_or(|v| &o.voucher_id == v)
            && q.status.is_none_or(|s| o.status == s)
    })
}

/// `GET /v1/claims` filters.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ClaimsQuery {
    /// Only claims of this agency key (standard base64).
    #[param(value_type = Option<PublicKey>)]
    agency: Option<KeyFilter>,
    /// Only claims of this program.
    program: Option<RecordId>,
    /// Only claims in this status.
    #[param(inline)]
    status: Option<ClaimStatus>,
    /// The `next_after` of the previous page (an order id).
    after: Option<RecordId>,
    /// 1 to 200 (the default).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<usize>,
}

/// Claims, in order id order.
#[utoipa::path(get, path = "/v1/claims", tag = "records", params(ClaimsQuery),
    responses(
        (status = 200, description = "A page of claims", body = RecordsPage<ClaimRecord>),
        (status = 400, description = "A filter is not valid", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_claims(
    State(state): State<AppState>,
    ProblemQuery(q): ProblemQuery<ClaimsQuery>,
) -> Result<Json<RecordsPage<ClaimRecord>>, Problem> {
    let limit = page_limit(q.limit)?;
    list(&state, q.after.as_ref(), limit, |c: &ClaimRecord| {
        q.agency.as_ref().is_none_or(|k| k.matches(&c.agency))
            && q.program.as_ref().is_none_or(|p| &c.program_id == p)
            && q.status.is_none_or(|s| c.status == s)
    })
}

/// One registered party: role, home region, standing, accreditation and affiliations.
#[utoipa::path(get, path = "/v1/parties/{key}", tag = "records",
    params(("key" = PublicKey, Path, description = "The party's public key, standard base64 (percent-encode `/` and `+`)")),
    responses(
        (status = 200, description = "The party", body = PartyRecord),
        (status = 400, description = "The key is not 32 bytes in standard base64", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No party has this key (also for 32 bytes that fail the key rule: no party can have them)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_party(
    State(state): State<AppState>,
    ProblemPath(key): ProblemPath<String>,
) -> Result<Json<PartyRecord>, Problem> {
    let key = KeyFilter::parse(&key).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-path",
            format!("party key: {e}"),
        )
    })?;
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            "party-not-found",
            format!("no party has the key {}", key.as_str()),
        )
    };
    let Some(public_key) = key.key() else {
        return Err(not_found());
    };
    load_party(&state.node.state(), public_key)
        .map_err(read_failure)?
        .map(Json)
        .ok_or_else(not_found)
}
