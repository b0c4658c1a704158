//! The shared resource catalog (资源池): agencies list their resources and services in the public
//! pools and in industry pools, enterprises post demands, and two pure queries read it: a search
//! over the listings of every region, and the cheapest listings that fit a demand.
//!
//! State: `listing/<id>` and `demand/<id>` hold the records. The active listings of a category
//! are also indexed by price, `lprice/` ‖ category length (u8) ‖ category ‖ price (u64 BE) ‖
//! listing id, so that matching reads the cheapest first and stops at the demand's budget.

use serde::{Deserialize, Serialize};

use super::money::AmountMinor;
use super::parties::{check_text, PartyRecord};
use super::state::{StateError, StateRead, StateWrite};
use super::{ApplyContext, ApplyError, Event, Rejection};
use crate::limits::{
    MAX_CATALOG_DESCRIPTION_BYTES, MAX_CATALOG_PAGE, MAX_CATALOG_QUERY_TEXT_CHARS,
    MAX_CATALOG_SCAN, MAX_CATALOG_TAGS, MAX_CATALOG_TAG_BYTES, MAX_CATALOG_TITLE_BYTES,
    MAX_CATALOG_UNIT_BYTES, MAX_CATEGORY_BYTES, MAX_CATEGORY_FILTER_CHARS, MAX_INDUSTRY_BYTES,
    MAX_REASON_BYTES,
};
use crate::types::{RecordId, RegionId, TimeMs};
use vledger_tlog::keys::PublicKey;

/// A pool of the catalog: the seven public pools of the Chengdu–Chongqing platforms, or an
/// industry pool named by the listing's `industry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pool {
    /// 科技云用户资源池: the platforms' users.
    Users,
    /// 科研仪器设备资源池: research instruments and equipment.
    InstrumentsEquipment,
    /// 科技数据资源池: science data (laboratory animals, plants, microbes, ...).
    ScienceData,
    /// 科技文献数据资源池: literature databases.
    Literature,
    /// 科技成果数据资源池: research results, reports, patents, technology transfer.
    Achievements,
    /// 科技人才数据资源池: scientists and engineers.
    Talent,
    /// 科研机构与科技产业基地数据资源池: research institutions and industry bases (parks,
    /// incubators, maker spaces).
    InstitutionsBases,
    /// 产业数据资源池: an industry pool (automotive, IoT, integrated circuits, ...).
    Industry,
}

/// The name of an industry pool: `[a-z][a-z0-9_]{1,31}`, e.g. `automotive`, `iot`,
/// `integrated_circuits`. A new industry needs no code, only a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Industry(String);

/// Why an industry name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("industry `{0}` must be 2 to {MAX_INDUSTRY_BYTES} bytes of a-z, 0-9 and '_', starting with a letter")]
pub struct IndustryError(pub String);

impl Industry {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Industry {
    type Error = IndustryError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let ok = (2..=MAX_INDUSTRY_BYTES).contains(&s.len())
            && s.as_bytes()[0].is_ascii_lowercase()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(s))
        } else {
            Err(IndustryError(s))
        }
    }
}

impl TryFrom<&str> for Industry {
    type Error = IndustryError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::try_from(s.to_string())
    }
}

impl From<Industry> for String {
    fn from(i: Industry) -> String {
        i.0
    }
}

impl std::fmt::Display for Industry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a listing can still be ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListingStatus {
    Active,
    Withdrawn,
}

/// Whether a demand is still looking for a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DemandStatus {
    Open,
    Closed,
}

/// Body of `catalog.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListingBody {
    pub listing_id: RecordId,
    pub pool: Pool,
    /// Required in pool `industry`, refused in the others.
    #[serde(default)]
    pub industry: Option<Industry>,
    /// The service category that programs name as eligible, e.g. `testing`.
    pub category: String,
    pub title: String,
    pub description: String,
    /// The list price in minor units; 0 means free of charge.
    pub price_minor: AmountMinor,
    /// ISO 4217 code, e.g. `CNY`.
    pub currency: String,
    /// What the price is for, e.g. "每样品" or "per machine hour".
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Body of `catalog.update`: the fields to change; absent fields keep their value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateListingBody {
    pub listing_id: RecordId,
    #[serde(default)]
    pub price_minor: Option<AmountMinor>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// Body of `catalog.withdraw`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawListingBody {
    pub listing_id: RecordId,
    pub reason: String,
}

/// Body of `demand.post`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DemandBody {
    pub demand_id: RecordId,
    /// Only listings of this pool match; absent: any pool.
    #[serde(default)]
    pub pool: Option<Pool>,
    /// Only listings of this industry match; needs pool `industry`.
    #[serde(default)]
    pub industry: Option<Industry>,
    pub category: String,
    pub title: String,
    pub description: String,
    /// The most the enterprise will pay; absent: no limit.
    #[serde(default)]
    pub budget_max_minor: Option<AmountMinor>,
    pub currency: String,
}

/// Body of `demand.close`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseDemandBody {
    pub demand_id: RecordId,
}

/// A listing as the state holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ListingRecord {
    pub listing_id: RecordId,
    pub agency: PublicKey,
    /// The agency's home region.
    pub region: RegionId,
    pub pool: Pool,
    pub industry: Option<Industry>,
    pub category: String,
    pub title: String,
    pub description: String,
    pub price_minor: u64,
    pub currency: String,
    pub unit: Option<String>,
    pub tags: Vec<String>,
    pub status: ListingStatus,
    pub listed_at_ms: TimeMs,
    pub updated_at_ms: TimeMs,
}

/// A demand as the state holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DemandRecord {
    pub demand_id: RecordId,
    pub enterprise: PublicKey,
    /// The enterprise's home region.
    pub region: RegionId,
    pub pool: Option<Pool>,
    pub industry: Option<Industry>,
    pub category: String,
    pub title: String,
    pub description: String,
    pub budget_max_minor: Option<u64>,
    pub currency: String,
    pub status: DemandStatus,
    pub posted_at_ms: TimeMs,
    pub updated_at_ms: TimeMs,
}

/// Prefix of every listing record.
pub const LISTING_PREFIX: &[u8] = b"listing/";
/// Prefix of every demand record.
pub const DEMAND_PREFIX: &[u8] = b"demand/";
/// Prefix of the price index of active listings.
pub const PRICE_INDEX_PREFIX: &[u8] = b"lprice/";

// The price index stores a category's length in one byte.
const _: () = assert!(MAX_CATEGORY_BYTES <= u8::MAX as usize);

/// How many records a query reads from the state at a time.
const SCAN_CHUNK: usize = 256;

fn listing_key(id: &RecordId) -> Vec<u8> {
    let mut key = LISTING_PREFIX.to_vec();
    key.extend_from_slice(id.as_str().as_bytes());
    key
}

fn demand_key(id: &RecordId) -> Vec<u8> {
    let mut key = DEMAND_PREFIX.to_vec();
    key.extend_from_slice(id.as_str().as_bytes());
    key
}

/// The price index prefix of one category.
fn category_prefix(category: &str) -> Vec<u8> {
    let length = u8::try_from(category.len()).expect("categories are checked to fit one byte");
    let mut key = PRICE_INDEX_PREFIX.to_vec();
    key.push(length);
    key.extend_from_slice(category.as_bytes());
    key
}

fn price_index_key(listing: &ListingRecord) -> Vec<u8> {
    let mut key = category_prefix(&listing.category);
    key.extend_from_slice(&listing.price_minor.to_be_bytes());
    key.extend_from_slice(listing.listing_id.as_str().as_bytes());
    key
}

/// The first key after `key` in byte order: where a scan resumes.
fn key_after(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

/// Reads a listing.
pub fn load_listing<S: StateRead>(
    state: &S,
    id: &RecordId,
) -> Result<Option<ListingRecord>, StateError> {
    state.get(&listing_key(id))
}

/// Reads a listing of `region`: this region's own, or another region's as of the size this
/// region last adopted of it (`None` if it is not in that view, or nothing of it is adopted).
pub fn load_listing_of<S: StateRead>(
    state: &S,
    here: &RegionId,
    region: &RegionId,
    id: &RecordId,
) -> Result<Option<ListingRecord>, StateError> {
    if region == here {
        load_listing(state, id)
    } else {
        state.get(&crate::federation::view_key(region, &listing_key(id)))
    }
}

/// Reads a demand.
pub fn load_demand<S: StateRead>(
    state: &S,
    id: &RecordId,
) -> Result<Option<DemandRecord>, StateError> {
    state.get(&demand_key(id))
}

fn require_listing<S: StateRead>(state: &S, id: &RecordId) -> Result<ListingRecord, ApplyError> {
    load_listing(state, id)?.ok_or_else(|| Rejection::ListingNotFound(id.to_string()).into())
}

fn require_demand<S: StateRead>(state: &S, id: &RecordId) -> Result<DemandRecord, ApplyError> {
    load_demand(state, id)?.ok_or_else(|| Rejection::DemandNotFound(id.to_string()).into())
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Rejection {
    Rejection::InvalidField {
        field,
        reason: reason.into(),
    }
}

fn check_currency(currency: &str) -> Result<(), Rejection> {
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid(
            "currency",
            "must be an ISO 4217 code of three capital letters",
        ));
    }
    Ok(())
}

fn check_tags(tags: &[String]) -> Result<(), Rejection> {
    if tags.len() > MAX_CATALOG_TAGS {
        return Err(invalid("tags", format!("at most {MAX_CATALOG_TAGS} tags")));
    }
    for (i, tag) in tags.iter().enumerate() {
        check_text("tags", tag, MAX_CATALOG_TAG_BYTES)?;
        if tags[..i].contains(tag) {
            return Err(invalid("tags", format!("`{tag}` is listed twice")));
        }
    }
    Ok(())
}

fn check_title_and_description(title: &str, description: &str) -> Result<(), Rejection> {
    check_text("title", title, MAX_CATALOG_TITLE_BYTES)?;
    check_text("description", description, MAX_CATALOG_DESCRIPTION_BYTES)
}

pub(super) fn decide_list<S: StateRead>(
    state: &S,
    actor: &PartyRecord,
    body: &ListingBody,
) -> Result<Vec<Event>, ApplyError> {
    match (body.pool, &body.industry) {
        (Pool::Industry, None) => {
            return Err(invalid("industry", "pool `industry` needs an industry name").into())
        }
        (Pool::Industry, Some(_)) | (_, None) => {}
        (_, Some(_)) => {
            return Err(invalid("industry", "only listings in pool `industry` name one").into())
        }
    }
    check_text("category", &body.category, MAX_CATEGORY_BYTES)?;
    check_title_and_description(&body.title, &body.description)?;
    check_currency(&body.currency)?;
    if let Some(unit) = &body.unit {
        check_text("unit", unit, MAX_CATALOG_UNIT_BYTES)?;
    }
    check_tags(&body.tags)?;
    if load_listing(state, &body.listing_id)?.is_some() {
        return Err(Rejection::ListingExists(body.listing_id.to_string()).into());
    }
    Ok(vec![Event::ListingAdded {
        agency: actor.key,
        region: actor.home_region.clone(),
        listing: body.clone(),
    }])
}

pub(super) fn decide_update<S: StateRead>(
    state: &S,
    body: &UpdateListingBody,
) -> Result<Vec<Event>, ApplyError> {
    let listing = require_listing(state, &body.listing_id)?;
    if listing.status == ListingStatus::Withdrawn {
        return Err(Rejection::ListingWithdrawn(body.listing_id.to_string()).into());
    }
    let nothing_to_change = body.price_minor.is_none()
        && body.title.is_none()
        && body.description.is_none()
        && body.category.is_none()
        && body.tags.is_none();
    if nothing_to_change {
        return Err(invalid(
            "listing_id",
            "the update names no field to change (price_minor, title, description, category, tags)",
        )
        .into());
    }
    if let Some(title) = &body.title {
        check_text("title", title, MAX_CATALOG_TITLE_BYTES)?;
    }
    if let Some(description) = &body.description {
        check_text("description", description, MAX_CATALOG_DESCRIPTION_BYTES)?;
    }
    if let Some(category) = &body.category {
        check_text("category", category, MAX_CATEGORY_BYTES)?;
    }
    if let Some(tags) = &body.tags {
        check_tags(tags)?;
    }
    Ok(vec![Event::ListingUpdated {
        update: body.clone(),
    }])
}

pub(super) fn decide_withdraw<S: StateRead>(
    state: &S,
    actor: &PartyRecord,
    body: &WithdrawListingBody,
) -> Result<Vec<Event>, ApplyError> {
    let listing = require_listing(state, &body.listing_id)?;
    check_text("reason", &body.reason, MAX_REASON_BYTES)?;
    if listing.status == ListingStatus::Withdrawn {
        return Err(Rejection::ListingWithdrawn(body.listing_id.to_string()).into());
    }
    Ok(vec![Event::ListingWithdrawn {
        listing_id: body.listing_id.clone(),
        by: actor.key,
        reason: body.reason.clone(),
    }])
}

pub(super) fn decide_post_demand<S: StateRead>(
    state: &S,
    actor: &PartyRecord,
    body: &DemandBody,
) -> Result<Vec<Event>, ApplyError> {
    if body.industry.is_some() && body.pool != Some(Pool::Industry) {
        return Err(invalid(
            "industry",
            "a demand naming an industry needs pool `industry`",
        )
        .into());
    }
    check_text("category", &body.category, MAX_CATEGORY_BYTES)?;
    check_title_and_description(&body.title, &body.description)?;
    check_currency(&body.currency)?;
    if body.budget_max_minor.is_some_and(AmountMinor::is_zero) {
        return Err(invalid("budget_max_minor", "must be positive when given").into());
    }
    if load_demand(state, &body.demand_id)?.is_some() {
        return Err(Rejection::DemandExists(body.demand_id.to_string()).into());
    }
    Ok(vec![Event::DemandPosted {
        enterprise: actor.key,
        region: actor.home_region.clone(),
        demand: body.clone(),
    }])
}

pub(super) fn decide_close_demand<S: StateRead>(
    state: &S,
    body: &CloseDemandBody,
) -> Result<Vec<Event>, ApplyError> {
    let demand = require_demand(state, &body.demand_id)?;
    if demand.status == DemandStatus::Closed {
        return Err(Rejection::DemandClosed(body.demand_id.to_string()).into());
    }
    Ok(vec![Event::DemandClosed {
        demand_id: body.demand_id.clone(),
    }])
}

fn missing(key: Vec<u8>) -> StateError {
    StateError::Corrupt {
        key: String::from_utf8_lossy(&key).into_owned(),
        reason: "the record of a catalog event is missing".into(),
    }
}

fn save_listing<S: StateWrite>(state: &mut S, listing: &ListingRecord) {
    state.put(listing_key(&listing.listing_id), listing);
}

pub(super) fn evolve<S: StateRead + StateWrite>(
    state: &mut S,
    ctx: &ApplyContext,
    event: &Event,
) -> Result<(), StateError> {
    match event {
        Event::ListingAdded {
            agency,
            region,
            listing,
        } => {
            let record = ListingRecord {
                listing_id: listing.listing_id.clone(),
                agency: *agency,
                region: region.clone(),
                pool: listing.pool,
                industry: listing.industry.clone(),
                category: listing.category.clone(),
                title: listing.title.clone(),
                description: listing.description.clone(),
                price_minor: listing.price_minor.get(),
                currency: listing.currency.clone(),
                unit: listing.unit.clone(),
                tags: listing.tags.clone(),
                status: ListingStatus::Active,
                listed_at_ms: ctx.node_time_ms,
                updated_at_ms: ctx.node_time_ms,
            };
            state.put_raw(price_index_key(&record), Vec::new());
            save_listing(state, &record);
        }
        Event::ListingUpdated { update } => {
            let mut record = load_listing(state, &update.listing_id)?
                .ok_or_else(|| missing(listing_key(&update.listing_id)))?;
            state.delete(price_index_key(&record));
            if let Some(price) = update.price_minor {
                record.price_minor = price.get();
            }
            if let Some(title) = &update.title {
                record.title = title.clone();
            }
            if let Some(description) = &update.description {
                record.description = description.clone();
            }
            if let Some(category) = &update.category {
                record.category = category.clone();
            }
            if let Some(tags) = &update.tags {
                record.tags = tags.clone();
            }
            record.updated_at_ms = ctx.node_time_ms;
            state.put_raw(price_index_key(&record), Vec::new());
            save_listing(state, &record);
        }
        Event::ListingWithdrawn { listing_id, .. } => {
            let mut record =
                load_listing(state, listing_id)?.ok_or_else(|| missing(listing_key(listing_id)))?;
            state.delete(price_index_key(&record));
            record.status = ListingStatus::Withdrawn;
            record.updated_at_ms = ctx.node_time_ms;
            save_listing(state, &record);
        }
        Event::DemandPosted {
            enterprise,
            region,
            demand,
        } => {
            let record = DemandRecord {
                demand_id: demand.demand_id.clone(),
                enterprise: *enterprise,
                region: region.clone(),
                pool: demand.pool,
                industry: demand.industry.clone(),
                category: demand.category.clone(),
                title: demand.title.clone(),
                description: demand.description.clone(),
                budget_max_minor: demand.budget_max_minor.map(AmountMinor::get),
                currency: demand.currency.clone(),
                status: DemandStatus::Open,
                posted_at_ms: ctx.node_time_ms,
                updated_at_ms: ctx.node_time_ms,
            };
            state.put(demand_key(&record.demand_id), &record);
        }
        Event::DemandClosed { demand_id } => {
            let mut record =
                load_demand(state, demand_id)?.ok_or_else(|| missing(demand_key(demand_id)))?;
            record.status = DemandStatus::Closed;
            record.updated_at_ms = ctx.node_time_ms;
            state.put(demand_key(demand_id), &record);
        }
        _ => unreachable!("catalog::evolve is called only for catalog events"),
    }
    Ok(())
}

/// A catalog search: every filter is optional; results are active listings in listing id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogQuery {
    pub pool: Option<Pool>,
    pub industry: Option<Industry>,
    /// The listing agency's home region.
    pub region: Option<RegionId>,
    pub category: Option<String>,
    pub min_price_minor: Option<u64>,
    pub max_price_minor: Option<u64>,
    /// Found case-insensitively anywhere in the title, the description or a tag. Written
    /// Chinese has no spaces between words, so this is a substring match, not a word match.
    pub text: Option<String>,
    /// The cursor: only listings whose id sorts after this one.
    pub after: Option<RecordId>,
    /// At most this many listings, 1 to [`MAX_CATALOG_PAGE`].
    pub limit: usize,
}

impl Default for CatalogQuery {
    fn default() -> Self {
        Self {
            pool: None,
            industry: None,
            region: None,
            category: None,
            min_price_minor: None,
            max_price_minor: None,
            text: None,
            after: None,
            limit: MAX_CATALOG_PAGE,
        }
    }
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CatalogPage {
    pub listings: Vec<ListingRecord>,
    /// Pass as `after` to continue; absent when no listing is left to examine. A page may hold
    /// fewer than `limit` listings and still have a cursor when the query examined
    /// [`MAX_CATALOG_SCAN`] listings.
    pub next_after: Option<RecordId>,
}

/// Why a catalog query was not answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("query is not valid: {0}")]
    Invalid(String),
    #[error("demand `{0}` does not exist")]
    DemandNotFound(RecordId),
    #[error(transparent)]
    State(#[from] StateError),
}

fn check_limit(limit: usize) -> Result<(), QueryError> {
    if limit == 0 || limit > MAX_CATALOG_PAGE {
        return Err(QueryError::Invalid(format!(
            "limit must be 1 to {MAX_CATALOG_PAGE}"
        )));
    }
    Ok(())
}

use super::state::decode_record as decode;

/// A checked query, with its text folded to lower case once.
struct Filter<'a> {
    query: &'a CatalogQuery,
    category: Option<&'a str>,
    text: Option<String>,
}

impl<'a> Filter<'a> {
    fn new(query: &'a CatalogQuery) -> Result<Self, QueryError> {
        check_limit(query.limit)?;
        // The lengths the document states, counted before trimming as its `maxLength` does. A
        // category within them that no listing can have (too long in bytes), or a price range
        // with `min_price` above `max_price`, is a valid query that matches nothing.
        if query
            .category
            .as_deref()
            .is_some_and(|c| c.chars().count() > MAX_CATEGORY_FILTER_CHARS)
        {
            return Err(QueryError::Invalid(format!(
                "category must be at most {MAX_CATEGORY_FILTER_CHARS} characters"
            )));
        }
        if query
            .text
            .as_deref()
            .is_some_and(|t| t.chars().count() > MAX_CATALOG_QUERY_TEXT_CHARS)
        {
            return Err(QueryError::Invalid(format!(
                "search text must be at most {MAX_CATALOG_QUERY_TEXT_CHARS} characters"
            )));
        }
        // A blank filter (an empty search box) filters nothing.
        let category = query.category.as_deref().filter(|c| !c.trim().is_empty());
        let text = query
            .text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        Ok(Self {
            query,
            category,
            text: text.map(str::to_lowercase),
        })
    }

    fn accepts(&self, listing: &ListingRecord) -> bool {
        let q = self.query;
        listing.status == ListingStatus::Active
            && allows(q.pool, |p| p == listing.pool)
            && allows(q.industry.as_ref(), |i| {
                listing.industry.as_ref() == Some(i)
            })
            && allows(q.region.as_ref(), |r| *r == listing.region)
            && allows(self.category, |c| c == listing.category)
            && allows(q.min_price_minor, |m| listing.price_minor >= m)
            && allows(q.max_price_minor, |m| listing.price_minor <= m)
            && allows(self.text.as_deref(), |t| mentions(listing, t))
    }
}

/// Whether an optional filter lets a record through: an absent filter lets everything through.
fn allows<T>(filter: Option<T>, test: impl FnOnce(T) -> bool) -> bool {
    match filter {
        None => true,
        Some(value) => test(value),
    }
}

/// Whether `needle` (already lower case) occurs in the listing's title, description or tags.
fn mentions(listing: &ListingRecord, needle: &str) -> bool {
    std::iter::once(&listing.title)
        .chain(std::iter::once(&listing.description))
        .chain(listing.tags.iter())
        .any(|field| field.to_lowercase().contains(needle))
}

/// Searches the active listings of every region, in listing id order, from the query's cursor.
/// Examines at most [`MAX_CATALOG_SCAN`] listings.
pub fn search<S: StateRead>(state: &S, query: &CatalogQuery) -> Result<CatalogPage, QueryError> {
    let filter = Filter::new(query)?;
    let mut start = match &query.after {
        Some(after) => key_after(&listing_key(after)),
        None => LISTING_PREFIX.to_vec(),
    };
    let mut listings = Vec::new();
    let mut examined = 0;
    loop {
        let chunk = SCAN_CHUNK.min(MAX_CATALOG_SCAN - examined);
        let rows = state.scan_prefix_from(LISTING_PREFIX, &start, chunk)?;
        for (key, value) in &rows {
            examined += 1;
            let listing: ListingRecord = decode(key, value)?;
            let id = listing.listing_id.clone();
            if filter.accepts(&listing) {
                listings.push(listing);
            }
            if listings.len() == query.limit || examined == MAX_CATALOG_SCAN {
                return Ok(CatalogPage {
                    listings,
                    next_after: Some(id),
                });
            }
        }
        match rows.last() {
            Some((key, _)) if rows.len() == chunk => start = key_after(key),
            _ => {
                return Ok(CatalogPage {
                    listings,
                    next_after: None,
                })
            }
        }
    }
}

fn fits(demand: &DemandRecord, listing: &ListingRecord) -> bool {
    listing.status == ListingStatus::Active
        && listing.category == demand.category
        && listing.currency == demand.currency
        && allows(demand.pool, |p| p == listing.pool)
        && allows(demand.industry.as_ref(), |i| {
            listing.industry.as_ref() == Some(i)
        })
        && allows(demand.budget_max_minor, |b| listing.price_minor <= b)
}

/// The active listings, from every region, that fit a demand: same category and currency, the
/// demand's pool and industry when it names them, priced within its budget. Cheapest first
/// (ties in listing id order); at most `limit`, from at most [`MAX_CATALOG_SCAN`] examined.
pub fn match_demand<S: StateRead>(
    state: &S,
    demand_id: &RecordId,
    limit: usize,
) -> Result<Vec<ListingRecord>, QueryError> {
    check_limit(limit)?;
    let demand = load_demand(state, demand_id)?
        .ok_or_else(|| QueryError::DemandNotFound(demand_id.clone()))?;
    let prefix = category_prefix(&demand.category);
    let mut start = prefix.clone();
    let mut matches = Vec::new();
    let mut examined = 0;
    loop {
        let chunk = SCAN_CHUNK.min(MAX_CATALOG_SCAN - examined);
        let rows = state.scan_prefix_from(&prefix, &start, chunk)?;
        for (key, _) in &rows {
            examined += 1;
            let (price, id) = parse_price_index_key(&prefix, key)?;
            if demand.budget_max_minor.is_some_and(|b| price > b) {
                // The index is in price order: nothing further fits the budget.
                return Ok(matches);
            }
            let listing = load_listing(state, &id)?.ok_or_else(|| missing(listing_key(&id)))?;
            if fits(&demand, &listing) {
                matches.push(listing);
            }
            if matches.len() == limit || examined == MAX_CATALOG_SCAN {
                return Ok(matches);
            }
        }
        match rows.last() {
            Some((key, _)) if rows.len() == chunk => start = key_after(key),
            _ => return Ok(matches),
        }
    }
}

fn parse_price_index_key(prefix: &[u8], key: &[u8]) -> Result<(u64, RecordId), StateError> {
    let corrupt = || StateError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: "not a price index key".into(),
    };
    let rest = key.strip_prefix(prefix).ok_or_else(corrupt)?;
    let (price, id) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let id = std::str::from_utf8(id).map_err(|_| corrupt())?;
    let id = RecordId::try_from(id).map_err(|_| corrupt())?;
    Ok((u64::from_be_bytes(*price), id))
}
