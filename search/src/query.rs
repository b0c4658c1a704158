//! Searching the index: the query text, the filters, the ranking, the facets and the cursor.
//!
//! The query text is a list of terms separated by spaces, and every term must match:
//! - a word (letters and digits) matches the same word in the title, the tags or the
//!   description, ignoring case and width (`EMC` matches `emc` and `ＥＭＣ`);
//! - Chinese characters match where they stand together in the text (`质谱仪` matches
//!   `高分辨质谱仪` and not `质谱联用仪`), one character where it stands anywhere;
//! - a term of several pieces (`EMC检测`, `ISO-17025`) and `"a quoted phrase"` match the
//!   pieces in that order, next to each other;
//! - a term or a phrase after `-` must not match (`检测 -电磁`).
//!
//! Ranked by BM25 over the three fields (a hit in the title counts three times one in the
//! description, in a tag twice), or by price. A page ends with a cursor that names the sort
//! key of its last hit and, for a ranking by relevance, the corpus statistics the first page
//! was scored with: the next page is scored with the same statistics, so a listing that did not
//! change keeps its score and its place, and no listing is shown twice or skipped because
//! others were listed, changed or withdrawn in between.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::ops::Bound;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::StrColumn;
use tantivy::query::{
    AllQuery, Bm25StatisticsProvider, BooleanQuery, BoostQuery, ConstScoreQuery, Occur,
    PhraseQuery, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader, Term};
use vledger_domain::catalog::{load_listing, DemandRecord, Industry, Pool};
use vledger_domain::federation::RegionRecords;
use vledger_domain::types::{RecordId, RegionId};
use vledger_domain::StateRead;
use vledger_wire::http::{DemandMatches, FacetCount, Facets, SearchHit, SearchPage, SortOrder};

use crate::index::CatalogIndex;
use crate::schema::{pool_name, Fields, FACETS, TEXT_BOOSTS};
use crate::tokenizer::{query_tokens, runs};

/// Most hits on one page.
pub const MAX_SEARCH_PAGE: usize = 100;
/// Hits on a page when the query names no limit.
pub const DEFAULT_SEARCH_PAGE: usize = 20;
/// Most characters of query text.
pub const MAX_QUERY_TEXT_CHARS: usize = 256;
/// Most values listed per facet, the most frequent first.
pub const MAX_FACET_VALUES: usize = 50;
/// Most tokens of a demand's title and description that its matching looks up.
const MAX_DEMAND_TOKENS: usize = 128;

/// A search: every part is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    pub text: Option<String>,
    pub pool: Option<Pool>,
    pub industry: Option<Industry>,
    /// The region whose log holds the listing.
    pub region: Option<RegionId>,
    pub category: Option<String>,
    pub min_price_minor: Option<u64>,
    pub max_price_minor: Option<u64>,
    pub currency: Option<String>,
    pub unit: Option<String>,
    /// The agency's key, standard base64.
    pub agency: Option<String>,
    pub sort: SortOrder,
    /// The `next_cursor` of the previous page of the same query.
    pub cursor: Option<String>,
    /// 1 to [`MAX_SEARCH_PAGE`].
    pub limit: usize,
}

/// Why a search was not answered.
#[derive(Debug, thiserror::Error)]
pub enum SearchFailure {
    #[error("{0}")]
    Invalid(String),
    #[error("search index: {0}")]
    Index(String),
}

impl From<tantivy::TantivyError> for SearchFailure {
    fn from(e: tantivy::TantivyError) -> Self {
        SearchFailure::Index(e.to_string())
    }
}

impl From<vledger_domain::StateError> for SearchFailure {
    fn from(e: vledger_domain::StateError) -> Self {
        SearchFailure::Index(e.to_string())
    }
}

fn invalid(message: impl Into<String>) -> SearchFailure {
    SearchFailure::Invalid(message.into())
}

/// One piece of the query text: tokens that must stand at consecutive positions.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TextTerm {
    tokens: Vec<String>,
    negated: bool,
}

/// Parses the query text into its terms (see the module's documentation).
fn parse_text(text: &str) -> Result<Vec<TextTerm>, SearchFailure> {
    if text.chars().count() > MAX_QUERY_TEXT_CHARS {
        return Err(invalid(format!(
            "the query text must be at most {MAX_QUERY_TEXT_CHARS} characters"
        )));
    }
    let mut terms = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let (negated, body) = match rest.strip_prefix('-') {
            Some(body) => (true, body),
            None => (false, rest),
        };
        let (piece, after) = match body.strip_prefix('"') {
            Some(quoted) => match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            },
            None => {
                let end = body.find(char::is_whitespace).unwrap_or(body.len());
                (&body[..end], &body[end..])
            }
        };
        let tokens: Vec<String> = runs(piece).iter().flat_map(query_tokens).collect();
        if !tokens.is_empty() {
            terms.push(TextTerm { tokens, negated });
        }
        rest = after.trim_start();
    }
    Ok(terms)
}

/// The positions of a term's tokens in the index: a Chinese run's bigrams stand at
/// consecutive positions, as words do.
fn text_query(fields: &Fields, term: &TextTerm) -> Box<dyn Query> {
    let per_field: Vec<(Occur, Box<dyn Query>)> = TEXT_BOOSTS
        .iter()
        .map(|(name, boost)| {
            let field = fields.by_name(name).expect("a text field");
            let query: Box<dyn Query> = if term.tokens.len() == 1 {
                Box::new(TermQuery::new(
                    Term::from_field_text(field, &term.tokens[0]),
                    IndexRecordOption::WithFreqs,
                ))
            } else {
                Box::new(PhraseQuery::new(
                    term.tokens
                        .iter()
                        .map(|t| Term::from_field_text(field, t))
                        .collect(),
                ))
            };
            (
                Occur::Should,
                Box::new(BoostQuery::new(query, *boost)) as Box<dyn Query>,
            )
        })
        .collect();
    Box::new(BooleanQuery::new(per_field))
}

fn filter(query: Box<dyn Query>) -> (Occur, Box<dyn Query>) {
    (Occur::Must, Box::new(ConstScoreQuery::new(query, 0.0)))
}

fn keyword(field: Field, value: &str) -> (Occur, Box<dyn Query>) {
    filter(Box::new(TermQuery::new(
        Term::from_field_text(field, value),
        IndexRecordOption::Basic,
    )))
}

fn price_range(fields: &Fields, min: Option<u64>, max: Option<u64>) -> (Occur, Box<dyn Query>) {
    let bound = |value: Option<u64>| match value {
        Some(v) => Bound::Included(Term::from_field_u64(fields.price, v)),
        None => Bound::Unbounded,
    };
    filter(Box::new(RangeQuery::new(bound(min), bound(max))))
}

/// The query's filters (everything but its text).
struct Filters<'a> {
    pool: Option<Pool>,
    industry: Option<&'a Industry>,
    region: Option<&'a RegionId>,
    category: Option<&'a str>,
    min_price: Option<u64>,
    max_price: Option<u64>,
    currency: Option<&'a str>,
    unit: Option<&'a str>,
    agency: Option<&'a str>,
}

impl Filters<'_> {
    fn clauses(&self, fields: &Fields) -> Vec<(Occur, Box<dyn Query>)> {
        let mut clauses = Vec::new();
        if let Some(pool) = self.pool {
            clauses.push(keyword(fields.pool, pool_name(pool)));
        }
        if let Some(industry) = self.industry {
            clauses.push(keyword(fields.industry, industry.as_str()));
        }
        if let Some(region) = self.region {
            clauses.push(keyword(fields.region, region.as_str()));
        }
        if let Some(category) = self.category {
            clauses.push(keyword(fields.category, category));
        }
        if let Some(currency) = self.currency {
            clauses.push(keyword(fields.currency, currency));
        }
        if let Some(unit) = self.unit {
            clauses.push(keyword(fields.unit, unit));
        }
        if let Some(agency) = self.agency {
            clauses.push(keyword(fields.agency, agency));
        }
        if self.min_price.is_some() || self.max_price.is_some() {
            clauses.push(price_range(fields, self.min_price, self.max_price));
        }
        clauses
    }
}

/// A hit's place in an ordering: smaller first. `(primary, secondary, tie)`.
type SortKey = (u64, u64, u64);

/// A score as a key that sorts the best first (scores are never negative).
fn score_key(score: Score) -> u64 {
    u64::from(u32::MAX - score.max(0.0).to_bits())
}

fn key_score(key: u64) -> Score {
    f32::from_bits(u32::MAX - key as u32)
}

/// How a collector orders hits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ranking {
    Relevance,
    PriceAsc,
    PriceDesc,
    /// A demand's matches: relevance, then the cheapest.
    RelevanceThenPrice,
}

impl Ranking {
    fn key(self, score: Score, price: u64, tie: u64) -> SortKey {
        match self {
            Ranking::Relevance => (score_key(score), 0, tie),
            Ranking::PriceAsc => (price, 0, tie),
            Ranking::PriceDesc => (u64::MAX - price, 0, tie),
            Ranking::RelevanceThenPrice => (score_key(score), price, tie),
        }
    }
    fn scored(self) -> bool {
        matches!(self, Ranking::Relevance | Ranking::RelevanceThenPrice)
    }
}

/// The corpus statistics a ranking was scored with, kept in its cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FrozenStatistics {
    docs: u64,
    /// Per text field (in [`TEXT_BOOSTS`] order), its tokens in all.
    tokens: Vec<u64>,
    /// Per term the query looks up (in its `query_terms` order), its document frequency.
    doc_freqs: Vec<u64>,
}

struct StatisticsFor<'a> {
    frozen: &'a FrozenStatistics,
    text_fields: [Field; 3],
    terms: &'a [Term],
}

impl Bm25StatisticsProvider for StatisticsFor<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        let i = self.text_fields.iter().position(|f| *f == field);
        Ok(i.and_then(|i| self.frozen.tokens.get(i))
            .copied()
            .unwrap_or(0))
    }
    fn total_num_docs(&self) -> tantivy::Result<u64> {
        Ok(self.frozen.docs)
    }
    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        let i = self.terms.iter().position(|t| t == term);
        Ok(i.and_then(|i| self.frozen.doc_freqs.get(i))
            .copied()
            .unwrap_or(0))
    }
}

/// What a cursor holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    /// The fingerprint of the query the cursor continues.
    query: [u8; 8],
    after: SortKey,
    statistics: Option<FrozenStatistics>,
}

impl Cursor {
    fn encode(&self) -> String {
        let bytes = postcard::to_allocvec(self).expect("a cursor serializes");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }
    fn decode(text: &str, fingerprint: [u8; 8]) -> Result<Self, SearchFailure> {
        let bad = || invalid("the cursor is not one this node gave");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| bad())?;
        let cursor: Cursor = postcard::from_bytes(&bytes).map_err(|_| bad())?;
        if cursor.query != fingerprint {
            return Err(invalid(
                "the cursor continues another query: pass it with the query that gave it",
            ));
        }
        Ok(cursor)
    }
}

/// The collector of one page: the best `limit` hits after the cursor, the count of all hits,
/// and the facet counts.
struct PageCollector {
    ranking: Ranking,
    after: Option<SortKey>,
    limit: usize,
    facets: bool,
}

/// A hit as a segment reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Found {
    key: SortKey,
    region: String,
    listing_id: String,
}

struct PageFruit {
    best: Vec<Found>,
    total: u64,
    facets: [BTreeMap<String, u64>; 4],
}

struct SegmentPage {
    ranking: Ranking,
    after: Option<SortKey>,
    limit: usize,
    price: Option<tantivy::columnar::Column<u64>>,
    tie: tantivy::columnar::Column<u64>,
    region: StrColumn,
    listing_id: StrColumn,
    /// Per facet field, its column and the count of each of its values by ordinal.
    facets: Vec<(StrColumn, Vec<u64>)>,
    heap: BinaryHeap<(SortKey, DocId)>,
    total: u64,
}

fn str_column(reader: &SegmentReader, name: &str) -> tantivy::Result<StrColumn> {
    reader.fast_fields().str(name)?.ok_or_else(|| {
        tantivy::TantivyError::SchemaError(format!("field {name} has no fast column"))
    })
}

impl Collector for PageCollector {
    type Fruit = PageFruit;
    type Child = SegmentPage;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentPage> {
        let price = match self.ranking {
            Ranking::Relevance => None,
            _ => Some(reader.fast_fields().u64("price")?),
        };
        let mut facets = Vec::new();
        if self.facets {
            for name in FACETS {
                let column = str_column(reader, name)?;
                let values = column.num_terms();
                facets.push((column, vec![0; values]));
            }
        }
        Ok(SegmentPage {
            ranking: self.ranking,
            after: self.after,
            limit: self.limit,
            price,
            tie: reader.fast_fields().u64("tie")?,
            region: str_column(reader, "region")?,
            listing_id: str_column(reader, "listing_id")?,
            facets,
            heap: BinaryHeap::with_capacity(self.limit + 1),
            total: 0,
        })
    }

    fn requires_scoring(&self) -> bool {
        self.ranking.scored()
    }

    fn merge_fruits(&self, fruits: Vec<PageFruit>) -> tantivy::Result<PageFruit> {
        let mut merged = PageFruit {
            best: Vec::new(),
            total: 0,
            facets: Default::default(),
        };
        for fruit in fruits {
            merged.best.extend(fruit.best);
            merged.total += fruit.total;
            for (into, from) in merged.facets.iter_mut().zip(fruit.facets) {
                for (value, count) in from {
                    *into.entry(value).or_default() += count;
                }
            }
        }
        merged.best.sort();
        merged.best.truncate(self.limit);
        Ok(merged)
    }
}

impl SegmentCollector for SegmentPage {
    type Fruit = PageFruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        self.total += 1;
        for (column, counts) in &mut self.facets {
            for ord in column.term_ords(doc) {
                counts[ord as usize] += 1;
            }
        }
        let price = self.price.as_ref().and_then(|c| c.first(doc)).unwrap_or(0);
        let tie = self.tie.first(doc).unwrap_or(0);
        let key = self.ranking.key(score, price, tie);
        if self.after.is_some_and(|after| key <= after) {
            return;
        }
        if self.heap.len() < self.limit {
            self.heap.push((key, doc));
        } else if self.heap.peek().is_some_and(|(worst, _)| key < *worst) {
            self.heap.pop();
            self.heap.push((key, doc));
        }
    }

    fn harvest(self) -> PageFruit {
        let name = |column: &StrColumn, doc: DocId| {
            let mut out = String::new();
            if let Some(ord) = column.term_ords(doc).next() {
                let _ = column.ord_to_str(ord, &mut out);
            }
            out
        };
        let best = self
            .heap
            .into_iter()
            .map(|(key, doc)| Found {
                key,
                region: name(&self.region, doc),
                listing_id: name(&self.listing_id, doc),
            })
            .collect();
        let mut facets: [BTreeMap<String, u64>; 4] = Default::default();
        for (into, (column, counts)) in facets.iter_mut().zip(&self.facets) {
            for (ord, count) in counts.iter().enumerate() {
                if *count > 0 {
                    let mut value = String::new();
                    if column.ord_to_str(ord as u64, &mut value).unwrap_or(false) {
                        into.insert(value, *count);
                    }
                }
            }
        }
        PageFruit {
            best,
            total: self.total,
            facets,
        }
    }
}

fn facet_list(counts: BTreeMap<String, u64>) -> Vec<FacetCount> {
    let mut list: Vec<FacetCount> = counts
        .into_iter()
        .map(|(value, count)| FacetCount { value, count })
        .collect();
    list.sort_by_key(|f| Reverse(f.count));
    list.truncate(MAX_FACET_VALUES);
    list
}

/// A fingerprint of everything in a query but its cursor and limit.
fn fingerprint(query: &SearchQuery) -> [u8; 8] {
    let text = format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        query.text,
        query.pool,
        query.industry,
        query.region,
        query.category,
        query.min_price_minor,
        query.max_price_minor,
        query.currency,
        query.unit,
        query.agency,
        query.sort,
    );
    Sha256::digest(text.as_bytes())[..8]
        .try_into()
        .expect("eight bytes")
}

fn blank_is_none(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

impl CatalogIndex {
    /// Answers a search from the index, each hit's record read from `state` (the node's
    /// committed state) as it is now.
    pub fn search<S: StateRead>(
        &self,
        state: &S,
        query: &SearchQuery,
    ) -> Result<SearchPage, SearchFailure> {
        if query.limit == 0 || query.limit > MAX_SEARCH_PAGE {
            return Err(invalid(format!("limit must be 1 to {MAX_SEARCH_PAGE}")));
        }
        let terms = match blank_is_none(query.text.as_deref()) {
            Some(text) => parse_text(text)?,
            None => Vec::new(),
        };
        let filters = Filters {
            pool: query.pool,
            industry: query.industry.as_ref(),
            region: query.region.as_ref(),
            category: blank_is_none(query.category.as_deref()),
            min_price: query.min_price_minor,
            max_price: query.max_price_minor,
            currency: blank_is_none(query.currency.as_deref()),
            unit: blank_is_none(query.unit.as_deref()),
            agency: query.agency.as_deref(),
        };
        let mut clauses = filters.clauses(&self.fields);
        let mut positive = false;
        for term in &terms {
            let occur = if term.negated {
                Occur::MustNot
            } else {
                positive = true;
                Occur::Must
            };
            clauses.push((occur, text_query(&self.fields, term)));
        }
        if !positive {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
        let ranking = match query.sort {
            SortOrder::Relevance => Ranking::Relevance,
            SortOrder::PriceAsc => Ranking::PriceAsc,
            SortOrder::PriceDesc => Ranking::PriceDesc,
        };
        let fingerprint = fingerprint(query);
        let cursor = match &query.cursor {
            Some(text) => Some(Cursor::decode(text, fingerprint)?),
            None => None,
        };
        self.run(
            state,
            BooleanQuery::new(clauses),
            ranking,
            query.limit,
            cursor,
            Some(fingerprint),
        )
    }

    /// The active listings of every region that fit a demand: its category and currency, its
    /// pool and industry when it names them, priced within its budget; ranked by how well their
    /// text matches the demand's title and description (BM25), then cheapest first.
    pub fn match_demand<S: StateRead>(
        &self,
        state: &S,
        demand: &DemandRecord,
        limit: usize,
    ) -> Result<DemandMatches, SearchFailure> {
        if limit == 0 || limit > MAX_SEARCH_PAGE {
            return Err(invalid(format!("limit must be 1 to {MAX_SEARCH_PAGE}")));
        }
        let filters = Filters {
            pool: demand.pool,
            industry: demand.industry.as_ref(),
            region: None,
            category: Some(&demand.category),
            min_price: None,
            max_price: demand.budget_max_minor,
            currency: Some(&demand.currency),
            unit: None,
            agency: None,
        };
        let mut clauses = filters.clauses(&self.fields);
        clauses.push((Occur::Must, Box::new(AllQuery)));
        let mut tokens: Vec<String> = runs(&format!("{} {}", demand.title, demand.description))
            .iter()
            .flat_map(query_tokens)
            .collect();
        tokens.sort();
        tokens.dedup();
        tokens.truncate(MAX_DEMAND_TOKENS);
        for token in &tokens {
            let term = TextTerm {
                tokens: vec![token.clone()],
                negated: false,
            };
            clauses.push((Occur::Should, text_query(&self.fields, &term)));
        }
        let page = self.run(
            state,
            BooleanQuery::new(clauses),
            Ranking::RelevanceThenPrice,
            limit,
            None,
            None,
        )?;
        Ok(DemandMatches {
            demand_id: demand.demand_id.clone(),
            hits: page.hits,
            indexed: page.indexed,
        })
    }

    fn run<S: StateRead>(
        &self,
        state: &S,
        query: BooleanQuery,
        ranking: Ranking,
        limit: usize,
        cursor: Option<Cursor>,
        fingerprint: Option<[u8; 8]>,
    ) -> Result<SearchPage, SearchFailure> {
        // The freshness is read before the searcher, so that it never claims more than the
        // searcher holds.
        let indexed = self.freshness();
        let searcher = self.reader.searcher();
        let text_fields = TEXT_BOOSTS.map(|(name, _)| self.fields.by_name(name).expect("field"));
        let mut terms: Vec<Term> = Vec::new();
        query.query_terms(&mut |term, _| {
            if text_fields.contains(&term.field()) && !terms.contains(term) {
                terms.push(term.clone());
            }
        });
        let statistics = match (ranking.scored(), cursor.as_ref()) {
            (false, _) => None,
            (true, Some(cursor)) => Some(
                cursor
                    .statistics
                    .clone()
                    .ok_or_else(|| invalid("the cursor is not one this node gave"))?,
            ),
            (true, None) => {
                let mut tokens = Vec::new();
                for field in text_fields {
                    tokens.push(Bm25StatisticsProvider::total_num_tokens(&searcher, field)?);
                }
                let mut doc_freqs = Vec::new();
                for term in &terms {
                    doc_freqs.push(searcher.doc_freq(term)?);
                }
                Some(FrozenStatistics {
                    docs: Bm25StatisticsProvider::total_num_docs(&searcher)?,
                    tokens,
                    doc_freqs,
                })
            }
        };
        let collector = PageCollector {
            ranking,
            after: cursor.as_ref().map(|c| c.after),
            limit,
            facets: fingerprint.is_some(),
        };
        let fruit = match &statistics {
            Some(frozen) => searcher.search_with_statistics_provider(
                &query,
                &collector,
                &StatisticsFor {
                    frozen,
                    text_fields,
                    terms: &terms,
                },
            )?,
            None => searcher.search(&query, &collector)?,
        };
        let full = fruit.best.len() == limit;
        let next_cursor = match (fingerprint, fruit.best.last()) {
            (Some(query), Some(last)) if full => Some(
                Cursor {
                    query,
                    after: last.key,
                    statistics: statistics.clone(),
                }
                .encode(),
            ),
            _ => None,
        };
        let mut hits = Vec::with_capacity(fruit.best.len());
        for found in &fruit.best {
            let (Ok(region), Ok(id)) = (
                RegionId::try_from(found.region.as_str()),
                RecordId::try_from(found.listing_id.as_str()),
            ) else {
                return Err(SearchFailure::Index(format!(
                    "a document names listing `{}` of region `{}`",
                    found.listing_id, found.region
                )));
            };
            let records = RegionRecords::new(state, &self.own, &region);
            // A listing withdrawn since the index's last commit is left out.
            let Some(listing) = load_listing(&records, &id)?
                .filter(|l| l.status == vledger_domain::catalog::ListingStatus::Active)
            else {
                continue;
            };
            hits.push(SearchHit {
                log_region: region,
                score: ranking.scored().then(|| key_score(found.key.0)),
                listing,
            });
        }
        let [pool, industry, region, category] = fruit.facets;
        Ok(SearchPage {
            hits,
            total: fruit.total,
            facets: Facets {
                pool: facet_list(pool),
                industry: facet_list(industry),
                region: facet_list(region),
                category: facet_list(category),
            },
            next_cursor,
            indexed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<(Vec<String>, bool)> {
        parse_text(text)
            .unwrap()
            .into_iter()
            .map(|t| (t.tokens, t.negated))
            .collect()
    }

    fn term(tokens: &[&str], negated: bool) -> (Vec<String>, bool) {
        (tokens.iter().map(|t| t.to_string()).collect(), negated)
    }

    #[test]
    fn query_text_parses_words_phrases_and_exclusions() {
        assert_eq!(
            tokens(r#"EMC 检测 -电磁 "ISO 17025" 钢"#),
            vec![
                term(&["emc"], false),
                term(&["检测"], false),
                term(&["电磁"], true),
                term(&["iso", "17025"], false),
                term(&["钢"], false),
            ]
        );
        assert_eq!(tokens("EMC检测"), vec![term(&["emc", "检测"], false)]);
        assert!(tokens("  ,, ").is_empty());
    }

    #[test]
    fn query_text_is_bounded() {
        assert!(parse_text(&"a".repeat(MAX_QUERY_TEXT_CHARS + 1)).is_err());
        // Within the bound, every character may look up a token of its own.
        let text = "长".repeat(MAX_QUERY_TEXT_CHARS);
        assert_eq!(
            parse_text(&text).unwrap()[0].tokens.len(),
            MAX_QUERY_TEXT_CHARS - 1
        );
    }

    #[test]
    fn score_keys_sort_the_best_first_and_round_trip() {
        assert!(score_key(2.5) < score_key(1.0));
        assert!(score_key(1.0) < score_key(0.0));
        assert_eq!(key_score(score_key(1.75)), 1.75);
    }

    #[test]
    fn a_cursor_of_another_query_is_refused() {
        let cursor = Cursor {
            query: [1; 8],
            after: (1, 2, 3),
            statistics: None,
        };
        let text = cursor.encode();
        assert_eq!(Cursor::decode(&text, [1; 8]).unwrap(), cursor);
        assert!(Cursor::decode(&text, [2; 8]).is_err());
        assert!(Cursor::decode("not a cursor!", [1; 8]).is_err());
    }
}
