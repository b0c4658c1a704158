//! The shared resource catalog's read endpoints: the ranked search (`vledger_search`'s index),
//! the listings of one region in id order, one listing, one demand, and the listings of every
//! region that match a demand, ranked.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use vledger_domain::catalog::{
    self, load_demand, load_listing, CatalogPage, CatalogQuery, DemandRecord, Industry,
    ListingRecord, Pool, QueryError,
};
use vledger_domain::federation::RegionRecords;
use vledger_domain::limits::{MAX_CATALOG_PAGE, MAX_CATEGORY_FILTER_CHARS};
use vledger_domain::types::{RecordId, RegionId};

use vledger_search::{SearchFailure, SearchQuery, DEFAULT_SEARCH_PAGE, MAX_SEARCH_PAGE};
use vledger_wire::http::{SearchPage, SortOrder};

use crate::params::KeyFilter;
use crate::problem::read_failure;
use crate::records::record_id;
use crate::{AppState, Problem, ProblemPath, ProblemQuery};
pub use vledger_wire::http::DemandMatches;

/// Most characters of a search's `cursor`.
pub const MAX_CURSOR_CHARS: usize = 8192;

/// `GET /v1/catalog/search`: every parameter is optional.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchParams {
    /// The query text: terms separated by spaces, every one of which must match in the title,
    /// the tags or the description. A word of letters and digits matches that word whatever
    /// its case or width (`EMC`, `emc`, `ＥＭＣ`); Chinese characters match where they stand
    /// together (`质谱仪` matches `高分辨质谱仪`, not `质谱联用仪`), one character wherever it
    /// stands; a term of several pieces (`EMC检测`, `ISO-17025`) or `"a quoted phrase"`
    /// matches its pieces next to each other in that order; a term or phrase after `-` must not
    /// match. Blank: every listing matches.
    #[param(max_length = 256)]
    q: Option<String>,
    #[param(inline)]
    pool: Option<Pool>,
    industry: Option<Industry>,
    /// Only listings held in this region's log (this node's own, or a region it adopted).
    region: Option<RegionId>,
    /// Only this category (exactly); blank filters nothing.
    #[param(max_length = 64)]
    category: Option<String>,
    /// Inclusive bounds on the list price, in minor units; a `min_price` above `max_price`
    /// matches nothing.
    #[serde(default, deserialize_with = "crate::params::opt_int64")]
    min_price: Option<u64>,
    #[serde(default, deserialize_with = "crate::params::opt_int64")]
    max_price: Option<u64>,
    /// Only listings priced in this currency (ISO 4217, exactly); blank filters nothing.
    #[param(max_length = 3)]
    currency: Option<String>,
    /// Only listings priced for this unit (exactly); blank filters nothing.
    #[param(max_length = 64)]
    unit: Option<String>,
    /// Only listings of this agency (its key, standard base64).
    #[param(value_type = Option<vledger_tlog::keys::PublicKey>)]
    agency: Option<KeyFilter>,
    /// `relevance` (the default), `price_asc` or `price_desc`.
    #[param(inline)]
    sort: Option<SortOrder>,
    /// The `next_cursor` of the previous page, passed with the same query.
    #[param(max_length = 8192)]
    cursor: Option<String>,
    /// 1 to 100; 20 by default.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// Answer only once the index reflects at least this many entries of this node's log (a
    /// receipt's `index` + 1, to see one's own command): beyond the log's size it is 404
    /// `out-of-range`; answered 503 `search-index-behind` if the index has not reached it
    /// within 2 s.
    #[serde(default, deserialize_with = "crate::params::opt_int64")]
    min_log_size: Option<u64>,
}

/// How long a read waits for the index to reach its `min_log_size`.
pub const INDEX_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Checks a read's `min_log_size` against the log now; what the read then waits for.
fn wanted_log_size(state: &AppState, min_log_size: Option<u64>) -> Result<Option<u64>, Problem> {
    let Some(wanted) = min_log_size else {
        return Ok(None);
    };
    let size = state.node.tree_size();
    if wanted > size {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "out-of-range",
            format!("min_log_size {wanted} is beyond the log, which holds {size} entries"),
        ));
    }
    Ok(Some(wanted))
}

/// Waits, on a blocking thread, for the index to reflect `wanted` entries.
fn wait_for_index(
    index: &vledger_search::CatalogIndex,
    wanted: Option<u64>,
) -> Result<(), Problem> {
    match wanted {
        Some(wanted) if !index.wait_for(wanted, INDEX_WAIT) => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "search-index-behind",
            format!(
                "the catalog's search index reflects {} entries, not yet the {wanted} asked for",
                index.freshness().log_size
            ),
        )),
        _ => Ok(()),
    }
}

fn search_problem(e: SearchFailure) -> Problem {
    match e {
        SearchFailure::Invalid(detail) => {
            Problem::new(StatusCode::BAD_REQUEST, "invalid-query", detail)
        }
        SearchFailure::Index(detail) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "search-unavailable",
            format!("the catalog's search index cannot answer: {detail}"),
        ),
    }
}

/// A string parameter within the document's `maxLength` (in characters, before any trimming).
fn within(name: &str, value: Option<&String>, max: usize) -> Result<(), Problem> {
    match value {
        Some(v) if v.chars().count() > max => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            format!("{name} must be at most {max} characters"),
        )),
        _ => Ok(()),
    }
}

/// Search the catalog of every region of the federation: ranked free text (Chinese and
/// English), filters, facet counts, and a cursor that stays stable while listings change.
#[utoipa::path(get, path = "/v1/catalog/search", tag = "catalog", params(SearchParams),
    responses(
        (status = 200, description = "A page of the best matches", body = SearchPage),
        (status = 400, description = "A parameter is not valid", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`min_log_size` is beyond the log", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The search index cannot answer, or has not reached `min_log_size` in time", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_search(
    State(state): State<AppState>,
    ProblemQuery(q): ProblemQuery<SearchParams>,
) -> Result<Json<SearchPage>, Problem> {
    within(
        "q",
        q.q.as_ref(),
        vledger_search::query::MAX_QUERY_TEXT_CHARS,
    )?;
    within("category", q.category.as_ref(), MAX_CATEGORY_FILTER_CHARS)?;
    within("unit", q.unit.as_ref(), MAX_CATEGORY_FILTER_CHARS)?;
    within("cursor", q.cursor.as_ref(), MAX_CURSOR_CHARS)?;
    within("currency", q.currency.as_ref(), 3)?;
    let wanted = wanted_log_size(&state, q.min_log_size)?;
    let query = SearchQuery {
        text: q.q,
        pool: q.pool,
        industry: q.industry,
        region: q.region,
        category: q.category,
        min_price_minor: q.min_price,
        max_price_minor: q.max_price,
        currency: q.currency,
        unit: q.unit,
        agency: q.agency.map(|k| k.as_str().to_string()),
        sort: q.sort.unwrap_or_default(),
        cursor: q.cursor,
        limit: q.limit.unwrap_or(DEFAULT_SEARCH_PAGE),
    };
    let node = state.node.clone();
    let index = state.catalog.clone();
    tokio::task::spawn_blocking(move || {
        wait_for_index(&index, wanted)?;
        index.search(&node.state(), &query).map_err(search_problem)
    })
    .await
    .expect("search task")
    .map(Json)
}

/// `GET /v1/catalog/listings`: every parameter is optional.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListingsQuery {
    #[param(inline)]
    pool: Option<Pool>,
    industry: Option<Industry>,
    /// The region whose catalog is searched (its agencies' listings, in its log): this node's
    /// own by default, or another region of the federation, as of the size of its log this node
    /// adopted (nothing before the first adoption).
    region: Option<RegionId>,
    /// The listing's category; blank filters nothing.
    #[param(max_length = 64)]
    category: Option<String>,
    /// Inclusive bounds on the list price, in minor units; a `min_price` above `max_price`
    /// matches nothing.
    #[serde(default, deserialize_with = "crate::params::opt_int64")]
    min_price: Option<u64>,
    #[serde(default, deserialize_with = "crate::params::opt_int64")]
    max_price: Option<u64>,
    /// Text found anywhere in the title, description or tags, ignoring case; blank filters
    /// nothing.
    #[param(max_length = 256)]
    q: Option<String>,
    /// The `next_after` of the previous page.
    after: Option<RecordId>,
    /// 1 to 100 (the default).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
}

/// `GET /v1/catalog/demands/{id}/matches`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct MatchesQuery {
    /// 1 to 100 (the default).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// As in `GET /v1/catalog/search`: answer once the index reflects this many entries.
    #[serde(default, deserialize_with = "crate::params::opt_int64")]
    min_log_size: Option<u64>,
}

fn query_problem(e: QueryError) -> Problem {
    match e {
        QueryError::Invalid(detail) => {
            Problem::new(StatusCode::BAD_REQUEST, "invalid-query", detail)
        }
        QueryError::DemandNotFound(_) => {
            Problem::new(StatusCode::NOT_FOUND, "demand-not-found", e.to_string())
        }
        QueryError::State(e) => read_failure(e),
    }
}

/// Search the shared catalog's active listings, in listing id order.
#[utoipa::path(get, path = "/v1/catalog/listings", tag = "catalog", params(ListingsQuery),
    responses(
        (status = 200, description = "A page of listings", body = CatalogPage),
        (status = 400, description = "A filter is not valid", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_listings(
    State(state): State<AppState>,
    ProblemQuery(q): ProblemQuery<ListingsQuery>,
) -> Result<Json<CatalogPage>, Problem> {
    let query = CatalogQuery {
        pool: q.pool,
        industry: q.industry,
        region: q.region,
        category: q.category,
        min_price_minor: q.min_price,
        max_price_minor: q.max_price,
        text: q.q,
        after: q.after,
        limit: q.limit.unwrap_or(MAX_CATALOG_PAGE),
    };
    let node = state.node.clone();
    tokio::task::spawn_blocking(move || {
        let own = node.region().clone();
        let region = query.region.clone().unwrap_or_else(|| own.clone());
        catalog::search(&RegionRecords::new(&node.state(), &own, &region), &query)
    })
    .await
    .expect("read task")
    .map(Json)
    .map_err(query_problem)
}

/// `GET /v1/catalog/listings/{listing_id}`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListingQuery {
    /// The region whose log holds the listing: this node's own by default, or another region of
    /// the federation, as of the size of its log this node adopted.
    region: Option<RegionId>,
}

/// One listing, whatever its status.
#[utoipa::path(get, path = "/v1/catalog/listings/{listing_id}", tag = "catalog",
    params(("listing_id" = RecordId, Path, description = "The listing's id"), ListingQuery),
    responses(
        (status = 200, description = "The listing", body = ListingRecord),
        (status = 400, description = "The id is not a valid record id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such listing", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_listing(
    State(state): State<AppState>,
    ProblemPath(listing_id): ProblemPath<String>,
    ProblemQuery(q): ProblemQuery<ListingQuery>,
) -> Result<Json<ListingRecord>, Problem> {
    let id = record_id(listing_id, "listing id")?;
    let own = state.node.region();
    let region = q.region.as_ref().unwrap_or(own);
    load_listing(&RegionRecords::new(&state.node.state(), own, region), &id)
        .map_err(read_failure)?
        .map(Json)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "listing-not-found",
                format!("listing `{id}` does not exist"),
            )
        })
}

/// One demand an enterprise posted.
#[utoipa::path(get, path = "/v1/catalog/demands/{demand_id}", tag = "catalog",
    params(("demand_id" = RecordId, Path, description = "The demand's id")),
    responses(
        (status = 200, description = "The demand", body = DemandRecord),
        (status = 400, description = "The id is not a valid record id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such demand", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_demand(
    State(state): State<AppState>,
    ProblemPath(demand_id): ProblemPath<String>,
) -> Result<Json<DemandRecord>, Problem> {
    let id = record_id(demand_id, "demand id")?;
    load_demand(&state.node.state(), &id)
        .map_err(read_failure)?
        .map(Json)
        .ok_or_else(|| query_problem(QueryError::DemandNotFound(id)))
}

/// The active listings of every region that fit a demand (its category and currency, its pool
/// and industry when it names them, within its budget), ranked by how well their text matches
/// the demand's title and description, then cheapest first.
#[utoipa::path(get, path = "/v1/catalog/demands/{demand_id}/matches", tag = "catalog",
    params(("demand_id" = RecordId, Path, description = "The demand's id"), MatchesQuery),
    responses(
        (status = 200, description = "The matching listings", body = DemandMatches),
        (status = 400, description = "The id or a parameter is not valid", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such demand, or `min_log_size` is beyond the log", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The search index cannot answer, or has not reached `min_log_size` in time", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_demand_matches(
    State(state): State<AppState>,
    ProblemPath(demand_id): ProblemPath<String>,
    ProblemQuery(q): ProblemQuery<MatchesQuery>,
) -> Result<Json<DemandMatches>, Problem> {
    let id = record_id(demand_id, "demand id")?;
    let limit = q.limit.unwrap_or(MAX_SEARCH_PAGE);
    if limit == 0 || limit > MAX_SEARCH_PAGE {
        return Err(query_problem(QueryError::Invalid(format!(
            "limit must be 1 to {MAX_SEARCH_PAGE}"
        ))));
    }
    let wanted = wanted_log_size(&state, q.min_log_size)?;
    let node = state.node.clone();
    let index = state.catalog.clone();
    tokio::task::spawn_blocking(move || {
        wait_for_index(&index, wanted)?;
        let demand = load_demand(&node.state(), &id)
            .map_err(read_failure)?
            .ok_or_else(|| query_problem(QueryError::DemandNotFound(id)))?;
        index
            .match_demand(&node.state(), &demand, limit)
            .map_err(search_problem)
    })
    .await
    .expect("read task")
    .map(Json)
}
