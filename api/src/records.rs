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
use vledger_domain::claims::{load_claim, ClaimRecord, ClaimStatus, SettlementPosition};
use vledger_domain::federation::{adopted_regions, find_party, RegionRecords};
use vledger_domain::limits::{MAX_FLAGS_PAGE, MAX_SETTLEMENT_POSITIONS};
use vledger_domain::money::AmountMinor;
use vledger_domain::orders::{load_order, ListingRef, OrderQuote, OrderRecord, OrderStatus};
use vledger_domain::programs::{load_program, ProgramRecord};
use vledger_domain::queries::{self, Listed, StatementDraft};
use vledger_domain::settlement::{
    load_statement, ProposeStatementBody, StatementRecord, StatementStatus,
};
use vledger_domain::types::{RecordId, RegionId, TimestampMs};
use vledger_domain::vouchers::{load_voucher, VoucherRecord, VoucherStatus};
use vledger_node::node::CommittedState;
use vledger_tlog::keys::PublicKey;
pub use vledger_wire::http::{FraudFlagsPage, PartyView, RecordsPage};

use crate::params::{self, KeyFilter};
use crate::problem::read_failure;
use crate::{AppState, Problem, ProblemPath, ProblemQuery};

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

/// One registered party of any region of the federation: role, home region, standing,
/// accreditation and affiliations, with the region whose log holds it and, for a party of
/// another region, the size of that region's log adopted, as of which the record is.
#[utoipa::path(get, path = "/v1/parties/{key}", tag = "records",
    params(("key" = PublicKey, Path, description = "The party's public key, standard base64 (percent-encode `/` and `+`)")),
    responses(
        (status = 200, description = "The party", body = PartyView),
        (status = 400, description = "The key is not 32 bytes in standard base64", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No party has this key (also for 32 bytes that fail the key rule: no party can have them)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_party(
    State(state): State<AppState>,
    ProblemPath(key): ProblemPath<String>,
) -> Result<Json<PartyView>, Problem> {
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
    let known = find_party(&state.node.state(), public_key)
        .map_err(read_failure)?
        .ok_or_else(not_found)?;
    Ok(Json(PartyView {
        log_region: known.party.home_region.to_string(),
        as_of_size: known.adopted.map(|adopted| adopted.size),
        party: known.party,
    }))
}

pub(crate) fn record_id(text: String, what: &str) -> Result<RecordId, Problem> {
    RecordId::try_from(text).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-path",
            format!("{what}: {e}"),
        )
    })
}

/// Reads one record named by a path id: 400 `invalid-path` for a malformed id, 404 with
/// `missing_code` when there is no such record.
fn read_record<'s, T>(
    state: &'s AppState,
    raw_id: String,
    what: &str,
    missing_code: &str,
    load: impl FnOnce(&CommittedState<'s>, &RecordId) -> Result<Option<T>, vledger_domain::StateError>,
) -> Result<Json<T>, Problem> {
    let id = record_id(raw_id, what)?;
    load(&state.node.state(), &id)
        .map_err(read_failure)?
        .map(Json)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                missing_code,
                format!("{what} `{id}` does not exist"),
            )
        })
}

/// The program with its terms and budget buckets.
#[utoipa::path(get, path = "/v1/programs/{program_id}", tag = "records",
    params(("program_id" = RecordId, Path, description = "The program's id")),
    responses(
        (status = 200, description = "The program with its terms and budget buckets", body = ProgramRecord),
        (status = 400, description = "The id is not a valid record id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such record", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_program(
    State(state): State<AppState>,
    ProblemPath(id): ProblemPath<String>,
) -> Result<Json<ProgramRecord>, Problem> {
    read_record(&state, id, "program", "program-not-found", load_program)
}

/// The voucher with its balance.
#[utoipa::path(get, path = "/v1/vouchers/{voucher_id}", tag = "records",
    params(("voucher_id" = RecordId, Path, description = "The voucher's id")),
    responses(
        (status = 200, description = "The voucher with its balance", body = VoucherRecord),
        (status = 400, description = "The id is not a valid record id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such record", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_voucher(
    State(state): State<AppState>,
    ProblemPath(id): ProblemPath<String>,
) -> Result<Json<VoucherRecord>, Problem> {
    read_record(&state, id, "voucher", "voucher-not-found", load_voucher)
}

/// The order with its installments, escrow and evidence.
#[utoipa::path(get, path = "/v1/orders/{order_id}", tag = "records",
    params(("order_id" = RecordId, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The order with its installments, escrow and evidence", body = OrderRecord),
        (status = 400, description = "The id is not a valid record id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such record", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_order(
    State(state): State<AppState>,
    ProblemPath(id): ProblemPath<String>,
) -> Result<Json<OrderRecord>, Problem> {
    read_record(&state, id, "order", "order-not-found", load_order)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct QuoteQuery {
    /// The voucher that would pay the subsidised share.
    voucher: RecordId,
    /// The listing ordered.
    listing: RecordId,
    /// The region whose log holds the listing, when it is another region of the federation
    /// (read as of the size this node adopted of it); omitted for a listing of this region.
    listing_region: Option<RegionId>,
    /// The order's price in minor units (at most the listing's price).
    price: AmountMinor,
}

/// The voucher share an order would get now, and the limit that binds.
///
/// Computed by the same rules as `order.place`, for the voucher's holder, on the node's clock
/// and its latest state: an order placed next with the same voucher, listing and price gets
/// this share unless something changes in between. A refusal is the problem `order.place`
/// would answer.
#[utoipa::path(get, path = "/v1/order-quote", tag = "records", params(QuoteQuery),
    responses(
        (status = 200, description = "The share, the enterprise's part and the binding limit", body = OrderQuote),
        (status = 400, description = "A parameter is not valid", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such voucher or listing", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An order at this price would be refused (the problem names the rule)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_order_quote(
    State(state): State<AppState>,
    ProblemQuery(q): ProblemQuery<QuoteQuery>,
) -> Result<Json<OrderQuote>, Problem> {
    state
        .node
        .quote_order(
            &q.voucher,
            ListingRef {
                id: &q.listing,
                region: q.listing_region.as_ref(),
            },
            q.price,
        )
        .map(Json)
        .map_err(|e| match e {
            vledger_domain::ApplyError::Rejected(r) => {
                Problem::from(vledger_node::writer::SubmitError::Rejected(r))
            }
            vledger_domain::ApplyError::State(e) => read_failure(e),
        })
}

/// The claim of the order with its reviews.
#[utoipa::path(get, path = "/v1/claims/{order_id}", tag = "records",
    params(("order_id" = RecordId, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The claim of the order with its reviews", body = ClaimRecord),
        (status = 400, description = "The id is not a valid record id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such record", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_claim(
    State(state): State<AppState>,
    ProblemPath(id): ProblemPath<String>,
) -> Result<Json<ClaimRecord>, Problem> {
    read_record(&state, id, "claim of order", "claim-not-found", load_claim)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct FlagsQuery {
    /// Only flags raised by entries after this index.
    #[serde(default, deserialize_with = "params::opt_int64")]
    after_index: Option<u64>,
    /// 1 to 500 (the default); values below 256 are raised to 256.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// Fraud flags raised for regulators, oldest first.
#[utoipa::path(get, path = "/v1/fraud-flags", tag = "records", params(FlagsQuery),
    responses(
        (status = 200, description = "A page of flags", body = FraudFlagsPage),
        (status = 400, description = "A parameter is not valid", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_fraud_flags(
    State(state): State<AppState>,
    ProblemQuery(q): ProblemQuery<FlagsQuery>,
) -> Result<Json<FraudFlagsPage>, Problem> {
    let limit = match q.limit {
        None => MAX_FLAGS_PAGE,
        Some(n) if (1..=MAX_FLAGS_PAGE).contains(&n) => n,
        Some(n) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-query",
                format!("limit {n} must be between 1 and {MAX_FLAGS_PAGE}"),
            ))
        }
    };
    let page =
        queries::fraud_flags(&state.node.state(), q.after_index, limit).map_err(read_failure)?;
    Ok(Json(FraudFlagsPage {
        flags: page.flags,
        next_after_index: page.next_after_index,
    }))
}

/// `GET /v1/settlement/statements` filters.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatementsQuery {
    /// The region whose log holds the statements (their debtor): this node's own by default,
    /// or another region of the federation, as of the size of its log this node adopted.
    region: Option<RegionId>,
    /// Only statements owed to this region.
    creditor: Option<RegionId>,
    /// Only statements in this status.
    #[param(inline)]
    status: Option<StatementStatus>,
    /// The `next_after` of the previous page (a statement id).
    after: Option<RecordId>,
    /// 1 to 200 (the default).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<usize>,
}

/// Settlement statements of one region's log (that region is their debtor), in id order, with
/// their lines, signatures, status and payment: this node's own, or, with `region`, another
/// region's as of the size this node adopted, so every node answers the same once it adopted.
#[utoipa::path(get, path = "/v1/settlement/statements", tag = "records", params(StatementsQuery),
    responses(
        (status = 200, description = "A page of statements", body = RecordsPage<StatementRecord>),
        (status = 400, description = "A filter is not valid", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_settlement_statements(
    State(state): State<AppState>,
    ProblemQuery(q): ProblemQuery<StatementsQuery>,
) -> Result<Json<RecordsPage<StatementRecord>>, Problem> {
    let limit = page_limit(q.limit)?;
    let committed = state.node.state();
    let own = state.node.region();
    let region = q.region.as_ref().unwrap_or(own);
    let records = RegionRecords::new(&committed, own, region);
    let found = queries::list(&records, q.after.as_ref(), limit, |s: &StatementRecord| {
        q.creditor.as_ref().is_none_or(|c| &s.creditor == c)
            && q.status.is_none_or(|st| s.status == st)
    })
    .map_err(read_failure)?;
    Ok(Json(RecordsPage {
        records: found.records,
        next_after: found.next_after,
    }))
}

/// `GET /v1/settlement/statements/{statement_id}` parameters.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatementQuery {
    /// The region whose log holds the statement (its debtor): this node's own by default, or
    /// another region of the federation, as of the size of its log this node adopted.
    region: Option<RegionId>,
}

/// One settlement statement.
#[utoipa::path(get, path = "/v1/settlement/statements/{statement_id}", tag = "records",
    params(("statement_id" = RecordId, Path, description = "The statement's id"), StatementQuery),
    responses(
        (status = 200, description = "The statement with its lines, signatures and payment", body = StatementRecord),
        (status = 400, description = "The id is not a valid record id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such statement", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_settlement_statement(
    State(state): State<AppState>,
    ProblemPath(id): ProblemPath<String>,
    ProblemQuery(q): ProblemQuery<StatementQuery>,
) -> Result<Json<StatementRecord>, Problem> {
    let own = state.node.region().clone();
    let region = q.region.unwrap_or_else(|| own.clone());
    read_record(
        &state,
        id,
        "statement",
        "statement-not-found",
        |committed, id| load_statement(&RegionRecords::new(committed, &own, &region), id),
    )
}

/// `GET /v1/settlement/draft` parameters: the creditor and the period, as
/// `settlement.propose` takes them.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DraftQuery {
    /// The region owed.
    creditor: RegionId,
    /// A calendar month, `YYYY-MM`, in the region's time zone.
    #[param(pattern = "^[0-9]{4}-[0-9]{2}$", min_length = 7, max_length = 7)]
    month: Option<String>,
    /// The period's start (with `until_ms`), ms since the Unix epoch.
    #[param(value_type = Option<TimestampMs>)]
    #[serde(default, deserialize_with = "params::opt_int64")]
    from_ms: Option<u64>,
    /// The period's end, excluded.
    #[param(value_type = Option<TimestampMs>)]
    #[serde(default, deserialize_with = "params::opt_int64")]
    until_ms: Option<u64>,
}

/// What a statement owed to `creditor` would net now: its period (by default the calendar month
/// before, in the region's time zone) and the open payouts of it, in the order they were paid
/// (at most one more than a statement holds). A client proposes it with each payout's entry's
/// leaf hash.
#[utoipa::path(get, path = "/v1/settlement/draft", tag = "records", params(DraftQuery),
    responses(
        (status = 200, description = "The period and its open payouts", body = StatementDraft),
        (status = 400, description = "A parameter is not valid", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The period is not one a statement takes", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_settlement_draft(
    State(state): State<AppState>,
    ProblemQuery(q): ProblemQuery<DraftQuery>,
) -> Result<Json<StatementDraft>, Problem> {
    let instant = |ms: Option<u64>, name: &str| -> Result<Option<TimestampMs>, Problem> {
        ms.map(|ms| {
            TimestampMs::new(ms).map_err(|e| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-query",
                    format!("{name}: {e}"),
                )
            })
        })
        .transpose()
    };
    let period = ProposeStatementBody {
        statement_id: RecordId::try_from("draft").expect("a record id"),
        creditor: q.creditor.clone(),
        month: q.month,
        from_ms: instant(q.from_ms, "from_ms")?,
        until_ms: instant(q.until_ms, "until_ms")?,
        lines: Vec::new(),
        gross_debtor_to_creditor_minor: AmountMinor::default(),
        gross_creditor_to_debtor_minor: AmountMinor::default(),
        net_minor: AmountMinor::default(),
    };
    state
        .node
        .statement_draft(&q.creditor, &period)
        .map(Json)
        .map_err(|e| match e {
            vledger_domain::ApplyError::Rejected(r) => {
                Problem::from(vledger_node::writer::SubmitError::Rejected(r))
            }
            vledger_domain::ApplyError::State(e) => read_failure(e),
        })
}

/// What each region of the federation owes another for the cross-region payouts that other
/// advanced: the positions of this node's own log (it is their debtor) and of every region it
/// adopted (as of the size adopted), in (debtor, creditor) order, so every node answers the same
/// once it adopted the others.
#[utoipa::path(get, path = "/v1/settlement/positions", tag = "records",
    responses((status = 200, description = "Every position of every region", body = Vec<SettlementPosition>)))]
pub(crate) async fn get_settlement_positions(
    State(state): State<AppState>,
) -> Result<Json<Vec<SettlementPosition>>, Problem> {
    let committed = state.node.state();
    let own = state.node.region();
    let mut positions = queries::settlement_positions(&committed, MAX_SETTLEMENT_POSITIONS)
        .map_err(read_failure)?;
    for adopted in adopted_regions(&committed).map_err(read_failure)? {
        let records = RegionRecords::new(&committed, own, &adopted.region);
        positions.extend(
            queries::settlement_positions(&records, MAX_SETTLEMENT_POSITIONS)
                .map_err(read_failure)?,
        );
    }
    positions.sort_by(|a, b| (&a.debtor, &a.creditor).cmp(&(&b.debtor, &b.creditor)));
    positions.truncate(MAX_SETTLEMENT_POSITIONS);
    Ok(Json(positions))
}
