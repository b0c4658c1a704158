//! The shared resource catalog as a search engine: a tantivy index of the active listings of
//! this region and of every region it adopted, kept up with the log as a projection, with
//! ranked free-text search (Chinese and English), filters, facets, stable cursors, and the
//! ranked matching of a demand against every region's listings.
//!
//! - [`tokenizer`]: the text analysis (words; Chinese as bigrams and unigrams).
//! - [`schema`]: one document per active listing.
//! - [`index`]: [`CatalogIndex`], built from the state, following every committed batch,
//!   recording in each commit what it reflects ([`Freshness`]).
//! - [`query`]: [`SearchQuery`] answered as a [`SearchPage`]; [`CatalogIndex::match_demand`].

pub mod index;
pub mod query;
pub mod schema;
pub mod tokenizer;

pub use index::{CatalogIndex, Freshness, SearchError};
pub use query::{SearchFailure, SearchQuery, DEFAULT_SEARCH_PAGE, MAX_SEARCH_PAGE};
pub use vledger_wire::http::{DemandMatches, FacetCount, Facets, SearchHit, SearchPage, SortOrder};
