//! The shared resource catalog's read endpoints: search, one listing, one demand, and the
//! listings that match a demand. The queries themselves are `vledger_domain::catalog`'s.

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
use vledger_domain::limits::MAX_CATALOG_PAGE;
use vledger_domain::types::{RecordId, RegionId};

use crate::problem::read_failure;
use crate::records::record_id;
use crate::{AppState, Problem, ProblemPath, ProblemQuery};
pub use vledger_wire::http::DemandMatches;

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

/// The active listings that fit a demand (its category, within its budget), cheapest first.
#[utoipa::path(get, path = "/v1/catalog/demands/{demand_id}/matches", tag = "catalog",
    params(("demand_id" = RecordId, Path, description = "The demand's id"), MatchesQuery),
    responses(
        (status = 200, description = "The matching listings", body = DemandMatches),
        (status = 400, description = "The id or a parameter is not valid", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such demand", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_demand_matches(
    State(state): State<AppState>,
    ProblemPath(demand_id): ProblemPath<String>,
    ProblemQuery(q): ProblemQuery<MatchesQuery>,
) -> Result<Json<DemandMatches>, Problem> {
    let id = record_id(demand_id, "demand id")?;
    let limit = q.limit.unwrap_or(MAX_CATALOG_PAGE);
    let node = state.node.clone();
    let demand_id = id.clone();
    let listings =
        tokio::task::spawn_blocking(move || catalog::match_demand(&node.state(), &id, limit))
            .await
            .expect("read task")
            .map_err(query_problem)?;
    Ok(Json(DemandMatches {
        demand_id,
        listings,
    }))
}
